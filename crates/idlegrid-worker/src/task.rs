//! Carries out one leased task: bundle, scratch directory, chunk download, script run, and the
//! output sent inline or uploaded, ending in the outcome to report.

use crate::backoff::Backoff;
use crate::bundles::{BundleCache, BundleError};
use crate::controls::Controls;
use crate::runner::{self, Ended, Output, OwnerLimits, Progress, Script};
use crate::sandbox::Sandbox;
use base64::Engine;
use idlegrid_api::Bundle;
use idlegrid_api::tasks::{JobSpec, Lease, MAX_INLINE_OUTPUT, ReportOutcome};
use idlegrid_client::{Client, ClientError};
use std::future::Future;
use std::path::{Path, PathBuf};
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

/// How a task ended, as far as the worker is concerned.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Report this, with the script's log (the end of its stderr) when it ran.
    Report(ReportOutcome, Option<String>),
    /// The stop token fired (lease lost, or forced shutdown); the caller knows which.
    Stopped,
    /// The coordinator refused a lease-scoped call: the lease is no longer this worker's.
    Lost(String),
}

/// Why a task could not go on.
enum Abort {
    Failed(String),
    Stopped,
    Lost(String),
}

/// What every task shares.
pub(crate) struct Tasks {
    /// Python executable.
    pub python: PathBuf,
    /// Where scratch directories are made.
    pub scratch_root: PathBuf,
    /// Bundle cache.
    pub bundles: BundleCache,
    /// How scripts are confined.
    pub sandbox: Box<dyn Sandbox>,
    /// The device owner's controls, which lower each job's limits.
    pub controls: Controls,
    /// What the owner adds to each script's limits.
    pub owner: OwnerLimits,
}

impl Tasks {
    /// Runs `lease` of `job` to its end. `stop` kills the script and abandons the task.
    pub(crate) async fn execute(
        &self,
        client: &Client,
        lease: &Lease,
        job: &JobSpec,
        progress: &Progress,
        stop: &CancellationToken,
    ) -> Outcome {
        let run = Run {
            tasks: self,
            client,
            lease,
            job,
            progress,
            stop,
            log: Default::default(),
        };
        let ended = run.execute().await;
        let log = run
            .log
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .filter(|log| !log.is_empty());
        match ended {
            Ok(outcome) => Outcome::Report(outcome, log),
            Err(Abort::Failed(reason)) => Outcome::Report(ReportOutcome::Failed { reason }, log),
            Err(Abort::Stopped) => Outcome::Stopped,
            Err(Abort::Lost(why)) => Outcome::Lost(why),
        }
    }
}

/// One task in progress.
struct Run<'a> {
    tasks: &'a Tasks,
    client: &'a Client,
    lease: &'a Lease,
    job: &'a JobSpec,
    progress: &'a Progress,
    stop: &'a CancellationToken,
    /// The script's stderr tail, once it ran.
    log: std::sync::Mutex<Option<String>>,
}

impl Run<'_> {
    async fn execute(&self) -> Result<ReportOutcome, Abort> {
        if !Bundle::is_safe_file_name(&self.lease.input_name) {
            return Err(Abort::Failed(format!(
                "the chunk's file name {:?} is not a plain file name",
                self.lease.input_name
            )));
        }
        let entrypoint = self.bundle().await?;
        let scratch_root = &self.tasks.scratch_root;
        let scratch = tempfile::Builder::new()
            .prefix(&format!("lease-{}-", self.lease.lease_id))
            .tempdir_in(scratch_root)
            .map_err(|err| {
                Abort::Failed(format!(
                    "the worker cannot create a scratch directory in {}: {err}",
                    scratch_root.display()
                ))
            })?;
        let result = self.in_scratch(&entrypoint, scratch.path()).await;
        let path = scratch.path().to_path_buf();
        if let Err(err) = scratch.close() {
            tracing::warn!(path = %path.display(), "cannot remove scratch directory: {err}");
        }
        result
    }

    async fn in_scratch(&self, entrypoint: &Path, scratch: &Path) -> Result<ReportOutcome, Abort> {
        let lease = self.lease;
        let output_dir = scratch.join("output");
        for dir in [scratch.join("input"), output_dir.clone()] {
            std::fs::create_dir(&dir).map_err(|err| {
                Abort::Failed(format!("the worker cannot create {}: {err}", dir.display()))
            })?;
        }
        let input = scratch.join("input").join(&lease.input_name);
        let size = lease_call(self.stop, "cannot download the chunk", || {
            self.client.download_lease_input(lease.lease_id, &input)
        })
        .await?;
        if size != lease.input_size {
            return Err(Abort::Failed(format!(
                "the chunk downloaded as {size} bytes, but the lease says {}",
                lease.input_size
            )));
        }

        // The script runs from its own copy of the bundle: the sandbox lets it see nothing of
        // the worker's state directory.
        let entrypoint = copy_app(entrypoint, &scratch.join("app")).map_err(|err| {
            Abort::Failed(format!("the worker cannot copy the app bundle: {err}"))
        })?;
        let limits = self.tasks.controls.cap(&self.job.limits);
        let script = Script {
            python: &self.tasks.python,
            entrypoint: &entrypoint,
            workdir: scratch,
            params: &self.job.params,
            task_params: &lease.task_params,
            task_id: lease.task_id,
            chunk_index: lease.chunk_index,
            limits: &limits,
            owner: &self.tasks.owner,
        };
        let finished = runner::run(
            &script,
            self.tasks.sandbox.as_ref(),
            self.progress,
            self.stop,
        )
        .await
        .map_err(|err| Abort::Failed(err.to_string()))?;
        if finished.ended == Ended::Cancelled {
            return Err(Abort::Stopped);
        }
        *self.log.lock().unwrap_or_else(|e| e.into_inner()) = Some(finished.stderr_tail.clone());
        let output = runner::judge(&finished, &output_dir, &limits).map_err(Abort::Failed)?;
        self.send_output(&output).await
    }

    /// The file the lease runs from the job's bundle (its entrypoint, or a step's script),
    /// fetched if needed; retries while the coordinator is away.
    async fn bundle(&self) -> Result<PathBuf, Abort> {
        let sha256 = &self.job.bundle_sha256;
        let mut backoff = Backoff::new();
        loop {
            let result = tokio::select! {
                () = self.stop.cancelled() => return Err(Abort::Stopped),
                result = self.tasks.bundles.get(self.client, sha256, self.lease.lease_id) => result,
            };
            match result {
                Ok(bundle) => {
                    return bundle
                        .script(self.lease.script.as_deref())
                        .map_err(Abort::Failed);
                }
                Err(BundleError::Fetch(err)) if err.is_retryable() => {
                    let delay = backoff.next_delay();
                    tracing::warn!(bundle = %sha256, "cannot fetch bundle ({err}); retrying in {delay:?}");
                    pause(self.stop, delay).await?;
                }
                Err(err) => return Err(Abort::Failed(err.to_string())),
            }
        }
    }

    /// Turns the output file into a `Completed` outcome: inline when small, else uploaded.
    async fn send_output(&self, output: &Output) -> Result<ReportOutcome, Abort> {
        let file = runner::open_output(output).map_err(Abort::Failed)?;
        if output.size <= MAX_INLINE_OUTPUT as u64 {
            let mut bytes = Vec::with_capacity(MAX_INLINE_OUTPUT);
            tokio::fs::File::from_std(file)
                .take(MAX_INLINE_OUTPUT as u64 + 1)
                .read_to_end(&mut bytes)
                .await
                .map_err(|err| Abort::Failed(format!("cannot read the output: {err}")))?;
            if bytes.len() as u64 != output.size {
                return Err(Abort::Failed(
                    "the output changed after the script ended".into(),
                ));
            }
            return Ok(ReportOutcome::Completed {
                sha256: idlegrid_client::sha256_bytes(&bytes),
                size: output.size,
                inline_base64: Some(base64::engine::general_purpose::STANDARD.encode(&bytes)),
            });
        }
        drop(file);
        let path = output.path.clone();
        let (sha256, size) =
            tokio::task::spawn_blocking(move || idlegrid_client::sha256_file(&path))
                .await
                .map_err(|err| Abort::Failed(format!("cannot hash the output: {err}")))?
                .map_err(|err| Abort::Failed(format!("cannot hash the output: {err}")))?;
        if size != output.size {
            return Err(Abort::Failed(
                "the output changed after the script ended".into(),
            ));
        }
        lease_call(self.stop, "cannot upload the output", || {
            self.client
                .upload_lease_output(self.lease.lease_id, &output.path, &sha256)
        })
        .await?;
        Ok(ReportOutcome::Completed {
            sha256,
            size,
            inline_base64: None,
        })
    }
}

/// A Tasks API call about the lease, retried while the coordinator is away. An answer that the
/// lease is unknown, not held or not ours means it is lost; other refusals fail the task.
async fn lease_call<T, F, Fut>(
    stop: &CancellationToken,
    what: &str,
    mut call: F,
) -> Result<T, Abort>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    let mut backoff = Backoff::new();
    loop {
        let result = tokio::select! {
            () = stop.cancelled() => return Err(Abort::Stopped),
            result = call() => result,
        };
        match result {
            Ok(value) => return Ok(value),
            Err(err) if err.is_retryable() => {
                let delay = backoff.next_delay();
                tracing::warn!("{what} ({err}); retrying in {delay:?}");
                pause(stop, delay).await?;
            }
            Err(err) if matches!(err.status(), Some(401 | 403 | 404 | 409 | 410)) => {
                return Err(Abort::Lost(format!("{what}: {err}")));
            }
            Err(err) => return Err(Abort::Failed(format!("{what}: {err}"))),
        }
    }
}

async fn pause(stop: &CancellationToken, delay: std::time::Duration) -> Result<(), Abort> {
    tokio::select! {
        () = stop.cancelled() => Err(Abort::Stopped),
        () = tokio::time::sleep(delay) => Ok(()),
    }
}

/// Copies the bundle's files (a flat directory) beside `entrypoint` into `app`; returns the
/// entrypoint's copy.
fn copy_app(entrypoint: &Path, app: &Path) -> std::io::Result<PathBuf> {
    let source = entrypoint
        .parent()
        .ok_or_else(|| std::io::Error::other("the entrypoint has no directory"))?;
    copy_tree(source, app)?;
    Ok(app.join(entrypoint.file_name().unwrap_or_default()))
}

/// Copies the files and folders under `from` (the app's files and the packages unpacked beside
/// them) to a new `to`; links are not followed (the cache holds none).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        } else if kind.is_dir() {
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
    }
    Ok(())
}
