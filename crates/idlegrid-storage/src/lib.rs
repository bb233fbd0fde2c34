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

use std::path::Path;
use std::sync::Arc;

/// Where a coordinator keeps its records, queues and blobs: each `None` is the embedded
/// backend in the data directory, otherwise a URL naming the engine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backends {
    /// Records: `postgres://user@host/db`, or `sqlite:///path/records.db` (embedded default:
    /// `<data dir>/records.db`).
    pub store: Option<String>,
    /// Queues: `redis://host:port[/db][?prefix=name:]` (in-process by default).
    pub queue: Option<String>,
    /// Blobs: `s3://bucket[/prefix][?endpoint=URL&region=R]`, `file:///dir` (default:
    /// `<data dir>/blobs`).
    pub blobs: Option<String>,
}

/// Connections each coordinator keeps to PostgreSQL: enough for the report recorder, the
/// validator and request handlers to overlap, few enough that dozens of coordinators fit a
/// server's default `max_connections` of 100 (raise it for more).
const PG_CONNECTIONS: u32 = 8;

/// The three backends a [`Backends`] names, opened.
pub struct Opened {
    /// Records.
    pub store: Arc<dyn records::Store>,
    /// Queues.
    pub queues: Arc<dyn queue::Queues>,
    /// Blobs.
    pub blobs: Arc<dyn blobs::BlobStore>,
    /// What the engines are, for what depends on it.
    pub engines: Engines,
}

/// What the opened engines are: what a coordinator decides from, rather than from which URLs
/// were given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Engines {
    /// The queues live outside this process (Redis): they outlive it and other coordinators
    /// may use them, so lost work is swept for rather than the queues rebuilt. In-process
    /// queues start empty and are rebuilt from the records at start.
    pub shared_queues: bool,
    /// The records live in a server other coordinators may use (PostgreSQL): each keeps its
    /// copies of them current, and secrets are sealed with a key given to all of them. Records
    /// in an SQLite file belong to one coordinator.
    pub shared_records: bool,
}

impl Backends {
    /// Opens (and migrates) the backends; the embedded ones live in `data_dir`.
    pub async fn open(&self, data_dir: &Path) -> Result<Opened> {
        let mut engines = Engines::default();
        let store: Arc<dyn records::Store> = match self.store.as_deref() {
            None => Arc::new(records::SqliteStore::open(&data_dir.join("records.db")).await?),
            Some(url) if url.starts_with("sqlite://") => {
                let path = url.trim_start_matches("sqlite://");
                Arc::new(records::SqliteStore::open(Path::new(path)).await?)
            }
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                engines.shared_records = true;
                Arc::new(records::PostgresStore::connect(url, PG_CONNECTIONS).await?)
            }
            Some(url) => return Err(unknown("records", url, "postgres:// or sqlite://")),
        };
        let queues: Arc<dyn queue::Queues> = match self.queue.as_deref() {
            None | Some("memory") => Arc::new(queue::MemoryQueues::new()),
            Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
                engines.shared_queues = true;
                let (server, prefix) = redis_prefix(url);
                Arc::new(queue::RedisQueues::connect(&server, &prefix).await?)
            }
            Some(url) => return Err(unknown("queues", url, "redis://")),
        };
        let blobs: Arc<dyn blobs::BlobStore> = match self.blobs.as_deref() {
            None => Arc::new(blobs::ObjectBlobStore::local(&data_dir.join("blobs"))?),
            Some(url) => Arc::new(blobs::ObjectBlobStore::open(url)?),
        };
        Ok(Opened {
            store,
            queues,
            blobs,
            engines,
        })
    }
}

/// Splits `redis://host:port/db?prefix=name:` into the server's URL and the key prefix
/// (default `idlegrid:`), so several grids can share one Redis.
fn redis_prefix(url: &str) -> (String, String) {
    let Some((server, query)) = url.split_once('?') else {
        return (
            url.to_string(),
            queue::RedisQueues::DEFAULT_PREFIX.to_string(),
        );
    };
    let mut prefix = queue::RedisQueues::DEFAULT_PREFIX.to_string();
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.strip_prefix("prefix=") {
            Some(p) => prefix = p.to_string(),
            None => rest.push(pair),
        }
    }
    let server = if rest.is_empty() {
        server.to_string()
    } else {
        format!("{server}?{}", rest.join("&"))
    };
    (server, prefix)
}

/// The error for a backend URL of an unknown kind.
fn unknown(what: &str, url: &str, expected: &str) -> StorageError {
    StorageError::Backend(format!(
        "cannot keep {what} in {url:?}: expected a URL starting with {expected}"
    ))
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redis_url_may_name_a_key_prefix() {
        assert_eq!(
            redis_prefix("redis://h:1/2?prefix=grid-a:"),
            ("redis://h:1/2".to_string(), "grid-a:".to_string())
        );
        assert_eq!(
            redis_prefix("redis://h:1?protocol=resp3&prefix=b:"),
            ("redis://h:1?protocol=resp3".to_string(), "b:".to_string())
        );
        assert_eq!(redis_prefix("redis://h:1").1, "idlegrid:");
    }

    #[tokio::test]
    async fn unknown_backend_urls_are_refused_with_what_was_expected() {
        let dir = tempfile::tempdir().unwrap();
        let backends = Backends {
            queue: Some("amqp://x".into()),
            ..Backends::default()
        };
        let err = backends.open(dir.path()).await.err().unwrap().to_string();
        assert!(
            err.contains("amqp://x") && err.contains("redis://"),
            "{err}"
        );
    }
}
