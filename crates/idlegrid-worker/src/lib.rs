//! The idlegrid worker agent: registers a device with a coordinator, leases tasks into its
//! free slots, runs each task's Python script under limits, and reports the outcomes.
//!
//! Layout:
//! - [`run`] and [`WorkerConfig`]: the entry point (`idlegrid worker`, `idlegrid local`).
//! - `agent`: the lease loop, the heartbeat loop, report delivery and shutdown.
//! - `task`: one task from bundle to outcome.
//! - [`runner`]: running a script and judging its `output/`.
//! - [`sandbox`]: the seam where the script's process is confined (with a user and a cgroup
//!   of each task's own, when the worker runs as root); `supervisor`: the process that ends
//!   every process of a task with it, also when the worker dies.
//! - `bundles`: the on-disk bundle cache; `identity`: registration and saved credentials;
//!   [`capabilities`]: what the device offers.
//! - [`controls`]: the device owner's limits and conditions, and the policy deciding whether
//!   the device may work now; [`throttle`]: the `cpu_percent` duty cycle.
//! - [`ipc`]: the local control socket behind `idlegrid worker pause | resume | status`.
//!
//! Everything the worker keeps lives in [`WorkerConfig::state_dir`]: `credentials.json`,
//! `bundles/<sha256>/`, `scratch/` (one directory per running task, removed afterwards, and
//! all of them at the next start after a crash), `control.sock` (while it runs) and `paused`
//! (while its owner has paused it). A worker running as root also holds claims on users for
//! its tasks in `/run/idlegrid/users` (released when it dies) and makes a cgroup per task
//! under its own (removed when the task ends).

mod agent;
mod backoff;
mod bundles;
pub mod capabilities;
pub mod controls;
mod identity;
pub mod ipc;
pub mod runner;
pub mod sandbox;
pub mod selftest;
mod supervisor;
mod task;
pub mod throttle;

use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub use identity::CREDENTIALS_FILE;

/// How to run a worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Coordinator base URL, e.g. `http://127.0.0.1:8080`.
    pub coordinator: String,
    /// The device owner's enrollment token, used to register when there are no saved
    /// credentials for this coordinator or they were revoked.
    pub enrollment_token: String,
    /// Where credentials, cached bundles and scratch directories live; one worker per
    /// directory (it is locked).
    pub state_dir: PathBuf,
    /// Device name shown to its owner.
    pub name: String,
    /// Tasks run at once; at least 1.
    pub slots: usize,
    /// Python interpreter to run scripts with (usually `python3`, found on `PATH`).
    pub python: PathBuf,
    /// On shutdown, how long running tasks may go on before they are killed and handed back.
    pub drain_timeout: Duration,
    /// Run tasks even where the task sandbox does not hold (the worker says what leaks).
    pub weak_sandbox: bool,
    /// What the device's owner allows, and when.
    pub controls: controls::Controls,
}

/// What a worker did before it stopped. Counts reports the coordinator accepted; `lost` counts
/// tasks whose outcome was not recorded (lease lost or expired, report refused or abandoned).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WorkerSummary {
    /// Tasks reported completed.
    pub succeeded: u64,
    /// Tasks reported failed.
    pub failed: u64,
    /// Tasks handed back unfinished.
    pub released: u64,
    /// Tasks whose outcome the coordinator did not record.
    pub lost: u64,
}

/// Runs the worker until `shutdown` is cancelled (the caller does so on Ctrl-C or SIGTERM).
/// Leasing stops at once; running tasks get [`WorkerConfig::drain_timeout`] to finish, then
/// their scripts are killed and their leases handed back. Errors are setup problems (state
/// directory unusable, enrollment refused).
pub async fn run(
    config: WorkerConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<WorkerSummary> {
    agent::run(config, shutdown).await
}
