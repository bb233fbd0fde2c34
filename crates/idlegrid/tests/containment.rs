//! A worker SIGKILLed while its task's processes run, with the real `idlegrid` binary: the
//! task's script, a helper it started and a child that left its session all end within
//! seconds, though nothing of the worker is left to kill them; the restarted worker removes
//! the dead one's scratch directory and goes on serving.
//!
//! Every process the test starts is SIGKILLed when dropped, and every process of the task is
//! killed if the test finds it alive, so a failing test leaves nothing running.

use idlegrid_api::JobState;
use idlegrid_api::jobs::{CreateJob, Preferences};
use idlegrid_client::Client;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The task script: starts a helper (FFmpeg when there is one, as a video task would) and a
/// child that leaves its session and is orphaned at once, writes the three pids to `pids`,
/// then works for `sleep` seconds.
const SCRIPT: &str = r#"
import json, os, shutil, subprocess, sys, time
params = json.loads(os.environ["IDLEGRID_PARAMS"])
ffmpeg = shutil.which("ffmpeg")
if ffmpeg:
    helper = subprocess.Popen([ffmpeg, "-nostdin", "-loglevel", "quiet", "-re", "-f", "lavfi",
                               "-i", "anullsrc", "-f", "null", "-"])
else:
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        with open("escapee", "w") as f:
            f.write(str(os.getpid()))
        end = time.time() + 120
        while time.time() < end:
            time.sleep(0.05)
    os._exit(0)
os.wait()
while not os.path.exists("escapee"):
    time.sleep(0.01)
with open("pids.tmp", "w") as f:
    f.write("%d %d %s" % (os.getpid(), helper.pid, open("escapee").read()))
os.rename("pids.tmp", "pids")
time.sleep(float(params["sleep"]))
with open(os.path.join("output", "out.txt"), "w") as out:
    out.write("done\n")
"#;

/// A child process, SIGKILLed (and reaped) when dropped unless it already ended.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn kill_hard(&mut self) -> std::process::ExitStatus {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        self.child.wait().expect("wait")
    }

    fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill_hard();
        }
    }
}

/// The binary, with an environment that cannot reach the user's grid or configuration.
fn idlegrid(home: &Path, log: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_idlegrid"));
    for (var, _) in std::env::vars() {
        if var.starts_with("IDLEGRID_") || var == "RUST_LOG" {
            cmd.env_remove(var);
        }
    }
    let file = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file")
    };
    cmd.env("IDLEGRID_HOME", home)
        .stdin(Stdio::null())
        .stdout(file())
        .stderr(file());
    cmd
}

/// `idlegrid serve` on a free port with `lease_secs`; its ready line's URL, customer key and
/// enrollment token.
fn start_coordinator(dir: &Path, lease_secs: u64) -> (Proc, String, String, String) {
    let log = dir.join("coordinator.log");
    let mut cmd = idlegrid(&dir.join("home"), &log);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--json"])
        .args(["--lease-secs", &lease_secs.to_string()])
        .arg("--data-dir")
        .arg(dir.join("coordinator"))
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().expect("idlegrid serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let proc = Proc { child, log };
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("a ready line");
    let ready: serde_json::Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("ready line {line:?}: {e}\n{}", proc.log()));
    let field = |name: &str| ready[name].as_str().expect(name).to_string();
    (
        proc,
        field("url"),
        field("api_key"),
        field("enrollment_token"),
    )
}

fn start_worker(dir: &Path, url: &str, token: &str) -> Proc {
    let log = dir.join("worker.log");
    let mut cmd = idlegrid(&dir.join("home"), &log);
    cmd.args(["worker", "--coordinator", url, "--token", token])
        .args(["--slots", "1", "--name", "w"])
        .arg("--state-dir")
        .arg(dir.join("w"));
    Proc {
        child: cmd.spawn().expect("idlegrid worker starts"),
        log,
    }
}

/// Whether `pid` exists at all (a zombie, left for a parent to reap, does).
fn exists(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Polls `done` every 20 ms for at most `limit`; whether it held.
fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn a_worker_killed_mid_task_leaves_no_process_and_its_restart_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("home")).unwrap();
    let (_coordinator, url, api_key, token) = start_coordinator(dir.path(), 3);
    let mut worker = start_worker(dir.path(), &url, &token);

    let client = Client::new(&url, &api_key).unwrap();
    let job = client
        .create_job(&CreateJob {
            app: "python-map".into(),
            params: serde_json::json!({"sleep": 3}),
            script: Some(SCRIPT.into()),
            chunk_lines: Some(1),
            chunk_seconds: None,
            preferences: Preferences::default(),
            input_from: None,
            output_to: None,
            webhook: None,
        })
        .await
        .unwrap();
    client
        .upload_input_bytes(job.id, b"one line\n".to_vec().into())
        .await
        .unwrap();
    client.run_job(job.id).await.unwrap();

    // The task runs: its scratch directory holds the pids of its three processes.
    let scratch = dir.path().join("w").join("scratch");
    let mut found = None;
    let started = wait_until(Duration::from_secs(60), || {
        let Ok(entries) = std::fs::read_dir(&scratch) else {
            return false;
        };
        found = entries.flatten().find_map(|entry| {
            let pids = std::fs::read_to_string(entry.path().join("pids")).ok()?;
            let pids: Vec<i32> = pids
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect();
            (pids.len() == 3).then(|| (entry.path(), pids))
        });
        found.is_some()
    });
    assert!(started, "the task never started\n{}", worker.log());
    let (lease_dir, pids) = found.unwrap();

    let status = worker.kill_hard();
    assert_eq!(status.signal(), Some(9), "{}", worker.log());
    let all_gone = wait_until(Duration::from_secs(10), || pids.iter().all(|&p| !exists(p)));
    if !all_gone {
        for &pid in &pids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        panic!(
            "processes of the task outlived the killed worker: {:?}",
            pids.iter().filter(|&&p| exists(p)).collect::<Vec<_>>()
        );
    }
    assert!(
        lease_dir.exists(),
        "nothing removes a killed worker's scratch"
    );

    // Restarted on the same state, the worker clears the dead one's scratch and serves on:
    // the task, its lease expired, runs again there.
    let worker = start_worker(dir.path(), &url, &token);
    assert!(
        wait_until(Duration::from_secs(30), || !lease_dir.exists()),
        "the restarted worker left {} behind\n{}",
        lease_dir.display(),
        worker.log()
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let job = client.job(job.id).await.unwrap();
        if job.state == JobState::Completed {
            assert!(job.chunks.failed_attempts >= 1, "{job:#?}");
            break;
        }
        assert!(
            !job.state.is_terminal() && Instant::now() < deadline,
            "the job did not complete: {job:#?}\n{}",
            worker.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
