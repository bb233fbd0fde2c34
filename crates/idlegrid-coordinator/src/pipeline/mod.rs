//! The pipeline: the deck's stages that take a job from its input to its output, each handing
//! work to the next only through the records and the queues, and every other background loop
//! of the coordinator. [`start`] starts them all.
//!
//! ```text
//! [partition] partitioner ─▶ [feed] feeder ─▶ job queues ─▶ (Tasks API) ─▶ recorder
//!     ─▶ [validate] validator + quorum ─▶ [assemble] assembler ─▶ output
//! ```

pub mod assembler;
pub mod escrow;
pub mod feeder;
pub mod housekeeping;
pub mod mirror;
pub mod partitioner;
pub mod quorum;
pub mod reaper;
pub mod recorder;
pub mod requeue;
pub mod stage;
pub mod stragglers;
pub mod validator;
pub mod webhooks;

use crate::grid::Grid;
use std::sync::Arc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Starts every stage and background loop until `stop`. In-process queues (`--queue memory`
/// too) start empty and are first rebuilt from the records, whatever keeps those; shared
/// queues outlive this process and may be used by other coordinators, so they are swept for
/// work a dead coordinator took with it instead. Decided from what the engines are
/// ([`Grid::engines`]), not from which URLs were given.
pub async fn start(grid: &Arc<Grid>, stop: &CancellationToken) -> anyhow::Result<JoinSet<()>> {
    let mut tasks = JoinSet::new();
    if grid.engines.shared_queues {
        tasks.spawn(requeue::run(grid.clone(), stop.clone()));
    } else {
        let recovered = requeue::rebuild_queues(grid).await?;
        tracing::info!(?recovered, "queues rebuilt from the records");
    }
    if grid.engines.shared_records {
        // Other coordinators may share the records: keep this one's copies of them current.
        tasks.spawn(mirror::run(grid.clone(), stop.clone()));
    }
    tasks.spawn(partitioner::run(grid.clone(), stop.clone()));
    tasks.spawn(feeder::run(grid.clone(), stop.clone()));
    tasks.spawn(validator::run(grid.clone(), stop.clone()));
    tasks.spawn(assembler::run(grid.clone(), stop.clone()));
    tasks.spawn(reaper::run(grid.clone(), stop.clone()));
    tasks.spawn(recorder::run(grid.clone(), stop.clone()));
    tasks.spawn(housekeeping::presence(grid.clone(), stop.clone()));
    tasks.spawn(housekeeping::stats(grid.clone(), stop.clone()));
    tasks.spawn(housekeeping::credentials(grid.clone(), stop.clone()));
    tasks.spawn(webhooks::run(grid.clone(), stop.clone()));
    tasks.spawn(stragglers::run(grid.clone(), stop.clone()));
    tasks.spawn(escrow::run(grid.clone(), stop.clone()));
    tasks.spawn(housekeeping::abandoned_uploads(grid.clone(), stop.clone()));
    Ok(tasks)
}
