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
}

/// Lower-case hex SHA-256 of some bytes: the one digest helper of the coordinator side.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
