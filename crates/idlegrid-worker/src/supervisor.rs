//! Ending every process of a task with the task.
//!
//! On Linux a supervisor process sits between the worker and a task's script, and its one
//! job is that every process of the task ends with the task, whatever the script does with
//! process groups, sessions and double forks, and even when the worker itself is killed.
//! The worker spawns the supervisor as an ordinary child; in that child, between `fork` and
//! `exec`, the supervisor forks the script (which confines itself and runs the interpreter)
//! and never execs itself. It is the script's child subreaper (`PR_SET_CHILD_SUBREAPER`), so
//! every orphan of the task is re-parented to it rather than to PID 1, and it reaps them. It
//! ends the task when the script exits, or when its lifeline — a pipe whose other end only
//! the worker holds — is closed: by the runner (`Supervised::end`), by a dropped runner, or
//! by the kernel when the worker dies, even by `SIGKILL` (a pipe, unlike `PR_SET_PDEATHSIG`,
//! does not care which of the worker's threads spawned it). Ending means `SIGKILL` to every
//! child of the supervisor, and, when the task runs as a user of its own, to every process of
//! that user (`kill(-1)` with that real user), until it has no child left (every process of
//! the task descends from it) and all are reaped; then the
//! task's cgroup (if any) is read and removed, and the outcome reported to the worker over a
//! second pipe. The script gets `PR_SET_PDEATHSIG` too, in case the supervisor itself dies.
//! The supervisor's code runs in a child forked from the multi-threaded worker, so it makes
//! system calls only, on values prepared beforehand: no allocation, no locks, no logging.
//!
//! Elsewhere (`group`) the script gets its own process group, killed as a whole when the task
//! ends: a child that leaves the group, or outlives a killed worker, is out of reach there.

#[cfg(not(target_os = "linux"))]
mod group;
#[cfg(target_os = "linux")]
mod linux;

#[cfg(not(target_os = "linux"))]
pub(crate) use group::spawn;
#[cfg(target_os = "linux")]
pub(crate) use linux::{kill_user, spawn};

use std::process::ExitStatus;

/// How a task ended, as the supervisor saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// The script's own wait status (killed by `SIGKILL` when the task was ended early).
    pub status: ExitStatus,
    /// Processes of the task the kernel killed for using more than the task's memory
    /// (from its cgroup; 0 without one).
    pub memory_kills: u64,
    /// Forks refused by the task's process limit (from its cgroup; 0 without one).
    pub process_limit_hits: u64,
    /// Whether every process of the task ended; false only when some would not die before
    /// the supervisor's deadline.
    pub all_ended: bool,
}
