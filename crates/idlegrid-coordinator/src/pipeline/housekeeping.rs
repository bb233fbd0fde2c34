//! Background upkeep that belongs to no stage: writing when devices were last heard from to
//! the records, sampling the grid's statistics, deleting the parts of abandoned uploads, and
//! forgetting the rate state of idle credentials.

use crate::grid::Grid;
use crate::pipeline::stage::every;
use idlegrid_api::JobState;
use idlegrid_api::grid::{GridSample, StageDepths};
use idlegrid_domain::JobId;
use idlegrid_storage::StorageError;
use idlegrid_storage::queue::Stage;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How often what was heard from devices is written to the records.
const PRESENCE_FLUSH_EVERY: Duration = Duration::from_secs(10);

/// How often the rate state of idle credentials is dropped.
const FORGET_IDLE_EVERY: Duration = Duration::from_secs(60);

/// Writes what was heard from devices to the records every few seconds until `shutdown`, and
/// once more then.
pub async fn presence(grid: Arc<Grid>, shutdown: CancellationToken) {
    every(PRESENCE_FLUSH_EVERY, shutdown, || flush_presence(&grid)).await;
    flush_presence(&grid).await;
}

async fn flush_presence(grid: &Grid) {
    let seen = grid.presence.take_unsaved();
    if let Err(e) = grid.store.touch_workers(&seen).await {
        // Only freshness is lost: the next request from each device records it again.
        tracing::warn!(error = %e, devices = seen.len(), "could not record when devices were last seen");
    }
}

/// Once a minute until `shutdown`, and once more then: writes when secrets were last used, and
/// drops the rate state of credentials and sign-up addresses idle long enough to be back at
/// full burst.
pub async fn credentials(grid: Arc<Grid>, shutdown: CancellationToken) {
    every(FORGET_IDLE_EVERY, shutdown, || async {
        grid.auth.forget_idle();
        grid.signups.forget_idle();
        flush_secrets_used(&grid).await;
    })
    .await;
    flush_secrets_used(&grid).await;
}

async fn flush_secrets_used(grid: &Grid) {
    let used = grid.auth.take_used();
    if let Err(e) = grid.store.touch_secrets(&used).await {
        // Only "last used" freshness is lost: the next use records it again.
        tracing::warn!(error = %e, secrets = used.len(), "could not record when secrets were last used");
    }
}

/// Samples the grid every [`crate::state::stats::INTERVAL`] until `shutdown`.
pub async fn stats(grid: Arc<Grid>, shutdown: CancellationToken) {
    let mut last = (Instant::now(), grid.stats.totals());
    every(crate::state::stats::INTERVAL, shutdown, || {
        let now = (Instant::now(), grid.stats.totals());
        let secs = now.0.duration_since(last.0).as_secs_f64().max(1e-3);
        let rates = [0, 1, 2].map(|i| now.1[i].saturating_sub(last.1[i]) as f64 / secs);
        last = now;
        let grid = &grid;
        async move {
            match sample(grid, rates).await {
                Ok(sample) => grid.stats.keep(sample),
                Err(e) => tracing::warn!(error = %e, "could not sample the grid's statistics"),
            }
        }
    })
    .await;
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

/// Deletes the parts of abandoned uploads until `shutdown`, looking every half of
/// `Config::abandoned_upload_after` (at most every 10 minutes).
pub async fn abandoned_uploads(grid: Arc<Grid>, shutdown: CancellationToken) {
    let period = (grid.config.abandoned_upload_after / 2)
        .clamp(Duration::from_millis(100), Duration::from_secs(600));
    every(period, shutdown, || async {
        if let Err(e) = forget_abandoned(&grid).await {
            tracing::warn!(error = %e, "deleting the parts of abandoned uploads failed");
        }
    })
    .await;
}

/// Deletes the parts of every job still waiting for its input whose newest part is older than
/// `Config::abandoned_upload_after`; returns the jobs whose parts went.
pub async fn forget_abandoned(grid: &Grid) -> Result<Vec<JobId>, StorageError> {
    let after = i64::try_from(grid.config.abandoned_upload_after.as_millis()).unwrap_or(i64::MAX);
    let before = idlegrid_storage::now_ms().saturating_sub(after);
    let mut forgotten = Vec::new();
    for job in grid.store.jobs_in_states(&[JobState::Created]).await? {
        // No part of a younger job can be old enough.
        if job.created_at > before {
            continue;
        }
        let prefix = crate::blob_keys::upload_parts(job.id);
        let newest = grid
            .blobs
            .list(&prefix)
            .await?
            .iter()
            .map(|p| p.modified_ms)
            .max();
        if newest.is_some_and(|newest| newest < before) {
            let parts = grid.blobs.delete_prefix(&prefix).await?;
            tracing::info!(job = %job.id, parts, "parts of an abandoned upload deleted");
            forgotten.push(job.id);
        }
    }
    Ok(forgotten)
}
