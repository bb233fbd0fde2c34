//! Jobs API wire types: what customers send and receive.

use crate::empty_object;
use idlegrid_domain::{JobId, JobState, TenantId};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/jobs`: create a job. It waits in `created` until its input is uploaded and `run`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateJob {
    /// App (service) to run, e.g. `python-map`; `GET /v1/apps` lists them.
    pub app: String,
    /// What to call the job in lists, 1 to 200 printable characters (the CLI gives the
    /// input's file name unless told otherwise).
    #[serde(default)]
    pub name: Option<String>,
    /// App parameters; the task script receives them as JSON in `IDLEGRID_PARAMS`.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    /// The customer's Python task script, for apps that run one (python-map).
    #[serde(default)]
    pub script: Option<String>,
    /// Lines per chunk, for line-partitioned apps (python-map). By default chunks are sized
    /// from the tier and the grid's capacity.
    #[serde(default)]
    pub chunk_lines: Option<u64>,
    /// Seconds of media per chunk, for video apps. By default chunks are sized from the tier
    /// and the grid's capacity.
    #[serde(default)]
    pub chunk_seconds: Option<f64>,
    /// Items per chunk, for apps cut into items: the files of an archive (the `files`
    /// partitioner) or the parameter sets of a sweep (`sweep`). By default chunks are sized from
    /// the tier and the grid's capacity.
    #[serde(default)]
    pub chunk_items: Option<u64>,
    /// How the job should be run.
    #[serde(default)]
    pub preferences: Preferences,
    /// Where to take the input from instead of an upload: the coordinator fetches it when the
    /// job is run.
    #[serde(default)]
    pub input_from: Option<InputSource>,
    /// A bucket of the customer's the output is also written to when the job completes (it
    /// stays downloadable here too). An output that is an archive of files (a streaming
    /// output, a video with its stills) is written as a folder: each file under `key/`.
    #[serde(default)]
    pub output_to: Option<BucketObject>,
    /// Where every state change of the job is POSTed, signed (see [`WebhookView`]).
    #[serde(default)]
    pub webhook: Option<WebhookSpec>,
}

impl CreateJob {
    /// A job of `app` with nothing else given: what `{"app": app}` means. Set the rest with
    /// struct update syntax.
    pub fn new(app: impl Into<String>) -> Self {
        CreateJob {
            app: app.into(),
            name: None,
            params: empty_object(),
            script: None,
            chunk_lines: None,
            chunk_seconds: None,
            chunk_items: None,
            preferences: Preferences::default(),
            input_from: None,
            output_to: None,
            webhook: None,
        }
    }
}

/// A webhook to create with a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookSpec {
    /// The `https://` URL (on a public address; `http://` and local ones too where the
    /// coordinator allows private sources) each state change is POSTed to.
    pub url: String,
}

/// A job's webhook. Each state change of the job is POSTed to `url` as JSON (`id`, `type`
/// (`job.<state>`), `job_id`, `state`, `error`, `at`), with the headers `x-idlegrid-event`,
/// `x-idlegrid-delivery` (the event id), `x-idlegrid-timestamp` (Unix seconds) and
/// `x-idlegrid-signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" under the secret>`.
/// Delivery is at least once (the event id tells repeats apart), in order per job; failed
/// deliveries are retried with exponential backoff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebhookView {
    /// Where the state changes are POSTed.
    pub url: String,
    /// The signing secret: only in the answer that creates the job, never again — keep it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// `GET /v1/jobs/{id}/webhook/deliveries`: the job's events and their delivery, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebhookDeliveries {
    /// One per state change of the job.
    pub events: Vec<WebhookDelivery>,
}

/// One state change of a job and its delivery to the job's webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebhookDelivery {
    /// Event id (the `x-idlegrid-delivery` header and the body's `id`).
    pub id: i64,
    /// The state the job entered.
    pub state: JobState,
    /// When.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// When the receiver accepted it with a 2xx answer; `null` until then.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub delivered_at: Option<Timestamp>,
    /// Whether delivery stopped after too many failed attempts.
    pub gave_up: bool,
    /// When the next attempt is due; `null` once delivered or given up.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_attempt_at: Option<Timestamp>,
    /// Attempts made, oldest first.
    pub attempts: Vec<WebhookAttemptView>,
}

/// One attempt at delivering an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebhookAttemptView {
    /// When it was made.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// The receiver's HTTP status; `null` when it gave none (refused, timed out).
    pub status: Option<u16>,
    /// Why the attempt failed, in words; `null` when it succeeded.
    pub error: Option<String>,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
}

/// Where a job's input comes from when it is not uploaded: exactly one of `url` and `bucket`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InputSource {
    /// An `https://` (or, where the coordinator allows it, `http://`) URL to download.
    #[serde(default)]
    pub url: Option<String>,
    /// An object in an S3-compatible bucket.
    #[serde(default)]
    pub bucket: Option<BucketObject>,
}

/// An object in a customer's S3-compatible bucket. The secret key is kept by the coordinator
/// and never shown back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BucketObject {
    /// Bucket name.
    pub bucket: String,
    /// Object key.
    pub key: String,
    /// Server, for buckets outside AWS, e.g. `https://s3.example.com`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Region (default `us-east-1`).
    #[serde(default)]
    pub region: Option<String>,
    /// Access key id.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// Secret access key: accepted, stored, never returned (job views leave it out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
}

/// How a job should be run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Preferences {
    /// Higher runs first among the customer's and other customers' jobs. -100..=100.
    pub priority: i32,
    /// Failed attempts (script error, timeout, lost worker, rejected result) a chunk may have
    /// before the job fails. 1..=20.
    pub max_attempts: u32,
    /// Wall-clock limit for one chunk on a worker, in seconds. 1..=86400.
    pub task_timeout_secs: u64,
    /// How results are verified by running chunks on devices of other owners and comparing
    /// their bytes (deterministic apps). `null` (default): adaptive replication with random
    /// spot checks where devices of other owners may run the job, none where every device
    /// that may run it is your own (`placement`). A job's view shows what applies.
    pub replication: Option<idlegrid_domain::Replication>,
    /// Which devices may run the job: `any` device on the grid, or only your `own` (devices
    /// whose owner belongs to your account). `null` (default): `own` when every device owner
    /// on the grid belongs to your account, otherwise `any`.
    pub placement: Option<idlegrid_domain::Placement>,
    /// Seconds after `run` by which the job must have finished; a job still unfinished then
    /// fails as expired, its chunks and partial results deleted. 1..=2592000 (30 days);
    /// `null` (default) for none.
    pub deadline_secs: Option<u64>,
    /// Speed against price: `economy` (cheapest, runs when the grid has room, large chunks),
    /// `standard` (default) or `fast` (runs first, small chunks on many devices, backup copies
    /// of stragglers, twice the standard price).
    pub tier: idlegrid_domain::Tier,
    /// The most the job may cost, in micro-credits (1 credit = 1,000,000); a job whose quote
    /// is higher fails before it runs. `null` (default) for no ceiling.
    #[schema(value_type = Option<i64>)]
    pub max_price: Option<idlegrid_domain::Credits>,
}

impl Default for Preferences {
    fn default() -> Self {
        Preferences {
            priority: 0,
            max_attempts: 3,
            task_timeout_secs: 600,
            replication: None,
            placement: None,
            deadline_secs: None,
            tier: idlegrid_domain::Tier::Standard,
            max_price: None,
        }
    }
}

/// A job's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Job {
    /// Job id.
    pub id: JobId,
    /// What the customer called it.
    #[serde(default)]
    pub name: Option<String>,
    /// App the job runs.
    pub app: String,
    /// Version of the app bundle the job was created with.
    pub app_version: String,
    /// Where the job is in its life.
    pub state: JobState,
    /// Why the job failed, in plain words; set only when `state` is `failed`.
    pub error: Option<String>,
    /// App parameters as given.
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    /// How the job is run, with the defaults it got filled in.
    pub preferences: Preferences,
    /// How its results are verified, and why.
    pub verification: Verification,
    /// Where the input comes from, when it is not uploaded (secret keys left out).
    #[serde(default)]
    pub input_from: Option<InputSource>,
    /// The customer's bucket the output is also written to (secret keys left out).
    #[serde(default)]
    pub output_to: Option<BucketObject>,
    /// The webhook state changes are POSTed to; its secret only in the creating answer.
    #[serde(default)]
    pub webhook: Option<WebhookView>,
    /// Chunk counts.
    pub chunks: ChunkCounts,
    /// Its price and what it has cost so far, once its quote is held (when it is split).
    #[serde(default)]
    pub cost: Option<JobCost>,
    /// What the partitioner found out about the input (for a video: container, codec,
    /// resolution, frame rate, counted frames, audio streams) and notes on how it is handled.
    #[schema(value_type = Option<Object>)]
    pub facts: Option<serde_json::Value>,
    /// The uploaded input, once there is one.
    pub input: Option<BlobInfo>,
    /// The assembled output, once the job completed.
    pub output: Option<BlobInfo>,
    /// When the job was created.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When `run` was called.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub submitted_at: Option<Timestamp>,
    /// When the first chunk was created.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<Timestamp>,
    /// When the job reached a final state.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
}

/// How a job's results are verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Verification {
    /// `verified` (results are compared across devices of different owners), `private_fleet`
    /// (not replicated: only the customer's own devices run it) or `unverified` (not
    /// replicated, as the customer chose, on devices of anyone).
    pub basis: VerificationBasis,
    /// In words.
    pub summary: String,
}

/// Why a job's results are, or are not, compared across devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VerificationBasis {
    /// Replicated: devices of different owners must return the same bytes.
    Verified,
    /// Not replicated, and only the customer's own devices may run it.
    PrivateFleet,
    /// Not replicated, on the open grid: the customer's choice.
    Unverified,
}

/// A job's price and charges, in micro-credits (1 credit = 1,000,000).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobCost {
    /// The tier it is priced at.
    pub tier: idlegrid_domain::Tier,
    /// The quote: the most it will be charged, held from the balance while it runs.
    #[schema(value_type = i64)]
    pub quote: idlegrid_domain::Credits,
    /// Charged so far for validated results; what is left of the quote goes back to the
    /// balance when the job ends.
    #[schema(value_type = i64)]
    pub charged: idlegrid_domain::Credits,
    /// Work quoted, in reference core-seconds (every replica counted).
    pub work_core_seconds: f64,
    /// Price per reference core-hour of validated work.
    #[schema(value_type = i64)]
    pub price_per_core_hour: idlegrid_domain::Credits,
}

/// `POST /v1/jobs/estimate`: what a job would cost and how long it would take, before it runs.
/// Describe the job as for `POST /v1/jobs` (`app`, `params`, `chunk_lines`, `chunk_seconds`,
/// `chunk_items`, `preferences`) and its input by one of: `job` (a created job whose input is
/// uploaded — the exact figure `run` will hold), `input_bytes` (python-map), or `video` (video
/// apps).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EstimateRequest {
    /// App, as for a new job (ignored with `job`).
    #[serde(default)]
    pub app: Option<String>,
    /// App parameters, as for a new job (ignored with `job`).
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    /// Lines per chunk, as for a new job (ignored with `job`).
    #[serde(default)]
    pub chunk_lines: Option<u64>,
    /// Seconds per chunk, as for a new job (ignored with `job`).
    #[serde(default)]
    pub chunk_seconds: Option<f64>,
    /// Items per chunk, as for a new job (ignored with `job`).
    #[serde(default)]
    pub chunk_items: Option<u64>,
    /// How the job would run; its `tier` and `max_price` are what is priced (ignored with
    /// `job`).
    #[serde(default)]
    pub preferences: Preferences,
    /// A job of yours with its input uploaded: priced from the input itself.
    #[serde(default)]
    pub job: Option<JobId>,
    /// Size of a python-map input, in bytes.
    #[serde(default)]
    pub input_bytes: Option<u64>,
    /// Lines of that input, if known (with `input_bytes`): chunks of `chunk_lines` are then
    /// counted exactly rather than bounded.
    #[serde(default)]
    pub input_lines: Option<u64>,
    /// A video input, described.
    #[serde(default)]
    pub video: Option<VideoDescription>,
}

impl EstimateRequest {
    /// The estimate of a created job whose input is uploaded.
    pub fn for_job(job: JobId) -> Self {
        EstimateRequest {
            app: None,
            params: empty_object(),
            chunk_lines: None,
            chunk_seconds: None,
            chunk_items: None,
            preferences: Preferences::default(),
            job: Some(job),
            input_bytes: None,
            input_lines: None,
            video: None,
        }
    }
}

/// A video, as far as its price depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VideoDescription {
    /// Duration in seconds.
    pub duration_secs: f64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: f64,
    /// Whether it has an audio track. Default true.
    #[serde(default = "yes")]
    pub audio: bool,
}

fn yes() -> bool {
    true
}

/// The answer to `POST /v1/jobs/estimate`. Amounts in micro-credits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Estimate {
    /// The tier asked for, priced.
    pub quote: TierEstimate,
    /// Every tier, cheapest first, so the customer can choose.
    pub tiers: Vec<TierEstimate>,
    /// The customer's balance now.
    #[schema(value_type = i64)]
    pub balance: idlegrid_domain::Credits,
    /// Whether the balance covers the quote asked for (and its `max_price` does).
    pub affordable: bool,
    /// Why not, in words, when it is not affordable, or why it would miss its deadline.
    pub problem: Option<String>,
    /// With a `deadline_secs`: whether the tier asked for is expected to finish before it
    /// (`null` without a deadline, or with no device online).
    #[serde(default)]
    pub meets_deadline: Option<bool>,
    /// Devices online.
    pub devices_online: u64,
    /// Their task slots.
    pub slots: u64,
    /// Whether the figure comes from the job's own input (`job`) rather than a description;
    /// only then is it exactly what `run` will hold.
    pub exact: bool,
}

/// One tier's price and time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TierEstimate {
    /// The tier.
    pub tier: idlegrid_domain::Tier,
    /// The quote: the most the job will be charged.
    #[schema(value_type = i64)]
    pub price: idlegrid_domain::Credits,
    /// The quote in credits, as text (e.g. `0.004210`).
    pub price_credits: String,
    /// Expected seconds from `run` to done with the grid as it is now (`null` when no device
    /// is online).
    pub eta_secs: Option<f64>,
    /// Chunks it would be cut into (at most).
    pub chunks: u64,
    /// Work in reference core-seconds (every replica counted).
    pub work_core_seconds: f64,
}

/// `GET /v1/balance`: the money side of whoever asks. Amounts in micro-credits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Balance {
    /// `customer`, `owner` or `operator`.
    pub kind: String,
    /// A customer's spendable balance; an owner's earnings; the platform's fees.
    #[schema(value_type = i64)]
    pub balance: idlegrid_domain::Credits,
    /// A customer's credit held for running jobs (0 for others).
    #[schema(value_type = i64)]
    pub held: idlegrid_domain::Credits,
    /// The newest entries of the account, newest first.
    pub entries: Vec<BalanceEntry>,
    /// For operators: whether the books balance (every transaction sums to zero).
    #[serde(default)]
    pub books_balance: Option<bool>,
    /// How this grid shows credits to people.
    #[serde(default)]
    pub display: CreditDisplay,
}

/// How a grid shows credits to people: amounts in the APIs are micro-credits (millionths of a
/// credit); people read credits, and what a credit is worth in the operator's currency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreditDisplay {
    /// The currency's code or symbol, e.g. `USD` or `$` (empty: credits only).
    pub currency: String,
    /// What one credit is worth in that currency.
    pub per_credit: f64,
}

impl Default for CreditDisplay {
    fn default() -> Self {
        CreditDisplay {
            currency: "USD".into(),
            per_credit: 1.0,
        }
    }
}

impl CreditDisplay {
    /// A human amount: `12.5 credits ($12.50)`-like text for micro-credits.
    pub fn show(&self, micros: i64) -> String {
        let credits = micros as f64 / 1e6;
        let plain = if micros % 1_000_000 == 0 {
            format!("{}", micros / 1_000_000)
        } else if micros.abs() >= 10_000 {
            format!("{credits:.2}")
        } else {
            format!("{credits:.6}")
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_string()
        };
        let noun = if micros == 1_000_000 {
            "credit"
        } else {
            "credits"
        };
        if self.currency.is_empty() {
            return format!("{plain} {noun}");
        }
        let money = credits * self.per_credit;
        let money = if money != 0.0 && money.abs() < 0.01 {
            format!("{money:.4}")
        } else {
            format!("{money:.2}")
        };
        format!("{plain} {noun} ({money} {})", self.currency)
    }
}

/// One entry of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BalanceEntry {
    /// What it was: `hold:<job>`, `release:<job>`, `pay:<id>`, `deposit:<customer>:<reference>`,
    /// `opening:<customer>`.
    pub txn: String,
    /// Signed amount.
    #[schema(value_type = i64)]
    pub amount: idlegrid_domain::Credits,
    /// When.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// The job it was for (holds and releases), if any.
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub job: Option<idlegrid_domain::JobId>,
}

/// `POST /v1/customers/{id}/deposits` (operators): credit paid in by a customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Deposit {
    /// Micro-credits, more than zero.
    #[schema(value_type = i64)]
    pub amount: idlegrid_domain::Credits,
    /// Your reference for the payment; a deposit with a reference already used is not
    /// posted again.
    pub reference: String,
}

/// The answer to a deposit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DepositReceipt {
    /// Whether it was posted now (`false`: the reference was used before).
    pub posted: bool,
    /// The customer's balance after it.
    #[schema(value_type = i64)]
    pub balance: idlegrid_domain::Credits,
}

/// Chunk counts of a job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChunkCounts {
    /// Chunks the input was split into; `null` until the partitioner has finished. With the
    /// app's own steps, their tasks count too (see `steps`).
    pub total: Option<u64>,
    /// Of `total`, the tasks that run a step of the app's own (its partition or reduce script)
    /// rather than a chunk of the input.
    #[serde(default)]
    pub steps: u64,
    /// Chunks created so far.
    pub created: u64,
    /// Chunks with a validated result.
    pub done: u64,
    /// Chunks waiting for a device.
    pub queued: u64,
    /// Chunks leased to a worker right now.
    pub running: u64,
    /// Sum of the running chunks' progress fractions, from workers' heartbeats:
    /// `(done + running_progress) / total` is the job's progress.
    pub running_progress: f64,
    /// Chunks that exhausted their attempts (any makes the job fail).
    pub failed: u64,
    /// Attempts that failed and were retried (script errors, lost workers, rejected results).
    pub failed_attempts: u64,
    /// Results devices sent in (with replication, several per chunk).
    #[serde(default)]
    pub results: u64,
    /// Results rejected by the app's validator or for disagreeing with the other replicas.
    #[serde(default)]
    pub rejected: u64,
    /// Chunks with a result in that wait for another party to confirm or redo it (see
    /// [`ChunkState::Checking`]); the job's deadline still applies to them.
    #[serde(default)]
    pub checking: u64,
}

/// Size and SHA-256 of a stored input or output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BlobInfo {
    /// Size in bytes.
    pub size: u64,
    /// Lower-case hex SHA-256 of the content.
    pub sha256: String,
}

/// `GET /v1/jobs`: a page of jobs, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobList {
    /// Jobs on this page.
    pub jobs: Vec<Job>,
    /// Pass as `before` to get the next page; absent on the last page.
    pub next_before: Option<JobId>,
}

/// An app the coordinator offers: built in, or a version an account published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AppInfo {
    /// Manifest of the app's bundle.
    pub manifest: idlegrid_domain::AppManifest,
    /// SHA-256 of the bundle (for apps without a customer script).
    pub bundle_sha256: Option<String>,
    /// The account that published it; absent for an app built into the grid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publisher: Option<TenantId>,
    /// Whether every account may run it (built-in apps, and published ones an operator made
    /// public); otherwise only its publisher's.
    #[serde(default = "yes")]
    pub public: bool,
    /// When this version was published; absent for a built-in app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub published_at: Option<Timestamp>,
}

/// An operator's change to a published app (`POST /v1/admin/apps/{name}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeApp {
    /// Whether every account may see and run it.
    pub public: bool,
}

/// Where one chunk of a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChunkState {
    /// Waiting for a device.
    Queued,
    /// A device is working on it.
    Running,
    /// Its result is being checked.
    Validating,
    /// A result is in, but it counts only once another party confirms it (a replica, a spot
    /// check, a suspect result) or redoes it (the result was rejected): it waits for a device
    /// of another owner — in a private fleet, another device. `waiting_for` says which.
    Checking,
    /// Its result was accepted.
    Done,
    /// It used up its attempts.
    Failed,
    /// Its job ended (cancelled, or failed by another chunk) before it was done.
    Stopped,
}

/// One chunk of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChunkView {
    /// Position in the input (a step's task is numbered apart, from 2^40).
    pub index: u64,
    /// For a task that runs a step of the app's own instead of a chunk: `partition` or
    /// `reduce`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// Where it is.
    pub state: ChunkState,
    /// Failed attempts so far (it was retried when this is above zero and it is not failed).
    pub failures: u32,
    /// Fraction done on the device, from its heartbeats, while running.
    pub progress: Option<f64>,
    /// While `checking`: what it waits for, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
    /// Why its last failed attempt failed (a script's error, a lost device, a rejected
    /// result), shown while it is retried and once it failed; absent when none failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
}

/// `GET /v1/jobs/{id}/tasks`: a page of the job's chunks, in input order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobChunks {
    /// The chunks on this page.
    pub tasks: Vec<ChunkView>,
    /// Pass as `from` to get the next page; absent on the last page.
    pub next_from: Option<u64>,
}

/// One part of an input uploaded in parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UploadPart {
    /// Part number, from 0.
    pub part: u32,
    /// Bytes.
    pub size: u64,
    /// Hex SHA-256, as verified.
    pub sha256: String,
}

/// `GET /v1/jobs/{id}/input/parts`: the parts received so far, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UploadParts {
    /// The parts.
    pub parts: Vec<UploadPart>,
}

/// `POST /v1/jobs/{id}/input/complete`: join parts `0..parts` into the job's input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteUpload {
    /// How many parts the input has.
    pub parts: u32,
    /// Hex SHA-256 of the whole input, when the client knows it; checked if given.
    #[serde(default)]
    pub sha256: Option<String>,
}

/// `POST /v1/jobs/{id}/links`: links to the job's output that need no `Authorization`
/// header, for a browser's download link or video element. They expire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OutputLinks {
    /// The output file.
    pub download: String,
    /// The HLS master playlist, for a streaming output.
    pub hls: Option<String>,
    /// The DASH manifest, for a streaming output packaged as CMAF (every one made since DASH
    /// was added; older ones have HLS alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dash: Option<String>,
    /// The video alone, for an output archive of a video and its stills.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<String>,
    /// The poster (JPEG), when one was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poster: Option<String>,
    /// The thumbnails' WebVTT index (cues pointing into sprite sheets beside it), when
    /// thumbnails were asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnails: Option<String>,
    /// When the links stop working.
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
}

#[cfg(test)]
mod display_tests {
    use super::CreditDisplay;

    #[test]
    fn amounts_read_as_credits_and_money() {
        let usd = CreditDisplay::default();
        assert_eq!(usd.show(100_000_000), "100 credits (100.00 USD)");
        assert_eq!(usd.show(1_000_000), "1 credit (1.00 USD)");
        assert_eq!(usd.show(420_000), "0.42 credits (0.42 USD)");
        assert_eq!(usd.show(1_500), "0.0015 credits (0.0015 USD)");
        assert_eq!(usd.show(-2_500_000), "-2.50 credits (-2.50 USD)");
        let bare = CreditDisplay {
            currency: String::new(),
            per_credit: 1.0,
        };
        assert_eq!(bare.show(3_000_000), "3 credits");
        let eur = CreditDisplay {
            currency: "EUR".into(),
            per_credit: 0.05,
        };
        assert_eq!(eur.show(10_000_000), "10 credits (0.50 EUR)");
    }
}

/// How much a log line says, from the least: a task script sets it by starting a line with
/// `DEBUG`, `INFO`, `WARNING` (or `WARN`), `ERROR` or `CRITICAL` followed by `:` or a space (as
/// Python's `logging` writes by default); other lines are `info`, and the lines of a traceback
/// are `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    /// Details.
    Debug,
    /// What happened.
    Info,
    /// Something to look at.
    Warning,
    /// Something failed.
    Error,
}

impl LogLevel {
    /// The level `name` names (`debug`, `info`, `warning`, `error`).
    pub fn parse(name: &str) -> Option<LogLevel> {
        match name {
            "debug" => Some(LogLevel::Debug),
            "info" => Some(LogLevel::Info),
            "warning" => Some(LogLevel::Warning),
            "error" => Some(LogLevel::Error),
            _ => None,
        }
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warning => "warning",
            LogLevel::Error => "error",
        }
    }
}

/// One line of a log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LogLine {
    /// How much it says.
    pub level: LogLevel,
    /// The line, as written (text, never markup).
    pub text: String,
}

/// One log of a job: a task's (what its script wrote to stderr on one device) or a step's
/// (what the grid's partitioner or assembler said of the job).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LogEntry {
    /// Its id, for paging (`after`).
    pub id: String,
    /// When it was written.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// `partition`, `task` or `assemble`.
    pub step: String,
    /// The chunk (from 0), for a task's log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk: Option<u64>,
    /// The device that ran it, for a task's log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i64>)]
    pub device: Option<idlegrid_domain::WorkerId>,
    /// How the task ended: `completed` or `failed` (a task's log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// Its lines at or above the level asked for.
    pub lines: Vec<LogLine>,
}

/// `GET /v1/jobs/{id}/logs`: a page of the job's logs, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobLogs {
    /// The logs with lines at the level asked for.
    pub logs: Vec<LogEntry>,
    /// Pass as `after` for the next page; absent on the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}
