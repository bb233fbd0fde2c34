//! The command line: `run` without a coordinator, `local` grids, `serve` and `local` stopping
//! on SIGTERM, and JSON logs.

use crate::harness::*;

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
        list.jobs.iter().any(|j| j.id == JobId(id)
            && j.state == JobState::Completed
            && j.name.as_deref() == input.file_name().and_then(|n| n.to_str())),
        "{}",
        context(
            &format!("jobs should list job {id} as completed, named after its input"),
            &jobs
        )
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

/// An output that could not be written stops `run` before anything is uploaded, run or started.
#[test]
fn an_unwritable_output_fails_before_any_grid_starts() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "a\n").unwrap();
    let script = script_path("transform.py");
    for (output, says) in [
        (dir.path().join("missing/out.txt"), "does not exist"),
        (dir.path().to_path_buf(), "is a directory"),
    ] {
        let run = crate::common::idlegrid(&dir.path().join("home"))
            .args(["run", script.to_str().unwrap(), "--input"])
            .arg(&input)
            .arg("--output")
            .arg(&output)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
        assert!(
            !stderr.contains("throw-away"),
            "no grid was started: {stderr}"
        );
    }
}
