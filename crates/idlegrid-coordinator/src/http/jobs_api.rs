//! The Jobs API: customers create jobs, upload inputs, run them, follow their progress, cancel
//! them, download their outputs and see their webhook deliveries. Every call is authenticated
//! with the customer's API key, and a job of another tenant is reported as not found.

use crate::external::External;
use crate::grid::Grid;
use crate::http::auth::Customer;
use crate::http::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::pipeline::webhooks::Webhook;
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use idlegrid_api::jobs::{
    ChunkState, ChunkView, CreateJob, Job, JobChunks, JobList, JobLogs, LogLevel, WebhookDeliveries,
};
use idlegrid_api::paths::CONTENT_SHA256;
use idlegrid_api::{ErrorBody, JobId, JobState, TaskId, TaskState, UploadReceipt};
use idlegrid_domain::Placement;
use idlegrid_storage::queue::{Item, Stage};
use idlegrid_storage::records::{JobRecord, NewJob, ReplicaStage, ReplicaState};
use serde::Deserialize;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use crate::http::checks::*;
use crate::http::views::*;

/// Most jobs per page of `GET /v1/jobs`.
const MAX_PAGE: u32 = 500;

/// Create a job.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", request_body = CreateJob,
    security(("api_key" = [])),
    responses((status = 201, body = Job), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_job(
    State(grid): State<Arc<Grid>>,
    customer: Customer,
    ApiJson(request): ApiJson<CreateJob>,
) -> ApiResult<(StatusCode, Json<Job>)> {
    let crate::http::apps_api::Resolved { app, published } =
        crate::http::apps_api::resolve_app(&grid, customer.0, &request.app).await?;
    if !request.params.is_object() {
        return Err(ApiError::invalid(
            "invalid_params",
            "params must be a JSON object",
        ));
    }
    check_preferences(&request.preferences)
        .map_err(|m| ApiError::invalid("invalid_preferences", m))?;
    let name = crate::http::checks::optional_text(
        request.name.as_deref(),
        200,
        "a job's name",
        "invalid_name",
    )?;
    let external = External::from_request(
        request.input_from.as_ref(),
        request.output_to.as_ref(),
        grid.config.allow_private_sources,
        grid.secrets.as_ref(),
    )
    .await
    .map_err(|m| ApiError::invalid("invalid_source", m))?;
    let webhook = match &request.webhook {
        None => None,
        Some(spec) => Some(
            Webhook::create(
                spec,
                grid.config.allow_private_sources,
                grid.secrets.as_ref(),
            )
            .await
            .map_err(|m| ApiError::invalid("invalid_webhook", m))?,
        ),
    };
    let manifest = &app.manifest;
    let (placement, replication) =
        placement_and_replication(&grid, customer.0, &request.preferences, manifest).await?;
    if replication.is_replicated() && !(manifest.deterministic || manifest.customer_script) {
        return Err(ApiError::invalid(
            "invalid_preferences",
            format!(
                "replication compares results by hash and needs a deterministic app; {} is not",
                manifest.name
            ),
        ));
    }
    let partition_options = crate::apps::plugin::partition_options(
        request.chunk_lines,
        request.chunk_seconds,
        request.chunk_items,
    );
    app.partitioner
        .check_job(&request.params, &partition_options)
        .and_then(|()| crate::apps::published::check_params(&app.manifest, &request.params))
        .map_err(|m| ApiError::invalid("invalid_params", m))?;
    let script = match (&request.script, app.manifest.customer_script) {
        (Some(script), true) if script.trim().is_empty() => {
            return Err(ApiError::invalid(
                "missing_script",
                "the task script is empty",
            ));
        }
        (Some(script), true) if script.len() > grid.config.max_script_bytes => {
            return Err(ApiError::invalid(
                "script_too_large",
                format!(
                    "the task script is {} bytes; the limit is {}",
                    script.len(),
                    grid.config.max_script_bytes
                ),
            ));
        }
        (Some(script), true) => Some(script.as_str()),
        (None, true) => {
            return Err(ApiError::invalid(
                "missing_script",
                format!(
                    "app {} runs your own Python script: send it in `script`",
                    request.app
                ),
            ));
        }
        (Some(_), false) => {
            return Err(ApiError::invalid(
                "unexpected_script",
                format!(
                    "app {} brings its own task script; leave `script` out",
                    request.app
                ),
            ));
        }
        (None, false) => None,
    };
    // A published app's bundle is kept already; a built-in app's is made here (with the
    // customer's script, for apps that take one).
    let bundle_sha256 = match &published {
        Some(version) => version.bundle_sha256.clone(),
        None => {
            let (bundle, sha) = app.bundle(script);
            let key = crate::blob_keys::bundle(&sha);
            if grid.blobs.size(&key).await?.is_none() {
                grid.blobs.put_bytes(&key, bundle).await?;
            }
            sha
        }
    };
    let record = grid
        .store
        .create_job(&NewJob {
            tenant: customer.0,
            name,
            app: app.manifest.name.clone(),
            app_version: app.manifest.version.clone(),
            bundle_sha256,
            params: request.params,
            partition_options,
            priority: request.preferences.priority,
            max_attempts: request.preferences.max_attempts,
            task_timeout_secs: request.preferences.task_timeout_secs,
            replication,
            placement,
            deadline_secs: request.preferences.deadline_secs,
            tier: request.preferences.tier,
            max_price: request.preferences.max_price,
            external: external.as_ref().map(External::to_value),
            webhook: webhook.as_ref().map(|(w, _)| w.to_value()),
        })
        .await?;
    tracing::info!(job = %record.id, app = %record.spec.app, "job created");
    grid.events.job_changed(record.id);
    let mut view = job_view(&grid, &record).await?;
    if let (Some(shown), Some((_, secret))) = (view.webhook.as_mut(), webhook) {
        // Shown this once: the records keep it sealed, and no other answer carries it.
        shown.secret = Some(secret);
        // The webhook stage delivers `created` without waiting for its next look.
        grid.events.job_changed(record.id);
    }
    Ok((StatusCode::CREATED, Json(view)))
}

/// Upload a job's input (streamed; `x-content-sha256` required). Allowed until the job is run.
#[utoipa::path(put, path = "/v1/jobs/{id}/input", tag = "jobs",
    params(("id" = i64, Path, description = "job id"),
           ("x-content-sha256" = String, Header, description = "hex SHA-256 of the body")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    security(("api_key" = [])),
    responses((status = 200, body = UploadReceipt), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn upload_input(
    State(grid): State<Arc<Grid>>,
    customer: Customer,
    ApiPath(id): ApiPath<JobId>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<UploadReceipt>> {
    let job = own_job(&grid, customer, id).await?;
    check_input_editable(&job)?;
    let limit = crate::quotas::input_limit(&grid, customer.0)
        .await?
        .map_err(quota_exceeded)?;
    let stored = store_upload(
        &grid,
        &crate::blob_keys::input(id),
        &headers,
        body,
        limit,
        "input",
    )
    .await?;
    record_input(&grid, customer, id, stored).await
}

/// Delete a job that never ran: still waiting for its input or for `run`, or cancelled before
/// it ran (an estimate, a draft). Its input goes with it, and it leaves the list. A job that
/// ran stays, for the books: cancel it instead.
#[utoipa::path(delete, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = i64, Path, description = "job id")), security(("api_key" = [])),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_job(
    State(grid): State<Arc<Grid>>,
    customer: Customer,
    ApiPath(id): ApiPath<JobId>,
) -> ApiResult<StatusCode> {
    let job = own_job(&grid, customer, id).await?;
    let Some(deleted) = grid.store.delete_unrun_job(customer.0, id).await? else {
        return Err(ApiError::conflict(
            "job_ran",
            format!(
                "job {id} is {} and has run: it stays for the books (cancel it if it is still running)",
                job.state
            ),
        ));
    };
    if let Some(input) = &deleted.input {
        grid.blobs.delete(&input.key).await?;
    }
    grid.blobs
        .delete_prefix(&crate::blob_keys::upload_parts(id))
        .await?;
    grid.events.job_changed(id);
    tracing::info!(job = %id, "unrun job deleted by its customer");
    Ok(StatusCode::NO_CONTENT)
}

/// Copy a job to run it again: a new job with the same app, script, parameters, chunking,
/// preferences, webhook and name, and a copy of its input (an input fetched from a URL or a
/// bucket is fetched again). The copy waits for `run`.
#[utoipa::path(post, path = "/v1/jobs/{id}/clone", tag = "jobs",
    params(("id" = i64, Path, description = "job id")), security(("api_key" = [])),
    responses((status = 201, body = Job), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn clone_job(
    State(grid): State<Arc<Grid>>,
    customer: Customer,
    ApiPath(id): ApiPath<JobId>,
) -> ApiResult<(StatusCode, Json<Job>)> {
    let job = own_job(&grid, customer, id).await?;
    let fetched = External::of(&job).is_some_and(|e| e.fetches_input());
    let input = match (&job.input, fetched) {
        (_, true) => None,
        (Some(input), false) if grid.blobs.size(&input.key).await?.is_some() => Some(input),
        _ => {
            return Err(ApiError::conflict(
                "input_gone",
                format!(
                    "job {id}'s input is no longer kept (never uploaded, or refused): create a new job with it"
                ),
            ));
        }
    };
    let limit = crate::quotas::input_limit(&grid, customer.0)
        .await?
        .map_err(quota_exceeded)?;
    if let Some(input) = input
        && input.size > limit
    {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "the input is {} bytes; your storage has room for {limit} more",
                input.size
            ),
        ));
    }
    let record = grid.store.create_job(&job.spec).await?;
    if let Some(input) = input {
        let copy = grid
            .blobs
            .get(&input.key, None)
            .await?
            .map(|part| part.map_err(std::io::Error::other))
            .boxed();
        let stored = grid
            .blobs
            .put_stream(
                &crate::blob_keys::input(record.id),
                copy,
                Some(&input.sha256),
                limit,
            )
            .await
            .map_err(|e| ApiError::from(idlegrid_storage::StorageError::Backend(e.to_string())))?;
        grid.store.set_job_input(record.id, &stored).await?;
    }
    tracing::info!(job = %record.id, from = %id, "job copied");
    grid.events.job_changed(record.id);
    let record = own_job(&grid, customer, record.id).await?;
    Ok((StatusCode::CREATED, Json(job_view(&grid, &record).await?)))
}

/// A customer's quota stops the request.
pub fn quota_exceeded(reason: String) -> ApiError {
    ApiError::new(StatusCode::TOO_MANY_REQUESTS, "quota_exceeded", reason)
}

/// Start processing a job whose input is uploaded.
#[utoipa::path(post, path = "/v1/jobs/{id}/run", tag = "jobs",
    params(("id" = i64, Path, description = "job id")), security(("api_key" = [])),
    responses((status = 202, body = Job), (status = 200, description = "the job had already been run: as it is now", body = Job), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn run_job(
    State(grid): State<Arc<Grid>>,
    customer: Customer,
    ApiPath(id): ApiPath<JobId>,
) -> ApiResult<(StatusCode, Json<Job>)> {
    let job = own_job(&grid, customer, id).await?;
    let fetched = External::of(&job).is_some_and(|e| e.fetches_input());
    if job.input.is_none() && !fetched {
        return Err(ApiError::conflict(
            "missing_input",
            format!("job {id} has no input yet: upload it with PUT /v1/jobs/{id}/input first"),
        ));
    }
    if job.state == JobState::Created {
        crate::http::billing::check_affordable(&grid, &job).await?;
        crate::quotas::may_run(&grid, customer.0)
            .await?
            .map_err(quota_exceeded)?;
    }
    let Some(job) = grid
        .store
        .transition_job(id, JobState::Submitted, None)
        .await?
    else {
        // Already run (a retry whose first reply was lost): the job as it is now. A job
        // cancelled before it ran cannot run.
        let job = own_job(&grid, customer, id).await?;
        if job.state == JobState::Cancelled && job.chunks_total.is_none() {
            return Err(ApiError::conflict(
                "job_not_runnable",
                format!("job {id} was cancelled before it ran"),
            ));
        }
        return Ok((StatusCode::OK, Json(job_view(&grid, &job).await?)));
    };
    grid.queues
        .push(Stage::Partition, &[Item { job: id, id: id.0 }])
        .await?;
    grid.events.job_changed(id);
    Ok((StatusCode::ACCEPTED, Json(job_view(&grid, &job).await?)))
}

/// A job's status.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = i64, Path, description = "job id")), security(("api_key" = [])),
    responses((status = 200, body = Job), (status = 404, body = ErrorBody)))]
pub async fn get_job(
    State(grid): State<Arc<Grid>>,
    customer: Customer,
    ApiPath(id): ApiPath<JobId>,
) -> ApiResult<Json<Job>> {
    let job = own_job(&grid, customer, id).await?;
    Ok(Json(job_view(&grid, &job).await?))
}

/// Query of `GET /v1/jobs`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only jobs with ids below this (the previous page's `next_before`).
    pub before: Option<JobId>,
    /// Page size, 1..=500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

/// The caller's jobs, newest first.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(ListQuery), security(("api_key" = [])),
    responses((status = 200, body = JobList), (status = 400, body = ErrorBody)))]
pub async fn list_jobs(
    State(grid): State<Arc<Grid>>,
    customer: Customer,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Json<JobList>> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit must be from 1 to {MAX_PAGE}"),
        ));
    }
    let records = grid
        .store
        .list_jobs(customer.0, query.before, limit)
        .await?;
    let next_before = (records.len() == limit as usize)
        .then(|| records.last().map(|j| j.id))
        .flatten();
    let mut jobs = Vec::with_capacity(records.len());
    for record in &records {
        jobs.push(job_view(&grid, record).await?);
    }
    Ok(Json(JobList { jobs, next_before }))
}

/// Cancel a job that has not finished.
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "jobs",
    params(("id" = i64, Path, description = "job id")), security(("api_key" = [])),
    responses((status = 200, body = Job), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn cancel_job(
    State(grid): State<Arc<Grid>>,
    customer: Customer,
    ApiPath(id): ApiPath<JobId>,
) -> ApiResult<Json<Job>> {
    own_job(&grid, customer, id).await?;
    match crate::lifecycle::end_job(&grid, id, JobState::Cancelled, None).await? {
        Some(job) => Ok(Json(job_view(&grid, &job).await?)),
        None => {
            let job = own_job(&grid, customer, id).await?;
            // Cancelling a cancelled job (a retry whose first reply was lost) is done already.
            if job.state == JobState::Cancelled {
                return Ok(Json(job_view(&grid, &job).await?));
            }
            Err(ApiError::conflict(
                "job_finished",
                format!("job {id} is already {}", job.state),
            ))
        }
    }
}

/// Paging and filtering of a job's logs.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogPage {
    /// The `id` of the last log of the page before (from its `next_after`).
    after: Option<String>,
    /// Logs per page, 1..=200 (default 100).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<usize>,
    /// The least level of the lines shown: `debug`, `info` (default), `warning` or `error`.
    level: Option<String>,
}

/// The job's logs, oldest first: what each task's script wrote to stderr on its device (the
/// end of it, with the chunk and the device), and what the grid's partition and assemble
/// steps said of the job; each line with its level, filtered by `level`.
#[utoipa::path(get, path = "/v1/jobs/{id}/logs", tag = "jobs",
    params(("id" = i64, Path, description = "job id"), LogPage), security(("api_key" = [])),
    responses((status = 200, body = JobLogs), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn job_logs(
    State(grid): State<Arc<Grid>>,
    customer: Customer,
    ApiPath(id): ApiPath<JobId>,
    ApiQuery(page): ApiQuery<LogPage>,
) -> ApiResult<Json<JobLogs>> {
    let limit = page.limit.unwrap_or(100);
    if !(1..=crate::logs::MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit must be from 1 to {}", crate::logs::MAX_PAGE),
        ));
    }
    let level = match page.level.as_deref() {
        None => LogLevel::Info,
        Some(name) => LogLevel::parse(name).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_level",
                "level must be debug, info, warning or error",
            )
        })?,
    };
    if page
        .after
        .as_deref()
        .is_some_and(|a| a.len() > 100 || a.contains('/'))
    {
        return Err(ApiError::bad_request(
            "invalid_after",
            "after must be the id of a log of this job",
        ));
    }
    own_job(&grid, customer, id).await?;
    Ok(Json(
        crate::logs::page(&grid, id, page.after.as_deref(), limit, level).await?,
    ))
}

/// Most chunks per page of `GET /v1/jobs/{id}/tasks`.
const MAX_CHUNK_PAGE: u32 = 5000;

/// Paging of a job's chunks.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChunkPage {
    /// First chunk index of the page (default 0).
    from: Option<u64>,
    /// Chunks per page, 1..=5000 (default 1000).
    #[param(minimum = 1, maximum = 5000)]
    limit: Option<u32>,
}

/// A page of the job's chunks in input order, each with its state (queued, running with its
/// progress, validating, done or failed) and failed attempts.
#[utoipa::path(get, path = "/v1/jobs/{id}/tasks", tag = "jobs",
    params(("id" = i64, Path, description = "job id"), ChunkPage), security(("api_key" = [])),
    responses((status = 200, body = JobChunks), (status = 404, body = ErrorBody)))]
pub async fn job_chunks(
    State(grid): State<Arc<Grid>>,
    customer: Customer,
    ApiPath(id): ApiPath<JobId>,
    ApiQuery(page): ApiQuery<ChunkPage>,
) -> ApiResult<Json<JobChunks>> {
    let limit = page.limit.unwrap_or(1000);
    if !(1..=MAX_CHUNK_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit must be from 1 to {MAX_CHUNK_PAGE}"),
        ));
    }
    let job = own_job(&grid, customer, id).await?;
    let tasks = grid
        .store
        .job_tasks(id, page.from.unwrap_or(0), limit)
        .await?;
    let running: HashMap<TaskId, f32> = if job.state.is_dispatching() {
        grid.queues
            .job_leases(id)
            .await?
            .into_iter()
            .map(|l| (l.task, l.progress))
            .collect()
    } else {
        HashMap::new()
    };
    let next_from = (tasks.len() == limit as usize)
        .then(|| tasks.last().map(|t| t.chunk.index + 1))
        .flatten();
    let waiting = checks_awaited(&grid, &tasks, &running).await?;
    let failing: Vec<TaskId> = tasks
        .iter()
        .filter(|t| t.failures > 0 && t.state != TaskState::Done)
        .map(|t| t.id)
        .collect();
    // Oldest first: each task's last failure is the one left in the map.
    let mut last_failures = HashMap::new();
    for (task, attempt) in grid.store.attempts_of(&failing).await? {
        if attempt.outcome.counts_as_failure() {
            let reason: String = attempt
                .reason
                .trim()
                .chars()
                .take(LAST_FAILURE_CHARS)
                .collect();
            last_failures.insert(task, format!("{}: {reason}", attempt.outcome));
        }
    }
    let ended = job.state.is_terminal();
    let tasks = tasks
        .into_iter()
        .map(|task| {
            let progress = running.get(&task.id).map(|&p| f64::from(p));
            let waiting_for = waiting.get(&task.id).cloned();
            let state = match task.state {
                TaskState::Pending | TaskState::Validating if ended => ChunkState::Stopped,
                TaskState::Pending if progress.is_some() => ChunkState::Running,
                TaskState::Pending if waiting_for.is_some() => ChunkState::Checking,
                TaskState::Pending => ChunkState::Queued,
                TaskState::Validating => ChunkState::Validating,
                TaskState::Done => ChunkState::Done,
                TaskState::Failed => ChunkState::Failed,
            };
            ChunkView {
                index: task.chunk.index,
                step: crate::apps::steps::script::step_of(task.chunk.meta.as_ref())
                    .map(str::to_string),
                state,
                failures: task.failures,
                progress,
                waiting_for,
                last_failure: last_failures.remove(&task.id),
            }
        })
        .collect();
    Ok(Json(JobChunks { tasks, next_from }))
}

/// Longest stretch of a chunk's last failure shown in its view.
const LAST_FAILURE_CHARS: usize = 600;

/// What each queued chunk of `tasks` that has a result in waits for, in words.
async fn checks_awaited(
    grid: &Grid,
    tasks: &[idlegrid_storage::records::TaskRecord],
    running: &HashMap<TaskId, f32>,
) -> ApiResult<HashMap<TaskId, String>> {
    let copied: Vec<TaskId> = tasks
        .iter()
        .filter(|t| t.state == TaskState::Pending && !running.contains_key(&t.id))
        .filter(|t| t.replicas > 1 || t.failures > 0)
        .map(|t| t.id)
        .collect();
    if copied.is_empty() {
        return Ok(HashMap::new());
    }
    let states = grid.store.replica_states(&copied).await?;
    Ok(states
        .iter()
        .filter_map(|state| Some((state.task, waiting_for(state)?)))
        .collect())
}

/// What a queued chunk with results in waits for, if it has any.
fn waiting_for(state: &ReplicaState) -> Option<String> {
    let another = match state.placement {
        Placement::Any => "a device of another owner",
        Placement::Own => "another of your devices",
    };
    if let Some(disputed) = state
        .results
        .iter()
        .rev()
        .find(|r| r.stage == ReplicaStage::Disputed)
    {
        return Some(format!(
            "{another} to run it again: a result was rejected ({})",
            disputed.reason.as_deref().unwrap_or("no reason given")
        ));
    }
    let passed: Vec<_> = state
        .results
        .iter()
        .filter(|r| r.stage == ReplicaStage::Passed)
        .collect();
    if passed.is_empty() {
        return None;
    }
    let parties: std::collections::BTreeSet<_> = passed
        .iter()
        .map(|r| state.placement.party(r.worker.0, r.owner))
        .collect();
    let why = match passed.iter().find_map(|r| r.reason.as_deref()) {
        Some(suspect) => format!("a result looks worse than the settings give ({suspect})"),
        None if parties.len() > 1 => {
            format!("{} results disagree, so more are needed", passed.len())
        }
        None => "its result is checked by replication".to_string(),
    };
    Some(format!("{another} to return the same output: {why}"))
}

/// Download a completed job's output.
#[utoipa::path(get, path = "/v1/jobs/{id}/output", tag = "jobs",
    params(("id" = i64, Path, description = "job id")), security(("api_key" = [])),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>,
               headers(("x-content-sha256" = String, description = "hex SHA-256 of the output"))),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn download_output(
    State(grid): State<Arc<Grid>>,
    customer: Customer,
    ApiPath(id): ApiPath<JobId>,
) -> ApiResult<Response> {
    let job = own_job(&grid, customer, id).await?;
    let output = completed_output(&job)?.clone();
    let (file_name, content_type) = crate::http::views::output_file(&job);
    let stream = grid.blobs.get(&output.key, None).await?;
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_LENGTH, output.size.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file_name}\""),
            ),
            (
                header::HeaderName::from_static(CONTENT_SHA256),
                output.sha256,
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// Server-sent events of a job's state and progress: an `event: job` with the job's status as
/// `data` on connection and at every change (at most five a second), ending after a final state.
#[utoipa::path(get, path = "/v1/jobs/{id}/events", tag = "jobs",
    params(("id" = i64, Path, description = "job id")), security(("api_key" = [])),
    responses((status = 200, content_type = "text/event-stream", body = Job,
               description = "a stream of `job` events"), (status = 404, body = ErrorBody)))]
pub async fn job_events(
    State(grid): State<Arc<Grid>>,
    customer: Customer,
    ApiPath(id): ApiPath<JobId>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    own_job(&grid, customer, id).await?;
    let changes = grid.events.subscribe();
    Ok(Sse::new(job_event_stream(grid, id, changes)).keep_alive(KeepAlive::default()))
}

struct Watch {
    grid: Arc<Grid>,
    job: JobId,
    changes: tokio::sync::broadcast::Receiver<JobId>,
    last: Option<Job>,
    finished: bool,
}

fn job_event_stream(
    grid: Arc<Grid>,
    job: JobId,
    changes: tokio::sync::broadcast::Receiver<JobId>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let watch = Watch {
        grid,
        job,
        changes,
        last: None,
        finished: false,
    };
    futures::stream::unfold(watch, |mut w| async move {
        if w.finished {
            return None;
        }
        loop {
            if let Ok(Some(record)) = w.grid.store.job(w.job).await
                && let Ok(view) = job_view(&w.grid, &record).await
                && w.last.as_ref() != Some(&view)
            {
                w.finished = view.state.is_terminal();
                let event = Event::default()
                    .event("job")
                    .json_data(&view)
                    .unwrap_or_else(|_| Event::default().comment("unserializable job"));
                w.last = Some(view);
                return Some((Ok(event), w));
            }
            // Wait for a change of this job, re-reading at least every second; end the stream
            // when the coordinator shuts down (clients reconnect).
            let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
            loop {
                let change = tokio::select! {
                    _ = w.grid.stopping.cancelled() => return None,
                    change = tokio::time::timeout_at(deadline, w.changes.recv()) => change,
                };
                match change {
                    Ok(Ok(id)) if id != w.job => continue,
                    Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => return None,
                    _ => break,
                }
            }
            tokio::select! {
                _ = w.grid.stopping.cancelled() => return None,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    })
}

/// Jobs a [`jobs_events`] stream watches: the newest this many of the customer's.
const WATCHED_JOBS: u32 = 100;

/// Server-sent events of all the caller's recent jobs: an `event: job` with a job's status for
/// each of the newest 100 on connection, then each time one of them changes or a new one is
/// created (changes are gathered for 200 ms). One stream for a whole jobs list, where a stream
/// per job would run out of the browser's connections.
#[utoipa::path(get, path = "/v1/jobs/events", tag = "jobs", security(("api_key" = [])),
    responses((status = 200, content_type = "text/event-stream", body = Job,
               description = "a stream of `job` events")))]
pub async fn jobs_events(
    State(grid): State<Arc<Grid>>,
    customer: Customer,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let changes = grid.events.subscribe();
    let watch = TenantWatch {
        grid,
        customer,
        changes,
        sent: HashMap::new(),
        pending: std::collections::VecDeque::new(),
        rescan: true,
    };
    let stream = futures::stream::unfold(watch, |mut w| async move {
        loop {
            if let Some(view) = w.pending.pop_front() {
                let event = Event::default()
                    .event("job")
                    .json_data(&view)
                    .unwrap_or_else(|_| Event::default().comment("unserializable job"));
                w.sent.insert(view.id, view);
                return Some((Ok(event), w));
            }
            if w.rescan {
                w.rescan = false;
                w.look_again().await;
                continue;
            }
            // Wait for a change of one of this customer's jobs; look at all of them again at
            // least every two seconds (changes made by other coordinators are not announced
            // here). End the stream when the coordinator shuts down (clients reconnect).
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            let changed = tokio::select! {
                _ = w.grid.stopping.cancelled() => return None,
                change = tokio::time::timeout_at(deadline, w.changes.recv()) => change,
            };
            match changed {
                Ok(Ok(id)) => {
                    // Let changes gather for a moment, then read each changed job once.
                    tokio::select! {
                        _ = w.grid.stopping.cancelled() => return None,
                        _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    }
                    let mut ids = std::collections::BTreeSet::from([id]);
                    loop {
                        match w.changes.try_recv() {
                            Ok(id) => {
                                ids.insert(id);
                            }
                            Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {
                                w.rescan = true;
                            }
                            Err(_) => break,
                        }
                    }
                    for id in ids {
                        w.look_at(id).await;
                    }
                }
                Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => return None,
                // Missed announcements, or quiet for a while.
                _ => w.rescan = true,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// What a [`jobs_events`] stream has sent, and what it is about to.
struct TenantWatch {
    grid: Arc<Grid>,
    customer: Customer,
    changes: tokio::sync::broadcast::Receiver<JobId>,
    /// The last view sent of each job.
    sent: HashMap<JobId, Job>,
    /// Views to send, oldest change first.
    pending: std::collections::VecDeque<Job>,
    /// Whether to re-read all the watched jobs before waiting again.
    rescan: bool,
}

impl TenantWatch {
    /// Queues `record`'s view if it changed since it was last sent.
    async fn offer(&mut self, record: &JobRecord) {
        if let Ok(view) = job_view(&self.grid, record).await
            && self.sent.get(&view.id) != Some(&view)
        {
            self.pending.retain(|p| p.id != view.id);
            self.pending.push_back(view);
        }
    }

    /// Re-reads the customer's newest jobs, oldest first, so a list built from the events
    /// gets its order right.
    async fn look_again(&mut self) {
        let Ok(records) = self
            .grid
            .store
            .list_jobs(self.customer.0, None, WATCHED_JOBS)
            .await
        else {
            return;
        };
        for record in records.iter().rev() {
            self.offer(record).await;
        }
    }

    /// Re-reads one job that was announced as changed, if it is this customer's.
    async fn look_at(&mut self, id: JobId) {
        if let Ok(Some(record)) = self.grid.store.job(id).await
            && record.spec.tenant == self.customer.0
        {
            self.offer(&record).await;
        }
    }
}

/// A job's state changes and their delivery to its webhook, oldest first, each with its
/// attempts.
#[utoipa::path(get, path = "/v1/jobs/{id}/webhook/deliveries", tag = "jobs",
    params(("id" = i64, Path, description = "job id")), security(("api_key" = [])),
    responses((status = 200, body = WebhookDeliveries), (status = 404, body = ErrorBody)))]
pub async fn webhook_deliveries(
    State(grid): State<Arc<Grid>>,
    customer: Customer,
    ApiPath(id): ApiPath<JobId>,
) -> ApiResult<Json<WebhookDeliveries>> {
    let job = own_job(&grid, customer, id).await?;
    if Webhook::of(&job).is_none() {
        return Err(ApiError::not_found(
            "no_webhook",
            format!("job {id} has no webhook; name one in `webhook` when creating a job"),
        ));
    }
    let events = grid.store.webhook_events(id).await?;
    Ok(Json(WebhookDeliveries {
        events: events
            .iter()
            .map(crate::pipeline::webhooks::delivery_view)
            .collect(),
    }))
}
