//! `idlegrid bench worker-idle`: what a worker costs its device while there is no work.
//!
//! It starts a real coordinator (`idlegrid serve`, embedded backends) on loopback with no job,
//! and a real worker process (`idlegrid worker`) registered to it; once the worker has
//! registered and settled, it samples the worker's resident memory and CPU time from `/proc`
//! for `--secs` seconds. The worker long-polls for leases, so an idle one should use next to
//! no CPU.

use crate::cli::bench::IdleArgs;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::process::{Child, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// The measured figures.
#[derive(Debug, Serialize)]
pub struct IdleFigures {
    /// Seconds sampled.
    pub secs: f64,
    /// Resident memory at the end, in MiB.
    pub rss_mib: f64,
    /// Largest resident memory seen while sampling (once a second), in MiB.
    pub max_sampled_rss_mib: f64,
    /// Peak resident memory since the worker started (start-up included), in MiB.
    pub peak_rss_mib: f64,
    /// CPU time (user + system) the worker used while sampled, in milliseconds.
    pub cpu_ms: f64,
    /// That CPU time as a share of one core over the sampled time, in percent.
    pub cpu_percent: f64,
    /// Whether the worker was still running at the end.
    pub worker_alive: bool,
}

/// Target for an idle worker's resident memory.
pub const TARGET_RSS_MIB: f64 = 30.0;

/// The worker process, stopped when dropped.
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.0.wait();
    }
}

/// User + system CPU time of a process, in clock ticks (fields 14 and 15 of `/proc/PID/stat`).
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read /proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("unexpected /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so utime (14) and stime (15) are at 11 and 12.
    let tick = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .context("unexpected /proc/PID/stat")
    };
    Ok(tick(11)? + tick(12)?)
}

/// Clock ticks per second (`getconf CLK_TCK`); 100 on Linux unless told otherwise.
fn ticks_per_sec() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

pub async fn worker_idle(args: IdleArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.secs > 0, "--secs must be positive");
    anyhow::ensure!(
        std::path::Path::new("/proc/self/stat").exists(),
        "this benchmark reads /proc, which this system does not have"
    );
    let coordinator = super::dispatch::Coordinator::start(&[])?;
    let state = tempfile::tempdir()?;
    let log_path = state.path().join("worker.log");
    let log = std::fs::File::create(&log_path)?;
    let child = std::process::Command::new(std::env::current_exe()?)
        .args(["worker", "--coordinator", &coordinator.url])
        .args(["--token", &coordinator.enrollment_token])
        .args(["--name", "idle-bench"])
        .arg("--state-dir")
        .arg(state.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting the worker")?;
    let log_text = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let mut worker = Worker(child);
    let pid = worker.0.id();
    let registered = Instant::now();
    while !state.path().join("credentials.json").exists() {
        if let Some(status) = worker.0.try_wait()? {
            anyhow::bail!(
                "the worker ended before it registered ({status}); its log:\n{}",
                log_text()
            );
        }
        anyhow::ensure!(
            registered.elapsed() < Duration::from_secs(60),
            "the worker did not register within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
    let progress = if args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(args.secs)
    };
    progress.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} s  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    progress.set_message("sampling the idle worker");
    let start_ticks = cpu_ticks(pid)?;
    let started = Instant::now();
    let mut max_sampled: f64 = 0.0;
    for second in 0..args.secs {
        max_sampled = max_sampled.max(super::rss_mib(pid)?.0);
        tokio::time::sleep(Duration::from_secs(1)).await;
        progress.set_position(second + 1);
    }
    progress.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    let cpu_ms = (cpu_ticks(pid)? - start_ticks) as f64 / ticks_per_sec() * 1000.0;
    let (rss, peak) = super::rss_mib(pid)?;
    let figures = IdleFigures {
        secs,
        rss_mib: rss,
        max_sampled_rss_mib: max_sampled.max(rss),
        peak_rss_mib: peak,
        cpu_ms,
        cpu_percent: cpu_ms / (secs * 1000.0) * 100.0,
        worker_alive: worker.0.try_wait()?.is_none(),
    };
    if !figures.worker_alive {
        eprintln!("the worker ended while idle; its log:\n{}", log_text());
    }
    drop(worker);
    drop(coordinator);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&figures)?);
    } else {
        println!("idle worker, sampled for {:.0} s", figures.secs);
        println!(
            "  resident memory   {:.1} MiB now, {:.1} MiB at most while idle, {:.1} MiB peak since start",
            figures.rss_mib, figures.max_sampled_rss_mib, figures.peak_rss_mib
        );
        println!(
            "  CPU time          {:.0} ms ({:.3}% of one core)",
            figures.cpu_ms, figures.cpu_percent
        );
        let verdict = if figures.max_sampled_rss_mib <= TARGET_RSS_MIB {
            "met"
        } else {
            "missed"
        };
        println!(
            "target idle RSS ≤ {TARGET_RSS_MIB:.0} MB: {verdict} ({:.1} MiB)",
            figures.max_sampled_rss_mib
        );
    }
    Ok(if figures.worker_alive {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
