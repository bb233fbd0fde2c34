//! The worker's main loops: leasing into free slots, one heartbeat for all running leases,
//! reporting outcomes until the coordinator takes them, and the drain on shutdown; plus the
//! owner's policy (leasing only while the device may work, handing running tasks back at once
//! when it may not) and the local control socket.

use crate::backoff::Backoff;
use crate::bundles::BundleCache;
use crate::controls::{POLICY_PERIOD, Permission, Sources, SystemSources};
use crate::identity::{Enrollment, Identity};
use crate::ipc;
use crate::runner::{OwnerLimits, Progress};
use crate::throttle::Throttle;

use crate::task::{Outcome, Tasks};
use crate::{WorkerConfig, WorkerSummary, capabilities};
use anyhow::Context;
use idlegrid_api::tasks::{
    Heartbeat, HeartbeatItem, JobSpec, Lease, LeaseRequest, Report, ReportItem, ReportOutcome,
};
use idlegrid_api::{LeaseId, TaskId};
use idlegrid_client::Client;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// How long the coordinator may hold a lease request when no task is ready.
const LEASE_WAIT_MS: u64 = 20_000;
/// Largest `max_tasks` the Tasks API accepts.
const MAX_LEASE_BATCH: usize = 1000;
/// Shortest time between two lease requests that came back empty, in case the coordinator
/// answers at once instead of waiting.
const MIN_EMPTY_POLL: Duration = Duration::from_secs(1);
/// After the drain timeout, how long killed tasks get to report `released` before the worker
/// stops trying (the coordinator will see the leases expire instead).
const REPORT_GRACE: Duration = Duration::from_secs(10);

/// A task the heartbeat loop knows about.
struct Running {
    /// What it is, for `idlegrid worker status`.
    lease: Lease,
    /// When it started.
    started: Instant,
    progress: Progress,
    /// Fired when the coordinator says the lease is no longer held.
    lost: CancellationToken,
    /// Fired to kill the script: on `lost`, or on forced shutdown (a child of `kill`).
    stop: CancellationToken,
}

/// What all loops share.
struct Shared {
    tasks: Tasks,
    running: Mutex<HashMap<LeaseId, Running>>,
    /// Kills every script (forced shutdown).
    kill: CancellationToken,
    /// Gives up on undelivered reports.
    abandon: CancellationToken,
    summary: Mutex<WorkerSummary>,
    /// Whether the device may work now; the lease loop waits on it.
    permission: watch::Sender<Permission>,
    /// Whether the owner paused the worker (also stored in the state directory).
    paused: AtomicBool,
    /// What the owner's conditions are judged on.
    sources: Box<dyn Sources>,
    /// The configuration, for the owner's controls and the state directory.
    config: WorkerConfig,
}

impl Shared {
    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<LeaseId, Running>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn count(&self, update: impl FnOnce(&mut WorkerSummary)) {
        update(&mut self.summary.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// Marks a lease lost, killing its script and cancelling its report.
    fn lose(&self, lease: LeaseId) {
        if let Some(running) = self.running().get(&lease) {
            running.lost.cancel();
            running.stop.cancel();
        }
    }

    fn lose_all(&self) {
        for running in self.running().values() {
            running.lost.cancel();
            running.stop.cancel();
        }
    }

    /// Whether tasks may run now.
    fn allowed(&self) -> bool {
        self.permission.borrow().allows()
    }

    /// Judges the owner's pause and conditions again. When the device stops being allowed to
    /// work, every running script is killed and its lease handed back (as on a forced
    /// shutdown); tasks that start meanwhile see the new permission and stop too.
    fn reevaluate(&self) {
        let mut now = Permission::Allowed;
        let changed = self.permission.send_if_modified(|current| {
            now = if self.paused.load(Ordering::SeqCst) {
                Permission::Paused
            } else {
                match self.config.controls.decide(self.sources.as_ref()) {
                    Ok(()) => Permission::Allowed,
                    Err(reason) => Permission::NotAllowed { reason },
                }
            };
            let changed = *current != now;
            *current = now.clone();
            changed
        });
        if !changed {
            return;
        }
        match &now {
            Permission::Allowed => tracing::info!("the device may work again; leasing"),
            Permission::Paused => {
                tracing::info!(
                    "paused by the device's owner until `idlegrid worker resume`; handing running tasks back"
                )
            }
            Permission::NotAllowed { reason } => {
                tracing::info!(%reason, "the device may not work now; handing running tasks back")
            }
        }
        if !now.allows() {
            for running in self.running().values() {
                running.stop.cancel();
            }
        }
    }
}

/// What the control socket sees of the running worker.
struct Local {
    shared: Arc<Shared>,
    identity: watch::Receiver<Identity>,
}

impl ipc::Worker for Local {
    fn set_paused(&self, paused: bool) -> std::io::Result<()> {
        ipc::store_paused(&self.shared.config.state_dir, paused)?;
        self.shared.paused.store(paused, Ordering::SeqCst);
        self.shared.reevaluate();
        Ok(())
    }

    fn snapshot(&self) -> ipc::Status {
        let shared = &self.shared;
        let mut tasks: Vec<ipc::TaskStatus> = shared
            .running()
            .values()
            .map(|running| ipc::TaskStatus {
                lease_id: running.lease.lease_id,
                task_id: running.lease.task_id,
                job_id: running.lease.job_id,
                chunk_index: running.lease.chunk_index,
                progress: running.progress.get(),
                elapsed_secs: running.started.elapsed().as_secs(),
            })
            .collect();
        tasks.sort_by_key(|task| task.lease_id.0);
        let state = match &*shared.permission.borrow() {
            Permission::Allowed if tasks.is_empty() => ipc::State::Idle,
            Permission::Allowed => ipc::State::Working,
            Permission::Paused => ipc::State::Paused,
            Permission::NotAllowed { reason } => ipc::State::NotAllowed {
                reason: reason.clone(),
            },
        };
        let identity = self.identity.borrow();
        ipc::Status {
            state,
            coordinator: identity.client.base().to_string(),
            worker_id: identity.worker_id,
            tasks,
            session: *shared
                .summary
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
            record: None,
            record_error: None,
            controls: shared.config.controls.clone(),
        }
    }

    fn client(&self) -> Client {
        self.identity.borrow().client.clone()
    }
}

/// See [`crate::run`].
pub(crate) async fn run(
    config: WorkerConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<WorkerSummary> {
    anyhow::ensure!(config.slots >= 1, "slots must be at least 1");
    config
        .controls
        .validate()
        .map_err(|err| anyhow::anyhow!("invalid worker option: {err}"))?;
    let slots = config.controls.slots(config.slots);
    let state_dir = &config.state_dir;
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("cannot create state directory {}", state_dir.display()))?;
    let _lock = lock_state_dir(state_dir)?;
    let bundles_dir = state_dir.join("bundles");
    let scratch_root = scratch_root_for(state_dir);
    // Scratch directories of a previous run that crashed are garbage now.
    match std::fs::remove_dir_all(&scratch_root) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            return Err(err).with_context(|| format!("cannot clear {}", scratch_root.display()));
        }
        _ => {}
    }
    for dir in [&bundles_dir, &scratch_root] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // Scratch directories elsewhere: `scratch` in the state directory points there, and both
    // go when the worker stops.
    let link = state_dir.join("scratch");
    let _cleanup = if link != scratch_root {
        remove_path(&link)
            .and_then(|()| std::os::unix::fs::symlink(&scratch_root, &link))
            .with_context(|| {
                format!(
                    "cannot link {} to {}",
                    link.display(),
                    scratch_root.display()
                )
            })?;
        Some(RemoveOnDrop(vec![scratch_root.clone(), link.clone()]))
    } else {
        None
    };
    // Scripts may run as another user: they must reach their scratch directory (but not list
    // the others).
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&scratch_root, std::fs::Permissions::from_mode(0o711))
            .with_context(|| format!("cannot set the permissions of {}", scratch_root.display()))?;
    }
    crate::bundles::remove_leftovers(&bundles_dir)
        .with_context(|| format!("cannot clean {}", bundles_dir.display()))?;

    let mut detected = capabilities::detect(&config.python, slots).await;
    if let Some(max_cores) = config.controls.max_cores {
        detected.capabilities.cores = detected.capabilities.cores.min(max_cores);
    }
    detected.capabilities.allows = config.controls.allowances();
    let chosen = crate::selftest::choose(
        &detected.python,
        state_dir,
        &scratch_root,
        config.weak_sandbox,
    )
    .await?;
    if chosen.leaks.is_empty() {
        tracing::info!(sandbox = chosen.sandbox.name(), user = %chosen.user, "the task sandbox holds");
    } else {
        tracing::warn!(
            sandbox = chosen.sandbox.name(),
            leaks = %chosen.leaks.join("; "),
            "the task sandbox is weak on this system (--weak-sandbox)"
        );
    }
    let caps = &detected.capabilities;
    let sandbox = chosen.sandbox;
    tracing::info!(
        cores = caps.cores,
        memory_mb = caps.memory_mb,
        os = %caps.os,
        arch = %caps.arch,
        python = caps.python.as_deref().unwrap_or("none"),
        ffmpeg = caps.ffmpeg.as_deref().unwrap_or("none"),
        benchmark = caps.benchmark,
        slots = caps.slots,
        interpreter = %chosen.python.display(),
        sandbox = sandbox.name(),
        "worker capabilities"
    );
    if caps.python.is_none() {
        tracing::warn!(
            python = %config.python.display(),
            "Python not found; the coordinator will send no Python tasks"
        );
    }

    let enrollment = Enrollment {
        coordinator: &config.coordinator,
        enrollment_token: &config.enrollment_token,
        name: &config.name,
        capabilities: caps,
        state_dir,
    };
    let identity = tokio::select! {
        () = shutdown.cancelled() => return Ok(WorkerSummary::default()),
        identity = enrollment.load_or_register() => identity?,
    };
    tracing::info!(worker_id = %identity.worker_id, coordinator = %identity.client.base(), "worker started");

    let sources: Box<dyn Sources> = Box::new(SystemSources);
    if config.controls.idle_minutes.is_some() && sources.idle().is_none() {
        tracing::warn!(
            "idle_minutes: this device cannot tell when it was last used (no readable /dev/input/event*, /dev/tty* or /dev/pts/*); it counts as idle"
        );
    }
    let controls = config.controls.describe();
    if !controls.is_empty() {
        tracing::info!(controls = %controls.join(" "), "owner controls");
    }
    let throttle = config.controls.cpu_percent.and_then(Throttle::new);
    let paused = ipc::is_paused(state_dir);
    let shared = Arc::new(Shared {
        tasks: Tasks {
            python: chosen.python.clone(),
            scratch_root,
            bundles: BundleCache::new(bundles_dir, caps.clone()),
            sandbox,
            controls: config.controls.clone(),
            owner: OwnerLimits {
                disk_bytes: config.controls.disk_bytes(),
                throttle: throttle.clone(),
            },
        },
        running: Mutex::new(HashMap::new()),
        kill: CancellationToken::new(),
        abandon: CancellationToken::new(),
        summary: Mutex::new(WorkerSummary::default()),
        permission: watch::Sender::new(Permission::Allowed),
        paused: AtomicBool::new(paused),
        sources,
        config: config.clone(),
    });
    shared.reevaluate();
    let (identity_tx, identity_rx) = watch::channel(identity);
    let heartbeat_stop = CancellationToken::new();
    let heartbeat = tokio::spawn(heartbeat_loop(
        shared.clone(),
        identity_rx.clone(),
        heartbeat_stop.clone(),
    ));
    let policy = tokio::spawn(policy_loop(shared.clone(), heartbeat_stop.clone()));
    let throttling = throttle.map(|throttle| {
        let stop = heartbeat_stop.clone();
        tokio::spawn(async move { throttle.run(stop).await })
    });
    let control = ipc::bind(state_dir)?;
    let _socket = RemoveOnDrop(vec![state_dir.join(ipc::SOCKET_FILE)]);
    let local = Arc::new(Local {
        shared: shared.clone(),
        identity: identity_rx,
    });
    let control = tokio::spawn(ipc::serve(control, local, heartbeat_stop.clone()));

    let mut tasks = JoinSet::new();
    let leased = lease_loop(
        &config,
        &enrollment,
        &shared,
        &identity_tx,
        &mut tasks,
        &shutdown,
    )
    .await;

    let drain = if leased.is_ok() {
        config.drain_timeout
    } else {
        Duration::ZERO
    };
    if !tasks.is_empty() {
        tracing::info!(
            running = tasks.len(),
            "stopped leasing; letting running tasks finish for up to {drain:?}"
        );
    }
    if tokio::time::timeout(drain, join_all(&mut tasks))
        .await
        .is_err()
    {
        tracing::warn!(
            running = tasks.len(),
            "killing the remaining tasks and handing them back"
        );
        shared.kill.cancel();
        if tokio::time::timeout(REPORT_GRACE, join_all(&mut tasks))
            .await
            .is_err()
        {
            tracing::warn!(
                "giving up on undelivered reports; the coordinator will expire those leases"
            );
            shared.abandon.cancel();
            join_all(&mut tasks).await;
        }
    }
    heartbeat_stop.cancel();
    let _ = heartbeat.await;
    let _ = policy.await;
    let _ = control.await;
    if let Some(throttling) = throttling {
        let _ = throttling.await;
    }
    leased?;
    let summary = *shared
        .summary
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    tracing::info!(
        succeeded = summary.succeeded,
        failed = summary.failed,
        released = summary.released,
        lost = summary.lost,
        "worker stopped"
    );
    Ok(summary)
}

/// Holds an exclusive lock on the state directory, so two workers never share (and wipe) the
/// same scratch space.
fn lock_state_dir(state_dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let path = state_dir.join("lock");
    let file = std::fs::File::create(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another worker is using the state directory {}",
            state_dir.display()
        ),
        Err(std::fs::TryLockError::Error(err)) => {
            Err(err).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

async fn join_all(tasks: &mut JoinSet<()>) {
    while let Some(result) = tasks.join_next().await {
        if let Err(err) = result
            && err.is_panic()
        {
            tracing::error!("a task panicked: {err}");
        }
    }
}

/// Leases tasks into free slots until `shutdown`; each lease runs as its own tokio task in
/// `tasks`. Returns an error only when the worker cannot go on (its enrollment was refused).
async fn lease_loop(
    config: &WorkerConfig,
    enrollment: &Enrollment<'_>,
    shared: &Arc<Shared>,
    identity: &watch::Sender<Identity>,
    tasks: &mut JoinSet<()>,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let slots = Arc::new(Semaphore::new(config.controls.slots(config.slots)));
    let mut backoff = Backoff::new();
    let mut permission = shared.permission.subscribe();
    loop {
        while tasks.try_join_next().is_some() {}
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            allowed = permission.wait_for(Permission::allows) => { allowed?; }
        }
        let first = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            permit = slots.clone().acquire_owned() => permit?,
        };
        // The slot may have come free because the device stopped being allowed to work.
        if !shared.allowed() {
            continue;
        }
        let free = (1 + slots.available_permits()).min(MAX_LEASE_BATCH);
        let client = identity.borrow().client.clone();
        let request = LeaseRequest {
            max_tasks: u32::try_from(free).unwrap_or(1),
            wait_ms: LEASE_WAIT_MS,
        };
        let asked = Instant::now();
        let result = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            result = client.lease(&request) => result,
        };
        match result {
            Ok(grant) => {
                backoff.reset();
                if !shared.allowed() {
                    drop(first);
                    for lease in grant.leases {
                        tracing::info!(lease = %lease.lease_id, "the device may not work now; handing a new lease back");
                        tasks.spawn(hand_back(shared.clone(), client.clone(), lease));
                    }
                    continue;
                }
                if grant.leases.is_empty() {
                    drop(first);
                    if let Some(rest) = MIN_EMPTY_POLL.checked_sub(asked.elapsed()) {
                        sleep_unless(shutdown, rest).await;
                    }
                    continue;
                }
                let mut first = Some(first);
                for lease in grant.leases {
                    let job = grant
                        .jobs
                        .iter()
                        .find(|j| j.job_id == lease.job_id)
                        .cloned();
                    match first
                        .take()
                        .or_else(|| slots.clone().try_acquire_owned().ok())
                    {
                        Some(permit) => {
                            let span = tracing::info_span!(
                                "task",
                                lease = %lease.lease_id,
                                task = %lease.task_id,
                                job = %lease.job_id,
                                chunk = lease.chunk_index,
                            );
                            let task = run_task(shared.clone(), client.clone(), lease, job, permit);
                            tasks.spawn(task.instrument(span));
                        }
                        None => {
                            tracing::warn!(lease = %lease.lease_id, "the coordinator granted more leases than asked for; handing it back");
                            tasks.spawn(hand_back(shared.clone(), client.clone(), lease));
                        }
                    }
                }
            }
            Err(err) if err.code() == Some("worker_quarantined") => {
                drop(first);
                // No more work will come: say so and stop, rather than ask forever.
                anyhow::bail!(
                    "the coordinator quarantined this device after invalid results ({err}); it stops asking for work"
                );
            }
            Err(err) if err.status() == Some(401) => {
                drop(first);
                tracing::warn!(
                    "the coordinator no longer accepts this worker's token ({err}); registering anew"
                );
                // Leases of the old identity cannot be reported any more.
                shared.lose_all();
                let fresh = tokio::select! {
                    () = shutdown.cancelled() => return Ok(()),
                    fresh = enrollment.register() => fresh?,
                };
                identity.send_replace(fresh);
            }
            Err(err) => {
                drop(first);
                let delay = backoff.next_delay();
                if err.is_retryable() {
                    tracing::warn!("cannot lease tasks ({err}); retrying in {delay:?}");
                } else {
                    tracing::error!("lease request refused ({err}); retrying in {delay:?}");
                }
                sleep_unless(shutdown, delay).await;
            }
        }
    }
}

async fn sleep_unless(token: &CancellationToken, delay: Duration) {
    tokio::select! {
        () = token.cancelled() => {}
        () = tokio::time::sleep(delay) => {}
    }
}

/// Runs one leased task and reports its outcome; the slot is freed when this returns.
async fn run_task(
    shared: Arc<Shared>,
    client: Client,
    lease: Lease,
    job: Option<JobSpec>,
    permit: OwnedSemaphorePermit,
) {
    let progress = Progress::default();
    let lost = CancellationToken::new();
    let stop = shared.kill.child_token();
    shared.running().insert(
        lease.lease_id,
        Running {
            lease: lease.clone(),
            started: Instant::now(),
            progress: progress.clone(),
            lost: lost.clone(),
            stop: stop.clone(),
        },
    );
    // Stopped at once if the device stopped being allowed to work as the lease came in.
    if !shared.allowed() {
        stop.cancel();
    }
    let started = Instant::now();
    let outcome = match &job {
        Some(job) => {
            tracing::info!(app = %job.app, "task started");
            shared
                .tasks
                .execute(&client, &lease, job, &progress, &stop)
                .await
        }
        None => {
            tracing::error!("the coordinator sent no job details for this lease; handing it back");
            Outcome::Report(ReportOutcome::Released, None)
        }
    };
    let elapsed = started.elapsed();
    let (report, log) = match outcome {
        Outcome::Report(report, log) => (Some(report), log),
        Outcome::Stopped if lost.is_cancelled() => {
            tracing::info!(?elapsed, "task stopped: the lease is no longer held");
            (None, None)
        }
        Outcome::Stopped => (Some(ReportOutcome::Released), None),
        Outcome::Lost(why) => {
            tracing::info!(?elapsed, "task abandoned: the lease is gone ({why})");
            (None, None)
        }
    };
    match report {
        Some(report) => {
            match &report {
                ReportOutcome::Completed { size, .. } => {
                    tracing::info!(?elapsed, size, "task succeeded")
                }
                ReportOutcome::Failed { reason } => {
                    // The script's stderr is the customer's text: logged as text, on one line.
                    let reason = idlegrid_domain::text::shown(reason);
                    tracing::info!(?elapsed, %reason, "task failed")
                }
                ReportOutcome::Released => tracing::info!(?elapsed, "task handed back"),
            }
            deliver(
                &shared,
                &client,
                (lease.lease_id, lease.task_id),
                report,
                log,
                &lost,
            )
            .await;
        }
        None => shared.count(|s| s.lost += 1),
    }
    shared.running().remove(&lease.lease_id);
    drop(permit);
}

/// Reports a lease the worker has no slot for as released.
async fn hand_back(shared: Arc<Shared>, client: Client, lease: Lease) {
    let never = CancellationToken::new();
    deliver(
        &shared,
        &client,
        (lease.lease_id, lease.task_id),
        ReportOutcome::Released,
        None,
        &never,
    )
    .await;
}

/// Sends one report until the coordinator takes or refuses it, the lease is lost, or the
/// worker gives up on reports.
async fn deliver(
    shared: &Shared,
    client: &Client,
    (lease_id, task_id): (LeaseId, TaskId),
    outcome: ReportOutcome,
    log: Option<String>,
    lost: &CancellationToken,
) {
    let kind = match outcome {
        ReportOutcome::Completed { .. } => Kind::Succeeded,
        ReportOutcome::Failed { .. } => Kind::Failed,
        ReportOutcome::Released => Kind::Released,
    };
    let report = Report {
        reports: vec![ReportItem {
            lease_id,
            task_id,
            outcome,
            log,
        }],
    };
    let mut backoff = Backoff::new();
    let accepted = loop {
        // A request in flight is not cut short when the lease is lost: the coordinator may be
        // taking it right now.
        let result = tokio::select! {
            () = shared.abandon.cancelled() => break false,
            result = client.report(&report) => result,
        };
        match result {
            Ok(reply) => match reply.results.into_iter().next() {
                Some(status) if status.accepted => break true,
                Some(status) => {
                    let why = status.error.map_or_else(
                        || "no reason given".to_string(),
                        |e| format!("{} ({})", e.message, e.code),
                    );
                    tracing::warn!("the coordinator refused the report: {why}");
                    break false;
                }
                None => {
                    tracing::warn!("the coordinator's reply to the report was empty");
                    break false;
                }
            },
            Err(err) if err.is_retryable() => {
                let delay = backoff.next_delay();
                tracing::warn!("cannot report ({err}); retrying in {delay:?}");
                tokio::select! {
                    () = lost.cancelled() => {
                        tracing::warn!("dropping the report: the lease is no longer held");
                        break false;
                    }
                    () = shared.abandon.cancelled() => break false,
                    () = tokio::time::sleep(delay) => {}
                }
            }
            Err(err) => {
                tracing::warn!("the coordinator refused the report: {err}");
                break false;
            }
        }
    };
    shared.count(|summary| match (accepted, kind) {
        (false, _) => summary.lost += 1,
        (true, Kind::Succeeded) => summary.succeeded += 1,
        (true, Kind::Failed) => summary.failed += 1,
        (true, Kind::Released) => summary.released += 1,
    });
}

#[derive(Clone, Copy)]
enum Kind {
    Succeeded,
    Failed,
    Released,
}

/// Judges the owner's pause and conditions every [`POLICY_PERIOD`] until `stop`.
async fn policy_loop(shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        sleep_unless(&stop, POLICY_PERIOD).await;
        if stop.is_cancelled() {
            return;
        }
        let judged = shared.clone();
        // The conditions read files (input devices, batteries): off the async threads.
        if tokio::task::spawn_blocking(move || judged.reevaluate())
            .await
            .is_err()
        {
            tracing::error!("judging the owner's conditions panicked");
        }
    }
}

/// Heartbeats all running leases every period, and stops the tasks whose leases the
/// coordinator says are no longer held.
async fn heartbeat_loop(
    shared: Arc<Shared>,
    identity: watch::Receiver<Identity>,
    stop: CancellationToken,
) {
    let mut backoff = Backoff::new();
    let mut wait = identity.borrow().heartbeat;
    loop {
        sleep_unless(&stop, wait).await;
        if stop.is_cancelled() {
            return;
        }
        let (client, period) = {
            let current = identity.borrow();
            (current.client.clone(), current.heartbeat)
        };
        wait = period;
        let leases: Vec<HeartbeatItem> = shared
            .running()
            .iter()
            .map(|(lease_id, running)| HeartbeatItem {
                lease_id: *lease_id,
                progress: running.progress.get(),
            })
            .collect();
        if leases.is_empty() {
            continue;
        }
        let heartbeat = Heartbeat { leases };
        let result = tokio::select! {
            () = stop.cancelled() => return,
            result = client.heartbeat(&heartbeat) => result,
        };
        match result {
            Ok(reply) => {
                backoff.reset();
                for status in reply.leases.iter().filter(|s| !s.held) {
                    tracing::info!(lease = %status.lease_id, "lease no longer held; stopping its task");
                    shared.lose(status.lease_id);
                }
            }
            Err(err) if err.status() == Some(401) => {
                tracing::warn!("heartbeat refused ({err}); the leases of this identity are lost");
                shared.lose_all();
            }
            Err(err) => {
                // Retry sooner than a full period so leases do not expire meanwhile.
                wait = backoff.next_delay().min(period);
                tracing::warn!("heartbeat failed ({err}); retrying in {wait:?}");
            }
        }
    }
}

/// Removes `path` if it exists: a directory with what it holds, a file or a link itself.
fn remove_path(path: &std::path::Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(_) => Ok(()),
    }
}

/// Removes its paths (see [`remove_path`]) when dropped.
struct RemoveOnDrop(Vec<std::path::PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for path in &self.0 {
            if let Err(err) = remove_path(path) {
                tracing::warn!(path = %path.display(), "cannot remove: {err}");
            }
        }
    }
}

/// Where a worker's scratch directories go. A worker running as root runs scripts as another
/// user, who must be able to reach them: they go under the system's temporary directory
/// (state directories, e.g. under `/root`, are usually closed to other users).
fn scratch_root_for(state_dir: &std::path::Path) -> std::path::PathBuf {
    if nix::unistd::geteuid().is_root() {
        let tag = idlegrid_client::sha256_bytes(state_dir.as_os_str().as_encoded_bytes());
        std::env::temp_dir().join(format!("idlegrid-scratch-{}", &tag[..16]))
    } else {
        state_dir.join("scratch")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(state_dir: &std::path::Path) -> WorkerConfig {
        WorkerConfig {
            // Port 9 (discard) refuses connections: a coordinator that is away.
            coordinator: "http://127.0.0.1:9".into(),
            enrollment_token: "enroll".into(),
            state_dir: state_dir.to_path_buf(),
            name: "test".into(),
            slots: 1,
            python: "python3".into(),
            drain_timeout: Duration::from_secs(1),
            weak_sandbox: false,
            controls: crate::controls::Controls::default(),
        }
    }

    /// A battery the test plugs in and out.
    struct Plug(Arc<AtomicBool>);

    impl Sources for Plug {
        fn local_minute(&self) -> u16 {
            12 * 60
        }
        fn idle(&self) -> Option<Duration> {
            None
        }
        fn battery(&self) -> Option<crate::controls::Battery> {
            Some(crate::controls::Battery {
                discharging: !self.0.load(Ordering::SeqCst),
                percent: Some(80),
            })
        }
    }

    #[test]
    fn a_device_no_longer_allowed_stops_its_tasks_to_hand_them_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path());
        config.controls.on_battery = false;
        let plug = Arc::new(AtomicBool::new(true));
        let shared = Shared {
            tasks: Tasks {
                python: "python3".into(),
                scratch_root: dir.path().join("scratch"),
                bundles: BundleCache::new(dir.path().join("bundles"), Default::default()),
                sandbox: Box::new(crate::sandbox::RlimitSandbox),
                controls: config.controls.clone(),
                owner: OwnerLimits::default(),
            },
            running: Mutex::new(HashMap::new()),
            kill: CancellationToken::new(),
            abandon: CancellationToken::new(),
            summary: Mutex::new(WorkerSummary::default()),
            permission: watch::Sender::new(Permission::Allowed),
            paused: AtomicBool::new(false),
            sources: Box::new(Plug(plug.clone())),
            config,
        };
        let running = |id: u64| Running {
            lease: Lease {
                lease_id: LeaseId(id),
                task_id: TaskId(i64::try_from(id).unwrap()),
                job_id: idlegrid_api::JobId(1),
                chunk_index: 0,
                input_name: "chunk".into(),
                input_size: 0,
                task_params: serde_json::json!({}),
                script: None,
                expires_in_ms: 30_000,
            },
            started: Instant::now(),
            progress: Progress::default(),
            lost: CancellationToken::new(),
            stop: CancellationToken::new(),
        };
        let plugged = |on: bool| plug.store(on, Ordering::SeqCst);
        shared.running().insert(LeaseId(1), running(1));
        shared.reevaluate();
        assert!(shared.allowed());

        plugged(false);
        shared.reevaluate();
        assert_eq!(
            *shared.permission.borrow(),
            Permission::NotAllowed {
                reason: "the device runs on its battery".into()
            }
        );
        {
            let running = shared.running();
            let task = &running[&LeaseId(1)];
            // Stopped, not lost: the task reports `released`, handing its lease back.
            assert!(task.stop.is_cancelled() && !task.lost.is_cancelled());
        }

        plugged(true);
        shared.reevaluate();
        assert!(shared.allowed());
        shared.paused.store(true, Ordering::SeqCst);
        shared.reevaluate();
        assert_eq!(*shared.permission.borrow(), Permission::Paused);
    }

    #[tokio::test]
    async fn shutdown_interrupts_waiting_for_the_coordinator() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = scratch_root_for(dir.path());
        std::fs::create_dir_all(scratch.join("lease-1-old")).unwrap();
        let shutdown = CancellationToken::new();
        let worker = tokio::spawn(run(config(dir.path()), shutdown.clone()));
        tokio::time::sleep(Duration::from_millis(800)).await;
        // A second worker on the same state directory is refused.
        let err = run(config(dir.path()), CancellationToken::new())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("another worker"), "{err}");
        shutdown.cancel();
        let summary = tokio::time::timeout(Duration::from_secs(5), worker)
            .await
            .expect("the worker did not stop")
            .unwrap()
            .unwrap();
        assert_eq!(summary, WorkerSummary::default());
        // Leftovers of a crashed run are gone; a scratch root outside the state directory
        // goes with the worker.
        match std::fs::read_dir(&scratch) {
            Ok(entries) => assert_eq!(entries.count(), 0),
            Err(err) => {
                assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
                assert_ne!(scratch, dir.path().join("scratch"));
            }
        }
    }
}
