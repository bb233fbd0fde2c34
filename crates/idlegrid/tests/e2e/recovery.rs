//! Coordinators killed mid-job, mid-upload, in every stage of a video job, or one of two:
//! the job still completes exactly and nothing half-done is kept.

use crate::harness::*;

/// The coordinator SIGKILLed mid-job and restarted on the same port and data directory: the
/// worker processes ride it out, no validated chunk is lost, and the job completes with the
/// exact output.
#[tokio::test]
async fn a_coordinator_killed_mid_job_and_restarted_finishes_the_job() {
    let mut cluster = Cluster::start(3);
    cluster.add_workers(2);
    let client = cluster.client();
    // 12 chunks of 5 lines, 0.4 s each, on 2 workers: ~2.5 s of work.
    let lines = input_lines(60);
    let expected = expected_output(&lines);
    let id = submit_transform(&cluster, &client, join_lines(&lines), 5, 0.4).await;
    let before = cluster
        .wait_job(&client, id, Duration::from_secs(60), "3 chunks done", |j| {
            j.chunks.done >= 3
        })
        .await;
    if before.state == JobState::Completed || before.chunks.done >= 12 {
        cluster.fail(&format!(
            "the job finished before the coordinator could be killed: {before:#?}"
        ));
    }

    cluster.kill_coordinator();
    // Running scripts finish while it is away; their reports and new leases fail for now.
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.restart_coordinator();

    let client = cluster.client();
    let after = cluster
        .wait_job(
            &client,
            id,
            Duration::from_secs(30),
            "answering after the restart",
            |_| true,
        )
        .await;
    if after.chunks.done < before.chunks.done {
        cluster.fail(&format!(
            "validated chunks were lost in the restart: {} done before, {} after: {after:#?}",
            before.chunks.done, after.chunks.done
        ));
    }
    let job = cluster
        .wait_job(&client, id, Duration::from_secs(90), "completed", |j| {
            j.state == JobState::Completed
        })
        .await;
    assert_eq!(job.chunks.failed, 0, "{job:#?}");
    cluster.check_output(&client, &job, &expected).await;
    for i in 0..cluster.workers.len() {
        if !cluster.workers[i].is_running() {
            let name = cluster.workers[i].name.clone();
            cluster.fail(&format!("worker {name} exited during the outage"));
        }
    }
}

/// Makes `dir/clip.mp4`: `seconds` of 640×360 test pattern at 25 fps with a keyframe every
/// 12 frames, and a sine tone.
fn test_clip(dir: &Path, seconds: u32) -> PathBuf {
    clip(
        dir,
        "clip.mp4",
        &format!("testsrc2=size=640x360:rate=25:duration={seconds}"),
        Some(&format!("sine=frequency=440:duration={seconds}")),
        &["-c:v", "libx264", "-g", "12", "-c:a", "aac"],
    )
}

/// Creates, uploads and runs a video-transcode job of `clip` in 1 s chunks.
async fn run_video_job(client: &Client, clip: &Path) -> JobId {
    let job = client
        .create_job(&idlegrid_testkit::transcode_job(
            serde_json::json!({"x264_preset": "veryfast"}),
            Some(1.0),
        ))
        .await
        .unwrap();
    client.upload_input_file(job.id, clip).await.unwrap();
    client.run_job(job.id).await.unwrap();
    job.id
}

/// The coordinator is SIGKILLed and restarted while a video job is partitioned, while its
/// chunks are dispatched and validated, and while it is assembled (when that window is caught:
/// it is short); the job completes with the very bytes of a run without faults.
#[tokio::test]
async fn a_video_job_survives_the_coordinator_killed_in_each_stage() {
    let scratch = tempfile::tempdir().unwrap();
    let clip = test_clip(scratch.path(), 12);

    // Without faults.
    let mut calm = Cluster::start(3);
    calm.add_workers(2);
    let client = calm.client();
    let id = run_video_job(&client, &clip).await;
    let reference = calm
        .wait_job(&client, id, Duration::from_secs(120), "completed", |j| {
            j.state == JobState::Completed
        })
        .await;
    let reference_sha = reference.output.expect("output").sha256;
    drop(calm);

    let mut cluster = Cluster::start(3);
    cluster.add_workers(2);
    let client = cluster.client();
    let id = run_video_job(&client, &clip).await;
    let mut kills = Vec::new();
    // Partitioning: the split of 12 chunks has only begun when `run` answers.
    let mut state = client.job(id).await.unwrap().state;
    while state == JobState::Submitted {
        tokio::time::sleep(Duration::from_millis(5)).await;
        state = client.job(id).await.unwrap().state;
    }
    cluster.kill_coordinator();
    kills.push(format!("in {state}"));
    cluster.restart_coordinator();
    // Dispatching and validating: a third of the chunks done.
    let client = cluster.client();
    let status = cluster
        .wait_job(
            &client,
            id,
            Duration::from_secs(120),
            "4 chunks done",
            |j| j.chunks.done >= 4,
        )
        .await;
    // (Chunks are dispatched while the split goes on, so the job may still be partitioning.)
    // Best with a result reported but not yet judged (the validator decodes it): wait a little
    // for one.
    let mut status = status;
    let mut validating = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && !status.state.is_terminal() {
        if status.chunks.results > status.chunks.done + status.chunks.rejected {
            validating = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        status = client.job(id).await.unwrap();
    }
    if matches!(status.state, JobState::Partitioning | JobState::Running) {
        cluster.kill_coordinator();
        kills.push(format!(
            "in running{}, {} of {:?} chunks done",
            if validating {
                " with a result being validated"
            } else {
                ""
            },
            status.chunks.done,
            status.chunks.total
        ));
        tokio::time::sleep(Duration::from_millis(500)).await;
        cluster.restart_coordinator();
    }
    // Assembling, if it is caught.
    let client = cluster.client();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let job = client.job(id).await.unwrap();
        if job.state == JobState::Assembling {
            cluster.kill_coordinator();
            kills.push("in assembling".to_string());
            cluster.restart_coordinator();
            break;
        }
        if job.state.is_terminal() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let client = cluster.client();
    let job = cluster
        .wait_job(&client, id, Duration::from_secs(120), "completed", |j| {
            j.state == JobState::Completed
        })
        .await;
    eprintln!(
        "coordinator killed {} times: {}",
        kills.len(),
        kills.join("; ")
    );
    assert!(kills.len() >= 2, "{kills:?}");
    assert!(
        kills[0].contains("partitioning"),
        "the first kill missed the split: {kills:?}"
    );
    assert_eq!(
        job.output.expect("output").sha256,
        reference_sha,
        "the output differs from a run without faults (kills: {kills:?})"
    );
}

/// The coordinator SIGKILLed while an input is being uploaded: the upload fails, nothing of it
/// is kept (the job has no input, the blob store no partial file), and after a restart the
/// same upload goes through and the job completes with the exact output.
#[tokio::test]
async fn a_coordinator_killed_during_an_upload_keeps_nothing_of_it() {
    let mut cluster = Cluster::start(3);
    cluster.add_workers(2);
    let client = cluster.client();
    let job = create_transform(&client, 20000, serde_json::json!({"chunk_lines": 20000}))
        .await
        .unwrap();
    // Large enough to be still streaming when the coordinator dies.
    let lines = input_lines(400_000);
    let input = join_lines(&lines);
    let file = cluster.path().join("input.txt");
    std::fs::write(&file, &input).unwrap();
    let uploading = {
        let client = cluster.client();
        let file = file.clone();
        tokio::spawn(async move { client.upload_input_file(job.id, &file).await })
    };
    let blobs = cluster.path().join("coordinator/blobs");
    let deadline = Instant::now() + Duration::from_secs(30);
    // Kill once bytes are arriving: a staging file exists under a local blob store; an S3
    // multipart upload shows nothing until it completes, so there, a moment after it starts.
    let embedded = cluster.backends.is_empty();
    let job_blobs = blobs.join(format!("jobs/{}", job.id));
    if embedded {
        while idlegrid_testkit::files_under(&job_blobs) == 0
            && !uploading.is_finished()
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    } else {
        // On a quiet machine the whole upload to the S3 server can take under 150 ms.
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert!(
        !uploading.is_finished(),
        "the upload ended before the coordinator could be killed; use a larger input"
    );
    cluster.kill_coordinator();
    let failed = uploading.await.unwrap();
    assert!(
        failed.is_err(),
        "the upload cannot have succeeded: {failed:?}"
    );
    cluster.restart_coordinator();
    let client = cluster.client();
    let status = client.job(job.id).await.unwrap();
    assert!(
        status.input.is_none(),
        "a broken upload became the input: {status:#?}"
    );
    // The same upload again, then the job.
    client.upload_input_file(job.id, &file).await.unwrap();
    client.run_job(job.id).await.unwrap();
    let done = cluster
        .wait_job(
            &client,
            job.id,
            Duration::from_secs(120),
            "completed",
            |j| j.state == JobState::Completed,
        )
        .await;
    cluster
        .check_output(&client, &done, &expected_output(&lines))
        .await;
    // Only the input and the output remain in the blob store for the job (no staging files).
    if embedded {
        assert_eq!(idlegrid_testkit::files_under(&job_blobs), 2);
    }
}

/// Failover: two coordinators share PostgreSQL, Redis and an S3 bucket, two worker processes
/// serve each; one coordinator is SIGKILLed mid-job and the video job completes through the
/// other with exactly the output of a run without faults.
#[tokio::test]
async fn a_video_job_survives_one_of_two_coordinators_killed() {
    let Some(backends) = fresh_shared_backends("failover test") else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let clip = test_clip(scratch.path(), 10);

    // Without faults, embedded.
    let reference_sha = {
        let mut calm = Cluster::start_on(3, Vec::new());
        calm.add_workers(2);
        let client = calm.client();
        let id = run_video_job(&client, &clip).await;
        let done = calm
            .wait_job(&client, id, Duration::from_secs(120), "completed", |j| {
                j.state == JobState::Completed
            })
            .await;
        done.output.expect("output").sha256
    };

    let mut cluster = Cluster::start_on(3, backends.clone());
    let other_dir = cluster.path().join("other");
    std::fs::create_dir_all(other_dir.join("home")).unwrap();
    let extra: Vec<&str> = backends.iter().map(String::as_str).collect();
    let (_other, other) = start_coordinator_with(&other_dir, "127.0.0.1:0", 3, &extra);
    cluster.add_workers(2);
    for name in ["w-other-0", "w-other-1"] {
        let worker = cluster.spawn_worker_at(name, &other.url);
        cluster.workers.push(worker);
    }
    let client = cluster.client();
    let id = run_video_job(&client, &clip).await;
    let before = cluster
        .wait_job(
            &client,
            id,
            Duration::from_secs(120),
            "3 chunks done",
            |j| j.chunks.done >= 3,
        )
        .await;
    if before.state == JobState::Completed {
        cluster.fail("the job finished before a coordinator could be killed");
    }
    cluster.kill_coordinator();
    // The customer's key works on the other coordinator: they share the records.
    let survivor = Client::new(&other.url, &cluster.ready.api_key).unwrap();
    let job = cluster
        .wait_job(&survivor, id, Duration::from_secs(180), "completed", |j| {
            j.state == JobState::Completed
        })
        .await;
    eprintln!(
        "failover: killed one coordinator at {} of {:?} chunks; {} failed attempts retried",
        before.chunks.done, job.chunks.total, job.chunks.failed_attempts
    );
    assert_eq!(
        job.output.expect("output").sha256,
        reference_sha,
        "the output differs from a run without faults"
    );
}
