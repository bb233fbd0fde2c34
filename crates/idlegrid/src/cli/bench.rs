//! Arguments of the measuring commands: `idlegrid bench …` and `idlegrid sim`.

use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct DispatchArgs {
    /// Tasks (chunks) in the benchmark job.
    #[arg(long, default_value_t = 1_000_000)]
    pub tasks: u64,
    /// Simulated workers, each with its own HTTP connection.
    #[arg(long, default_value_t = 32)]
    pub workers: usize,
    /// Tasks each worker leases (and reports) per request.
    #[arg(long, default_value_t = 100)]
    pub batch: u32,
    /// Coordinator processes sharing the backends (more than one needs --store and --queue);
    /// simulated workers are spread across them.
    #[arg(long, default_value_t = 1)]
    pub coordinators: usize,
    /// Records database for the coordinators, e.g. postgres://user@host/db (default: each
    /// coordinator's embedded SQLite).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Queue server, e.g. redis://host:6379 (default: in-process).
    #[arg(long, value_name = "URL")]
    pub queue: Option<String>,
    /// Blob store, e.g. s3://bucket?endpoint=http://127.0.0.1:9000 (default: local files).
    #[arg(long, value_name = "URL")]
    pub blobs: Option<String>,
    /// Print the figures as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TranscodeArgs {
    /// Source clip; default: a generated test clip of --seconds at --size, 30 fps, with audio.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Length of the generated clip, in seconds.
    #[arg(long, default_value_t = 60)]
    pub seconds: u32,
    /// Size of the generated clip.
    #[arg(long, default_value = "1920x1080")]
    pub size: String,
    /// Video codec of both encodes: h264, hevc, av1 or vp9.
    #[arg(long, default_value = "h264", value_parser = ["h264", "hevc", "av1", "vp9"])]
    pub codec: String,
    /// Constant rate factor for both encodes (default: the codec's, as the grid's).
    #[arg(long)]
    pub crf: Option<u8>,
    /// The codec's speed preset for both encodes (default: the codec's, as the grid's).
    #[arg(long, alias = "x264-preset")]
    pub speed: Option<String>,
    /// Seconds of video per chunk.
    #[arg(long, default_value_t = 10.0)]
    pub chunk_seconds: f64,
    /// Workers of the local grid (default: the number of cores).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Print the figures as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct QualityArgs {
    /// The quality target, as `idlegrid transcode --target-quality` takes it (PSNR only here).
    #[arg(long, default_value = "psnr:40")]
    pub target: String,
    /// Length of the generated clip (its content changes every 3 s), in seconds.
    #[arg(long, default_value_t = 48)]
    pub seconds: u32,
    /// Size of the generated clip.
    #[arg(long, default_value = "1280x720")]
    pub size: String,
    /// Video codec: h264, hevc, av1 or vp9.
    #[arg(long, default_value = "h264", value_parser = ["h264", "hevc", "av1", "vp9"])]
    pub codec: String,
    /// The codec's speed preset (default: the grid's).
    #[arg(long)]
    pub speed: Option<String>,
    /// Seconds of video per chunk.
    #[arg(long, default_value_t = 2.0)]
    pub chunk_seconds: f64,
    /// Workers of the local grid (default: the number of cores).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Print the figures as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct IdleArgs {
    /// Seconds to sample the idle worker for.
    #[arg(long, default_value_t = 60)]
    pub secs: u64,
    /// Seconds to let the worker settle after it registered (start-up benchmark, probes).
    #[arg(long, default_value_t = 5)]
    pub settle_secs: u64,
    /// Print the figures as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TrustArgs {
    /// Honest devices in the run under attack (the cheaters are six more).
    #[arg(long, default_value_t = 8)]
    pub honest: usize,
    /// Honest devices beside the one lazy device in the mostly honest run.
    #[arg(long, default_value_t = 9)]
    pub majority: usize,
    /// Seconds of each video job's clip (320x240, 25 fps, 1 s chunks, with sound).
    #[arg(long, default_value_t = 4)]
    pub seconds: u32,
    /// Video jobs, and python-map jobs, in each run.
    #[arg(long, default_value_t = 2)]
    pub jobs: usize,
    /// Lines (one chunk each) of each python-map job.
    #[arg(long, default_value_t = 40)]
    pub lines: usize,
    /// Results each device of the mostly honest run returns on small jobs first, to earn
    /// trust (0: measure them new).
    #[arg(long, default_value_t = 150)]
    pub warm_up: usize,
    /// Print the figures as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SimArgs {
    /// Devices in the grid.
    #[arg(long, default_value_t = 10_000)]
    pub devices: usize,
    /// Jobs, all submitted at time 0.
    #[arg(long, default_value_t = 100)]
    pub jobs: usize,
    /// Fraction of devices that leave mid-task and come back; a run without churn is shown
    /// next to it.
    #[arg(long, default_value_t = 0.3)]
    pub churn: f64,
    /// Fraction of attempts that take 3–10 times longer.
    #[arg(long, default_value_t = 0.02)]
    pub stragglers: f64,
    /// Seed of every random draw (the same seed gives the same figures).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Only the runs without backup copies.
    #[arg(long)]
    pub no_backups: bool,
    /// Print the reports as JSON.
    #[arg(long)]
    pub json: bool,
}
