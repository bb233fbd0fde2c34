//! The Validator stage: takes reported results from the `validate` queue, judges each with its
//! app's validator, records the verdicts, queues jobs whose last chunk was accepted for the
//! Assembler, and sends rejected chunks back for another attempt.

use crate::grid::Grid;
use crate::retry;
use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use idlegrid_domain::{JobId, ResultId};
use idlegrid_storage::StorageError;
use idlegrid_storage::blobs::BlobStore;
use idlegrid_storage::queue::{Item, Stage};
use idlegrid_storage::records::{JobRecord, ResultRecord, Verdict};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Results judged per batch.
const BATCH: usize = 2000;

/// An app-specific validator.
#[async_trait]
pub trait Validator: Send + Sync {
    /// Judges one result: `Ok(Ok(()))` accepts it, `Ok(Err(reason))` rejects it, `Err` means
    /// storage failed and the result should be judged again later.
    async fn validate(
        &self,
        job: &JobRecord,
        result: &ResultRecord,
        blobs: &dyn BlobStore,
    ) -> Result<Result<(), String>, StorageError>;
}

/// One result's verdict; `None` when its job is gone.
async fn judge(
    grid: &Grid,
    job: Option<Arc<JobRecord>>,
    result: ResultRecord,
) -> Result<Option<Verdict>, StorageError> {
    let Some(job) = job else { return Ok(None) };
    let Some(app) = grid.apps.get(&job.spec.app) else {
        return Ok(Some(Verdict::Invalid(
            result.id,
            "the job's app is gone".into(),
        )));
    };
    Ok(Some(
        match app
            .validator
            .validate(&job, &result, grid.blobs.as_ref())
            .await?
        {
            Ok(()) => Verdict::Valid(result.id),
            Err(reason) => {
                tracing::warn!(job = %job.id, task = %result.task.id, worker = %result.worker, %reason, "result rejected");
                Verdict::Invalid(result.id, format!("result rejected: {reason}"))
            }
        },
    ))
}

/// Results judged at once.
const PARALLEL_VALIDATIONS: usize = 4;

/// Runs the stage until `shutdown`.
pub async fn run(grid: Arc<Grid>, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        let items = tokio::select! {
            _ = shutdown.cancelled() => return,
            items = grid.queues.pop(Stage::Validate, BATCH, Duration::from_secs(1)) => items,
        };
        let result = match items {
            Ok(items) => validate_batch(&grid, &items).await.map_err(|e| (e, items)),
            Err(e) => Err((e, Vec::new())),
        };
        if let Err((e, items)) = result {
            tracing::error!(error = %e, "validation failed; will retry");
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _ = grid.queues.push(Stage::Validate, &items).await;
        }
    }
}

/// Judges a batch of results and records the verdicts.
pub async fn validate_batch(grid: &Grid, items: &[Item]) -> Result<(), StorageError> {
    let ids: Vec<ResultId> = items.iter().map(|i| ResultId(i.id)).collect();
    let results = grid.store.results_for_validation(&ids).await?;
    let mut jobs: HashMap<JobId, Option<Arc<JobRecord>>> = HashMap::new();
    for result in &results {
        if let std::collections::hash_map::Entry::Vacant(slot) = jobs.entry(result.task.job) {
            slot.insert(grid.store.job(result.task.job).await?.map(Arc::new));
        }
    }
    // Judged several at once: a video chunk takes FFmpeg seconds, and results of other jobs
    // must not queue behind it.
    let pending: Vec<_> = results
        .iter()
        .map(|result| {
            let job = jobs.get(&result.task.job).cloned().flatten();
            judge(grid, job, result.clone())
        })
        .collect();
    let judged: Vec<Option<Verdict>> = futures::stream::iter(pending)
        .buffered(PARALLEL_VALIDATIONS)
        .try_collect()
        .await?;
    let verdicts: Vec<Verdict> = judged.into_iter().flatten().collect();
    let applied = grid.store.apply_verdicts(&verdicts).await?;
    let assemble: Vec<Item> = applied
        .ready_to_assemble
        .iter()
        .map(|&job| Item { job, id: job.0 })
        .collect();
    for job in &applied.ready_to_assemble {
        grid.stop_dispatching(*job).await?;
    }
    grid.queues.push(Stage::Assemble, &assemble).await?;
    retry::after_failures(grid, &applied.charged).await?;
    let changed: BTreeSet<JobId> = results.iter().map(|r| r.task.job).collect();
    for job in changed {
        grid.events.job_changed(job);
    }
    Ok(())
}
