//! Nothing is left behind: a refused input goes with its failed job, a killed coordinator's
//! scratch goes at the next start, and no answer names the coordinator's own files.

use crate::harness::*;

/// A video job over `input`, uploaded.
async fn video_job(grid: &TestGrid, input: &str) -> Job {
    let customer = grid.customer();
    let job = customer
        .create_job(&transcode_job(serde_json::json!({"preset": "360p"}), None))
        .await
        .unwrap();
    customer
        .upload_input_bytes(job.id, input.to_string().into())
        .await
        .unwrap();
    job
}

/// What a refused input's job must look like: failed with the reason, no path of ours in
/// it, and the input gone (it is deleted just after the job is marked failed).
async fn assert_refused(grid: &TestGrid, job: &Job) {
    assert_eq!(job.state, JobState::Failed);
    let error = job.error.as_deref().unwrap();
    assert!(
        error.starts_with("input rejected: the input is not a media file FFmpeg can read (input: "),
        "{error}"
    );
    let dir = grid.dir.path().to_string_lossy();
    assert!(
        !error.contains(dir.as_ref()) && !error.contains("/jobs/"),
        "{error}"
    );
    let input = grid.dir.path().join(format!("blobs/jobs/{}/input", job.id));
    for _ in 0..100 {
        if !input.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(!input.exists(), "the refused input is deleted");
}

#[tokio::test]
async fn an_input_refused_when_the_job_runs_fails_it_and_is_deleted() {
    let grid = TestGrid::start(|_| {}).await;
    let job = video_job(&grid, "not a video\n").await;
    let customer = grid.customer();
    customer.run_job(job.id).await.unwrap();
    let failed = wait_for(&customer, job.id, JobState::Failed).await;
    assert_refused(&grid, &failed).await;
    grid.stop().await;
}

#[tokio::test]
async fn an_input_refused_when_priced_fails_its_job_and_is_deleted() {
    let grid = TestGrid::start(|_| {}).await;
    let job = video_job(&grid, "not a video either\n").await;
    let customer = grid.customer();
    let err = customer
        .estimate(&EstimateRequest {
            app: None,
            params: serde_json::json!({}),
            chunk_lines: None,
            chunk_seconds: None,
            chunk_items: None,
            preferences: Preferences::default(),
            job: Some(job.id),
            input_bytes: None,
            input_lines: None,
            video: None,
        })
        .await
        .unwrap_err();
    let message = err.to_string();
    assert_eq!(api_code(err), (422, "invalid_input".into()));
    assert!(
        message.contains(&format!("job {} failed and its input was deleted", job.id)),
        "{message}"
    );
    assert_refused(&grid, &customer.job(job.id).await.unwrap()).await;
    grid.stop().await;
}

#[tokio::test]
async fn a_lost_output_is_answered_as_missing_without_the_coordinators_paths() {
    let grid = TestGrid::start(|_| {}).await;
    let job = grid.submit("a\n", 1, 3).await;
    let worker = grid.worker("w").await;
    let done = upper_case_until_done(&grid, &worker, job.id).await;
    let output = done.output.unwrap();
    // The output's file is lost under the coordinator.
    std::fs::remove_file(
        grid.dir
            .path()
            .join(format!("blobs/jobs/{}/output", job.id)),
    )
    .unwrap();
    let err = grid
        .customer()
        .download_output(job.id, &grid.dir.path().join("out"), &output.sha256)
        .await
        .unwrap_err();
    let message = err.to_string();
    // Not a passing outage: retrying will not bring it back, and the answer says so.
    assert_eq!(api_code(err), (404, "not_stored".into()));
    assert!(message.contains("is not stored"), "{message}");
    let dir = grid.dir.path().to_string_lossy();
    assert!(
        !message.contains(dir.as_ref()) && !message.contains("/jobs/"),
        "{message}"
    );
    grid.stop().await;
}

/// An instance directory as a coordinator process makes it, holding 1 MiB in `file`, its lock
/// held while `alive`; returns it and its lock. Made aside and moved into place whole, as
/// coordinators do, so the other tests' coordinators starting meanwhile see it complete.
fn instance_with(name: &str, file: &str, alive: bool) -> (std::path::PathBuf, std::fs::File) {
    let parent = idlegrid_coordinator::scratch::parent();
    let staging = parent.join(format!(".new-{name}"));
    std::fs::create_dir_all(staging.join("video-x")).unwrap();
    std::fs::write(staging.join("video-x").join(file), vec![0u8; 1 << 20]).unwrap();
    let lock = std::fs::File::create(staging.join("lock")).unwrap();
    if alive {
        lock.try_lock().unwrap();
    }
    let dir = parent.join(name);
    std::fs::rename(staging, &dir).unwrap();
    (dir, lock)
}

#[tokio::test]
async fn the_scratch_of_a_killed_coordinator_is_removed_at_the_next_start() {
    // A coordinator first, so the parent directory exists as coordinators make it.
    TestGrid::start(|_| {}).await.stop().await;
    let tag = rand::random::<u64>();
    // A coordinator killed mid-encode: a rendition in its scratch, nobody holding its lock.
    let (dead, _) = instance_with(&format!("test-dead-{tag:x}"), "rendition.ts", false);
    // A coordinator at work: its lock is held.
    let (alive, lock) = instance_with(&format!("test-alive-{tag:x}"), "chunk.mkv", true);
    let grid = TestGrid::start(|_| {}).await;
    assert!(
        !dead.exists(),
        "the killed coordinator's scratch is removed"
    );
    assert!(
        alive.join("video-x/chunk.mkv").exists(),
        "a running coordinator's scratch is left alone"
    );
    grid.stop().await;
    drop(lock);
    std::fs::remove_dir_all(alive).unwrap();
}
