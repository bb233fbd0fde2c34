//! The idlegrid coordinator: the trusted side of the grid.
//!
//! Layout — the deck's components, each a module that hands work to the next only through the
//! records ([`idlegrid_storage::records`]) and the queues ([`idlegrid_storage::queue`]), so a
//! crash between any two steps loses nothing:
//!
//! ```text
//! customer ─▶ jobs_api ─[partition]▶ partitioner ─[feed]▶ feeder ─[job queues]▶ tasks_api ◀─ workers
//!                                                                                   │
//!             jobs_api ◀─ output ── assembler ◀─[assemble]── validator ◀─[validate]─┘
//! ```
//!
//! - [`jobs_api`]: customers create jobs, upload inputs, run, watch (SSE), cancel, download.
//! - [`uploads`]: inputs uploaded in parts (resumable), within the input's size limit; parts of
//!   abandoned uploads deleted.
//! - [`links`]: signed, expiring links to a job's output for browsers (download, HLS playback).
//! - [`accounts_api`]: what a secret stands for; device owners' devices.
//! - [`billing`]: prices before a job runs, balances and earnings, deposits (the books are kept
//!   by the records: quotes held by the partitioner, results paid by their verdicts).
//! - [`partitioner`]: verifies a job's input and splits it into chunks (one task record each).
//! - [`external`]: inputs fetched from a URL or a customer's bucket, outputs written to one.
//! - [`feeder`]: moves created tasks into per-job task queues and keeps the scheduling table.
//! - [`tasks_api`]: workers register, lease, heartbeat, fetch chunks and bundles, report; the
//!   reaper takes back expired leases.
//! - [`validator`]: judges each reported result with its app's validator.
//! - [`quorum`]: decides a chunk from all its results: agreement across independent parties,
//!   disputes of rejected results, suspect results checked elsewhere.
//! - [`escrow`]: moves held earnings (results accepted unverified) to owners once held long
//!   enough.
//! - [`assembler`]: merges a job's accepted results into its output.
//! - [`apps`]: the built-in apps and the app-specific partitioners, validators and assemblers.
//! - [`stragglers`]: backup copies of a job's slowest running chunks once nothing is queued.
//! - [`retry`]: what happens after a failed attempt, shared by the Tasks API and the validator.
//! - [`secrets`]: customers' secrets sealed before they are stored.
//! - [`webhooks`]: every state change of a job POSTed, signed, to the job's webhook.
//! - [`recovery`]: rebuilds the queues from the records at start-up.
//! - [`sweeper`]: with shared queues, queues again the work whose queue item a dead
//!   coordinator took with it.
//! - [`tools`]: external tools (FFmpeg's) run by the stages, their CPU counted per stage.
//! - [`grid`]: the shared handles (store, queues, blobs, apps, config) every module receives.
//! - [`stage`]: the loop of the job-level stages, several jobs at once.
//! - [`scratch`]: the coordinator's scratch directories, and clearing those of killed ones.
//! - [`ops`]: liveness, readiness and Prometheus metrics.
//! - [`presence`]: when devices were last heard from.
//! - [`stats`]: the grid's statistics over time, for operators.
//! - [`web`]: the dashboard's pages (the deck's Computing Platform web UI).
//! - [`server`]: the HTTP router, OpenAPI document, and [`server::serve`] with graceful shutdown.

pub mod accounts_api;
pub mod apps;
pub mod assembler;
pub mod auth;
pub mod billing;
pub mod config;
pub mod device_links;
pub mod error;
pub mod escrow;
pub mod events;
pub mod external;
pub mod feeder;
pub mod grid;
pub mod jobs_api;
pub mod links;
pub mod ops;
pub mod partitioner;
pub mod presence;
pub mod quorum;
pub mod recovery;
pub mod retry;
pub mod scratch;
pub mod secrets;
pub mod server;
pub mod stage;
pub mod stats;
pub mod stragglers;
pub mod sweeper;
pub mod tasks_api;
pub mod tools;
pub mod uploads;
pub mod validator;
pub mod web;
pub mod webhooks;

pub use config::Config;
pub use grid::{Credentials, Grid};
pub use server::serve;
