//! Running external tools (FFmpeg's) on the coordinator: each run is killed if the work that
//! started it is dropped, and the CPU it used is counted against the coordinator stage running
//! it (`idlegrid_media_cpu_microseconds_total{stage=...}` on `/metrics`), with the
//! coordinator's own work on what the tools decoded ([`counted`]): that is how the cost of
//! checking results is measured against the devices' cost of making them. The stages mark
//! their apps' work with [`in_stage`].

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The coordinator stage a tool runs for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Probing and splitting inputs.
    Partition,
    /// Judging results.
    Validate,
    /// Joining results.
    Assemble,
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Stage::Partition => "partition",
            Stage::Validate => "validate",
            Stage::Assemble => "assemble",
        }
    }
}

tokio::task_local! {
    static STAGE: Stage;
}

/// Runs `work` with its tool runs counted as `stage`'s.
pub async fn in_stage<F: Future>(stage: Stage, work: F) -> F::Output {
    STAGE.scope(stage, work).await
}

/// Counts `cpu` against the stage that is running, if any.
fn account(stage: Option<Stage>, cpu: Duration) {
    if let Some(stage) = stage {
        metrics::counter!("idlegrid_media_cpu_microseconds_total", "stage" => stage.name())
            .increment(cpu.as_micros() as u64);
    }
}

/// Runs `work` on this thread and counts the CPU it took against `stage` (the coordinator's
/// own measuring of decoded frames, beside the tools' decoding).
pub(crate) fn counted<T>(stage: Option<Stage>, work: impl FnOnce() -> T) -> T {
    let thread_cpu = || {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `now` is valid for writes.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
        Duration::new(
            now.tv_sec.max(0) as u64,
            now.tv_nsec.clamp(0, 999_999_999) as u32,
        )
    };
    let before = thread_cpu();
    let out = work();
    account(stage, thread_cpu().saturating_sub(before));
    out
}

/// The stage of the calling task.
pub(crate) fn current_stage() -> Option<Stage> {
    STAGE.try_with(|s| *s).ok()
}

/// Kills a running tool when dropped, unless it was reaped: held by the work that waits for the
/// tool (which may be dropped when the coordinator shuts down or the job ends) while a blocking
/// thread reads and reaps it.
pub(crate) struct Guard {
    pid: u32,
    reaped: Arc<AtomicBool>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.reaped.load(Ordering::Acquire) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Waits for `child` and returns how it ended and the CPU (user + system) it and its waited-for
/// children used.
fn reap(child: &Child) -> std::io::Result<(ExitStatus, Duration)> {
    use std::os::unix::process::ExitStatusExt;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `status` and `usage` are valid for writes; `pid` is our unreaped child.
        let done = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if done == pid {
            break;
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    Ok((
        ExitStatus::from_raw(status),
        time(usage.ru_utime) + time(usage.ru_stime),
    ))
}

/// A running tool, to be read and then reaped from a blocking thread.
pub(crate) struct Tool {
    child: Child,
    stage: Option<Stage>,
    reaped: Arc<AtomicBool>,
}

/// Starts `program` with `args`, stdin empty, stdout piped, stderr piped when `stderr`.
pub(crate) fn start<A: AsRef<std::ffi::OsStr>>(
    program: &str,
    args: &[A],
    stderr: bool,
) -> Result<(Tool, Guard), String> {
    let mut command = Command::new(program);
    command.args(args).stderr(if stderr {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    spawn(program, command)
}

/// Starts `program` with `args` and a second output: what it writes to its file descriptor 3
/// (`pipe:3` for FFmpeg) is read from the returned file. Stderr is discarded.
pub(crate) fn start_with_fd3<A: AsRef<std::ffi::OsStr>>(
    program: &str,
    args: &[A],
) -> Result<(Tool, Guard, std::fs::File), String> {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| format!("cannot make a pipe: {e}"))?;
    let raw = write.as_raw_fd();
    let mut command = Command::new(program);
    command.args(args).stderr(Stdio::null());
    // SAFETY: dup2 and fcntl are async-signal-safe; the copy on descriptor 3 loses
    // close-on-exec, so the program (and only it: both ends are close-on-exec everywhere else)
    // keeps it.
    unsafe {
        command.pre_exec(move || {
            // Already on 3 (dup2 would then keep close-on-exec): clear the flag instead.
            let done = if raw == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(raw, 3)
            };
            if done < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let started = spawn(program, command);
    // The parent keeps only the reading end, so the reader sees the end when the program ends.
    drop(write);
    let (tool, guard) = started?;
    Ok((tool, guard, std::fs::File::from(read)))
}

fn spawn(program: &str, mut command: Command) -> Result<(Tool, Guard), String> {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e} (is it installed on the coordinator?)"))?;
    let reaped = Arc::new(AtomicBool::new(false));
    let guard = Guard {
        pid: child.id(),
        reaped: reaped.clone(),
    };
    Ok((
        Tool {
            child,
            stage: current_stage(),
            reaped,
        },
        guard,
    ))
}

impl Tool {
    /// Its stdout, to read from.
    pub(crate) fn stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// Waits for it (from a blocking thread), counts its CPU, and returns how it ended.
    pub(crate) fn finish(self) -> std::io::Result<ExitStatus> {
        let reaped = reap(&self.child);
        self.reaped.store(true, Ordering::Release);
        let (status, cpu) = reaped?;
        account(self.stage, cpu);
        Ok(status)
    }
}

/// Runs `program` to its end and returns how it ended, its stdout and its stderr.
pub(crate) async fn run(
    program: &str,
    args: &[&str],
) -> Result<(ExitStatus, Vec<u8>, String), String> {
    run_reading(program, args, None).await
}

/// Runs `program` to its end, sending each line of its stdout on `lines` as soon as its end is
/// written (or the output ends); returns how it ended and its stderr. When `lines` is
/// closed, the rest of its output is read and dropped: the program is not stopped by it.
pub(crate) async fn run_with_lines(
    program: &str,
    args: &[&str],
    lines: tokio::sync::mpsc::UnboundedSender<String>,
) -> Result<(ExitStatus, String), String> {
    run_reading(program, args, Some(lines))
        .await
        .map(|(status, _, errors)| (status, errors))
}

async fn run_reading(
    program: &str,
    args: &[&str],
    lines: Option<tokio::sync::mpsc::UnboundedSender<String>>,
) -> Result<(ExitStatus, Vec<u8>, String), String> {
    let (mut tool, _guard) = start(program, args, true)?;
    let stdout = tool.stdout();
    let stderr = tool.child.stderr.take();
    let program = program.to_string();
    let waited = tokio::task::spawn_blocking(move || {
        // Both pipes are drained at once, so a tool that fills one never blocks on it.
        let errors = std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut stderr) = stderr {
                let _ = stderr.read_to_end(&mut text);
            }
            text
        });
        let mut out = Vec::new();
        let read = match (stdout, lines) {
            (Some(mut stdout), None) => stdout.read_to_end(&mut out).map(|_| ()),
            (Some(stdout), Some(lines)) => {
                use std::io::BufRead;
                let mut reader = std::io::BufReader::new(stdout);
                let mut line = String::new();
                loop {
                    line.clear();
                    match reader.read_line(&mut line) {
                        Ok(0) => break Ok(()),
                        // A line cut off by the end is sent too: the program ended there.
                        Ok(_) => {
                            let _ = lines.send(line.trim_end_matches(['\n', '\r']).to_string());
                        }
                        Err(e) => break Err(e),
                    }
                }
            }
            (None, _) => Ok(()),
        };
        let errors = errors.join().unwrap_or_default();
        (read, tool.finish(), out, errors)
    });
    let (read, status, out, errors) = waited
        .await
        .map_err(|e| format!("running {program} failed: {e}"))?;
    read.map_err(|e| format!("reading {program}'s output failed: {e}"))?;
    let status = status.map_err(|e| format!("waiting for {program} failed: {e}"))?;
    Ok((status, out, String::from_utf8_lossy(&errors).into_owned()))
}
