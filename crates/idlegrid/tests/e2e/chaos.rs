//! Workers and the coordinator killed at random beside a forging device: every output exact.

use crate::harness::*;

/// What the forging device did.
#[derive(Debug, Default, Clone, Copy)]
struct Forger {
    results: u64,
    forged: u64,
    quarantined: bool,
}

/// A device played by the test: it does `transform.py`'s work itself (as [`expected_output`]
/// does) and forges 3 of every 10 chunks with a wrong digest, which the app's validator cannot
/// see — only replication can. Which chunks it forges depends on the chunk alone, so devices
/// of one owner forge the same chunks the same way and agree. It rides out coordinator outages
/// and stops when quarantined or when `stop` is set.
async fn forging_device(
    url: String,
    enrollment: String,
    name: &str,
    scratch: PathBuf,
    stop: tokio_util::sync::CancellationToken,
) -> Forger {
    use idlegrid_api::tasks::{LeaseRequest, Report, ReportItem};
    let mut forger = Forger::default();
    let capabilities = idlegrid_api::Capabilities {
        cores: 1,
        memory_mb: 4096,
        os: "linux".into(),
        arch: "x86_64".into(),
        python: Some("3.11.2".into()),
        ffmpeg: None,
        benchmark: 100.0,
        slots: 1,
        allows: Default::default(),
        ..Default::default()
    };
    let worker = idlegrid_testkit::register_device(&url, &enrollment, name, capabilities).await;
    std::fs::create_dir_all(&scratch).unwrap();
    while !stop.is_cancelled() {
        let request = LeaseRequest {
            max_tasks: 1,
            wait_ms: 500,
        };
        let grant = match worker.lease(&request).await {
            Ok(grant) => grant,
            Err(e) if e.code() == Some("worker_quarantined") => {
                forger.quarantined = true;
                break;
            }
            // The coordinator is away: try again shortly.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        for lease in grant.leases {
            let chunk_lines = grant
                .jobs
                .iter()
                .find(|j| j.job_id == lease.job_id)
                .and_then(|j| j.params["chunk_lines"].as_u64())
                .expect("chunk_lines param");
            let input = scratch.join("input");
            if worker
                .download_lease_input(lease.lease_id, &input)
                .await
                .is_err()
            {
                continue;
            }
            let text = std::fs::read_to_string(&input).unwrap();
            let base = lease.chunk_index * chunk_lines;
            let forge = matches!(
                (lease.job_id.0 as u64 * 7 + lease.chunk_index) % 10,
                0 | 3 | 6
            );
            let mut output = String::new();
            for (i, line) in text.lines().enumerate() {
                let digest = if forge {
                    "0".repeat(16)
                } else {
                    sha256_bytes(line.as_bytes())[..16].to_string()
                };
                let reversed: String = line.chars().rev().collect();
                output.push_str(&format!("{}:{digest}:{reversed}\n", base + i as u64));
            }
            forger.results += 1;
            forger.forged += u64::from(forge);
            let report = Report {
                reports: vec![ReportItem {
                    lease_id: lease.lease_id,
                    task_id: lease.task_id,
                    outcome: idlegrid_testkit::completed(output.as_bytes()),
                    log: None,
                }],
            };
            if let Err(e) = worker.report(&report).await
                && e.code() == Some("worker_quarantined")
            {
                forger.quarantined = true;
                return forger;
            }
        }
    }
    forger
}

/// The chaos test, on an open grid: 4 worker processes of 4 owners and two forging devices of
/// a fifth owner (forging the same chunks the same way, so they agree) run 20 adaptively
/// replicated jobs while workers are SIGKILLed and restarted at random and the coordinator is
/// SIGKILLed and restarted twice. Every job completes with exactly the output of a fault-free
/// run (the reference `expected_output`, which the fault-free tests above check the real
/// scripts against), so no forged result was accepted: the forgers are one party, and their
/// agreement counts once. `IDLEGRID_CHAOS_SEED` replays a run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_workers_and_coordinator_killed_and_a_forger_and_every_output_exact() {
    use rand::{Rng, SeedableRng};
    const JOBS: usize = 20;
    const LINES: usize = 24;
    const CHUNK_LINES: u64 = 3;
    let seed: u64 = std::env::var("IDLEGRID_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut cluster = Cluster::start(2);
    for i in 0..4 {
        let token = cluster.ready.owner(&format!("owner-{i}")).await;
        cluster.owners.insert(format!("w{i}"), token);
    }
    let mallory = cluster.ready.owner("mallory").await;
    cluster.add_workers(4);
    let client = cluster.client();
    let preferences = Preferences {
        max_attempts: 20,
        replication: Some(idlegrid_api::Replication::ADAPTIVE),
        placement: Some(idlegrid_api::Placement::Any),
        ..Preferences::default()
    };
    let mut jobs = Vec::new();
    for j in 0..JOBS {
        let lines: Vec<String> = input_lines(LINES)
            .into_iter()
            .map(|l| format!("job {j} {l}"))
            .collect();
        let params = serde_json::json!({"chunk_lines": CHUNK_LINES, "sleep": 0.2});
        let job = create_transform_with(&client, CHUNK_LINES, params, preferences.clone())
            .await
            .unwrap_or_else(|e| cluster.fail(&format!("create_job: {e}")));
        client
            .upload_input_bytes(job.id, join_lines(&lines).into())
            .await
            .unwrap();
        client.run_job(job.id).await.unwrap();
        jobs.push((job.id, expected_output(&lines)));
    }
    let stop = tokio_util::sync::CancellationToken::new();
    let forgers: Vec<_> = ["forger-a", "forger-b"]
        .into_iter()
        .map(|name| {
            let (url, token) = (cluster.ready.url.clone(), mallory.clone());
            let (scratch, stop) = (cluster.path().join(name), stop.clone());
            tokio::spawn(async move { forging_device(url, token, name, scratch, stop).await })
        })
        .collect();

    let total_chunks = (JOBS * LINES) as u64 / CHUNK_LINES;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(240);
    let (mut worker_kills, mut coordinator_kills) = (0u32, 0u32);
    let mut down: Option<(usize, Instant)> = None;
    loop {
        let mut done = 0;
        let mut all_completed = true;
        for (id, _) in &jobs {
            match client.job(*id).await {
                Ok(job) => {
                    if job.state == JobState::Failed || job.state == JobState::Cancelled {
                        cluster.fail(&format!("job {id} ended badly: {job:#?}"));
                    }
                    done += job.chunks.done;
                    all_completed &= job.state == JobState::Completed;
                }
                Err(_) => all_completed = false,
            }
        }
        if all_completed {
            break;
        }
        if Instant::now() >= deadline {
            cluster.fail(&format!(
                "not every job completed within 240 s ({done} of {total_chunks} chunks done; \
                 seed {seed})"
            ));
        }
        // The coordinator dies twice: a third and two thirds of the way through.
        let due = match coordinator_kills {
            0 => done * 3 >= total_chunks,
            1 => done * 3 >= 2 * total_chunks,
            _ => false,
        };
        if due {
            cluster.kill_coordinator();
            coordinator_kills += 1;
            tokio::time::sleep(Duration::from_millis(500)).await;
            cluster.restart_coordinator();
        }
        // One worker at a time is down; it comes back after a while.
        match down {
            Some((i, since))
                if since.elapsed() > Duration::from_millis(rng.random_range(300..1500)) =>
            {
                let name = cluster.workers[i].name.clone();
                cluster.workers[i] = cluster.spawn_worker(&name);
                down = None;
            }
            None if rng.random_bool(0.3) => {
                let i = rng.random_range(0..cluster.workers.len());
                cluster.workers[i].kill_hard();
                worker_kills += 1;
                down = Some((i, Instant::now()));
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    stop.cancel();
    let mut forger = Forger::default();
    for f in forgers {
        let f = f.await.unwrap();
        forger.results += f.results;
        forger.forged += f.forged;
        forger.quarantined |= f.quarantined;
    }

    let (mut chunks, mut results, mut rejected, mut failed_attempts) = (0, 0, 0, 0);
    let mut outputs_exact = 0;
    for (id, expected) in &jobs {
        let job = client.job(*id).await.unwrap();
        // Exactly the honest bytes: no forged result became part of an output.
        cluster.check_output(&client, &job, expected).await;
        outputs_exact += 1;
        chunks += job.chunks.total.unwrap_or(0);
        results += job.chunks.results;
        rejected += job.chunks.rejected;
        failed_attempts += job.chunks.failed_attempts;
    }
    // Every attempt that ran: results sent in, plus attempts that failed without one.
    let executions = results + failed_attempts - rejected;
    let figures = serde_json::json!({
        "seed": seed,
        "jobs": JOBS,
        "chunks": chunks,
        "seconds": started.elapsed().as_secs_f64(),
        "worker_kills": worker_kills,
        "coordinator_kills": coordinator_kills,
        "reassigned_attempts": failed_attempts,
        "forged_sent": forger.forged,
        "results_rejected": rejected,
        "outputs_exact": outputs_exact,
        "forger_quarantined": forger.quarantined,
        "executions": executions,
        "extra_executions": executions - chunks,
    });
    println!("chaos figures: {figures}");
    // The books balance after all of it: every transaction sums to zero, no job was charged
    // past its quote, and the customer paid exactly what the jobs were charged.
    let operator = Client::new(&cluster.ready.url, &cluster.ready.operator_key).unwrap();
    let books = operator.balance().await.unwrap();
    assert_eq!(books.books_balance, Some(true), "{books:?}");
    let mut charged = 0;
    for (id, _) in &jobs {
        let cost = client
            .job(*id)
            .await
            .unwrap()
            .cost
            .expect("a completed job has its cost");
        assert!(cost.charged <= cost.quote, "job {id}: {cost:?}");
        charged += cost.charged.0;
    }
    let balance = client.balance().await.unwrap();
    assert_eq!(balance.held.0, 0, "{balance:?}");
    assert_eq!(balance.balance.0, 100_000_000 - charged, "{balance:?}");
    assert_eq!(coordinator_kills, 2, "{figures}");
    assert!(worker_kills >= 1, "{figures}");
    if forger.forged > 0 {
        assert!(rejected >= 1, "forgeries went unnoticed: {figures}");
    }
}
