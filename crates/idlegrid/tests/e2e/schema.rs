//! The API against its OpenAPI document, probed by Schemathesis.

use crate::harness::*;

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
            // so every call would wait out the timeout; its events are tested in the API tests.
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
