//! The `archive` and `zip` assemblers: the job's output is one tar (or zip) holding the files of every
//! chunk's output (each a tar, checked by the `tar` validator), in input order, streamed into
//! the blob store as it is written, and last an [`INDEX`] listing every file with its chunk,
//! size and SHA-256. Headers are written afresh (fixed owner, mode and time), so the same
//! outputs always make the same archive. Two chunks' outputs holding the same name (or one
//! named as the index) fail the job, naming it: which one the customer wants is not the grid's
//! to guess.

use super::Outputs;
use super::files::clean_name;
use crate::apps::plugin::{AssembleError, Assembler};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use idlegrid_storage::blobs::BlobStore;
use idlegrid_storage::records::{JobRecord, Store, StoredBlob};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::mpsc;

/// The archiving assembler: a tar (`archive`) or a zip (`zip`) of the outputs' files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Archive {
    /// A tar.
    Tar,
    /// A zip: files already compressed (pictures, archives) stored, others deflated.
    Zip,
}

/// Where the joined files go: a tar or a zip, written as a stream.
enum Sink {
    Tar(tar::Builder<Upload>),
    Zip(Box<zip::ZipWriter<zip::write::StreamWriter<Upload>>>),
}

impl Sink {
    fn new(format: Archive, upload: Upload) -> Sink {
        match format {
            Archive::Tar => Sink::Tar(tar::Builder::new(upload)),
            Archive::Zip => Sink::Zip(Box::new(zip::ZipWriter::new_stream(upload))),
        }
    }

    /// Adds a file of `size` bytes read from `data`, with fixed owner, mode and time.
    fn add(&mut self, name: &str, size: u64, data: &mut dyn Read) -> std::io::Result<()> {
        match self {
            Sink::Tar(tar) => {
                let mut header = tar::Header::new_ustar();
                header.set_size(size);
                header.set_mode(0o644);
                header.set_mtime(0);
                header.set_uid(0);
                header.set_gid(0);
                header.set_entry_type(tar::EntryType::Regular);
                tar.append_data(&mut header, name, data)
            }
            Sink::Zip(zip) => {
                let packed = [
                    ".jpg", ".jpeg", ".png", ".gif", ".webp", ".zip", ".gz", ".mp4", ".mkv",
                ]
                .iter()
                .any(|e| name.to_ascii_lowercase().ends_with(e));
                let method = if packed {
                    zip::CompressionMethod::Stored
                } else {
                    zip::CompressionMethod::Deflated
                };
                let options = zip::write::SimpleFileOptions::default()
                    .compression_method(method)
                    .unix_permissions(0o644)
                    .large_file(size >= u64::from(u32::MAX));
                zip.start_file(name, options)
                    .map_err(std::io::Error::other)?;
                std::io::copy(data, zip.as_mut())?;
                Ok(())
            }
        }
    }

    fn finish(self) -> std::io::Result<()> {
        let mut upload = match self {
            Sink::Tar(tar) => tar.into_inner()?,
            Sink::Zip(zip) => zip.finish().map_err(std::io::Error::other)?.into_inner(),
        };
        upload.flush()
    }
}

/// The name of the index the archive ends with.
pub const INDEX: &str = "index.json";

/// One file in the index.
#[derive(serde::Serialize)]
struct Indexed {
    name: String,
    chunk: u64,
    bytes: u64,
    sha256: String,
}

/// A reader that hashes what is read through it.
struct Hashing<R> {
    inner: R,
    hash: sha2::Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use sha2::Digest;
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// What the writer says when the outputs did not all arrive.
const ABANDONED: &str = "the outputs did not all arrive";
/// Bytes gathered before they are handed to the blob store.
const PIECE: usize = 1 << 20;

/// A writer that hands what is written, in pieces, to an upload.
struct Upload {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    piece: Vec<u8>,
}

impl Write for Upload {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.piece.extend_from_slice(buf);
        if self.piece.len() >= PIECE {
            self.flush()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.piece.is_empty() {
            return Ok(());
        }
        let piece = std::mem::replace(&mut self.piece, Vec::with_capacity(PIECE));
        self.tx
            .blocking_send(Ok(Bytes::from(piece)))
            .map_err(|_| std::io::Error::other("the upload stopped"))
    }
}

/// One chunk's output on the local disk, and whether it is a copy to remove once read.
struct Local {
    index: u64,
    path: PathBuf,
    copy: bool,
}

/// Copies the files of each output that arrives into one tar written to `upload`.
/// Stops at the end of the outputs without finishing the archive when `abandoned` is set by
/// then (the outputs did not all arrive).
fn write_archive(
    format: Archive,
    mut outputs: mpsc::Receiver<Local>,
    upload: Upload,
    abandoned: &AtomicBool,
) -> Result<(), String> {
    let mut sink = Sink::new(format, upload);
    let mut first_in: HashMap<String, u64> = HashMap::new();
    let mut index: Vec<Indexed> = Vec::new();
    let failed = |e: std::io::Error| format!("cannot write the archive: {e}");
    while let Some(local) = outputs.blocking_recv() {
        let file = std::fs::File::open(&local.path).map_err(failed)?;
        let mut chunk = tar::Archive::new(std::io::BufReader::new(file));
        let broken = |e: std::io::Error| {
            format!(
                "chunk {}'s output is not a tar archive: {e}",
                local.index + 1
            )
        };
        for entry in chunk.entries().map_err(broken)? {
            let mut entry = entry.map_err(broken)?;
            if entry.header().entry_type().is_dir() {
                continue;
            }
            let name = clean_name(&entry.path_bytes())?;
            if name == INDEX {
                return Err(format!(
                    "chunk {}'s output holds {INDEX:?}, the name of the archive's own index",
                    local.index + 1
                ));
            }
            if let Some(first) = first_in.insert(name.clone(), local.index) {
                return Err(format!(
                    "the outputs of chunks {} and {} both hold {name:?}",
                    first + 1,
                    local.index + 1
                ));
            }
            let size = entry.size();
            let mut hashing = Hashing {
                inner: (&mut entry).take(size),
                hash: Default::default(),
            };
            sink.add(&name, size, &mut hashing).map_err(failed)?;
            index.push(Indexed {
                name,
                chunk: local.index,
                bytes: size,
                sha256: hex::encode(sha2::Digest::finalize(hashing.hash)),
            });
        }
        if local.copy {
            let _ = std::fs::remove_file(&local.path);
        }
    }
    if abandoned.load(Ordering::SeqCst) {
        return Err(ABANDONED.into());
    }
    let mut listed = serde_json::to_vec_pretty(&index).map_err(|e| e.to_string())?;
    listed.push(b'\n');
    sink.add(INDEX, listed.len() as u64, &mut listed.as_slice())
        .map_err(failed)?;
    sink.finish().map_err(failed)
}

#[async_trait]
impl Assembler for Archive {
    async fn assemble(
        &self,
        job: &JobRecord,
        store: &Arc<dyn Store>,
        blobs: &Arc<dyn BlobStore>,
        output_key: &str,
    ) -> Result<StoredBlob, AssembleError> {
        let dir = crate::scratch::dir("archive")?;
        let (tx, mut rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(16);
        let body = futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed();
        let (local_tx, local_rx) = mpsc::channel::<Local>(2);
        let abandoned = Arc::new(AtomicBool::new(false));
        let format = *self;
        let writer = {
            let tx = tx.clone();
            let abandoned = abandoned.clone();
            tokio::task::spawn_blocking(move || {
                let upload = Upload {
                    tx: tx.clone(),
                    piece: Vec::with_capacity(PIECE),
                };
                let written = write_archive(format, local_rx, upload, &abandoned);
                if written.is_err() {
                    // Make the blob store refuse the partial output instead of storing it.
                    let _ = tx.blocking_send(Err(std::io::Error::other("assembly stopped")));
                }
                written
            })
        };
        drop(tx);
        let producer = async {
            let handed = async {
                let mut outputs = Outputs::of(job, store.as_ref());
                while let Some((index, output)) = outputs.next().await? {
                    let copy = dir.path().join(format!("{index:06}"));
                    let path = crate::apps::readable_output(blobs.as_ref(), &output, &copy).await?;
                    let copy = path == copy;
                    local_tx
                        .send(Local { index, path, copy })
                        .await
                        .map_err(|_| AssembleError::Inconsistent("the archive stopped".into()))?;
                }
                Ok::<(), AssembleError>(())
            }
            .await;
            abandoned.store(handed.is_err(), Ordering::SeqCst);
            drop(local_tx);
            let written = writer
                .await
                .unwrap_or_else(|_| Err("the archive stopped".into()));
            match (handed, written) {
                (Ok(()), written) => written.map_err(AssembleError::Inconsistent),
                // The writer stopped first: its reason says why the outputs stopped being taken.
                (Err(_), Err(reason)) if reason != ABANDONED => {
                    Err(AssembleError::Inconsistent(reason))
                }
                (Err(e), _) => Err(e),
            }
        };
        let consumer = blobs.put_stream(output_key, body, None, u64::MAX);
        let (produced, stored) = tokio::join!(producer, consumer);
        produced?;
        stored.map_err(|e| {
            AssembleError::Storage(idlegrid_storage::StorageError::Backend(e.to_string()))
        })
    }
}
