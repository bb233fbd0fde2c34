//! A discrete-event simulation of an idlegrid grid that drives the real scheduling policy
//! (`idlegrid_domain::schedule`) in virtual time, to see how far from the best possible
//! makespan the policy lands with many devices of different speeds that come and go.
//!
//! Layout:
//! - [`scenario`]: what a run simulates ([`Scenario`]).
//! - `world`: the devices and jobs drawn from a scenario and its seed.
//! - `engine`: the event loop (a [`std::collections::BinaryHeap`] of events in virtual
//!   milliseconds) and the books the Feeder and Tasks API keep.
//! - [`report`]: a run's figures ([`Report`]) and the lower bound.
//!
//! **What it models.** Devices with benchmarks log-uniform over a 10x spread around the
//! reference device, 1–4 slots, some without FFmpeg or Python, some whose owners allow only
//! 2-minute tasks. Jobs of heavy-tailed size (log-uniform over 1–2,000 reference core-hours per
//! 10,000 devices), all submitted at time 0, of mixed tiers, tenants, priorities,
//! requirements and lease deadlines (5, 10 or 20 minutes); a tenth of them replicated on 2
//! devices. Each job is cut with `schedule::chunk_work_ms` from the grid's capacity at time 0
//! and its chunks queued longest first. A device with free slots is offered jobs in the order
//! of `schedule::order_for` and takes queued tasks from the first ones; a device idle because
//! nothing fits it waits until work it fits is queued. An attempt takes its work ÷ its slot's
//! speed times a slowdown of at least 1 (5% more on average, 3–10x for 2% of attempts: the
//! stragglers); one that overruns its lease deadline is taken back at the deadline and queued
//! again. A fraction of devices (the churn, 30% by default) leaves at random times (stays are
//! exponential, 30 minutes on average), abandoning what it runs, and comes back 5–30 minutes
//! later; the coordinator takes the lost leases back when their heartbeats have been missed
//! for 30 s, and queues those tasks again at the head of their job's queue. Every 5 s the
//! Feeder asks `schedule::backups` which running tasks of each job deserve a backup copy: for a
//! job with work queued (a fresh copy expected on the average device the job fits) the copies
//! are queued at the head of its queue, as the coordinator does; for a job with nothing queued
//! they are leased to the fastest idle devices that fit. The first copy to finish wins, the
//! other is cancelled (a copy still queued is dropped).
//!
//! **What it does not model.** The network and the time to lease, download, start and report
//! (a task's fixed cost), the validator (every result is valid; replicas always agree), jobs
//! arriving over time, devices joining for good or leaving for good, failures other than
//! leaving and overrunning, progress reports that lie, and the coordinator's own limits. A
//! churning device's stays are drawn, not replayed from real traces.
//!
//! **The lower bound** is the larger of two times no schedule can beat: the moment the grid's
//! online capacity (the summed speed of the slots online, as it changes with churn,
//! integrated from time 0) covers all the work that must be done, each chunk once per
//! replica, at benchmark speed without a pause; and the longest chunk on the fastest device.
//! Slowdowns are never below 1, so devices never beat their benchmark and the bound holds.

mod engine;
pub mod report;
pub mod scenario;
mod world;

pub use engine::{BACKUP_SWEEP_MS, HEARTBEAT_MISS_MS};
pub use report::{Report, TierTimes};
pub use scenario::Scenario;

/// Simulates `scenario` to the end, calling `progress` now and then with the fraction of tasks
/// done.
pub fn run(scenario: &Scenario, progress: &mut dyn FnMut(f64)) -> Report {
    engine::Sim::new(scenario).run(progress)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A grid small enough for a test.
    fn small(devices: usize, jobs: usize) -> Scenario {
        Scenario {
            devices,
            jobs,
            ..Scenario::default()
        }
    }

    fn quiet(scenario: &Scenario) -> Report {
        run(scenario, &mut |_| {})
    }

    fn sound(report: &Report) {
        assert_eq!(report.unfinished_jobs, 0, "{report:#?}");
        assert_eq!(report.tasks_done_once, report.tasks, "{report:#?}");
        assert!(
            report.makespan_s >= report.lower_bound_s,
            "makespan {} below the lower bound {}",
            report.makespan_s,
            report.lower_bound_s
        );
        // Knowing what jobs need only tightens the bound, and no run beats it either.
        assert!(report.requirement_bound_s >= report.lower_bound_s);
        assert!(
            report.makespan_s >= report.requirement_bound_s,
            "makespan {} below the requirement bound {}",
            report.makespan_s,
            report.requirement_bound_s
        );
        assert!(report.utilisation > 0.0 && report.utilisation <= 1.0 + 1e-9);
    }

    #[test]
    fn a_seed_gives_the_same_run() {
        let scenario = small(200, 10);
        let (a, b) = (quiet(&scenario), quiet(&scenario));
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
        let other = quiet(&Scenario {
            seed: 2,
            ..scenario
        });
        assert_ne!(a.makespan_s, other.makespan_s);
    }

    #[test]
    fn every_task_is_done_exactly_once_and_no_run_beats_the_bound() {
        for seed in 1..=5 {
            for backups in [true, false] {
                for churn in [0.0, 0.5] {
                    sound(&quiet(&Scenario {
                        seed,
                        backups,
                        churn,
                        stragglers: 0.05,
                        ..small(150, 8)
                    }));
                }
            }
        }
    }

    #[test]
    fn equal_devices_without_churn_come_close_to_the_bound() {
        let report = quiet(&Scenario {
            churn: 0.0,
            speed_spread: 1.0,
            stragglers: 0.0,
            jitter: 0.0,
            varied: false,
            ..small(200, 10)
        });
        sound(&report);
        assert!(report.ratio < 1.1, "ratio {}", report.ratio);
        assert!(
            report.utilisation > 0.95,
            "utilisation {}",
            report.utilisation
        );
        assert_eq!(report.backups_started, 0);
    }

    #[test]
    fn backups_cut_the_tail_that_stragglers_make() {
        let stragglers = Scenario {
            churn: 0.0,
            stragglers: 0.1,
            ..small(300, 10)
        };
        let with = quiet(&stragglers);
        let without = quiet(&Scenario {
            backups: false,
            ..stragglers
        });
        sound(&with);
        sound(&without);
        assert!(with.backups_won > 0, "{with:#?}");
        assert!(with.backup_extra > 0.0);
        assert_eq!(without.backups_started, 0);
        assert!(
            with.makespan_s < without.makespan_s,
            "with backups {} s, without {} s",
            with.makespan_s,
            without.makespan_s
        );
    }

    #[test]
    fn churn_queues_the_lost_work_again() {
        let report = quiet(&Scenario {
            churn: 0.5,
            ..small(200, 10)
        });
        sound(&report);
        assert!(report.departures > 0);
        assert!(report.requeued_after_leaving > 0, "{report:#?}");
        assert!(report.churn_lost > 0.0);
        let calm = quiet(&Scenario {
            churn: 0.0,
            ..small(200, 10)
        });
        assert_eq!(calm.departures, 0);
        assert_eq!(calm.requeued_after_leaving, 0);
    }

    #[test]
    fn replication_is_counted_as_extra_work() {
        let report = quiet(&small(200, 30));
        sound(&report);
        assert!(report.replication_extra > 0.0, "{report:#?}");
    }
}
