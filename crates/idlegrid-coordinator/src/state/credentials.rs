//! Credentials in memory: making and hashing bearer secrets, the cache of workers' token
//! hashes, how fast each credential and each customer (and link-code guessing over all callers)
//! may go, and when each secret was last used, until it is written.
//!
//! Secrets are 256 random bits, so a plain SHA-256 is enough to make a leaked database useless
//! for logging in (no password stretching needed). Only workers' tokens are cached: the Tasks
//! API authenticates thousands of their calls a second, and a device taken off the grid is
//! refused through the grid's list of benched devices instead. Every other secret is looked up
//! in the records on each request, so revoking one takes effect at once on every coordinator
//! sharing them.

use base64::Engine;
use idlegrid_domain::WorkerId;
use idlegrid_storage::records::{NewSecret, Principal};
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

/// How each kind of secret starts, so a person (and a secret scanner) can tell them apart.
pub const API_KEY_PREFIX: &str = "igk_";
/// A device owner's enrollment token.
pub const ENROLLMENT_PREFIX: &str = "ige_";
/// An operator's key.
pub const OPERATOR_PREFIX: &str = "igo_";
/// A dashboard session.
pub const SESSION_PREFIX: &str = "igs_";
/// A worker's token.
pub const WORKER_PREFIX: &str = "igw_";
/// The name of the secret an account is created with.
pub const FIRST_SECRET: &str = "first key";

/// The prefix of the keys (not sessions) of an account's kind.
pub fn key_prefix(principal: Principal) -> &'static str {
    match principal {
        Principal::Tenant(_) => API_KEY_PREFIX,
        Principal::Owner(_) => ENROLLMENT_PREFIX,
        Principal::Operator(_) => OPERATOR_PREFIX,
        Principal::Worker(_) => WORKER_PREFIX,
    }
}

/// Characters of a secret shown in lists after its kind's prefix: enough to tell secrets
/// apart, far too few to guess the rest.
const SHOWN_CHARS: usize = 6;

/// A fresh secret with the kind's `prefix`, and what the records keep of it: its hash, its
/// first characters and `name`; a dashboard session expires at `session_expires_at`.
pub fn make_secret(
    prefix: &str,
    name: &str,
    session_expires_at: Option<i64>,
) -> (String, NewSecret) {
    let secret = new_secret(prefix);
    let stored = NewSecret {
        hash: hash_secret(&secret),
        prefix: secret[..prefix.len() + SHOWN_CHARS].to_string(),
        name: name.to_string(),
        session_expires_at,
        parent: None,
    };
    (secret, stored)
}

/// The stored form of a secret.
pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Requests admitted per credential (keyed by the secret's hash).
type Limiter = governor::DefaultKeyedRateLimiter<[u8; 32]>;

/// One customer's own rate over all its keys, and its limiter.
type AccountLimiter = (u32, governor::DefaultDirectRateLimiter);

/// Workers' token hashes, how fast each credential and customer may make requests, and when
/// secrets were last used.
#[derive(Default)]
pub struct AuthCache {
    workers_known: Mutex<HashMap<[u8; 32], WorkerId>>,
    customers: Option<(Limiter, u32)>,
    workers: Option<(Limiter, u32)>,
    accounts: Mutex<HashMap<Principal, AccountLimiter>>,
    account_per_sec: u32,
    used: Mutex<HashMap<i64, i64>>,
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
            customers: limiter(customer_per_sec),
            workers: limiter(worker_per_sec),
            account_per_sec: customer_per_sec,
            ..AuthCache::default()
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

    /// Admits one more request of an account (customer, owner, operator) over all its keys
    /// and sessions together — so making more keys buys no more requests — at its own rate
    /// (a customer's quota) or the grid's rate per customer key (0: no limit); or says to
    /// slow down.
    pub fn admit_account(
        &self,
        account: Principal,
        own_rate: Option<u32>,
    ) -> Result<(), RateLimited> {
        let per_sec = own_rate.unwrap_or(self.account_per_sec);
        let Some(rate) = std::num::NonZeroU32::new(per_sec) else {
            return match own_rate {
                Some(_) => Err(RateLimited { per_sec }),
                None => Ok(()),
            };
        };
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        let entry = accounts
            .entry(account)
            .or_insert_with(|| (per_sec, governor::RateLimiter::direct(quota(rate))));
        if entry.0 != per_sec {
            *entry = (per_sec, governor::RateLimiter::direct(quota(rate)));
        }
        entry.1.check().map_err(|_| RateLimited { per_sec })
    }

    /// The worker a token hash looked up before stands for.
    pub fn worker(&self, hash: &[u8; 32]) -> Option<WorkerId> {
        self.workers_known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(hash)
            .copied()
    }

    /// Remembers the worker of a token hash.
    pub fn remember_worker(&self, hash: [u8; 32], worker: WorkerId) {
        self.workers_known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(hash, worker);
    }

    /// Notes that secret `id` was used at `at_ms`.
    pub fn used(&self, id: i64, at_ms: i64) {
        self.used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, at_ms);
    }

    /// When secrets were used since the last call.
    pub fn take_used(&self) -> Vec<(i64, i64)> {
        std::mem::take(&mut *self.used.lock().unwrap_or_else(|e| e.into_inner()))
            .into_iter()
            .collect()
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
    use idlegrid_domain::TenantId;

    #[test]
    fn a_made_secret_keeps_its_hash_and_shows_only_its_start() {
        let (secret, stored) = make_secret("igk_", "laptop", None);
        assert_eq!(stored.hash, hash_secret(&secret));
        assert_eq!(stored.prefix.len(), 4 + SHOWN_CHARS);
        assert!(secret.starts_with(&stored.prefix));
        assert_eq!(stored.name, "laptop");
    }

    #[test]
    fn an_account_rate_holds_over_all_its_keys_and_follows_changes() {
        let cache = AuthCache::new(3, 0);
        let customer = Principal::Tenant(TenantId(7));
        let admitted = (0..10)
            .filter(|_| cache.admit_account(customer, Some(2)).is_ok())
            .count();
        assert_eq!(admitted, 4, "2 a second with bursts of twice that");
        let other = Principal::Tenant(TenantId(8));
        assert!(cache.admit_account(other, Some(2)).is_ok(), "per customer");
        assert!(
            cache.admit_account(customer, Some(50)).is_ok(),
            "a new rate starts afresh"
        );
        assert!(cache.admit_account(customer, Some(0)).is_err());
        // Without a quota of its own, an account gets the grid's rate: an owner's many
        // tokens share it.
        let owner = Principal::Owner(1);
        let admitted = (0..20)
            .filter(|_| cache.admit_account(owner, None).is_ok())
            .count();
        assert_eq!(admitted, 6);
        let unlimited = AuthCache::new(0, 0);
        assert!((0..1000).all(|_| unlimited.admit_account(owner, None).is_ok()));
    }

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
