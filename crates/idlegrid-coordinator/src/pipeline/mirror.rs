//! For coordinators that share their records: keeps this one's in-memory copies of them —
//! the dispatch table and the quarantine list — in line with the records, so jobs another
//! coordinator partitioned are dispatched here too, jobs another one ended stop being offered,
//! and devices another one quarantined are refused here.

use crate::grid::Grid;
use crate::pipeline::stage::every;
use idlegrid_domain::{JobId, JobState};
use idlegrid_storage::StorageError;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the scheduling table is brought in line with the records.
const SYNC_INTERVAL: Duration = Duration::from_secs(2);

/// Keeps the copies in line with the records every [`SYNC_INTERVAL`] until `shutdown`.
pub async fn run(grid: Arc<Grid>, shutdown: CancellationToken) {
    every(SYNC_INTERVAL, shutdown, || async {
        if let Err(e) = sync_once(&grid).await {
            tracing::warn!(error = %e, "syncing the scheduling table with the records failed");
        }
    })
    .await;
}

/// One round of [`run`].
pub async fn sync_once(grid: &Grid) -> Result<(), StorageError> {
    let dispatching = grid
        .store
        .jobs_in_states(&[JobState::Partitioning, JobState::Running])
        .await?;
    let ids: std::collections::HashSet<JobId> = dispatching.iter().map(|j| j.id).collect();
    // A job without its input yet is still fetching it: its partitioner activates it.
    for job in dispatching.iter().filter(|j| j.input.is_some()) {
        grid.activate(job).await;
    }
    for job in grid.schedule.jobs() {
        if !ids.contains(&job) {
            grid.schedule.forget(job);
        }
    }
    grid.quarantine(&grid.store.quarantined_workers().await?);
    grid.set_benched(grid.store.benched_workers().await?);
    Ok(())
}
