//! A run's figures, and the lower bound its makespan is judged against.

use crate::Scenario;
use idlegrid_domain::Tier;
use serde::Serialize;
use std::fmt::Write;

/// Counters the engine keeps while it runs.
#[derive(Debug, Clone, Default)]
pub(crate) struct Metrics {
    /// Attempts leased (first copies, backups and re-runs).
    pub attempts: u64,
    /// Backup copies leased.
    pub backups_started: u64,
    /// Backup copies that finished first.
    pub backups_won: u64,
    /// Attempts whose device ran past the lease deadline.
    pub deadline_expiries: u64,
    /// Tasks queued again after their device left.
    pub requeued_after_leaving: u64,
    /// Times a device left.
    pub departures: u64,
    /// Tasks in the run.
    pub tasks: u64,
    /// Tasks whose result was accepted exactly once.
    pub tasks_done_once: u64,
    /// Slot-milliseconds spent running attempts.
    pub busy_slot_ms: f64,
    /// Slot-milliseconds of devices online, up to the makespan.
    pub available_slot_ms: f64,
    /// Device capacity (reference core-ms) spent on the losing copy of backed-up tasks.
    pub backup_extra_ms: f64,
    /// Device capacity spent on attempts abandoned when their device left.
    pub churn_lost_ms: f64,
    /// Device capacity spent on attempts that ran past their deadline.
    pub deadline_lost_ms: f64,
}

/// How the jobs of one tier fared.
#[derive(Debug, Clone, Serialize)]
pub struct TierTimes {
    /// The tier.
    pub tier: Tier,
    /// Its jobs.
    pub jobs: usize,
    /// Mean seconds from submission (time 0) to a job's last result.
    pub mean_completion_s: f64,
    /// Seconds until its last job was done.
    pub last_completion_s: f64,
}

/// One run's figures. Work is in reference core-seconds (see `idlegrid_domain::pricing`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// What was simulated.
    pub scenario: Scenario,
    /// Jobs that never finished (a bug or a job no device fits; 0 in a sound run).
    pub unfinished_jobs: usize,
    /// Seconds until the last job was done.
    pub makespan_s: f64,
    /// The larger of [`Report::work_bound_s`] and [`Report::chunk_bound_s`]: no schedule
    /// finishes sooner.
    pub lower_bound_s: f64,
    /// The first moment the grid's online capacity, integrated from time 0, covers all the
    /// work that must be done (every chunk, once per replica), devices running at their
    /// benchmark speed without a pause.
    pub work_bound_s: f64,
    /// The longest chunk on the fastest device.
    pub chunk_bound_s: f64,
    /// Makespan ÷ lower bound.
    pub ratio: f64,
    /// A tighter bound that also knows what jobs need: for each group of jobs with the same
    /// requirements, when the online capacity of the devices that meet them covers their
    /// work; the largest, or the lower bound when that is larger.
    pub requirement_bound_s: f64,
    /// Makespan ÷ requirement bound.
    pub requirement_ratio: f64,
    /// Busy slot-time ÷ slot-time of devices online, up to the makespan.
    pub utilisation: f64,
    /// Work of the jobs as submitted (each chunk once).
    pub job_work_s: f64,
    /// Device capacity spent on the losing copies of backed-up tasks, ÷ job work.
    pub backup_extra: f64,
    /// Work of the second replicas of replicated jobs, ÷ job work.
    pub replication_extra: f64,
    /// Device capacity spent on attempts abandoned by departing devices, ÷ job work.
    pub churn_lost: f64,
    /// Device capacity spent on attempts that overran their lease deadline, ÷ job work.
    pub deadline_lost: f64,
    /// Tasks (chunks times replicas).
    pub tasks: u64,
    /// Tasks whose result was accepted exactly once (equals `tasks` in a sound run).
    pub tasks_done_once: u64,
    /// Attempts leased.
    pub attempts: u64,
    /// Backup copies leased.
    pub backups_started: u64,
    /// Backup copies that finished first.
    pub backups_won: u64,
    /// Times a device left.
    pub departures: u64,
    /// Tasks queued again after their device left, once its heartbeats were missed.
    pub requeued_after_leaving: u64,
    /// Attempts that overran their lease deadline and were queued again.
    pub deadline_expiries: u64,
    /// Completion times per tier, fastest tier first.
    pub tiers: Vec<TierTimes>,
}

/// The first time at which `capacity` (the grid's speed from each change on, in reference
/// core-ms per ms; the last value holds from then on) integrates to `work_ms`.
pub(crate) fn work_bound_ms(capacity: &[(i64, f64)], work_ms: f64) -> f64 {
    let mut done = 0.0;
    for (i, &(from, speed)) in capacity.iter().enumerate() {
        let until = capacity
            .get(i + 1)
            .map_or(f64::INFINITY, |next| next.0 as f64);
        let here = (until - from as f64) * speed;
        if done + here >= work_ms {
            return from as f64 + (work_ms - done) / speed;
        }
        done += here;
    }
    f64::INFINITY
}

impl Report {
    /// Puts a finished run's figures together. `capacity` is the grid's speed timeline,
    /// `required_ms` the work of every task, `once_ms` the work of the jobs as submitted,
    /// `chunk_bound_ms` the longest chunk on the fastest device, `requirement_bound_ms` the
    /// bound by what jobs need (see [`Report::requirement_bound_s`]), `jobs` each job's tier and
    /// completion time.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        scenario: Scenario,
        makespan_ms: i64,
        requirement_bound_ms: f64,
        capacity: &[(i64, f64)],
        required_ms: i64,
        once_ms: i64,
        chunk_bound_ms: f64,
        jobs: &[(Tier, Option<i64>)],
        metrics: Metrics,
    ) -> Report {
        let work_bound_ms = work_bound_ms(capacity, required_ms as f64);
        let lower = work_bound_ms.max(chunk_bound_ms);
        let requirement_bound_ms = requirement_bound_ms.max(lower);
        let once = (once_ms as f64).max(1.0);
        let tiers = [Tier::Fast, Tier::Standard, Tier::Economy]
            .into_iter()
            .filter_map(|tier| {
                let done: Vec<f64> = jobs
                    .iter()
                    .filter(|(t, _)| *t == tier)
                    .filter_map(|(_, at)| at.map(|ms| ms as f64 / 1000.0))
                    .collect();
                (!done.is_empty()).then(|| TierTimes {
                    tier,
                    jobs: done.len(),
                    mean_completion_s: done.iter().sum::<f64>() / done.len() as f64,
                    last_completion_s: done.iter().copied().fold(0.0, f64::max),
                })
            })
            .collect();
        Report {
            unfinished_jobs: jobs.iter().filter(|(_, at)| at.is_none()).count(),
            makespan_s: makespan_ms as f64 / 1000.0,
            lower_bound_s: lower / 1000.0,
            work_bound_s: work_bound_ms / 1000.0,
            chunk_bound_s: chunk_bound_ms / 1000.0,
            ratio: makespan_ms as f64 / lower,
            requirement_bound_s: requirement_bound_ms / 1000.0,
            requirement_ratio: makespan_ms as f64 / requirement_bound_ms,
            utilisation: metrics.busy_slot_ms / metrics.available_slot_ms.max(1.0),
            job_work_s: once_ms as f64 / 1000.0,
            backup_extra: metrics.backup_extra_ms / once,
            replication_extra: (required_ms - once_ms) as f64 / once,
            churn_lost: metrics.churn_lost_ms / once,
            deadline_lost: metrics.deadline_lost_ms / once,
            tasks: metrics.tasks,
            tasks_done_once: metrics.tasks_done_once,
            attempts: metrics.attempts,
            backups_started: metrics.backups_started,
            backups_won: metrics.backups_won,
            departures: metrics.departures,
            requeued_after_leaving: metrics.requeued_after_leaving,
            deadline_expiries: metrics.deadline_expiries,
            tiers,
            scenario,
        }
    }
}

/// Makespan ÷ lower bound the issue asks for at 30% churn with backups.
pub const TARGET_RATIO: f64 = 1.25;

/// The reports side by side, one column per run.
pub fn table(reports: &[Report]) -> String {
    let mut s = String::new();
    let Some(first) = reports.first() else {
        return s;
    };
    let _ = writeln!(
        s,
        "{} devices, {} jobs, {:.0}% of attempts straggle, seed {}\n",
        first.scenario.devices,
        first.scenario.jobs,
        first.scenario.stragglers * 100.0,
        first.scenario.seed
    );
    let row = |s: &mut String, name: &str, cell: &dyn Fn(&Report) -> String| {
        let _ = write!(s, "{name:<28}");
        for r in reports {
            let _ = write!(s, "{:>18}", cell(r));
        }
        s.push('\n');
    };
    row(&mut s, "churn", &|r| {
        format!("{:.0}%", r.scenario.churn * 100.0)
    });
    row(&mut s, "backups", &|r| {
        if r.scenario.backups { "on" } else { "off" }.into()
    });
    row(&mut s, "makespan", &|r| format!("{:.0} s", r.makespan_s));
    row(&mut s, "lower bound", &|r| {
        format!("{:.0} s", r.lower_bound_s)
    });
    row(&mut s, "makespan ÷ lower bound", &|r| {
        format!("{:.3}", r.ratio)
    });
    row(&mut s, "requirement bound", &|r| {
        format!("{:.0} s", r.requirement_bound_s)
    });
    row(&mut s, "makespan ÷ requirement bound", &|r| {
        format!("{:.3}", r.requirement_ratio)
    });
    row(&mut s, "device utilisation", &|r| pct(r.utilisation));
    row(&mut s, "extra work: backups", &|r| pct(r.backup_extra));
    row(&mut s, "extra work: replication", &|r| {
        pct(r.replication_extra)
    });
    row(&mut s, "lost: devices leaving", &|r| pct(r.churn_lost));
    row(&mut s, "lost: past the deadline", &|r| pct(r.deadline_lost));
    row(&mut s, "tasks", &|r| r.tasks.to_string());
    row(&mut s, "backups (won)", &|r| {
        format!("{} ({})", r.backups_started, r.backups_won)
    });
    row(&mut s, "re-queued after leaving", &|r| {
        r.requeued_after_leaving.to_string()
    });
    for tier in ["fast", "standard", "economy"] {
        row(&mut s, &format!("mean job time: {tier}"), &|r| {
            r.tiers
                .iter()
                .find(|t| t.tier.as_str() == tier)
                .map_or("-".into(), |t| format!("{:.0} s", t.mean_completion_s))
        });
    }
    if let Some(r) = reports
        .iter()
        .find(|r| r.scenario.backups && r.scenario.churn > 0.0)
    {
        let verdict = if r.ratio <= TARGET_RATIO {
            "met"
        } else {
            "missed"
        };
        let _ = writeln!(
            s,
            "\ntarget makespan ≤ {TARGET_RATIO} × lower bound at {:.0}% churn with backups: {verdict} ({:.3})",
            r.scenario.churn * 100.0,
            r.ratio
        );
    }
    s
}

/// A fraction as a percentage.
fn pct(fraction: f64) -> String {
    format!("{:.1}%", fraction * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_work_bound_integrates_a_changing_capacity() {
        // 10/ms for 100 ms, then 5/ms.
        let capacity = [(0, 10.0), (100, 5.0)];
        assert_eq!(work_bound_ms(&capacity, 500.0), 50.0);
        assert_eq!(work_bound_ms(&capacity, 1000.0), 100.0);
        assert_eq!(work_bound_ms(&capacity, 1500.0), 200.0);
        assert!(work_bound_ms(&[(0, 0.0)], 1.0).is_infinite());
    }
}
