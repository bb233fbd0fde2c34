//! What customers are shown of their jobs, and finding a customer's own job: shared by the
//! handlers of jobs, uploads, links and billing.

use crate::external::External;
use crate::grid::Grid;
use crate::http::auth::Customer;
use crate::http::error::{ApiError, ApiResult};
use crate::pipeline::webhooks::Webhook;
use idlegrid_api::jobs::{
    BlobInfo, ChunkCounts, Job, Preferences, Verification, VerificationBasis,
};
use idlegrid_api::timestamp;
use idlegrid_api::{JobId, JobState};
use idlegrid_domain::{Placement, Replication, ReplicationMode};
use idlegrid_storage::records::{JobRecord, StoredBlob};

fn blob_info(blob: &Option<StoredBlob>) -> Option<BlobInfo> {
    blob.as_ref().map(|b| BlobInfo {
        size: b.size,
        sha256: b.sha256.clone(),
    })
}

/// How a recorded job runs, with the defaults it got filled in.
pub(crate) fn preferences_of(job: &JobRecord) -> Preferences {
    Preferences {
        priority: job.spec.priority,
        max_attempts: job.spec.max_attempts,
        task_timeout_secs: job.spec.task_timeout_secs,
        replication: Some(job.spec.replication),
        placement: Some(job.spec.placement),
        deadline_secs: job.spec.deadline_secs,
        tier: job.spec.tier,
        max_price: job.spec.max_price,
    }
}

/// A job record as customers see it.
pub async fn job_view(grid: &Grid, job: &JobRecord) -> ApiResult<Job> {
    let (depth, checking) = if job.state.is_dispatching() {
        (
            grid.queues.job_depth(job.id).await?,
            grid.store.tasks_checking(job.id).await?,
        )
    } else {
        Default::default()
    };
    // An app with steps of its own counts their tasks among the job's.
    let steps = match grid.app_of(job).await? {
        Some(app) if app.partitioner.step().is_some() || app.assembler.step().is_some() => {
            let chunks = crate::apps::steps::script::chunk_count(job, grid.store.as_ref()).await?;
            job.chunks_total.unwrap_or(0) - chunks
        }
        _ => 0,
    };
    Ok(Job {
        id: job.id,
        name: job.spec.name.clone(),
        app: job.spec.app.clone(),
        app_version: job.spec.app_version.clone(),
        state: job.state,
        error: job.error.clone(),
        params: job.spec.params.clone(),
        preferences: preferences_of(job),
        verification: verification_of(&job.spec.replication, job.spec.placement),
        cost: job_cost(job),
        input_from: External::of(job).and_then(|e| e.input_view()),
        output_to: External::of(job).and_then(|e| e.output_view()),
        webhook: Webhook::of(job).map(|w| w.view()),
        facts: job.facts.clone(),
        chunks: ChunkCounts {
            total: job.chunks_total,
            steps,
            created: job.chunks_created,
            done: job.chunks_done,
            queued: depth.queued,
            running: depth.leased,
            running_progress: depth.leased_progress,
            failed: job.chunks_failed,
            failed_attempts: job.failed_attempts,
            results: job.results_received,
            rejected: job.results_rejected,
            checking,
        },
        input: blob_info(&job.input),
        output: blob_info(&job.output),
        created_at: timestamp(job.created_at),
        submitted_at: job.submitted_at.map(timestamp),
        started_at: job.started_at.map(timestamp),
        finished_at: job.finished_at.map(timestamp),
    })
}

/// The caller's job, or 404 — also for another tenant's job, so ids reveal nothing.
pub(crate) async fn own_job(grid: &Grid, customer: Customer, id: JobId) -> ApiResult<JobRecord> {
    match grid.store.job(id).await? {
        Some(job) if job.spec.tenant == customer.0 => Ok(job),
        _ => Err(ApiError::not_found(
            "job_not_found",
            format!("there is no job {id} in your account"),
        )),
    }
}

/// How a job's results are verified, in the API's words.
pub(crate) fn verification_of(replication: &Replication, placement: Placement) -> Verification {
    let suspects = "results the validator finds worse than the settings give are still \
                    re-run on another device";
    match (replication.mode, placement) {
        (ReplicationMode::Adaptive, _) => Verification {
            basis: VerificationBasis::Verified,
            summary: format!(
                "adaptive replication: a result of a device that has not earned trust ({} \
                 valid results and time on the grid) is re-run on a device of another owner \
                 and must match it byte for byte; trusted devices are spot-checked at random, \
                 at least {:.0}% of their results",
                replication.trust_after,
                replication.spot_check * 100.0
            ),
        },
        (ReplicationMode::Fixed, _) => Verification {
            basis: VerificationBasis::Verified,
            summary: format!(
                "fixed replication: every chunk runs on {} devices, and {} of different owners \
                 must return the same bytes",
                replication.replicas, replication.quorum
            ),
        },
        (ReplicationMode::None, Placement::Own) => Verification {
            basis: VerificationBasis::PrivateFleet,
            summary: format!(
                "not replicated: only devices of your own run it, and the app's validator \
                 checks every result; {suspects}"
            ),
        },
        (ReplicationMode::None, Placement::Any) => Verification {
            basis: VerificationBasis::Unverified,
            summary: format!(
                "not replicated, as you chose: devices of anyone run it and only the app's \
                 validator checks their results; {suspects}"
            ),
        },
    }
}

/// A job's output, or 409 while the job is not completed.
pub(crate) fn completed_output(job: &JobRecord) -> ApiResult<&StoredBlob> {
    job.output
        .as_ref()
        .filter(|_| job.state == JobState::Completed)
        .ok_or_else(|| {
            let why = match job.state {
                JobState::Failed => "failed: it has no output".to_string(),
                JobState::Cancelled => "was cancelled: it has no output".to_string(),
                JobState::Created => "is waiting for its input; its output can be downloaded \
                                      once it is completed"
                    .to_string(),
                state => {
                    format!("is still {state}; its output can be downloaded once it is completed")
                }
            };
            ApiError::conflict("output_not_ready", format!("job {} {why}", job.id))
        })
}

/// What a job has cost, once its quote is held.
pub fn job_cost(job: &JobRecord) -> Option<idlegrid_api::jobs::JobCost> {
    job.billing.map(|b| idlegrid_api::jobs::JobCost {
        tier: b.quote.tier,
        quote: b.quote.price,
        charged: job.charged,
        work_core_seconds: b.quote.work_ms as f64 / 1000.0,
        price_per_core_hour: b.quote.rates.price_per_core_hour,
    })
}

/// Whether a job's output is an HLS archive.
pub fn is_hls(job: &JobRecord) -> bool {
    job.facts.as_ref().is_some_and(|f| f["hls"].is_object())
}

/// Whether a job's output is an archive of files (a streaming output, or a video with its
/// stills), whose files links serve one by one.
pub fn is_archive(job: &JobRecord) -> bool {
    job.facts
        .as_ref()
        .is_some_and(crate::apps::video::output_is_archive)
}

/// What a job's output downloads as: a file name (after the job's name, or its id) with the
/// extension of what it is, and its content type.
pub fn output_file(job: &JobRecord) -> (String, &'static str) {
    let container = job
        .facts
        .as_ref()
        .and_then(|f| f["output"]["container"].as_str());
    let (extension, content_type) = match (job.spec.app.as_str(), is_archive(job), container) {
        (_, true, _) => (".tar", "application/x-tar"),
        ("video-transcode", false, Some("mov")) => (".mov", "video/quicktime"),
        ("video-transcode", false, Some("mkv")) => (".mkv", "video/x-matroska"),
        ("video-transcode", false, Some("webm")) => (".webm", "video/webm"),
        ("video-transcode", false, _) => (".mp4", "video/mp4"),
        _ => ("", "application/octet-stream"),
    };
    // Only plain characters reach the header: a name is the customer's text.
    let stem: String = job
        .spec
        .name
        .as_deref()
        .map(|name| {
            let stem = std::path::Path::new(name)
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("");
            stem.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .take(80)
                .collect()
        })
        .filter(|s: &String| s.chars().any(|c| c.is_ascii_alphanumeric()))
        .unwrap_or_else(|| format!("job-{}", job.id));
    (format!("{stem}-output{extension}"), content_type)
}
