//! The Validator stage: takes reported results from the `validate` queue, judges each with its
//! app's validator, records the verdicts, queues jobs whose last chunk was accepted for the
//! Assembler, and sends rejected chunks back for another attempt. For replicated jobs a result
//! the app's validator accepts still needs its replicas to agree ([`crate::quorum`]).

use crate::grid::Grid;
use crate::quorum;
use crate::retry;
use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use idlegrid_domain::{AttemptOutcome, JobId, Replication, ResultId, TaskId};
use idlegrid_storage::StorageError;
use idlegrid_storage::blobs::BlobStore;
use idlegrid_storage::queue::{Item, Stage};
use idlegrid_storage::records::{JobRecord, NewFailure, ResultRecord, Verdict, VerdictsApplied};
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

/// Results being judged at most at once. Apps whose validation is heavy (FFmpeg) limit their
/// own concurrency; cheap judgments are never held up behind them.
const MAX_IN_FLIGHT: usize = BATCH;

/// One judgment: the queue item, its task and replication policy when its job is replicated,
/// and its verdict or the storage error that stopped it.
type Judged = (
    Item,
    Option<(TaskId, Replication)>,
    Result<Option<Verdict>, StorageError>,
);

/// Runs the stage until `shutdown`. Results are judged as a pipeline: new results start as soon
/// as they are reported, and verdicts are recorded as they come, those that finish together
/// in one write; a slow judgment never holds up another result's.
pub async fn run(grid: Arc<Grid>, shutdown: CancellationToken) {
    let mut judging: FuturesUnordered<BoxFuture<'static, Judged>> = FuturesUnordered::new();
    loop {
        let room = MAX_IN_FLIGHT.saturating_sub(judging.len());
        tokio::select! {
            _ = shutdown.cancelled() => break,
            items = grid.queues.pop(Stage::Validate, room, Duration::from_secs(1)), if room > 0 => {
                let items = match items {
                    Ok(items) => items,
                    Err(e) => {
                        tracing::error!(error = %e, "validate queue failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                if let Err(e) = start(&grid, &items, &mut judging).await {
                    tracing::error!(error = %e, "reading results to validate failed; will retry");
                    requeue_later(&grid, items);
                }
            }
            Some(first) = judging.next() => {
                let mut done = vec![first];
                while let Some(Some(more)) = judging.next().now_or_never() {
                    done.push(more);
                }
                record(&grid, done).await;
            }
        }
    }
    // Unjudged results stay unjudged in the records and are queued again at start-up.
}

/// Reads the results behind `items` and starts judging them.
async fn start(
    grid: &Arc<Grid>,
    items: &[Item],
    judging: &mut FuturesUnordered<BoxFuture<'static, Judged>>,
) -> Result<(), StorageError> {
    if items.is_empty() {
        return Ok(());
    }
    let ids: Vec<ResultId> = items.iter().map(|i| ResultId(i.id)).collect();
    let results = grid.store.results_for_validation(&ids).await?;
    let mut jobs: HashMap<JobId, Option<Arc<JobRecord>>> = HashMap::new();
    for result in &results {
        if let std::collections::hash_map::Entry::Vacant(slot) = jobs.entry(result.task.job) {
            slot.insert(grid.store.job(result.task.job).await?.map(Arc::new));
        }
    }
    for result in results {
        let item = Item {
            job: result.task.job,
            id: result.id.0,
        };
        let job = jobs.get(&result.task.job).cloned().flatten();
        let replicated = job
            .as_ref()
            .map(|j| j.spec.replication)
            .filter(|p| p.is_replicated())
            .map(|p| (result.task.id, p));
        let grid = grid.clone();
        judging.push(async move { (item, replicated, judge(&grid, job, result).await) }.boxed());
    }
    Ok(())
}

/// Puts items back on the validate queue after a pause, without holding up the stage.
fn requeue_later(grid: &Arc<Grid>, items: Vec<Item>) {
    if items.is_empty() {
        return;
    }
    let grid = grid.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Err(e) = grid.queues.push(Stage::Validate, &items).await {
            tracing::error!(error = %e, "could not queue results for validation again");
        }
    });
}

/// Records the verdicts of finished judgments; judgments stopped by a storage error, and all
/// of them if recording fails, are queued again.
async fn record(grid: &Arc<Grid>, done: Vec<Judged>) {
    let mut verdicts = Vec::with_capacity(done.len());
    let mut passed = Vec::new();
    let mut recorded = Vec::with_capacity(done.len());
    let mut again = Vec::new();
    for (item, replicated, judged) in done {
        match judged {
            Ok(verdict) => {
                match (verdict, replicated) {
                    (Some(Verdict::Valid(result)), Some((task, policy))) => {
                        passed.push(quorum::Passed {
                            result,
                            task,
                            policy,
                        })
                    }
                    (verdict, _) => verdicts.extend(verdict),
                }
                recorded.push(item);
            }
            Err(e) => {
                tracing::error!(job = %item.job, error = %e, "validation failed; will retry");
                again.push(item);
            }
        }
    }
    let changed = recorded.iter().map(|item| item.job).collect();
    if let Err(e) = apply(grid, &verdicts, &passed, changed).await {
        tracing::error!(error = %e, "recording verdicts failed; will judge again");
        again.extend(recorded);
    }
    requeue_later(grid, again);
}

/// Records verdicts (those of replicated results through the quorum), then acts on them:
/// jobs whose last chunk was accepted queued for assembly, rejected chunks charged and
/// retried, replicas queued, chunks whose replicas never agreed failed with their jobs.
async fn apply(
    grid: &Grid,
    verdicts: &[Verdict],
    passed: &[quorum::Passed],
    changed: BTreeSet<JobId>,
) -> Result<(), StorageError> {
    let mut applied = if verdicts.is_empty() {
        VerdictsApplied::default()
    } else {
        let applied = grid.store.apply_verdicts(verdicts).await?;
        grid.stats.accepted(
            verdicts
                .iter()
                .filter(|v| matches!(v, Verdict::Valid(_)))
                .count(),
        );
        applied
    };
    if !passed.is_empty() {
        applied.merge(quorum::settle(grid, passed).await?);
    }
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
    quorum::queue_replicas(grid, &applied.replicate).await?;
    for (job, task, reason) in &applied.failed {
        retry::fail_job(grid, *job, *task, reason).await?;
    }
    quarantine(grid, &applied.charged).await?;
    for job in changed {
        grid.events.job_changed(job);
    }
    Ok(())
}

/// Quarantines the devices among those just charged with an invalid result that now have too
/// many, and discards their results not yet judged (their tasks go to other devices).
async fn quarantine(
    grid: &Grid,
    charged: &[idlegrid_storage::records::FailureCharged],
) -> Result<(), StorageError> {
    let mut workers: Vec<_> = charged.iter().map(|c| c.worker).collect();
    workers.sort();
    workers.dedup();
    if workers.is_empty() {
        return Ok(());
    }
    let newly = grid
        .store
        .quarantine_untrusted(&workers, grid.config.quarantine_after_invalid)
        .await?;
    if newly.is_empty() {
        return Ok(());
    }
    grid.quarantine(&newly);
    for worker in newly {
        let pending = grid.store.pending_results_of(worker).await?;
        let revoked = grid.queues.revoke(worker).await?;
        tracing::warn!(%worker, discarded = pending.len(), revoked = revoked.len(), "device quarantined after invalid results");
        let verdicts: Vec<Verdict> = pending
            .into_iter()
            .map(|id| {
                Verdict::Invalid(
                    id,
                    "discarded: the device that sent it was quarantined".into(),
                )
            })
            .collect();
        if !verdicts.is_empty() {
            let applied = grid.store.apply_verdicts(&verdicts).await?;
            retry::after_failures(grid, &applied.charged).await?;
        }
        // Its running tasks go to other devices now rather than when the leases expire.
        let handed_back: Vec<NewFailure> = revoked
            .iter()
            .map(|lease| NewFailure {
                task: lease.task,
                job: lease.job,
                worker,
                outcome: AttemptOutcome::Abandoned,
                reason: "taken back: the device was quarantined".into(),
            })
            .collect();
        if !handed_back.is_empty() {
            let charged = grid.store.record_failures(&handed_back).await?;
            retry::after_failures(grid, &charged).await?;
        }
    }
    Ok(())
}
