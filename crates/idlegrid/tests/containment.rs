//! A worker SIGKILLed while its task's processes run, with the real `idlegrid` binary: the
//! task's script, a helper it started and a child that left its session all end within
//! seconds, though nothing of the worker is left to kill them; the restarted worker removes
//! the dead one's scratch directory and goes on serving.
//!
//! Every process the test starts is SIGKILLed when dropped, and every process of the task is
//! killed if the test finds it alive, so a failing test leaves nothing running.

mod common;

use common::Coordinator;
use idlegrid_api::JobState;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
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
    let coordinator = Coordinator::start(dir.path(), &["--lease-secs", "3"]);
    let token = coordinator.ready.enrollment_token.clone();
    let log = || std::fs::read_to_string(dir.path().join("w.log")).unwrap_or_default();
    let mut worker = coordinator.worker(dir.path(), &token, "w", 1);

    let client = coordinator.ready.customer();
    let job = client
        .create_job(&idlegrid_testkit::python_map_job(
            SCRIPT,
            Some(1),
            serde_json::json!({"sleep": 3}),
        ))
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
    assert!(started, "the task never started\n{}", log());
    let (lease_dir, pids) = found.unwrap();

    let status = worker.kill_hard();
    assert_eq!(status.signal(), Some(9), "{}", log());
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
    let _worker = coordinator.worker(dir.path(), &token, "w", 1);
    assert!(
        wait_until(Duration::from_secs(30), || !lease_dir.exists()),
        "the restarted worker left {} behind\n{}",
        lease_dir.display(),
        log()
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
            log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
