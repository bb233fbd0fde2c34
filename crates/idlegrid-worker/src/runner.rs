//! Runs one task script under its limits and judges what it left in `output/`.
//!
//! The script runs in a prepared scratch directory (`input/<chunk>`, empty `output/`) with an
//! empty environment apart from the documented variables, under a supervisor
//! (`crate::supervisor`) that ends every process of the task when the script exits, times out,
//! is cancelled or fills its disk, and when the worker dies: no process outlives its task.
//! Its stderr tail becomes the failure reason; its stdout is scanned for progress lines and
//! otherwise discarded. Memory use is bounded however much it prints. The limits and names
//! this shares with the browser's runner are [`RULES`].

use crate::sandbox::{MAX_PROCESSES, Sandbox};
use crate::throttle::Throttle;
use idlegrid_api::TaskId;
use idlegrid_api::runner::RULES;
use idlegrid_api::tasks::TaskLimits;
use nix::sys::signal::Signal;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

/// How long the pipe readers may take to see end-of-file once every process of the task is
/// dead; only a process that escaped the supervisor (where there is none) can hold the pipes
/// open longer.
const PIPE_DRAIN: Duration = Duration::from_secs(2);

/// A script to run.
#[derive(Debug, Clone)]
pub struct Script<'a> {
    /// Python interpreter.
    pub python: &'a Path,
    /// The bundle's entrypoint file.
    pub entrypoint: &'a Path,
    /// Scratch directory: the script's cwd and `HOME`, holding `input/` and `output/`.
    pub workdir: &'a Path,
    /// Job parameters, passed as JSON in `IDLEGRID_PARAMS`.
    pub params: &'a serde_json::Value,
    /// The chunk's own parameters, passed as JSON in `IDLEGRID_TASK`.
    pub task_params: &'a serde_json::Value,
    /// Passed as `IDLEGRID_TASK_ID`.
    pub task_id: TaskId,
    /// Passed as `IDLEGRID_CHUNK_INDEX`.
    pub chunk_index: u64,
    /// Limits to enforce.
    pub limits: &'a TaskLimits,
    /// What the device's owner adds to them.
    pub owner: &'a OwnerLimits,
}

/// What the device's owner adds to a task's limits (see [`crate::controls`]).
#[derive(Debug, Clone, Default)]
pub struct OwnerLimits {
    /// Most bytes the script may add to its scratch directory, when that is less than the
    /// job's [`disk_allowance`].
    pub disk_bytes: Option<u64>,
    /// Holds the script to a share of the CPU; its timeout is stretched to match.
    pub throttle: Option<Throttle>,
}

/// How the script's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It exited (or was killed by a signal it did not get from the runner).
    Exited(ExitStatus),
    /// It ran past its wall-clock timeout and was killed.
    TimedOut,
    /// It was killed because the caller cancelled it.
    Cancelled,
    /// It was killed for writing more than its share of disk (bytes in its scratch directory
    /// beyond what was there when it started).
    DiskFull {
        /// Bytes it had written when it was stopped.
        used: u64,
        /// Bytes it was allowed.
        allowed: u64,
        /// Whether the allowance was the device owner's (`disk_mb`) rather than the job's.
        by_owner: bool,
    },
}

/// Disk a script may fill in its scratch directory beyond the input it was given: room for
/// its output and as much again in temporary files.
pub fn disk_allowance(limits: &TaskLimits) -> u64 {
    limits.max_output_bytes.saturating_mul(2)
}

/// How often the scratch directory's size is checked.
const DISK_CHECK: Duration = Duration::from_millis(500);

/// What any directory entry costs at least: empty files, directories and links use inodes
/// and directory blocks, so millions of them fill a disk as surely as bytes do.
const ENTRY_COST: u64 = 4096;

/// Disk used under `dir` (symlinks not followed): each entry's allocated bytes (a sparse file
/// costs only what it holds), at least [`ENTRY_COST`] each; stops counting past `stop_at`.
fn disk_usage(dir: &Path, stop_at: u64) -> u64 {
    let mut total = 0u64;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if meta.is_dir() {
                pending.push(entry.path());
            }
            let bytes = meta.blocks().saturating_mul(512).max(ENTRY_COST);
            total = total.saturating_add(bytes);
            if total > stop_at {
                return total;
            }
        }
    }
    total
}

/// The result of running a script.
#[derive(Debug, Clone)]
pub struct Finished {
    /// How it ended.
    pub ended: Ended,
    /// The last `RULES.stderr_tail_bytes` of its stderr, lossily decoded and trimmed; starts with
    /// `…` when earlier output was dropped.
    pub stderr_tail: String,
    /// Wall-clock run time.
    pub elapsed: Duration,
    /// Processes of the task the kernel killed for using more than its memory together (only
    /// counted where the task had a cgroup).
    pub memory_kills: u64,
    /// Forks refused to the task for having as many processes as it may (only counted where
    /// the task had a cgroup).
    pub process_limit_hits: u64,
}

/// The script's latest reported progress, shared between the runner and the heartbeat loop.
#[derive(Debug, Clone)]
pub struct Progress(Arc<AtomicU32>);

/// Bit pattern standing for "no progress reported"; a NaN, which `set` never stores.
const NO_PROGRESS: u32 = u32::MAX;

impl Default for Progress {
    fn default() -> Self {
        Progress(Arc::new(AtomicU32::new(NO_PROGRESS)))
    }
}

impl Progress {
    /// The fraction done, if the script has reported any.
    pub fn get(&self) -> Option<f32> {
        match self.0.load(Ordering::Relaxed) {
            NO_PROGRESS => None,
            bits => Some(f32::from_bits(bits)),
        }
    }

    fn set(&self, fraction: f32) {
        self.0
            .store(fraction.clamp(0.0, 1.0).to_bits(), Ordering::Relaxed);
    }
}

/// Runs `script` to the end, to its timeout, or until `cancel` fires; every process of the task
/// is dead when this returns. An error means the script could not be started at all.
pub async fn run(
    script: &Script<'_>,
    sandbox: &dyn Sandbox,
    progress: &Progress,
    cancel: &CancellationToken,
) -> io::Result<Finished> {
    let mut command = tokio::process::Command::new(script.python);
    // -B and -u because -E makes Python ignore PYTHONDONTWRITEBYTECODE and PYTHONUNBUFFERED.
    command
        .args(["-E", "-s", "-B", "-u"])
        .arg(script.entrypoint)
        .current_dir(script.workdir)
        .env_clear()
        .envs(environment(script))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let confinement = sandbox.prepare(script.limits, script.workdir)?;

    let started = Instant::now();
    let mut task = crate::supervisor::spawn(command, confinement).map_err(|err| {
        io::Error::new(
            err.kind(),
            format!("cannot start {}: {err}", script.python.display()),
        )
    })?;
    let stdout = task
        .stdout()
        .map(|out| AbortOnDropHandle::new(tokio::spawn(scan_progress(out, progress.clone()))));
    let stderr = task
        .stderr()
        .map(|err| AbortOnDropHandle::new(tokio::spawn(tail(err))));

    let timeout = Duration::from_secs(script.limits.timeout_secs);
    let timeout = match &script.owner.throttle {
        Some(throttle) => throttle.stretch(timeout),
        None => timeout,
    };
    let throttled = script
        .owner
        .throttle
        .as_ref()
        .map(|t| t.enroll(task.script_group()));
    // Files are bounded one by one (RLIMIT_FSIZE), not in number: the directory as a whole is
    // watched, bytes and entries.
    let baseline = disk_usage(script.workdir, u64::MAX);
    let job_allowance = disk_allowance(script.limits);
    let allowed = script
        .owner
        .disk_bytes
        .map_or(job_allowance, |owner| owner.min(job_allowance));
    let quota = baseline.saturating_add(allowed);
    let workdir = script.workdir.to_path_buf();
    let over_quota = async move {
        loop {
            tokio::time::sleep(DISK_CHECK).await;
            let dir = workdir.clone();
            let used = tokio::task::spawn_blocking(move || disk_usage(&dir, quota))
                .await
                .unwrap_or(0);
            if used > quota {
                return used - baseline;
            }
        }
    };
    let stopped = tokio::select! {
        () = task.exited() => None,
        () = tokio::time::sleep(timeout) => Some(Ended::TimedOut),
        () = cancel.cancelled() => Some(Ended::Cancelled),
        used = over_quota => Some(Ended::DiskFull { used, allowed, by_owner: allowed < job_allowance }),
    };
    let elapsed = started.elapsed();
    // Let a throttled script run again first, so a stopped group does not outlast the task.
    drop(throttled);
    let report = task.end().await?;
    let ended = stopped.unwrap_or(Ended::Exited(report.status));
    if let Some(stdout) = stdout {
        let _ = tokio::time::timeout(PIPE_DRAIN, stdout).await;
    }
    let stderr_tail = match stderr {
        Some(stderr) => match tokio::time::timeout(PIPE_DRAIN, stderr).await {
            Ok(Ok(bytes)) => bytes,
            _ => Vec::new(),
        },
        None => Vec::new(),
    };
    Ok(Finished {
        ended,
        stderr_tail: hide_places(render_tail(stderr_tail), script.workdir, script.entrypoint),
        elapsed,
        memory_kills: report.memory_kills,
        process_limit_hits: report.process_limit_hits,
    })
}

/// The script's whole environment. `PATH` is the worker's, so tools such as ffmpeg are found.
fn environment(script: &Script<'_>) -> Vec<(&'static str, String)> {
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    let mut env = vec![
        ("IDLEGRID_PARAMS", script.params.to_string()),
        ("IDLEGRID_TASK", script.task_params.to_string()),
        ("IDLEGRID_TASK_ID", script.task_id.to_string()),
        ("IDLEGRID_CHUNK_INDEX", script.chunk_index.to_string()),
        ("PATH", path),
        ("HOME", script.workdir.display().to_string()),
        ("TMPDIR", script.workdir.display().to_string()),
    ];
    env.extend(
        RULES
            .script_env
            .iter()
            .map(|(name, value)| (name.as_str(), value.clone())),
    );
    env
}

/// Reads stdout to its end, recording `idlegrid:progress <fraction>` lines.
async fn scan_progress(mut out: impl AsyncRead + Unpin, progress: Progress) {
    let mut buf = vec![0u8; 8192];
    let max_line = RULES.max_stdout_line_bytes;
    let mut line = Vec::with_capacity(max_line);
    let mut overlong = false;
    loop {
        let n = match out.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &byte in &buf[..n] {
            match byte {
                b'\n' => {
                    if !overlong && let Some(fraction) = parse_progress(&line) {
                        progress.set(fraction);
                    }
                    line.clear();
                    overlong = false;
                }
                _ if overlong => {}
                _ if line.len() < max_line => line.push(byte),
                _ => {
                    overlong = true;
                    line.clear();
                }
            }
        }
    }
    if !overlong && let Some(fraction) = parse_progress(&line) {
        progress.set(fraction);
    }
}

fn parse_progress(line: &[u8]) -> Option<f32> {
    let line = std::str::from_utf8(line).ok()?.trim();
    let fraction: f32 = line
        .strip_prefix(RULES.progress_prefix.as_str())?
        .trim()
        .parse()
        .ok()?;
    fraction.is_finite().then_some(fraction)
}

/// A script's stderr as others read it: where the task directory and the app's files are on
/// this device (which names its user and how it is laid out) written as `.` and `app`, so a
/// traceback names `app/main.py` and `./input/chunk.txt`.
fn hide_places(text: String, workdir: &Path, entrypoint: &Path) -> String {
    let mut text = text;
    let places = [(Some(workdir), "."), (entrypoint.parent(), "app")];
    for (place, label) in places {
        let Some(place) = place else { continue };
        let canonical = std::fs::canonicalize(place).ok();
        for dir in [Some(place.to_path_buf()), canonical].into_iter().flatten() {
            let dir = dir.to_string_lossy().trim_end_matches('/').to_string();
            if dir.len() > 1 {
                text = text
                    .replace(&format!("{dir}/"), &format!("{label}/"))
                    .replace(&dir, label);
            }
        }
    }
    text
}

/// Reads a pipe to its end, keeping only the last `RULES.stderr_tail_bytes` (plus one byte to
/// know whether anything was dropped).
async fn tail(mut pipe: impl AsyncRead + Unpin) -> Vec<u8> {
    let keep = RULES.stderr_tail_bytes + 1;
    let mut buf = vec![0u8; 8192];
    let mut kept = Vec::with_capacity(2 * keep);
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        kept.extend_from_slice(&buf[..n]);
        if kept.len() > 2 * keep {
            kept.drain(..kept.len() - keep);
        }
    }
    if kept.len() > keep {
        kept.drain(..kept.len() - keep);
    }
    kept
}

fn render_tail(mut bytes: Vec<u8>) -> String {
    let keep = RULES.stderr_tail_bytes;
    let truncated = bytes.len() > keep;
    if truncated {
        bytes.drain(..bytes.len() - keep);
    }
    let text = String::from_utf8_lossy(&bytes);
    // The cut may split a character; drop its remains rather than show a replacement sign.
    let text = text.trim_start_matches('\u{FFFD}').trim();
    if truncated {
        format!("…{text}")
    } else {
        text.to_string()
    }
}

/// The script's result file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Where it is.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
}

/// Judges a finished script: success needs exit status 0 and `output_dir` holding exactly one
/// regular file within the size limit. Otherwise the error is a reason for the customer.
pub fn judge(
    finished: &Finished,
    output_dir: &Path,
    limits: &TaskLimits,
) -> Result<Output, String> {
    let status = match finished.ended {
        Ended::Exited(status) => status,
        Ended::TimedOut => {
            return Err(with_stderr(
                format!(
                    "script timed out after {} s and was killed",
                    limits.timeout_secs
                ),
                &finished.stderr_tail,
            ));
        }
        Ended::Cancelled => return Err("script was stopped before it finished".into()),
        Ended::DiskFull {
            used,
            allowed,
            by_owner,
        } => {
            let whose = if by_owner {
                format!(
                    " (the device's owner allows {} MiB per task)",
                    allowed / (1024 * 1024)
                )
            } else {
                String::new()
            };
            return Err(with_stderr(
                format!(
                    "script wrote more than {allowed} bytes to its scratch directory ({used} and counting) and was killed{whose}"
                ),
                &finished.stderr_tail,
            ));
        }
    };
    if !status.success() && finished.memory_kills > 0 {
        return Err(with_stderr(
            format!(
                "the task used more than {} MiB of memory (all its processes together) and the kernel killed {} of its processes",
                limits.memory_mb, finished.memory_kills
            ),
            &finished.stderr_tail,
        ));
    }
    if let Some(signal) = status.signal() {
        return Err(with_stderr(
            describe_signal(signal, limits),
            &finished.stderr_tail,
        ));
    }
    match status.code() {
        Some(0) => {}
        code => {
            let code = code.map_or_else(|| "unknown".to_string(), |c| c.to_string());
            // Python reports hitting an rlimit as an ordinary exception; name the limit.
            let hint = if finished.stderr_tail.contains("MemoryError") {
                format!(
                    " (the task may use at most {} MiB of memory)",
                    limits.memory_mb
                )
            } else if finished.stderr_tail.contains("File too large") {
                format!(
                    " (the task may write at most {} bytes per file)",
                    limits.max_output_bytes
                )
            } else if finished.process_limit_hits > 0
                || finished
                    .stderr_tail
                    .contains("Resource temporarily unavailable")
            {
                format!(" (the task may run at most {MAX_PROCESSES} processes and threads at once)")
            } else {
                String::new()
            };
            return Err(compose(
                &format!("script exited with status {code}"),
                &finished.stderr_tail,
                &hint,
            ));
        }
    }
    single_output(output_dir, limits)
}

fn with_stderr(reason: String, stderr_tail: &str) -> String {
    compose(&reason, stderr_tail, "")
}

/// `<head>: <stderr tail><hint>`, within `RULES.max_reason_bytes`. The stderr tail is shortened
/// from its start, because its end (the exception) is what the customer needs.
fn compose(head: &str, stderr_tail: &str, hint: &str) -> String {
    if stderr_tail.is_empty() {
        return format!("{head}{hint}");
    }
    let room = RULES
        .max_reason_bytes
        .saturating_sub(head.len() + ": …".len() + hint.len());
    if stderr_tail.len() <= room {
        return format!("{head}: {stderr_tail}{hint}");
    }
    let mut start = stderr_tail.len() - room;
    while !stderr_tail.is_char_boundary(start) {
        start += 1;
    }
    let kept = stderr_tail[start..].trim_start_matches('…');
    format!("{head}: …{kept}{hint}")
}

fn describe_signal(signal: i32, limits: &TaskLimits) -> String {
    match Signal::try_from(signal) {
        Ok(Signal::SIGXCPU) => format!(
            "script used more than {} s of CPU time and was killed",
            limits.timeout_secs + crate::sandbox::CPU_GRACE_SECS
        ),
        Ok(Signal::SIGXFSZ) => format!(
            "script wrote a file over the {}-byte output limit and was killed",
            limits.max_output_bytes
        ),
        Ok(named) => format!("script killed by signal {signal} ({named})"),
        Err(_) => format!("script killed by signal {signal}"),
    }
}

/// Finds the one regular file in `output_dir`.
fn single_output(output_dir: &Path, limits: &TaskLimits) -> Result<Output, String> {
    let entries = std::fs::read_dir(output_dir)
        .map_err(|err| format!("cannot read output/: {err}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| format!("cannot read output/: {err}"))?;
    let entry = match entries.as_slice() {
        [] => return Err("script wrote no output (output/ is empty)".into()),
        [entry] => entry,
        many => {
            let mut names: Vec<String> = many
                .iter()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            let shown = names.len().min(10);
            let mut list = names[..shown].join(", ");
            if names.len() > shown {
                list.push_str(", …");
            }
            return Err(format!(
                "output/ must hold exactly one file, found {}: {list}",
                names.len()
            ));
        }
    };
    let name = entry.file_name().to_string_lossy().into_owned();
    let path = entry.path();
    let meta = std::fs::symlink_metadata(&path)
        .map_err(|err| format!("cannot inspect output/{name}: {err}"))?;
    let kind = meta.file_type();
    if kind.is_symlink() {
        return Err(format!(
            "output/{name} is a symbolic link; the output must be a regular file"
        ));
    }
    if !kind.is_file() {
        return Err(format!(
            "output/{name} is not a regular file (a directory or special file)"
        ));
    }
    if meta.len() == limits.max_output_bytes.saturating_add(1) {
        return Err(format!(
            "output is over the {}-byte limit (the script was stopped from writing more)",
            limits.max_output_bytes
        ));
    }
    if meta.len() > limits.max_output_bytes {
        return Err(format!(
            "output is {} bytes, over the {}-byte limit",
            meta.len(),
            limits.max_output_bytes
        ));
    }
    Ok(Output {
        path,
        size: meta.len(),
    })
}

/// Opens the judged output, refusing it if it was swapped for another file since it was judged
/// (a process that escaped the group could still be running).
pub fn open_output(output: &Output) -> Result<std::fs::File, String> {
    let name = output
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let link = std::fs::symlink_metadata(&output.path)
        .map_err(|err| format!("cannot inspect output/{name}: {err}"))?;
    let file = std::fs::File::open(&output.path)
        .map_err(|err| format!("cannot open output/{name}: {err}"))?;
    let opened = file
        .metadata()
        .map_err(|err| format!("cannot inspect output/{name}: {err}"))?;
    if link.file_type().is_symlink()
        || (link.dev(), link.ino()) != (opened.dev(), opened.ino())
        || opened.len() != output.size
    {
        return Err(format!("output/{name} changed after the script ended"));
    }
    Ok(file)
}

#[cfg(test)]
mod tests;
