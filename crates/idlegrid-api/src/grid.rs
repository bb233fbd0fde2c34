//! Grid statistics for operators: a time series of what the grid is doing.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Items waiting in each stage queue between the coordinator's components.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StageDepths {
    /// Jobs waiting for the partitioner.
    pub partition: u64,
    /// Tasks waiting for the feeder.
    pub feed: u64,
    /// Results waiting for the validator.
    pub validate: u64,
    /// Jobs waiting for the assembler.
    pub assemble: u64,
}

/// The grid at one moment, and its rates since the sample before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GridSample {
    /// When it was taken.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// Devices heard from in the last 90 seconds.
    pub devices_online: u64,
    /// Of those, devices holding tasks.
    pub devices_busy: u64,
    /// Tasks waiting for a device.
    pub tasks_queued: u64,
    /// Tasks leased to devices.
    pub tasks_leased: u64,
    /// Jobs dispatching tasks.
    pub jobs_running: u64,
    /// Stage queue depths.
    pub stages: StageDepths,
    /// Chunks accepted per second.
    pub completed_per_sec: f64,
    /// Failed attempts per second (script errors, rejected results, silent devices).
    pub failed_per_sec: f64,
    /// Tasks per second taken back from one device to go to another (leases that expired,
    /// were handed back or revoked).
    pub reassigned_per_sec: f64,
}

/// `GET /v1/grid/stats`: samples, oldest first, of the last 30 minutes, as this coordinator saw
/// them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GridStats {
    /// Seconds between samples.
    pub interval_secs: u64,
    /// The samples.
    pub samples: Vec<GridSample>,
}
