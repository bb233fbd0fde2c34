//! The loop shared by the job-level stages (partitioner, assembler): take job ids from a stage
//! queue and work on up to N jobs at once, so one long job (a big video) does not hold up the
//! others. Work is idempotent, so an item whose work failed is queued again after a pause, and
//! work cut short by shutdown is simply redone from the records after the restart.

use crate::grid::Grid;
use idlegrid_domain::JobId;
use idlegrid_storage::StorageError;
use idlegrid_storage::queue::{Item, Stage};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Pause before retrying an item whose work failed.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Runs `work` for every job taken from `stage`, at most `parallel` at once, until `shutdown`.
pub async fn run_per_job<F, Fut>(
    grid: Arc<Grid>,
    stage: Stage,
    parallel: usize,
    shutdown: CancellationToken,
    work: F,
) where
    F: Fn(Arc<Grid>, JobId) -> Fut,
    Fut: Future<Output = Result<(), StorageError>> + Send + 'static,
{
    let mut running = JoinSet::new();
    loop {
        while running.try_join_next().is_some() {}
        if running.len() >= parallel {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = running.join_next() => continue,
            }
        }
        let items = tokio::select! {
            _ = shutdown.cancelled() => break,
            items = grid.queues.pop(stage, parallel - running.len(), Duration::from_secs(1)) => items,
        };
        let items = match items {
            Ok(items) => items,
            Err(e) => {
                tracing::error!(stage = stage.name(), error = %e, "stage queue failed");
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
        };
        for item in items {
            let job = work(grid.clone(), item.job);
            let grid = grid.clone();
            running.spawn(async move {
                if let Err(e) = job.await {
                    tracing::error!(stage = stage.name(), job = %item.job, error = %e, "stage work failed; will retry");
                    tokio::time::sleep(RETRY_PAUSE).await;
                    let _ = grid.queues.push(stage, &[Item { job: item.job, id: item.id }]).await;
                }
            });
        }
    }
    running.abort_all();
    while running.join_next().await.is_some() {}
}

/// Runs `work` at once and then every `period` until `shutdown`; a run that overruns its
/// period delays the next instead of bunching them.
pub async fn every<F, Fut>(period: Duration, shutdown: CancellationToken, mut work: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    every_with(period, shutdown, (), |()| work()).await;
}

/// [`every`], handing each run the `state` the run before returned.
pub async fn every_with<S, F, Fut>(
    period: Duration,
    shutdown: CancellationToken,
    mut state: S,
    mut work: F,
) where
    F: FnMut(S) -> Fut,
    Fut: Future<Output = S>,
{
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        state = work(state).await;
    }
}
