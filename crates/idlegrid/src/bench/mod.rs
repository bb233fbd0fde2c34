//! `idlegrid bench`: benchmarks that measure, never timed tests.
//!
//! - [`dispatch`]: the coordinator's task throughput and lease latency over real HTTP.
//! - [`worker_idle`]: what an idle worker process costs its device (memory, CPU).
//! - [`transcode`]: a video through the local grid against one plain FFmpeg process.
//! - [`target_quality`]: quality targets reached chunk by chunk, measured from the output.
//! - [`trust`]: verification against cheating devices, and its cost on a mostly honest grid.

mod dispatch;
mod idle;
mod quality;
mod transcode;
mod trust;

pub use dispatch::dispatch;
pub use idle::worker_idle;
pub use quality::target_quality;
pub use transcode::transcode;
pub use trust::trust;

use anyhow::Context;
use std::time::Duration;

/// A grid job run to its end by [`run_video_job`].
pub(crate) struct FinishedJob {
    /// The job as it completed.
    pub job: idlegrid_api::jobs::Job,
    /// Seconds from `run` until it left `partitioning`.
    pub split_secs: f64,
    /// Seconds from `run` until its first chunk was there for a device to take.
    pub first_chunk_secs: f64,
    /// Seconds it spent `assembling`.
    pub stitch_secs: f64,
}

/// Runs a video-transcode job of `source` with `params` in chunks of `chunk_seconds` on the
/// grid of `client` to its end (an error unless it completed), timing its split and join.
pub(crate) async fn run_video_job(
    client: &idlegrid_client::Client,
    source: &std::path::Path,
    params: serde_json::Value,
    chunk_seconds: f64,
) -> anyhow::Result<FinishedJob> {
    use idlegrid_api::JobState;
    let job = client
        .create_job(&idlegrid_api::jobs::CreateJob {
            params,
            chunk_seconds: Some(chunk_seconds),
            ..idlegrid_api::jobs::CreateJob::new("video-transcode")
        })
        .await?;
    client.upload_input_file(job.id, source).await?;
    let started = std::time::Instant::now();
    client.run_job(job.id).await?;
    let (mut split, mut stitch_start, mut first_chunk) = (None, None, None);
    loop {
        let status = client.job(job.id).await?;
        let now = started.elapsed().as_secs_f64();
        if first_chunk.is_none() && !client.job_chunks(job.id, 0, 1).await?.tasks.is_empty() {
            first_chunk = Some(started.elapsed().as_secs_f64());
        }
        if split.is_none() && !matches!(status.state, JobState::Submitted | JobState::Partitioning)
        {
            split = Some(now);
        }
        if stitch_start.is_none()
            && matches!(status.state, JobState::Assembling | JobState::Completed)
        {
            stitch_start = Some(now);
        }
        if status.state.is_terminal() {
            anyhow::ensure!(
                status.state == JobState::Completed,
                "the grid job {}: {:?}",
                status.state,
                status.error
            );
            return Ok(FinishedJob {
                split_secs: split.unwrap_or(now),
                first_chunk_secs: first_chunk.unwrap_or(now),
                stitch_secs: now - stitch_start.unwrap_or(now),
                job: status,
            });
        }
        // Until the first chunk is out, more often (within the API's 100 requests a second):
        // its time is measured.
        let pause = if first_chunk.is_some() { 50 } else { 25 };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

/// Runs `ffmpeg` with `args`; returns its log (stderr), or an error holding it.
pub(crate) fn ffmpeg(args: &[&str]) -> anyhow::Result<String> {
    let out = std::process::Command::new("ffmpeg")
        .args(args)
        // SVT-AV1 prints its settings unless told to report errors only.
        .env("SVT_LOG", "1")
        .output()
        .context("cannot run ffmpeg (is FFmpeg installed?)")?;
    anyhow::ensure!(
        out.status.success(),
        "ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Makes a test clip at `path` with FFmpeg: its `testsrc2` pattern (`video`: the source's
/// options, e.g. `size=320x240:rate=25`) and a 440 Hz tone (`audio`: more of its options, or
/// none), both `seconds` long, in H.264 (`x264`: the encoder's options) and AAC.
pub(crate) fn test_clip(
    path: &std::path::Path,
    video: &str,
    audio: &str,
    seconds: u32,
    x264: &[&str],
) -> anyhow::Result<()> {
    let video = format!("testsrc2={video}:duration={seconds}");
    let audio = format!("sine=frequency=440{audio}:duration={seconds}");
    let path = path.to_string_lossy();
    let mut args = vec!["-v", "error", "-y", "-f", "lavfi", "-i", &video];
    args.extend(["-f", "lavfi", "-i", &audio, "-c:v", "libx264"]);
    args.extend(x264);
    args.extend(["-c:a", "aac", "-shortest", &path]);
    ffmpeg(&args).map(drop)
}

/// CPU time (user + system) of this process's children that ended and were waited for.
pub(crate) fn children_cpu() -> Duration {
    use nix::sys::resource::{UsageWho, getrusage};
    getrusage(UsageWho::RUSAGE_CHILDREN).map_or(Duration::ZERO, |usage| {
        let time = |t: nix::sys::time::TimeVal| {
            Duration::from_secs(t.tv_sec().max(0) as u64)
                + Duration::from_micros(t.tv_usec().max(0) as u64)
        };
        time(usage.user_time()) + time(usage.system_time())
    })
}

/// The CPU a coordinator's media tools used, per stage (`partition`, `validate`,
/// `assemble`), read from its `/metrics`.
pub(crate) async fn media_cpu(
    client: &idlegrid_client::Client,
) -> anyhow::Result<std::collections::BTreeMap<String, Duration>> {
    let text = client.metrics().await?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("idlegrid_media_cpu_microseconds_total{stage=\"")?;
            let (stage, value) = rest.split_once("\"} ")?;
            let micros: f64 = value.trim().parse().ok()?;
            Some((stage.to_string(), Duration::from_micros(micros as u64)))
        })
        .collect())
}

/// (VmRSS, VmHWM) of a process in MiB.
pub(crate) fn rss_mib(pid: u32) -> anyhow::Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .with_context(|| format!("/proc/{pid}/status has no {name}"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}
