//! Wire types of idlegrid's two HTTP APIs, shared by the coordinator, the worker and the CLI.
//!
//! - [`jobs`]: the Jobs API, for customers (authenticated with an API key).
//! - [`accounts`]: what a secret stands for, accounts' secrets, device owners' views of their
//!   devices, earnings and payouts, sign-up.
//! - [`admin`]: operators' views: customers, owners, devices, jobs, payouts.
//! - [`grid`]: the grid's statistics over time, for operators.
//! - [`tasks`]: the Tasks API, for worker devices (authenticated with a worker token).
//! - [`error`]: the JSON body every failed request carries.
//! - [`paths`]: URL paths and header names, so client and server cannot drift apart.
//! - [`runner`]: the rules both runners of task scripts (native and browser) keep.
//!
//! Only this crate decides how things look on the wire; the domain types it reuses
//! ([`idlegrid_domain`]) are plain data.

pub mod accounts;
pub mod admin;
pub mod error;
pub mod grid;
pub mod jobs;
pub mod paths;
pub mod runner;
pub mod tasks;

pub use error::{ErrorBody, ErrorDetail};
pub use idlegrid_domain::{
    AppManifest, AttemptOutcome, Capabilities, Credits, JobId, JobState, LeaseId, Placement,
    Replication, ReplicationMode, Requirements, TaskId, TaskState, TenantId, WorkerId,
};

/// Receipt of an upload (a job's input or a task's output).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct UploadReceipt {
    /// Bytes stored.
    pub size: u64,
    /// Their SHA-256, as verified.
    pub sha256: String,
}

/// An app bundle as served at `GET /v1/bundles/{sha256}`: the manifest and the app's files
/// (the task script and anything it imports), as UTF-8 text. Its SHA-256 is the hash of this
/// document's JSON bytes as served, so workers can cache bundles by hash and verify them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// The app's manifest; `manifest.entrypoint` names the file to run.
    pub manifest: AppManifest,
    /// File name (plain name, no directories) to content.
    pub files: std::collections::BTreeMap<String, String>,
    /// Python packages the app brings: wheel file name to the wheel's bytes in base64. A worker
    /// installs, of each package, the wheel built for it, beside the app's files.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub wheels: std::collections::BTreeMap<String, String>,
}

impl Bundle {
    /// Whether a bundle file name is a plain name that stays inside the bundle directory, and
    /// not longer than the runners allow ([`runner::RunnerRules::max_file_name_bytes`]).
    pub fn is_safe_file_name(name: &str) -> bool {
        !name.is_empty()
            && name != "."
            && name != ".."
            && !name.contains(['/', '\\', '\0'])
            && name.len() <= runner::RULES.max_file_name_bytes
    }
}

/// The default of an optional JSON-object field: `{}`.
fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

/// A Unix ms time as the APIs show it (the epoch for one out of range).
pub fn timestamp(ms: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}
