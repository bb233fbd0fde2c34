//! What happens after a failed attempt — a script error, a lost worker, a rejected result:
//! retry the task at the front of its job's queue, kept for a while from the worker whose
//! attempt failed so another device tries it (not when the worker only handed it back; for
//! good from every device of the parties whose result was rejected, so an independent party
//! decides), or, once its attempts are spent, fail the task and its job with the reasons
//! collected from every attempt.

use crate::grid::Grid;
use idlegrid_domain::task::{RetryDecision, after_failure};
use idlegrid_domain::{AttemptOutcome, JobId, JobState, TaskId, WorkerId};
use idlegrid_storage::StorageError;
use idlegrid_storage::records::FailureCharged;
use std::time::Duration;

/// Longest stretch of one attempt's reason quoted in a job's error.
const REASON_CHARS: usize = 600;

/// Acts on failures charged to tasks.
pub async fn after_failures(grid: &Grid, charged: &[FailureCharged]) -> Result<(), StorageError> {
    grid.stats.failed(charged.len());
    for c in charged {
        if !c.still_pending {
            continue;
        }
        // A rejected result's device is not blamed until an independent result is accepted:
        // its failure may be a forger's, so disputes get the replication policy's room for
        // disagreement too, and a few owners' rejected results cannot spend a chunk's attempts.
        let budget = match grid.schedule.get(c.job) {
            Some(job) if !c.independent_of.is_empty() => {
                c.max_attempts.max(job.replication.max_replicas)
            }
            _ => c.max_attempts,
        };
        match after_failure(c.failures, budget) {
            // The app's validator rejected the last result: only a party independent of the
            // chunk's results may try it, to tell a forgery from a job at fault.
            RetryDecision::Retry if !c.independent_of.is_empty() => {
                if grid.schedule.get(c.job).is_some() {
                    grid.queues
                        .enqueue_replicas(c.job, c.task, 1, &c.independent_of, true)
                        .await?;
                    grid.stats.reassigned(1);
                }
            }
            RetryDecision::Retry => {
                // A task handed back (its device paused or is shutting down) was not the
                // device's fault: it may take the task again as soon as it asks.
                let avoid_for = if c.outcome == AttemptOutcome::Abandoned {
                    Duration::ZERO
                } else {
                    grid.config.retry_elsewhere
                };
                grid.queues
                    .enqueue_retry(c.job, c.task, c.worker, avoid_for)
                    .await?;
                grid.stats.reassigned(1);
            }
            RetryDecision::GiveUp => give_up(grid, c).await?,
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
    let index = grid
        .store
        .tasks(&[task])
        .await?
        .first()
        .map_or(0, |t| t.chunk.index);
    grid.end_job(
        job,
        JobState::Failed,
        Some(&format!("chunk {index} failed: {reason}")),
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
    grid.end_job(job.id, JobState::Failed, Some(&message))
        .await?;
    Ok(())
}

async fn give_up(grid: &Grid, c: &FailureCharged) -> Result<(), StorageError> {
    if !grid.store.fail_task(c.task).await? {
        return Ok(());
    }
    let attempts = grid.store.attempts(c.task).await?;
    let index = grid
        .store
        .tasks(&[c.task])
        .await?
        .first()
        .map_or(0, |t| t.chunk.index);
    let reasons: Vec<String> = attempts
        .iter()
        .filter(|a| a.outcome.counts_as_failure())
        .map(|a| {
            let reason: String = a.reason.chars().take(REASON_CHARS).collect();
            format!("[worker {}, {}] {}", a.worker, a.outcome, reason.trim())
        })
        .collect();
    let message = format!(
        "chunk {index} failed {} times; attempts: {}",
        c.failures,
        reasons.join(" | ")
    );
    grid.end_job(c.job, JobState::Failed, Some(&message))
        .await?;
    Ok(())
}
