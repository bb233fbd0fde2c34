//! The `concat` assembler: the job's output is its chunks' accepted outputs, concatenated in
//! input order, streamed into the blob store without holding the whole output in memory.

use super::Outputs;
use crate::apps::plugin::{AssembleError, Assembler};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use idlegrid_storage::blobs::BlobStore;
use idlegrid_storage::records::{JobRecord, OutputRef, Store, StoredBlob};
use std::sync::Arc;
use tokio::sync::mpsc;

/// The concatenating assembler.
pub struct Concat;

/// Small outputs are gathered into pieces of about this size before they are written.
const PIECE: usize = 1024 * 1024;

#[async_trait]
impl Assembler for Concat {
    async fn assemble(
        &self,
        job: &JobRecord,
        store: &Arc<dyn Store>,
        blobs: &Arc<dyn BlobStore>,
        output_key: &str,
    ) -> Result<StoredBlob, AssembleError> {
        let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(16);
        let body = tokio_stream_from(rx);
        let produce = async |tx: &mpsc::Sender<Result<Bytes, std::io::Error>>| {
            let mut outputs = Outputs::of(job, store.as_ref());
            let mut piece: Vec<u8> = Vec::with_capacity(PIECE);
            while let Some((_, output)) = outputs.next().await? {
                match output {
                    OutputRef::Inline(bytes) => {
                        piece.extend_from_slice(&bytes);
                        if piece.len() >= PIECE && !send_piece(tx, &mut piece).await {
                            return Ok(());
                        }
                    }
                    OutputRef::Blob(key) => {
                        if !send_piece(tx, &mut piece).await {
                            return Ok(());
                        }
                        let mut stream = blobs.get(&key, None).await?;
                        while let Some(part) = stream.next().await {
                            if tx.send(Ok(part?)).await.is_err() {
                                return Ok(());
                            }
                        }
                    }
                }
            }
            send_piece(tx, &mut piece).await;
            Ok::<(), AssembleError>(())
        };
        let producer = async move {
            let produced = produce(&tx).await;
            if produced.is_err() {
                // Make the blob store refuse the partial output instead of storing it.
                let _ = tx
                    .send(Err(std::io::Error::other("assembly stopped")))
                    .await;
            }
            produced
        };
        let consumer = blobs.put_stream(output_key, body, None, u64::MAX);
        let (produced, stored) = tokio::join!(producer, consumer);
        produced?;
        stored.map_err(|e| {
            AssembleError::Storage(idlegrid_storage::StorageError::Backend(e.to_string()))
        })
    }
}

/// Sends the gathered bytes, if any; false when the receiver is gone.
async fn send_piece(tx: &mpsc::Sender<Result<Bytes, std::io::Error>>, piece: &mut Vec<u8>) -> bool {
    if piece.is_empty() {
        return true;
    }
    let full = std::mem::replace(piece, Vec::with_capacity(PIECE));
    tx.send(Ok(Bytes::from(full))).await.is_ok()
}

fn tokio_stream_from(
    mut rx: mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> idlegrid_storage::blobs::UploadStream {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}
