//! The `bytes` partitioner: any file cut into byte ranges of the size the tier and the grid's
//! capacity call for, wherever the bytes fall (for inputs with no lines to respect, such as a
//! file to hash or scan in pieces). Chunks are ranges of the uploaded input, so partitioning
//! copies nothing. Priced by volume like `lines`.

use super::lines::{Cut, plan_cut, work_of};
use super::send_in_batches;
use crate::apps::plugin::{
    InputSize, PartitionError, Partitioner, Plan, Split, Workload, refuse_other_options,
};
use async_trait::async_trait;
use idlegrid_storage::blobs::BlobStore;
use idlegrid_storage::records::{JobRecord, NewTask};
use tokio::sync::mpsc;

/// The byte-range partitioner.
pub struct ByteRanges;

/// The ranges `[start, end)` of an input of `size` cut every `every` bytes (none for an empty
/// input).
pub fn ranges(size: u64, every: u64) -> impl Iterator<Item = (u64, u64)> {
    let every = every.max(1);
    let count = size.div_ceil(every);
    (0..count).map(move |i| (i * every, ((i + 1) * every).min(size)))
}

#[async_trait]
impl Partitioner for ByteRanges {
    fn check_job(
        &self,
        _params: &serde_json::Value,
        options: &serde_json::Value,
    ) -> Result<(), String> {
        refuse_other_options(
            options,
            &[],
            "an app cut into byte ranges: the grid sizes them",
        )
    }

    fn workload(
        &self,
        _params: &serde_json::Value,
        options: &serde_json::Value,
        size: &InputSize,
        plan: &Plan,
    ) -> Result<Workload, String> {
        match size {
            InputSize::Bytes(bytes) | InputSize::Text { bytes, .. } => {
                plan_cut(options, *bytes, None, plan).map(|(_, w)| w)
            }
            InputSize::Items { .. } | InputSize::Video { .. } => {
                Err("this app cuts a file into byte ranges: describe it by input_bytes".into())
            }
        }
    }

    async fn split(
        &self,
        job: &JobRecord,
        _blobs: &dyn BlobStore,
        plan: &Plan,
        out: mpsc::Sender<Split>,
    ) -> Result<Option<serde_json::Value>, PartitionError> {
        let input = job
            .input
            .as_ref()
            .ok_or_else(|| PartitionError::Rejected("the job has no input".into()))?;
        let (cut, workload) = plan_cut(&job.spec.partition_options, input.size, None, plan)
            .map_err(PartitionError::Rejected)?;
        let Cut::Bytes(every) = cut else {
            return Err(PartitionError::Rejected(
                "an app cut into byte ranges takes no chunk_lines".into(),
            ));
        };
        out.send(Split::Workload(workload))
            .await
            .map_err(|_| PartitionError::Stopped)?;
        let tasks = ranges(input.size, every)
            .enumerate()
            .map(|(index, (start, end))| NewTask {
                index: index as u64,
                input_key: None,
                offset: start,
                len: end - start,
                meta: None,
                work_ms: work_of(end - start),
            });
        let chunks = send_in_batches(&out, tasks).await?;
        Ok(Some(
            serde_json::json!({ "bytes": input.size, "chunks": chunks }),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_the_input_once_in_order() {
        let cut: Vec<_> = ranges(10, 4).collect();
        assert_eq!(cut, vec![(0, 4), (4, 8), (8, 10)]);
        assert_eq!(ranges(8, 4).count(), 2);
        assert_eq!(ranges(0, 4).count(), 0);
        assert_eq!(ranges(3, 0).count(), 3);
    }
}
