//! Checks of what customers send, shared by the handlers: a job's preferences and where it may
//! run, upload headers and sizes, whether a job's input may still change, and storing an
//! upload within its limit.

use crate::external::External;
use crate::grid::Grid;
use crate::http::auth::Customer;
use crate::http::error::{ApiError, ApiResult};
use axum::Json;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use futures::{StreamExt, TryStreamExt};
use idlegrid_api::jobs::Preferences;
use idlegrid_api::paths::CONTENT_SHA256;
use idlegrid_api::{JobId, JobState, UploadReceipt};
use idlegrid_domain::{Placement, Replication};
use idlegrid_storage::blobs::PutError;
use idlegrid_storage::records::{JobRecord, StoredBlob};

use crate::http::views::*;

pub(crate) fn check_preferences(p: &Preferences) -> Result<(), String> {
    if !(-100..=100).contains(&p.priority) {
        return Err(format!(
            "priority must be from -100 to 100, got {}",
            p.priority
        ));
    }
    if !(1..=20).contains(&p.max_attempts) {
        return Err(format!(
            "max_attempts must be from 1 to 20, got {}",
            p.max_attempts
        ));
    }
    if !(1..=86_400).contains(&p.task_timeout_secs) {
        return Err(format!(
            "task_timeout_secs must be from 1 to 86400, got {}",
            p.task_timeout_secs
        ));
    }
    if let Some(secs) = p.deadline_secs
        && !(1..=2_592_000).contains(&secs)
    {
        return Err(format!(
            "deadline_secs must be from 1 to 2592000 (30 days), got {secs}"
        ));
    }
    if let Some(price) = p.max_price
        && price.0 <= 0
    {
        return Err(format!(
            "max_price must be more than 0 micro-credits, got {}",
            price.0
        ));
    }
    p.replication.as_ref().map_or(Ok(()), |r| r.check())
}

/// Where a job of `customer`'s may run and how its results are verified: what the customer
/// chose, or the defaults — only their own devices, unreplicated, when every device owner on
/// the grid belongs to their account; any device, with the app's replication or else adaptive
/// replication, otherwise.
pub(crate) async fn placement_and_replication(
    grid: &Grid,
    customer: idlegrid_domain::TenantId,
    preferences: &Preferences,
    app: &idlegrid_domain::AppManifest,
) -> ApiResult<(Placement, Replication)> {
    let (mine, others) = grid.store.owner_counts(customer).await?;
    let placement = match preferences.placement {
        Some(Placement::Own) if mine == 0 => {
            return Err(ApiError::invalid(
                "invalid_preferences",
                "placement \"own\" runs a job only on devices of your own, and no device \
                 owner belongs to your account; leave placement out to use the grid",
            ));
        }
        Some(placement) => placement,
        None if mine > 0 && others == 0 => Placement::Own,
        None => Placement::Any,
    };
    let replication = preferences.replication.unwrap_or_else(|| match placement {
        Placement::Any => app
            .replication
            .unwrap_or_else(|| Replication::default_for(placement)),
        Placement::Own => Replication::default_for(placement),
    });
    Ok((placement, replication))
}

pub(crate) fn declared_sha256(headers: &HeaderMap) -> ApiResult<String> {
    let value = headers.get(CONTENT_SHA256).ok_or_else(|| {
        ApiError::bad_request(
            "missing_digest",
            format!("send the upload's SHA-256 (hex) in the {CONTENT_SHA256} header"),
        )
    })?;
    let text = value
        .to_str()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if !idlegrid_api::paths::is_sha256_hex(&text) {
        return Err(ApiError::bad_request(
            "malformed_digest",
            format!("{CONTENT_SHA256} must be 64 hex digits"),
        ));
    }
    Ok(text)
}

/// Refuses a body whose declared length is already over `limit`.
pub fn check_content_length(headers: &HeaderMap, limit: u64, what: &str) -> ApiResult<()> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > limit => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the {what} is {n} bytes; the limit is {limit}"),
        )),
        _ => Ok(()),
    }
}

/// Streams a request body into the blob store, verifying it against the declared SHA-256.
pub async fn store_upload(
    grid: &Grid,
    key: &str,
    headers: &HeaderMap,
    body: Body,
    limit: u64,
    what: &str,
) -> ApiResult<StoredBlob> {
    let sha = declared_sha256(headers)?;
    check_content_length(headers, limit, what)?;
    let stream = body
        .into_data_stream()
        .map_err(std::io::Error::other)
        .boxed();
    grid.blobs
        .put_stream(key, stream, Some(&sha), limit)
        .await
        .map_err(|e| match e {
            PutError::TooLarge { limit } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("the {what} exceeds the limit of {limit} bytes"),
            ),
            PutError::DigestMismatch { expected, actual } => ApiError::bad_request(
                "digest_mismatch",
                format!("the {what} received hashes to {actual}, not to the declared {expected}; it was not stored"),
            ),
            PutError::Interrupted(e) => ApiError::bad_request(
                "upload_interrupted",
                format!("the {what} upload broke off: {e}"),
            ),
            PutError::Storage(e) => e.into(),
        })
}

fn not_editable(id: JobId, state: JobState) -> ApiError {
    ApiError::conflict(
        "job_not_editable",
        format!("job {id} is {state}; its input can only be uploaded before it is run"),
    )
}

/// Refuses uploads to a job that was run already or takes its input from elsewhere.
pub(crate) fn check_input_editable(job: &JobRecord) -> ApiResult<()> {
    if job.state != JobState::Created {
        return Err(not_editable(job.id, job.state));
    }
    if External::of(job).is_some_and(|e| e.fetches_input()) {
        return Err(ApiError::conflict(
            "input_fetched",
            format!(
                "job {} takes its input from `input_from`; it is fetched when the job runs",
                job.id
            ),
        ));
    }
    Ok(())
}

/// Records a stored upload as the job's input, unless the job was run meanwhile.
pub(crate) async fn record_input(
    grid: &Grid,
    customer: Customer,
    id: JobId,
    stored: StoredBlob,
) -> ApiResult<Json<UploadReceipt>> {
    if !grid.store.set_job_input(id, &stored).await? {
        return Err(not_editable(id, own_job(grid, customer, id).await?.state));
    }
    grid.events.job_changed(id);
    Ok(Json(UploadReceipt {
        size: stored.size,
        sha256: stored.sha256,
    }))
}

/// Text a person gives that others see (a name, a reference, a note): trimmed, 1 to `max`
/// printable characters — no control or direction-changing characters — or refused with
/// `code`, naming `what`.
pub(crate) fn given_text<'a>(
    text: &'a str,
    max: usize,
    what: &str,
    code: &str,
) -> ApiResult<&'a str> {
    let text = text.trim();
    if text.is_empty()
        || text.chars().count() > max
        || text.chars().any(idlegrid_domain::text::is_hidden)
    {
        return Err(ApiError::invalid(
            code,
            format!("{what} must be 1 to {max} printable characters"),
        ));
    }
    Ok(text)
}

/// Optional [`given_text`]: absent or blank is `None`.
pub(crate) fn optional_text(
    text: Option<&str>,
    max: usize,
    what: &str,
    code: &str,
) -> ApiResult<Option<String>> {
    match text.map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => given_text(text, max, what, code).map(|t| Some(t.to_string())),
    }
}
