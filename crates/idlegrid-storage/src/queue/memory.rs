//! In-process queues for the embedded mode: one mutex over plain collections, with `Notify`
//! wake-ups for waiting consumers. Contents do not survive the process; the coordinator rebuilds
//! them from the records at start-up.

use super::{
    Copies, Item, JobDepth, Lease, MAX_SKIPPED, Queues, Stage, duration_ms, new_lease_id,
    pop_waiting,
};
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

    /// Whether a copy of `task` would confirm another worker's: some worker holds or held one.
    fn confirms(&self, task: TaskId) -> bool {
        self.holders.get(&task).is_some_and(|h| !h.is_empty())
    }
}

#[derive(Default)]
struct Inner {
    stages: HashMap<Stage, VecDeque<Item>>,
    jobs: HashMap<JobId, JobQueue>,
    leases: HashMap<LeaseId, Lease>,
    /// Leases ordered by deadline, for the reaper.
    deadlines: BTreeSet<(i64, LeaseId)>,
    /// Leases each worker holds (workers holding none are left out).
    held: HashMap<WorkerId, usize>,
}

/// The embedded queue backend.
#[derive(Default)]
pub struct MemoryQueues {
    inner: Mutex<Inner>,
    stage_ready: [Notify; 4],
    tasks_ready: Notify,
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
        if let Some(held) = self.held.get_mut(&lease.worker) {
            *held -= 1;
            if *held == 0 {
                self.held.remove(&lease.worker);
            }
        }
        if let Some(q) = self.jobs.get_mut(&lease.job) {
            q.leased = q.leased.saturating_sub(1);
            q.leased_progress = (q.leased_progress - f64::from(lease.progress)).max(0.0);
        }
        Some(lease)
    }

    /// Ends the leases `ids` without a result, returning those that were held; their holders
    /// may take a copy of their tasks again.
    fn take_back(&mut self, ids: Vec<LeaseId>) -> Vec<Lease> {
        let taken: Vec<Lease> = ids
            .into_iter()
            .filter_map(|id| self.remove_lease(id))
            .collect();
        for lease in &taken {
            if let Some(q) = self.jobs.get_mut(&lease.job)
                && let Some(holders) = q.holders.get_mut(&lease.task)
            {
                holders.remove(&lease.worker);
            }
        }
        taken
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
        self.stage_ready[stage.slot()].notify_waiters();
        self.stage_ready[stage.slot()].notify_one();
        Ok(())
    }

    async fn pop(&self, stage: Stage, max: usize, wait: Duration) -> Result<Vec<Item>> {
        let look = || {
            let mut inner = self.lock();
            let queue = inner.stages.entry(stage).or_default();
            let n = max.min(queue.len());
            std::future::ready(Ok((!queue.is_empty()).then(|| queue.drain(..n).collect())))
        };
        pop_waiting(&self.stage_ready[stage.slot()], wait, |left| left, look).await
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
        let until = now_ms() + duration_ms(avoid_for);
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

    async fn release_holders(&self, copies: &[(JobId, TaskId, WorkerId)]) -> Result<()> {
        let mut inner = self.lock();
        for (job, task, worker) in copies {
            if let Some(holders) = inner
                .jobs
                .get_mut(job)
                .and_then(|q| q.holders.get_mut(task))
            {
                holders.remove(worker);
            }
        }
        Ok(())
    }

    async fn lease(
        &self,
        job: JobId,
        worker: WorkerId,
        max: usize,
        hold_at_most: usize,
        ttl: Duration,
        copies: Copies,
    ) -> Result<Vec<Lease>> {
        let replicas_only = copies == Copies::Confirming;
        let now = now_ms();
        let expires_at_ms = now + duration_ms(ttl);
        let mut inner = self.lock();
        let held = inner.held.get(&worker).copied().unwrap_or(0);
        let max = max.min(hold_at_most.saturating_sub(held));
        let Some(queue) = inner.jobs.get_mut(&job).filter(|_| max > 0) else {
            return Ok(Vec::new());
        };
        queue.avoid.retain(|_, (_, until)| *until > now);
        let tasks: Vec<TaskId> =
            if !replicas_only && queue.avoid.is_empty() && queue.holders.is_empty() {
                let n = max.min(queue.queued.len());
                queue.queued.drain(..n).collect()
            } else {
                let mut taken = Vec::new();
                let mut skipped = Vec::new();
                while taken.len() < max && skipped.len() < MAX_SKIPPED {
                    let Some(task) = queue.queued.pop_front() else {
                        break;
                    };
                    if queue.keeps_from(task, worker) || (replicas_only && !queue.confirms(task)) {
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
        if n > 0 {
            *inner.held.entry(worker).or_default() += n;
        }
        let mut leases = Vec::with_capacity(n);
        for task in tasks {
            let lease = Lease {
                id: new_lease_id(),
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
        let expires_at_ms = now_ms() + duration_ms(ttl);
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
        // A silent holder's copy goes back to the queue through a retry; it may take it again.
        Ok(inner.take_back(due))
    }

    async fn revoke(&self, worker: WorkerId) -> Result<Vec<Lease>> {
        let mut inner = self.lock();
        let held: Vec<LeaseId> = inner
            .leases
            .values()
            .filter(|l| l.worker == worker)
            .map(|l| l.id)
            .collect();
        Ok(inner.take_back(held))
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

    async fn job_leases(&self, job: JobId) -> Result<Vec<Lease>> {
        Ok(self
            .lock()
            .leases
            .values()
            .filter(|l| l.job == job)
            .cloned()
            .collect())
    }

    async fn leases_held(&self, workers: &[WorkerId]) -> Result<Vec<u64>> {
        let inner = self.lock();
        Ok(workers
            .iter()
            .map(|w| inner.held.get(w).map_or(0, |&n| n as u64))
            .collect())
    }
}
