//! The blob store: job inputs, chunks, task outputs, assembled outputs and app bundles.
//!
//! Keys are relative slash-separated paths such as `jobs/42/input`. Writes are atomic: a reader
//! sees the whole blob or none of it, and a failed or refused upload leaves nothing behind.
//! Uploads are verified while they stream — size limit and SHA-256 — so a blob that exists is
//! known to hold the bytes its record claims.

mod object;

pub use object::ObjectBlobStore;

use crate::records::StoredBlob;
use crate::{Result, StorageError};
use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use std::ops::Range;

/// A stream of blob bytes.
pub type ByteStream = BoxStream<'static, Result<Bytes>>;

/// A stream of bytes being uploaded; its errors are the sender's (a dropped connection).
pub type UploadStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// Why an upload was refused.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    /// The body is larger than allowed.
    #[error("upload exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The body does not hash to what the sender declared.
    #[error("upload SHA-256 is {actual}, but the request declared {expected}")]
    DigestMismatch {
        /// Declared.
        expected: String,
        /// Computed over the received bytes.
        actual: String,
    },
    /// The sender's stream broke off.
    #[error("upload interrupted: {0}")]
    Interrupted(std::io::Error),
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The blob store backend.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Stores a stream under `key`, refusing it if it exceeds `max_size` bytes or does not
    /// hash to `expected_sha256` (lower-case hex) when one is given.
    async fn put_stream(
        &self,
        key: &str,
        body: UploadStream,
        expected_sha256: Option<&str>,
        max_size: u64,
    ) -> Result<StoredBlob, PutError>;
    /// Stores the file at `path` under `key`, taking it over: the caller must not use the file
    /// afterwards. A local-files store moves it into place when it is on the same file system
    /// (no copy); otherwise the file is streamed in and left where it was.
    async fn put_file(&self, key: &str, path: &std::path::Path) -> Result<StoredBlob> {
        stream_file(self, key, path).await
    }
    /// Stores bytes under `key`.
    async fn put_bytes(&self, key: &str, bytes: Bytes) -> Result<StoredBlob>;
    /// Streams a blob, or the given byte range of it.
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<ByteStream>;
    /// Reads a whole blob, or a byte range of it, into memory.
    async fn get_bytes(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes>;
    /// The blob's size, if it exists.
    async fn size(&self, key: &str) -> Result<Option<u64>>;
    /// Deletes a blob; deleting a missing blob is not an error.
    async fn delete(&self, key: &str) -> Result<()>;
    /// The blob's file when the backend keeps blobs as local files, so tools can read it in
    /// place instead of copying it (blobs are never changed once written); `None` otherwise, or
    /// if it does not exist.
    fn local_path(&self, key: &str) -> Option<std::path::PathBuf>;
    /// Deletes every blob whose key starts with `prefix/`; returns how many.
    async fn delete_prefix(&self, prefix: &str) -> Result<u64>;
    /// Every blob whose key starts with `prefix/`, in key order.
    async fn list(&self, prefix: &str) -> Result<Vec<Listed>>;
}

/// A blob as [`BlobStore::list`] finds it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Listed {
    /// Its key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was written, Unix ms.
    pub modified_ms: i64,
}

/// Lower-case hex SHA-256 of some bytes: the one digest helper of the coordinator side.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Bytes per read when streaming a file: each read of a tokio file is a hop to the blocking
/// pool, so small reads cost more CPU than the copy itself.
pub const FILE_READ: usize = 1024 * 1024;

/// [`BlobStore::put_file`] by streaming the file through [`BlobStore::put_stream`].
pub async fn stream_file<B: BlobStore + ?Sized>(
    blobs: &B,
    key: &str,
    path: &std::path::Path,
) -> Result<StoredBlob> {
    use futures::StreamExt;
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| StorageError::Backend(format!("opening {}: {e}", path.display())))?;
    let stream = tokio_util::io::ReaderStream::with_capacity(file, FILE_READ).boxed();
    blobs
        .put_stream(key, stream, None, u64::MAX)
        .await
        .map_err(|e| match e {
            PutError::Storage(e) => e,
            other => StorageError::Backend(other.to_string()),
        })
}
