//! The idlegrid domain: plain data and the rules over it, with no I/O.
//!
//! Layout:
//! - [`ids`]: typed identifiers of tenants, jobs, tasks, results, workers and leases.
//! - [`job`]: a customer's job and its state machine; the one place job transitions are decided.
//! - [`task`]: a chunk of a job, the outcomes of attempts at it, and the retry rule.
//! - [`app`]: app manifests (what a service needs to run) and worker capabilities.
//! - [`schedule`]: the scheduling policy: which jobs a device is offered and in what order,
//!   which chunks get backup copies, how large chunks are.
//! - [`pricing`]: speed/price tiers, work and money units, quotes.
//! - [`replication`]: how many devices run a chunk and when their results are believed.
//! - [`text`]: text from elsewhere (a device's failure reason, a server's message) made safe to
//!   show to a person.
//!
//! Every other crate speaks in these types; only the storage backends translate them to rows and
//! only the API crate gives them a wire schema.

pub mod app;
pub mod ids;
pub mod job;
pub mod pricing;
pub mod replication;
pub mod schedule;
pub mod task;
pub mod text;
pub mod wheel;

pub use app::{
    Allowances, AppManifest, BASELINE_ENCODERS, Capabilities, GRID_ENCODERS, Requirements, Runtime,
};
pub use ids::{JobId, LeaseId, ResultId, TaskId, TenantId, WorkerId};
pub use job::{JobState, TransitionError};
pub use pricing::{Account, Credits, Quote, Rates, Tier};
pub use replication::{Party, Placement, Replication, ReplicationMode};
pub use task::{AttemptOutcome, RetryDecision, TaskState};
