//! The Linux supervisor: forked between the spawn's `fork` and `exec`, subreaper of the task,
//! ending it by its children and its user (see the parent module).

use super::Report;
use crate::sandbox::Confinement;
use nix::libc;
use std::ffi::CString;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How long the supervisor keeps killing before it gives up on processes that will not die
/// (stuck in the kernel, e.g. on a dead network file system); the worker then retires the
/// task's user rather than give it to another task.
const END_DEADLINE: Duration = Duration::from_secs(10);
/// Pause between two rounds of killing, while the killed processes die.
const END_ROUND: Duration = Duration::from_millis(2);
/// Highest descriptor closed one by one where `close_range` is missing.
const CLOSE_FALLBACK_LIMIT: libc::c_uint = 65_535;
/// How long the supervisor retries removing a cgroup whose last processes are still leaving.
const REMOVE_ATTEMPTS: u32 = 100;

/// Bytes of the report on the wire: status, memory kills, process-limit hits, all ended.
const REPORT_BYTES: usize = 4 + 8 + 8 + 4;

impl Report {
    fn encode(&self) -> [u8; REPORT_BYTES] {
        let mut bytes = [0u8; REPORT_BYTES];
        bytes[..4].copy_from_slice(&self.status.into_raw().to_le_bytes());
        bytes[4..12].copy_from_slice(&self.memory_kills.to_le_bytes());
        bytes[12..20].copy_from_slice(&self.process_limit_hits.to_le_bytes());
        bytes[20..].copy_from_slice(&u32::from(self.all_ended).to_le_bytes());
        bytes
    }

    fn decode(bytes: &[u8; REPORT_BYTES]) -> Report {
        let word = |range: std::ops::Range<usize>| {
            let mut b = [0u8; 8];
            b[..range.len()].copy_from_slice(&bytes[range]);
            u64::from_le_bytes(b)
        };
        Report {
            status: ExitStatus::from_raw(i32::from_le_bytes([
                bytes[0], bytes[1], bytes[2], bytes[3],
            ])),
            memory_kills: word(4..12),
            process_limit_hits: word(12..20),
            all_ended: word(20..24) != 0,
        }
    }
}

/// A running task under its supervisor. Dropping it ends the task too (without waiting).
pub(crate) struct Supervised {
    /// The supervisor process.
    supervisor: tokio::process::Child,
    /// The worker's end of the lifeline; closing it tells the supervisor to end the task.
    lifeline: Option<OwnedFd>,
    /// The script's pid, which is also its process group's id.
    script: i32,
    /// The supervisor's report, once the task is over.
    report: oneshot::Receiver<io::Result<Report>>,
    /// The report, if it came while [`Supervised::exited`] waited for it.
    received: Option<io::Result<Report>>,
}

/// What the supervisor needs, prepared before the fork.
struct Plan {
    /// Read end of the lifeline.
    lifeline: RawFd,
    /// Write end of the report pipe.
    report: RawFd,
    /// The task's own user, whose every process is the task's.
    uid: Option<u32>,
    /// The claim on that user, which the supervisor holds until it is done with it: no other
    /// worker may take the user while its processes are being ended.
    claim: Option<RawFd>,
    /// `cgroup.procs` files the script writes itself into.
    join: Vec<RawFd>,
    /// The cgroup's memory-event and process-event counters.
    counters: Option<(RawFd, RawFd)>,
    /// The cgroup's directories, removed at the end.
    cgroup_dirs: Vec<CString>,
}

/// Spawns `command` (the interpreter with its arguments, environment and stdio) as a task
/// under a supervisor, confined as `confinement` says. Returns once the script runs.
pub(crate) fn spawn(
    mut command: tokio::process::Command,
    confinement: Confinement,
) -> io::Result<Supervised> {
    let Confinement {
        mut confine,
        user,
        cgroup,
    } = confinement;
    let (lifeline_read, lifeline_write) = pipe()?;
    let (report_read, report_write) = pipe()?;
    let plan = Plan {
        lifeline: lifeline_read.as_raw_fd(),
        report: report_write.as_raw_fd(),
        uid: user.as_ref().map(|user| user.uid().as_raw()),
        claim: user.as_ref().and_then(|user| user.claim_fd()),
        join: cgroup.as_ref().map(|c| c.join_fds()).unwrap_or_default(),
        counters: cgroup.as_ref().map(|c| c.counter_fds()),
        cgroup_dirs: cgroup.as_ref().map(|c| c.dir_names()).unwrap_or_default(),
    };
    // Its own process group: a Ctrl-C at the worker's terminal must not reach it.
    command.process_group(0);
    // SAFETY: `start` runs between fork and exec. It makes system calls only, on the values
    // of `plan` prepared above, and runs the sandbox's `confine`, which holds to the same rule.
    unsafe {
        command.pre_exec(move || start(&plan, &mut confine));
    }
    let supervisor = command.spawn();
    drop(lifeline_read);
    drop(report_write);
    let supervisor = match supervisor {
        Ok(supervisor) => supervisor,
        Err(err) => {
            // The spawn waited for the supervisor to exit; whatever it left of the cgroup
            // (it never got to supervise if its own fork failed) goes now.
            if let Some(cgroup) = cgroup {
                cgroup.remove();
            }
            return Err(err);
        }
    };
    drop(cgroup);
    let mut report_pipe = std::fs::File::from(report_read);
    // The supervisor wrote the script's pid before it let the spawn return.
    let mut pid = [0u8; 4];
    if let Err(err) = report_pipe.read_exact(&mut pid) {
        // Whatever happened, the user's processes cannot be vouched for.
        if let Some(user) = user {
            user.retire();
        }
        return Err(io::Error::other(format!(
            "the task's supervisor died as it started: {err}"
        )));
    }
    let script = i32::from_le_bytes(pid);
    let (tx, report) = oneshot::channel();
    std::thread::Builder::new()
        .name("idlegrid-supervised".into())
        .spawn(move || {
            let mut bytes = [0u8; REPORT_BYTES];
            let result = report_pipe
                .read_exact(&mut bytes)
                .map(|()| Report::decode(&bytes))
                .map_err(|err| io::Error::other(format!("the task's supervisor died: {err}")));
            // The user goes back to the pool only once none of its processes is left.
            if let Some(user) = user {
                match &result {
                    Ok(report) if report.all_ended => drop(user),
                    _ => user.retire(),
                }
            }
            let _ = tx.send(result);
        })?;
    Ok(Supervised {
        supervisor,
        lifeline: Some(lifeline_write),
        script,
        report,
        received: None,
    })
}

impl Supervised {
    /// The script's standard output, if piped (once).
    pub(crate) fn stdout(&mut self) -> Option<tokio::process::ChildStdout> {
        self.supervisor.stdout.take()
    }

    /// The script's standard error, if piped (once).
    pub(crate) fn stderr(&mut self) -> Option<tokio::process::ChildStderr> {
        self.supervisor.stderr.take()
    }

    /// The script's process group (its pid).
    pub(crate) fn script_group(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.script)
    }

    /// Waits until the script exits by itself (by then the rest of the task has been ended
    /// too). Cancel-safe.
    pub(crate) async fn exited(&mut self) {
        if self.received.is_none() {
            let result = (&mut self.report).await;
            self.received = Some(
                result.unwrap_or_else(|_| Err(io::Error::other("the task's supervisor vanished"))),
            );
        }
    }

    /// Ends every process of the task (if the script has not ended by itself) and returns
    /// how the script ended. Every way a task ends — its script exiting, a timeout, a
    /// cancellation, too much disk — goes through here.
    pub(crate) async fn end(mut self) -> io::Result<Report> {
        self.lifeline = None;
        self.exited().await;
        self.supervisor.wait().await?;
        self.received
            .take()
            .unwrap_or_else(|| Err(io::Error::other("the task's supervisor vanished")))
    }
}

/// A pipe whose ends are closed on exec and numbered above the standard streams (which the
/// spawn overwrites in the child).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?;
    Ok((above_stdio(read)?, above_stdio(write)?))
}

fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) on a descriptor we own returns a new one or -1.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new` was just returned by fcntl and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// In the child the spawn forked: becomes the supervisor, forking the script, which returns
/// to the spawn to be confined and exec'd.
fn start(
    plan: &Plan,
    confine: &mut (dyn FnMut() -> io::Result<()> + Send + Sync),
) -> io::Result<()> {
    // SAFETY (whole function): system calls on plain values; see the module's doc.
    unsafe {
        // Orphans of the task come to the supervisor, and child exits wait for its signalfd.
        check(libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))?;
        let mut chld: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut chld);
        libc::sigaddset(&mut chld, libc::SIGCHLD);
        check(libc::sigprocmask(
            libc::SIG_BLOCK,
            &chld,
            std::ptr::null_mut(),
        ))?;
        let supervisor = libc::getpid();
        match libc::fork() {
            -1 => Err(io::Error::last_os_error()),
            0 => script_side(plan, supervisor, confine),
            script => supervise(plan, script),
        }
    }
}

/// The script's side of the fork, before the spawn execs the interpreter.
fn script_side(
    plan: &Plan,
    supervisor: libc::pid_t,
    confine: &mut (dyn FnMut() -> io::Result<()> + Send + Sync),
) -> io::Result<()> {
    // SAFETY: system calls on plain values.
    unsafe {
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        check(libc::sigprocmask(
            libc::SIG_SETMASK,
            &none,
            std::ptr::null_mut(),
        ))?;
        check(libc::setpgid(0, 0))?;
        for &procs in &plan.join {
            // "0" is the writing process: the script, and everything it will start.
            if libc::write(procs, b"0".as_ptr().cast(), 1) != 1 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    confine()?;
    // SAFETY: system calls on plain values.
    unsafe {
        // After the change of user, which would clear it.
        check(libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        ))?;
        if libc::getppid() != supervisor {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
    }
    Ok(())
}

fn check(result: libc::c_int) -> io::Result<()> {
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The supervisor: waits for the script to exit or the lifeline to close, ends the task,
/// reports, and exits. Never returns.
fn supervise(plan: &Plan, script: libc::pid_t) -> ! {
    // SAFETY (whole function): system calls on plain values and stack buffers.
    unsafe {
        write_all(plan.report, &script.to_le_bytes());
        for signal in [
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGPIPE,
            libc::SIGTSTP,
            libc::SIGTTIN,
            libc::SIGTTOU,
        ] {
            libc::signal(signal, libc::SIG_IGN);
        }
        let mut keep = [plan.lifeline, plan.report, -1, -1, -1];
        if let Some((memory, processes)) = plan.counters {
            keep[2] = memory;
            keep[3] = processes;
        }
        if let Some(claim) = plan.claim {
            keep[4] = claim;
        }
        keep_only(&mut keep);
        libc::chdir(c"/".as_ptr());
        let mut chld: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut chld);
        libc::sigaddset(&mut chld, libc::SIGCHLD);
        let signals = libc::signalfd(-1, &chld, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);

        let mut status = None;
        loop {
            reap(script, &mut status);
            if status.is_some() {
                break;
            }
            let mut fds = [
                libc::pollfd {
                    fd: plan.lifeline,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: signals,
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // Without a signalfd (an old kernel), look for exits ten times a second.
            let (count, timeout) = if signals < 0 { (1, 100) } else { (2, -1) };
            if libc::poll(fds.as_mut_ptr(), count, timeout) < 0 {
                continue;
            }
            if fds[0].revents != 0 {
                break;
            }
            if fds[1].revents != 0 {
                let mut info = [0u8; 128];
                while libc::read(signals, info.as_mut_ptr().cast(), info.len()) > 0 {}
            }
        }

        let all_ended = end_all(plan.uid, script, &mut status);
        let (memory_kills, process_limit_hits) = match plan.counters {
            Some((memory, processes)) => {
                (counter(memory, b"oom_kill "), counter(processes, b"max "))
            }
            None => (0, 0),
        };
        for dir in &plan.cgroup_dirs {
            remove_dir(dir);
        }
        let report = Report {
            // Only a script killed before it could be reaped has no status of its own.
            status: ExitStatus::from_raw(status.unwrap_or(libc::SIGKILL)),
            memory_kills,
            process_limit_hits,
            all_ended,
        };
        write_all(plan.report, &report.encode());
        libc::_exit(0)
    }
}

/// Reaps every child that has ended, noting the script's status. Returns whether the
/// supervisor has no child left at all.
fn reap(script: libc::pid_t, status: &mut Option<libc::c_int>) -> bool {
    loop {
        let mut wstatus = 0;
        // SAFETY: waitpid with a pointer to a local.
        match unsafe { libc::waitpid(-1, &mut wstatus, libc::WNOHANG) } {
            0 => return false,
            pid if pid < 0 => {
                return io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD);
            }
            pid => {
                if pid == script {
                    *status = Some(wstatus);
                }
            }
        }
    }
}

/// Kills every process of the task until none is left and all are reaped, or the deadline
/// passes. Returns whether none is left. Every process of the task descends from the
/// supervisor, its subreaper, so none is left once it has no child: killing the task's user
/// too only ends a large tree at once rather than a generation at a time.
fn end_all(uid: Option<u32>, script: libc::pid_t, status: &mut Option<libc::c_int>) -> bool {
    let deadline = Instant::now() + END_DEADLINE;
    loop {
        kill_children();
        if status.is_none() {
            // The script's group too, for a kernel without the children file (its id cannot
            // be another group's while the script is not reaped).
            // SAFETY: kill on a plain value.
            unsafe { libc::kill(-script, libc::SIGKILL) };
        }
        if let Some(uid) = uid {
            // SAFETY: the supervisor is single-threaded.
            unsafe { kill_user(uid) };
        }
        if reap(script, status) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        pause();
    }
}

/// Waits one round of killing, for the killed processes to die.
fn pause() {
    let pause = libc::timespec {
        tv_sec: 0,
        tv_nsec: END_ROUND.as_nanos() as libc::c_long,
    };
    // SAFETY: nanosleep of a local.
    unsafe { libc::nanosleep(&pause, std::ptr::null_mut()) };
}

/// Sends `SIGKILL` to every child of this (single-threaded) process. Orphans of the task are
/// its children, being its subreaper; their own children come up when they die.
fn kill_children() {
    // SAFETY (whole function): open/read/close/kill on a stack buffer.
    unsafe {
        let fd = libc::open(
            c"/proc/thread-self/children".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return;
        }
        let mut buf = [0u8; 4096];
        let mut pid: libc::pid_t = 0;
        loop {
            let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
            if n <= 0 {
                break;
            }
            for &byte in &buf[..n as usize] {
                if byte.is_ascii_digit() {
                    pid = pid
                        .saturating_mul(10)
                        .saturating_add(libc::pid_t::from(byte - b'0'));
                } else {
                    if pid > 0 {
                        libc::kill(pid, libc::SIGKILL);
                    }
                    pid = 0;
                }
            }
        }
        if pid > 0 {
            libc::kill(pid, libc::SIGKILL);
        }
        libc::close(fd);
    }
}

/// Sends `SIGKILL` to every process of `uid`, as that user (real and effective, so the kernel
/// picks exactly that user's processes and spares this one). The result of `kill(-1)` says
/// nothing: it is 0 whenever any other process exists, even one it may not signal.
///
/// # Safety
///
/// Only for a single-threaded process (a forked child): the credentials change for the
/// calling thread while it runs.
pub(crate) unsafe fn kill_user(uid: u32) {
    // SAFETY (whole function): credential changes of this single-threaded process, and kill.
    unsafe {
        let (mut real, mut effective, mut saved) = (0, 0, 0);
        if libc::getresuid(&mut real, &mut effective, &mut saved) != 0
            || libc::setresuid(uid, uid, effective) != 0
        {
            return;
        }
        libc::kill(-1, libc::SIGKILL);
        libc::setresuid(real, effective, saved);
    }
}

/// The number after `key` at the start of a line of the cgroup counter file `fd`.
fn counter(fd: RawFd, key: &[u8]) -> u64 {
    let mut buf = [0u8; 1024];
    // SAFETY: pread into a stack buffer.
    let n = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n <= 0 {
        return 0;
    }
    buf[..n as usize]
        .split(|&b| b == b'\n')
        .find_map(|line| line.strip_prefix(key))
        .map(|digits| {
            digits
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .fold(0u64, |n, &b| {
                    n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
                })
        })
        .unwrap_or(0)
}

/// Removes an emptied cgroup directory, waiting for its last processes to leave it.
fn remove_dir(dir: &CString) {
    for _ in 0..REMOVE_ATTEMPTS {
        // SAFETY: rmdir of a C string; nanosleep of a local.
        unsafe {
            if libc::rmdir(dir.as_ptr()) == 0
                || io::Error::last_os_error().raw_os_error() == Some(libc::ENOENT)
            {
                return;
            }
            let pause = libc::timespec {
                tv_sec: 0,
                tv_nsec: 10_000_000,
            };
            libc::nanosleep(&pause, std::ptr::null_mut());
        }
    }
}

fn write_all(fd: RawFd, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: write from a slice.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n <= 0 {
            if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

/// Closes every descriptor but `keep` (negative entries ignored) and points the standard
/// streams at `/dev/null`: the supervisor must hold none of the worker's files, pipes or
/// locks, nor the script's output pipes.
unsafe fn keep_only(keep: &mut [RawFd]) {
    keep.sort_unstable();
    // SAFETY (whole function): open/dup2/close/syscall on plain values.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if null >= 0 {
            for stdio in 0..3 {
                libc::dup2(null, stdio);
            }
        }
        let mut first: libc::c_uint = 3;
        for &fd in keep.iter().filter(|&&fd| fd >= 3) {
            let fd = fd as libc::c_uint;
            if fd > first {
                close_range(first, fd - 1);
            }
            first = fd + 1;
        }
        close_range(first, libc::c_uint::MAX);
    }
}

unsafe fn close_range(first: libc::c_uint, last: libc::c_uint) {
    // SAFETY: close_range and close on descriptor numbers.
    unsafe {
        if libc::syscall(libc::SYS_close_range, first, last, 0) == 0 {
            return;
        }
        // Before Linux 5.9: one by one, as far as descriptors usually go.
        for fd in first..=last.min(CLOSE_FALLBACK_LIMIT) {
            libc::close(fd as libc::c_int);
        }
    }
}
