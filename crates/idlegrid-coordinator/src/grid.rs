//! The handles every coordinator module receives: storage, queues, apps, settings, the
//! scheduling table and the event bus; plus opening a coordinator's data directory.

use crate::apps::AppRegistry;
use crate::config::Config;
use crate::events::EventBus;
use crate::http::auth::{AuthCache, hash_secret, new_secret};
use crate::pipeline::feeder::Schedule;
use idlegrid_domain::WorkerId;
use idlegrid_storage::blobs::BlobStore;
use idlegrid_storage::queue::Queues;
use idlegrid_storage::records::{Principal, Store, WorkerRecord};
use idlegrid_storage::{Result as StorageResult, StorageError};
use serde::{Deserialize, Serialize};
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
    pub recorder: crate::pipeline::recorder::Recorder,
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
    pub presence: crate::presence::Presence,
    /// Event counters and the operators' time series.
    pub stats: crate::stats::Stats,
    /// Where the files of HLS outputs are in their archives.
    pub hls_index: crate::http::links::HlsIndexes,
    /// Attempts to redeem link codes (limited over all callers: guessing takes forever).
    pub link_attempts: crate::http::device_links::LinkLimiter,
    /// Leases whose output is being uploaded here.
    pub output_uploads: crate::http::tasks_api::OutputUploads,
    /// Quarantined devices (loaded from the records at start-up, kept by the validator).
    quarantined: std::sync::RwLock<std::collections::HashSet<WorkerId>>,
    /// Records of workers seen lately (capabilities, owner), and when each was read.
    devices: Mutex<HashMap<WorkerId, (Arc<WorkerRecord>, std::time::Instant)>>,
}

/// How long a coordinator trusts its cached copy of a device's capabilities.
pub const DEVICE_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// The secrets a fresh coordinator creates for its first customer and device owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// API key of the `default` tenant.
    pub api_key: String,
    /// Enrollment token of the `default` device owner.
    pub enrollment_token: String,
    /// Key of the `default` operator (the dashboard's grid page). Data directories made
    /// before operators existed get one on their next start.
    #[serde(default)]
    pub operator_key: String,
}

const CREDENTIALS_FILE: &str = "credentials.json";

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

    /// Marks devices quarantined.
    pub fn quarantine(&self, workers: &[WorkerId]) {
        self.quarantined
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .extend(workers.iter().copied());
    }

    /// Opens the backends `config.backends` names (embedded ones in `config.data_dir`),
    /// creating the bootstrap credentials on first use, and returns the grid with those
    /// credentials; clears the scratch of coordinators that were killed ([`crate::scratch`]).
    /// In-process queues start empty: [`crate::serve`] rebuilds them.
    pub async fn open(config: Config) -> anyhow::Result<(Arc<Grid>, Credentials)> {
        std::fs::create_dir_all(&config.data_dir)?;
        crate::scratch::clear_abandoned();
        let opened = config.backends.open(&config.data_dir).await?;
        let secrets = match (&config.secrets_key, opened.engines.shared_records) {
            (Some(key), _) => {
                Some(crate::secrets::SecretBox::from_base64(key).map_err(anyhow::Error::msg)?)
            }
            // Records of this coordinator alone: the key lives beside them.
            (None, false) => Some(crate::secrets::SecretBox::load_or_create(
                &config.data_dir.join("secrets.key"),
            )?),
            // Shared records: every coordinator must seal with the same key, given to all.
            (None, true) => None,
        };
        let mut grid = Grid::new(config, opened.store, opened.queues, opened.blobs);
        grid.secrets = secrets;
        grid.engines = opened.engines;
        let credentials = grid.bootstrap_credentials().await?;
        Ok((Arc::new(grid), credentials))
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
            link_attempts: crate::http::device_links::limiter(),
            output_uploads: Default::default(),
            quarantined: Default::default(),
            devices: Mutex::default(),
        }
    }

    async fn bootstrap_credentials(&self) -> anyhow::Result<Credentials> {
        let path = self.config.data_dir.join(CREDENTIALS_FILE);
        if let Ok(text) = std::fs::read_to_string(&path) {
            let mut credentials: Credentials = serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{} is not valid: {e}", path.display()))?;
            if credentials.operator_key.is_empty() {
                credentials.operator_key = self.add_operator_key().await?;
                self.save_credentials(&path, &credentials)?;
            }
            // Grids from before the ledger give their customer the opening credit too.
            let tenant = self.store.ensure_tenant("default").await?;
            self.grant_opening_credit(tenant).await?;
            self.default_owner_is_the_default_customer(tenant).await?;
            return Ok(credentials);
        }
        let credentials = Credentials {
            api_key: new_secret("igk_"),
            enrollment_token: new_secret("ige_"),
            operator_key: self.add_operator_key().await?,
        };
        let tenant = self.store.ensure_tenant("default").await?;
        self.grant_opening_credit(tenant).await?;
        let owner = self.default_owner_is_the_default_customer(tenant).await?;
        self.store
            .add_credential(hash_secret(&credentials.api_key), Principal::Tenant(tenant))
            .await?;
        self.store
            .add_credential(
                hash_secret(&credentials.enrollment_token),
                Principal::Owner(owner),
            )
            .await?;
        self.save_credentials(&path, &credentials)?;
        Ok(credentials)
    }

    /// Makes the first device owner part of the first customer's account: a fresh grid is one
    /// person's, whose devices are their own fleet. Returns the owner.
    async fn default_owner_is_the_default_customer(
        &self,
        tenant: idlegrid_domain::TenantId,
    ) -> StorageResult<i64> {
        let owner = self.store.ensure_owner("default").await?;
        self.store.set_owner_tenant(owner, Some(tenant)).await?;
        Ok(owner)
    }

    /// Gives a customer the configured opening credit, once (repeats post nothing).
    pub async fn grant_opening_credit(
        &self,
        tenant: idlegrid_domain::TenantId,
    ) -> StorageResult<()> {
        if self.config.opening_credit.0 > 0 {
            self.store
                .transfer(
                    &format!("opening:{tenant}"),
                    idlegrid_domain::Account::PlatformGrants,
                    idlegrid_domain::Account::Customer(tenant),
                    self.config.opening_credit,
                )
                .await?;
        }
        Ok(())
    }

    /// Creates a key for the `default` operator and returns it.
    async fn add_operator_key(&self) -> anyhow::Result<String> {
        let key = new_secret("igo_");
        let operator = self.store.ensure_operator("default").await?;
        self.store
            .add_credential(hash_secret(&key), Principal::Operator(operator))
            .await?;
        Ok(key)
    }

    fn save_credentials(
        &self,
        path: &std::path::Path,
        credentials: &Credentials,
    ) -> anyhow::Result<()> {
        let tmp = path.with_extension("json.tmp");
        write_private(&tmp, serde_json::to_string_pretty(credentials)?.as_bytes())?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }

    /// What the devices this coordinator heard from lately offer: their task slots and
    /// speeds.
    pub async fn capacity(&self) -> idlegrid_domain::schedule::Capacity {
        let mut capacity = idlegrid_domain::schedule::Capacity::default();
        for worker in self.presence.online(idlegrid_storage::now_ms()) {
            if let Ok(device) = self.device(worker).await {
                let caps = &device.capabilities;
                let slots = u64::from(caps.slots.max(1));
                capacity.slots += slots;
                capacity.speed += slots as f64 * idlegrid_domain::schedule::speed(caps);
            }
        }
        capacity
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

/// Writes a file only its owner can read.
pub(crate) fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
