//! The reaper: takes back leases whose deadline passed (a device that went silent), charging
//! the attempt to its task, and fails jobs past their deadline.

use crate::grid::Grid;
use crate::lifecycle;
use idlegrid_domain::AttemptOutcome;
use idlegrid_storage::StorageError;
use idlegrid_storage::records::NewFailure;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Leases taken back per round.
const EXPIRED_PER_ROUND: usize = 1000;

/// Takes back expired leases until `shutdown`: each is a `no_reply` attempt charged to its task.
pub async fn run(grid: Arc<Grid>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(grid.config.reap_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_expiry = Instant::now();
    while !shutdown.is_cancelled() {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = reap_once(&grid).await {
            tracing::error!(error = %e, "reaping expired leases failed");
        }
        // Deadlines are whole seconds: once a second is soon enough.
        if last_expiry.elapsed() >= Duration::from_secs(1) {
            last_expiry = Instant::now();
            if let Err(e) = expire_jobs(&grid).await {
                tracing::error!(error = %e, "expiring jobs past their deadline failed");
            }
        }
    }
}

/// Fails the jobs whose deadline passed; their chunks and results are deleted with them.
pub async fn expire_jobs(grid: &Grid) -> Result<usize, StorageError> {
    let due = grid
        .store
        .jobs_past_deadline(idlegrid_storage::now_ms())
        .await?;
    for &job in &due {
        let deadline = grid
            .store
            .job(job)
            .await?
            .and_then(|j| j.spec.deadline_secs)
            .unwrap_or_default();
        let reason = format!("expired: the job did not finish within its deadline of {deadline} s");
        crate::lifecycle::end_job(grid, job, idlegrid_domain::JobState::Failed, Some(&reason))
            .await?;
    }
    Ok(due.len())
}

/// Takes back every lease expired by now.
pub async fn reap_once(grid: &Grid) -> Result<usize, StorageError> {
    let expired = grid
        .queues
        .take_expired(idlegrid_storage::now_ms(), EXPIRED_PER_ROUND)
        .await?;
    if expired.is_empty() {
        return Ok(0);
    }
    let secs = grid.config.lease_ttl.as_secs();
    let failures: Vec<NewFailure> = expired
        .iter()
        .map(|lease| NewFailure {
            task: lease.task,
            job: lease.job,
            worker: lease.worker,
            outcome: AttemptOutcome::NoReply,
            reason: format!(
                "lease expired: worker {} sent no report or heartbeat for {secs} s (disconnected or stopped)",
                lease.worker
            ),
        })
        .collect();
    tracing::warn!(count = expired.len(), "leases expired");
    let charged = grid.store.record_failures(&failures).await?;
    lifecycle::after_failures(grid, &charged).await?;
    Ok(expired.len())
}
