//! A job's life as its customer sees it: created, run, cancelled, expired, its chunks and
//! events, and its output.

use crate::harness::*;

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
            log: None,
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
    let video = |params: serde_json::Value| transcode_job(params, None);
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
        // Codecs a container cannot carry, and settings of another codec.
        (
            serde_json::json!({"video_codec": "h264", "container": "webm"}),
            "a webm file cannot carry h264 video",
        ),
        (
            serde_json::json!({"container": "mov", "audio_codec": "opus"}),
            "a mov file cannot carry opus audio",
        ),
        (
            serde_json::json!({"video_codec": "av1", "x264_preset": "slow"}),
            "x264_preset is for h264",
        ),
        (
            serde_json::json!({"video_codec": "copy", "crf": 20}),
            "video_codec copy",
        ),
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
async fn customer_writes_are_idempotent_under_retries() {
    let grid = TestGrid::start(|_| {}).await;
    let customer = grid.customer();
    let job = customer
        .create_job(&python_map_job(
            "print('hi')\n",
            Some(1),
            serde_json::json!({}),
        ))
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
            preferences: Preferences {
                deadline_secs: Some(0),
                ..Preferences::default()
            },
            ..python_map_job("print(1)\n", None, serde_json::json!({}))
        })
        .await
        .unwrap_err();
    assert_eq!(api_code(refused).1, "invalid_preferences");
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

#[tokio::test]
async fn a_job_that_never_ran_is_deleted_with_its_input_and_one_that_ran_stays() {
    let grid = TestGrid::start(|_| {}).await;
    let customer = grid.customer();
    let draft = grid.create(1, Default::default()).await;
    customer
        .upload_input_bytes(draft.id, b"a\nb\n".to_vec().into())
        .await
        .unwrap();
    let input = grid
        .grid
        .store
        .job(draft.id)
        .await
        .unwrap()
        .unwrap()
        .input
        .unwrap();
    // Another customer cannot delete it.
    let other = grid.other_customer().await;
    assert_eq!(
        api_code(other.delete_job(draft.id).await.unwrap_err()).0,
        404
    );
    customer.delete_job(draft.id).await.unwrap();
    assert_eq!(api_code(customer.job(draft.id).await.unwrap_err()).0, 404);
    assert!(
        grid.grid.blobs.get(&input.key, None).await.is_err(),
        "its input is gone"
    );
    let listed = customer.list_jobs(None, 100).await.unwrap();
    assert!(listed.jobs.iter().all(|j| j.id != draft.id));

    let ran = grid.submit("a\n", 1, 3).await;
    let refused = customer.delete_job(ran.id).await.unwrap_err();
    assert_eq!(api_code(refused), (409, "job_ran".into()));
    customer.cancel_job(ran.id).await.unwrap();
    let refused = customer.delete_job(ran.id).await.unwrap_err();
    assert_eq!(
        api_code(refused),
        (409, "job_ran".into()),
        "cancelled after it ran: kept"
    );

    let cancelled_draft = grid.create(1, Default::default()).await;
    customer.cancel_job(cancelled_draft.id).await.unwrap();
    customer.delete_job(cancelled_draft.id).await.unwrap();
    grid.stop().await;
}

#[tokio::test]
async fn a_job_keeps_the_name_it_was_given_and_refuses_hidden_characters() {
    let grid = TestGrid::start(|_| {}).await;
    let customer = grid.customer();
    let named = customer
        .create_job(&CreateJob {
            name: Some("  holiday.mov  ".into()),
            ..python_map_job("print('hi')\n", Some(1), serde_json::json!({}))
        })
        .await
        .unwrap();
    assert_eq!(named.name.as_deref(), Some("holiday.mov"));
    let listed = customer.list_jobs(None, 10).await.unwrap();
    assert_eq!(listed.jobs[0].name.as_deref(), Some("holiday.mov"));
    let refused = customer
        .create_job(&CreateJob {
            name: Some("evil\u{1b}[2J".into()),
            ..python_map_job("print('hi')\n", Some(1), serde_json::json!({}))
        })
        .await
        .unwrap_err();
    assert_eq!(api_code(refused), (422, "invalid_name".into()));
    grid.stop().await;
}

#[tokio::test]
async fn a_job_is_copied_with_its_input_to_run_again() {
    let grid = TestGrid::start(|_| {}).await;
    let customer = grid.customer();
    let first = grid.submit("a\nb\n", 1, 3).await;
    let worker = grid.worker("w").await;
    let done = upper_case_until_done(&grid, &worker, first.id).await;
    assert_eq!(done.state, JobState::Completed);
    let copy = customer.clone_job(first.id).await.unwrap();
    assert_ne!(copy.id, first.id);
    assert_eq!(copy.state, JobState::Created);
    assert_eq!(
        copy.input.as_ref().map(|i| &i.sha256),
        done.input.as_ref().map(|i| &i.sha256)
    );
    customer.run_job(copy.id).await.unwrap();
    let again = upper_case_until_done(&grid, &worker, copy.id).await;
    assert_eq!(again.state, JobState::Completed);
    assert_eq!(
        again.output.map(|o| o.sha256),
        done.output.map(|o| o.sha256),
        "the same input and script give the same output"
    );
    let other = grid.other_customer().await;
    assert_eq!(
        api_code(other.clone_job(first.id).await.unwrap_err()).0,
        404
    );
    let draft = grid.create(1, Default::default()).await;
    let refused = customer.clone_job(draft.id).await.unwrap_err();
    assert_eq!(api_code(refused), (409, "input_gone".into()));
    grid.stop().await;
}
