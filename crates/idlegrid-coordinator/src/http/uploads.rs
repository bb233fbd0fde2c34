//! Inputs uploaded in parts, so a large upload from a browser or a flaky network resumes
//! where it broke off instead of starting again: each part is verified against its own SHA-256
//! and stored as a blob (`jobs/<id>/parts/<n>.<sha256>`); the client asks which parts arrived,
//! sends the others, then asks for them to be joined. Joining streams the parts in order into
//! the job's input, hashing the whole as it goes, exactly as a single upload is stored.
//!
//! The input's size limit holds for the parts as they arrive: a part is refused once it would
//! bring the parts stored past it. Parts of an upload nobody finishes are deleted after
//! `Config::abandoned_upload_after` without a new part ([`run`]).

use crate::grid::Grid;
use crate::http::auth::Customer;
use crate::http::checks::{check_input_editable, record_input, store_upload};
use crate::http::error::{ApiError, ApiJson, ApiPath, ApiResult};
use crate::http::views::own_job;
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use futures::{StreamExt, TryStreamExt};
use idlegrid_api::jobs::{CompleteUpload, UploadPart, UploadParts};
use idlegrid_api::{ErrorBody, JobId, UploadReceipt};
use idlegrid_storage::blobs::PutError;
use std::sync::Arc;

/// Largest part.
pub const MAX_PART_BYTES: u64 = 64 * 1024 * 1024;
/// Most parts of one input.
pub const MAX_PARTS: u32 = 10_000;

/// The parts stored for a job, from their keys, in part order.
async fn stored_parts(grid: &Grid, job: JobId) -> ApiResult<Vec<(String, UploadPart)>> {
    let prefix = crate::blob_keys::upload_parts(job);
    let mut parts: Vec<(String, UploadPart)> = grid
        .blobs
        .list(&prefix)
        .await?
        .into_iter()
        .filter_map(|listed| {
            let name = listed.key.strip_prefix(&prefix)?.strip_prefix('/')?;
            let (part, sha256) = name.split_once('.')?;
            Some((
                listed.key.clone(),
                UploadPart {
                    part: part.parse().ok()?,
                    size: listed.size,
                    sha256: sha256.to_string(),
                },
            ))
        })
        .collect();
    parts.sort_by(|a, b| (a.1.part, &a.1.sha256).cmp(&(b.1.part, &b.1.sha256)));
    Ok(parts)
}

/// Bytes of the stored parts other than part `part`.
fn others_size(parts: &[(String, UploadPart)], part: u32) -> u64 {
    parts
        .iter()
        .filter(|(_, p)| p.part != part)
        .map(|(_, p)| p.size)
        .sum()
}

/// 413 for a part that would bring the parts stored past the input's limit.
fn past_the_limit(part: u32, others: u64, limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!(
            "part {part} would bring the input past its limit of {limit} bytes: the other parts \
             stored hold {others} bytes; the part was not stored"
        ),
    )
}

/// Upload one part of a job's input (`x-content-sha256` of the part required; at most 64 MiB,
/// and all the parts together at most the input's limit). Sending a part again replaces it.
#[utoipa::path(put, path = "/v1/jobs/{id}/input/parts/{part}", tag = "jobs",
    params(("id" = i64, Path, description = "job id"),
           ("part" = u32, Path, description = "part number, from 0"),
           ("x-content-sha256" = String, Header, description = "hex SHA-256 of this part")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    security(("api_key" = [])),
    responses((status = 200, body = UploadPart), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn upload_part(
    State(grid): State<Arc<Grid>>,
    customer: Customer,
    ApiPath((id, part)): ApiPath<(JobId, u32)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<UploadPart>> {
    if part >= MAX_PARTS {
        return Err(ApiError::bad_request(
            "invalid_part",
            format!("part numbers go from 0 to {}", MAX_PARTS - 1),
        ));
    }
    let job = own_job(&grid, customer, id).await?;
    check_input_editable(&job)?;
    let declared = crate::http::checks::declared_sha256(&headers)?;
    let key = format!(
        "{}/{part:05}.{declared}",
        crate::blob_keys::upload_parts(id)
    );
    let limit = crate::quotas::input_limit(&grid, customer.0)
        .await?
        .map_err(crate::http::jobs_api::quota_exceeded)?;
    let others = others_size(&stored_parts(&grid, id).await?, part);
    let room = limit.saturating_sub(others);
    let stored = store_upload(
        &grid,
        &key,
        &headers,
        body,
        room.min(MAX_PART_BYTES),
        "part",
    )
    .await
    .map_err(|e| match e.status {
        StatusCode::PAYLOAD_TOO_LARGE if room < MAX_PART_BYTES => {
            past_the_limit(part, others, limit)
        }
        _ => e,
    })?;
    let parts = stored_parts(&grid, id).await?;
    // Parts sent at once were each checked against the others stored before them.
    let others = others_size(&parts, part);
    if others.saturating_add(stored.size) > limit {
        grid.blobs.delete(&key).await?;
        return Err(past_the_limit(part, others, limit));
    }
    // An earlier upload of the same part with other bytes is replaced.
    for (old, _) in parts
        .into_iter()
        .filter(|(k, p)| p.part == part && *k != key)
    {
        grid.blobs.delete(&old).await?;
    }
    Ok(Json(UploadPart {
        part,
        size: stored.size,
        sha256: stored.sha256,
    }))
}

/// The parts of a job's input received so far, to resume an upload.
#[utoipa::path(get, path = "/v1/jobs/{id}/input/parts", tag = "jobs",
    params(("id" = i64, Path, description = "job id")), security(("api_key" = [])),
    responses((status = 200, body = UploadParts), (status = 404, body = ErrorBody)))]
pub async fn list_parts(
    State(grid): State<Arc<Grid>>,
    customer: Customer,
    ApiPath(id): ApiPath<JobId>,
) -> ApiResult<Json<UploadParts>> {
    own_job(&grid, customer, id).await?;
    let parts = stored_parts(&grid, id)
        .await?
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    Ok(Json(UploadParts { parts }))
}

/// Join parts `0..parts` into the job's input (hashing the whole; checked against `sha256`
/// when given) and delete them.
#[utoipa::path(post, path = "/v1/jobs/{id}/input/complete", tag = "jobs",
    params(("id" = i64, Path, description = "job id")), request_body = CompleteUpload,
    security(("api_key" = [])),
    responses((status = 200, body = UploadReceipt), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn complete_upload(
    State(grid): State<Arc<Grid>>,
    customer: Customer,
    ApiPath(id): ApiPath<JobId>,
    ApiJson(request): ApiJson<CompleteUpload>,
) -> ApiResult<Json<UploadReceipt>> {
    if !(1..=MAX_PARTS).contains(&request.parts) {
        return Err(ApiError::invalid(
            "invalid_parts",
            format!("parts must be from 1 to {MAX_PARTS}"),
        ));
    }
    let job = own_job(&grid, customer, id).await?;
    check_input_editable(&job)?;
    let stored = stored_parts(&grid, id).await?;
    let mut keys = Vec::with_capacity(request.parts as usize);
    let mut total = 0u64;
    for n in 0..request.parts {
        let copies: Vec<&(String, UploadPart)> =
            stored.iter().filter(|(_, p)| p.part == n).collect();
        match copies.as_slice() {
            [] => {
                return Err(ApiError::conflict(
                    "missing_part",
                    format!(
                        "part {n} of {} has not arrived; upload it first",
                        request.parts
                    ),
                ));
            }
            [(key, part)] => {
                keys.push(key.clone());
                total += part.size;
            }
            _ => {
                return Err(ApiError::conflict(
                    "conflicting_part",
                    format!(
                        "part {n} arrived twice with different bytes (uploads at once?); upload it again"
                    ),
                ));
            }
        }
    }
    if let Some(extra) = stored.iter().find(|(_, p)| p.part >= request.parts) {
        return Err(ApiError::conflict(
            "extra_part",
            format!(
                "part {} was uploaded, but the input has only {} parts; say how many parts there are",
                extra.1.part, request.parts
            ),
        ));
    }
    let limit = crate::quotas::input_limit(&grid, customer.0)
        .await?
        .map_err(crate::http::jobs_api::quota_exceeded)?;
    if total > limit {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the parts add up to {total} bytes; the limit is {limit}"),
        ));
    }
    let expected = request
        .sha256
        .as_deref()
        .map(|s| s.trim().to_ascii_lowercase());
    if let Some(sha) = &expected
        && !idlegrid_api::paths::is_sha256_hex(sha)
    {
        return Err(ApiError::invalid(
            "malformed_digest",
            "sha256 must be 64 hex digits",
        ));
    }
    let blobs = grid.blobs.clone();
    let joined = futures::stream::iter(keys)
        .then(move |key| {
            let blobs = blobs.clone();
            async move { blobs.get(&key, None).await }
        })
        .try_flatten()
        .map_err(std::io::Error::other)
        .boxed();
    let stored = grid
        .blobs
        .put_stream(&crate::blob_keys::input(id), joined, expected.as_deref(), limit)
        .await
        .map_err(|e| match e {
            PutError::DigestMismatch { expected, actual } => ApiError::invalid(
                "digest_mismatch",
                format!("the joined parts hash to {actual}, not to the declared {expected}; the parts are kept, so resend the wrong ones"),
            ),
            PutError::TooLarge { limit } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("the input exceeds the limit of {limit} bytes"),
            ),
            PutError::Interrupted(e) => ApiError::conflict(
                "part_unreadable",
                format!("a stored part could not be read ({e}); upload it again"),
            ),
            PutError::Storage(e) => e.into(),
        })?;
    let receipt = record_input(&grid, customer, id, stored).await?;
    grid.blobs
        .delete_prefix(&crate::blob_keys::upload_parts(id))
        .await?;
    Ok(receipt)
}
