//! What every request meets around the handlers: clear errors, credentials and their kinds,
//! rate limits, and the operator's probes and metrics.

use crate::harness::*;

#[tokio::test]
async fn bad_requests_get_clear_errors() {
    let grid = TestGrid::start(|c| c.max_upload_bytes = 1000).await;
    let http = reqwest::Client::new();
    let key = &grid.credentials.api_key;

    let malformed = http
        .post(format!("{}/v1/jobs", grid.url))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let body: serde_json::Value = malformed.json().await.unwrap();
    assert_eq!(body["error"]["code"], "malformed_json");

    let unauthenticated = http
        .get(format!("{}/v1/jobs", grid.url))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    let wrong = http
        .get(format!("{}/v1/jobs", grid.url))
        .bearer_auth("igk_nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    let customer = grid.customer();
    let request = |app: &str, script: Option<&str>| CreateJob {
        app: app.into(),
        name: None,
        params: serde_json::json!({}),
        script: script.map(str::to_string),
        chunk_lines: None,
        chunk_seconds: None,
        chunk_items: None,
        preferences: Preferences::default(),
        input_from: None,
        output_to: None,
        webhook: None,
    };
    let err = customer
        .create_job(&request("ffmpeg-magic", None))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("python-map"), "{err}");
    assert_eq!(api_code(err), (422, "unknown_app".into()));
    let err = customer
        .create_job(&request("python-map", None))
        .await
        .unwrap_err();
    assert_eq!(api_code(err), (422, "missing_script".into()));
    let mut bad_chunks = request("python-map", Some("pass"));
    bad_chunks.chunk_lines = Some(0);
    let err = customer.create_job(&bad_chunks).await.unwrap_err();
    assert_eq!(api_code(err), (422, "invalid_params".into()));

    let job = customer
        .create_job(&request("python-map", Some("pass")))
        .await
        .unwrap();
    let err = customer.run_job(job.id).await.unwrap_err();
    assert_eq!(api_code(err), (409, "missing_input".into()));
    let mismatch = http
        .put(format!("{}/v1/jobs/{}/input", grid.url, job.id))
        .bearer_auth(key)
        .header("x-content-sha256", sha256_bytes(b"something else"))
        .body("1\n2\n")
        .send()
        .await
        .unwrap();
    assert_eq!(mismatch.status(), 400);
    let body: serde_json::Value = mismatch.json().await.unwrap();
    assert_eq!(body["error"]["code"], "digest_mismatch");
    let no_digest = http
        .put(format!("{}/v1/jobs/{}/input", grid.url, job.id))
        .bearer_auth(key)
        .body("1\n")
        .send()
        .await
        .unwrap();
    assert_eq!(no_digest.status(), 400);
    assert!(
        customer.job(job.id).await.unwrap().input.is_none(),
        "a refused upload is not kept"
    );
    let err = customer
        .upload_input_bytes(job.id, vec![b'x'; 2000].into())
        .await
        .unwrap_err();
    assert_eq!(api_code(err), (413, "too_large".into()));
    let err = customer.job(JobId(999)).await.unwrap_err();
    assert_eq!(api_code(err), (404, "job_not_found".into()));
    let err = customer
        .download_output(job.id, &grid.dir.path().join("x"), "00")
        .await
        .unwrap_err();
    assert_eq!(api_code(err), (409, "output_not_ready".into()));

    // Another tenant cannot see or touch the job.
    let intruder = grid.other_customer().await;
    assert_eq!(api_code(intruder.job(job.id).await.unwrap_err()).0, 404);
    assert_eq!(
        api_code(intruder.cancel_job(job.id).await.unwrap_err()).0,
        404
    );
    assert!(intruder.list_jobs(None, 10).await.unwrap().jobs.is_empty());
    // Nor its input, its output, its run or its events; ids next to it are as unknown.
    let err = intruder
        .upload_input_bytes(job.id, "x\n".to_string().into())
        .await
        .unwrap_err();
    assert_eq!(api_code(err).0, 404);
    let err = intruder.run_job(job.id).await.unwrap_err();
    assert_eq!(api_code(err).0, 404);
    let err = intruder
        .download_output(job.id, &grid.dir.path().join("stolen"), &"0".repeat(64))
        .await
        .unwrap_err();
    assert_eq!(api_code(err).0, 404);
    assert!(!grid.dir.path().join("stolen").exists());
    assert!(intruder.job_events(job.id).await.is_err());
    for guess in [job.id.0 + 1, job.id.0 + 1000, 0, -1] {
        let err = intruder.job(idlegrid_api::JobId(guess)).await.unwrap_err();
        assert_eq!(api_code(err).0, 404, "job {guess}");
    }
    // A customer key is not a worker token.
    let as_worker = Client::new(&grid.url, key).unwrap();
    let err = as_worker
        .lease(&LeaseRequest {
            max_tasks: 1,
            wait_ms: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(api_code(err).0, 403);

    let openapi: serde_json::Value = http
        .get(format!("{}/openapi.json", grid.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/v1/jobs",
        "/v1/jobs/{id}/input",
        "/v1/leases",
        "/v1/leases/report",
    ] {
        assert!(
            openapi["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    } // Every operation documents the errors any request can get.
    for status in ["400", "401", "403", "503"] {
        assert!(
            openapi["paths"]["/v1/leases"]["post"]["responses"][status].is_object(),
            "{status}"
        );
    }
    assert!(openapi["paths"]["/v1/jobs"]["post"]["responses"]["415"].is_object());

    grid.stop().await;
}

#[tokio::test]
async fn requests_beyond_a_credentials_rate_get_429_and_others_are_unaffected() {
    let grid = TestGrid::start(|config| {
        config.customer_requests_per_sec = 5;
        config.worker_requests_per_sec = 5;
    })
    .await;
    let customer = grid.customer();
    // A burst of twice the rate goes through; then the key is refused until it refills.
    let mut refused = None;
    for i in 0..40 {
        match customer.list_jobs(None, 10).await {
            Ok(_) => {}
            Err(err) => {
                refused = Some((i, api_code(err)));
                break;
            }
        }
    }
    let (after, code) = refused.expect("a burst of 40 requests at 5/s must be refused");
    assert!(after >= 10, "refused after only {after} requests");
    assert_eq!(code, (429, "rate_limited".into()));
    // A worker has its own allowance.
    let worker = grid.worker("w").await;
    lease(&worker, 1).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    customer.list_jobs(None, 10).await.unwrap();
}

#[tokio::test]
async fn liveness_readiness_and_prometheus_metrics_are_served() {
    let grid = TestGrid::start(|_| {}).await;
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("{}{path}", grid.url)).send();
    assert_eq!(get("/livez").await.unwrap().status(), 200);
    assert_eq!(get("/readyz").await.unwrap().status(), 200);
    let job = grid.submit("a\nb\nc\n", 1, 3).await;
    wait_for(&grid.customer(), job.id, JobState::Running).await;
    let response = get("/metrics").await.unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    for expected in [
        "idlegrid_stage_queue_depth{stage=\"validate\"}",
        "idlegrid_tasks{state=\"queued\"} 3",
        "idlegrid_dispatching_jobs 1",
        "idlegrid_jobs{state=\"running\"} 1",
        "idlegrid_job_tasks{state=\"pending\"} 3",
        "idlegrid_http_request_duration_seconds_bucket{route=\"/v1/jobs/{id}\",method=\"GET\",status=\"200\"",
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
    // Once the coordinator is shutting down it is no longer ready.
    grid.grid.stopping.cancel();
    assert_eq!(get("/readyz").await.unwrap().status(), 503);
    grid.stop().await;
}

#[tokio::test]
async fn secrets_say_what_they_stand_for_and_each_view_needs_its_own_kind() {
    let grid = TestGrid::start(|_| {}).await;
    let customer = grid.customer();
    let owner = Client::new(&grid.url, &grid.credentials.enrollment_token).unwrap();
    let operator = Client::new(&grid.url, &grid.credentials.operator_key).unwrap();
    let worker = grid.worker("laptop").await;
    let kinds = [
        (customer.whoami().await.unwrap(), AccountKind::Customer),
        (owner.whoami().await.unwrap(), AccountKind::Owner),
        (operator.whoami().await.unwrap(), AccountKind::Operator),
        (worker.whoami().await.unwrap(), AccountKind::Worker),
    ];
    for (me, kind) in &kinds[..3] {
        assert_eq!(me.kind, *kind);
        assert_eq!(me.name.as_deref(), Some("default"));
    }
    assert_eq!(kinds[3].0.kind, AccountKind::Worker);
    assert_eq!(kinds[3].0.name, None);
    let stranger = Client::new(&grid.url, "igk_not-a-key").unwrap();
    assert_eq!(
        api_code(stranger.whoami().await.unwrap_err()),
        (401, "invalid_credentials".into())
    );
    assert_eq!(
        api_code(customer.grid_stats().await.unwrap_err()),
        (403, "wrong_credentials".into())
    );
    assert_eq!(
        api_code(customer.owner_devices().await.unwrap_err()),
        (403, "wrong_credentials".into())
    );
    assert_eq!(
        api_code(operator.owner_devices().await.unwrap_err()),
        (403, "wrong_credentials".into())
    );

    // The device is listed for its owner: online while it asks for work, busy while it holds
    // a task, with what it offers.
    let job = grid.submit("a\nb\nc\n", 1, 3).await;
    let grant = lease(&worker, 1).await;
    assert_eq!(grant.leases.len(), 1);
    let devices = owner.owner_devices().await.unwrap();
    assert_eq!(devices.devices.len(), 1);
    let device = &devices.devices[0];
    assert_eq!(device.name, "laptop");
    assert_eq!(device.status, DeviceStatus::Busy);
    assert_eq!(device.running, 1);
    assert_eq!(device.capabilities.benchmark, 100.0);
    assert!(device.last_seen.is_some());
    assert_eq!(devices.totals.online, 1);
    let l = &grant.leases[0];
    let path = grid.dir.path().join("chunk");
    worker
        .download_lease_input(l.lease_id, &path)
        .await
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap().to_uppercase();
    report_one(&worker, l.lease_id, l.task_id, completed(text.as_bytes())).await;
    let done = upper_case_until_done(&grid, &worker, job.id).await;
    assert_eq!(done.state, JobState::Completed);
    let devices = owner.owner_devices().await.unwrap();
    assert_eq!(devices.devices[0].status, DeviceStatus::Online);
    assert_eq!(devices.devices[0].valid, 3);
    assert_eq!(devices.totals.valid, 3);

    // The operator's series shows the device and the accepted chunks.
    let mut seen = None;
    for _ in 0..40 {
        let stats = operator.grid_stats().await.unwrap();
        assert_eq!(stats.interval_secs, 2);
        if let Some(sample) = stats.samples.iter().find(|s| s.completed_per_sec > 0.0) {
            seen = Some((sample.clone(), stats.samples.len()));
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (sample, _) = seen.expect("a sample counts the accepted chunks");
    assert_eq!(sample.devices_online, 1);
    grid.stop().await;
}
