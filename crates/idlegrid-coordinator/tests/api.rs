//! The coordinator's HTTP APIs, served for real on a loopback port over a SQLite file and local
//! blobs, driven with the project's own client and, for malformed requests, raw HTTP. Workers
//! here are played by the test itself, so every step of a task's life is visible.

use base64::Engine;
use futures::StreamExt;
use idlegrid_api::accounts::{AccountKind, DeviceStatus};
use idlegrid_api::jobs::{
    BucketObject, ChunkState, ChunkView, CompleteUpload, CreateJob, Deposit, EstimateRequest,
    InputSource, Job, Preferences, VideoDescription, WebhookDeliveries, WebhookSpec,
};
use idlegrid_api::tasks::{
    Heartbeat, HeartbeatItem, LeaseGrant, LeaseRequest, RegisterWorker, Report, ReportItem,
    ReportOutcome,
};
use idlegrid_api::{Capabilities, JobId, JobState};
use idlegrid_client::{Client, ClientError, sha256_bytes};
use idlegrid_coordinator::{Config, Credentials, Grid};
use idlegrid_domain::Account;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What the test's devices report: a 4-core Linux box with Python and no FFmpeg, a task per core.
fn device_caps() -> Capabilities {
    Capabilities {
        cores: 4,
        memory_mb: 4096,
        os: "linux".into(),
        arch: "x86_64".into(),
        python: Some("3.11.7".into()),
        ffmpeg: None,
        benchmark: 100.0,
        slots: 4,
        allows: Default::default(),
        ..Default::default()
    }
}

struct TestGrid {
    url: String,
    credentials: Credentials,
    grid: Arc<Grid>,
    stop: CancellationToken,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    dir: tempfile::TempDir,
}

impl TestGrid {
    async fn start(tweak: impl FnOnce(&mut Config)) -> TestGrid {
        Self::start_in(tempfile::tempdir().unwrap(), tweak).await
    }

    async fn start_in(dir: tempfile::TempDir, tweak: impl FnOnce(&mut Config)) -> TestGrid {
        let mut config = Config::new(dir.path());
        tweak(&mut config);
        let (grid, credentials) = Grid::open(config).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let server = tokio::spawn(idlegrid_coordinator::serve(
            listener,
            grid.clone(),
            stop.clone(),
        ));
        TestGrid {
            url,
            credentials,
            grid,
            stop,
            server,
            dir,
        }
    }

    async fn stop(self) -> tempfile::TempDir {
        self.stop.cancel();
        self.server.await.unwrap().unwrap();
        self.dir
    }

    fn customer(&self) -> Client {
        Client::new(&self.url, &self.credentials.api_key).unwrap()
    }

    async fn worker(&self, name: &str) -> Client {
        let registered = Client::register(
            &self.url,
            &self.credentials.enrollment_token,
            &RegisterWorker {
                name: name.into(),
                capabilities: device_caps(),
            },
        )
        .await
        .unwrap();
        Client::new(&self.url, &registered.token).unwrap()
    }

    /// A new device owner of its own (made with the operator key), and its enrollment token.
    async fn owner(&self, name: &str) -> String {
        Client::new(&self.url, &self.credentials.operator_key)
            .unwrap()
            .create_owner(&idlegrid_api::accounts::NewOwner {
                name: name.into(),
                customer: None,
            })
            .await
            .unwrap()
            .enrollment_token
    }

    /// A device registered with enrollment token `token`.
    async fn device_with(&self, token: &str, name: &str) -> Client {
        let registered = Client::register(
            &self.url,
            token,
            &RegisterWorker {
                name: name.into(),
                capabilities: device_caps(),
            },
        )
        .await
        .unwrap();
        Client::new(&self.url, &registered.token).unwrap()
    }

    /// A device of an owner of its own, named after it.
    async fn stranger(&self, name: &str) -> Client {
        let token = self.owner(name).await;
        self.device_with(&token, name).await
    }

    /// Creates, uploads and runs a python-map job over `input`.
    async fn submit(&self, input: &str, chunk_lines: u64, max_attempts: u32) -> Job {
        let preferences = Preferences {
            max_attempts,
            ..Preferences::default()
        };
        self.submit_with(input, chunk_lines, preferences).await
    }

    /// Creates, uploads and runs a python-map job over `input`, run as `preferences` say.
    async fn submit_with(&self, input: &str, chunk_lines: u64, preferences: Preferences) -> Job {
        let customer = self.customer();
        let job = self.create(chunk_lines, preferences).await;
        customer
            .upload_input_bytes(job.id, input.to_string().into())
            .await
            .unwrap();
        customer.run_job(job.id).await.unwrap()
    }

    /// A running fast-tier job of one chunk, `only`.
    async fn submit_one_fast_chunk(&self) -> Job {
        let fast = Preferences {
            tier: idlegrid_domain::Tier::Fast,
            ..Preferences::default()
        };
        self.submit_with("only\n", 1, fast).await
    }
}

impl TestGrid {
    /// A client of a second customer, `other`.
    async fn other_customer(&self) -> Client {
        let other = self.grid.store.ensure_tenant("other").await.unwrap();
        self.grid
            .store
            .add_credential(
                idlegrid_coordinator::http::auth::hash_secret("igk_other"),
                idlegrid_storage::records::Principal::Tenant(other),
            )
            .await
            .unwrap();
        Client::new(&self.url, "igk_other").unwrap()
    }

    /// Creates a python-map job of `chunk_lines` lines per chunk, waiting for its input.
    async fn create(&self, chunk_lines: u64, preferences: Preferences) -> Job {
        self.customer()
            .create_job(&CreateJob {
                app: "python-map".into(),
                params: serde_json::json!({"n": 1}),
                script: Some("print('hi')\n".into()),
                chunk_lines: Some(chunk_lines),
                chunk_seconds: None,
                preferences,
                input_from: None,
                output_to: None,
                webhook: None,
            })
            .await
            .unwrap()
    }
}

async fn lease(worker: &Client, max: u32) -> LeaseGrant {
    worker
        .lease(&LeaseRequest {
            max_tasks: max,
            wait_ms: 5000,
        })
        .await
        .unwrap()
}

/// Reports one lease's outcome; the reply says whether it was taken.
async fn report_one(
    worker: &Client,
    lease_id: idlegrid_api::LeaseId,
    task_id: idlegrid_api::TaskId,
    outcome: ReportOutcome,
) -> idlegrid_api::tasks::ReportReply {
    worker
        .report(&Report {
            reports: vec![ReportItem {
                lease_id,
                task_id,
                outcome,
            }],
        })
        .await
        .unwrap()
}

fn completed(output: &[u8]) -> ReportOutcome {
    ReportOutcome::Completed {
        sha256: sha256_bytes(output),
        size: output.len() as u64,
        inline_base64: Some(base64::engine::general_purpose::STANDARD.encode(output)),
    }
}

async fn wait_for(customer: &Client, job: JobId, state: JobState) -> Job {
    for _ in 0..200 {
        let status = customer.job(job).await.unwrap();
        if status.state == state {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "job {job} never became {state}: {:?}",
        customer.job(job).await.unwrap()
    );
}

/// Files (not directories) below `dir`; 0 if it does not exist.
fn files_under(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .map(|e| e.unwrap().path())
        .map(|p| if p.is_dir() { files_under(&p) } else { 1 })
        .sum()
}

fn api_code(e: ClientError) -> (u16, String) {
    (
        e.status().unwrap_or(0),
        e.code().unwrap_or_default().to_string(),
    )
}

#[tokio::test]
async fn a_job_runs_through_every_stage_to_its_output() {
    let grid = TestGrid::start(|_| {}).await;
    let job = grid.submit("a\nb\nc\nd\ne\n", 2, 3).await;
    assert_eq!(job.state, JobState::Submitted);
    let worker = grid.worker("w1").await;
    let mut grant = lease(&worker, 10).await;
    while grant.leases.len() < 3 {
        grant.leases.extend(lease(&worker, 10).await.leases);
    }
    let spec = &grant.jobs[0];
    // Progress from heartbeats shows in the job's status.
    let beat = Heartbeat {
        leases: vec![HeartbeatItem {
            lease_id: grant.leases[0].lease_id,
            progress: Some(0.5),
        }],
    };
    assert!(worker.heartbeat(&beat).await.unwrap().leases[0].held);
    let status = grid.customer().job(job.id).await.unwrap();
    assert_eq!(
        (status.chunks.running, status.chunks.running_progress),
        (3, 0.5)
    );
    assert_eq!(spec.params, serde_json::json!({"n": 1}));
    let bundle = worker
        .bundle(&spec.bundle_sha256, grant.leases[0].lease_id)
        .await
        .unwrap();
    assert_eq!(bundle.files[&bundle.manifest.entrypoint], "print('hi')\n");
    // Each chunk's input is its own lines; reverse them as the "script" would.
    let mut reports = Vec::new();
    for l in &grant.leases {
        let path = grid.dir.path().join(format!("chunk-{}", l.chunk_index));
        worker
            .download_lease_input(l.lease_id, &path)
            .await
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.len() as u64, l.input_size);
        let upper = text.to_uppercase();
        let outcome = if l.chunk_index == 1 {
            // This one goes the way of large outputs: uploaded first, then reported.
            let out = grid.dir.path().join("upload");
            std::fs::write(&out, &upper).unwrap();
            let sha = sha256_bytes(upper.as_bytes());
            worker
                .upload_lease_output(l.lease_id, &out, &sha)
                .await
                .unwrap();
            ReportOutcome::Completed {
                sha256: sha,
                size: upper.len() as u64,
                inline_base64: None,
            }
        } else {
            completed(upper.as_bytes())
        };
        reports.push(ReportItem {
            lease_id: l.lease_id,
            task_id: l.task_id,
            outcome,
        });
    }
    let reply = worker.report(&Report { reports }).await.unwrap();
    assert!(reply.results.iter().all(|r| r.accepted), "{reply:?}");
    let done = wait_for(&grid.customer(), job.id, JobState::Completed).await;
    assert_eq!((done.chunks.total, done.chunks.done), (Some(3), 3));
    let out = grid.dir.path().join("out");
    let sha = done.output.unwrap().sha256;
    grid.customer()
        .download_output(job.id, &out, &sha)
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(out).unwrap(), "A\nB\nC\nD\nE\n");
    // The uploaded result served its purpose: it is gone, the output stays.
    let results = grid.dir.path().join(format!("blobs/results/{}", job.id));
    assert_eq!(
        files_under(&results),
        0,
        "result blobs left in {}",
        results.display()
    );
    grid.stop().await;
}

/// A job the customer's own settings doom is refused when it is created, with the parameter
/// named, rather than blamed on the devices that run it.
#[tokio::test]
async fn parameters_that_cannot_give_acceptable_output_are_refused_at_creation() {
    let grid = TestGrid::start(|_| {}).await;
    let customer = grid.customer();
    let video = |params: serde_json::Value| CreateJob {
        app: "video-transcode".into(),
        params,
        script: None,
        chunk_lines: None,
        chunk_seconds: None,
        preferences: Preferences::default(),
        input_from: None,
        output_to: None,
        webhook: None,
    };
    for (params, field) in [
        (serde_json::json!({"bitrate": "10k"}), "bitrate"),
        (
            serde_json::json!({"bitrate": "99999999999999999999M"}),
            "bitrate",
        ),
        (
            serde_json::json!({"preset": "1080p", "bitrate": "100k"}),
            "too low for 1080p",
        ),
        (
            serde_json::json!({"audio_bitrate": "100000k"}),
            "audio_bitrate",
        ),
        (serde_json::json!({"audio_bitrate": "1k"}), "audio_bitrate"),
    ] {
        let err = customer
            .create_job(&video(params.clone()))
            .await
            .unwrap_err();
        assert!(err.to_string().contains(field), "{params}: {err}");
        assert_eq!(api_code(err), (422, "invalid_params".into()), "{params}");
    }
    let mut lines_on_video = video(serde_json::json!({}));
    lines_on_video.chunk_lines = Some(10);
    let err = customer.create_job(&lines_on_video).await.unwrap_err();
    assert!(err.to_string().contains("chunk_lines"), "{err}");
    assert_eq!(api_code(err), (422, "invalid_params".into()));
    let seconds_on_lines = CreateJob {
        app: "python-map".into(),
        script: Some("pass".into()),
        chunk_seconds: Some(5.0),
        ..video(serde_json::json!({}))
    };
    let err = customer.create_job(&seconds_on_lines).await.unwrap_err();
    assert!(err.to_string().contains("chunk_seconds"), "{err}");
    assert_eq!(api_code(err), (422, "invalid_params".into()));
    // Sensible settings still pass.
    customer
        .create_job(&video(
            serde_json::json!({"bitrate": "3M", "audio_bitrate": "96k"}),
        ))
        .await
        .unwrap();
    grid.stop().await;
}

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
        params: serde_json::json!({}),
        script: script.map(str::to_string),
        chunk_lines: None,
        chunk_seconds: None,
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
async fn workers_may_only_report_on_leases_they_hold() {
    let grid = TestGrid::start(|_| {}).await;
    let job = grid.submit("1\n2\n", 1, 3).await;
    let honest = grid.worker("honest").await;
    let other = grid.worker("other").await;
    let mut grant = lease(&honest, 1).await;
    assert_eq!(grant.leases.len(), 1);
    let l = grant.leases.remove(0);
    let item = |lease_id, task_id, outcome| Report {
        reports: vec![ReportItem {
            lease_id,
            task_id,
            outcome,
        }],
    };
    let reply = other
        .report(&item(l.lease_id, l.task_id, completed(b"x\n")))
        .await
        .unwrap();
    assert_eq!(reply.error.unwrap().code, "lease_not_held");
    let err = other
        .download_lease_input(l.lease_id, &grid.dir.path().join("steal"))
        .await
        .unwrap_err();
    assert_eq!(api_code(err), (409, "lease_not_held".into()));
    // Bundles too go only to the holder of a lease on a job that runs them.
    let sha = &grant.jobs[0].bundle_sha256;
    let err = other.bundle(sha, l.lease_id).await.unwrap_err();
    assert_eq!(api_code(err), (409, "lease_not_held".into()));
    honest.bundle(sha, l.lease_id).await.unwrap();
    let python_map = "0".repeat(64);
    let err = honest.bundle(&python_map, l.lease_id).await.unwrap_err();
    assert_eq!(api_code(err), (404, "bundle_not_found".into()));
    let reply = honest
        .report(&item(
            l.lease_id,
            idlegrid_api::TaskId(l.task_id.0 + 1000),
            completed(b"x\n"),
        ))
        .await
        .unwrap();
    assert_eq!(reply.error.unwrap().code, "task_mismatch");
    let forged = ReportOutcome::Completed {
        sha256: sha256_bytes(b"something else"),
        size: 2,
        inline_base64: Some(base64::engine::general_purpose::STANDARD.encode(b"x\n")),
    };
    let reply = honest
        .report(&item(l.lease_id, l.task_id, forged))
        .await
        .unwrap();
    assert_eq!(reply.error.unwrap().code, "digest_mismatch");
    // The lease survived the refused reports; the real one goes through, and only once.
    let ok = honest
        .report(&item(l.lease_id, l.task_id, completed(b"one\n")))
        .await
        .unwrap();
    assert!(ok.results[0].accepted && ok.error.is_none());
    let again = honest
        .report(&item(l.lease_id, l.task_id, completed(b"one\n")))
        .await
        .unwrap();
    assert_eq!(again.error.unwrap().code, "lease_not_held");
    let beat = honest
        .heartbeat(&Heartbeat {
            leases: vec![HeartbeatItem {
                lease_id: l.lease_id,
                progress: None,
            }],
        })
        .await
        .unwrap();
    assert!(!beat.leases[0].held);
    assert_eq!(
        grid.customer().job(job.id).await.unwrap().state,
        JobState::Running
    );
    grid.stop().await;
}

#[tokio::test]
async fn a_chunk_failing_too_often_fails_its_job_but_not_the_others() {
    let grid = TestGrid::start(|_| {}).await;
    let doomed = grid.submit("boom\n", 1, 2).await;
    let workers = [grid.worker("w1").await, grid.worker("w2").await];
    for attempt in 0..2 {
        let worker = &workers[attempt];
        if attempt == 1 {
            // The retry is kept from the worker whose attempt failed.
            let nothing = workers[0]
                .lease(&LeaseRequest {
                    max_tasks: 1,
                    wait_ms: 300,
                })
                .await
                .unwrap();
            assert!(
                nothing.leases.is_empty(),
                "the failed task went back to its worker"
            );
        }
        let grant = lease(worker, 1).await;
        let l = &grant.leases[0];
        assert_eq!(l.job_id, doomed.id);
        let reply = report_one(
            worker,
            l.lease_id,
            l.task_id,
            ReportOutcome::Failed {
                reason: format!("script exited with status 1: ValueError attempt {attempt}"),
            },
        )
        .await;
        assert!(reply.results[0].accepted);
    }
    let failed = wait_for(&grid.customer(), doomed.id, JobState::Failed).await;
    let error = failed.error.unwrap();
    assert!(error.contains("chunk 0 failed 2 times"), "{error}");
    // The last attempt's reason once; the one before by its device and outcome.
    assert!(error.contains("ValueError attempt 1"), "{error}");
    assert!(!error.contains("ValueError attempt 0"), "{error}");
    assert!(error.contains("Earlier attempts: worker"), "{error}");
    assert_eq!(failed.chunks.failed, 1);

    let fine = grid.submit("ok\n", 1, 2).await;
    let worker = &workers[0];
    let grant = lease(worker, 1).await;
    assert_eq!(grant.leases[0].job_id, fine.id);
    let l = &grant.leases[0];
    report_one(worker, l.lease_id, l.task_id, completed(b"OK\n")).await;
    wait_for(&grid.customer(), fine.id, JobState::Completed).await;
    grid.stop().await;
}

#[tokio::test]
async fn expired_leases_go_back_to_the_queue() {
    let grid = TestGrid::start(|c| {
        c.lease_ttl = Duration::from_secs(1);
        c.reap_interval = Duration::from_millis(50);
    })
    .await;
    let job = grid.submit("x\n", 1, 3).await;
    let vanished = grid.worker("vanished").await;
    let first = lease(&vanished, 1).await.leases.remove(0);
    let rescuer = grid.worker("rescuer").await;
    let second = lease(&rescuer, 1).await.leases.remove(0);
    assert_eq!(
        first.task_id, second.task_id,
        "the expired task is leased again"
    );
    report_one(&rescuer, second.lease_id, second.task_id, completed(b"X\n")).await;
    let done = wait_for(&grid.customer(), job.id, JobState::Completed).await;
    assert_eq!(done.chunks.failed_attempts, 1);
    let late = report_one(
        &vanished,
        first.lease_id,
        first.task_id,
        completed(b"late\n"),
    )
    .await;
    assert_eq!(late.error.unwrap().code, "lease_not_held");
    // Its heartbeat for the expired lease is answered, not refused: the lease is not held.
    let beat = vanished
        .heartbeat(&Heartbeat {
            leases: vec![HeartbeatItem {
                lease_id: first.lease_id,
                progress: Some(0.9),
            }],
        })
        .await
        .unwrap();
    assert!(!beat.leases[0].held);
    grid.stop().await;
}

#[tokio::test]
async fn cancelling_stops_dispatch_and_events_follow_the_job() {
    let grid = TestGrid::start(|_| {}).await;
    let job = grid.submit("1\n2\n3\n", 1, 3).await;
    let customer = grid.customer();
    let mut events = Box::pin(customer.job_events(job.id).await.unwrap());
    let first = events.next().await.unwrap().unwrap();
    assert_eq!(first.id, job.id);
    let worker = grid.worker("w").await;
    let held = lease(&worker, 1).await.leases.remove(0);
    let cancelled = customer.cancel_job(job.id).await.unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    // Cancelling again is a retry, not an error.
    let again = customer.cancel_job(job.id).await.unwrap();
    assert_eq!(again.state, JobState::Cancelled);
    let beat = worker
        .heartbeat(&Heartbeat {
            leases: vec![HeartbeatItem {
                lease_id: held.lease_id,
                progress: Some(0.5),
            }],
        })
        .await
        .unwrap();
    assert!(!beat.leases[0].held, "a cancelled job's leases are gone");
    let nothing = worker
        .lease(&LeaseRequest {
            max_tasks: 5,
            wait_ms: 100,
        })
        .await
        .unwrap();
    assert!(nothing.leases.is_empty());
    let mut last = first;
    while let Some(event) = events.next().await {
        last = event.unwrap();
    }
    assert_eq!(
        last.state,
        JobState::Cancelled,
        "the stream ends with the final state"
    );
    grid.stop().await;
}

#[tokio::test]
async fn a_restarted_coordinator_rebuilds_its_queues_from_the_records() {
    let grid = TestGrid::start(|_| {}).await;
    let job = grid.submit("1\n2\n3\n4\n", 1, 3).await;
    let worker = grid.worker("w").await;
    let grant = lease(&worker, 2).await;
    let l = &grant.leases[0];
    report_one(&worker, l.lease_id, l.task_id, completed(b"first\n")).await;
    wait_for(&grid.customer(), job.id, JobState::Running).await;
    let dir = grid.stop().await;

    let grid = TestGrid::start_in(dir, |_| {}).await;
    let worker = grid.worker("w2").await;
    let mut leases = Vec::new();
    while leases.len() < 3 {
        leases.extend(lease(&worker, 10).await.leases);
    }
    let reports = leases
        .iter()
        .map(|l| ReportItem {
            lease_id: l.lease_id,
            task_id: l.task_id,
            outcome: completed(format!("{}\n", l.chunk_index).as_bytes()),
        })
        .collect();
    worker.report(&Report { reports }).await.unwrap();
    let done = wait_for(&grid.customer(), job.id, JobState::Completed).await;
    let out = grid.dir.path().join("out");
    grid.customer()
        .download_output(job.id, &out, &done.output.unwrap().sha256)
        .await
        .unwrap();
    let text = std::fs::read_to_string(out).unwrap();
    let first_index = grant.leases[0].chunk_index as usize;
    let expected: String = (0..4)
        .map(|i| {
            if i == first_index {
                "first\n".to_string()
            } else {
                format!("{i}\n")
            }
        })
        .collect();
    assert_eq!(text, expected);
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
async fn customer_writes_are_idempotent_under_retries() {
    let grid = TestGrid::start(|_| {}).await;
    let customer = grid.customer();
    let job = customer
        .create_job(&CreateJob {
            app: "python-map".into(),
            params: serde_json::json!({}),
            script: Some("print('hi')\n".into()),
            chunk_lines: Some(1),
            chunk_seconds: None,
            preferences: Preferences::default(),
            input_from: None,
            output_to: None,
            webhook: None,
        })
        .await
        .unwrap();
    // The same upload twice (a retry after a lost reply): the same receipt.
    let first = customer
        .upload_input_bytes(job.id, "a\nb\n".to_string().into())
        .await
        .unwrap();
    let again = customer
        .upload_input_bytes(job.id, "a\nb\n".to_string().into())
        .await
        .unwrap();
    assert_eq!(first, again);
    // Run twice: the second answers the job as it is.
    let ran = customer.run_job(job.id).await.unwrap();
    let ran_again = customer.run_job(job.id).await.unwrap();
    assert_eq!(ran.id, ran_again.id);
    assert!(!ran_again.state.is_terminal(), "{:?}", ran_again.state);
    // Other bytes once the job runs: refused, and the input is unchanged.
    let err = customer
        .upload_input_bytes(job.id, "other\n".to_string().into())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(409), "{err}");
    // Cancel twice: cancelled both times.
    let cancelled = customer.cancel_job(job.id).await.unwrap();
    let cancelled_again = customer.cancel_job(job.id).await.unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert_eq!(cancelled_again.state, JobState::Cancelled);
    let status = customer.job(job.id).await.unwrap();
    assert_eq!(status.input.unwrap().sha256, first.sha256);
}

/// What one simulated device did.
#[derive(Debug, Default, Clone, Copy)]
struct Served {
    results: u64,
    forged: u64,
    quarantined: bool,
}

/// A simulated device: leases tasks and reports, for each, the output an honest device would
/// compute (`<job>:<chunk>`), or, when `forges(n)` says so for its n-th result, a forgery.
/// Stops when `stop` is cancelled or the device is quarantined.
async fn device(worker: Client, forges: impl Fn(u64) -> bool, stop: CancellationToken) -> Served {
    device_forging(
        worker,
        move |_, n| forges(n).then(|| format!("forged {n}\n")),
        stop,
    )
    .await
}

/// The forgery colluding devices agree on for a chunk: the same wrong bytes from each.
fn agreed_forgery(lease: &idlegrid_api::tasks::Lease, _: u64) -> Option<String> {
    Some(format!("forged {}:{}\n", lease.job_id, lease.chunk_index))
}

/// A simulated device whose n-th result for `lease` is `forge(lease, n)` when that gives one,
/// the honest output otherwise.
async fn device_forging(
    worker: Client,
    forge: impl Fn(&idlegrid_api::tasks::Lease, u64) -> Option<String>,
    stop: CancellationToken,
) -> Served {
    let mut served = Served::default();
    while !stop.is_cancelled() {
        let grant = match worker
            .lease(&LeaseRequest {
                max_tasks: 4,
                wait_ms: 100,
            })
            .await
        {
            Ok(grant) => grant,
            Err(e) if e.code() == Some("worker_quarantined") => {
                served.quarantined = true;
                break;
            }
            Err(e) => panic!("lease failed: {e}"),
        };
        for l in grant.leases {
            let forgery = forge(&l, served.results);
            let forged = forgery.is_some();
            let output = forgery.unwrap_or_else(|| format!("{}:{}\n", l.job_id, l.chunk_index));
            served.results += 1;
            served.forged += u64::from(forged);
            match worker
                .report(&Report {
                    reports: vec![ReportItem {
                        lease_id: l.lease_id,
                        task_id: l.task_id,
                        outcome: completed(output.as_bytes()),
                    }],
                })
                .await
            {
                Ok(_) => {}
                Err(e) if e.code() == Some("worker_quarantined") => {
                    served.quarantined = true;
                    return served;
                }
                Err(e) => panic!("report failed: {e}"),
            }
        }
    }
    served
}

/// The output honest devices give for a job of `chunks` one-line chunks.
fn honest_output(job: JobId, chunks: u64) -> String {
    (0..chunks).map(|i| format!("{job}:{i}\n")).collect()
}

/// Runs `jobs` jobs of `chunks` one-line chunks with `replication` on the open grid, on
/// `honest` devices plus one that forges 30% of its results (3 of every 10), each device of
/// an owner of its own; returns the finished jobs and the forger's record.
async fn run_with_a_forger(
    replication: idlegrid_domain::Replication,
    honest: usize,
    jobs: usize,
    chunks: u64,
) -> (Vec<Job>, Served) {
    let grid = TestGrid::start(|c| c.trust_min_age = Duration::ZERO).await;
    let input: String = (0..chunks).map(|i| format!("line {i}\n")).collect();
    let preferences = Preferences {
        max_attempts: 10,
        replication: Some(replication),
        placement: Some(idlegrid_domain::Placement::Any),
        ..Preferences::default()
    };
    let mut submitted = Vec::new();
    for _ in 0..jobs {
        submitted.push(grid.submit_with(&input, 1, preferences.clone()).await);
    }
    let stop = CancellationToken::new();
    let mut devices = Vec::new();
    for i in 0..honest {
        let worker = grid.stranger(&format!("honest-{i}")).await;
        devices.push(tokio::spawn(device(worker, |_| false, stop.clone())));
    }
    let forger = grid.stranger("forger").await;
    let forger = tokio::spawn(device(
        forger,
        |n| matches!(n % 10, 0 | 3 | 6),
        stop.clone(),
    ));
    let customer = grid.customer();
    let mut finished = Vec::new();
    for job in &submitted {
        let mut status = customer.job(job.id).await.unwrap();
        for _ in 0..1200 {
            if status.state.is_terminal() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            status = customer.job(job.id).await.unwrap();
        }
        assert_eq!(status.state, JobState::Completed, "{status:?}");
        let path = grid.dir.path().join(format!("out-{}", job.id));
        let sha = status.output.as_ref().unwrap().sha256.clone();
        customer.download_output(job.id, &path, &sha).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            honest_output(job.id, chunks),
            "a forged result was accepted in job {}",
            job.id
        );
        finished.push(status);
    }
    stop.cancel();
    for d in devices {
        d.await.unwrap();
    }
    let forger = forger.await.unwrap();
    grid.stop().await;
    (finished, forger)
}

#[tokio::test]
async fn adaptive_replication_accepts_no_forgery_and_checks_trusted_devices_less() {
    let policy = idlegrid_domain::Replication {
        mode: idlegrid_domain::ReplicationMode::Adaptive,
        trust_after: 10,
        spot_check: 0.05,
        ..idlegrid_domain::Replication::NONE
    };
    let (jobs, forger) = run_with_a_forger(policy, 5, 4, 150).await;
    let tasks: u64 = jobs.iter().map(|j| j.chunks.done).sum();
    let results: u64 = jobs.iter().map(|j| j.chunks.results).sum();
    let rejected: u64 = jobs.iter().map(|j| j.chunks.rejected).sum();
    let overhead = (results - tasks) as f64 / tasks as f64;
    println!(
        "adaptive replication: {tasks} tasks, {results} results, overhead {:.1}% extra \
         executions; forger sent {} results, {} forged, {rejected} rejected, 0 accepted",
        overhead * 100.0,
        forger.results,
        forger.forged
    );
    // The first forgery caught quarantines the forger.
    assert!(forger.forged >= 1, "the forger forged {forger:?}");
    assert!(rejected >= 1, "forgeries must be caught: {rejected}");
    assert!(forger.quarantined, "{forger:?}");
    // Every new device is checked until trusted; trusted ones far less: well under the 100%
    // that running every chunk twice costs.
    assert!(overhead < 0.7, "overhead {overhead}");
}

/// An owner with two devices: one earns trust honestly and has results accepted alone (their
/// earnings held), then the other is caught forging. Everything of that owner's that rested
/// on trust goes: the unverified outputs in the running job are revoked and redone by others,
/// what its devices held is forfeited, and the job's output is still every honest line.
#[tokio::test]
async fn an_owner_caught_forging_forfeits_what_was_unverified_and_its_chunks_run_again() {
    let grid = TestGrid::start(|c| c.trust_min_age = Duration::ZERO).await;
    let store = grid.grid.store.clone();
    let mallory = grid.owner("mallory").await;
    let policy = idlegrid_domain::Replication {
        trust_after: 1,
        spot_check: 0.0,
        ..idlegrid_domain::Replication::ADAPTIVE
    };
    let chunks = 400;
    let input: String = (0..chunks).map(|i| format!("line {i}\n")).collect();
    let job = grid
        .submit_with(
            &input,
            1,
            Preferences {
                max_attempts: 10,
                replication: Some(policy),
                placement: Some(idlegrid_domain::Placement::Any),
                ..Preferences::default()
            },
        )
        .await;
    let stop = CancellationToken::new();
    let trusted = grid.device_with(&mallory, "mallory-laptop").await;
    let stop_trusted = CancellationToken::new();
    let trusted_runner = tokio::spawn(device(trusted.clone(), |_| false, stop_trusted.clone()));
    let mut runners = Vec::new();
    // Two honest owners: a forgery outvoted needs two parties against it.
    for name in ["alice", "bob"] {
        let honest = grid.stranger(name).await;
        runners.push(tokio::spawn(device(honest, |_| false, stop.clone())));
    }
    let mallory_id = store
        .worker(trusted.me().await.unwrap().worker_id)
        .await
        .unwrap()
        .unwrap()
        .owner;
    let held = || async { store.balances(&[Account::Held(mallory_id)]).await.unwrap()[0] };
    // Trusted after one valid result, its later results are mostly accepted alone: held.
    for _ in 0..400 {
        if held().await.0 > 0 && grid.customer().job(job.id).await.unwrap().chunks.done >= 40 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        held().await.0 > 0,
        "nothing of mallory's was accepted alone"
    );
    // The honest device of mallory's stops (it would earn trust again at once, with one valid
    // result needed here); the same owner's second device forges everything, and is caught.
    stop_trusted.cancel();
    trusted_runner.await.unwrap();
    let forger = grid.device_with(&mallory, "mallory-phone").await;
    let caught = device(forger.clone(), |_| true, stop.clone()).await;
    assert!(caught.quarantined, "{caught:?}");
    let job_now = store.job(job.id).await.unwrap().unwrap();
    assert!(
        !job_now.state.is_terminal(),
        "the job ended before the forger was caught: make it longer"
    );
    // The device learns of its quarantine as soon as it is marked; its owner's distrust
    // follows in the same pass of the validator.
    for _ in 0..200 {
        if held().await.0 == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        held().await,
        idlegrid_domain::Credits(0),
        "mallory still holds earnings"
    );
    let revoked = store
        .account_entries(Account::Job(job.id), 10_000)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.txn.starts_with("revoked:"))
        .count();
    assert!(revoked > 0, "no unverified output of mallory's was revoked");
    assert_eq!(
        store
            .reputation(trusted.me().await.unwrap().worker_id)
            .await
            .unwrap()
            .unwrap()
            .streak,
        0,
        "the owner's other device keeps its trust"
    );
    // Others redo the reopened chunks; the output is every honest line.
    let done = wait_for_long(&grid.customer(), job.id, JobState::Completed).await;
    stop.cancel();
    for r in runners {
        r.await.unwrap();
    }
    let path = grid.dir.path().join("out");
    grid.customer()
        .download_output(job.id, &path, &done.output.unwrap().sha256)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        honest_output(job.id, chunks)
    );
    let audit = store.audit_ledger().await.unwrap();
    assert_eq!(
        (audit.total.0, audit.unbalanced, audit.over_quote),
        (0, 0, 0)
    );
    grid.stop().await;
}

/// Waits up to a minute for the job to complete.
async fn wait_for_long(customer: &Client, job: JobId, state: JobState) -> Job {
    let status = wait_for_long_state(customer, job, state).await;
    assert_eq!(status.state, state, "{status:?}");
    status
}

/// Waits up to a minute for the job to reach `state` (or another final one).
async fn wait_for_long_state(customer: &Client, job: JobId, state: JobState) -> Job {
    for _ in 0..1200 {
        let status = customer.job(job).await.unwrap();
        if status.state == state || status.state.is_terminal() {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {job} never became {state}");
}

/// Many devices of one owner returning the same forgery make no quorum: with fixed 2/2 and
/// with adaptive replication, two honest owners beside five colluding devices, no forged chunk
/// reaches the output.
#[tokio::test]
async fn one_owners_many_devices_never_make_a_quorum() {
    for policy in [
        idlegrid_domain::Replication {
            mode: idlegrid_domain::ReplicationMode::Fixed,
            ..idlegrid_domain::Replication::ADAPTIVE
        },
        idlegrid_domain::Replication::ADAPTIVE,
    ] {
        let grid = TestGrid::start(|c| c.trust_min_age = Duration::ZERO).await;
        let sybil = grid.owner("sybil").await;
        let chunks = 20;
        let input: String = (0..chunks).map(|i| format!("line {i}\n")).collect();
        let job = grid
            .submit_with(
                &input,
                1,
                Preferences {
                    max_attempts: 10,
                    replication: Some(policy),
                    ..Preferences::default()
                },
            )
            .await;
        assert_eq!(
            job.preferences.placement,
            Some(idlegrid_domain::Placement::Any)
        );
        let stop = CancellationToken::new();
        // The colluders lease first and hold most chunks' first copies.
        let mut runners = Vec::new();
        for i in 0..5 {
            let d = grid.device_with(&sybil, &format!("sybil-{i}")).await;
            runners.push(tokio::spawn(device_forging(
                d,
                agreed_forgery,
                stop.clone(),
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        for name in ["alice", "bob"] {
            let d = grid.stranger(name).await;
            runners.push(tokio::spawn(device(d, |_| false, stop.clone())));
        }
        let done = wait_for_long(&grid.customer(), job.id, JobState::Completed).await;
        stop.cancel();
        let mut forged = 0;
        for r in runners {
            forged += r.await.unwrap().forged;
        }
        assert!(forged > 0, "{policy:?}: the sybils forged nothing");
        let path = grid.dir.path().join("out");
        grid.customer()
            .download_output(job.id, &path, &done.output.unwrap().sha256)
            .await
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            honest_output(job.id, chunks),
            "{policy:?}: a forged chunk reached the output"
        );
        grid.stop().await;
    }
}

/// Fixed 2/2 with a forger and an honest device of different owners: they disagree, and the
/// chunk waits for a third party — saying so in the chunk view and the job view — until one
/// comes and settles it; the forger is then caught.
#[tokio::test]
async fn a_chunk_waiting_for_another_owner_says_so_until_one_comes() {
    let grid = TestGrid::start(|c| c.trust_min_age = Duration::ZERO).await;
    let policy = idlegrid_domain::Replication {
        mode: idlegrid_domain::ReplicationMode::Fixed,
        ..idlegrid_domain::Replication::ADAPTIVE
    };
    let forger = grid.stranger("mallory").await;
    let honest = grid.stranger("alice").await;
    let job = grid
        .submit_with(
            "only line\n",
            1,
            Preferences {
                replication: Some(policy),
                ..Preferences::default()
            },
        )
        .await;
    let stop = CancellationToken::new();
    let forging = tokio::spawn(device(forger, |_| true, stop.clone()));
    let working = tokio::spawn(device(honest, |_| false, stop.clone()));
    let customer = grid.customer();
    let mut view = customer.job(job.id).await.unwrap();
    for _ in 0..400 {
        if view.chunks.checking == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        view = customer.job(job.id).await.unwrap();
    }
    assert_eq!(view.chunks.checking, 1, "{view:?}");
    assert_eq!(view.state, JobState::Running);
    let chunk = &customer.job_chunks(job.id, 0, 10).await.unwrap().tasks[0];
    assert_eq!(chunk.state, ChunkState::Checking, "{chunk:?}");
    let waiting = chunk.waiting_for.as_deref().unwrap_or_default();
    assert!(waiting.contains("a device of another owner"), "{waiting}");
    assert!(waiting.contains("disagree"), "{waiting}");
    // The job's event stream says so too.
    let events = customer.job_events(job.id).await.unwrap();
    let mut events = std::pin::pin!(events);
    let first = events.next().await.unwrap().unwrap();
    assert_eq!(first.chunks.checking, 1);
    // A third owner's device settles it; the forger is outvoted and quarantined.
    let third = tokio::spawn(device(grid.stranger("bob").await, |_| false, stop.clone()));
    let done = wait_for_long(&customer, job.id, JobState::Completed).await;
    assert_eq!(done.chunks.checking, 0);
    stop.cancel();
    let caught = forging.await.unwrap();
    working.await.unwrap();
    third.await.unwrap();
    assert!(caught.quarantined || caught.results == 1, "{caught:?}");
    grid.stop().await;
}

/// A chunk that waits for another party still counts against the job's deadline.
#[tokio::test]
async fn a_chunk_waiting_for_a_check_still_expires_at_the_deadline() {
    let grid = TestGrid::start(|c| {
        c.trust_min_age = Duration::ZERO;
        c.reap_interval = Duration::from_millis(50);
    })
    .await;
    let lone = grid.stranger("alice").await;
    let job = grid
        .submit_with(
            "only line\n",
            1,
            Preferences {
                deadline_secs: Some(2),
                ..Preferences::default()
            },
        )
        .await;
    // Adaptive by default on the open grid: the new device's result waits for another
    // owner's, and there is none.
    assert_eq!(
        job.verification.basis,
        idlegrid_api::jobs::VerificationBasis::Verified,
        "{}",
        job.verification.summary
    );
    let stop = CancellationToken::new();
    let working = tokio::spawn(device(lone, |_| false, stop.clone()));
    let failed = wait_for_long_state(&grid.customer(), job.id, JobState::Failed).await;
    stop.cancel();
    working.await.unwrap();
    assert!(
        failed
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("deadline of 2 s"),
        "{failed:?}"
    );
    grid.stop().await;
}

/// python-map on the open grid, created with no preferences: verified, and a device returning
/// any bytes gets none of them into the output.
#[tokio::test]
async fn python_map_on_the_open_grid_is_verified_by_default() {
    let grid = TestGrid::start(|c| c.trust_min_age = Duration::ZERO).await;
    let forger = grid.stranger("mallory").await;
    let chunks = 12;
    let input: String = (0..chunks).map(|i| format!("line {i}\n")).collect();
    let job = grid.submit_with(&input, 1, Preferences::default()).await;
    assert_eq!(
        job.preferences.replication.map(|r| r.mode),
        Some(idlegrid_domain::ReplicationMode::Adaptive)
    );
    let stop = CancellationToken::new();
    let mut runners = vec![tokio::spawn(device(forger, |_| true, stop.clone()))];
    tokio::time::sleep(Duration::from_millis(100)).await;
    for name in ["alice", "bob"] {
        let d = grid.stranger(name).await;
        runners.push(tokio::spawn(device(d, |_| false, stop.clone())));
    }
    let done = wait_for_long(&grid.customer(), job.id, JobState::Completed).await;
    stop.cancel();
    let forger = runners.remove(0).await.unwrap();
    for r in runners {
        r.await.unwrap();
    }
    assert!(forger.forged > 0 && forger.quarantined, "{forger:?}");
    let path = grid.dir.path().join("out");
    grid.customer()
        .download_output(job.id, &path, &done.output.unwrap().sha256)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        honest_output(job.id, chunks)
    );
    // In a grid of one owner, the same job is the customer's own fleet: not replicated.
    let own = TestGrid::start(|_| {}).await;
    let job = own.submit_with(&input, 1, Preferences::default()).await;
    assert_eq!(
        job.verification.basis,
        idlegrid_api::jobs::VerificationBasis::PrivateFleet
    );
    assert_eq!(
        job.preferences.placement,
        Some(idlegrid_domain::Placement::Own)
    );
    own.stop().await;
    grid.stop().await;
}

#[tokio::test]
async fn fixed_replication_outvotes_a_forger_and_fails_a_chunk_whose_replicas_never_agree() {
    let policy = idlegrid_domain::Replication {
        mode: idlegrid_domain::ReplicationMode::Fixed,
        replicas: 2,
        quorum: 2,
        max_replicas: 4,
        ..idlegrid_domain::Replication::NONE
    };
    let (jobs, forger) = run_with_a_forger(policy, 3, 2, 40).await;
    let tasks: u64 = jobs.iter().map(|j| j.chunks.done).sum();
    let results: u64 = jobs.iter().map(|j| j.chunks.results).sum();
    println!(
        "fixed replication 2/2: {tasks} tasks, {results} results; forger sent {} results, {} forged",
        forger.results, forger.forged
    );
    assert!(results >= 2 * tasks);
    assert!(forger.forged >= 1);

    // Two devices that always disagree, and a bound of two replicas: the chunk fails, and the
    // job says why.
    let grid = TestGrid::start(|c| c.quarantine_after_invalid = 100).await;
    let preferences = Preferences {
        replication: Some(idlegrid_domain::Replication {
            max_replicas: 2,
            ..policy
        }),
        ..Preferences::default()
    };
    let job = grid.submit_with("only line\n", 1, preferences).await;
    let stop = CancellationToken::new();
    let a = tokio::spawn(device(grid.worker("a").await, |_| false, stop.clone()));
    let b = tokio::spawn(device(grid.worker("b").await, |_| true, stop.clone()));
    let failed = wait_for(&grid.customer(), job.id, JobState::Failed).await;
    stop.cancel();
    a.await.unwrap();
    b.await.unwrap();
    let error = failed.error.unwrap();
    assert!(error.contains("replicas disagree"), "{error}");
    assert!(error.contains("quorum of 2"), "{error}");
    grid.stop().await;
}

#[tokio::test]
async fn a_job_past_its_deadline_expires_and_its_work_blobs_go_with_it() {
    let grid = TestGrid::start(|c| c.reap_interval = Duration::from_millis(50)).await;
    let preferences = Preferences {
        deadline_secs: Some(1),
        ..Preferences::default()
    };
    let job = grid.submit_with("a\nb\n", 1, preferences).await;
    // A worker uploads an output for one chunk but never reports it.
    let worker = grid.worker("slow").await;
    let grant = lease(&worker, 1).await;
    let l = &grant.leases[0];
    let out = grid.dir.path().join("partial");
    std::fs::write(&out, "A\n").unwrap();
    worker
        .upload_lease_output(l.lease_id, &out, &sha256_bytes(b"A\n"))
        .await
        .unwrap();
    let results = grid.dir.path().join(format!("blobs/results/{}", job.id));
    assert_eq!(files_under(&results), 1);
    let failed = wait_for(&grid.customer(), job.id, JobState::Failed).await;
    let error = failed.error.unwrap();
    assert!(error.contains("deadline of 1 s"), "{error}");
    assert_eq!(failed.preferences.deadline_secs, Some(1));
    // The state is recorded first, then the blobs are deleted.
    for _ in 0..100 {
        if files_under(&results) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(files_under(&results), 0, "result blobs outlived the job");
    let inputs = grid.dir.path().join(format!("blobs/jobs/{}", job.id));
    assert!(files_under(&inputs) >= 1, "the input must stay");
    // A deadline out of range is refused with the field named.
    let refused = grid
        .customer()
        .create_job(&CreateJob {
            app: "python-map".into(),
            params: serde_json::json!({}),
            script: Some("print(1)\n".into()),
            chunk_lines: None,
            chunk_seconds: None,
            preferences: Preferences {
                deadline_secs: Some(0),
                ..Preferences::default()
            },
            input_from: None,
            output_to: None,
            webhook: None,
        })
        .await
        .unwrap_err();
    assert_eq!(api_code(refused).1, "invalid_preferences");
    grid.stop().await;
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

/// A Redis that loses its data mid-job (restarted without persistence) loses queued tasks and
/// leases, never records: the sweeper queues the work again and the job completes exactly.
#[tokio::test]
async fn a_job_survives_its_redis_losing_every_key() {
    let Ok(redis) = std::env::var("IDLEGRID_TEST_REDIS") else {
        assert!(
            std::env::var("IDLEGRID_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "IDLEGRID_TEST_REDIS is not set: start the services with scripts/services.sh"
        );
        eprintln!("IDLEGRID_TEST_REDIS is not set: Redis test skipped");
        return;
    };
    let prefix = format!("api{:016x}:", rand::random::<u64>());
    let grid = TestGrid::start(|c| {
        c.backends.queue = Some(format!("{redis}/?prefix={prefix}"));
        c.sweep_interval = Duration::from_millis(200);
    })
    .await;
    let input: String = (0..20).map(|i| format!("line {i}\n")).collect();
    let job = grid.submit(&input, 1, 3).await;
    let worker = grid.worker("w").await;
    // Half the chunks are done, a few are leased and the rest queued when Redis forgets.
    for _ in 0..10 {
        let l = lease(&worker, 1).await.leases.remove(0);
        let line = format!("line {}\n", l.chunk_index);
        report_one(
            &worker,
            l.lease_id,
            l.task_id,
            completed(line.to_uppercase().as_bytes()),
        )
        .await;
    }
    let _held = lease(&worker, 3).await;
    let port = redis.rsplit(':').next().unwrap().trim_end_matches('/');
    let flushed = std::process::Command::new("redis-cli")
        .args(["-p", port, "--scan", "--pattern", &format!("{prefix}*")])
        .output()
        .unwrap();
    let keys = String::from_utf8_lossy(&flushed.stdout).into_owned();
    assert!(keys.lines().count() > 1, "no keys under {prefix}: {keys:?}");
    for key in keys.lines() {
        let deleted = std::process::Command::new("redis-cli")
            .args(["-p", port, "DEL", key])
            .status()
            .unwrap();
        assert!(deleted.success());
    }
    // The worker carries on: what it held is gone, the rest comes back through the sweeper.
    let done = upper_case_until_done(&grid, &worker, job.id).await;
    assert_eq!(done.state, JobState::Completed, "{done:?}");
    let out = grid.dir.path().join("out");
    grid.customer()
        .download_output(job.id, &out, &done.output.unwrap().sha256)
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(out).unwrap(), input.to_uppercase());
    grid.stop().await;
}

/// Plays a device that upper-cases every chunk it leases, until `job` is completed or failed.
async fn upper_case_until_done(grid: &TestGrid, worker: &Client, job: JobId) -> Job {
    let customer = grid.customer();
    for _ in 0..400 {
        let status = customer.job(job).await.unwrap();
        if status.state.is_terminal() {
            return status;
        }
        let grant = worker
            .lease(&LeaseRequest {
                max_tasks: 10,
                wait_ms: 50,
            })
            .await
            .unwrap();
        for l in grant.leases {
            let path = grid.dir.path().join(format!("chunk-{}", l.lease_id));
            worker
                .download_lease_input(l.lease_id, &path)
                .await
                .unwrap();
            let text = std::fs::read_to_string(&path).unwrap().to_uppercase();
            report_one(worker, l.lease_id, l.task_id, completed(text.as_bytes())).await;
        }
    }
    panic!("job {job} never ended");
}

/// Serves `body` to every request on a loopback port, as a customer's web server would.
async fn serve_file(body: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/input.txt", listener.local_addr().unwrap());
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request).await;
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes()).await;
        }
    });
    url
}

fn create_from(input_from: InputSource, output_to: Option<BucketObject>) -> CreateJob {
    CreateJob {
        app: "python-map".into(),
        params: serde_json::json!({}),
        script: Some("print(1)\n".into()),
        chunk_lines: Some(1),
        chunk_seconds: None,
        preferences: Preferences::default(),
        input_from: Some(input_from),
        output_to,
        webhook: None,
    }
}

#[tokio::test]
async fn an_input_comes_from_a_url_and_only_public_https_ones_by_default() {
    let url = serve_file("alpha\nbeta\ngamma\n").await;
    let open = TestGrid::start(|c| c.allow_private_sources = true).await;
    let customer = open.customer();
    let source = InputSource {
        url: Some(url.clone()),
        bucket: None,
    };
    let job = customer
        .create_job(&create_from(source.clone(), None))
        .await
        .unwrap();
    // Nothing to upload: the coordinator fetches it when the job runs.
    let refused = customer
        .upload_input_bytes(job.id, "x".to_string().into())
        .await
        .unwrap_err();
    assert_eq!(api_code(refused), (409, "input_fetched".into()));
    customer.run_job(job.id).await.unwrap();
    let worker = open.worker("w").await;
    let done = upper_case_until_done(&open, &worker, job.id).await;
    assert_eq!(done.state, JobState::Completed, "{done:?}");
    assert_eq!(done.input_from.unwrap().url.as_deref(), Some(url.as_str()));
    let out = open.dir.path().join("out");
    customer
        .download_output(job.id, &out, &done.output.unwrap().sha256)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(out).unwrap(),
        "ALPHA\nBETA\nGAMMA\n"
    );
    open.stop().await;

    // A coordinator with the defaults reaches neither plain HTTP nor local addresses.
    let strict = TestGrid::start(|_| {}).await;
    let err = strict
        .customer()
        .create_job(&create_from(source, None))
        .await
        .unwrap_err();
    let (status, code) = api_code(err);
    assert_eq!((status, code.as_str()), (422, "invalid_source"));
    let local_https = InputSource {
        url: Some(url.replace("http://", "https://")),
        bucket: None,
    };
    let err = strict
        .customer()
        .create_job(&create_from(local_https, None))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("private or local"), "{err}");
    strict.stop().await;
}

#[tokio::test]
async fn an_input_comes_from_the_customers_bucket_and_the_output_goes_back_to_it() {
    let Ok(s3) = std::env::var("IDLEGRID_TEST_S3") else {
        assert!(
            std::env::var("IDLEGRID_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "IDLEGRID_TEST_S3 is not set: start the services with scripts/services.sh"
        );
        eprintln!("IDLEGRID_TEST_S3 is not set: customer bucket test skipped");
        return;
    };
    // s3://bucket?endpoint=http://127.0.0.1:PORT, from scripts/services.sh.
    let (bucket, query) = s3.trim_start_matches("s3://").split_once('?').unwrap();
    let endpoint = query.trim_start_matches("endpoint=").to_string();
    let prefix = format!("customer-{:016x}", rand::random::<u64>());
    let theirs = idlegrid_storage::blobs::ObjectBlobStore::customer_bucket(
        bucket,
        Some(&endpoint),
        None,
        Some(("customer-key", "customer-secret")),
    )
    .unwrap();
    use idlegrid_storage::blobs::BlobStore;
    theirs
        .put_bytes(&format!("{prefix}/in.txt"), "one\ntwo\n".into())
        .await
        .unwrap();
    let object = |key: &str| BucketObject {
        bucket: bucket.to_string(),
        key: format!("{prefix}/{key}"),
        endpoint: Some(endpoint.clone()),
        region: None,
        access_key_id: Some("customer-key".into()),
        secret_access_key: Some("customer-secret".into()),
    };
    let grid = TestGrid::start(|c| c.allow_private_sources = true).await;
    let customer = grid.customer();
    let source = InputSource {
        url: None,
        bucket: Some(object("in.txt")),
    };
    let job = customer
        .create_job(&create_from(source, Some(object("out.txt"))))
        .await
        .unwrap();
    // The secret is kept, sealed, and never shown back.
    let shown = serde_json::to_string(&customer.job(job.id).await.unwrap()).unwrap();
    assert!(
        shown.contains("customer-key") && !shown.contains("customer-secret"),
        "{shown}"
    );
    let stored = grid.grid.store.job(job.id).await.unwrap().unwrap();
    let stored = stored.spec.external.unwrap().to_string();
    assert!(
        stored.contains("sealed1:") && !stored.contains("customer-secret"),
        "{stored}"
    );
    customer.run_job(job.id).await.unwrap();
    let worker = grid.worker("w").await;
    let done = upper_case_until_done(&grid, &worker, job.id).await;
    assert_eq!(done.state, JobState::Completed, "{done:?}");
    let delivered = theirs
        .get_bytes(&format!("{prefix}/out.txt"), None)
        .await
        .unwrap();
    assert_eq!(delivered, "ONE\nTWO\n");
    grid.stop().await;
}

/// A fresh database on the PostgreSQL `scripts/services.sh` started (`IDLEGRID_TEST_POSTGRES`);
/// `None`, with a note, when it is not set (unless the services are required).
fn fresh_postgres() -> Option<String> {
    let Ok(pg) = std::env::var("IDLEGRID_TEST_POSTGRES") else {
        assert!(
            std::env::var("IDLEGRID_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "IDLEGRID_TEST_POSTGRES is not set: start the services with scripts/services.sh"
        );
        eprintln!("IDLEGRID_TEST_POSTGRES is not set: PostgreSQL test skipped");
        return None;
    };
    let name = format!("api_{:016x}", rand::random::<u64>());
    let created = std::process::Command::new("psql")
        .arg(&pg)
        .args(["-q", "-c", &format!("CREATE DATABASE {name}")])
        .status()
        .expect("psql runs");
    assert!(created.success(), "cannot create database {name} on {pg}");
    let (server, _) = pg.rsplit_once('/').expect("a database in the URL");
    Some(format!("{server}/{name}"))
}

/// What a coordinator does at start follows from what its engines are: in-process queues are
/// rebuilt from the records wherever those are kept, so a coordinator restarted with
/// `--queue memory` over PostgreSQL records hands out the work it had queued.
#[tokio::test]
async fn in_process_queues_over_shared_records_are_rebuilt_at_start() {
    let Some(url) = fresh_postgres() else { return };
    let config = |c: &mut Config| {
        c.backends.store = Some(url.clone());
        c.backends.queue = Some("memory".into());
    };
    let grid = TestGrid::start(config).await;
    let job = grid.submit("a\nb\n", 1, 3).await;
    let dir = grid.stop().await;
    let grid = TestGrid::start_in(dir, config).await;
    let worker = grid.worker("w").await;
    let mut chunks = Vec::new();
    for _ in 0..3 {
        let grant = lease(&worker, 2).await;
        chunks.extend(grant.leases.iter().map(|l| (l.job_id, l.chunk_index)));
        if chunks.len() == 2 {
            break;
        }
    }
    chunks.sort();
    assert_eq!(chunks, [(job.id, 0), (job.id, 1)]);
    grid.stop().await;
}

#[tokio::test]
async fn a_grid_without_a_secrets_key_refuses_to_keep_secrets() {
    // Records other coordinators may share, and no key given: nothing to seal secrets with.
    let Some(url) = fresh_postgres() else { return };
    let grid = TestGrid::start(|c| {
        c.backends.store = Some(url);
        c.allow_private_sources = true;
    })
    .await;
    let source = InputSource {
        url: None,
        bucket: Some(BucketObject {
            bucket: "b".into(),
            key: "k".into(),
            endpoint: Some("http://127.0.0.1:9".into()),
            region: None,
            access_key_id: Some("id".into()),
            secret_access_key: Some("secret".into()),
        }),
    };
    let err = grid
        .customer()
        .create_job(&create_from(source, None))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("secrets key"), "{err}");
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

#[tokio::test]
async fn an_input_uploaded_in_parts_resumes_and_is_joined_in_order() {
    let grid = TestGrid::start(|_| {}).await;
    let customer = grid.customer();
    let job = grid.create(2, Preferences::default()).await;
    let parts = ["one\ntwo\n", "three\nfour\n", "five\n"];
    customer
        .upload_part(job.id, 0, parts[0].into())
        .await
        .unwrap();
    customer
        .upload_part(job.id, 2, "wrong\n".into())
        .await
        .unwrap();
    // Part 2 sent again with other bytes replaces the first copy.
    customer
        .upload_part(job.id, 2, parts[2].into())
        .await
        .unwrap();
    let received = customer.upload_parts(job.id).await.unwrap().parts;
    let numbers: Vec<u32> = received.iter().map(|p| p.part).collect();
    assert_eq!(numbers, [0, 2], "part 1 is missing, part 2 is there once");
    assert_eq!(received[1].sha256, sha256_bytes(parts[2].as_bytes()));
    let complete = |n, sha256: Option<String>| CompleteUpload { parts: n, sha256 };
    assert_eq!(
        api_code(
            customer
                .complete_upload(job.id, &complete(3, None))
                .await
                .unwrap_err()
        ),
        (409, "missing_part".into())
    );
    customer
        .upload_part(job.id, 1, parts[1].into())
        .await
        .unwrap();
    assert_eq!(
        api_code(
            customer
                .complete_upload(job.id, &complete(2, None))
                .await
                .unwrap_err()
        ),
        (409, "extra_part".into())
    );
    let whole = parts.concat();
    assert_eq!(
        api_code(
            customer
                .complete_upload(job.id, &complete(3, Some("0".repeat(64))))
                .await
                .unwrap_err()
        ),
        (422, "digest_mismatch".into())
    );
    assert_eq!(
        customer.upload_parts(job.id).await.unwrap().parts.len(),
        3,
        "parts kept"
    );
    let receipt = customer
        .complete_upload(job.id, &complete(3, Some(sha256_bytes(whole.as_bytes()))))
        .await
        .unwrap();
    assert_eq!(receipt.size, whole.len() as u64);
    assert_eq!(receipt.sha256, sha256_bytes(whole.as_bytes()));
    assert!(
        customer
            .upload_parts(job.id)
            .await
            .unwrap()
            .parts
            .is_empty()
    );
    customer.run_job(job.id).await.unwrap();
    assert_eq!(
        api_code(
            customer
                .upload_part(job.id, 0, "late\n".into())
                .await
                .unwrap_err()
        ),
        (409, "job_not_editable".into())
    );
    let worker = grid.worker("w").await;
    let done = upper_case_until_done(&grid, &worker, job.id).await;
    assert_eq!(done.state, JobState::Completed);
    assert_eq!(done.chunks.total, Some(3));
    let out = grid.dir.path().join("out");
    customer
        .download_output(job.id, &out, &done.output.unwrap().sha256)
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), whole.to_uppercase());
    grid.stop().await;
}

#[tokio::test]
async fn chunks_show_their_states_and_links_serve_the_output_without_credentials() {
    // One device retries its own failed chunk at once.
    let grid = TestGrid::start(|c| c.retry_elsewhere = Duration::ZERO).await;
    let customer = grid.customer();
    let job = grid.submit("a\nb\nc\n", 1, 3).await;
    let worker = grid.worker("w").await;
    let grant = lease(&worker, 1).await;
    let l = &grant.leases[0];
    worker
        .heartbeat(&Heartbeat {
            leases: vec![HeartbeatItem {
                lease_id: l.lease_id,
                progress: Some(0.5),
            }],
        })
        .await
        .unwrap();
    let chunks = customer.job_chunks(job.id, 0, 10).await.unwrap();
    assert_eq!(chunks.tasks.len(), 3);
    assert_eq!(chunks.next_from, None);
    let running: Vec<&ChunkView> = chunks
        .tasks
        .iter()
        .filter(|c| c.state == ChunkState::Running)
        .collect();
    assert_eq!(running.len(), 1, "{chunks:?}");
    assert_eq!(running[0].progress, Some(0.5));
    assert_eq!(
        chunks
            .tasks
            .iter()
            .filter(|c| c.state == ChunkState::Queued)
            .count(),
        2
    );
    let page = customer.job_chunks(job.id, 1, 1).await.unwrap();
    assert_eq!(page.tasks.len(), 1);
    assert_eq!(page.tasks[0].index, 1);
    assert_eq!(page.next_from, Some(2));
    assert_eq!(
        api_code(customer.output_links(job.id).await.unwrap_err()),
        (409, "output_not_ready".into())
    );
    // A failed attempt shows on its chunk.
    report_one(
        &worker,
        l.lease_id,
        l.task_id,
        ReportOutcome::Failed {
            reason: "flaky".into(),
        },
    )
    .await;
    let done = upper_case_until_done(&grid, &worker, job.id).await;
    assert_eq!(done.state, JobState::Completed);
    let chunks = customer.job_chunks(job.id, 0, 10).await.unwrap().tasks;
    assert!(chunks.iter().all(|c| c.state == ChunkState::Done));
    assert_eq!(chunks.iter().map(|c| c.failures).sum::<u32>(), 1);

    let links = customer.output_links(job.id).await.unwrap();
    assert_eq!(links.hls, None, "a python-map output is not HLS");
    let plain = reqwest::Client::new();
    let got = plain
        .get(format!("{}{}", grid.url, links.download))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert!(
        got.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
    assert_eq!(got.text().await.unwrap(), "A\nB\nC\n");
    // Another job's id, or a later expiry, under the same signature is refused.
    let token = links.download.split('/').nth(3).unwrap().to_string();
    let mut fields: Vec<String> = token.split('.').map(str::to_string).collect();
    fields[1] = (fields[1].parse::<i64>().unwrap() + 1).to_string();
    let forged = fields.join(".");
    for bad in [forged.as_str(), "1.9999999999.00", "garbage"] {
        let got = plain
            .get(format!("{}/v1/links/{bad}/output", grid.url))
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), 403, "{bad}");
    }
    grid.stop().await;
}

/// What a webhook receiver was sent.
#[derive(Clone)]
struct Delivered {
    headers: axum::http::HeaderMap,
    body: String,
}

/// A customer's webhook receiver on a loopback port: keeps every delivery and answers 500 to
/// the first `failures` of them, 204 after.
struct Receiver {
    url: String,
    got: Arc<std::sync::Mutex<Vec<Delivered>>>,
}

impl Receiver {
    async fn start(failures: usize) -> Receiver {
        use axum::http::StatusCode;
        let got = Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = got.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let kept = kept.clone();
                async move {
                    let mut got = kept.lock().unwrap();
                    got.push(Delivered { headers, body });
                    if got.len() <= failures {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::NO_CONTENT
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, got }
    }

    /// The deliveries received so far.
    fn received(&self) -> Vec<Delivered> {
        self.got.lock().unwrap().clone()
    }

    /// The bodies received so far, parsed.
    fn bodies(&self) -> Vec<serde_json::Value> {
        self.received()
            .iter()
            .map(|d| serde_json::from_str(&d.body).unwrap())
            .collect()
    }
}

/// A grid that may reach the loopback receivers, retrying deliveries quickly.
async fn webhook_grid() -> TestGrid {
    TestGrid::start(|c| {
        c.allow_private_sources = true;
        c.webhook_retry_base = Duration::from_millis(50);
    })
    .await
}

fn hooked_job(url: &str) -> CreateJob {
    CreateJob {
        app: "python-map".into(),
        params: serde_json::json!({}),
        script: Some("print(1)\n".into()),
        chunk_lines: Some(1),
        chunk_seconds: None,
        preferences: Preferences::default(),
        input_from: None,
        output_to: None,
        webhook: Some(WebhookSpec { url: url.into() }),
    }
}

/// The job's deliveries once `done` holds for them.
async fn deliveries_when(
    customer: &Client,
    job: JobId,
    done: impl Fn(&WebhookDeliveries) -> bool,
) -> WebhookDeliveries {
    for _ in 0..200 {
        let deliveries = customer.webhook_deliveries(job).await.unwrap();
        if done(&deliveries) {
            return deliveries;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "job {job}'s deliveries never got there: {:?}",
        customer.webhook_deliveries(job).await.unwrap()
    );
}

/// The hex HMAC-SHA256 a receiver computes to check a delivery.
fn expected_signature(secret: &str, timestamp: &str, body: &str) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn a_webhook_receives_every_state_change_in_order_signed() {
    let receiver = Receiver::start(0).await;
    let grid = webhook_grid().await;
    let customer = grid.customer();
    let job = customer
        .create_job(&hooked_job(&receiver.url))
        .await
        .unwrap();
    let shown = job.webhook.clone().unwrap();
    assert_eq!(shown.url, receiver.url);
    let secret = shown.secret.unwrap();
    assert!(secret.starts_with("whsec_"), "{secret}");
    // The secret is shown once: not in the job's status, not in the list, not in the records.
    let status = customer.job(job.id).await.unwrap();
    assert_eq!(status.webhook.as_ref().unwrap().secret, None);
    assert_eq!(status.webhook.unwrap().url, receiver.url);
    let listed = serde_json::to_string(&customer.list_jobs(None, 10).await.unwrap()).unwrap();
    let raw = reqwest::Client::new()
        .get(format!("{}/v1/jobs/{}", grid.url, job.id))
        .bearer_auth(&grid.credentials.api_key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let stored = grid.grid.store.job(job.id).await.unwrap().unwrap();
    let stored = stored.spec.webhook.unwrap().to_string();
    for text in [&listed, &raw, &stored] {
        assert!(
            !text.contains(&secret) && !text.contains("\"secret\":\"whsec"),
            "{text}"
        );
    }
    assert!(stored.contains("sealed1:"), "{stored}");

    customer
        .upload_input_bytes(job.id, "a\nb\n".to_string().into())
        .await
        .unwrap();
    customer.run_job(job.id).await.unwrap();
    let worker = grid.worker("w").await;
    let done = upper_case_until_done(&grid, &worker, job.id).await;
    assert_eq!(done.state, JobState::Completed, "{done:?}");
    let deliveries = deliveries_when(&customer, job.id, |d| {
        d.events
            .last()
            .is_some_and(|e| e.state == JobState::Completed)
            && d.events.iter().all(|e| e.delivered_at.is_some())
    })
    .await;

    // Every state, in order, each once; the deliveries API agrees with what arrived.
    let states: Vec<String> = receiver
        .bodies()
        .iter()
        .map(|b| b["state"].as_str().unwrap().to_string())
        .collect();
    let recorded: Vec<String> = deliveries
        .events
        .iter()
        .map(|e| e.state.to_string())
        .collect();
    assert_eq!(states, recorded);
    assert_eq!(&states[..3], ["created", "submitted", "partitioning"]);
    assert_eq!(&states[states.len() - 2..], ["assembling", "completed"]);
    assert!(states.len() == 5 || states[3] == "running", "{states:?}");
    for event in &deliveries.events {
        assert!(!event.gave_up && event.next_attempt_at.is_none());
        assert_eq!(event.attempts.len(), 1);
        assert_eq!(
            (event.attempts[0].status, &event.attempts[0].error),
            (Some(204), &None)
        );
    }

    let got = receiver.received();
    for (delivery, event) in got.iter().zip(&deliveries.events) {
        let header = |name: &str| delivery.headers[name].to_str().unwrap().to_string();
        let body: serde_json::Value = serde_json::from_str(&delivery.body).unwrap();
        let kind = format!("job.{}", event.state);
        assert_eq!(header("content-type"), "application/json");
        assert_eq!(header("x-idlegrid-event"), kind);
        assert_eq!(header("x-idlegrid-delivery"), event.id.to_string());
        assert_eq!(body["id"], event.id);
        assert_eq!(body["type"], kind.as_str());
        assert_eq!(body["job_id"], job.id.0);
        assert_eq!(body["error"], serde_json::Value::Null);
        let at: jiff::Timestamp = body["at"].as_str().unwrap().parse().unwrap();
        assert_eq!(at, event.at);
        let timestamp = header("x-idlegrid-timestamp");
        let sent: i64 = timestamp.parse().unwrap();
        assert!((sent - jiff::Timestamp::now().as_second()).abs() < 60);
        // The signature verifies with the secret from the create answer, and only with it, over
        // this very timestamp and body.
        let signature = header("x-idlegrid-signature");
        assert_eq!(
            signature,
            expected_signature(&secret, &timestamp, &delivery.body)
        );
        let forged = expected_signature("whsec_guessed", &timestamp, &delivery.body);
        assert_ne!(signature, forged);
        let later = (sent + 1).to_string();
        assert_ne!(
            signature,
            expected_signature(&secret, &later, &delivery.body)
        );
        let tampered = delivery.body.replace("job.", "job.x");
        assert_ne!(
            signature,
            expected_signature(&secret, &timestamp, &tampered)
        );
    }
    grid.stop().await;
}

#[tokio::test]
async fn a_webhook_receiver_failing_twice_gets_the_event_on_the_third_attempt() {
    let receiver = Receiver::start(2).await;
    let grid = webhook_grid().await;
    let customer = grid.customer();
    let job = customer
        .create_job(&hooked_job(&receiver.url))
        .await
        .unwrap();
    let deliveries = deliveries_when(&customer, job.id, |d| {
        d.events.first().is_some_and(|e| e.delivered_at.is_some())
    })
    .await;
    let created = &deliveries.events[0];
    assert_eq!(created.state, JobState::Created);
    let statuses: Vec<Option<u16>> = created.attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [Some(500), Some(500), Some(204)]);
    for failed in &created.attempts[..2] {
        let error = failed.error.as_deref().unwrap();
        assert!(error.contains("500"), "{error}");
    }
    assert_eq!(created.attempts[2].error, None);
    assert!(created.attempts.windows(2).all(|w| w[0].at <= w[1].at));
    assert!(!created.gave_up && created.next_attempt_at.is_none());
    // The same event three times: receivers tell repeats apart by its id.
    let got = receiver.received();
    assert_eq!(got.len(), 3);
    for delivery in got.iter() {
        assert_eq!(
            delivery.headers["x-idlegrid-delivery"],
            created.id.to_string().as_str()
        );
    }
    grid.stop().await;
}

#[tokio::test]
async fn a_webhook_receiver_that_is_down_shows_the_connection_error() {
    // A port nobody listens on: connections are refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    drop(listener);
    let grid = webhook_grid().await;
    let customer = grid.customer();
    let job = customer.create_job(&hooked_job(&url)).await.unwrap();
    let deliveries = deliveries_when(&customer, job.id, |d| {
        d.events.first().is_some_and(|e| e.attempts.len() >= 2)
    })
    .await;
    let created = &deliveries.events[0];
    assert!(created.delivered_at.is_none() && !created.gave_up);
    assert!(created.next_attempt_at.is_some());
    for attempt in &created.attempts {
        assert_eq!(attempt.status, None);
        let error = attempt.error.as_deref().unwrap();
        assert!(
            error.to_lowercase().contains("connection refused"),
            "{error}"
        );
    }
    grid.stop().await;
}

#[tokio::test]
async fn webhook_urls_must_be_public_https_unless_private_sources_are_allowed() {
    let strict = TestGrid::start(|_| {}).await;
    let customer = strict.customer();
    for (url, says) in [
        ("http://127.0.0.1:9/hook", "only https://"),
        ("https://127.0.0.1:9/hook", "private or local"),
        ("https://[::1]:9/hook", "private or local"),
        ("ftp://example.com/hook", "ftp://"),
        ("not a url", "not a URL"),
    ] {
        let err = customer.create_job(&hooked_job(url)).await.unwrap_err();
        let message = err.to_string();
        assert_eq!(api_code(err), (422, "invalid_webhook".into()), "{url}");
        assert!(message.contains(says), "{url}: {message}");
    }
    // A job without a webhook has no deliveries to show; another tenant's job is not found.
    let plain = customer
        .create_job(&CreateJob {
            webhook: None,
            ..hooked_job("")
        })
        .await
        .unwrap();
    assert!(plain.webhook.is_none());
    let err = customer.webhook_deliveries(plain.id).await.unwrap_err();
    assert_eq!(api_code(err), (404, "no_webhook".into()));
    let err = customer
        .webhook_deliveries(JobId(999_999))
        .await
        .unwrap_err();
    assert_eq!(api_code(err), (404, "job_not_found".into()));
    strict.stop().await;

    // Allowing private sources opens plain HTTP and loopback, not other schemes.
    let open = webhook_grid().await;
    let customer = open.customer();
    let receiver = Receiver::start(0).await;
    customer
        .create_job(&hooked_job(&receiver.url))
        .await
        .unwrap();
    let err = customer
        .create_job(&hooked_job("ftp://127.0.0.1/hook"))
        .await
        .unwrap_err();
    assert_eq!(api_code(err), (422, "invalid_webhook".into()));
    open.stop().await;

    // Without a secrets key there is nowhere to keep the signing secret.
    let Some(url) = fresh_postgres() else { return };
    let keyless = TestGrid::start(|c| {
        c.backends.store = Some(url);
        c.allow_private_sources = true;
    })
    .await;
    let err = keyless
        .customer()
        .create_job(&hooked_job(&receiver.url))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert_eq!(api_code(err), (422, "invalid_webhook".into()));
    assert!(message.contains("secrets key"), "{message}");
    keyless.stop().await;
}

#[tokio::test]
async fn one_stream_follows_all_of_a_customers_jobs_and_no_one_elses() {
    let grid = TestGrid::start(|_| {}).await;
    let customer = grid.customer();
    let old = grid.submit("a\n", 1, 3).await;
    let stranger = grid.other_customer().await;
    let mut events = Box::pin(customer.jobs_events().await.unwrap());
    let first = events.next().await.unwrap().unwrap();
    assert_eq!(first.id, old.id, "the newest jobs come first, as they are");
    let mut theirs = Box::pin(stranger.jobs_events().await.unwrap());
    // A job created after the stream opened shows up, and so do its changes.
    let new = grid.create(1, Preferences::default()).await;
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let job = events.next().await.unwrap().unwrap();
            if job.id == new.id {
                return job;
            }
        }
    })
    .await
    .expect("the new job is announced");
    assert_eq!(seen.state, JobState::Created);
    customer.cancel_job(old.id).await.unwrap();
    let cancelled = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let job = events.next().await.unwrap().unwrap();
            if job.id == old.id && job.state == JobState::Cancelled {
                return job;
            }
        }
    })
    .await
    .expect("the cancellation is announced");
    assert_eq!(cancelled.state, JobState::Cancelled);
    // The other customer's stream carries none of it.
    let quiet = tokio::time::timeout(Duration::from_millis(2500), theirs.next()).await;
    assert!(quiet.is_err(), "another tenant saw {:?}", quiet.ok());
    grid.stop().await;
}

fn api_status(error: &ClientError) -> (u16, String, String) {
    match error {
        ClientError::Api { status, body } => {
            (*status, body.error.code.clone(), body.error.message.clone())
        }
        other => panic!("expected an API error, got {other}"),
    }
}

fn estimate_for(bytes: u64, tier: idlegrid_domain::Tier) -> EstimateRequest {
    EstimateRequest {
        app: Some("python-map".into()),
        params: serde_json::json!({}),
        chunk_lines: None,
        chunk_seconds: None,
        preferences: Preferences {
            tier,
            ..Preferences::default()
        },
        job: None,
        input_bytes: Some(bytes),
        video: None,
    }
}

#[tokio::test]
async fn estimates_price_every_tier_before_anything_runs() {
    let grid = TestGrid::start(|_| {}).await;
    let customer = grid.customer();
    let worker = grid.worker("w1").await;
    // A device asks for work (there is none): it is online, so the grid has capacity.
    worker
        .lease(&LeaseRequest {
            max_tasks: 1,
            wait_ms: 0,
        })
        .await
        .unwrap();
    let estimate = customer
        .estimate(&estimate_for(500 << 20, idlegrid_domain::Tier::Fast))
        .await
        .unwrap();
    assert_eq!(estimate.quote.tier, idlegrid_domain::Tier::Fast);
    let prices: Vec<i64> = estimate.tiers.iter().map(|t| t.price.0).collect();
    assert!(
        prices[0] < prices[1] && prices[1] < prices[2],
        "economy < standard < fast: {prices:?}"
    );
    assert!(estimate.affordable, "{estimate:?}");
    assert!(!estimate.exact);
    assert_eq!(estimate.meets_deadline, None);
    assert_eq!((estimate.devices_online, estimate.slots), (1, 4));
    assert!(estimate.quote.eta_secs.is_some_and(|eta| eta > 0.0));
    // 500 MiB cannot be done in a second by one device: the deadline is said to be missed.
    let hurried = customer
        .estimate(&EstimateRequest {
            preferences: Preferences {
                deadline_secs: Some(1),
                ..Preferences::default()
            },
            ..estimate_for(500 << 20, idlegrid_domain::Tier::Standard)
        })
        .await
        .unwrap();
    assert_eq!(hurried.meets_deadline, Some(false));
    assert!(hurried.problem.unwrap().contains("deadline"));
    // The opening credit is 100 credits.
    assert_eq!(estimate.balance.0, 100_000_000);
    // A video described by its size and length.
    let video = customer
        .estimate(&EstimateRequest {
            app: Some("video-transcode".into()),
            params: serde_json::json!({"preset": "720p"}),
            input_bytes: None,
            video: Some(VideoDescription {
                duration_secs: 60.0,
                width: 1920,
                height: 1080,
                fps: 30.0,
                audio: true,
            }),
            ..estimate_for(0, idlegrid_domain::Tier::Standard)
        })
        .await
        .unwrap();
    assert!(video.quote.price.0 > 0 && video.quote.work_core_seconds > 60.0);
    // An estimate for an uploaded job is exact: the quote `run` holds.
    let job = grid.create(1, Preferences::default()).await;
    customer
        .upload_input_bytes(job.id, "a\nb\nc\n".to_string().into())
        .await
        .unwrap();
    let exact = customer
        .estimate(&EstimateRequest {
            job: Some(job.id),
            app: None,
            input_bytes: None,
            ..estimate_for(0, idlegrid_domain::Tier::Standard)
        })
        .await
        .unwrap();
    assert!(exact.exact);
    customer.run_job(job.id).await.unwrap();
    let held = wait_for(&customer, job.id, JobState::Running).await;
    assert_eq!(held.cost.unwrap().quote, exact.quote.price);
    // Bad requests say what is missing.
    let missing = customer
        .estimate(&EstimateRequest {
            input_bytes: None,
            ..estimate_for(0, idlegrid_domain::Tier::Standard)
        })
        .await
        .unwrap_err();
    let (status, code, _) = api_status(&missing);
    assert_eq!((status, code.as_str()), (422, "missing_input"));
    let video_without_size = customer
        .estimate(&EstimateRequest {
            app: Some("video-transcode".into()),
            ..estimate_for(1000, idlegrid_domain::Tier::Standard)
        })
        .await
        .unwrap_err();
    assert!(api_status(&video_without_size).2.contains("frames"));
    grid.stop().await;
}

#[tokio::test]
async fn a_customer_without_credit_is_refused_before_anything_runs() {
    let grid = TestGrid::start(|c| c.opening_credit = idlegrid_domain::Credits(0)).await;
    let customer = grid.customer();
    let job = grid.create(1, Preferences::default()).await;
    customer
        .upload_input_bytes(job.id, "a\nb\n".to_string().into())
        .await
        .unwrap();
    let refused = customer.run_job(job.id).await.unwrap_err();
    let (status, code, message) = api_status(&refused);
    assert_eq!((status, code.as_str()), (402, "insufficient_balance"));
    assert!(message.contains("balance is 0.000000 credits"), "{message}");
    // Nothing ran: the job still waits, with no chunk made.
    let status = customer.job(job.id).await.unwrap();
    assert_eq!(status.state, JobState::Created);
    assert_eq!(status.chunks.created, 0);
    // An operator deposits credit; a repeated reference posts nothing; then it runs.
    let operator = Client::new(&grid.url, &grid.credentials.operator_key).unwrap();
    let me = customer.whoami().await.unwrap();
    let deposit = Deposit {
        amount: idlegrid_domain::Credits(5_000_000),
        reference: "invoice-1".into(),
    };
    let tenant = idlegrid_api::TenantId(me.id);
    let first = operator.deposit(tenant, &deposit).await.unwrap();
    assert!(first.posted);
    assert_eq!(first.balance.0, 5_000_000);
    let again = operator.deposit(tenant, &deposit).await.unwrap();
    assert!(!again.posted);
    assert_eq!(again.balance.0, 5_000_000);
    // Customers cannot deposit for themselves.
    assert_eq!(
        api_status(&customer.deposit(tenant, &deposit).await.unwrap_err()).0,
        403
    );
    // A max_price below the quote fails the job before it runs, with the reason.
    let capped = grid
        .create(
            1,
            Preferences {
                max_price: Some(idlegrid_domain::Credits(1)),
                ..Preferences::default()
            },
        )
        .await;
    customer
        .upload_input_bytes(capped.id, "a\nb\n".to_string().into())
        .await
        .unwrap();
    let over = customer.run_job(capped.id).await.unwrap_err();
    assert_eq!(api_status(&over).1, "over_max_price");
    customer.run_job(job.id).await.unwrap();
    let balance = customer.balance().await.unwrap();
    assert_eq!(balance.kind, "customer");
    assert!(
        balance
            .entries
            .iter()
            .any(|e| e.txn.starts_with("deposit:"))
    );
    grid.stop().await;
}

#[tokio::test]
async fn validated_work_is_paid_to_the_owner_and_the_books_balance() {
    let grid = TestGrid::start(|_| {}).await;
    let customer = grid.customer();
    let job = grid.submit("a\nb\nc\nd\n", 1, 3).await;
    let worker = grid.worker("w1").await;
    let mut leases = Vec::new();
    while leases.len() < 4 {
        leases.extend(lease(&worker, 10).await.leases);
    }
    // (A rejected result earns nothing: the records' own test shows it on both backends.)
    for (i, l) in leases.iter().enumerate() {
        report_one(
            &worker,
            l.lease_id,
            l.task_id,
            completed(format!("{i}\n").as_bytes()),
        )
        .await;
    }
    let done = wait_for(&customer, job.id, JobState::Completed).await;
    let cost = done.cost.expect("a completed job has its cost");
    assert!(cost.charged.0 > 0 && cost.charged <= cost.quote, "{cost:?}");
    // The customer paid what was charged; the rest of the hold came back.
    let balance = customer.balance().await.unwrap();
    assert_eq!(balance.balance.0, 100_000_000 - cost.charged.0);
    assert_eq!(balance.held.0, 0);
    // The device earned its owner 70% of it, shown to the owner and the device.
    let owner = Client::new(&grid.url, &grid.credentials.enrollment_token).unwrap();
    let devices = owner.owner_devices().await.unwrap();
    let earned = devices.totals.earned.0;
    assert!(
        earned > 0 && earned <= cost.charged.0 * 7 / 10 + 4,
        "{earned} of {cost:?}"
    );
    assert_eq!(devices.devices[0].earned.0, earned);
    assert_eq!(worker.me().await.unwrap().earned.0, earned);
    assert_eq!(owner.balance().await.unwrap().balance.0, earned);
    let operator = Client::new(&grid.url, &grid.credentials.operator_key).unwrap();
    let books = operator.balance().await.unwrap();
    assert_eq!(books.books_balance, Some(true));
    assert_eq!(books.balance.0, cost.charged.0 - earned);
    let audit = grid.grid.store.audit_ledger().await.unwrap();
    assert_eq!(
        (audit.total.0, audit.unbalanced, audit.over_quote),
        (0, 0, 0)
    );
    grid.stop().await;
}

#[tokio::test]
async fn a_straggler_gets_a_backup_and_the_first_valid_result_wins() {
    let grid = TestGrid::start(|_| {}).await;
    let customer = grid.customer();
    let job = grid.submit_one_fast_chunk().await;
    let slow = grid.worker("slow").await;
    let fast = grid.worker("fast").await;
    let mut held = Vec::new();
    while held.is_empty() {
        held = lease(&slow, 1).await.leases;
    }
    // The slow device reports 5% after its first seconds: it would need minutes more.
    let beat = |progress| Heartbeat {
        leases: vec![HeartbeatItem {
            lease_id: held[0].lease_id,
            progress: Some(progress),
        }],
    };
    slow.heartbeat(&beat(0.05)).await.unwrap();
    // The other device asks for work: the straggler's backup comes to it.
    let mut backup = Vec::new();
    for _ in 0..6 {
        slow.heartbeat(&beat(0.05)).await.unwrap();
        backup = lease(&fast, 1).await.leases;
        if !backup.is_empty() {
            break;
        }
    }
    assert_eq!(
        backup.len(),
        1,
        "no backup copy of the straggler was offered"
    );
    assert_eq!(backup[0].task_id, held[0].task_id);
    let reply = report_one(
        &fast,
        backup[0].lease_id,
        backup[0].task_id,
        completed(b"X\n"),
    )
    .await;
    assert!(reply.results[0].accepted);
    wait_for(&customer, job.id, JobState::Completed).await;
    // The losing copy is told to stop, and its late result is refused and earns nothing.
    let mut stopped = false;
    for _ in 0..40 {
        if !slow.heartbeat(&beat(0.5)).await.unwrap().leases[0].held {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stopped, "the straggler's lease was not ended");
    let late = report_one(&slow, held[0].lease_id, held[0].task_id, completed(b"X\n")).await;
    assert!(!late.results[0].accepted);
    assert!(fast.me().await.unwrap().earned.0 > 0);
    assert_eq!(slow.me().await.unwrap().earned.0, 0);
    grid.stop().await;
}

#[tokio::test]
async fn a_backup_that_straggles_too_gets_a_third_copy_and_no_more() {
    let grid = TestGrid::start(|_| {}).await;
    let customer = grid.customer();
    let job = grid.submit_one_fast_chunk().await;
    let beat = |lease: &idlegrid_api::tasks::Lease| Heartbeat {
        leases: vec![HeartbeatItem {
            lease_id: lease.lease_id,
            progress: Some(0.05),
        }],
    };
    // Every copy reports 5% after its first seconds: each would need minutes more.
    let mut holders: Vec<(Client, idlegrid_api::tasks::Lease)> = Vec::new();
    for name in ["slow", "also-slow", "third"] {
        let worker = grid.worker(name).await;
        let mut got = Vec::new();
        for _ in 0..8 {
            for (holder, held) in &holders {
                holder.heartbeat(&beat(held)).await.unwrap();
            }
            got = lease(&worker, 1).await.leases;
            if !got.is_empty() {
                break;
            }
        }
        assert_eq!(got.len(), 1, "{name} was offered no copy of the chunk");
        if let Some((_, first)) = holders.first() {
            assert_eq!(got[0].task_id, first.task_id);
        }
        holders.push((worker, got.remove(0)));
    }
    // Three copies run, all slow: a fourth device is offered nothing, sweep after sweep.
    let fourth = grid.worker("fourth").await;
    for _ in 0..3 {
        for (holder, held) in &holders {
            holder.heartbeat(&beat(held)).await.unwrap();
        }
        let offered = lease(&fourth, 1).await.leases;
        assert!(offered.is_empty(), "a fourth copy was offered: {offered:?}");
    }
    let (third, copy) = &holders[2];
    let reply = report_one(third, copy.lease_id, copy.task_id, completed(b"X\n")).await;
    assert!(reply.results[0].accepted);
    wait_for(&customer, job.id, JobState::Completed).await;
    grid.stop().await;
}

#[tokio::test]
async fn a_device_is_matched_by_the_capabilities_it_reports_last() {
    let grid = TestGrid::start(|_| {}).await;
    let worker = grid.worker("phone").await;
    let mut caps = device_caps();
    // What a device says about itself is checked like any other input.
    let mut bogus = caps.clone();
    bogus.slots = 100_000;
    let (status, code) = api_code(worker.update_capabilities(&bogus).await.unwrap_err());
    assert_eq!((status, code.as_str()), (422, "invalid_capabilities"));
    let refused = Client::register(
        &grid.url,
        &grid.credentials.enrollment_token,
        &RegisterWorker {
            name: "liar".into(),
            capabilities: Capabilities {
                benchmark: f64::MAX,
                ..caps.clone()
            },
        },
    )
    .await
    .unwrap_err();
    assert_eq!(api_code(refused).0, 422);

    // The owner now allows a task 256 MiB; python-map tasks may use 1024.
    caps.allows.memory_mb = Some(256);
    worker.update_capabilities(&caps).await.unwrap();
    let job = grid.submit("a\nb\n", 1, 3).await;
    let customer = grid.customer();
    for _ in 0..200 {
        if customer.job(job.id).await.unwrap().chunks.queued == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(customer.job(job.id).await.unwrap().chunks.queued, 2);
    let none = worker
        .lease(&LeaseRequest {
            max_tasks: 1,
            wait_ms: 300,
        })
        .await
        .unwrap();
    assert!(none.leases.is_empty(), "{none:?}");
    caps.allows.memory_mb = None;
    worker.update_capabilities(&caps).await.unwrap();
    let grant = lease(&worker, 2).await;
    assert_eq!(grant.leases.len(), 2, "{grant:?}");
    assert!(grant.leases.iter().all(|l| l.job_id == job.id));
    grid.stop().await;
}

#[tokio::test]
async fn a_job_knows_the_share_of_the_online_grid_it_fits() {
    let grid = TestGrid::start(|_| {}).await;
    let roomy = grid.worker("roomy").await;
    let tight = grid.worker("tight").await;
    let mut caps = device_caps();
    caps.allows.memory_mb = Some(256);
    tight.update_capabilities(&caps).await.unwrap();
    let job = grid.submit("a\nb\n", 1, 3).await;
    // Both devices ask for work, so both are online; only `roomy` may take a python-map task.
    let quick = LeaseRequest {
        max_tasks: 1,
        wait_ms: 0,
    };
    assert!(tight.lease(&quick).await.unwrap().leases.is_empty());
    assert_eq!(lease(&roomy, 1).await.leases.len(), 1);
    grid.grid
        .schedule
        .measure_fit(&grid.grid.online_devices().await);
    let share = grid.grid.schedule.fit_share(job.id);
    assert!((share - 0.5).abs() < 1e-9, "{share}");
    grid.stop().await;
}

#[tokio::test]
async fn a_browser_links_to_its_owner_by_a_code_that_works_once() {
    let grid = TestGrid::start(|_| {}).await;
    let owner = Client::new(&grid.url, &grid.credentials.enrollment_token).unwrap();
    let code = owner.create_link_code().await.unwrap();
    assert_eq!(code.expires_in_secs, 600);
    assert_eq!(
        code.contribute_path,
        format!("/contribute#code={}", code.code)
    );
    // A customer's key cannot ask for one.
    let (status, _) = api_code(grid.customer().create_link_code().await.unwrap_err());
    assert_eq!(status, 403);
    let browser = Capabilities {
        runtime: idlegrid_domain::Runtime::Browser,
        wasm_threads: true,
        ..device_caps()
    };
    let link = |code: &str| idlegrid_api::tasks::LinkWorker {
        code: code.into(),
        name: "phone".into(),
        capabilities: browser.clone(),
    };
    // Typed in lower case with spaces, it still works.
    let typed = code.code.to_lowercase().replace('-', " ");
    let registered = Client::link(&grid.url, &link(&typed)).await.unwrap();
    let phone = Client::new(&grid.url, &registered.token).unwrap();
    assert_eq!(phone.me().await.unwrap().worker_id, registered.worker_id);
    let devices = owner.owner_devices().await.unwrap().devices;
    assert_eq!(devices.len(), 1);
    assert_eq!(
        devices[0].capabilities.runtime,
        idlegrid_domain::Runtime::Browser
    );
    // Once only; malformed codes are told apart from unknown ones.
    let (status, code_name) = api_code(
        Client::link(&grid.url, &link(&code.code))
            .await
            .unwrap_err(),
    );
    assert_eq!((status, code_name.as_str()), (401, "unknown_link_code"));
    let (status, code_name) = api_code(Client::link(&grid.url, &link("ABC")).await.unwrap_err());
    assert_eq!((status, code_name.as_str()), (400, "invalid_link_code"));
    // A device keeps its kind of runtime: its results are compared by hash with that kind's.
    let (status, code_name) =
        api_code(phone.update_capabilities(&device_caps()).await.unwrap_err());
    assert_eq!((status, code_name.as_str()), (422, "runtime_changed"));
    phone.update_capabilities(&browser).await.unwrap();
    // The native worker says nothing of WebAssembly threads.
    let worker = grid.worker("desktop").await;
    let (status, _) = api_code(
        worker
            .update_capabilities(&Capabilities {
                wasm_threads: true,
                ..device_caps()
            })
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 422);
    grid.stop().await;
}

#[tokio::test]
async fn guessing_link_codes_is_slowed_down() {
    let grid = TestGrid::start(|_| {}).await;
    let mut limited = false;
    for i in 0..60 {
        let request = idlegrid_api::tasks::LinkWorker {
            code: format!("ABCD-{i:04}"),
            name: "guess".into(),
            capabilities: device_caps(),
        };
        let (status, _) = api_code(Client::link(&grid.url, &request).await.unwrap_err());
        if status == 429 {
            limited = true;
            break;
        }
        assert_eq!(status, 401);
    }
    assert!(limited, "60 guesses at once were all answered");
    grid.stop().await;
}

#[path = "api/limits.rs"]
mod limits;

#[path = "api/leftovers.rs"]
mod leftovers;

#[path = "api/device_text.rs"]
mod device_text;
