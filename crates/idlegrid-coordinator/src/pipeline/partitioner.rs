//! The Partitioner stage: takes submitted jobs from the `partition` queue, verifies and splits
//! their input with the app's partitioner, records one task per chunk and queues the task ids
//! for the Feeder (the deck's "partitioner queue").
//!
//! Before any chunk is recorded, the app's partitioner states the job's **workload** (its work
//! in reference core-milliseconds, from the app's cost model); the stage prices it for the
//! job's tier, refuses it above the customer's `max_price`, and holds the quote from the
//! customer's balance. A job the customer cannot pay for fails here, before any device works on
//! it. Chunk sizes follow the tier and the grid's capacity ([`Plan`]) unless the customer fixed
//! them, and the chunks of each batch are queued longest first.
//!
//! Restartable: chunks are produced in a fixed order and recorded with their index, and
//! re-recording an index is a no-op; after a crash the job is partitioned again from the start
//! and only chunks not yet recorded are queued.

use crate::apps::plugin::{PartitionError, Plan, Split, Workload};
use crate::grid::Grid;
use idlegrid_domain::{Credits, JobId, JobState};
use idlegrid_storage::StorageError;
use idlegrid_storage::queue::{Item, Stage};
use idlegrid_storage::records::{Hold, JobRecord, NewTask};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Why a job cannot be charged, in words for the customer; `None` when its quote is held.
async fn hold(
    grid: &Grid,
    job: &JobRecord,
    workload: &Workload,
) -> Result<Option<String>, StorageError> {
    let replicas = job.spec.replication.billed_copies();
    let quote =
        idlegrid_domain::pricing::quote(job.spec.tier, workload.work_ms, workload.chunks, replicas);
    if let Some(max) = job.spec.max_price
        && quote.price > max
    {
        return Ok(Some(format!(
            "the quote for this job is {} credits, above its max_price of {max} credits; \
             raise max_price or choose a cheaper tier",
            quote.price
        )));
    }
    match grid
        .store
        .hold_quote(job.id, &quote, workload.largest_chunk_ms)
        .await?
    {
        Hold::Held | Hold::AlreadyHeld => Ok(None),
        Hold::Short { available } => Ok(Some(insufficient(quote.price, available))),
    }
}

/// The message for a customer whose balance does not cover a price.
pub fn insufficient(price: Credits, available: Credits) -> String {
    format!(
        "not enough credit: this job costs up to {price} credits and your balance is \
         {available} credits; add credit, or choose the economy tier"
    )
}

/// Jobs worked on at once.
pub const PARALLEL_JOBS: usize = 4;

/// Runs the stage until `shutdown`, partitioning up to [`PARALLEL_JOBS`] jobs at once.
pub async fn run(grid: Arc<Grid>, shutdown: CancellationToken) {
    crate::pipeline::stage::run_per_job(
        grid,
        Stage::Partition,
        PARALLEL_JOBS,
        shutdown,
        |grid, job| async move { partition_job(&grid, job).await },
    )
    .await;
}

/// Partitions one job. Storage errors are returned for a retry; bad input fails the job.
pub async fn partition_job(grid: &Grid, job_id: JobId) -> Result<(), StorageError> {
    let Some(job) = grid
        .store
        .transition_job(job_id, JobState::Partitioning, None)
        .await?
    else {
        // Cancelled, or already partitioned by an earlier delivery.
        return Ok(());
    };
    grid.events.job_changed(job_id);
    let Some(app) = grid.app_of(&job).await? else {
        crate::lifecycle::end_job(
            grid,
            job_id,
            JobState::Failed,
            Some(&format!("app {:?} is no longer offered", job.spec.app)),
        )
        .await?;
        return Ok(());
    };
    // An input from a URL or the customer's bucket is fetched first (again, after a crash).
    let job = match crate::external::External::of(&job) {
        Some(external) if job.input.is_none() && external.fetches_input() => {
            match crate::external::fetch_input(grid, &job, &external).await? {
                Ok(input) => {
                    grid.store.set_job_input(job_id, &input).await?;
                    tracing::info!(job = %job_id, bytes = input.size, "input fetched");
                    match grid.store.job(job_id).await? {
                        Some(job) => job,
                        None => return Ok(()),
                    }
                }
                Err(reason) => {
                    crate::lifecycle::refuse_input(grid, job_id, &reason).await?;
                    return Ok(());
                }
            }
        }
        _ => job,
    };
    let plan = Plan::of(&job, grid.capacity().await);
    if let Some(script) = app.partitioner.step() {
        return open_partition(grid, &job, &app, &plan, script).await;
    }
    let replicas = job.spec.replication.initial_replicas();
    let (tx, mut rx) = mpsc::channel::<Split>(2);
    let split = crate::tools::in_stage(
        crate::tools::Stage::Partition,
        app.partitioner.split(&job, grid.blobs.as_ref(), &plan, tx),
    );
    let record = async {
        let mut total = 0u64;
        let mut held = false;
        while let Some(message) = rx.recv().await {
            let mut batch = match message {
                Split::Workload(workload) => {
                    let workload = app.with_steps(workload);
                    if let Some(reason) = hold(grid, &job, &workload).await? {
                        return Ok(Err(reason));
                    }
                    held = true;
                    // Now with its quote: the Feeder knows its largest chunk.
                    if let Some(record) = grid.store.job(job_id).await? {
                        grid.activate(&record).await;
                    }
                    continue;
                }
                Split::Tasks(batch) if held => batch,
                Split::Tasks(_) => {
                    return Err(StorageError::Corrupt(format!(
                        "partitioner {} sent chunks before the workload",
                        app.manifest.partitioner
                    )));
                }
            };
            total += batch.len() as u64;
            batch.sort_by_key(|t| t.index);
            let ids = grid.store.insert_tasks(job_id, &batch, replicas).await?;
            let mut items: Vec<(i64, Item)> = ids
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    // Every chunk new (not a repeat after a crash): ids follow the batch.
                    let work = if ids.len() == batch.len() {
                        batch[i].work_ms
                    } else {
                        0
                    };
                    (
                        work,
                        Item {
                            job: job_id,
                            id: t.0,
                        },
                    )
                })
                .collect();
            // Longest first, so the largest chunks do not start last.
            items.sort_by_key(|(work, item)| (std::cmp::Reverse(*work), item.id));
            let items: Vec<Item> = items.into_iter().map(|(_, item)| item).collect();
            grid.queues.push(Stage::Feed, &items).await?;
        }
        Ok::<Result<u64, String>, StorageError>(Ok(total))
    };
    let (split, total) = tokio::join!(split, record);
    let total = match total? {
        Ok(total) => total,
        Err(reason) => {
            crate::logs::step(grid, job_id, "partition", &format!("ERROR: {reason}")).await;
            crate::lifecycle::end_job(grid, job_id, JobState::Failed, Some(&reason)).await?;
            return Ok(());
        }
    };
    let said = match &split {
        Ok(Some(facts)) => format!("INFO: cut into {total} chunks: {facts}"),
        Ok(None) => format!("INFO: cut into {total} chunks"),
        Err(PartitionError::Rejected(reason)) => format!("ERROR: input rejected: {reason}"),
        Err(_) => String::new(),
    };
    if !said.is_empty() {
        crate::logs::step(grid, job_id, "partition", &said).await;
    }
    match split {
        Ok(Some(facts)) => grid.store.set_job_facts(job_id, &facts).await?,
        Ok(None) => {}
        Err(PartitionError::Rejected(reason)) => {
            crate::lifecycle::refuse_input(grid, job_id, &format!("input rejected: {reason}"))
                .await?;
            return Ok(());
        }
        Err(PartitionError::Storage(e)) => return Err(e),
        Err(PartitionError::Stopped) => return Ok(()),
    }
    let state = grid.store.finish_partition(job_id, total).await?;
    if state == Some(JobState::Assembling) {
        grid.queues
            .push(
                Stage::Assemble,
                &[Item {
                    job: job_id,
                    id: job_id.0,
                }],
            )
            .await?;
    }
    grid.events.job_changed(job_id);
    tracing::info!(job = %job_id, chunks = total, "job partitioned");
    Ok(())
}

/// Opens the partition task of a job whose app cuts its input with its own `script`: the
/// quote, priced from the input's bytes ([`crate::apps::steps::script::PartitionScript`]), is
/// held; the task (the whole input, run by the script) is recorded, and the job runs it under
/// the step's replication, its own kept in its facts until the chunks are cut (by the
/// Assembler stage, from the task's accepted output). Safe to repeat after a crash.
async fn open_partition(
    grid: &Grid,
    job: &JobRecord,
    app: &crate::apps::App,
    plan: &Plan,
    script: &str,
) -> Result<(), StorageError> {
    use crate::apps::steps::script as steps;
    let Some(input) = &job.input else {
        crate::lifecycle::refuse_input(grid, job.id, "input rejected: the job has no input")
            .await?;
        return Ok(());
    };
    let size = crate::apps::plugin::InputSize::Bytes(input.size);
    let workload =
        match app
            .partitioner
            .workload(&job.spec.params, &job.spec.partition_options, &size, plan)
        {
            Ok(workload) => app.with_steps(workload),
            Err(reason) => {
                crate::lifecycle::refuse_input(grid, job.id, &format!("input rejected: {reason}"))
                    .await?;
                return Ok(());
            }
        };
    if let Some(reason) = hold(grid, job, &workload).await? {
        crate::logs::step(grid, job.id, "partition", &format!("ERROR: {reason}")).await;
        crate::lifecycle::end_job(grid, job.id, JobState::Failed, Some(&reason)).await?;
        return Ok(());
    }
    // Facts first: they keep the job's own replication before the step's replaces it.
    if job.facts.is_none() {
        grid.store
            .set_job_facts(job.id, &steps::partition_facts(job, script))
            .await?;
    }
    let policy = idlegrid_domain::Replication::for_step(job.spec.replication, job.spec.placement);
    let task = NewTask {
        index: steps::PARTITION_INDEX,
        input_key: None,
        offset: 0,
        len: input.size,
        meta: Some(steps::partition_meta(script)),
        work_ms: workload.largest_chunk_ms,
    };
    grid.store
        .insert_tasks(
            job.id,
            std::slice::from_ref(&task),
            policy.initial_replicas(),
        )
        .await?;
    let Some(opened) = grid.store.open_step(job.id, 1, &policy).await? else {
        return Ok(());
    };
    grid.activate(&opened).await;
    let ids: Vec<Item> = grid
        .store
        .job_tasks(job.id, steps::PARTITION_INDEX, 1)
        .await?
        .into_iter()
        .map(|t| Item {
            job: job.id,
            id: t.id.0,
        })
        .collect();
    grid.queues.push(Stage::Feed, &ids).await?;
    grid.events.job_changed(job.id);
    crate::logs::step(
        grid,
        job.id,
        "partition",
        &format!(
            "INFO: the input ({} bytes) handed to {script} as a task",
            input.size
        ),
    )
    .await;
    Ok(())
}
