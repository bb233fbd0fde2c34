//! Choosing the sandbox at start-up, and checking what it really enforces on this kernel by
//! running a probe script in it — file access, sockets, signals to the worker, and a child
//! that leaves the script's session to outlive it: the worker says what holds and what does
//! not, and refuses to run tasks with a sandbox that leaks unless started with
//! `--weak-sandbox`.

use crate::runner::{self, Ended, OwnerLimits, Progress, Script};
use crate::sandbox::{RlimitSandbox, Sandbox};
use idlegrid_api::TaskId;
use idlegrid_api::tasks::TaskLimits;
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;

/// The probe: tries what a hostile script would and lists the attempts that succeeded in
/// `output/leaks.json`; it also leaves the pid of a child that tried to outlive it in
/// `escapee`. It is run with the sandbox's own limits, from a scratch directory like a task's.
const PROBE: &str = r#"
import json, os, socket, sys, time
leaks = []
task = json.loads(os.environ["IDLEGRID_TASK"])
secret = task["secret"]
try:
    open(secret).read()
    leaks.append("it can read files outside its scratch directory")
except OSError:
    pass
try:
    open(os.path.join(os.path.dirname(secret), "probe-write"), "w").write("x")
    leaks.append("it can write outside its scratch directory")
except OSError:
    pass
try:
    socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
    leaks.append("it can open network sockets")
except OSError:
    pass
try:
    os.kill(task["worker_pid"], 0)
    leaks.append("it can signal the worker")
except OSError:
    pass
# A child in a session of its own, orphaned at once: it must end with the task.
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        with open("escapee.tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename("escapee.tmp", "escapee")
        time.sleep(30)
    os._exit(0)
os.wait()
deadline = time.time() + 10
while not os.path.exists("escapee") and time.time() < deadline:
    time.sleep(0.01)
with open(os.path.join("output", "leaks.json"), "w") as f:
    json.dump(leaks, f)
"#;

/// The sandbox chosen, with the interpreter that runs in it.
pub struct Chosen {
    /// The sandbox.
    pub sandbox: Box<dyn Sandbox>,
    /// The Python interpreter scripts run with (the configured one, or the system's when the
    /// configured one is out of the sandbox user's reach).
    pub python: PathBuf,
    /// What the probe found the sandbox lets through; empty when it holds.
    pub leaks: Vec<String>,
    /// Who scripts run as, for the log.
    pub user: String,
}

/// Picks the strongest sandbox this system offers and checks it with the probe. Errors when it
/// leaks and `weak_allowed` is false, naming what leaks and the flag.
pub async fn choose(
    python: &Path,
    state_dir: &Path,
    scratch_root: &Path,
    weak_allowed: bool,
) -> anyhow::Result<Chosen> {
    let mut tried = Vec::new();
    for (sandbox, user) in candidates(python).await {
        for interpreter in interpreters(python) {
            match probe(sandbox.as_ref(), &interpreter, state_dir, scratch_root).await {
                Ok(leaks) => {
                    if !leaks.is_empty() && !weak_allowed {
                        anyhow::bail!(
                            "the task sandbox ({}) does not hold on this system: {}. Task scripts are other people's code; start the worker with --weak-sandbox to run them anyway",
                            sandbox.name(),
                            leaks.join("; ")
                        );
                    }
                    return Ok(Chosen {
                        sandbox,
                        python: interpreter,
                        leaks,
                        user,
                    });
                }
                Err(err) => tried.push(format!(
                    "{} with {}: {err}",
                    sandbox.name(),
                    interpreter.display()
                )),
            }
        }
    }
    anyhow::bail!(
        "no task sandbox could run Python here ({})",
        tried.join("; ")
    )
}

/// The configured interpreter, then the system's (a root worker's own Python, e.g. under
/// `/root/.pyenv`, is out of reach of the unprivileged user scripts run as).
fn interpreters(python: &Path) -> Vec<PathBuf> {
    let mut all = vec![python.to_path_buf()];
    let system = PathBuf::from("/usr/bin/python3");
    if system.exists() && system != python {
        all.push(system);
    }
    all
}

/// Sandboxes to try, strongest first, with who they run scripts as.
#[cfg_attr(not(target_os = "linux"), allow(unused_variables))]
async fn candidates(python: &Path) -> Vec<(Box<dyn Sandbox>, String)> {
    let mut all: Vec<(Box<dyn Sandbox>, String)> = Vec::new();
    #[cfg(target_os = "linux")]
    {
        let mut read_only = runtime_dirs(python).await;
        read_only.extend(runtime_dirs(Path::new("/usr/bin/python3")).await);
        match crate::sandbox::LinuxSandbox::new(read_only) {
            Ok(sandbox) => {
                let who = describe(sandbox.separation());
                all.push((Box::new(sandbox), who));
            }
            Err(err) => tracing::warn!("the Linux sandbox is unavailable: {err}"),
        }
    }
    all.push((Box::new(RlimitSandbox), "the worker's own user".to_string()));
    all
}

/// Who a sandbox's scripts run as, and in what, for the log.
#[cfg(target_os = "linux")]
fn describe(separation: crate::sandbox::Separation) -> String {
    let who = if separation.own_users {
        format!(
            "a user of each task's own (uids from {})",
            crate::sandbox::users::FIRST_UID
        )
    } else {
        "the worker's own user".to_string()
    };
    match separation.cgroups {
        Some(version) => format!("{who}, in a cgroup {version} of each task's own"),
        None => who,
    }
}

/// Directories outside the system ones that the interpreter and FFmpeg need to read: the
/// interpreter's installation (`sys.prefix`, `sys.base_prefix`) and where `ffmpeg` lives.
#[cfg(target_os = "linux")]
async fn runtime_dirs(python: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let output = tokio::process::Command::new(python)
        .args([
            "-c",
            "import sys, shutil; print(sys.prefix); print(sys.base_prefix); print(shutil.which('ffmpeg') or '')",
        ])
        .output()
        .await;
    if let Ok(output) = output {
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let path = PathBuf::from(line.trim());
            if !path.is_absolute() {
                continue;
            }
            let dir = if path.is_file() {
                path.parent().map(Path::to_path_buf)
            } else {
                Some(path)
            };
            if let Some(dir) = dir.and_then(|d| d.canonicalize().ok()) {
                dirs.push(dir);
            }
        }
    }
    dirs
}

/// Runs the probe in `sandbox` with `python`; the leaks it found, or why it could not run.
async fn probe(
    sandbox: &dyn Sandbox,
    python: &Path,
    state_dir: &Path,
    scratch_root: &Path,
) -> Result<Vec<String>, String> {
    let secret = state_dir.join("probe-secret");
    std::fs::write(&secret, "not for scripts").map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(state_dir.join("probe-write"));
    let scratch = tempfile::Builder::new()
        .prefix("probe-")
        .tempdir_in(scratch_root)
        .map_err(|e| e.to_string())?;
    let entrypoint = scratch.path().join("probe.py");
    std::fs::write(&entrypoint, PROBE).map_err(|e| e.to_string())?;
    std::fs::create_dir(scratch.path().join("output")).map_err(|e| e.to_string())?;
    let params = serde_json::json!({});
    let task = serde_json::json!({
        "secret": secret.display().to_string(),
        "worker_pid": std::process::id(),
    });
    let limits = TaskLimits {
        timeout_secs: 30,
        memory_mb: 1024,
        max_output_bytes: 1024 * 1024,
    };
    let script = Script {
        python,
        entrypoint: &entrypoint,
        workdir: scratch.path(),
        params: &params,
        task_params: &task,
        task_id: TaskId(0),
        chunk_index: 0,
        limits: &limits,
        owner: &OwnerLimits::default(),
    };
    let finished = runner::run(
        &script,
        sandbox,
        &Progress::default(),
        &CancellationToken::new(),
    )
    .await
    .map_err(|e| e.to_string());
    let _ = std::fs::remove_file(&secret);
    let _ = std::fs::remove_file(state_dir.join("probe-write"));
    let escaped = outlived(&scratch.path().join("escapee"));
    let finished = finished?;
    match finished.ended {
        Ended::Exited(status) if status.success() => {}
        _ => {
            return Err(format!(
                "the probe script failed: {}",
                finished.stderr_tail.lines().last().unwrap_or("no message")
            ));
        }
    }
    let report = std::fs::read_to_string(scratch.path().join("output").join("leaks.json"))
        .map_err(|e| format!("the probe script left no report: {e}"))?;
    let mut leaks: Vec<String> = serde_json::from_str(&report)
        .map_err(|e| format!("the probe script reported {report:?}: {e}"))?;
    match escaped {
        Some(true) => leaks.push("a process it starts can outlive its task".into()),
        Some(false) => {}
        None => leaks.push("it could not start a process to outlive its task".into()),
    }
    Ok(leaks)
}

/// Whether the process whose pid the probe left in `pid_file` still runs (it is killed, so the
/// probe leaves nothing behind); `None` when the probe left no pid.
fn outlived(pid_file: &Path) -> Option<bool> {
    let pid: i32 = std::fs::read_to_string(pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let pid = nix::unistd::Pid::from_raw(pid);
    let running = if Path::new("/proc/self").exists() {
        // A zombie runs no code: it only waits for a parent to reap it.
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit_once(')')
                .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']))
        })
    } else {
        nix::sys::signal::kill(pid, None).is_ok()
    };
    if running {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    }
    Some(running)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_left_running_is_found_and_killed() {
        use std::os::unix::process::ExitStatusExt;
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("escapee");
        assert_eq!(outlived(&pid_file), None);
        let mut left = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        std::fs::write(&pid_file, left.id().to_string()).unwrap();
        assert_eq!(outlived(&pid_file), Some(true));
        assert_eq!(left.wait().unwrap().signal(), Some(9));
        assert_eq!(outlived(&pid_file), Some(false));
    }

    /// The supervisor ends the probe's escaping child whatever the sandbox (the weak one
    /// leaks everything else).
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn no_process_outlives_the_probe_under_the_supervisor() {
        let dir = tempfile::tempdir().unwrap();
        let leaks = probe(&RlimitSandbox, Path::new("python3"), dir.path(), dir.path())
            .await
            .unwrap();
        assert!(
            !leaks.iter().any(|leak| leak.contains("outlive")),
            "{leaks:?}"
        );
        assert!(!leaks.is_empty());
    }
}
