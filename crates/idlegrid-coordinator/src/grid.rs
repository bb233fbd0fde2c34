//! The handles every coordinator module receives: storage, queues, apps, settings, the event
//! bus and the in-memory state of [`crate::state`]. `Grid` only holds them: it sits above the
//! state it holds and below every stage and handler that uses it. Opening a data directory
//! (backends, keys, first credentials) is the bootstrap module's.

use crate::apps::AppRegistry;
use crate::config::Config;
use crate::events::EventBus;
use crate::state::credentials::{AuthCache, LinkLimiter, link_limiter};
use crate::state::schedule::{OnlineDevice, Schedule};
use crate::state::{hls_index, presence, recorder, signups, stats, uploads};
use idlegrid_domain::WorkerId;
use idlegrid_storage::blobs::BlobStore;
use idlegrid_storage::queue::Queues;
use idlegrid_storage::records::{Benched, JobRecord, Store, WorkerRecord};
use idlegrid_storage::{Result as StorageResult, StorageError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Everything a coordinator module works with.
pub struct Grid {
    /// Durable records.
    pub store: Arc<dyn Store>,
    /// Stage and task queues.
    pub queues: Arc<dyn Queues>,
    /// Blobs.
    pub blobs: Arc<dyn BlobStore>,
    /// Apps offered.
    pub apps: AppRegistry,
    /// Settings.
    pub config: Config,
    /// Job change announcements.
    pub events: EventBus,
    /// The Feeder's table of dispatching jobs.
    pub schedule: Schedule,
    /// Known secret hashes.
    pub auth: AuthCache,
    /// Group commit of worker reports.
    pub recorder: recorder::Recorder,
    /// Cancelled when the coordinator starts shutting down, so long-lived requests (event
    /// streams, long-polls) end instead of holding the shutdown up.
    pub stopping: tokio_util::sync::CancellationToken,
    /// Seals customers' secrets before they are stored; `None` when the grid has no key (shared
    /// records without `--secrets-key`): jobs with secrets are then refused.
    pub secrets: Option<crate::secrets::SecretBox>,
    /// What the storage engines are (shared queues? shared records?): what start-up and the
    /// background stages decide from.
    pub engines: idlegrid_storage::Engines,
    /// When devices were last heard from.
    pub presence: presence::Presence,
    /// Event counters and the operators' time series.
    pub stats: stats::Stats,
    /// Where the files of HLS outputs are in their archives.
    pub hls_index: hls_index::HlsIndexes,
    /// Attempts to redeem link codes (limited over all callers: guessing takes forever).
    pub link_attempts: LinkLimiter,
    /// Leases whose output is being uploaded here.
    pub output_uploads: uploads::OutputUploads,
    /// How fast accounts may be signed up for.
    pub signups: signups::SignupLimits,
    /// Quarantined devices (loaded from the records at start-up, kept by the validator).
    quarantined: std::sync::RwLock<std::collections::HashSet<WorkerId>>,
    /// Devices kept from work by their owners (paused, removed) or their owners' standing
    /// (loaded from the records at start-up and by the mirror, kept by the owners' requests).
    benched: std::sync::RwLock<HashMap<WorkerId, Benched>>,
    /// Records of workers seen lately (capabilities, owner), and when each was read.
    devices: Mutex<HashMap<WorkerId, (Arc<WorkerRecord>, std::time::Instant)>>,
}

/// How long a coordinator trusts its cached copy of a device's capabilities.
pub const DEVICE_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(60);

impl Grid {
    /// Whether a device is quarantined.
    pub fn is_quarantined(&self, worker: WorkerId) -> bool {
        self.quarantined
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&worker)
    }

    /// Devices quarantined, as this coordinator knows.
    pub fn quarantined_count(&self) -> usize {
        self.quarantined
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Devices that have asked this coordinator for work since it started.
    pub fn devices_seen(&self) -> usize {
        self.devices_lock().len()
    }

    /// Why a device is kept from work by its owner or its owner's standing, if it is.
    pub fn benched(&self, worker: WorkerId) -> Option<Benched> {
        self.benched
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&worker)
            .copied()
    }

    /// Replaces the devices kept from work with those the records list.
    pub fn set_benched(&self, benched: Vec<(WorkerId, Benched)>) {
        *self.benched.write().unwrap_or_else(|e| e.into_inner()) = benched.into_iter().collect();
    }

    /// Marks one device kept from work (or no longer: `None`), as a request here just did.
    pub fn bench(&self, worker: WorkerId, why: Option<Benched>) {
        let mut benched = self.benched.write().unwrap_or_else(|e| e.into_inner());
        match why {
            Some(why) => benched.insert(worker, why),
            None => benched.remove(&worker),
        };
    }

    /// Marks devices quarantined.
    pub fn quarantine(&self, workers: &[WorkerId]) {
        self.quarantined
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .extend(workers.iter().copied());
    }

    /// A grid over the given backends.
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        queues: Arc<dyn Queues>,
        blobs: Arc<dyn BlobStore>,
    ) -> Grid {
        let auth = AuthCache::new(
            config.customer_requests_per_sec,
            config.worker_requests_per_sec,
        );
        Grid {
            store,
            queues,
            blobs,
            apps: AppRegistry::builtin(),
            config,
            events: EventBus::default(),
            schedule: Schedule::default(),
            auth,
            recorder: Default::default(),
            stopping: Default::default(),
            secrets: None,
            engines: Default::default(),
            presence: Default::default(),
            stats: Default::default(),
            hls_index: Default::default(),
            link_attempts: link_limiter(),
            output_uploads: Default::default(),
            signups: Default::default(),
            quarantined: Default::default(),
            benched: Default::default(),
            devices: Mutex::default(),
        }
    }

    /// The devices this coordinator heard from lately, with their speeds.
    pub async fn online_devices(&self) -> Vec<OnlineDevice> {
        let mut devices = Vec::new();
        for worker in self.presence.online(idlegrid_storage::now_ms()) {
            // A device that gets no work is no capacity.
            if self.benched(worker).is_some() || self.is_quarantined(worker) {
                continue;
            }
            if let Ok(record) = self.device(worker).await {
                let caps = &record.capabilities;
                let speed = f64::from(caps.slots.max(1)) * idlegrid_domain::schedule::speed(caps);
                devices.push(OnlineDevice {
                    worker,
                    record,
                    speed,
                });
            }
        }
        devices
    }

    /// What the devices this coordinator heard from lately offer: their task slots and
    /// speeds.
    pub async fn capacity(&self) -> idlegrid_domain::schedule::Capacity {
        let mut capacity = idlegrid_domain::schedule::Capacity::default();
        for device in self.online_devices().await {
            capacity.slots += u64::from(device.record.capabilities.slots.max(1));
            capacity.speed += device.speed;
        }
        capacity
    }

    /// Adds a dispatching job to the dispatch table (see [`Schedule::activate`]), its app
    /// read first when it is a published one this coordinator has not met.
    pub async fn activate(&self, job: &JobRecord) {
        if let Err(e) = self.app_of(job).await {
            tracing::warn!(job = %job.id, error = %e, "reading the job's app failed");
        }
        self.schedule
            .activate(job, &self.apps, self.config.max_task_output_bytes);
    }

    /// The app `job` runs: built in, or the published version it names (read from the
    /// records the first time); `None` when it is neither.
    pub async fn app_of(&self, job: &JobRecord) -> StorageResult<Option<Arc<crate::apps::App>>> {
        self.apps
            .load(&*self.store, &job.spec.app, &job.spec.app_version)
            .await
    }

    /// A worker's record (capabilities, owner), cached for [`DEVICE_CACHE_TTL`]: a device
    /// that reports new capabilities through another coordinator sharing the records is
    /// matched by them within that.
    pub async fn device(&self, worker: WorkerId) -> StorageResult<Arc<WorkerRecord>> {
        if let Some((device, read)) = self.devices_lock().get(&worker)
            && read.elapsed() < DEVICE_CACHE_TTL
        {
            return Ok(device.clone());
        }
        let device = self
            .store
            .worker(worker)
            .await?
            .ok_or_else(|| StorageError::NotFound(format!("worker {worker}")))?;
        let device = Arc::new(device);
        self.devices_lock()
            .insert(worker, (device.clone(), std::time::Instant::now()));
        Ok(device)
    }

    /// Drops a worker's cached capabilities (it reported new ones).
    pub fn forget_device(&self, worker: WorkerId) {
        self.devices_lock().remove(&worker);
    }

    fn devices_lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<WorkerId, (Arc<WorkerRecord>, std::time::Instant)>> {
        self.devices.lock().unwrap_or_else(|e| e.into_inner())
    }
}
