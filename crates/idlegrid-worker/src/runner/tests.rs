//! Runs real `python3` scripts through the runner and the rlimit sandbox.

use super::*;
use crate::sandbox::RlimitSandbox;
use std::sync::OnceLock;

/// The real interpreter behind `python3` (a pyenv shim would need its environment).
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let out = std::process::Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("these tests need python3 on PATH");
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
}

fn limits(timeout_secs: u64) -> TaskLimits {
    TaskLimits {
        timeout_secs,
        memory_mb: 256,
        max_output_bytes: 1 << 20,
    }
}

struct Case {
    dir: tempfile::TempDir,
    limits: TaskLimits,
    owner: OwnerLimits,
}

impl Case {
    fn new(source: &str) -> Case {
        Self::with_limits(source, limits(20))
    }

    fn with_limits(source: &str, limits: TaskLimits) -> Case {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bundle")).unwrap();
        std::fs::create_dir(dir.path().join("work")).unwrap();
        std::fs::create_dir(dir.path().join("work/input")).unwrap();
        std::fs::create_dir(dir.path().join("work/output")).unwrap();
        std::fs::write(dir.path().join("bundle/main.py"), source).unwrap();
        std::fs::write(dir.path().join("work/input/chunk.txt"), "hello\nworld\n").unwrap();
        Case {
            dir,
            limits,
            owner: OwnerLimits::default(),
        }
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    async fn run_with(&self, progress: &Progress, cancel: &CancellationToken) -> Finished {
        let entrypoint = self.dir.path().join("bundle/main.py");
        let work = self.work();
        let params = serde_json::json!({"factor": 2});
        let script = Script {
            python: python(),
            entrypoint: &entrypoint,
            workdir: &work,
            params: &params,
            task_params: &serde_json::json!({"frames": 48}),
            task_id: TaskId(41),
            chunk_index: 3,
            limits: &self.limits,
            owner: &self.owner,
        };
        run(&script, &RlimitSandbox, progress, cancel)
            .await
            .unwrap()
    }

    async fn run(&self) -> (Finished, Result<Output, String>) {
        let finished = self
            .run_with(&Progress::default(), &CancellationToken::new())
            .await;
        let judged = judge(&finished, &self.work().join("output"), &self.limits);
        (finished, judged)
    }
}

/// Dead, or a zombie waiting for a parent that may never reap it (PID 1 in a container).
fn is_dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

#[tokio::test]
async fn success_with_one_output_file() {
    let case = Case::new(
        "import json, os\n\
         params = json.loads(os.environ['IDLEGRID_PARAMS'])\n\
         text = open('input/chunk.txt').read()\n\
         print('idlegrid:progress 0.5')\n\
         print('some chatter')\n\
         with open('output/result.txt', 'w') as f:\n\
         \x20   f.write(text.upper() * params['factor'])\n",
    );
    let progress = Progress::default();
    assert_eq!(progress.get(), None);
    let finished = case.run_with(&progress, &CancellationToken::new()).await;
    assert_eq!(progress.get(), Some(0.5));
    let output = judge(&finished, &case.work().join("output"), &case.limits).unwrap();
    assert_eq!(output.path, case.work().join("output/result.txt"));
    assert_eq!(output.size, 24);
    let mut file = open_output(&output).unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut file, &mut text).unwrap();
    assert_eq!(text, "HELLO\nWORLD\nHELLO\nWORLD\n");
}

#[tokio::test]
async fn nonzero_exit_reports_the_stderr_tail() {
    let case = Case::new(
        "import sys\n\
         sys.stderr.write('x' * 40000 + '\\n')\n\
         sys.stderr.write('bad input on line 7\\n')\n\
         sys.exit(3)\n",
    );
    let (finished, judged) = case.run().await;
    assert!(finished.stderr_tail.len() <= RULES.stderr_tail_bytes + "…".len());
    assert!(finished.stderr_tail.starts_with('…'));
    let reason = judged.unwrap_err();
    assert!(
        reason.starts_with("script exited with status 3: …xxx"),
        "{reason}"
    );
    assert!(reason.ends_with("bad input on line 7"), "{reason}");
    assert!(reason.len() <= RULES.max_reason_bytes, "{}", reason.len());
}

#[tokio::test]
async fn timeout_kills_the_whole_process_group() {
    let case = Case::with_limits(
        "import subprocess\n\
         child = subprocess.Popen(['sleep', '100'])\n\
         with open('child.pid', 'w') as f:\n\
         \x20   f.write(str(child.pid))\n\
         while True:\n\
         \x20   pass\n",
        limits(1),
    );
    let started = Instant::now();
    let (finished, judged) = case.run().await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(finished.ended, Ended::TimedOut);
    assert_eq!(
        judged.unwrap_err(),
        "script timed out after 1 s and was killed"
    );
    let pid: i32 = std::fs::read_to_string(case.work().join("child.pid"))
        .unwrap()
        .parse()
        .unwrap();
    // SIGKILL delivery is asynchronous; give the kernel a moment.
    let deadline = Instant::now() + Duration::from_secs(2);
    while !is_dead(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(is_dead(pid), "the script's child {pid} survived");
}

#[tokio::test]
async fn stray_children_die_when_the_script_exits() {
    let case = Case::new(
        "import subprocess\n\
         child = subprocess.Popen(['sleep', '100'])\n\
         with open('child.pid', 'w') as f:\n\
         \x20   f.write(str(child.pid))\n\
         open('output/out', 'w').write('ok')\n",
    );
    let (_, judged) = case.run().await;
    assert!(judged.is_ok());
    let pid: i32 = std::fs::read_to_string(case.work().join("child.pid"))
        .unwrap()
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while !is_dead(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(is_dead(pid), "the script's child {pid} survived");
}

#[tokio::test]
async fn cancelling_kills_the_script() {
    let case = Case::new("import time\ntime.sleep(100)\n");
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        trigger.cancel();
    });
    let started = Instant::now();
    let finished = case.run_with(&Progress::default(), &cancel).await;
    assert_eq!(finished.ended, Ended::Cancelled);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn memory_bomb_fails_under_the_address_space_limit() {
    let case = Case::new("data = b'x' * 10**10\nopen('output/out', 'wb').write(data)\n");
    let (_, judged) = case.run().await;
    let reason = judged.unwrap_err();
    assert!(
        reason.starts_with("script exited with status 1: "),
        "{reason}"
    );
    assert!(reason.contains("MemoryError"), "{reason}");
    assert!(
        reason.ends_with("(the task may use at most 256 MiB of memory)"),
        "{reason}"
    );
}

#[tokio::test]
async fn no_output_file() {
    let (_, judged) = Case::new("pass\n").run().await;
    assert_eq!(
        judged.unwrap_err(),
        "script wrote no output (output/ is empty)"
    );
}

#[tokio::test]
async fn two_output_files() {
    let case = Case::new("open('output/b', 'w').write('1')\nopen('output/a', 'w').write('2')\n");
    let (_, judged) = case.run().await;
    assert_eq!(
        judged.unwrap_err(),
        "output/ must hold exactly one file, found 2: a, b"
    );
}

#[tokio::test]
async fn output_symlink_is_refused() {
    let case = Case::new("import os\nos.symlink('/etc/passwd', 'output/out')\n");
    let (_, judged) = case.run().await;
    assert_eq!(
        judged.unwrap_err(),
        "output/out is a symbolic link; the output must be a regular file"
    );
}

#[tokio::test]
async fn writing_past_the_output_limit_fails() {
    let small = TaskLimits {
        max_output_bytes: 1000,
        ..limits(20)
    };
    // Python swallows the write error of a file closed at exit: the file is cut at the limit
    // and the script exits 0, yet the output must not pass.
    let case = Case::with_limits(
        "open('output/out', 'wb').write(b'x' * 5000)\n",
        small.clone(),
    );
    let (_, judged) = case.run().await;
    assert_eq!(
        judged.unwrap_err(),
        "output is over the 1000-byte limit (the script was stopped from writing more)"
    );
    // Exactly at the limit is fine.
    let case = Case::with_limits(
        "open('output/out', 'wb').write(b'x' * 1000)\n",
        small.clone(),
    );
    assert_eq!(case.run().await.1.unwrap().size, 1000);
    let case = Case::with_limits(
        "with open('output/out', 'wb') as f:\n    f.write(b'x' * 5000)\n",
        small,
    );
    let (_, judged) = case.run().await;
    let reason = judged.unwrap_err();
    assert!(
        reason.starts_with("script exited with status 1: "),
        "{reason}"
    );
    assert!(
        reason.ends_with("(the task may write at most 1000 bytes per file)"),
        "{reason}"
    );
}

#[test]
fn output_over_the_size_limit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("out"), vec![b'x'; 2000]).unwrap();
    let finished = Finished {
        ended: Ended::Exited(ExitStatus::from_raw(0)),
        stderr_tail: String::new(),
        elapsed: Duration::ZERO,
        memory_kills: 0,
        process_limit_hits: 0,
    };
    let small = TaskLimits {
        max_output_bytes: 1000,
        ..limits(20)
    };
    assert_eq!(
        judge(&finished, dir.path(), &small).unwrap_err(),
        "output is 2000 bytes, over the 1000-byte limit"
    );
    assert_eq!(
        judge(&finished, dir.path(), &limits(20)).unwrap().size,
        2000
    );
}

#[test]
fn signals_are_named() {
    let finished = Finished {
        ended: Ended::Exited(ExitStatus::from_raw(9)),
        stderr_tail: String::new(),
        elapsed: Duration::ZERO,
        memory_kills: 0,
        process_limit_hits: 0,
    };
    assert_eq!(
        judge(&finished, Path::new("/nonexistent"), &limits(20)).unwrap_err(),
        "script killed by signal 9 (SIGKILL)"
    );
}

/// What the task's cgroup counted names the reason of a failure.
#[test]
fn memory_kills_and_refused_forks_are_named() {
    let killed = Finished {
        ended: Ended::Exited(ExitStatus::from_raw(9)),
        stderr_tail: String::new(),
        elapsed: Duration::ZERO,
        memory_kills: 1,
        process_limit_hits: 0,
    };
    assert_eq!(
        judge(&killed, Path::new("/nonexistent"), &limits(20)).unwrap_err(),
        "the task used more than 256 MiB of memory (all its processes together) and the kernel killed 1 of its processes"
    );
    let refused = Finished {
        ended: Ended::Exited(ExitStatus::from_raw(1 << 8)),
        stderr_tail: "OSError: cannot fork".into(),
        elapsed: Duration::ZERO,
        memory_kills: 0,
        process_limit_hits: 3,
    };
    assert_eq!(
        judge(&refused, Path::new("/nonexistent"), &limits(20)).unwrap_err(),
        "script exited with status 1: OSError: cannot fork (the task may run at most 256 processes and threads at once)"
    );
}

#[tokio::test]
async fn environment_holds_only_the_documented_variables() {
    let case = Case::new(
        "import json, os\n\
         json.dump(dict(os.environ), open('output/env.json', 'w'))\n",
    );
    let (_, judged) = case.run().await;
    let output = judged.unwrap();
    let env: std::collections::BTreeMap<String, String> =
        serde_json::from_slice(&std::fs::read(output.path).unwrap()).unwrap();
    let keys: Vec<&str> = env.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "HOME",
            "IDLEGRID_CHUNK_INDEX",
            "IDLEGRID_PARAMS",
            "IDLEGRID_TASK",
            "IDLEGRID_TASK_ID",
            "LANG",
            "PATH",
            "PYTHONDONTWRITEBYTECODE",
            "PYTHONUNBUFFERED",
            "TMPDIR",
        ]
    );
    assert_eq!(env["IDLEGRID_PARAMS"], r#"{"factor":2}"#);
    assert_eq!(env["IDLEGRID_TASK"], r#"{"frames":48}"#);
    assert_eq!(env["IDLEGRID_TASK_ID"], "41");
    assert_eq!(env["IDLEGRID_CHUNK_INDEX"], "3");
    assert_eq!(env["HOME"], case.work().display().to_string());
}

#[test]
fn progress_lines_are_parsed_strictly() {
    assert_eq!(parse_progress(b"idlegrid:progress 0.25"), Some(0.25));
    assert_eq!(parse_progress(b"idlegrid:progress 1\r"), Some(1.0));
    assert_eq!(parse_progress(b"idlegrid:progress NaN"), None);
    assert_eq!(parse_progress(b"idlegrid:progress"), None);
    assert_eq!(parse_progress(b"progress 0.5"), None);
    let progress = Progress::default();
    progress.set(7.0);
    assert_eq!(progress.get(), Some(1.0));
}

#[tokio::test]
async fn overlong_stdout_lines_are_skipped() {
    let mut stdout = Vec::new();
    stdout.extend(std::iter::repeat_n(b'y', 100_000));
    stdout.extend_from_slice(b"idlegrid:progress 0.9\n");
    let progress = Progress::default();
    scan_progress(stdout.as_slice(), progress.clone()).await;
    assert_eq!(progress.get(), None);
    // The line after an overlong one counts, even without a final newline.
    stdout.extend_from_slice(b"idlegrid:progress 0.3");
    scan_progress(stdout.as_slice(), progress.clone()).await;
    assert_eq!(progress.get(), Some(0.3));
}

#[test]
fn long_reasons_keep_the_end_of_stderr() {
    let tail = format!("{}\nValueError: bad row", "é".repeat(3000));
    let reason = compose("script exited with status 1", &tail, " (hint)");
    assert!(reason.len() <= RULES.max_reason_bytes);
    assert!(
        reason.starts_with("script exited with status 1: …é"),
        "{reason}"
    );
    assert!(reason.ends_with("ValueError: bad row (hint)"));
    assert_eq!(compose("head", "", " (hint)"), "head (hint)");
}

#[tokio::test]
async fn the_owners_disk_cap_stops_a_script_below_the_jobs_allowance() {
    // The job would allow 16 MiB (twice its 8 MiB output limit); the owner allows 1.
    let mut case = Case::with_limits(
        "import time\n\
         with open('big.bin', 'wb') as f:\n\
         \x20   f.write(b'x' * (3 << 20))\n\
         time.sleep(5)\n",
        TaskLimits {
            max_output_bytes: 8 << 20,
            ..limits(20)
        },
    );
    case.owner.disk_bytes = Some(1 << 20);
    let (finished, judged) = case.run().await;
    assert!(
        matches!(
            finished.ended,
            Ended::DiskFull {
                allowed: 1_048_576,
                by_owner: true,
                ..
            }
        ),
        "{:?}",
        finished.ended
    );
    let reason = judged.unwrap_err();
    assert!(
        reason.contains("the device's owner allows 1 MiB per task"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_failure_names_no_place_on_the_device() {
    let case = Case::new("import os\nopen(os.path.join(os.getcwd(), 'input', 'missing.txt'))\n");
    let (finished, _) = case.run().await;
    let tail = &finished.stderr_tail;
    assert!(tail.contains("FileNotFoundError"), "{tail}");
    assert!(tail.contains("app/main.py"), "{tail}");
    assert!(tail.contains("./input/missing.txt"), "{tail}");
    let root = case.dir.path().to_string_lossy().to_string();
    assert!(!tail.contains(&root), "{tail}");
    assert!(!tail.contains("/tmp"), "{tail}");
}
