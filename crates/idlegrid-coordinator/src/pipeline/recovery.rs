//! Start-up recovery: the embedded queues live in memory, so after a restart they are rebuilt
//! from the records — every piece of unfinished work is queued again for the stage that owns it.
//! Stages are idempotent, so work queued twice (a backend whose queues survived) is harmless.

use crate::grid::Grid;
use idlegrid_domain::JobState;
use idlegrid_storage::StorageError;
use idlegrid_storage::queue::{Item, Stage};

/// What was queued again.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// Jobs sent back to the partitioner.
    pub partition: usize,
    /// Tasks sent back to the feeder.
    pub tasks: usize,
    /// Results sent back to the validator.
    pub results: usize,
    /// Jobs sent back to the assembler.
    pub assemble: usize,
}

/// Rebuilds every queue from the records.
pub async fn rebuild_queues(grid: &Grid) -> Result<Recovered, StorageError> {
    let mut recovered = Recovered::default();
    grid.quarantine(&grid.store.quarantined_workers().await?);
    let unfinished = grid
        .store
        .jobs_in_states(&[
            JobState::Submitted,
            JobState::Partitioning,
            JobState::Running,
            JobState::Assembling,
        ])
        .await?;
    for job in &unfinished {
        let item = Item {
            job: job.id,
            id: job.id.0,
        };
        match job.state {
            JobState::Submitted | JobState::Partitioning => {
                grid.queues.push(Stage::Partition, &[item]).await?;
                recovered.partition += 1;
            }
            JobState::Assembling => {
                grid.queues.push(Stage::Assemble, &[item]).await?;
                recovered.assemble += 1;
            }
            _ => {}
        }
        if job.state.is_dispatching() && job.chunks_failed > 0 {
            // A chunk failed but the job was not ended before the crash: end it now.
            crate::lifecycle::fail_failed_job(grid, job).await?;
            continue;
        }
        if job.state.is_dispatching() {
            let tasks = grid.store.pending_tasks(job.id).await?;
            let items: Vec<Item> = tasks
                .iter()
                .map(|t| Item {
                    job: job.id,
                    id: t.0,
                })
                .collect();
            grid.queues.push(Stage::Feed, &items).await?;
            recovered.tasks += items.len();
        }
    }
    let results: Vec<Item> = grid
        .store
        .unvalidated_results()
        .await?
        .into_iter()
        .map(|(job, id)| Item { job, id: id.0 })
        .collect();
    recovered.results = results.len();
    grid.queues.push(Stage::Validate, &results).await?;
    Ok(recovered)
}
