//! Helpers the test suites of several idlegrid crates share: the PostgreSQL, Redis and S3 that
//! `scripts/services.sh` starts and fresh places on them, accounts made through the API, and
//! files counted on disk, the jobs the tests ask for and the results their devices report,
//! and waiting for a job to end. A dev-dependency only; helpers of one crate's tests stay with them.

use base64::Engine;
use idlegrid_api::jobs::{CreateJob, Preferences};
use idlegrid_api::tasks::ReportOutcome;
use std::path::Path;
use std::time::Duration;

/// The value of `var`, one of the variables `scripts/services.sh` prints
/// (`IDLEGRID_TEST_POSTGRES`, `_REDIS`, `_S3`). When it is not set: `None`, with a note that
/// `what` is skipped, or, with `IDLEGRID_REQUIRE_SERVICES=1`, a failed test.
pub fn service(var: &str, what: &str) -> Option<String> {
    let Ok(value) = std::env::var(var) else {
        assert!(
            std::env::var("IDLEGRID_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "{var} is not set: start the services with scripts/services.sh"
        );
        eprintln!("{var} is not set: {what} skipped");
        return None;
    };
    Some(value)
}

/// `prefix` and 16 random hex digits: a name for a database, key prefix or object no other test
/// (or run) uses.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}{:016x}", rand::random::<u64>())
}

/// Creates the database `name` with `psql` on the PostgreSQL server of `pg` (the URL of any
/// database on it) and returns the new database's URL.
pub fn create_database(pg: &str, name: &str) -> String {
    let created = std::process::Command::new("psql")
        .arg(pg)
        .args(["-q", "-c", &format!("CREATE DATABASE {name}")])
        .status()
        .expect("psql runs");
    assert!(created.success(), "cannot create database {name} on {pg}");
    let (server, _) = pg.rsplit_once('/').expect("a database in the URL");
    format!("{server}/{name}")
}

/// A fresh database, named `prefix` and random digits, on the PostgreSQL `scripts/services.sh`
/// started; `None` when it is not set (as [`service`] says).
pub fn fresh_postgres(prefix: &str) -> Option<String> {
    let pg = service("IDLEGRID_TEST_POSTGRES", "PostgreSQL test")?;
    Some(create_database(&pg, &unique_name(prefix)))
}

/// Makes a new device owner of its own, `name`, with the operator key of the coordinator at
/// `url`; returns its enrollment token.
pub async fn new_owner(url: &str, operator_key: &str, name: &str) -> String {
    idlegrid_client::Client::new(url, operator_key)
        .unwrap()
        .create_owner(&idlegrid_api::accounts::NewOwner {
            name: name.into(),
            customer: None,
        })
        .await
        .unwrap()
        .enrollment_token
}

/// Regular files below `dir`, recursively; 0 if it does not exist.
pub fn files_under(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() { files_under(&path) } else { 1 }
        })
        .sum()
}

/// Registers a device named `name` that reports `capabilities`, with the enrollment token
/// `token` at the coordinator at `url`; returns the device's client.
pub async fn register_device(
    url: &str,
    token: &str,
    name: &str,
    capabilities: idlegrid_api::Capabilities,
) -> idlegrid_client::Client {
    let registered = idlegrid_client::Client::register(
        url,
        token,
        &idlegrid_api::tasks::RegisterWorker {
            name: name.into(),
            capabilities,
        },
    )
    .await
    .unwrap();
    idlegrid_client::Client::new(url, &registered.token).unwrap()
}

/// A python-map job running `script` with `params` over chunks of `chunk_lines` lines (or the
/// app's default), with the default preferences; its input is to be uploaded.
pub fn python_map_job(
    script: &str,
    chunk_lines: Option<u64>,
    params: serde_json::Value,
) -> CreateJob {
    CreateJob {
        app: "python-map".into(),
        name: None,
        params,
        script: Some(script.into()),
        chunk_lines,
        chunk_seconds: None,
        chunk_items: None,
        preferences: Preferences::default(),
        input_from: None,
        output_to: None,
        webhook: None,
    }
}

/// A video-transcode job with `params` in chunks of `chunk_seconds` (or the app's default),
/// with the default preferences; its input is to be uploaded.
pub fn transcode_job(params: serde_json::Value, chunk_seconds: Option<f64>) -> CreateJob {
    CreateJob {
        app: "video-transcode".into(),
        name: None,
        params,
        script: None,
        chunk_lines: None,
        chunk_seconds,
        chunk_items: None,
        preferences: Preferences::default(),
        input_from: None,
        output_to: None,
        webhook: None,
    }
}

/// A device's report that its task completed with `output`, sent inline.
pub fn completed(output: &[u8]) -> ReportOutcome {
    ReportOutcome::Completed {
        sha256: idlegrid_client::sha256_bytes(output),
        size: output.len() as u64,
        inline_base64: Some(base64::engine::general_purpose::STANDARD.encode(output)),
    }
}

/// Job `id`'s status once it has ended (completed, failed, cancelled or expired), asked for
/// every `every`, at most `polls` times after the first; the last status if it has not ended
/// by then.
pub async fn job_once_ended(
    client: &idlegrid_client::Client,
    id: idlegrid_api::JobId,
    every: Duration,
    polls: u32,
) -> idlegrid_api::jobs::Job {
    let mut status = client.job(id).await.unwrap();
    for _ in 0..polls {
        if status.state.is_terminal() {
            break;
        }
        tokio::time::sleep(every).await;
        status = client.job(id).await.unwrap();
    }
    status
}
