//! The scheduling policy: which jobs a device is offered and in what order, which running
//! chunks get backup copies, and how large a job's chunks are.
//!
//! The Feeder keeps one [`JobEntry`] per dispatching job; the Tasks API asks [`order_for`] which
//! job queues to lease from for a given device. Matching goes both ways, as HTCondor's ClassAds
//! do: a job states what its tasks need ([`Requirements`]: runtimes, memory, disk, a minimum
//! benchmark), a device states what it offers and what its owner allows ([`Capabilities`],
//! [`crate::Allowances`]), and a device is never offered a job whose chunks it cannot run or
//! cannot finish well before the lease deadline ([`fits`]). Among the jobs that fit, in order:
//! 1. higher tier first (`fast`, `standard`, `economy`);
//! 2. higher customer priority first;
//! 3. scarcer first: the job that fits a smaller share of the online grid (in steps of
//!    [`SCARCITY_STEP`]), so the devices that can run it take it before work any device can run;
//! 4. fair share: the tenant with the fewest running tasks first, so one tenant's huge job does
//!    not starve the others;
//! 5. then the job with the fewest running tasks, then the oldest job.
//!
//! Within a job, the Partitioner queues the chunks with the most work first, so the longest
//! ones do not start last.
//!
//! This module is the whole of the Feeder's decision-making; the coordinator and the grid
//! simulator (`idlegrid sim`) both call it.

use crate::pricing::{REFERENCE_BENCHMARK, Tier};
use crate::{Capabilities, JobId, Requirements, TaskId, TenantId, WorkerId};

/// The share of the lease deadline a chunk's expected run time may take on a device. Chunks
/// are cut to [`CHUNK_MARGIN`] of the deadline on the reference device, so devices down to
/// about a third of its speed still get them.
pub const DEADLINE_MARGIN: f64 = 0.8;

/// The share of the lease deadline the reference device may need for a chunk the grid cuts.
pub const CHUNK_MARGIN: f64 = 0.25;

/// Smallest work per chunk the grid cuts on its own (reference core-milliseconds): below it,
/// the fixed cost of a task (lease, download, start-up, report) outweighs the work.
pub const MIN_CHUNK_WORK_MS: i64 = 5_000;

/// How many times sooner a fresh copy must be expected to finish a running chunk for the chunk
/// to count as a clear straggler, backed up in every tier and even while work is queued (see
/// [`backups`]).
pub const STRAGGLER_GAIN: f64 = 4.0;

/// How many times sooner a fresh copy must be expected to finish a running chunk of a job with
/// nothing queued for it to get a backup on an idle device (see [`backups`]).
pub const TAIL_BACKUP_GAIN: f64 = 1.5;

/// What the policy knows about one dispatching job.
#[derive(Debug, Clone)]
pub struct JobEntry {
    /// The job.
    pub job: JobId,
    /// Its owner, for fair share.
    pub tenant: TenantId,
    /// Speed/price tier.
    pub tier: Tier,
    /// Customer priority within a tier; higher runs first.
    pub priority: i32,
    /// What its tasks need from a device.
    pub requirements: Requirements,
    /// Tasks of this job currently leased.
    pub running: u64,
    /// Work of its largest chunk, in reference core-milliseconds (0 when unknown).
    pub chunk_work_ms: i64,
    /// Seconds a worker has for one chunk (the lease deadline).
    pub timeout_secs: u64,
    /// Share of the online grid's speed on devices this job's chunks fit (see [`fits`]), from 0
    /// to 1; 1 when every device (or when unknown). See [`order_for`].
    pub fit_share: f64,
}

/// How fast one slot of `device` is relative to the reference device. A device whose
/// benchmark failed is taken to be as fast as the reference device.
pub fn speed(device: &Capabilities) -> f64 {
    if device.benchmark > 0.0 {
        device.benchmark / REFERENCE_BENCHMARK
    } else {
        1.0
    }
}

/// Seconds one slot of `device` is expected to need for `work_ms` of work.
pub fn run_secs(device: &Capabilities, work_ms: i64) -> f64 {
    work_ms.max(0) as f64 / 1000.0 / speed(device)
}

/// Why a device may not be offered a job, before it is put into words (matching runs for
/// every job at every lease; only [`fits`] needs the words).
enum Misfit {
    /// A requirement the device does not meet, named.
    Requirement(String),
    /// A chunk would take `expected` seconds, more than the `limit` the deadline leaves.
    Deadline { expected: f64, limit: f64 },
    /// A chunk would take `expected` seconds, more than the owner's `allowed`.
    Allowance { expected: f64, allowed: u64 },
}

/// The first reason `device` may not be offered `job`, if any.
fn misfit(device: &Capabilities, job: &JobEntry) -> Option<Misfit> {
    if let Err(e) = job.requirements.check(device) {
        return Some(Misfit::Requirement(e));
    }
    // Chunks this small go to any device: benchmarks taken on a busy device read low, and a
    // small chunk's run time is mostly start-up anyway.
    if job.chunk_work_ms <= MIN_CHUNK_WORK_MS {
        return None;
    }
    let expected = run_secs(device, job.chunk_work_ms);
    let limit = job.timeout_secs as f64 * DEADLINE_MARGIN;
    if expected > limit {
        return Some(Misfit::Deadline { expected, limit });
    }
    match device.allows.task_secs {
        Some(allowed) if expected > allowed as f64 => Some(Misfit::Allowance { expected, allowed }),
        _ => None,
    }
}

/// Whether `device` may be offered `job`'s tasks, without putting a reason into words (for
/// counting the devices a job fits).
pub fn may_run(device: &Capabilities, job: &JobEntry) -> bool {
    misfit(device, job).is_none()
}

/// Whether `device` may be offered `job`'s tasks; the error names why not.
pub fn fits(device: &Capabilities, job: &JobEntry) -> Result<(), String> {
    match misfit(device, job) {
        None => Ok(()),
        Some(Misfit::Requirement(e)) => Err(e),
        Some(Misfit::Deadline { expected, limit }) => Err(format!(
            "a chunk would take about {expected:.0} s on this device, more than {limit:.0} s \
             (80% of the {} s lease)",
            job.timeout_secs
        )),
        Some(Misfit::Allowance { expected, allowed }) => Err(format!(
            "a chunk would take about {expected:.0} s, the owner allows tasks of {allowed} s"
        )),
    }
}

/// Job ids in the order the device should be offered them.
pub fn order_for(device: &Capabilities, jobs: &[JobEntry]) -> Vec<JobId> {
    let mut tenant_running: Vec<(TenantId, u64)> = Vec::new();
    for entry in jobs {
        match tenant_running.iter_mut().find(|(t, _)| *t == entry.tenant) {
            Some((_, n)) => *n += entry.running,
            None => tenant_running.push((entry.tenant, entry.running)),
        }
    }
    let running_of = |tenant: TenantId| {
        tenant_running
            .iter()
            .find(|(t, _)| *t == tenant)
            .map_or(0, |(_, n)| *n)
    };
    let mut eligible: Vec<&JobEntry> = jobs.iter().filter(|e| may_run(device, e)).collect();
    eligible.sort_by_cached_key(|e| {
        (
            std::cmp::Reverse(e.tier.rank()),
            std::cmp::Reverse(e.priority),
            scarcity(e.fit_share),
            running_of(e.tenant),
            e.running,
            e.job,
        )
    });
    eligible.into_iter().map(|e| e.job).collect()
}

/// How scarce the devices a job fits are, as a sort key (lower first): its fit share in steps
/// of [`SCARCITY_STEP`]. Jobs only a few devices can run come first on those devices, so the
/// work anyone can run is left to the rest instead of the scarce jobs running last, on a few
/// devices, while the others are idle (measured with `idlegrid sim`).
fn scarcity(fit_share: f64) -> u32 {
    let share = if fit_share.is_finite() {
        fit_share.clamp(0.0, 1.0)
    } else {
        1.0
    };
    (share / SCARCITY_STEP).ceil() as u32
}

/// Fit shares closer than this count as equally scarce (fair share decides between them).
pub const SCARCITY_STEP: f64 = 0.1;

/// A running chunk of a job, as the straggler rule sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunningTask {
    /// The chunk.
    pub task: TaskId,
    /// The device running it.
    pub holder: WorkerId,
    /// Milliseconds since it was leased.
    pub elapsed_ms: i64,
    /// Fraction done, from the holder's heartbeats (0 when it reports none).
    pub progress: f32,
    /// Milliseconds the holder was expected to need ([`run_secs`]).
    pub expected_ms: i64,
    /// Copies of it running now (2 once it has a backup).
    pub copies: u32,
}

/// Milliseconds a running chunk still needs, judged from its progress when the holder reports
/// some, and from its expected time otherwise.
pub fn remaining_ms(task: &RunningTask) -> i64 {
    let p = f64::from(task.progress);
    if p >= 0.05 {
        (task.elapsed_ms as f64 * (1.0 - p) / p).round() as i64
    } else {
        task.expected_ms.max(task.elapsed_ms * 2) - task.elapsed_ms
    }
}

/// Most copies of one chunk that run at once: the first copy and two backups. A second backup
/// is for the chunk whose first backup straggles too: when thousands of backups start as a
/// large job's queue runs dry, a few percent of them land on a throttled device, and without a
/// third copy those set the job's end while the grid idles (measured with `idlegrid sim`).
pub const MAX_COPIES: u32 = 3;

/// The running chunks of a job that should get a backup copy, slowest first. `running` lists
/// every leased copy (a chunk with two copies appears twice); a chunk's remaining time is its
/// best copy's. `fresh_ms` is what a new copy is expected to need on the next device that asks
/// (used while the job has work queued), `idle` what it is expected to need on each idle slot
/// that could take a copy now, fastest first; `queued` is the job's tasks still queued.
///
/// - A **clear straggler**, one a fresh copy would finish at least [`STRAGGLER_GAIN`] times
///   sooner, gets a backup in every tier, even while the job has work queued: the copy is
///   queued ahead of the job's other tasks, so the next device that asks takes it. Without
///   this a straggler (an overloaded or throttled device, 3–10x slower than its benchmark)
///   holds its slot for the whole of its run while work waits, and a straggler started late
///   sets the job's end (measured with `idlegrid sim`).
/// - Once nothing is queued, the slowest chunks are paired with the fastest idle slots, one
///   each, and a chunk gets its copy when that slot would finish it [`TAIL_BACKUP_GAIN`] times
///   sooner, in every tier: idle devices have nothing better to do, but a copy on a device no
///   faster than the holder only takes a slot (and, holding the chunk's copy count, keeps a
///   faster device from it later).
///
/// A chunk runs on at most [`MAX_COPIES`] devices; the first valid result wins and the other
/// copies are cancelled.
pub fn backups(queued: u64, running: &[RunningTask], fresh_ms: i64, idle: &[i64]) -> Vec<TaskId> {
    let gain = if queued == 0 {
        TAIL_BACKUP_GAIN
    } else {
        STRAGGLER_GAIN
    };
    // Each chunk once: its best copy's remaining time, and how many copies it has.
    let mut chunks: Vec<(TaskId, i64, u32)> = Vec::new();
    let mut sorted: Vec<&RunningTask> = running.iter().collect();
    sorted.sort_by_key(|t| t.task);
    for t in sorted {
        let left = remaining_ms(t);
        match chunks.last_mut() {
            Some((task, best, copies)) if *task == t.task => {
                *best = (*best).min(left);
                *copies = (*copies).max(t.copies);
            }
            _ => chunks.push((t.task, left, t.copies)),
        }
    }
    let mut slow: Vec<(i64, TaskId)> = chunks
        .into_iter()
        .filter(|(_, _, copies)| *copies < MAX_COPIES)
        .map(|(task, left, _)| (left, task))
        .collect();
    slow.sort_by_key(|(left, task)| (std::cmp::Reverse(*left), *task));
    let beats = |left: i64, fresh: i64| left as f64 > fresh as f64 * gain;
    if queued > 0 {
        return slow
            .into_iter()
            .take_while(|(left, _)| beats(*left, fresh_ms))
            .map(|(_, t)| t)
            .collect();
    }
    slow.into_iter()
        .zip(idle)
        .take_while(|((left, _), fresh)| beats(*left, **fresh))
        .map(|((_, t), _)| t)
        .collect()
}

/// What the grid has to run chunks on right now.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Capacity {
    /// Task slots on online devices.
    pub slots: u64,
    /// Their speeds summed, relative to the reference device (reference core-seconds of work
    /// the grid does per second).
    pub speed: f64,
}

/// The work per chunk (reference core-milliseconds) to cut a job of `total_work_ms` into: as
/// many chunks as the tier wants per slot of the grid's current capacity, no smaller than
/// [`MIN_CHUNK_WORK_MS`], and small enough for the reference device to finish well within the
/// lease deadline (`timeout_secs`).
pub fn chunk_work_ms(total_work_ms: i64, tier: Tier, capacity: Capacity, timeout_secs: u64) -> i64 {
    let slots = capacity.slots.max(1) as f64;
    let chunks = (slots * tier.chunks_per_slot()).ceil().max(1.0);
    let per = (total_work_ms.max(0) as f64 / chunks).ceil() as i64;
    let most = (timeout_secs as f64 * 1000.0 * CHUNK_MARGIN) as i64;
    per.max(MIN_CHUNK_WORK_MS).min(most.max(1))
}

/// Expected seconds until a job of `work_ms` finishes, with `ahead_ms` of work from jobs that
/// run before it: the grid's whole speed shares the work, but the job can finish no sooner than
/// its largest chunk on an average device.
pub fn eta_secs(work_ms: i64, ahead_ms: i64, largest_chunk_ms: i64, capacity: Capacity) -> f64 {
    if capacity.slots == 0 || capacity.speed <= 0.0 {
        return f64::INFINITY;
    }
    let spread = (ahead_ms.max(0) + work_ms.max(0)) as f64 / 1000.0 / capacity.speed;
    let per_slot = capacity.speed / capacity.slots as f64;
    let longest = largest_chunk_ms.max(0) as f64 / 1000.0 / per_slot;
    spread.max(longest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(job: i64, tenant: i64, priority: i32, running: u64) -> JobEntry {
        JobEntry {
            job: JobId(job),
            tenant: TenantId(tenant),
            tier: Tier::Standard,
            priority,
            requirements: Requirements::default(),
            running,
            chunk_work_ms: 10_000,
            timeout_secs: 600,
            fit_share: 1.0,
        }
    }

    fn device() -> Capabilities {
        Capabilities {
            cores: 2,
            memory_mb: 4096,
            python: Some("3.11".into()),
            benchmark: REFERENCE_BENCHMARK,
            ..Default::default()
        }
    }

    #[test]
    fn priority_wins_then_fair_share() {
        let jobs = [
            entry(1, 1, 0, 50),
            entry(2, 1, 0, 0),
            entry(3, 2, 0, 10),
            entry(4, 3, 5, 100),
        ];
        // Job 4 has priority; tenant 2 runs 10 tasks, tenant 1 runs 50 in total.
        assert_eq!(
            order_for(&device(), &jobs),
            vec![JobId(4), JobId(3), JobId(2), JobId(1)]
        );
    }

    #[test]
    fn unmet_requirements_are_never_offered() {
        let mut ffmpeg_job = entry(1, 1, 10, 0);
        ffmpeg_job.requirements.ffmpeg = true;
        let jobs = [ffmpeg_job, entry(2, 1, 0, 0)];
        assert_eq!(order_for(&device(), &jobs), vec![JobId(2)]);
    }

    #[test]
    fn oldest_job_breaks_ties() {
        let jobs = [entry(7, 1, 0, 0), entry(3, 2, 0, 0)];
        assert_eq!(order_for(&device(), &jobs), vec![JobId(3), JobId(7)]);
    }

    #[test]
    fn within_a_tier_the_job_fewer_devices_fit_comes_first() {
        // Job 2's tenant runs more, but only a third of the grid can run job 2.
        let mut scarce = entry(2, 1, 0, 50);
        scarce.fit_share = 0.3;
        let mut nearly_all = entry(3, 3, 0, 0);
        nearly_all.fit_share = 0.95;
        let jobs = [entry(1, 2, 0, 0), scarce, nearly_all];
        assert_eq!(
            order_for(&device(), &jobs),
            vec![JobId(2), JobId(1), JobId(3)]
        );
        // A higher tier still comes first, however many devices fit it.
        let mut fast = entry(4, 2, 0, 0);
        fast.tier = Tier::Fast;
        let mut jobs = jobs.to_vec();
        jobs.push(fast);
        assert_eq!(order_for(&device(), &jobs)[0], JobId(4));
        // Shares out of range or unknown count as every device.
        assert_eq!(scarcity(f64::NAN), scarcity(1.0));
        assert_eq!(scarcity(7.0), scarcity(1.0));
        assert_eq!(scarcity(-1.0), 0);
    }

    #[test]
    fn tier_comes_before_priority() {
        let mut fast = entry(9, 1, -100, 0);
        fast.tier = Tier::Fast;
        let mut economy = entry(1, 2, 100, 0);
        economy.tier = Tier::Economy;
        let jobs = [economy, entry(5, 3, 0, 0), fast];
        assert_eq!(
            order_for(&device(), &jobs),
            vec![JobId(9), JobId(5), JobId(1)]
        );
    }

    #[test]
    fn a_device_too_slow_for_the_deadline_is_not_offered_the_job() {
        let mut long = entry(1, 1, 0, 0);
        long.chunk_work_ms = 400_000; // 400 s on the reference device, lease 600 s (480 s usable)
        let mut slow = device();
        slow.benchmark = REFERENCE_BENCHMARK / 2.0;
        assert!(fits(&device(), &entry(2, 1, 0, 0)).is_ok());
        assert!(fits(&slow, &long).unwrap_err().contains("about 800 s"));
        let mut fast = device();
        fast.benchmark = REFERENCE_BENCHMARK * 2.0;
        assert!(fits(&fast, &long).is_ok());
        fast.allows.task_secs = Some(60);
        assert!(fits(&fast, &long).unwrap_err().contains("owner allows"));
    }

    fn running(task: i64, elapsed_ms: i64, progress: f32, expected_ms: i64) -> RunningTask {
        RunningTask {
            task: TaskId(task),
            holder: WorkerId(task),
            elapsed_ms,
            progress,
            expected_ms,
            copies: 1,
        }
    }

    #[test]
    fn backups_go_to_the_slowest_chunks_once_nothing_is_queued() {
        let tasks = [
            running(1, 10_000, 0.9, 11_000),  // nearly done
            running(2, 10_000, 0.1, 11_000),  // 90 s left
            running(3, 10_000, 0.0, 100_000), // 90 s left by its expected time
            running(4, 10_000, 0.2, 11_000),  // 40 s left
        ];
        assert_eq!(
            backups(0, &tasks, 0, &[10_000; 2]),
            vec![TaskId(2), TaskId(3)]
        );
        assert_eq!(backups(0, &tasks, 0, &[10_000; 9]).len(), 3);
        // No idle slot, no backup of the tail.
        assert!(backups(0, &tasks, 10_000, &[]).is_empty());
        // Only chunks an idle slot would finish 1.5 times sooner.
        assert!(backups(0, &tasks, 0, &[60_000; 9]).is_empty());
        assert_eq!(backups(0, &tasks, 0, &[20_000; 9]).len(), 3);
    }

    #[test]
    fn each_backup_is_judged_against_the_idle_slot_that_would_take_it() {
        let tasks = [
            running(1, 10_000, 0.1, 11_000), // 90 s left
            running(2, 10_000, 0.2, 11_000), // 40 s left
            running(3, 10_000, 0.5, 11_000), // 10 s left
        ];
        // The slowest chunk goes to the fastest slot; the next slot is too slow to beat the
        // second chunk 1.5 times, so neither it nor any slower one gets a copy.
        assert_eq!(
            backups(0, &tasks, 0, &[5_000, 30_000, 40_000]),
            vec![TaskId(1)]
        );
        assert_eq!(
            backups(0, &tasks, 0, &[5_000, 20_000, 40_000]),
            vec![TaskId(1), TaskId(2)]
        );
    }

    #[test]
    fn a_chunk_is_judged_by_its_best_copy_and_runs_on_three_devices_at_most() {
        let mut first = running(1, 60_000, 0.1, 11_000); // 9 min left
        first.copies = 2;
        // Its backup straggles too (4.5 min left): a third device that would take 10 s gets
        // a copy; a backup that goes well (5 s left) keeps the chunk from one.
        let mut straggling = running(1, 30_000, 0.1, 11_000);
        straggling.copies = 2;
        let mut going_well = running(1, 5_000, 0.5, 10_000);
        going_well.copies = 2;
        let fresh = [10_000; 4];
        assert_eq!(
            backups(0, &[first.clone(), straggling.clone()], 0, &fresh),
            vec![TaskId(1)]
        );
        assert!(backups(0, &[first.clone(), going_well], 0, &fresh).is_empty());
        // With three copies running it gets no fourth, however slow they all are.
        let mut three = vec![first, straggling.clone(), straggling];
        for t in &mut three {
            t.copies = MAX_COPIES;
        }
        assert!(backups(0, &three, 0, &fresh).is_empty());
    }

    #[test]
    fn clear_stragglers_are_backed_up_while_work_is_queued() {
        let tasks = [
            running(1, 10_000, 0.1, 11_000),  // 90 s left: a clear straggler
            running(2, 10_000, 0.2, 11_000),  // 40 s left: slow, not clearly
            running(3, 10_000, 0.0, 100_000), // 90 s left by its expected time
        ];
        // With work queued only chunks a fresh copy beats 4 times get one, and no idle device
        // is needed: the copy is queued ahead of the job's other tasks.
        assert_eq!(backups(5, &tasks, 20_000, &[]), vec![TaskId(1), TaskId(3)]);
        assert_eq!(backups(0, &tasks, 0, &[20_000; 9]).len(), 3);
        assert!(backups(5, &tasks, 30_000, &[1; 9]).is_empty());
    }

    #[test]
    fn chunks_follow_tier_and_capacity() {
        let grid = Capacity {
            slots: 100,
            speed: 100.0,
        };
        let hour = 3_600_000;
        assert_eq!(chunk_work_ms(hour, Tier::Economy, grid, 600), 36_000);
        assert_eq!(chunk_work_ms(hour, Tier::Fast, grid, 600), 9_000);
        // Never below the floor, never past the deadline.
        assert_eq!(
            chunk_work_ms(1_000, Tier::Fast, grid, 600),
            MIN_CHUNK_WORK_MS
        );
        assert_eq!(chunk_work_ms(100 * hour, Tier::Economy, grid, 600), 150_000);
        // An empty grid still cuts a job.
        assert!(chunk_work_ms(hour, Tier::Standard, Capacity::default(), 600) > 0);
    }

    #[test]
    fn eta_is_bounded_by_speed_and_the_longest_chunk() {
        let grid = Capacity {
            slots: 10,
            speed: 10.0,
        };
        assert_eq!(eta_secs(100_000, 0, 1_000, grid), 10.0);
        assert_eq!(eta_secs(100_000, 100_000, 1_000, grid), 20.0);
        assert_eq!(eta_secs(10_000, 0, 10_000, grid), 10.0);
        assert!(eta_secs(1, 0, 1, Capacity::default()).is_infinite());
    }
}
