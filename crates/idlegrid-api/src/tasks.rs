//! Tasks API wire types: what worker devices send and receive.

use crate::empty_object;
use idlegrid_domain::{Capabilities, JobId, LeaseId, TaskId, WorkerId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Largest output a worker may send inline in a report instead of uploading it.
pub const MAX_INLINE_OUTPUT: usize = 64 * 1024;

/// `POST /v1/workers/register`, authenticated with an owner's enrollment token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterWorker {
    /// Name of the device, for its owner.
    pub name: String,
    /// What the device offers.
    pub capabilities: Capabilities,
}

/// `POST /v1/workers/link`: register a device with a link code its owner asked for
/// (`POST /v1/owner/link-codes`), so the owner's enrollment token never reaches the device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkWorker {
    /// The code, as shown to the owner (`ABCD-2345`; case, spaces and dashes do not matter).
    pub code: String,
    /// Name of the device, for its owner.
    pub name: String,
    /// What the device offers.
    pub capabilities: Capabilities,
}

/// A code that links one device to the owner who asked for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LinkCode {
    /// The code to type on the device, e.g. `ABCD-2345`. Works once.
    pub code: String,
    /// Seconds until it stops working.
    pub expires_in_secs: u64,
    /// Path of the page that turns a browser into a worker with this code filled in.
    pub contribute_path: String,
    /// With `?origin=`: that page's whole address as a QR code (an SVG image), to scan with
    /// the phone to link.
    #[serde(default)]
    pub qr_svg: Option<String>,
}

/// The new worker's identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Registered {
    /// Worker id.
    pub worker_id: WorkerId,
    /// Bearer token for every further Tasks API call; shown once.
    pub token: String,
    /// Seconds a lease lasts without a heartbeat.
    pub lease_secs: u64,
    /// Seconds between heartbeats the coordinator expects.
    pub heartbeat_secs: u64,
}

/// `POST /v1/leases`: ask for up to `max_tasks` tasks, waiting up to `wait_ms` for one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaseRequest {
    /// Most tasks to lease at once. 1..=1000. The device is given no more than leave it
    /// holding as many leases as it has slots.
    pub max_tasks: u32,
    /// Milliseconds to wait when no task is ready. 0..=30000.
    #[serde(default)]
    pub wait_ms: u64,
}

/// Tasks leased to the worker, with what it needs to run them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LeaseGrant {
    /// One entry per job among the leases (shared by all its tasks).
    pub jobs: Vec<JobSpec>,
    /// The leases; may be empty when nothing was ready within the wait.
    pub leases: Vec<Lease>,
}

/// What a worker needs to know about a job to run its tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobSpec {
    /// Job id.
    pub job_id: JobId,
    /// App name.
    pub app: String,
    /// SHA-256 of the app bundle to run (`GET /v1/bundles/{sha256}`); workers cache by it.
    pub bundle_sha256: String,
    /// Job parameters, given to the script as `IDLEGRID_PARAMS`.
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    /// Limits the worker enforces on the script.
    pub limits: TaskLimits,
}

/// Limits one task runs under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TaskLimits {
    /// Wall-clock seconds before the script is killed.
    pub timeout_secs: u64,
    /// Address-space limit in MiB.
    pub memory_mb: u64,
    /// Largest output in bytes.
    pub max_output_bytes: u64,
}

/// One leased task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Lease {
    /// Lease id, used in every further call about this task.
    pub lease_id: LeaseId,
    /// The task.
    pub task_id: TaskId,
    /// Its job (see `jobs`).
    pub job_id: JobId,
    /// Position of the chunk in the job's input.
    pub chunk_index: u64,
    /// File name of the chunk inside `input/`.
    pub input_name: String,
    /// Size of the chunk in bytes (`GET /v1/leases/{lease_id}/input`).
    pub input_size: u64,
    /// Parameters of this chunk set by the app's partitioner (e.g. a video chunk's frame
    /// count), given to the script as JSON in `IDLEGRID_TASK`; `{}` when there are none.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub task_params: serde_json::Value,
    /// The bundle's file to run instead of its entrypoint: a step of the app that runs as a
    /// task (its `reduce.py`, given every accepted output as a tar in `input/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    /// Milliseconds until the lease expires unless a heartbeat extends it.
    pub expires_in_ms: u64,
}

/// `POST /v1/leases/heartbeat`: the worker is alive and still working on these leases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// Leases being worked on.
    pub leases: Vec<HeartbeatItem>,
}

/// Progress of one lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatItem {
    /// The lease.
    pub lease_id: LeaseId,
    /// Fraction done, 0..=1, when the script reports it.
    #[serde(default)]
    pub progress: Option<f32>,
}

/// What became of each heartbeated lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatReply {
    /// One entry per lease in the request, same order.
    pub leases: Vec<LeaseStatus>,
}

/// Whether a lease is still held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LeaseStatus {
    /// The lease.
    pub lease_id: LeaseId,
    /// False when the lease expired, was reassigned or its job ended: stop working on it.
    pub held: bool,
    /// Milliseconds until it expires, when held.
    pub expires_in_ms: Option<u64>,
}

/// `POST /v1/leases/report`: outcomes of one or more leases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// One entry per finished lease.
    pub reports: Vec<ReportItem>,
}

/// The outcome of one lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportItem {
    /// The lease.
    pub lease_id: LeaseId,
    /// The task it was for (checked against the lease).
    pub task_id: TaskId,
    /// What happened.
    pub outcome: ReportOutcome,
    /// The task's log: the end of its script's stderr (at most 16 KiB), kept for the job's
    /// customer and shown to them as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
}

/// What happened to a leased task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ReportOutcome {
    /// The script succeeded. The output is either inline (base64, at most 64 KiB decoded) or
    /// was uploaded first with
    /// `PUT /v1/leases/{lease_id}/output`.
    Completed {
        /// Lower-case hex SHA-256 of the output.
        sha256: String,
        /// Output size in bytes.
        size: u64,
        /// The output itself, base64, for small outputs.
        #[serde(default)]
        inline_base64: Option<String>,
    },
    /// The script failed; `reason` (e.g. the tail of its stderr) is shown to the customer.
    Failed {
        /// What went wrong.
        reason: String,
    },
    /// The worker gives the task back unfinished (it is shutting down).
    Released,
}

/// How the coordinator took each report. Sent with HTTP 200 when every report was recorded,
/// and with HTTP 409 when any was refused; the others in the batch are recorded either way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReportReply {
    /// One entry per report, same order.
    pub results: Vec<ReportStatus>,
    /// The first refusal, when any report was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<crate::ErrorDetail>,
}

/// How the coordinator took one report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReportStatus {
    /// The lease.
    pub lease_id: LeaseId,
    /// Whether the report was recorded.
    pub accepted: bool,
    /// Why not, when it was refused.
    pub error: Option<crate::ErrorDetail>,
}

/// A device's own record, as the coordinator keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorkerStatus {
    /// Worker id.
    pub worker_id: WorkerId,
    /// Results accepted.
    pub valid: u64,
    /// Results rejected by a validator, or discarded when the device was quarantined.
    pub invalid: u64,
    /// Leases that expired without a report.
    pub timed_out: u64,
    /// Consecutive valid results up to now; with adaptive replication, a long run means the
    /// device's results are checked less often.
    pub streak: u64,
    /// Whether the device is quarantined (it gets no work).
    pub quarantined: bool,
    /// What the device's validated results have earned its owner so far, in micro-credits
    /// (what is still held included, what was forfeited taken off).
    #[serde(default)]
    #[schema(value_type = i64)]
    pub earned: idlegrid_domain::Credits,
    /// Of that, what is still held: earnings of results accepted without another owner's
    /// agreement, the owner's once held for the grid's hold period, forfeited if the owner is
    /// caught forging first.
    #[serde(default)]
    #[schema(value_type = i64)]
    pub held: idlegrid_domain::Credits,
}
