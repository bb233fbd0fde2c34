//! `idlegrid bench`: benchmarks that measure, never timed tests.
//!
//! - [`dispatch`]: the coordinator's task throughput and lease latency over real HTTP.
//! - [`transcode`]: a video through the local grid against one plain FFmpeg process.

mod dispatch;
mod transcode;

pub use dispatch::{DispatchArgs, dispatch};
pub use transcode::{TranscodeArgs, transcode};
