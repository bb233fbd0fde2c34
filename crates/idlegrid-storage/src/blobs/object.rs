//! Blob store on the `object_store` crate: local files in embedded mode (`LocalFileSystem`
//! writes multipart uploads to a staging file and renames it into place on completion), or any
//! S3-compatible bucket when coordinators share one (multipart uploads complete atomically).

use super::{BlobStore, ByteStream, Listed, PutError, UploadStream};
use crate::records::StoredBlob;
use crate::{Result, StorageError};
use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, ObjectStore, ObjectStoreExt, WriteMultipart};
use sha2::{Digest, Sha256};
use std::ops::Range;
use std::sync::Arc;

/// A blob store on any `object_store` backend.
#[derive(Debug, Clone)]
pub struct ObjectBlobStore {
    store: Arc<dyn ObjectStore>,
    /// The directory of a local-files store.
    root: Option<std::path::PathBuf>,
}

/// Multipart part size: large enough for S3's 5 MiB minimum, small enough to bound memory.
const PART_SIZE: usize = 8 * 1024 * 1024;

fn storage(e: object_store::Error) -> StorageError {
    match e {
        object_store::Error::NotFound { path, .. } => StorageError::NotFound(path),
        other => StorageError::Backend(other.to_string()),
    }
}

fn path(key: &str) -> Result<ObjectPath> {
    ObjectPath::parse(key).map_err(|e| StorageError::Backend(format!("blob key {key:?}: {e}")))
}

impl ObjectBlobStore {
    /// The blob store a URL names: `s3://bucket[/prefix][?endpoint=URL&region=R]` for an
    /// S3-compatible bucket, anything else (`file:///dir` or a plain path) for local files.
    pub fn open(url: &str) -> Result<Self> {
        if url.starts_with("s3://") {
            Self::s3(url)
        } else {
            let dir = url.strip_prefix("file://").unwrap_or(url);
            Self::local(std::path::Path::new(dir))
        }
    }

    /// Blobs in an S3-compatible bucket: `s3://bucket[/prefix]` with optional query parameters
    /// `endpoint` (a server other than AWS, e.g. `http://127.0.0.1:9000`; plain HTTP is then
    /// allowed and requests are path-style) and `region`. Credentials come from the usual
    /// `AWS_*` environment variables.
    pub fn s3(url: &str) -> Result<Self> {
        let bad = |why: &str| StorageError::Backend(format!("blob store URL {url:?}: {why}"));
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| bad("must start with s3://"))?;
        let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
        if bucket.is_empty() {
            return Err(bad("names no bucket"));
        }
        let mut builder = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            builder = match name {
                "endpoint" => builder
                    .with_endpoint(value)
                    .with_allow_http(value.starts_with("http://"))
                    .with_virtual_hosted_style_request(false),
                "region" => builder.with_region(value),
                other => return Err(bad(&format!("unknown parameter {other:?}"))),
            };
        }
        let s3 = builder.build().map_err(|e| bad(&e.to_string()))?;
        let store: Arc<dyn ObjectStore> = match prefix.trim_matches('/') {
            "" => Arc::new(s3),
            prefix => Arc::new(object_store::prefix::PrefixStore::new(s3, prefix)),
        };
        Ok(ObjectBlobStore { store, root: None })
    }

    /// A customer's bucket, with the credentials they gave (none: anonymous access). Keys are
    /// used as given. `endpoint` names a server other than AWS (path-style requests; plain
    /// HTTP allowed when it says `http://`).
    pub fn customer_bucket(
        bucket: &str,
        endpoint: Option<&str>,
        region: Option<&str>,
        credentials: Option<(&str, &str)>,
    ) -> Result<Self> {
        let mut builder = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(region.unwrap_or("us-east-1"));
        if let Some(endpoint) = endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        builder = match credentials {
            Some((key_id, secret)) => builder
                .with_access_key_id(key_id)
                .with_secret_access_key(secret),
            None => builder.with_skip_signature(true),
        };
        let s3 = builder
            .build()
            .map_err(|e| StorageError::Backend(format!("bucket {bucket:?}: {e}")))?;
        Ok(ObjectBlobStore {
            store: Arc::new(s3),
            root: None,
        })
    }

    /// Blobs as files under `dir`, which is created if missing.
    pub fn local(dir: &std::path::Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StorageError::Backend(format!("creating {}: {e}", dir.display())))?;
        // Uploads cut short by a crash leave their staging files behind; nothing else is
        // writing yet.
        remove_staging_leftovers(dir);
        let store = LocalFileSystem::new_with_prefix(dir).map_err(storage)?;
        Ok(ObjectBlobStore {
            store: Arc::new(store),
            root: Some(dir.to_path_buf()),
        })
    }
}

#[async_trait]
impl BlobStore for ObjectBlobStore {
    async fn put_stream(
        &self,
        key: &str,
        mut body: UploadStream,
        expected_sha256: Option<&str>,
        max_size: u64,
    ) -> Result<StoredBlob, PutError> {
        let location = path(key)?;
        let upload = self.store.put_multipart(&location).await.map_err(storage)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let failure = loop {
            let chunk = match body.next().await {
                None => break None,
                Some(Err(e)) => break Some(PutError::Interrupted(e)),
                Some(Ok(chunk)) => chunk,
            };
            size += chunk.len() as u64;
            if size > max_size {
                break Some(PutError::TooLarge { limit: max_size });
            }
            hasher.update(&chunk);
            if let Err(e) = writer.wait_for_capacity(4).await {
                break Some(PutError::Storage(storage(e)));
            }
            // Copied into the part buffer: many tiny chunks must not become many allocations.
            writer.write(&chunk);
        };
        let sha256 = hex::encode(hasher.finalize());
        let failure = failure.or_else(|| match expected_sha256 {
            Some(expected) if !expected.eq_ignore_ascii_case(&sha256) => {
                Some(PutError::DigestMismatch {
                    expected: expected.to_string(),
                    actual: sha256.clone(),
                })
            }
            _ => None,
        });
        if let Some(failure) = failure {
            if let Err(e) = writer.abort().await {
                tracing::warn!(key, error = %e, "could not clean up a refused upload");
            }
            return Err(failure);
        }
        writer.finish().await.map_err(storage)?;
        Ok(StoredBlob {
            key: key.to_string(),
            size,
            sha256,
        })
    }

    async fn put_file(&self, key: &str, file: &std::path::Path) -> Result<StoredBlob> {
        let Some(root) = &self.root else {
            return super::stream_file(self, key, file).await;
        };
        let target = root.join(path(key)?.as_ref());
        let source = file.to_path_buf();
        let moved = tokio::task::spawn_blocking(move || move_into_place(&source, &target))
            .await
            .map_err(|e| StorageError::Backend(format!("storing {key}: {e}")))?;
        match moved {
            Ok(Some((size, sha256))) => Ok(StoredBlob {
                key: key.to_string(),
                size,
                sha256,
            }),
            // Another file system: copy it in.
            Ok(None) => super::stream_file(self, key, file).await,
            Err(e) => Err(StorageError::Backend(format!(
                "storing {} as {key}: {e}",
                file.display()
            ))),
        }
    }

    async fn put_bytes(&self, key: &str, bytes: Bytes) -> Result<StoredBlob> {
        let sha256 = super::sha256_hex(&bytes);
        let size = bytes.len() as u64;
        self.store
            .put(&path(key)?, bytes.into())
            .await
            .map_err(storage)?;
        Ok(StoredBlob {
            key: key.to_string(),
            size,
            sha256,
        })
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<ByteStream> {
        if range.as_ref().is_some_and(|r| r.is_empty()) {
            return Ok(futures::stream::empty().boxed());
        }
        if let Some(root) = &self.root {
            return local_get(root, key, range).await;
        }
        let result = self
            .store
            .get_opts(&path(key)?, GetOptions::new().with_range(range))
            .await
            .map_err(storage)?;
        Ok(result.into_stream().map_err(storage).boxed())
    }

    async fn get_bytes(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes> {
        let chunks: Vec<Bytes> = self.get(key, range).await?.try_collect().await?;
        Ok(match chunks.len() {
            1 => chunks.into_iter().next().unwrap_or_default(),
            _ => Bytes::from(chunks.concat()),
        })
    }

    async fn size(&self, key: &str) -> Result<Option<u64>> {
        match self.store.head(&path(key)?).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(storage(e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<()> {
        match self.store.delete(&path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(storage(e)),
        }
    }

    fn local_path(&self, key: &str) -> Option<std::path::PathBuf> {
        // Parsing refuses `..` and empty segments, so the path stays inside the root.
        let location = path(key).ok()?;
        let file = self.root.as_ref()?.join(location.as_ref());
        file.is_file().then_some(file)
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        let keys: Vec<ObjectPath> = self
            .store
            .list(Some(&path(prefix)?))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(storage)?;
        for key in &keys {
            match self.store.delete(key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(storage(e)),
            }
        }
        // Local files leave their directories behind; remove the ones now empty.
        if let Some(root) = &self.root {
            remove_empty_dirs(&root.join(path(prefix)?.as_ref()));
        }
        Ok(keys.len() as u64)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Listed>> {
        let mut found: Vec<Listed> = self
            .store
            .list(Some(&path(prefix)?))
            .map_ok(|meta| Listed {
                key: meta.location.to_string(),
                size: meta.size,
                modified_ms: meta.last_modified.timestamp_millis(),
            })
            .try_collect()
            .await
            .map_err(storage)?;
        found.sort();
        Ok(found)
    }
}

/// Hashes `source` and renames it to `target` (atomic: readers see all of it or nothing);
/// `None` when the two are on different file systems and the file must be copied instead.
fn move_into_place(
    source: &std::path::Path,
    target: &std::path::Path,
) -> std::io::Result<Option<(u64, String)>> {
    use std::io::Read;
    let mut file = std::fs::File::open(source)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; super::FILE_READ];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::rename(source, target) {
        Ok(()) => Ok(Some((size, hex::encode(hasher.finalize())))),
        Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => Ok(None),
        Err(e) => Err(e),
    }
}

/// Bytes per read when streaming a local file: `object_store` reads local files 8 KiB at a
/// time, each read a hop to the blocking pool, which made serving a 200 MB video cost seconds
/// of CPU.
const LOCAL_READ: usize = super::FILE_READ;

/// Streams a local-files blob, or a range of it, in [`LOCAL_READ`] pieces.
async fn local_get(
    root: &std::path::Path,
    key: &str,
    range: Option<Range<u64>>,
) -> Result<ByteStream> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let file_path = root.join(path(key)?.as_ref());
    let mut file = match tokio::fs::File::open(&file_path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StorageError::NotFound(key.to_string()));
        }
        Err(e) => return Err(StorageError::Backend(format!("reading blob {key}: {e}"))),
    };
    let io = |e: std::io::Error| StorageError::Backend(format!("reading blob {key}: {e}"));
    let size = file.metadata().await.map_err(io)?.len();
    let range = range.unwrap_or(0..size);
    if range.start > size {
        return Err(StorageError::Backend(format!(
            "blob {key}: range {}..{} starts beyond its {size} bytes",
            range.start, range.end
        )));
    }
    file.seek(std::io::SeekFrom::Start(range.start))
        .await
        .map_err(io)?;
    let reader = file.take(range.end.min(size) - range.start);
    let key = key.to_string();
    Ok(
        tokio_util::io::ReaderStream::with_capacity(reader, LOCAL_READ)
            .map_err(move |e| StorageError::Backend(format!("reading blob {key}: {e}")))
            .boxed(),
    )
}

/// Removes the staging files of unfinished uploads under `dir`: `object_store` writes an upload
/// to `<key>#<n>` and renames it into place when complete. Blob keys never hold `#`.
fn remove_staging_leftovers(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_staging_leftovers(&path);
        } else if is_staging_name(&entry.file_name().to_string_lossy()) {
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "removed the staging file of an unfinished upload")
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove a staging file")
                }
            }
        }
    }
}

/// `name#123`: a staging file.
fn is_staging_name(name: &str) -> bool {
    name.rsplit_once('#').is_some_and(|(base, suffix)| {
        !base.is_empty() && !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit())
    })
}

/// Removes `dir` and the directories below it that hold no file. A directory that is not
/// empty (a blob written meanwhile) is left alone.
fn remove_empty_dirs(dir: &std::path::Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_empty_dirs(&entry.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(parts: &[&'static [u8]]) -> UploadStream {
        let parts: Vec<_> = parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        futures::stream::iter(parts).boxed()
    }

    /// Streams `hello world` to `jobs/1/input` with its digest, and reads part of it back.
    async fn stores_hello_world(blobs: &ObjectBlobStore) {
        let sha = super::super::sha256_hex(b"hello world");
        let stored = blobs
            .put_stream(
                "jobs/1/input",
                body(&[b"hello ", b"world"]),
                Some(&sha),
                100,
            )
            .await
            .unwrap();
        assert_eq!((stored.size, stored.sha256.as_str()), (11, sha.as_str()));
        assert_eq!(
            blobs.get_bytes("jobs/1/input", Some(6..11)).await.unwrap(),
            "world"
        );
    }

    fn keys_and_sizes(listed: &[Listed]) -> Vec<(&str, u64)> {
        listed.iter().map(|l| (l.key.as_str(), l.size)).collect()
    }

    #[tokio::test]
    async fn verified_upload_round_trips_and_ranges_read() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = ObjectBlobStore::local(dir.path()).unwrap();
        stores_hello_world(&blobs).await;
        assert_eq!(
            blobs.get_bytes("jobs/1/input", Some(3..3)).await.unwrap(),
            ""
        );
        assert_eq!(blobs.size("jobs/1/input").await.unwrap(), Some(11));
        assert_eq!(blobs.size("jobs/2/input").await.unwrap(), None);
        let file = blobs.local_path("jobs/1/input").unwrap();
        assert_eq!(std::fs::read(file).unwrap(), b"hello world");
        assert_eq!(blobs.local_path("jobs/2/input"), None);
        assert_eq!(blobs.local_path("jobs/../../etc/passwd"), None);
        blobs
            .put_bytes("jobs/1/chunks/0", Bytes::from_static(b"a"))
            .await
            .unwrap();
        blobs
            .put_bytes("jobs/1/chunks/1", Bytes::from_static(b"b"))
            .await
            .unwrap();
        blobs
            .put_bytes("jobs/10/chunks/0", Bytes::from_static(b"c"))
            .await
            .unwrap();
        let listed = blobs.list("jobs/1/chunks").await.unwrap();
        assert_eq!(
            keys_and_sizes(&listed),
            [("jobs/1/chunks/0", 1), ("jobs/1/chunks/1", 1)],
            "only keys under the prefix, in order, with their sizes"
        );
        let now = crate::now_ms();
        assert!(
            listed
                .iter()
                .all(|l| (now - 60_000..=now + 1000).contains(&l.modified_ms)),
            "written just now: {listed:?}"
        );
        assert_eq!(blobs.list("nothing/here").await.unwrap(), []);
        assert_eq!(blobs.delete_prefix("jobs/1/chunks").await.unwrap(), 2);
        assert!(
            !dir.path().join("jobs/1/chunks").exists(),
            "no empty directory is left"
        );
        assert!(dir.path().join("jobs/1").exists());
        assert_eq!(blobs.size("jobs/1/chunks/0").await.unwrap(), None);
        assert_eq!(blobs.size("jobs/10/chunks/0").await.unwrap(), Some(1));
        assert_eq!(blobs.size("jobs/1/input").await.unwrap(), Some(11));
        assert_eq!(blobs.delete_prefix("nothing/here").await.unwrap(), 0);
    }

    #[tokio::test]
    async fn refused_uploads_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = ObjectBlobStore::local(dir.path()).unwrap();
        let err = blobs
            .put_stream("a", body(&[b"data"]), Some(&"0".repeat(64)), 100)
            .await
            .unwrap_err();
        assert!(matches!(err, PutError::DigestMismatch { .. }), "{err}");
        let err = blobs
            .put_stream("b", body(&[b"0123", b"456789"]), None, 5)
            .await
            .unwrap_err();
        assert!(matches!(err, PutError::TooLarge { limit: 5 }), "{err}");
        assert_eq!(blobs.size("a").await.unwrap(), None);
        assert_eq!(blobs.size("b").await.unwrap(), None);
        let leftovers: Vec<_> = walk(dir.path());
        assert!(leftovers.is_empty(), "staging files left: {leftovers:?}");
    }

    #[tokio::test]
    async fn files_are_moved_in_and_large_blobs_read_back_in_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = ObjectBlobStore::local(&dir.path().join("blobs")).unwrap();
        // Larger than one read, not a multiple of it.
        let data: Vec<u8> = (0..(2 * super::super::FILE_READ + 12_345))
            .map(|i| (i % 251) as u8)
            .collect();
        let scratch = dir.path().join("scratch.bin");
        std::fs::write(&scratch, &data).unwrap();
        let stored = blobs.put_file("jobs/3/chunks/0", &scratch).await.unwrap();
        assert_eq!(stored.size, data.len() as u64);
        assert_eq!(stored.sha256, super::super::sha256_hex(&data));
        assert!(!scratch.exists(), "same file system: moved, not copied");
        assert_eq!(
            blobs.get_bytes("jobs/3/chunks/0", None).await.unwrap(),
            data
        );
        let (start, end) = (
            super::super::FILE_READ as u64 - 7,
            2 * super::super::FILE_READ as u64 + 9,
        );
        assert_eq!(
            blobs
                .get_bytes("jobs/3/chunks/0", Some(start..end))
                .await
                .unwrap(),
            data[start as usize..end as usize]
        );
        // A range past the end is cut at the end; one starting past it is an error.
        let len = data.len() as u64;
        assert_eq!(
            blobs
                .get_bytes("jobs/3/chunks/0", Some(len - 3..len + 100))
                .await
                .unwrap(),
            data[data.len() - 3..]
        );
        assert!(
            blobs
                .get("jobs/3/chunks/0", Some(len + 1..len + 2))
                .await
                .is_err()
        );
        assert!(matches!(
            blobs.get("jobs/3/chunks/9", None).await,
            Err(StorageError::NotFound(_))
        ));
    }

    /// A fresh prefix in the test bucket named by `IDLEGRID_TEST_S3`
    /// (`s3://bucket?endpoint=...`, set by `scripts/services.sh`).
    fn test_bucket() -> Option<String> {
        let Ok(url) = std::env::var("IDLEGRID_TEST_S3") else {
            assert!(
                std::env::var("IDLEGRID_REQUIRE_SERVICES").as_deref() != Ok("1"),
                "IDLEGRID_TEST_S3 is not set: start the services with scripts/services.sh"
            );
            eprintln!("IDLEGRID_TEST_S3 is not set: S3 blob tests skipped");
            return None;
        };
        let (bucket, query) = url.split_once('?').unwrap_or((&url, ""));
        let prefix = format!("t{:016x}", rand::random::<u64>());
        Some(format!("{}/{prefix}?{query}", bucket.trim_end_matches('/')))
    }

    #[tokio::test]
    async fn an_s3_bucket_keeps_the_same_contract() {
        let Some(url) = test_bucket() else { return };
        let blobs = ObjectBlobStore::open(&url).unwrap();
        stores_hello_world(&blobs).await;
        assert_eq!(blobs.size("jobs/1/input").await.unwrap(), Some(11));
        assert_eq!(blobs.local_path("jobs/1/input"), None);
        // Larger than one multipart part, streamed from a file.
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..(PART_SIZE + 12_345)).map(|i| (i % 251) as u8).collect();
        let file = dir.path().join("big");
        std::fs::write(&file, &data).unwrap();
        let stored = blobs.put_file("jobs/1/chunks/0", &file).await.unwrap();
        assert_eq!(stored.sha256, super::super::sha256_hex(&data));
        assert_eq!(
            blobs.get_bytes("jobs/1/chunks/0", None).await.unwrap(),
            data
        );
        // Refused uploads leave nothing behind.
        let err = blobs
            .put_stream("jobs/1/bad", body(&[b"data"]), Some(&"0".repeat(64)), 100)
            .await
            .unwrap_err();
        assert!(matches!(err, PutError::DigestMismatch { .. }), "{err}");
        assert_eq!(blobs.size("jobs/1/bad").await.unwrap(), None);
        let listed = blobs.list("jobs/1/chunks").await.unwrap();
        assert_eq!(
            keys_and_sizes(&listed),
            [("jobs/1/chunks/0", data.len() as u64)],
            "keys come back without the bucket prefix"
        );
        let now = crate::now_ms();
        assert!((now - 600_000..=now + 600_000).contains(&listed[0].modified_ms));
        assert_eq!(blobs.delete_prefix("jobs/1/chunks").await.unwrap(), 1);
        assert_eq!(blobs.size("jobs/1/input").await.unwrap(), Some(11));
        assert!(matches!(
            blobs.get("jobs/1/chunks/0", None).await,
            Err(StorageError::NotFound(_))
        ));
        blobs.delete_prefix("jobs").await.unwrap();
    }

    #[test]
    fn blob_store_urls_are_checked() {
        for bad in ["s3://", "s3://b?colour=red"] {
            let err = ObjectBlobStore::open(bad).unwrap_err().to_string();
            assert!(err.contains("blob store URL"), "{err}");
        }
    }

    #[test]
    fn staging_files_of_a_crashed_upload_are_removed_at_start_up() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("jobs/1")).unwrap();
        std::fs::write(dir.path().join("jobs/1/input#7"), b"half").unwrap();
        std::fs::write(dir.path().join("jobs/1/output"), b"kept").unwrap();
        let _blobs = ObjectBlobStore::local(dir.path()).unwrap();
        assert!(!dir.path().join("jobs/1/input#7").exists());
        assert!(dir.path().join("jobs/1/output").exists());
        assert!(is_staging_name("input#12") && !is_staging_name("a#b") && !is_staging_name("#1"));
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files.extend(walk(&path));
            } else {
                files.push(path);
            }
        }
        files
    }
}
