//! The Feeder stage: moves task ids from the partitioner's queue into per-job task queues,
//! adding their jobs to the dispatch table ([`crate::state::schedule`]) the Tasks API consults.

use crate::grid::Grid;
use idlegrid_domain::{TaskId, TaskState, WorkerId};
use idlegrid_storage::StorageError;
use idlegrid_storage::queue::{Item, Stage};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Task ids moved per queue operation.
const BATCH: usize = 10_000;

/// Runs the stage until `shutdown`.
pub async fn run(grid: Arc<Grid>, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        let items = tokio::select! {
            _ = shutdown.cancelled() => return,
            items = grid.queues.pop(Stage::Feed, BATCH, Duration::from_secs(1)) => items,
        };
        let result = match items {
            Ok(items) => feed(&grid, &items).await.map_err(|e| (e, items)),
            Err(e) => Err((e, Vec::new())),
        };
        if let Err((e, items)) = result {
            tracing::error!(error = %e, "feeding failed; will retry");
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _ = grid.queues.push(Stage::Feed, &items).await;
        }
    }
}

/// Moves created tasks into their jobs' task queues, in the order they came. A replicated
/// job's task is queued once for each result it still lacks, kept from the devices that sent
/// the others (so this also restores replicas after a restart).
pub async fn feed(grid: &Grid, items: &[Item]) -> Result<(), StorageError> {
    let mut start = 0;
    while start < items.len() {
        let job = items[start].job;
        let end = start
            + items[start..]
                .iter()
                .position(|i| i.job != job)
                .unwrap_or(items.len() - start);
        let tasks: Vec<TaskId> = items[start..end].iter().map(|i| TaskId(i.id)).collect();
        start = end;
        if grid.schedule.get(job).is_none() {
            match grid.store.job(job).await? {
                Some(record) if record.state.is_dispatching() => {
                    grid.activate(&record).await;
                }
                // Ended or unknown: its tasks are not dispatched.
                _ => continue,
            }
        }
        let Some(active) = grid.schedule.get(job) else {
            continue;
        };
        if !active.replication.is_replicated() {
            grid.queues.enqueue_tasks(job, &tasks, false).await?;
            continue;
        }
        for state in grid.store.replica_states(&tasks).await? {
            if state.state != TaskState::Pending {
                continue;
            }
            let sent: Vec<WorkerId> = state.results.iter().map(|r| r.worker).collect();
            let copies = state.wanted.saturating_sub(sent.len() as u32);
            grid.queues
                .enqueue_replicas(job, state.task, copies, &sent, false)
                .await?;
        }
    }
    Ok(())
}
