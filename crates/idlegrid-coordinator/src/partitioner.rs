//! The Partitioner stage: takes submitted jobs from the `partition` queue, verifies and splits
//! their input with the app's partitioner, records one task per chunk and queues the task ids
//! for the Feeder (the deck's "partitioner queue").
//!
//! Restartable: chunks are produced in a fixed order and recorded with their index, and
//! re-recording an index is a no-op; after a crash the job is partitioned again from the start
//! and only chunks not yet recorded are queued.

use crate::grid::Grid;
use async_trait::async_trait;
use idlegrid_domain::{JobId, JobState};
use idlegrid_storage::StorageError;
use idlegrid_storage::blobs::BlobStore;
use idlegrid_storage::queue::{Item, Stage};
use idlegrid_storage::records::{JobRecord, NewTask};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Why splitting stopped.
#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    /// The input is not acceptable; the job fails with this reason.
    #[error("{0}")]
    Rejected(String),
    /// Storage failed; partitioning is retried later.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The receiving side went away (shutdown).
    #[error("partitioning stopped")]
    Stopped,
}

/// An app-specific partitioner.
#[async_trait]
pub trait Partitioner: Send + Sync {
    /// Checks a job's app parameters and partition options when the job is created; the error
    /// is shown to the customer.
    fn check_job(
        &self,
        params: &serde_json::Value,
        options: &serde_json::Value,
    ) -> Result<(), String>;

    /// Verifies the job's input and sends its chunks, in index order, in batches. Returns the
    /// facts found out about the input, to be recorded on the job.
    async fn split(
        &self,
        job: &JobRecord,
        blobs: &dyn BlobStore,
        out: mpsc::Sender<Vec<NewTask>>,
    ) -> Result<Option<serde_json::Value>, PartitionError>;
}

/// Jobs worked on at once.
pub const PARALLEL_JOBS: usize = 4;

/// Runs the stage until `shutdown`, partitioning up to [`PARALLEL_JOBS`] jobs at once.
pub async fn run(grid: Arc<Grid>, shutdown: CancellationToken) {
    crate::stage::run_per_job(
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
    let Some(app) = grid.apps.get(&job.spec.app) else {
        grid.end_job(
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
                    grid.end_job(job_id, JobState::Failed, Some(&reason))
                        .await?;
                    return Ok(());
                }
            }
        }
        _ => job,
    };
    grid.schedule.activate(grid, &job)?;
    let replicas = job.spec.replication.initial_replicas();
    let (tx, mut rx) = mpsc::channel::<Vec<NewTask>>(2);
    let split = app.partitioner.split(&job, grid.blobs.as_ref(), tx);
    let record = async {
        let mut total = 0u64;
        while let Some(batch) = rx.recv().await {
            total += batch.len() as u64;
            let ids = grid.store.insert_tasks(job_id, &batch, replicas).await?;
            let items: Vec<Item> = ids
                .iter()
                .map(|t| Item {
                    job: job_id,
                    id: t.0,
                })
                .collect();
            grid.queues.push(Stage::Feed, &items).await?;
        }
        Ok::<u64, StorageError>(total)
    };
    let (split, total) = tokio::join!(split, record);
    let total = total?;
    match split {
        Ok(Some(facts)) => grid.store.set_job_facts(job_id, &facts).await?,
        Ok(None) => {}
        Err(PartitionError::Rejected(reason)) => {
            grid.end_job(
                job_id,
                JobState::Failed,
                Some(&format!("input rejected: {reason}")),
            )
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
