//! Where there is no Linux supervisor: the script runs in a process group of its own, killed
//! as a whole when the task ends (see the parent module for what that misses).

use super::Report;
use crate::sandbox::Confinement;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::io;

/// A running task in its process group. Dropping it kills the group.
pub(crate) struct Supervised {
    /// The script.
    child: tokio::process::Child,
    /// Its process group (its pid).
    group: Pid,
    /// How it exited, if it did by itself.
    status: Option<io::Result<std::process::ExitStatus>>,
}

/// Spawns `command` in a process group of its own, confined as `confinement` says.
pub(crate) fn spawn(
    mut command: tokio::process::Command,
    confinement: Confinement,
) -> io::Result<Supervised> {
    let Confinement { mut confine } = confinement;
    command.process_group(0);
    // SAFETY: the sandbox's `confine` makes system calls only, on values prepared beforehand.
    unsafe {
        command.pre_exec(move || confine());
    }
    let child = command.spawn()?;
    let group = child
        .id()
        .and_then(|pid| i32::try_from(pid).ok())
        .map(Pid::from_raw)
        .ok_or_else(|| io::Error::other("the script's process vanished as it started"))?;
    Ok(Supervised {
        child,
        group,
        status: None,
    })
}

impl Supervised {
    /// The script's standard output, if piped (once).
    pub(crate) fn stdout(&mut self) -> Option<tokio::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// The script's standard error, if piped (once).
    pub(crate) fn stderr(&mut self) -> Option<tokio::process::ChildStderr> {
        self.child.stderr.take()
    }

    /// The script's process group.
    pub(crate) fn script_group(&self) -> Pid {
        self.group
    }

    /// Waits until the script exits by itself. Cancel-safe.
    pub(crate) async fn exited(&mut self) {
        if self.status.is_none() {
            self.status = Some(self.child.wait().await);
        }
    }

    /// Kills the script's process group and returns how the script ended.
    pub(crate) async fn end(mut self) -> io::Result<Report> {
        // ESRCH (the group is already empty) is the usual, fine outcome.
        let _ = killpg(self.group, Signal::SIGKILL);
        self.exited().await;
        let status = self
            .status
            .take()
            .unwrap_or_else(|| Err(io::Error::other("the script vanished")))?;
        Ok(Report {
            status,
            memory_kills: 0,
            process_limit_hits: 0,
            all_ended: true,
        })
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        let _ = killpg(self.group, Signal::SIGKILL);
    }
}
