//! The event loop: virtual time in milliseconds, events on a [`BinaryHeap`], and the grid's
//! state as the coordinator and the devices each see it.
//!
//! Every decision goes through `idlegrid_domain::schedule`: which job a device gets tasks from
//! (`order_for`), how large a job's chunks are (`chunk_work_ms`), which stragglers get backups
//! (`backups`), and how long a device is expected to need (`run_secs`). The engine only keeps
//! the books the Feeder and the Tasks API keep: queues, leases, running counts.

use crate::Scenario;
use crate::report::{Metrics, Report};
use crate::world::{self, DeviceSpec, JobSpec};
use idlegrid_domain::schedule::{self, Capacity, JobEntry, RunningTask};
use idlegrid_domain::{JobId, TaskId, WorkerId};
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// Milliseconds without a heartbeat after which the coordinator takes a lease back (the
/// default `--lease-secs`): a device that leaves loses its leases only then.
pub const HEARTBEAT_MISS_MS: i64 = 30_000;

/// Milliseconds between the Feeder's looks for stragglers to back up.
pub const BACKUP_SWEEP_MS: i64 = 5_000;

/// Virtual time after which a run gives up (a job no device can finish).
const GIVE_UP_MS: i64 = 30 * 24 * 3_600_000;

/// Something that happens at a point of virtual time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// An attempt's device finishes it (attempt, generation).
    Finish(u32, u32),
    /// The coordinator takes an attempt's lease back: its deadline passed, or its device's
    /// heartbeats stopped (attempt, generation).
    Expire(u32, u32),
    /// A device leaves, abandoning what it runs.
    Leave(u32),
    /// A device comes back.
    Return(u32),
    /// The Feeder looks for stragglers.
    Sweep,
}

/// Where an attempt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Its device runs it and the coordinator holds its lease.
    Running,
    /// Its device left; the coordinator still holds the lease until the heartbeats are missed.
    Orphaned,
    /// Over; the record may be reused.
    Ended,
}

/// One copy of a task leased to one device.
#[derive(Debug, Clone)]
struct Attempt {
    /// The task.
    task: u32,
    /// The device.
    device: u32,
    /// Bumped on reuse, so events for an earlier attempt in this record are ignored.
    generation: u32,
    /// When it was leased.
    start: i64,
    /// How long its device takes for it.
    duration: i64,
    /// How long the policy expects it to take (`run_secs`).
    expected_ms: i64,
    /// Whether it is a backup copy.
    backup: bool,
    /// Where it stands.
    stage: Stage,
    /// Its index in its job's `live` list.
    live_at: usize,
}

/// One copy of a chunk that must succeed once (a replicated chunk is one task per replica).
#[derive(Debug, Clone)]
struct Task {
    /// Its job.
    job: u32,
    /// Its chunk: replicas of one chunk never run on the same device.
    chunk: u32,
    /// Work, in reference core-milliseconds.
    work_ms: i64,
    /// Leases held on it.
    live: u32,
    /// Results accepted for it (exactly 1 once done).
    completions: u32,
    /// Whether a backup copy of it is queued (at the head of its job's queue) while it runs.
    backup_queued: bool,
}

/// A job's dispatch state.
#[derive(Debug, Clone)]
struct Job {
    /// As submitted.
    spec: JobSpec,
    /// Queued tasks, next first.
    queue: VecDeque<u32>,
    /// Attempts holding a lease.
    live: Vec<u32>,
    /// Tasks not done yet.
    left: usize,
    /// When its last task was done.
    done_at: Option<i64>,
    /// Speed of the average slot among the devices it fits (what a copy queued for whichever
    /// device asks next is expected to get).
    fit_speed: f64,
}

/// A device's state.
#[derive(Debug, Clone)]
struct Device {
    /// As registered.
    spec: DeviceSpec,
    /// Whether it is online.
    online: bool,
    /// Since when it is online (or was, until it left).
    online_since: i64,
    /// The spans it was online and has left since, `[from, until)`.
    was_online: Vec<(i64, i64)>,
    /// Slots not running anything.
    free: u32,
    /// Attempts it runs.
    running: Vec<u32>,
    /// Whether it is in the idle list.
    listed_idle: bool,
}

/// A whole simulated grid.
pub(crate) struct Sim {
    /// The settings.
    scenario: Scenario,
    /// Every random draw.
    rng: StdRng,
    /// Virtual time, milliseconds.
    now: i64,
    /// Event order among equal times.
    seq: u64,
    /// What happens next.
    events: BinaryHeap<Reverse<(i64, u64, Event)>>,
    /// Devices.
    devices: Vec<Device>,
    /// Jobs, indexed by their id.
    jobs: Vec<Job>,
    /// Tasks.
    tasks: Vec<Task>,
    /// Attempt records, live and reusable.
    attempts: Vec<Attempt>,
    /// Attempt records free for reuse.
    spare: Vec<u32>,
    /// The Feeder's table: one entry per unfinished job.
    entries: Vec<JobEntry>,
    /// Index in `entries` of each job (`usize::MAX` once done).
    entry_of: Vec<usize>,
    /// Devices that may have free slots and nothing to run.
    idle: Vec<u32>,
    /// Jobs not done.
    jobs_left: usize,
    /// The grid's speed (reference core-ms per ms) from each change on.
    capacity: Vec<(i64, f64)>,
    /// Counters.
    metrics: Metrics,
}

impl Sim {
    /// The grid at time 0: every device online, every job cut and queued.
    pub(crate) fn new(scenario: &Scenario) -> Sim {
        let mut rng = StdRng::seed_from_u64(scenario.seed);
        let device_specs = world::devices(scenario, &mut rng);
        let job_specs = world::jobs(scenario, &mut rng, &device_specs);
        let grid = Capacity {
            slots: device_specs.iter().map(|d| u64::from(d.caps.slots)).sum(),
            speed: device_specs
                .iter()
                .map(|d| f64::from(d.caps.slots) * d.speed)
                .sum(),
        };
        let mut tasks = Vec::new();
        let mut jobs = Vec::new();
        let mut chunks = 0u32;
        for mut spec in job_specs {
            let size = schedule::chunk_work_ms(
                spec.work_ms,
                spec.entry.tier,
                grid,
                spec.entry.timeout_secs,
            );
            spec.entry.chunk_work_ms = size;
            let mut sizes = Vec::new();
            let mut rest = spec.work_ms;
            while rest > 0 {
                sizes.push(rest.min(size));
                rest -= size;
            }
            // The Partitioner queues the chunks with the most work first.
            sizes.sort_by_key(|w| Reverse(*w));
            let mut queue = VecDeque::new();
            for work_ms in sizes {
                for _ in 0..spec.replicas {
                    queue.push_back(tasks.len() as u32);
                    tasks.push(Task {
                        job: jobs.len() as u32,
                        chunk: chunks,
                        work_ms,
                        live: 0,
                        completions: 0,
                        backup_queued: false,
                    });
                }
                chunks += 1;
            }
            let (mut slots, mut speed) = (0.0, 0.0);
            for d in device_specs
                .iter()
                .filter(|d| schedule::may_run(&d.caps, &spec.entry))
            {
                slots += f64::from(d.caps.slots);
                speed += f64::from(d.caps.slots) * d.speed;
            }
            spec.entry.fit_share = speed / grid.speed.max(f64::MIN_POSITIVE);
            jobs.push(Job {
                left: queue.len(),
                spec,
                queue,
                live: Vec::new(),
                done_at: None,
                fit_speed: if slots > 0.0 { speed / slots } else { 1.0 },
            });
        }
        let devices: Vec<Device> = device_specs
            .into_iter()
            .map(|spec| Device {
                online: true,
                online_since: 0,
                was_online: Vec::new(),
                free: spec.caps.slots,
                running: Vec::new(),
                listed_idle: false,
                spec,
            })
            .collect();
        let entries: Vec<JobEntry> = jobs.iter().map(|j| j.spec.entry.clone()).collect();
        Sim {
            scenario: scenario.clone(),
            rng,
            now: 0,
            seq: 0,
            events: BinaryHeap::new(),
            entry_of: (0..jobs.len()).collect(),
            jobs_left: jobs.len(),
            capacity: vec![(0, grid.speed)],
            devices,
            jobs,
            tasks,
            attempts: Vec::new(),
            spare: Vec::new(),
            entries,
            idle: Vec::new(),
            metrics: Metrics::default(),
        }
    }

    /// Runs until every job is done, calling `progress` now and then with the fraction of tasks
    /// done.
    pub(crate) fn run(mut self, progress: &mut dyn FnMut(f64)) -> Report {
        for d in 0..self.devices.len() {
            if self.devices[d].spec.churns {
                let at = world::stay_ms(&mut self.rng);
                self.at(at, Event::Leave(d as u32));
            }
        }
        if self.scenario.backups {
            self.at(BACKUP_SWEEP_MS, Event::Sweep);
        }
        for d in 0..self.devices.len() {
            self.lease(d);
        }
        let total = self.tasks.len().max(1) as f64;
        let mut handled = 0u64;
        while self.jobs_left > 0 {
            let Some(Reverse((at, _, event))) = self.events.pop() else {
                break;
            };
            if at > GIVE_UP_MS {
                break;
            }
            self.now = at;
            match event {
                Event::Finish(a, generation) => self.finish(a, generation),
                Event::Expire(a, generation) => self.expire(a, generation),
                Event::Leave(d) => self.leave(d as usize),
                Event::Return(d) => self.back(d as usize),
                Event::Sweep => self.sweep(),
            }
            handled += 1;
            if handled.is_multiple_of(1 << 16) {
                let left: usize = self.jobs.iter().map(|j| j.left).sum();
                progress(1.0 - left as f64 / total);
            }
        }
        self.report()
    }

    /// Schedules an event.
    fn at(&mut self, at: i64, event: Event) {
        self.seq += 1;
        self.events.push(Reverse((at, self.seq, event)));
    }

    /// A device with free slots asks for tasks, in the policy's order of jobs.
    fn lease(&mut self, d: usize) {
        if !self.devices[d].online || self.devices[d].free == 0 {
            return;
        }
        let order = schedule::order_for(&self.devices[d].spec.caps, &self.entries);
        for JobId(job) in order {
            while self.devices[d].free > 0 {
                let Some(task) = self.take_queued(job as usize, d) else {
                    break;
                };
                let backup = std::mem::take(&mut self.tasks[task as usize].backup_queued);
                self.start(task, d, backup);
            }
            if self.devices[d].free == 0 {
                return;
            }
        }
        if !self.devices[d].listed_idle {
            self.devices[d].listed_idle = true;
            self.idle.push(d as u32);
        }
    }

    /// Whether device `d` runs a copy of `chunk`.
    fn holds_chunk(&self, d: usize, chunk: u32) -> bool {
        self.devices[d]
            .running
            .iter()
            .any(|&a| self.tasks[self.attempts[a as usize].task as usize].chunk == chunk)
    }

    /// Takes the next queued task of a job that device `d` may run (never a second replica of
    /// a chunk it already runs).
    fn take_queued(&mut self, job: usize, d: usize) -> Option<u32> {
        let at = self.jobs[job]
            .queue
            .iter()
            .take(8)
            .position(|&t| !self.holds_chunk(d, self.tasks[t as usize].chunk))?;
        self.jobs[job].queue.remove(at)
    }

    /// Leases a task to device `d`.
    fn start(&mut self, task: u32, d: usize, backup: bool) {
        let work_ms = self.tasks[task as usize].work_ms;
        let device = &self.devices[d].spec;
        let expected_ms = (schedule::run_secs(&device.caps, work_ms) * 1000.0).round() as i64;
        let slowdown = world::slowdown(&mut self.rng, &self.scenario);
        let duration = ((work_ms as f64 / device.speed * slowdown).ceil() as i64).max(1);
        let job = self.tasks[task as usize].job as usize;
        let attempt = Attempt {
            task,
            device: d as u32,
            generation: 0,
            start: self.now,
            duration,
            expected_ms,
            backup,
            stage: Stage::Running,
            live_at: self.jobs[job].live.len(),
        };
        let a = match self.spare.pop() {
            Some(a) => {
                let generation = self.attempts[a as usize].generation + 1;
                self.attempts[a as usize] = Attempt {
                    generation,
                    ..attempt
                };
                a
            }
            None => {
                self.attempts.push(attempt);
                (self.attempts.len() - 1) as u32
            }
        };
        let generation = self.attempts[a as usize].generation;
        self.jobs[job].live.push(a);
        self.entries[self.entry_of[job]].running += 1;
        self.tasks[task as usize].live += 1;
        self.devices[d].free -= 1;
        self.devices[d].running.push(a);
        self.metrics.attempts += 1;
        if backup {
            self.metrics.backups_started += 1;
        }
        let deadline_ms = self.jobs[job].spec.entry.timeout_secs as i64 * 1000;
        if duration > deadline_ms {
            self.at(self.now + deadline_ms, Event::Expire(a, generation));
        } else {
            self.at(self.now + duration, Event::Finish(a, generation));
        }
    }

    /// Whether an event still concerns the attempt in record `a`.
    fn current(&self, a: u32, generation: u32) -> bool {
        let attempt = &self.attempts[a as usize];
        attempt.generation == generation && attempt.stage != Stage::Ended
    }

    /// The device stops running an attempt: its slot is free, its time counted busy. Returns
    /// the device capacity it spent (reference core-ms).
    fn stop_on_device(&mut self, a: u32) -> f64 {
        let attempt = &mut self.attempts[a as usize];
        attempt.stage = Stage::Orphaned;
        let d = attempt.device as usize;
        let elapsed = self.now - attempt.start;
        let device = &mut self.devices[d];
        device.free += 1;
        if let Some(i) = device.running.iter().position(|&x| x == a) {
            device.running.swap_remove(i);
        }
        self.metrics.busy_slot_ms += elapsed as f64;
        elapsed as f64 * device.spec.speed
    }

    /// The coordinator lets go of an attempt's lease.
    fn release(&mut self, a: u32) {
        let attempt = &mut self.attempts[a as usize];
        attempt.stage = Stage::Ended;
        let task = attempt.task as usize;
        let at = attempt.live_at;
        let job = self.tasks[task].job as usize;
        self.tasks[task].live -= 1;
        let live = &mut self.jobs[job].live;
        live.swap_remove(at);
        if let Some(&moved) = live.get(at) {
            self.attempts[moved as usize].live_at = at;
        }
        if self.entry_of[job] != usize::MAX {
            self.entries[self.entry_of[job]].running -= 1;
        }
        self.spare.push(a);
    }

    /// An attempt's device finishes it: the first result of a task wins and the task's other
    /// copies are cancelled.
    fn finish(&mut self, a: u32, generation: u32) {
        if !self.current(a, generation) || self.attempts[a as usize].stage != Stage::Running {
            return;
        }
        let Attempt {
            task,
            device,
            backup,
            ..
        } = self.attempts[a as usize];
        self.stop_on_device(a);
        self.release(a);
        let job = self.tasks[task as usize].job as usize;
        self.tasks[task as usize].completions += 1;
        if backup {
            self.metrics.backups_won += 1;
        }
        let mut freed = vec![device as usize];
        if self.tasks[task as usize].live > 0 {
            let others: Vec<u32> = self.jobs[job]
                .live
                .iter()
                .copied()
                .filter(|&b| self.attempts[b as usize].task == task)
                .collect();
            for b in others {
                if self.attempts[b as usize].stage == Stage::Running {
                    self.metrics.backup_extra_ms += self.stop_on_device(b);
                    freed.push(self.attempts[b as usize].device as usize);
                }
                self.release(b);
            }
        }
        if std::mem::take(&mut self.tasks[task as usize].backup_queued) {
            let queue = &mut self.jobs[job].queue;
            if let Some(at) = queue.iter().position(|&t| t == task) {
                queue.remove(at);
            }
        }
        self.jobs[job].left -= 1;
        if self.jobs[job].left == 0 {
            self.job_done(job);
        }
        for d in freed {
            self.lease(d);
        }
    }

    /// A job's last task is done: it leaves the Feeder's table.
    fn job_done(&mut self, job: usize) {
        self.jobs[job].done_at = Some(self.now);
        self.jobs_left -= 1;
        self.entries.retain(|e| e.job != JobId(job as i64));
        self.entry_of.fill(usize::MAX);
        for (i, e) in self.entries.iter().enumerate() {
            self.entry_of[e.job.0 as usize] = i;
        }
    }

    /// The coordinator takes a lease back; the task is queued again unless another copy of it
    /// still runs.
    fn expire(&mut self, a: u32, generation: u32) {
        if !self.current(a, generation) {
            return;
        }
        let Attempt {
            task,
            device,
            stage,
            ..
        } = self.attempts[a as usize];
        if stage == Stage::Running {
            self.metrics.deadline_expiries += 1;
            self.metrics.deadline_lost_ms += self.stop_on_device(a);
        }
        self.release(a);
        let job = self.tasks[task as usize].job as usize;
        if self.tasks[task as usize].live == 0 && !self.tasks[task as usize].backup_queued {
            if stage == Stage::Orphaned {
                self.metrics.requeued_after_leaving += 1;
            }
            self.jobs[job].queue.push_front(task);
            self.wake_idle(job);
        }
        if stage == Stage::Running {
            self.lease(device as usize);
        }
    }

    /// Work was queued for `job`: idle devices it fits ask for tasks again.
    fn wake_idle(&mut self, job: usize) {
        let Some(&e) = self.entry_of.get(job).filter(|&&e| e != usize::MAX) else {
            return;
        };
        let idle = std::mem::take(&mut self.idle);
        for &d in &idle {
            if self.jobs[job].queue.is_empty() {
                break;
            }
            let device = &self.devices[d as usize];
            if device.online
                && device.free > 0
                && schedule::may_run(&device.spec.caps, &self.entries[e])
            {
                self.lease(d as usize);
            }
        }
        let mut idle: Vec<u32> = idle;
        idle.append(&mut self.idle);
        idle.retain(|&d| {
            let device = &mut self.devices[d as usize];
            let keep = device.online && device.free > 0 && device.listed_idle;
            device.listed_idle = keep;
            keep
        });
        self.idle = idle;
    }

    /// A device leaves: what it runs is lost, though the coordinator learns it only when the
    /// heartbeats are missed.
    fn leave(&mut self, d: usize) {
        self.devices[d].online = false;
        let running = std::mem::take(&mut self.devices[d].running);
        for &a in &running {
            let generation = self.attempts[a as usize].generation;
            self.metrics.churn_lost_ms += self.stop_on_device(a);
            self.at(self.now + HEARTBEAT_MISS_MS, Event::Expire(a, generation));
        }
        let device = &mut self.devices[d];
        let slots = f64::from(device.spec.caps.slots);
        self.metrics.available_slot_ms += (self.now - device.online_since) as f64 * slots;
        device.was_online.push((device.online_since, self.now));
        self.metrics.departures += 1;
        let speed = slots * device.spec.speed;
        self.change_capacity(-speed);
        let back = self.now + world::away_ms(&mut self.rng);
        self.at(back, Event::Return(d as u32));
    }

    /// A device comes back and asks for work.
    fn back(&mut self, d: usize) {
        let device = &mut self.devices[d];
        device.online = true;
        device.online_since = self.now;
        let speed = f64::from(device.spec.caps.slots) * device.spec.speed;
        self.change_capacity(speed);
        let leave = self.now + world::stay_ms(&mut self.rng);
        self.at(leave, Event::Leave(d as u32));
        self.lease(d);
    }

    /// Records a change of the grid's speed.
    fn change_capacity(&mut self, by: f64) {
        let speed = self.capacity.last().map_or(0.0, |(_, s)| *s) + by;
        match self.capacity.last_mut() {
            Some(last) if last.0 == self.now => last.1 = speed,
            _ => self.capacity.push((self.now, speed)),
        }
    }

    /// The Feeder's look for stragglers: for each job, the policy picks running tasks to back
    /// up. A job with work queued gets its copies queued at the head of its queue (the next
    /// device that asks takes them); a job with nothing queued gets them leased to the fastest
    /// idle devices that fit it.
    fn sweep(&mut self) {
        self.at(self.now + BACKUP_SWEEP_MS, Event::Sweep);
        self.idle.retain(|&d| {
            let device = &mut self.devices[d as usize];
            let keep = device.online && device.free > 0;
            device.listed_idle = keep;
            keep
        });
        let mut idle = self.idle.clone();
        idle.sort_by(|&a, &b| {
            let (a, b) = (&self.devices[a as usize], &self.devices[b as usize]);
            b.spec.speed.total_cmp(&a.spec.speed)
        });
        let mut order: Vec<usize> = self.entries.iter().map(|e| e.job.0 as usize).collect();
        order.sort_by_key(|&j| (Reverse(self.jobs[j].spec.entry.tier.rank()), j));
        for job in order {
            let Some(&e) = self.entry_of.get(job).filter(|&&e| e != usize::MAX) else {
                continue;
            };
            let entry = self.entries[e].clone();
            let queued = self.jobs[job].queue.len() as u64;
            if queued > 0 {
                let fresh_ms =
                    (entry.chunk_work_ms as f64 / self.jobs[job].fit_speed).round() as i64;
                let running = self.running_tasks(job);
                let picks = schedule::backups(queued, &running, fresh_ms, &[]);
                for TaskId(task) in picks {
                    if self.tasks[task as usize].backup_queued {
                        continue;
                    }
                    self.tasks[task as usize].backup_queued = true;
                    self.jobs[job].queue.push_front(task as u32);
                }
                continue;
            }
            let fitting: Vec<u32> = idle
                .iter()
                .copied()
                .filter(|&d| {
                    let device = &self.devices[d as usize];
                    device.free > 0 && schedule::may_run(&device.spec.caps, &entry)
                })
                .collect();
            if fitting.is_empty() {
                continue;
            }
            // A fresh copy's time on each idle slot, fastest first.
            let fresh: Vec<i64> = fitting
                .iter()
                .flat_map(|&d| {
                    let device = &self.devices[d as usize];
                    let ms = (schedule::run_secs(&device.spec.caps, entry.chunk_work_ms) * 1000.0)
                        .round() as i64;
                    std::iter::repeat_n(ms, device.free as usize)
                })
                .collect();
            let running = self.running_tasks(job);
            let picks = schedule::backups(0, &running, 0, &fresh);
            for TaskId(task) in picks {
                let chunk = self.tasks[task as usize].chunk;
                let target = fitting.iter().copied().find(|&d| {
                    self.devices[d as usize].free > 0 && !self.holds_chunk(d as usize, chunk)
                });
                if let Some(d) = target {
                    self.start(task as u32, d as usize, true);
                }
            }
        }
    }

    /// A job's leased tasks as the straggler rule sees them.
    fn running_tasks(&self, job: usize) -> Vec<RunningTask> {
        self.jobs[job]
            .live
            .iter()
            .map(|&a| {
                let attempt = &self.attempts[a as usize];
                let elapsed_ms = self.now - attempt.start;
                let reports = self.jobs[job].spec.reports_progress;
                let progress = if reports && attempt.stage == Stage::Running {
                    (elapsed_ms as f64 / attempt.duration as f64).min(1.0) as f32
                } else {
                    0.0
                };
                RunningTask {
                    task: TaskId(i64::from(attempt.task)),
                    holder: WorkerId(i64::from(attempt.device)),
                    elapsed_ms,
                    progress,
                    expected_ms: attempt.expected_ms,
                    copies: self.tasks[attempt.task as usize].live
                        + u32::from(self.tasks[attempt.task as usize].backup_queued),
                }
            })
            .collect()
    }

    /// A lower bound that also knows what jobs need: the jobs that need the same thing (FFmpeg,
    /// a Python, a minimum benchmark) can run only on the devices that have it, so they cannot
    /// all be done before those devices' online capacity covers their work. The largest over
    /// the groups of jobs with equal requirements. (Owners' allowances and lease deadlines
    /// narrow the devices further; leaving them out keeps it a bound.)
    fn requirement_bound_ms(&self) -> f64 {
        let mut groups: Vec<(&idlegrid_domain::Requirements, f64)> = Vec::new();
        for task in &self.tasks {
            let needs = &self.jobs[task.job as usize].spec.entry.requirements;
            match groups.iter_mut().find(|(r, _)| *r == needs) {
                Some((_, work)) => *work += task.work_ms as f64,
                None => groups.push((needs, task.work_ms as f64)),
            }
        }
        groups
            .iter()
            .map(|(needs, work)| {
                // The fitting devices' speed over time: +speed when one comes, -speed when it
                // goes; those online at the end stay.
                let mut changes: Vec<(i64, f64)> = Vec::new();
                for device in self
                    .devices
                    .iter()
                    .filter(|d| needs.check(&d.spec.caps).is_ok())
                {
                    let speed = f64::from(device.spec.caps.slots) * device.spec.speed;
                    for &(from, until) in &device.was_online {
                        changes.push((from, speed));
                        changes.push((until, -speed));
                    }
                    if device.online {
                        changes.push((device.online_since, speed));
                    }
                }
                changes.sort_by_key(|c| c.0);
                let mut timeline: Vec<(i64, f64)> = Vec::new();
                let mut speed = 0.0;
                for (at, by) in changes {
                    speed += by;
                    match timeline.last_mut() {
                        Some(last) if last.0 == at => last.1 = speed,
                        _ => timeline.push((at, speed)),
                    }
                }
                crate::report::work_bound_ms(&timeline, *work)
            })
            .fold(0.0, f64::max)
    }

    /// The run's figures.
    fn report(mut self) -> Report {
        let makespan = self.now;
        for device in &self.devices {
            if device.online {
                self.metrics.available_slot_ms +=
                    (makespan - device.online_since) as f64 * f64::from(device.spec.caps.slots);
            }
        }
        let fastest = self
            .devices
            .iter()
            .map(|d| d.spec.speed)
            .fold(0.0, f64::max);
        let longest = self.tasks.iter().map(|t| t.work_ms).max().unwrap_or(0);
        let required: i64 = self.tasks.iter().map(|t| t.work_ms).sum();
        let once: i64 = self.jobs.iter().map(|j| j.spec.work_ms).sum();
        self.metrics.tasks = self.tasks.len() as u64;
        self.metrics.tasks_done_once =
            self.tasks.iter().filter(|t| t.completions == 1).count() as u64;
        let jobs: Vec<(idlegrid_domain::Tier, Option<i64>)> = self
            .jobs
            .iter()
            .map(|j| (j.spec.entry.tier, j.done_at))
            .collect();
        let requirement_bound = self.requirement_bound_ms();
        Report::new(
            self.scenario,
            makespan,
            requirement_bound,
            &self.capacity,
            required,
            once,
            longest as f64 / fastest.max(f64::MIN_POSITIVE),
            &jobs,
            self.metrics,
        )
    }
}
