//! The `lines` partitioner: cuts a text or record file on line boundaries into chunks of N
//! lines. Chunks are byte ranges of the uploaded input, so partitioning copies nothing.

use crate::partitioner::{PartitionError, Partitioner};
use async_trait::async_trait;
use futures::StreamExt;
use idlegrid_storage::blobs::BlobStore;
use idlegrid_storage::records::{JobRecord, NewTask};
use tokio::sync::mpsc;

/// Lines per chunk when the job does not say.
pub const DEFAULT_CHUNK_LINES: u64 = 1000;
/// Most lines per chunk.
pub const MAX_CHUNK_LINES: u64 = 10_000_000;
/// Chunks per batch handed to the stage (one records transaction each).
const BATCH: usize = 4096;

/// The line partitioner.
pub struct Lines;

fn chunk_lines(options: &serde_json::Value) -> Result<u64, String> {
    match options.get("lines") {
        None | Some(serde_json::Value::Null) => Ok(DEFAULT_CHUNK_LINES),
        Some(v) => match v.as_u64() {
            Some(n) if (1..=MAX_CHUNK_LINES).contains(&n) => Ok(n),
            _ => Err(format!(
                "chunk_lines must be a whole number from 1 to {MAX_CHUNK_LINES}, got {v}"
            )),
        },
    }
}

#[async_trait]
impl Partitioner for Lines {
    fn check_job(
        &self,
        _params: &serde_json::Value,
        options: &serde_json::Value,
    ) -> Result<(), String> {
        chunk_lines(options).map(|_| ())
    }

    async fn split(
        &self,
        job: &JobRecord,
        blobs: &dyn BlobStore,
        out: mpsc::Sender<Vec<NewTask>>,
    ) -> Result<Option<serde_json::Value>, PartitionError> {
        let lines_per_chunk =
            chunk_lines(&job.spec.partition_options).map_err(PartitionError::Rejected)?;
        let input = job
            .input
            .as_ref()
            .ok_or_else(|| PartitionError::Rejected("the job has no input".into()))?;
        let mut stream = blobs.get(&input.key, None).await?;
        let mut batch = Vec::with_capacity(BATCH);
        let (mut offset, mut chunk_start, mut lines) = (0u64, 0u64, 0u64);
        let mut index = 0u64;
        let mut emit = |start: u64, end: u64, batch: &mut Vec<NewTask>| {
            batch.push(NewTask {
                index,
                input_key: None,
                offset: start,
                len: end - start,
                meta: None,
            });
            index += 1;
        };
        while let Some(bytes) = stream.next().await {
            let bytes = bytes?;
            for (i, _) in bytes.iter().enumerate().filter(|(_, b)| **b == b'\n') {
                lines += 1;
                if lines == lines_per_chunk {
                    let end = offset + i as u64 + 1;
                    emit(chunk_start, end, &mut batch);
                    chunk_start = end;
                    lines = 0;
                    // Full batches go at once: one read may hold many thousands of chunks.
                    if batch.len() >= BATCH {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                        out.send(full).await.map_err(|_| PartitionError::Stopped)?;
                    }
                }
            }
            offset += bytes.len() as u64;
        }
        if offset != input.size {
            return Err(PartitionError::Rejected(format!(
                "stored input is {offset} bytes but {} were uploaded",
                input.size
            )));
        }
        if chunk_start < offset {
            emit(chunk_start, offset, &mut batch);
        }
        if !batch.is_empty() {
            out.send(batch).await.map_err(|_| PartitionError::Stopped)?;
        }
        Ok(Some(
            serde_json::json!({ "bytes": offset, "chunks": index }),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn options_are_checked() {
        assert_eq!(chunk_lines(&json!({})), Ok(DEFAULT_CHUNK_LINES));
        assert_eq!(chunk_lines(&json!({"lines": 5})), Ok(5));
        assert!(
            chunk_lines(&json!({"lines": 0}))
                .unwrap_err()
                .contains("from 1")
        );
        assert!(chunk_lines(&json!({"lines": "x"})).is_err());
    }
}
