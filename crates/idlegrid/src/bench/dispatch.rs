//! `idlegrid bench dispatch`: how many task lifecycles a coordinator completes per second.
//!
//! It starts a real coordinator process (`idlegrid serve`, durable embedded store) on loopback,
//! submits a python-map job with one line per chunk, waits until every chunk is queued (and
//! reads the coordinator's RSS then), and drives simulated workers over real HTTP through the
//! whole lifecycle — lease, report the output, validation, assembly — until the job completes.
//! Simulated workers run no script: the figure is the coordinator's own capacity.

use crate::cli::bench::DispatchArgs;
use anyhow::Context;
use idlegrid_api::jobs::CreateJob;
use idlegrid_api::tasks::{LeaseRequest, RegisterWorker, Report, ReportItem, ReportOutcome};
use idlegrid_api::{Capabilities, JobState};
use idlegrid_client::{Client, sha256_bytes};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::io::BufRead;
use std::process::{Child, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The measured figures.
#[derive(Debug, Serialize)]
pub struct DispatchFigures {
    /// Tasks completed.
    pub tasks: u64,
    /// Simulated workers.
    pub workers: usize,
    /// Coordinator processes.
    pub coordinators: usize,
    /// Backends: `embedded`, or the engines' URL schemes.
    pub backends: String,
    /// Tasks per lease request.
    pub batch: u32,
    /// Seconds from `run` until every chunk was queued.
    pub partition_secs: f64,
    /// Seconds from the first lease until the job was completed (output assembled).
    pub dispatch_secs: f64,
    /// Task lifecycles (lease → report → validate → assemble) per second.
    pub lifecycles_per_sec: f64,
    /// Latency of lease requests that returned tasks, in milliseconds.
    pub lease_latency_ms: Latency,
    /// Coordinator resident memory with every task queued, in MiB.
    pub coordinator_rss_queued_mib: f64,
    /// Coordinator peak resident memory over the whole run, in MiB.
    pub coordinator_peak_rss_mib: f64,
    /// Whether the assembled output was exactly the expected bytes.
    pub output_verified: bool,
}

/// Latency percentiles.
#[derive(Debug, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

pub(crate) struct Coordinator {
    child: Child,
    pub(crate) url: String,
    api_key: String,
    pub(crate) enrollment_token: String,
    _dir: tempfile::TempDir,
}

impl Coordinator {
    pub(crate) fn start(backends: &[String]) -> anyhow::Result<Coordinator> {
        let dir = tempfile::tempdir()?;
        let exe = std::env::current_exe()?;
        let mut child = std::process::Command::new(exe)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--json",
                "--lease-secs",
                "120",
            ])
            .args(backends)
            .arg("--data-dir")
            .arg(dir.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the coordinator")?;
        let stdout = child.stdout.take().context("coordinator stdout")?;
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        let ready: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("coordinator did not start: {line:?}"))?;
        let field = |name: &str| {
            ready[name]
                .as_str()
                .map(str::to_string)
                .with_context(|| format!("coordinator start line lacks {name}"))
        };
        Ok(Coordinator {
            url: field("url")?,
            api_key: field("api_key")?,
            enrollment_token: field("enrollment_token")?,
            child,
            _dir: dir,
        })
    }

    /// (current, peak) resident memory in MiB, from /proc (0 where it cannot be read).
    fn rss_mib(&self) -> (f64, f64) {
        super::rss_mib(self.child.id()).unwrap_or((0.0, 0.0))
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

pub async fn dispatch(args: DispatchArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.tasks > 0 && args.workers > 0,
        "--tasks and --workers must be positive"
    );
    anyhow::ensure!(
        (1..=1000).contains(&args.batch),
        "--batch must be from 1 to 1000"
    );
    anyhow::ensure!(
        args.coordinators >= 1
            && (args.coordinators == 1 || (args.store.is_some() && args.queue.is_some())),
        "--coordinators above 1 needs shared records and queues: --store postgres://… --queue redis://…"
    );
    let mut backends = Vec::new();
    for (flag, url) in [
        ("--store", &args.store),
        ("--queue", &args.queue),
        ("--blobs", &args.blobs),
    ] {
        if let Some(url) = url {
            backends.extend([flag.to_string(), url.clone()]);
        }
    }
    let coordinators = (0..args.coordinators)
        .map(|_| Coordinator::start(&backends))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let coordinator = &coordinators[0];
    let client = Client::new(&coordinator.url, &coordinator.api_key)?;
    let input = "t\n".repeat(args.tasks as usize);
    let job = client
        .create_job(&CreateJob {
            script: Some("# never run: the benchmark's workers are simulated\n".into()),
            chunk_lines: Some(1),
            ..CreateJob::new("python-map")
        })
        .await?;
    client
        .upload_input_bytes(job.id, input.clone().into())
        .await?;
    let submitted = Instant::now();
    client.run_job(job.id).await?;
    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(args.tasks)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:<12} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message("queueing");
    loop {
        let status = client.job(job.id).await?;
        bar.set_position(status.chunks.queued);
        if status.chunks.total == Some(args.tasks) && status.chunks.queued == args.tasks {
            break;
        }
        anyhow::ensure!(
            !status.state.is_terminal(),
            "benchmark job ended early: {:?}",
            status.error
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let partition_secs = submitted.elapsed().as_secs_f64();
    let (rss_queued, _) = coordinator.rss_mib();

    bar.set_message("dispatching");
    bar.set_position(0);
    let done = Arc::new(AtomicU64::new(0));
    let output = b"t\n";
    let sha = sha256_bytes(output);
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for i in 0..args.workers {
        // Spread across the coordinators; the first one's key works on all (shared records).
        let serving = &coordinators[i % coordinators.len()];
        let worker = Client::register(
            &serving.url,
            &coordinator.enrollment_token,
            &RegisterWorker {
                name: format!("bench-{i}"),
                capabilities: Capabilities {
                    cores: 1,
                    memory_mb: 4096,
                    os: std::env::consts::OS.into(),
                    arch: std::env::consts::ARCH.into(),
                    python: Some("3.11".into()),
                    ffmpeg: None,
                    benchmark: idlegrid_domain::pricing::REFERENCE_BENCHMARK,
                    slots: args.batch,
                    allows: Default::default(),
                    ..Default::default()
                },
            },
        )
        .await?;
        let client = Client::new(&serving.url, &worker.token)?;
        let (done, sha, bar) = (done.clone(), sha.clone(), bar.clone());
        let (total, batch) = (args.tasks, args.batch);
        workers.spawn(async move {
            let mut latencies = Vec::new();
            while done.load(Ordering::Relaxed) < total {
                let asked = Instant::now();
                let grant = client
                    .lease(&LeaseRequest {
                        max_tasks: batch,
                        wait_ms: 200,
                    })
                    .await?;
                if grant.leases.is_empty() {
                    continue;
                }
                latencies.push(asked.elapsed().as_secs_f64() * 1000.0);
                let encoded = base64_encode(output);
                let reports = grant
                    .leases
                    .iter()
                    .map(|lease| ReportItem {
                        lease_id: lease.lease_id,
                        task_id: lease.task_id,
                        outcome: ReportOutcome::Completed {
                            sha256: sha.clone(),
                            size: output.len() as u64,
                            inline_base64: Some(encoded.clone()),
                        },
                        log: None,
                    })
                    .collect();
                let reply = client.report(&Report { reports }).await?;
                let accepted = reply.results.iter().filter(|r| r.accepted).count() as u64;
                done.fetch_add(accepted, Ordering::Relaxed);
                bar.inc(accepted);
            }
            Ok::<_, anyhow::Error>(latencies)
        });
    }
    let mut latencies = Vec::new();
    while let Some(result) = workers.join_next().await {
        latencies.extend(result??);
    }
    bar.set_message("assembling");
    let finished = loop {
        let status = client.job(job.id).await?;
        if status.state.is_terminal() {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let dispatch_secs = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    anyhow::ensure!(
        finished.state == JobState::Completed,
        "benchmark job {}: {:?}",
        finished.state,
        finished.error
    );
    let expected_sha = sha256_bytes(input.as_bytes());
    let output_verified = finished
        .output
        .as_ref()
        .is_some_and(|o| o.sha256 == expected_sha);
    let (_, peak) = coordinator.rss_mib();
    latencies.sort_by(f64::total_cmp);
    let pick = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    let figures = DispatchFigures {
        tasks: args.tasks,
        workers: args.workers,
        coordinators: args.coordinators,
        backends: describe_backends(&args),
        batch: args.batch,
        partition_secs,
        dispatch_secs,
        lifecycles_per_sec: args.tasks as f64 / dispatch_secs,
        lease_latency_ms: Latency {
            p50: pick(0.5),
            p99: pick(0.99),
            max: pick(1.0),
        },
        coordinator_rss_queued_mib: rss_queued,
        coordinator_peak_rss_mib: peak,
        output_verified,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&figures)?);
    } else {
        println!(
            "dispatch benchmark: {} tasks, {} simulated workers, {} tasks per lease, {} coordinator(s) on {}",
            figures.tasks, figures.workers, figures.batch, figures.coordinators, figures.backends
        );
        println!("  partition + queue:    {:.2} s", figures.partition_secs);
        println!(
            "  lifecycles:           {:.0} /s ({:.2} s)",
            figures.lifecycles_per_sec, figures.dispatch_secs
        );
        println!(
            "  lease latency:        p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            figures.lease_latency_ms.p50,
            figures.lease_latency_ms.p99,
            figures.lease_latency_ms.max
        );
        println!(
            "  coordinator RSS:      {:.0} MiB with all tasks queued, {:.0} MiB peak",
            figures.coordinator_rss_queued_mib, figures.coordinator_peak_rss_mib
        );
        println!("  output verified:      {}", figures.output_verified);
    }
    Ok(if output_verified {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The backends in a few words: `embedded`, or the engines' URL schemes.
fn describe_backends(args: &DispatchArgs) -> String {
    let schemes: Vec<&str> = [&args.store, &args.queue, &args.blobs]
        .into_iter()
        .flatten()
        .map(|url| url.split("://").next().unwrap_or("?"))
        .collect();
    if schemes.is_empty() {
        "embedded".into()
    } else {
        schemes.join(" + ")
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
