//! The Tasks API: worker devices register, lease tasks (long-poll, several at once), heartbeat,
//! fetch chunks and bundles, upload outputs and report outcomes. Leases whose deadline passed
//! are taken back by the [`reaper`](crate::pipeline::reaper).
//!
//! Reports are written through the [`recorder`](crate::pipeline::recorder), which commits the
//! reports of concurrent requests together.
//!
//! A worker may only touch what it leases: chunk downloads, output uploads, heartbeats and
//! reports all name a lease, and each is checked against the lease's holder.

use crate::grid::Grid;
use crate::http::auth::{AnyDevice, Device, Enroller, hash_secret, new_secret};
use crate::http::checks::{declared_sha256, store_upload};
use crate::http::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::lifecycle;
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use idlegrid_api::tasks::{
    Heartbeat, HeartbeatReply, Lease as WireLease, LeaseGrant, LeaseRequest, LeaseStatus,
    MAX_INLINE_OUTPUT, RegisterWorker, Registered, Report, ReportOutcome, ReportReply,
    ReportStatus,
};
use idlegrid_api::{ErrorBody, ErrorDetail, LeaseId, UploadReceipt};
use idlegrid_domain::replication::{PROBATION_RUN, ReplicationMode, probation_slots};
use idlegrid_domain::{AttemptOutcome, Capabilities, Party, TaskId, TaskState, WorkerId};
use idlegrid_storage::StorageError;
use idlegrid_storage::blobs::sha256_hex;
use idlegrid_storage::queue::{Copies, Lease};
use idlegrid_storage::records::{Benched, NewFailure, NewResult, OutputRef, WorkerRecord};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most tasks per lease request and reports per report request.
pub const MAX_BATCH: usize = 1000;
/// Longest long-poll.
const MAX_WAIT_MS: u64 = 30_000;
/// Longest failure reason kept from a worker.
const MAX_REASON_BYTES: usize = 4096;

/// Register a device with an owner's enrollment token; returns its worker token.
#[utoipa::path(post, path = "/v1/workers/register", tag = "tasks", request_body = RegisterWorker,
    security(("enrollment_token" = [])),
    responses((status = 201, body = Registered), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 422, description = "a capability is out of range", body = ErrorBody)))]
pub async fn register(
    State(grid): State<Arc<Grid>>,
    owner: Enroller,
    ApiJson(request): ApiJson<RegisterWorker>,
) -> ApiResult<(StatusCode, Json<Registered>)> {
    let name = check_new_device(&request.name, &request.capabilities)?;
    let token = new_secret(crate::state::credentials::WORKER_PREFIX);
    let worker = grid
        .store
        .register_worker(owner.0, name, &request.capabilities, hash_secret(&token))
        .await?;
    Ok(registered(
        &grid,
        worker,
        name,
        &request.capabilities,
        token,
    ))
}

/// Checks a new device's name and capabilities; returns the trimmed name.
pub(crate) fn check_new_device<'a>(
    name: &'a str,
    capabilities: &Capabilities,
) -> ApiResult<&'a str> {
    let name = name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(ApiError::invalid(
            "invalid_name",
            "the device name must be 1 to 200 characters",
        ));
    }
    // A name is shown to its owner in lists and logs, where escape sequences would act.
    if let Some(c) = name.chars().find(|&c| idlegrid_domain::text::is_hidden(c)) {
        return Err(ApiError::invalid(
            "invalid_name",
            format!(
                "the device name holds the control character {}; name it with printable text",
                idlegrid_domain::text::shown(c.encode_utf8(&mut [0; 4]))
            ),
        ));
    }
    capabilities
        .validate()
        .map_err(|e| ApiError::invalid("invalid_capabilities", e))?;
    Ok(name)
}

/// The answer to a registration.
pub(crate) fn registered(
    grid: &Grid,
    worker: WorkerId,
    name: &str,
    capabilities: &Capabilities,
    token: String,
) -> (StatusCode, Json<Registered>) {
    tracing::info!(%worker, name, cores = capabilities.cores, runtime = capabilities.runtime.as_str(), python = ?capabilities.python, "worker registered");
    // Registering is being heard from: the device counts as online from now.
    grid.presence.touch(worker);
    (
        StatusCode::CREATED,
        Json(Registered {
            worker_id: worker,
            token,
            lease_secs: grid.config.lease_ttl.as_secs(),
            heartbeat_secs: grid.config.heartbeat_secs(),
        }),
    )
}

/// Lease up to `max_tasks` tasks, waiting up to `wait_ms` for the first; never more than leave
/// the device holding as many leases as it has slots (its capabilities' `slots`), and, until it
/// is trusted, as many as its probation allows (one result awaiting a check, one more for
/// each valid result in its run, one more to confirm another device's result; all its slots
/// to confirm others' results once its own have waited longer than a lease).
#[utoipa::path(post, path = "/v1/leases", tag = "tasks", request_body = LeaseRequest,
    security(("worker_token" = [])),
    responses((status = 200, body = LeaseGrant), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn lease(
    State(grid): State<Arc<Grid>>,
    device: Device,
    ApiJson(request): ApiJson<LeaseRequest>,
) -> ApiResult<Json<LeaseGrant>> {
    let max = request.max_tasks as usize;
    if !(1..=MAX_BATCH).contains(&max) {
        return Err(ApiError::bad_request(
            "invalid_max_tasks",
            format!("max_tasks must be from 1 to {MAX_BATCH}"),
        ));
    }
    if request.wait_ms > MAX_WAIT_MS {
        return Err(ApiError::bad_request(
            "invalid_wait",
            format!("wait_ms must be at most {MAX_WAIT_MS}"),
        ));
    }
    let record = grid.device(device.0).await?;
    // A device holds no more leases than it has slots, whatever it asks for and through however
    // many requests at once: the queue counts its leases and takes new ones in one step. A
    // backup copy of a straggler is a task like any other and takes a free slot: the straggler
    // stage pairs backups with devices waiting for work, which have one.
    let deadline = Instant::now() + Duration::from_millis(request.wait_ms);
    loop {
        // On probation (not yet trusted) and for checked work, fewer new chunks:
        // `probation_slots`, and one more for a copy that confirms another device's result.
        // If its oldest result in doubt has waited longer than a lease, the grid is short of
        // independent devices (beside cheaters disputing all they touch, devices on probation
        // could otherwise all wait for each other): then it may confirm others' results with
        // all its slots, since that is what settles results in doubt. Read again on every
        // round, since another party's result may have confirmed one of the device's.
        // A paused device finishes what it holds and gets nothing new: it waits like a device
        // on an empty grid, so its agent needs no special case.
        let paused = grid.benched(device.0) == Some(Benched::Paused);
        let slots = if paused {
            0
        } else {
            record.capabilities.slots as usize
        };
        let probation = if record.streak < PROBATION_RUN {
            Some(grid.store.in_doubt(device.0).await?)
        } else {
            None
        };
        let mut leases = Vec::new();
        let jobs = if paused {
            Vec::new()
        } else {
            grid.schedule
                .order_for(grid.queues.as_ref(), &record)
                .await?
        };
        for job in jobs {
            let checked = grid
                .schedule
                .get(job)
                .is_some_and(|j| j.replication.mode != ReplicationMode::None);
            let want = max - leases.len();
            let ttl = grid.config.lease_ttl;
            let got = match probation {
                Some(doubt) if checked => {
                    let any = probation_slots(doubt.streak, doubt.count, slots);
                    let waited = doubt
                        .oldest_ms
                        .map(|t| idlegrid_storage::now_ms().saturating_sub(t));
                    let confirming = if waited.is_some_and(|w| w > ttl.as_millis() as i64) {
                        slots
                    } else {
                        probation_slots(doubt.streak + 1, doubt.count, slots)
                    };
                    let mut got = Vec::new();
                    if any > 0 {
                        got = grid
                            .queues
                            .lease_tasks(job, device.0, want, any, ttl)
                            .await?;
                    }
                    if got.is_empty() && confirming > 0 {
                        got = grid
                            .queues
                            .lease(job, device.0, want, confirming, ttl, Copies::Confirming)
                            .await?;
                    }
                    got
                }
                _ => {
                    grid.queues
                        .lease_tasks(job, device.0, want, slots, ttl)
                        .await?
                }
            };
            leases.extend(got);
            if leases.len() == max {
                break;
            }
        }
        if leases.is_empty() {
            if !paused {
                grid.presence.waiting(device.0);
            }
        } else {
            return match grant(&grid, &record, &leases).await {
                Ok(grant) if grant.leases.is_empty() => continue,
                Ok(grant) => {
                    grid.presence.working(device.0);
                    Ok(Json(grant))
                }
                Err(e) => {
                    // Not delivered: give the tasks back rather than let the leases expire
                    // and be charged to the tasks.
                    hand_back(&grid, &leases).await;
                    Err(e)
                }
            };
        }
        let now = Instant::now();
        if now >= deadline || grid.stopping.is_cancelled() {
            return Ok(Json(LeaseGrant {
                jobs: Vec::new(),
                leases: Vec::new(),
            }));
        }
        tokio::select! {
            // Shutting down: answer the long-poll now rather than hold the shutdown up.
            _ = grid.stopping.cancelled() => {}
            waited = grid.queues.wait_for_tasks((deadline - now).min(Duration::from_secs(1))) => waited?,
        }
    }
}

async fn hand_back(grid: &Grid, leases: &[Lease]) {
    let pairs: Vec<(LeaseId, WorkerId)> = leases.iter().map(|l| (l.id, l.worker)).collect();
    if let Ok(settled) = grid.queues.settle(&pairs).await {
        for lease in settled.into_iter().flatten() {
            let _ = lifecycle::requeue(grid, lease.job, lease.task, lease.worker).await;
        }
    }
}

/// The parties that already sent a result for each of these tasks that were sent out more
/// than once (replicas, checks, disputes): a copy for them must go to another party.
async fn parties_of(
    grid: &Grid,
    tasks: &HashMap<TaskId, idlegrid_storage::records::TaskRecord>,
) -> ApiResult<HashMap<TaskId, Vec<Party>>> {
    let copied: Vec<TaskId> = tasks
        .values()
        .filter(|t| t.replicas > 1 || t.failures > 0)
        .map(|t| t.id)
        .collect();
    if copied.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(grid
        .store
        .replica_states(&copied)
        .await?
        .into_iter()
        .map(|state| {
            let parties = state
                .results
                .iter()
                .map(|r| state.placement.party(r.worker.0, r.owner))
                .collect();
            (state.task, parties)
        })
        .collect())
}

/// What a worker needs to run the leased tasks. Leases on tasks that no longer wait for work
/// (a duplicate queue entry after a restart) are dropped on the way, and so are copies of a
/// chunk for a party that already sent a result for it (its device registered after the copy
/// was queued): those go back to the queue, kept from this device.
async fn grant(grid: &Grid, device: &WorkerRecord, leases: &[Lease]) -> ApiResult<LeaseGrant> {
    let ids: Vec<TaskId> = leases.iter().map(|l| l.task).collect();
    let tasks: HashMap<TaskId, _> = grid
        .store
        .tasks(&ids)
        .await?
        .into_iter()
        .map(|t| (t.id, t))
        .collect();
    let parties = parties_of(grid, &tasks).await?;
    let mut jobs = BTreeMap::new();
    let mut granted = Vec::with_capacity(leases.len());
    let mut stale = Vec::new();
    let mut never_ran = Vec::new();
    let now = idlegrid_storage::now_ms();
    for lease in leases {
        let (Some(task), Some(job)) = (tasks.get(&lease.task), grid.schedule.get(lease.job)) else {
            stale.push((lease.id, lease.worker));
            continue;
        };
        if task.state != TaskState::Pending {
            stale.push((lease.id, lease.worker));
            // It never ran here: the device may take a later copy of the chunk (a check of the
            // result that made this one stale), else a grid of two owners waits for ever.
            never_ran.push((lease.job, lease.task, lease.worker));
            continue;
        }
        let party = job.placement.party(lease.worker.0, device.owner);
        if parties.get(&task.id).is_some_and(|p| p.contains(&party)) {
            grid.queues.settle(&[(lease.id, lease.worker)]).await?;
            grid.queues
                .enqueue_replicas(lease.job, lease.task, 1, &[lease.worker], true)
                .await?;
            continue;
        }
        // A step of the app (its partition or reduce) runs its own script.
        let script = crate::apps::steps::script::script_of(task.chunk.meta.as_ref());
        granted.push(WireLease {
            lease_id: lease.id,
            task_id: lease.task,
            job_id: lease.job,
            chunk_index: task.chunk.index,
            input_name: crate::apps::steps::script::input_name(task.chunk.meta.as_ref())
                .map_or_else(|| job.input_name.clone(), str::to_string),
            script: script.map(str::to_string),
            input_size: task.chunk.len,
            task_params: task
                .chunk
                .meta
                .clone()
                .unwrap_or_else(|| serde_json::json!({})),
            expires_in_ms: (lease.expires_at_ms - now).max(0) as u64,
        });
        jobs.entry(lease.job).or_insert_with(|| job.spec.clone());
    }
    if !stale.is_empty() {
        grid.queues.settle(&stale).await?;
        grid.queues.release_holders(&never_ran).await?;
    }
    Ok(LeaseGrant {
        jobs: jobs.into_values().collect(),
        leases: granted,
    })
}

/// Extend held leases; says which are no longer held.
#[utoipa::path(post, path = "/v1/leases/heartbeat", tag = "tasks", request_body = Heartbeat,
    security(("worker_token" = [])),
    responses((status = 200, body = HeartbeatReply), (status = 400, body = ErrorBody),
              (status = 422, description = "a progress is not a fraction from 0 to 1", body = ErrorBody)))]
pub async fn heartbeat(
    State(grid): State<Arc<Grid>>,
    device: Device,
    ApiJson(request): ApiJson<Heartbeat>,
) -> ApiResult<Json<HeartbeatReply>> {
    if request.leases.len() > MAX_BATCH {
        return Err(ApiError::bad_request(
            "too_many_leases",
            format!("at most {MAX_BATCH} leases per heartbeat"),
        ));
    }
    if let Some(item) = request
        .leases
        .iter()
        .find(|i| i.progress.is_some_and(|p| !(0.0..=1.0).contains(&p)))
    {
        return Err(ApiError::invalid(
            "invalid_progress",
            format!(
                "progress of lease {} must be a fraction from 0 to 1, not {:?}",
                item.lease_id,
                item.progress.unwrap_or_default()
            ),
        ));
    }
    let now = idlegrid_storage::now_ms();
    let mut leases = Vec::with_capacity(request.leases.len());
    for item in &request.leases {
        let renewed = grid
            .queues
            .renew(
                item.lease_id,
                device.0,
                grid.config.lease_ttl,
                item.progress,
            )
            .await?;
        leases.push(LeaseStatus {
            lease_id: item.lease_id,
            held: renewed.is_some(),
            expires_in_ms: renewed.map(|l| (l.expires_at_ms - now).max(0) as u64),
        });
    }
    Ok(Json(HeartbeatReply { leases }))
}

fn lease_not_held(lease: LeaseId) -> ApiError {
    ApiError::conflict(
        "lease_not_held",
        format!(
            "lease {lease} is not held by this worker: it expired, was handed back, was already reported, or its job ended"
        ),
    )
}

/// The lease, if this worker holds it.
async fn held(grid: &Grid, device: Device, lease: LeaseId) -> ApiResult<Lease> {
    grid.queues
        .held(lease, device.0)
        .await?
        .ok_or_else(|| lease_not_held(lease))
}

/// Folder of the uploaded outputs of a task's leases.
fn results_prefix(lease: &Lease) -> String {
    crate::blob_keys::task_results(lease.job, lease.task)
}

/// Blob key of an uploaded task output; it names the verified SHA-256, so finding the key
/// proves the content.
fn result_key(lease: &Lease, sha256: &str) -> String {
    format!("{}/{}-{sha256}", results_prefix(lease), lease.id)
}

/// The keys of a lease's uploaded outputs other than `key`.
async fn other_outputs(grid: &Grid, lease: &Lease, key: &str) -> ApiResult<Vec<String>> {
    let mine = format!("{}/{}-", results_prefix(lease), lease.id);
    Ok(grid
        .blobs
        .list(&results_prefix(lease))
        .await?
        .into_iter()
        .map(|listed| listed.key)
        .filter(|k| k.starts_with(&mine) && k != key)
        .collect())
}

fn output_already_uploaded(lease: LeaseId) -> ApiError {
    ApiError::conflict(
        "output_already_uploaded",
        format!(
            "lease {lease} already has an uploaded output with other bytes; a lease takes one \
             output: report the one uploaded (sending the same bytes again is fine)"
        ),
    )
}

/// Download the chunk of a held lease.
#[utoipa::path(get, path = "/v1/leases/{id}/input", tag = "tasks",
    params(("id" = u64, Path, description = "lease id")), security(("worker_token" = [])),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>),
              (status = 409, body = ErrorBody)))]
pub async fn lease_input(
    State(grid): State<Arc<Grid>>,
    device: Device,
    ApiPath(id): ApiPath<LeaseId>,
) -> ApiResult<Response> {
    let lease = held(&grid, device, id).await?;
    let task = grid
        .store
        .tasks(&[lease.task])
        .await?
        .pop()
        .ok_or_else(|| lease_not_held(id))?;
    let key = match task.chunk.input_key {
        Some(key) => key,
        None => grid
            .schedule
            .get(lease.job)
            .and_then(|job| job.input_key.clone())
            .ok_or_else(|| lease_not_held(id))?,
    };
    let range = task.chunk.offset..task.chunk.offset + task.chunk.len;
    let stream = grid.blobs.get(&key, Some(range)).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, task.chunk.len.to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// Upload the output of a held lease before reporting it (outputs over the inline limit). A
/// lease takes one output, of at most the coordinator's task output limit, one upload at a
/// time (409 `upload_in_progress`); sending the same bytes again is fine, other bytes are
/// refused (409 `output_already_uploaded`).
#[utoipa::path(put, path = "/v1/leases/{id}/output", tag = "tasks",
    params(("id" = u64, Path, description = "lease id"),
           ("x-content-sha256" = String, Header, description = "hex SHA-256 of the body")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    security(("worker_token" = [])),
    responses((status = 200, body = UploadReceipt), (status = 400, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn lease_output(
    State(grid): State<Arc<Grid>>,
    device: Device,
    ApiPath(id): ApiPath<LeaseId>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<UploadReceipt>> {
    let lease = held(&grid, device, id).await?;
    let key = result_key(&lease, &declared_sha256(&headers)?);
    // One output per lease, so a lease stores at most `max_task_output_bytes`: one upload at a
    // time, none once another output is stored, and a second one that raced in through another
    // coordinator is taken back.
    let Some(_uploading) = grid.output_uploads.start(id) else {
        return Err(ApiError::conflict(
            "upload_in_progress",
            format!("an output of lease {id} is being uploaded already; wait for its answer"),
        ));
    };
    if !other_outputs(&grid, &lease, &key).await?.is_empty() {
        return Err(output_already_uploaded(id));
    }
    let stored = store_upload(
        &grid,
        &key,
        &headers,
        body,
        grid.config.max_task_output_bytes,
        "task output",
    )
    .await?;
    if !other_outputs(&grid, &lease, &key).await?.is_empty() {
        grid.blobs.delete(&key).await?;
        return Err(output_already_uploaded(id));
    }
    Ok(Json(UploadReceipt {
        size: stored.size,
        sha256: stored.sha256,
    }))
}

/// The calling device's own record: results accepted and rejected, silent leases, and whether
/// it is quarantined. Open to quarantined devices, so they can learn why they get no work.
#[utoipa::path(get, path = "/v1/workers/me", tag = "tasks",
    security(("worker_token" = [])),
    responses((status = 200, body = idlegrid_api::tasks::WorkerStatus)))]
pub async fn me(
    State(grid): State<Arc<Grid>>,
    AnyDevice(worker): AnyDevice,
) -> ApiResult<Json<idlegrid_api::tasks::WorkerStatus>> {
    let reputation = grid.store.reputation(worker).await?.unwrap_or_default();
    Ok(Json(idlegrid_api::tasks::WorkerStatus {
        worker_id: worker,
        valid: reputation.valid,
        invalid: reputation.invalid,
        timed_out: reputation.timed_out,
        streak: reputation.streak,
        quarantined: reputation.quarantined_at_ms.is_some(),
        earned: grid.store.earned_by_workers(&[worker]).await?[0],
        held: grid.store.held_by_workers(&[worker]).await?[0],
    }))
}

/// Replace what the calling device offers: its owner changed the memory, disk or task time it
/// allows, or its benchmark moved. Sent by the worker each time it starts with saved
/// credentials; from then on it is matched to tasks by these.
#[utoipa::path(put, path = "/v1/workers/me/capabilities", tag = "tasks", request_body = idlegrid_api::Capabilities,
    security(("worker_token" = [])),
    responses((status = 204, description = "the device's capabilities were replaced"),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn update_capabilities(
    State(grid): State<Arc<Grid>>,
    AnyDevice(worker): AnyDevice,
    ApiJson(capabilities): ApiJson<idlegrid_api::Capabilities>,
) -> ApiResult<StatusCode> {
    capabilities
        .validate()
        .map_err(|e| ApiError::invalid("invalid_capabilities", e))?;
    // Results are compared by hash within one kind of runtime, found from the device: a device
    // that changed kinds would make its past results look like another kind's.
    let before = &grid.device(worker).await?.capabilities;
    if before.runtime != capabilities.runtime {
        return Err(ApiError::invalid(
            "runtime_changed",
            format!(
                "this device runs tasks in the {} runtime and cannot switch to {}; register \
                 the other runtime as a device of its own",
                before.runtime.as_str(),
                capabilities.runtime.as_str()
            ),
        ));
    }
    if !grid
        .store
        .update_worker_capabilities(worker, &capabilities)
        .await?
    {
        return Err(ApiError::not_found(
            "worker_not_found",
            format!("there is no worker {worker}"),
        ));
    }
    grid.forget_device(worker);
    tracing::info!(%worker, cores = capabilities.cores, slots = capabilities.slots, allows = ?capabilities.allows, "worker capabilities updated");
    Ok(StatusCode::NO_CONTENT)
}

/// Which lease a bundle is fetched for.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BundleQuery {
    /// A lease the worker holds, on a task of a job that runs this bundle.
    pub lease: u64,
}

/// Download an app bundle by its SHA-256. Only for a lease the worker holds on a job that runs
/// the bundle: a worker never sees customers' scripts it was not given work for.
#[utoipa::path(get, path = "/v1/bundles/{sha256}", tag = "tasks",
    params(("sha256" = String, Path, description = "hex SHA-256 of the bundle"), BundleQuery),
    security(("worker_token" = [])),
    responses((status = 200, content_type = "application/json", body = idlegrid_api::Bundle),
              (status = 404, body = ErrorBody),
              (status = 409, description = "the worker does not hold the lease", body = ErrorBody)))]
pub async fn bundle(
    State(grid): State<Arc<Grid>>,
    device: Device,
    ApiPath(sha): ApiPath<String>,
    ApiQuery(query): ApiQuery<BundleQuery>,
) -> ApiResult<Response> {
    let not_found = || ApiError::not_found("bundle_not_found", format!("there is no bundle {sha}"));
    if sha.len() != 64 || !sha.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(not_found());
    }
    let lease_id = LeaseId(query.lease);
    let lease = grid
        .queues
        .held(lease_id, device.0)
        .await?
        .ok_or_else(|| lease_not_held(lease_id))?;
    // The same answer whether the bundle exists or not: no probing for other jobs' bundles.
    let runs_it = grid
        .schedule
        .get(lease.job)
        .is_some_and(|job| job.spec.bundle_sha256 == sha);
    if !runs_it {
        return Err(not_found());
    }
    let bytes = match grid
        .blobs
        .get_bytes(&crate::blob_keys::bundle(&sha), None)
        .await
    {
        Ok(bytes) => bytes,
        Err(StorageError::NotFound(_)) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response())
}

/// A report that passed its checks, waiting to be recorded.
enum Checked {
    Result(OutputRef, String, u64),
    Failure(String),
    Released,
}

fn refuse(code: &str, message: String) -> ErrorDetail {
    ErrorDetail {
        code: code.to_string(),
        message,
    }
}

fn inline_too_large() -> ErrorDetail {
    refuse(
        "output_too_large",
        format!("inline outputs are limited to {MAX_INLINE_OUTPUT} bytes; upload it first"),
    )
}

/// Checks one report against its lease, without changing anything.
async fn check_report(
    grid: &Grid,
    device: Device,
    item: &idlegrid_api::tasks::ReportItem,
) -> Result<(Lease, Checked), ErrorDetail> {
    let lease = match grid.queues.held(item.lease_id, device.0).await {
        Ok(Some(lease)) => lease,
        Ok(None) => return Err(lease_not_held(item.lease_id).body.error),
        Err(e) => return Err(ApiError::from(e).body.error),
    };
    if lease.task != item.task_id {
        return Err(refuse(
            "task_mismatch",
            format!(
                "lease {} is for task {}, not {}",
                lease.id, lease.task, item.task_id
            ),
        ));
    }
    if let ReportOutcome::Completed { sha256, .. } = &item.outcome
        && !idlegrid_api::paths::is_sha256_hex(sha256)
    {
        return Err(refuse(
            "malformed_digest",
            "sha256 must be 64 hex digits".into(),
        ));
    }
    let checked = match &item.outcome {
        ReportOutcome::Completed {
            inline_base64: Some(encoded),
            ..
        } if encoded.len() > MAX_INLINE_OUTPUT.div_ceil(3) * 4 => {
            // Refused before decoding: its base64 is longer than the limit's.
            return Err(inline_too_large());
        }
        ReportOutcome::Completed {
            sha256,
            size,
            inline_base64: Some(encoded),
        } => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|e| {
                    refuse(
                        "malformed_output",
                        format!("inline_base64 is not base64: {e}"),
                    )
                })?;
            if bytes.len() > MAX_INLINE_OUTPUT {
                return Err(inline_too_large());
            }
            if bytes.len() as u64 != *size {
                return Err(refuse(
                    "size_mismatch",
                    format!(
                        "inline output is {} bytes, the report says {size}",
                        bytes.len()
                    ),
                ));
            }
            let actual = sha256_hex(&bytes);
            if !actual.eq_ignore_ascii_case(sha256) {
                return Err(refuse(
                    "digest_mismatch",
                    format!("inline output hashes to {actual}, the report says {sha256}"),
                ));
            }
            Checked::Result(OutputRef::Inline(bytes), actual, *size)
        }
        ReportOutcome::Completed {
            sha256,
            size,
            inline_base64: None,
        } => {
            let sha256 = sha256.to_ascii_lowercase();
            let key = result_key(&lease, &sha256);
            match grid.blobs.size(&key).await {
                Ok(Some(stored)) if stored == *size => {
                    Checked::Result(OutputRef::Blob(key), sha256, *size)
                }
                Ok(Some(stored)) => {
                    return Err(refuse(
                        "size_mismatch",
                        format!("uploaded output is {stored} bytes, the report says {size}"),
                    ));
                }
                Ok(None) => {
                    return Err(refuse(
                        "output_not_uploaded",
                        format!(
                            "no output with SHA-256 {sha256} was uploaded for lease {}: PUT it to /v1/leases/{}/output first, or send it inline",
                            lease.id, lease.id
                        ),
                    ));
                }
                Err(e) => return Err(ApiError::from(e).body.error),
            }
        }
        ReportOutcome::Failed { reason } => {
            let mut reason = reason.clone();
            if reason.len() > MAX_REASON_BYTES {
                let mut cut = MAX_REASON_BYTES;
                while !reason.is_char_boundary(cut) {
                    cut -= 1;
                }
                reason.truncate(cut);
            }
            Checked::Failure(reason)
        }
        ReportOutcome::Released => Checked::Released,
    };
    Ok((lease, checked))
}

/// Report outcomes of leases: completed (output inline or uploaded), failed, or handed back.
#[utoipa::path(post, path = "/v1/leases/report", tag = "tasks", request_body = Report,
    security(("worker_token" = [])),
    responses((status = 200, body = ReportReply, description = "every report recorded"),
              (status = 409, body = ReportReply, description = "some reports refused; `error` names the first problem"),
              (status = 400, body = ErrorBody)))]
pub async fn report(
    State(grid): State<Arc<Grid>>,
    device: Device,
    ApiJson(request): ApiJson<Report>,
) -> ApiResult<Response> {
    if request.reports.len() > MAX_BATCH {
        return Err(ApiError::bad_request(
            "too_many_reports",
            format!("at most {MAX_BATCH} reports per request"),
        ));
    }
    let mut statuses: Vec<Option<ErrorDetail>> = vec![None; request.reports.len()];
    let mut checked = Vec::with_capacity(request.reports.len());
    for (i, item) in request.reports.iter().enumerate() {
        match check_report(&grid, device, item).await {
            Ok(ok) => checked.push((i, ok)),
            Err(refusal) => statuses[i] = Some(refusal),
        }
    }
    // Claim the leases: a concurrent duplicate report loses here.
    let pairs: Vec<(LeaseId, WorkerId)> =
        checked.iter().map(|(_, (l, _))| (l.id, device.0)).collect();
    let settled = grid.queues.settle(&pairs).await?;
    let mut results = Vec::new();
    let mut failures = Vec::new();
    let mut logs = Vec::new();
    for ((i, (lease, outcome)), won) in checked.into_iter().zip(settled) {
        if won.is_none() {
            statuses[i] = Some(lease_not_held(lease.id).body.error);
            continue;
        }
        if let Some(log) = &request.reports[i].log {
            let ended = match outcome {
                Checked::Result(..) => Some("completed"),
                Checked::Failure(_) => Some("failed"),
                Checked::Released => None,
            };
            if let Some(ended) = ended {
                logs.push(((lease.job, lease.task, lease.id), ended, log));
            }
        }
        match outcome {
            Checked::Result(output, sha256, size) => results.push(NewResult {
                task: lease.task,
                job: lease.job,
                worker: device.0,
                sha256,
                size,
                output,
            }),
            Checked::Failure(reason) => failures.push(NewFailure {
                task: lease.task,
                job: lease.job,
                worker: device.0,
                outcome: AttemptOutcome::ClientError,
                reason,
            }),
            Checked::Released => {
                failures.push(NewFailure {
                    task: lease.task,
                    job: lease.job,
                    worker: device.0,
                    outcome: AttemptOutcome::Abandoned,
                    reason: "handed back by the worker".into(),
                });
            }
        }
    }
    let batch = crate::state::recorder::Batch { results, failures };
    grid.recorder.record(batch).await?;
    // The results are recorded: a log that cannot be kept is only lost, never a refusal.
    for (lease, ended, log) in logs {
        if let Err(e) = crate::logs::task(&grid, lease, device.0, ended, log).await {
            tracing::warn!(job = %lease.0, error = %e, "could not keep a task's log");
        }
    }
    let reply = ReportReply {
        error: statuses.iter().flatten().next().cloned(),
        results: request
            .reports
            .iter()
            .zip(statuses)
            .map(|(item, error)| ReportStatus {
                lease_id: item.lease_id,
                accepted: error.is_none(),
                error,
            })
            .collect(),
    };
    let status = if reply.error.is_some() {
        StatusCode::CONFLICT
    } else {
        StatusCode::OK
    };
    Ok((status, Json(reply)).into_response())
}
