//! The Validator stage: takes reported results from the `validate` queue, judges each with its
//! app's validator, records the verdicts, queues jobs whose last chunk was accepted for the
//! Assembler, and sends rejected chunks back for another attempt. A result of a replicated
//! job, a suspect one, or one the app's validator rejected is decided with its chunk's other
//! results ([`crate::pipeline::quorum`]): agreement counts only across independent parties, and a
//! rejected result blames its device only once an independent party's result is accepted.

use crate::apps::plugin::{Judgment, Validator};
use crate::grid::Grid;
use crate::lifecycle;
use crate::pipeline::quorum;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use idlegrid_domain::{AttemptOutcome, JobId, ResultId, WorkerId};
use idlegrid_storage::StorageError;
use idlegrid_storage::queue::{Item, Stage};
use idlegrid_storage::records::{JobRecord, NewFailure, ResultRecord, Verdict, VerdictsApplied};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Results judged per batch.
const BATCH: usize = 2000;

/// What became of one result: a verdict to record as it is (an unreplicated job's accepted
/// result), or a judgment to decide with the chunk's other results.
enum Outcome {
    Verdict(Verdict),
    Decide(quorum::Judged),
}

/// Judges one result; `None` when its job is gone.
async fn judge(
    grid: &Grid,
    job: Option<Arc<JobRecord>>,
    result: ResultRecord,
) -> Result<Option<Outcome>, StorageError> {
    let Some(job) = job else { return Ok(None) };
    // A job that failed or was cancelled has lost its work blobs: its late results are not
    // judged (nothing could be, and retrying would go on for ever).
    if matches!(
        job.state,
        idlegrid_domain::JobState::Failed | idlegrid_domain::JobState::Cancelled
    ) {
        tracing::info!(job = %job.id, result = %result.id.0, "result of an ended job left unjudged");
        return Ok(None);
    }
    let (judgment, uses_ffmpeg) = match grid.app_of(&job).await? {
        None => (Judgment::Reject("the job's app is gone".into()), false),
        // A step's output is the app's own business: it arrived whole, and counts when
        // parties agree on it (the job runs under the step's replication now).
        Some(_) if crate::apps::steps::script::is_step(result.task.chunk.meta.as_ref()) => (
            crate::apps::steps::integrity::Integrity
                .validate(&job, &result, grid.blobs.as_ref())
                .await?,
            false,
        ),
        Some(app) => (
            crate::tools::in_stage(
                crate::tools::Stage::Validate,
                app.validator.validate(&job, &result, grid.blobs.as_ref()),
            )
            .await?,
            app.manifest.requirements.ffmpeg,
        ),
    };
    let policy = job.spec.replication;
    match &judgment {
        Judgment::Accept => {}
        Judgment::Suspect(reason) => {
            tracing::info!(job = %job.id, task = %result.task.id, worker = %result.worker, %reason, "result suspect: checked on another device")
        }
        Judgment::Reject(reason) => {
            tracing::warn!(job = %job.id, task = %result.task.id, worker = %result.worker, %reason, "result rejected: the chunk goes to an independent device")
        }
    }
    // The common case needs nothing but its own verdict: an accepted result of a chunk that
    // is not replicated and never had another result.
    let alone = !policy.is_replicated()
        && judgment == Judgment::Accept
        && result.task.replicas <= 1
        && result.task.failures == 0;
    Ok(Some(if alone {
        Outcome::Verdict(Verdict::Valid(result.id))
    } else {
        Outcome::Decide(quorum::Judged {
            result: result.id,
            task: result.task.id,
            policy,
            uses_ffmpeg,
            judgment,
        })
    }))
}

/// Results being judged at most at once. Apps whose validation is heavy (FFmpeg) limit their
/// own concurrency; cheap judgments are never held up behind them.
const MAX_IN_FLIGHT: usize = BATCH;

/// One judgment: the queue item, and what became of its result or the storage error that
/// stopped it.
type Judged = (Item, Result<Option<Outcome>, StorageError>);

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
        let grid = grid.clone();
        judging.push(async move { (item, judge(&grid, job, result).await) }.boxed());
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
    let mut decide = Vec::new();
    let mut recorded = Vec::with_capacity(done.len());
    let mut again = Vec::new();
    for (item, judged) in done {
        match judged {
            Ok(outcome) => {
                match outcome {
                    Some(Outcome::Verdict(verdict)) => verdicts.push(verdict),
                    Some(Outcome::Decide(judged)) => decide.push(judged),
                    None => {}
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
    if let Err(e) = apply(grid, &verdicts, &decide, changed).await {
        tracing::error!(error = %e, "recording verdicts failed; will judge again");
        again.extend(recorded);
    }
    requeue_later(grid, again);
}

/// Records verdicts (the others decided with their chunks' other results), then acts on
/// them: jobs whose last chunk was accepted queued for assembly, rejected chunks charged and
/// retried (on an independent party after a dispute), replicas queued, chunks that cannot be
/// decided failed with their jobs, devices caught forging quarantined.
async fn apply(
    grid: &Grid,
    verdicts: &[Verdict],
    decide: &[quorum::Judged],
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
    if !decide.is_empty() {
        applied.merge(quorum::settle(grid, decide).await?);
    }
    let assemble: Vec<Item> = applied
        .ready_to_assemble
        .iter()
        .map(|&job| Item { job, id: job.0 })
        .collect();
    for job in &applied.ready_to_assemble {
        crate::lifecycle::stop_dispatching(grid, *job).await?;
    }
    grid.queues.push(Stage::Assemble, &assemble).await?;
    lifecycle::after_failures(grid, &applied.charged).await?;
    quorum::queue_replicas(grid, &applied.replicate).await?;
    for (job, task, reason) in &applied.failed {
        lifecycle::fail_job(grid, *job, *task, reason).await?;
    }
    quarantine(grid, &applied.charged).await?;
    for job in changed {
        grid.events.job_changed(job);
    }
    Ok(())
}

/// A device was caught forging: its owner loses what rests on trust — every device of theirs
/// is checked again as a new one, their results accepted unverified in jobs still running
/// are revoked (the chunks run again elsewhere), and what they hold is forfeited.
async fn distrust_owner_of(grid: &Grid, worker: WorkerId) -> Result<(), StorageError> {
    let owner = grid.device(worker).await?.owner;
    let distrusted = grid.store.distrust_owner(owner).await?;
    tracing::warn!(
        %worker,
        owner,
        reopened = distrusted.reopened.len(),
        forfeited = distrusted.forfeited.0,
        "the owner of a device caught forging is distrusted"
    );
    quorum::queue_replicas(grid, &distrusted.reopened).await?;
    for r in &distrusted.reopened {
        grid.events.job_changed(r.job);
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
    for &worker in &newly {
        distrust_owner_of(grid, worker).await?;
    }
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
            lifecycle::after_failures(grid, &applied.charged).await?;
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
            lifecycle::after_failures(grid, &charged).await?;
        }
    }
    Ok(())
}
