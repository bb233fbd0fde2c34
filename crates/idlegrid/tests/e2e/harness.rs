//! What the end-to-end tests share: the `idlegrid` binary started as guarded processes, a
//! [`Cluster`] of a coordinator and workers, the transform job's input and exact output, and
//! bounded waits whose failures show the logs.

pub use crate::common::*;
pub use futures::StreamExt;
pub use idlegrid_api::jobs::{CreateJob, Job, JobList, Preferences};
pub use idlegrid_api::{JobId, JobState};
pub use idlegrid_client::{Client, sha256_bytes};
pub use nix::sys::signal::Signal;
pub use std::collections::HashMap;
pub use std::io::BufRead;
pub use std::os::unix::process::ExitStatusExt;
pub use std::path::{Path, PathBuf};
pub use std::process::{Command, Stdio};
pub use std::time::{Duration, Instant, SystemTime};
pub use tempfile::TempDir;

/// A fixture script's path.
pub fn script_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scripts")
        .join(name)
}

pub fn script_text(name: &str) -> String {
    std::fs::read_to_string(script_path(name)).expect("fixture script")
}

/// The test input: `n` lines with ASCII, accents, other scripts, an emoji, tabs, and a few
/// empty lines.
pub fn input_lines(n: usize) -> Vec<String> {
    const WORDS: [&str; 7] = [
        "alpha",
        "Beta",
        "gämma",
        "δέλτα",
        "日本語",
        "🦀 crab",
        "tab\there",
    ];
    (0..n)
        .map(|i| {
            if i % 997 == 500 {
                String::new()
            } else {
                format!("{i:05} {} {}", WORDS[i % WORDS.len()], "x".repeat(i % 13))
            }
        })
        .collect()
}

pub fn join_lines(lines: &[String]) -> Vec<u8> {
    lines
        .iter()
        .flat_map(|l| l.bytes().chain(std::iter::once(b'\n')))
        .collect()
}

/// What `scripts/transform.py` turns the whole input into.
pub fn expected_output(lines: &[String]) -> Vec<u8> {
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let digest = sha256_bytes(line.as_bytes());
        let reversed: String = line.chars().rev().collect();
        out.push_str(&format!("{i}:{}:{reversed}\n", &digest[..16]));
    }
    out.into_bytes()
}

/// `None` if equal, else where the first difference is.
pub fn difference(actual: &[u8], expected: &[u8]) -> Option<String> {
    if actual == expected {
        return None;
    }
    let actual_lines: Vec<&[u8]> = actual.split(|&b| b == b'\n').collect();
    let expected_lines: Vec<&[u8]> = expected.split(|&b| b == b'\n').collect();
    let at = actual_lines
        .iter()
        .zip(&expected_lines)
        .position(|(a, e)| a != e)
        .unwrap_or(actual_lines.len().min(expected_lines.len()));
    let show = |lines: &[&[u8]]| {
        lines.get(at).map_or("<none>".to_string(), |l| {
            String::from_utf8_lossy(l).into_owned()
        })
    };
    Some(format!(
        "output differs: {} bytes / {} lines, expected {} bytes / {} lines; first difference at \
         line {at}:\n  actual:   {:?}\n  expected: {:?}",
        actual.len(),
        actual_lines.len(),
        expected.len(),
        expected_lines.len(),
        show(&actual_lines),
        show(&expected_lines),
    ))
}

/// `serve` arguments for backends shared by the coordinators of one test: a fresh PostgreSQL
/// database, a Redis key prefix and an S3 prefix on the servers `scripts/services.sh` started
/// (`IDLEGRID_TEST_POSTGRES`, `_REDIS`, `_S3`). `None`, with a note that `what` is skipped,
/// when those are not set (unless the services are required).
pub fn fresh_shared_backends(what: &str) -> Option<Vec<String>> {
    let pg = idlegrid_testkit::service("IDLEGRID_TEST_POSTGRES", what)?;
    let redis = idlegrid_testkit::service("IDLEGRID_TEST_REDIS", what)?;
    let s3 = idlegrid_testkit::service("IDLEGRID_TEST_S3", what)?;
    let name = idlegrid_testkit::unique_name("e2e_");
    let store = idlegrid_testkit::create_database(&pg, &name);
    let (bucket, query) = s3.split_once('?').unwrap_or((&s3, ""));
    Some(vec![
        "--store".into(),
        store,
        "--queue".into(),
        format!("{}/?prefix={name}:", redis.trim_end_matches('/')),
        "--blobs".into(),
        format!("{}/{name}?{query}", bucket.trim_end_matches('/')),
        "--sweep-secs".into(),
        "1".into(),
    ])
}

/// The backends this run of the suite tests: embedded, or with `IDLEGRID_E2E_BACKENDS=services`
/// PostgreSQL + Redis + S3 (fresh ones for every cluster).
pub fn suite_backends() -> Vec<String> {
    match std::env::var("IDLEGRID_E2E_BACKENDS").as_deref() {
        Ok("services") => fresh_shared_backends("the suite on the services")
            .expect("IDLEGRID_E2E_BACKENDS=services needs scripts/services.sh's variables"),
        _ => Vec::new(),
    }
}

/// A coordinator process and worker processes, all in one temporary directory.
pub struct Cluster {
    pub coordinator: Proc,
    pub workers: Vec<Proc>,
    pub ready: Ready,
    pub lease_secs: u64,
    /// `serve` arguments naming the backends (none: embedded).
    pub backends: Vec<String>,
    /// Enrollment tokens of workers of other owners than the default one, by worker name.
    pub owners: HashMap<String, String>,
    /// Dropped last, after every process is dead.
    pub dir: TempDir,
}

impl Cluster {
    /// Starts a coordinator with `--lease-secs lease_secs` on a free port, on the suite's
    /// backends.
    pub fn start(lease_secs: u64) -> Cluster {
        Self::start_on(lease_secs, suite_backends())
    }

    /// [`Cluster::start`] on the backends `backends` names.
    pub fn start_on(lease_secs: u64, backends: Vec<String>) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        let extra: Vec<&str> = backends.iter().map(String::as_str).collect();
        let (coordinator, ready) =
            start_coordinator_with(dir.path(), "127.0.0.1:0", lease_secs, &extra);
        Cluster {
            coordinator,
            workers: Vec::new(),
            ready,
            lease_secs,
            backends,
            owners: HashMap::new(),
            dir,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn home(&self) -> PathBuf {
        self.path().join("home")
    }

    /// Starts `n` more worker processes, one task slot each.
    pub fn add_workers(&mut self, n: usize) {
        for _ in 0..n {
            let name = format!("w{}", self.workers.len());
            let worker = self.spawn_worker(&name);
            self.workers.push(worker);
        }
    }

    /// Starts the worker process `name`, with its state (and so its identity) in `dir/name`.
    pub fn spawn_worker(&self, name: &str) -> Proc {
        self.spawn_worker_at(name, &self.ready.url)
    }

    /// [`Cluster::spawn_worker`] serving the coordinator at `url`.
    pub fn spawn_worker_at(&self, name: &str, url: &str) -> Proc {
        self.spawn_worker_with(name, url, &[])
    }

    /// [`Cluster::spawn_worker_at`] with more flags, such as the owner's controls.
    pub fn spawn_worker_with(&self, name: &str, url: &str, flags: &[&str]) -> Proc {
        let token = self
            .owners
            .get(name)
            .unwrap_or(&self.ready.enrollment_token);
        worker(self.path(), url, token, name, 1, flags)
    }

    /// The customer's client.
    pub fn client(&self) -> Client {
        Client::new(&self.ready.url, &self.ready.api_key).expect("client")
    }

    /// SIGKILLs the coordinator.
    pub fn kill_coordinator(&mut self) {
        let status = self.coordinator.kill_hard();
        assert_eq!(
            status.signal(),
            Some(9),
            "the coordinator ended before it was killed: {status:?}\n{}",
            self.diag()
        );
    }

    /// Starts the coordinator again on the same address and data directory; it must come back
    /// with the same URL and credentials.
    pub fn restart_coordinator(&mut self) {
        assert!(
            !self.coordinator.is_running(),
            "restart_coordinator: the old one is still running"
        );
        let listen = format!("127.0.0.1:{}", self.ready.port());
        let extra: Vec<&str> = self.backends.iter().map(String::as_str).collect();
        let (coordinator, ready) =
            start_coordinator_with(self.path(), &listen, self.lease_secs, &extra);
        self.coordinator = coordinator;
        assert_eq!(
            ready,
            self.ready,
            "the restarted coordinator has other credentials\n{}",
            self.diag()
        );
    }

    /// Log tails of every process, for failure messages.
    pub fn diag(&self) -> String {
        let mut s = format!(
            "--- coordinator log ({}) ---\n{}\n",
            self.coordinator.log.display(),
            self.coordinator.log_tail(60)
        );
        for worker in &self.workers {
            s.push_str(&format!(
                "--- {} log ---\n{}\n",
                worker.name,
                worker.log_tail(15)
            ));
        }
        s
    }

    /// Fails the test with `message` and the logs.
    pub fn fail(&self, message: &str) -> ! {
        panic!("{message}\n{}", self.diag())
    }

    /// [`wait_job`] with this cluster's logs on failure.
    pub async fn wait_job(
        &self,
        client: &Client,
        id: JobId,
        timeout: Duration,
        what: &str,
        done: impl Fn(&Job) -> bool,
    ) -> Job {
        wait_job(client, id, timeout, what, done, || self.diag()).await
    }

    /// Downloads a completed job's output and checks it is exactly `expected`.
    pub async fn check_output(&self, client: &Client, job: &Job, expected: &[u8]) {
        let Some(output) = &job.output else {
            self.fail(&format!("completed job without output: {job:#?}"));
        };
        let path = self.path().join(format!("output-{}", job.id));
        if let Err(e) = client.download_output(job.id, &path, &output.sha256).await {
            self.fail(&format!("cannot download job {}'s output: {e}", job.id));
        }
        let actual = std::fs::read(&path).expect("downloaded output");
        if let Some(diff) = difference(&actual, expected) {
            self.fail(&diff);
        }
        assert_eq!(output.sha256, sha256_bytes(expected));
    }

    /// Index of a live worker whose script has been running for less than `max_age` (its
    /// `started` marker in the scratch directory is that fresh).
    pub fn worker_mid_task(&mut self, max_age: Duration) -> Option<usize> {
        let now = SystemTime::now();
        for (i, worker) in self.workers.iter_mut().enumerate() {
            if !worker.is_running() {
                continue;
            }
            let scratch = self.dir.path().join(&worker.name).join("scratch");
            let Ok(entries) = std::fs::read_dir(&scratch) else {
                continue;
            };
            for entry in entries.flatten() {
                let fresh = std::fs::metadata(entry.path().join("started"))
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| now.duration_since(t).ok())
                    .is_some_and(|age| age < max_age);
                if fresh {
                    return Some(i);
                }
            }
        }
        None
    }
}

/// Polls the job until `done` holds, at most `timeout`. A job that ends without satisfying
/// `done` fails the test at once. Errors (coordinator away) are tolerated until the deadline.
/// Failure messages end with `diag()`.
pub async fn wait_job(
    client: &Client,
    id: JobId,
    timeout: Duration,
    what: &str,
    done: impl Fn(&Job) -> bool,
    diag: impl Fn() -> String,
) -> Job {
    let deadline = Instant::now() + timeout;
    let mut last;
    loop {
        match client.job(id).await {
            Ok(job) if done(&job) => return job,
            Ok(job) if job.state.is_terminal() => panic!(
                "job {id} ended while waiting for it to be {what}: {job:#?}\n{}",
                diag()
            ),
            Ok(job) => last = format!("{job:#?}"),
            Err(e) => last = format!("error: {e}"),
        }
        if Instant::now() >= deadline {
            panic!(
                "job {id} was not {what} within {timeout:?}; last status: {last}\n{}",
                diag()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// [`serve`] with `--lease-secs lease_secs` and the `extra` arguments, its data in
/// `dir/coordinator` and its stderr appended to `dir/coordinator.log`.
pub fn start_coordinator_with(
    dir: &Path,
    listen: &str,
    lease_secs: u64,
    extra: &[&str],
) -> (Proc, Ready) {
    let lease_secs = lease_secs.to_string();
    let mut args = vec!["--lease-secs", lease_secs.as_str()];
    args.extend(extra);
    serve(
        dir,
        listen,
        &dir.join("coordinator"),
        &dir.join("coordinator.log"),
        &args,
    )
}

/// Creates a python-map job with `scripts/transform.py`.
pub async fn create_transform(
    client: &Client,
    chunk_lines: u64,
    params: serde_json::Value,
) -> Result<Job, idlegrid_client::ClientError> {
    create_transform_with(client, chunk_lines, params, Preferences::default()).await
}

/// [`create_transform`], run as `preferences` say.
pub async fn create_transform_with(
    client: &Client,
    chunk_lines: u64,
    params: serde_json::Value,
    preferences: Preferences,
) -> Result<Job, idlegrid_client::ClientError> {
    client
        .create_job(&CreateJob {
            preferences,
            ..idlegrid_testkit::python_map_job(
                &script_text("transform.py"),
                Some(chunk_lines),
                params,
            )
        })
        .await
}

/// Creates, uploads and runs a python-map job with `scripts/transform.py`.
/// `params` must include `chunk_lines`.
pub async fn try_submit_transform(
    client: &Client,
    input: Vec<u8>,
    chunk_lines: u64,
    params: serde_json::Value,
) -> Result<JobId, String> {
    let job = create_transform(client, chunk_lines, params)
        .await
        .map_err(|e| format!("create_job: {e}"))?;
    client
        .upload_input_bytes(job.id, input.into())
        .await
        .map_err(|e| format!("upload: {e}"))?;
    client
        .run_job(job.id)
        .await
        .map_err(|e| format!("run_job: {e}"))?;
    Ok(job.id)
}

/// [`try_submit_transform`], failing the test with the cluster's logs.
pub async fn submit_transform(
    cluster: &Cluster,
    client: &Client,
    input: Vec<u8>,
    chunk_lines: u64,
    sleep_secs: f64,
) -> JobId {
    let params = serde_json::json!({"chunk_lines": chunk_lines, "sleep": sleep_secs});
    try_submit_transform(client, input, chunk_lines, params)
        .await
        .unwrap_or_else(|e| cluster.fail(&e))
}

/// Starts `idlegrid local` with `args`, output appended to `log`, and waits for it to write
/// `home/local.json` with its own pid; returns the process and the file's content.
pub fn start_local(home: &Path, log: &Path, args: &[&str]) -> (Proc, serde_json::Value) {
    let grid_file = home.join("local.json");
    let _ = std::fs::remove_file(&grid_file);
    let mut cmd = idlegrid(home);
    cmd.arg("local")
        .args(args)
        .stdout(log_file(log))
        .stderr(log_file(log));
    let mut local = Proc::spawn("local", cmd, log);
    let deadline = Instant::now() + STARTUP;
    let record: serde_json::Value = loop {
        if let Ok(text) = std::fs::read_to_string(&grid_file)
            && let Ok(value) = serde_json::from_str(&text)
        {
            break value;
        }
        if !local.is_running() || Instant::now() >= deadline {
            panic!(
                "idlegrid local wrote no {} (running: {})\n{}",
                grid_file.display(),
                local.is_running(),
                local.log_tail(40)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        record["pid"].as_u64(),
        Some(u64::from(local.child.id())),
        "{record}"
    );
    assert!(
        record["url"].is_string() && record["api_key"].is_string(),
        "{record}"
    );
    (local, record)
}

/// A client for the grid a `local.json` record describes.
pub fn local_client(record: &serde_json::Value) -> Client {
    Client::new(
        record["url"].as_str().expect("url"),
        record["api_key"].as_str().expect("api_key"),
    )
    .expect("client")
}
