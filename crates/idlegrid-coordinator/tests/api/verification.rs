//! Checking results: replication and quorums across owners, forgers caught, and what waits
//! for a check.

use crate::harness::*;

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
                        log: None,
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
        let status = job_once_ended(&customer, job.id, Duration::from_millis(50), 1200).await;
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
