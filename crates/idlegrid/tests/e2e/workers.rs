//! Worker agents: many of them giving the exact output, killed or paused mid-task, restarted
//! with new allowances, and installed as a service.

use crate::harness::*;

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
