//! `idlegrid bench`: benchmarks that measure, never timed tests.
//!
//! - [`dispatch`]: the coordinator's task throughput and lease latency over real HTTP.
//! - [`worker_idle`]: what an idle worker process costs its device (memory, CPU).
//! - [`transcode`]: a video through the local grid against one plain FFmpeg process.

mod dispatch;
mod idle;
mod transcode;

pub use dispatch::{DispatchArgs, dispatch};
pub use idle::{IdleArgs, worker_idle};
pub use transcode::{TranscodeArgs, transcode};

use anyhow::Context;

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
