//! The query layer both records backends share: a statement written once ([`Sql`], with the
//! few words the engines spell differently given both ways by [`sql!`]), arguments as plain
//! values ([`Arg`]), and an engine that runs them ([`Queries`]) and returns rows read through
//! [`Columns`]. [`SqlStore`] is the records store over an engine; the methods whose statements
//! are the same on both engines are written once on it (in `store.rs`), the others each
//! engine implements itself ([`Engine`]).

use super::payments;
use super::rows::Columns;
use super::{DueWebhook, NewFailure, NewResult, NewTask, Verdict, VerdictsApplied};
use crate::Result;
use async_trait::async_trait;
use futures::future::BoxFuture;
use idlegrid_domain::{JobId, WorkerId};
use std::collections::{BTreeMap, BTreeSet};

/// One statement, as each engine spells it; placeholders are `$1`, `$2`, … on both.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sql {
    /// SQLite's spelling.
    pub(super) sqlite: &'static str,
    /// PostgreSQL's spelling.
    pub(super) postgres: &'static str,
}

/// A [`Sql`] from string literals and the words the engines spell differently:
///
/// - `[in N]`: membership in list argument `$N` (an [`Arg::Ints`] or [`Arg::Texts`]): SQLite
///   unpacks it from JSON with `json_each`, PostgreSQL takes an array (`= ANY`).
/// - `[lock]`, `[lock_all]`: the row lock a PostgreSQL reader takes before it writes on what
///   it read (`FOR NO KEY UPDATE`, `FOR UPDATE`); nothing on SQLite, whose single writer
///   already serialises every write.
/// - `[jsonb]`: what makes a JSON text column's `->>` work: a cast on PostgreSQL.
/// - `[agreed]`: the same on both, [`agreed!`]: whether result `r` of device `w` is verified.
macro_rules! sql {
    ($($part:tt)+) => {
        $crate::records::sql::Sql {
            sqlite: concat!($($crate::records::sql::sql_part!(sqlite $part)),+),
            postgres: concat!($($crate::records::sql::sql_part!(postgres $part)),+),
        }
    };
}

/// One part of a [`sql!`] statement in one engine's spelling.
macro_rules! sql_part {
    ($engine:ident $text:literal) => {
        $text
    };
    (sqlite [in $n:literal]) => {
        concat!(" IN (SELECT value FROM json_each($", $n, "))")
    };
    (postgres [in $n:literal]) => {
        concat!(" = ANY($", $n, ")")
    };
    (sqlite [lock]) => {
        ""
    };
    (postgres [lock]) => {
        " FOR NO KEY UPDATE"
    };
    (sqlite [lock_all]) => {
        ""
    };
    (postgres [lock_all]) => {
        " FOR UPDATE"
    };
    (sqlite [jsonb]) => {
        ""
    };
    (postgres [jsonb]) => {
        "::jsonb"
    };
    ($engine:ident [agreed]) => {
        $crate::records::sql::agreed!()
    };
}

/// Whether another owner's device returned the same bytes as result `r` (of device `w`) and
/// had them accepted: the result is verified.
macro_rules! agreed {
    () => {
        "EXISTS (SELECT 1 FROM results o JOIN workers v ON v.id = o.worker_id \
         WHERE o.task_id = r.task_id AND o.id <> r.id AND o.sha256 = r.sha256 \
         AND o.validate_state IN ('valid', 'redundant') AND v.owner_id <> w.owner_id)"
    };
}

pub(super) use {agreed, sql, sql_part};

/// An argument of a statement.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Arg {
    /// An integer.
    Int(i64),
    /// An integer or NULL.
    IntOpt(Option<i64>),
    /// A text.
    Text(String),
    /// A text or NULL.
    TextOpt(Option<String>),
    /// Bytes.
    Bytes(Vec<u8>),
    /// A boolean (SQLite stores 0 or 1).
    Flag(bool),
    /// A list of integers, for `[in N]`.
    Ints(Vec<i64>),
    /// A list of texts, for `[in N]`.
    Texts(Vec<String>),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Arg::IntOpt(v)
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(v.to_string())
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(v)
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(v.clone())
    }
}
impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        Arg::TextOpt(v.map(str::to_string))
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Arg::TextOpt(v)
    }
}
impl From<&Option<String>> for Arg {
    fn from(v: &Option<String>) -> Self {
        Arg::TextOpt(v.clone())
    }
}
impl From<[u8; 32]> for Arg {
    fn from(v: [u8; 32]) -> Self {
        Arg::Bytes(v.to_vec())
    }
}
impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Arg::Flag(v)
    }
}
impl From<Vec<i64>> for Arg {
    fn from(v: Vec<i64>) -> Self {
        Arg::Ints(v)
    }
}
impl From<Vec<String>> for Arg {
    fn from(v: Vec<String>) -> Self {
        Arg::Texts(v)
    }
}

/// The arguments of a statement, in placeholder order.
macro_rules! args {
    ($($arg:expr),* $(,)?) => {
        vec![$($crate::records::sql::Arg::from($arg)),*]
    };
}
pub(super) use args;

/// Where a statement runs: on one of the engine's reading or its writing connection, or in a
/// transaction of it. (PostgreSQL reads and writes through one pool.)
pub(super) enum On<'a, E: Queries> {
    /// A read of committed state.
    Read(&'a E),
    /// A write, or a read that must see the last write (SQLite: its writing connection).
    Write(&'a E),
    /// In a transaction from [`Queries::begin`].
    Tx(&'a mut E::Tx),
}

/// Running statements on one engine.
pub(super) trait Queries: Sized + Send + Sync + 'static {
    /// The engine's rows.
    type Row: Columns + Send + Sync;
    /// A transaction of the engine, begun on its writing connection.
    type Tx: Send;
    /// Every row of `sql`.
    fn all<'a>(on: On<'a, Self>, sql: Sql, args: Vec<Arg>)
    -> BoxFuture<'a, Result<Vec<Self::Row>>>;
    /// The row of `sql`, if any.
    fn optional<'a>(
        on: On<'a, Self>,
        sql: Sql,
        args: Vec<Arg>,
    ) -> BoxFuture<'a, Result<Option<Self::Row>>>;
    /// Runs `sql`; returns the rows it changed.
    fn execute<'a>(on: On<'a, Self>, sql: Sql, args: Vec<Arg>) -> BoxFuture<'a, Result<u64>>;
    /// Begins a transaction.
    fn begin(&self) -> BoxFuture<'_, Result<Self::Tx>>;
    /// Commits it.
    fn commit(tx: Self::Tx) -> BoxFuture<'static, Result<()>>;
}

/// Implements [`Queries`] for an engine whose spelling of statements is `$spelling`, on its
/// pools `$read` and `$write`, binding list arguments as `$list` makes them.
macro_rules! queries_for {
    ($engine:ty, $db:ty, $spelling:ident, read: $read:ident, write: $write:ident, list: $list:path) => {
        /// A statement with its arguments bound.
        fn statement(
            sql: &'static str,
            args: Vec<$crate::records::sql::Arg>,
        ) -> sqlx::query::Query<'static, $db, <$db as sqlx::Database>::Arguments> {
            use $crate::records::sql::Arg;
            args.into_iter()
                .fold(sqlx::query(sql), |query, arg| match arg {
                    Arg::Int(v) => query.bind(v),
                    Arg::IntOpt(v) => query.bind(v),
                    Arg::Text(v) => query.bind(v),
                    Arg::TextOpt(v) => query.bind(v),
                    Arg::Bytes(v) => query.bind(v),
                    Arg::Flag(v) => query.bind(v),
                    Arg::Ints(v) => query.bind($list(v)),
                    Arg::Texts(v) => query.bind($list(v)),
                })
        }

        impl $crate::records::sql::Queries for $engine {
            type Row = <$db as sqlx::Database>::Row;
            type Tx = sqlx::Transaction<'static, $db>;
            fn all<'a>(
                on: $crate::records::sql::On<'a, Self>,
                sql: $crate::records::sql::Sql,
                args: Vec<$crate::records::sql::Arg>,
            ) -> futures::future::BoxFuture<'a, $crate::Result<Vec<Self::Row>>> {
                use $crate::records::sql::On;
                let query = statement(sql.$spelling, args);
                Box::pin(async move {
                    match on {
                        On::Read(engine) => query.fetch_all(&engine.$read).await,
                        On::Write(engine) => query.fetch_all(&engine.$write).await,
                        On::Tx(tx) => query.fetch_all(&mut **tx).await,
                    }
                    .map_err($crate::records::rows::backend)
                })
            }
            fn optional<'a>(
                on: $crate::records::sql::On<'a, Self>,
                sql: $crate::records::sql::Sql,
                args: Vec<$crate::records::sql::Arg>,
            ) -> futures::future::BoxFuture<'a, $crate::Result<Option<Self::Row>>> {
                use $crate::records::sql::On;
                let query = statement(sql.$spelling, args);
                Box::pin(async move {
                    match on {
                        On::Read(engine) => query.fetch_optional(&engine.$read).await,
                        On::Write(engine) => query.fetch_optional(&engine.$write).await,
                        On::Tx(tx) => query.fetch_optional(&mut **tx).await,
                    }
                    .map_err($crate::records::rows::backend)
                })
            }
            fn execute<'a>(
                on: $crate::records::sql::On<'a, Self>,
                sql: $crate::records::sql::Sql,
                args: Vec<$crate::records::sql::Arg>,
            ) -> futures::future::BoxFuture<'a, $crate::Result<u64>> {
                use $crate::records::sql::On;
                let query = statement(sql.$spelling, args);
                Box::pin(async move {
                    match on {
                        On::Read(engine) => query.execute(&engine.$read).await,
                        On::Write(engine) => query.execute(&engine.$write).await,
                        On::Tx(tx) => query.execute(&mut **tx).await,
                    }
                    .map(|done| done.rows_affected())
                    .map_err($crate::records::rows::backend)
                })
            }
            fn begin(&self) -> futures::future::BoxFuture<'_, $crate::Result<Self::Tx>> {
                Box::pin(async move {
                    self.$write
                        .begin()
                        .await
                        .map_err($crate::records::rows::backend)
                })
            }
            fn commit(tx: Self::Tx) -> futures::future::BoxFuture<'static, $crate::Result<()>> {
                Box::pin(async move { tx.commit().await.map_err($crate::records::rows::backend) })
            }
        }
    };
}
pub(super) use queries_for;

/// A task charged failed attempts, as a batch left it: its id, failures, state, its job's
/// `max_attempts` and the job's state.
pub(super) type TaskCharged = (i64, i64, String, i64, String);

/// What an engine does its own way: its batches (SQLite's travel as JSON, PostgreSQL's as
/// arrays with their row locks taken in order), holding tasks, a snapshot, and claiming
/// webhook events.
#[async_trait]
pub(super) trait Engine: Queries {
    /// Posts `entries` (each transaction's rows summing to zero; one posted before posts
    /// nothing), and adds `charged` (job, amount) to the jobs' charged totals. Returns how
    /// many rows were posted. The caller holds the jobs.
    async fn post_entries(
        tx: &mut Self::Tx,
        entries: &[payments::Entry],
        charged: &BTreeMap<i64, i64>,
    ) -> Result<u64>;

    /// [`super::Store::touch_workers`], for a batch that is not empty.
    async fn touch_workers(&self, seen: &[(WorkerId, i64)]) -> Result<()>;
    /// [`super::Store::insert_tasks`] of a batch that is not empty: the `(index, id)` of each
    /// chunk inserted.
    async fn insert_tasks(
        &self,
        job: JobId,
        tasks: &[NewTask],
        replicas: u32,
    ) -> Result<Vec<(i64, i64)>>;
    /// [`super::Store::record_results`] of a batch that is not empty and has one report per
    /// task and device: the `(task, worker, id)` of each result recorded.
    async fn record_results(&self, batch: &[&NewResult]) -> Result<Vec<(i64, i64, i64)>>;
    /// [`super::Store::record_failures`] of a batch that is not empty: each task charged, as
    /// the batch left it (a task missing is [`crate::StorageError::NotFound`], and nothing is
    /// recorded).
    async fn record_failures(&self, failures: &[NewFailure]) -> Result<Vec<TaskCharged>>;
    /// Applies verdicts in `tx` ([`super::Store::apply_verdicts`]).
    async fn apply_in(tx: &mut Self::Tx, verdicts: &[Verdict]) -> Result<VerdictsApplied>;
    /// Holds these tasks (and then, if `jobs_too`, their jobs) until `tx` ends, so that what
    /// it reads of them stays true until it commits and nobody else changes them meanwhile.
    /// (SQLite's single writer holds everything already.)
    async fn hold_tasks(tx: &mut Self::Tx, tasks: &BTreeSet<i64>, jobs_too: bool) -> Result<()>;
    /// Begins a transaction whose reads all see one snapshot.
    async fn snapshot(&self) -> Result<Self::Tx>;
    /// [`super::Store::claim_webhook_events`].
    async fn claim_webhook_events(
        &self,
        now_ms: i64,
        claim_ms: i64,
        limit: u32,
    ) -> Result<Vec<DueWebhook>>;
}

/// The records store over an engine: [`super::SqliteStore`] or [`super::PostgresStore`].
#[derive(Debug, Clone)]
pub struct SqlStore<E> {
    pub(super) engine: E,
}
