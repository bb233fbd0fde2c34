//! The dispatch table: the jobs being dispatched, with what their tasks need, that the Tasks
//! API consults through the policy in [`idlegrid_domain::schedule`] to decide which job's tasks
//! a requesting device gets. Owned by no stage: the partitioner and the Feeder add jobs, the
//! lifecycle removes them, the straggler stage measures how many devices each job's chunks fit.

use crate::apps::AppRegistry;
use idlegrid_api::tasks::{JobSpec, TaskLimits};
use idlegrid_domain::schedule::{JobEntry, order_for};
use idlegrid_domain::{JobId, Placement, Replication, TenantId, WorkerId};
use idlegrid_storage::StorageError;
use idlegrid_storage::queue::Queues;
use idlegrid_storage::records::{JobRecord, WorkerRecord};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// A device heard from lately, with its speed (task slots times a slot's speed).
#[derive(Debug, Clone)]
pub struct OnlineDevice {
    /// The device.
    pub worker: WorkerId,
    /// Its record (capabilities, owner).
    pub record: Arc<WorkerRecord>,
    /// Its task slots times a slot's speed, in reference cores.
    pub speed: f64,
}

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

    /// The ones of `devices` that may run the job's chunks.
    pub fn fitting<'a>(
        &self,
        job: JobId,
        devices: &'a [OnlineDevice],
    ) -> impl Iterator<Item = &'a OnlineDevice> {
        let entry = self.entry(job, 0, 1.0);
        let admitted = move |online: &&OnlineDevice| {
            self.admits(&online.record)
                && idlegrid_domain::schedule::may_run(&online.record.capabilities, &entry)
        };
        devices.iter().filter(admitted)
    }

    /// Whether one of `devices` other than `worker` may run the job's chunks.
    pub fn runs_elsewhere(&self, job: JobId, worker: WorkerId, devices: &[OnlineDevice]) -> bool {
        self.fitting(job, devices)
            .any(|online| online.worker != worker)
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
    pub fn activate(&self, job: &JobRecord, apps: &AppRegistry, max_output_bytes: u64) {
        let chunk_work_ms = job.billing.map_or(0, |b| b.largest_chunk_ms);
        if self.get(job.id).is_some_and(|active| {
            active.chunk_work_ms == chunk_work_ms && active.replication == job.spec.replication
        }) {
            return;
        }
        let Some(app) = apps.of_job(&job.spec.app, &job.spec.app_version) else {
            return;
        };
        let entry = ActiveJob {
            tenant: job.spec.tenant,
            tier: job.spec.tier,
            priority: job.spec.priority,
            chunk_work_ms,
            requirements: app.requirements(&job.spec.params),
            spec: JobSpec {
                job_id: job.id,
                app: job.spec.app.clone(),
                bundle_sha256: job.spec.bundle_sha256.clone(),
                params: job.spec.params.clone(),
                limits: TaskLimits {
                    timeout_secs: job.spec.task_timeout_secs,
                    memory_mb: app.task_memory_mb(),
                    max_output_bytes,
                },
            },
            input_name: app.manifest.input_name.clone(),
            input_key: job.input.as_ref().map(|i| i.key.clone()),
            replication: job.spec.replication,
            placement: job.spec.placement,
        };
        self.write().insert(job.id, Arc::new(entry));
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

    /// The jobs in the table with their entries, copied so no lock is held across awaits.
    fn snapshot(&self) -> Vec<(JobId, Arc<ActiveJob>)> {
        self.active
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(id, job)| (*id, job.clone()))
            .collect()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<JobId, Arc<ActiveJob>>> {
        self.active.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Jobs with queued tasks the device may run, in the order it should get them.
    pub async fn order_for(
        &self,
        queues: &dyn Queues,
        device: &WorkerRecord,
    ) -> Result<Vec<JobId>, StorageError> {
        let jobs = self.snapshot();
        let mut entries = Vec::with_capacity(jobs.len());
        for (id, job) in jobs {
            if !job.admits(device) {
                continue;
            }
            let depth = queues.job_depth(id).await?;
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

    /// Measures, for every dispatching job, the share of the online `devices`' speed its
    /// chunks fit, so that the devices a job needs take it before work any device can run.
    pub fn measure_fit(&self, devices: &[OnlineDevice]) {
        let total: f64 = devices.iter().map(|online| online.speed).sum();
        let jobs = self.snapshot();
        let shares: HashMap<JobId, f64> = jobs
            .iter()
            .map(|(id, job)| {
                let fit: f64 = job.fitting(*id, devices).map(|online| online.speed).sum();
                (*id, if total > 0.0 { fit / total } else { 1.0 })
            })
            .collect();
        *self.fit_shares.write().unwrap_or_else(|e| e.into_inner()) = shares;
    }
}
