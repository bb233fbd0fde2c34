//! Credentials in memory: making and hashing bearer secrets, the cache of known secret hashes,
//! and how fast each credential (and link-code guessing over all callers) may go.
//!
//! Secrets are 256 random bits, so a plain SHA-256 is enough to make a leaked database useless
//! for logging in (no password stretching needed). Looked-up hashes are cached in memory: the
//! Tasks API authenticates thousands of calls a second.

use base64::Engine;
use idlegrid_storage::records::Principal;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;

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
pub fn quota(per_sec: std::num::NonZeroU32) -> governor::Quota {
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
    pub fn admit(&self, hash: &[u8; 32], principal: Principal) -> Result<(), RateLimited> {
        let limit = match principal {
            Principal::Worker(_) => &self.workers,
            _ => &self.customers,
        };
        let Some((limiter, per_sec)) = limit else {
            return Ok(());
        };
        limiter
            .check_key(hash)
            .map_err(|_| RateLimited { per_sec: *per_sec })
    }

    /// Forgets the rate state of credentials idle long enough to be back at full burst.
    pub fn forget_idle(&self) {
        for (limiter, _) in [&self.customers, &self.workers].into_iter().flatten() {
            limiter.retain_recent();
        }
    }

    /// The principal of a secret hash looked up before.
    pub fn get(&self, hash: &[u8; 32]) -> Option<Principal> {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(hash)
            .copied()
    }

    /// Remembers the principal of a secret hash.
    pub fn put(&self, hash: [u8; 32], principal: Principal) {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(hash, principal);
    }
}

/// A credential went past its rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited {
    /// Requests a second it may make.
    pub per_sec: u32,
}

/// Attempts to redeem a link code, per second, over the whole coordinator.
pub const LINK_ATTEMPTS_PER_SEC: u32 = 10;

/// Attempts to redeem codes, limited across all callers.
pub type LinkLimiter = governor::DefaultDirectRateLimiter;

/// The limiter for [`LINK_ATTEMPTS_PER_SEC`] (bursts of twice that).
pub fn link_limiter() -> LinkLimiter {
    const RATE: std::num::NonZeroU32 = std::num::NonZeroU32::new(LINK_ATTEMPTS_PER_SEC).unwrap();
    governor::RateLimiter::direct(quota(RATE))
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
