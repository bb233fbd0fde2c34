//! The idlegrid coordinator: the trusted side of the grid.
//!
//! The folders are the architecture:
//!
//! ```text
//! customer ─▶ http::jobs_api ─[partition]▶ pipeline::partitioner ─[feed]▶ pipeline::feeder
//!                                                                           │ job queues
//!                                                                           ▼
//!             http::jobs_api ◀─ output ── pipeline::assembler     http::tasks_api ◀─ workers
//!                                              ▲ [assemble]                 │ reports
//!                                   pipeline::validator + quorum ◀─[validate]─ pipeline::recorder
//! ```
//!
//! - [`http`]: every handler (Jobs API, Tasks API, uploads, links, accounts, billing, operations,
//!   the dashboard), the router and the OpenAPI document. Handlers check what they are sent and
//!   read or write the records and queues.
//! - [`pipeline`]: the stages (partitioner, feeder, validator with quorum, assembler) and every
//!   background loop (report recorder, reaper, stragglers, sweeper or queue rebuild, webhooks,
//!   escrow, housekeeping), started by [`pipeline::start`]. Stages hand work on only through
//!   the records ([`idlegrid_storage::records`]) and the queues ([`idlegrid_storage::queue`]),
//!   so a crash between any two steps loses nothing.
//! - [`apps`]: the plug-in traits an app implements ([`apps::plugin`]: partitioner, validator,
//!   assembler) and the built-in apps. Apps see the records and blobs only.
//! - The core both sides share, from the bottom up: leaf modules that know nothing of the grid —
//!   [`config`], [`events`] (job state changes for streams), [`blob_keys`] (where every blob
//!   lives), [`secrets`] (customers' secrets sealed), [`tools`] (FFmpeg runs, their CPU
//!   counted per stage), [`scratch`] (scratch directories, and clearing those of killed
//!   coordinators) and [`state`] (what a coordinator keeps in memory: the dispatch table,
//!   credentials, presence, statistics, the recorder's handle); then [`grid`] (the handles
//!   and state every stage and handler receives), [`bootstrap`] (opening a data directory),
//!   [`lifecycle`] (every job and task state change with side effects: a job's end, a refused
//!   input, what follows a failed attempt) and [`external`] (inputs from and outputs to URLs
//!   and buckets).
//!
//! No module imports one above it: `http` → `pipeline` → `lifecycle`/`external` → `grid` →
//! `apps` → `state` and the other leaves.

pub mod apps;
pub mod blob_keys;
pub mod bootstrap;
pub mod config;
pub mod events;
pub mod external;
pub mod grid;
pub mod http;
pub mod lifecycle;
pub mod logs;
pub mod pipeline;
pub mod quotas;
pub mod scratch;
pub mod secrets;
pub mod state;
pub mod tools;

pub use bootstrap::Credentials;
pub use config::Config;
pub use grid::Grid;

use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Starts the pipeline ([`pipeline::start`]) and serves both APIs on `listener` until `shutdown`
/// is cancelled; then stops accepting requests, lets in-flight ones finish, and stops the
/// pipeline.
pub async fn serve(
    listener: tokio::net::TcpListener,
    grid: Arc<Grid>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let stages = shutdown.child_token();
    let mut tasks = pipeline::start(&grid, &stages).await?;
    let stopping = grid.stopping.clone();
    // Peers' addresses reach the handlers that limit per address (sign-up).
    let app = http::router(grid).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.cancelled().await;
            stopping.cancel();
        })
        .await;
    stages.cancel();
    while tasks.join_next().await.is_some() {}
    served?;
    Ok(())
}
