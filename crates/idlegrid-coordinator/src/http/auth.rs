//! Authentication: the extractors that turn a request's `Authorization: Bearer <secret>` header
//! into a customer, a device owner, a worker or an operator, through the grid's cache of known
//! secret hashes and their rate limits ([`crate::state::credentials`]).

use crate::grid::Grid;
use crate::http::error::ApiError;
pub use crate::state::credentials::{hash_secret, new_secret};
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use idlegrid_domain::{TenantId, WorkerId};
use idlegrid_storage::records::Principal;
use std::sync::Arc;

async fn principal(parts: &Parts, grid: &Grid) -> Result<Principal, ApiError> {
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
    let principal = match grid.auth.get(&hash) {
        Some(principal) => principal,
        None => {
            let principal = grid.store.credential(hash).await?.ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "invalid_credentials",
                    "the secret in the Authorization header is not known to this coordinator",
                )
            })?;
            grid.auth.put(hash, principal);
            principal
        }
    };
    grid.auth.admit(&hash, principal).map_err(|limited| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "too many requests with this credential: at most {} a second (bursts of twice that); retry after a second",
                limited.per_sec
            ),
        )
    })?;
    Ok(principal)
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
