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
