//! Backup copies of stragglers, as MapReduce's backup tasks (which cut job time by a third
//! where a few machines were slow): a clear straggler is queued once more, ahead of its job's
//! other tasks, at any time; and when a job has nothing left queued and devices wait for work,
//! its slowest running chunks are too, each paired with a waiting device that would finish it
//! clearly sooner, and a chunk whose backup straggles as well may get a third copy. Which
//! chunks is the policy's
//! ([`idlegrid_domain::schedule::backups`]); this stage gathers what it needs and queues the
//! copies.
//!
//! The first valid result wins: the records take one result for a chunk, so the other copy's
//! report is refused and earns nothing (superseded), and once the chunk is done its other
//! leases are ended here, which tells that worker, at its next heartbeat, to stop.
//!
//! How long a lease has run is what this coordinator has seen of it, from the first sweep
//! that found it (every [`EVERY`]).

use crate::grid::Grid;
use idlegrid_domain::schedule::{RunningTask, backups, may_run, run_secs};
use idlegrid_domain::{LeaseId, ReplicationMode, TaskId, TaskState, WorkerId};
use idlegrid_storage::StorageError;
use idlegrid_storage::queue::Lease;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often running jobs are looked at.
const EVERY: Duration = Duration::from_secs(2);

/// Runs the stage until `shutdown`.
pub async fn run(grid: Arc<Grid>, shutdown: CancellationToken) {
    let mut state = SweepState::default();
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !shutdown.is_cancelled() {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        // The policy's other periodic input, measured on the same beat.
        grid.schedule.measure_fit(&grid.online_devices().await);
        if let Err(e) = sweep(&grid, &mut state).await {
            tracing::warn!(error = %e, "looking for stragglers failed");
        }
    }
}

/// How long a queued backup copy counts as one of its chunk's copies before a device leases it:
/// the sweep after the one that queued it must not queue another, but a copy nobody takes
/// (every waiting device left) does not keep the chunk from a later one.
const QUEUED_FOR_MS: i64 = 30_000;

/// What the sweep remembers between looks.
#[derive(Debug, Default)]
pub struct SweepState {
    /// When each lease was first seen.
    first_seen: HashMap<LeaseId, i64>,
    /// Backup copies queued and when, with the leases their chunk had then.
    queued: HashMap<TaskId, (i64, u32)>,
}

/// One look at every dispatching job: ends the leases of copies that lost, and queues backup
/// copies of stragglers. Returns the backups queued.
pub async fn sweep(grid: &Grid, state: &mut SweepState) -> Result<Vec<TaskId>, StorageError> {
    let now = idlegrid_storage::now_ms();
    // The waiting devices and what they offer, read once for every job.
    let mut idle = Vec::new();
    for worker in grid.presence.idle(now) {
        idle.push((worker, grid.device(worker).await?));
    }
    let capacity = grid.capacity().await;
    let mut live = HashSet::new();
    let mut queued_backups = Vec::new();
    for job in grid.schedule.jobs() {
        let Some(active) = grid.schedule.get(job) else {
            continue;
        };
        let leases = grid.queues.job_leases(job).await?;
        if leases.is_empty() {
            continue;
        }
        let mut by_task: HashMap<TaskId, Vec<&Lease>> = HashMap::new();
        for lease in &leases {
            state.first_seen.entry(lease.id).or_insert(now);
            live.insert(lease.id);
            by_task.entry(lease.task).or_default().push(lease);
        }
        let ids: Vec<TaskId> = by_task.keys().copied().collect();
        let tasks = grid.store.tasks(&ids).await?;
        // A chunk decided while other copies run: those copies lost.
        let losers: Vec<(LeaseId, WorkerId)> = tasks
            .iter()
            .filter(|t| t.state == TaskState::Done)
            .flat_map(|t| by_task[&t.id].iter().map(|l| (l.id, l.worker)))
            .collect();
        if !losers.is_empty() {
            grid.queues.settle(&losers).await?;
        }
        // Fixed replication already runs every chunk on several devices; an adaptive job's
        // chunk is backed up like an unreplicated one's (the first result is the one judged).
        if active.replication.mode == ReplicationMode::Fixed {
            continue;
        }
        let depth = grid.queues.job_depth(job).await?;
        let mut running = Vec::new();
        let mut work = Vec::new();
        // Chunks already sent to more than one device (checks, disputes) are not backed up: a
        // backup could come from a party that must not take a copy.
        for task in tasks
            .iter()
            .filter(|t| t.state == TaskState::Pending && t.replicas == 1)
        {
            let leased = by_task[&task.id].len() as u32;
            // A copy queued by an earlier sweep and not leased yet counts as running.
            let waiting = state
                .queued
                .get(&task.id)
                .is_some_and(|&(at, leases)| now - at < QUEUED_FOR_MS && leased <= leases);
            let copies = leased + u32::from(waiting);
            for lease in &by_task[&task.id] {
                let holder = grid.device(lease.worker).await?;
                running.push(RunningTask {
                    task: task.id,
                    holder: lease.worker,
                    elapsed_ms: now - state.first_seen[&lease.id],
                    progress: lease.progress,
                    expected_ms: (run_secs(&holder.capabilities, task.chunk.work_ms) * 1000.0)
                        as i64,
                    copies,
                });
            }
            work.push(task.chunk.work_ms);
        }
        if running.is_empty() {
            continue;
        }
        // What a fresh copy needs, for a chunk of average work: on each waiting device the job
        // fits, fastest first, and on an average device of the grid (the next one that asks).
        let average = work.iter().sum::<i64>() / work.len() as i64;
        let entry = active.entry(job, 0, 1.0);
        let mut waiting = Vec::new();
        for (worker, device) in &idle {
            if active.admits(device) && may_run(&device.capabilities, &entry) {
                waiting.push((
                    (run_secs(&device.capabilities, average) * 1000.0) as i64,
                    *worker,
                ));
            }
        }
        waiting.sort_unstable();
        let next_ms = if capacity.slots == 0 || capacity.speed <= 0.0 {
            i64::MAX
        } else {
            (average as f64 * capacity.slots as f64 / capacity.speed) as i64
        };
        let fresh: Vec<i64> = waiting.iter().map(|(ms, _)| *ms).collect();
        let picked = backups(depth.queued, &running, next_ms, &fresh);
        for task in &picked {
            let holders: Vec<WorkerId> = by_task[task].iter().map(|l| l.worker).collect();
            grid.queues
                .enqueue_replicas(job, *task, 1, &holders, true)
                .await?;
            state.queued.insert(*task, (now, holders.len() as u32));
            tracing::info!(job = %job, task = %task, copies = holders.len() + 1, "backup copy of a straggler queued");
        }
        // A waiting device takes one backup: those paired with this job's are spoken for.
        if depth.queued == 0 {
            let taken: HashSet<WorkerId> =
                waiting.iter().take(picked.len()).map(|(_, w)| *w).collect();
            idle.retain(|(w, _)| !taken.contains(w));
        }
        queued_backups.extend(picked);
    }
    state.first_seen.retain(|id, _| live.contains(id));
    state.queued.retain(|_, (at, _)| now - *at < QUEUED_FOR_MS);
    Ok(queued_backups)
}
