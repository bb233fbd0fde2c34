//! The operators' view of the grid over time (`GET /v1/grid/stats`, the dashboard's grid
//! page): every few seconds a sample of devices online and busy, queued and leased tasks, stage
//! queue depths, and the rates of accepted results, failed attempts and reassignments since the
//! sample before. The last 30 minutes are kept in memory; each coordinator reports what it saw,
//! and a restart starts a new series (long-term history is Prometheus' job, see `/metrics`).
//! Sampled by the pipeline's housekeeping, served by the operations endpoints.

use idlegrid_api::grid::GridSample;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Time between samples.
pub const INTERVAL: Duration = Duration::from_secs(2);
/// Samples kept: 30 minutes.
const KEPT: usize = 900;

/// Event counters the stages bump, and the samples taken from them.
#[derive(Debug, Default)]
pub struct Stats {
    /// Results accepted by validators (with replication, every agreeing replica).
    accepted: AtomicU64,
    /// Failed attempts charged to tasks.
    failed: AtomicU64,
    /// Tasks queued again for another device after an attempt ended without a result.
    reassigned: AtomicU64,
    /// The series, oldest first.
    samples: Mutex<VecDeque<GridSample>>,
}

impl Stats {
    /// Counts results accepted.
    pub fn accepted(&self, n: usize) {
        self.accepted.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts failed attempts.
    pub fn failed(&self, n: usize) {
        self.failed.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts tasks sent back to the queue for another device.
    pub fn reassigned(&self, n: usize) {
        self.reassigned.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The counts so far: accepted, failed, reassigned.
    pub fn totals(&self) -> [u64; 3] {
        [&self.accepted, &self.failed, &self.reassigned].map(|c| c.load(Ordering::Relaxed))
    }

    /// Adds a sample to the series, dropping the oldest past 30 minutes' worth.
    pub fn keep(&self, sample: GridSample) {
        let mut samples = self.lock();
        if samples.len() == KEPT {
            samples.pop_front();
        }
        samples.push_back(sample);
    }

    /// The series, oldest first.
    pub fn samples(&self) -> Vec<GridSample> {
        self.lock().iter().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<GridSample>> {
        self.samples.lock().unwrap_or_else(|e| e.into_inner())
    }
}
