//! Every state change of a job and a task that has side effects, and those side effects, in
//! one place: a job ends (failed, cancelled, completed; its dispatching stops, its work blobs
//! go, watchers are told), an input is refused, and what happens after a failed attempt — a
//! script error, a lost worker, a rejected result: retry the task at the front of its job's queue, kept for a while from the worker whose
//! attempt failed so another device tries it (not when the worker only handed it back; for
//! good from every device of the parties whose result was rejected, so an independent party
//! decides), or, once its attempts are spent, fail the task and its job with the reasons
//! collected from every attempt.

use crate::grid::Grid;
use crate::state::schedule::OnlineDevice;
use idlegrid_domain::task::{RetryDecision, after_failure, fails_alike};
use idlegrid_domain::{AttemptOutcome, JobId, JobState, TaskId, WorkerId};
use idlegrid_storage::Result as StorageResult;
use idlegrid_storage::StorageError;
use idlegrid_storage::records::JobRecord;
use idlegrid_storage::records::{AttemptRecord, FailureCharged};
use std::time::Duration;

/// Longest stretch of one attempt's reason quoted in a job's error.
const REASON_CHARS: usize = 600;

/// Acts on failures charged to tasks.
pub async fn after_failures(grid: &Grid, charged: &[FailureCharged]) -> Result<(), StorageError> {
    grid.stats.failed(charged.len());
    // The devices online, read once for the batch, when a retry first needs them.
    let mut online: Option<Vec<OnlineDevice>> = None;
    for c in charged {
        if !c.still_pending {
            continue;
        }
        // A rejected result's device is not blamed until an independent result is accepted:
        // its failure may be a forger's, so disputes get the replication policy's room for
        // disagreement too, and a few owners' rejected results cannot spend a chunk's attempts.
        let disputed = !c.independent_of.is_empty();
        let budget = match grid.schedule.get(c.job) {
            Some(job) if disputed => c.max_attempts.max(job.replication.max_replicas),
            _ => c.max_attempts,
        };
        // Only a script's error can be the job's own: its attempts say whether devices of two
        // owners saw the same one.
        let attempts = if c.outcome == AttemptOutcome::ClientError && !disputed {
            Some(grid.store.attempts(c.task).await?)
        } else {
            None
        };
        let alike = match &attempts {
            Some(attempts) => failed_alike_for_two_owners(grid, attempts).await?,
            None => false,
        };
        match after_failure(c.failures, budget, alike) {
            // The app's validator rejected the last result: only a party independent of the
            // chunk's results may try it, to tell a forgery from a job at fault.
            RetryDecision::Retry if disputed => {
                if grid.schedule.get(c.job).is_some() {
                    grid.queues
                        .enqueue_replicas(c.job, c.task, 1, &c.independent_of, true)
                        .await?;
                    grid.stats.reassigned(1);
                }
            }
            RetryDecision::Retry => {
                // A task handed back (its device paused or is shutting down) was not the
                // device's fault: it may take the task again as soon as it asks. Nor is
                // keeping it from the device that failed it any use when no other device
                // online may run it: the retry would only wait.
                let elsewhere = match grid.schedule.get(c.job) {
                    Some(active) if c.outcome != AttemptOutcome::Abandoned => {
                        if online.is_none() {
                            online = Some(grid.online_devices().await);
                        }
                        let online = online.as_deref().unwrap_or_default();
                        active.runs_elsewhere(c.job, c.worker, online)
                    }
                    _ => false,
                };
                let avoid_for = if elsewhere {
                    grid.config.retry_elsewhere
                } else {
                    Duration::ZERO
                };
                grid.queues
                    .enqueue_retry(c.job, c.task, c.worker, avoid_for)
                    .await?;
                grid.stats.reassigned(1);
            }
            RetryDecision::GiveUp => give_up(grid, c, attempts).await?,
        }
        grid.events.job_changed(c.job);
    }
    Ok(())
}

/// Requeues a task whose lease ended without being charged (handed back, or its report could
/// not be recorded); the worker that held it may take it again at once.
pub async fn requeue(
    grid: &Grid,
    job: JobId,
    task: TaskId,
    worker: WorkerId,
) -> Result<(), StorageError> {
    if grid.schedule.get(job).is_some() {
        grid.queues
            .enqueue_retry(job, task, worker, Duration::ZERO)
            .await?;
        grid.stats.reassigned(1);
    }
    Ok(())
}

/// Fails a job because one of its chunks failed for `reason` (the task is already failed).
pub async fn fail_job(
    grid: &Grid,
    job: JobId,
    task: TaskId,
    reason: &str,
) -> Result<(), StorageError> {
    let what = task_name(grid, task).await?;
    end_job(
        grid,
        job,
        JobState::Failed,
        Some(&format!("{what} failed: {reason}")),
    )
    .await?;
    Ok(())
}

/// Ends a job that has a failed chunk but was still running (the coordinator stopped between
/// failing the chunk and the job).
pub async fn fail_failed_job(
    grid: &Grid,
    job: &idlegrid_storage::records::JobRecord,
) -> Result<(), StorageError> {
    let message = format!(
        "{} of its chunks failed (the coordinator restarted before it could say why; \
         {} failed attempts were recorded)",
        job.chunks_failed, job.failed_attempts
    );
    end_job(grid, job.id, JobState::Failed, Some(&message)).await?;
    Ok(())
}

/// Whether the task's script failed with the same error on devices of two owners
/// ([`fails_alike`]), from its `attempts`.
async fn failed_alike_for_two_owners(
    grid: &Grid,
    attempts: &[AttemptRecord],
) -> Result<bool, StorageError> {
    let mut failures = Vec::new();
    for attempt in attempts {
        if attempt.outcome == AttemptOutcome::ClientError {
            let owner = grid.device(attempt.worker).await?.owner;
            failures.push((owner, attempt.reason.as_str()));
        }
    }
    Ok(fails_alike(failures))
}

/// Fails the task and its job with why (`attempts`, when already read).
async fn give_up(
    grid: &Grid,
    c: &FailureCharged,
    attempts: Option<Vec<AttemptRecord>>,
) -> Result<(), StorageError> {
    if !grid.store.fail_task(c.task).await? {
        return Ok(());
    }
    let attempts = match attempts {
        Some(attempts) => attempts,
        None => grid.store.attempts(c.task).await?,
    };
    let what = task_name(grid, c.task).await?;
    end_job(
        grid,
        c.job,
        JobState::Failed,
        Some(&failure_message(&what, &attempts)),
    )
    .await?;
    Ok(())
}

/// What a task is, for its customer: `chunk N`, or the app's step it runs.
async fn task_name(grid: &Grid, task: TaskId) -> Result<String, StorageError> {
    Ok(grid.store.tasks(&[task]).await?.first().map_or_else(
        || "a chunk".to_string(),
        |t| crate::apps::steps::script::task_name(t.chunk.index, t.chunk.meta.as_ref()),
    ))
}

/// Why a task (`what`: a chunk, or a step) failed, for its job: the last attempt's reason
/// once, and how the attempts before it ended.
fn failure_message(what: &str, attempts: &[AttemptRecord]) -> String {
    let failed: Vec<&AttemptRecord> = attempts
        .iter()
        .filter(|a| a.outcome.counts_as_failure())
        .collect();
    let Some(last) = failed.last() else {
        return format!("{what} failed");
    };
    let reason: String = last.reason.trim().chars().take(REASON_CHARS).collect();
    let how = match failed.len() {
        1 => "once".to_string(),
        n if failed
            .iter()
            .all(|a| a.outcome == last.outcome && a.reason.trim() == last.reason.trim()) =>
        {
            format!("{n} times, every time the same way")
        }
        n => {
            let earlier: Vec<String> = failed[..n - 1]
                .iter()
                .map(|a| format!("worker {}: {}", a.worker, a.outcome))
                .collect();
            format!("{n} times (earlier attempts: {})", earlier.join(", "))
        }
    };
    format!(
        "{what} failed {how}; the last attempt (worker {}, {}): {reason}",
        last.worker, last.outcome
    )
}

/// Ends a job as `failed` (with `reason`) or `cancelled`: records it, stops dispatching its
/// tasks and tells watchers. Returns the record, or `None` if the job was already final.
pub async fn end_job(
    grid: &Grid,
    job: JobId,
    state: JobState,
    reason: Option<&str>,
) -> StorageResult<Option<JobRecord>> {
    let ended = grid.store.transition_job(job, state, reason).await?;
    if ended.is_some() {
        after_end(grid, job).await?;
        // A reason may quote a device (a script's stderr): logged as text, never as
        // escape sequences or lines of their own.
        let reason = idlegrid_domain::text::shown(reason.unwrap_or(""));
        tracing::info!(%job, %state, %reason, "job ended");
    }
    Ok(ended)
}

/// Fails a job whose input was refused — not what its app takes, or not fetched — with
/// `reason`, and deletes the input: nothing is kept that no job can use. Returns the
/// record, or `None` if the job was already final.
pub async fn refuse_input(
    grid: &Grid,
    job: JobId,
    reason: &str,
) -> StorageResult<Option<JobRecord>> {
    let ended = end_job(grid, job, JobState::Failed, Some(reason)).await?;
    if let Some(input) = ended.as_ref().and_then(|j| j.input.as_ref()) {
        grid.blobs.delete(&input.key).await?;
        tracing::info!(%job, "refused input deleted");
    }
    Ok(ended)
}

/// Deletes the blobs that only served a job's processing — its chunks, the workers'
/// results, parts of an upload never joined — once it has ended. The input and the output stay.
pub async fn discard_work_blobs(grid: &Grid, job: JobId) {
    for prefix in crate::blob_keys::work_prefixes(job) {
        match grid.blobs.delete_prefix(&prefix).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(%job, blobs = n, prefix, "work blobs deleted"),
            Err(e) => tracing::warn!(%job, error = %e, prefix, "could not delete work blobs"),
        }
    }
}

/// Removes a job's task queue, leases and scheduling entry.
pub async fn stop_dispatching(grid: &Grid, job: JobId) -> StorageResult<()> {
    grid.schedule.forget(job);
    grid.queues.drop_job(job).await
}

/// Records a job's output and completes it; `false` if it had already ended.
pub async fn complete_job(
    grid: &Grid,
    job: JobId,
    output: &idlegrid_storage::records::StoredBlob,
) -> StorageResult<bool> {
    let completed = grid.store.complete_job(job, output).await?;
    if completed {
        after_end(grid, job).await?;
    }
    Ok(completed)
}

/// What follows a job's end, however it ended: its tasks are no longer dispatched, the blobs
/// that only served its processing go, and watchers are told.
async fn after_end(grid: &Grid, job: JobId) -> StorageResult<()> {
    stop_dispatching(grid, job).await?;
    discard_work_blobs(grid, job).await;
    grid.events.job_changed(job);
    Ok(())
}
