//! The Assembler stage: takes jobs whose every chunk has an accepted result from the `assemble`
//! queue, merges the results with the app's assembler into the job's output blob, and completes
//! the job. Re-running it after a crash rebuilds the same output from the same records.

use crate::apps::plugin::AssembleError;
use crate::grid::Grid;
use idlegrid_domain::{JobId, JobState};
use idlegrid_storage::StorageError;
use idlegrid_storage::queue::Stage;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Jobs worked on at once.
pub const PARALLEL_JOBS: usize = 4;

/// Runs the stage until `shutdown`, assembling up to [`PARALLEL_JOBS`] jobs at once.
pub async fn run(grid: Arc<Grid>, shutdown: CancellationToken) {
    crate::pipeline::stage::run_per_job(
        grid,
        Stage::Assemble,
        PARALLEL_JOBS,
        shutdown,
        |grid, job| async move { assemble_job(&grid, job).await },
    )
    .await;
}

/// Assembles one job. Storage errors are returned for a retry.
pub async fn assemble_job(grid: &Grid, job_id: JobId) -> Result<(), StorageError> {
    let Some(job) = grid.store.job(job_id).await? else {
        return Ok(());
    };
    if job.state != JobState::Assembling {
        return Ok(());
    }
    let Some(app) = grid.app_of(&job).await? else {
        crate::lifecycle::end_job(
            grid,
            job_id,
            JobState::Failed,
            Some("the job's app is gone"),
        )
        .await?;
        return Ok(());
    };
    let started = std::time::Instant::now();
    let assembled = crate::tools::in_stage(
        crate::tools::Stage::Assemble,
        app.assembler.assemble(
            &job,
            &grid.store,
            &grid.blobs,
            &crate::blob_keys::output(job_id),
        ),
    )
    .await;
    match assembled {
        Ok(output) => {
            // The customer's copy first: a job is completed only once it exists.
            if let Some(external) = crate::external::External::of(&job)
                && let Err(reason) = crate::external::deliver_output(
                    grid,
                    &external,
                    &output,
                    job.facts
                        .as_ref()
                        .is_some_and(crate::apps::video::output_is_archive),
                )
                .await?
            {
                crate::lifecycle::end_job(grid, job_id, JobState::Failed, Some(&reason)).await?;
                return Ok(());
            }
            crate::logs::step(
                grid,
                job_id,
                "assemble",
                &format!(
                    "INFO: {} outputs joined by {} into {} bytes",
                    job.chunks_total.unwrap_or(0),
                    app.manifest.assembler,
                    output.size
                ),
            )
            .await;
            if crate::lifecycle::complete_job(grid, job_id, &output).await? {
                tracing::info!(job = %job_id, bytes = output.size, elapsed_ms = started.elapsed().as_millis() as u64, "job completed");
            }
            Ok(())
        }
        Err(AssembleError::Inconsistent(reason)) => {
            crate::logs::step(grid, job_id, "assemble", &format!("ERROR: {reason}")).await;
            crate::lifecycle::end_job(
                grid,
                job_id,
                JobState::Failed,
                Some(&format!("assembly failed: {reason}")),
            )
            .await?;
            Ok(())
        }
        Err(AssembleError::Storage(e)) => Err(e),
    }
}
