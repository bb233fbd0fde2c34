//! The scheduling policy: in which order a requesting worker is offered the active jobs.
//!
//! The Feeder keeps one [`JobEntry`] per dispatching job; the Tasks API asks [`order_for`] which
//! job queues to lease from for a given device. Rules, in order:
//! 1. a job whose requirements the device does not meet is never offered;
//! 2. higher priority first;
//! 3. fair share: the tenant with the fewest running tasks first, so one tenant's huge job does
//!    not starve the others;
//! 4. then the job with the fewest running tasks, then the oldest job.

use crate::{Capabilities, JobId, Requirements, TenantId};

/// What the policy knows about one dispatching job.
#[derive(Debug, Clone)]
pub struct JobEntry {
    /// The job.
    pub job: JobId,
    /// Its owner, for fair share.
    pub tenant: TenantId,
    /// Customer priority; higher runs first.
    pub priority: i32,
    /// What its tasks need from a device.
    pub requirements: Requirements,
    /// Tasks of this job currently leased.
    pub running: u64,
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
    let mut eligible: Vec<&JobEntry> = jobs
        .iter()
        .filter(|e| e.requirements.check(device).is_ok())
        .collect();
    eligible.sort_by_key(|e| {
        (
            std::cmp::Reverse(e.priority),
            running_of(e.tenant),
            e.running,
            e.job,
        )
    });
    eligible.into_iter().map(|e| e.job).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(job: i64, tenant: i64, priority: i32, running: u64) -> JobEntry {
        JobEntry {
            job: JobId(job),
            tenant: TenantId(tenant),
            priority,
            requirements: Requirements::default(),
            running,
        }
    }

    fn device() -> Capabilities {
        Capabilities {
            cores: 2,
            memory_mb: 4096,
            python: Some("3.11".into()),
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
}
