//! The Assembler stage: takes jobs whose every chunk has an accepted result from the `assemble`
//! queue, merges the results with the app's assembler into the job's output blob, and completes
//! the job. Re-running it after a crash rebuilds the same output from the same records.

use crate::apps::plugin::AssembleError;
use crate::grid::Grid;
use idlegrid_domain::{JobId, JobState, TaskState};
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
    match own_steps(grid, &job, &app).await? {
        (_, Step::Done) => {}
        (_, Step::Opened) => return Ok(()),
        (step, Step::Refused(reason)) => {
            crate::logs::step(grid, job_id, step, &format!("ERROR: {reason}")).await;
            crate::lifecycle::end_job(grid, job_id, JobState::Failed, Some(&reason)).await?;
            return Ok(());
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
            let chunks = crate::apps::steps::script::chunk_count(&job, grid.store.as_ref()).await?;
            let said = match app.assembler.step() {
                Some(script) => format!(
                    "INFO: {chunks} outputs reduced by {script} into {} bytes",
                    output.size
                ),
                None => format!(
                    "INFO: {chunks} outputs joined by {} into {} bytes",
                    app.manifest.assembler, output.size
                ),
            };
            crate::logs::step(grid, job_id, "assemble", &said).await;
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

/// Where a step of an app's own stands, as its job reaches the Assembler stage.
enum Step {
    /// Nothing to open: the job can go on.
    Done,
    /// Tasks were just opened (or opened again after a crash): devices run them.
    Opened,
    /// It cannot go on; the job fails with this reason.
    Refused(String),
}

/// Where the app's own steps stand, with the step's name: its partition task done, the chunks
/// it cut are opened; the chunks done, its reduce task. `Done` when there is nothing to open.
async fn own_steps(
    grid: &Grid,
    job: &JobRecord,
    app: &crate::apps::App,
) -> Result<(&'static str, Step), StorageError> {
    if let Some(script) = app.partitioner.step() {
        let at = cut_chunks(grid, job, script).await?;
        if !matches!(at, Step::Done) {
            return Ok(("partition", at));
        }
    }
    match app.assembler.step() {
        Some(script) => Ok(("reduce", open_reduce(grid, job, script).await?)),
        None => Ok(("", Step::Done)),
    }
}

/// Records `tasks` of the job (again, after a crash: a no-op) and opens them: the job runs with
/// `total` tasks under `policy`, and the tasks go to the Feeder.
async fn open(
    grid: &Grid,
    job: JobId,
    tasks: &[NewTask],
    total: u64,
    policy: &idlegrid_domain::Replication,
) -> Result<bool, StorageError> {
    for batch in tasks.chunks(crate::apps::steps::BATCH) {
        grid.store
            .insert_tasks(job, batch, policy.initial_replicas())
            .await?;
    }
    let Some(reopened) = grid.store.open_step(job, total, policy).await? else {
        // Cancelled or ended meanwhile.
        return Ok(false);
    };
    grid.activate(&reopened).await;
    let mut items = Vec::with_capacity(tasks.len());
    for task in tasks {
        // Ids in index order, whether recorded now or before the crash.
        items.push(task.index);
    }
    let mut ids = Vec::with_capacity(items.len());
    let mut from = items.first().copied().unwrap_or(0);
    while ids.len() < items.len() {
        let page = grid.store.job_tasks(job, from, 1000).await?;
        let Some(last) = page.last().map(|t| t.chunk.index) else {
            break;
        };
        ids.extend(
            page.iter()
                .filter(|t| items.binary_search(&t.chunk.index).is_ok())
                .map(|t| Item { job, id: t.id.0 }),
        );
        from = last + 1;
    }
    grid.queues.push(Stage::Feed, &ids).await?;
    grid.events.job_changed(job);
    Ok(true)
}

/// Cuts the chunks of a job whose app partitions with its own `script` from the partition
/// task's accepted output, unless they are cut and opened already (then every one has an
/// accepted output), and opens them under the job's own replication (kept in its facts while the
/// partition task ran under the step's).
async fn cut_chunks(grid: &Grid, job: &JobRecord, script: &str) -> Result<Step, StorageError> {
    use crate::apps::steps::script;
    // Cut and opened: the job counts them. (Cut but not opened, after a crash: cut again, the
    // same chunks, and open them.)
    if script::chunk_count(job, grid.store.as_ref()).await? > 0 {
        return Ok(Step::Done);
    }
    let output = match grid
        .store
        .accepted_outputs(job.id, script::PARTITION_INDEX, 1)
        .await?
        .pop()
    {
        Some((index, output)) if index == script::PARTITION_INDEX => output,
        _ => {
            return Ok(Step::Refused(
                "the partition step has no accepted output".into(),
            ));
        }
    };
    let tasks = match script::cut(job, &output, grid.blobs.as_ref()).await? {
        Ok(tasks) => tasks,
        Err(reason) => return Ok(Step::Refused(reason)),
    };
    let policy = script::job_replication(job);
    let total = job.chunks_total.unwrap_or(0) + tasks.len() as u64;
    if open(grid, job.id, &tasks, total, &policy).await? {
        crate::logs::step(
            grid,
            job.id,
            "partition",
            &format!("INFO: {script} cut the input into {} chunks", tasks.len()),
        )
        .await;
    }
    Ok(Step::Opened)
}

/// Opens the reduce task of a job whose app reduces with its own `script`, unless it has an
/// accepted output already. Its input is a tar of the chunks' outputs; the job runs again with
/// one more task and the step's replication ([`idlegrid_domain::Replication::for_step`]). Safe to repeat after a crash: a task recorded
/// but not opened is opened as it was, and opening checks the job's state.
async fn open_reduce(grid: &Grid, job: &JobRecord, script: &str) -> Result<Step, StorageError> {
    use crate::apps::steps::script;
    let policy = idlegrid_domain::Replication::for_step(job.spec.replication, job.spec.placement);
    let total = job.chunks_total.unwrap_or(0) + 1;
    match grid
        .store
        .job_tasks(job.id, script::REDUCE_INDEX, 1)
        .await?
        .into_iter()
        .find(|t| t.chunk.index == script::REDUCE_INDEX)
    {
        Some(t) if t.state == TaskState::Done => return Ok(Step::Done),
        // Recorded but not opened (a crash between the two): opened as it was recorded, its
        // input as it was written.
        Some(t) => {
            open(grid, job.id, std::slice::from_ref(&t.chunk), total, &policy).await?;
            return Ok(Step::Opened);
        }
        None => {}
    }
    let key = crate::blob_keys::chunk(job.id, script::REDUCE_INPUT);
    let (input, chunks) =
        match script::outputs_tar(job, grid.store.as_ref(), grid.blobs.as_ref(), &key).await {
            Ok(made) => made,
            Err(AssembleError::Inconsistent(reason)) => return Ok(Step::Refused(reason)),
            Err(AssembleError::Storage(e)) => return Err(e),
        };
    let task = NewTask {
        index: script::REDUCE_INDEX,
        input_key: Some(input.key.clone()),
        offset: 0,
        len: input.size,
        meta: Some(script::reduce_meta(script, chunks)),
        // A step is billed as a task: its quote counted it as one more chunk of the largest.
        work_ms: job.billing.map_or(0, |b| b.largest_chunk_ms),
    };
    if open(grid, job.id, std::slice::from_ref(&task), total, &policy).await? {
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
    }
    Ok(Step::Opened)
}
