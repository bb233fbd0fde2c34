//! The running worker's local control socket, and its client: `idlegrid worker pause |
//! resume | status`.
//!
//! The worker listens on [`SOCKET_FILE`] in its state directory, mode 0600, and answers only
//! its own user (and root), checked by the peer's credentials. A connection carries one
//! request and one reply, each a line of JSON. Pausing writes [`PAUSED_FILE`] beside it, so a
//! paused worker starts paused again after a restart; resuming removes it.

use crate::WorkerSummary;
use crate::controls::Controls;
use anyhow::Context;
use idlegrid_api::tasks::WorkerStatus;
use idlegrid_api::{JobId, LeaseId, TaskId, WorkerId};
use idlegrid_client::Client;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

/// The socket's name in the state directory.
pub const SOCKET_FILE: &str = "control.sock";
/// Present in the state directory while the owner has paused the worker.
pub const PAUSED_FILE: &str = "paused";
/// Longest request line read.
const MAX_REQUEST: u64 = 4096;
/// How long `status` waits for the coordinator's record of the device.
const RECORD_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the client waits for the worker's reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(15);

/// What a client asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Request {
    /// Stop working (hand running tasks back) until resumed, across restarts.
    Pause,
    /// Work again, as the other controls allow.
    Resume,
    /// Say what the worker is doing.
    Status,
}

/// What the worker answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Reply {
    /// Done as asked.
    Done,
    /// The worker's status.
    Status(Box<Status>),
    /// The request failed.
    Error(String),
}

/// What the worker is doing, for its owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum State {
    /// Running tasks.
    Working,
    /// Allowed to work, waiting for tasks.
    Idle,
    /// Paused by its owner.
    Paused,
    /// One of the owner's conditions does not hold.
    NotAllowed {
        /// Which one.
        reason: String,
    },
}

/// One running task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskStatus {
    /// Its lease.
    pub lease_id: LeaseId,
    /// The task.
    pub task_id: TaskId,
    /// Its job.
    pub job_id: JobId,
    /// Its chunk's index in the job.
    pub chunk_index: u64,
    /// Fraction done, if the script reports it.
    pub progress: Option<f32>,
    /// Seconds since it started.
    pub elapsed_secs: u64,
}

/// The answer to `idlegrid worker status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// What it is doing.
    #[serde(flatten)]
    pub state: State,
    /// The coordinator it works for.
    pub coordinator: String,
    /// Its id there.
    pub worker_id: WorkerId,
    /// The tasks it runs.
    pub tasks: Vec<TaskStatus>,
    /// What it did since it started.
    pub session: WorkerSummary,
    /// The coordinator's record of the device: results over its whole life, and earnings.
    pub record: Option<WorkerStatus>,
    /// Why `record` is missing.
    pub record_error: Option<String>,
    /// The owner's controls it runs under.
    pub controls: Controls,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Working => format!("working ({} running)", self.tasks.len()),
            State::Idle => "idle (waiting for tasks)".to_string(),
            State::Paused => "paused by owner (`idlegrid worker resume` to go on)".to_string(),
            State::NotAllowed { reason } => format!("not allowed: {reason}"),
        };
        writeln!(f, "state:    {state}")?;
        writeln!(f, "worker:   {} at {}", self.worker_id, self.coordinator)?;
        for task in &self.tasks {
            let progress = task
                .progress
                .map_or_else(|| "running".to_string(), |p| format!("{:.0}%", p * 100.0));
            writeln!(
                f,
                "task:     {} of job {} (chunk {}): {progress}, {} s",
                task.task_id, task.job_id, task.chunk_index, task.elapsed_secs
            )?;
        }
        let s = &self.session;
        writeln!(
            f,
            "session:  {} done, {} failed, {} handed back, {} lost",
            s.succeeded, s.failed, s.released, s.lost
        )?;
        match (&self.record, &self.record_error) {
            (Some(record), _) => {
                writeln!(
                    f,
                    "total:    {} valid, {} invalid, {} timed out{}",
                    record.valid,
                    record.invalid,
                    record.timed_out,
                    if record.quarantined {
                        " (quarantined)"
                    } else {
                        ""
                    }
                )?;
                writeln!(f, "earned:   {} credits", record.earned)?;
            }
            (None, error) => writeln!(
                f,
                "total:    unknown ({})",
                // The coordinator's words, shown as text.
                idlegrid_domain::text::shown(
                    error.as_deref().unwrap_or("no answer from the coordinator")
                )
            )?,
        }
        let controls = self.controls.describe();
        if controls.is_empty() {
            write!(f, "controls: none")
        } else {
            write!(f, "controls: {}", controls.join(" "))
        }
    }
}

/// What the control socket needs of the running worker.
pub(crate) trait Worker: Send + Sync {
    /// Pauses or resumes it.
    fn set_paused(&self, paused: bool) -> std::io::Result<()>;
    /// Its status, without the coordinator's record.
    fn snapshot(&self) -> Status;
    /// Its client for the coordinator.
    fn client(&self) -> Client;
}

/// Whether the owner paused the worker of `state_dir`.
pub(crate) fn is_paused(state_dir: &Path) -> bool {
    state_dir.join(PAUSED_FILE).exists()
}

/// Records the pause in `state_dir`, so it outlives the worker.
pub(crate) fn store_paused(state_dir: &Path, paused: bool) -> std::io::Result<()> {
    let path = state_dir.join(PAUSED_FILE);
    if paused {
        std::fs::write(
            path,
            "paused by the device's owner (`idlegrid worker resume`)\n",
        )
    } else {
        match std::fs::remove_file(path) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err),
            _ => Ok(()),
        }
    }
}

/// Listens on the socket of `state_dir` (replacing a stale one: the caller holds the state
/// directory's lock), readable and writable by its owner only.
pub(crate) fn bind(state_dir: &Path) -> anyhow::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let path = state_dir.join(SOCKET_FILE);
    match std::fs::remove_file(&path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            return Err(err).with_context(|| format!("cannot remove {}", path.display()));
        }
        _ => {}
    }
    let listener = UnixListener::bind(&path).with_context(|| {
        format!(
            "cannot listen on {} (a socket path is at most 107 bytes: use a shorter --state-dir)",
            path.display()
        )
    })?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot set the permissions of {}", path.display()))?;
    Ok(listener)
}

/// Answers requests on `listener` until `stop`.
pub(crate) async fn serve(
    listener: UnixListener,
    worker: Arc<dyn Worker>,
    stop: CancellationToken,
) {
    loop {
        let stream = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::warn!("control socket: cannot accept ({err})");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let worker = worker.clone();
        tokio::spawn(async move {
            if let Err(err) = answer(stream, worker.as_ref()).await {
                tracing::warn!("control socket: {err:#}");
            }
        });
    }
}

async fn answer(stream: UnixStream, worker: &dyn Worker) -> anyhow::Result<()> {
    let me = nix::unistd::geteuid().as_raw();
    let peer = stream.peer_cred().context("cannot tell who connected")?;
    if peer.uid() != me && peer.uid() != 0 {
        anyhow::bail!("refused a connection from user {}", peer.uid());
    }
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    tokio::io::AsyncReadExt::take(BufReader::new(read), MAX_REQUEST)
        .read_line(&mut line)
        .await?;
    let reply = match serde_json::from_str::<Request>(&line) {
        Ok(Request::Pause) => done(worker.set_paused(true)),
        Ok(Request::Resume) => done(worker.set_paused(false)),
        Ok(Request::Status) => {
            let mut status = worker.snapshot();
            match tokio::time::timeout(RECORD_TIMEOUT, worker.client().me()).await {
                Ok(Ok(record)) => status.record = Some(record),
                Ok(Err(err)) => status.record_error = Some(err.to_string()),
                Err(_) => {
                    status.record_error = Some("the coordinator did not answer in time".into())
                }
            }
            Reply::Status(Box::new(status))
        }
        Err(err) => Reply::Error(format!("not a request: {err}")),
    };
    let mut text = serde_json::to_string(&reply)?;
    text.push('\n');
    write.write_all(text.as_bytes()).await?;
    Ok(())
}

fn done(result: std::io::Result<()>) -> Reply {
    match result {
        Ok(()) => Reply::Done,
        Err(err) => Reply::Error(format!("cannot record the pause: {err}")),
    }
}

/// Pauses the worker running in `state_dir`: it stops leasing and hands its running tasks
/// back at once, and stays paused across restarts until resumed.
pub async fn pause(state_dir: &Path) -> anyhow::Result<()> {
    expect_done(request(state_dir, Request::Pause).await?)
}

/// Lets the worker running in `state_dir` work again, as its other controls allow.
pub async fn resume(state_dir: &Path) -> anyhow::Result<()> {
    expect_done(request(state_dir, Request::Resume).await?)
}

/// The status of the worker running in `state_dir`.
pub async fn status(state_dir: &Path) -> anyhow::Result<Status> {
    match request(state_dir, Request::Status).await? {
        Reply::Status(status) => Ok(*status),
        Reply::Error(err) => anyhow::bail!("the worker says: {err}"),
        Reply::Done => anyhow::bail!("the worker answered a status request with no status"),
    }
}

fn expect_done(reply: Reply) -> anyhow::Result<()> {
    match reply {
        Reply::Done => Ok(()),
        Reply::Error(err) => anyhow::bail!("the worker says: {err}"),
        Reply::Status(_) => anyhow::bail!("the worker answered with a status"),
    }
}

async fn request(state_dir: &Path, request: Request) -> anyhow::Result<Reply> {
    let path: PathBuf = state_dir.join(SOCKET_FILE);
    let stream = match UnixStream::connect(&path).await {
        Ok(stream) => stream,
        Err(err)
            if matches!(
                err.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            anyhow::bail!(
                "no worker is running for the state directory {dir} (or it has not reached its coordinator yet); start one with `idlegrid worker --coordinator URL --token TOKEN --state-dir {dir}`",
                dir = state_dir.display()
            );
        }
        Err(err) => {
            return Err(err).with_context(|| format!("cannot connect to {}", path.display()));
        }
    };
    let exchange = async {
        let (read, mut write) = stream.into_split();
        let mut text = serde_json::to_string(&request)?;
        text.push('\n');
        write.write_all(text.as_bytes()).await?;
        let mut line = String::new();
        BufReader::new(read).read_line(&mut line).await?;
        anyhow::Ok(serde_json::from_str::<Reply>(&line).context("the worker's reply is not JSON")?)
    };
    tokio::time::timeout(REPLY_TIMEOUT, exchange)
        .await
        .context("the worker did not answer in time")?
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A worker that only records what it is asked.
    struct Recorder {
        dir: PathBuf,
        paused: Mutex<Vec<bool>>,
    }

    impl Worker for Recorder {
        fn set_paused(&self, paused: bool) -> std::io::Result<()> {
            store_paused(&self.dir, paused)?;
            self.paused.lock().unwrap().push(paused);
            Ok(())
        }
        fn snapshot(&self) -> Status {
            Status {
                state: State::NotAllowed {
                    reason: "the device runs on its battery".into(),
                },
                coordinator: "http://127.0.0.1:9".into(),
                worker_id: WorkerId(7),
                tasks: vec![TaskStatus {
                    lease_id: LeaseId(3),
                    task_id: TaskId(4),
                    job_id: JobId(5),
                    chunk_index: 6,
                    progress: Some(0.25),
                    elapsed_secs: 12,
                }],
                session: WorkerSummary {
                    succeeded: 2,
                    ..WorkerSummary::default()
                },
                record: None,
                record_error: None,
                controls: Controls {
                    on_battery: false,
                    ..Controls::default()
                },
            }
        }
        fn client(&self) -> Client {
            // Port 9 refuses connections: the coordinator is away.
            Client::new("http://127.0.0.1:9", "igw_token").unwrap()
        }
    }

    #[tokio::test]
    async fn pause_resume_and_status_reach_the_worker_through_its_private_socket() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let err = status(dir.path()).await.unwrap_err().to_string();
        assert!(
            err.starts_with("no worker is running for the state directory")
                && err.contains("idlegrid worker --coordinator"),
            "{err}"
        );

        let listener = bind(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(SOCKET_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let worker = Arc::new(Recorder {
            dir: dir.path().to_path_buf(),
            paused: Mutex::default(),
        });
        let stop = CancellationToken::new();
        let server = tokio::spawn(serve(listener, worker.clone(), stop.clone()));

        pause(dir.path()).await.unwrap();
        assert!(is_paused(dir.path()));
        resume(dir.path()).await.unwrap();
        assert!(!is_paused(dir.path()));
        assert_eq!(*worker.paused.lock().unwrap(), [true, false]);

        let status = status(dir.path()).await.unwrap();
        assert!(status.record.is_none() && status.record_error.is_some());
        let text = status.to_string();
        for expected in [
            "state:    not allowed: the device runs on its battery",
            "task:     4 of job 5 (chunk 6): 25%, 12 s",
            "session:  2 done, 0 failed, 0 handed back, 0 lost",
            "total:    unknown",
            "controls: on_battery=deny",
        ] {
            assert!(text.contains(expected), "{expected:?} not in\n{text}");
        }
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["state"], "not_allowed");
        assert_eq!(json["reason"], "the device runs on its battery");

        stop.cancel();
        server.await.unwrap();
    }
}
