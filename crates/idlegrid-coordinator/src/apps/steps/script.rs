//! A fan-in that is the app's own code: a `reduce.py` of its bundle, named as the manifest's
//! `assembler`. Partners' code never runs on the coordinator (ARCHITECTURE.md, "Custom steps"):
//! once every chunk has an accepted output, the Assembler stage makes one more task of the job,
//! the **reduce task**, whose input is a tar of those outputs ([`outputs_tar`]) and whose script
//! is the reduce; it runs on devices in the task sandbox, replicated across parties
//! ([`idlegrid_domain::Replication::for_step`]), and its accepted output becomes the job's
//! ([`ReduceScript`]'s `assemble` copies it).
//!
//! The reduce task is the job's last task, at the index after the last chunk, and says what it
//! is in its parameters ([`STEP`]); the script sees them as `IDLEGRID_TASK`.

use super::Outputs;
use crate::apps::plugin::{AssembleError, Assembler};
use async_trait::async_trait;
use futures::StreamExt;
use idlegrid_storage::StorageError;
use idlegrid_storage::blobs::BlobStore;
use idlegrid_storage::records::{JobRecord, OutputRef, Store, StoredBlob};
use std::sync::Arc;

/// The task parameter that marks a step's task, and its value for the reduce.
pub const STEP: &str = "step";
/// The value of [`STEP`] for the reduce task.
pub const REDUCE: &str = "reduce";
/// The reduce task's input file name in the task's `input/` directory.
pub const REDUCE_INPUT: &str = "outputs.tar";
/// Most bytes of outputs a reduce step reads: a job whose outputs are larger needs a built-in
/// fan-in (they stream; a device's memory and bandwidth do not).
pub const MAX_REDUCE_INPUT: u64 = 1 << 30;

/// Whether a manifest's step name names a script of the bundle rather than a built-in step.
pub fn is_script(name: &str) -> bool {
    name.ends_with(".py")
}

/// Whether a task's parameters make it a step's task (the reduce), not a chunk.
pub fn is_step(meta: Option<&serde_json::Value>) -> bool {
    meta.and_then(|m| m.get(STEP)).is_some()
}

/// The parameters of a reduce task over `chunks` outputs, run by `script`.
pub fn reduce_meta(script: &str, chunks: u64) -> serde_json::Value {
    serde_json::json!({ STEP: REDUCE, "script": script, "chunks": chunks })
}

/// The script a step's task runs (from its parameters); `None` for a chunk.
pub fn script_of(meta: Option<&serde_json::Value>) -> Option<&str> {
    if !is_step(meta) {
        return None;
    }
    meta.and_then(|m| m.get("script"))
        .and_then(serde_json::Value::as_str)
}

/// What a task is, for its customer: `chunk N` (counted from 1), or the step it runs
/// (`the reduce step (reduce.py)`).
pub fn task_name(index: u64, meta: Option<&serde_json::Value>) -> String {
    match script_of(meta) {
        Some(script) => format!("the reduce step ({script})"),
        None => format!("chunk {}", index + 1),
    }
}

/// The fan-in of an app whose reduce is its own script.
pub struct ReduceScript {
    /// The bundle's file that reduces.
    pub script: String,
}

#[async_trait]
impl Assembler for ReduceScript {
    fn step(&self) -> Option<&str> {
        Some(&self.script)
    }

    /// The job's output is the reduce task's accepted output (the job's last task).
    async fn assemble(
        &self,
        job: &JobRecord,
        store: &Arc<dyn Store>,
        blobs: &Arc<dyn BlobStore>,
        output_key: &str,
    ) -> Result<StoredBlob, AssembleError> {
        let total = job.chunks_total.unwrap_or(0);
        let last = total.checked_sub(1).ok_or_else(no_reduce)?;
        let output = match store.accepted_outputs(job.id, last, 1).await?.pop() {
            Some((index, output)) if index == last => output,
            _ => return Err(no_reduce()),
        };
        Ok(match output {
            OutputRef::Inline(bytes) => blobs.put_bytes(output_key, bytes.into()).await?,
            OutputRef::Blob(key) => {
                let body = blobs
                    .get(&key, None)
                    .await?
                    .map(|part| part.map_err(std::io::Error::other))
                    .boxed();
                blobs
                    .put_stream(output_key, body, None, u64::MAX)
                    .await
                    .map_err(|e| StorageError::Backend(e.to_string()))?
            }
        })
    }
}

fn no_reduce() -> AssembleError {
    AssembleError::Inconsistent("the reduce step has no accepted output".into())
}

/// Writes the accepted outputs of the job's `chunks` chunks into one tar stored under `key`:
/// one file per chunk, named by its index (`000000`, `000001`, …), in input order, with fixed
/// owner, mode and time so the same outputs always give the same bytes (replicas of the reduce
/// compare by hash). Refused past [`MAX_REDUCE_INPUT`].
pub async fn outputs_tar(
    job: &JobRecord,
    chunks: u64,
    store: &dyn Store,
    blobs: &dyn BlobStore,
    key: &str,
) -> Result<StoredBlob, AssembleError> {
    let dir = crate::scratch::dir("reduce")?;
    let path = dir.path().join(REDUCE_INPUT);
    let file = std::fs::File::create(&path).map_err(io)?;
    let mut tar = Some(tar::Builder::new(std::io::BufWriter::new(file)));
    let mut outputs = Outputs::of(job, store);
    let mut read = 0u64;
    while let Some((index, output)) = outputs.next().await? {
        if index >= chunks {
            break;
        }
        let copy = dir.path().join(format!("{index:06}"));
        let local = crate::apps::readable_output(blobs, &output, &copy).await?;
        let mut builder = tar.take().ok_or_else(|| io("the tar stopped"))?;
        let (builder, size) = tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(&local)?;
            let size = file.metadata()?.len();
            let mut header = tar::Header::new_ustar();
            header.set_size(size);
            header.set_mode(0o644);
            header.set_mtime(0);
            header.set_uid(0);
            header.set_gid(0);
            header.set_entry_type(tar::EntryType::Regular);
            builder.append_data(&mut header, format!("{index:06}"), file)?;
            if local == copy {
                let _ = std::fs::remove_file(&copy);
            }
            Ok::<_, std::io::Error>((builder, size))
        })
        .await
        .map_err(io)?
        .map_err(io)?;
        tar = Some(builder);
        read += size;
        if read > MAX_REDUCE_INPUT {
            return Err(AssembleError::Inconsistent(format!(
                "the outputs total more than {} MiB, the most a reduce step reads; use a \
                 built-in fan-in (concat, archive, sum, stats) for jobs this large",
                MAX_REDUCE_INPUT >> 20
            )));
        }
    }
    let builder = tar.take().ok_or_else(|| io("the tar stopped"))?;
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let written = builder.into_inner()?;
        written.into_inner().map_err(|e| e.into_error())?.sync_all()
    })
    .await
    .map_err(io)?
    .map_err(io)?;
    Ok(blobs.put_file(key, &path).await?)
}

fn io(e: impl std::fmt::Display) -> StorageError {
    StorageError::Backend(format!("writing the reduce step's input: {e}"))
}
