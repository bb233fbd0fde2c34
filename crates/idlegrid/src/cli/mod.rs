//! Every command-line argument, in one place that depends on no command: each command
//! module takes its own arguments from here, and `main` dispatches. Arguments of the
//! measuring commands are in [`bench`], those of the device owner's worker commands in
//! [`worker`].

pub mod accounts;
pub mod bench;
pub mod worker;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// idlegrid: compute jobs split into chunks and run on many ordinary devices.
#[derive(Debug, Parser)]
#[command(name = "idlegrid", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a coordinator (Jobs API, Tasks API and the background stages).
    Serve(ServeArgs),
    /// Run a worker agent that lends this device to a coordinator.
    Worker(WorkerArgs),
    /// Run a coordinator and N workers on this machine; other commands find it by themselves.
    Local(LocalArgs),
    /// Run a Python script over every chunk of lines of a file (the python-map app).
    Run(RunArgs),
    /// Transcode a video to H.264 + AAC (MP4), split across the grid, frame-exact and verified.
    Transcode(Box<TranscodeArgs>),
    /// Apps: publish your own (push), list them, see their versions, run one, or try one out
    /// on a throw-away local grid (test).
    #[command(subcommand)]
    App(AppCommand),
    /// List your jobs.
    Jobs(JobsArgs),
    /// Show one job.
    Job(JobArgs),
    /// A job's logs: what each task's script wrote to stderr on its device, and what the
    /// grid's steps said of the job.
    Logs(LogsArgs),
    /// Cancel a job.
    Cancel(JobArgs),
    /// Your balance (customers), earnings (device owners) or fees (operators), with recent
    /// entries; with a customer key, jobs' holds too.
    Balance(BalanceArgs),
    /// Credit a customer's balance with a payment (needs an operator key: --key, or the local
    /// grid's).
    Deposit(DepositArgs),
    /// Your account's keys and sessions: list, create, revoke, rotate (any account's secret in
    /// --key; default: the local grid's customer key).
    Keys(accounts::KeysArgs),
    /// Your devices: list, rename, pause, resume, remove (a device owner's enrollment token in
    /// --key).
    Devices(accounts::DevicesArgs),
    /// Your earnings as a device owner, entry by entry (enrollment token in --key).
    Earnings(accounts::EarningsArgs),
    /// Ask for your earnings to be paid out (enrollment token in --key).
    Payout(accounts::PayoutArgs),
    /// Operators: customers, owners, devices, jobs and payouts (operator key in --key).
    Admin(accounts::AdminArgs),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Simulate a grid of 10,000 devices in virtual time, driving the real scheduling policy.
    Sim(bench::SimArgs),
}

impl Command {
    /// Log level when RUST_LOG is not set: servers log their work, client commands only
    /// problems (their output is for people and scripts).
    pub fn default_log_level(&self) -> &'static str {
        match self {
            Command::Serve(_) | Command::Worker(_) => "info",
            Command::Local(_) => "info,idlegrid_worker=warn",
            _ => "warn",
        }
    }
}

/// Coordinator settings shared by `serve` and `local`.
#[derive(Debug, Clone, Args)]
pub struct CoordinatorArgs {
    /// Seconds a lease lasts without a heartbeat.
    #[arg(long, default_value_t = 30, env = "IDLEGRID_LEASE_SECS", value_parser = clap::value_parser!(u64).range(2..=3600))]
    pub lease_secs: u64,
    /// Largest job input accepted, in bytes.
    #[arg(long, default_value_t = 10 * 1024 * 1024 * 1024, env = "IDLEGRID_MAX_UPLOAD_BYTES")]
    pub max_upload_bytes: u64,
    /// Seconds the parts of an input upload are kept without a new part arriving; then the
    /// upload counts as abandoned and its parts are deleted.
    #[arg(long, default_value_t = 24 * 3600, env = "IDLEGRID_ABANDONED_UPLOAD_SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub abandoned_upload_secs: u64,
    /// Requests per second one customer key — and one account over all its keys and sessions
    /// — may make (bursts of twice that); 0 for no limit. A customer's quota replaces it.
    #[arg(long, default_value_t = 100, env = "IDLEGRID_CUSTOMER_RPS")]
    pub customer_rps: u32,
    /// Requests per second one worker may make (bursts of twice that); 0 for no limit.
    #[arg(long, default_value_t = 2000, env = "IDLEGRID_WORKER_RPS")]
    pub worker_rps: u32,
    /// With a shared queue server: seconds between sweeps for work a dead coordinator took with
    /// it (work unmoved over two sweeps is queued again).
    #[arg(long, default_value_t = 30, env = "IDLEGRID_SWEEP_SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub sweep_secs: u64,
    /// Let customers' inputs come from (and outputs and webhooks go to) private or local
    /// addresses, over plain HTTP too (default: only public https:// ones).
    #[arg(long, env = "IDLEGRID_ALLOW_PRIVATE_SOURCES")]
    pub allow_private_sources: bool,
    /// Seconds a device must have been registered before adaptive replication trusts it,
    /// however many valid results it has.
    #[arg(long, default_value_t = 3600, env = "IDLEGRID_TRUST_MIN_AGE_SECS")]
    pub trust_min_age_secs: u64,
    /// Seconds the earnings of results accepted without another owner's agreement are held
    /// before they are the device owner's (an owner caught forging meanwhile forfeits them).
    #[arg(long, default_value_t = 24 * 3600, env = "IDLEGRID_EARNINGS_HOLD_SECS")]
    pub earnings_hold_secs: u64,
    /// Key sealing customers' secrets (32 bytes, base64: `head -c32 /dev/urandom | base64`);
    /// coordinators sharing records must share it (default: embedded coordinators keep one
    /// in the data directory).
    #[arg(
        long,
        env = "IDLEGRID_SECRETS_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub secrets_key: Option<String>,
    /// Records database, e.g. postgres://user@host/db (default: SQLite in the data directory).
    #[arg(long, env = "IDLEGRID_STORE", value_name = "URL")]
    pub store: Option<String>,
    /// Queue server, e.g. redis://host:6379 (default: in-process).
    #[arg(long, env = "IDLEGRID_QUEUE", value_name = "URL")]
    pub queue: Option<String>,
    /// Blob store, e.g. s3://bucket/prefix?endpoint=http://127.0.0.1:9000 (default: files in
    /// the data directory).
    #[arg(long, env = "IDLEGRID_BLOBS", value_name = "URL")]
    pub blobs: Option<String>,
    /// Directory of the browser worker's runtimes (Pyodide, ffmpeg.wasm), made by
    /// `scripts/browser-runtimes.sh` (default: `browser-runtimes` beside the directory holding
    /// this binary, e.g. target/browser-runtimes, when it exists).
    #[arg(long, env = "IDLEGRID_BROWSER_RUNTIMES", value_name = "DIR")]
    pub browser_runtimes: Option<PathBuf>,
    /// Let people sign up themselves: `customers`, `owners` or `customers,owners` (default:
    /// only operators create accounts). Each address may sign up 3 accounts an hour.
    #[arg(long, env = "IDLEGRID_SIGNUP", value_name = "KINDS", value_parser = parse_signup)]
    pub signup: Option<idlegrid_coordinator::config::SignupOpen>,
    /// Credits each new customer starts with, e.g. 100 (0 for none).
    #[arg(long, default_value = "100", env = "IDLEGRID_OPENING_CREDIT", value_name = "CREDITS",
        value_parser = idlegrid_domain::Credits::parse)]
    pub opening_credit: idlegrid_domain::Credits,
    /// The currency credits are shown in to people, e.g. USD or EUR ("" for credits only).
    #[arg(
        long,
        default_value = "USD",
        env = "IDLEGRID_CREDIT_CURRENCY",
        value_name = "CODE"
    )]
    pub credit_currency: String,
    /// What one credit is worth in that currency, e.g. 1 or 0.05.
    #[arg(long, default_value_t = 1.0, env = "IDLEGRID_CREDIT_VALUE", value_name = "AMOUNT",
        value_parser = parse_credit_value)]
    pub credit_value: f64,
}

fn parse_signup(value: &str) -> Result<idlegrid_coordinator::config::SignupOpen, String> {
    let mut open = idlegrid_coordinator::config::SignupOpen::default();
    for kind in value.split(',').map(str::trim).filter(|k| !k.is_empty()) {
        match kind {
            "customers" => open.customers = true,
            "owners" => open.owners = true,
            other => {
                return Err(format!(
                    "{other:?} cannot sign up: give customers, owners or customers,owners"
                ));
            }
        }
    }
    Ok(open)
}

fn parse_credit_value(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{value:?} is not a positive amount")),
    }
}

impl Default for CoordinatorArgs {
    fn default() -> Self {
        CoordinatorArgs {
            lease_secs: 30,
            max_upload_bytes: 10 * 1024 * 1024 * 1024,
            abandoned_upload_secs: 24 * 3600,
            customer_rps: 100,
            worker_rps: 2000,
            sweep_secs: 30,
            allow_private_sources: false,
            trust_min_age_secs: 3600,
            earnings_hold_secs: 24 * 3600,
            secrets_key: None,
            store: None,
            queue: None,
            blobs: None,
            browser_runtimes: None,
            signup: None,
            opening_credit: idlegrid_domain::Credits(100 * idlegrid_domain::pricing::MICROS),
            credit_currency: "USD".into(),
            credit_value: 1.0,
        }
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", env = "IDLEGRID_LISTEN")]
    pub listen: String,
    /// Directory for records, blobs and credentials.
    #[arg(long, default_value = "idlegrid-data", env = "IDLEGRID_DATA_DIR")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub coordinator: CoordinatorArgs,
    /// A file of settings as `IDLEGRID_*=value` lines (the environment variable of each flag);
    /// the command line and the environment take precedence.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print one JSON line (url, api_key, enrollment_token, operator_key, dashboard) when ready, for scripts.
    #[arg(long)]
    pub json: bool,
}

/// `idlegrid worker [flags]` runs a worker; `idlegrid worker pause | resume | status` controls
/// the one running on this device; `idlegrid worker install | uninstall` makes it a service.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct WorkerArgs {
    #[command(subcommand)]
    pub control: Option<worker::ControlCommand>,
    /// Coordinator URL, e.g. http://192.168.1.10:8080.
    #[arg(long, env = "IDLEGRID_URL", required = true)]
    pub coordinator: Option<String>,
    /// The device owner's enrollment token (printed by `idlegrid serve`).
    #[arg(long, env = "IDLEGRID_TOKEN", required = true)]
    pub token: Option<String>,
    /// Where the worker keeps its identity, bundle cache and scratch space.
    #[arg(long, env = "IDLEGRID_WORKER_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Tasks to run at once (default: the number of cores).
    #[arg(long, env = "IDLEGRID_WORKER_SLOTS")]
    pub slots: Option<usize>,
    /// Name of this device, for its owner.
    #[arg(long, env = "IDLEGRID_WORKER_NAME")]
    pub name: Option<String>,
    /// Python interpreter for task scripts.
    #[arg(long, default_value = "python3")]
    pub python: PathBuf,
    /// Seconds to let running tasks finish on Ctrl-C/SIGTERM before handing them back.
    #[arg(long, default_value_t = 30)]
    pub drain_secs: u64,
    /// Run tasks even where the task sandbox does not hold on this system (the worker says at
    /// start-up what leaks). Task scripts are other people's code: only for machines you do
    /// not mind them reading.
    #[arg(long)]
    pub weak_sandbox: bool,
    #[command(flatten)]
    pub controls: worker::ControlsArgs,
    /// A file of settings as `IDLEGRID_*=value` lines (the environment variable of each flag);
    /// the command line and the environment take precedence.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct LocalArgs {
    /// Worker agents to start.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Directory for the grid's data (default: ~/.idlegrid/local).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub coordinator: CoordinatorArgs,
}

/// How client commands find the coordinator.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// Coordinator URL (default: the grid started by `idlegrid local`).
    #[arg(long, env = "IDLEGRID_URL")]
    pub coordinator: Option<String>,
    /// Customer API key (default: the local grid's).
    #[arg(long, env = "IDLEGRID_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

fn parse_placement(value: &str) -> Result<idlegrid_domain::Placement, String> {
    match value {
        "any" => Ok(idlegrid_domain::Placement::Any),
        "own" => Ok(idlegrid_domain::Placement::Own),
        other => Err(format!("placement must be any or own, not {other:?}")),
    }
}

/// How a customer's job is run: replication across devices, a deadline, a webhook.
#[derive(Debug, Clone, Args)]
pub struct RunAsArgs {
    /// Run every chunk on N devices and accept an output only when --quorum of them give the
    /// same bytes (default: each chunk runs once, checked by the app's validator).
    #[arg(long, value_name = "N")]
    pub replicas: Option<u32>,
    /// Adaptive replication: each chunk runs once; results of devices that have not earned
    /// trust, and a falling share of the others, are checked on another device.
    #[arg(long, conflicts_with = "replicas")]
    pub adaptive: bool,
    /// Devices whose outputs must agree, with --replicas or --adaptive (default 2).
    #[arg(long, value_name = "Q")]
    pub quorum: Option<u32>,
    /// Run every chunk once, checked only by the app's validator, even on devices of other
    /// owners (by default such jobs use adaptive replication).
    #[arg(long, conflicts_with_all = ["replicas", "adaptive", "quorum"])]
    pub unverified: bool,
    /// Which devices may run the job: any (the whole grid) or own (only devices whose owner
    /// belongs to your account). Default: own when every owner on the grid is yours.
    #[arg(long, value_parser = parse_placement)]
    pub placement: Option<idlegrid_domain::Placement>,
    /// Fail the job if it has not finished this many seconds after it starts.
    #[arg(long, value_name = "SECS")]
    pub deadline: Option<u64>,
    /// POST every state change of the job to this URL, signed (the secret is printed once).
    #[arg(long, value_name = "URL")]
    pub webhook: Option<String>,
    /// Speed against price: economy, standard or fast.
    #[arg(long, default_value = "standard", value_parser = parse_tier)]
    pub tier: idlegrid_domain::Tier,
    /// The most the job may cost, in credits (e.g. 0.5); a higher quote fails it before it runs.
    #[arg(long, value_name = "CREDITS", value_parser = idlegrid_domain::Credits::parse)]
    pub max_price: Option<idlegrid_domain::Credits>,
    /// Upload the input, print the price and time of every tier, and stop without running.
    #[arg(long)]
    pub estimate: bool,
}

fn parse_tier(name: &str) -> Result<idlegrid_domain::Tier, String> {
    idlegrid_domain::Tier::parse(name)
        .ok_or_else(|| format!("{name:?} is not a tier: economy, standard or fast"))
}

#[derive(Debug, Args)]
pub struct BalanceArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DepositArgs {
    /// Customer id (`GET /v1/me` with their key shows it).
    pub customer: i64,
    /// Credits paid in, e.g. 25.
    #[arg(value_parser = idlegrid_domain::Credits::parse)]
    pub amount: idlegrid_domain::Credits,
    /// Your reference for the payment; a reference already used posts nothing.
    #[arg(long)]
    pub reference: String,
    #[command(flatten)]
    pub target: accounts::AccountTarget,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Python script run on each chunk (see the README's task script contract).
    pub script: PathBuf,
    /// Input file: text or records, one per line.
    #[arg(long)]
    pub input: PathBuf,
    /// Where to write the concatenated output.
    #[arg(long)]
    pub output: PathBuf,
    /// Lines per chunk.
    #[arg(long, default_value_t = 1000)]
    pub chunk_lines: u64,
    #[command(flatten)]
    pub script_job: ScriptJobArgs,
    #[command(flatten)]
    pub submit: SubmitArgs,
}

/// What a job running a task script per chunk takes besides its input (`run`, `app run`).
#[derive(Debug, Args)]
pub struct ScriptJobArgs {
    /// Parameters for the script, as a JSON object (given to it in IDLEGRID_PARAMS).
    #[arg(long, default_value = "{}")]
    pub params: String,
    /// Failed attempts a chunk may have before the job fails.
    #[arg(long, default_value_t = 3)]
    pub max_attempts: u32,
    /// Wall-clock limit per chunk, in seconds.
    #[arg(long, default_value_t = 600)]
    pub task_timeout: u64,
}

/// How `run` and `transcode` submit their job, and show it.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    pub run_as: RunAsArgs,
    /// What to call the job in lists (default: the input's file name).
    #[arg(long)]
    pub name: Option<String>,
    /// Workers of the throw-away grid started when no coordinator is configured
    /// (default: the number of cores).
    #[arg(long)]
    pub local_workers: Option<usize>,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Print the finished job as JSON instead of a summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TranscodeArgs {
    /// The video to transcode (MP4, MKV, MOV, WebM, ...).
    pub input: PathBuf,
    /// Where to write the video; its extension (.mp4, .mov, .mkv, .webm) picks the container
    /// unless --container does.
    #[arg(short, long, required_unless_present = "hls")]
    pub output: Option<PathBuf>,
    /// Write HLS into this directory instead: a rendition ladder (every standard height up to
    /// the output's) with `master.m3u8`.
    #[arg(long, conflicts_with = "output")]
    pub hls: Option<PathBuf>,
    /// Output preset: 1080p, 720p, 480p, 360p or source (never upscales).
    #[arg(long)]
    pub preset: Option<String>,
    /// Output size as WxH (fitted, aspect kept), instead of --preset.
    #[arg(long, conflicts_with = "preset")]
    pub resolution: Option<String>,
    /// Aspect ratio of the output picture as shown, W:H such as 16:9, 1:1 or 9:16; --fit says
    /// how the source reaches it.
    #[arg(long)]
    pub aspect: Option<String>,
    /// With --aspect: crop (cut to it, centred) or pad (black bars, all of the picture kept;
    /// the default).
    #[arg(long, requires = "aspect", value_parser = ["crop", "pad"])]
    pub fit: Option<String>,
    /// Video codec: h264 (x264), hevc (x265), av1 (SVT-AV1), vp9 (libvpx), or copy to carry
    /// the video over as it is (default h264).
    #[arg(long, value_parser = ["h264", "hevc", "av1", "vp9", "copy"])]
    pub codec: Option<String>,
    /// Container: mp4, mov, mkv or webm (default: the output's extension, else mp4).
    #[arg(long, value_parser = ["mp4", "mov", "mkv", "webm"])]
    pub container: Option<String>,
    /// Constant rate factor: 0-51 for h264 and hevc, 0-63 for av1 and vp9 (defaults 23, 25, 35,
    /// 35; lower is better and bigger).
    #[arg(long)]
    pub crf: Option<u8>,
    /// Quality each chunk is encoded to, searching its rate factor (at most 4 encodes a chunk):
    /// psnr:DB (luma PSNR, e.g. psnr:40) or ssim:VALUE (e.g. ssim:0.97); instead of --crf.
    #[arg(long, conflicts_with_all = ["crf", "bitrate"])]
    pub target_quality: Option<String>,
    /// The codec's speed preset: x264's and x265's names (ultrafast … veryslow), SVT-AV1's 0-13,
    /// libvpx's cpu-used 0-8 (defaults medium, 8, 4; slower is smaller at the same quality).
    #[arg(long)]
    pub speed: Option<String>,
    /// Audio codec: aac, opus or copy (default aac; opus in webm).
    #[arg(long, value_parser = ["aac", "opus", "copy"])]
    pub audio_codec: Option<String>,
    /// Audio tracks kept: all, first, or languages such as eng,fra (default all).
    #[arg(long)]
    pub audio_tracks: Option<String>,
    /// Normalise every audio track to this integrated loudness, in LUFS (EBU R128, two passes):
    /// -23 for broadcast, -14 to -16 for streaming.
    #[arg(long, allow_negative_numbers = true)]
    pub loudness: Option<f64>,
    /// Leave the source's subtitles out (by default they are carried where the container can).
    #[arg(long)]
    pub no_subtitles: bool,
    /// Average video bitrate such as 3M, instead of --crf.
    #[arg(long, conflicts_with = "crf")]
    pub bitrate: Option<String>,
    /// x264 preset: ultrafast … veryslow (default medium); --speed says it for every codec.
    #[arg(long, conflicts_with = "speed")]
    pub x264_preset: Option<String>,
    /// Audio bitrate such as 128k.
    #[arg(long)]
    pub audio_bitrate: Option<String>,
    /// Output frame rate (default: the source's; a variable rate becomes its average).
    #[arg(long)]
    pub fps: Option<f64>,
    /// A thumbnail every so many seconds (1-3600), with sprite sheets and a WebVTT index for
    /// scrubbing: written into a folder named after the output (out.mp4: out/thumbnails/), or
    /// into the --hls directory.
    #[arg(long)]
    pub thumbnails: Option<f64>,
    /// Thumbnail width in pixels, even, 32-640 (default 160; the height keeps the shape).
    #[arg(long, requires = "thumbnails")]
    pub thumbnail_width: Option<u32>,
    /// A full-size poster of the frame at this time (seconds): poster.jpg beside the
    /// thumbnails.
    #[arg(long)]
    pub poster: Option<f64>,
    /// A PNG (at most 32 KiB) laid over every frame, such as a logo.
    #[arg(long)]
    pub watermark: Option<PathBuf>,
    /// Where the watermark goes: top-left, top-right, bottom-left, bottom-right (the default)
    /// or center.
    #[arg(long, requires = "watermark", value_parser = ["top-left", "top-right", "bottom-left", "bottom-right", "center"])]
    pub watermark_position: Option<String>,
    /// The watermark's width as a share of the video's, 0.02-0.5 (default 0.15).
    #[arg(long, requires = "watermark")]
    pub watermark_width: Option<f64>,
    /// The watermark's opacity, 0.05-1 (default 0.8).
    #[arg(long, requires = "watermark")]
    pub watermark_opacity: Option<f64>,
    /// Seconds of video per chunk (default 10).
    #[arg(long)]
    pub chunk_seconds: Option<f64>,
    #[command(flatten)]
    pub submit: SubmitArgs,
}

/// `idlegrid app ...`.
#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Start an app in a new folder from a template: manifest.json and a task script to edit.
    New(AppNewArgs),
    /// Publish the app in a folder (its manifest.json and the files beside it) as a version of
    /// its own: versions never change, so each push of new contents needs a new version.
    Push(AppPushArgs),
    /// The apps you may run: built in, yours, and the public ones (each at its latest version).
    List(AppListArgs),
    /// What an app is: its latest version's description, steps, requirements and parameters.
    Show(AppNameArgs),
    /// An app's versions, oldest first.
    Versions(AppNameArgs),
    /// Run an app (NAME or NAME@VERSION) on an input file and write its output.
    Run(AppRunArgs),
    /// Try the app in a folder on an input: published to a throw-away local grid and run
    /// there; nothing is published anywhere else.
    Test(AppTestArgs),
}

/// What an app made by `app new` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AppTemplate {
    /// A text cut by lines, a script per chunk, the outputs joined in order.
    Map,
    /// A parameter sweep with seeds, replicated, reduced to means and confidence intervals.
    Sweep,
    /// The files of a zip or tar archive, an output file per input file, gathered in one tar.
    Files,
}

#[derive(Debug, Args)]
pub struct AppNewArgs {
    /// The app's name: 2 to 40 lower-case letters, digits and inner hyphens.
    pub name: String,
    /// What kind of app.
    #[arg(long, value_enum, default_value_t = AppTemplate::Map)]
    pub template: AppTemplate,
    /// The folder to make (default: ./NAME); it must not exist yet.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Where the Python packages an app brings come from: its `wheels/` folder, and wheels pip
/// downloads for its `requirements.txt`.
#[derive(Debug, Args)]
pub struct WheelArgs {
    /// Download the requirements' wheels for this pip platform tag (e.g. manylinux2014_x86_64,
    /// manylinux2014_aarch64); repeat for several. Default: this machine's.
    #[arg(long = "platform")]
    pub platforms: Vec<String>,
    /// The Python version (MAJOR.MINOR) the wheels are for, with --platform. Default: this
    /// machine's.
    #[arg(long)]
    pub python_version: Option<String>,
    /// Look for the requirements' wheels in this folder too (pip's --find-links).
    #[arg(long)]
    pub find_links: Option<PathBuf>,
    /// Only from --find-links, never from the package index (pip's --no-index).
    #[arg(long)]
    pub no_index: bool,
}

#[derive(Debug, Args)]
pub struct AppPushArgs {
    /// The app's folder: manifest.json, the task script it names, and the files it imports.
    pub dir: PathBuf,
    #[command(flatten)]
    pub wheels: WheelArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Print the published version as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AppListArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AppNameArgs {
    /// The app's name.
    pub name: String,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// What an app's job runs on, and how.
#[derive(Debug, Args)]
pub struct AppInputArgs {
    /// Input file.
    #[arg(long)]
    pub input: PathBuf,
    /// Where to write the output.
    #[arg(long)]
    pub output: PathBuf,
    /// Lines per chunk, for apps that cut their input by lines (default: the grid's choice).
    #[arg(long)]
    pub chunk_lines: Option<u64>,
    /// Items per chunk, for apps that cut their input into items: the files of an archive
    /// (default: the grid's choice) or the parameter sets of a sweep (default: one a chunk).
    #[arg(long)]
    pub chunk_items: Option<u64>,
    #[command(flatten)]
    pub script_job: ScriptJobArgs,
    #[command(flatten)]
    pub submit: SubmitArgs,
}

#[derive(Debug, Args)]
pub struct AppRunArgs {
    /// The app: NAME (its latest version) or NAME@VERSION.
    pub app: String,
    #[command(flatten)]
    pub input: AppInputArgs,
}

#[derive(Debug, Args)]
pub struct AppTestArgs {
    /// The app's folder, as for `app push`.
    pub dir: PathBuf,
    #[command(flatten)]
    pub wheels: WheelArgs,
    /// The least level of the job's log lines shown once it ended (each task's stderr, and
    /// what the grid's steps said).
    #[arg(long, value_enum, default_value_t = LevelArg::Info)]
    pub logs: LevelArg,
    #[command(flatten)]
    pub input: AppInputArgs,
}

#[derive(Debug, Args)]
pub struct JobsArgs {
    /// Most jobs to list.
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// The least level of the log lines shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LevelArg {
    Debug,
    Info,
    Warning,
    Error,
}

impl LevelArg {
    /// As the API names it.
    pub fn level(self) -> idlegrid_api::jobs::LogLevel {
        use idlegrid_api::jobs::LogLevel;
        match self {
            LevelArg::Debug => LogLevel::Debug,
            LevelArg::Info => LogLevel::Info,
            LevelArg::Warning => LogLevel::Warning,
            LevelArg::Error => LogLevel::Error,
        }
    }
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Job id.
    pub id: i64,
    /// The least level of the lines shown.
    #[arg(long, value_enum, default_value_t = LevelArg::Info)]
    pub level: LevelArg,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct JobArgs {
    /// Job id.
    pub id: i64,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Task dispatch throughput and lease latency of a coordinator over real HTTP.
    Dispatch(bench::DispatchArgs),
    /// A video through the local grid against one plain ffmpeg process.
    Transcode(bench::TranscodeArgs),
    /// Resident memory and CPU of a worker process while it has no work.
    WorkerIdle(bench::IdleArgs),
    /// A quality target reached chunk by chunk, measured from the output.
    TargetQuality(bench::QualityArgs),
    /// Verification against cheating devices, and its cost when most devices are honest.
    Trust(bench::TrustArgs),
}
