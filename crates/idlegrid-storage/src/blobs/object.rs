//! Blob store on the `object_store` crate: local files in embedded mode (`LocalFileSystem`
//! writes multipart uploads to a staging file and renames it into place on completion).

use super::{BlobStore, ByteStream, PutError, UploadStream};
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
    /// Blobs as files under `dir`, which is created if missing.
    pub fn local(dir: &std::path::Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StorageError::Backend(format!("creating {}: {e}", dir.display())))?;
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

    #[tokio::test]
    async fn verified_upload_round_trips_and_ranges_read() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = ObjectBlobStore::local(dir.path()).unwrap();
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
