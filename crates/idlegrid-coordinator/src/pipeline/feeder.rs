//! The Feeder stage: moves task ids from the partitioner's queue into per-job task queues, and
//! keeps the scheduling table — the jobs being dispatched, with what their tasks need — that
//! the Tasks API consults, through the policy in [`idlegrid_domain::schedule`], to decide which
//! job's tasks a requesting device gets.

use crate::grid::Grid;
use idlegrid_api::tasks::{JobSpec, TaskLimits};
use idlegrid_domain::schedule::{JobEntry, order_for};
use idlegrid_domain::{
    JobId, JobState, Placement, Replication, TaskId, TaskState, TenantId, WorkerId,
};
use idlegrid_storage::StorageError;
use idlegrid_storage::queue::{Item, Stage};
use idlegrid_storage::records::{JobRecord, WorkerRecord};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Task ids moved per queue operation.
const BATCH: usize = 10_000;

/// What the scheduler and the Tasks API need to know about a dispatching job.
#[derive(Debug)]
pub struct ActiveJob {
    /// Owner, for fair share.
    pub tenant: TenantId,
    /// Speed/price tier.
    pub tier: idlegrid_domain::Tier,
    /// Customer priority.
    pub priority: i32,
    /// Work of its largest chunk (reference core-ms; 0 when unknown), for the deadline check.
    pub chunk_work_ms: i64,
    /// What its tasks need from a device.
    pub requirements: idlegrid_domain::Requirements,
    /// What workers are told about the job.
    pub spec: JobSpec,
    /// File name of a chunk inside `input/`.
    pub input_name: String,
    /// Key of the job's input blob (chunks without a blob of their own are ranges of it).
    pub input_key: Option<String>,
    /// How its chunks are replicated.
    pub replication: Replication,
    /// Which devices may run its chunks.
    pub placement: Placement,
}

impl ActiveJob {
    /// Whether `device` may run the job's chunks at all: any device, or for a private fleet
    /// only those whose owner belongs to the job's customer.
    pub fn admits(&self, device: &WorkerRecord) -> bool {
        self.placement == Placement::Any || device.owner_tenant == Some(self.tenant)
    }

    /// What the policy is told about the job.
    pub(crate) fn entry(&self, job: JobId, running: u64, fit_share: f64) -> JobEntry {
        JobEntry {
            job,
            tenant: self.tenant,
            tier: self.tier,
            priority: self.priority,
            requirements: self.requirements.clone(),
            running,
            chunk_work_ms: self.chunk_work_ms,
            timeout_secs: self.spec.limits.timeout_secs,
            fit_share,
        }
    }
}

/// The scheduling table.
#[derive(Default)]
pub struct Schedule {
    active: RwLock<HashMap<JobId, Arc<ActiveJob>>>,
    /// Each job's share of the online devices' speed that its chunks fit
    /// ([`JobEntry::fit_share`]), as last measured by [`Schedule::measure_fit`].
    fit_shares: RwLock<HashMap<JobId, f64>>,
}

impl Schedule {
    /// Adds a dispatching job to the table (no-op if present with the same quote, or if its
    /// app is gone).
    pub fn activate(&self, grid: &Grid, job: &JobRecord) -> Result<(), StorageError> {
        let chunk_work_ms = job.billing.map_or(0, |b| b.largest_chunk_ms);
        if self
            .get(job.id)
            .is_some_and(|active| active.chunk_work_ms == chunk_work_ms)
        {
            return Ok(());
        }
        let Some(app) = grid.apps.get(&job.spec.app) else {
            return Ok(());
        };
        let entry = ActiveJob {
            tenant: job.spec.tenant,
            tier: job.spec.tier,
            priority: job.spec.priority,
            chunk_work_ms,
            requirements: app.manifest.requirements.clone(),
            spec: JobSpec {
                job_id: job.id,
                app: job.spec.app.clone(),
                bundle_sha256: job.spec.bundle_sha256.clone(),
                params: job.spec.params.clone(),
                limits: TaskLimits {
                    timeout_secs: job.spec.task_timeout_secs,
                    memory_mb: app.task_memory_mb(),
                    max_output_bytes: grid.config.max_task_output_bytes,
                },
            },
            input_name: app.manifest.input_name.clone(),
            input_key: job.input.as_ref().map(|i| i.key.clone()),
            replication: job.spec.replication,
            placement: job.spec.placement,
        };
        self.write().insert(job.id, Arc::new(entry));
        Ok(())
    }

    /// Removes a job from the table.
    pub fn forget(&self, job: JobId) {
        self.write().remove(&job);
    }

    /// The jobs in the table.
    pub fn jobs(&self) -> Vec<JobId> {
        self.active
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect()
    }

    /// A dispatching job.
    pub fn get(&self, job: JobId) -> Option<Arc<ActiveJob>> {
        self.active
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&job)
            .cloned()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<JobId, Arc<ActiveJob>>> {
        self.active.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Jobs with queued tasks the device may run, in the order it should get them.
    pub async fn order_for(
        &self,
        grid: &Grid,
        device: &WorkerRecord,
    ) -> Result<Vec<JobId>, StorageError> {
        let jobs: Vec<(JobId, Arc<ActiveJob>)> = self
            .active
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(id, job)| (*id, job.clone()))
            .collect();
        let mut entries = Vec::with_capacity(jobs.len());
        for (id, job) in jobs {
            if !job.admits(device) {
                continue;
            }
            let depth = grid.queues.job_depth(id).await?;
            if depth.queued == 0 {
                continue;
            }
            entries.push(job.entry(id, depth.leased, self.fit_share(id)));
        }
        Ok(order_for(&device.capabilities, &entries))
    }

    /// A job's [`JobEntry::fit_share`] as last measured (1 before the first measurement).
    pub fn fit_share(&self, job: JobId) -> f64 {
        self.fit_shares
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&job)
            .copied()
            .unwrap_or(1.0)
    }

    /// Measures, for every dispatching job, the share of the online devices' speed its chunks
    /// fit, so that the devices a job needs take it before work any device can run.
    pub async fn measure_fit(&self, grid: &Grid) {
        let mut devices = Vec::new();
        for worker in grid.presence.online(idlegrid_storage::now_ms()) {
            if let Ok(device) = grid.device(worker).await {
                let caps = &device.capabilities;
                let speed = f64::from(caps.slots.max(1)) * idlegrid_domain::schedule::speed(caps);
                devices.push((device, speed));
            }
        }
        let total: f64 = devices.iter().map(|(_, speed)| speed).sum();
        let jobs: Vec<(JobId, Arc<ActiveJob>)> = self
            .active
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(id, job)| (*id, job.clone()))
            .collect();
        let shares: HashMap<JobId, f64> = jobs
            .iter()
            .map(|(id, job)| {
                let entry = job.entry(*id, 0, 1.0);
                let fit: f64 = devices
                    .iter()
                    .filter(|(device, _)| {
                        job.admits(device)
                            && idlegrid_domain::schedule::may_run(&device.capabilities, &entry)
                    })
                    .map(|(_, speed)| speed)
                    .sum();
                (*id, if total > 0.0 { fit / total } else { 1.0 })
            })
            .collect();
        *self.fit_shares.write().unwrap_or_else(|e| e.into_inner()) = shares;
    }
}

/// How often the scheduling table is brought in line with the records.
const SYNC_INTERVAL: Duration = Duration::from_secs(2);

/// Keeps this coordinator's scheduling table and quarantine list in line with the records
/// until `shutdown`: when coordinators share the records and queues, jobs another one
/// partitioned are dispatched here too, jobs another one ended stop being offered, and devices
/// another one quarantined are refused here.
pub async fn sync(grid: Arc<Grid>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(SYNC_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !shutdown.is_cancelled() {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = sync_once(&grid).await {
            tracing::warn!(error = %e, "syncing the scheduling table with the records failed");
        }
    }
}

/// One round of [`sync`].
pub async fn sync_once(grid: &Grid) -> Result<(), StorageError> {
    let dispatching = grid
        .store
        .jobs_in_states(&[JobState::Partitioning, JobState::Running])
        .await?;
    let ids: std::collections::HashSet<JobId> = dispatching.iter().map(|j| j.id).collect();
    // A job without its input yet is still fetching it: its partitioner activates it.
    for job in dispatching.iter().filter(|j| j.input.is_some()) {
        grid.schedule.activate(grid, job)?;
    }
    for job in grid.schedule.jobs() {
        if !ids.contains(&job) {
            grid.schedule.forget(job);
        }
    }
    grid.quarantine(&grid.store.quarantined_workers().await?);
    Ok(())
}

/// Runs the stage until `shutdown`.
pub async fn run(grid: Arc<Grid>, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        let items = tokio::select! {
            _ = shutdown.cancelled() => return,
            items = grid.queues.pop(Stage::Feed, BATCH, Duration::from_secs(1)) => items,
        };
        let result = match items {
            Ok(items) => feed(&grid, &items).await.map_err(|e| (e, items)),
            Err(e) => Err((e, Vec::new())),
        };
        if let Err((e, items)) = result {
            tracing::error!(error = %e, "feeding failed; will retry");
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _ = grid.queues.push(Stage::Feed, &items).await;
        }
    }
}

/// Moves created tasks into their jobs' task queues, in the order they came. A replicated
/// job's task is queued once for each result it still lacks, kept from the devices that sent
/// the others (so this also restores replicas after a restart).
pub async fn feed(grid: &Grid, items: &[Item]) -> Result<(), StorageError> {
    let mut start = 0;
    while start < items.len() {
        let job = items[start].job;
        let end = start
            + items[start..]
                .iter()
                .position(|i| i.job != job)
                .unwrap_or(items.len() - start);
        let tasks: Vec<TaskId> = items[start..end].iter().map(|i| TaskId(i.id)).collect();
        start = end;
        if grid.schedule.get(job).is_none() {
            match grid.store.job(job).await? {
                Some(record) if record.state.is_dispatching() => {
                    grid.schedule.activate(grid, &record)?;
                }
                // Ended or unknown: its tasks are not dispatched.
                _ => continue,
            }
        }
        let Some(active) = grid.schedule.get(job) else {
            continue;
        };
        if !active.replication.is_replicated() {
            grid.queues.enqueue_tasks(job, &tasks, false).await?;
            continue;
        }
        for state in grid.store.replica_states(&tasks).await? {
            if state.state != TaskState::Pending {
                continue;
            }
            let sent: Vec<WorkerId> = state.results.iter().map(|r| r.worker).collect();
            let copies = state.wanted.saturating_sub(sent.len() as u32);
            grid.queues
                .enqueue_replicas(job, state.task, copies, &sent, false)
                .await?;
        }
    }
    Ok(())
}
