//! Authentication: bearer secrets, stored only as SHA-256 hashes, and the extractors that turn a
//! request's `Authorization` header into a tenant, a device owner or a worker.
//!
//! Secrets are 256 random bits, so a plain SHA-256 is enough to make a leaked database useless
//! for logging in (no password stretching needed). Looked-up hashes are cached in memory: the
//! Tasks API authenticates thousands of calls a second.

use crate::grid::Grid;
use crate::http::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use base64::Engine;
use idlegrid_domain::{TenantId, WorkerId};
use idlegrid_storage::records::Principal;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A fresh secret: `prefix` + 256 random bits, base64url.
pub fn new_secret(prefix: &str) -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The stored form of a secret.
pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Requests admitted per credential (keyed by the secret's hash).
type Limiter = governor::DefaultKeyedRateLimiter<[u8; 32]>;

/// Known secret hashes, and how fast each may make requests.
#[derive(Default)]
pub struct AuthCache {
    known: Mutex<HashMap<[u8; 32], Principal>>,
    customers: Option<(Limiter, u32)>,
    workers: Option<(Limiter, u32)>,
}

/// `per_sec` requests a second with bursts of twice that, as every limit here is.
pub(crate) fn quota(per_sec: std::num::NonZeroU32) -> governor::Quota {
    const TWO: std::num::NonZeroU32 = std::num::NonZeroU32::new(2).unwrap();
    governor::Quota::per_second(per_sec).allow_burst(per_sec.saturating_mul(TWO))
}

fn limiter(per_sec: u32) -> Option<(Limiter, u32)> {
    let rate = std::num::NonZeroU32::new(per_sec)?;
    Some((governor::RateLimiter::keyed(quota(rate)), per_sec))
}

impl AuthCache {
    /// A cache admitting `customer_per_sec` requests per second per customer key or enrollment
    /// token and `worker_per_sec` per worker (0: no limit), each with bursts of twice that.
    pub fn new(customer_per_sec: u32, worker_per_sec: u32) -> Self {
        AuthCache {
            known: Mutex::default(),
            customers: limiter(customer_per_sec),
            workers: limiter(worker_per_sec),
        }
    }

    /// Admits one more request with this credential, or says to slow down.
    fn admit(&self, hash: &[u8; 32], principal: Principal) -> Result<(), ApiError> {
        let limit = match principal {
            Principal::Worker(_) => &self.workers,
            _ => &self.customers,
        };
        let Some((limiter, per_sec)) = limit else {
            return Ok(());
        };
        limiter.check_key(hash).map_err(|_| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "too many requests with this credential: at most {per_sec} a second (bursts of twice that); retry after a second"
                ),
            )
        })
    }

    /// Forgets the rate state of credentials idle long enough to be back at full burst.
    pub fn forget_idle(&self) {
        for (limiter, _) in [&self.customers, &self.workers].into_iter().flatten() {
            limiter.retain_recent();
        }
    }

    fn get(&self, hash: &[u8; 32]) -> Option<Principal> {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(hash)
            .copied()
    }

    fn put(&self, hash: [u8; 32], principal: Principal) {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(hash, principal);
    }
}

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
    grid.auth.admit(&hash, principal)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_unique_and_hash_stably() {
        let a = new_secret("igk_");
        let b = new_secret("igk_");
        assert_ne!(a, b);
        assert!(a.starts_with("igk_") && a.len() == 4 + 43);
        assert_eq!(hash_secret(&a), hash_secret(&a));
        assert_ne!(hash_secret(&a), hash_secret(&b));
    }
}
