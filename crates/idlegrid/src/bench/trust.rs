//! `idlegrid bench trust`: how verification fares against cheating devices, and what it costs
//! when most devices are honest. Everything is real but the cheaters, which speak the Tasks
//! API themselves: a coordinator in this process, honest `idlegrid worker` agents (each of an
//! owner of its own), FFmpeg and Python.
//!
//! 1. **Under attack.** Honest devices beside cheaters of their own owners, one per strategy:
//!    frames replaced by a solid colour (silence for sound, any bytes for python-map), a tiny
//!    encode scaled back up (a tone for sound), frames copied instead of encoded, a lazy device
//!    running our own task script with the cheapest preset (and half the audio bitrate), and
//!    two colluding devices of one owner returning the same forgery. The cheaters start first
//!    and take what they can. Video and python-map jobs run with the default settings.
//! 2. **Mostly honest.** Nine honest devices (`--majority`) and one lazy one; every device first earns trust
//!    on small python-map jobs, then video and python-map jobs run, and the extra device work
//!    spent on verification is measured on those.
//!
//! A forged chunk reached an output when a job's accepted result for it is one a cheater sent
//! (compared by SHA-256, read from the records).

use crate::cli::CoordinatorArgs;
use crate::cli::bench::TrustArgs;
use anyhow::Context;
use idlegrid_api::accounts::NewOwner;
use idlegrid_api::jobs::{CreateJob, Job, Preferences};
use idlegrid_api::tasks::{Lease, LeaseRequest, RegisterWorker, Report, ReportItem, ReportOutcome};
use idlegrid_api::{JobId, JobState};
use idlegrid_client::{Client, sha256_bytes};
use idlegrid_coordinator::Grid;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// What one run measured.
#[derive(Debug, Serialize, Default)]
pub struct RunFigures {
    /// Devices, and how many of them cheat.
    pub devices: usize,
    /// Cheating devices.
    pub cheaters: usize,
    /// Owners of the devices.
    pub owners: usize,
    /// Jobs run, and completed.
    pub jobs: usize,
    /// Jobs completed.
    pub completed: usize,
    /// Chunks of the jobs.
    pub chunks: u64,
    /// Forged results the cheaters sent.
    pub forged_sent: u64,
    /// Chunks whose accepted result is a forgery (goal 0).
    pub forged_in_outputs: u64,
    /// Cheaters quarantined.
    pub cheaters_quarantined: usize,
    /// Honest devices quarantined (goal 0).
    pub honest_quarantined: usize,
    /// Results devices ran beyond one per chunk, over the chunks: the device work spent on
    /// verification (and on redoing forgeries), video and python-map jobs together.
    pub extra_work: f64,
    /// The same, for video jobs only.
    pub extra_work_video: f64,
    /// The same, for python-map jobs only.
    pub extra_work_map: f64,
    /// CPU seconds of the coordinator's checks of results.
    pub validation_cpu_secs: f64,
    /// CPU seconds the devices spent (honest and cheating).
    pub device_cpu_secs: f64,
    /// Wall seconds of the run.
    pub wall_secs: f64,
}

/// Both runs.
#[derive(Debug, Serialize)]
pub struct TrustFigures {
    /// Under attack.
    pub attacked: RunFigures,
    /// Mostly honest (90%).
    pub mostly_honest: RunFigures,
}

/// How a cheater makes its results.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Strategy {
    /// A solid colour for every picture, silence for sound, any bytes for text.
    Solid,
    /// A 96x54 encode at CRF 45 scaled back up; a tone for sound.
    Upscaled,
    /// Every other frame copied from the one before.
    Copied,
    /// Our task script with the cheapest preset and half the audio bitrate.
    Lazy,
    /// The same forgery as its partner of the same owner.
    Colluding,
}

/// A coordinator in this process, with the owners and devices of one run.
struct Bench {
    grid: Arc<Grid>,
    url: String,
    customer: Client,
    operator: Client,
    stop: CancellationToken,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    dir: tempfile::TempDir,
    workers: Vec<tokio::task::JoinHandle<anyhow::Result<idlegrid_worker::WorkerSummary>>>,
    workers_stop: CancellationToken,
    /// The honest devices' owners.
    honest_owners: Vec<i64>,
}

impl Bench {
    async fn start() -> anyhow::Result<Bench> {
        let dir = tempfile::tempdir()?;
        let mut config =
            crate::serve::config(&dir.path().join("grid"), &CoordinatorArgs::default());
        // A bench's devices cannot wait an hour to be trusted: trust is earned by results alone.
        config.trust_min_age = Duration::ZERO;
        let (grid, credentials) = Grid::open(config).await?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let stop = CancellationToken::new();
        let server = tokio::spawn(idlegrid_coordinator::serve(
            listener,
            grid.clone(),
            stop.clone(),
        ));
        Ok(Bench {
            customer: Client::new(&url, &credentials.api_key)?,
            operator: Client::new(&url, &credentials.operator_key)?,
            grid,
            url,
            stop,
            server,
            dir,
            workers: Vec::new(),
            workers_stop: CancellationToken::new(),
            honest_owners: Vec::new(),
        })
    }

    /// A new owner: its id and enrollment token.
    async fn owner(&self, name: &str) -> anyhow::Result<(i64, String)> {
        let created = self
            .operator
            .create_owner(&NewOwner {
                name: name.into(),
                customer: None,
            })
            .await?;
        Ok((created.id, created.enrollment_token))
    }

    /// An honest worker agent of its own owner, one slot.
    async fn honest(&mut self, name: &str) -> anyhow::Result<()> {
        let (owner, token) = self.owner(name).await?;
        self.honest_owners.push(owner);
        let config = idlegrid_worker::WorkerConfig {
            coordinator: self.url.clone(),
            enrollment_token: token,
            state_dir: self.dir.path().join("workers").join(name),
            name: name.to_string(),
            slots: 1,
            python: PathBuf::from("python3"),
            drain_timeout: Duration::from_secs(10),
            weak_sandbox: !cfg!(target_os = "linux"),
            controls: idlegrid_worker::controls::Controls::default(),
        };
        self.workers.push(tokio::spawn(idlegrid_worker::run(
            config,
            self.workers_stop.child_token(),
        )));
        Ok(())
    }

    /// Honest devices quarantined.
    async fn honest_quarantined(&self) -> anyhow::Result<usize> {
        let mut n = 0;
        for &owner in &self.honest_owners {
            n += self
                .grid
                .store
                .owner_devices(owner)
                .await?
                .iter()
                .filter(|d| d.reputation.quarantined_at_ms.is_some())
                .count();
        }
        Ok(n)
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.workers_stop.cancel();
        for worker in self.workers {
            let _ = worker.await;
        }
        self.stop.cancel();
        self.server.await??;
        Ok(())
    }
}

/// What the cheaters of a run sent.
#[derive(Default)]
struct Forged {
    shas: HashSet<String>,
    sent: u64,
}

/// A cheating device of `token`'s owner; returns whether it ended quarantined.
async fn cheat(
    url: String,
    token: String,
    name: String,
    strategy: Strategy,
    dir: PathBuf,
    forged: Arc<Mutex<Forged>>,
    stop: CancellationToken,
) -> anyhow::Result<bool> {
    let registered = Client::register(
        &url,
        &token,
        &RegisterWorker {
            name: name.clone(),
            capabilities: idlegrid_api::Capabilities {
                cores: 4,
                memory_mb: 8192,
                os: "linux".into(),
                arch: "x86_64".into(),
                python: Some("3.11".into()),
                ffmpeg: ffmpeg_version(),
                benchmark: 1000.0,
                slots: 2,
                ..Default::default()
            },
        },
    )
    .await?;
    let client = Client::new(&url, &registered.token)?;
    let dir = dir.join(&name);
    std::fs::create_dir_all(&dir)?;
    let mut bundles: BTreeMap<JobId, String> = BTreeMap::new();
    while !stop.is_cancelled() {
        let grant = match client
            .lease(&LeaseRequest {
                max_tasks: 2,
                wait_ms: 200,
            })
            .await
        {
            Ok(grant) => grant,
            Err(e) if e.code() == Some("worker_quarantined") => return Ok(true),
            Err(e) => return Err(e.into()),
        };
        for job in &grant.jobs {
            bundles.insert(job.job_id, job.bundle_sha256.clone());
        }
        for lease in grant.leases {
            let bytes =
                match forge(&client, &lease, bundles.get(&lease.job_id), strategy, &dir).await {
                    Ok(bytes) => bytes,
                    Err(_) => continue,
                };
            let sha = sha256_bytes(&bytes);
            {
                let mut forged = forged.lock().unwrap_or_else(|e| e.into_inner());
                forged.shas.insert(sha.clone());
                forged.sent += 1;
            }
            let path = dir.join("out");
            std::fs::write(&path, &bytes)?;
            let uploaded = client
                .upload_lease_output(lease.lease_id, &path, &sha)
                .await;
            if matches!(&uploaded, Err(e) if e.code() == Some("worker_quarantined")) {
                return Ok(true);
            }
            if let Err(e) = &uploaded {
                eprintln!("DEBUG upload failed: {e}");
            }
            let reported = client
                .report(&Report {
                    reports: vec![ReportItem {
                        lease_id: lease.lease_id,
                        task_id: lease.task_id,
                        outcome: ReportOutcome::Completed {
                            sha256: sha,
                            size: bytes.len() as u64,
                            inline_base64: None,
                        },
                        log: None,
                    }],
                })
                .await;
            if matches!(&reported, Err(e) if e.code() == Some("worker_quarantined")) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// The FFmpeg version this machine's workers report, so cheaters are compared with them.
fn ffmpeg_version() -> Option<String> {
    let out = Command::new("ffmpeg").arg("-version").output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(2)
        .map(str::to_string)
}

/// Runs `ffmpeg -nostdin -v error -y` with `args`.
fn ffmpeg(args: &[&str]) -> anyhow::Result<()> {
    super::ffmpeg(&[&["-nostdin", "-v", "error", "-y"], args].concat()).map(drop)
}

/// What a cheater returns for `lease`.
async fn forge(
    client: &Client,
    lease: &Lease,
    bundle: Option<&String>,
    strategy: Strategy,
    dir: &Path,
) -> anyhow::Result<Vec<u8>> {
    let params = &lease.task_params;
    let kind = params["kind"].as_str().unwrap_or("");
    let text = || -> Vec<u8> {
        match strategy {
            Strategy::Colluding => format!("forged {}:{}\n", lease.job_id, lease.chunk_index),
            _ => format!("forged by {strategy:?} {}\n", lease.lease_id),
        }
        .into_bytes()
    };
    if kind.is_empty() {
        return Ok(text());
    }
    let chunk = dir.join("chunk.mkv");
    client.download_lease_input(lease.lease_id, &chunk).await?;
    let out = dir.join(if kind == "audio" {
        "out.m4a"
    } else {
        "out.mkv"
    });
    let chunk_path = chunk.to_string_lossy().into_owned();
    let out_path = out.to_string_lossy().into_owned();
    if strategy == Strategy::Lazy {
        let mut cheap = params.clone();
        cheap["encoder"]["preset"] = "ultrafast".into();
        cheap["encoder"]["audio_bitrate"] = "64000".into();
        let bundle = bundle.context("no bundle for the job")?;
        return run_task_script(client, lease, bundle, &cheap, &chunk, dir).await;
    }
    if kind == "audio" {
        let source = match strategy {
            Strategy::Upscaled => "sine=frequency=1000:sample_rate=48000",
            _ => "anullsrc=r=48000:cl=stereo",
        };
        let seconds = params["duration"].as_f64().unwrap_or(1.0).to_string();
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            source,
            "-t",
            &seconds,
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-ac",
            "2",
            "-ar",
            "48000",
            "-fflags",
            "+bitexact",
            "-flags:a",
            "+bitexact",
            "-f",
            "mp4",
            &out_path,
        ])?;
        return Ok(std::fs::read(&out)?);
    }
    let (w, h) = (
        params["width"].as_u64().unwrap_or(2),
        params["height"].as_u64().unwrap_or(2),
    );
    let size = format!("scale={w}:{h}:flags=bicubic");
    let encode = |filter: &str, input: &str| {
        ffmpeg(&[
            "-i",
            input,
            "-map",
            "0:v:0",
            "-vf",
            filter,
            "-pix_fmt",
            "yuv420p",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-fps_mode",
            "passthrough",
            "-fflags",
            "+bitexact",
            "-flags:v",
            "+bitexact",
            "-f",
            "matroska",
            &out_path,
        ])
    };
    match strategy {
        Strategy::Solid | Strategy::Colluding => encode(
            &format!("drawbox=x=0:y=0:w=iw:h=ih:color=gray:t=fill,{size}"),
            &chunk_path,
        )?,
        Strategy::Copied => encode(&format!("shuffleframes=0 0,{size}"), &chunk_path)?,
        Strategy::Upscaled => {
            let small = dir.join("small.mkv").to_string_lossy().into_owned();
            ffmpeg(&[
                "-i",
                &chunk_path,
                "-vf",
                "scale=96:54",
                "-c:v",
                "libx264",
                "-crf",
                "45",
                "-fps_mode",
                "passthrough",
                &small,
            ])?;
            encode(&size, &small)?;
        }
        Strategy::Lazy => unreachable!("the lazy device runs the task script"),
    }
    Ok(std::fs::read(&out)?)
}

/// Runs the job's own task script on `chunk` with `params`, as a worker would, and returns its
/// output.
async fn run_task_script(
    client: &Client,
    lease: &Lease,
    bundle: &str,
    params: &serde_json::Value,
    chunk: &Path,
    dir: &Path,
) -> anyhow::Result<Vec<u8>> {
    let bundle = client.bundle(bundle, lease.lease_id).await?;
    let work = dir.join("task");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(work.join("input"))?;
    std::fs::create_dir_all(work.join("output"))?;
    std::fs::copy(chunk, work.join("input").join("chunk.mkv"))?;
    for (name, text) in &bundle.files {
        std::fs::write(work.join(name), text)?;
    }
    let out = Command::new("python3")
        .arg(&bundle.manifest.entrypoint)
        .current_dir(&work)
        .env("IDLEGRID_TASK", params.to_string())
        .output()
        .context("cannot run python3")?;
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let output = std::fs::read_dir(work.join("output"))?
        .next()
        .context("the task script wrote nothing")??
        .path();
    Ok(std::fs::read(output)?)
}

/// The benchmark's jobs' preferences: cheaters' rejected results must not fail a job.
fn retried() -> Preferences {
    Preferences {
        max_attempts: 10,
        ..Preferences::default()
    }
}

/// A python-map job of `lines` one-line chunks: each line's number, squared.
async fn map_job(customer: &Client, lines: usize) -> anyhow::Result<Job> {
    let job = customer
        .create_job(&CreateJob {
            script: Some(
                "import os\n(chunk,) = os.listdir('input')\n\
                 with open(os.path.join('input', chunk)) as f, open('output/out.txt', 'w') as out:\n\
                 \x20   for line in f:\n\
                 \x20       out.write(str(int(line) ** 2) + '\\n')\n"
                    .into(),
            ),
            chunk_lines: Some(1),
            preferences: retried(),
            ..CreateJob::new("python-map")
        })
        .await?;
    let input: String = (0..lines).map(|i| format!("{i}\n")).collect();
    customer.upload_input_bytes(job.id, input.into()).await?;
    Ok(customer.run_job(job.id).await?)
}

/// A video job of `clip`, 1 s chunks, default settings.
async fn video_job(customer: &Client, clip: &Path) -> anyhow::Result<Job> {
    let job = customer
        .create_job(&CreateJob {
            chunk_seconds: Some(1.0),
            preferences: retried(),
            ..CreateJob::new("video-transcode")
        })
        .await?;
    customer.upload_input_file(job.id, clip).await?;
    Ok(customer.run_job(job.id).await?)
}

/// Waits for `jobs` to end (at most `limit`); returns their final views.
async fn finish(customer: &Client, jobs: &[JobId], limit: Duration) -> anyhow::Result<Vec<Job>> {
    let deadline = Instant::now() + limit;
    let mut done = Vec::new();
    for &job in jobs {
        loop {
            let view = customer.job(job).await?;
            if view.state.is_terminal() || Instant::now() > deadline {
                done.push(view);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(done)
}

/// Chunks of `jobs` whose accepted result is one of `forged`.
async fn forged_in_outputs(grid: &Grid, jobs: &[Job], forged: &Forged) -> anyhow::Result<u64> {
    let mut found = 0;
    for job in jobs {
        let tasks = grid.store.job_tasks(job.id, 0, u32::MAX).await?;
        let ids: Vec<_> = tasks.iter().map(|t| t.id).collect();
        for state in grid.store.replica_states(&ids).await? {
            if state
                .accepted
                .as_ref()
                .is_some_and(|a| forged.shas.contains(&a.sha256))
            {
                found += 1;
            }
        }
    }
    Ok(found)
}

/// Results beyond one per chunk, over the chunks, of the jobs `of` keeps.
fn extra(jobs: &[Job], of: impl Fn(&Job) -> bool) -> f64 {
    let (results, chunks) = jobs.iter().filter(|j| of(j)).fold((0, 0), |(r, c), j| {
        (r + j.chunks.results, c + j.chunks.done)
    });
    if chunks == 0 {
        0.0
    } else {
        results.saturating_sub(chunks) as f64 / chunks as f64
    }
}

/// Runs jobs on a bench grid with `honest` honest devices and `cheaters`, measuring.
async fn run(
    args: &TrustArgs,
    honest: usize,
    cheaters: &[(&str, &[Strategy])],
    warm_up: usize,
    clip: &Path,
    say: &impl Fn(&str),
) -> anyhow::Result<RunFigures> {
    let mut bench = Bench::start().await?;
    let started = Instant::now();
    let cpu_before = (
        super::children_cpu(),
        super::media_cpu(&bench.customer).await?,
    );
    for i in 0..honest {
        bench.honest(&format!("honest-{i}")).await?;
    }
    if warm_up > 0 {
        say(&format!("earning trust: {warm_up} results per device"));
        let jobs: Vec<JobId> =
            futures::future::try_join_all((0..honest).map(|_| map_job(&bench.customer, warm_up)))
                .await?
                .iter()
                .map(|j| j.id)
                .collect();
        finish(&bench.customer, &jobs, Duration::from_secs(1800)).await?;
    }
    let forged = Arc::new(Mutex::new(Forged::default()));
    let cheat_stop = CancellationToken::new();
    let mut cheating = Vec::new();
    let mut devices = honest;
    for (owner, strategies) in cheaters {
        let (_, token) = bench.owner(owner).await?;
        for (i, strategy) in strategies.iter().enumerate() {
            devices += 1;
            cheating.push(tokio::spawn(cheat(
                bench.url.clone(),
                token.clone(),
                format!("{owner}-{i}"),
                *strategy,
                bench.dir.path().join("cheaters"),
                forged.clone(),
                cheat_stop.clone(),
            )));
        }
    }
    say("running video and python-map jobs");
    let mut jobs = Vec::new();
    for _ in 0..args.jobs {
        jobs.push(video_job(&bench.customer, clip).await?.id);
        jobs.push(map_job(&bench.customer, args.lines).await?.id);
    }
    let finished = finish(&bench.customer, &jobs, Duration::from_secs(1800)).await?;
    for job in &finished {
        if job.state != JobState::Completed {
            eprintln!(
                "DEBUG job {} {} {:?} {:?}",
                job.id, job.app, job.state, job.error
            );
        }
    }
    cheat_stop.cancel();
    let mut quarantined = 0;
    for c in cheating {
        if c.await?.unwrap_or(false) {
            quarantined += 1;
        }
    }
    let forged = std::mem::take(&mut *forged.lock().unwrap_or_else(|e| e.into_inner()));
    let mut figures = RunFigures {
        devices,
        cheaters: devices - honest,
        owners: honest + cheaters.len(),
        jobs: finished.len(),
        completed: finished
            .iter()
            .filter(|j| j.state == JobState::Completed)
            .count(),
        chunks: finished.iter().map(|j| j.chunks.done).sum(),
        forged_sent: forged.sent,
        forged_in_outputs: forged_in_outputs(&bench.grid, &finished, &forged).await?,
        cheaters_quarantined: quarantined,
        honest_quarantined: 0,
        extra_work: extra(&finished, |_| true),
        extra_work_video: extra(&finished, |j| j.app == "video-transcode"),
        extra_work_map: extra(&finished, |j| j.app == "python-map"),
        ..RunFigures::default()
    };
    let after = super::media_cpu(&bench.customer).await?;
    figures.honest_quarantined = bench.honest_quarantined().await?;
    let spent = |stage: &str| {
        after
            .get(stage)
            .copied()
            .unwrap_or_default()
            .saturating_sub(cpu_before.1.get(stage).copied().unwrap_or_default())
    };
    bench.stop().await?;
    let coordinator: Duration = ["partition", "validate", "assemble"]
        .iter()
        .map(|s| spent(s))
        .sum();
    figures.validation_cpu_secs = spent("validate").as_secs_f64();
    figures.device_cpu_secs = super::children_cpu()
        .saturating_sub(cpu_before.0)
        .saturating_sub(coordinator)
        .as_secs_f64();
    figures.wall_secs = started.elapsed().as_secs_f64();
    Ok(figures)
}

pub async fn trust(args: TrustArgs) -> anyhow::Result<ExitCode> {
    let dir = tempfile::tempdir()?;
    let clip = dir.path().join("clip.mp4");
    super::test_clip(
        &clip,
        "size=320x240:rate=25",
        ":sample_rate=48000",
        args.seconds,
        &["-g", "25"],
    )?;
    let say = |what: &str| {
        if !args.json {
            eprintln!("{what}");
        }
    };
    say(&format!(
        "under attack: {} honest devices, 6 cheaters of 5 owners",
        args.honest
    ));
    let attacked = run(
        &args,
        args.honest,
        &[
            ("solid", &[Strategy::Solid]),
            ("upscaled", &[Strategy::Upscaled]),
            ("copied", &[Strategy::Copied]),
            ("lazy", &[Strategy::Lazy]),
            ("colluders", &[Strategy::Colluding, Strategy::Colluding]),
        ],
        0,
        &clip,
        &say,
    )
    .await?;
    say(&format!(
        "mostly honest: {} honest devices, 1 lazy one",
        args.majority
    ));
    let mostly_honest = run(
        &args,
        args.majority,
        &[("lazy", &[Strategy::Lazy])],
        args.warm_up,
        &clip,
        &say,
    )
    .await?;
    let figures = TrustFigures {
        attacked,
        mostly_honest,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&figures)?);
    } else {
        for (name, f) in [
            ("under attack", &figures.attacked),
            ("mostly honest", &figures.mostly_honest),
        ] {
            println!(
                "{name}: {} devices of {} owners, {} cheating; {} of {} jobs completed, {} chunks",
                f.devices, f.owners, f.cheaters, f.completed, f.jobs, f.chunks
            );
            println!(
                "  forged results sent {}, forged chunks in outputs {} (goal 0); cheaters quarantined {}, honest devices quarantined {} (goal 0)",
                f.forged_sent, f.forged_in_outputs, f.cheaters_quarantined, f.honest_quarantined
            );
            println!(
                "  extra device work for verification {:.1}% (video {:.1}%, python-map {:.1}%)",
                f.extra_work * 100.0,
                f.extra_work_video * 100.0,
                f.extra_work_map * 100.0
            );
            println!(
                "  CPU: coordinator validation {:.2} s, devices {:.2} s; wall {:.1} s",
                f.validation_cpu_secs, f.device_cpu_secs, f.wall_secs
            );
        }
    }
    let held = |f: &RunFigures| {
        f.forged_in_outputs == 0 && f.completed == f.jobs && f.honest_quarantined == 0
    };
    Ok(if held(&figures.attacked) && held(&figures.mostly_honest) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
