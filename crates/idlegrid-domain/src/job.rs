//! Jobs and their state machine.
//!
//! ```text
//! created ──run──▶ submitted ──▶ partitioning ──▶ running ──▶ assembling ──▶ completed
//!    └──────────────────┴──────────────┴──────────────┴────────────┴──▶ failed | cancelled
//! ```
//!
//! `partitioning` → `assembling` directly is allowed: an empty input has no chunks, and the last
//! chunk may be validated before the partitioner records that it has finished.
//! Storage backends apply a transition as a compare-and-set on the state column, using
//! [`JobState::sources`] as the set of states it may come from, so two coordinators racing on the
//! same job cannot both win.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Created; waiting for its input and for `run`.
    Created,
    /// Accepted for processing; waiting for the partitioner.
    Submitted,
    /// The partitioner is verifying and splitting the input; early chunks may already run.
    Partitioning,
    /// All chunks exist; workers are processing them.
    Running,
    /// Every chunk has a validated result; the assembler is building the output.
    Assembling,
    /// The output is ready to download.
    Completed,
    /// The job cannot complete; `error` says why.
    Failed,
    /// The customer cancelled the job.
    Cancelled,
}

/// A transition the state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("job is {from}, so it cannot become {to}")]
pub struct TransitionError {
    /// The state the job is in.
    pub from: JobState,
    /// The state that was asked for.
    pub to: JobState,
}

impl JobState {
    /// Every state, in life-cycle order.
    pub const ALL: [JobState; 8] = [
        JobState::Created,
        JobState::Submitted,
        JobState::Partitioning,
        JobState::Running,
        JobState::Assembling,
        JobState::Completed,
        JobState::Failed,
        JobState::Cancelled,
    ];

    /// States a job never leaves.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Failed | JobState::Cancelled
        )
    }

    /// States whose chunks may be handed to workers.
    pub fn is_dispatching(self) -> bool {
        matches!(self, JobState::Partitioning | JobState::Running)
    }

    /// The states from which a job may move to `next`.
    pub fn sources(next: JobState) -> &'static [JobState] {
        use JobState::*;
        match next {
            Created => &[],
            Submitted => &[Created],
            Partitioning => &[Submitted, Partitioning],
            Running => &[Partitioning],
            Assembling => &[Partitioning, Running],
            Completed => &[Assembling],
            Failed | Cancelled => &[Created, Submitted, Partitioning, Running, Assembling],
        }
    }

    /// Checks a transition against the state machine.
    pub fn transition(self, next: JobState) -> Result<JobState, TransitionError> {
        if JobState::sources(next).contains(&self) {
            Ok(next)
        } else {
            Err(TransitionError {
                from: self,
                to: next,
            })
        }
    }

    /// The state's wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Created => "created",
            JobState::Submitted => "submitted",
            JobState::Partitioning => "partitioning",
            JobState::Running => "running",
            JobState::Assembling => "assembling",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Parses a name written by [`JobState::as_str`].
    pub fn parse(name: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn happy_path_is_allowed() {
        // Every state up to Completed, in life-cycle order.
        let completed = JobState::ALL.iter().position(|s| *s == JobState::Completed);
        for pair in JobState::ALL[..=completed.unwrap()].windows(2) {
            assert_eq!(pair[0].transition(pair[1]), Ok(pair[1]));
        }
    }

    #[test]
    fn terminal_states_are_final() {
        for from in JobState::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in JobState::ALL {
                assert!(from.transition(to).is_err(), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn cannot_skip_run_or_complete_twice() {
        assert!(JobState::Created.transition(JobState::Running).is_err());
        assert!(JobState::Running.transition(JobState::Completed).is_err());
        assert!(JobState::Completed.transition(JobState::Failed).is_err());
        assert_eq!(
            JobState::Running.transition(JobState::Cancelled),
            Ok(JobState::Cancelled)
        );
    }

    #[test]
    fn names_round_trip() {
        for s in JobState::ALL {
            assert_eq!(JobState::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        assert_eq!(JobState::parse("bogus"), None);
    }
}
