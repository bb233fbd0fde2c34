//! Steps that are the app's own code: a `partition.py` named as the manifest's `partitioner`
//! and a `reduce.py` named as its `assembler`. Partners' code never runs on the coordinator
//! (ARCHITECTURE.md, "Custom steps"): each step is one more task of the job, run on devices in
//! the task sandbox and replicated across parties
//! ([`idlegrid_domain::Replication::for_step`]), which the stages open as the job gets there:
//!
//! - the **partition task** first ([`crate::pipeline::partitioner`]): its input is the job's
//!   input, its output a tar (or zip) whose files are the chunks, in its order, read with the
//!   `files` fan-out's rules and at most [`MAX_PARTITION_CHUNKS`] ([`cut`]);
//! - the **reduce task** last ([`crate::pipeline::assembler`]): its input a tar of the chunks'
//!   accepted outputs ([`outputs_tar`]), its accepted output the job's ([`ReduceScript`]).
//!
//! Chunks keep the indexes from 0; a step's task lives apart, from [`STEP_BASE`], and says what
//! it is in its parameters ([`STEP`]), which its script sees as `IDLEGRID_TASK`.

use super::Outputs;
use crate::apps::plugin::{
    AssembleError, Assembler, InputSize, PartitionError, Partitioner, Plan, Split, Workload,
    refuse_other_options,
};
use async_trait::async_trait;
use futures::StreamExt;
use idlegrid_domain::Replication;
use idlegrid_storage::StorageError;
use idlegrid_storage::blobs::BlobStore;
use idlegrid_storage::records::{JobRecord, NewTask, OutputRef, Store, StoredBlob};
use std::io::Read;
use std::sync::Arc;
use tokio::sync::mpsc;

/// The task parameter that marks a step's task.
pub const STEP: &str = "step";
/// The value of [`STEP`] for the partition task.
pub const PARTITION: &str = "partition";
/// The value of [`STEP`] for the reduce task.
pub const REDUCE: &str = "reduce";
/// The first index of a step's task: chunks are numbered below it.
pub const STEP_BASE: u64 = 1 << 40;
/// The partition task's index.
pub const PARTITION_INDEX: u64 = STEP_BASE;
/// The reduce task's index.
pub const REDUCE_INDEX: u64 = STEP_BASE + 1;
/// Most chunks a partition script may cut an input into.
pub const MAX_PARTITION_CHUNKS: u64 = 10_000;
/// Bytes a partition script's chunks may hold beyond twice the input's: it cuts (and may
/// repeat some context in every chunk), it does not make the coordinator store a flood.
pub const PARTITION_SLACK_BYTES: u64 = 64 << 20;
/// The reduce task's input file name in the task's `input/` directory.
pub const REDUCE_INPUT: &str = "outputs.tar";
/// Most bytes of outputs a reduce step reads: a job whose outputs are larger needs a built-in
/// fan-in (they stream; a device's memory and bandwidth do not).
pub const MAX_REDUCE_INPUT: u64 = 1 << 30;

/// Whether a manifest's step name names a script of the bundle rather than a built-in step.
pub fn is_script(name: &str) -> bool {
    name.ends_with(".py")
}

/// Whether a task's parameters make it a step's task, not a chunk.
pub fn is_step(meta: Option<&serde_json::Value>) -> bool {
    step_of(meta).is_some()
}

/// Which step a task runs (from its parameters): `partition` or `reduce`; `None` for a chunk.
pub fn step_of(meta: Option<&serde_json::Value>) -> Option<&str> {
    meta.and_then(|m| m.get(STEP))
        .and_then(serde_json::Value::as_str)
}

/// The parameters of the partition task, run by `script`.
pub fn partition_meta(script: &str) -> serde_json::Value {
    serde_json::json!({ STEP: PARTITION, "script": script })
}

/// The parameters of a reduce task over `chunks` outputs, run by `script`.
pub fn reduce_meta(script: &str, chunks: u64) -> serde_json::Value {
    serde_json::json!({ STEP: REDUCE, "script": script, "chunks": chunks })
}

/// The file name a step's task gets its input under, when not the app's own: the reduce's
/// tar of outputs.
pub fn input_name(meta: Option<&serde_json::Value>) -> Option<&'static str> {
    (step_of(meta) == Some(REDUCE)).then_some(REDUCE_INPUT)
}

/// The facts of a job whose partition task, run by `script`, is opened: they keep the job's
/// own replication, which its chunks get back once cut ([`job_replication`]).
pub fn partition_facts(job: &JobRecord, script: &str) -> serde_json::Value {
    serde_json::json!({ "partition_step": script, "replication": job.spec.replication })
}

/// The replication a job's chunks run under: its own, kept in its facts while its partition
/// task ran under the step's.
pub fn job_replication(job: &JobRecord) -> Replication {
    job.facts
        .as_ref()
        .and_then(|f| f.get("replication"))
        .and_then(|r| serde_json::from_value(r.clone()).ok())
        .unwrap_or(job.spec.replication)
}

/// How many chunks a job of `chunks_total` tasks has, given its step tasks recorded so far.
pub async fn chunk_count(job: &JobRecord, store: &dyn Store) -> Result<u64, StorageError> {
    let steps = store.job_tasks(job.id, STEP_BASE, 4).await?.len() as u64;
    Ok(job.chunks_total.unwrap_or(0).saturating_sub(steps))
}

/// The script a step's task runs (from its parameters); `None` for a chunk.
pub fn script_of(meta: Option<&serde_json::Value>) -> Option<&str> {
    step_of(meta)?;
    meta?.get("script")?.as_str()
}

/// What a task is, for its customer: `chunk N` (counted from 1), or the step it runs
/// (`the reduce step (reduce.py)`).
pub fn task_name(index: u64, meta: Option<&serde_json::Value>) -> String {
    match (step_of(meta), script_of(meta)) {
        (Some(step), Some(script)) => format!("the {step} step ({script})"),
        _ => format!("chunk {}", index + 1),
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

    /// The job's output is the reduce task's accepted output.
    async fn assemble(
        &self,
        job: &JobRecord,
        store: &Arc<dyn Store>,
        blobs: &Arc<dyn BlobStore>,
        output_key: &str,
    ) -> Result<StoredBlob, AssembleError> {
        let output = match store.accepted_outputs(job.id, REDUCE_INDEX, 1).await?.pop() {
            Some((index, output)) if index == REDUCE_INDEX => output,
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

/// Writes the accepted outputs of the job's chunks into one tar stored under `key`: one file
/// per chunk, named by its index (`000000`, `000001`, …), in input order, with fixed owner,
/// mode and time so the same outputs always give the same bytes (replicas of the reduce
/// compare by hash). Refused past [`MAX_REDUCE_INPUT`]. Returns the tar and how many chunks
/// it holds.
pub async fn outputs_tar(
    job: &JobRecord,
    store: &dyn Store,
    blobs: &dyn BlobStore,
    key: &str,
) -> Result<(StoredBlob, u64), AssembleError> {
    let dir = crate::scratch::dir("reduce")?;
    let path = dir.path().join(REDUCE_INPUT);
    let file = std::fs::File::create(&path).map_err(io)?;
    let mut tar = Some(tar::Builder::new(std::io::BufWriter::new(file)));
    let mut outputs = Outputs::of(job, store);
    let (mut read, mut chunks) = (0u64, 0u64);
    while let Some((index, output)) = outputs.next().await? {
        chunks += 1;
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
    Ok((blobs.put_file(key, &path).await?, chunks))
}

/// The fan-out of an app that cuts its input with its own script.
pub struct PartitionScript {
    /// The bundle's file that cuts.
    pub script: String,
}

#[async_trait]
impl Partitioner for PartitionScript {
    fn step(&self) -> Option<&str> {
        Some(&self.script)
    }

    fn check_job(
        &self,
        _params: &serde_json::Value,
        options: &serde_json::Value,
    ) -> Result<(), String> {
        refuse_other_options(
            options,
            &[],
            "an app whose own partition script cuts its input",
        )
    }

    /// Priced by the input's bytes, as byte ranges are: what the script will make of them is
    /// not known before it ran.
    fn workload(
        &self,
        params: &serde_json::Value,
        options: &serde_json::Value,
        size: &InputSize,
        plan: &Plan,
    ) -> Result<Workload, String> {
        super::bytes::ByteRanges.workload(params, options, size, plan)
    }

    /// Never called: the Partitioner stage opens the script's task instead
    /// ([`Partitioner::step`]).
    async fn split(
        &self,
        _job: &JobRecord,
        _blobs: &dyn BlobStore,
        _plan: &Plan,
        _out: mpsc::Sender<Split>,
    ) -> Result<Option<serde_json::Value>, PartitionError> {
        Err(PartitionError::Rejected(format!(
            "{} runs as a task on devices, not here",
            self.script
        )))
    }
}

/// Cuts the chunks of `job` out of its partition task's accepted `output`: every file of the
/// archive, in its order, is a chunk (a blob of its own), with its name in the chunk's
/// parameters. The archive is read with the `files` fan-out's rules (plain relative names
/// once each, no links, sizes bounded before anything is unpacked) and may hold from 1 to
/// [`MAX_PARTITION_CHUNKS`] files, of at most twice the input's bytes and
/// [`PARTITION_SLACK_BYTES`]; the error says what is wrong with it.
pub async fn cut(
    job: &JobRecord,
    output: &OutputRef,
    blobs: &dyn BlobStore,
) -> Result<Result<Vec<NewTask>, String>, StorageError> {
    let dir = crate::scratch::dir("partition")?;
    let copy = dir.path().join("partition-output");
    let local = crate::apps::readable_output(blobs, output, &copy).await?;
    let target = dir.path().to_path_buf();
    let most = job
        .input
        .as_ref()
        .map_or(0, |i| i.size)
        .saturating_mul(2)
        .saturating_add(PARTITION_SLACK_BYTES);
    let written = tokio::task::spawn_blocking(move || -> Result<Vec<(String, u64)>, String> {
        let (kind, entries) =
            super::files::list(&local).map_err(|e| format!("the partition step's output: {e}"))?;
        let bytes: u64 = entries.iter().map(|e| e.size).sum();
        if bytes > most {
            return Err(format!(
                "the partition step's chunks hold {bytes} bytes; the most is twice the input's \
                 bytes and {} MiB more ({most})",
                PARTITION_SLACK_BYTES >> 20
            ));
        }
        if entries.is_empty() {
            return Err("the partition step's output holds no chunk".into());
        }
        if entries.len() as u64 > MAX_PARTITION_CHUNKS {
            return Err(format!(
                "the partition step cut the input into {} chunks; the most is \
                 {MAX_PARTITION_CHUNKS}",
                entries.len()
            ));
        }
        let mut chunks = Vec::with_capacity(entries.len());
        super::files::walk(&local, kind, |entry, data| {
            let path = target.join(format!("{:06}", chunks.len()));
            let mut file =
                std::fs::File::create(&path).map_err(|e| format!("cannot write a chunk: {e}"))?;
            let copied = std::io::copy(&mut data.take(entry.size), &mut file)
                .map_err(|e| format!("the partition step's output is damaged: {e}"))?;
            if copied != entry.size {
                return Err(format!(
                    "the partition step's output is damaged: {:?} is shorter than it says",
                    entry.name
                ));
            }
            chunks.push((entry.name, entry.size));
            Ok(())
        })?;
        Ok(chunks)
    })
    .await
    .map_err(io)?;
    let chunks = match written {
        Ok(chunks) => chunks,
        Err(reason) => return Ok(Err(reason)),
    };
    let mut tasks = Vec::with_capacity(chunks.len());
    for (index, (name, size)) in chunks.into_iter().enumerate() {
        let file = dir.path().join(format!("{index:06}"));
        let key = crate::blob_keys::chunk(job.id, &format!("{index:06}"));
        let stored = blobs.put_file(&key, &file).await?;
        tasks.push(NewTask {
            index: index as u64,
            input_key: Some(stored.key),
            offset: 0,
            len: size,
            meta: Some(serde_json::json!({ "name": name })),
            work_ms: super::lines::work_of(size),
        });
    }
    Ok(Ok(tasks))
}

fn io(e: impl std::fmt::Display) -> StorageError {
    StorageError::Backend(format!("writing the reduce step's input: {e}"))
}
