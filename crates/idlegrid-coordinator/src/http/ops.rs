//! Operations endpoints: unauthenticated and outside the APIs, `/livez` (the process serves
//! HTTP), `/readyz` (its records and queues answer) and `/metrics` (Prometheus text format);
//! for operators, the grid's statistics over the last 30 minutes (`GET /v1/grid/stats`).
//!
//! Request counts and latencies are recorded by [`track`] as requests pass; the state of the
//! grid (queue depths, leases, jobs, devices) is read when `/metrics` is scraped, so an idle
//! coordinator does no work for its metrics.

use crate::grid::Grid;
use axum::Json;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use idlegrid_api::grid::GridStats;
use idlegrid_domain::{JobId, JobState, TaskState};
use idlegrid_storage::StorageError;
use idlegrid_storage::queue::Stage;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// The process's metrics recorder (one per process, whatever number of grids it serves).
fn recorder() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ])
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        // Fails only if another recorder was installed first; then this one just stays empty.
        let _ = metrics::set_global_recorder(recorder);
        // Histogram samples wait in a buffer until they are folded into the buckets: fold them
        // every few seconds even when nobody scrapes, or the buffer grows without end.
        let upkeep = handle.clone();
        let _ = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(5));
                    upkeep.run_upkeep();
                }
            });
        handle
    })
}

/// Middleware: counts requests and records their latency by route and status.
pub async fn track(request: Request, next: Next) -> Response {
    recorder();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let labels = [
        ("route", route),
        ("method", method),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::histogram!("idlegrid_http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}

/// `GET /livez`: the process is up and serving.
pub async fn livez() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: 200 when the records and the queues answer, 503 naming the one that does not.
pub async fn readyz(State(grid): State<Arc<Grid>>) -> Response {
    if let Err(e) = grid.store.job(JobId(0)).await {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("records: {e}\n")).into_response();
    }
    if let Err(e) = grid.queues.stage_len(Stage::Partition).await {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("queues: {e}\n")).into_response();
    }
    if grid.stopping.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    "ready\n".into_response()
}

/// `GET /metrics`: request metrics plus the grid's state as of now.
pub async fn metrics(State(grid): State<Arc<Grid>>) -> Response {
    let handle = recorder();
    if let Err(e) = sample(&grid).await {
        tracing::warn!(error = %e, "could not read the grid's state for /metrics");
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}

/// Sets the gauges that describe the grid: stage queue depths, queued and leased tasks of the
/// dispatching jobs, jobs by state and unfinished jobs' tasks by state (from the records), and
/// seen and quarantined devices.
async fn sample(grid: &Grid) -> Result<(), StorageError> {
    for stage in Stage::ALL {
        let depth = grid.queues.stage_len(stage).await?;
        metrics::gauge!("idlegrid_stage_queue_depth", "stage" => stage.name()).set(depth as f64);
    }
    let (mut queued, mut leased) = (0u64, 0u64);
    let jobs = grid.schedule.jobs();
    for &job in &jobs {
        let depth = grid.queues.job_depth(job).await?;
        queued += depth.queued;
        leased += depth.leased;
    }
    metrics::gauge!("idlegrid_dispatching_jobs").set(jobs.len() as f64);
    let (job_counts, task_counts) = grid.store.counts().await?;
    for state in JobState::ALL {
        let n = job_counts
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |c| c.1);
        metrics::gauge!("idlegrid_jobs", "state" => state.as_str()).set(n as f64);
    }
    for state in TaskState::ALL {
        let n = task_counts
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |c| c.1);
        metrics::gauge!("idlegrid_job_tasks", "state" => state.as_str()).set(n as f64);
    }
    metrics::gauge!("idlegrid_tasks", "state" => "queued").set(queued as f64);
    metrics::gauge!("idlegrid_tasks", "state" => "leased").set(leased as f64);
    metrics::gauge!("idlegrid_leases").set(leased as f64);
    metrics::gauge!("idlegrid_workers", "state" => "seen").set(grid.devices_seen() as f64);
    metrics::gauge!("idlegrid_workers", "state" => "quarantined")
        .set(grid.quarantined_count() as f64);
    Ok(())
}

/// The grid's statistics over the last 30 minutes, as this coordinator saw them.
#[utoipa::path(get, path = "/v1/grid/stats", tag = "grid",
    security(("operator_key" = [])),
    responses((status = 200, body = GridStats)))]
pub async fn grid_stats(
    State(grid): State<Arc<Grid>>,
    _operator: crate::http::auth::Operator,
) -> Json<GridStats> {
    Json(GridStats {
        interval_secs: crate::state::stats::INTERVAL.as_secs(),
        samples: grid.stats.samples(),
    })
}
