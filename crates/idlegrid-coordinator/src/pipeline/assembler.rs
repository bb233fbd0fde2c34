//! The Assembler stage: takes jobs whose every chunk has an accepted result from the `assemble`
//! queue, merges the results with the app's assembler into the job's output blob, and completes
//! the job. Re-running it after a crash rebuilds the same output from the same records.

use crate::apps::plugin::AssembleError;
use crate::grid::Grid;
use idlegrid_domain::{JobId, JobState};
use idlegrid_storage::StorageError;
use idlegrid_storage::queue::{Item, Stage};
use idlegrid_storage::records::{JobRecord, NewTask};
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
    if let Some(script) = app.assembler.step() {
        match open_reduce(grid, &job, script).await? {
            Step::Done => {}
            Step::Opened => return Ok(()),
            Step::Refused(reason) => {
                crate::logs::step(grid, job_id, "assemble", &format!("ERROR: {reason}")).await;
                crate::lifecycle::end_job(grid, job_id, JobState::Failed, Some(&reason)).await?;
                return Ok(());
            }
        }
    }
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

/// Where an app's reduce step stands.
enum Step {
    /// Its task has an accepted output: the job can be assembled.
    Done,
    /// Its task was just opened (or opened again after a crash): devices run it.
    Opened,
    /// It cannot run; the job fails with this reason.
    Refused(String),
}

/// Opens the reduce task of a job whose app reduces with its own `script`, unless the job's
/// last task is that task already (then every task, the reduce's too, has an accepted
/// output). The task is recorded at the index after the last chunk, its input a tar of the
/// chunks' outputs; then the job runs again with one more task and the step's replication
/// ([`idlegrid_domain::Replication::for_step`]). Safe to repeat after a crash: the input is
/// the same bytes, recording the task again is a no-op, and opening checks the job's state.
async fn open_reduce(grid: &Grid, job: &JobRecord, script: &str) -> Result<Step, StorageError> {
    use crate::apps::steps::script;
    let chunks = job.chunks_total.unwrap_or(0);
    if let Some(last) = chunks.checked_sub(1) {
        let tasks = grid.store.job_tasks(job.id, last, 1).await?;
        if tasks
            .first()
            .is_some_and(|t| t.chunk.index == last && script::is_step(t.chunk.meta.as_ref()))
        {
            return Ok(Step::Done);
        }
    }
    let key = crate::blob_keys::chunk(job.id, script::REDUCE_INPUT);
    let input = match script::outputs_tar(
        job,
        chunks,
        grid.store.as_ref(),
        grid.blobs.as_ref(),
        &key,
    )
    .await
    {
        Ok(input) => input,
        Err(AssembleError::Inconsistent(reason)) => return Ok(Step::Refused(reason)),
        Err(AssembleError::Storage(e)) => return Err(e),
    };
    let task = NewTask {
        index: chunks,
        input_key: Some(input.key.clone()),
        offset: 0,
        len: input.size,
        meta: Some(script::reduce_meta(script, chunks)),
        // A step is billed as a task: its quote counted it as one more chunk of the largest.
        work_ms: job.billing.map_or(0, |b| b.largest_chunk_ms),
    };
    let policy = idlegrid_domain::Replication::for_step(job.spec.replication, job.spec.placement);
    grid.store
        .insert_tasks(
            job.id,
            std::slice::from_ref(&task),
            policy.initial_replicas(),
        )
        .await?;
    let Some(reopened) = grid.store.open_step(job.id, chunks + 1, &policy).await? else {
        // Cancelled or ended meanwhile.
        return Ok(Step::Opened);
    };
    let ids: Vec<i64> = grid
        .store
        .job_tasks(job.id, chunks, 1)
        .await?
        .into_iter()
        .map(|t| t.id.0)
        .collect();
    grid.activate(&reopened).await;
    let items: Vec<Item> = ids.into_iter().map(|id| Item { job: job.id, id }).collect();
    grid.queues.push(Stage::Feed, &items).await?;
    grid.events.job_changed(job.id);
    crate::logs::step(
        grid,
        job.id,
        "reduce",
        &format!(
            "INFO: {chunks} outputs ({} bytes) handed to {script} as one more task",
            input.size
        ),
    )
    .await;
    Ok(Step::Opened)
}
