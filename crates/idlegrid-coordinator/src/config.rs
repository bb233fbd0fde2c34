//! Coordinator settings, with the defaults a laptop grid wants.

use std::path::PathBuf;
use std::time::Duration;

/// How a coordinator runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Directory holding the SQLite records (`records.db`), the blobs (`blobs/`) and the
    /// bootstrap credentials (`credentials.json`).
    pub data_dir: PathBuf,
    /// How long a lease lasts without a heartbeat.
    pub lease_ttl: Duration,
    /// Largest job input accepted, in bytes.
    pub max_upload_bytes: u64,
    /// Largest output one task may return, in bytes.
    pub max_task_output_bytes: u64,
    /// How long the parts of an input upload are kept without a new part arriving; then the
    /// upload counts as abandoned and its parts are deleted.
    pub abandoned_upload_after: Duration,
    /// Largest customer task script, in bytes.
    pub max_script_bytes: usize,
    /// How often the reaper looks for expired leases.
    pub reap_interval: Duration,
    /// How long a retried task is kept from the worker whose attempt failed (then anyone may
    /// take it, so a grid of one device still retries).
    pub retry_elsewhere: Duration,
    /// Requests per second one customer API key (or enrollment token) may make, with bursts of
    /// twice as many; 0 for no limit.
    pub customer_requests_per_sec: u32,
    /// Requests per second one worker may make, with bursts of twice as many; 0 for no limit.
    /// Workers batch their leases and reports, so even a busy one needs few.
    pub worker_requests_per_sec: u32,
    /// Invalid results after which a device is quarantined: it gets no more work, and its
    /// results not yet judged are discarded. A result is invalid only once another party's
    /// result outweighs it (a quorum that disagrees, or an accepted re-run after the app's
    /// validator rejected it), so one is a forgery caught, and the default.
    pub quarantine_after_invalid: u64,
    /// How long a device must have been registered before adaptive replication may trust it,
    /// however many valid results it has: trust is earned over time as well as results.
    pub trust_min_age: Duration,
    /// How long earnings of results accepted without an independent party's agreement are
    /// held before they are the owner's; an owner caught forging meanwhile forfeits them.
    pub earnings_hold: Duration,
    /// With shared queues, how often to sweep for work whose queue item was lost (work unmoved
    /// over two sweeps is queued again).
    pub sweep_interval: Duration,
    /// Whether customers' inputs may be fetched from (and outputs written to) private and
    /// local addresses over plain HTTP; off, only public `https://` sources are reached.
    pub allow_private_sources: bool,
    /// Pause after a webhook delivery's first failed attempt; each further failure doubles it
    /// (at most 10 minutes).
    pub webhook_retry_base: Duration,
    /// Base64 key (32 bytes) sealing customers' secrets; coordinators sharing records must
    /// share it. `None`: embedded coordinators keep one in `data_dir/secrets.key`.
    pub secrets_key: Option<String>,
    /// Where records, queues and blobs live (embedded in `data_dir` unless URLs say otherwise).
    pub backends: idlegrid_storage::Backends,
    /// Credit each new customer (the bootstrap one, those operators create, those who sign
    /// up) is given once, so they can run jobs at once.
    pub opening_credit: idlegrid_domain::Credits,
    /// Which kinds of account people may sign up for themselves.
    pub signup: SignupOpen,
    /// How credits are shown to people.
    pub credit_display: idlegrid_api::jobs::CreditDisplay,
    /// Directory of the browser worker's runtimes (Pyodide, ffmpeg.wasm), served at
    /// `/runtimes/`; made by `scripts/browser-runtimes.sh`. `None`: the `/contribute` page
    /// says browsers cannot work for this coordinator.
    pub browser_runtimes: Option<PathBuf>,
}

/// Which self-service sign-ups a grid takes (none unless its operator opens them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignupOpen {
    /// Customers may sign up.
    pub customers: bool,
    /// Device owners may sign up.
    pub owners: bool,
}

impl Config {
    /// Defaults for a coordinator keeping its data in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            data_dir: data_dir.into(),
            lease_ttl: Duration::from_secs(30),
            max_upload_bytes: 10 * 1024 * 1024 * 1024,
            max_task_output_bytes: 512 * 1024 * 1024,
            abandoned_upload_after: Duration::from_secs(24 * 3600),
            max_script_bytes: 1024 * 1024,
            reap_interval: Duration::from_millis(250),
            retry_elsewhere: Duration::from_secs(30),
            customer_requests_per_sec: 100,
            worker_requests_per_sec: 2000,
            quarantine_after_invalid: 1,
            trust_min_age: Duration::from_secs(3600),
            earnings_hold: Duration::from_secs(24 * 3600),
            sweep_interval: Duration::from_secs(30),
            allow_private_sources: false,
            webhook_retry_base: Duration::from_secs(1),
            secrets_key: None,
            backends: Default::default(),
            opening_credit: idlegrid_domain::Credits(100 * idlegrid_domain::pricing::MICROS),
            browser_runtimes: None,
            signup: SignupOpen::default(),
            credit_display: Default::default(),
        }
    }

    /// Seconds between the heartbeats workers are asked to send: a quarter of the lease, so
    /// three can be lost before the lease expires.
    pub fn heartbeat_secs(&self) -> u64 {
        (self.lease_ttl.as_secs() / 4).max(1)
    }
}
