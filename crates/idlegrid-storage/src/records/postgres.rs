//! The scale-out records backend: one PostgreSQL database shared by several coordinators.
//!
//! Every method means exactly what it means on [`super::SqliteStore`], and most are written
//! once for both engines (`store.rs`, where the row locks below are the `[lock]` words of their
//! statements). This file holds how PostgreSQL runs them (one pool, lists bound as arrays) and
//! what it does its own way ([`Engine`]): the batches (ledger postings, chunks, results,
//! failures, verdicts, devices seen) as arrays with their locks taken in order, holding tasks,
//! snapshots, and claiming webhook events past each other's locks. What must stay correct when
//! coordinators call at once (SQLite gets it for free from its single writer) is a
//! compare-and-set statement, or a transaction that locks the rows it reads before it writes:
//!
//! - State changes are compare-and-set (`UPDATE ... WHERE state IN ...`): under READ COMMITTED
//!   a second writer waits for the first, re-checks the condition on the committed row, and
//!   finds nothing to do.
//! - Methods that read tasks and then write on what they read (recording results, verdicts,
//!   quorum decisions) first lock the task rows, then do the rest in later statements, each of
//!   which sees everything committed before the lock was granted.
//! - Rows are always locked in one order, so two transactions never wait for each other: tasks
//!   (by id), then jobs (by id), then workers (by id). Result rows need no lock of their own:
//!   only a transaction holding their task changes them. Locks are `FOR NO KEY UPDATE`, the
//!   strength an ordinary `UPDATE` takes; it excludes every other locker and updater but not
//!   the key-share lock a foreign key check takes, so inserting a result for a locked task
//!   does not wait.
//!
//! Batches travel as arrays (`unnest($1::bigint[], ...)`), so a thousand-row batch costs a
//! handful of statements, not a thousand round trips.

use super::payments;
use super::rows::{self, backend, job_state, task_state};
use super::sql::{Engine, SqlStore, TaskCharged, queries_for};
use super::store;
use super::{
    DueWebhook, FailureCharged, NewFailure, NewResult, NewTask, OutputRef, Verdict, VerdictsApplied,
};
use crate::{Result, StorageError, now_ms};
use async_trait::async_trait;
use idlegrid_domain::{AttemptOutcome, JobId, JobState, ResultId, TaskId, TaskState, WorkerId};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::str::FromStr;

/// Records in a PostgreSQL database, shared safely by any number of coordinators.
pub type PostgresStore = SqlStore<PostgresEngine>;

/// A PostgreSQL database, through one pool.
#[derive(Debug, Clone)]
pub struct PostgresEngine {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`) with
    /// at most `max_connections` connections, and applies migrations. Coordinators starting
    /// at once are safe: the migrator holds an advisory lock while it works.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(backend)?
            // Plan every statement for its own arguments. A cached generic plan is made once
            // per connection, often while the tables are still small, and then keeps
            // scanning them whole for every batch after they have grown; planning these
            // statements costs far less than one such scan.
            .options([("plan_cache_mode", "force_custom_plan")])
            // No JIT compilation: these are short batch statements, and a plan whose estimate
            // crosses the JIT thresholds (a correlated sub-select is enough) spends a hundred
            // milliseconds compiling what runs in one.
            .options([("jit", "off")]);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .connect_with(options)
            .await
            .map_err(backend)?;
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            // The URL may hold a password, so it stays out of the message.
            .map_err(|e| StorageError::Backend(format!("migrating the records database: {e}")))?;
        Ok(SqlStore {
            engine: PostgresEngine { pool },
        })
    }

    /// Closes the pool, waiting for running statements.
    pub async fn close(&self) {
        self.engine.pool.close().await;
    }
}

/// A list argument as PostgreSQL takes it: an array, for `= ANY`.
fn array<T>(list: Vec<T>) -> Vec<T> {
    list
}

queries_for!(PostgresEngine, Postgres, postgres, read: pool, write: pool, list: array);

/// Adds `n` to `key`'s count; the map's order is the id order locks are taken in.
fn count(map: &mut BTreeMap<i64, i64>, key: i64, n: i64) {
    *map.entry(key).or_default() += n;
}

/// Splits a map into parallel arrays for `unnest`.
fn columns(map: &BTreeMap<i64, i64>) -> (Vec<i64>, Vec<i64>) {
    map.iter().map(|(k, v)| (*k, *v)).unzip()
}

type Tx = sqlx::Transaction<'static, Postgres>;

/// Locks these tasks' rows, in id order, until the transaction ends; returns the jobs of those
/// that exist. Every later statement of the transaction sees what other transactions committed
/// to them before the lock was granted, and nobody changes them meanwhile.
async fn lock_tasks(tx: &mut Tx, tasks: &BTreeSet<i64>) -> Result<BTreeSet<i64>> {
    if tasks.is_empty() {
        return Ok(BTreeSet::new());
    }
    let ids: Vec<i64> = tasks.iter().copied().collect();
    let jobs: Vec<i64> = sqlx::query_scalar(
        "SELECT job_id FROM tasks WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
    )
    .bind(&ids)
    .fetch_all(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(jobs.into_iter().collect())
}

/// Locks these jobs' rows, in id order, until the transaction ends.
async fn lock_jobs(tx: &mut Tx, jobs: &BTreeSet<i64>) -> Result<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = jobs.iter().copied().collect();
    sqlx::query("SELECT id FROM jobs WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE")
        .bind(&ids)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    Ok(())
}

/// The tasks of these results (those that exist). A result's task never changes, so this needs
/// no lock.
async fn tasks_of_results(tx: &mut Tx, results: &[i64]) -> Result<Vec<i64>> {
    if results.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_scalar("SELECT DISTINCT task_id FROM results WHERE id = ANY($1)")
        .bind(results)
        .fetch_all(&mut **tx)
        .await
        .map_err(backend)
}

/// Rejects a run of results not yet decided, as if one after another: each task is charged a
/// failed attempt per rejected result (and waits for work again if it was waiting for a
/// verdict), each job counts them. Returns what was charged, in the order of `run`, and the
/// devices whose results were rejected. The caller holds the tasks and jobs.
async fn reject_run(
    tx: &mut Tx,
    run: &[(ResultId, &str)],
) -> Result<(Vec<FailureCharged>, Vec<i64>)> {
    let ids: Vec<i64> = run.iter().map(|(id, _)| id.0).collect();
    let reasons: Vec<&str> = run.iter().map(|(_, reason)| *reason).collect();
    // A result listed twice is rejected once, with its first reason: the second rejection
    // would find it decided.
    let mut rejected: Vec<(i64, i64, i64, i64)> = sqlx::query_as(
        "WITH v AS (SELECT DISTINCT ON (id) id, reason, ord \
                    FROM unnest($1::bigint[], $2::text[]) WITH ORDINALITY AS v(id, reason, ord) \
                    ORDER BY id, ord) \
         UPDATE results SET validate_state = 'invalid', outcome = 'validate_error', \
         reason = v.reason FROM v \
         WHERE results.id = v.id AND results.validate_state IN ('pending', 'passed') \
         RETURNING v.ord, results.task_id, results.job_id, results.worker_id",
    )
    .bind(&ids)
    .bind(&reasons)
    .fetch_all(&mut **tx)
    .await
    .map_err(backend)?;
    if rejected.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    rejected.sort_unstable();
    let (mut per_task, mut per_job) = (BTreeMap::new(), BTreeMap::new());
    for &(_, task, job, _) in &rejected {
        count(&mut per_task, task, 1);
        count(&mut per_job, job, 1);
    }
    let (tasks, task_n) = columns(&per_task);
    let (jobs, job_n) = columns(&per_job);
    // The job's state is read as this transaction left it (a job whose last chunk was just
    // accepted is assembling); the counters added in the same statement do not matter to it.
    let charged: Vec<(i64, i64, String, i64, String)> = sqlx::query_as(
        "WITH j AS (UPDATE jobs SET failed_attempts = jobs.failed_attempts + c.n, \
                    results_rejected = jobs.results_rejected + c.n \
                    FROM unnest($3::bigint[], $4::bigint[]) AS c(id, n) WHERE jobs.id = c.id) \
         UPDATE tasks SET failures = tasks.failures + c.n, \
         state = CASE WHEN tasks.state = 'validating' THEN 'pending' ELSE tasks.state END \
         FROM unnest($1::bigint[], $2::bigint[]) AS c(id, n) WHERE tasks.id = c.id \
         RETURNING tasks.id, tasks.failures, tasks.state, \
         (SELECT max_attempts FROM jobs WHERE jobs.id = tasks.job_id), \
         (SELECT state FROM jobs WHERE jobs.id = tasks.job_id)",
    )
    .bind(&tasks)
    .bind(&task_n)
    .bind(&jobs)
    .bind(&job_n)
    .fetch_all(&mut **tx)
    .await
    .map_err(backend)?;
    let after: HashMap<i64, (i64, String, i64, String)> = charged
        .into_iter()
        .map(|(task, failures, state, max, job_state)| (task, (failures, state, max, job_state)))
        .collect();
    // Each rejection saw the failures charged by those before it in the run.
    let mut seen: HashMap<i64, i64> = HashMap::new();
    let mut out = Vec::with_capacity(rejected.len());
    let mut workers = Vec::with_capacity(rejected.len());
    for (_, task, job, worker) in rejected {
        workers.push(worker);
        let Some((failures, state, max_attempts, job_state_name)) = after.get(&task) else {
            continue;
        };
        let nth = seen.entry(task).or_default();
        *nth += 1;
        out.push(FailureCharged {
            task: TaskId(task),
            job: JobId(job),
            worker: WorkerId(worker),
            outcome: AttemptOutcome::ValidateError,
            failures: (failures - per_task[&task] + *nth) as u32,
            max_attempts: *max_attempts as u32,
            still_pending: task_state(state)? == TaskState::Pending
                && job_state(job_state_name)?.is_dispatching(),
            independent_of: Vec::new(),
        });
    }
    Ok((out, workers))
}

/// Applies a run of rejections gathered so far, if any, and empties it.
async fn flush_rejections(
    tx: &mut Tx,
    run: &mut Vec<(ResultId, &str)>,
    applied: &mut VerdictsApplied,
    reset: &mut Vec<i64>,
) -> Result<()> {
    if run.is_empty() {
        return Ok(());
    }
    let (charged, workers) = reject_run(tx, run).await?;
    applied.charged.extend(charged);
    reset.extend(workers);
    run.clear();
    Ok(())
}

#[async_trait]
impl Engine for PostgresEngine {
    async fn post_entries(
        tx: &mut Self::Tx,
        entries: &[payments::Entry],
        charged: &BTreeMap<i64, i64>,
    ) -> Result<u64> {
        let mut posted = 0;
        if !entries.is_empty() {
            let txns: Vec<&str> = entries.iter().map(|e| e.txn.as_str()).collect();
            let accounts: Vec<&str> = entries.iter().map(|e| e.account.as_str()).collect();
            let amounts: Vec<i64> = entries.iter().map(|e| e.amount).collect();
            let workers: Vec<Option<i64>> = entries.iter().map(|e| e.worker).collect();
            posted = sqlx::query(
                "INSERT INTO ledger_entries (txn, account, amount, at, worker_id) \
                 SELECT t, a, v, $5, w FROM unnest($1::text[], $2::text[], $3::bigint[], \
                 $4::bigint[]) AS e(t, a, v, w) ON CONFLICT (txn, account) DO NOTHING",
            )
            .bind(&txns)
            .bind(&accounts)
            .bind(&amounts)
            .bind(&workers)
            .bind(now_ms())
            .execute(&mut **tx)
            .await
            .map_err(backend)?
            .rows_affected();
        }
        if !charged.is_empty() {
            let (jobs, amounts) = columns(charged);
            sqlx::query(
                "UPDATE jobs SET charged = jobs.charged + c.n \
                 FROM unnest($1::bigint[], $2::bigint[]) AS c(id, n) WHERE jobs.id = c.id",
            )
            .bind(&jobs)
            .bind(&amounts)
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
        }
        Ok(posted)
    }

    /// Applies verdicts with the effects, in the order, that SQLite's one-at-a-time application
    /// has: `Passed`, then `Valid` (tasks done, jobs counting their chunks), then the others in
    /// the order given. Consecutive `Invalid`s are applied as one batch; the device streaks are
    /// written last, to keep the lock order (workers after jobs).
    async fn apply_in(tx: &mut Self::Tx, verdicts: &[Verdict]) -> Result<VerdictsApplied> {
        let mut applied = VerdictsApplied::default();
        if verdicts.is_empty() {
            return Ok(applied);
        }
        let (mut valid, mut passed, mut judged) = (Vec::new(), Vec::new(), Vec::new());
        let mut tasks = BTreeSet::new();
        let mut stepwise = false;
        for verdict in verdicts {
            match verdict {
                Verdict::Valid(id) => valid.push(id.0),
                Verdict::Passed(id) => passed.push(id.0),
                Verdict::Suspect(id, _) | Verdict::Void(id, _) => judged.push(id.0),
                Verdict::Invalid(id, _) | Verdict::Disputed(id, _) => {
                    judged.push(id.0);
                    stepwise = true;
                }
                Verdict::MoreReplicas(task, _) | Verdict::FailTask(task, _) => {
                    tasks.insert(task.0);
                    stepwise = true;
                }
            }
        }
        judged.extend(&valid);
        judged.extend(&passed);
        tasks.extend(tasks_of_results(tx, &judged).await?);
        let jobs = lock_tasks(tx, &tasks).await?;
        // The jobs are locked here, in id order, before anything else touches them: accepted
        // results' payments read and write their charged totals, and the other verdicts touch
        // them one after another.
        if stepwise || !valid.is_empty() {
            lock_jobs(tx, &jobs).await?;
        }
        if !passed.is_empty() {
            sqlx::query(
                "UPDATE results SET validate_state = 'passed' \
                 WHERE id = ANY($1) AND validate_state = 'pending'",
            )
            .bind(&passed)
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
        }
        for verdict in verdicts {
            if let Verdict::Suspect(id, reason) = verdict {
                store::suspect::<PostgresEngine>(tx, *id, reason).await?;
            }
        }
        // Devices whose run of valid results ends in this call.
        let mut reset = Vec::new();
        if !valid.is_empty() {
            // One statement: each task still open takes its first listed result as its output;
            // the listed results become valid (the task's output) or redundant (agreeing with
            // it); each job counts its chunks done and is assembling once all are. The results'
            // verdicts are worked out from the tables (which this statement sees as they were
            // before it), not by joining the `done` CTE: a CTE has no index, and the planner's
            // nested loop over it made the statement quadratic in the batch (0.5 s for 2,000).
            let assembling: Vec<(bool, i64, String)> = sqlx::query_as(
                "WITH v AS (SELECT DISTINCT ON (r.task_id) r.id AS rid, r.task_id AS tid \
                            FROM unnest($1::bigint[]) WITH ORDINALITY AS u(id, ord) \
                            JOIN results r ON r.id = u.id \
                            WHERE r.validate_state IN ('pending', 'passed') \
                            ORDER BY r.task_id, u.ord), \
                 done AS (UPDATE tasks SET state = 'done', canonical_result = v.rid FROM v \
                          WHERE tasks.id = v.tid AND tasks.state IN ('pending', 'validating') \
                          RETURNING tasks.id, tasks.job_id, tasks.canonical_result), \
                 judged AS (UPDATE results SET validate_state = CASE \
                              WHEN (x.first AND t.state IN ('pending', 'validating')) \
                                   OR t.canonical_result = results.id \
                              THEN 'valid' ELSE 'redundant' END \
                            FROM (SELECT r.id, r.task_id, \
                                         row_number() OVER (PARTITION BY r.task_id ORDER BY u.ord) = 1 \
                                         AS first \
                                  FROM unnest($1::bigint[]) WITH ORDINALITY AS u(id, ord) \
                                  JOIN results r ON r.id = u.id \
                                  WHERE r.validate_state IN ('pending', 'passed')) AS x \
                            JOIN tasks t ON t.id = x.task_id \
                            WHERE results.id = x.id \
                            RETURNING results.id, results.worker_id, results.validate_state), \
                 streaks AS (UPDATE workers SET valid_streak = workers.valid_streak + c.n \
                             FROM (SELECT w.id, s.n FROM workers w \
                                   JOIN (SELECT worker_id, count(*) AS n FROM judged \
                                         GROUP BY worker_id) AS s ON s.worker_id = w.id \
                                   ORDER BY w.id FOR NO KEY UPDATE OF w) AS c \
                             WHERE workers.id = c.id), \
                 per_job AS (SELECT job_id, count(*) AS n FROM done GROUP BY job_id), \
                 counted AS (UPDATE jobs SET chunks_done = jobs.chunks_done + c.n, \
                    state = CASE WHEN jobs.chunks_total IS NOT NULL \
                                 AND jobs.chunks_done + c.n >= jobs.chunks_total \
                                 AND jobs.state IN ('partitioning', 'running') \
                            THEN 'assembling' ELSE jobs.state END \
                    FROM (SELECT j.id, per_job.n FROM jobs j JOIN per_job ON per_job.job_id = j.id \
                          ORDER BY j.id FOR NO KEY UPDATE OF j) AS c \
                    WHERE jobs.id = c.id RETURNING jobs.id, jobs.state) \
                 SELECT false, id, state FROM counted \
                 UNION ALL SELECT true, id, validate_state FROM judged",
            )
            .bind(&valid)
            .fetch_all(&mut **tx)
            .await
            .map_err(backend)?;
            let (judged, counted): (Vec<_>, Vec<_>) =
                assembling.into_iter().partition(|(result, _, _)| *result);
            let judged: Vec<(i64, String)> = judged
                .into_iter()
                .map(|(_, id, state)| (id, state))
                .collect();
            store::pay::<PostgresEngine>(tx, &judged).await?;
            let mut ready: Vec<JobId> = counted
                .into_iter()
                .filter(|(_, _, state)| state == JobState::Assembling.as_str())
                .map(|(_, job, _)| JobId(job))
                .collect();
            ready.sort_unstable();
            applied.ready_to_assemble = ready;
            let accepted: Vec<ResultId> = valid.iter().copied().map(ResultId).collect();
            let blamed = store::settle_disputes::<PostgresEngine>(tx, &accepted).await?;
            reset.extend(blamed.iter().map(|c| c.worker.0));
            applied.charged.extend(blamed);
        }
        // Rejections before the others, in the order given: a run of them at a time.
        let mut run: Vec<(ResultId, &str)> = Vec::new();
        for verdict in verdicts {
            match verdict {
                Verdict::Invalid(id, reason) => run.push((*id, reason)),
                Verdict::Valid(_) | Verdict::Passed(_) | Verdict::Suspect(..) => {}
                Verdict::Disputed(id, reason) => {
                    flush_rejections(tx, &mut run, &mut applied, &mut reset).await?;
                    if let Some(charged) = store::dispute::<PostgresEngine>(tx, *id, reason).await?
                    {
                        applied.charged.push(charged);
                    }
                }
                Verdict::Void(id, reason) => {
                    flush_rejections(tx, &mut run, &mut applied, &mut reset).await?;
                    store::void::<PostgresEngine>(tx, *id, reason).await?;
                }
                Verdict::MoreReplicas(task, copies) => {
                    flush_rejections(tx, &mut run, &mut applied, &mut reset).await?;
                    if let Some(more) =
                        store::add_replicas::<PostgresEngine>(tx, *task, *copies).await?
                    {
                        applied.replicate.push(more);
                    }
                }
                Verdict::FailTask(task, reason) => {
                    flush_rejections(tx, &mut run, &mut applied, &mut reset).await?;
                    if let Some(job) = store::fail_task::<PostgresEngine>(tx, *task).await? {
                        applied.failed.push((job, *task, reason.clone()));
                    }
                }
            }
        }
        flush_rejections(tx, &mut run, &mut applied, &mut reset).await?;
        if !reset.is_empty() {
            // A rejection ends its device's run (acceptances, counted above, come first); only
            // results judged by this call count, so a result judged twice (two coordinators)
            // counts once.
            sqlx::query(
                "UPDATE workers SET valid_streak = CASE WHEN c.reset THEN 0 \
                                                        ELSE workers.valid_streak + c.n END \
                 FROM (SELECT w.id, s.n, s.reset FROM workers w JOIN \
                         (SELECT id, sum(n)::bigint AS n, bool_or(reset) AS reset FROM \
                            (SELECT worker_id AS id, count(*) AS n, false AS reset FROM results \
                             WHERE id = ANY($1) GROUP BY worker_id \
                             UNION ALL SELECT unnest($2::bigint[]), 0, true) AS each_one \
                          GROUP BY id) AS s ON s.id = w.id \
                       ORDER BY w.id FOR NO KEY UPDATE OF w) AS c \
                 WHERE workers.id = c.id",
            )
            .bind(Vec::<i64>::new())
            .bind(&reset)
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
        }
        Ok(applied)
    }

    async fn hold_tasks(tx: &mut Self::Tx, tasks: &BTreeSet<i64>, jobs_too: bool) -> Result<()> {
        let jobs = lock_tasks(tx, tasks).await?;
        if jobs_too {
            lock_jobs(tx, &jobs).await?;
        }
        Ok(())
    }

    async fn snapshot(&self) -> Result<Self::Tx> {
        self.pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(backend)
    }

    async fn touch_workers(&self, seen: &[(WorkerId, i64)]) -> Result<()> {
        let (ids, ats): (Vec<i64>, Vec<i64>) = seen.iter().map(|(w, at)| (w.0, *at)).unzip();
        sqlx::query(
            "UPDATE workers SET last_seen_at = greatest(coalesce(workers.last_seen_at, 0), s.at) \
             FROM (SELECT * FROM unnest($1::bigint[], $2::bigint[]) AS t(id, at)) AS s \
             WHERE workers.id = s.id",
        )
        .bind(&ids)
        .bind(&ats)
        .execute(&self.pool)
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
        let index: Vec<i64> = tasks.iter().map(|t| t.index as i64).collect();
        let key: Vec<Option<&str>> = tasks.iter().map(|t| t.input_key.as_deref()).collect();
        let offset: Vec<i64> = tasks.iter().map(|t| t.offset as i64).collect();
        let len: Vec<i64> = tasks.iter().map(|t| t.len as i64).collect();
        let meta: Vec<Option<String>> = tasks
            .iter()
            .map(|t| t.meta.as_ref().map(|m| m.to_string()))
            .collect();
        let work: Vec<i64> = tasks.iter().map(|t| t.work_ms).collect();
        // One statement. Rows go in index order, so two partitioners inserting overlapping
        // batches of one job wait for each other in the same order and never deadlock; a
        // chunk listed twice keeps its first listing. The job counts only the rows inserted.
        sqlx::query_as(
            "WITH ins AS (INSERT INTO tasks (job_id, idx, state, input_key, input_offset, \
                          input_len, meta, replicas, work_ms) \
                          SELECT $1, b.idx, 'pending', b.key, b.off, b.len, b.meta, $7, b.work \
                          FROM unnest($2::bigint[], $3::text[], $4::bigint[], $5::bigint[], \
                                      $6::text[], $8::bigint[]) \
                               WITH ORDINALITY AS b(idx, key, off, len, meta, work, ord) \
                          ORDER BY b.idx, b.ord \
                          ON CONFLICT (job_id, idx) DO NOTHING RETURNING idx, id), \
             j AS (UPDATE jobs SET chunks_created = chunks_created + (SELECT count(*) FROM ins) \
                   WHERE id = $1) \
             SELECT idx, id FROM ins",
        )
        .bind(job.0)
        .bind(&index)
        .bind(&key)
        .bind(&offset)
        .bind(&len)
        .bind(&meta)
        .bind(i64::from(replicas.max(1)))
        .bind(&work)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)
    }

    async fn record_results(&self, batch: &[&NewResult]) -> Result<Vec<(i64, i64, i64)>> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // Holding the tasks, this transaction sees every result another coordinator recorded
        // for them, and no other can record one until it commits: a device gets one live
        // result per replicated task, and a task reaches `validating` exactly once. The rows
        // read here are the committed ones, as of the moment each lock was granted.
        let ids: BTreeSet<i64> = batch.iter().map(|r| r.task.0).collect();
        let ids: Vec<i64> = ids.into_iter().collect();
        let open: Vec<(i64, i64, String, i64)> = sqlx::query_as(
            "SELECT id, job_id, state, replicas FROM tasks WHERE id = ANY($1) \
             ORDER BY id FOR NO KEY UPDATE",
        )
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        // Only tasks waiting for a result take one.
        let open: HashMap<i64, (i64, bool)> = open
            .into_iter()
            .filter(|(_, _, state, _)| state == TaskState::Pending.as_str())
            .map(|(id, job, _, replicas)| (id, (job, replicas != 1)))
            .collect();
        let batch: Vec<(&NewResult, i64, bool)> = batch
            .iter()
            .copied()
            .filter_map(|r| {
                let (job, replicated) = open.get(&r.task.0)?;
                Some((r, *job, *replicated))
            })
            .collect();
        let task: Vec<i64> = batch.iter().map(|(r, ..)| r.task.0).collect();
        let job: Vec<i64> = batch.iter().map(|(_, job, _)| *job).collect();
        let replicated: Vec<bool> = batch.iter().map(|(.., replicated)| *replicated).collect();
        let worker: Vec<i64> = batch.iter().map(|(r, ..)| r.worker.0).collect();
        let sha256: Vec<&str> = batch.iter().map(|(r, ..)| r.sha256.as_str()).collect();
        let size: Vec<i64> = batch.iter().map(|(r, ..)| r.size as i64).collect();
        let (inline, key): (Vec<Option<&[u8]>>, Vec<Option<&str>>) = batch
            .iter()
            .map(|(r, ..)| match &r.output {
                OutputRef::Inline(bytes) => (Some(bytes.as_slice()), None),
                OutputRef::Blob(key) => (None, Some(key.as_str())),
            })
            .unzip();
        // A replicated task takes one result per device; the common unreplicated task never
        // evaluates that check.
        let rows: Vec<(i64, i64, i64, i64)> = sqlx::query_as(
            "INSERT INTO results (task_id, job_id, worker_id, outcome, sha256, size, \
             inline_output, blob_key, validate_state, created_at) \
             SELECT b.task, b.job, b.worker, 'success', b.sha256, b.size, b.inline, b.key, \
             'pending', $9 \
             FROM unnest($1::bigint[], $2::bigint[], $3::bool[], $4::bigint[], $5::text[], \
                         $6::bigint[], $7::bytea[], $8::text[]) WITH ORDINALITY \
                  AS b(task, job, replicated, worker, sha256, size, inline, key, ord) \
             WHERE NOT b.replicated OR NOT EXISTS ( \
                 SELECT 1 FROM results o WHERE o.task_id = b.task \
                 AND o.worker_id = b.worker AND o.outcome = 'success') \
             ORDER BY b.ord \
             RETURNING task_id, worker_id, id, job_id",
        )
        .bind(&task)
        .bind(&job)
        .bind(&replicated)
        .bind(&worker)
        .bind(&sha256)
        .bind(&size)
        .bind(&inline)
        .bind(&key)
        .bind(now_ms())
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        if !rows.is_empty() {
            let recorded: Vec<i64> = rows.iter().map(|(task, ..)| *task).collect();
            let mut per_job = BTreeMap::new();
            for (.., job) in &rows {
                count(&mut per_job, *job, 1);
            }
            let (jobs, n) = columns(&per_job);
            // A later statement, so the count sees the results just inserted. The jobs are
            // locked in id order by the sub-select.
            sqlx::query(
                "WITH v AS (UPDATE tasks SET state = 'validating' \
                            WHERE id = ANY($1) AND state = 'pending' \
                            AND (replicas = 1 OR replicas <= (SELECT count(*) FROM results r \
                                 WHERE r.task_id = tasks.id AND r.outcome = 'success' \
                                 AND r.validate_state IN ('pending', 'passed')))) \
                 UPDATE jobs SET results_received = jobs.results_received + c.n \
                 FROM (SELECT j.id, u.n FROM jobs j \
                       JOIN unnest($2::bigint[], $3::bigint[]) AS u(id, n) ON u.id = j.id \
                       ORDER BY j.id FOR NO KEY UPDATE OF j) AS c \
                 WHERE jobs.id = c.id",
            )
            .bind(&recorded)
            .bind(&jobs)
            .bind(&n)
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
        let task: Vec<i64> = failures.iter().map(|f| f.task.0).collect();
        let job: Vec<i64> = failures.iter().map(|f| f.job.0).collect();
        let worker: Vec<i64> = failures.iter().map(|f| f.worker.0).collect();
        let outcome: Vec<&str> = failures.iter().map(|f| f.outcome.as_str()).collect();
        let reason: Vec<&str> = failures.iter().map(|f| f.reason.as_str()).collect();
        let (mut per_task, mut per_job) = (BTreeMap::new(), BTreeMap::new());
        for f in failures {
            let counts = i64::from(f.outcome.counts_as_failure());
            count(&mut per_task, f.task.0, counts);
            if counts > 0 {
                count(&mut per_job, f.job.0, 1);
            }
        }
        let (tasks, task_n) = columns(&per_task);
        let (jobs, job_n) = columns(&per_job);
        let mut tx = self.pool.begin().await.map_err(backend)?;
        lock_tasks(&mut tx, &per_task.keys().copied().collect()).await?;
        // One statement for the rest: the attempts recorded, each task charged once with its
        // count, each job once, locked in id order by the sub-select.
        let rows: Vec<(i64, i64, String, i64, String)> = sqlx::query_as(
            "WITH ins AS (INSERT INTO results (task_id, job_id, worker_id, outcome, reason, \
                          created_at) \
                          SELECT b.task, b.job, b.worker, b.outcome, b.reason, $6 \
                          FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], \
                                      $5::text[]) WITH ORDINALITY \
                               AS b(task, job, worker, outcome, reason, ord) \
                          ORDER BY b.ord), \
             j AS (UPDATE jobs SET failed_attempts = jobs.failed_attempts + c.n \
                   FROM (SELECT jj.id, u.n FROM jobs jj \
                         JOIN unnest($9::bigint[], $10::bigint[]) AS u(id, n) ON u.id = jj.id \
                         ORDER BY jj.id FOR NO KEY UPDATE OF jj) AS c \
                   WHERE jobs.id = c.id) \
             UPDATE tasks SET failures = tasks.failures + c.n \
             FROM unnest($7::bigint[], $8::bigint[]) AS c(id, n) WHERE tasks.id = c.id \
             RETURNING tasks.id, tasks.failures, tasks.state, \
             (SELECT max_attempts FROM jobs WHERE jobs.id = tasks.job_id), \
             (SELECT state FROM jobs WHERE jobs.id = tasks.job_id)",
        )
        .bind(&task)
        .bind(&job)
        .bind(&worker)
        .bind(&outcome)
        .bind(&reason)
        .bind(now_ms())
        .bind(&tasks)
        .bind(&task_n)
        .bind(&jobs)
        .bind(&job_n)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        if let Some(missing) = failures
            .iter()
            .find(|f| !rows.iter().any(|(task, ..)| *task == f.task.0))
        {
            return Err(StorageError::NotFound(format!("task {}", missing.task)));
        }
        tx.commit().await.map_err(backend)?;
        Ok(rows)
    }

    async fn claim_webhook_events(
        &self,
        now_ms: i64,
        claim_ms: i64,
        limit: u32,
    ) -> Result<Vec<DueWebhook>> {
        // Coordinators claiming at once skip each other's rows instead of waiting for them; a
        // job's next event stays unclaimable while an older one is undelivered, locked or not.
        let rows = sqlx::query(
            "WITH due AS ( \
                 SELECT e.id FROM job_events e \
                 WHERE e.has_webhook AND e.delivered_at IS NULL AND NOT e.gave_up \
                 AND e.next_attempt_at <= $1 \
                 AND (e.claimed_until IS NULL OR e.claimed_until <= $1) \
                 AND NOT EXISTS (SELECT 1 FROM job_events o WHERE o.job_id = e.job_id \
                     AND o.id < e.id AND o.has_webhook AND o.delivered_at IS NULL \
                     AND NOT o.gave_up) \
                 ORDER BY e.next_attempt_at, e.id LIMIT $3 \
                 FOR UPDATE OF e SKIP LOCKED) \
             UPDATE job_events ev SET claimed_until = $1 + $2 FROM due, jobs j \
             WHERE ev.id = due.id AND j.id = ev.job_id \
             RETURNING ev.*, j.webhook AS hook",
        )
        .bind(now_ms)
        .bind(claim_ms)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows::due_webhooks(&rows)
    }
}
