//! In-process queues for the embedded mode: one mutex over plain collections, with `Notify`
//! wake-ups for waiting consumers. Contents do not survive the process; the coordinator rebuilds
//! them from the records at start-up.

use super::{Item, JobDepth, Lease, Queues, Stage};
use crate::{Result, now_ms};
use async_trait::async_trait;
use idlegrid_domain::{JobId, LeaseId, TaskId, WorkerId};
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Notify;

#[derive(Default)]
struct JobQueue {
    queued: VecDeque<TaskId>,
    leased: u64,
    leased_progress: f64,
    /// Retried tasks kept from the worker that failed them, until a deadline (unix ms).
    avoid: HashMap<TaskId, (WorkerId, i64)>,
    /// Replicated tasks: the workers that hold or held a copy and may not take another.
    holders: HashMap<TaskId, HashSet<WorkerId>>,
}

impl JobQueue {
    /// Whether `worker` must pass over this queued copy of `task`.
    fn keeps_from(&self, task: TaskId, worker: WorkerId) -> bool {
        self.avoid.get(&task).is_some_and(|(w, _)| *w == worker)
            || self.holders.get(&task).is_some_and(|h| h.contains(&worker))
    }
}

/// Most queued tasks a worker passes over (copies it may not take) in one lease request.
const MAX_SKIPPED: usize = 4096;

#[derive(Default)]
struct Inner {
    stages: HashMap<Stage, VecDeque<Item>>,
    jobs: HashMap<JobId, JobQueue>,
    leases: HashMap<LeaseId, Lease>,
    /// Leases ordered by deadline, for the reaper.
    deadlines: BTreeSet<(i64, LeaseId)>,
}

/// The embedded queue backend.
#[derive(Default)]
pub struct MemoryQueues {
    inner: Mutex<Inner>,
    stage_ready: [Notify; 4],
    tasks_ready: Notify,
}

fn stage_slot(stage: Stage) -> usize {
    match stage {
        Stage::Partition => 0,
        Stage::Feed => 1,
        Stage::Validate => 2,
        Stage::Assemble => 3,
    }
}

impl MemoryQueues {
    /// Empty queues.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain collections that are still consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    fn remove_lease(&mut self, id: LeaseId) -> Option<Lease> {
        let lease = self.leases.remove(&id)?;
        self.deadlines.remove(&(lease.expires_at_ms, id));
        if let Some(q) = self.jobs.get_mut(&lease.job) {
            q.leased = q.leased.saturating_sub(1);
            q.leased_progress = (q.leased_progress - f64::from(lease.progress)).max(0.0);
        }
        Some(lease)
    }
}

#[async_trait]
impl Queues for MemoryQueues {
    async fn push(&self, stage: Stage, items: &[Item]) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        self.lock()
            .stages
            .entry(stage)
            .or_default()
            .extend(items.iter().copied());
        self.stage_ready[stage_slot(stage)].notify_waiters();
        self.stage_ready[stage_slot(stage)].notify_one();
        Ok(())
    }

    async fn pop(&self, stage: Stage, max: usize, wait: Duration) -> Result<Vec<Item>> {
        let notify = &self.stage_ready[stage_slot(stage)];
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut inner = self.lock();
                let queue = inner.stages.entry(stage).or_default();
                if !queue.is_empty() {
                    let n = max.min(queue.len());
                    return Ok(queue.drain(..n).collect());
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn stage_len(&self, stage: Stage) -> Result<u64> {
        Ok(self.lock().stages.get(&stage).map_or(0, |q| q.len() as u64))
    }

    async fn enqueue_tasks(&self, job: JobId, tasks: &[TaskId], front: bool) -> Result<()> {
        if tasks.is_empty() {
            return Ok(());
        }
        {
            let mut inner = self.lock();
            let queue = &mut inner.jobs.entry(job).or_default().queued;
            if front {
                for task in tasks.iter().rev() {
                    queue.push_front(*task);
                }
            } else {
                queue.extend(tasks.iter().copied());
            }
        }
        self.tasks_ready.notify_waiters();
        Ok(())
    }

    async fn enqueue_replicas(
        &self,
        job: JobId,
        task: TaskId,
        copies: u32,
        exclude: &[WorkerId],
        front: bool,
    ) -> Result<()> {
        if copies == 0 {
            return Ok(());
        }
        {
            let mut inner = self.lock();
            let queue = inner.jobs.entry(job).or_default();
            queue
                .holders
                .entry(task)
                .or_default()
                .extend(exclude.iter().copied());
            for _ in 0..copies {
                if front {
                    queue.queued.push_front(task);
                } else {
                    queue.queued.push_back(task);
                }
            }
        }
        self.tasks_ready.notify_waiters();
        Ok(())
    }

    async fn enqueue_retry(
        &self,
        job: JobId,
        task: TaskId,
        avoid: WorkerId,
        avoid_for: Duration,
    ) -> Result<()> {
        let until = now_ms() + avoid_for.as_millis() as i64;
        {
            let mut inner = self.lock();
            let queue = inner.jobs.entry(job).or_default();
            queue.queued.push_front(task);
            queue.avoid.insert(task, (avoid, until));
            // Its attempt failed: it holds no copy now, and may take one once the avoidance ends.
            if let Some(holders) = queue.holders.get_mut(&task) {
                holders.remove(&avoid);
            }
        }
        self.tasks_ready.notify_waiters();
        Ok(())
    }

    async fn lease_tasks(
        &self,
        job: JobId,
        worker: WorkerId,
        max: usize,
        ttl: Duration,
    ) -> Result<Vec<Lease>> {
        let expires_at_ms = now_ms() + ttl.as_millis() as i64;
        let now = now_ms();
        let mut inner = self.lock();
        let Some(queue) = inner.jobs.get_mut(&job) else {
            return Ok(Vec::new());
        };
        queue.avoid.retain(|_, (_, until)| *until > now);
        let tasks: Vec<TaskId> = if queue.avoid.is_empty() && queue.holders.is_empty() {
            let n = max.min(queue.queued.len());
            queue.queued.drain(..n).collect()
        } else {
            let mut taken = Vec::new();
            let mut skipped = Vec::new();
            while taken.len() < max && skipped.len() < MAX_SKIPPED {
                let Some(task) = queue.queued.pop_front() else {
                    break;
                };
                if queue.keeps_from(task, worker) {
                    skipped.push(task);
                } else {
                    queue.avoid.remove(&task);
                    if let Some(holders) = queue.holders.get_mut(&task) {
                        holders.insert(worker);
                    }
                    taken.push(task);
                }
            }
            for task in skipped.into_iter().rev() {
                queue.queued.push_front(task);
            }
            taken
        };
        let n = tasks.len();
        queue.leased += n as u64;
        let mut leases = Vec::with_capacity(n);
        for task in tasks {
            let lease = Lease {
                // 53 bits: exact in JSON numbers read by JavaScript clients.
                id: LeaseId(rand::random::<u64>() >> 11),
                task,
                job,
                worker,
                expires_at_ms,
                progress: 0.0,
            };
            inner.deadlines.insert((expires_at_ms, lease.id));
            inner.leases.insert(lease.id, lease);
            leases.push(lease);
        }
        Ok(leases)
    }

    async fn wait_for_tasks(&self, wait: Duration) -> Result<()> {
        let _ = tokio::time::timeout(wait, self.tasks_ready.notified()).await;
        Ok(())
    }

    async fn renew(
        &self,
        lease: LeaseId,
        worker: WorkerId,
        ttl: Duration,
        progress: Option<f32>,
    ) -> Result<Option<Lease>> {
        let expires_at_ms = now_ms() + ttl.as_millis() as i64;
        let mut inner = self.lock();
        let Some(held) = inner.leases.get_mut(&lease).filter(|l| l.worker == worker) else {
            return Ok(None);
        };
        let old = held.expires_at_ms;
        held.expires_at_ms = expires_at_ms.max(old);
        let before = held.progress;
        if let Some(p) = progress.filter(|p| p.is_finite()) {
            held.progress = p.clamp(0.0, 1.0);
        }
        let renewed = *held;
        if let Some(q) = inner.jobs.get_mut(&renewed.job) {
            q.leased_progress += f64::from(renewed.progress) - f64::from(before);
        }
        inner.deadlines.remove(&(old, lease));
        inner.deadlines.insert((renewed.expires_at_ms, lease));
        Ok(Some(renewed))
    }

    async fn held(&self, lease: LeaseId, worker: WorkerId) -> Result<Option<Lease>> {
        Ok(self
            .lock()
            .leases
            .get(&lease)
            .filter(|l| l.worker == worker)
            .copied())
    }

    async fn settle(&self, leases: &[(LeaseId, WorkerId)]) -> Result<Vec<Option<Lease>>> {
        let mut inner = self.lock();
        Ok(leases
            .iter()
            .map(|&(id, worker)| {
                if inner.leases.get(&id).is_some_and(|l| l.worker == worker) {
                    inner.remove_lease(id)
                } else {
                    None
                }
            })
            .collect())
    }

    async fn take_expired(&self, now_ms: i64, max: usize) -> Result<Vec<Lease>> {
        let mut inner = self.lock();
        let due: Vec<LeaseId> = inner
            .deadlines
            .iter()
            .take_while(|(deadline, _)| *deadline < now_ms)
            .take(max)
            .map(|&(_, id)| id)
            .collect();
        let expired: Vec<Lease> = due
            .into_iter()
            .filter_map(|id| inner.remove_lease(id))
            .collect();
        // A silent holder's copy goes back to the queue through a retry; it may take it again.
        for lease in &expired {
            if let Some(q) = inner.jobs.get_mut(&lease.job)
                && let Some(holders) = q.holders.get_mut(&lease.task)
            {
                holders.remove(&lease.worker);
            }
        }
        Ok(expired)
    }

    async fn revoke(&self, worker: WorkerId) -> Result<Vec<Lease>> {
        let mut inner = self.lock();
        let held: Vec<LeaseId> = inner
            .leases
            .values()
            .filter(|l| l.worker == worker)
            .map(|l| l.id)
            .collect();
        let revoked: Vec<Lease> = held
            .into_iter()
            .filter_map(|id| inner.remove_lease(id))
            .collect();
        for lease in &revoked {
            if let Some(q) = inner.jobs.get_mut(&lease.job)
                && let Some(holders) = q.holders.get_mut(&lease.task)
            {
                holders.remove(&lease.worker);
            }
        }
        Ok(revoked)
    }

    async fn drop_job(&self, job: JobId) -> Result<()> {
        let mut inner = self.lock();
        inner.jobs.remove(&job);
        let leases: Vec<LeaseId> = inner
            .leases
            .values()
            .filter(|l| l.job == job)
            .map(|l| l.id)
            .collect();
        for id in leases {
            inner.remove_lease(id);
        }
        Ok(())
    }

    async fn job_depth(&self, job: JobId) -> Result<JobDepth> {
        Ok(self
            .lock()
            .jobs
            .get(&job)
            .map_or(JobDepth::default(), |q| JobDepth {
                queued: q.queued.len() as u64,
                leased: q.leased,
                leased_progress: q.leased_progress,
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W1: WorkerId = WorkerId(1);
    const W2: WorkerId = WorkerId(2);
    const J: JobId = JobId(7);

    #[tokio::test]
    async fn stage_queue_is_fifo_and_pop_waits() {
        let q = std::sync::Arc::new(MemoryQueues::new());
        let empty = q
            .pop(Stage::Feed, 10, Duration::from_millis(10))
            .await
            .unwrap();
        assert!(empty.is_empty());
        let waiter = {
            let q = q.clone();
            tokio::spawn(async move { q.pop(Stage::Feed, 10, Duration::from_secs(5)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let items: Vec<Item> = (1..=3).map(|id| Item { job: J, id }).collect();
        q.push(Stage::Feed, &items).await.unwrap();
        assert_eq!(waiter.await.unwrap().unwrap(), items);
    }

    #[tokio::test]
    async fn leases_are_exclusive_and_settle_once() {
        let q = MemoryQueues::new();
        q.enqueue_tasks(J, &[TaskId(1), TaskId(2), TaskId(3)], false)
            .await
            .unwrap();
        let a = q
            .lease_tasks(J, W1, 2, Duration::from_secs(60))
            .await
            .unwrap();
        let b = q
            .lease_tasks(J, W2, 5, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(
            a.iter().map(|l| l.task).collect::<Vec<_>>(),
            [TaskId(1), TaskId(2)]
        );
        assert_eq!(b.iter().map(|l| l.task).collect::<Vec<_>>(), [TaskId(3)]);
        let depth = q.job_depth(J).await.unwrap();
        assert_eq!((depth.queued, depth.leased), (0, 3));
        // Progress reported in renewals adds up per job, clamped to 0..=1, and leaves with the
        // lease.
        let minute = Duration::from_secs(60);
        q.renew(a[0].id, W1, minute, Some(0.5)).await.unwrap();
        q.renew(a[1].id, W1, minute, Some(0.25)).await.unwrap();
        q.renew(a[1].id, W1, minute, Some(7.0)).await.unwrap();
        assert_eq!(q.job_depth(J).await.unwrap().leased_progress, 1.5);
        // The wrong worker can neither renew nor settle.
        assert!(
            q.renew(a[0].id, W2, Duration::from_secs(1), None)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(q.settle(&[(a[0].id, W2)]).await.unwrap(), [None]);
        let settled = q.settle(&[(a[0].id, W1)]).await.unwrap();
        assert_eq!(settled[0].map(|l| (l.id, l.progress)), Some((a[0].id, 0.5)));
        assert_eq!(q.settle(&[(a[0].id, W1)]).await.unwrap(), [None]);
        let depth = q.job_depth(J).await.unwrap();
        assert_eq!((depth.leased, depth.leased_progress), (2, 1.0));
    }

    #[tokio::test]
    async fn a_retried_task_is_kept_from_the_worker_that_failed_it_for_a_while() {
        let q = MemoryQueues::new();
        q.enqueue_tasks(J, &[TaskId(1), TaskId(2)], false)
            .await
            .unwrap();
        q.enqueue_retry(J, TaskId(9), W1, Duration::from_secs(60))
            .await
            .unwrap();
        let minute = Duration::from_secs(60);
        let first = q.lease_tasks(J, W1, 1, minute).await.unwrap();
        assert_eq!(first[0].task, TaskId(1), "W1 skips the task it failed");
        let second = q.lease_tasks(J, W2, 1, minute).await.unwrap();
        assert_eq!(second[0].task, TaskId(9), "another worker gets it first");
        // Once the avoidance runs out, the same worker may take a retry.
        q.enqueue_retry(J, TaskId(8), W1, Duration::ZERO)
            .await
            .unwrap();
        let third = q.lease_tasks(J, W1, 5, minute).await.unwrap();
        let tasks: Vec<TaskId> = third.iter().map(|l| l.task).collect();
        assert_eq!(tasks, [TaskId(8), TaskId(2)]);
    }

    #[tokio::test]
    async fn a_worker_never_gets_two_copies_of_a_replicated_task() {
        let q = MemoryQueues::new();
        let minute = Duration::from_secs(60);
        const W3: WorkerId = WorkerId(3);
        q.enqueue_replicas(J, TaskId(1), 2, &[], false)
            .await
            .unwrap();
        q.enqueue_tasks(J, &[TaskId(2)], false).await.unwrap();
        q.enqueue_replicas(J, TaskId(3), 1, &[W1], false)
            .await
            .unwrap();
        let a = q.lease_tasks(J, W1, 10, minute).await.unwrap();
        let tasks: Vec<TaskId> = a.iter().map(|l| l.task).collect();
        assert_eq!(tasks, [TaskId(1), TaskId(2)], "one copy, and not task 3");
        let b = q.lease_tasks(J, W2, 10, Duration::ZERO).await.unwrap();
        let tasks: Vec<TaskId> = b.iter().map(|l| l.task).collect();
        assert_eq!(tasks, [TaskId(1), TaskId(3)]);
        // W2's attempts are lost: task 1's copy goes back, and W1, which holds the other
        // copy, still may not take it; a third worker may.
        let expired = q.take_expired(now_ms() + 1, 10).await.unwrap();
        assert_eq!(expired.len(), 2);
        q.enqueue_retry(J, TaskId(1), W2, Duration::from_secs(60))
            .await
            .unwrap();
        assert!(q.lease_tasks(J, W1, 10, minute).await.unwrap().is_empty());
        assert!(q.lease_tasks(J, W2, 10, minute).await.unwrap().is_empty());
        let c = q.lease_tasks(J, W3, 10, minute).await.unwrap();
        assert_eq!(c[0].task, TaskId(1));
    }

    #[tokio::test]
    async fn expired_leases_are_taken_back_in_deadline_order() {
        let q = MemoryQueues::new();
        q.enqueue_tasks(J, &[TaskId(1), TaskId(2)], false)
            .await
            .unwrap();
        let short = q
            .lease_tasks(J, W1, 1, Duration::from_millis(0))
            .await
            .unwrap();
        let long = q
            .lease_tasks(J, W1, 1, Duration::from_secs(60))
            .await
            .unwrap();
        let expired = q.take_expired(now_ms() + 1, 10).await.unwrap();
        assert_eq!(expired, short);
        assert!(q.held(long[0].id, W1).await.unwrap().is_some());
        // Renewal moves the deadline forward.
        let renewed = q
            .renew(long[0].id, W1, Duration::from_secs(120), None)
            .await
            .unwrap()
            .unwrap();
        assert!(renewed.expires_at_ms > long[0].expires_at_ms);
        assert!(
            q.take_expired(now_ms() + 61_000, 10)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn retries_go_to_the_front_and_dropped_jobs_vanish() {
        let q = MemoryQueues::new();
        q.enqueue_tasks(J, &[TaskId(1), TaskId(2)], false)
            .await
            .unwrap();
        q.enqueue_tasks(J, &[TaskId(9)], true).await.unwrap();
        let leases = q
            .lease_tasks(J, W1, 1, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(leases[0].task, TaskId(9));
        q.drop_job(J).await.unwrap();
        assert!(q.held(leases[0].id, W1).await.unwrap().is_none());
        assert_eq!(q.job_depth(J).await.unwrap(), JobDepth::default());
    }
}
