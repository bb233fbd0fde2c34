//! Tasks and leases: who may report what, retries, expiry, backups for stragglers, and
//! matching devices by what they can do.

use crate::harness::*;

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
            log: None,
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
    assert!(error.contains("chunk 1 failed 2 times"), "{error}");
    // The last attempt's reason once; the one before by its device and outcome.
    assert!(error.contains("ValueError attempt 1"), "{error}");
    assert!(!error.contains("ValueError attempt 0"), "{error}");
    assert!(error.contains("(earlier attempts: worker"), "{error}");
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

/// Leases `job`'s next chunk on `worker` and reports that its script failed with `reason`.
async fn fail_once(worker: &Client, job: JobId, reason: &str) {
    let grant = lease(worker, 1).await;
    let l = &grant.leases[0];
    assert_eq!(l.job_id, job);
    let reply = report_one(
        worker,
        l.lease_id,
        l.task_id,
        ReportOutcome::Failed {
            reason: reason.to_string(),
        },
    )
    .await;
    assert!(reply.results[0].accepted);
}

#[tokio::test]
async fn a_script_failing_alike_on_two_owners_devices_fails_its_chunk_at_once() {
    let grid = TestGrid::start(|_| {}).await;
    let open = Preferences {
        max_attempts: 5,
        placement: Some(idlegrid_domain::Placement::Any),
        ..Preferences::default()
    };
    let job = grid.submit_with("boom\n", 1, open).await;
    let reason = "script exited with status 1: ZeroDivisionError: division by zero";
    // One owner's devices failing alike decide nothing: a device could fake them all.
    for name in ["mine-1", "mine-2"] {
        fail_once(&grid.worker(name).await, job.id, reason).await;
    }
    let running = grid.customer().job(job.id).await.unwrap();
    assert_eq!(running.state, JobState::Running);
    let chunks = grid.customer().job_chunks(job.id, 0, 100).await.unwrap();
    let shown = chunks.tasks[0].last_failure.as_deref().unwrap_or_default();
    assert!(shown.contains("ZeroDivisionError"), "{shown}");
    assert_eq!(chunks.tasks[0].failures, 2);
    // A device of another owner failing the same way: the job's script is at fault, and the
    // chunk fails now, with two attempts left.
    fail_once(&grid.stranger("other").await, job.id, reason).await;
    let failed = wait_for(&grid.customer(), job.id, JobState::Failed).await;
    let error = failed.error.unwrap();
    assert!(
        error.contains("chunk 1 failed 3 times, every time the same way"),
        "{error}"
    );
    assert_eq!(error.matches("ZeroDivisionError").count(), 1, "{error}");
    let chunks = grid.customer().job_chunks(job.id, 0, 100).await.unwrap();
    assert_eq!(chunks.tasks[0].state, ChunkState::Failed);
    grid.stop().await;
}

#[tokio::test]
async fn a_retry_is_not_kept_from_the_only_device_that_may_run_it() {
    let grid = TestGrid::start(|c| c.retry_elsewhere = Duration::from_secs(600)).await;
    let job = grid.submit("boom\nfine\n", 1, 3).await;
    let only = grid.worker("only").await;
    fail_once(&only, job.id, "script exited with status 1: flaky").await;
    // No other device is online: keeping the chunk from this one would only make it wait.
    let grant = only
        .lease(&LeaseRequest {
            max_tasks: 2,
            wait_ms: 2_000,
        })
        .await
        .unwrap();
    assert_eq!(grant.leases.len(), 2, "{grant:?}");
    // Once another device is online, a failed chunk goes to it first.
    let _other = grid.worker("other").await;
    let l = &grant.leases[0];
    report_one(
        &only,
        l.lease_id,
        l.task_id,
        ReportOutcome::Failed {
            reason: "script exited with status 1: flaky".into(),
        },
    )
    .await;
    let nothing = only
        .lease(&LeaseRequest {
            max_tasks: 1,
            wait_ms: 300,
        })
        .await
        .unwrap();
    assert!(nothing.leases.is_empty(), "{nothing:?}");
    grid.stop().await;
}

#[tokio::test]
async fn chunks_of_a_cancelled_job_are_stopped_not_queued() {
    let grid = TestGrid::start(|_| {}).await;
    let job = grid.submit("a\nb\nc\n", 1, 3).await;
    // Cut into its three chunks first.
    wait_for(&grid.customer(), job.id, JobState::Running).await;
    grid.customer().cancel_job(job.id).await.unwrap();
    let chunks = grid.customer().job_chunks(job.id, 0, 100).await.unwrap();
    assert_eq!(chunks.tasks.len(), 3);
    assert!(
        chunks.tasks.iter().all(|c| c.state == ChunkState::Stopped),
        "{chunks:?}"
    );
    grid.stop().await;
}

/// A video job's chunks go only to devices whose FFmpeg has the encoders its settings use; a
/// device that lists none has the baseline (x264, AAC); x265's output differs by instruction
/// set (and the other encoders were compared only there), so only x86-64 devices get them.
#[tokio::test]
async fn video_chunks_go_only_where_their_encoders_are() {
    let grid = TestGrid::start(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mkv");
    let made = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=128x96:rate=10:duration=1")
        .args(["-c:v", "libx264", "-g", "10"])
        .arg(&clip)
        .status()
        .unwrap();
    assert!(made.success());
    let customer = grid.customer();
    let mut jobs = Vec::new();
    for params in [
        serde_json::json!({"video_codec": "av1", "container": "webm"}),
        serde_json::json!({"video_codec": "hevc"}),
    ] {
        let job = customer
            .create_job(&transcode_job(params, None))
            .await
            .unwrap();
        customer
            .upload_input_bytes(job.id, std::fs::read(&clip).unwrap().into())
            .await
            .unwrap();
        customer.run_job(job.id).await.unwrap();
        wait_for(&customer, job.id, JobState::Running).await;
        jobs.push(job.id);
    }
    let device = |encoders: &[&str], arch: &str| Capabilities {
        ffmpeg: Some("5.1".into()),
        encoders: encoders.iter().map(|e| e.to_string()).collect(),
        arch: arch.into(),
        ..device_caps()
    };
    let leased = |worker: Client| async move {
        worker
            .lease(&LeaseRequest {
                max_tasks: 8,
                wait_ms: 300,
            })
            .await
            .unwrap()
            .leases
            .into_iter()
            .map(|l| l.job_id)
            .collect::<Vec<_>>()
    };
    let token = &grid.credentials.enrollment_token;
    let register = |name: &'static str, caps: Capabilities| {
        idlegrid_testkit::register_device(&grid.url, token, name, caps)
    };
    // The baseline, and an ARM device with every encoder: neither job fits.
    let baseline = register("baseline", device(&[], "x86_64")).await;
    assert_eq!(leased(baseline).await, []);
    let arm = register("arm", device(&["libx265", "aac"], "aarch64")).await;
    assert_eq!(leased(arm).await, []);
    // An x86-64 device with x265 and AAC gets the HEVC job's chunks only.
    let hevc = register("hevc", device(&["libx264", "libx265", "aac"], "x86_64")).await;
    let got = leased(hevc).await;
    assert!(
        !got.is_empty() && got.iter().all(|j| *j == jobs[1]),
        "{got:?}"
    );
    // SVT-AV1 and Opus on x86-64: the AV1 job's.
    let av1 = register("av1", device(&["libsvtav1", "libopus"], "x86_64")).await;
    let got = leased(av1).await;
    assert!(
        !got.is_empty() && got.iter().all(|j| *j == jobs[0]),
        "{got:?}"
    );
    grid.stop().await;
}
