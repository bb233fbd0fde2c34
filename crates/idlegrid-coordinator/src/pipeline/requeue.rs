//! Lost queue items: work the records say is unfinished but no queue holds, queued again for
//! the stage that owns it. Every stage is idempotent, so an item queued twice costs time, never
//! correctness. Two occasions, one rule ([`requeue`]):
//!
//! - **At start-up, with in-process queues** (embedded, or `--queue memory`): they start empty,
//!   so [`rebuild_queues`] queues all unfinished work again.
//! - **With shared queues** (a queue server several coordinators use): a coordinator that dies
//!   holding items it popped (a result to judge, a job to partition or assemble, tasks to feed)
//!   takes them with it. Every coordinator sweeps ([`run`]): work that sits unchanged in the
//!   records over two sweeps in a row — a result still unjudged, a job still submitted,
//!   partitioning without a new chunk, or assembling, a running job with chunks waiting for
//!   work but none queued or leased — is queued again.

use crate::grid::Grid;
use idlegrid_domain::{JobId, JobState, ResultId};
use idlegrid_storage::StorageError;
use idlegrid_storage::queue::{Item, Stage};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What the previous pass saw.
#[derive(Debug, Default)]
pub struct Sweep {
    /// Everything counts as seen before (start-up: the queues are empty, all is lost).
    everything: bool,
    /// Results waiting for a verdict.
    unjudged: HashSet<ResultId>,
    /// Jobs in a job-level stage, with their state and chunks created.
    stages: HashMap<JobId, (JobState, u64)>,
    /// Running jobs with chunks waiting but nothing queued or leased.
    idle: HashSet<JobId>,
    /// Dispatching jobs with a failed chunk.
    failed: HashSet<JobId>,
}

impl Sweep {
    fn judged_before(&self, id: ResultId) -> bool {
        self.everything || self.unjudged.contains(&id)
    }

    fn unmoved(&self, job: JobId, seen: (JobState, u64)) -> bool {
        self.everything || self.stages.get(&job) == Some(&seen)
    }

    fn idle_before(&self, job: JobId) -> bool {
        self.everything || self.idle.contains(&job)
    }

    fn failed_before(&self, job: JobId) -> bool {
        self.everything || self.failed.contains(&job)
    }
}

/// What one pass queued again.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Swept {
    /// Results sent back to the validator.
    pub results: usize,
    /// Jobs sent back to the partitioner or the assembler.
    pub jobs: usize,
    /// Chunks sent back to the feeder.
    pub tasks: usize,
    /// Jobs ended because a chunk of theirs had failed.
    pub ended: usize,
}

/// Rebuilds in-process queues from the records at start-up: every piece of unfinished work is
/// queued again.
pub async fn rebuild_queues(grid: &Grid) -> Result<Swept, StorageError> {
    grid.quarantine(&grid.store.quarantined_workers().await?);
    grid.set_benched(grid.store.benched_workers().await?);
    let everything = Sweep {
        everything: true,
        ..Sweep::default()
    };
    requeue(grid, &everything).await.map(|(swept, _)| swept)
}

/// Sweeps shared queues every `config.sweep_interval` until `shutdown`.
pub async fn run(grid: Arc<Grid>, shutdown: CancellationToken) {
    let period = grid.config.sweep_interval;
    crate::pipeline::stage::every_with(period, shutdown, Sweep::default(), |mut last| async {
        match sweep(&grid, &mut last).await {
            Ok(swept) if swept != Swept::default() => {
                tracing::warn!(?swept, "work whose queue item was lost queued again");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "sweeping for lost work failed"),
        }
        last
    })
    .await;
}

/// One sweep: compares the records with what the previous sweep saw, queues again what did
/// not move, and remembers what it saw.
pub async fn sweep(grid: &Grid, last: &mut Sweep) -> Result<Swept, StorageError> {
    let (swept, now) = requeue(grid, last).await?;
    *last = now;
    Ok(swept)
}

/// Queues again the unfinished work that `last` saw already; returns what it queued and what
/// it saw this time.
async fn requeue(grid: &Grid, last: &Sweep) -> Result<(Swept, Sweep), StorageError> {
    let mut now = Sweep::default();
    let mut swept = Swept::default();

    let mut again = Vec::new();
    for (job, id) in grid.store.unvalidated_results().await? {
        if last.judged_before(id) {
            again.push(Item { job, id: id.0 });
        }
        now.unjudged.insert(id);
    }
    swept.results = again.len();
    grid.queues.push(Stage::Validate, &again).await?;

    let jobs = grid
        .store
        .jobs_in_states(&[
            JobState::Submitted,
            JobState::Partitioning,
            JobState::Running,
            JobState::Assembling,
        ])
        .await?;
    for job in &jobs {
        // A chunk failed but its job was not ended: the coordinator failing it stopped in
        // between. Ended once it stays so over two passes (at start-up, at once).
        if job.state.is_dispatching() && job.chunks_failed > 0 {
            if last.failed_before(job.id) {
                crate::lifecycle::fail_failed_job(grid, job).await?;
                swept.ended += 1;
            } else {
                now.failed.insert(job.id);
            }
            continue;
        }
        let stage = match job.state {
            JobState::Submitted | JobState::Partitioning => Some(Stage::Partition),
            JobState::Assembling => Some(Stage::Assemble),
            _ => None,
        };
        if let Some(stage) = stage {
            let seen = (job.state, job.chunks_created);
            if last.unmoved(job.id, seen) {
                let item = Item {
                    job: job.id,
                    id: job.id.0,
                };
                grid.queues.push(stage, &[item]).await?;
                swept.jobs += 1;
            }
            now.stages.insert(job.id, seen);
        }
        if job.state.is_dispatching() {
            let depth = grid.queues.job_depth(job.id).await?;
            if depth.queued > 0 || depth.leased > 0 {
                continue;
            }
            let waiting = grid.store.pending_tasks(job.id).await?;
            if waiting.is_empty() {
                continue;
            }
            if last.idle_before(job.id) {
                let items: Vec<Item> = waiting
                    .iter()
                    .map(|t| Item {
                        job: job.id,
                        id: t.0,
                    })
                    .collect();
                swept.tasks += items.len();
                grid.queues.push(Stage::Feed, &items).await?;
            }
            now.idle.insert(job.id);
        }
    }
    Ok((swept, now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;
    use idlegrid_domain::{Replication, TaskId};
    use idlegrid_storage::records::{NewJob, NewResult, NewTask, OutputRef};
    use std::time::Duration;

    /// A grid with a running python-map job of two chunks; the tasks.
    async fn running_job(dir: &std::path::Path) -> (Arc<Grid>, JobId, Vec<TaskId>) {
        let (grid, _) = Grid::open(Config::new(dir)).await.unwrap();
        let store = grid.store.clone();
        let tenant = store.ensure_tenant("t").await.unwrap();
        let job = store
            .create_job(&NewJob {
                tenant,
                name: None,
                app: "python-map".into(),
                app_version: "1".into(),
                bundle_sha256: "ab".into(),
                params: serde_json::json!({}),
                partition_options: serde_json::json!({}),
                priority: 0,
                max_attempts: 3,
                task_timeout_secs: 60,
                replication: Replication::NONE,
                placement: idlegrid_domain::Placement::Any,
                deadline_secs: None,
                tier: idlegrid_domain::Tier::Standard,
                max_price: None,
                external: None,
                webhook: None,
            })
            .await
            .unwrap();
        for to in [JobState::Submitted, JobState::Partitioning] {
            store.transition_job(job.id, to, None).await.unwrap();
        }
        let chunk = |index| NewTask {
            index,
            input_key: None,
            offset: index,
            len: 1,
            meta: None,
            work_ms: 1_000,
        };
        let tasks = store
            .insert_tasks(job.id, &[chunk(0), chunk(1)], 1)
            .await
            .unwrap();
        store.finish_partition(job.id, 2).await.unwrap();
        (grid, job.id, tasks)
    }

    #[tokio::test]
    async fn work_left_unmoved_over_two_sweeps_is_queued_again() {
        let dir = tempfile::tempdir().unwrap();
        let (grid, job, tasks) = running_job(dir.path()).await;
        let store = &grid.store;
        // Chunk 0 was reported, but the coordinator that took its result off the queue died.
        let owner = store.ensure_owner("o").await.unwrap();
        let worker = store
            .register_worker(owner, "w", &Default::default(), [9; 32])
            .await
            .unwrap();
        let result = store
            .record_results(&[NewResult {
                task: tasks[0],
                job,
                worker,
                sha256: "00".into(),
                size: 1,
                output: OutputRef::Inline(b"x".to_vec()),
            }])
            .await
            .unwrap()[0]
            .unwrap();
        let mut last = Sweep::default();
        assert_eq!(sweep(&grid, &mut last).await.unwrap(), Swept::default());
        // Unmoved by the next sweep: the result is judged again and chunk 1 fed again.
        let swept = sweep(&grid, &mut last).await.unwrap();
        assert_eq!((swept.results, swept.tasks), (1, 1), "{swept:?}");
        let wait = Duration::from_millis(10);
        let judged = grid.queues.pop(Stage::Validate, 10, wait).await.unwrap();
        assert_eq!(judged[0].id, result.0);
        let fed = grid.queues.pop(Stage::Feed, 10, wait).await.unwrap();
        assert_eq!(fed[0].id, tasks[1].0);
    }

    #[tokio::test]
    async fn a_job_left_running_with_a_failed_chunk_is_ended() {
        let dir = tempfile::tempdir().unwrap();
        let (grid, job, tasks) = running_job(dir.path()).await;
        // Chunk 0 spent its attempts, but the coordinator failing its job stopped before.
        assert!(grid.store.fail_task(tasks[0]).await.unwrap());
        let mut last = Sweep::default();
        assert_eq!(sweep(&grid, &mut last).await.unwrap(), Swept::default());
        let still = grid.store.job(job).await.unwrap().unwrap();
        assert_eq!(still.state, JobState::Running, "one sweep ends nothing");
        let swept = sweep(&grid, &mut last).await.unwrap();
        assert_eq!((swept.ended, swept.tasks), (1, 0), "{swept:?}");
        let ended = grid.store.job(job).await.unwrap().unwrap();
        assert_eq!(ended.state, JobState::Failed);
        assert!(ended.error.unwrap().contains("1 of its chunks failed"));

        // At start-up the same is ended at once.
        let dir = tempfile::tempdir().unwrap();
        let (grid, job, tasks) = running_job(dir.path()).await;
        assert!(grid.store.fail_task(tasks[1]).await.unwrap());
        assert_eq!(rebuild_queues(&grid).await.unwrap().ended, 1);
        let ended = grid.store.job(job).await.unwrap().unwrap();
        assert_eq!(ended.state, JobState::Failed);
    }
}
