//! Group commit of worker reports. Every report request hands its checked reports to one
//! recorder task, which writes everything that arrived while its previous write was in flight
//! as a single batch: one transaction for the results, one for the failures. Under load many
//! workers' reports share a commit (and its fsync); with one worker nothing waits longer than
//! its own write.

use crate::grid::Grid;
use crate::lifecycle;
use idlegrid_storage::StorageError;
use idlegrid_storage::queue::{Item, Stage};
use idlegrid_storage::records::{NewFailure, NewResult};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Most results written in one batch.
const MAX_BATCH: usize = 4096;

/// Checked reports of one request whose leases were already claimed.
#[derive(Debug, Default)]
pub struct Batch {
    /// Completed tasks.
    pub results: Vec<NewResult>,
    /// Failed attempts, and hand-backs (outcome `abandoned`, not charged); either way the
    /// task goes back to its queue.
    pub failures: Vec<NewFailure>,
}

struct Waiting {
    batch: Batch,
    done: oneshot::Sender<Result<(), String>>,
}

/// The handle report handlers write through.
pub struct Recorder {
    tx: mpsc::UnboundedSender<Waiting>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Waiting>>>,
}

impl Default for Recorder {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Recorder {
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }
}

impl Recorder {
    /// Records a request's reports; returns once they are committed and queued for validation.
    pub async fn record(&self, batch: Batch) -> Result<(), StorageError> {
        if batch.results.is_empty() && batch.failures.is_empty() {
            return Ok(());
        }
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Waiting { batch, done })
            .map_err(|_| StorageError::Backend("the coordinator is shutting down".into()))?;
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StorageError::Backend(e)),
            Err(_) => Err(StorageError::Backend(
                "the coordinator is shutting down".into(),
            )),
        }
    }
}

/// Runs the recorder until `shutdown`, then finishes what is already waiting.
pub async fn run(grid: Arc<Grid>, shutdown: CancellationToken) {
    let Some(mut rx) = grid
        .recorder
        .rx
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
    else {
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
