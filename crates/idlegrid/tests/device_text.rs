//! What a device sends is data, never control: a forging device's failure reason full of
//! terminal escape sequences (clear the screen, set the title, a link, a fake line saying the
//! job completed) reaches the customer's terminal through `idlegrid run` and `idlegrid job`,
//! and the coordinator's log, only as visible text on one line.

mod common;

use common::{Coordinator, idlegrid};
use idlegrid_api::tasks::{LeaseRequest, RegisterWorker, Report, ReportItem, ReportOutcome};
use idlegrid_api::{JobId, JobState};
use idlegrid_client::Client;
use std::time::Duration;

/// The reason the device gives: ESC, CSI, OSC (title, hyperlink), BEL, an 8-bit CSI, and line
/// breaks before text that would pass for the CLI's own.
const ATTACK: &str = "boom\x1b[2J\x1b[H\x1b]0;pwned\x07\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\\u{9b}31m\r\njob 1 completed: 3 chunks, output written\nend";

/// What the reason looks like shown: every one of those characters escaped.
const SHOWN: &str = "boom\\x1b[2J\\x1b[H\\x1b]0;pwned\\x07\\x1b]8;;https://evil.example/\\x1b\\click\\x1b]8;;\\x1b\\\\u{9b}31m\\r\\njob 1 completed: 3 chunks, output written\\nend";

/// Whether `text` holds a character a terminal would act on.
fn acts_on_a_terminal(text: &str) -> bool {
    text.chars()
        .any(|c| c != '\n' && idlegrid_domain::text::is_hidden(c))
}

/// Plays the forging device: takes job `job`'s only chunk and fails it with [`ATTACK`].
async fn fail_with_the_attack(coordinator: &Coordinator, job: JobId) {
    let capabilities = idlegrid_api::Capabilities {
        cores: 1,
        memory_mb: 4096,
        os: "linux".into(),
        arch: "x86_64".into(),
        python: Some("3.11".into()),
        benchmark: 100.0,
        slots: 1,
        ..Default::default()
    };
    let device = idlegrid_testkit::register_device(
        &coordinator.ready.url,
        &coordinator.ready.enrollment_token,
        "forger",
        capabilities,
    )
    .await;
    loop {
        let grant = device
            .lease(&LeaseRequest {
                max_tasks: 1,
                wait_ms: 1000,
            })
            .await
            .unwrap();
        if let Some(lease) = grant.leases.into_iter().find(|l| l.job_id == job) {
            device
                .report(&Report {
                    reports: vec![ReportItem {
                        lease_id: lease.lease_id,
                        task_id: lease.task_id,
                        outcome: ReportOutcome::Failed {
                            reason: ATTACK.into(),
                        },
                        log: None,
                    }],
                })
                .await
                .unwrap();
            return;
        }
    }
}

#[tokio::test]
async fn a_failure_reason_full_of_escape_sequences_is_printed_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(dir.path(), &[]);
    let script = dir.path().join("job.py");
    std::fs::write(&script, "print('hi')\n").unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "one line\n").unwrap();

    // `idlegrid run` follows the job and says why it failed.
    let run = idlegrid(&dir.path().join("home"))
        .args([
            "run",
            script.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
        ])
        .args(["--output", dir.path().join("out.txt").to_str().unwrap()])
        .args([
            "--max-attempts",
            "1",
            "--coordinator",
            &coordinator.ready.url,
        ])
        .args(["--api-key", &coordinator.ready.api_key])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let job = JobId(1);
    let customer = coordinator.ready.customer();
    while customer.job(job).await.is_err() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    fail_with_the_attack(&coordinator, job).await;
    let ran = tokio::task::spawn_blocking(move || run.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(!ran.status.success());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&ran.stdout),
        String::from_utf8_lossy(&ran.stderr)
    );
    assert!(!acts_on_a_terminal(&said), "{said:?}");
    assert!(said.contains(SHOWN), "{said}");
    // The fake line stays inside the reason's.
    assert!(
        said.lines().all(|l| !l.starts_with("job 1 completed")),
        "{said}"
    );

    // The record keeps the reason as the device gave it.
    let failed = customer.job(job).await.unwrap();
    assert_eq!(failed.state, JobState::Failed);
    assert!(failed.error.unwrap().contains(ATTACK));

    // `idlegrid job` shows it escaped.
    let shown = idlegrid(&dir.path().join("home"))
        .args(["job", "1", "--coordinator", &coordinator.ready.url])
        .args(["--api-key", &coordinator.ready.api_key])
        .output()
        .unwrap();
    assert!(shown.status.success());
    let printed = String::from_utf8_lossy(&shown.stdout);
    assert!(!acts_on_a_terminal(&printed), "{printed:?}");
    let error_line = printed
        .lines()
        .find(|l| l.starts_with("  error:"))
        .unwrap_or_else(|| panic!("no error line in {printed}"));
    assert!(error_line.ends_with(SHOWN), "{error_line}");
    assert!(printed.lines().all(|l| !l.starts_with("job 1 completed")));

    // `--json` keeps the reason as stored, in JSON escapes only.
    let json = idlegrid(&dir.path().join("home"))
        .args([
            "job",
            "1",
            "--json",
            "--coordinator",
            &coordinator.ready.url,
        ])
        .args(["--api-key", &coordinator.ready.api_key])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&json.stdout);
    assert!(!acts_on_a_terminal(&printed), "{printed:?}");
    let parsed: serde_json::Value = serde_json::from_str(&printed).unwrap();
    assert!(parsed["error"].as_str().unwrap().ends_with(ATTACK));

    // So does the coordinator's log, each entry on its line.
    coordinator_log_shows_it(&dir.path().join("serve.log"));
}

fn coordinator_log_shows_it(log: &std::path::Path) {
    let text = std::fs::read_to_string(log).unwrap();
    let raw: Vec<&str> = text.lines().filter(|l| acts_on_a_terminal(l)).collect();
    assert!(
        raw.is_empty(),
        "log lines with raw control characters: {raw:?}"
    );
    let ended = text
        .lines()
        .find(|l| l.contains("job ended"))
        .unwrap_or_else(|| panic!("no job ended in the log:\n{text}"));
    assert!(ended.contains(SHOWN), "{ended}");
    assert!(
        text.lines().all(|l| !l.starts_with("job 1 completed")),
        "{text}"
    );
}

#[tokio::test]
async fn a_device_name_full_of_escape_sequences_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(dir.path(), &[]);
    let err = Client::register(
        &coordinator.ready.url,
        &coordinator.ready.enrollment_token,
        &RegisterWorker {
            name: "laptop\x1b[2J\x1b]0;pwned\x07".into(),
            capabilities: idlegrid_api::Capabilities {
                cores: 1,
                slots: 1,
                ..Default::default()
            },
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.status(), Some(422));
    assert_eq!(err.code(), Some("invalid_name"));
    assert!(
        err.to_string().contains("the control character \\x1b"),
        "{err}"
    );
    let owner = Client::new(&coordinator.ready.url, &coordinator.ready.enrollment_token).unwrap();
    assert!(owner.owner_devices().await.unwrap().devices.is_empty());
}
