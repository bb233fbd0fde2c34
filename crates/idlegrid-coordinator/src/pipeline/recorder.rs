//! Group commit of worker reports. Every report request hands its checked reports to one
//! recorder task (through the handle in [`crate::state::recorder`]), which writes everything that arrived while its previous write was in flight
//! as a single batch: one transaction for the results, one for the failures. Under load many
//! workers' reports share a commit (and its fsync); with one worker nothing waits longer than
//! its own write.

use crate::grid::Grid;
use crate::lifecycle;
use crate::state::recorder::Batch;
use idlegrid_storage::StorageError;
use idlegrid_storage::queue::{Item, Stage};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Most results written in one batch.
const MAX_BATCH: usize = 4096;

/// Runs the recorder until `shutdown`, then finishes what is already waiting.
pub async fn run(grid: Arc<Grid>, shutdown: CancellationToken) {
    let Some(mut rx) = grid.recorder.take_receiver() else {
        tracing::error!("the report recorder is already running");
        return;
    };
    loop {
        let first = tokio::select! {
            first = rx.recv() => first,
            _ = shutdown.cancelled() => {
                rx.close();
                rx.recv().await
            }
        };
        let Some(first) = first else { return };
        let mut group = vec![first];
        let mut size = group[0].batch.results.len();
        while size < MAX_BATCH {
            match rx.try_recv() {
                Ok(more) => {
                    size += more.batch.results.len();
                    group.push(more);
                }
                Err(_) => break,
            }
        }
        let mut all = Batch::default();
        for waiting in &mut group {
            all.results.append(&mut waiting.batch.results);
            all.failures.append(&mut waiting.batch.failures);
        }
        let outcome = write(&grid, &all).await;
        if let Err(e) = &outcome {
            tracing::error!(error = %e, reports = all.results.len() + all.failures.len(), "recording reports failed");
            // Nothing of this batch is known to be recorded: the tasks go back to their queues.
            for (job, task, worker) in all
                .results
                .iter()
                .map(|r| (r.job, r.task, r.worker))
                .chain(all.failures.iter().map(|f| (f.job, f.task, f.worker)))
            {
                let _ = lifecycle::requeue(&grid, job, task, worker).await;
            }
        }
        for waiting in group {
            let _ = waiting
                .done
                .send(outcome.as_ref().map(|_| ()).map_err(|e| e.to_string()));
        }
    }
}

async fn write(grid: &Grid, batch: &Batch) -> Result<(), StorageError> {
    if !batch.results.is_empty() {
        let ids = grid.store.record_results(&batch.results).await?;
        let mut items = Vec::with_capacity(ids.len());
        let mut refused = Vec::new();
        for (r, id) in batch.results.iter().zip(ids) {
            match id {
                Some(id) => items.push(Item {
                    job: r.job,
                    id: id.0,
                }),
                // The chunk stopped waiting for a result (another copy's came first): this
                // device holds no copy of it any more, and may check it later.
                None => refused.push((r.job, r.task, r.worker)),
            }
        }
        grid.queues.push(Stage::Validate, &items).await?;
        grid.queues.release_holders(&refused).await?;
    }
    if !batch.failures.is_empty() {
        let charged = grid.store.record_failures(&batch.failures).await?;
        lifecycle::after_failures(grid, &charged).await?;
    }
    Ok(())
}
