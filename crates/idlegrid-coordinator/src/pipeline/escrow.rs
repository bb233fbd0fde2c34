//! Held earnings: a result accepted without an independent party's agreement earns into its
//! owner's held account (see `idlegrid_storage::records::payments`). This stage moves what has
//! been held for the grid's hold period to the owners' balances, every
//! [`MATURE_EVERY`]; an owner caught forging before then forfeits it
//! ([`crate::pipeline::validator`]'s quarantine). A cheater who is caught after 1/p unverified results
//! on average (p, the spot-check rate) thus loses everything it earned unverified within the
//! hold period, honest results included.

use crate::grid::Grid;
use crate::pipeline::stage::every;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often held earnings are looked at.
pub const MATURE_EVERY: Duration = Duration::from_secs(10);

/// Matures held earnings until `shutdown`.
pub async fn run(grid: Arc<Grid>, shutdown: CancellationToken) {
    every(MATURE_EVERY, shutdown, || async {
        let cutoff = idlegrid_storage::now_ms() - grid.config.earnings_hold.as_millis() as i64;
        match grid.store.mature_held(cutoff).await {
            Ok(moved) if moved.0 > 0 => {
                tracing::info!(micro_credits = moved.0, "held earnings matured")
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "maturing held earnings failed; will retry"),
        }
    })
    .await;
}
