//! Tasks (chunks of a job), what can happen to one attempt at a task, and when to give up.
//!
//! A task is `pending` while it waits for a worker or runs on one (the lease that says which lives
//! in the queue, not here), `validating` once a worker reported a result, `done` when a result was
//! accepted, and `failed` when too many attempts failed. Attempt outcomes follow BOINC's names.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Waiting for a worker, or running on one.
    Pending,
    /// A result arrived and waits for the validator.
    Validating,
    /// A validated result was accepted.
    Done,
    /// Attempts failed too often; the job fails with it.
    Failed,
}

impl TaskState {
    /// Every state.
    pub const ALL: [TaskState; 4] = [
        TaskState::Pending,
        TaskState::Validating,
        TaskState::Done,
        TaskState::Failed,
    ];

    /// The state's wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Validating => "validating",
            TaskState::Done => "done",
            TaskState::Failed => "failed",
        }
    }

    /// Parses a name written by [`TaskState::as_str`].
    pub fn parse(name: &str) -> Option<TaskState> {
        TaskState::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one attempt at a task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// The worker returned an output; the validator has not judged it yet, or accepted it.
    Success,
    /// The task script failed on the worker (non-zero exit, timeout, no output, ...).
    ClientError,
    /// The lease expired without a report: the worker vanished or stopped heartbeating.
    NoReply,
    /// The validator rejected the output.
    ValidateError,
    /// The worker handed the lease back unfinished (shutting down); not the task's fault.
    Abandoned,
}

impl AttemptOutcome {
    /// Every outcome.
    pub const ALL: [AttemptOutcome; 5] = [
        AttemptOutcome::Success,
        AttemptOutcome::ClientError,
        AttemptOutcome::NoReply,
        AttemptOutcome::ValidateError,
        AttemptOutcome::Abandoned,
    ];

    /// Whether this outcome counts against the task's attempt budget.
    pub fn counts_as_failure(self) -> bool {
        matches!(
            self,
            AttemptOutcome::ClientError | AttemptOutcome::NoReply | AttemptOutcome::ValidateError
        )
    }

    /// The outcome's wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Success => "success",
            AttemptOutcome::ClientError => "client_error",
            AttemptOutcome::NoReply => "no_reply",
            AttemptOutcome::ValidateError => "validate_error",
            AttemptOutcome::Abandoned => "abandoned",
        }
    }

    /// Parses a name written by [`AttemptOutcome::as_str`].
    pub fn parse(name: &str) -> Option<AttemptOutcome> {
        AttemptOutcome::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for AttemptOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to do with a task after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Put it back in its job's queue.
    Retry,
    /// Fail the task, and with it the job.
    GiveUp,
}

/// The retry rule: a task may fail `max_failures - 1` times and still be retried, unless its
/// script already failed alike on devices of two owners ([`fails_alike`]): then retrying would
/// only repeat the job's own error.
pub fn after_failure(failures_so_far: u32, max_failures: u32, failed_alike: bool) -> RetryDecision {
    if failed_alike || failures_so_far >= max_failures.max(1) {
        RetryDecision::GiveUp
    } else {
        RetryDecision::Retry
    }
}

/// Whether a chunk's script failed the same way on devices of two owners: then the error is
/// the job's (its script or its input), not a device's, and retrying would only repeat it.
/// `failures` are the chunk's script errors (`ClientError` attempts), each with its device's
/// owner and the reason reported. One owner's devices never decide it: a device that wants a
/// chunk to fail could report the same reason from all of them.
pub fn fails_alike<'a>(failures: impl IntoIterator<Item = (i64, &'a str)>) -> bool {
    let mut first_owner_by_reason: std::collections::HashMap<&str, i64> = Default::default();
    for (owner, reason) in failures {
        let reason = reason.trim();
        match first_owner_by_reason.get(reason) {
            Some(&other) if other != owner => return true,
            Some(_) => {}
            None => {
                first_owner_by_reason.insert(reason, owner);
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_error_from_two_owners_is_the_jobs() {
        let err = "ZeroDivisionError: division by zero";
        assert!(fails_alike([(1, err), (2, err)]));
        assert!(fails_alike([(1, "out of memory"), (1, err), (2, err)]));
        // One owner's devices, however many, do not decide it.
        assert!(!fails_alike([(1, err), (1, err), (1, err)]));
        // Different errors are the devices' business until the budget is spent.
        assert!(!fails_alike([(1, err), (2, "killed: out of memory")]));
        assert!(!fails_alike(std::iter::empty()));
    }

    #[test]
    fn retries_until_budget_spent() {
        assert_eq!(after_failure(1, 3, false), RetryDecision::Retry);
        assert_eq!(after_failure(2, 3, false), RetryDecision::Retry);
        assert_eq!(after_failure(3, 3, false), RetryDecision::GiveUp);
        assert_eq!(after_failure(1, 0, false), RetryDecision::GiveUp);
        assert_eq!(after_failure(1, 3, true), RetryDecision::GiveUp);
    }

    #[test]
    fn abandoned_and_success_are_not_failures() {
        assert!(!AttemptOutcome::Abandoned.counts_as_failure());
        assert!(!AttemptOutcome::Success.counts_as_failure());
        assert!(AttemptOutcome::NoReply.counts_as_failure());
    }

    #[test]
    fn names_round_trip() {
        for s in TaskState::ALL {
            assert_eq!(TaskState::parse(s.as_str()), Some(s));
        }
        for o in AttemptOutcome::ALL {
            assert_eq!(AttemptOutcome::parse(o.as_str()), Some(o));
        }
    }
}
