//! The operators' view of the grid over time (`GET /v1/grid/stats`, the dashboard's grid
//! page): every few seconds a sample of devices online and busy, queued and leased tasks, stage
//! queue depths, and the rates of accepted results, failed attempts and reassignments since the
//! sample before. The last 30 minutes are kept in memory; each coordinator reports what it saw,
//! and a restart starts a new series (long-term history is Prometheus' job, see `/metrics`).

use crate::grid::Grid;
use crate::http::auth::Operator;
use crate::http::error::ApiResult;
use axum::Json;
use axum::extract::State;
use idlegrid_api::grid::{GridSample, GridStats, StageDepths};
use idlegrid_storage::StorageError;
use idlegrid_storage::queue::Stage;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

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

    fn totals(&self) -> [u64; 3] {
        [&self.accepted, &self.failed, &self.reassigned].map(|c| c.load(Ordering::Relaxed))
    }

    fn samples(&self) -> std::sync::MutexGuard<'_, VecDeque<GridSample>> {
        self.samples.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Samples the grid every [`INTERVAL`] until `shutdown`.
pub async fn run(grid: Arc<Grid>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = (Instant::now(), grid.stats.totals());
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = (Instant::now(), grid.stats.totals());
        let secs = now.0.duration_since(last.0).as_secs_f64().max(1e-3);
        let rates = [0, 1, 2].map(|i| now.1[i].saturating_sub(last.1[i]) as f64 / secs);
        last = now;
        match sample(&grid, rates).await {
            Ok(sample) => {
                let mut samples = grid.stats.samples();
                if samples.len() == KEPT {
                    samples.pop_front();
                }
                samples.push_back(sample);
            }
            Err(e) => tracing::warn!(error = %e, "could not sample the grid's statistics"),
        }
    }
}

async fn sample(grid: &Grid, rates: [f64; 3]) -> Result<GridSample, StorageError> {
    let now = idlegrid_storage::now_ms();
    let online = grid.presence.online(now);
    let held = grid.queues.leases_held(&online).await?;
    let (mut queued, mut leased) = (0, 0);
    let jobs = grid.schedule.jobs();
    for &job in &jobs {
        let depth = grid.queues.job_depth(job).await?;
        queued += depth.queued;
        leased += depth.leased;
    }
    let mut depth = [0; 4];
    for (slot, stage) in depth.iter_mut().zip(Stage::ALL) {
        *slot = grid.queues.stage_len(stage).await?;
    }
    let [partition, feed, validate, assemble] = depth;
    Ok(GridSample {
        at: jiff::Timestamp::from_millisecond(now).unwrap_or(jiff::Timestamp::UNIX_EPOCH),
        devices_online: online.len() as u64,
        devices_busy: held.iter().filter(|&&n| n > 0).count() as u64,
        tasks_queued: queued,
        tasks_leased: leased,
        jobs_running: jobs.len() as u64,
        stages: StageDepths {
            partition,
            feed,
            validate,
            assemble,
        },
        completed_per_sec: rates[0],
        failed_per_sec: rates[1],
        reassigned_per_sec: rates[2],
    })
}

/// The grid's statistics over the last 30 minutes, as this coordinator saw them.
#[utoipa::path(get, path = "/v1/grid/stats", tag = "grid",
    security(("operator_key" = [])),
    responses((status = 200, body = GridStats)))]
pub async fn grid_stats(
    State(grid): State<Arc<Grid>>,
    _operator: Operator,
) -> ApiResult<Json<GridStats>> {
    Ok(Json(GridStats {
        interval_secs: INTERVAL.as_secs(),
        samples: grid.stats.samples().iter().cloned().collect(),
    }))
}
