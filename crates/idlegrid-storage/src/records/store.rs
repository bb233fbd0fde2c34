//! The records store, written once for both engines: every [`Store`] method whose statements
//! are the same on SQLite and PostgreSQL (where a word differs, [`sql!`] spells it both ways),
//! and the ones that differ handed to the engine ([`Engine`]). The steps of a verdict batch
//! that are the same on both (rejecting, disputing, paying, settling disputes, sending a task
//! out again, failing it) are here too, for the engines' own verdict code to call inside its
//! transaction.

use super::payments;
use super::rows::{self, Columns, job_state, task_state};
use super::sql::{Engine, On, SqlStore, TaskCharged, args, sql};
use super::{
    AppVersion, AttemptRecord, Decide, DeviceRecord, Distrusted, DueWebhook, FailureCharged, Hold,
    InDoubt, JobRecord, LedgerAudit, LedgerEntry, NewFailure, NewJob, NewResult, NewTask,
    OutputRef, Principal, Published, ReplicaState, Replicate, Reputation, ResultRecord, Store,
    StoredBlob, TaskRecord, Verdict, VerdictsApplied, WebhookAttempt, WebhookHistory, WebhookNext,
    WorkerRecord,
};
use crate::{Result, StorageError, now_ms};
use async_trait::async_trait;
use idlegrid_domain::app::version_key;
use idlegrid_domain::{
    Account, AttemptOutcome, Capabilities, Credits, JobId, JobState, Quote, Replication, ResultId,
    TaskId, TaskState, TenantId, WorkerId,
};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Creates the account named in `$table` (tenants, owners or operators) if missing; returns
/// its id.
macro_rules! ensure_account {
    ($store:expr, $table:tt, $name:expr) => {
        returned_id(
            On::Write(&$store.engine),
            sql!(
                "INSERT INTO "
                $table
                " (name, created_at) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id"
            ),
            args![$name, now_ms()],
        )
    };
}

/// The `id` a statement that always returns one row returns.
async fn returned_id<E: Engine>(
    on: On<'_, E>,
    sql: super::sql::Sql,
    args: Vec<super::sql::Arg>,
) -> Result<i64> {
    let row = E::optional(on, sql, args).await?;
    let row = row.ok_or_else(|| StorageError::Backend("a statement returned no row".into()))?;
    row.int("id")
}

/// The first row of a statement that always returns one.
async fn first<E: Engine>(
    on: On<'_, E>,
    sql: super::sql::Sql,
    args: Vec<super::sql::Arg>,
) -> Result<E::Row> {
    E::optional(on, sql, args)
        .await?
        .ok_or_else(|| StorageError::Backend("a statement returned no row".into()))
}

/// Inserts a worker and its token in `tx`.
async fn insert_worker<E: Engine>(
    tx: &mut E::Tx,
    owner: i64,
    name: &str,
    capabilities: &Capabilities,
    token_hash: [u8; 32],
) -> Result<WorkerId> {
    let caps =
        serde_json::to_string(capabilities).map_err(|e| StorageError::Backend(e.to_string()))?;
    let now = now_ms();
    let id = returned_id(
        On::<E>::Tx(tx),
        sql!(
            "INSERT INTO workers (owner_id, name, capabilities, created_at) \
                 VALUES ($1, $2, $3, $4) RETURNING id"
        ),
        args![owner, name, caps, now],
    )
    .await?;
    E::execute(
        On::Tx(tx),
        sql!(
            "INSERT INTO credentials (secret_hash, kind, subject, created_at) \
                 VALUES ($1, 'worker', $2, $3)"
        ),
        args![token_hash, id, now],
    )
    .await?;
    Ok(WorkerId(id))
}

/// The column `column` of every row.
async fn ints<E: Engine>(
    on: On<'_, E>,
    sql: super::sql::Sql,
    args: Vec<super::sql::Arg>,
    column: &str,
) -> Result<Vec<i64>> {
    let rows = E::all(on, sql, args).await?;
    rows.iter().map(|row| row.int(column)).collect()
}

/// Sums of `amount` per `key` (an integer column), in the order of `keys`.
async fn sums<E: Engine>(engine: &E, sql: super::sql::Sql, keys: Vec<i64>) -> Result<Vec<Credits>> {
    let rows = E::all(On::Read(engine), sql, args![keys.clone()]).await?;
    let rows = rows
        .iter()
        .map(|row| Ok((row.int("key")?, row.int("amount")?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(rows::sums_in_order(&keys, &rows))
}

/// The devices that may not take a task's next copy: those with an undecided result for it
/// (reported, passed or disputed) and, on the open grid, every other device of their owners.
pub(super) async fn not_independent<E: Engine>(
    tx: &mut E::Tx,
    task: TaskId,
) -> Result<Vec<WorkerId>> {
    let ids = ints(
        On::<E>::Tx(tx),
        sql!(
            "SELECT w.id FROM workers w \
             WHERE w.id IN (SELECT r.worker_id FROM results r WHERE r.task_id = $1 \
                            AND r.sha256 IS NOT NULL \
                            AND r.validate_state IN ('pending', 'passed', 'disputed')) \
             OR ((SELECT j.placement FROM tasks t JOIN jobs j ON j.id = t.job_id \
                  WHERE t.id = $1) = 'any' \
                 AND w.owner_id IN (SELECT v.owner_id FROM results r \
                                    JOIN workers v ON v.id = r.worker_id \
                                    WHERE r.task_id = $1 AND r.sha256 IS NOT NULL \
                                    AND r.validate_state IN ('pending', 'passed', 'disputed'))) \
             ORDER BY w.id LIMIT 4096"
        ),
        args![task.0],
        "id",
    )
    .await?;
    Ok(ids.into_iter().map(WorkerId).collect())
}

/// Sends a task out for `copies` more results in `tx`; says what to queue if its job still
/// dispatches. The caller holds the task.
pub(super) async fn add_replicas<E: Engine>(
    tx: &mut E::Tx,
    task: TaskId,
    copies: u32,
) -> Result<Option<Replicate>> {
    let row = E::optional(
        On::Tx(&mut *tx),
        sql!(
            "UPDATE tasks SET replicas = replicas + $2, \
             state = CASE WHEN state = 'validating' THEN 'pending' ELSE state END \
             WHERE id = $1 AND state IN ('pending', 'validating') \
             RETURNING job_id, (SELECT state FROM jobs WHERE jobs.id = tasks.job_id) AS job_state"
        ),
        args![task.0, i64::from(copies)],
    )
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    if !job_state(&row.text("job_state")?)?.is_dispatching() {
        return Ok(None);
    }
    Ok(Some(Replicate {
        task,
        job: JobId(row.int("job_id")?),
        copies,
        exclude: not_independent::<E>(tx, task).await?,
    }))
}

/// Rejects a result not yet decided, leaving it `state` (`invalid`, or `disputed` until an
/// independent party's result is accepted): its task is charged a failed attempt (and waits
/// for work again if it was waiting for this verdict), its job counts the rejection. The
/// caller holds the task and its job.
pub(super) async fn charge_rejection<E: Engine>(
    tx: &mut E::Tx,
    id: ResultId,
    reason: &str,
    state: &str,
) -> Result<Option<FailureCharged>> {
    let row = E::optional(
        On::Tx(&mut *tx),
        sql!(
            "UPDATE results SET validate_state = $3, outcome = 'validate_error', reason = $2 \
             WHERE id = $1 AND validate_state IN ('pending', 'passed') \
             RETURNING task_id, job_id, worker_id"
        ),
        args![id.0, reason, state],
    )
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let (task, job, worker) = (
        row.int("task_id")?,
        row.int("job_id")?,
        row.int("worker_id")?,
    );
    let charged = E::optional(
        On::Tx(&mut *tx),
        sql!(
            "UPDATE tasks SET failures = failures + 1, \
             state = CASE WHEN state = 'validating' THEN 'pending' ELSE state END \
             WHERE id = $1 RETURNING failures, state, \
             (SELECT max_attempts FROM jobs WHERE jobs.id = tasks.job_id) AS max_attempts, \
             (SELECT state FROM jobs WHERE jobs.id = tasks.job_id) AS job_state"
        ),
        args![task],
    )
    .await?;
    E::execute(
        On::Tx(tx),
        sql!(
            "UPDATE jobs SET failed_attempts = failed_attempts + 1, \
             results_rejected = results_rejected + 1 WHERE id = $1"
        ),
        args![job],
    )
    .await?;
    let Some(charged) = charged else {
        return Ok(None);
    };
    Ok(Some(FailureCharged {
        task: TaskId(task),
        job: JobId(job),
        worker: WorkerId(worker),
        outcome: AttemptOutcome::ValidateError,
        failures: charged.int("failures")? as u32,
        max_attempts: charged.int("max_attempts")? as u32,
        still_pending: task_state(&charged.text("state")?)? == TaskState::Pending
            && job_state(&charged.text("job_state")?)?.is_dispatching(),
        independent_of: Vec::new(),
    }))
}

/// Disputes a result the app's validator rejected: the task is charged a failed attempt and
/// waits for work again (from a party independent of the results it has); its device is not
/// blamed yet. The caller holds the task and its job.
pub(super) async fn dispute<E: Engine>(
    tx: &mut E::Tx,
    id: ResultId,
    reason: &str,
) -> Result<Option<FailureCharged>> {
    let Some(mut charged) = charge_rejection::<E>(tx, id, reason, "disputed").await? else {
        return Ok(None);
    };
    charged.independent_of = not_independent::<E>(tx, charged.task).await?;
    Ok(Some(charged))
}

/// Pays the results a verdict batch just accepted (`judged`: id, new state), as
/// [`payments::payments`] works out: one journal transaction per job and device, and each
/// job's running charge. Only results that changed state in the batch are passed in, so none
/// is paid twice. The caller holds their jobs.
pub(super) async fn pay<E: Engine>(tx: &mut E::Tx, judged: &[(i64, String)]) -> Result<()> {
    if judged.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = judged.iter().map(|(id, _)| *id).collect();
    let states: BTreeMap<i64, &str> = judged
        .iter()
        .map(|(id, state)| (*id, state.as_str()))
        .collect();
    let found = E::all(
        On::Tx(&mut *tx),
        sql!(
            "SELECT r.id, r.worker_id, w.owner_id, r.job_id, t.work_ms, t.replicas, \
                    j.price_per_core_hour, j.owner_per_core_hour, j.quote, j.charged, \
                    j.state AS job_state, (j.placement = 'own' OR " [agreed] ") AS verified \
             FROM results r JOIN tasks t ON t.id = r.task_id JOIN jobs j ON j.id = r.job_id \
             JOIN workers w ON w.id = r.worker_id \
             WHERE r.id" [in 1] " AND j.quote IS NOT NULL ORDER BY r.id"
        ),
        args![ids],
    )
    .await?;
    let accepted = found
        .iter()
        .map(|row| rows::accepted(row, states.get(&row.int("id")?) == Some(&"valid")))
        .collect::<Result<Vec<_>>>()?;
    let paid = payments::payments(&accepted);
    E::post_entries(tx, &paid.entries, &paid.charged).await?;
    Ok(())
}

/// Marks a result passed by the app's validator but suspect (held for agreement), if it is
/// still pending.
pub(super) async fn suspect<E: Engine>(tx: &mut E::Tx, id: ResultId, reason: &str) -> Result<()> {
    E::execute(
        On::Tx(tx),
        sql!(
            "UPDATE results SET validate_state = 'passed', suspect = true, reason = $2 \
             WHERE id = $1 AND validate_state = 'pending'"
        ),
        args![id.0, reason.to_string()],
    )
    .await?;
    Ok(())
}

/// Voids a result not yet decided: it counts neither way.
pub(super) async fn void<E: Engine>(tx: &mut E::Tx, id: ResultId, reason: &str) -> Result<()> {
    E::execute(
        On::Tx(tx),
        sql!(
            "UPDATE results SET validate_state = 'void', reason = $2 \
             WHERE id = $1 AND validate_state IN ('pending', 'passed', 'disputed')"
        ),
        args![id.0, reason.to_string()],
    )
    .await?;
    Ok(())
}

/// Posts transaction `txn` (its rows must sum to zero); `false`, changing nothing, if it was
/// posted before.
pub(super) async fn post<E: Engine>(
    tx: &mut E::Tx,
    txn: &str,
    rows: &[(String, i64)],
) -> Result<bool> {
    debug_assert_eq!(rows.iter().map(|(_, a)| a).sum::<i64>(), 0);
    let entries: Vec<payments::Entry> = rows
        .iter()
        .map(|(account, amount)| payments::Entry {
            txn: txn.to_string(),
            account: account.clone(),
            amount: *amount,
            worker: None,
        })
        .collect();
    Ok(E::post_entries(tx, &entries, &BTreeMap::new()).await? > 0)
}

/// Marks a task failed in `tx` unless it is final already, and counts it on its job (the task
/// is locked before the job, as everywhere); returns the job.
pub(super) async fn fail_task<E: Engine>(tx: &mut E::Tx, task: TaskId) -> Result<Option<JobId>> {
    let job = E::optional(
        On::Tx(&mut *tx),
        sql!(
            "UPDATE tasks SET state = 'failed' WHERE id = $1 \
             AND state IN ('pending', 'validating') RETURNING job_id"
        ),
        args![task.0],
    )
    .await?;
    let Some(job) = job else {
        return Ok(None);
    };
    let job = job.int("job_id")?;
    E::execute(
        On::Tx(tx),
        sql!("UPDATE jobs SET chunks_failed = chunks_failed + 1 WHERE id = $1"),
        args![job],
    )
    .await?;
    Ok(Some(JobId(job)))
}

/// Settles the disputed results of the tasks of these accepted results that now have an
/// output: one with the output's bytes is void (the device was right after all), any other is
/// invalid (an independent party's result was accepted where the device's was rejected).
/// Returns what was charged; the caller ends the blamed devices' runs.
pub(super) async fn settle_disputes<E: Engine>(
    tx: &mut E::Tx,
    accepted: &[ResultId],
) -> Result<Vec<FailureCharged>> {
    let ids: Vec<i64> = accepted.iter().map(|id| id.0).collect();
    let settled = E::all(
        On::Tx(tx),
        sql!(
            "UPDATE results SET validate_state = CASE WHEN results.sha256 = \
                 (SELECT o.sha256 FROM results o WHERE o.id = t.canonical_result) \
                 THEN 'void' ELSE 'invalid' END \
             FROM tasks t WHERE t.id = results.task_id AND t.state = 'done' \
             AND results.validate_state = 'disputed' \
             AND results.task_id IN (SELECT r.task_id FROM results r WHERE r.id" [in 1] ") \
             RETURNING results.task_id, results.job_id, \
             CASE WHEN results.validate_state = 'invalid' THEN results.worker_id END AS blamed"
        ),
        args![ids],
    )
    .await?;
    let mut blamed = Vec::new();
    for row in &settled {
        let Some(worker) = row.int_opt("blamed")? else {
            continue;
        };
        blamed.push(FailureCharged {
            task: TaskId(row.int("task_id")?),
            job: JobId(row.int("job_id")?),
            worker: WorkerId(worker),
            outcome: AttemptOutcome::ValidateError,
            failures: 0,
            max_attempts: 0,
            still_pending: false,
            independent_of: Vec::new(),
        });
    }
    Ok(blamed)
}

/// Reads the replication state of these tasks in `tx`: two statements, so the caller holds
/// the tasks or reads a snapshot.
async fn read_replica_states<E: Engine>(
    tx: &mut E::Tx,
    tasks: &[TaskId],
) -> Result<Vec<ReplicaState>> {
    let ids: Vec<i64> = tasks.iter().map(|t| t.0).collect();
    let task_rows = E::all(
        On::Tx(&mut *tx),
        sql!(
            "SELECT t.id, t.job_id, t.state, t.replicas, j.placement, t.canonical_result \
             FROM tasks t JOIN jobs j ON j.id = t.job_id WHERE t.id" [in 1] " ORDER BY t.id"
        ),
        args![ids.clone()],
    )
    .await?;
    let result_rows = E::all(
        On::Tx(tx),
        sql!(
            "SELECT r.task_id, r.id, r.worker_id, w.owner_id, r.sha256, r.validate_state, \
             r.suspect, r.reason, w.valid_streak, w.created_at AS registered_at, \
             (w.capabilities" [jsonb] ") ->> 'runtime' AS runtime, \
             (w.capabilities" [jsonb] ") ->> 'ffmpeg' AS ffmpeg \
             FROM results r JOIN workers w ON w.id = r.worker_id \
             WHERE r.task_id" [in 1] " AND r.sha256 IS NOT NULL \
             AND (r.validate_state IN ('pending', 'passed', 'disputed') \
                  OR r.id IN (SELECT canonical_result FROM tasks WHERE id" [in 1] ")) \
             ORDER BY r.id"
        ),
        args![ids],
    )
    .await?;
    rows::replica_states(&task_rows, &result_rows)
}

/// An [`AppVersion`] from a row of `app_versions` joined with its `app_names` row.
fn app_version(row: &impl Columns) -> Result<AppVersion> {
    Ok(AppVersion {
        name: row.text("name")?,
        version: row.text("version")?,
        tenant: TenantId(row.int("tenant_id")?),
        public: row.flag("public")?,
        manifest: row.text("manifest")?,
        bundle_sha256: row.text("bundle_sha256")?,
        bundle_bytes: row.int("bundle_bytes")?.max(0) as u64,
        created_ms: row.int("created_at")?,
    })
}

#[async_trait]
impl<E: Engine> Store for SqlStore<E> {
    async fn publish_app(&self, app: &AppVersion) -> Result<Published> {
        let mut tx = self.engine.begin().await?;
        E::execute(
            On::Tx(&mut tx),
            sql!(
                "INSERT INTO app_names (name, tenant_id, public, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING"
            ),
            args![&app.name, app.tenant.0, app.public, app.created_ms],
        )
        .await?;
        let owner = E::optional(
            On::Tx(&mut tx),
            sql!("SELECT tenant_id FROM app_names WHERE name = $1"[lock]),
            args![&app.name],
        )
        .await?
        .map(|row| row.int("tenant_id"))
        .transpose()?;
        if owner != Some(app.tenant.0) {
            return Ok(Published::NameTaken);
        }
        let inserted = E::execute(
            On::Tx(&mut tx),
            sql!(
                "INSERT INTO app_versions (name, version, manifest, bundle_sha256, \
                 bundle_bytes, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (name, version) DO NOTHING"
            ),
            args![
                &app.name,
                &app.version,
                &app.manifest,
                &app.bundle_sha256,
                i64::try_from(app.bundle_bytes).unwrap_or(i64::MAX),
                app.created_ms
            ],
        )
        .await?;
        if inserted == 1 {
            E::commit(tx).await?;
            return Ok(Published::Created);
        }
        let kept = E::optional(
            On::Tx(&mut tx),
            sql!("SELECT bundle_sha256 FROM app_versions WHERE name = $1 AND version = $2"),
            args![&app.name, &app.version],
        )
        .await?
        .map(|row| row.text("bundle_sha256"))
        .transpose()?;
        Ok(if kept.as_deref() == Some(app.bundle_sha256.as_str()) {
            Published::Same
        } else {
            Published::Exists
        })
    }

    async fn app_versions(&self, name: &str) -> Result<Vec<AppVersion>> {
        let rows = E::all(
            On::Read(&self.engine),
            sql!(
                "SELECT v.name, v.version, n.tenant_id, n.public, v.manifest, v.bundle_sha256, \
                 v.bundle_bytes, v.created_at FROM app_versions v JOIN app_names n \
                 ON n.name = v.name WHERE v.name = $1 ORDER BY v.created_at, v.version"
            ),
            args![name],
        )
        .await?;
        rows.iter().map(app_version).collect()
    }

    async fn latest_apps(&self, tenant: Option<TenantId>) -> Result<Vec<AppVersion>> {
        let rows = E::all(
            On::Read(&self.engine),
            sql!(
                "SELECT v.name, v.version, n.tenant_id, n.public, v.manifest, v.bundle_sha256, \
                 v.bundle_bytes, v.created_at FROM app_versions v JOIN app_names n \
                 ON n.name = v.name WHERE $1 < 0 OR n.tenant_id = $1 OR n.public \
                 ORDER BY v.name"
            ),
            args![tenant.map_or(-1, |t| t.0)],
        )
        .await?;
        let mut latest: Vec<AppVersion> = Vec::new();
        for row in &rows {
            let app = app_version(row)?;
            match latest.last_mut() {
                Some(last) if last.name == app.name => {
                    if version_key(&app.version) > version_key(&last.version) {
                        *last = app;
                    }
                }
                _ => latest.push(app),
            }
        }
        Ok(latest)
    }

    async fn set_app_public(&self, name: &str, public: bool) -> Result<bool> {
        let changed = E::execute(
            On::Write(&self.engine),
            sql!("UPDATE app_names SET public = $2 WHERE name = $1"),
            args![name, public],
        )
        .await?;
        Ok(changed == 1)
    }

    async fn ensure_tenant(&self, name: &str) -> Result<TenantId> {
        ensure_account!(self, "tenants", name).await.map(TenantId)
    }

    async fn ensure_owner(&self, name: &str) -> Result<i64> {
        ensure_account!(self, "owners", name).await
    }

    async fn register_worker(
        &self,
        owner: i64,
        name: &str,
        capabilities: &Capabilities,
        token_hash: [u8; 32],
    ) -> Result<WorkerId> {
        let mut tx = self.engine.begin().await?;
        let id = insert_worker::<E>(&mut tx, owner, name, capabilities, token_hash).await?;
        E::commit(tx).await?;
        Ok(id)
    }

    async fn create_link_code(
        &self,
        owner: i64,
        code_hash: [u8; 32],
        expires_at_ms: i64,
    ) -> Result<()> {
        let mut tx = self.engine.begin().await?;
        E::execute(
            On::Tx(&mut tx),
            sql!("DELETE FROM link_codes WHERE expires_at <= $1"),
            args![now_ms()],
        )
        .await?;
        E::execute(
            On::Tx(&mut tx),
            sql!("INSERT INTO link_codes (code_hash, owner_id, expires_at) VALUES ($1, $2, $3)"),
            args![code_hash, owner, expires_at_ms],
        )
        .await?;
        E::commit(tx).await
    }

    async fn register_linked_worker(
        &self,
        code_hash: [u8; 32],
        now_ms: i64,
        name: &str,
        capabilities: &Capabilities,
        token_hash: [u8; 32],
    ) -> Result<Option<WorkerId>> {
        let mut tx = self.engine.begin().await?;
        // Deleting the code locks it: a second registration with it finds nothing.
        let owner = E::optional(
            On::Tx(&mut tx),
            sql!(
                "DELETE FROM link_codes WHERE code_hash = $1 AND expires_at > $2 \
                     RETURNING owner_id"
            ),
            args![code_hash, now_ms],
        )
        .await?;
        let Some(owner) = owner else {
            return Ok(None);
        };
        let owner = owner.int("owner_id")?;
        let id = insert_worker::<E>(&mut tx, owner, name, capabilities, token_hash).await?;
        E::commit(tx).await?;
        Ok(Some(id))
    }

    async fn update_worker_capabilities(
        &self,
        worker: WorkerId,
        capabilities: &Capabilities,
    ) -> Result<bool> {
        let caps = serde_json::to_string(capabilities)
            .map_err(|e| StorageError::Backend(e.to_string()))?;
        let changed = E::execute(
            On::Write(&self.engine),
            sql!("UPDATE workers SET capabilities = $1 WHERE id = $2"),
            args![caps, worker.0],
        )
        .await?;
        Ok(changed == 1)
    }

    async fn worker(&self, worker: WorkerId) -> Result<Option<WorkerRecord>> {
        let row = E::optional(
            On::Read(&self.engine),
            sql!(
                "SELECT w.capabilities, w.owner_id, w.created_at, w.valid_streak, o.tenant_id \
                     FROM workers w JOIN owners o ON o.id = w.owner_id WHERE w.id = $1"
            ),
            args![worker.0],
        )
        .await?;
        row.as_ref().map(rows::worker).transpose()
    }

    async fn set_owner_tenant(&self, owner: i64, tenant: Option<TenantId>) -> Result<()> {
        E::execute(
            On::Write(&self.engine),
            sql!("UPDATE owners SET tenant_id = $2 WHERE id = $1"),
            args![owner, tenant.map(|t| t.0)],
        )
        .await?;
        Ok(())
    }

    async fn owner_counts(&self, tenant: TenantId) -> Result<(u64, u64)> {
        let row = first(
            On::Read(&self.engine),
            sql!(
                "SELECT count(*) FILTER (WHERE tenant_id IS NOT DISTINCT FROM $1) AS mine, \
                     count(*) FILTER (WHERE tenant_id IS DISTINCT FROM $1) AS others FROM owners"
            ),
            args![tenant.0],
        )
        .await?;
        Ok((row.int("mine")? as u64, row.int("others")? as u64))
    }

    async fn reputation(&self, worker: WorkerId) -> Result<Option<Reputation>> {
        let row = E::optional(
            On::Read(&self.engine),
            sql!(
                "SELECT \
                     (SELECT count(*) FROM results WHERE worker_id = $1 \
                      AND validate_state IN ('valid', 'redundant')) AS valid, \
                     (SELECT count(*) FROM results WHERE worker_id = $1 \
                      AND validate_state = 'invalid') AS invalid, \
                     (SELECT count(*) FROM results WHERE worker_id = $1 \
                      AND outcome = 'no_reply') AS timed_out, \
                     valid_streak, quarantined_at FROM workers WHERE id = $1"
            ),
            args![worker.0],
        )
        .await?;
        row.map(|row| {
            Ok(Reputation {
                valid: row.int("valid")? as u64,
                invalid: row.int("invalid")? as u64,
                timed_out: row.int("timed_out")? as u64,
                streak: row.int("valid_streak")? as u64,
                quarantined_at_ms: row.int_opt("quarantined_at")?,
            })
        })
        .transpose()
    }

    async fn in_doubt(&self, worker: WorkerId) -> Result<InDoubt> {
        let row = E::optional(
            On::Read(&self.engine),
            sql!(
                "SELECT w.valid_streak, count(r.id) AS n, min(r.created_at) AS oldest \
                     FROM workers w LEFT JOIN results r ON r.worker_id = w.id \
                     AND r.validate_state IN ('pending', 'passed', 'disputed') \
                     WHERE w.id = $1 GROUP BY w.valid_streak"
            ),
            args![worker.0],
        )
        .await?;
        let Some(row) = row else {
            return Ok(InDoubt::default());
        };
        Ok(InDoubt {
            streak: row.int("valid_streak")?.max(0) as u64,
            count: row.int("n")?.max(0) as u64,
            oldest_ms: row.int_opt("oldest")?,
        })
    }

    async fn quarantine_untrusted(
        &self,
        workers: &[WorkerId],
        max_invalid: u64,
    ) -> Result<Vec<WorkerId>> {
        let ids: Vec<i64> = workers.iter().map(|w| w.0).collect();
        // The candidates are locked in id order first, like every other writer of workers; a
        // device quarantined meanwhile by another coordinator drops out when its lock is
        // granted, so each device is reported newly quarantined once.
        let mut quarantined = ints(
            On::Write(&self.engine),
            sql!(
                "UPDATE workers SET quarantined_at = $3 \
                 FROM (SELECT id FROM workers WHERE id" [in 1] " AND quarantined_at IS NULL \
                       ORDER BY id" [lock] ") AS c \
                 WHERE workers.id = c.id AND workers.quarantined_at IS NULL \
                 AND (SELECT count(*) FROM results WHERE results.worker_id = workers.id \
                      AND validate_state = 'invalid') >= $2 \
                 RETURNING workers.id"
            ),
            args![ids, max_invalid.min(i64::MAX as u64) as i64, now_ms()],
            "id",
        )
        .await?;
        quarantined.sort_unstable();
        Ok(quarantined.into_iter().map(WorkerId).collect())
    }

    async fn account_name(&self, principal: Principal) -> Result<Option<String>> {
        let (sql, id) = match principal {
            Principal::Tenant(t) => (sql!("SELECT name FROM tenants WHERE id = $1"), t.0),
            Principal::Owner(o) => (sql!("SELECT name FROM owners WHERE id = $1"), o),
            Principal::Operator(o) => (sql!("SELECT name FROM operators WHERE id = $1"), o),
            Principal::Worker(_) => return Ok(None),
        };
        let row = E::optional(On::Read(&self.engine), sql, args![id]).await?;
        row.map(|row| row.text("name")).transpose()
    }

    async fn ensure_operator(&self, name: &str) -> Result<i64> {
        ensure_account!(self, "operators", name).await
    }

    async fn owner_devices(&self, owner: i64) -> Result<Vec<DeviceRecord>> {
        let rows = E::all(
            On::Read(&self.engine),
            sql!(
                "SELECT w.id, w.name, w.capabilities, w.created_at, w.last_seen_at, \
                     w.valid_streak, w.quarantined_at, w.paused_at, \
                     (SELECT count(*) FROM results WHERE worker_id = w.id \
                      AND validate_state IN ('valid', 'redundant')) AS valid, \
                     (SELECT count(*) FROM results WHERE worker_id = w.id \
                      AND validate_state = 'invalid') AS invalid, \
                     (SELECT count(*) FROM results WHERE worker_id = w.id \
                      AND outcome = 'no_reply') AS timed_out \
                     FROM workers w WHERE w.owner_id = $1 AND w.removed_at IS NULL ORDER BY w.id"
            ),
            args![owner],
        )
        .await?;
        rows.iter().map(rows::device).collect()
    }

    async fn touch_workers(&self, seen: &[(WorkerId, i64)]) -> Result<()> {
        if seen.is_empty() {
            return Ok(());
        }
        self.engine.touch_workers(seen).await
    }

    async fn quarantined_workers(&self) -> Result<Vec<WorkerId>> {
        let ids = ints(
            On::Read(&self.engine),
            sql!("SELECT id FROM workers WHERE quarantined_at IS NOT NULL"),
            args![],
            "id",
        )
        .await?;
        Ok(ids.into_iter().map(WorkerId).collect())
    }

    async fn pending_results_of(&self, worker: WorkerId) -> Result<Vec<ResultId>> {
        let ids = ints(
            On::Read(&self.engine),
            sql!(
                "SELECT id FROM results WHERE worker_id = $1 \
                     AND validate_state IN ('pending', 'passed')"
            ),
            args![worker.0],
            "id",
        )
        .await?;
        Ok(ids.into_iter().map(ResultId).collect())
    }

    async fn create_job(&self, job: &NewJob) -> Result<JobRecord> {
        let replication = job
            .replication
            .is_replicated()
            .then(|| serde_json::to_string(&job.replication).unwrap_or_default());
        let row = first(
            On::Write(&self.engine),
            sql!(
                "INSERT INTO jobs (tenant_id, app, app_version, bundle_sha256, params, \
                     partition_options, priority, max_attempts, task_timeout_secs, replication, \
                     deadline_secs, external, webhook, tier, max_price, placement, state, \
                     created_at, name) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $11, $12, $13, $14, $15, $16, \
                     $17, 'created', $10, $18) RETURNING *"
            ),
            args![
                job.tenant.0,
                &job.app,
                &job.app_version,
                &job.bundle_sha256,
                job.params.to_string(),
                job.partition_options.to_string(),
                i64::from(job.priority),
                i64::from(job.max_attempts),
                job.task_timeout_secs as i64,
                now_ms(),
                replication,
                job.deadline_secs.map(|s| s as i64),
                job.external.as_ref().map(|e| e.to_string()),
                job.webhook.as_ref().map(|w| w.to_string()),
                job.tier.as_str(),
                job.max_price.map(|p| p.0),
                job.placement.as_str(),
                job.name.as_deref(),
            ],
        )
        .await?;
        rows::job(&row)
    }

    async fn job(&self, id: JobId) -> Result<Option<JobRecord>> {
        let row = E::optional(
            On::Read(&self.engine),
            sql!("SELECT * FROM jobs WHERE id = $1"),
            args![id.0],
        )
        .await?;
        row.as_ref().map(rows::job).transpose()
    }

    async fn delete_unrun_job(&self, tenant: TenantId, id: JobId) -> Result<Option<JobRecord>> {
        let mut tx = self.engine.begin().await?;
        let row = E::optional(
            On::Tx(&mut tx),
            sql!(
                "SELECT * FROM jobs WHERE id = $1 AND tenant_id = $2 AND submitted_at IS NULL \
                 AND state IN ('created', 'cancelled')"[lock_all]
            ),
            args![id.0, tenant.0],
        )
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let job = rows::job(&row)?;
        E::execute(
            On::Tx(&mut tx),
            sql!(
                "DELETE FROM webhook_attempts WHERE event_id IN \
                 (SELECT id FROM job_events WHERE job_id = $1)"
            ),
            args![id.0],
        )
        .await?;
        E::execute(
            On::Tx(&mut tx),
            sql!("DELETE FROM job_events WHERE job_id = $1"),
            args![id.0],
        )
        .await?;
        E::execute(
            On::Tx(&mut tx),
            sql!("DELETE FROM jobs WHERE id = $1"),
            args![id.0],
        )
        .await?;
        E::commit(tx).await?;
        Ok(Some(job))
    }

    async fn list_jobs(
        &self,
        tenant: TenantId,
        before: Option<JobId>,
        limit: u32,
    ) -> Result<Vec<JobRecord>> {
        let rows = E::all(
            On::Read(&self.engine),
            sql!(
                "SELECT * FROM jobs WHERE tenant_id = $1 AND id < $2 \
                     ORDER BY id DESC LIMIT $3"
            ),
            args![tenant.0, before.map_or(i64::MAX, |b| b.0), i64::from(limit)],
        )
        .await?;
        rows.iter().map(rows::job).collect()
    }

    async fn counts(&self) -> Result<(Vec<(JobState, u64)>, Vec<(TaskState, u64)>)> {
        let jobs = E::all(
            On::Read(&self.engine),
            sql!("SELECT state, count(*) AS n FROM jobs GROUP BY state ORDER BY state"),
            args![],
        )
        .await?;
        let tasks = E::all(
            On::Read(&self.engine),
            sql!(
                "SELECT t.state, count(*) AS n FROM jobs j JOIN tasks t ON t.job_id = j.id \
                     WHERE j.state IN ('partitioning', 'running', 'assembling') \
                     GROUP BY t.state ORDER BY t.state"
            ),
            args![],
        )
        .await?;
        let jobs = jobs
            .iter()
            .map(|row| Ok((job_state(&row.text("state")?)?, row.int("n")? as u64)))
            .collect::<Result<_>>()?;
        let tasks = tasks
            .iter()
            .map(|row| Ok((task_state(&row.text("state")?)?, row.int("n")? as u64)))
            .collect::<Result<_>>()?;
        Ok((jobs, tasks))
    }

    async fn jobs_past_deadline(&self, now_ms: i64) -> Result<Vec<JobId>> {
        // Numeric, because a huge deadline would overflow a 64-bit integer.
        let ids = ints(
            On::Read(&self.engine),
            sql!(
                "SELECT id FROM jobs WHERE deadline_secs IS NOT NULL \
                     AND state IN ('submitted', 'partitioning', 'running', 'assembling') \
                     AND CAST(submitted_at AS NUMERIC) \
                         + CAST(deadline_secs AS NUMERIC) * 1000 < $1 ORDER BY id"
            ),
            args![now_ms],
            "id",
        )
        .await?;
        Ok(ids.into_iter().map(JobId).collect())
    }

    async fn jobs_in_states(&self, states: &[JobState]) -> Result<Vec<JobRecord>> {
        let names: Vec<String> = states.iter().map(|s| s.as_str().to_string()).collect();
        let rows = E::all(
            On::Write(&self.engine),
            sql!("SELECT * FROM jobs WHERE state" [in 1] " ORDER BY id"),
            args![names],
        )
        .await?;
        rows.iter().map(rows::job).collect()
    }

    async fn set_job_input(&self, id: JobId, input: &StoredBlob) -> Result<bool> {
        let changed = E::execute(
            On::Write(&self.engine),
            sql!(
                "UPDATE jobs SET input_key = $2, input_size = $3, input_sha256 = $4 \
                     WHERE id = $1 AND (state = 'created' OR (input_key IS NULL \
                     AND state IN ('submitted', 'partitioning')))"
            ),
            args![id.0, &input.key, input.size as i64, &input.sha256],
        )
        .await?;
        Ok(changed == 1)
    }

    async fn transition_job(
        &self,
        id: JobId,
        to: JobState,
        error: Option<&str>,
    ) -> Result<Option<JobRecord>> {
        // Compare-and-set: a coordinator that loses the race waits for the winner's commit,
        // finds the state no longer among the sources, and updates nothing.
        let sources: Vec<String> = JobState::sources(to)
            .iter()
            .map(|s| s.as_str().to_string())
            .collect();
        let row = E::optional(
            On::Write(&self.engine),
            sql!(
                "UPDATE jobs SET state = $2, error = COALESCE($3, error), \
                 submitted_at = CASE WHEN $2 = 'submitted' THEN $4 ELSE submitted_at END, \
                 started_at = CASE WHEN $2 = 'partitioning' THEN COALESCE(started_at, $4) \
                                   ELSE started_at END, \
                 finished_at = CASE WHEN $5 THEN $4 ELSE finished_at END \
                 WHERE id = $1 AND state" [in 6] " RETURNING *"
            ),
            args![
                id.0,
                to.as_str(),
                error,
                now_ms(),
                to.is_terminal(),
                sources
            ],
        )
        .await?;
        row.as_ref().map(rows::job).transpose()
    }

    async fn set_job_facts(&self, id: JobId, facts: &serde_json::Value) -> Result<()> {
        E::execute(
            On::Write(&self.engine),
            sql!("UPDATE jobs SET facts = $2 WHERE id = $1"),
            args![id.0, facts.to_string()],
        )
        .await?;
        Ok(())
    }

    async fn complete_job(&self, id: JobId, output: &StoredBlob) -> Result<bool> {
        let changed = E::execute(
            On::Write(&self.engine),
            sql!(
                "UPDATE jobs SET state = 'completed', output_key = $2, output_size = $3, \
                     output_sha256 = $4, finished_at = $5 WHERE id = $1 AND state = 'assembling'"
            ),
            args![
                id.0,
                &output.key,
                output.size as i64,
                &output.sha256,
                now_ms()
            ],
        )
        .await?;
        Ok(changed == 1)
    }

    async fn insert_tasks(
        &self,
        job: JobId,
        tasks: &[NewTask],
        replicas: u32,
    ) -> Result<Vec<TaskId>> {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        let mut inserted = self.engine.insert_tasks(job, tasks, replicas).await?;
        inserted.sort_unstable();
        Ok(inserted.into_iter().map(|(_, id)| TaskId(id)).collect())
    }

    async fn finish_partition(&self, job: JobId, total: u64) -> Result<Option<JobState>> {
        let row = E::optional(
            On::Write(&self.engine),
            sql!(
                "UPDATE jobs SET chunks_total = $2, \
                     state = CASE WHEN chunks_done >= $2 THEN 'assembling' ELSE 'running' END \
                     WHERE id = $1 AND state = 'partitioning' RETURNING state"
            ),
            args![job.0, total as i64],
        )
        .await?;
        row.map(|row| job_state(&row.text("state")?)).transpose()
    }

    async fn open_step(
        &self,
        job: JobId,
        total: u64,
        replication: &Replication,
    ) -> Result<Option<JobRecord>> {
        let replication = replication
            .is_replicated()
            .then(|| serde_json::to_string(replication).unwrap_or_default());
        let row = E::optional(
            On::Write(&self.engine),
            sql!(
                "UPDATE jobs SET chunks_total = $2, replication = $3, state = 'running' \
                     WHERE id = $1 AND state IN ('partitioning', 'assembling') AND chunks_done < $2 \
                     RETURNING *"
            ),
            args![job.0, total as i64, replication],
        )
        .await?;
        row.as_ref().map(rows::job).transpose()
    }

    async fn tasks(&self, ids: &[TaskId]) -> Result<Vec<TaskRecord>> {
        let ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
        let rows = E::all(
            On::Read(&self.engine),
            sql!("SELECT * FROM tasks WHERE id" [in 1] " ORDER BY id"),
            args![ids],
        )
        .await?;
        rows.iter().map(rows::task).collect()
    }

    async fn job_tasks(&self, job: JobId, from_index: u64, limit: u32) -> Result<Vec<TaskRecord>> {
        let rows = E::all(
            On::Read(&self.engine),
            sql!("SELECT * FROM tasks WHERE job_id = $1 AND idx >= $2 ORDER BY idx LIMIT $3"),
            args![job.0, from_index as i64, i64::from(limit)],
        )
        .await?;
        rows.iter().map(rows::task).collect()
    }

    async fn pending_tasks(&self, job: JobId) -> Result<Vec<TaskId>> {
        let ids = ints(
            On::Write(&self.engine),
            sql!("SELECT id FROM tasks WHERE job_id = $1 AND state = 'pending' ORDER BY idx"),
            args![job.0],
            "id",
        )
        .await?;
        Ok(ids.into_iter().map(TaskId).collect())
    }

    async fn tasks_checking(&self, job: JobId) -> Result<u64> {
        let row = first(
            On::Read(&self.engine),
            sql!(
                "SELECT count(DISTINCT r.task_id) AS n FROM results r \
                     JOIN tasks t ON t.id = r.task_id \
                     WHERE r.job_id = $1 AND r.validate_state IN ('passed', 'disputed') \
                     AND t.state = 'pending'"
            ),
            args![job.0],
        )
        .await?;
        Ok(row.int("n")? as u64)
    }

    async fn record_results(&self, results: &[NewResult]) -> Result<Vec<Option<ResultId>>> {
        if results.is_empty() {
            return Ok(Vec::new());
        }
        // One report per task and device: a later duplicate in the batch gets no row.
        let mut seen = HashSet::new();
        let first: Vec<bool> = results
            .iter()
            .map(|r| seen.insert((r.task.0, r.worker.0)))
            .collect();
        let batch: Vec<&NewResult> = results
            .iter()
            .zip(&first)
            .filter(|(_, first)| **first)
            .map(|(r, _)| r)
            .collect();
        let by_report: HashMap<(i64, i64), i64> = self
            .engine
            .record_results(&batch)
            .await?
            .into_iter()
            .map(|(task, worker, id)| ((task, worker), id))
            .collect();
        Ok(results
            .iter()
            .zip(first)
            .map(|(r, first)| {
                let id = by_report.get(&(r.task.0, r.worker.0));
                id.filter(|_| first).map(|&id| ResultId(id))
            })
            .collect())
    }

    async fn record_failures(&self, failures: &[NewFailure]) -> Result<Vec<FailureCharged>> {
        if failures.is_empty() {
            return Ok(Vec::new());
        }
        let after: HashMap<i64, TaskCharged> = self
            .engine
            .record_failures(failures)
            .await?
            .into_iter()
            .map(|charged| (charged.0, charged))
            .collect();
        let mut in_batch: HashMap<i64, i64> = HashMap::new();
        for f in failures {
            *in_batch.entry(f.task.0).or_default() += i64::from(f.outcome.counts_as_failure());
        }
        // Each failure reports the count as charged up to and including itself, as if the
        // batch had been recorded one failure at a time.
        let mut so_far: HashMap<i64, i64> = HashMap::new();
        failures
            .iter()
            .map(|failure| {
                let Some((_, total, state, max_attempts, job_state_name)) =
                    after.get(&failure.task.0)
                else {
                    return Err(StorageError::NotFound(format!("task {}", failure.task)));
                };
                let charged_here = so_far.entry(failure.task.0).or_default();
                *charged_here += i64::from(failure.outcome.counts_as_failure());
                Ok(FailureCharged {
                    task: failure.task,
                    job: failure.job,
                    worker: failure.worker,
                    outcome: failure.outcome,
                    failures: (total - in_batch[&failure.task.0] + *charged_here) as u32,
                    max_attempts: *max_attempts as u32,
                    still_pending: task_state(state)? == TaskState::Pending
                        && job_state(job_state_name)?.is_dispatching(),
                    independent_of: Vec::new(),
                })
            })
            .collect()
    }

    async fn results_for_validation(&self, ids: &[ResultId]) -> Result<Vec<ResultRecord>> {
        let ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
        let rows = E::all(
            On::Write(&self.engine),
            sql!(
                "SELECT r.id AS result_id, r.worker_id, r.sha256, r.size, r.inline_output, \
                 r.blob_key, t.* \
                 FROM results r JOIN tasks t ON t.id = r.task_id \
                 WHERE r.id" [in 1] " AND r.validate_state = 'pending' ORDER BY r.id"
            ),
            args![ids],
        )
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ResultRecord {
                    id: ResultId(row.int("result_id")?),
                    task: rows::task(row)?,
                    worker: WorkerId(row.int("worker_id")?),
                    sha256: row.text("sha256")?,
                    size: row.int("size")? as u64,
                    output: rows::output(row)?,
                })
            })
            .collect()
    }

    async fn unvalidated_results(&self) -> Result<Vec<(JobId, ResultId)>> {
        let rows = E::all(
            On::Write(&self.engine),
            sql!("SELECT job_id, id FROM results WHERE validate_state = 'pending' ORDER BY id"),
            args![],
        )
        .await?;
        rows.iter()
            .map(|row| Ok((JobId(row.int("job_id")?), ResultId(row.int("id")?))))
            .collect()
    }

    async fn apply_verdicts(&self, verdicts: &[Verdict]) -> Result<VerdictsApplied> {
        if verdicts.is_empty() {
            return Ok(VerdictsApplied::default());
        }
        let mut tx = self.engine.begin().await?;
        let applied = E::apply_in(&mut tx, verdicts).await?;
        E::commit(tx).await?;
        Ok(applied)
    }

    async fn replica_states(&self, tasks: &[TaskId]) -> Result<Vec<ReplicaState>> {
        // One snapshot for both reads, so a task and its results agree.
        let mut tx = self.engine.snapshot().await?;
        let states = read_replica_states::<E>(&mut tx, tasks).await?;
        E::commit(tx).await?;
        Ok(states)
    }

    async fn settle_replicas(&self, tasks: &[TaskId], decide: &Decide) -> Result<VerdictsApplied> {
        let mut tx = self.engine.begin().await?;
        // The tasks are held from before the read until the commit: a coordinator deciding
        // the same task waits here and then decides on what this one wrote, and no result
        // is recorded for them in between.
        E::hold_tasks(&mut tx, &tasks.iter().map(|t| t.0).collect(), false).await?;
        let states = read_replica_states::<E>(&mut tx, tasks).await?;
        let verdicts: Vec<Verdict> = states.iter().flat_map(decide).collect();
        let applied = E::apply_in(&mut tx, &verdicts).await?;
        E::commit(tx).await?;
        Ok(applied)
    }

    async fn fail_task(&self, task: TaskId) -> Result<bool> {
        let mut tx = self.engine.begin().await?;
        let job = fail_task::<E>(&mut tx, task).await?;
        E::commit(tx).await?;
        Ok(job.is_some())
    }

    async fn attempts_of(&self, tasks: &[TaskId]) -> Result<Vec<(TaskId, AttemptRecord)>> {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = tasks.iter().map(|t| t.0).collect();
        let rows = E::all(
            On::Read(&self.engine),
            sql!(
                "SELECT task_id, worker_id, outcome, reason FROM results WHERE task_id"
                [in 1] " AND outcome <> 'success' ORDER BY id"
            ),
            args![ids],
        )
        .await?;
        rows.iter()
            .map(|row| {
                let outcome = row.text("outcome")?;
                let task = TaskId(row.int("task_id")?);
                Ok((
                    task,
                    AttemptRecord {
                        worker: WorkerId(row.int("worker_id")?),
                        outcome: AttemptOutcome::parse(&outcome).ok_or_else(|| {
                            StorageError::Corrupt(format!("attempt outcome {outcome:?}"))
                        })?,
                        reason: row.text_opt("reason")?.unwrap_or_default(),
                    },
                ))
            })
            .collect()
    }

    async fn accepted_outputs(
        &self,
        job: JobId,
        from_index: u64,
        limit: u32,
    ) -> Result<Vec<(u64, OutputRef)>> {
        // A job's chunk indexes are dense, so a page lies within from_index .. from_index +
        // limit; bounding it so keeps the plan small whatever the statistics say (lagging a
        // freshly filled table, they made PostgreSQL's planner fetch and sort every remaining
        // chunk for each page: 126 ms a page at 200,000 chunks).
        let rows = E::all(
            On::Read(&self.engine),
            sql!(
                "SELECT t.idx, r.inline_output, r.blob_key FROM tasks t \
                     JOIN results r ON r.id = t.canonical_result \
                     WHERE t.job_id = $1 AND t.idx >= $2 AND t.idx < $2 + $3 \
                     ORDER BY t.idx LIMIT $3"
            ),
            args![
                job.0,
                from_index.min(i64::MAX as u64) as i64,
                i64::from(limit)
            ],
        )
        .await?;
        rows.iter()
            .map(|row| Ok((row.int("idx")? as u64, rows::output(row)?)))
            .collect()
    }

    async fn claim_webhook_events(
        &self,
        now_ms: i64,
        claim_ms: i64,
        limit: u32,
    ) -> Result<Vec<DueWebhook>> {
        self.engine
            .claim_webhook_events(now_ms, claim_ms, limit)
            .await
    }

    async fn record_webhook_attempt(
        &self,
        event: i64,
        attempt: &WebhookAttempt,
        next: WebhookNext,
    ) -> Result<bool> {
        let mut tx = self.engine.begin().await?;
        // The attempt's key makes a second recording of it (a claim that expired while the
        // first was under way) a no-op.
        let inserted = E::execute(
            On::Tx(&mut tx),
            sql!(
                "INSERT INTO webhook_attempts (event_id, attempt, at, status, error, \
                     duration_ms) \
                     SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM job_events \
                         WHERE id = $1 AND delivered_at IS NULL AND NOT gave_up) \
                     ON CONFLICT DO NOTHING"
            ),
            args![
                event,
                i64::from(attempt.attempt),
                attempt.at_ms,
                attempt.status.map(i64::from),
                &attempt.error,
                attempt.duration_ms as i64
            ],
        )
        .await?;
        if inserted == 0 {
            return Ok(false);
        }
        let (retry_at, delivered_at, gave_up) = rows::after_attempt(attempt, next);
        E::execute(
            On::Tx(&mut tx),
            sql!(
                "UPDATE job_events SET attempts = $2, claimed_until = NULL, \
                     next_attempt_at = $3, delivered_at = $4, gave_up = $5 WHERE id = $1"
            ),
            args![
                event,
                i64::from(attempt.attempt),
                retry_at,
                delivered_at,
                gave_up
            ],
        )
        .await?;
        E::commit(tx).await?;
        Ok(true)
    }

    async fn webhook_events(&self, job: JobId) -> Result<Vec<WebhookHistory>> {
        let events = E::all(
            On::Read(&self.engine),
            sql!("SELECT * FROM job_events WHERE job_id = $1 AND has_webhook ORDER BY id"),
            args![job.0],
        )
        .await?;
        let attempts = E::all(
            On::Read(&self.engine),
            sql!(
                "SELECT a.* FROM webhook_attempts a JOIN job_events e ON e.id = a.event_id \
                     WHERE e.job_id = $1 ORDER BY a.event_id, a.attempt"
            ),
            args![job.0],
        )
        .await?;
        rows::webhook_histories(&events, &attempts)
    }

    async fn hold_quote(&self, job: JobId, quote: &Quote, largest_chunk_ms: i64) -> Result<Hold> {
        let mut tx = self.engine.begin().await?;
        let row = E::optional(
            On::Tx(&mut tx),
            sql!("SELECT tenant_id, quote FROM jobs WHERE id = $1"[lock_all]),
            args![job.0],
        )
        .await?;
        let Some(row) = row else {
            return Err(StorageError::NotFound(format!("job {job}")));
        };
        if row.int_opt("quote")?.is_some() {
            return Ok(Hold::AlreadyHeld);
        }
        let tenant = row.int("tenant_id")?;
        // The customer's row lock (SQLite: the single writer) serialises holds of one
        // customer across coordinators, so two jobs never spend the same balance.
        E::execute(
            On::Tx(&mut tx),
            sql!("SELECT id FROM tenants WHERE id = $1"[lock_all]),
            args![tenant],
        )
        .await?;
        let customer = Account::Customer(TenantId(tenant)).to_string();
        let available = first(
            On::<E>::Tx(&mut tx),
            sql!(
                "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS amount \
                     FROM ledger_entries WHERE account = $1"
            ),
            args![&customer],
        )
        .await?
        .int("amount")?;
        if available < quote.price.0 {
            return Ok(Hold::Short {
                available: Credits(available),
            });
        }
        post::<E>(
            &mut tx,
            &format!("hold:{}", job.0),
            &[
                (customer, -quote.price.0),
                (Account::Job(job).to_string(), quote.price.0),
            ],
        )
        .await?;
        E::execute(
            On::Tx(&mut tx),
            sql!(
                "UPDATE jobs SET quote = $2, price_per_core_hour = $3, \
                     owner_per_core_hour = $4, work_ms = $5, largest_chunk_ms = $6 WHERE id = $1"
            ),
            args![
                job.0,
                quote.price.0,
                quote.rates.price_per_core_hour.0,
                quote.rates.owner_per_core_hour.0,
                quote.work_ms,
                largest_chunk_ms
            ],
        )
        .await?;
        E::commit(tx).await?;
        Ok(Hold::Held)
    }

    async fn transfer(
        &self,
        txn: &str,
        from: Account,
        to: Account,
        amount: Credits,
    ) -> Result<bool> {
        let mut tx = self.engine.begin().await?;
        let posted = post::<E>(
            &mut tx,
            txn,
            &[(from.to_string(), -amount.0), (to.to_string(), amount.0)],
        )
        .await?;
        E::commit(tx).await?;
        Ok(posted)
    }

    async fn balances(&self, accounts: &[Account]) -> Result<Vec<Credits>> {
        let names: Vec<String> = accounts.iter().map(Account::to_string).collect();
        let rows = E::all(
            On::Read(&self.engine),
            sql!(
                "SELECT account, CAST(SUM(amount) AS BIGINT) AS amount FROM ledger_entries \
                 WHERE account" [in 1] " GROUP BY account"
            ),
            args![names.clone()],
        )
        .await?;
        let rows = rows
            .iter()
            .map(|row| Ok((row.text("account")?, row.int("amount")?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(rows::sums_in_order(&names, &rows))
    }

    async fn account_entries(&self, account: Account, limit: u32) -> Result<Vec<LedgerEntry>> {
        let rows = E::all(
            On::Read(&self.engine),
            sql!("SELECT * FROM ledger_entries WHERE account = $1 ORDER BY id DESC LIMIT $2"),
            args![account.to_string(), i64::from(limit)],
        )
        .await?;
        rows.iter().map(rows::ledger_entry).collect()
    }

    async fn earned_by_workers(&self, workers: &[WorkerId]) -> Result<Vec<Credits>> {
        sums(
            &self.engine,
            sql!(
                "SELECT worker_id AS key, CAST(SUM(amount) AS BIGINT) AS amount \
                 FROM ledger_entries WHERE worker_id" [in 1] " GROUP BY worker_id"
            ),
            workers.iter().map(|w| w.0).collect(),
        )
        .await
    }

    async fn held_by_workers(&self, workers: &[WorkerId]) -> Result<Vec<Credits>> {
        sums(
            &self.engine,
            sql!(
                "SELECT worker_id AS key, CAST(SUM(amount) AS BIGINT) AS amount \
                 FROM ledger_entries WHERE worker_id" [in 1] " \
                 AND account >= 'held:' AND account < 'held;' GROUP BY worker_id"
            ),
            workers.iter().map(|w| w.0).collect(),
        )
        .await
    }

    async fn mature_held(&self, cutoff_ms: i64) -> Result<Credits> {
        let mut tx = self.engine.begin().await?;
        // The mark's row lock (SQLite: the single writer) makes coordinators mature one after
        // another.
        let last = first(
            On::<E>::Tx(&mut tx),
            sql!("SELECT last_id FROM ledger_marks WHERE name = 'held'"[lock_all]),
            args![],
        )
        .await?
        .int("last_id")?;
        let upto = first(
            On::<E>::Tx(&mut tx),
            sql!("SELECT max(id) AS upto FROM ledger_entries WHERE id > $1 AND at <= $2"),
            args![last, cutoff_ms],
        )
        .await?
        .int_opt("upto")?;
        let Some(upto) = upto else {
            return Ok(Credits(0));
        };
        let credited = E::all(
            On::Tx(&mut tx),
            sql!(
                "SELECT account, worker_id, CAST(SUM(amount) AS BIGINT) AS amount \
                     FROM ledger_entries \
                     WHERE id > $1 AND id <= $2 AND account >= 'held:' AND account < 'held;' \
                     AND amount > 0 AND worker_id IS NOT NULL GROUP BY account, worker_id"
            ),
            args![last, upto],
        )
        .await?;
        let mut holdings = Vec::with_capacity(credited.len());
        for row in &credited {
            let (account, worker) = (row.text("account")?, row.int("worker_id")?);
            let balance = first(
                On::<E>::Tx(&mut tx),
                sql!(
                    "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS amount \
                         FROM ledger_entries WHERE worker_id = $1 AND account = $2"
                ),
                args![worker, &account],
            )
            .await?
            .int("amount")?;
            holdings.push(payments::Holding {
                owner: rows::held_owner(&account)?,
                worker,
                credited: row.int("amount")?,
                balance,
            });
        }
        let entries = payments::maturing(upto, &holdings);
        E::post_entries(&mut tx, &entries, &BTreeMap::new()).await?;
        E::execute(
            On::Tx(&mut tx),
            sql!("UPDATE ledger_marks SET last_id = $1 WHERE name = 'held'"),
            args![upto],
        )
        .await?;
        E::commit(tx).await?;
        Ok(Credits(payments::credited(&entries)))
    }

    async fn distrust_owner(&self, owner: i64) -> Result<Distrusted> {
        let mut tx = self.engine.begin().await?;
        let unverified_tasks = ints(
            On::<E>::Tx(&mut tx),
            sql!(
                "SELECT r.task_id FROM results r JOIN tasks t ON t.canonical_result = r.id \
                 JOIN jobs j ON j.id = r.job_id JOIN workers w ON w.id = r.worker_id \
                 WHERE w.owner_id = $1 AND t.state = 'done' \
                 AND j.state IN ('partitioning', 'running') AND j.placement = 'any' \
                 AND NOT "[agreed]
            ),
            args![owner],
            "task_id",
        )
        .await?;
        // Tasks, then their jobs, then the workers, in id order, as every other writer.
        E::hold_tasks(&mut tx, &unverified_tasks.iter().copied().collect(), true).await?;
        E::execute(
            On::Tx(&mut tx),
            sql!(
                "UPDATE workers SET valid_streak = 0 FROM (SELECT id FROM workers \
                 WHERE owner_id = $1 ORDER BY id" [lock] ") AS w WHERE workers.id = w.id"
            ),
            args![owner],
        )
        .await?;
        // Read again under the locks: nothing decided meanwhile is revoked.
        let unverified = E::all(
            On::Tx(&mut tx),
            sql!(
                "SELECT r.id, r.worker_id, r.job_id, r.task_id, t.work_ms, \
                 j.price_per_core_hour, j.owner_per_core_hour, j.charged \
                 FROM results r JOIN tasks t ON t.canonical_result = r.id \
                 JOIN jobs j ON j.id = r.job_id JOIN workers w ON w.id = r.worker_id \
                 WHERE r.task_id" [in 2] " AND w.owner_id = $1 AND t.state = 'done' \
                 AND j.state IN ('partitioning', 'running') AND j.placement = 'any' \
                 AND NOT " [agreed] " ORDER BY r.id"
            ),
            args![owner, unverified_tasks],
        )
        .await?;
        let revoked = unverified
            .iter()
            .map(|row| rows::revoked(row, owner))
            .collect::<Result<Vec<_>>>()?;
        let given_back = payments::reversals(&revoked);
        E::post_entries(&mut tx, &given_back.entries, &given_back.charged).await?;
        let ids: Vec<i64> = revoked.iter().map(|r| r.result).collect();
        let tasks = E::all(
            On::Tx(&mut tx),
            sql!(
                "UPDATE results SET validate_state = 'revoked', \
                 reason = 'revoked: the device''s owner was caught forging, and no other party \
                 had returned the same output' \
                 WHERE id" [in 1] " RETURNING task_id, job_id"
            ),
            args![ids],
        )
        .await?
        .iter()
        .map(|row| Ok((row.int("task_id")?, row.int("job_id")?)))
        .collect::<Result<Vec<(i64, i64)>>>()?;
        let task_ids: Vec<i64> = tasks.iter().map(|(t, _)| *t).collect();
        E::execute(
            On::Tx(&mut tx),
            sql!("UPDATE tasks SET state = 'pending', canonical_result = NULL WHERE id" [in 1]),
            args![task_ids],
        )
        .await?;
        let mut per_job: BTreeMap<i64, i64> = BTreeMap::new();
        for (_, job) in &tasks {
            *per_job.entry(*job).or_default() += 1;
        }
        for (job, n) in per_job {
            E::execute(
                On::Tx(&mut tx),
                sql!("UPDATE jobs SET chunks_done = chunks_done - $2 WHERE id = $1"),
                args![job, n],
            )
            .await?;
        }
        // Maturing holds this lock too (SQLite: the single writer): what is forfeited is not
        // matured as well.
        E::execute(
            On::Tx(&mut tx),
            sql!("SELECT last_id FROM ledger_marks WHERE name = 'held'"[lock_all]),
            args![],
        )
        .await?;
        let held = E::all(
            On::Tx(&mut tx),
            sql!(
                "SELECT worker_id, CAST(SUM(amount) AS BIGINT) AS amount FROM ledger_entries \
                 WHERE account = $1 AND worker_id IS NOT NULL GROUP BY worker_id \
                 ORDER BY worker_id"
            ),
            args![Account::Held(owner).to_string()],
        )
        .await?
        .iter()
        .map(|row| Ok((row.int("worker_id")?, row.int("amount")?)))
        .collect::<Result<Vec<(i64, i64)>>>()?;
        let forfeits = payments::forfeits(owner, now_ms(), &held);
        E::post_entries(&mut tx, &forfeits, &BTreeMap::new()).await?;
        let devices = ints(
            On::<E>::Tx(&mut tx),
            sql!("SELECT id FROM workers WHERE owner_id = $1 ORDER BY id LIMIT 4096"),
            args![owner],
            "id",
        )
        .await?;
        E::commit(tx).await?;
        Ok(payments::distrusted(&tasks, &devices, &forfeits))
    }

    async fn audit_ledger(&self) -> Result<LedgerAudit> {
        let totals = first(
            On::Read(&self.engine),
            sql!(
                "SELECT count(*) AS n, CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS amount \
                     FROM ledger_entries"
            ),
            args![],
        )
        .await?;
        let unbalanced = first(
            On::Read(&self.engine),
            sql!(
                "SELECT count(*) AS n FROM (SELECT txn FROM ledger_entries GROUP BY txn \
                     HAVING SUM(amount) <> 0) AS t"
            ),
            args![],
        )
        .await?;
        let over_quote = first(
            On::Read(&self.engine),
            sql!("SELECT count(*) AS n FROM jobs WHERE charged > COALESCE(quote, 0)"),
            args![],
        )
        .await?;
        Ok(LedgerAudit {
            entries: totals.int("n")? as u64,
            total: Credits(totals.int("amount")?),
            unbalanced: unbalanced.int("n")? as u64,
            over_quote: over_quote.int("n")? as u64,
        })
    }
}
