//! The `lines` partitioner: cuts a text or record file on line boundaries into chunks, of N
//! lines when the customer says, otherwise of about the size the tier and the grid's capacity
//! call for (ending at the first line end past it). Chunks are byte ranges of the uploaded
//! input, so partitioning copies nothing.
//!
//! Cost model: a customer's script can do anything with a line, so python-map is priced by
//! volume — [`MS_PER_MIB`] reference core-milliseconds per MiB of input, plus [`MS_PER_CHUNK`]
//! for each chunk's start-up.

use super::BATCH;
use crate::apps::plugin::{
    InputSize, PartitionError, Partitioner, Plan, Split, Workload, count_option,
    refuse_other_options,
};
use async_trait::async_trait;
use futures::StreamExt;
use idlegrid_storage::blobs::BlobStore;
use idlegrid_storage::records::{JobRecord, NewTask};
use tokio::sync::mpsc;

/// Most lines per chunk.
pub const MAX_CHUNK_LINES: u64 = 10_000_000;
/// Work per MiB of input (reference core-ms).
pub const MS_PER_MIB: i64 = 1_000;
/// Work of a chunk's start-up: lease, download, Python starting, report (reference core-ms).
pub const MS_PER_CHUNK: i64 = 200;
/// Lines are assumed at least this long on average when only a line count per chunk is known
/// (to bound a chunk's size before the input is read).
const ASSUMED_LINE_BYTES: u64 = 64;

/// The line partitioner; with `header`, the `csv` one: the input's first line is its header,
/// given to every chunk before its lines.
pub struct Lines {
    /// Whether the first line is a header that every chunk starts with.
    pub header: bool,
}

/// Longest header line, in bytes.
pub const MAX_HEADER_BYTES: u64 = 64 << 10;
/// Largest chunk a headed input is cut into (each is stored with its header), in bytes.
pub const MAX_HEADED_CHUNK_BYTES: u64 = 256 << 20;

/// Stores each of `tasks`' byte ranges of `input` with `header` before it as a chunk of its
/// own (named by its index), and points the task at it.
async fn with_header(
    blobs: &dyn BlobStore,
    job: &JobRecord,
    input: &str,
    header: &bytes::Bytes,
    tasks: Vec<NewTask>,
) -> Result<Vec<NewTask>, PartitionError> {
    let mut headed = Vec::with_capacity(tasks.len());
    for mut task in tasks {
        if task.len > MAX_HEADED_CHUNK_BYTES {
            return Err(PartitionError::Rejected(format!(
                "a chunk of this input would be {} bytes, over the {MAX_HEADED_CHUNK_BYTES} a \
                 chunk with a header may have: choose fewer lines a chunk",
                task.len
            )));
        }
        let lines = blobs
            .get_bytes(input, Some(task.offset..task.offset + task.len))
            .await?;
        let mut chunk = Vec::with_capacity(header.len() + lines.len());
        chunk.extend_from_slice(header);
        chunk.extend_from_slice(&lines);
        let key = crate::blob_keys::chunk(job.id, &format!("{:06}.csv", task.index));
        let stored = blobs.put_bytes(&key, chunk.into()).await?;
        task.input_key = Some(key);
        task.offset = 0;
        task.len = stored.size;
        headed.push(task);
    }
    Ok(headed)
}

/// How chunks end: after so many lines, or at the first line end past so many bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cut {
    Lines(u64),
    Bytes(u64),
}

fn chunk_lines(options: &serde_json::Value) -> Result<Option<u64>, String> {
    count_option(options, "lines", "chunk_lines", MAX_CHUNK_LINES)
}

/// Work of a chunk of `bytes`.
pub(super) fn work_of(bytes: u64) -> i64 {
    MS_PER_CHUNK + (bytes as i128 * i128::from(MS_PER_MIB) / (1 << 20)) as i64
}

/// How a job's input of `bytes` (of `lines` lines, when counted) is cut, with its workload.
pub(super) fn plan_cut(
    options: &serde_json::Value,
    bytes: u64,
    lines: Option<u64>,
    plan: &Plan,
) -> Result<(Cut, Workload), String> {
    let volume = (bytes as i128 * i128::from(MS_PER_MIB) / (1 << 20)) as i64;
    match chunk_lines(options)? {
        Some(per_chunk) => {
            let (chunks, largest) = match lines {
                // Counted: exactly this many chunks; the largest at most the whole input, and
                // about its share of it.
                Some(lines) => {
                    let chunks = lines.div_ceil(per_chunk).max(1);
                    let share = bytes.div_ceil(chunks);
                    (chunks, bytes.min(share.saturating_mul(2)))
                }
                // Every line is at least one byte: at most this many chunks.
                None => (
                    bytes.div_ceil(per_chunk).max(1),
                    bytes.min(per_chunk.saturating_mul(ASSUMED_LINE_BYTES)),
                ),
            };
            Ok((
                Cut::Lines(per_chunk),
                Workload {
                    work_ms: volume + MS_PER_CHUNK * chunks as i64,
                    chunks,
                    largest_chunk_ms: work_of(largest),
                },
            ))
        }
        None => {
            let target = plan.chunk_work_ms(volume).max(MS_PER_CHUNK + 1);
            let chunk_bytes = ((target as i128 * (1 << 20) / i128::from(MS_PER_MIB)) as u64).max(1);
            let chunks = bytes.div_ceil(chunk_bytes).max(1);
            Ok((
                Cut::Bytes(chunk_bytes),
                Workload {
                    work_ms: volume + MS_PER_CHUNK * chunks as i64,
                    chunks,
                    largest_chunk_ms: work_of(bytes.min(chunk_bytes)),
                },
            ))
        }
    }
}

/// The lines of a stored text: its line ends, and a last line without one.
async fn count_lines(
    blobs: &dyn BlobStore,
    key: &str,
) -> Result<u64, idlegrid_storage::StorageError> {
    let mut stream = blobs.get(key, None).await?;
    let (mut lines, mut last) = (0u64, b'\n');
    while let Some(bytes) = stream.next().await {
        let bytes = bytes?;
        lines += bytes.iter().filter(|b| **b == b'\n').count() as u64;
        if let Some(&b) = bytes.last() {
            last = b;
        }
    }
    Ok(lines + u64::from(last != b'\n'))
}

#[async_trait]
impl Partitioner for Lines {
    fn check_job(
        &self,
        _params: &serde_json::Value,
        options: &serde_json::Value,
    ) -> Result<(), String> {
        refuse_other_options(options, &["lines"], "a text: it is cut by chunk_lines")?;
        chunk_lines(options).map(|_| ())
    }

    fn workload(
        &self,
        _params: &serde_json::Value,
        options: &serde_json::Value,
        size: &InputSize,
        plan: &Plan,
    ) -> Result<Workload, String> {
        match size {
            InputSize::Bytes(bytes) => plan_cut(options, *bytes, None, plan).map(|(_, w)| w),
            InputSize::Text { bytes, lines } => {
                plan_cut(options, *bytes, Some(*lines), plan).map(|(_, w)| w)
            }
            InputSize::Items { .. } => Err("this app takes a text input".into()),
            InputSize::Video { .. } => Err("python-map takes a text input, not a video".into()),
        }
    }

    async fn measure(
        &self,
        job: &JobRecord,
        blobs: &dyn BlobStore,
    ) -> Result<InputSize, PartitionError> {
        let input = job
            .input
            .as_ref()
            .ok_or_else(|| PartitionError::Rejected("the job has no input".into()))?;
        let lines = count_lines(blobs, &input.key).await?;
        Ok(InputSize::Text {
            bytes: input.size,
            lines,
        })
    }

    async fn split(
        &self,
        job: &JobRecord,
        blobs: &dyn BlobStore,
        plan: &Plan,
        out: mpsc::Sender<Split>,
    ) -> Result<Option<serde_json::Value>, PartitionError> {
        let input = job
            .input
            .as_ref()
            .ok_or_else(|| PartitionError::Rejected("the job has no input".into()))?;
        // Chunks of N lines are priced by the lines there are: counted first (one read of the
        // input, before any chunk exists, so the quote held is the exact one).
        let lines = match chunk_lines(&job.spec.partition_options) {
            Ok(Some(_)) => Some(count_lines(blobs, &input.key).await?),
            _ => None,
        };
        let (cut, workload) = plan_cut(&job.spec.partition_options, input.size, lines, plan)
            .map_err(PartitionError::Rejected)?;
        out.send(Split::Workload(workload))
            .await
            .map_err(|_| PartitionError::Stopped)?;
        // A headed input's first line is its header: kept to start every chunk, and no chunk's.
        let header = if self.header {
            let head = blobs
                .get_bytes(&input.key, Some(0..input.size.min(MAX_HEADER_BYTES)))
                .await?;
            let end = head.iter().position(|&b| b == b'\n').ok_or_else(|| {
                PartitionError::Rejected(format!(
                    "the input's first line, its header, must end within {MAX_HEADER_BYTES} bytes"
                ))
            })?;
            Some(head.slice(..end + 1))
        } else {
            None
        };
        let header_len = header.as_ref().map_or(0, |h| h.len() as u64);
        let mut stream = blobs.get(&input.key, None).await?;
        let mut batch = Vec::with_capacity(BATCH);
        let (mut offset, mut chunk_start, mut lines) = (0u64, header_len, 0u64);
        let mut index = 0u64;
        let mut emit = |start: u64, end: u64, batch: &mut Vec<NewTask>| {
            batch.push(NewTask {
                index,
                input_key: None,
                offset: start,
                len: end - start,
                meta: None,
                work_ms: work_of(end - start),
            });
            index += 1;
        };
        while let Some(bytes) = stream.next().await {
            let bytes = bytes?;
            for (i, _) in bytes.iter().enumerate().filter(|(_, b)| **b == b'\n') {
                let end = offset + i as u64 + 1;
                if end <= header_len {
                    continue;
                }
                lines += 1;
                let full = match cut {
                    Cut::Lines(n) => lines == n,
                    Cut::Bytes(n) => end - chunk_start >= n,
                };
                if full {
                    emit(chunk_start, end, &mut batch);
                    chunk_start = end;
                    lines = 0;
                    // Full batches go at once: one read may hold many thousands of chunks.
                    if batch.len() >= BATCH {
                        let mut full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                        if let Some(header) = &header {
                            full = with_header(blobs, job, &input.key, header, full).await?;
                        }
                        out.send(Split::Tasks(full))
                            .await
                            .map_err(|_| PartitionError::Stopped)?;
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
        if let Some(header) = &header {
            batch = with_header(blobs, job, &input.key, header, batch).await?;
        }
        if !batch.is_empty() {
            out.send(Split::Tasks(batch))
                .await
                .map_err(|_| PartitionError::Stopped)?;
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
        assert_eq!(chunk_lines(&json!({})), Ok(None));
        assert_eq!(chunk_lines(&json!({"lines": 5})), Ok(Some(5)));
        assert!(
            chunk_lines(&json!({"lines": 0}))
                .unwrap_err()
                .contains("from 1")
        );
        assert!(chunk_lines(&json!({"lines": "x"})).is_err());
    }

    fn plan(slots: u64) -> Plan {
        Plan {
            tier: idlegrid_domain::Tier::Standard,
            capacity: idlegrid_domain::schedule::Capacity {
                slots,
                speed: slots as f64,
            },
            timeout_secs: 600,
        }
    }

    #[test]
    fn chunk_size_follows_capacity_unless_fixed() {
        let mib = 1 << 20;
        // 100 MiB is 100 s of work: two chunks per slot on 10 slots is 20 chunks of 5 MiB.
        let (cut, work) = plan_cut(&json!({}), 100 * mib, None, &plan(10)).unwrap();
        assert_eq!(cut, Cut::Bytes(5 * mib));
        assert_eq!(work.chunks, 20);
        assert_eq!(work.work_ms, 100_000 + 20 * MS_PER_CHUNK);
        // A grid of 4 slots gets larger chunks; one of 50 would get chunks below the floor
        // of 5 s of work, so it gets the floor.
        let (cut, _) = plan_cut(&json!({}), 100 * mib, None, &plan(4)).unwrap();
        assert_eq!(cut, Cut::Bytes(12_800 * 1024));
        let (_, wide) = plan_cut(&json!({}), 100 * mib, None, &plan(50)).unwrap();
        assert_eq!(wide.chunks, 20);
        // Fixed line counts are kept, with a bound on the chunk count.
        let (cut, work) = plan_cut(&json!({"lines": 10}), 1000, None, &plan(10)).unwrap();
        assert_eq!(cut, Cut::Lines(10));
        assert_eq!(work.chunks, 100);
        // Counted lines give the exact count: 45 lines of 10 are 5 chunks, whatever the bytes.
        let (_, counted) = plan_cut(&json!({"lines": 10}), 1000, Some(45), &plan(10)).unwrap();
        assert_eq!(counted.chunks, 5);
        assert!(counted.work_ms < work.work_ms);
        let (_, empty) = plan_cut(&json!({"lines": 10}), 0, Some(0), &plan(10)).unwrap();
        assert_eq!(empty.chunks, 1);
    }
}
