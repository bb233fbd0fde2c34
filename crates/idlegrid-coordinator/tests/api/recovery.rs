//! A coordinator restarted, or its queue losing its data: the records rebuild what was lost.

use crate::harness::*;

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
            log: None,
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

/// A Redis that loses its data mid-job (restarted without persistence) loses queued tasks and
/// leases, never records: the sweeper queues the work again and the job completes exactly.
#[tokio::test]
async fn a_job_survives_its_redis_losing_every_key() {
    let Some(redis) = idlegrid_testkit::service("IDLEGRID_TEST_REDIS", "Redis test") else {
        return;
    };
    let prefix = format!("{}:", unique_name("api"));
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

/// A coordinator that stopped after recording an app's reduce task but before opening it (the
/// job still assembling, its tasks not counting the reduce): once restarted, it opens that task
/// as it was recorded, its input the tar written then, and the job completes with the reduce's
/// output. (Building the input again from a count that took the recorded task for an opened one
/// would have left a chunk out and no longer matched the recorded size.)
#[tokio::test]
async fn a_reduce_recorded_but_not_opened_is_opened_after_a_restart() {
    let grid = TestGrid::start(|_| {}).await;
    let customer = grid.customer();
    let manifest: idlegrid_api::AppManifest = serde_json::from_value(serde_json::json!({
        "name": "joined", "version": "1.0.0", "description": "Lines joined by a reduce.",
        "entrypoint": "task.py", "input_name": "in.txt", "partitioner": "lines",
        "validator": "integrity", "assembler": "reduce.py", "deterministic": true,
    }))
    .unwrap();
    let bundle = idlegrid_api::Bundle {
        manifest,
        files: [("task.py", "pass\n"), ("reduce.py", "pass\n")]
            .into_iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect(),
        wheels: Default::default(),
    };
    customer.publish_app(&bundle).await.unwrap();
    let mut create = idlegrid_api::jobs::CreateJob::new("joined");
    create.chunk_lines = Some(1);
    let job = customer.create_job(&create).await.unwrap();
    customer
        .upload_input_bytes(job.id, "a\nb\n".to_string().into())
        .await
        .unwrap();
    customer.run_job(job.id).await.unwrap();
    // The device does the chunks (upper-cased) and waits for the reduce's lease.
    let worker = grid.worker("w").await;
    let mut reduce = None;
    while reduce.is_none() {
        for l in lease(&worker, 4).await.leases {
            if l.script.is_some() {
                reduce = Some(l);
                continue;
            }
            let text = if l.chunk_index == 0 { "A\n" } else { "B\n" };
            report_one(&worker, l.lease_id, l.task_id, completed(text.as_bytes())).await;
        }
    }
    let reduce = reduce.unwrap();
    assert_eq!(reduce.script.as_deref(), Some("reduce.py"));
    let recorded_size = reduce.input_size;
    let dir = grid.stop().await;

    // As if the coordinator had stopped between recording the task and opening it.
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3, sys\n\
             db = sqlite3.connect(sys.argv[1])\n\
             db.execute(\"UPDATE jobs SET state = 'assembling', chunks_total = 2\")\n\
             db.commit()\n",
        )
        .arg(dir.path().join("records.db"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let grid = TestGrid::start_in(dir, |_| {}).await;
    let worker = grid.worker("w2").await;
    let reduce = loop {
        if let Some(l) = lease(&worker, 4).await.leases.into_iter().next() {
            break l;
        }
    };
    assert_eq!(reduce.script.as_deref(), Some("reduce.py"));
    assert_eq!(reduce.input_size, recorded_size);
    let input = grid.dir.path().join("outputs.tar");
    worker
        .download_lease_input(reduce.lease_id, &input)
        .await
        .unwrap();
    // Both chunks' outputs are in it, by index.
    let tar = std::fs::read(&input).unwrap();
    assert_eq!(&tar[..6], b"000000");
    assert_eq!(&tar[512..514], b"A\n");
    assert_eq!(&tar[1024..1030], b"000001");
    assert_eq!(&tar[1536..1538], b"B\n");
    report_one(
        &worker,
        reduce.lease_id,
        reduce.task_id,
        completed(b"A B\n"),
    )
    .await;
    let done = wait_for(&grid.customer(), job.id, JobState::Completed).await;
    assert_eq!(done.chunks.total, Some(3));
    assert_eq!(done.chunks.steps, 1);
    let out = grid.dir.path().join("out");
    grid.customer()
        .download_output(job.id, &out, &done.output.unwrap().sha256)
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(out).unwrap(), "A B\n");
    grid.stop().await;
}
