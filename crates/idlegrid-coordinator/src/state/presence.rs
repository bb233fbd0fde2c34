//! Which devices this coordinator has heard from, and when: every lease request, heartbeat
//! and report counts. Kept in memory on the hot path (a map insert per request) and written to
//! the records in batches, so owners' device lists and other coordinators see it too without a
//! records write per request (the housekeeping loop writes them).

use idlegrid_domain::WorkerId;
use std::collections::HashMap;
use std::sync::Mutex;

/// A device not heard from for this long is offline. Idle workers long-poll for work at most
/// 30 s at a time, so a live one is heard from well within it.
pub const ONLINE_WITHIN_MS: i64 = 90_000;

/// A waiting device not heard from for this long is no longer counted as idle (it long-polls
/// at most 30 s at a time).
const IDLE_WITHIN_MS: i64 = 35_000;

/// When each device was last heard from.
#[derive(Debug, Default)]
pub struct Presence {
    /// Last time heard (Unix ms), by device.
    seen: Mutex<HashMap<WorkerId, i64>>,
    /// Heard since the last flush, with the time.
    unsaved: Mutex<HashMap<WorkerId, i64>>,
    /// Devices waiting for work, since when (a lease request found nothing for them).
    waiting: Mutex<HashMap<WorkerId, i64>>,
}

impl Presence {
    /// Notes that `worker` was heard from now.
    pub fn touch(&self, worker: WorkerId) {
        let now = idlegrid_storage::now_ms();
        lock(&self.seen).insert(worker, now);
        lock(&self.unsaved).insert(worker, now);
    }

    /// When `worker` was last heard from by this coordinator.
    pub fn last_seen(&self, worker: WorkerId) -> Option<i64> {
        lock(&self.seen).get(&worker).copied()
    }

    /// Devices heard from within [`ONLINE_WITHIN_MS`] of `now_ms`.
    pub fn online(&self, now_ms: i64) -> Vec<WorkerId> {
        lock(&self.seen)
            .iter()
            .filter(|(_, at)| now_ms - **at <= ONLINE_WITHIN_MS)
            .map(|(w, _)| *w)
            .collect()
    }

    /// Notes that `worker` asked for work and found none: it waits.
    pub fn waiting(&self, worker: WorkerId) {
        lock(&self.waiting)
            .entry(worker)
            .or_insert_with(idlegrid_storage::now_ms);
    }

    /// Notes that `worker` was given work.
    pub fn working(&self, worker: WorkerId) {
        lock(&self.waiting).remove(&worker);
    }

    /// Devices waiting for work now: they asked within a long-poll's time and got nothing.
    pub fn idle(&self, now_ms: i64) -> Vec<WorkerId> {
        let mut waiting = lock(&self.waiting);
        let seen = lock(&self.seen);
        waiting.retain(|w, _| seen.get(w).is_some_and(|at| now_ms - at <= IDLE_WITHIN_MS));
        waiting.keys().copied().collect()
    }

    /// What was heard since the last call, to be written to the records.
    pub fn take_unsaved(&self) -> Vec<(WorkerId, i64)> {
        lock(&self.unsaved).drain().collect()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
