//! What happens after a failed attempt — a script error, a lost worker, a rejected result:
//! retry the task at the front of its job's queue, kept for a while from the worker whose
//! attempt failed so another device tries it, or, once its attempts are spent, fail the task and
//! its job with the reasons collected from every attempt.

use crate::grid::Grid;
use idlegrid_domain::task::{RetryDecision, after_failure};
use idlegrid_domain::{JobState, TaskId};
use idlegrid_storage::StorageError;
use idlegrid_storage::records::FailureCharged;

/// Longest stretch of one attempt's reason quoted in a job's error.
const REASON_CHARS: usize = 600;

/// Acts on failures charged to tasks.
pub async fn after_failures(grid: &Grid, charged: &[FailureCharged]) -> Result<(), StorageError> {
    for c in charged {
        if !c.still_pending {
            continue;
        }
        match after_failure(c.failures, c.max_attempts) {
            RetryDecision::Retry => {
                grid.queues
                    .enqueue_retry(c.job, c.task, c.worker, grid.config.retry_elsewhere)
                    .await?
            }
            RetryDecision::GiveUp => give_up(grid, c).await?,
        }
        grid.events.job_changed(c.job);
    }
    Ok(())
}

/// Requeues tasks whose leases ended without being charged (handed back).
pub async fn requeue(
    grid: &Grid,
    job: idlegrid_domain::JobId,
    tasks: &[TaskId],
) -> Result<(), StorageError> {
    if grid.schedule.get(job).is_some() {
        grid.queues.enqueue_tasks(job, tasks, true).await?;
    }
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
