//! Storage behind three narrow traits, so the coordinator never knows which engine it runs on.
//!
//! - [`records`]: the durable records — accounts, jobs, tasks, results ([`records::Store`]).
//!   Embedded backend: SQLite through sqlx.
//! - [`queue`]: the hand-off queues between coordinator stages and the per-job task queues with
//!   leases ([`queue::Queues`]). Embedded backend: in-process, rebuilt from the records at start-up.
//! - [`blobs`]: inputs, chunks, results, outputs and app bundles ([`blobs::BlobStore`]).
//!   Embedded backend: local files through object_store.
//!
//! Architecture invariant: no backend type (sqlx rows, object_store paths, ...) appears in a trait
//! signature; the traits speak only domain types and plain data.

pub mod blobs;
pub mod queue;
pub mod records;

/// A storage failure. Backends map their own errors into it; callers treat it as "try again
/// later" (HTTP 503) except where a variant says otherwise.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The engine failed or is unreachable.
    #[error("storage backend error: {0}")]
    Backend(String),
    /// A record or blob that was expected is missing.
    #[error("not found: {0}")]
    NotFound(String),
    /// Stored data could not be understood (corrupt or written by a newer version).
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

/// Result type of every storage call.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Milliseconds since the Unix epoch, the time unit of every record.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}
