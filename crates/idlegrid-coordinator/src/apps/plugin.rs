//! What an app plugs into the stages: a [`Partitioner`] (fan-out: verify and split the input),
//! a [`Validator`] (judge one device's result) and an [`Assembler`] (fan-in: merge the
//! accepted results). The stages in [`crate::pipeline`] call them; an app sees only the
//! records, the blobs and its job, never the grid's state, so apps depend on nothing
//! stage-side.

use async_trait::async_trait;
use idlegrid_domain::schedule::Capacity;
use idlegrid_domain::{Requirements, Tier};
use idlegrid_storage::StorageError;
use idlegrid_storage::blobs::BlobStore;
use idlegrid_storage::records::{JobRecord, NewTask, ResultRecord, Store, StoredBlob};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Why splitting stopped.
#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    /// The input is not acceptable; the job fails with this reason.
    #[error("{0}")]
    Rejected(String),
    /// Storage failed; partitioning is retried later.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The receiving side went away (shutdown).
    #[error("partitioning stopped")]
    Stopped,
}

/// How a job is to be cut: what the grid has and what the customer chose.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// The job's tier.
    pub tier: Tier,
    /// The grid's capacity when the job is cut.
    pub capacity: Capacity,
    /// Seconds a device has for one chunk.
    pub timeout_secs: u64,
}

impl Plan {
    /// The plan for `job` on a grid of `capacity`.
    pub fn of(job: &JobRecord, capacity: Capacity) -> Plan {
        Plan {
            tier: job.spec.tier,
            capacity,
            timeout_secs: job.spec.task_timeout_secs,
        }
    }

    /// Work per chunk to aim for, for a job of `total_ms`.
    pub fn chunk_work_ms(&self, total_ms: i64) -> i64 {
        idlegrid_domain::schedule::chunk_work_ms(
            total_ms,
            self.tier,
            self.capacity,
            self.timeout_secs,
        )
    }
}

/// The partition options a job records (`partition_options`) from what its customer chose:
/// lines, seconds or items per chunk; each partitioner reads the one it uses and refuses the
/// others.
pub fn partition_options(
    lines: Option<u64>,
    seconds: Option<f64>,
    items: Option<u64>,
) -> serde_json::Value {
    serde_json::json!({ "lines": lines, "seconds": seconds, "items": items })
}

/// Refuses the options of `options` (named by their request fields) other than `allowed`, for
/// the app named `what`.
pub fn refuse_other_options(
    options: &serde_json::Value,
    allowed: &[&str],
    what: &str,
) -> Result<(), String> {
    for (key, field) in [
        ("lines", "chunk_lines"),
        ("seconds", "chunk_seconds"),
        ("items", "chunk_items"),
    ] {
        if !allowed.contains(&key) && !options.get(key).is_none_or(serde_json::Value::is_null) {
            return Err(format!("{field} does not apply to {what}"));
        }
    }
    Ok(())
}

/// A chunk option that counts something (`lines`, `items`), named `field` in requests: `None`
/// when not given, else a whole number from 1 to `most`.
pub fn count_option(
    options: &serde_json::Value,
    key: &str,
    field: &str,
    most: u64,
) -> Result<Option<u64>, String> {
    match options.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if (1..=most).contains(&n) => Ok(Some(n)),
            _ => Err(format!(
                "{field} must be a whole number from 1 to {most}, got {v}"
            )),
        },
    }
}

/// What an input is, as far as pricing needs to know.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum InputSize {
    /// So many bytes.
    Bytes(u64),
    /// A text of so many bytes and lines (counted, or given by the customer).
    Text {
        /// Its bytes.
        bytes: u64,
        /// Its lines (a last line without a line end counts).
        lines: u64,
    },
    /// A collection of items (the files of an archive, the parameter sets of a sweep).
    Items {
        /// Bytes of all the items together (uncompressed).
        bytes: u64,
        /// How many items.
        items: u64,
    },
    /// A video.
    Video {
        /// Its frames.
        frames: u64,
        /// Frames per second.
        fps: f64,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Seconds of audio to encode (0 without audio).
        audio_secs: f64,
    },
}

/// A job's work as an app's cost model counts it (one replica).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload {
    /// Total work, in reference core-milliseconds.
    pub work_ms: i64,
    /// Chunks it will be cut into (at most).
    pub chunks: u64,
    /// Work of the largest chunk.
    pub largest_chunk_ms: i64,
}

/// What a partitioner sends while it splits.
#[derive(Debug)]
pub enum Split {
    /// The job's workload: sent once, before any chunk.
    Workload(Workload),
    /// Chunks, in index order.
    Tasks(Vec<NewTask>),
}

/// An app-specific partitioner.
#[async_trait]
pub trait Partitioner: Send + Sync {
    /// The bundle's script this fan-out runs as the job's first task on devices (an app's own
    /// `partition.py`, [`super::steps::script`]); `None` for a fan-out the coordinator runs.
    /// The Partitioner stage opens that task instead of calling [`Partitioner::split`], and the
    /// Assembler stage cuts the chunks from its accepted output.
    fn step(&self) -> Option<&str> {
        None
    }

    /// Checks a job's app parameters and partition options when the job is created; the error
    /// is shown to the customer.
    fn check_job(
        &self,
        params: &serde_json::Value,
        options: &serde_json::Value,
    ) -> Result<(), String>;

    /// What a job with these (checked) parameters needs from a device beyond the manifest's
    /// `base` requirements (video: the encoders its settings use).
    fn requirements(&self, _params: &serde_json::Value, base: &Requirements) -> Requirements {
        base.clone()
    }

    /// The workload of a job with these parameters and options on an input of `size`, cut
    /// according to `plan` (the same figure [`Partitioner::split`] sends for the input).
    fn workload(
        &self,
        params: &serde_json::Value,
        options: &serde_json::Value,
        size: &InputSize,
        plan: &Plan,
    ) -> Result<Workload, String>;

    /// What a job's stored input is, for pricing (the input's size unless the app looks
    /// inside); the error is a reason the customer understands.
    async fn measure(
        &self,
        job: &JobRecord,
        _blobs: &dyn BlobStore,
    ) -> Result<InputSize, PartitionError> {
        job.input
            .as_ref()
            .map(|i| InputSize::Bytes(i.size))
            .ok_or_else(|| PartitionError::Rejected("the job has no input".into()))
    }

    /// Verifies the job's input, sends its [`Workload`] and then its chunks, in index order,
    /// in batches, each chunk with its work. Returns the facts found out about the input, to
    /// be recorded on the job.
    async fn split(
        &self,
        job: &JobRecord,
        blobs: &dyn BlobStore,
        plan: &Plan,
        out: mpsc::Sender<Split>,
    ) -> Result<Option<serde_json::Value>, PartitionError>;
}

/// What an app's validator makes of one result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgment {
    /// It is what the task asked for.
    Accept,
    /// It may be right but looks worse than the job's settings give: it counts only if an
    /// independent device returns the same bytes.
    Suspect(String),
    /// It is not what the task asked for. Its device is blamed only once an independent device
    /// returns a result that is accepted; if one returns the same bytes, the job is at fault.
    Reject(String),
}

/// An app-specific validator.
#[async_trait]
pub trait Validator: Send + Sync {
    /// Judges one result; `Err` means storage failed and the result should be judged again
    /// later. Whatever it samples to judge is chosen here, after the result arrived, never
    /// told to the device beforehand.
    async fn validate(
        &self,
        job: &JobRecord,
        result: &ResultRecord,
        blobs: &dyn BlobStore,
    ) -> Result<Judgment, StorageError>;
}

/// Why assembly stopped.
#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    /// The results do not add up to an output; the job fails with this reason.
    #[error("{0}")]
    Inconsistent(String),
    /// Storage failed; assembly is retried later.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// An app-specific assembler.
#[async_trait]
pub trait Assembler: Send + Sync {
    /// The bundle's script this fan-in runs as one more task on devices once every chunk has
    /// an accepted output (an app's own `reduce.py`, [`super::steps::script`]); `None` for a
    /// fan-in the coordinator runs. The Assembler stage opens that task, and calls
    /// [`Assembler::assemble`] once it has an accepted output.
    fn step(&self) -> Option<&str> {
        None
    }

    /// Builds the job's output under `output_key` from its accepted results (read from
    /// `store`, their outputs from `blobs`).
    async fn assemble(
        &self,
        job: &JobRecord,
        store: &Arc<dyn Store>,
        blobs: &Arc<dyn BlobStore>,
        output_key: &str,
    ) -> Result<StoredBlob, AssembleError>;
}
