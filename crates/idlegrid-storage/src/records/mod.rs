//! The durable records: accounts, jobs, tasks and results, and the jobs' state changes with
//! their webhook deliveries.
//!
//! Every method is one atomic step of a coordinator stage; a crash between two calls leaves the
//! records consistent and the step can be redone. Batch methods exist because the hot path
//! (reports, validation) moves thousands of tasks a second: backends do each batch in one
//! transaction.
//!
//! One store serves both engines ([`SqliteStore`], [`PostgresStore`]): `store.rs` writes every
//! method whose statements are the same on both once, over the query layer in `sql.rs`;
//! `sqlite.rs` and `postgres.rs` hold only what their engines do differently. Rows are read
//! into records by `rows.rs`, and the payment rules are worked out by `payments.rs`, for both.

mod accounts;
mod payments;
mod postgres;
mod rows;
mod sql;
mod sqlite;
mod store;
#[cfg(test)]
mod tests;

pub use accounts::{
    AccountFilter, AccountKind, AccountRecord, Accounts, Benched, Credential, EarningRecord,
    NewSecret, PayoutAsked, PayoutRecord, PayoutState, Quotas, Revoked, SecretRecord, Settled,
    Standing, Usage,
};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

use crate::Result;
use async_trait::async_trait;
use idlegrid_domain::{
    Account, AttemptOutcome, Capabilities, Credits, JobId, JobState, Placement, Quote, Replication,
    ResultId, Runtime, TaskId, TaskState, TenantId, Tier, WorkerId,
};

/// What a secret authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Principal {
    /// A customer's API key.
    Tenant(TenantId),
    /// A device owner's enrollment token (registers workers).
    Owner(i64),
    /// A registered worker's token.
    Worker(WorkerId),
    /// An operator's key (watches the whole grid).
    Operator(i64),
}

/// A device as its owner sees it in the records.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceRecord {
    /// Whether its owner paused it (it gets no new work).
    pub paused: bool,
    /// Id.
    pub id: WorkerId,
    /// Name it registered with.
    pub name: String,
    /// What it offers.
    pub capabilities: Capabilities,
    /// When it registered (Unix ms).
    pub registered_at: i64,
    /// When a coordinator last heard from it, as far as the records know (Unix ms).
    pub last_seen_at: Option<i64>,
    /// Its record of results.
    pub reputation: Reputation,
}

/// A registered device as the coordinator matches and judges it.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerRecord {
    /// What it offers.
    pub capabilities: Capabilities,
    /// Its owner.
    pub owner: i64,
    /// The customer account its owner belongs to, if any (its private fleet).
    pub owner_tenant: Option<TenantId>,
    /// When it registered (Unix ms).
    pub registered_at_ms: i64,
    /// Its run of valid results when read.
    pub streak: u64,
}

/// One version of an app an account published.
#[derive(Debug, Clone, PartialEq)]
pub struct AppVersion {
    /// The app's name (its first publisher's for ever).
    pub name: String,
    /// The version (`MAJOR.MINOR.PATCH`).
    pub version: String,
    /// The account that published the app.
    pub tenant: TenantId,
    /// Whether every account may see and run it (an operator's choice).
    pub public: bool,
    /// Its manifest, as JSON.
    pub manifest: String,
    /// SHA-256 of its bundle (the blob store holds it as `bundles/<sha>`).
    pub bundle_sha256: String,
    /// The bundle's size in bytes.
    pub bundle_bytes: u64,
    /// When this version was published (Unix ms).
    pub created_ms: i64,
}

/// What publishing an app version came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Published {
    /// The version is new and kept.
    Created,
    /// The version was there already, as it is here (publishing is repeatable).
    Same,
    /// The version was there already with another bundle: versions never change.
    Exists,
    /// Another account publishes apps by that name.
    NameTaken,
}

/// A new job, as the Jobs API creates it.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Owner.
    pub tenant: TenantId,
    /// What people call it.
    pub name: Option<String>,
    /// App name.
    pub app: String,
    /// App bundle version.
    pub app_version: String,
    /// Bundle the workers run.
    pub bundle_sha256: String,
    /// App parameters (JSON object).
    pub params: serde_json::Value,
    /// Partitioner options (JSON object), e.g. `{"lines": 1000}`.
    pub partition_options: serde_json::Value,
    /// Scheduling priority.
    pub priority: i32,
    /// Failed attempts a chunk may have.
    pub max_attempts: u32,
    /// Wall-clock limit per chunk.
    pub task_timeout_secs: u64,
    /// How chunks are replicated across devices.
    pub replication: Replication,
    /// Which devices may run its chunks.
    pub placement: Placement,
    /// Seconds after `run` by which the job must be finished, or it expires.
    pub deadline_secs: Option<u64>,
    /// Speed/price tier.
    pub tier: Tier,
    /// The most the customer will pay; a higher quote fails the job before it runs.
    pub max_price: Option<Credits>,
    /// Where the input comes from and the output goes outside this grid (JSON owned by the
    /// coordinator; it may hold a customer's credentials and is never shown back).
    pub external: Option<serde_json::Value>,
    /// Where the job's state changes are POSTed (JSON owned by the coordinator: the URL and
    /// the sealed signing secret). Every state change of a job with one is a
    /// [`WebhookEvent`] to deliver.
    pub webhook: Option<serde_json::Value>,
}

/// A stored blob referenced by a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    /// Blob store key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Hex SHA-256.
    pub sha256: String,
}

/// A job as recorded.
#[derive(Debug, Clone)]
pub struct JobRecord {
    /// Id.
    pub id: JobId,
    /// The job as created.
    pub spec: NewJob,
    /// Current state.
    pub state: JobState,
    /// Failure reason.
    pub error: Option<String>,
    /// Uploaded input.
    pub input: Option<StoredBlob>,
    /// Assembled output.
    pub output: Option<StoredBlob>,
    /// What the partitioner found out about the input (JSON object).
    pub facts: Option<serde_json::Value>,
    /// Chunk count once partitioning finished.
    pub chunks_total: Option<u64>,
    /// Chunks created so far.
    pub chunks_created: u64,
    /// Chunks with an accepted result.
    pub chunks_done: u64,
    /// Chunks that exhausted their attempts.
    pub chunks_failed: u64,
    /// Failed attempts over all chunks.
    pub failed_attempts: u64,
    /// Successful reports recorded (every replica counts).
    pub results_received: u64,
    /// Results rejected by the app's validator or for disagreeing with a quorum.
    pub results_rejected: u64,
    /// Its quote, once held.
    pub billing: Option<Billing>,
    /// What its results have been charged so far.
    pub charged: Credits,
    /// Unix ms timestamps.
    pub created_at: i64,
    /// When `run` was called.
    pub submitted_at: Option<i64>,
    /// When partitioning started.
    pub started_at: Option<i64>,
    /// When the job reached a final state.
    pub finished_at: Option<i64>,
}

/// A job's quote as held from its customer's balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Billing {
    /// The quote: price, work and rates.
    pub quote: Quote,
    /// Work of the largest chunk (reference core-ms).
    pub largest_chunk_ms: i64,
}

/// What holding a job's quote did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// The quote is now held from the customer's balance.
    Held,
    /// It was held before (a repeated partition).
    AlreadyHeld,
    /// The customer's balance is less than the quote; nothing was held.
    Short {
        /// The balance.
        available: Credits,
    },
}

/// One row of the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// The transaction's idempotency key, e.g. `result:12` or `hold:3`.
    pub txn: String,
    /// The account.
    pub account: String,
    /// Signed amount.
    pub amount: Credits,
    /// When (Unix ms).
    pub at: i64,
}

/// The ledger's totals, for checking that the books balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LedgerAudit {
    /// Rows in the journal.
    pub entries: u64,
    /// Sum of every row (zero when the books balance).
    pub total: Credits,
    /// Transactions whose rows do not sum to zero (none when the books balance).
    pub unbalanced: u64,
    /// Jobs charged more than their quote (none, ever).
    pub over_quote: u64,
}

/// A chunk the partitioner created.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    /// Position in the job's input.
    pub index: u64,
    /// Where the chunk's bytes are: `None` for a range of the job's input, or a blob of its own.
    pub input_key: Option<String>,
    /// Offset of the chunk in that blob.
    pub offset: u64,
    /// Length of the chunk.
    pub len: u64,
    /// Parameters of this chunk for the task script and the app's validator (JSON object),
    /// e.g. a video chunk's kind and frame count.
    pub meta: Option<serde_json::Value>,
    /// Its work in reference core-milliseconds, as the app's cost model counts it (what its
    /// validated results are charged and paid for).
    pub work_ms: i64,
}

/// A task as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRecord {
    /// Id.
    pub id: TaskId,
    /// Its job.
    pub job: JobId,
    /// The chunk.
    pub chunk: NewTask,
    /// Current state.
    pub state: TaskState,
    /// Failed attempts so far.
    pub failures: u32,
    /// Results it was sent out for so far (1 unless replicated, checked or disputed).
    pub replicas: u32,
}

/// Where an output is: small ones inline in the record, others in the blob store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputRef {
    /// The bytes themselves.
    Inline(Vec<u8>),
    /// A blob store key.
    Blob(String),
}

/// A successful report from a worker.
#[derive(Debug, Clone)]
pub struct NewResult {
    /// The task.
    pub task: TaskId,
    /// Its job.
    pub job: JobId,
    /// The reporting worker.
    pub worker: WorkerId,
    /// Hex SHA-256 of the output.
    pub sha256: String,
    /// Output size.
    pub size: u64,
    /// The output.
    pub output: OutputRef,
}

/// A failed attempt: a script error or an expired lease, reported by a worker or the reaper.
#[derive(Debug, Clone)]
pub struct NewFailure {
    /// The task.
    pub task: TaskId,
    /// Its job.
    pub job: JobId,
    /// The worker that held the lease.
    pub worker: WorkerId,
    /// How the attempt ended; one that [`AttemptOutcome::counts_as_failure`] is charged to the task.
    pub outcome: AttemptOutcome,
    /// Why, in words.
    pub reason: String,
}

/// A result waiting for the validator.
#[derive(Debug, Clone)]
pub struct ResultRecord {
    /// Id.
    pub id: ResultId,
    /// The task.
    pub task: TaskRecord,
    /// Who sent it.
    pub worker: WorkerId,
    /// Hex SHA-256.
    pub sha256: String,
    /// Size.
    pub size: u64,
    /// The output.
    pub output: OutputRef,
}

/// A validator's judgement, to be recorded.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Accept the result as the task's output (or, when the task already has one, as agreeing
    /// with it); of several listed for one open task, the first listed becomes its output.
    /// The device's run of valid results grows.
    Valid(ResultId),
    /// Reject it; the task is charged a failed attempt and the device's run of valid results
    /// ends.
    Invalid(ResultId, String),
    /// It passed the app's validator and waits for replicas to agree with it.
    Passed(ResultId),
    /// It passed the app's validator but looks worse than the job's settings give, for this
    /// reason: it waits, like a passed result, until another party returns the same bytes.
    Suspect(ResultId, String),
    /// The app's validator rejected it, for this reason, but its device is not blamed yet: the
    /// task is charged a failed attempt and goes to an independent party. If a result with
    /// other bytes is accepted, this one becomes invalid; one with the same bytes makes it
    /// void. If none ever is, it stays disputed: nobody is blamed.
    Disputed(ResultId, String),
    /// Neither right nor wrong, for this reason (outweighed, or it came from another kind of
    /// runtime than the accepted output): not paid, and its device's record unchanged.
    Void(ResultId, String),
    /// The task needs this many more results (its replicas disagree or need checking); it
    /// waits for work again.
    MoreReplicas(TaskId, u32),
    /// Fail the task (its replicas never agreed), for this reason.
    FailTask(TaskId, String),
}

/// A task whose results are compared across devices, as the quorum rule needs it.
#[derive(Debug, Clone)]
pub struct ReplicaState {
    /// The task.
    pub task: TaskId,
    /// Its job.
    pub job: JobId,
    /// Its state.
    pub state: TaskState,
    /// Results it was sent out for so far.
    pub wanted: u32,
    /// Which devices may run its job (who counts as an independent party).
    pub placement: Placement,
    /// The accepted result, once there is one.
    pub accepted: Option<ReplicaResult>,
    /// Its results not yet decided: reported and waiting for the app's validator, passed and
    /// waiting for agreement, or disputed.
    pub results: Vec<ReplicaResult>,
}

/// Where an undecided result of a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaStage {
    /// Waiting for the app's validator.
    Pending,
    /// Passed the app's validator (suspect or not); waits for agreement.
    Passed,
    /// Rejected by the app's validator; waits for an independent party's result.
    Disputed,
    /// Decided: the chunk's output (only as [`ReplicaState::accepted`]).
    Accepted,
}

/// One result of a task, as the quorum rule needs it.
#[derive(Debug, Clone)]
pub struct ReplicaResult {
    /// Id.
    pub id: ResultId,
    /// Who sent it.
    pub worker: WorkerId,
    /// The device's owner.
    pub owner: i64,
    /// Hex SHA-256 of the output.
    pub sha256: String,
    /// Where it stands.
    pub stage: ReplicaStage,
    /// Whether the app's validator found it worse than the settings give.
    pub suspect: bool,
    /// Why the app's validator rejected it or found it suspect.
    pub reason: Option<String>,
    /// The device's run of consecutive valid results.
    pub streak: u64,
    /// When the device registered (Unix ms): trust is earned over time as well as results.
    pub registered_at_ms: i64,
    /// The kind of runtime the device ran it in (results are compared by hash only within
    /// one kind).
    pub runtime: Runtime,
    /// The FFmpeg version the device reported (encoders of different versions give
    /// different bytes for the same work).
    pub ffmpeg: Option<String>,
}

/// The quorum rule as [`Store::settle_replicas`] applies it: verdicts for one task's state.
pub type Decide = dyn Fn(&ReplicaState) -> Vec<Verdict> + Send + Sync;

/// More replicas a task needs, to be queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replicate {
    /// The task.
    pub task: TaskId,
    /// Its job.
    pub job: JobId,
    /// How many.
    pub copies: u32,
    /// Devices that already sent a live result for it.
    pub exclude: Vec<WorkerId>,
}

/// What distrusting an owner did.
#[derive(Debug, Clone, Default)]
pub struct Distrusted {
    /// Chunks reopened because their output was the owner's unverified result: each is to be
    /// queued again, kept from the owner's devices.
    pub reopened: Vec<Replicate>,
    /// Held earnings forfeited.
    pub forfeited: Credits,
}

/// A device's record: its results judged valid and invalid, its attempts that went silent,
/// and whether it is quarantined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reputation {
    /// Results accepted.
    pub valid: u64,
    /// Results rejected by a validator (or discarded at quarantine).
    pub invalid: u64,
    /// Leases that expired without a report.
    pub timed_out: u64,
    /// Consecutive valid results, up to now (adaptive replication's trust).
    pub streak: u64,
    /// Quarantined since (Unix ms).
    pub quarantined_at_ms: Option<i64>,
}

/// What recording a failed attempt did to its task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureCharged {
    /// The task.
    pub task: TaskId,
    /// Its job.
    pub job: JobId,
    /// The worker whose attempt failed.
    pub worker: WorkerId,
    /// How the attempt ended.
    pub outcome: AttemptOutcome,
    /// Failed attempts now on the task.
    pub failures: u32,
    /// The job's attempt budget.
    pub max_attempts: u32,
    /// Whether the task still waits for work (false if it was done, failed, or its job ended).
    pub still_pending: bool,
    /// Devices that must not take the retry: the parties whose result for the task the app's
    /// validator rejected, whose retry must come from an independent party. Empty for an
    /// ordinary retry.
    pub independent_of: Vec<WorkerId>,
}

/// What recording verdicts did.
#[derive(Debug, Clone, Default)]
pub struct VerdictsApplied {
    /// Jobs whose last chunk was accepted: they are now `assembling`.
    pub ready_to_assemble: Vec<JobId>,
    /// Failures charged by rejected results.
    pub charged: Vec<FailureCharged>,
    /// Tasks that need more replicas (their jobs still dispatch).
    pub replicate: Vec<Replicate>,
    /// Tasks failed by a [`Verdict::FailTask`], with their jobs and reasons.
    pub failed: Vec<(JobId, TaskId, String)>,
}

impl VerdictsApplied {
    /// Adds what another application of verdicts did.
    pub fn merge(&mut self, other: VerdictsApplied) {
        self.ready_to_assemble.extend(other.ready_to_assemble);
        self.charged.extend(other.charged);
        self.replicate.extend(other.replicate);
        self.failed.extend(other.failed);
    }
}

/// One failed attempt, for the job's error message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    /// Who ran it.
    pub worker: WorkerId,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// Why.
    pub reason: String,
}

/// A state change of a job, recorded by the records themselves (a trigger on `jobs`, in the
/// same transaction as the change), and its delivery to the job's webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    /// Id, increasing with every change of every job; the webhook's delivery id.
    pub id: i64,
    /// The job.
    pub job: JobId,
    /// The state it entered.
    pub state: JobState,
    /// The job's failure reason at that moment.
    pub error: Option<String>,
    /// When (Unix ms).
    pub at_ms: i64,
    /// Delivery attempts made.
    pub attempts: u32,
    /// When the next attempt is due (Unix ms); `None` once delivered or given up.
    pub next_attempt_at_ms: Option<i64>,
    /// When the receiver accepted it (Unix ms).
    pub delivered_at_ms: Option<i64>,
    /// Whether the delivery was given up after too many failed attempts.
    pub gave_up: bool,
}

/// An event claimed for delivery, with the webhook of its job.
#[derive(Debug, Clone, PartialEq)]
pub struct DueWebhook {
    /// The event.
    pub event: WebhookEvent,
    /// The job's webhook as [`NewJob::webhook`] recorded it.
    pub webhook: serde_json::Value,
}

/// One attempt at delivering an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookAttempt {
    /// Its number, from 1.
    pub attempt: u32,
    /// When it started (Unix ms).
    pub at_ms: i64,
    /// The receiver's HTTP status, if it answered.
    pub status: Option<u16>,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// How long it took.
    pub duration_ms: u64,
}

/// What follows an attempt at delivering an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookNext {
    /// The receiver accepted it: the job's next event may go.
    Delivered,
    /// Try again at this time (Unix ms).
    RetryAt(i64),
    /// Too many attempts failed: stop trying, and let the job's next event go.
    GiveUp,
}

/// An event with its delivery attempts, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookHistory {
    /// The event.
    pub event: WebhookEvent,
    /// Its attempts.
    pub attempts: Vec<WebhookAttempt>,
}

/// The records store.
/// A device's results that await a check, for its probation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InDoubt {
    /// Its run of consecutive valid results.
    pub streak: u64,
    /// Its results awaiting the validator, other parties' agreement or a further result.
    pub count: u64,
    /// When the oldest of them was reported (Unix ms).
    pub oldest_ms: Option<i64>,
}

#[async_trait]
pub trait Store: Accounts + Send + Sync + 'static {
    // --- published apps ---

    /// Publishes a version of an app (its `tenant`, `public` and `created_ms` as given are
    /// used for a name not yet taken; a taken one keeps its own).
    async fn publish_app(&self, app: &AppVersion) -> Result<Published>;
    /// The versions of app `name`, oldest first (none for an unknown name).
    async fn app_versions(&self, name: &str) -> Result<Vec<AppVersion>>;
    /// The latest version of each app `tenant` may run (its own and the public ones), by name;
    /// every app's with `tenant` `None`.
    async fn latest_apps(&self, tenant: Option<TenantId>) -> Result<Vec<AppVersion>>;
    /// Makes app `name` public or private again; `false` for an unknown name.
    async fn set_app_public(&self, name: &str, public: bool) -> Result<bool>;

    // --- accounts ---

    /// Creates the tenant if missing; returns its id.
    async fn ensure_tenant(&self, name: &str) -> Result<TenantId>;
    /// Creates the device owner if missing; returns its id.
    async fn ensure_owner(&self, name: &str) -> Result<i64>;
    /// Registers a worker for an owner, with the hash of its token.
    async fn register_worker(
        &self,
        owner: i64,
        name: &str,
        capabilities: &Capabilities,
        token_hash: [u8; 32],
    ) -> Result<WorkerId>;
    /// Keeps a code that links a device to `owner` until `expires_at_ms` (only its hash is
    /// given); codes already past their expiry are dropped on the way.
    async fn create_link_code(
        &self,
        owner: i64,
        code_hash: [u8; 32],
        expires_at_ms: i64,
    ) -> Result<()>;
    /// Registers a worker for the owner a link code stands for, using the code up in the same
    /// transaction (a code links one device); `None` when the code is unknown, used or
    /// expired at `now_ms`.
    async fn register_linked_worker(
        &self,
        code_hash: [u8; 32],
        now_ms: i64,
        name: &str,
        capabilities: &Capabilities,
        token_hash: [u8; 32],
    ) -> Result<Option<WorkerId>>;
    /// Replaces what a worker offers (its owner changed its allowances, its benchmark moved);
    /// `false` if there is no such worker.
    async fn update_worker_capabilities(
        &self,
        worker: WorkerId,
        capabilities: &Capabilities,
    ) -> Result<bool>;
    /// A worker's capabilities and owner.
    async fn worker(&self, worker: WorkerId) -> Result<Option<WorkerRecord>>;
    /// Makes an owner part of a customer's account (its devices become that customer's own
    /// fleet), or of none.
    async fn set_owner_tenant(&self, owner: i64, tenant: Option<TenantId>) -> Result<()>;
    /// How many device owners belong to `tenant`'s account, and how many do not: when none
    /// but the customer's own exist, every device that may run the customer's jobs is theirs.
    async fn owner_counts(&self, tenant: TenantId) -> Result<(u64, u64)>;
    /// A worker's record of results, if it exists.
    async fn reputation(&self, worker: WorkerId) -> Result<Option<Reputation>>;
    /// A worker's run of valid results and its results that await a check (the validator,
    /// other parties' agreement, or an independent party's result): what its probation needs
    /// to know.
    async fn in_doubt(&self, worker: WorkerId) -> Result<InDoubt>;
    /// Quarantines those of `workers` with at least `max_invalid` invalid results; returns the
    /// ones newly quarantined.
    async fn quarantine_untrusted(
        &self,
        workers: &[WorkerId],
        max_invalid: u64,
    ) -> Result<Vec<WorkerId>>;
    /// The name of the tenant, owner or operator a credential stands for (`None` for workers,
    /// and for accounts that do not exist).
    async fn account_name(&self, principal: Principal) -> Result<Option<String>>;
    /// Creates the operator if missing; returns its id.
    async fn ensure_operator(&self, name: &str) -> Result<i64>;
    /// An owner's devices, oldest first.
    async fn owner_devices(&self, owner: i64) -> Result<Vec<DeviceRecord>>;
    /// Records when devices were last heard from; a time never moves back.
    async fn touch_workers(&self, seen: &[(WorkerId, i64)]) -> Result<()>;
    /// Every quarantined worker.
    async fn quarantined_workers(&self) -> Result<Vec<WorkerId>>;
    /// A worker's results still waiting for a verdict (or for their replicas).
    async fn pending_results_of(&self, worker: WorkerId) -> Result<Vec<ResultId>>;

    // --- jobs ---

    /// Creates a job in state `created`.
    async fn create_job(&self, job: &NewJob) -> Result<JobRecord>;
    /// Deletes a job of `tenant` that never ran — still `created`, or cancelled before it was
    /// submitted — with its state-change events; returns what it was, `None` (nothing deleted)
    /// for a job that ran or is not the tenant's.
    async fn delete_unrun_job(&self, tenant: TenantId, id: JobId) -> Result<Option<JobRecord>>;
    /// One job.
    async fn job(&self, id: JobId) -> Result<Option<JobRecord>>;
    /// A tenant's jobs, newest first, with ids below `before`.
    async fn list_jobs(
        &self,
        tenant: TenantId,
        before: Option<JobId>,
        limit: u32,
    ) -> Result<Vec<JobRecord>>;
    /// Jobs by state, and the tasks of unfinished jobs by state (for metrics).
    async fn counts(&self) -> Result<(Vec<(JobState, u64)>, Vec<(TaskState, u64)>)>;
    /// Unfinished jobs whose deadline passed before `now_ms`.
    async fn jobs_past_deadline(&self, now_ms: i64) -> Result<Vec<JobId>>;
    /// All jobs in the given states, oldest first.
    async fn jobs_in_states(&self, states: &[JobState]) -> Result<Vec<JobRecord>>;
    /// Records the job's input: while the job is `created`, or, for a job without one, while
    /// it is `submitted` or `partitioning` (an input fetched from elsewhere). Returns false
    /// otherwise.
    async fn set_job_input(&self, id: JobId, input: &StoredBlob) -> Result<bool>;
    /// Moves the job to `to` if the state machine allows it from its current state, recording
    /// `error` for `failed`. Returns the new record, or `None` if the transition was refused.
    async fn transition_job(
        &self,
        id: JobId,
        to: JobState,
        error: Option<&str>,
    ) -> Result<Option<JobRecord>>;
    /// Records what the partitioner found out about the job's input.
    async fn set_job_facts(&self, id: JobId, facts: &serde_json::Value) -> Result<()>;
    /// Records the assembled output and completes the job (from `assembling` only).
    async fn complete_job(&self, id: JobId, output: &StoredBlob) -> Result<bool>;

    // --- tasks (partitioner) ---

    /// Inserts chunks, each to be sent out for `replicas` results; chunks whose index already
    /// exists are skipped. Returns the ids of the chunks inserted, in order.
    async fn insert_tasks(
        &self,
        job: JobId,
        tasks: &[NewTask],
        replicas: u32,
    ) -> Result<Vec<TaskId>>;
    /// Records that partitioning finished with `total` chunks: the job becomes `running`, or
    /// `assembling` if every chunk is already done. Returns the new state.
    async fn finish_partition(&self, job: JobId, total: u64) -> Result<Option<JobState>>;
    /// Opens tasks recorded before on a job being partitioned or whose tasks are all done (an
    /// app's own step, or the chunks its partition step cut): the job, while `partitioning`
    /// or `assembling`, becomes `running` with `total` tasks and `replication`. Returns the
    /// job as it now is; `None` when it was in neither state or has `total` tasks done.
    async fn open_step(
        &self,
        job: JobId,
        total: u64,
        replication: &Replication,
    ) -> Result<Option<JobRecord>>;
    /// The tasks with these ids that exist, in id order.
    async fn tasks(&self, ids: &[TaskId]) -> Result<Vec<TaskRecord>>;
    /// A job's tasks with index ≥ `from_index`, in index order, at most `limit`.
    async fn job_tasks(&self, job: JobId, from_index: u64, limit: u32) -> Result<Vec<TaskRecord>>;
    /// Ids of the job's tasks that wait for a worker, in index order.
    async fn pending_tasks(&self, job: JobId) -> Result<Vec<TaskId>>;
    /// How many of the job's tasks wait for work with a result in: one that passed and waits
    /// for others to agree, or one that was rejected and waits for an independent re-run.
    async fn tasks_checking(&self, job: JobId) -> Result<u64>;

    // --- results (Tasks API, validator, assembler) ---

    /// Records successful reports of tasks waiting for work, at most one live result per task
    /// and device; a task moves to `validating` once it has as many live results as it was
    /// sent out for. Returns the new result ids, in order (`None` where the task no longer
    /// waited for a result).
    async fn record_results(&self, results: &[NewResult]) -> Result<Vec<Option<ResultId>>>;
    /// Records failed attempts and charges them to their tasks.
    async fn record_failures(&self, failures: &[NewFailure]) -> Result<Vec<FailureCharged>>;
    /// Results waiting for validation, with their tasks.
    async fn results_for_validation(&self, ids: &[ResultId]) -> Result<Vec<ResultRecord>>;
    /// Ids (and jobs) of every result still waiting for validation, oldest first.
    async fn unvalidated_results(&self) -> Result<Vec<(JobId, ResultId)>>;
    /// Applies verdicts, all in one transaction.
    async fn apply_verdicts(&self, verdicts: &[Verdict]) -> Result<VerdictsApplied>;
    /// The replication state of these tasks (those that exist), in id order.
    async fn replica_states(&self, tasks: &[TaskId]) -> Result<Vec<ReplicaState>>;
    /// Decides replicated tasks: reads their states and applies the verdicts `decide` gives
    /// for each, in one transaction that holds the tasks, so coordinators deciding at once
    /// never decide one task on stale state.
    async fn settle_replicas(&self, tasks: &[TaskId], decide: &Decide) -> Result<VerdictsApplied>;
    /// Marks a task failed (its attempts are spent). Returns false if it was already final.
    async fn fail_task(&self, task: TaskId) -> Result<bool>;
    /// Failed attempts at a task, oldest first.
    async fn attempts(&self, task: TaskId) -> Result<Vec<AttemptRecord>> {
        Ok(self
            .attempts_of(&[task])
            .await?
            .into_iter()
            .map(|(_, attempt)| attempt)
            .collect())
    }
    /// Failed attempts at these tasks, each with its task, oldest first.
    async fn attempts_of(&self, tasks: &[TaskId]) -> Result<Vec<(TaskId, AttemptRecord)>>;
    /// Accepted outputs of a job's chunks with index ≥ `from_index`, in index order.
    async fn accepted_outputs(
        &self,
        job: JobId,
        from_index: u64,
        limit: u32,
    ) -> Result<Vec<(u64, OutputRef)>>;

    // --- webhooks ---

    /// Claims up to `limit` events due for delivery at `now_ms` — of each job with a webhook
    /// only its oldest event neither delivered nor given up, so a job's events go out in
    /// order — for `claim_ms`: until then no other call (no other coordinator) claims them.
    /// Oldest due first.
    async fn claim_webhook_events(
        &self,
        now_ms: i64,
        claim_ms: i64,
        limit: u32,
    ) -> Result<Vec<DueWebhook>>;
    /// Records an attempt at delivering `event` and what follows it, ending the claim.
    /// Returns false (and records nothing) if that attempt was recorded already, or the
    /// event was delivered or given up meanwhile.
    async fn record_webhook_attempt(
        &self,
        event: i64,
        attempt: &WebhookAttempt,
        next: WebhookNext,
    ) -> Result<bool>;
    /// The events of a job with a webhook, oldest first, with their attempts.
    async fn webhook_events(&self, job: JobId) -> Result<Vec<WebhookHistory>>;

    /// Holds `quote` from the job's customer's balance, if the balance covers it, and records
    /// the quote, rates and largest chunk on the job. Idempotent per job.
    async fn hold_quote(&self, job: JobId, quote: &Quote, largest_chunk_ms: i64) -> Result<Hold>;
    /// Posts `amount` from one account to another as transaction `txn`; `false` if `txn` was
    /// posted before (nothing changes).
    async fn transfer(
        &self,
        txn: &str,
        from: Account,
        to: Account,
        amount: Credits,
    ) -> Result<bool>;
    /// The balances of `accounts`, in the same order.
    async fn balances(&self, accounts: &[Account]) -> Result<Vec<Credits>>;
    /// The newest `limit` rows of an account, newest first.
    async fn account_entries(&self, account: Account, limit: u32) -> Result<Vec<LedgerEntry>>;
    /// What each of `workers`' validated results earned their owners, in the same order
    /// (earnings still held included, forfeits taken off).
    async fn earned_by_workers(&self, workers: &[WorkerId]) -> Result<Vec<Credits>>;
    /// What each of `workers`' earnings are still held, in the same order.
    async fn held_by_workers(&self, workers: &[WorkerId]) -> Result<Vec<Credits>>;
    /// Moves held earnings credited at or before `cutoff_ms` to their owners' balances (never
    /// more than is still held: a forfeit may have taken it); returns what moved. Coordinators
    /// doing it at once move each earning once.
    async fn mature_held(&self, cutoff_ms: i64) -> Result<Credits>;
    /// What follows an owner's device being caught forging, in one transaction: every device
    /// of the owner loses its trust; each result of theirs accepted without an independent
    /// party's agreement in a job still dispatching is revoked (its payment given back, its
    /// chunk waiting for work again, kept from the owner's devices); what the owner's devices
    /// still hold is forfeited.
    async fn distrust_owner(&self, owner: i64) -> Result<Distrusted>;
    /// The ledger's totals.
    async fn audit_ledger(&self) -> Result<LedgerAudit>;
}
