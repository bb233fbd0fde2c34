//! Customers' quotas, as an operator set them: jobs submitted and not yet ended at once, and
//! bytes kept (inputs, outputs and published app bundles). One rule for every path that starts
//! a job (`run`) or stores an input (a whole upload, parts of one, or a fetch from a URL or a
//! bucket) or a bundle (publishing an app version); the
//! requests-a-second quota is the authenticator's ([`crate::state::credentials`]).
//!
//! Checked before the work, so two requests racing may each pass where only one would fit:
//! a quota may be overrun by one request's worth at most, never by a path that skips it.

use crate::grid::Grid;
use idlegrid_domain::TenantId;
use idlegrid_storage::Result as StorageResult;

/// Bytes `tenant` may still keep under its storage quota: `None` without a quota, `Err` (saying
/// why) when there is no room at all.
pub async fn room(grid: &Grid, tenant: TenantId) -> StorageResult<Result<Option<u64>, String>> {
    let Some(account) = grid
        .store
        .account(idlegrid_storage::records::AccountKind::Customer, tenant.0)
        .await?
    else {
        return Ok(Ok(None));
    };
    let Some(quota) = account.quotas.max_stored_bytes else {
        return Ok(Ok(None));
    };
    let quota = quota.max(0) as u64;
    let stored = grid.store.usage(tenant).await?.stored_bytes;
    let room = quota.saturating_sub(stored);
    if room == 0 {
        return Ok(Err(format!(
            "your storage quota is used up: {stored} of {quota} bytes kept (inputs, outputs and \
             published apps); ask the grid's operator for more"
        )));
    }
    Ok(Ok(Some(room)))
}

/// Bytes a new input of `tenant` may have: the grid's upload limit, or less when the
/// customer's storage quota has less room left. `Err` says why there is no room at all.
pub async fn input_limit(grid: &Grid, tenant: TenantId) -> StorageResult<Result<u64, String>> {
    let limit = grid.config.max_upload_bytes;
    Ok(room(grid, tenant)
        .await?
        .map(|room| room.map_or(limit, |room| room.min(limit))))
}

/// Whether `tenant` may submit one more job now; `Err` says which quota stops it.
pub async fn may_run(grid: &Grid, tenant: TenantId) -> StorageResult<Result<(), String>> {
    let Some(account) = grid
        .store
        .account(idlegrid_storage::records::AccountKind::Customer, tenant.0)
        .await?
    else {
        return Ok(Ok(()));
    };
    let quotas = account.quotas;
    if quotas.max_running_jobs.is_none() && quotas.max_stored_bytes.is_none() {
        return Ok(Ok(()));
    }
    let usage = grid.store.usage(tenant).await?;
    if let Some(max) = quotas.max_running_jobs
        && usage.running_jobs >= max.max(0) as u64
    {
        return Ok(Err(format!(
            "your quota allows {max} jobs at once and {} are submitted and not yet ended; wait for one to end, or cancel one",
            usage.running_jobs
        )));
    }
    if let Some(max) = quotas.max_stored_bytes
        && usage.stored_bytes > max.max(0) as u64
    {
        return Ok(Err(format!(
            "your storage quota is exceeded: {} of {max} bytes kept; ask the grid's operator for more",
            usage.stored_bytes
        )));
    }
    Ok(Ok(()))
}
