//! Hashing and streaming of large bodies between files and HTTP, so inputs and outputs of any
//! size pass through in bounded memory.

use crate::{ClientError, IDLE_TIMEOUT};
use futures::StreamExt;
use reqwest::{Body, RequestBuilder, Response, header};
use sha2::{Digest, Sha256};
use std::io::{self, Read};
use std::path::Path;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Lower-case hex SHA-256 and size of a file, read in blocks.
pub fn sha256_file(path: &Path) -> io::Result<(String, u64)> {
    let mut file = std::fs::File::open(path).map_err(|err| with_path(err, "cannot open", path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(with_path(err, "cannot read", path)),
        };
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// Lower-case hex SHA-256 of a byte slice.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// [`sha256_file`] off the async runtime's threads.
pub(crate) async fn sha256_file_async(path: &Path) -> io::Result<(String, u64)> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || sha256_file(&path))
        .await
        .map_err(io::Error::other)?
}

/// An io error that names the file and what was being done to it.
pub(crate) fn with_path(err: io::Error, doing: &str, path: &Path) -> io::Error {
    io::Error::new(err.kind(), format!("{doing} {}: {err}", path.display()))
}

/// Adds `path`'s content to `request` as a streamed body with its length and SHA-256 header.
/// The deadline grows with the size, assuming a slow (1 MiB/s) but working link.
pub(crate) async fn file_body(
    request: RequestBuilder,
    path: &Path,
    sha256: &str,
) -> Result<RequestBuilder, ClientError> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|err| with_path(err, "cannot open", path))?;
    let size = file
        .metadata()
        .await
        .map_err(|err| with_path(err, "cannot stat", path))?
        .len();
    let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024);
    Ok(request
        .timeout(transfer_timeout(size))
        .header(header::CONTENT_LENGTH, size)
        .header(idlegrid_api::paths::CONTENT_SHA256, sha256)
        .body(Body::wrap_stream(stream)))
}

/// Deadline for sending `size` bytes.
pub(crate) fn transfer_timeout(size: u64) -> Duration {
    Duration::from_secs(120 + size / (1024 * 1024))
}

/// Streams a response body into `file`, returning its size and SHA-256. Gives up when the
/// coordinator sends nothing for [`IDLE_TIMEOUT`].
pub(crate) async fn body_to_file(
    response: Response,
    file: &mut tokio::fs::File,
    path: &Path,
) -> Result<(u64, String), ClientError> {
    let what = response.url().path().to_string();
    let mut stream = response.bytes_stream();
    // Response pieces are small; each write to a tokio file is a hop to the blocking pool.
    let mut file = tokio::io::BufWriter::with_capacity(1024 * 1024, file);
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    loop {
        let chunk = match tokio::time::timeout(IDLE_TIMEOUT, stream.next()).await {
            Ok(Some(chunk)) => chunk?,
            Ok(None) => break,
            Err(_) => {
                return Err(ClientError::Stalled(format!(
                    "the coordinator sent nothing for {} s while downloading {what}",
                    IDLE_TIMEOUT.as_secs()
                )));
            }
        };
        hasher.update(&chunk);
        size += chunk.len() as u64;
        file.write_all(&chunk)
            .await
            .map_err(|err| with_path(err, "cannot write", path))?;
    }
    file.flush()
        .await
        .map_err(|err| with_path(err, "cannot write", path))?;
    Ok((size, hex::encode(hasher.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_and_bytes_hash_alike() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"abc").unwrap();
        let (hex, size) = sha256_file(&path).unwrap();
        assert_eq!(size, 3);
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(sha256_bytes(b"abc"), hex);
        assert!(crate::is_sha256_hex(&hex));
        assert!(!crate::is_sha256_hex("../../etc"));
    }

    #[test]
    fn missing_file_error_names_it() {
        let err = sha256_file(Path::new("/nonexistent/idlegrid")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/idlegrid"), "{err}");
    }
}
