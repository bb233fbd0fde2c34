//! Turning rows into records, shared by the SQLite and PostgreSQL backends: both tables have
//! the same columns, so only how a column is read differs ([`Columns`]).

use super::{
    Billing, DeviceRecord, DueWebhook, JobRecord, NewJob, NewTask, OutputRef, ReplicaResult,
    ReplicaStage, ReplicaState, Reputation, StoredBlob, TaskRecord, WebhookAttempt, WebhookEvent,
    WebhookHistory, WebhookNext,
};
use crate::{Result, StorageError};
use idlegrid_domain::{
    Credits, JobId, JobState, Placement, Quote, Rates, Replication, ResultId, Runtime, TaskId,
    TaskState, TenantId, Tier, WorkerId,
};
use sqlx::Row;
use std::collections::BTreeMap;

/// A storage error from the engine.
pub(super) fn backend(e: sqlx::Error) -> StorageError {
    StorageError::Backend(e.to_string())
}

/// A job state as stored.
pub(super) fn job_state(name: &str) -> Result<JobState> {
    JobState::parse(name).ok_or_else(|| StorageError::Corrupt(format!("job state {name:?}")))
}

/// A task state as stored.
pub(super) fn task_state(name: &str) -> Result<TaskState> {
    TaskState::parse(name).ok_or_else(|| StorageError::Corrupt(format!("task state {name:?}")))
}

/// The column types records are made of, read from one engine's rows.
pub(super) trait Columns {
    /// An integer column.
    fn int(&self, column: &str) -> Result<i64>;
    /// A nullable integer column.
    fn int_opt(&self, column: &str) -> Result<Option<i64>>;
    /// A text column.
    fn text(&self, column: &str) -> Result<String>;
    /// A nullable text column.
    fn text_opt(&self, column: &str) -> Result<Option<String>>;
    /// A nullable bytes column.
    fn bytes_opt(&self, column: &str) -> Result<Option<Vec<u8>>>;
    /// A boolean column (SQLite: an integer, 0 or 1).
    fn flag(&self, column: &str) -> Result<bool>;
}

macro_rules! columns_for {
    ($row:ty) => {
        impl Columns for $row {
            fn int(&self, column: &str) -> Result<i64> {
                self.try_get(column).map_err(backend)
            }
            fn int_opt(&self, column: &str) -> Result<Option<i64>> {
                self.try_get(column).map_err(backend)
            }
            fn text(&self, column: &str) -> Result<String> {
                self.try_get(column).map_err(backend)
            }
            fn text_opt(&self, column: &str) -> Result<Option<String>> {
                self.try_get(column).map_err(backend)
            }
            fn bytes_opt(&self, column: &str) -> Result<Option<Vec<u8>>> {
                self.try_get(column).map_err(backend)
            }
            fn flag(&self, column: &str) -> Result<bool> {
                self.try_get(column).map_err(backend)
            }
        }
    };
}

columns_for!(sqlx::sqlite::SqliteRow);
columns_for!(sqlx::postgres::PgRow);

/// A JSON text column.
fn json(row: &impl Columns, column: &str) -> Result<serde_json::Value> {
    let text = row.text(column)?;
    serde_json::from_str(&text).map_err(|e| StorageError::Corrupt(format!("{column}: {e}")))
}

/// A nullable JSON text column, parsed as `T`.
fn json_opt<T: serde::de::DeserializeOwned>(row: &impl Columns, column: &str) -> Result<Option<T>> {
    row.text_opt(column)?
        .map(|t| {
            serde_json::from_str(&t).map_err(|e| StorageError::Corrupt(format!("{column}: {e}")))
        })
        .transpose()
}

/// The `<prefix>_key`, `_size` and `_sha256` columns of a stored blob.
fn blob(row: &impl Columns, prefix: &str) -> Result<Option<StoredBlob>> {
    let Some(key) = row.text_opt(&format!("{prefix}_key"))? else {
        return Ok(None);
    };
    Ok(Some(StoredBlob {
        key,
        size: row.int(&format!("{prefix}_size"))? as u64,
        sha256: row.text(&format!("{prefix}_sha256"))?,
    }))
}

/// A job's held quote, from its `jobs` row.
fn billing(row: &impl Columns) -> Result<Option<Billing>> {
    let Some(price) = row.int_opt("quote")? else {
        return Ok(None);
    };
    let tier = row.text("tier")?;
    Ok(Some(Billing {
        quote: Quote {
            tier: Tier::parse(&tier)
                .ok_or_else(|| StorageError::Corrupt(format!("job tier {tier:?}")))?,
            work_ms: row.int_opt("work_ms")?.unwrap_or_default(),
            price: Credits(price),
            rates: Rates {
                price_per_core_hour: Credits(
                    row.int_opt("price_per_core_hour")?.unwrap_or_default(),
                ),
                owner_per_core_hour: Credits(
                    row.int_opt("owner_per_core_hour")?.unwrap_or_default(),
                ),
            },
        },
        largest_chunk_ms: row.int_opt("largest_chunk_ms")?.unwrap_or_default(),
    }))
}

/// A `jobs` row.
pub(super) fn job(row: &impl Columns) -> Result<JobRecord> {
    let count = |c: &str| row.int(c).map(|n| n as u64);
    Ok(JobRecord {
        id: JobId(row.int("id")?),
        spec: NewJob {
            tenant: TenantId(row.int("tenant_id")?),
            name: row.text_opt("name")?,
            app: row.text("app")?,
            app_version: row.text("app_version")?,
            bundle_sha256: row.text("bundle_sha256")?,
            params: json(row, "params")?,
            partition_options: json(row, "partition_options")?,
            priority: row.int("priority")? as i32,
            max_attempts: row.int("max_attempts")? as u32,
            task_timeout_secs: count("task_timeout_secs")?,
            replication: json_opt(row, "replication")?.unwrap_or(Replication::NONE),
            placement: Placement::from_name(&row.text("placement")?),
            deadline_secs: row.int_opt("deadline_secs")?.map(|s| s as u64),
            tier: {
                let tier = row.text("tier")?;
                Tier::parse(&tier)
                    .ok_or_else(|| StorageError::Corrupt(format!("job tier {tier:?}")))?
            },
            max_price: row.int_opt("max_price")?.map(Credits),
            external: json_opt(row, "external")?,
            webhook: json_opt(row, "webhook")?,
        },
        state: job_state(&row.text("state")?)?,
        error: row.text_opt("error")?,
        input: blob(row, "input")?,
        output: blob(row, "output")?,
        facts: json_opt(row, "facts")?,
        chunks_total: row.int_opt("chunks_total")?.map(|n| n as u64),
        chunks_created: count("chunks_created")?,
        chunks_done: count("chunks_done")?,
        chunks_failed: count("chunks_failed")?,
        failed_attempts: count("failed_attempts")?,
        results_received: count("results_received")?,
        results_rejected: count("results_rejected")?,
        billing: billing(row)?,
        charged: Credits(row.int("charged")?),
        created_at: row.int("created_at")?,
        submitted_at: row.int_opt("submitted_at")?,
        started_at: row.int_opt("started_at")?,
        finished_at: row.int_opt("finished_at")?,
    })
}

/// A `tasks` row (or a row with its columns).
pub(super) fn task(row: &impl Columns) -> Result<TaskRecord> {
    Ok(TaskRecord {
        id: TaskId(row.int("id")?),
        job: JobId(row.int("job_id")?),
        chunk: NewTask {
            index: row.int("idx")? as u64,
            input_key: row.text_opt("input_key")?,
            offset: row.int("input_offset")? as u64,
            len: row.int("input_len")? as u64,
            meta: json_opt(row, "meta")?,
            work_ms: row.int("work_ms")?,
        },
        state: task_state(&row.text("state")?)?,
        failures: row.int("failures")? as u32,
        replicas: row.int("replicas")?.max(1) as u32,
    })
}

/// A result to pay, from a row of `id`, `worker_id`, `owner_id`, `job_id`, `work_ms`,
/// `replicas`, `price_per_core_hour`, `owner_per_core_hour`, `quote`, `charged`, `job_state`
/// and `verified`; `valid` says whether it became the chunk's output.
pub(super) fn accepted(row: &impl Columns, valid: bool) -> Result<super::payments::Accepted> {
    Ok(super::payments::Accepted {
        result: row.int("id")?,
        worker: row.int("worker_id")?,
        owner: row.int("owner_id")?,
        job: row.int("job_id")?,
        work_ms: row.int("work_ms")?,
        valid,
        verified: row.flag("verified")?,
        replicas: row.int("replicas")?,
        price_per_core_hour: row.int("price_per_core_hour")?,
        owner_per_core_hour: row.int("owner_per_core_hour")?,
        quote: row.int("quote")?,
        charged: row.int("charged")?,
        job_final: matches!(
            job_state(&row.text("job_state")?)?,
            JobState::Completed | JobState::Failed | JobState::Cancelled
        ),
    })
}

/// The owner of a `held:<owner>` account.
pub(super) fn held_owner(account: &str) -> Result<i64> {
    account
        .strip_prefix("held:")
        .and_then(|o| o.parse().ok())
        .ok_or_else(|| StorageError::Corrupt(format!("held account {account:?}")))
}

/// A result to revoke of `owner`'s (`id`, `worker_id`, `job_id`, `work_ms`,
/// `price_per_core_hour`, `owner_per_core_hour`, `charged`).
pub(super) fn revoked(row: &impl Columns, owner: i64) -> Result<super::payments::Revoked> {
    Ok(super::payments::Revoked {
        result: row.int("id")?,
        worker: row.int("worker_id")?,
        owner,
        job: row.int("job_id")?,
        work_ms: row.int("work_ms")?,
        price_per_core_hour: row.int_opt("price_per_core_hour")?,
        owner_per_core_hour: row.int_opt("owner_per_core_hour")?,
        charged: row.int("charged")?,
    })
}

/// A `workers` row with its owner's `tenant_id`, as a [`WorkerRecord`].
pub(super) fn worker(row: &impl Columns) -> Result<super::WorkerRecord> {
    Ok(super::WorkerRecord {
        capabilities: serde_json::from_str(&row.text("capabilities")?)
            .map_err(|e| StorageError::Corrupt(format!("worker capabilities: {e}")))?,
        owner: row.int("owner_id")?,
        owner_tenant: row.int_opt("tenant_id")?.map(TenantId),
        registered_at_ms: row.int("created_at")?,
        streak: row.int("valid_streak")?.max(0) as u64,
    })
}

/// The replication states of tasks from their rows (`id`, `job_id`, `state`, `replicas`,
/// `placement`, `canonical_result`) and the rows of their undecided and accepted results
/// (`task_id`, `id`, `worker_id`, `owner_id`, `sha256`, `validate_state`, `suspect`, `reason`,
/// `valid_streak`, `registered_at`, `runtime`, `ffmpeg`).
pub(super) fn replica_states(
    tasks: &[impl Columns],
    results: &[impl Columns],
) -> Result<Vec<ReplicaState>> {
    let mut by_task: BTreeMap<i64, Vec<ReplicaResult>> = BTreeMap::new();
    for row in results {
        let stage = match row.text("validate_state")?.as_str() {
            "pending" => ReplicaStage::Pending,
            "passed" => ReplicaStage::Passed,
            "disputed" => ReplicaStage::Disputed,
            _ => ReplicaStage::Accepted,
        };
        by_task
            .entry(row.int("task_id")?)
            .or_default()
            .push(ReplicaResult {
                id: ResultId(row.int("id")?),
                worker: WorkerId(row.int("worker_id")?),
                owner: row.int("owner_id")?,
                sha256: row.text("sha256")?,
                stage,
                suspect: row.flag("suspect")?,
                reason: row.text_opt("reason")?,
                streak: row.int("valid_streak")?.max(0) as u64,
                registered_at_ms: row.int("registered_at")?,
                runtime: Runtime::from_name(row.text_opt("runtime")?.as_deref()),
                ffmpeg: row.text_opt("ffmpeg")?,
            });
    }
    tasks
        .iter()
        .map(|row| {
            let id = row.int("id")?;
            let canonical = row.int_opt("canonical_result")?;
            let (accepted, results): (Vec<ReplicaResult>, Vec<ReplicaResult>) = by_task
                .remove(&id)
                .unwrap_or_default()
                .into_iter()
                .partition(|r| Some(r.id.0) == canonical);
            Ok(ReplicaState {
                task: TaskId(id),
                job: JobId(row.int("job_id")?),
                state: task_state(&row.text("state")?)?,
                wanted: row.int("replicas")?.max(1) as u32,
                placement: Placement::from_name(&row.text("placement")?),
                accepted: accepted.into_iter().next().map(|mut r| {
                    r.stage = ReplicaStage::Accepted;
                    r
                }),
                results,
            })
        })
        .collect()
}

/// A result's output: inline bytes or a blob key.
pub(super) fn output(row: &impl Columns) -> Result<OutputRef> {
    match (row.bytes_opt("inline_output")?, row.text_opt("blob_key")?) {
        (Some(bytes), _) => Ok(OutputRef::Inline(bytes)),
        (None, Some(key)) => Ok(OutputRef::Blob(key)),
        (None, None) => Err(StorageError::Corrupt("result without output".into())),
    }
}

/// A `workers` row with its counts of `valid`, `invalid` and `timed_out` results.
pub(super) fn device(row: &impl Columns) -> Result<DeviceRecord> {
    let count = |c: &str| row.int(c).map(|n| n as u64);
    Ok(DeviceRecord {
        paused: row.int_opt("paused_at")?.is_some(),
        id: WorkerId(row.int("id")?),
        name: row.text("name")?,
        capabilities: serde_json::from_str(&row.text("capabilities")?)
            .map_err(|e| StorageError::Corrupt(format!("worker capabilities: {e}")))?,
        registered_at: row.int("created_at")?,
        last_seen_at: row.int_opt("last_seen_at")?,
        reputation: Reputation {
            valid: count("valid")?,
            invalid: count("invalid")?,
            timed_out: count("timed_out")?,
            streak: count("valid_streak")?,
            quarantined_at_ms: row.int_opt("quarantined_at")?,
        },
    })
}
/// A `job_events` row.
pub(super) fn webhook_event(row: &impl Columns) -> Result<WebhookEvent> {
    Ok(WebhookEvent {
        id: row.int("id")?,
        job: JobId(row.int("job_id")?),
        state: job_state(&row.text("state")?)?,
        error: row.text_opt("error")?,
        at_ms: row.int("at")?,
        attempts: row.int("attempts")? as u32,
        next_attempt_at_ms: row.int_opt("next_attempt_at")?,
        delivered_at_ms: row.int_opt("delivered_at")?,
        gave_up: row.flag("gave_up")?,
    })
}

/// A `webhook_attempts` row.
pub(super) fn webhook_attempt(row: &impl Columns) -> Result<WebhookAttempt> {
    Ok(WebhookAttempt {
        attempt: row.int("attempt")? as u32,
        at_ms: row.int("at")?,
        status: row.int_opt("status")?.map(|s| s as u16),
        error: row.text_opt("error")?,
        duration_ms: row.int("duration_ms")? as u64,
    })
}

/// Events with their attempts: `attempts` are `(event id, attempt)` pairs in event order.
fn histories(
    events: Vec<WebhookEvent>,
    attempts: Vec<(i64, WebhookAttempt)>,
) -> Vec<WebhookHistory> {
    let mut by_event: std::collections::HashMap<i64, Vec<WebhookAttempt>> = Default::default();
    for (event, attempt) in attempts {
        by_event.entry(event).or_default().push(attempt);
    }
    events
        .into_iter()
        .map(|event| WebhookHistory {
            attempts: by_event.remove(&event.id).unwrap_or_default(),
            event,
        })
        .collect()
}

/// Rows of claimed `job_events`, each with its job's webhook as `hook`, oldest due first.
pub(super) fn due_webhooks(rows: &[impl Columns]) -> Result<Vec<DueWebhook>> {
    let mut due = rows
        .iter()
        .map(|row| {
            Ok(DueWebhook {
                event: webhook_event(row)?,
                webhook: json_opt(row, "hook")?.ok_or_else(|| {
                    StorageError::Corrupt("event of a job without webhook".into())
                })?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    due.sort_by_key(|d| (d.event.next_attempt_at_ms, d.event.id));
    Ok(due)
}

/// `job_events` rows and `webhook_attempts` rows of one job, as histories.
pub(super) fn webhook_histories(
    events: &[impl Columns],
    attempts: &[impl Columns],
) -> Result<Vec<WebhookHistory>> {
    let events = events.iter().map(webhook_event).collect::<Result<_>>()?;
    let attempts = attempts
        .iter()
        .map(|row| Ok((row.int("event_id")?, webhook_attempt(row)?)))
        .collect::<Result<_>>()?;
    Ok(histories(events, attempts))
}

/// The `next_attempt_at`, `delivered_at` and `gave_up` columns after an attempt.
pub(super) fn after_attempt(
    attempt: &WebhookAttempt,
    next: WebhookNext,
) -> (Option<i64>, Option<i64>, bool) {
    match next {
        WebhookNext::Delivered => (
            None,
            Some(attempt.at_ms + attempt.duration_ms as i64),
            false,
        ),
        WebhookNext::RetryAt(at) => (Some(at), None, false),
        WebhookNext::GiveUp => (None, None, true),
    }
}

/// A `ledger_entries` row.
pub(super) fn ledger_entry(row: &impl Columns) -> Result<super::LedgerEntry> {
    Ok(super::LedgerEntry {
        txn: row.text("txn")?,
        account: row.text("account")?,
        amount: Credits(row.int("amount")?),
        at: row.int("at")?,
    })
}

/// The sums of a `GROUP BY key` query in the order of `keys`; a key with no rows sums to 0.
pub(super) fn sums_in_order<K: PartialEq>(keys: &[K], rows: &[(K, i64)]) -> Vec<Credits> {
    keys.iter()
        .map(|k| Credits(rows.iter().find(|(r, _)| r == k).map_or(0, |(_, v)| *v)))
        .collect()
}
