//! The queues that carry work between coordinator stages, and the per-job task queues from which
//! workers lease tasks.
//!
//! ```text
//! Jobs API ─[partition]→ Partitioner ─[feed]→ Feeder ─[job task queues]→ Tasks API
//! Tasks API ─[validate]→ Validator ─[assemble]→ Assembler
//! ```
//!
//! Queues carry ids only; the records say what they mean. Delivery is at least once: every
//! consumer is idempotent, and the embedded backend loses its contents on a crash by design —
//! the coordinator rebuilds them from the records at start-up. A lease is a worker's claim on one
//! task until a deadline; expired leases are taken back by the coordinator's reaper.

mod memory;
mod redis;
#[cfg(test)]
mod tests;

pub use self::redis::RedisQueues;
pub use memory::MemoryQueues;

use crate::Result;
use async_trait::async_trait;
use idlegrid_domain::{JobId, LeaseId, TaskId, WorkerId};
use std::future::Future;
use std::time::Duration;
use tokio::sync::Notify;

/// A hand-off queue between two coordinator stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Job ids waiting for the partitioner.
    Partition,
    /// Task ids created by the partitioner, waiting for the feeder (the deck's partitioner queue).
    Feed,
    /// Result ids waiting for the validator.
    Validate,
    /// Job ids waiting for the assembler.
    Assemble,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; 4] = [
        Stage::Partition,
        Stage::Feed,
        Stage::Validate,
        Stage::Assemble,
    ];

    /// Its position in [`Stage::ALL`] (which lists the stages in the order they are
    /// declared), for the backends' per-stage wake-ups.
    fn slot(self) -> usize {
        self as usize
    }

    /// Short name for metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Partition => "partition",
            Stage::Feed => "feed",
            Stage::Validate => "validate",
            Stage::Assemble => "assemble",
        }
    }
}

/// One queued reference: a job, and the id of the thing (job, task or result) to work on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Item {
    /// The job it belongs to.
    pub job: JobId,
    /// The job, task or result id, depending on the stage.
    pub id: i64,
}

/// A worker's claim on one task.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lease {
    /// Lease id.
    pub id: LeaseId,
    /// The task.
    pub task: TaskId,
    /// Its job.
    pub job: JobId,
    /// The holder.
    pub worker: WorkerId,
    /// Unix ms after which the lease may be taken back.
    pub expires_at_ms: i64,
    /// Fraction of the task done, as last reported in a heartbeat.
    pub progress: f32,
}

/// A new lease id: random, of 53 bits so that it is exact in JSON numbers read by JavaScript
/// clients.
fn new_lease_id() -> LeaseId {
    LeaseId(rand::random::<u64>() >> 11)
}

/// A duration in ms, to add to a unix ms time (one too long for that is as good as forever).
fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX / 2)
}

/// [`Queues::pop`]'s waiting, for both backends: looks with `look` until it finds items or
/// `wait` has passed, sleeping in between until `notify` wakes it or `nap` passes (how long it
/// may sleep at most, given the time left). The wake-up is registered before each look, so a
/// push between the look and the sleep still wakes it.
async fn pop_waiting<Found>(
    notify: &Notify,
    wait: Duration,
    nap: impl Fn(Duration) -> Duration,
    mut look: impl FnMut() -> Found,
) -> Result<Vec<Item>>
where
    Found: Future<Output = Result<Option<Vec<Item>>>>,
{
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Some(items) = look().await? {
            return Ok(items);
        }
        let now = tokio::time::Instant::now();
        let until = deadline.min(now + nap(deadline.saturating_duration_since(now)));
        if tokio::time::timeout_at(until, notified).await.is_err() && until >= deadline {
            return Ok(Vec::new());
        }
    }
}

/// Most queued tasks a worker passes over (copies it may not take) in one lease request.
const MAX_SKIPPED: usize = 4096;

/// Which of a job's queued copies a lease may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Copies {
    /// Any the worker may take.
    Any,
    /// Only copies that confirm another worker's: of replicated tasks another worker holds or
    /// held a copy of. What a device on probation, with as many of its own results in doubt
    /// as it may have, can still take, so that devices on probation confirm each other's
    /// results rather than all wait for one another.
    Confirming,
}

/// Queue lengths, for status and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JobDepth {
    /// Tasks waiting for a worker.
    pub queued: u64,
    /// Tasks leased.
    pub leased: u64,
    /// Sum of the leased tasks' progress fractions.
    pub leased_progress: f64,
}

/// The queue backend.
#[async_trait]
pub trait Queues: Send + Sync + 'static {
    /// Appends items to a stage queue.
    async fn push(&self, stage: Stage, items: &[Item]) -> Result<()>;
    /// Takes up to `max` items, waiting up to `wait` for the first.
    async fn pop(&self, stage: Stage, max: usize, wait: Duration) -> Result<Vec<Item>>;
    /// Items waiting in a stage queue.
    async fn stage_len(&self, stage: Stage) -> Result<u64>;

    /// Adds tasks to a job's task queue; `front` puts them before the others (retries).
    async fn enqueue_tasks(&self, job: JobId, tasks: &[TaskId], front: bool) -> Result<()>;
    /// Adds `copies` entries of a replicated task to its job's queue (`front`: before the
    /// others). No worker ever holds two of a task's copies, and no worker in `exclude` (those
    /// that already sent a result for it) gets one; a worker whose attempt fails may take a
    /// copy again (see [`Queues::enqueue_retry`]).
    async fn enqueue_replicas(
        &self,
        job: JobId,
        task: TaskId,
        copies: u32,
        exclude: &[WorkerId],
        front: bool,
    ) -> Result<()>;
    /// Puts a task whose attempt failed back at the front of its job's queue, kept from the
    /// worker that failed it for `avoid_for` (after that anyone may take it, so a grid of one
    /// device still retries).
    async fn enqueue_retry(
        &self,
        job: JobId,
        task: TaskId,
        avoid: WorkerId,
        avoid_for: Duration,
    ) -> Result<()>;
    /// Lets workers whose copy of a task ended without a result (their report came after the
    /// task stopped waiting for one) take a copy of it again.
    async fn release_holders(&self, copies: &[(JobId, TaskId, WorkerId)]) -> Result<()>;
    /// Leases up to `max` of one job's queued copies of the kind `copies` to a worker for
    /// `ttl`, but only as many as leave it holding at most `hold_at_most` leases of any job
    /// (its task slots): checked and taken in one step, so concurrent requests of one worker
    /// cannot add up past it.
    async fn lease(
        &self,
        job: JobId,
        worker: WorkerId,
        max: usize,
        hold_at_most: usize,
        ttl: Duration,
        copies: Copies,
    ) -> Result<Vec<Lease>>;
    /// [`Queues::lease`] of any copies the worker may take.
    async fn lease_tasks(
        &self,
        job: JobId,
        worker: WorkerId,
        max: usize,
        hold_at_most: usize,
        ttl: Duration,
    ) -> Result<Vec<Lease>> {
        self.lease(job, worker, max, hold_at_most, ttl, Copies::Any)
            .await
    }
    /// Returns when tasks may have been enqueued, or after `wait`.
    async fn wait_for_tasks(&self, wait: Duration) -> Result<()>;
    /// Extends a lease held by `worker`, recording its progress (0..=1) when given; `None` if
    /// it does not hold it.
    async fn renew(
        &self,
        lease: LeaseId,
        worker: WorkerId,
        ttl: Duration,
        progress: Option<f32>,
    ) -> Result<Option<Lease>>;
    /// The lease, if `worker` holds it.
    async fn held(&self, lease: LeaseId, worker: WorkerId) -> Result<Option<Lease>>;
    /// Ends leases held by their workers, returning each one that was held.
    async fn settle(&self, leases: &[(LeaseId, WorkerId)]) -> Result<Vec<Option<Lease>>>;
    /// Removes and returns up to `max` leases that expired before `now_ms`.
    async fn take_expired(&self, now_ms: i64, max: usize) -> Result<Vec<Lease>>;
    /// Ends every lease `worker` holds (it was quarantined) and returns them.
    async fn revoke(&self, worker: WorkerId) -> Result<Vec<Lease>>;
    /// Drops a job's task queue and leases (job finished, failed or cancelled).
    async fn drop_job(&self, job: JobId) -> Result<()>;
    /// Depth of a job's task queue.
    async fn job_depth(&self, job: JobId) -> Result<JobDepth>;
    /// The leases of a job's tasks, in no particular order.
    async fn job_leases(&self, job: JobId) -> Result<Vec<Lease>>;
    /// How many leases each of `workers` holds, in the same order.
    async fn leases_held(&self, workers: &[WorkerId]) -> Result<Vec<u64>>;
}
