//! Authentication: the extractors that turn a request's `Authorization: Bearer <secret>` header
//! into a customer, a device owner, a worker or an operator: looked up in the records (workers'
//! tokens: in the grid's cache, refused when their device is benched), refused for suspended
//! accounts, and rate-limited per secret and per customer ([`crate::state::credentials`]).

use crate::grid::Grid;
use crate::http::error::ApiError;
use crate::state::credentials::RateLimited;
pub use crate::state::credentials::{hash_secret, make_secret, new_secret};
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use idlegrid_domain::{TenantId, WorkerId};
use idlegrid_storage::records::{Benched, Principal, Standing};
use std::sync::Arc;

async fn principal(parts: &Parts, grid: &Grid) -> Result<Principal, ApiError> {
    authenticate(parts, grid)
        .await
        .map(|(principal, _, _)| principal)
}

/// The principal of the request's secret, the secret's id (`-1` for a worker's token) and,
/// for a session, its key's.
async fn authenticate(
    parts: &Parts,
    grid: &Grid,
) -> Result<(Principal, i64, Option<i64>), ApiError> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing_credentials",
                "this endpoint needs an `Authorization: Bearer <secret>` header",
            )
        })?;
    let secret = header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "malformed_credentials",
                "the Authorization header must read `Bearer <secret>`",
            )
        })?;
    let hash = hash_secret(secret);
    let (principal, id, parent) = match grid.auth.worker(&hash) {
        Some(worker) => (Principal::Worker(worker), -1, None),
        None => {
            let credential = grid
                .store
                .credential(hash)
                .await?
                .ok_or_else(unknown_secret)?;
            match credential.standing {
                Standing::Active => {}
                Standing::Suspended => return Err(suspended()),
                Standing::Deleted => return Err(unknown_secret()),
            }
            match credential.principal {
                Principal::Worker(worker) => grid.auth.remember_worker(hash, worker),
                _ => grid.auth.used(credential.id, idlegrid_storage::now_ms()),
            }
            if !matches!(credential.principal, Principal::Worker(_)) {
                let own_rate = credential
                    .requests_per_sec
                    .map(|rate| u32::try_from(rate.max(0)).unwrap_or(u32::MAX));
                grid.auth
                    .admit_account(credential.principal, own_rate)
                    .map_err(|limited| rate_limited(limited, "this account's keys together"))?;
            }
            (credential.principal, credential.id, credential.parent)
        }
    };
    if let Principal::Worker(worker) = principal {
        match grid.benched(worker) {
            Some(Benched::Removed) => {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "device_removed",
                    "this device was removed by its owner; its token is no longer valid",
                ));
            }
            Some(Benched::OwnerSuspended) => return Err(suspended()),
            Some(Benched::Paused) | None => {}
        }
    }
    grid.auth
        .admit(&hash, principal)
        .map_err(|limited| rate_limited(limited, "this credential"))?;
    Ok((principal, id, parent))
}

fn unknown_secret() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "the secret in the Authorization header is not known to this coordinator (revoked, expired or mistyped)",
    )
}

fn suspended() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "account_suspended",
        "this account is suspended by the grid's operator; ask them to resume it",
    )
}

fn rate_limited(limited: RateLimited, what: &str) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!(
            "too many requests with {what}: at most {} a second (bursts of twice that); retry after a second",
            limited.per_sec
        ),
    )
}

fn wrong_kind(needed: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "wrong_credentials",
        format!("this endpoint needs {needed}"),
    )
}

/// A request authenticated with a customer's API key.
#[derive(Debug, Clone, Copy)]
pub struct Customer(pub TenantId);

impl FromRequestParts<Arc<Grid>> for Customer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, grid: &Arc<Grid>) -> Result<Self, ApiError> {
        match principal(parts, grid).await? {
            Principal::Tenant(t) => Ok(Customer(t)),
            _ => Err(wrong_kind("a customer API key")),
        }
    }
}

/// A request authenticated with a device owner's enrollment token.
#[derive(Debug, Clone, Copy)]
pub struct Enroller(pub i64);

impl FromRequestParts<Arc<Grid>> for Enroller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, grid: &Arc<Grid>) -> Result<Self, ApiError> {
        match principal(parts, grid).await? {
            Principal::Owner(o) => Ok(Enroller(o)),
            _ => Err(wrong_kind("a device owner's enrollment token")),
        }
    }
}

/// A request authenticated with a worker token.
#[derive(Debug, Clone, Copy)]
pub struct Device(pub WorkerId);

impl FromRequestParts<Arc<Grid>> for Device {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, grid: &Arc<Grid>) -> Result<Self, ApiError> {
        let AnyDevice(worker) = AnyDevice::from_request_parts(parts, grid).await?;
        grid.presence.touch(worker);
        if grid.is_quarantined(worker) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "worker_quarantined",
                "this device is quarantined: too many of its results were invalid; it gets no more work (see GET /v1/workers/me)",
            ));
        }
        Ok(Device(worker))
    }
}

/// A request authenticated with an operator's key.
#[derive(Debug, Clone, Copy)]
pub struct Operator(pub i64);

impl FromRequestParts<Arc<Grid>> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, grid: &Arc<Grid>) -> Result<Self, ApiError> {
        match principal(parts, grid).await? {
            Principal::Operator(o) => Ok(Operator(o)),
            _ => Err(wrong_kind("an operator key")),
        }
    }
}

/// A request authenticated with any known credential: for the endpoint that says what a secret
/// is (the dashboard's sign-in).
#[derive(Debug, Clone, Copy)]
pub struct Anyone(pub Principal);

impl FromRequestParts<Arc<Grid>> for Anyone {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, grid: &Arc<Grid>) -> Result<Self, ApiError> {
        principal(parts, grid).await.map(Anyone)
    }
}

/// A request authenticated with a worker token, quarantined or not: for the endpoint where a
/// device reads its own record.
#[derive(Debug, Clone, Copy)]
pub struct AnyDevice(pub WorkerId);

impl FromRequestParts<Arc<Grid>> for AnyDevice {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, grid: &Arc<Grid>) -> Result<Self, ApiError> {
        match principal(parts, grid).await? {
            Principal::Worker(w) => Ok(AnyDevice(w)),
            _ => Err(wrong_kind("a worker token (register first)")),
        }
    }
}

/// A request authenticated with an account's key or session (not a worker's token), with the
/// id of the secret it used: for managing the account's own secrets.
#[derive(Debug, Clone, Copy)]
pub struct Holder {
    /// The account.
    pub principal: Principal,
    /// The secret the request was made with.
    pub secret: i64,
    /// The key behind it: the secret itself, or a session's key.
    pub key: i64,
}

impl FromRequestParts<Arc<Grid>> for Holder {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, grid: &Arc<Grid>) -> Result<Self, ApiError> {
        match authenticate(parts, grid).await? {
            (Principal::Worker(_), _, _) => Err(wrong_kind(
                "a customer's API key, an owner's enrollment token or an operator key",
            )),
            (principal, secret, parent) => Ok(Holder {
                principal,
                secret,
                key: parent.unwrap_or(secret),
            }),
        }
    }
}
