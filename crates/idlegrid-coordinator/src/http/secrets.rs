//! Every account's named secrets: customers' API keys, owners' enrollment tokens, operators'
//! keys and dashboard sessions. An account lists its secrets (never the secrets themselves),
//! makes a key (shown once), revokes or rotates one, and trades a key for a dashboard session
//! that expires, so the dashboard never keeps a key.
//!
//! Revocation is effective at once on every coordinator sharing the records: only workers'
//! tokens are cached ([`crate::state::credentials`]).

use crate::grid::Grid;
use crate::http::auth::{Holder, make_secret};
use crate::http::error::{ApiError, ApiJson, ApiPath, ApiResult};
use crate::state::credentials::{SESSION_PREFIX, key_prefix};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use idlegrid_api::ErrorBody;
use idlegrid_api::accounts::{CreatedSecret, NewSecret, SecretInfo, SecretKind, Secrets};
use idlegrid_api::timestamp;
use idlegrid_storage::records::{Revoked, SecretRecord};
use std::sync::Arc;

/// How long a dashboard session lasts.
pub const SESSION_TTL_MS: i64 = 7 * 24 * 3600 * 1000;
/// Most secrets an account may hold (keys and live sessions together).
pub const MAX_SECRETS: usize = 50;

/// A name people give a secret or a device: 1 to 100 printable characters, trimmed.
pub fn checked_name<'a>(name: &'a str, what: &str) -> ApiResult<&'a str> {
    crate::http::checks::given_text(name, 100, what, "invalid_name")
}

fn info(record: SecretRecord, current: i64) -> SecretInfo {
    SecretInfo {
        id: record.id,
        current: record.id == current,
        name: record.name,
        prefix: record.prefix,
        kind: if record.session_expires_at.is_some() {
            SecretKind::Session
        } else {
            SecretKind::Key
        },
        created_at: timestamp(record.created_at),
        last_used_at: record.last_used_at.map(timestamp),
        expires_at: record.session_expires_at.map(timestamp),
    }
}

/// The secrets of the calling account, oldest first.
#[utoipa::path(get, path = "/v1/secrets", tag = "accounts",
    security(("api_key" = []), ("enrollment_token" = []), ("operator_key" = [])),
    responses((status = 200, body = Secrets), (status = 401, body = ErrorBody)))]
pub async fn list_secrets(
    State(grid): State<Arc<Grid>>,
    holder: Holder,
) -> ApiResult<Json<Secrets>> {
    let secrets = grid.store.secrets(holder.principal).await?;
    Ok(Json(Secrets {
        secrets: secrets
            .into_iter()
            .map(|s| info(s, holder.secret))
            .collect(),
    }))
}

async fn make(
    grid: &Grid,
    holder: Holder,
    name: &str,
    session: bool,
) -> ApiResult<(StatusCode, Json<CreatedSecret>)> {
    if grid.store.secrets(holder.principal).await?.len() >= MAX_SECRETS {
        return Err(ApiError::conflict(
            "too_many_secrets",
            format!("an account holds at most {MAX_SECRETS} keys and sessions; revoke some first"),
        ));
    }
    let (prefix, expires) = if session {
        (
            SESSION_PREFIX,
            Some(idlegrid_storage::now_ms() + SESSION_TTL_MS),
        )
    } else {
        (key_prefix(holder.principal), None)
    };
    let (secret, mut stored) = make_secret(prefix, name, expires);
    if session {
        // Ends with the key it was made from (a session made in a session: that key too).
        stored.parent = Some(holder.key);
    }
    let id = grid.store.add_secret(holder.principal, &stored).await?;
    let record = SecretRecord {
        id,
        name: stored.name,
        prefix: stored.prefix,
        created_at: idlegrid_storage::now_ms(),
        last_used_at: None,
        session_expires_at: expires,
    };
    Ok((
        StatusCode::CREATED,
        Json(CreatedSecret {
            info: info(record, holder.secret),
            secret,
        }),
    ))
}

/// Make a key for the calling account (an API key for a customer, an enrollment token for a
/// device owner, an operator key for an operator). The answer holds the secret, shown this
/// once.
#[utoipa::path(post, path = "/v1/secrets", tag = "accounts", request_body = NewSecret,
    security(("api_key" = []), ("enrollment_token" = []), ("operator_key" = [])),
    responses((status = 201, body = CreatedSecret), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn create_secret(
    State(grid): State<Arc<Grid>>,
    holder: Holder,
    ApiJson(request): ApiJson<NewSecret>,
) -> ApiResult<(StatusCode, Json<CreatedSecret>)> {
    let name = request.name.as_deref().ok_or_else(|| {
        ApiError::invalid(
            "invalid_name",
            "a new key needs a name (1 to 100 characters)",
        )
    })?;
    let name = checked_name(name, "a key's name")?;
    make(&grid, holder, name, false).await
}

/// Trade the request's secret for a dashboard session that expires in seven days: the
/// dashboard keeps the session, never the key. Signing out revokes it; revoking or rotating
/// the key it was made from ends it too.
#[utoipa::path(post, path = "/v1/sessions", tag = "accounts", request_body = NewSecret,
    security(("api_key" = []), ("enrollment_token" = []), ("operator_key" = [])),
    responses((status = 201, body = CreatedSecret), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn create_session(
    State(grid): State<Arc<Grid>>,
    holder: Holder,
    ApiJson(request): ApiJson<NewSecret>,
) -> ApiResult<(StatusCode, Json<CreatedSecret>)> {
    let name = checked_name(
        request.name.as_deref().unwrap_or("dashboard"),
        "a session's name",
    )?;
    make(&grid, holder, name, true).await
}

/// Revoke one of the calling account's secrets: it is refused at once on every coordinator.
/// An account's last key cannot be revoked (rotate it instead), so no account locks itself
/// out.
#[utoipa::path(delete, path = "/v1/secrets/{id}", tag = "accounts",
    params(("id" = i64, Path, description = "Secret id")),
    security(("api_key" = []), ("enrollment_token" = []), ("operator_key" = [])),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn revoke_secret(
    State(grid): State<Arc<Grid>>,
    holder: Holder,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    match grid.store.revoke_secret(holder.principal, id).await? {
        Revoked::Revoked => Ok(StatusCode::NO_CONTENT),
        Revoked::NotFound => Err(no_such_secret(id)),
        Revoked::LastKey => Err(ApiError::conflict(
            "last_key",
            "this is the account's last key: rotate it instead (POST /v1/secrets/{id}/rotate), or make another key first",
        )),
    }
}

fn no_such_secret(id: i64) -> ApiError {
    ApiError::not_found("no_such_secret", format!("this account has no secret {id}"))
}

/// Replace one of the calling account's keys by a new one under the same name, in one step:
/// the old key is refused from now on. The answer holds the new key, shown this once.
#[utoipa::path(post, path = "/v1/secrets/{id}/rotate", tag = "accounts",
    params(("id" = i64, Path, description = "Secret id")),
    security(("api_key" = []), ("enrollment_token" = []), ("operator_key" = [])),
    responses((status = 201, body = CreatedSecret), (status = 404, body = ErrorBody)))]
pub async fn rotate_secret(
    State(grid): State<Arc<Grid>>,
    holder: Holder,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<(StatusCode, Json<CreatedSecret>)> {
    let (secret, stored) = make_secret(key_prefix(holder.principal), "", None);
    let Some(new_id) = grid
        .store
        .rotate_secret(holder.principal, id, &stored)
        .await?
    else {
        return Err(no_such_secret(id));
    };
    let record = grid
        .store
        .secrets(holder.principal)
        .await?
        .into_iter()
        .find(|s| s.id == new_id)
        .ok_or_else(|| no_such_secret(id))?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedSecret {
            info: info(record, holder.secret),
            secret,
        }),
    ))
}
