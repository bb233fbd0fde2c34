//! The customer's commands: `run` (a python-map job from start to downloaded output),
//! `transcode` (the same for a video), `jobs`, `job`, `cancel`, `balance` and `deposit`.

use crate::cli::{
    BalanceArgs, CoordinatorArgs, DepositArgs, JobArgs, JobsArgs, LogsArgs, RunArgs, RunAsArgs,
    ScriptJobArgs, SubmitArgs, TranscodeArgs,
};
use crate::local::LocalGrid;
use crate::{output, shutdown, target};
use anyhow::Context;
use futures::StreamExt;
use idlegrid_api::jobs::{CreateJob, Deposit, EstimateRequest, Job, Preferences, WebhookSpec};
use idlegrid_api::{JobId, JobState, Replication, ReplicationMode};
use idlegrid_client::Client;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let script = std::fs::read_to_string(&args.script)
        .with_context(|| format!("cannot read the script {}", args.script.display()))?;
    let request = CreateJob {
        script: Some(script),
        chunk_lines: Some(args.chunk_lines),
        ..script_job("python-map", &args.script_job, &args.submit)?
    };
    let submission = Submission {
        request,
        input: &args.input,
        output: &args.output,
        how: &args.submit,
        app: None,
        shown: None,
        logs: None,
    };
    submission.submit().await
}

/// A job of `app` running its task script per chunk, as `args` and `submit` ask (its input,
/// script and chunk size still to give).
pub(crate) fn script_job(
    app: &str,
    args: &ScriptJobArgs,
    submit: &SubmitArgs,
) -> anyhow::Result<CreateJob> {
    let params: serde_json::Value = serde_json::from_str(&args.params)
        .context("--params must be a JSON object, e.g. '{\"factor\": 2}'")?;
    Ok(CreateJob {
        params,
        preferences: submit.run_as.preferences(Preferences {
            max_attempts: args.max_attempts,
            task_timeout_secs: args.task_timeout,
            ..Preferences::default()
        }),
        webhook: submit.run_as.webhook(),
        ..CreateJob::new(app)
    })
}

pub async fn transcode(args: TranscodeArgs) -> anyhow::Result<ExitCode> {
    let mut params = serde_json::Map::new();
    let mut set = |name: &str, value: Option<serde_json::Value>| {
        if let Some(value) = value {
            params.insert(name.to_string(), value);
        }
    };
    set("preset", args.preset.map(Into::into));
    set("resolution", args.resolution.map(Into::into));
    set("aspect", args.aspect.map(Into::into));
    set("fit", args.fit.map(Into::into));
    set("crf", args.crf.map(Into::into));
    set("target_quality", args.target_quality.map(Into::into));
    set("bitrate", args.bitrate.map(Into::into));
    set("x264_preset", args.x264_preset.map(Into::into));
    set("video_codec", args.codec.map(Into::into));
    set("speed", args.speed.map(Into::into));
    // The container: as asked, else the output file's kind when it names one.
    let container = args.container.or_else(|| {
        let extension = args
            .output
            .as_ref()?
            .extension()?
            .to_str()?
            .to_ascii_lowercase();
        ["mp4", "mov", "mkv", "webm"]
            .contains(&extension.as_str())
            .then_some(extension)
    });
    set("container", container.map(Into::into));
    set("audio_codec", args.audio_codec.map(Into::into));
    set(
        "audio_tracks",
        args.audio_tracks.map(|tracks| match tracks.as_str() {
            "all" | "first" => tracks.into(),
            languages => languages
                .split(',')
                .map(|l| serde_json::Value::from(l.trim()))
                .collect(),
        }),
    );
    set("subtitles", args.no_subtitles.then_some(false.into()));
    set("audio_bitrate", args.audio_bitrate.map(Into::into));
    set("loudness", args.loudness.map(Into::into));
    set("fps", args.fps.map(Into::into));
    set("hls", args.hls.as_ref().map(|_| true.into()));
    set(
        "thumbnails",
        args.thumbnails.map(|every| {
            let mut t = serde_json::json!({ "every": every });
            if let Some(width) = args.thumbnail_width {
                t["width"] = width.into();
            }
            t
        }),
    );
    set("poster", args.poster.map(Into::into));
    if let Some(path) = &args.watermark {
        use base64::Engine;
        let image = std::fs::read(path)
            .with_context(|| format!("cannot read the watermark {}", path.display()))?;
        let mut watermark = serde_json::json!({
            "image": base64::engine::general_purpose::STANDARD.encode(image),
        });
        if let Some(position) = &args.watermark_position {
            watermark["position"] = position.as_str().into();
        }
        if let Some(width) = args.watermark_width {
            watermark["width"] = width.into();
        }
        if let Some(opacity) = args.watermark_opacity {
            watermark["opacity"] = opacity.into();
        }
        params.insert("watermark".into(), watermark);
    }
    let stills = args.thumbnails.is_some() || args.poster.is_some();
    // HLS, and a video with stills, arrive as a tar archive, unpacked where they belong.
    let scratch = tempfile::tempdir().context("cannot create a scratch directory")?;
    let output = match (&args.output, &args.hls) {
        (Some(path), _) if !stills => path.clone(),
        _ => scratch.path().join("output.tar"),
    };
    let request = CreateJob {
        params: serde_json::Value::Object(params),
        chunk_seconds: args.chunk_seconds,
        preferences: args.submit.run_as.preferences(Preferences::default()),
        webhook: args.submit.run_as.webhook(),
        ..CreateJob::new("video-transcode")
    };
    let submission = Submission {
        request,
        input: &args.input,
        output: &output,
        how: &args.submit,
        app: None,
        // An archive is downloaded to scratch and unpacked where it was asked.
        shown: args.hls.as_deref().or(args.output.as_deref()),
        logs: None,
    };
    let code = submission.submit().await?;
    if code != ExitCode::SUCCESS {
        return Ok(code);
    }
    let unpack = |dir: &Path| -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let archive = std::fs::File::open(&output).context("opening the output archive")?;
        tar::Archive::new(archive)
            .unpack(dir)
            .with_context(|| format!("unpacking the output into {}", dir.display()))
    };
    if let Some(dir) = &args.hls {
        unpack(dir)?;
        if !args.submit.json {
            println!("HLS written to {}", dir.join("master.m3u8").display());
        }
    } else if let (Some(path), true) = (&args.output, stills) {
        // The video where it was asked; its stills in a folder named after it.
        let folder = if path.extension().is_some() {
            path.with_extension("")
        } else {
            path.with_extension("stills")
        };
        unpack(&folder)?;
        let video = std::fs::read_dir(&folder)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.file_stem().is_some_and(|s| s == "video") && p.is_file())
            .context("the output archive holds no video")?;
        std::fs::rename(&video, path)
            .with_context(|| format!("moving the video to {}", path.display()))?;
        if !args.submit.json {
            println!("stills written to {}", folder.display());
        }
    }
    Ok(code)
}

impl RunAsArgs {
    /// The webhook asked for.
    pub(crate) fn webhook(&self) -> Option<WebhookSpec> {
        self.webhook.clone().map(|url| WebhookSpec { url })
    }

    /// `base` with the replication, placement and deadline asked for. Without a replication
    /// flag the coordinator's default applies.
    pub(crate) fn preferences(&self, base: Preferences) -> Preferences {
        let chosen = self.replicas.is_some() || self.adaptive || self.unverified;
        let replication = if chosen || self.quorum.is_some() {
            let mut replication = base.replication.unwrap_or(Replication::NONE);
            if let Some(n) = self.replicas {
                replication.mode = ReplicationMode::Fixed;
                replication.replicas = n;
                replication.max_replicas = replication.max_replicas.max(n);
            }
            if self.adaptive || (!chosen && !replication.is_replicated()) {
                replication.mode = ReplicationMode::Adaptive;
            }
            if self.unverified {
                replication.mode = ReplicationMode::None;
            }
            if let Some(q) = self.quorum {
                replication.quorum = q;
            }
            Some(replication)
        } else {
            base.replication
        };
        Preferences {
            replication,
            placement: self.placement.or(base.placement),
            deadline_secs: self.deadline.or(base.deadline_secs),
            tier: self.tier,
            max_price: self.max_price,
            ..base
        }
    }
}

/// A job to create, feed, follow and collect.
pub(crate) struct Submission<'a> {
    pub request: CreateJob,
    pub input: &'a Path,
    pub output: &'a Path,
    pub how: &'a SubmitArgs,
    /// An app to publish to a throw-away local grid and run there (`app test`), whatever
    /// coordinator is configured.
    pub app: Option<idlegrid_api::Bundle>,
    /// Where the output ends up, when `output` is only where it is downloaded to (an archive
    /// unpacked afterwards): named in the summary instead.
    pub shown: Option<&'a Path>,
    /// Print the job's logs at this level or above on stderr once it ended (`app test`).
    pub logs: Option<idlegrid_api::jobs::LogLevel>,
}

impl Submission<'_> {
    /// Runs the job on the configured coordinator, or on a throw-away local grid.
    pub async fn submit(mut self) -> anyhow::Result<ExitCode> {
        self.request.name = self.how.name.clone().or_else(|| {
            self.input
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        });
        std::fs::metadata(self.input)
            .with_context(|| format!("cannot read the input {}", self.input.display()))?;
        if !self.how.run_as.estimate {
            check_output_path(self.output)?;
        }
        let interrupt = shutdown::on_signal();
        let configured = match self.app {
            Some(_) => None,
            None => target::configured(&self.how.target).await?,
        };
        let (client, local) = match configured {
            Some(client) => (client, None),
            None => {
                let dir =
                    tempfile::tempdir().context("cannot create a directory for the local grid")?;
                // A replicated chunk needs as many different devices as it has replicas.
                let needed = match self.request.preferences.replication {
                    Some(r) if r.is_replicated() => r.replicas as usize,
                    _ => 1,
                };
                let workers = self.how.local_workers.unwrap_or_else(|| {
                    std::thread::available_parallelism()
                        .map_or(1, |n| n.get())
                        .max(needed)
                });
                if workers < needed {
                    anyhow::bail!(
                        "each chunk must run on {needed} different devices, but the local grid \
                         would have {workers} workers: raise --local-workers to {needed}"
                    );
                }
                let grid =
                    LocalGrid::start(dir.path(), 0, workers, &CoordinatorArgs::default()).await?;
                if !self.how.json {
                    eprintln!(
                        "no coordinator configured: started a throw-away local grid with {workers} workers"
                    );
                }
                let client = Client::new(&grid.url, &grid.credentials.api_key)?;
                (client, Some((grid, dir)))
            }
        };
        let outcome = match &self.app {
            Some(bundle) => match client.publish_app(bundle).await {
                Ok(_) => self.run_job(&client, &interrupt, local.is_some()).await,
                Err(e) => Err(anyhow::Error::new(e).context("the app was refused")),
            },
            None => self.run_job(&client, &interrupt, local.is_some()).await,
        };
        if let Some((grid, _dir)) = local {
            grid.stop().await?;
        }
        outcome
    }

    async fn run_job(
        &self,
        client: &Client,
        interrupt: &CancellationToken,
        throw_away: bool,
    ) -> anyhow::Result<ExitCode> {
        let started = Instant::now();
        let job = client.create_job(&self.request).await?;
        if let Some(webhook) = &job.webhook
            && let Some(secret) = &webhook.secret
        {
            // Shown this once only; on stderr so that --json output stays one document.
            eprintln!(
                "job {}: state changes go to {}, signed with {} (keep it: it is not shown again)",
                job.id,
                output::shown(&webhook.url),
                output::shown(secret)
            );
        }
        let bar = progress_bar(self.how.json);
        bar.set_message(format!(
            "job {}: uploading {}",
            job.id,
            self.input.display()
        ));
        client.upload_input_file(job.id, self.input).await?;
        let estimate = client.estimate(&EstimateRequest::for_job(job.id)).await?;
        if self.how.run_as.estimate {
            bar.finish_and_clear();
            // An estimate leaves no job behind.
            client.delete_job(job.id).await?;
            if self.how.json {
                println!("{}", output::json(&estimate)?);
            } else {
                print!("{}", output::estimate_table(&estimate));
            }
            return Ok(ExitCode::SUCCESS);
        }
        if !self.how.json {
            bar.println(output::quote_line(&estimate));
        }
        client.run_job(job.id).await?;
        let finished = tokio::select! {
            job = follow(client, job.id, &bar) => job?,
            _ = interrupt.cancelled() => {
                bar.abandon();
                if throw_away {
                    eprintln!("interrupted: stopping the local grid; job {} is abandoned", job.id);
                } else {
                    eprintln!("interrupted: job {} keeps running; see `idlegrid job {}`", job.id, job.id);
                }
                return Ok(ExitCode::from(130));
            }
        };
        bar.finish_and_clear();
        if let Some(level) = self.logs {
            match client.all_job_logs(finished.id, level).await {
                Ok(logs) => eprint!("{}", output::logs(&logs)),
                Err(e) => eprintln!("the job's logs could not be read: {e}"),
            }
        }
        if finished.state != JobState::Completed {
            if self.how.json {
                println!("{}", output::json(&finished)?);
            }
            eprintln!(
                "job {} {}: {}",
                finished.id,
                finished.state,
                output::shown(finished.error.as_deref().unwrap_or("no reason given"))
            );
            return Ok(ExitCode::FAILURE);
        }
        let sha = finished
            .output
            .as_ref()
            .map(|o| o.sha256.clone())
            .context("the coordinator reported no output for a completed job")?;
        let bytes = client
            .download_output(finished.id, self.output, &sha)
            .await
            .with_context(|| format!("downloading the output to {}", self.output.display()))?;
        if self.how.json {
            println!("{}", output::json(&finished)?);
        } else {
            println!(
                "job {} completed: {}{}, {} retried, {} written to {} in {:.1} s",
                finished.id,
                output::counted(
                    finished.chunks.done.saturating_sub(finished.chunks.steps),
                    "chunk",
                    "chunks"
                ),
                match finished.chunks.steps {
                    0 => String::new(),
                    n => format!(" and {}", output::counted(n, "step", "steps")),
                },
                output::counted(
                    finished.chunks.failed_attempts,
                    "failed attempt",
                    "failed attempts"
                ),
                output::counted(bytes, "byte", "bytes"),
                self.shown.unwrap_or(self.output).display(),
                started.elapsed().as_secs_f64()
            );
            if output::replicated(&finished) {
                println!("{}", output::replication_summary(&finished));
            }
            if let Some(cost) = &finished.cost {
                println!("{}", output::cost_line(cost));
            }
            if let Some(facts) = &finished.facts {
                print!("{}", output::facts_summary(facts));
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Fails before anything is uploaded or run when the output could not be written: a
/// directory, or a file in a directory that is missing or not writable.
fn check_output_path(output: &Path) -> anyhow::Result<()> {
    if output.is_dir() {
        anyhow::bail!(
            "the output {} is a directory: name a file to write",
            output.display()
        );
    }
    let parent = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        anyhow::bail!(
            "the output's directory {} does not exist: create it first",
            parent.display()
        );
    }
    tempfile::NamedTempFile::new_in(parent).with_context(|| {
        format!(
            "cannot write the output in {}: choose a directory you can write to",
            parent.display()
        )
    })?;
    Ok(())
}

fn progress_bar(hidden: bool) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {percent:>3}%  ETA {eta}  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Follows a job's events until it ends, updating the bar; reconnects if the stream breaks
/// (the coordinator restarted).
async fn follow(client: &Client, id: JobId, bar: &ProgressBar) -> anyhow::Result<Job> {
    let started = Instant::now();
    let mut failures = 0;
    loop {
        let mut events = Box::pin(client.job_events(id).await?);
        while let Some(event) = events.next().await {
            match event {
                Ok(job) => {
                    failures = 0;
                    // The bar counts thousandths of chunks so running chunks' progress shows.
                    let total = job.chunks.total.unwrap_or(job.chunks.created);
                    bar.set_length(total * 1000);
                    bar.set_position(
                        ((job.chunks.done as f64 + job.chunks.running_progress) * 1000.0) as u64,
                    );
                    let mut message = format!(
                        "job {} {}: {}/{total} chunks done, {} running, {} retried",
                        job.id,
                        job.state,
                        job.chunks.done,
                        job.chunks.running,
                        job.chunks.failed_attempts
                    );
                    // Video jobs: frames encoded per second, from the share of chunks done.
                    if let Some(frames) = job.facts.as_ref().and_then(|f| f["frames"].as_u64())
                        && total > 0
                    {
                        let done = (job.chunks.done as f64 + job.chunks.running_progress)
                            / total as f64
                            * frames as f64;
                        let rate = done / started.elapsed().as_secs_f64().max(0.001);
                        message.push_str(&format!(", {rate:.0} frames/s"));
                    }
                    bar.set_message(message);
                    if job.state.is_terminal() {
                        return Ok(job);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "event stream broke");
                    break;
                }
            }
        }
        failures += 1;
        if failures > 120 {
            anyhow::bail!("lost contact with the coordinator while following job {id}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        // The stream may have ended because the job finished between two events.
        if let Ok(job) = client.job(id).await
            && job.state.is_terminal()
        {
            return Ok(job);
        }
    }
}

pub async fn jobs(args: JobsArgs) -> anyhow::Result<ExitCode> {
    let client = target::required(&args.target).await?;
    let list = client.list_jobs(None, args.limit).await?;
    if args.json {
        println!("{}", output::json(&list)?);
    } else if list.jobs.is_empty() {
        println!("no jobs yet");
    } else {
        print!("{}", output::job_table(&list.jobs));
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn job(args: JobArgs) -> anyhow::Result<ExitCode> {
    let client = target::required(&args.target).await?;
    let job = client.job(JobId(args.id)).await?;
    print_job(&job, args.json)?;
    if !args.json && job.chunks.checking > 0 {
        let chunks = client.job_chunks(job.id, 0, 5000).await?;
        print!("{}", output::checking_chunks(&chunks.tasks, 10));
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn logs(args: LogsArgs) -> anyhow::Result<ExitCode> {
    let client = target::required(&args.target).await?;
    let logs = client
        .all_job_logs(JobId(args.id), args.level.level())
        .await?;
    if args.json {
        println!("{}", output::json(&logs)?);
    } else {
        print!("{}", output::logs(&logs));
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn cancel(args: JobArgs) -> anyhow::Result<ExitCode> {
    let client = target::required(&args.target).await?;
    let job = client.cancel_job(JobId(args.id)).await?;
    print_job(&job, args.json)?;
    Ok(ExitCode::SUCCESS)
}

fn print_job(job: &Job, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", output::json(job)?);
    } else {
        print!("{}", output::job_details(job));
    }
    Ok(())
}

pub async fn balance(args: BalanceArgs) -> anyhow::Result<ExitCode> {
    let client = target::required(&args.target).await?;
    let balance = client.balance().await?;
    if args.json {
        println!("{}", output::json(&balance)?);
    } else {
        print!("{}", output::balance_details(&balance));
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn deposit(args: DepositArgs) -> anyhow::Result<ExitCode> {
    let client = target::account(&args.target, target::Role::Operator).await?;
    let receipt = client
        .deposit(
            idlegrid_api::TenantId(args.customer),
            &Deposit {
                amount: args.amount,
                reference: args.reference.clone(),
            },
        )
        .await?;
    if args.target.json {
        println!("{}", output::json(&receipt)?);
    } else if receipt.posted {
        println!(
            "deposited {} credits for customer {}: their balance is {} credits",
            args.amount, args.customer, receipt.balance
        );
    } else {
        println!(
            "reference {:?} was used before: nothing posted; customer {}'s balance is {} credits",
            args.reference, args.customer, receipt.balance
        );
    }
    Ok(ExitCode::SUCCESS)
}
