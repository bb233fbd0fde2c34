//! End-to-end tests of the real `idlegrid` binary: coordinators, worker agents, the local grid
//! and the customer's commands run as separate processes talking HTTP on loopback, with real
//! Python task scripts (fixtures in `tests/scripts/`). Each test keeps everything in its own
//! temporary directory and never reads the user's configuration: `IDLEGRID_HOME` points into
//! the temporary directory and the `IDLEGRID_*` target variables are removed.
//!
//! Every child process is owned by a [`Proc`] guard that SIGKILLs it when dropped, so a failing
//! (panicking) test leaves nothing running. Every wait is bounded, and failures show the tail of
//! the coordinator's and workers' logs.

use futures::StreamExt;
use idlegrid_api::jobs::{CreateJob, Job, JobList, Preferences};
use idlegrid_api::{JobId, JobState};
use idlegrid_client::{Client, sha256_bytes};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};
use tempfile::TempDir;

/// How long a coordinator may take to print its ready line.
const STARTUP: Duration = Duration::from_secs(30);

/// A fixture script's path.
fn script_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scripts")
        .join(name)
}

fn script_text(name: &str) -> String {
    std::fs::read_to_string(script_path(name)).expect("fixture script")
}

/// The binary, with an environment that cannot reach the user's grid or configuration.
fn idlegrid(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_idlegrid"));
    for var in [
        "IDLEGRID_URL",
        "IDLEGRID_API_KEY",
        "IDLEGRID_TOKEN",
        "IDLEGRID_WORKER_DIR",
        "IDLEGRID_LISTEN",
        "IDLEGRID_DATA_DIR",
        "IDLEGRID_STORE",
        "IDLEGRID_QUEUE",
        "IDLEGRID_BLOBS",
        "IDLEGRID_LEASE_SECS",
        "IDLEGRID_MAX_UPLOAD_BYTES",
        "IDLEGRID_CUSTOMER_RPS",
        "IDLEGRID_WORKER_RPS",
        "IDLEGRID_SWEEP_SECS",
        "IDLEGRID_ALLOW_PRIVATE_SOURCES",
        "IDLEGRID_SECRETS_KEY",
        "IDLEGRID_WORKER_MAX_CORES",
        "IDLEGRID_WORKER_CPU_PERCENT",
        "IDLEGRID_WORKER_MEMORY_MB",
        "IDLEGRID_WORKER_DISK_MB",
        "IDLEGRID_WORKER_MAX_TASK_SECS",
        "IDLEGRID_WORKER_IDLE_MINUTES",
        "IDLEGRID_WORKER_ON_BATTERY",
        "IDLEGRID_WORKER_MIN_BATTERY_PERCENT",
        "IDLEGRID_WORKER_HOURS",
        "RUST_LOG",
        "IDLEGRID_LOG_FORMAT",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("IDLEGRID_HOME", home).stdin(Stdio::null());
    cmd
}

/// A file to append a process's output to (appending, so a restarted process keeps its
/// predecessor's log).
fn log_file(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()))
}

/// The last `lines` lines of a log file.
fn tail(path: &Path, lines: usize) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A child process that is SIGKILLed (and reaped) when dropped, unless it already ended.
struct Proc {
    name: String,
    child: Child,
    /// Where its stderr goes.
    log: PathBuf,
}

impl Proc {
    /// Spawns `cmd`, whose stdio the caller has set up; `log` is where its stderr goes.
    fn spawn(name: &str, mut cmd: Command, log: &Path) -> Proc {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
        }
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    fn signal(&self, signal: Signal) {
        kill(self.pid(), signal)
            .unwrap_or_else(|e| panic!("cannot send {signal} to {}: {e}", self.name));
    }

    /// Waits for the process to end, at most `timeout`.
    fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILLs the process and reaps it.
    fn kill_hard(&mut self) -> ExitStatus {
        self.signal(Signal::SIGKILL);
        self.wait_timeout(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{} survived SIGKILL for 10 s", self.name))
    }

    fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = kill(self.pid(), Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// What a finished command printed.
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Finished {
    fn describe(&self) -> String {
        format!(
            "status {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs a command to its end, at most `timeout` (then it is killed and the test fails). Its
/// output is kept in `dir/<name>.stdout` and `.stderr`.
fn run_bounded(mut cmd: Command, dir: &Path, name: &str, timeout: Duration) -> Finished {
    let out = dir.join(format!("{name}.stdout"));
    let err = dir.join(format!("{name}.stderr"));
    cmd.stdout(log_file(&out)).stderr(log_file(&err));
    let mut proc = Proc::spawn(name, cmd, &err);
    let Some(status) = proc.wait_timeout(timeout) else {
        panic!(
            "`{name}` did not finish within {timeout:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            tail(&out, 40),
            tail(&err, 40)
        );
    };
    Finished {
        status,
        stdout: String::from_utf8_lossy(&std::fs::read(&out).unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&std::fs::read(&err).unwrap_or_default()).into_owned(),
    }
}

/// The test input: `n` lines with ASCII, accents, other scripts, an emoji, tabs, and a few
/// empty lines.
fn input_lines(n: usize) -> Vec<String> {
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

fn join_lines(lines: &[String]) -> Vec<u8> {
    lines
        .iter()
        .flat_map(|l| l.bytes().chain(std::iter::once(b'\n')))
        .collect()
}

/// What `scripts/transform.py` turns the whole input into.
fn expected_output(lines: &[String]) -> Vec<u8> {
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let digest = sha256_bytes(line.as_bytes());
        let reversed: String = line.chars().rev().collect();
        out.push_str(&format!("{i}:{}:{reversed}\n", &digest[..16]));
    }
    out.into_bytes()
}

/// `None` if equal, else where the first difference is.
fn difference(actual: &[u8], expected: &[u8]) -> Option<String> {
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

/// The ready line of `idlegrid serve --json`.
#[derive(Debug, Clone, PartialEq)]
struct Ready {
    url: String,
    api_key: String,
    enrollment_token: String,
    operator_key: String,
}

impl Ready {
    fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {}", self.url))
    }
}

/// `serve` arguments for backends shared by the coordinators of one test: a fresh PostgreSQL
/// database, a Redis key prefix and an S3 prefix on the servers `scripts/services.sh` started
/// (`IDLEGRID_TEST_POSTGRES`, `_REDIS`, `_S3`). `None` when those are not set.
fn fresh_shared_backends() -> Option<Vec<String>> {
    let (Ok(pg), Ok(redis), Ok(s3)) = (
        std::env::var("IDLEGRID_TEST_POSTGRES"),
        std::env::var("IDLEGRID_TEST_REDIS"),
        std::env::var("IDLEGRID_TEST_S3"),
    ) else {
        return None;
    };
    let name = format!("e2e_{:016x}", rand::random::<u64>());
    let created = Command::new("psql")
        .arg(&pg)
        .args(["-q", "-c", &format!("CREATE DATABASE {name}")])
        .status()
        .expect("psql runs");
    assert!(created.success(), "cannot create database {name} on {pg}");
    let (server, _) = pg.rsplit_once('/').expect("a database in the URL");
    let (bucket, query) = s3.split_once('?').unwrap_or((&s3, ""));
    Some(vec![
        "--store".into(),
        format!("{server}/{name}"),
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
fn suite_backends() -> Vec<String> {
    match std::env::var("IDLEGRID_E2E_BACKENDS").as_deref() {
        Ok("services") => fresh_shared_backends()
            .expect("IDLEGRID_E2E_BACKENDS=services needs scripts/services.sh's variables"),
        _ => Vec::new(),
    }
}

/// A coordinator process and worker processes, all in one temporary directory.
struct Cluster {
    coordinator: Proc,
    workers: Vec<Proc>,
    ready: Ready,
    lease_secs: u64,
    /// `serve` arguments naming the backends (none: embedded).
    backends: Vec<String>,
    /// Enrollment tokens of workers of other owners than the default one, by worker name.
    owners: HashMap<String, String>,
    /// Dropped last, after every process is dead.
    dir: TempDir,
}

impl Cluster {
    /// Starts a coordinator with `--lease-secs lease_secs` on a free port, on the suite's
    /// backends.
    fn start(lease_secs: u64) -> Cluster {
        Self::start_on(lease_secs, suite_backends())
    }

    /// [`Cluster::start`] on the backends `backends` names.
    fn start_on(lease_secs: u64, backends: Vec<String>) -> Cluster {
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

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn home(&self) -> PathBuf {
        self.path().join("home")
    }

    /// Starts `n` more worker processes, one task slot each.
    fn add_workers(&mut self, n: usize) {
        for _ in 0..n {
            let name = format!("w{}", self.workers.len());
            let worker = self.spawn_worker(&name);
            self.workers.push(worker);
        }
    }

    /// Starts the worker process `name`, with its state (and so its identity) in `dir/name`.
    fn spawn_worker(&self, name: &str) -> Proc {
        self.spawn_worker_at(name, &self.ready.url)
    }

    /// [`Cluster::spawn_worker`] serving the coordinator at `url`.
    fn spawn_worker_at(&self, name: &str, url: &str) -> Proc {
        self.spawn_worker_with(name, url, &[])
    }

    /// [`Cluster::spawn_worker_at`] with more flags, such as the owner's controls.
    fn spawn_worker_with(&self, name: &str, url: &str, flags: &[&str]) -> Proc {
        let log = self.path().join(format!("{name}.log"));
        let mut cmd = idlegrid(&self.home());
        cmd.args(["worker", "--coordinator", url])
            .args(flags)
            .args([
                "--token",
                self.owners
                    .get(name)
                    .unwrap_or(&self.ready.enrollment_token),
            ])
            .args(["--slots", "1", "--name", name])
            .arg("--state-dir")
            .arg(self.path().join(name))
            .stdout(log_file(&log))
            .stderr(log_file(&log));
        Proc::spawn(name, cmd, &log)
    }

    /// The customer's client.
    fn client(&self) -> Client {
        Client::new(&self.ready.url, &self.ready.api_key).expect("client")
    }

    /// SIGKILLs the coordinator.
    fn kill_coordinator(&mut self) {
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
    fn restart_coordinator(&mut self) {
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
    fn diag(&self) -> String {
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
    fn fail(&self, message: &str) -> ! {
        panic!("{message}\n{}", self.diag())
    }

    /// [`wait_job`] with this cluster's logs on failure.
    async fn wait_job(
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
    async fn check_output(&self, client: &Client, job: &Job, expected: &[u8]) {
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
    fn worker_mid_task(&mut self, max_age: Duration) -> Option<usize> {
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
async fn wait_job(
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

/// Starts `idlegrid serve --json` with the `extra` arguments, its data in `dir/coordinator` and
/// its stderr appended to `dir/coordinator.log`; returns once it printed its ready line. Its
/// stdout is drained by a thread so the pipe never fills.
fn start_coordinator_with(
    dir: &Path,
    listen: &str,
    lease_secs: u64,
    extra: &[&str],
) -> (Proc, Ready) {
    let log = dir.join("coordinator.log");
    let mut cmd = idlegrid(&dir.join("home"));
    cmd.args(["serve", "--listen", listen, "--json"])
        .args(["--lease-secs", &lease_secs.to_string()])
        .args(extra)
        .arg("--data-dir")
        .arg(dir.join("coordinator"))
        .stdout(Stdio::piped())
        .stderr(log_file(&log));
    let mut proc = Proc::spawn("coordinator", cmd, &log);
    let stdout = proc.child.stdout.take().expect("coordinator stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        for _ in lines {}
    });
    let line = match rx.recv_timeout(STARTUP) {
        Ok(line) => line,
        Err(e) => {
            let status = proc.wait_timeout(Duration::ZERO);
            panic!(
                "the coordinator printed no ready line ({e}; exit status {status:?})\n--- log ---\n{}",
                tail(&log, 60)
            );
        }
    };
    let value: serde_json::Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("coordinator ready line {line:?} is not JSON: {e}"));
    let field = |name: &str| {
        value[name]
            .as_str()
            .unwrap_or_else(|| panic!("ready line {line:?} lacks {name}"))
            .to_string()
    };
    let ready = Ready {
        url: field("url"),
        api_key: field("api_key"),
        enrollment_token: field("enrollment_token"),
        operator_key: field("operator_key"),
    };
    assert!(
        ready.url.starts_with("http://127.0.0.1:"),
        "unexpected url in {line:?}"
    );
    (proc, ready)
}

/// Creates a python-map job with `scripts/transform.py`.
async fn create_transform(
    client: &Client,
    chunk_lines: u64,
    params: serde_json::Value,
) -> Result<Job, idlegrid_client::ClientError> {
    create_transform_with(client, chunk_lines, params, Preferences::default()).await
}

/// [`create_transform`], run as `preferences` say.
async fn create_transform_with(
    client: &Client,
    chunk_lines: u64,
    params: serde_json::Value,
    preferences: Preferences,
) -> Result<Job, idlegrid_client::ClientError> {
    client
        .create_job(&CreateJob {
            app: "python-map".into(),
            params,
            script: Some(script_text("transform.py")),
            chunk_lines: Some(chunk_lines),
            chunk_seconds: None,
            preferences,
            input_from: None,
            output_to: None,
            webhook: None,
        })
        .await
}

/// Creates, uploads and runs a python-map job with `scripts/transform.py`.
/// `params` must include `chunk_lines`.
async fn try_submit_transform(
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
async fn submit_transform(
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
fn start_local(home: &Path, log: &Path, args: &[&str]) -> (Proc, serde_json::Value) {
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
fn local_client(record: &serde_json::Value) -> Client {
    Client::new(
        record["url"].as_str().expect("url"),
        record["api_key"].as_str().expect("api_key"),
    )
    .expect("client")
}

/// 10,000 lines over 20 chunks, three `idlegrid worker` processes, submitted with
/// `idlegrid run --coordinator --api-key`: the output is exactly the expected bytes.
#[test]
fn ten_thousand_lines_on_three_workers_give_the_exact_output() {
    let mut cluster = Cluster::start(3);
    cluster.add_workers(3);
    let lines = input_lines(10_000);
    let input = cluster.path().join("input.txt");
    let output = cluster.path().join("output.txt");
    std::fs::write(&input, join_lines(&lines)).unwrap();
    let expected = expected_output(&lines);

    let mut cmd = idlegrid(&cluster.home());
    cmd.arg("run")
        .arg(script_path("transform.py"))
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .args([
            "--chunk-lines",
            "500",
            "--params",
            r#"{"chunk_lines": 500}"#,
        ])
        .args(["--coordinator", &cluster.ready.url])
        .args(["--api-key", &cluster.ready.api_key, "--json"]);
    let run = run_bounded(cmd, cluster.path(), "run", Duration::from_secs(120));
    if !run.status.success() {
        cluster.fail(&format!("idlegrid run failed: {}", run.describe()));
    }
    assert!(
        !run.stderr.contains("throw-away"),
        "run started its own grid despite --coordinator: {}",
        run.describe()
    );
    let job: Job = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("run --json printed no job ({e}): {}", run.describe()));
    assert_eq!(job.state, JobState::Completed, "{job:#?}");
    assert_eq!(
        (job.chunks.total, job.chunks.done, job.chunks.failed),
        (Some(20), 20, 0),
        "{job:#?}"
    );
    let actual = std::fs::read(&output).expect("run wrote no output file");
    if let Some(diff) = difference(&actual, &expected) {
        cluster.fail(&diff);
    }
    assert_eq!(
        job.output.map(|o| o.sha256),
        Some(sha256_bytes(&expected)),
        "the job's reported output hash"
    );
}

/// A worker process SIGKILLed while its script runs: its lease expires, the chunk runs
/// elsewhere, and the job completes with the exact output and the lost attempt counted.
#[tokio::test]
async fn a_worker_killed_mid_task_costs_one_attempt_not_the_job() {
    let mut cluster = Cluster::start(3);
    cluster.add_workers(3);
    let client = cluster.client();
    // 9 chunks of 5 lines, 1.5 s each: every worker stays busy for a while.
    let lines = input_lines(45);
    let expected = expected_output(&lines);
    let id = submit_transform(&cluster, &client, join_lines(&lines), 5, 1.5).await;
    cluster
        .wait_job(
            &client,
            id,
            Duration::from_secs(60),
            "one chunk done",
            |j| j.chunks.done >= 1,
        )
        .await;

    // Kill a worker whose script started under 0.6 s ago: it is asleep for ~0.9 s more, so
    // it cannot have reported.
    let deadline = Instant::now() + Duration::from_secs(30);
    let victim = loop {
        if let Some(i) = cluster.worker_mid_task(Duration::from_millis(600)) {
            break i;
        }
        if Instant::now() >= deadline {
            cluster.fail("no worker was seen starting a task within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let status = cluster.workers[victim].kill_hard();
    assert_eq!(
        status.signal(),
        Some(9),
        "worker ended by itself: {status:?}"
    );

    let job = cluster
        .wait_job(&client, id, Duration::from_secs(90), "completed", |j| {
            j.state == JobState::Completed
        })
        .await;
    if job.chunks.failed_attempts < 1 || job.chunks.failed != 0 {
        cluster.fail(&format!(
            "the killed task should count as one retried attempt: {job:#?}"
        ));
    }
    cluster.check_output(&client, &job, &expected).await;
}

/// `idlegrid worker pause` while a worker's script runs: the worker kills it and hands the
/// lease back at once (its status says so within seconds), and the chunk runs on the other
/// worker long before the 30 s lease could have expired, giving the exact output. The paused
/// worker takes nothing until `resume`.
#[tokio::test]
async fn a_worker_paused_mid_task_hands_its_lease_back_at_once() {
    let mut cluster = Cluster::start(30);
    cluster.add_workers(2);
    let client = cluster.client();
    let lines = input_lines(10);
    let expected = expected_output(&lines);
    let id = submit_transform(&cluster, &client, join_lines(&lines), 10, 4.0).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let busy = loop {
        if let Some(i) = cluster.worker_mid_task(Duration::from_secs(3)) {
            break i;
        }
        if Instant::now() >= deadline {
            cluster.fail("no worker was seen starting the task within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let cluster = cluster;
    let state_dir = cluster.path().join(&cluster.workers[busy].name);
    // Each call its own log files (run_bounded appends).
    let calls = std::cell::Cell::new(0);
    let control = |args: &[&str]| {
        calls.set(calls.get() + 1);
        let mut cmd = idlegrid(&cluster.home());
        cmd.arg("worker")
            .args(args)
            .arg("--state-dir")
            .arg(&state_dir);
        let name = format!("control-{}", calls.get());
        let done = run_bounded(cmd, cluster.path(), &name, Duration::from_secs(20));
        if !done.status.success() {
            cluster.fail(&format!(
                "`idlegrid worker {args:?}` failed: {}",
                done.describe()
            ));
        }
        done.stdout
    };
    let status = || -> serde_json::Value {
        serde_json::from_str(&control(&["status", "--json"])).expect("status JSON")
    };
    control(&["pause"]);
    let paused_at = Instant::now();
    let paused = loop {
        let status = status();
        if status["session"]["released"] == 1 {
            break status;
        }
        if paused_at.elapsed() > Duration::from_secs(10) {
            cluster.fail(&format!(
                "the paused worker did not hand its task back: {status:#}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(paused["state"], "paused", "{paused:#}");
    assert_eq!(paused["tasks"], serde_json::json!([]), "{paused:#}");
    assert_eq!(paused["record"]["valid"], 0, "{paused:#}");
    assert!(state_dir.join("paused").exists());
    let text = control(&["status"]);
    assert!(
        text.contains("paused by owner") && text.contains("earned:"),
        "{text}"
    );

    // Well within the 30 s lease: only a handed-back lease runs elsewhere this soon.
    let job = cluster
        .wait_job(&client, id, Duration::from_secs(20), "completed", |j| {
            j.state == JobState::Completed
        })
        .await;
    cluster.check_output(&client, &job, &expected).await;
    let after = status();
    assert_eq!(after["session"]["succeeded"], 0, "{after:#}");

    control(&["resume"]);
    assert!(!state_dir.join("paused").exists());
    let resumed = status();
    assert_eq!(resumed["state"], "idle", "{resumed:#}");
}

/// The owner of a device allows a task less memory than a job's tasks need: the coordinator
/// offers the device none of them. Restarted with the limit lifted, the same device (same id,
/// from its saved credentials) tells the coordinator, is offered the job and completes it.
#[tokio::test]
async fn a_restarted_worker_is_matched_by_its_owners_new_allowances() {
    let mut cluster = Cluster::start(30);
    let client = cluster.client();
    let lines = input_lines(10);
    let expected = expected_output(&lines);
    let url = cluster.ready.url.clone();
    // python-map tasks may use 1024 MiB.
    let mut limited = cluster.spawn_worker_with("w0", &url, &["--memory-mb", "256"]);
    let id = submit_transform(&cluster, &client, join_lines(&lines), 5, 0.0).await;
    let credentials = cluster.path().join("w0").join("credentials.json");
    let worker_id = |cluster: &Cluster| -> serde_json::Value {
        let text = std::fs::read_to_string(&credentials)
            .unwrap_or_else(|e| cluster.fail(&format!("no saved credentials: {e}")));
        serde_json::from_str::<serde_json::Value>(&text).expect("credentials JSON")["worker_id"]
            .clone()
    };
    // Long enough for several lease polls once the worker is up.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !credentials.exists() {
        if Instant::now() >= deadline {
            cluster.fail("the limited worker did not register within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    let job = client.job(id).await.expect("job");
    if job.chunks.running != 0 || job.chunks.done != 0 || job.chunks.results != 0 {
        cluster.fail(&format!(
            "a device allowing 256 MiB was given a task needing 1024: {job:#?}"
        ));
    }
    let before = worker_id(&cluster);
    limited.signal(Signal::SIGTERM);
    if limited.wait_timeout(Duration::from_secs(20)).is_none() {
        cluster.fail("the limited worker did not stop on SIGTERM within 20 s");
    }
    cluster.workers.push(cluster.spawn_worker("w0"));
    let job = cluster
        .wait_job(&client, id, Duration::from_secs(60), "completed", |j| {
            j.state == JobState::Completed
        })
        .await;
    cluster.check_output(&client, &job, &expected).await;
    assert_eq!(worker_id(&cluster), before, "the device registered anew");
    let log = std::fs::read_to_string(cluster.path().join("w0.log")).unwrap_or_default();
    assert!(
        log.contains("reusing saved worker credentials"),
        "{}",
        cluster.diag()
    );
}

/// `idlegrid worker install --no-start` writes a private settings file and a systemd user
/// unit (checked with `systemd-analyze verify` where it exists); the unit's `ExecStart` line,
/// run as systemd would run it, is a worker that serves the grid and completes a job; and
/// `uninstall` removes both files, keeping the device's identity unless `--purge`.
#[tokio::test]
async fn an_installed_worker_service_runs_the_worker_and_uninstall_removes_it() {
    use std::os::unix::fs::PermissionsExt;
    let mut cluster = Cluster::start(30);
    let client = cluster.client();
    let config_home = cluster.path().join("xdg");
    let state_dir = cluster.path().join("service-state");
    let url = cluster.ready.url.clone();
    let token = cluster.ready.enrollment_token.clone();
    let (home, dir) = (cluster.home(), cluster.path().to_path_buf());
    let calls = std::cell::Cell::new(0);
    let manage = |args: &[&str]| {
        calls.set(calls.get() + 1);
        let mut cmd = idlegrid(&home);
        cmd.arg("worker")
            .args(args)
            .env("XDG_CONFIG_HOME", &config_home);
        let name = format!("manage-{}", calls.get());
        run_bounded(cmd, &dir, &name, Duration::from_secs(30))
    };
    let state_arg = state_dir.to_str().unwrap();
    let install_args = [
        "install",
        "--coordinator",
        &url,
        "--token",
        &token,
        "--state-dir",
        state_arg,
        "--memory-mb",
        "2048",
        "--hours",
        "00:00-24:00",
        "--name",
        "service box",
        "--no-start",
        "--json",
    ];
    let installed = manage(&install_args);
    assert!(installed.status.success(), "{}", installed.describe());
    let done: serde_json::Value = serde_json::from_str(&installed.stdout).expect("install JSON");
    let config = PathBuf::from(done["config"].as_str().unwrap());
    let unit = PathBuf::from(done["unit"].as_str().unwrap());
    assert_eq!(config, config_home.join("idlegrid/worker.env"));
    assert_eq!(
        unit,
        config_home.join("systemd/user/idlegrid-worker.service")
    );
    assert_eq!(done["started"], false);
    let settings = std::fs::read_to_string(&config).unwrap();
    for line in [
        format!("IDLEGRID_URL={url}"),
        format!("IDLEGRID_TOKEN={token}"),
        format!("IDLEGRID_WORKER_DIR={state_arg}"),
        "IDLEGRID_WORKER_MEMORY_MB=2048".into(),
        "IDLEGRID_WORKER_HOURS=00:00-24:00".into(),
        "IDLEGRID_WORKER_NAME=service box".into(),
    ] {
        assert!(
            settings.lines().any(|l| l == line),
            "no {line:?} in\n{settings}"
        );
    }
    for file in [&config, &unit] {
        let mode = std::fs::metadata(file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", file.display());
    }
    let unit_text = std::fs::read_to_string(&unit).unwrap();
    if let Ok(out) = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
    {
        assert!(
            out.status.success(),
            "systemd-analyze verify: {}\n{unit_text}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let exec = unit_text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap_or_else(|| panic!("no ExecStart in\n{unit_text}"));
    let words: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(words[1..], ["worker", "--config", config.to_str().unwrap()]);
    assert!(Path::new(words[0]).is_absolute(), "{exec}");

    // What systemd would start: no flags but the settings file, no IDLEGRID_* environment.
    let log = cluster.path().join("service.log");
    let mut cmd = Command::new(words[0]);
    cmd.args(&words[1..])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", cluster.home())
        .stdout(log_file(&log))
        .stderr(log_file(&log));
    cluster.workers.push(Proc::spawn("service", cmd, &log));
    let lines = input_lines(10);
    let expected = expected_output(&lines);
    let id = submit_transform(&cluster, &client, join_lines(&lines), 5, 0.0).await;
    let job = cluster
        .wait_job(&client, id, Duration::from_secs(60), "completed", |j| {
            j.state == JobState::Completed
        })
        .await;
    cluster.check_output(&client, &job, &expected).await;
    assert!(state_dir.join("credentials.json").exists());
    let mut service = cluster.workers.pop().unwrap();
    service.signal(Signal::SIGTERM);
    assert!(service.wait_timeout(Duration::from_secs(20)).is_some());

    let removed = manage(&["uninstall", "--json"]);
    // No user service manager runs here, so stopping fails; the files still go.
    assert!(removed.status.success(), "{}", removed.describe());
    assert!(!config.exists() && !unit.exists());
    assert!(
        state_dir.join("credentials.json").exists(),
        "the identity is kept"
    );
    let again = manage(&["uninstall"]);
    assert!(!again.status.success());
    assert!(
        again.stderr.contains("no installed worker"),
        "{}",
        again.describe()
    );

    assert!(manage(&install_args).status.success());
    let purged = manage(&["uninstall", "--purge"]);
    assert!(purged.status.success(), "{}", purged.describe());
    assert!(!state_dir.exists(), "--purge left the state directory");
}

/// The coordinator SIGKILLed mid-job and restarted on the same port and data directory: the
/// worker processes ride it out, no validated chunk is lost, and the job completes with the
/// exact output.
#[tokio::test]
async fn a_coordinator_killed_mid_job_and_restarted_finishes_the_job() {
    let mut cluster = Cluster::start(3);
    cluster.add_workers(2);
    let client = cluster.client();
    // 12 chunks of 5 lines, 0.4 s each, on 2 workers: ~2.5 s of work.
    let lines = input_lines(60);
    let expected = expected_output(&lines);
    let id = submit_transform(&cluster, &client, join_lines(&lines), 5, 0.4).await;
    let before = cluster
        .wait_job(&client, id, Duration::from_secs(60), "3 chunks done", |j| {
            j.chunks.done >= 3
        })
        .await;
    if before.state == JobState::Completed || before.chunks.done >= 12 {
        cluster.fail(&format!(
            "the job finished before the coordinator could be killed: {before:#?}"
        ));
    }

    cluster.kill_coordinator();
    // Running scripts finish while it is away; their reports and new leases fail for now.
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.restart_coordinator();

    let client = cluster.client();
    let after = cluster
        .wait_job(
            &client,
            id,
            Duration::from_secs(30),
            "answering after the restart",
            |_| true,
        )
        .await;
    if after.chunks.done < before.chunks.done {
        cluster.fail(&format!(
            "validated chunks were lost in the restart: {} done before, {} after: {after:#?}",
            before.chunks.done, after.chunks.done
        ));
    }
    let job = cluster
        .wait_job(&client, id, Duration::from_secs(90), "completed", |j| {
            j.state == JobState::Completed
        })
        .await;
    assert_eq!(job.chunks.failed, 0, "{job:#?}");
    cluster.check_output(&client, &job, &expected).await;
    for i in 0..cluster.workers.len() {
        if !cluster.workers[i].is_running() {
            let name = cluster.workers[i].name.clone();
            cluster.fail(&format!("worker {name} exited during the outage"));
        }
    }
}

/// `idlegrid run` with no coordinator configured starts a throw-away grid: a good script gives
/// the exact output; a crashing, a hanging and a silent script fail the command with the
/// reason on stderr and no output file.
#[test]
fn run_without_a_coordinator_uses_a_throw_away_grid_and_reports_failures() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let lines = input_lines(1000);
    let input = dir.path().join("input.txt");
    std::fs::write(&input, join_lines(&lines)).unwrap();
    let expected = expected_output(&lines);

    let run = |name: &str, script: &str, extra: &[&str]| {
        let output = dir.path().join(format!("{name}.out"));
        let mut cmd = idlegrid(&home);
        cmd.arg("run")
            .arg(script_path(script))
            .arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(&output)
            .args(["--local-workers", "2"])
            .args(extra);
        let finished = run_bounded(cmd, dir.path(), name, Duration::from_secs(90));
        (finished, output)
    };
    let failing = |name: &str, script: &str, extra: &[&str], reason: &str| {
        let started = Instant::now();
        let (finished, output) = run(name, script, extra);
        assert!(
            !finished.status.success(),
            "{name}: run succeeded: {}",
            finished.describe()
        );
        assert!(
            finished.stderr.contains("failed") && finished.stderr.contains(reason),
            "{name}: stderr should say the job failed because of {reason:?}: {}",
            finished.describe()
        );
        assert!(!output.exists(), "{name}: a failed job left an output file");
        started.elapsed()
    };

    std::thread::scope(|s| {
        s.spawn(|| {
            let (finished, output) = run(
                "ok",
                "transform.py",
                &[
                    "--chunk-lines",
                    "100",
                    "--params",
                    r#"{"chunk_lines": 100}"#,
                ],
            );
            assert!(finished.status.success(), "ok: {}", finished.describe());
            assert!(
                finished.stderr.contains("throw-away"),
                "ok: run should say it started a throw-away grid: {}",
                finished.describe()
            );
            let actual = std::fs::read(&output).expect("ok: no output file");
            if let Some(diff) = difference(&actual, &expected) {
                panic!("ok: {diff}");
            }
        });
        s.spawn(|| failing("crash", "crash.py", &[], "ZeroDivisionError"));
        s.spawn(|| {
            let took = failing(
                "hang",
                "hang.py",
                &["--task-timeout", "2", "--max-attempts", "1"],
                "timed out",
            );
            assert!(
                took < Duration::from_secs(25),
                "hang: a 2 s task timeout took {took:?} to fail the job"
            );
        });
        s.spawn(|| failing("silent", "no_output.py", &[], "output/ is empty"));
    });
}

/// A webhook receiver on loopback: answers 204 to every request and keeps the bodies.
fn webhook_receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_ok() {
                kept.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&body).into_owned());
            }
            let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n");
        }
    });
    (url, bodies)
}

/// `idlegrid local` runs a grid that `run`, `jobs`, `job` and `cancel` find through
/// `$IDLEGRID_HOME/local.json`; SIGTERM stops it cleanly and removes the file.
#[test]
fn local_grid_serves_the_client_commands_until_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let log = dir.path().join("local.log");
    let (mut local, _) = start_local(
        &home,
        &log,
        &["--workers", "2", "--port", "0", "--allow-private-sources"],
    );
    let grid_file = home.join("local.json");
    let (hook_url, hooks) = webhook_receiver();

    let client_cmd = |args: &[&str]| {
        let name = args.join("-");
        let mut cmd = idlegrid(&home);
        cmd.args(args);
        run_bounded(cmd, dir.path(), &name, Duration::from_secs(30))
    };
    let context = |what: &str, finished: &Finished| {
        format!(
            "{what}: {}\n--- local log ---\n{}",
            finished.describe(),
            tail(&log, 40)
        )
    };

    let lines = input_lines(300);
    let input = dir.path().join("input.txt");
    let output = dir.path().join("output.txt");
    std::fs::write(&input, join_lines(&lines)).unwrap();
    let expected = expected_output(&lines);
    let mut cmd = idlegrid(&home);
    cmd.arg("run")
        .arg(script_path("transform.py"))
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .args(["--chunk-lines", "50", "--params", r#"{"chunk_lines": 50}"#])
        .args(["--webhook", &hook_url]);
    let run = run_bounded(cmd, dir.path(), "run", Duration::from_secs(60));
    assert!(run.status.success(), "{}", context("run", &run));
    assert!(
        !run.stderr.contains("throw-away"),
        "{}",
        context("run should use the local grid", &run)
    );
    assert!(
        run.stderr.contains("signed with whsec_"),
        "{}",
        context("run should show the webhook's secret once", &run)
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let delivered = loop {
        let got = hooks.lock().unwrap().clone();
        if got.iter().any(|b| b.contains("\"job.completed\"")) || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let types: Vec<String> = delivered
        .iter()
        .filter_map(|b| serde_json::from_str::<serde_json::Value>(b).ok())
        .map(|v| v["type"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        types.last().map(String::as_str),
        Some("job.completed"),
        "the webhook got {types:?}"
    );
    let actual = std::fs::read(&output).expect("run wrote no output");
    if let Some(diff) = difference(&actual, &expected) {
        panic!("{diff}");
    }
    // "job N completed: ..."
    let id: i64 = run
        .stdout
        .split_whitespace()
        .skip_while(|w| *w != "job")
        .nth(1)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("{}", context("no job id in run's summary", &run)));

    let jobs = client_cmd(&["jobs", "--json"]);
    assert!(jobs.status.success(), "{}", context("jobs", &jobs));
    let list: JobList = serde_json::from_str(&jobs.stdout)
        .unwrap_or_else(|e| panic!("{}", context(&format!("jobs --json: {e}"), &jobs)));
    assert!(
        list.jobs
            .iter()
            .any(|j| j.id == JobId(id) && j.state == JobState::Completed),
        "{}",
        context(&format!("jobs should list job {id} as completed"), &jobs)
    );

    let id_arg = id.to_string();
    let shown = client_cmd(&["job", &id_arg, "--json"]);
    assert!(shown.status.success(), "{}", context("job", &shown));
    let job: Job = serde_json::from_str(&shown.stdout)
        .unwrap_or_else(|e| panic!("{}", context(&format!("job --json: {e}"), &shown)));
    assert_eq!(job.state, JobState::Completed, "{job:#?}");
    assert_eq!(
        job.output.map(|o| o.sha256),
        Some(sha256_bytes(&expected)),
        "job's output hash"
    );

    let cancel = client_cmd(&["cancel", &id_arg]);
    assert!(
        !cancel.status.success() && cancel.stderr.contains("already completed"),
        "{}",
        context("cancelling a completed job should fail saying so", &cancel)
    );

    local.signal(Signal::SIGTERM);
    let status = local
        .wait_timeout(Duration::from_secs(30))
        .unwrap_or_else(|| {
            panic!(
                "idlegrid local ignored SIGTERM for 30 s\n{}",
                tail(&log, 40)
            )
        });
    assert!(
        status.success(),
        "idlegrid local exited with {status:?} on SIGTERM\n{}",
        tail(&log, 40)
    );
    assert!(
        !grid_file.exists(),
        "idlegrid local left {} behind",
        grid_file.display()
    );
    let jobs = client_cmd(&["jobs"]);
    assert!(
        !jobs.status.success() && jobs.stderr.contains("no coordinator"),
        "{}",
        context("jobs with no grid running should fail", &jobs)
    );
}

/// `idlegrid serve` stops on SIGTERM even while a customer follows a running job's events, as
/// `idlegrid run` does for as long as its job runs.
#[tokio::test]
async fn serve_stops_on_sigterm_while_a_client_follows_a_running_job() {
    let mut cluster = Cluster::start(3);
    let client = cluster.client();
    // No workers: the job stays queued.
    let id = submit_transform(&cluster, &client, join_lines(&input_lines(10)), 5, 0.0).await;
    let events = client.job_events(id).await;
    let mut events = Box::pin(events.unwrap_or_else(|e| cluster.fail(&format!("events: {e}"))));
    match tokio::time::timeout(Duration::from_secs(10), events.next()).await {
        Ok(Some(Ok(job))) if !job.state.is_terminal() => {}
        other => cluster.fail(&format!("no first event of a running job: {other:?}")),
    }

    cluster.coordinator.signal(Signal::SIGTERM);
    match cluster.coordinator.wait_timeout(Duration::from_secs(10)) {
        Some(status) if status.success() => {}
        Some(status) => cluster.fail(&format!("serve exited with {status:?} on SIGTERM")),
        None => cluster.fail(
            "idlegrid serve was still running 10 s after SIGTERM while a client followed a \
             running job's events (GET /v1/jobs/{id}/events)",
        ),
    }
    drop(events);
}

/// Stopping `idlegrid local` lets a running task finish and report to the grid's coordinator
/// before the coordinator stops: the stop is prompt and loses no work.
#[tokio::test]
async fn stopping_a_local_grid_lets_running_tasks_report_first() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let log = dir.path().join("local.log");
    let args = ["--workers", "1", "--port", "0", "--lease-secs", "2"];
    let (mut local, record) = start_local(&home, &log, &args);
    let client = local_client(&record);
    let lines = input_lines(5);
    let expected = expected_output(&lines);
    // One chunk whose script takes 2 s: well within the workers' 10 s drain.
    // (The script cannot log its runs outside its sandbox: a second run would show as a
    // failed attempt, the expired lease of the first.)
    let params = serde_json::json!({"chunk_lines": 5, "sleep": 2.0});
    let id = try_submit_transform(&client, join_lines(&lines), 5, params)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", tail(&log, 40)));

    let scratch = home.join("local/workers/0/scratch");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_dir(&scratch)
        .map(|entries| entries.flatten().any(|e| e.path().join("started").exists()))
        .unwrap_or(false)
    {
        if Instant::now() >= deadline {
            panic!(
                "the task never started in {}\n{}",
                scratch.display(),
                tail(&log, 40)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    local.signal(Signal::SIGTERM);
    let signalled = Instant::now();
    let status = local
        .wait_timeout(Duration::from_secs(60))
        .unwrap_or_else(|| {
            panic!(
                "idlegrid local ignored SIGTERM for 60 s\n{}",
                tail(&log, 40)
            )
        });
    let took = signalled.elapsed();

    // Start the grid again on the same data and see what the first one recorded.
    let (_local, record) = start_local(&home, &log, &args);
    let client = local_client(&record);
    let job = wait_job(
        &client,
        id,
        Duration::from_secs(60),
        "completed",
        |j| j.state == JobState::Completed,
        || tail(&log, 60),
    )
    .await;
    let mut problems = Vec::new();
    if !status.success() {
        problems.push(format!("idlegrid local exited with {status:?} on SIGTERM"));
    }
    if took > Duration::from_secs(8) {
        problems.push(format!(
            "idlegrid local took {took:.1?} to stop on SIGTERM, though its one task needed \
             under 2 s more"
        ));
    }
    if job.chunks.failed_attempts != 0 {
        problems.push(format!(
            "the task that finished during the stop was not recorded: {} failed attempts",
            job.chunks.failed_attempts
        ));
    }
    assert!(
        problems.is_empty(),
        "{}\n{job:#?}\n--- local log ---\n{}",
        problems.join("\n"),
        tail(&log, 60)
    );
    let path = dir.path().join("output.txt");
    let sha = job
        .output
        .as_ref()
        .map(|o| o.sha256.clone())
        .unwrap_or_default();
    client
        .download_output(id, &path, &sha)
        .await
        .unwrap_or_else(|e| panic!("download: {e}"));
    if let Some(diff) = difference(&std::fs::read(&path).unwrap(), &expected) {
        panic!("{diff}");
    }
}

/// With `IDLEGRID_LOG_FORMAT=json` every log line is a JSON object with a level and a message,
/// for log collectors.
#[test]
fn logs_are_json_lines_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let mut cmd = idlegrid(dir.path());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--json"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("IDLEGRID_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log_file(&log));
    let mut serve = Proc::spawn("serve", cmd, &log);
    let deadline = Instant::now() + STARTUP;
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains('\n')
    {
        assert!(
            Instant::now() < deadline,
            "no log line: {}",
            serve.log_tail(5)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    serve.signal(Signal::SIGTERM);
    serve.wait_timeout(Duration::from_secs(10));
    let text = std::fs::read_to_string(&log).unwrap();
    let json_lines: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert!(!json_lines.is_empty(), "no JSON log lines in:\n{text}");
    for line in &json_lines {
        assert!(
            line["level"].is_string() && line["fields"]["message"].is_string(),
            "{line}"
        );
    }
}

/// `idlegrid bench dispatch` runs end to end and reports sane figures (not a timing test).
#[test]
fn bench_dispatch_smoke() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = idlegrid(dir.path());
    cmd.args(["bench", "dispatch", "--tasks", "3000", "--workers", "4"])
        .args(["--batch", "50", "--json"]);
    let bench = run_bounded(cmd, dir.path(), "bench", Duration::from_secs(120));
    assert!(bench.status.success(), "{}", bench.describe());
    let figures: serde_json::Value = serde_json::from_str(&bench.stdout)
        .unwrap_or_else(|e| panic!("bench printed no JSON ({e}): {}", bench.describe()));
    let number = |pointer: &str| {
        figures
            .pointer(pointer)
            .and_then(serde_json::Value::as_f64)
            .unwrap_or_else(|| panic!("no number at {pointer} in {figures:#}"))
    };
    assert_eq!(number("/tasks"), 3000.0, "{figures:#}");
    assert_eq!(figures["output_verified"], true, "{figures:#}");
    for pointer in [
        "/lifecycles_per_sec",
        "/lease_latency_ms/p50",
        "/lease_latency_ms/p99",
        "/lease_latency_ms/max",
        "/coordinator_rss_queued_mib",
        "/coordinator_peak_rss_mib",
    ] {
        let value = number(pointer);
        assert!(
            value.is_finite() && value > 0.0,
            "{pointer} = {value}: {figures:#}"
        );
    }
    let (p50, p99, max) = (
        number("/lease_latency_ms/p50"),
        number("/lease_latency_ms/p99"),
        number("/lease_latency_ms/max"),
    );
    assert!(p50 <= p99 && p99 <= max, "latency order: {figures:#}");
    assert!(
        number("/coordinator_peak_rss_mib") >= number("/coordinator_rss_queued_mib"),
        "peak RSS below the queued RSS: {figures:#}"
    );
}

/// `idlegrid bench worker-idle` runs a real coordinator and worker and reads the worker's
/// memory and CPU from /proc; a short run prints figures that make sense (the figures
/// themselves are for `docs/BENCHMARKS.md`, not asserted against the target here).
/// The trust bench at its smallest: both runs complete, and the figures it reports are the
/// ones the goals are read from.
#[test]
fn bench_trust_smoke() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = idlegrid(dir.path());
    cmd.args(["bench", "trust", "--honest", "2", "--majority", "2"])
        .args(["--seconds", "2", "--jobs", "1", "--lines", "4"])
        .args(["--warm-up", "2", "--json"]);
    let bench = run_bounded(cmd, dir.path(), "bench", Duration::from_secs(600));
    assert!(bench.status.success(), "{}", bench.describe());
    let figures: serde_json::Value = serde_json::from_str(&bench.stdout)
        .unwrap_or_else(|e| panic!("bench printed no JSON ({e}): {}", bench.describe()));
    for run in ["attacked", "mostly_honest"] {
        let f = &figures[run];
        let number = |name: &str| {
            f[name]
                .as_f64()
                .unwrap_or_else(|| panic!("no {run}.{name} in {figures:#}"))
        };
        assert_eq!(number("jobs"), 2.0, "{figures:#}");
        assert_eq!(number("completed"), 2.0, "{figures:#}");
        assert_eq!(number("forged_in_outputs"), 0.0, "{figures:#}");
        assert_eq!(number("honest_quarantined"), 0.0, "{figures:#}");
        // Every chunk of a job on devices not yet trusted is confirmed by a second result.
        assert!(number("extra_work") > 0.0, "{figures:#}");
    }
    assert_eq!(figures["attacked"]["cheaters"], 6, "{figures:#}");
    let sent = figures["attacked"]["forged_sent"].as_u64().unwrap_or(0);
    assert!(sent > 0, "the cheaters sent nothing: {figures:#}");
}

#[test]
fn bench_worker_idle_smoke() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = idlegrid(dir.path());
    cmd.args([
        "bench",
        "worker-idle",
        "--secs",
        "2",
        "--settle-secs",
        "1",
        "--json",
    ]);
    let bench = run_bounded(cmd, dir.path(), "bench", Duration::from_secs(120));
    assert!(bench.status.success(), "{}", bench.describe());
    let figures: serde_json::Value = serde_json::from_str(&bench.stdout)
        .unwrap_or_else(|e| panic!("bench printed no JSON ({e}): {}", bench.describe()));
    let number = |name: &str| {
        figures[name]
            .as_f64()
            .unwrap_or_else(|| panic!("no number {name} in {figures:#}"))
    };
    assert_eq!(figures["worker_alive"], true, "{figures:#}");
    assert!(number("secs") >= 2.0, "{figures:#}");
    let (now, most, peak) = (
        number("rss_mib"),
        number("max_sampled_rss_mib"),
        number("peak_rss_mib"),
    );
    assert!(0.0 < now && now <= most && most <= peak, "{figures:#}");
    let cpu = number("cpu_percent");
    assert!((0.0..=100.0).contains(&cpu), "{figures:#}");
}

/// Schemathesis (from PyPI, installed by `scripts/test.sh` into `target/pytools`) generates
/// requests from `/openapi.json` for every operation, with a customer key and with a worker
/// token: no answer may be a 5xx or contradict the document.
#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_answer_off_the_schema() {
    let tool = std::env::var_os("SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/pytools/bin/schemathesis")
        });
    assert!(
        tool.exists(),
        "{} is missing: scripts/test.sh installs Schemathesis there",
        tool.display()
    );
    let dir = tempfile::tempdir().unwrap();
    // No rate limit: the point is what each operation answers, not how fast it may be asked.
    let (_coordinator, ready) = start_coordinator_with(
        dir.path(),
        "127.0.0.1:0",
        30,
        &["--customer-rps", "0", "--worker-rps", "0"],
    );
    let registered = Client::register(
        &ready.url,
        &ready.enrollment_token,
        &idlegrid_api::tasks::RegisterWorker {
            name: "schemathesis".into(),
            capabilities: idlegrid_api::Capabilities {
                cores: 1,
                slots: 1,
                ..Default::default()
            },
        },
    )
    .await
    .unwrap();
    let schema = format!("{}/openapi.json", ready.url);
    for (who, secret) in [
        ("customer key", ready.api_key.clone()),
        ("worker token", registered.token.clone()),
    ] {
        let output = std::process::Command::new(&tool)
            // Longer than the longest lease long-poll (30 s), which it may well ask for.
            .args(["run", &schema, "--max-examples", "25", "--request-timeout", "45"])
            // The stream of all a customer's jobs never ends by itself (clients keep it open),
            // so every call would wait out the timeout; its events are tested in api.rs.
            .args(["--exclude-path", idlegrid_api::paths::JOBS_EVENTS])
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            ])
            .args(["--header", &format!("Authorization: Bearer {secret}")])
            // Its cache of examples goes to the test's own directory, not the checkout.
            .current_dir(dir.path())
            .output()
            .expect("schemathesis runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success(),
            "schemathesis with a {who} found problems:\n{text}\n--- coordinator log ---\n{}",
            tail(&dir.path().join("coordinator.log"), 40)
        );
        assert!(
            text.contains("passed"),
            "no test cases ran with a {who}:\n{text}"
        );
    }
}

/// Makes `dir/clip.mp4`: `seconds` of 640×360 test pattern at 25 fps with a keyframe every
/// 12 frames, and a sine tone.
fn test_clip(dir: &Path, seconds: u32) -> PathBuf {
    let clip = dir.join("clip.mp4");
    let made = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size=640x360:rate=25:duration={seconds}"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!("sine=frequency=440:duration={seconds}"))
        .args(["-c:v", "libx264", "-g", "12", "-c:a", "aac", "-shortest"])
        .arg(&clip)
        .status()
        .expect("ffmpeg runs");
    assert!(made.success());
    clip
}

/// Creates, uploads and runs a video-transcode job of `clip` in 1 s chunks.
async fn run_video_job(client: &Client, clip: &Path) -> JobId {
    let job = client
        .create_job(&idlegrid_api::jobs::CreateJob {
            app: "video-transcode".into(),
            params: serde_json::json!({"x264_preset": "veryfast"}),
            script: None,
            chunk_lines: None,
            chunk_seconds: Some(1.0),
            preferences: Default::default(),
            input_from: None,
            output_to: None,
            webhook: None,
        })
        .await
        .unwrap();
    client.upload_input_file(job.id, clip).await.unwrap();
    client.run_job(job.id).await.unwrap();
    job.id
}

/// The coordinator is SIGKILLed and restarted while a video job is partitioned, while its
/// chunks are dispatched and validated, and while it is assembled (when that window is caught:
/// it is short); the job completes with the very bytes of a run without faults.
#[tokio::test]
async fn a_video_job_survives_the_coordinator_killed_in_each_stage() {
    let scratch = tempfile::tempdir().unwrap();
    let clip = test_clip(scratch.path(), 12);

    // Without faults.
    let mut calm = Cluster::start(3);
    calm.add_workers(2);
    let client = calm.client();
    let id = run_video_job(&client, &clip).await;
    let reference = calm
        .wait_job(&client, id, Duration::from_secs(120), "completed", |j| {
            j.state == JobState::Completed
        })
        .await;
    let reference_sha = reference.output.expect("output").sha256;
    drop(calm);

    let mut cluster = Cluster::start(3);
    cluster.add_workers(2);
    let client = cluster.client();
    let id = run_video_job(&client, &clip).await;
    let mut kills = Vec::new();
    // Partitioning: the split of 12 chunks has only begun when `run` answers.
    let mut state = client.job(id).await.unwrap().state;
    while state == JobState::Submitted {
        tokio::time::sleep(Duration::from_millis(5)).await;
        state = client.job(id).await.unwrap().state;
    }
    cluster.kill_coordinator();
    kills.push(format!("in {state}"));
    cluster.restart_coordinator();
    // Dispatching and validating: a third of the chunks done.
    let client = cluster.client();
    let status = cluster
        .wait_job(
            &client,
            id,
            Duration::from_secs(120),
            "4 chunks done",
            |j| j.chunks.done >= 4,
        )
        .await;
    // (Chunks are dispatched while the split goes on, so the job may still be partitioning.)
    // Best with a result reported but not yet judged (the validator decodes it): wait a little
    // for one.
    let mut status = status;
    let mut validating = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && !status.state.is_terminal() {
        if status.chunks.results > status.chunks.done + status.chunks.rejected {
            validating = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        status = client.job(id).await.unwrap();
    }
    if matches!(status.state, JobState::Partitioning | JobState::Running) {
        cluster.kill_coordinator();
        kills.push(format!(
            "in running{}, {} of {:?} chunks done",
            if validating {
                " with a result being validated"
            } else {
                ""
            },
            status.chunks.done,
            status.chunks.total
        ));
        tokio::time::sleep(Duration::from_millis(500)).await;
        cluster.restart_coordinator();
    }
    // Assembling, if it is caught.
    let client = cluster.client();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let job = client.job(id).await.unwrap();
        if job.state == JobState::Assembling {
            cluster.kill_coordinator();
            kills.push("in assembling".to_string());
            cluster.restart_coordinator();
            break;
        }
        if job.state.is_terminal() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let client = cluster.client();
    let job = cluster
        .wait_job(&client, id, Duration::from_secs(120), "completed", |j| {
            j.state == JobState::Completed
        })
        .await;
    eprintln!(
        "coordinator killed {} times: {}",
        kills.len(),
        kills.join("; ")
    );
    assert!(kills.len() >= 2, "{kills:?}");
    assert!(
        kills[0].contains("partitioning"),
        "the first kill missed the split: {kills:?}"
    );
    assert_eq!(
        job.output.expect("output").sha256,
        reference_sha,
        "the output differs from a run without faults (kills: {kills:?})"
    );
}

/// The coordinator SIGKILLed while an input is being uploaded: the upload fails, nothing of it
/// is kept (the job has no input, the blob store no partial file), and after a restart the
/// same upload goes through and the job completes with the exact output.
#[tokio::test]
async fn a_coordinator_killed_during_an_upload_keeps_nothing_of_it() {
    let mut cluster = Cluster::start(3);
    cluster.add_workers(2);
    let client = cluster.client();
    let job = create_transform(&client, 20000, serde_json::json!({"chunk_lines": 20000}))
        .await
        .unwrap();
    // Large enough to be still streaming when the coordinator dies.
    let lines = input_lines(400_000);
    let input = join_lines(&lines);
    let file = cluster.path().join("input.txt");
    std::fs::write(&file, &input).unwrap();
    let uploading = {
        let client = cluster.client();
        let file = file.clone();
        tokio::spawn(async move { client.upload_input_file(job.id, &file).await })
    };
    let blobs = cluster.path().join("coordinator/blobs");
    let deadline = Instant::now() + Duration::from_secs(30);
    // Kill once bytes are arriving: a staging file exists under a local blob store; an S3
    // multipart upload shows nothing until it completes, so there, a moment after it starts.
    let embedded = cluster.backends.is_empty();
    let job_blobs = blobs.join(format!("jobs/{}", job.id));
    if embedded {
        while files_in(&job_blobs) == 0 && !uploading.is_finished() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    } else {
        // On a quiet machine the whole upload to the S3 server can take under 150 ms.
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert!(
        !uploading.is_finished(),
        "the upload ended before the coordinator could be killed; use a larger input"
    );
    cluster.kill_coordinator();
    let failed = uploading.await.unwrap();
    assert!(
        failed.is_err(),
        "the upload cannot have succeeded: {failed:?}"
    );
    cluster.restart_coordinator();
    let client = cluster.client();
    let status = client.job(job.id).await.unwrap();
    assert!(
        status.input.is_none(),
        "a broken upload became the input: {status:#?}"
    );
    // The same upload again, then the job.
    client.upload_input_file(job.id, &file).await.unwrap();
    client.run_job(job.id).await.unwrap();
    let done = cluster
        .wait_job(
            &client,
            job.id,
            Duration::from_secs(120),
            "completed",
            |j| j.state == JobState::Completed,
        )
        .await;
    cluster
        .check_output(&client, &done, &expected_output(&lines))
        .await;
    // Only the input and the output remain in the blob store for the job (no staging files).
    if embedded {
        assert_eq!(files_in(&job_blobs), 2);
    }
}

/// Regular files under `dir`, recursively (0 if it does not exist).
fn files_in(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() { files_in(&path) } else { 1 }
        })
        .sum()
}

/// What the forging device did.
#[derive(Debug, Default, Clone, Copy)]
struct Forger {
    results: u64,
    forged: u64,
    quarantined: bool,
}

/// A device played by the test: it does `transform.py`'s work itself (as [`expected_output`]
/// does) and forges 3 of every 10 chunks with a wrong digest, which the app's validator cannot
/// see — only replication can. Which chunks it forges depends on the chunk alone, so devices
/// of one owner forge the same chunks the same way and agree. It rides out coordinator outages
/// and stops when quarantined or when `stop` is set.
async fn forging_device(
    url: String,
    enrollment: String,
    name: &str,
    scratch: PathBuf,
    stop: tokio_util::sync::CancellationToken,
) -> Forger {
    use base64::Engine;
    use idlegrid_api::tasks::{LeaseRequest, RegisterWorker, Report, ReportItem, ReportOutcome};
    let mut forger = Forger::default();
    let registered = Client::register(
        &url,
        &enrollment,
        &RegisterWorker {
            name: name.into(),
            capabilities: idlegrid_api::Capabilities {
                cores: 1,
                memory_mb: 4096,
                os: "linux".into(),
                arch: "x86_64".into(),
                python: Some("3.11.2".into()),
                ffmpeg: None,
                benchmark: 100.0,
                slots: 1,
                allows: Default::default(),
                ..Default::default()
            },
        },
    )
    .await
    .expect("the forger registers");
    let worker = Client::new(&url, &registered.token).unwrap();
    std::fs::create_dir_all(&scratch).unwrap();
    while !stop.is_cancelled() {
        let request = LeaseRequest {
            max_tasks: 1,
            wait_ms: 500,
        };
        let grant = match worker.lease(&request).await {
            Ok(grant) => grant,
            Err(e) if e.code() == Some("worker_quarantined") => {
                forger.quarantined = true;
                break;
            }
            // The coordinator is away: try again shortly.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        for lease in grant.leases {
            let chunk_lines = grant
                .jobs
                .iter()
                .find(|j| j.job_id == lease.job_id)
                .and_then(|j| j.params["chunk_lines"].as_u64())
                .expect("chunk_lines param");
            let input = scratch.join("input");
            if worker
                .download_lease_input(lease.lease_id, &input)
                .await
                .is_err()
            {
                continue;
            }
            let text = std::fs::read_to_string(&input).unwrap();
            let base = lease.chunk_index * chunk_lines;
            let forge = matches!(
                (lease.job_id.0 as u64 * 7 + lease.chunk_index) % 10,
                0 | 3 | 6
            );
            let mut output = String::new();
            for (i, line) in text.lines().enumerate() {
                let digest = if forge {
                    "0".repeat(16)
                } else {
                    sha256_bytes(line.as_bytes())[..16].to_string()
                };
                let reversed: String = line.chars().rev().collect();
                output.push_str(&format!("{}:{digest}:{reversed}\n", base + i as u64));
            }
            forger.results += 1;
            forger.forged += u64::from(forge);
            let report = Report {
                reports: vec![ReportItem {
                    lease_id: lease.lease_id,
                    task_id: lease.task_id,
                    outcome: ReportOutcome::Completed {
                        sha256: sha256_bytes(output.as_bytes()),
                        size: output.len() as u64,
                        inline_base64: Some(
                            base64::engine::general_purpose::STANDARD.encode(&output),
                        ),
                    },
                }],
            };
            if let Err(e) = worker.report(&report).await
                && e.code() == Some("worker_quarantined")
            {
                forger.quarantined = true;
                return forger;
            }
        }
    }
    forger
}

/// The chaos test, on an open grid: 4 worker processes of 4 owners and two forging devices of
/// a fifth owner (forging the same chunks the same way, so they agree) run 20 adaptively
/// replicated jobs while workers are SIGKILLed and restarted at random and the coordinator is
/// SIGKILLed and restarted twice. Every job completes with exactly the output of a fault-free
/// run (the reference `expected_output`, which the fault-free tests above check the real
/// scripts against), so no forged result was accepted: the forgers are one party, and their
/// agreement counts once. `IDLEGRID_CHAOS_SEED` replays a run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_workers_and_coordinator_killed_and_a_forger_and_every_output_exact() {
    use rand::{Rng, SeedableRng};
    const JOBS: usize = 20;
    const LINES: usize = 24;
    const CHUNK_LINES: u64 = 3;
    let seed: u64 = std::env::var("IDLEGRID_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut cluster = Cluster::start(2);
    let operator = Client::new(&cluster.ready.url, &cluster.ready.operator_key).unwrap();
    let owner = async |name: &str| {
        operator
            .create_owner(&idlegrid_api::accounts::NewOwner {
                name: name.into(),
                customer: None,
            })
            .await
            .unwrap()
            .enrollment_token
    };
    for i in 0..4 {
        let token = owner(&format!("owner-{i}")).await;
        cluster.owners.insert(format!("w{i}"), token);
    }
    let mallory = owner("mallory").await;
    cluster.add_workers(4);
    let client = cluster.client();
    let preferences = Preferences {
        max_attempts: 20,
        replication: Some(idlegrid_api::Replication::ADAPTIVE),
        placement: Some(idlegrid_api::Placement::Any),
        ..Preferences::default()
    };
    let mut jobs = Vec::new();
    for j in 0..JOBS {
        let lines: Vec<String> = input_lines(LINES)
            .into_iter()
            .map(|l| format!("job {j} {l}"))
            .collect();
        let params = serde_json::json!({"chunk_lines": CHUNK_LINES, "sleep": 0.2});
        let job = create_transform_with(&client, CHUNK_LINES, params, preferences.clone())
            .await
            .unwrap_or_else(|e| cluster.fail(&format!("create_job: {e}")));
        client
            .upload_input_bytes(job.id, join_lines(&lines).into())
            .await
            .unwrap();
        client.run_job(job.id).await.unwrap();
        jobs.push((job.id, expected_output(&lines)));
    }
    let stop = tokio_util::sync::CancellationToken::new();
    let forgers: Vec<_> = ["forger-a", "forger-b"]
        .into_iter()
        .map(|name| {
            let (url, token) = (cluster.ready.url.clone(), mallory.clone());
            let (scratch, stop) = (cluster.path().join(name), stop.clone());
            tokio::spawn(async move { forging_device(url, token, name, scratch, stop).await })
        })
        .collect();

    let total_chunks = (JOBS * LINES) as u64 / CHUNK_LINES;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(240);
    let (mut worker_kills, mut coordinator_kills) = (0u32, 0u32);
    let mut down: Option<(usize, Instant)> = None;
    loop {
        let mut done = 0;
        let mut all_completed = true;
        for (id, _) in &jobs {
            match client.job(*id).await {
                Ok(job) => {
                    if job.state == JobState::Failed || job.state == JobState::Cancelled {
                        cluster.fail(&format!("job {id} ended badly: {job:#?}"));
                    }
                    done += job.chunks.done;
                    all_completed &= job.state == JobState::Completed;
                }
                Err(_) => all_completed = false,
            }
        }
        if all_completed {
            break;
        }
        if Instant::now() >= deadline {
            cluster.fail(&format!(
                "not every job completed within 240 s ({done} of {total_chunks} chunks done; \
                 seed {seed})"
            ));
        }
        // The coordinator dies twice: a third and two thirds of the way through.
        let due = match coordinator_kills {
            0 => done * 3 >= total_chunks,
            1 => done * 3 >= 2 * total_chunks,
            _ => false,
        };
        if due {
            cluster.kill_coordinator();
            coordinator_kills += 1;
            tokio::time::sleep(Duration::from_millis(500)).await;
            cluster.restart_coordinator();
        }
        // One worker at a time is down; it comes back after a while.
        match down {
            Some((i, since))
                if since.elapsed() > Duration::from_millis(rng.random_range(300..1500)) =>
            {
                let name = cluster.workers[i].name.clone();
                cluster.workers[i] = cluster.spawn_worker(&name);
                down = None;
            }
            None if rng.random_bool(0.3) => {
                let i = rng.random_range(0..cluster.workers.len());
                cluster.workers[i].kill_hard();
                worker_kills += 1;
                down = Some((i, Instant::now()));
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    stop.cancel();
    let mut forger = Forger::default();
    for f in forgers {
        let f = f.await.unwrap();
        forger.results += f.results;
        forger.forged += f.forged;
        forger.quarantined |= f.quarantined;
    }

    let (mut chunks, mut results, mut rejected, mut failed_attempts) = (0, 0, 0, 0);
    let mut outputs_exact = 0;
    for (id, expected) in &jobs {
        let job = client.job(*id).await.unwrap();
        // Exactly the honest bytes: no forged result became part of an output.
        cluster.check_output(&client, &job, expected).await;
        outputs_exact += 1;
        chunks += job.chunks.total.unwrap_or(0);
        results += job.chunks.results;
        rejected += job.chunks.rejected;
        failed_attempts += job.chunks.failed_attempts;
    }
    // Every attempt that ran: results sent in, plus attempts that failed without one.
    let executions = results + failed_attempts - rejected;
    let figures = serde_json::json!({
        "seed": seed,
        "jobs": JOBS,
        "chunks": chunks,
        "seconds": started.elapsed().as_secs_f64(),
        "worker_kills": worker_kills,
        "coordinator_kills": coordinator_kills,
        "reassigned_attempts": failed_attempts,
        "forged_sent": forger.forged,
        "results_rejected": rejected,
        "outputs_exact": outputs_exact,
        "forger_quarantined": forger.quarantined,
        "executions": executions,
        "extra_executions": executions - chunks,
    });
    println!("chaos figures: {figures}");
    // The books balance after all of it: every transaction sums to zero, no job was charged
    // past its quote, and the customer paid exactly what the jobs were charged.
    let operator = Client::new(&cluster.ready.url, &cluster.ready.operator_key).unwrap();
    let books = operator.balance().await.unwrap();
    assert_eq!(books.books_balance, Some(true), "{books:?}");
    let mut charged = 0;
    for (id, _) in &jobs {
        let cost = client
            .job(*id)
            .await
            .unwrap()
            .cost
            .expect("a completed job has its cost");
        assert!(cost.charged <= cost.quote, "job {id}: {cost:?}");
        charged += cost.charged.0;
    }
    let balance = client.balance().await.unwrap();
    assert_eq!(balance.held.0, 0, "{balance:?}");
    assert_eq!(balance.balance.0, 100_000_000 - charged, "{balance:?}");
    assert_eq!(coordinator_kills, 2, "{figures}");
    assert!(worker_kills >= 1, "{figures}");
    if forger.forged > 0 {
        assert!(rejected >= 1, "forgeries went unnoticed: {figures}");
    }
}

/// Failover: two coordinators share PostgreSQL, Redis and an S3 bucket, two worker processes
/// serve each; one coordinator is SIGKILLed mid-job and the video job completes through the
/// other with exactly the output of a run without faults.
#[tokio::test]
async fn a_video_job_survives_one_of_two_coordinators_killed() {
    let Some(backends) = fresh_shared_backends() else {
        assert!(
            std::env::var("IDLEGRID_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "the services' variables are not set: run scripts/services.sh start"
        );
        eprintln!("PostgreSQL, Redis and S3 are not configured: failover test skipped");
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let clip = test_clip(scratch.path(), 10);

    // Without faults, embedded.
    let reference_sha = {
        let mut calm = Cluster::start_on(3, Vec::new());
        calm.add_workers(2);
        let client = calm.client();
        let id = run_video_job(&client, &clip).await;
        let done = calm
            .wait_job(&client, id, Duration::from_secs(120), "completed", |j| {
                j.state == JobState::Completed
            })
            .await;
        done.output.expect("output").sha256
    };

    let mut cluster = Cluster::start_on(3, backends.clone());
    let other_dir = cluster.path().join("other");
    std::fs::create_dir_all(other_dir.join("home")).unwrap();
    let extra: Vec<&str> = backends.iter().map(String::as_str).collect();
    let (_other, other) = start_coordinator_with(&other_dir, "127.0.0.1:0", 3, &extra);
    cluster.add_workers(2);
    for name in ["w-other-0", "w-other-1"] {
        let worker = cluster.spawn_worker_at(name, &other.url);
        cluster.workers.push(worker);
    }
    let client = cluster.client();
    let id = run_video_job(&client, &clip).await;
    let before = cluster
        .wait_job(
            &client,
            id,
            Duration::from_secs(120),
            "3 chunks done",
            |j| j.chunks.done >= 3,
        )
        .await;
    if before.state == JobState::Completed {
        cluster.fail("the job finished before a coordinator could be killed");
    }
    cluster.kill_coordinator();
    // The customer's key works on the other coordinator: they share the records.
    let survivor = Client::new(&other.url, &cluster.ready.api_key).unwrap();
    let job = cluster
        .wait_job(&survivor, id, Duration::from_secs(180), "completed", |j| {
            j.state == JobState::Completed
        })
        .await;
    eprintln!(
        "failover: killed one coordinator at {} of {:?} chunks; {} failed attempts retried",
        before.chunks.done, job.chunks.total, job.chunks.failed_attempts
    );
    assert_eq!(
        job.output.expect("output").sha256,
        reference_sha,
        "the output differs from a run without faults"
    );
}
