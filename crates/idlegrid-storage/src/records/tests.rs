//! One test suite, two backends: every test here runs against SQLite and against PostgreSQL,
//! so the backends cannot drift apart in what a method means.
//!
//! The PostgreSQL runs need a server: `IDLEGRID_TEST_POSTGRES` holds the URL of one where tests
//! may create databases (`postgres://user@127.0.0.1:PORT/postgres`); each test gets a database
//! of its own and drops it afterwards. Without the variable those runs are skipped with a note,
//! or fail when `IDLEGRID_REQUIRE_SERVICES=1` (CI sets it where the services run).
//!
//! Tests taking two stores check what must hold when coordinators call at once: on PostgreSQL
//! they are two pools on one database, on SQLite one store shared (its single writer is what
//! keeps it correct there).

use crate::records::NewSecret;
use crate::records::{
    AppVersion, AttemptRecord, Decide, Hold, JobRecord, NewFailure, NewJob, NewResult, NewTask,
    OutputRef, PostgresStore, Principal, Published, ReplicaState, SqliteStore, Store, StoredBlob,
    Verdict, WebhookAttempt, WebhookNext,
};
use futures::future::join_all;
use idlegrid_domain::pricing::quote;
use idlegrid_domain::{
    Account, AttemptOutcome, Capabilities, Credits, JobId, JobState, Replication, ResultId, TaskId,
    TaskState, Tier, WorkerId,
};
use serde_json::json;
use sqlx::Connection;

mod accounts;
use accounts::{
    owners_bench_devices_and_payouts_never_exceed_the_balance,
    secrets_are_listed_revoked_and_rotated_and_standing_is_enforced,
    usage_counts_jobs_submitted_and_bytes_kept,
};

const POSTGRES_VAR: &str = "IDLEGRID_TEST_POSTGRES";

async fn sqlite_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("records.db"))
        .await
        .unwrap();
    (dir, store)
}

/// A fresh PostgreSQL database for one test, dropped when this goes out of scope (also when
/// the test panics).
struct PgDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PgDatabase {
    /// Creates the database, or says why not and returns `None` when no server is configured.
    async fn create() -> Option<PgDatabase> {
        let Ok(admin_url) = std::env::var(POSTGRES_VAR) else {
            if std::env::var("IDLEGRID_REQUIRE_SERVICES").as_deref() == Ok("1") {
                panic!(
                    "{POSTGRES_VAR} is not set: start the services with \
                     `eval \"$(scripts/services.sh start)\"`, or start PostgreSQL yourself (as \
                     the postgres user: initdb -D DIR -A trust -U postgres; pg_ctl -D DIR -o \
                     \"-p 55432 -c listen_addresses=127.0.0.1\" start) and set \
                     {POSTGRES_VAR}=postgres://postgres@127.0.0.1:55432/postgres"
                );
            }
            eprintln!("note: {POSTGRES_VAR} is not set; skipping the PostgreSQL run");
            return None;
        };
        let name = format!("idlegrid_t_{}", hex::encode(rand::random::<[u8; 8]>()));
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("connecting to {POSTGRES_VAR}: {e}"));
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.ok();
        let url = with_database(&admin_url, &name);
        Some(PgDatabase {
            admin_url,
            name,
            url,
        })
    }

    async fn store(&self) -> PostgresStore {
        PostgresStore::connect(&self.url, 8).await.unwrap()
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // Best effort, on a thread of its own: the test's runtime may be gone or blocked here.
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&admin_url).await.ok()?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await
                .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("note: could not drop test database {}", self.name);
        }
    }
}

/// The admin URL with its database replaced by `name` (query parameters kept).
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

/// Generates, for each test function, a SQLite run and a PostgreSQL run. Functions listed
/// under `one` take a store; those under `two` take two handles on one database.
macro_rules! on_both_backends {
    (one: [$($one:ident),* $(,)?], two: [$($two:ident),* $(,)?] $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $one() {
                    let (_dir, store) = super::sqlite_store().await;
                    super::$one(&store).await;
                    store.close().await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $two() {
                    let (_dir, store) = super::sqlite_store().await;
                    super::$two(&store, &store.clone()).await;
                    store.close().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $one() {
                    let Some(db) = super::PgDatabase::create().await else { return };
                    let store = db.store().await;
                    super::$one(&store).await;
                    store.close().await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $two() {
                    let Some(db) = super::PgDatabase::create().await else { return };
                    let (a, b) = (db.store().await, db.store().await);
                    super::$two(&a, &b).await;
                    a.close().await;
                    b.close().await;
                }
            )*
        }
    };
}

on_both_backends!(
    one: [
        a_job_runs_through_to_assembling,
        a_replicated_task_takes_one_result_per_device_and_asks_for_more,
        failures_are_charged_and_transitions_are_compare_and_set,
        credentials_resolve_to_principals,
        batches_count_as_if_recorded_one_at_a_time,
        verdicts_apply_in_the_order_given,
        devices_are_quarantined_once,
        accounts_name_themselves_and_owners_see_their_devices, a_jobs_tasks_come_in_index_pages, webhook_events_record_every_state_change_and_go_out_in_order,
        validated_results_are_paid_once_and_the_books_balance,
        a_link_code_links_one_device_once_before_it_expires,
        replicas_know_the_runtime_they_ran_in,
        copies_go_to_independent_parties_and_disputes_settle_when_an_output_is_accepted,
        an_owner_caught_forging_loses_what_was_not_verified,
        secrets_are_listed_revoked_and_rotated_and_standing_is_enforced,
        owners_bench_devices_and_payouts_never_exceed_the_balance,
        usage_counts_jobs_submitted_and_bytes_kept,
        published_app_versions_are_kept_as_published_and_names_belong_to_one_account,
    ],
    two: [
        racing_publishers_of_one_name_leave_it_one_account,
        racing_transitions_have_one_winner,
        racing_reports_give_one_result_per_device_and_replica,
        racing_quorum_decisions_decide_a_task_once,
        racing_batches_in_opposite_orders_do_not_deadlock,
        racing_partitioners_create_each_chunk_once,
        racing_webhook_claims_take_each_event_once,
        racing_holds_never_spend_a_balance_twice,
    ],
);

fn app_version(
    tenant: idlegrid_domain::TenantId,
    name: &str,
    version: &str,
    sha: &str,
) -> AppVersion {
    AppVersion {
        name: name.into(),
        version: version.into(),
        tenant,
        public: false,
        manifest: format!("{{\"name\":\"{name}\",\"version\":\"{version}\"}}"),
        bundle_sha256: sha.into(),
        bundle_bytes: 100,
        created_ms: 1_000,
    }
}

async fn published_app_versions_are_kept_as_published_and_names_belong_to_one_account(
    store: &dyn Store,
) {
    let alice = store.ensure_tenant("alice").await.unwrap();
    let bob = store.ensure_tenant("bob").await.unwrap();
    let first = app_version(alice, "shout", "1.0.0", "aa");
    assert_eq!(store.publish_app(&first).await.unwrap(), Published::Created);
    // The same again is fine; other bytes under that version are not; a later version is.
    assert_eq!(store.publish_app(&first).await.unwrap(), Published::Same);
    let changed = app_version(alice, "shout", "1.0.0", "bb");
    assert_eq!(
        store.publish_app(&changed).await.unwrap(),
        Published::Exists
    );
    let later = AppVersion {
        created_ms: 2_000,
        ..app_version(alice, "shout", "1.10.0", "cc")
    };
    let between = AppVersion {
        created_ms: 3_000,
        ..app_version(alice, "shout", "1.9.0", "dd")
    };
    for version in [&later, &between] {
        assert_eq!(
            store.publish_app(version).await.unwrap(),
            Published::Created
        );
    }
    // The name is alice's: bob can publish no version of it.
    let squatter = app_version(bob, "shout", "2.0.0", "ee");
    assert_eq!(
        store.publish_app(&squatter).await.unwrap(),
        Published::NameTaken
    );
    let versions = store.app_versions("shout").await.unwrap();
    let listed: Vec<(&str, &str)> = versions
        .iter()
        .map(|v| (v.version.as_str(), v.bundle_sha256.as_str()))
        .collect();
    assert_eq!(listed, [("1.0.0", "aa"), ("1.10.0", "cc"), ("1.9.0", "dd")]);
    // Published versions are kept for ever: their bundles count as their publisher's bytes.
    assert_eq!(store.usage(alice).await.unwrap().stored_bytes, 300);
    assert_eq!(store.usage(bob).await.unwrap().stored_bytes, 0);
    assert!(versions.iter().all(|v| v.tenant == alice && !v.public));
    assert!(store.app_versions("nope").await.unwrap().is_empty());
    // Each account sees its own apps' latest versions (by number, not by when), and the
    // public ones.
    assert_eq!(
        store
            .publish_app(&app_version(bob, "count", "0.1.0", "ff"))
            .await
            .unwrap(),
        Published::Created
    );
    let names = |apps: Vec<AppVersion>| -> Vec<(String, String)> {
        apps.into_iter().map(|a| (a.name, a.version)).collect()
    };
    let of = |t| async move { names(store.latest_apps(t).await.unwrap()) };
    assert_eq!(of(Some(alice)).await, [("shout".into(), "1.10.0".into())]);
    assert_eq!(of(Some(bob)).await, [("count".into(), "0.1.0".into())]);
    assert_eq!(of(None).await.len(), 2);
    assert!(store.set_app_public("shout", true).await.unwrap());
    assert!(!store.set_app_public("nope", true).await.unwrap());
    assert_eq!(
        of(Some(bob)).await,
        [
            ("count".into(), "0.1.0".into()),
            ("shout".into(), "1.10.0".into())
        ]
    );
    assert!(
        store
            .app_versions("shout")
            .await
            .unwrap()
            .iter()
            .all(|v| v.public)
    );
}

async fn racing_publishers_of_one_name_leave_it_one_account(a: &dyn Store, b: &dyn Store) {
    let tenants = [
        a.ensure_tenant("alice").await.unwrap(),
        a.ensure_tenant("bob").await.unwrap(),
    ];
    let results = join_all((0..8).map(|i| {
        let store = if i % 2 == 0 { a } else { b };
        let app = app_version(tenants[i % 2], "race", "1.0.0", &format!("{i}"));
        async move { store.publish_app(&app).await.unwrap() }
    }))
    .await;
    assert_eq!(
        results.iter().filter(|r| **r == Published::Created).count(),
        1,
        "{results:?}"
    );
    let versions = a.app_versions("race").await.unwrap();
    assert_eq!(versions.len(), 1);
    let winner = versions[0].tenant;
    for (i, result) in results.iter().enumerate() {
        if tenants[i % 2] != winner {
            assert_eq!(*result, Published::NameTaken);
        }
    }
}

fn new_job(tenant: idlegrid_domain::TenantId) -> NewJob {
    NewJob {
        tenant,
        name: None,
        app: "python-map".into(),
        app_version: "1".into(),
        bundle_sha256: "ab".into(),
        params: json!({"k": 1}),
        partition_options: json!({"lines": 2}),
        priority: 0,
        max_attempts: 2,
        task_timeout_secs: 60,
        replication: Replication::NONE,
        placement: idlegrid_domain::Placement::Any,
        deadline_secs: None,
        tier: idlegrid_domain::Tier::Standard,
        max_price: None,
        external: None,
        webhook: None,
    }
}

async fn running_job(store: &dyn Store, chunks: u64) -> (JobRecord, Vec<TaskId>) {
    let tenant = store.ensure_tenant("acme").await.unwrap();
    let job = store.create_job(&new_job(tenant)).await.unwrap();
    let input = StoredBlob {
        key: "in".into(),
        size: 10,
        sha256: "cd".into(),
    };
    assert!(store.set_job_input(job.id, &input).await.unwrap());
    store
        .set_job_facts(job.id, &json!({"lines": 3}))
        .await
        .unwrap();
    for to in [JobState::Submitted, JobState::Partitioning] {
        assert!(
            store
                .transition_job(job.id, to, None)
                .await
                .unwrap()
                .is_some()
        );
    }
    let tasks: Vec<NewTask> = (0..chunks).map(chunk).collect();
    let ids = store.insert_tasks(job.id, &tasks, 1).await.unwrap();
    // Re-inserting (a restarted partitioner) creates nothing new.
    assert!(
        store
            .insert_tasks(job.id, &tasks, 1)
            .await
            .unwrap()
            .is_empty()
    );
    (store.job(job.id).await.unwrap().unwrap(), ids)
}

fn chunk(i: u64) -> NewTask {
    NewTask {
        index: i,
        input_key: None,
        offset: i * 2,
        len: 2,
        meta: (i == 1).then(|| json!({"frames": 48})),
        // One reference core-hour: 0.02 credits at the standard tier.
        work_ms: 3_600_000,
    }
}

fn result(task: TaskId, job: JobId, bytes: &[u8]) -> NewResult {
    NewResult {
        task,
        job,
        worker: WorkerId(1),
        sha256: crate::blobs::sha256_hex(bytes),
        size: bytes.len() as u64,
        output: OutputRef::Inline(bytes.to_vec()),
    }
}

async fn workers(store: &dyn Store, n: u8) -> Vec<WorkerId> {
    let owner = store.ensure_owner("o").await.unwrap();
    let mut ids = Vec::new();
    for i in 0..n {
        let id = store
            .register_worker(owner, &format!("w{i}"), &Capabilities::default(), [i; 32])
            .await
            .unwrap();
        ids.push(id);
    }
    ids
}

/// `n` devices, each of an owner of its own (`owner-<i>`).
async fn independent_workers(store: &dyn Store, n: u8) -> Vec<WorkerId> {
    let mut ids = Vec::new();
    for i in 0..n {
        let owner = store.ensure_owner(&format!("owner-{i}")).await.unwrap();
        let id = store
            .register_worker(
                owner,
                &format!("w{i}"),
                &Capabilities::default(),
                [100 + i; 32],
            )
            .await
            .unwrap();
        ids.push(id);
    }
    ids
}

async fn a_job_runs_through_to_assembling(store: &dyn Store) {
    let (job, tasks) = running_job(store, 3).await;
    assert_eq!(job.chunks_created, 3);
    assert_eq!(job.facts, Some(json!({"lines": 3})));
    assert_eq!(job.state, JobState::Partitioning);
    assert_eq!(store.pending_tasks(job.id).await.unwrap(), tasks);
    let records = store.tasks(&[tasks[2], tasks[0]]).await.unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!((records[0].id, records[0].chunk.offset), (tasks[0], 0));
    assert_eq!((records[1].chunk.index, records[1].chunk.len), (2, 2));
    assert_eq!(records[0].chunk.meta, None);
    let second = store.tasks(&[tasks[1]]).await.unwrap();
    assert_eq!(second[0].chunk.meta, Some(json!({"frames": 48})));

    let ids = store
        .record_results(&[
            result(tasks[0], job.id, b"a"),
            result(tasks[1], job.id, b"b"),
            result(tasks[0], job.id, b"again"),
        ])
        .await
        .unwrap();
    assert!(ids[0].is_some() && ids[1].is_some() && ids[2].is_none());
    // Counts for metrics: one partitioning job, its tasks by state.
    let (jobs, tasks_by_state) = store.counts().await.unwrap();
    assert_eq!(jobs, [(JobState::Partitioning, 1)]);
    assert_eq!(
        tasks_by_state,
        [(TaskState::Pending, 1), (TaskState::Validating, 2)]
    );
    // A second report for a task already validating is not recorded.
    assert_eq!(
        store
            .record_results(&[result(tasks[0], job.id, b"x")])
            .await
            .unwrap(),
        [None]
    );
    let pending: Vec<ResultId> = ids.iter().flatten().copied().collect();
    let records = store.results_for_validation(&pending).await.unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].output, OutputRef::Inline(b"a".to_vec()));
    assert_eq!(
        store.unvalidated_results().await.unwrap(),
        [(job.id, pending[0]), (job.id, pending[1])]
    );
    let applied = store
        .apply_verdicts(&[
            Verdict::Valid(pending[0]),
            Verdict::Invalid(pending[1], "bad".into()),
        ])
        .await
        .unwrap();
    assert!(applied.ready_to_assemble.is_empty());
    assert_eq!(applied.charged.len(), 1);
    assert!(applied.charged[0].still_pending);
    assert_eq!(applied.charged[0].failures, 1);

    // Partitioning ends with one chunk done: the job runs on.
    assert_eq!(
        store.finish_partition(job.id, 3).await.unwrap(),
        Some(JobState::Running)
    );
    let ids = store
        .record_results(&[
            result(tasks[1], job.id, b"b"),
            NewResult {
                output: OutputRef::Blob("results/c".into()),
                ..result(tasks[2], job.id, b"c")
            },
        ])
        .await
        .unwrap();
    let verdicts: Vec<Verdict> = ids.iter().flatten().map(|id| Verdict::Valid(*id)).collect();
    let applied = store.apply_verdicts(&verdicts).await.unwrap();
    assert_eq!(applied.ready_to_assemble, [job.id]);
    let outputs = store.accepted_outputs(job.id, 0, 10).await.unwrap();
    assert_eq!(
        outputs,
        [
            (0, OutputRef::Inline(b"a".to_vec())),
            (1, OutputRef::Inline(b"b".to_vec())),
            (2, OutputRef::Blob("results/c".into())),
        ]
    );
    assert_eq!(store.accepted_outputs(job.id, 1, 1).await.unwrap().len(), 1);
    let job = store.job(job.id).await.unwrap().unwrap();
    assert_eq!((job.chunks_done, job.failed_attempts), (3, 1));
    assert_eq!((job.results_received, job.results_rejected), (4, 1));
    assert_eq!(store.attempts(tasks[1]).await.unwrap()[0].reason, "bad");
    // An app's step (its reduce) opens one more task: the job runs again with its replication.
    let step = Replication {
        mode: idlegrid_domain::ReplicationMode::Fixed,
        ..Replication::NONE
    };
    let reduce = store.insert_tasks(job.id, &[chunk(3)], 2).await.unwrap();
    let opened = store.open_step(job.id, 4, &step).await.unwrap().unwrap();
    assert_eq!(opened.state, JobState::Running);
    assert_eq!((opened.chunks_total, opened.chunks_done), (Some(4), 3));
    assert_eq!(opened.spec.replication, step);
    // Only from assembling, and only with more tasks than are done.
    assert!(store.open_step(job.id, 4, &step).await.unwrap().is_none());
    let ids = store
        .record_results(&[result(reduce[0], job.id, b"r")])
        .await
        .unwrap();
    let applied = store
        .apply_verdicts(&[Verdict::Valid(ids[0].unwrap())])
        .await
        .unwrap();
    assert_eq!(applied.ready_to_assemble, [job.id]);
    assert!(store.open_step(job.id, 4, &step).await.unwrap().is_none());
    let output = StoredBlob {
        key: "out".into(),
        size: 3,
        sha256: "ef".into(),
    };
    assert!(store.complete_job(job.id, &output).await.unwrap());
    assert!(!store.complete_job(job.id, &output).await.unwrap());
    let job = store.job(job.id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Completed);
    assert_eq!(job.output, Some(output));
    assert!(job.finished_at.is_some());
    assert_eq!(
        store
            .jobs_in_states(&[JobState::Completed])
            .await
            .unwrap()
            .len(),
        1
    );
    let listed = store.list_jobs(job.spec.tenant, None, 10).await.unwrap();
    assert_eq!(listed[0].id, job.id);
    assert!(
        store
            .list_jobs(job.spec.tenant, Some(job.id), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_replicated_task_takes_one_result_per_device_and_asks_for_more(store: &dyn Store) {
    let (job, _) = running_job(store, 0).await;
    let task = store.insert_tasks(job.id, &[chunk(9)], 2).await.unwrap()[0];
    let [w1, w2] = independent_workers(store, 2).await[..] else {
        unreachable!()
    };
    let by = |worker, bytes: &[u8]| NewResult {
        worker,
        ..result(task, job.id, bytes)
    };
    // The same device twice (in one batch and later) gives one result.
    let ids = store
        .record_results(&[by(w1, b"x"), by(w1, b"x")])
        .await
        .unwrap();
    assert!(ids[0].is_some() && ids[1].is_none());
    assert!(store.record_results(&[by(w1, b"y")]).await.unwrap()[0].is_none());
    // A result awaiting its check is in doubt; the other device has none.
    let doubt = store.in_doubt(w1).await.unwrap();
    assert_eq!((doubt.streak, doubt.count), (0, 1));
    assert!(doubt.oldest_ms.is_some_and(|t| t > 0), "{doubt:?}");
    assert_eq!(store.in_doubt(w2).await.unwrap(), Default::default());
    assert_eq!(
        store.tasks(&[task]).await.unwrap()[0].state,
        TaskState::Pending
    );
    let second = store.record_results(&[by(w2, b"z")]).await.unwrap()[0].unwrap();
    let state = &store.replica_states(&[task]).await.unwrap()[0];
    assert_eq!((state.state, state.wanted), (TaskState::Validating, 2));
    assert_eq!(state.results.len(), 2);
    // They disagree: both wait, and one more replica is asked for, kept from both devices.
    let applied = store
        .apply_verdicts(&[
            Verdict::Passed(ids[0].unwrap()),
            Verdict::Passed(second),
            Verdict::MoreReplicas(task, 1),
        ])
        .await
        .unwrap();
    assert_eq!(applied.replicate.len(), 1);
    let mut exclude = applied.replicate[0].exclude.clone();
    exclude.sort();
    assert_eq!(exclude, [w1, w2]);
    let state = &store.replica_states(&[task]).await.unwrap()[0];
    assert_eq!((state.state, state.wanted), (TaskState::Pending, 3));
    assert!(
        state
            .results
            .iter()
            .all(|r| r.stage == crate::records::ReplicaStage::Passed)
    );
    assert_eq!(
        store.pending_results_of(w2).await.unwrap(),
        [second],
        "a passed result still waits for its replicas"
    );
    assert_eq!(
        store.in_doubt(w2).await.unwrap().count,
        1,
        "passed, not yet agreed"
    );
    // The quorum settles it: the odd one out is rejected and its device's run ends.
    let applied = store
        .apply_verdicts(&[
            Verdict::Valid(ids[0].unwrap()),
            Verdict::Invalid(second, "differs".into()),
        ])
        .await
        .unwrap();
    assert!(!applied.charged[0].still_pending);
    assert_eq!(store.reputation(w1).await.unwrap().unwrap().streak, 1);
    // Settled either way, neither result is in doubt; the valid one counts in the run.
    let doubt = store.in_doubt(w1).await.unwrap();
    assert_eq!((doubt.streak, doubt.count, doubt.oldest_ms), (1, 0, None));
    assert_eq!(store.in_doubt(w2).await.unwrap(), Default::default());
    // The same verdict again (two coordinators judged it) does not count twice.
    store
        .apply_verdicts(&[Verdict::Valid(ids[0].unwrap())])
        .await
        .unwrap();
    assert_eq!(store.reputation(w1).await.unwrap().unwrap().streak, 1);
    let w2_record = store.reputation(w2).await.unwrap().unwrap();
    assert_eq!((w2_record.streak, w2_record.invalid), (0, 1));
    let job = store.job(job.id).await.unwrap().unwrap();
    assert_eq!((job.results_received, job.results_rejected), (2, 1));
    assert_eq!(
        store.replica_states(&[task]).await.unwrap()[0]
            .accepted
            .as_ref()
            .map(|a| a.sha256.clone()),
        Some(crate::blobs::sha256_hex(b"x"))
    );
}

async fn failures_are_charged_and_transitions_are_compare_and_set(store: &dyn Store) {
    let (job, tasks) = running_job(store, 1).await;
    let failure = NewFailure {
        task: tasks[0],
        job: job.id,
        worker: WorkerId(3),
        outcome: AttemptOutcome::NoReply,
        reason: "lease expired".into(),
    };
    let released = NewFailure {
        outcome: AttemptOutcome::Abandoned,
        ..failure.clone()
    };
    let charged = store.record_failures(&[failure, released]).await.unwrap();
    assert_eq!(charged[0].failures, 1);
    assert_eq!(charged[1].failures, 1, "a hand-back is not charged");
    assert_eq!(charged[0].max_attempts, 2);
    assert!(charged[0].still_pending);
    assert_eq!(
        store.reputation(WorkerId(3)).await.unwrap(),
        None,
        "an unregistered device has no record"
    );
    assert!(store.fail_task(tasks[0]).await.unwrap());
    assert!(!store.fail_task(tasks[0]).await.unwrap());
    let failed = store
        .transition_job(job.id, JobState::Failed, Some("chunk 0 failed"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(failed.error.as_deref(), Some("chunk 0 failed"));
    assert_eq!(failed.chunks_failed, 1);
    assert_eq!(failed.failed_attempts, 1);
    assert!(failed.finished_at.is_some());
    assert!(
        store
            .transition_job(job.id, JobState::Cancelled, None)
            .await
            .unwrap()
            .is_none()
    );
    // Charging a task that does not exist fails the batch.
    let missing = NewFailure {
        task: TaskId(9999),
        job: job.id,
        worker: WorkerId(3),
        outcome: AttemptOutcome::NoReply,
        reason: "x".into(),
    };
    assert!(store.record_failures(&[missing]).await.is_err());
    assert_eq!(store.attempts(tasks[0]).await.unwrap().len(), 2);
    // Several tasks' attempts in one read, each with its task, oldest first.
    let all = store.attempts_of(&tasks).await.unwrap();
    let of_first: Vec<&AttemptRecord> = all
        .iter()
        .filter(|(task, _)| *task == tasks[0])
        .map(|(_, attempt)| attempt)
        .collect();
    let one_by_one = store.attempts(tasks[0]).await.unwrap();
    assert_eq!(of_first, one_by_one.iter().collect::<Vec<_>>());
    assert!(all.iter().all(|(task, _)| tasks.contains(task)));
    assert!(store.attempts_of(&[]).await.unwrap().is_empty());
}

/// A key with hash `hash`.
fn secret(hash: [u8; 32]) -> NewSecret {
    NewSecret {
        hash,
        prefix: "igk_test".into(),
        name: "test".into(),
        session_expires_at: None,
        parent: None,
    }
}

/// Who a secret's hash authenticates, if anyone.
async fn principal_of(store: &dyn Store, hash: [u8; 32]) -> Option<Principal> {
    store.credential(hash).await.unwrap().map(|c| c.principal)
}

async fn credentials_resolve_to_principals(store: &dyn Store) {
    let tenant = store.ensure_tenant("t").await.unwrap();
    assert_eq!(store.ensure_tenant("t").await.unwrap(), tenant);
    store
        .add_secret(Principal::Tenant(tenant), &secret([1; 32]))
        .await
        .unwrap();
    // A secret authenticates one principal.
    assert!(
        store
            .add_secret(Principal::Owner(1), &secret([1; 32]))
            .await
            .is_err()
    );
    let owner = store.ensure_owner("o").await.unwrap();
    assert_eq!(store.ensure_owner("o").await.unwrap(), owner);
    store
        .add_secret(Principal::Owner(owner), &secret([4; 32]))
        .await
        .unwrap();
    let caps = Capabilities {
        cores: 2,
        ..Default::default()
    };
    let worker = store
        .register_worker(owner, "box", &caps, [2; 32])
        .await
        .unwrap();
    // A token already in use registers nobody.
    assert!(
        store
            .register_worker(owner, "twin", &caps, [2; 32])
            .await
            .is_err()
    );
    assert_eq!(
        principal_of(store, [1; 32]).await,
        Some(Principal::Tenant(tenant))
    );
    assert_eq!(
        principal_of(store, [2; 32]).await,
        Some(Principal::Worker(worker))
    );
    assert_eq!(
        principal_of(store, [4; 32]).await,
        Some(Principal::Owner(owner))
    );
    assert_eq!(principal_of(store, [3; 32]).await, None);
    let record = store.worker(worker).await.unwrap().unwrap();
    assert_eq!(
        (&record.capabilities, record.owner, record.owner_tenant),
        (&caps, owner, None)
    );
    assert!(
        store
            .worker(WorkerId(worker.0 + 1))
            .await
            .unwrap()
            .is_none()
    );
    // The owner changes what the device may take: the record follows.
    let mut changed = caps.clone();
    changed.allows.memory_mb = Some(512);
    assert!(
        store
            .update_worker_capabilities(worker, &changed)
            .await
            .unwrap()
    );
    assert_eq!(
        store.worker(worker).await.unwrap().unwrap().capabilities,
        changed
    );
    assert!(
        !store
            .update_worker_capabilities(WorkerId(worker.0 + 1), &changed)
            .await
            .unwrap()
    );
    assert_eq!(
        store.reputation(worker).await.unwrap(),
        Some(Default::default())
    );
}

async fn a_link_code_links_one_device_once_before_it_expires(store: &dyn Store) {
    let owner = store.ensure_owner("alice").await.unwrap();
    let now = crate::now_ms();
    store
        .create_link_code(owner, [7; 32], now + 60_000)
        .await
        .unwrap();
    store
        .create_link_code(owner, [8; 32], now - 1)
        .await
        .unwrap();
    let caps = Capabilities {
        runtime: idlegrid_domain::Runtime::Browser,
        ..Default::default()
    };
    let phone = store
        .register_linked_worker([7; 32], now, "phone", &caps, [70; 32])
        .await
        .unwrap()
        .expect("a fresh code links a device");
    assert_eq!(
        principal_of(store, [70; 32]).await,
        Some(Principal::Worker(phone))
    );
    let devices = store.owner_devices(owner).await.unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].capabilities, caps);
    // Used up, expired, unknown: no device, and no token.
    for code in [[7; 32], [8; 32], [9; 32]] {
        assert_eq!(
            store
                .register_linked_worker(code, now, "again", &caps, [71; 32])
                .await
                .unwrap(),
            None
        );
    }
    assert_eq!(principal_of(store, [71; 32]).await, None);
    assert_eq!(store.owner_devices(owner).await.unwrap().len(), 1);
}

async fn replicas_know_the_runtime_they_ran_in(store: &dyn Store) {
    let (job, _) = running_job(store, 0).await;
    let task = store.insert_tasks(job.id, &[chunk(9)], 2).await.unwrap()[0];
    let owner = store.ensure_owner("o").await.unwrap();
    let native = store
        .register_worker(owner, "desktop", &Capabilities::default(), [40; 32])
        .await
        .unwrap();
    let browser_caps = Capabilities {
        runtime: idlegrid_domain::Runtime::Browser,
        ..Default::default()
    };
    let browser = store
        .register_worker(owner, "phone", &browser_caps, [41; 32])
        .await
        .unwrap();
    let by = |worker, bytes: &[u8]| NewResult {
        worker,
        ..result(task, job.id, bytes)
    };
    let ids = store
        .record_results(&[by(browser, b"b"), by(native, b"n")])
        .await
        .unwrap();
    let state = &store.replica_states(&[task]).await.unwrap()[0];
    let runtimes: Vec<_> = state
        .results
        .iter()
        .map(|r| (r.worker, r.runtime))
        .collect();
    assert_eq!(
        runtimes,
        [
            (browser, idlegrid_domain::Runtime::Browser),
            (native, idlegrid_domain::Runtime::Native)
        ]
    );
    // The first `Valid` listed is the output, and its runtime is the accepted one.
    store
        .apply_verdicts(&[
            Verdict::Valid(ids[0].unwrap()),
            Verdict::Valid(ids[1].unwrap()),
        ])
        .await
        .unwrap();
    let state = &store.replica_states(&[task]).await.unwrap()[0];
    assert_eq!(state.state, TaskState::Done);
    let accepted = state.accepted.as_ref().unwrap();
    assert_eq!(accepted.runtime, idlegrid_domain::Runtime::Browser);
    assert_eq!(accepted.sha256, result(task, job.id, b"b").sha256);
}

async fn accounts_name_themselves_and_owners_see_their_devices(store: &dyn Store) {
    let tenant = store.ensure_tenant("acme").await.unwrap();
    let operator = store.ensure_operator("ops").await.unwrap();
    assert_eq!(store.ensure_operator("ops").await.unwrap(), operator);
    store
        .add_secret(Principal::Operator(operator), &secret([9; 32]))
        .await
        .unwrap();
    assert_eq!(
        principal_of(store, [9; 32]).await,
        Some(Principal::Operator(operator))
    );
    let owner = store.ensure_owner("alice").await.unwrap();
    let other = store.ensure_owner("bob").await.unwrap();
    for (principal, name) in [
        (Principal::Tenant(tenant), Some("acme")),
        (Principal::Owner(owner), Some("alice")),
        (Principal::Operator(operator), Some("ops")),
        (Principal::Operator(operator + 1), None),
        (Principal::Worker(WorkerId(1)), None),
    ] {
        assert_eq!(
            store.account_name(principal).await.unwrap().as_deref(),
            name,
            "{principal:?}"
        );
    }
    let caps = Capabilities {
        cores: 4,
        benchmark: 80.0,
        ..Default::default()
    };
    let laptop = store
        .register_worker(owner, "laptop", &caps, [1; 32])
        .await
        .unwrap();
    let phone = store
        .register_worker(owner, "phone", &Capabilities::default(), [2; 32])
        .await
        .unwrap();
    store
        .register_worker(other, "elsewhere", &Capabilities::default(), [3; 32])
        .await
        .unwrap();
    // Times never move back, whatever order batches arrive in.
    store
        .touch_workers(&[(laptop, 5_000), (phone, 7_000)])
        .await
        .unwrap();
    store.touch_workers(&[(laptop, 4_000)]).await.unwrap();
    store.touch_workers(&[]).await.unwrap();
    let devices = store.owner_devices(owner).await.unwrap();
    let seen: Vec<(&str, Option<i64>)> = devices
        .iter()
        .map(|d| (d.name.as_str(), d.last_seen_at))
        .collect();
    assert_eq!(seen, [("laptop", Some(5_000)), ("phone", Some(7_000))]);
    assert_eq!(devices[0].id, laptop);
    assert_eq!(devices[0].capabilities, caps);
    assert_eq!(devices[0].reputation, Default::default());
    assert!(devices[0].registered_at > 0);
    assert_eq!(store.owner_devices(other).await.unwrap().len(), 1);
    assert!(store.owner_devices(other + 1).await.unwrap().is_empty());
}

async fn a_jobs_tasks_come_in_index_pages(store: &dyn Store) {
    let (job, ids) = running_job(store, 5).await;
    let first = store.job_tasks(job.id, 0, 2).await.unwrap();
    let indexes: Vec<u64> = first.iter().map(|t| t.chunk.index).collect();
    assert_eq!(indexes, [0, 1]);
    assert_eq!(first[0].id, ids[0]);
    assert_eq!(first[1].chunk.meta, Some(json!({"frames": 48})));
    let rest: Vec<u64> = store
        .job_tasks(job.id, 2, 10)
        .await
        .unwrap()
        .iter()
        .map(|t| t.chunk.index)
        .collect();
    assert_eq!(rest, [2, 3, 4]);
    assert!(store.job_tasks(job.id, 5, 10).await.unwrap().is_empty());
    assert!(
        store
            .job_tasks(JobId(job.id.0 + 1), 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Batch methods report what one-at-a-time recording would have: a task charged twice in one
/// batch shows 1 then 2 failures.
async fn batches_count_as_if_recorded_one_at_a_time(store: &dyn Store) {
    let (job, tasks) = running_job(store, 2).await;
    let [w1, w2, w3] = workers(store, 3).await[..] else {
        unreachable!()
    };
    let fail = |task, worker, outcome| NewFailure {
        task,
        job: job.id,
        worker,
        outcome,
        reason: "x".into(),
    };
    let charged = store
        .record_failures(&[
            fail(tasks[0], w1, AttemptOutcome::ClientError),
            fail(tasks[1], w1, AttemptOutcome::Abandoned),
            fail(tasks[0], w2, AttemptOutcome::NoReply),
            fail(tasks[1], w2, AttemptOutcome::NoReply),
        ])
        .await
        .unwrap();
    let failures: Vec<u32> = charged.iter().map(|c| c.failures).collect();
    assert_eq!(failures, [1, 0, 2, 1]);
    assert_eq!(store.reputation(w2).await.unwrap().unwrap().timed_out, 2);
    // Two rejections of one task's results in one batch (an unreplicated task takes every
    // device's report that arrives in the same batch).
    let (job2, more) = {
        let tenant = store.ensure_tenant("acme").await.unwrap();
        let job = store.create_job(&new_job(tenant)).await.unwrap();
        for to in [JobState::Submitted, JobState::Partitioning] {
            store.transition_job(job.id, to, None).await.unwrap();
        }
        let more = store
            .insert_tasks(job.id, &[chunk(0), chunk(1)], 1)
            .await
            .unwrap();
        (job.id, more)
    };
    let by = |task, worker, bytes: &[u8]| NewResult {
        worker,
        ..result(task, job2, bytes)
    };
    let ids = store
        .record_results(&[
            by(more[0], w1, b"a"),
            by(more[0], w2, b"b"),
            by(more[1], w3, b"c"),
        ])
        .await
        .unwrap();
    let ids: Vec<ResultId> = ids.into_iter().map(Option::unwrap).collect();
    let applied = store
        .apply_verdicts(&[
            Verdict::Invalid(ids[1], "first".into()),
            Verdict::Invalid(ids[2], "other".into()),
            Verdict::Invalid(ids[0], "second".into()),
            Verdict::Invalid(ids[1], "again".into()),
        ])
        .await
        .unwrap();
    let charged: Vec<(TaskId, WorkerId, u32, bool)> = applied
        .charged
        .iter()
        .map(|c| (c.task, c.worker, c.failures, c.still_pending))
        .collect();
    assert_eq!(
        charged,
        [
            (more[0], w2, 1, true),
            (more[1], w3, 1, true),
            (more[0], w1, 2, true)
        ]
    );
    assert_eq!(store.attempts(more[0]).await.unwrap()[0].reason, "second");
    let job2 = store.job(job2).await.unwrap().unwrap();
    assert_eq!((job2.failed_attempts, job2.results_rejected), (3, 3));
    assert_eq!(job2.results_received, 3);
}

/// Who may take a task's next copy depends on who sent its results: on the open grid no device
/// of their owners, in a private fleet no device that sent one. A rejected result is disputed
/// (its device not blamed) until an independent result is accepted: then it is invalid, or
/// void if it had the accepted bytes. A suspect result waits like a passed one.
async fn copies_go_to_independent_parties_and_disputes_settle_when_an_output_is_accepted(
    store: &dyn Store,
) {
    let (job, _) = running_job(store, 0).await;
    let alice = store.ensure_owner("alice").await.unwrap();
    let bob = store.ensure_owner("bob").await.unwrap();
    let register = |owner, name: &'static str, token: u8| async move {
        store
            .register_worker(owner, name, &Capabilities::default(), [token; 32])
            .await
            .unwrap()
    };
    let (a1, a2, b1) = (
        register(alice, "a1", 61).await,
        register(alice, "a2", 62).await,
        register(bob, "b1", 63).await,
    );
    let tasks = store
        .insert_tasks(job.id, &[chunk(0), chunk(1), chunk(2)], 1)
        .await
        .unwrap();
    let by = |task, worker, bytes: &[u8]| NewResult {
        worker,
        ..result(task, job.id, bytes)
    };
    // Task 0: a1's result is rejected: disputed, the retry kept from all of alice's devices.
    let bad = store
        .record_results(&[by(tasks[0], a1, b"bad")])
        .await
        .unwrap()[0]
        .unwrap();
    let applied = store
        .apply_verdicts(&[Verdict::Disputed(bad, "no picture".into())])
        .await
        .unwrap();
    let charged = &applied.charged[0];
    assert!(charged.still_pending);
    assert_eq!((charged.task, charged.failures), (tasks[0], 1));
    let mut kept = charged.independent_of.clone();
    kept.sort();
    assert_eq!(kept, [a1, a2], "both of alice's devices, not bob's");
    let state = &store.replica_states(&[tasks[0]]).await.unwrap()[0];
    assert_eq!(state.state, TaskState::Pending);
    assert_eq!(
        state.results[0].stage,
        crate::records::ReplicaStage::Disputed
    );
    assert_eq!(state.results[0].owner, alice);
    assert_eq!(state.results[0].reason.as_deref(), Some("no picture"));
    let before = store.reputation(a1).await.unwrap().unwrap();
    assert_eq!((before.invalid, before.streak), (0, 0));
    // Bob's result is accepted: a1's is now invalid and blamed.
    let good = store
        .record_results(&[by(tasks[0], b1, b"good")])
        .await
        .unwrap()[0]
        .unwrap();
    let applied = store.apply_verdicts(&[Verdict::Valid(good)]).await.unwrap();
    assert_eq!(applied.charged.len(), 1);
    assert_eq!(
        (applied.charged[0].worker, applied.charged[0].still_pending),
        (a1, false)
    );
    assert_eq!(store.reputation(a1).await.unwrap().unwrap().invalid, 1);
    assert_eq!(store.reputation(b1).await.unwrap().unwrap().streak, 1);
    // Task 1: a disputed result whose bytes turn out to be the accepted ones is void.
    let first = store
        .record_results(&[by(tasks[1], a2, b"same")])
        .await
        .unwrap()[0]
        .unwrap();
    store
        .apply_verdicts(&[Verdict::Disputed(first, "borderline".into())])
        .await
        .unwrap();
    let again = store
        .record_results(&[by(tasks[1], b1, b"same")])
        .await
        .unwrap()[0]
        .unwrap();
    let applied = store
        .apply_verdicts(&[Verdict::Valid(again)])
        .await
        .unwrap();
    assert!(applied.charged.is_empty(), "{:?}", applied.charged);
    assert_eq!(store.reputation(a2).await.unwrap().unwrap().invalid, 0);
    // Task 2: a suspect result waits, and a void one is neither paid nor blamed.
    let suspect = store
        .record_results(&[by(tasks[2], b1, b"blurred")])
        .await
        .unwrap()[0]
        .unwrap();
    store
        .apply_verdicts(&[
            Verdict::Suspect(suspect, "little detail".into()),
            Verdict::MoreReplicas(tasks[2], 1),
        ])
        .await
        .unwrap();
    let state = &store.replica_states(&[tasks[2]]).await.unwrap()[0];
    assert!(state.results[0].suspect);
    assert_eq!(state.results[0].stage, crate::records::ReplicaStage::Passed);
    store
        .apply_verdicts(&[Verdict::Void(suspect, "job at fault".into())])
        .await
        .unwrap();
    assert!(
        store.replica_states(&[tasks[2]]).await.unwrap()[0]
            .results
            .is_empty()
    );
    let bob_record = store.reputation(b1).await.unwrap().unwrap();
    assert_eq!((bob_record.invalid, bob_record.streak), (0, 2));
    // A private fleet's copies are kept only from the device itself.
    let tenant = store.ensure_tenant("acme").await.unwrap();
    let own = store
        .create_job(&NewJob {
            placement: idlegrid_domain::Placement::Own,
            ..new_job(tenant)
        })
        .await
        .unwrap();
    for to in [JobState::Submitted, JobState::Partitioning] {
        store.transition_job(own.id, to, None).await.unwrap();
    }
    let task = store.insert_tasks(own.id, &[chunk(0)], 1).await.unwrap()[0];
    let id = store
        .record_results(&[NewResult {
            worker: a1,
            ..result(task, own.id, b"x")
        }])
        .await
        .unwrap()[0]
        .unwrap();
    let applied = store
        .apply_verdicts(&[Verdict::Disputed(id, "no".into())])
        .await
        .unwrap();
    assert_eq!(applied.charged[0].independent_of, [a1]);
    // Owners belong to customers' accounts.
    let owners = store.owner_counts(tenant).await.unwrap();
    assert_eq!(owners.0, 0);
    store.set_owner_tenant(alice, Some(tenant)).await.unwrap();
    assert_eq!(store.owner_counts(tenant).await.unwrap(), (1, owners.1 - 1));
    let record = store.worker(a2).await.unwrap().unwrap();
    assert_eq!((record.owner, record.owner_tenant), (alice, Some(tenant)));
}

/// Acceptances first, then rejections, replicas and failed tasks in the order given.
async fn verdicts_apply_in_the_order_given(store: &dyn Store) {
    let (job, _) = running_job(store, 0).await;
    let [w1, w2, w3] = independent_workers(store, 3).await[..] else {
        unreachable!()
    };
    let tasks = store
        .insert_tasks(job.id, &[chunk(0), chunk(1), chunk(2)], 2)
        .await
        .unwrap();
    let by = |task, worker, bytes: &[u8]| NewResult {
        worker,
        ..result(task, job.id, bytes)
    };
    let ids: Vec<ResultId> = store
        .record_results(&[
            by(tasks[0], w1, b"a"),
            by(tasks[0], w2, b"b"),
            by(tasks[1], w1, b"a"),
            by(tasks[1], w2, b"b"),
            by(tasks[2], w3, b"c"),
            by(tasks[2], w2, b"c"),
        ])
        .await
        .unwrap()
        .into_iter()
        .map(Option::unwrap)
        .collect();
    // Task 0 fails before its result is rejected: nothing waits for work. Task 1's result is
    // rejected before more replicas are asked for: its device is not kept from it. Task 2 is
    // accepted; w2 had a valid result but also a rejection, so its run ends.
    let applied = store
        .apply_verdicts(&[
            Verdict::FailTask(tasks[0], "no quorum".into()),
            Verdict::Invalid(ids[0], "differs".into()),
            Verdict::Invalid(ids[3], "differs".into()),
            Verdict::MoreReplicas(tasks[1], 2),
            Verdict::Valid(ids[4]),
            Verdict::Valid(ids[5]),
            Verdict::Passed(ids[2]),
        ])
        .await
        .unwrap();
    assert_eq!(applied.failed, [(job.id, tasks[0], "no quorum".into())]);
    let charged: Vec<(TaskId, u32, bool)> = applied
        .charged
        .iter()
        .map(|c| (c.task, c.failures, c.still_pending))
        .collect();
    assert_eq!(charged, [(tasks[0], 1, false), (tasks[1], 1, true)]);
    assert_eq!(applied.replicate.len(), 1);
    assert_eq!(
        (applied.replicate[0].task, applied.replicate[0].copies),
        (tasks[1], 2)
    );
    assert_eq!(applied.replicate[0].exclude, [w1]);
    let records = store.tasks(&tasks).await.unwrap();
    let states: Vec<TaskState> = records.iter().map(|t| t.state).collect();
    assert_eq!(
        states,
        [TaskState::Failed, TaskState::Pending, TaskState::Done]
    );
    // Valid verdicts for one task: the first listed is its output, the other agrees.
    let outputs = store.accepted_outputs(job.id, 0, 10).await.unwrap();
    assert_eq!(outputs, [(2, OutputRef::Inline(b"c".to_vec()))]);
    let streaks: Vec<u64> = join_all([w1, w2, w3].map(|w| store.reputation(w)))
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap().streak)
        .collect();
    assert_eq!(streaks, [0, 0, 1]);
    let w2_record = store.reputation(w2).await.unwrap().unwrap();
    assert_eq!((w2_record.valid, w2_record.invalid), (1, 1));
    let job = store.job(job.id).await.unwrap().unwrap();
    assert_eq!((job.chunks_done, job.chunks_failed), (1, 1));
    assert_eq!(
        store.replica_states(&[tasks[1]]).await.unwrap()[0].wanted,
        4
    );
}

async fn devices_are_quarantined_once(store: &dyn Store) {
    let (job, tasks) = running_job(store, 3).await;
    let [w1, w2] = workers(store, 2).await[..] else {
        unreachable!()
    };
    let by = |task, worker, bytes: &[u8]| NewResult {
        worker,
        ..result(task, job.id, bytes)
    };
    let ids: Vec<ResultId> = store
        .record_results(&[
            by(tasks[0], w1, b"a"),
            by(tasks[1], w1, b"b"),
            by(tasks[2], w2, b"c"),
        ])
        .await
        .unwrap()
        .into_iter()
        .map(Option::unwrap)
        .collect();
    store
        .apply_verdicts(&[
            Verdict::Invalid(ids[0], "bad".into()),
            Verdict::Invalid(ids[1], "bad".into()),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.quarantine_untrusted(&[w2, w1], 2).await.unwrap(),
        [w1]
    );
    assert!(
        store
            .quarantine_untrusted(&[w1, w2], 2)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.quarantined_workers().await.unwrap(), [w1]);
    assert!(
        store
            .reputation(w1)
            .await
            .unwrap()
            .unwrap()
            .quarantined_at_ms
            .is_some()
    );
    assert_eq!(store.pending_results_of(w2).await.unwrap(), [ids[2]]);
}

/// Two coordinators moving one job at once: exactly one wins each race.
async fn racing_transitions_have_one_winner(a: &dyn Store, b: &dyn Store) {
    let tenant = a.ensure_tenant("acme").await.unwrap();
    let mut jobs = Vec::new();
    for _ in 0..20 {
        let job = a.create_job(&new_job(tenant)).await.unwrap();
        for to in [
            JobState::Submitted,
            JobState::Partitioning,
            JobState::Running,
            JobState::Assembling,
        ] {
            a.transition_job(job.id, to, None).await.unwrap().unwrap();
        }
        jobs.push(job.id);
    }
    let output = StoredBlob {
        key: "out".into(),
        size: 1,
        sha256: "ab".into(),
    };
    let races = jobs.iter().map(|&job| {
        let output = output.clone();
        async move {
            let (failed, cancelled, completed) = tokio::join!(
                a.transition_job(job, JobState::Failed, Some("expired")),
                b.transition_job(job, JobState::Cancelled, None),
                b.complete_job(job, &output),
            );
            let winners = [
                failed.unwrap().is_some(),
                cancelled.unwrap().is_some(),
                completed.unwrap(),
            ];
            assert_eq!(winners.iter().filter(|w| **w).count(), 1, "{winners:?}");
            let record = a.job(job).await.unwrap().unwrap();
            let expected = match winners {
                [true, _, _] => JobState::Failed,
                [_, true, _] => JobState::Cancelled,
                _ => JobState::Completed,
            };
            assert_eq!(record.state, expected);
            assert_eq!(record.error.is_some(), expected == JobState::Failed);
        }
    });
    join_all(races).await;
}

/// Reports for one replicated task arriving at two coordinators at once: one live result per
/// device, as many as the task was sent out for, and the task validating once it has them.
async fn racing_reports_give_one_result_per_device_and_replica(a: &dyn Store, b: &dyn Store) {
    let (job, _) = running_job(a, 0).await;
    let ws = workers(a, 3).await;
    let chunks: Vec<NewTask> = (0..20).map(chunk).collect();
    let tasks = a.insert_tasks(job.id, &chunks, 2).await.unwrap();
    let by = |task, worker| NewResult {
        worker,
        ..result(task, job.id, b"same")
    };
    let ws = &ws;
    let reports = tasks.iter().map(|&task| async move {
        // Three devices for two replicas, and the first device twice, over both stores.
        let batches = [0, 0, 1, 2].map(|w| [by(task, ws[w])]);
        let ids = tokio::join!(
            a.record_results(&batches[0]),
            b.record_results(&batches[1]),
            b.record_results(&batches[2]),
            a.record_results(&batches[3]),
        );
        let ids = [ids.0, ids.1, ids.2, ids.3].map(|r| r.unwrap()[0]);
        assert!(ids[..2].iter().flatten().count() <= 1, "one per device");
        assert_eq!(ids.iter().flatten().count(), 2, "two replicas: {ids:?}");
        let state = &a.replica_states(&[task]).await.unwrap()[0];
        assert_eq!(state.state, TaskState::Validating);
        assert_eq!(state.results.len(), 2);
    });
    join_all(reports).await;
    let job = a.job(job.id).await.unwrap().unwrap();
    assert_eq!(job.results_received, 40);
}

/// The quorum rule used by the racing test: two disagreeing results ask for one more replica;
/// agreeing ones are accepted.
fn disagree_then_more(state: &ReplicaState) -> Vec<Verdict> {
    if state.state != TaskState::Validating || state.results.len() < state.wanted as usize {
        return Vec::new();
    }
    let first = &state.results[0].sha256;
    if state.results.iter().all(|r| &r.sha256 == first) {
        return state.results.iter().map(|r| Verdict::Valid(r.id)).collect();
    }
    state
        .results
        .iter()
        .map(|r| Verdict::Passed(r.id))
        .chain([Verdict::MoreReplicas(state.task, 1)])
        .collect()
}

/// Two coordinators deciding the same tasks at once: each task is decided once, on the state
/// the other left, so no replica is asked for twice and no acceptance counted twice.
async fn racing_quorum_decisions_decide_a_task_once(a: &dyn Store, b: &dyn Store) {
    let (job, _) = running_job(a, 0).await;
    let [w1, w2] = workers(a, 2).await[..] else {
        unreachable!()
    };
    let chunks: Vec<NewTask> = (0..20).map(chunk).collect();
    let tasks = a.insert_tasks(job.id, &chunks, 2).await.unwrap();
    a.finish_partition(job.id, 20).await.unwrap();
    let mut reports = Vec::new();
    for (i, &task) in tasks.iter().enumerate() {
        // Even tasks agree, odd ones disagree.
        let second: &[u8] = if i % 2 == 0 { b"same" } else { b"other" };
        reports.push(NewResult {
            worker: w1,
            ..result(task, job.id, b"same")
        });
        reports.push(NewResult {
            worker: w2,
            ..result(task, job.id, second)
        });
    }
    a.record_results(&reports).await.unwrap();
    let decide: &Decide = &disagree_then_more;
    let mut reversed = tasks.clone();
    reversed.reverse();
    let settles = tasks.iter().map(|&task| async move {
        let one = [task];
        let (x, y) = tokio::join!(
            a.settle_replicas(&one, decide),
            b.settle_replicas(&one, decide)
        );
        x.unwrap().replicate.len() + y.unwrap().replicate.len()
    });
    // Batches over every task, in both orders, race the per-task ones.
    let (per_task, all_a, all_b) = tokio::join!(
        join_all(settles),
        a.settle_replicas(&tasks, decide),
        b.settle_replicas(&reversed, decide),
    );
    let replicas_asked = per_task.iter().sum::<usize>()
        + all_a.unwrap().replicate.len()
        + all_b.unwrap().replicate.len();
    assert_eq!(replicas_asked, 10, "once per disagreeing task");
    let states = a.replica_states(&tasks).await.unwrap();
    for (i, state) in states.iter().enumerate() {
        if i % 2 == 0 {
            assert_eq!((state.state, state.wanted), (TaskState::Done, 2));
        } else {
            assert_eq!((state.state, state.wanted), (TaskState::Pending, 3));
        }
    }
    let job = a.job(job.id).await.unwrap().unwrap();
    assert_eq!(job.chunks_done, 10);
    // Each device's run grows once per accepted result, however many deciders raced.
    assert_eq!(a.reputation(w1).await.unwrap().unwrap().streak, 10);
}

/// Batches touching the same tasks, jobs and devices in opposite orders, from two
/// coordinators at once, all complete (rows are locked in one order, so none wait for each
/// other in a cycle).
async fn racing_batches_in_opposite_orders_do_not_deadlock(a: &dyn Store, b: &dyn Store) {
    let (job1, tasks1) = running_job(a, 30).await;
    let (job2, tasks2) = running_job(a, 30).await;
    let ws = workers(a, 2).await;
    let mut forward = Vec::new();
    for i in 0..30 {
        forward.push(NewResult {
            worker: ws[i % 2],
            ..result(tasks1[i], job1.id, b"a")
        });
        forward.push(NewResult {
            worker: ws[(i + 1) % 2],
            ..result(tasks2[i], job2.id, b"b")
        });
    }
    let backward: Vec<NewResult> = forward
        .iter()
        .rev()
        .map(|r| NewResult {
            worker: WorkerId(r.worker.0 + 100),
            ..r.clone()
        })
        .collect();
    for round in 0..3 {
        let (x, y) = tokio::join!(a.record_results(&forward), b.record_results(&backward));
        let recorded = x.unwrap().into_iter().chain(y.unwrap()).flatten().count();
        // The batch that gets a task first records its report; the other finds it validating.
        assert_eq!(recorded, if round == 0 { 60 } else { 0 });
    }
    let pending: Vec<ResultId> = a
        .unvalidated_results()
        .await
        .unwrap()
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    // Opposite orders again, mixing acceptances and rejections over both jobs and devices.
    let verdicts = |ids: &[ResultId]| -> Vec<Verdict> {
        ids.iter()
            .map(|&id| {
                if id.0 % 3 == 0 {
                    Verdict::Invalid(id, "bad".into())
                } else {
                    Verdict::Valid(id)
                }
            })
            .collect()
    };
    let mut reversed = pending.clone();
    reversed.reverse();
    let (half_a, half_b) = pending.split_at(pending.len() / 2);
    let batches = [
        verdicts(&pending),
        verdicts(&reversed),
        verdicts(half_b),
        verdicts(half_a),
    ];
    let (x, y, z, w) = tokio::join!(
        a.apply_verdicts(&batches[0]),
        b.apply_verdicts(&batches[1]),
        a.apply_verdicts(&batches[2]),
        b.apply_verdicts(&batches[3]),
    );
    for applied in [x, y, z, w] {
        applied.unwrap();
    }
    assert!(a.unvalidated_results().await.unwrap().is_empty());
    for job in [job1.id, job2.id] {
        let record = a.job(job).await.unwrap().unwrap();
        let tasks = a
            .tasks(if job == job1.id { &tasks1 } else { &tasks2 })
            .await
            .unwrap();
        let done = tasks.iter().filter(|t| t.state == TaskState::Done).count();
        assert_eq!(record.chunks_done, done as u64);
        let failures: u32 = tasks.iter().map(|t| t.failures).sum();
        assert_eq!(record.failed_attempts, u64::from(failures));
    }
}

/// Two partitioners of one job (a restarted one and the old one, say) inserting overlapping
/// chunks at once, in opposite orders: each chunk exists once and is counted once.
async fn racing_partitioners_create_each_chunk_once(a: &dyn Store, b: &dyn Store) {
    let (job, _) = running_job(a, 0).await;
    let forward: Vec<NewTask> = (0..200).map(chunk).collect();
    let backward: Vec<NewTask> = (100..300).rev().map(chunk).collect();
    let (x, y) = tokio::join!(
        a.insert_tasks(job.id, &forward, 1),
        b.insert_tasks(job.id, &backward, 1),
    );
    let mut ids: Vec<TaskId> = x.unwrap().into_iter().chain(y.unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 300);
    assert_eq!(
        a.pending_tasks(job.id).await.unwrap(),
        ids_by_index(a, &ids).await
    );
    let job = a.job(job.id).await.unwrap().unwrap();
    assert_eq!(job.chunks_created, 300);
}

async fn ids_by_index(store: &dyn Store, ids: &[TaskId]) -> Vec<TaskId> {
    let mut tasks = store.tasks(ids).await.unwrap();
    tasks.sort_by_key(|t| t.chunk.index);
    tasks.into_iter().map(|t| t.id).collect()
}

/// A job with a webhook, created.
async fn hooked_job(store: &dyn Store) -> JobRecord {
    let tenant = store.ensure_tenant("acme").await.unwrap();
    let spec = NewJob {
        webhook: Some(json!({"url": "https://example.com/hook", "secret": "sealed"})),
        ..new_job(tenant)
    };
    store.create_job(&spec).await.unwrap()
}

/// An attempt made at `at_ms`.
fn attempt(attempt: u32, at_ms: i64, status: Option<u16>) -> WebhookAttempt {
    WebhookAttempt {
        attempt,
        at_ms,
        status,
        error: status.is_none().then(|| "connection refused".into()),
        duration_ms: 3,
    }
}

async fn webhook_events_record_every_state_change_and_go_out_in_order(store: &dyn Store) {
    let job = hooked_job(store).await;
    assert_eq!(
        job.spec.webhook,
        Some(json!({"url": "https://example.com/hook", "secret": "sealed"}))
    );
    let (plain, _) = running_job(store, 0).await;
    // Every store method that changes a state leaves an event, with no code of its own.
    let input = StoredBlob {
        key: "in".into(),
        size: 1,
        sha256: "cd".into(),
    };
    assert!(store.set_job_input(job.id, &input).await.unwrap());
    for to in [JobState::Submitted, JobState::Partitioning] {
        store
            .transition_job(job.id, to, None)
            .await
            .unwrap()
            .unwrap();
    }
    // Refused transitions change nothing, so they leave no event.
    assert!(
        store
            .transition_job(job.id, JobState::Submitted, None)
            .await
            .unwrap()
            .is_none()
    );
    let tasks = store.insert_tasks(job.id, &[chunk(0)], 1).await.unwrap();
    assert_eq!(
        store.finish_partition(job.id, 1).await.unwrap(),
        Some(JobState::Running)
    );
    let ids = store
        .record_results(&[result(tasks[0], job.id, b"a")])
        .await
        .unwrap();
    let applied = store
        .apply_verdicts(&[Verdict::Valid(ids[0].unwrap())])
        .await
        .unwrap();
    assert_eq!(applied.ready_to_assemble, [job.id]);
    assert!(store.complete_job(job.id, &input).await.unwrap());
    let history = store.webhook_events(job.id).await.unwrap();
    let states: Vec<JobState> = history.iter().map(|h| h.event.state).collect();
    assert_eq!(
        states,
        [
            JobState::Created,
            JobState::Submitted,
            JobState::Partitioning,
            JobState::Running,
            JobState::Assembling,
            JobState::Completed,
        ]
    );
    assert!(
        history
            .windows(2)
            .all(|w| w[0].event.id < w[1].event.id && w[0].event.at_ms <= w[1].event.at_ms)
    );
    assert!(
        history
            .iter()
            .all(|h| h.attempts.is_empty() && h.event.next_attempt_at_ms == Some(h.event.at_ms))
    );
    // A job without a webhook has nothing to deliver.
    assert!(store.webhook_events(plain.id).await.unwrap().is_empty());

    // Only the job's oldest event is due; a claimed event is not claimed again.
    let now = crate::now_ms() + 60_000;
    let due = store.claim_webhook_events(now, 1_000, 10).await.unwrap();
    assert_eq!(due.len(), 1, "{due:?}");
    let created = &due[0].event;
    assert_eq!(
        (created.job, created.state, created.attempts),
        (job.id, JobState::Created, 0)
    );
    assert_eq!(due[0].webhook, job.spec.webhook.clone().unwrap());
    assert!(
        store
            .claim_webhook_events(now, 1_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // A failed attempt puts it off until its retry; recording it twice records it once.
    let failed = attempt(1, now, Some(500));
    assert!(
        store
            .record_webhook_attempt(created.id, &failed, WebhookNext::RetryAt(now + 100))
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_webhook_attempt(created.id, &failed, WebhookNext::RetryAt(now + 100))
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_webhook_events(now + 99, 1_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let again = store
        .claim_webhook_events(now + 100, 1_000, 10)
        .await
        .unwrap();
    assert_eq!(
        (again[0].event.id, again[0].event.attempts),
        (created.id, 1)
    );
    // A claim that ran out (its coordinator died) is taken over.
    let taken_over = store
        .claim_webhook_events(now + 1_100, 1_000, 10)
        .await
        .unwrap();
    assert_eq!(taken_over[0].event.id, created.id);
    assert!(
        store
            .record_webhook_attempt(
                created.id,
                &attempt(2, now + 1_100, Some(204)),
                WebhookNext::Delivered
            )
            .await
            .unwrap()
    );
    // Delivered, the next event goes; given up, so does the one after it.
    let submitted = store
        .claim_webhook_events(now + 1_200, 1_000, 10)
        .await
        .unwrap();
    assert_eq!(submitted[0].event.state, JobState::Submitted);
    assert!(
        store
            .record_webhook_attempt(
                submitted[0].event.id,
                &attempt(1, now + 1_200, None),
                WebhookNext::GiveUp
            )
            .await
            .unwrap()
    );
    let partitioning = store
        .claim_webhook_events(now + 1_300, 1_000, 10)
        .await
        .unwrap();
    assert_eq!(partitioning[0].event.state, JobState::Partitioning);
    // A delivered event takes no more attempts.
    assert!(
        !store
            .record_webhook_attempt(
                created.id,
                &attempt(3, now, Some(200)),
                WebhookNext::Delivered
            )
            .await
            .unwrap()
    );

    let history = store.webhook_events(job.id).await.unwrap();
    let first = &history[0];
    assert_eq!(first.event.delivered_at_ms, Some(now + 1_103));
    assert_eq!(
        (
            first.event.attempts,
            first.event.next_attempt_at_ms,
            first.event.gave_up
        ),
        (2, None, false)
    );
    assert_eq!(first.attempts, [failed, attempt(2, now + 1_100, Some(204))]);
    let second = &history[1];
    assert!(second.event.gave_up && second.event.delivered_at_ms.is_none());
    assert_eq!(
        second.attempts[0].error.as_deref(),
        Some("connection refused")
    );
}

/// Two coordinators claiming at once: every due event is claimed by exactly one of them.
async fn racing_webhook_claims_take_each_event_once(a: &dyn Store, b: &dyn Store) {
    let mut jobs = Vec::new();
    for _ in 0..20 {
        jobs.push(hooked_job(a).await.id);
    }
    let now = crate::now_ms() + 60_000;
    let (x, y) = tokio::join!(
        a.claim_webhook_events(now, 30_000, 15),
        b.claim_webhook_events(now, 30_000, 15),
    );
    let mut claimed: Vec<JobId> = x
        .unwrap()
        .into_iter()
        .chain(y.unwrap())
        .map(|d| d.event.job)
        .collect();
    claimed.sort();
    let before = claimed.len();
    claimed.dedup();
    assert_eq!(claimed.len(), before, "an event was claimed twice");
    let rest = a.claim_webhook_events(now, 30_000, 100).await.unwrap();
    claimed.extend(rest.into_iter().map(|d| d.event.job));
    claimed.sort();
    assert_eq!(claimed, jobs);
}

async fn validated_results_are_paid_once_and_the_books_balance(store: &dyn Store) {
    let (job, tasks) = running_job(store, 3).await;
    let customer = Account::Customer(job.spec.tenant);
    // Three chunks of one reference core-hour each: 0.06 credits (and 3 µ¢ of rounding).
    let q = quote(Tier::Standard, 3 * 3_600_000, 3, 1);
    assert_eq!(q.price, Credits(60_003));
    assert_eq!(
        store.hold_quote(job.id, &q, 3_600_000).await.unwrap(),
        Hold::Short {
            available: Credits(0)
        }
    );
    assert!(
        store
            .transfer(
                "opening:1",
                Account::PlatformGrants,
                customer,
                Credits(100_000)
            )
            .await
            .unwrap()
    );
    // A repeated posting changes nothing.
    assert!(
        !store
            .transfer(
                "opening:1",
                Account::PlatformGrants,
                customer,
                Credits(100_000)
            )
            .await
            .unwrap()
    );
    assert_eq!(
        store.hold_quote(job.id, &q, 3_600_000).await.unwrap(),
        Hold::Held
    );
    assert_eq!(
        store.hold_quote(job.id, &q, 3_600_000).await.unwrap(),
        Hold::AlreadyHeld
    );
    assert_eq!(
        store
            .balances(&[customer, Account::Job(job.id)])
            .await
            .unwrap(),
        vec![Credits(39_997), Credits(60_003)]
    );
    let held = store.job(job.id).await.unwrap().unwrap();
    assert_eq!(held.billing.unwrap().quote, q);
    assert_eq!(held.billing.unwrap().largest_chunk_ms, 3_600_000);

    let devices = workers(store, 2).await;
    let owner = store.ensure_owner("o").await.unwrap();
    let mut sent = Vec::new();
    for (i, task) in tasks.iter().enumerate() {
        let mut r = result(*task, job.id, format!("out{i}").as_bytes());
        r.worker = devices[i % 2];
        sent.push(r);
    }
    let ids: Vec<ResultId> = store
        .record_results(&sent)
        .await
        .unwrap()
        .into_iter()
        .map(Option::unwrap)
        .collect();
    // Two results valid, one rejected: only the valid ones are paid.
    store
        .apply_verdicts(&[
            Verdict::Valid(ids[0]),
            Verdict::Valid(ids[1]),
            Verdict::Invalid(ids[2], "wrong".into()),
        ])
        .await
        .unwrap();
    // Judging a result again pays nothing more.
    store
        .apply_verdicts(&[Verdict::Valid(ids[0])])
        .await
        .unwrap();
    let job_now = store.job(job.id).await.unwrap().unwrap();
    assert_eq!(job_now.charged, Credits(40_000));
    // Accepted alone on the open grid: the owner's earnings are held, not yet theirs.
    assert_eq!(
        store
            .balances(&[
                Account::Held(owner),
                Account::Owner(owner),
                Account::PlatformFee,
                Account::Job(job.id)
            ])
            .await
            .unwrap(),
        vec![
            Credits(28_000),
            Credits(0),
            Credits(12_000),
            Credits(20_003)
        ]
    );
    assert_eq!(
        store.earned_by_workers(&devices).await.unwrap(),
        vec![Credits(14_000), Credits(14_000)]
    );
    assert_eq!(
        store.held_by_workers(&devices).await.unwrap(),
        vec![Credits(14_000), Credits(14_000)]
    );
    let entries = store
        .account_entries(Account::Held(owner), 10)
        .await
        .unwrap();
    // One transaction per job and device of a verdict batch.
    assert_eq!(entries.len(), 2);
    assert!(
        entries.iter().all(|e| e.txn.starts_with("pay:")),
        "{entries:?}"
    );
    // Held long enough, they mature: once, whoever matures them again.
    assert_eq!(store.mature_held(0).await.unwrap(), Credits(0));
    let later = crate::now_ms() + 1;
    assert_eq!(store.mature_held(later).await.unwrap(), Credits(28_000));
    assert_eq!(store.mature_held(later).await.unwrap(), Credits(0));
    assert_eq!(
        store
            .balances(&[Account::Held(owner), Account::Owner(owner)])
            .await
            .unwrap(),
        vec![Credits(0), Credits(28_000)]
    );
    assert_eq!(
        store.earned_by_workers(&devices).await.unwrap(),
        vec![Credits(14_000), Credits(14_000)]
    );
    assert_eq!(
        store.held_by_workers(&devices).await.unwrap(),
        vec![Credits(0), Credits(0)]
    );
    // The job ends: what its hold has left goes back to the customer.
    assert!(
        store
            .transition_job(job.id, JobState::Cancelled, None)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store
            .balances(&[customer, Account::Job(job.id)])
            .await
            .unwrap(),
        vec![Credits(60_000), Credits(0)]
    );
    let audit = store.audit_ledger().await.unwrap();
    assert_eq!(audit.total, Credits(0));
    assert_eq!((audit.unbalanced, audit.over_quote), (0, 0));
    assert!(audit.entries >= 10);
}

/// An owner caught forging: its unverified outputs in running jobs are revoked (their pay
/// given back, their chunks waiting again), what it still holds is forfeited, and its devices
/// lose their trust; a result another owner confirmed is kept and stays paid.
async fn an_owner_caught_forging_loses_what_was_not_verified(store: &dyn Store) {
    let (job, tasks) = running_job(store, 3).await;
    let customer = Account::Customer(job.spec.tenant);
    store
        .transfer(
            "opening:2",
            Account::PlatformGrants,
            customer,
            Credits(100_000),
        )
        .await
        .unwrap();
    let q = quote(Tier::Standard, 3 * 3_600_000, 3, 1);
    assert_eq!(
        store.hold_quote(job.id, &q, 3_600_000).await.unwrap(),
        Hold::Held
    );
    let [cheat, honest] = independent_workers(store, 2).await[..] else {
        unreachable!()
    };
    // The cheater has a second device.
    let cheater = store.worker(cheat).await.unwrap().unwrap().owner;
    let twin = store
        .register_worker(cheater, "twin", &Capabilities::default(), [77; 32])
        .await
        .unwrap();
    let by = |task, worker, bytes: &[u8]| NewResult {
        worker,
        ..result(task, job.id, bytes)
    };
    // Task 0: the cheater's output alone. Task 1: the twin's output, alone. Task 2: the
    // cheater's output, confirmed by an honest owner (replicated).
    let ids: Vec<ResultId> = store
        .record_results(&[
            by(tasks[0], cheat, b"a"),
            by(tasks[1], twin, b"b"),
            by(tasks[2], cheat, b"c"),
        ])
        .await
        .unwrap()
        .into_iter()
        .map(Option::unwrap)
        .collect();
    store
        .apply_verdicts(&[
            Verdict::Valid(ids[0]),
            Verdict::Valid(ids[1]),
            Verdict::Passed(ids[2]),
            Verdict::MoreReplicas(tasks[2], 1),
        ])
        .await
        .unwrap();
    let confirm = store
        .record_results(&[by(tasks[2], honest, b"c")])
        .await
        .unwrap()[0]
        .unwrap();
    store
        .apply_verdicts(&[Verdict::Valid(ids[2]), Verdict::Valid(confirm)])
        .await
        .unwrap();
    let balances = |accounts: Vec<Account>| async move { store.balances(&accounts).await.unwrap() };
    // Tasks 0 and 1 earned 14,000 each, held; task 2's 14,000 were paid: it was verified.
    let before = balances(vec![Account::Held(cheater), Account::Owner(cheater)]).await;
    assert_eq!(before, vec![Credits(28_000), Credits(14_000)]);
    assert_eq!(store.job(job.id).await.unwrap().unwrap().chunks_done, 3);

    let distrusted = store.distrust_owner(cheater).await.unwrap();
    let mut reopened: Vec<TaskId> = distrusted.reopened.iter().map(|r| r.task).collect();
    reopened.sort();
    assert_eq!(reopened, [tasks[0], tasks[1]]);
    let mut kept_from = distrusted.reopened[0].exclude.clone();
    kept_from.sort();
    assert_eq!(kept_from, [cheat, twin], "every device of the owner");
    // Their pay went back to the job; nothing was left held to forfeit.
    assert_eq!(distrusted.forfeited, Credits(0));
    assert_eq!(
        balances(vec![Account::Held(cheater), Account::Owner(cheater)]).await,
        vec![Credits(0), Credits(14_000)]
    );
    let now = store.job(job.id).await.unwrap().unwrap();
    assert_eq!((now.chunks_done, now.charged), (1, Credits(20_003)));
    let states: Vec<TaskState> = store
        .tasks(&tasks)
        .await
        .unwrap()
        .iter()
        .map(|t| t.state)
        .collect();
    assert_eq!(
        states,
        [TaskState::Pending, TaskState::Pending, TaskState::Done]
    );
    assert_eq!(store.reputation(twin).await.unwrap().unwrap().streak, 0);
    // Held earnings of a finished job are forfeited instead.
    store
        .transition_job(job.id, JobState::Cancelled, None)
        .await
        .unwrap();
    let (job2, tasks2) = running_job(store, 1).await;
    store.hold_quote(job2.id, &q, 3_600_000).await.unwrap();
    let id = store
        .record_results(&[NewResult {
            worker: twin,
            ..result(tasks2[0], job2.id, b"z")
        }])
        .await
        .unwrap()[0]
        .unwrap();
    store.apply_verdicts(&[Verdict::Valid(id)]).await.unwrap();
    store
        .transition_job(job2.id, JobState::Cancelled, None)
        .await
        .unwrap();
    let distrusted = store.distrust_owner(cheater).await.unwrap();
    assert!(distrusted.reopened.is_empty());
    assert_eq!(distrusted.forfeited, Credits(14_000));
    assert_eq!(
        balances(vec![Account::Held(cheater), Account::PlatformForfeits]).await,
        vec![Credits(0), Credits(14_000)]
    );
    let audit = store.audit_ledger().await.unwrap();
    assert_eq!(
        (audit.total, audit.unbalanced, audit.over_quote),
        (Credits(0), 0, 0)
    );
}

async fn racing_holds_never_spend_a_balance_twice(a: &dyn Store, b: &dyn Store) {
    let tenant = a.ensure_tenant("acme").await.unwrap();
    let customer = Account::Customer(tenant);
    a.transfer(
        "deposit:1",
        Account::ExternalDeposits,
        customer,
        Credits(50_000),
    )
    .await
    .unwrap();
    let mut jobs = Vec::new();
    for _ in 0..6 {
        jobs.push(a.create_job(&new_job(tenant)).await.unwrap().id);
    }
    // Each costs 0.02 credits: two fit in the balance, whoever asks.
    let q = quote(Tier::Standard, 3_600_000, 0, 1);
    let holds = join_all(jobs.iter().enumerate().map(|(i, job)| {
        let store = if i % 2 == 0 { a } else { b };
        store.hold_quote(*job, &q, 1)
    }))
    .await;
    let held = holds.iter().filter(|h| matches!(h, Ok(Hold::Held))).count();
    assert_eq!(held, 2, "{holds:?}");
    assert_eq!(
        a.balances(&[customer]).await.unwrap(),
        vec![Credits(10_000)]
    );
    assert_eq!(a.audit_ledger().await.unwrap().unbalanced, 0);
}
