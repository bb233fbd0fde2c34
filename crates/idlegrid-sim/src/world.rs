//! The simulated devices and jobs, drawn from a [`Scenario`] with its seed.

use crate::Scenario;
use idlegrid_domain::pricing::{REFERENCE_BENCHMARK, Tier};
use idlegrid_domain::schedule::{self, JobEntry};
use idlegrid_domain::{Allowances, Capabilities, JobId, Requirements, TenantId};
use rand::Rng;
use rand::rngs::StdRng;

/// Reference core-hours of the smallest and largest job per 10,000 devices: job sizes scale
/// with the grid, so a run lasts about an hour of virtual time whatever the device count.
const JOB_CORE_HOURS: (f64, f64) = (1.0, 2000.0);

/// Tenants the jobs belong to (fair share is between them).
const TENANTS: i64 = 8;

/// One device as its owner registered it.
#[derive(Debug, Clone)]
pub(crate) struct DeviceSpec {
    /// What it reports to the coordinator.
    pub caps: Capabilities,
    /// Work one slot does per millisecond, in reference core-milliseconds.
    pub speed: f64,
    /// Whether it leaves mid-task and comes back, over and over.
    pub churns: bool,
}

/// One job as its customer submitted it.
#[derive(Debug, Clone)]
pub(crate) struct JobSpec {
    /// What the scheduling policy knows of it; `chunk_work_ms` is set when it is cut.
    pub entry: JobEntry,
    /// Total work, in reference core-milliseconds.
    pub work_ms: i64,
    /// Devices that run each chunk (2 for a fixed-replication job).
    pub replicas: u32,
    /// Whether its tasks report progress with their heartbeats.
    pub reports_progress: bool,
}

/// A uniform draw from `low..high`.
fn uniform(rng: &mut StdRng, low: f64, high: f64) -> f64 {
    low + (high - low) * rng.random::<f64>()
}

/// A log-uniform draw from `low..high`: every factor of ten is as likely as the next.
pub(crate) fn log_uniform(rng: &mut StdRng, low: f64, high: f64) -> f64 {
    (low.ln() + (high.ln() - low.ln()) * rng.random::<f64>()).exp()
}

/// An exponential draw with the given mean.
pub(crate) fn exponential(rng: &mut StdRng, mean: f64) -> f64 {
    -mean * (1.0 - rng.random::<f64>()).ln()
}

/// The scenario's devices.
pub(crate) fn devices(scenario: &Scenario, rng: &mut StdRng) -> Vec<DeviceSpec> {
    let half = scenario.speed_spread.max(1.0).sqrt();
    (0..scenario.devices)
        .map(|_| {
            let benchmark =
                log_uniform(rng, REFERENCE_BENCHMARK / half, REFERENCE_BENCHMARK * half);
            let mut caps = Capabilities {
                cores: 2,
                memory_mb: 8192,
                os: "linux".into(),
                arch: "x86_64".into(),
                python: Some("3.11.4".into()),
                ffmpeg: Some("6.1".into()),
                benchmark,
                slots: 2,
                allows: Allowances::default(),
                ..Default::default()
            };
            if scenario.varied {
                caps.slots = rng.random_range(1..=4);
                caps.cores = caps.slots;
                if rng.random_bool(0.3) {
                    caps.ffmpeg = None;
                }
                if rng.random_bool(0.05) {
                    caps.python = None;
                }
                if rng.random_bool(0.15) {
                    // Laptops on battery and phones: short tasks only.
                    caps.allows.task_secs = Some(120);
                }
            }
            DeviceSpec {
                speed: benchmark / REFERENCE_BENCHMARK,
                churns: rng.random_bool(scenario.churn.clamp(0.0, 1.0)),
                caps,
            }
        })
        .collect()
}

/// The scenario's jobs, not yet cut into chunks. Every job fits at least one device: a job
/// whose requirements no device meets is given none.
pub(crate) fn jobs(scenario: &Scenario, rng: &mut StdRng, devices: &[DeviceSpec]) -> Vec<JobSpec> {
    let scale = scenario.devices as f64 / 10_000.0;
    (0..scenario.jobs)
        .map(|i| {
            let hours = log_uniform(rng, JOB_CORE_HOURS.0, JOB_CORE_HOURS.1) * scale;
            let tier = match rng.random_range(0..10) {
                0..=2 => Tier::Economy,
                3..=6 => Tier::Standard,
                _ => Tier::Fast,
            };
            let mut entry = JobEntry {
                job: JobId(i as i64),
                tenant: TenantId(rng.random_range(0..TENANTS)),
                tier,
                priority: 0,
                requirements: Requirements::default(),
                running: 0,
                chunk_work_ms: schedule::MIN_CHUNK_WORK_MS,
                timeout_secs: 600,
                fit_share: 1.0,
            };
            let mut replicas = 1;
            if scenario.varied {
                if rng.random_bool(0.1) {
                    entry.priority = 5;
                }
                entry.timeout_secs = [300, 600, 1200][rng.random_range(0..3)];
                match rng.random_range(0..10) {
                    0..=2 => entry.requirements.ffmpeg = true,
                    3..=4 => entry.requirements.python = Some("3.8".into()),
                    5 => entry.requirements.min_benchmark = Some(1500.0),
                    _ => {}
                }
                if rng.random_bool(0.1) {
                    replicas = 2;
                }
            }
            if !devices
                .iter()
                .any(|d| entry.requirements.check(&d.caps).is_ok())
            {
                entry.requirements = Requirements::default();
            }
            JobSpec {
                entry,
                work_ms: (hours * 3_600_000.0).round().max(1.0) as i64,
                replicas,
                reports_progress: rng.random_bool(0.5),
            }
        })
        .collect()
}

/// Time in milliseconds a device is away once it leaves: 5 to 30 minutes.
pub(crate) fn away_ms(rng: &mut StdRng) -> i64 {
    uniform(rng, 5.0 * 60_000.0, 30.0 * 60_000.0) as i64
}

/// Time in milliseconds a churning device stays before it leaves: exponential, mean 30 minutes.
pub(crate) fn stay_ms(rng: &mut StdRng) -> i64 {
    exponential(rng, 30.0 * 60_000.0).max(1.0) as i64
}

/// How many times its benchmark's prediction one attempt takes: at least 1 (a benchmark is the
/// device's best speed), `jitter` more on average, 3–10 times for a straggler.
pub(crate) fn slowdown(rng: &mut StdRng, scenario: &Scenario) -> f64 {
    if rng.random_bool(scenario.stragglers.clamp(0.0, 1.0)) {
        uniform(rng, 3.0, 10.0)
    } else {
        1.0 + exponential(rng, scenario.jitter.max(0.0))
    }
}
