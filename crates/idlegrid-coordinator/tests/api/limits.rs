//! Every limit on every path: each test is one way around a limit, played as a client that
//! read the source would play it, with the exact answer and what is stored afterwards.

use crate::harness::*;

/// The input limit of these grids.
const LIMIT: u64 = 1024 * 1024;

async fn limited_grid() -> TestGrid {
    TestGrid::start(|c| {
        c.max_upload_bytes = LIMIT;
        c.allow_private_sources = true;
    })
    .await
}

/// Blobs stored under `prefix` of the grid's blob store.
fn blobs_under(grid: &TestGrid, prefix: &str) -> usize {
    files_under(&grid.dir.path().join("blobs").join(prefix))
}

#[tokio::test]
async fn parts_past_the_input_limit_are_refused_as_they_arrive() {
    let grid = limited_grid().await;
    let customer = grid.customer();
    let job = grid.create(1, Preferences::default()).await;
    // The attack of the issue: 2 MB parts against a 1 MiB limit.
    let err = customer
        .upload_part(job.id, 0, vec![b'x'; 2_000_000].into())
        .await
        .unwrap_err();
    assert_eq!(api_code(err), (413, "too_large".into()));
    // Parts within the limit on their own, past it together.
    let part = || -> bytes::Bytes { vec![b'y'; 600 * 1024].into() };
    customer.upload_part(job.id, 0, part()).await.unwrap();
    let err = customer.upload_part(job.id, 1, part()).await.unwrap_err();
    assert_eq!(err.status(), Some(413));
    assert_eq!(err.code(), Some("too_large"));
    assert!(
        err.to_string()
            .contains("part 1 would bring the input past its limit of 1048576 bytes"),
        "{err}"
    );
    for n in 2..5 {
        let err = customer.upload_part(job.id, n, part()).await.unwrap_err();
        assert_eq!(api_code(err), (413, "too_large".into()), "part {n}");
    }
    let parts = customer.upload_parts(job.id).await.unwrap().parts;
    assert_eq!(
        parts.iter().map(|p| (p.part, p.size)).collect::<Vec<_>>(),
        [(0, 600 * 1024)]
    );
    assert_eq!(blobs_under(&grid, &format!("jobs/{}/parts", job.id)), 1);
    // Sending part 0 again replaces it, so it may use the room it held.
    customer
        .upload_part(job.id, 0, vec![b'z'; LIMIT as usize].into())
        .await
        .unwrap();
    assert_eq!(blobs_under(&grid, &format!("jobs/{}/parts", job.id)), 1);
    grid.stop().await;
}

#[tokio::test]
async fn parts_sent_at_once_cannot_add_up_past_the_limit() {
    let grid = limited_grid().await;
    let customer = grid.customer();
    let job = grid.create(1, Preferences::default()).await;
    let sends: Vec<_> = (0..5)
        .map(|n| {
            let customer = customer.clone();
            tokio::spawn(async move {
                customer
                    .upload_part(job.id, n, vec![b'p'; 400 * 1024].into())
                    .await
            })
        })
        .collect();
    for send in sends {
        if let Err(err) = send.await.unwrap() {
            assert_eq!(api_code(err), (413, "too_large".into()));
        }
    }
    let stored: u64 = customer
        .upload_parts(job.id)
        .await
        .unwrap()
        .parts
        .iter()
        .map(|p| p.size)
        .sum();
    assert!(stored <= LIMIT, "{stored} bytes of parts stored");
    grid.stop().await;
}

#[tokio::test]
async fn the_parts_of_an_abandoned_upload_are_deleted() {
    let grid = TestGrid::start(|c| c.abandoned_upload_after = Duration::from_secs(1)).await;
    let customer = grid.customer();
    let job = grid.create(1, Preferences::default()).await;
    customer
        .upload_part(job.id, 0, "a\n".to_string().into())
        .await
        .unwrap();
    let parts = format!("jobs/{}/parts", job.id);
    assert_eq!(
        blobs_under(&grid, &parts),
        1,
        "kept while the upload goes on"
    );
    for _ in 0..100 {
        if blobs_under(&grid, &parts) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(blobs_under(&grid, &parts), 0, "deleted once abandoned");
    assert!(
        customer
            .upload_parts(job.id)
            .await
            .unwrap()
            .parts
            .is_empty()
    );
    let job = customer.job(job.id).await.unwrap();
    assert_eq!(
        job.state,
        JobState::Created,
        "the job may be uploaded to again"
    );
    grid.stop().await;
}

#[tokio::test]
async fn a_whole_input_past_the_limit_is_refused_and_not_kept() {
    let grid = limited_grid().await;
    let customer = grid.customer();
    let job = grid.create(1, Preferences::default()).await;
    let err = customer
        .upload_input_bytes(job.id, vec![b'x'; LIMIT as usize + 1].into())
        .await
        .unwrap_err();
    assert_eq!(api_code(err), (413, "too_large".into()));
    assert!(customer.job(job.id).await.unwrap().input.is_none());
    assert_eq!(blobs_under(&grid, &format!("jobs/{}", job.id)), 0);
    grid.stop().await;
}

#[tokio::test]
async fn an_input_from_a_url_past_the_limit_fails_its_job_and_is_not_kept() {
    let grid = limited_grid().await;
    let url = serve_file(String::leak("x\n".repeat(LIMIT as usize))).await;
    let customer = grid.customer();
    let source = InputSource {
        url: Some(url.clone()),
        bucket: None,
    };
    let job = customer
        .create_job(&create_from(source, None))
        .await
        .unwrap();
    customer.run_job(job.id).await.unwrap();
    let failed = wait_for(&customer, job.id, JobState::Failed).await;
    assert_eq!(
        failed.error.as_deref(),
        Some(format!("the input at {url} is larger than the {LIMIT}-byte limit").as_str())
    );
    assert!(failed.input.is_none());
    assert_eq!(blobs_under(&grid, &format!("jobs/{}", job.id)), 0);
    grid.stop().await;
}

#[tokio::test]
async fn an_input_from_a_bucket_past_the_limit_fails_its_job_and_is_not_kept() {
    let Some(theirs) = CustomerBucket::open("bucket limit test") else {
        return;
    };
    let key = format!("{}/big", unique_name("customer-"));
    use idlegrid_storage::blobs::BlobStore;
    theirs
        .store
        .put_bytes(&key, vec![b'x'; LIMIT as usize + 1].into())
        .await
        .unwrap();
    let grid = limited_grid().await;
    let customer = grid.customer();
    let source = InputSource {
        url: None,
        bucket: Some(theirs.object(&key)),
    };
    let job = customer
        .create_job(&create_from(source, None))
        .await
        .unwrap();
    customer.run_job(job.id).await.unwrap();
    let failed = wait_for(&customer, job.id, JobState::Failed).await;
    assert_eq!(
        failed.error.as_deref(),
        Some(
            format!(
                "the input at s3://{}/{key} is larger than the {LIMIT}-byte limit",
                theirs.bucket
            )
            .as_str()
        )
    );
    assert_eq!(blobs_under(&grid, &format!("jobs/{}", job.id)), 0);
    theirs.store.delete(&key).await.unwrap();
    grid.stop().await;
}

/// Uploads `bytes` as the output of `lease`.
async fn upload_output(
    grid: &TestGrid,
    worker: &Client,
    lease: idlegrid_api::LeaseId,
    bytes: &[u8],
) -> Result<idlegrid_api::UploadReceipt, ClientError> {
    let path = grid.dir.path().join(format!("out-{}", sha256_bytes(bytes)));
    std::fs::write(&path, bytes).unwrap();
    worker
        .upload_lease_output(lease, &path, &sha256_bytes(bytes))
        .await
}

#[tokio::test]
async fn a_lease_takes_one_output() {
    let grid = TestGrid::start(|_| {}).await;
    let job = grid.submit("a\n", 1, 3).await;
    let worker = grid.worker("w").await;
    let lease = lease(&worker, 1).await.leases.remove(0);
    let first = vec![b'1'; 100 * 1024];
    upload_output(&grid, &worker, lease.lease_id, &first)
        .await
        .unwrap();
    // The attack: upload after upload on one lease, each up to the output limit.
    for n in 0..3u8 {
        let other = vec![b'2' + n; 100 * 1024];
        let err = upload_output(&grid, &worker, lease.lease_id, &other)
            .await
            .unwrap_err();
        assert_eq!(api_code(err), (409, "output_already_uploaded".into()));
    }
    let results = format!("results/{}/{}", job.id, lease.task_id);
    assert_eq!(blobs_under(&grid, &results), 1);
    // Sending the same bytes again (a retry after a lost answer) is fine.
    upload_output(&grid, &worker, lease.lease_id, &first)
        .await
        .unwrap();
    assert_eq!(blobs_under(&grid, &results), 1);
    let reply = report_one(
        &worker,
        lease.lease_id,
        lease.task_id,
        ReportOutcome::Completed {
            sha256: sha256_bytes(&first),
            size: first.len() as u64,
            inline_base64: None,
        },
    )
    .await;
    assert!(reply.results[0].accepted, "{reply:?}");
    grid.stop().await;
}

#[tokio::test]
async fn an_output_past_the_limit_is_refused_and_not_kept() {
    let grid = TestGrid::start(|c| c.max_task_output_bytes = 1000).await;
    let job = grid.submit("a\n", 1, 3).await;
    let worker = grid.worker("w").await;
    let lease = lease(&worker, 1).await.leases.remove(0);
    let err = upload_output(&grid, &worker, lease.lease_id, &[b'x'; 1001])
        .await
        .unwrap_err();
    assert_eq!(api_code(err), (413, "too_large".into()));
    assert_eq!(
        blobs_under(&grid, &format!("results/{}/{}", job.id, lease.task_id)),
        0
    );
    // Inline outputs have a limit of their own, checked before the base64 is decoded.
    let big = "A".repeat(idlegrid_api::tasks::MAX_INLINE_OUTPUT * 2);
    let reply = report_one(
        &worker,
        lease.lease_id,
        lease.task_id,
        ReportOutcome::Completed {
            sha256: "0".repeat(64),
            size: 1,
            inline_base64: Some(big),
        },
    )
    .await;
    assert_eq!(reply.error.unwrap().code, "output_too_large");
    grid.stop().await;
}

/// A device of the default owner with `slots` task slots, and its id.
async fn device_with_slots(grid: &TestGrid, slots: u32) -> (Client, idlegrid_api::WorkerId) {
    let registered = Client::register(
        &grid.url,
        &grid.credentials.enrollment_token,
        &RegisterWorker {
            name: format!("{slots}-slot device"),
            capabilities: Capabilities {
                slots,
                ..device_caps()
            },
        },
    )
    .await
    .unwrap();
    (
        Client::new(&grid.url, &registered.token).unwrap(),
        registered.worker_id,
    )
}

async fn lease_now(worker: &Client, max_tasks: u32) -> LeaseGrant {
    worker
        .lease(&LeaseRequest {
            max_tasks,
            wait_ms: 0,
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn a_device_holds_no_more_leases_than_its_slots() {
    let grid = TestGrid::start(|_| {}).await;
    let job = grid.submit("a\nb\nc\nd\n", 1, 3).await;
    wait_for(&grid.customer(), job.id, JobState::Running).await;
    let (worker, _) = device_with_slots(&grid, 1).await;
    // The attack of the issue: one slot, three tasks asked for.
    let grant = lease_now(&worker, 3).await;
    assert_eq!(grant.leases.len(), 1);
    assert!(
        lease_now(&worker, 3).await.leases.is_empty(),
        "its slot is taken"
    );
    let done = &grant.leases[0];
    report_one(&worker, done.lease_id, done.task_id, completed(b"A\n")).await;
    assert_eq!(
        lease_now(&worker, 3).await.leases.len(),
        1,
        "a slot came free"
    );
    grid.stop().await;
}

#[tokio::test]
async fn requests_at_once_do_not_add_up_past_a_devices_slots() {
    let grid = TestGrid::start(|_| {}).await;
    let job = grid.submit(&"x\n".repeat(20), 1, 3).await;
    wait_for(&grid.customer(), job.id, JobState::Running).await;
    let (worker, id) = device_with_slots(&grid, 2).await;
    let requests: Vec<_> = (0..8)
        .map(|_| {
            let worker = worker.clone();
            tokio::spawn(async move { lease_now(&worker, 2).await.leases.len() })
        })
        .collect();
    let mut leased = 0;
    for request in requests {
        leased += request.await.unwrap();
    }
    assert_eq!(leased, 2, "eight requests at once, two slots");
    assert_eq!(grid.grid.queues.leases_held(&[id]).await.unwrap(), [2]);
    grid.stop().await;
}

#[tokio::test]
async fn capabilities_out_of_range_are_refused_naming_the_field() {
    let grid = TestGrid::start(|_| {}).await;
    let register = |capabilities: Capabilities| {
        let grid = &grid;
        async move {
            Client::register(
                &grid.url,
                &grid.credentials.enrollment_token,
                &RegisterWorker {
                    name: "liar".into(),
                    capabilities,
                },
            )
            .await
            .unwrap_err()
        }
    };
    // The attack of the issue: memory enough for any task.
    let err = register(Capabilities {
        memory_mb: u64::MAX,
        ..device_caps()
    })
    .await;
    assert!(err.to_string().contains("memory_mb must be"), "{err}");
    assert_eq!(api_code(err), (422, "invalid_capabilities".into()));
    let mut caps = device_caps();
    caps.allows.disk_mb = Some(u64::MAX);
    let err = register(caps).await;
    assert!(err.to_string().contains("allows.disk_mb must be"), "{err}");
    assert_eq!(api_code(err), (422, "invalid_capabilities".into()));
    let owner = Client::new(&grid.url, &grid.credentials.enrollment_token).unwrap();
    assert!(owner.owner_devices().await.unwrap().devices.is_empty());
    // A registered device cannot claim them later either.
    let worker = grid.worker("w").await;
    let mut caps = device_caps();
    caps.allows.task_secs = Some(u64::MAX);
    let err = worker.update_capabilities(&caps).await.unwrap_err();
    assert!(
        err.to_string().contains("allows.task_secs must be"),
        "{err}"
    );
    assert_eq!(api_code(err), (422, "invalid_capabilities".into()));
    let id = worker.me().await.unwrap().worker_id;
    let kept = grid.grid.store.worker(id).await.unwrap();
    assert_eq!(kept.unwrap().capabilities, device_caps());
    grid.stop().await;
}

#[tokio::test]
async fn numbers_in_heartbeats_and_reports_are_range_checked() {
    let grid = TestGrid::start(|_| {}).await;
    grid.submit("a\n", 1, 3).await;
    let worker = grid.worker("w").await;
    let lease = lease(&worker, 1).await.leases.remove(0);
    let err = worker
        .heartbeat(&Heartbeat {
            leases: vec![HeartbeatItem {
                lease_id: lease.lease_id,
                progress: Some(7.0),
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(api_code(err), (422, "invalid_progress".into()));
    let reply = report_one(
        &worker,
        lease.lease_id,
        lease.task_id,
        ReportOutcome::Completed {
            sha256: "../../jobs/1/input".into(),
            size: 2,
            inline_base64: None,
        },
    )
    .await;
    assert_eq!(reply.error.unwrap().code, "malformed_digest");
    // Neither was taken: the lease is still held, with no progress recorded.
    let leases = grid.grid.queues.job_leases(lease.job_id).await.unwrap();
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0].progress, 0.0);
    grid.stop().await;
}
