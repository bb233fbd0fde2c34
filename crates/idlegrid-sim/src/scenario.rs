//! What a run simulates: the grid's size and make-up, and how badly devices behave.

use serde::{Deserialize, Serialize};

/// One simulated run's settings. [`Scenario::default`] is the scenario: 10,000 devices,
/// 100 jobs, 30% churn, backups on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    /// Devices in the grid, all online at time 0.
    pub devices: usize,
    /// Jobs, all submitted at time 0.
    pub jobs: usize,
    /// Fraction of devices that leave mid-task and come back later, again and again.
    pub churn: f64,
    /// Whether the Feeder starts backup copies of stragglers (`schedule::backups`).
    pub backups: bool,
    /// Seed of every random draw: the same scenario gives the same run.
    pub seed: u64,
    /// Fastest device benchmark ÷ slowest; benchmarks are log-uniform over this range, centred
    /// (geometrically) on the reference device. 1 makes every device the reference device.
    pub speed_spread: f64,
    /// Fraction of attempts that straggle: they take 3–10 times their normal run time (an
    /// overloaded or throttled device).
    pub stragglers: f64,
    /// Mean extra run time of an ordinary attempt over what its device's benchmark predicts
    /// (exponentially distributed; 0.05 is 5%).
    pub jitter: f64,
    /// Whether devices differ in slots (1–4), software (FFmpeg, Python) and owners' allowances,
    /// and jobs in requirements, deadlines and replication. Without it every device has 2 slots
    /// and runs everything, and no job needs anything special.
    pub varied: bool,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            devices: 10_000,
            jobs: 100,
            churn: 0.3,
            backups: true,
            seed: 1,
            speed_spread: 10.0,
            stragglers: 0.02,
            jitter: 0.05,
            varied: true,
        }
    }
}
