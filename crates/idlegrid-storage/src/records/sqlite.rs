//! The embedded records backend: one SQLite file in WAL mode through sqlx.
//!
//! All writes go through a pool of exactly one connection, so writers queue in the pool instead
//! of failing with SQLITE_BUSY; reads use a separate pool and see the last committed state.
//! `synchronous = FULL`: an acknowledged write survives a power cut, not just a process crash
//! (an fsync costs ~0.15 ms on the reference machine, and batches share one).
//! Batches are passed to SQLite as one JSON parameter and unpacked with `json_each`, so a
//! thousand-row batch is one statement, not a thousand round trips to the sqlx worker thread.
//!
//! Most methods are written once for both engines (`store.rs`); this file holds how SQLite runs
//! them (the pools, and lists bound as JSON) and what it does its own way ([`Engine`]): the
//! batches (ledger postings, chunks, results, failures, verdicts, devices seen) as JSON, and
//! claiming webhook events, which the single writer makes atomic.

use super::payments;
use super::rows::{self, backend};
use super::sql::{Engine, SqlStore, TaskCharged, queries_for};
use super::store;
use super::{
    DueWebhook, FailureCharged, NewFailure, NewResult, NewTask, OutputRef, Verdict, VerdictsApplied,
};
use crate::{Result, StorageError, now_ms};
use async_trait::async_trait;
use idlegrid_domain::{JobId, JobState, ResultId, WorkerId};
use serde_json::json;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

/// Records in one SQLite database file.
pub type SqliteStore = SqlStore<SqliteEngine>;

/// An SQLite database file: a pool of one writing connection and one of readers.
#[derive(Debug, Clone)]
pub struct SqliteEngine {
    /// The single writing connection.
    writer: SqlitePool,
    /// Read-only connections.
    reader: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .pragma("cache_size", "-16000");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(backend)?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&writer)
            .await
            .map_err(|e| StorageError::Backend(format!("migrating {}: {e}", path.display())))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await
            .map_err(backend)?;
        Ok(SqlStore {
            engine: SqliteEngine { writer, reader },
        })
    }

    /// Closes both pools, waiting for running statements.
    pub async fn close(&self) {
        self.engine.reader.close().await;
        self.engine.writer.close().await;
    }
}

/// A list argument as SQLite takes it: one JSON array, for `json_each`.
fn json_list<T: serde::Serialize>(list: Vec<T>) -> String {
    serde_json::to_string(&list).unwrap_or_default()
}

queries_for!(SqliteEngine, Sqlite, sqlite, read: reader, write: writer, list: json_list);

fn ids_json(ids: &[ResultId]) -> String {
    let ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
    serde_json::to_string(&ids).unwrap_or_default()
}

type Tx = sqlx::Transaction<'static, sqlx::Sqlite>;

/// Rejects a result not yet decided ([`store::charge_rejection`]); the device's run of valid
/// results ends.
async fn reject(tx: &mut Tx, id: ResultId, reason: &str) -> Result<Option<FailureCharged>> {
    let charged = store::charge_rejection::<SqliteEngine>(tx, id, reason, "invalid").await?;
    if let Some(charged) = &charged {
        sqlx::query("UPDATE workers SET valid_streak = 0 WHERE id = $1")
            .bind(charged.worker.0)
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
    }
    Ok(charged)
}

#[async_trait]
impl Engine for SqliteEngine {
    async fn post_entries(
        tx: &mut Self::Tx,
        entries: &[payments::Entry],
        charged: &BTreeMap<i64, i64>,
    ) -> Result<u64> {
        let mut posted = 0;
        if !entries.is_empty() {
            let rows: Vec<serde_json::Value> = entries
                .iter()
                .map(|e| json!([e.txn, e.account, e.amount, e.worker]))
                .collect();
            posted = sqlx::query(
                "INSERT INTO ledger_entries (txn, account, amount, at, worker_id) \
                 SELECT value->>0, value->>1, value->>2, ?2, value->>3 FROM json_each(?1) WHERE true \
                 ON CONFLICT (txn, account) DO NOTHING",
            )
            .bind(serde_json::Value::Array(rows).to_string())
            .bind(now_ms())
            .execute(&mut **tx)
            .await
            .map_err(backend)?
            .rows_affected();
        }
        if !charged.is_empty() {
            let charged: Vec<[i64; 2]> = charged.iter().map(|(job, n)| [*job, *n]).collect();
            sqlx::query(
                "UPDATE jobs SET charged = charged + c.value->>1 \
                 FROM json_each(?1) AS c WHERE jobs.id = c.value->>0",
            )
            .bind(serde_json::to_string(&charged).unwrap_or_default())
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
        }
        Ok(posted)
    }

    /// Applies verdicts in one transaction. A task still open takes the first `Valid` listed for
    /// it as its output (SQLite gives a bare column the row that `MIN(j.key)` picked).
    async fn apply_in(tx: &mut Self::Tx, verdicts: &[Verdict]) -> Result<VerdictsApplied> {
        let mut applied = VerdictsApplied::default();
        let (mut valid, mut passed) = (Vec::new(), Vec::new());
        for verdict in verdicts {
            match verdict {
                Verdict::Valid(id) => valid.push(*id),
                Verdict::Passed(id) => passed.push(*id),
                Verdict::Suspect(id, reason) => {
                    store::suspect::<SqliteEngine>(tx, *id, reason).await?;
                }
                _ => {}
            }
        }
        if !passed.is_empty() {
            sqlx::query(
                "UPDATE results SET validate_state = 'passed' \
                 WHERE id IN (SELECT value FROM json_each(?1)) AND validate_state = 'pending'",
            )
            .bind(ids_json(&passed))
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
        }
        if !valid.is_empty() {
            let ids = ids_json(&valid);
            let done_jobs: Vec<i64> = sqlx::query_scalar(
                "UPDATE tasks SET state = 'done', canonical_result = v.rid \
                 FROM (SELECT r.id AS rid, r.task_id AS tid, MIN(j.key) FROM json_each(?1) j \
                       JOIN results r ON r.id = j.value \
                       WHERE r.validate_state IN ('pending', 'passed') GROUP BY r.task_id) AS v \
                 WHERE tasks.id = v.tid AND tasks.state IN ('pending', 'validating') \
                 RETURNING tasks.job_id",
            )
            .bind(&ids)
            .fetch_all(&mut **tx)
            .await
            .map_err(backend)?;
            // Only results judged here lengthen their device's run: one judged twice (two
            // coordinators) counts once.
            let judged: Vec<(i64, i64, String)> = sqlx::query_as(
                "UPDATE results SET validate_state = CASE WHEN \
                 (SELECT canonical_result FROM tasks WHERE tasks.id = results.task_id) = results.id \
                 THEN 'valid' ELSE 'redundant' END \
                 WHERE id IN (SELECT value FROM json_each(?1)) \
                 AND validate_state IN ('pending', 'passed') RETURNING id, worker_id, validate_state",
            )
            .bind(&ids)
            .fetch_all(&mut **tx)
            .await
            .map_err(backend)?;
            let paid: Vec<(i64, String)> = judged
                .iter()
                .map(|(id, _, state)| (*id, state.clone()))
                .collect();
            store::pay::<SqliteEngine>(tx, &paid).await?;
            let mut per_worker: BTreeMap<i64, i64> = BTreeMap::new();
            for (_, worker, _) in &judged {
                *per_worker.entry(*worker).or_default() += 1;
            }
            let pairs: Vec<[i64; 2]> = per_worker.into_iter().map(|(w, n)| [w, n]).collect();
            sqlx::query(
                "UPDATE workers SET valid_streak = valid_streak + c.value->>1 \
                 FROM json_each(?1) AS c WHERE workers.id = c.value->>0",
            )
            .bind(serde_json::to_string(&pairs).unwrap_or_default())
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
            let mut per_job: BTreeMap<i64, i64> = BTreeMap::new();
            for job in done_jobs {
                *per_job.entry(job).or_default() += 1;
            }
            for (job, n) in per_job {
                let state: Option<String> = sqlx::query_scalar(
                    "UPDATE jobs SET chunks_done = chunks_done + ?2, \
                     state = CASE WHEN chunks_total IS NOT NULL AND chunks_done + ?2 >= chunks_total \
                                  AND state IN ('partitioning', 'running') \
                             THEN 'assembling' ELSE state END \
                     WHERE id = ?1 RETURNING state",
                )
                .bind(job)
                .bind(n)
                .fetch_optional(&mut **tx)
                .await
                .map_err(backend)?;
                if state.as_deref() == Some(JobState::Assembling.as_str()) {
                    applied.ready_to_assemble.push(JobId(job));
                }
            }
            let blamed = store::settle_disputes::<SqliteEngine>(tx, &valid).await?;
            for charged in &blamed {
                sqlx::query("UPDATE workers SET valid_streak = 0 WHERE id = $1")
                    .bind(charged.worker.0)
                    .execute(&mut **tx)
                    .await
                    .map_err(backend)?;
            }
            applied.charged.extend(blamed);
        }
        for verdict in verdicts {
            match verdict {
                Verdict::Invalid(id, reason) => {
                    if let Some(charged) = reject(tx, *id, reason).await? {
                        applied.charged.push(charged);
                    }
                }
                Verdict::Disputed(id, reason) => {
                    if let Some(charged) = store::dispute::<SqliteEngine>(tx, *id, reason).await? {
                        applied.charged.push(charged);
                    }
                }
                Verdict::Void(id, reason) => {
                    store::void::<SqliteEngine>(tx, *id, reason).await?;
                }
                Verdict::MoreReplicas(task, copies) => {
                    if let Some(more) =
                        store::add_replicas::<SqliteEngine>(tx, *task, *copies).await?
                    {
                        applied.replicate.push(more);
                    }
                }
                Verdict::FailTask(task, reason) => {
                    if let Some(job) = store::fail_task::<SqliteEngine>(tx, *task).await? {
                        applied.failed.push((job, *task, reason.clone()));
                    }
                }
                Verdict::Valid(_) | Verdict::Passed(_) | Verdict::Suspect(..) => {}
            }
        }
        Ok(applied)
    }

    async fn hold_tasks(_: &mut Self::Tx, _: &BTreeSet<i64>, _: bool) -> Result<()> {
        // The single writer connection serialises the transaction with every other write.
        Ok(())
    }

    async fn snapshot(&self) -> Result<Self::Tx> {
        // On the writer, like every read that must see the last write.
        self.writer.begin().await.map_err(backend)
    }

    async fn touch_workers(&self, seen: &[(WorkerId, i64)]) -> Result<()> {
        let batch: Vec<[i64; 2]> = seen.iter().map(|(w, at)| [w.0, *at]).collect();
        sqlx::query(
            "UPDATE workers SET last_seen_at = max(coalesce(last_seen_at, 0), s.at) \
             FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS at \
                   FROM json_each(?1)) AS s WHERE workers.id = s.id",
        )
        .bind(serde_json::to_string(&batch).unwrap_or_default())
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn insert_tasks(
        &self,
        job: JobId,
        tasks: &[NewTask],
        replicas: u32,
    ) -> Result<Vec<(i64, i64)>> {
        let batch: Vec<serde_json::Value> = tasks
            .iter()
            .map(|t| {
                let meta = t.meta.as_ref().map(|m| m.to_string());
                json!([t.index, t.input_key, t.offset, t.len, meta, t.work_ms])
            })
            .collect();
        let mut tx = self.writer.begin().await.map_err(backend)?;
        let inserted: Vec<(i64, i64)> = sqlx::query_as(
            "INSERT INTO tasks (job_id, idx, state, input_key, input_offset, input_len, meta, \
             replicas, work_ms) \
             SELECT ?1, value->>0, 'pending', value->>1, value->>2, value->>3, value->>4, ?3, \
             value->>5 \
             FROM json_each(?2) WHERE true \
             ON CONFLICT (job_id, idx) DO NOTHING RETURNING idx, id",
        )
        .bind(job.0)
        .bind(serde_json::Value::Array(batch).to_string())
        .bind(i64::from(replicas.max(1)))
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        sqlx::query("UPDATE jobs SET chunks_created = chunks_created + ?2 WHERE id = ?1")
            .bind(job.0)
            .bind(inserted.len() as i64)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(inserted)
    }

    async fn record_results(&self, batch: &[&NewResult]) -> Result<Vec<(i64, i64, i64)>> {
        let batch: Vec<serde_json::Value> = batch
            .iter()
            .map(|r| {
                let (inline, key) = match &r.output {
                    OutputRef::Inline(bytes) => (Some(hex::encode(bytes)), None),
                    OutputRef::Blob(key) => (None, Some(key.as_str())),
                };
                json!([r.task.0, r.worker.0, r.sha256, r.size, inline, key])
            })
            .collect();
        let mut tx = self.writer.begin().await.map_err(backend)?;
        // A replicated task takes one result per device; the common unreplicated task never
        // evaluates that check.
        let rows: Vec<(i64, i64, i64, i64)> = sqlx::query_as(
            "INSERT INTO results (task_id, job_id, worker_id, outcome, sha256, size, inline_output, \
             blob_key, validate_state, created_at) \
             SELECT t.id, t.job_id, b.value->>1, 'success', b.value->>2, b.value->>3, \
             unhex(b.value->>4), b.value->>5, 'pending', ?2 \
             FROM json_each(?1) b JOIN tasks t ON t.id = b.value->>0 \
             WHERE t.state = 'pending' AND (t.replicas = 1 OR NOT EXISTS ( \
                 SELECT 1 FROM results o WHERE o.task_id = t.id \
                 AND o.worker_id = b.value->>1 AND o.outcome = 'success')) \
             RETURNING task_id, worker_id, id, job_id",
        )
        .bind(serde_json::Value::Array(batch).to_string())
        .bind(now_ms())
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        let task_ids: Vec<i64> = rows.iter().map(|(task, ..)| *task).collect();
        sqlx::query(
            "UPDATE tasks SET state = 'validating' \
             WHERE id IN (SELECT value FROM json_each(?1)) AND state = 'pending' \
             AND (replicas = 1 OR replicas <= (SELECT count(*) FROM results r \
                  WHERE r.task_id = tasks.id AND r.outcome = 'success' \
                  AND r.validate_state IN ('pending', 'passed')))",
        )
        .bind(serde_json::to_string(&task_ids).unwrap_or_default())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let mut per_job: BTreeMap<i64, i64> = BTreeMap::new();
        for (.., job) in &rows {
            *per_job.entry(*job).or_default() += 1;
        }
        for (job, n) in per_job {
            sqlx::query("UPDATE jobs SET results_received = results_received + ?2 WHERE id = ?1")
                .bind(job)
                .bind(n)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(rows
            .into_iter()
            .map(|(task, worker, id, _)| (task, worker, id))
            .collect())
    }

    async fn record_failures(&self, failures: &[NewFailure]) -> Result<Vec<TaskCharged>> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
        let now = now_ms();
        let mut charged: Vec<TaskCharged> = Vec::with_capacity(failures.len());
        for failure in failures {
            sqlx::query(
                "INSERT INTO results (task_id, job_id, worker_id, outcome, reason, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .bind(failure.task.0)
            .bind(failure.job.0)
            .bind(failure.worker.0)
            .bind(failure.outcome.as_str())
            .bind(&failure.reason)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
            let counts = failure.outcome.counts_as_failure();
            let row: Option<(i64, String, i64, String)> = sqlx::query_as(
                "UPDATE tasks SET failures = failures + ?2 WHERE id = ?1 \
                 RETURNING failures, state, \
                 (SELECT max_attempts FROM jobs WHERE jobs.id = tasks.job_id), \
                 (SELECT state FROM jobs WHERE jobs.id = tasks.job_id)",
            )
            .bind(failure.task.0)
            .bind(counts as i64)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
            let Some((failures_now, state, max_attempts, job_state_name)) = row else {
                return Err(StorageError::NotFound(format!("task {}", failure.task)));
            };
            if counts {
                sqlx::query("UPDATE jobs SET failed_attempts = failed_attempts + 1 WHERE id = ?1")
                    .bind(failure.job.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
            }
            charged.push((
                failure.task.0,
                failures_now,
                state,
                max_attempts,
                job_state_name,
            ));
        }
        tx.commit().await.map_err(backend)?;
        Ok(charged)
    }

    async fn claim_webhook_events(
        &self,
        now_ms: i64,
        claim_ms: i64,
        limit: u32,
    ) -> Result<Vec<DueWebhook>> {
        // The single writer makes the claim atomic: no second claim sees these rows unclaimed.
        let rows = sqlx::query(
            "UPDATE job_events SET claimed_until = ?1 + ?2 WHERE id IN ( \
                 SELECT e.id FROM job_events e \
                 WHERE e.has_webhook AND e.delivered_at IS NULL AND NOT e.gave_up \
                 AND e.next_attempt_at <= ?1 \
                 AND (e.claimed_until IS NULL OR e.claimed_until <= ?1) \
                 AND NOT EXISTS (SELECT 1 FROM job_events o WHERE o.job_id = e.job_id \
                     AND o.id < e.id AND o.has_webhook AND o.delivered_at IS NULL \
                     AND NOT o.gave_up) \
                 ORDER BY e.next_attempt_at, e.id LIMIT ?3) \
             RETURNING *, (SELECT jobs.webhook FROM jobs WHERE jobs.id = job_events.job_id) AS hook",
        )
        .bind(now_ms)
        .bind(claim_ms)
        .bind(i64::from(limit))
        .fetch_all(&self.writer)
        .await
        .map_err(backend)?;
        rows::due_webhooks(&rows)
    }
}
