//! Accounts: what a secret stands for (`GET /v1/me`, the dashboard's sign-in); a device
//! owner's devices with their state and record (`GET /v1/owner/devices`), renamed, paused,
//! resumed or removed; their earnings history and the payouts they ask for.

use crate::grid::Grid;
use crate::http::auth::{Anyone, Enroller};
use crate::http::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::http::secrets::checked_name;
use crate::state::presence::ONLINE_WITHIN_MS;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use idlegrid_api::ErrorBody;
use idlegrid_api::accounts::{
    AccountKind, Device, DeviceChange, DeviceStatus, DeviceTotals, Earning, EarningKind, Earnings,
    Me, OwnerDevices, OwnerInfo, Payout, PayoutRequest, Payouts,
};
use idlegrid_api::timestamp;
use idlegrid_domain::{Credits, WorkerId};
use idlegrid_storage::records::{
    Benched, DeviceRecord, PayoutAsked, PayoutRecord, PayoutState, Principal,
};
use std::sync::Arc;

/// What the secret in the request stands for.
#[utoipa::path(get, path = "/v1/me", tag = "accounts",
    security(("api_key" = []), ("enrollment_token" = []), ("operator_key" = []), ("worker_token" = [])),
    responses((status = 200, body = Me)))]
pub async fn me(State(grid): State<Arc<Grid>>, Anyone(principal): Anyone) -> ApiResult<Json<Me>> {
    let (kind, id) = match principal {
        Principal::Tenant(t) => (AccountKind::Customer, t.0),
        Principal::Owner(o) => (AccountKind::Owner, o),
        Principal::Operator(o) => (AccountKind::Operator, o),
        Principal::Worker(w) => (AccountKind::Worker, w.0),
    };
    let name = grid.store.account_name(principal).await?;
    Ok(Json(Me { kind, id, name }))
}

/// A device's status from when it was last heard from and the tasks it holds.
pub fn status(
    record: &DeviceRecord,
    last_seen: Option<i64>,
    running: u64,
    now_ms: i64,
) -> DeviceStatus {
    if record.reputation.quarantined_at_ms.is_some() {
        DeviceStatus::Quarantined
    } else if record.paused {
        DeviceStatus::Paused
    } else if last_seen.is_none_or(|at| now_ms - at > ONLINE_WITHIN_MS) {
        DeviceStatus::Offline
    } else if running > 0 {
        DeviceStatus::Busy
    } else {
        DeviceStatus::Online
    }
}

/// The calling owner's devices: online, busy or offline, what they offer and their record.
#[utoipa::path(get, path = "/v1/owner/devices", tag = "accounts",
    security(("enrollment_token" = [])),
    responses((status = 200, body = OwnerDevices)))]
pub async fn owner_devices(
    State(grid): State<Arc<Grid>>,
    owner: Enroller,
) -> ApiResult<Json<OwnerDevices>> {
    let records = grid.store.owner_devices(owner.0).await?;
    let ids: Vec<_> = records.iter().map(|r| r.id).collect();
    let held = grid.queues.leases_held(&ids).await?;
    let earned = grid.store.earned_by_workers(&ids).await?;
    // The owner's account, not the sum over devices: it is what the ledger says they have.
    let total_earned = grid
        .store
        .balances(&[idlegrid_domain::Account::Owner(owner.0)])
        .await?[0];
    let now = idlegrid_storage::now_ms();
    let mut totals = DeviceTotals::default();
    let devices: Vec<Device> = records
        .into_iter()
        .zip(held)
        .zip(earned)
        .map(|((record, running), earned)| {
            // This coordinator's own view is fresher than the records, which are written in
            // batches; another coordinator's is in the records.
            let last_seen = record.last_seen_at.max(grid.presence.last_seen(record.id));
            let status = status(&record, last_seen, running, now);
            totals.devices += 1;
            totals.online += u64::from(matches!(status, DeviceStatus::Online | DeviceStatus::Busy));
            totals.valid += record.reputation.valid;
            totals.invalid += record.reputation.invalid;
            totals.timed_out += record.reputation.timed_out;
            Device {
                id: record.id,
                name: record.name,
                status,
                last_seen: last_seen.map(timestamp),
                registered_at: timestamp(record.registered_at),
                capabilities: record.capabilities,
                running,
                valid: record.reputation.valid,
                invalid: record.reputation.invalid,
                timed_out: record.reputation.timed_out,
                streak: record.reputation.streak,
                earned,
            }
        })
        .collect();
    totals.earned = total_earned;
    let name = grid.store.account_name(Principal::Owner(owner.0)).await?;
    Ok(Json(OwnerDevices {
        owner: OwnerInfo { id: owner.0, name },
        devices,
        totals,
    }))
}

/// Rename one of the calling owner's devices, or pause it (it finishes what it holds, then
/// gets no new work) or resume it.
#[utoipa::path(patch, path = "/v1/owner/devices/{id}", tag = "accounts", request_body = DeviceChange,
    params(("id" = i64, Path, description = "Device (worker) id")),
    security(("enrollment_token" = [])),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn change_device(
    State(grid): State<Arc<Grid>>,
    owner: Enroller,
    ApiPath(id): ApiPath<WorkerId>,
    ApiJson(change): ApiJson<DeviceChange>,
) -> ApiResult<StatusCode> {
    let name = change
        .name
        .as_deref()
        .map(|n| checked_name(n, "a device's name"))
        .transpose()?;
    if name.is_none() && change.paused.is_none() {
        return Err(ApiError::invalid(
            "nothing_to_change",
            "give a new `name`, or `paused`: true or false",
        ));
    }
    let mut found = true;
    if let Some(name) = name {
        found &= grid.store.rename_device(owner.0, id, name).await?;
    }
    if let Some(paused) = change.paused {
        found &= grid.store.set_device_paused(owner.0, id, paused).await?;
        if found {
            // Here at once; on the other coordinators with their next look at the records.
            grid.bench(id, paused.then_some(Benched::Paused));
        }
    }
    if !found {
        return Err(no_such_device(id));
    }
    grid.forget_device(id);
    Ok(StatusCode::NO_CONTENT)
}

fn no_such_device(id: WorkerId) -> ApiError {
    ApiError::not_found("no_such_device", format!("you have no device {id}"))
}

/// Remove one of the calling owner's devices: its token is revoked (it gets 401 from now on;
/// what it holds runs elsewhere when its lease ends), and it leaves the list. Its past results
/// and earnings stay.
#[utoipa::path(delete, path = "/v1/owner/devices/{id}", tag = "accounts",
    params(("id" = i64, Path, description = "Device (worker) id")),
    security(("enrollment_token" = [])),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn remove_device(
    State(grid): State<Arc<Grid>>,
    owner: Enroller,
    ApiPath(id): ApiPath<WorkerId>,
) -> ApiResult<StatusCode> {
    if !grid.store.remove_device(owner.0, id).await? {
        return Err(no_such_device(id));
    }
    grid.bench(id, Some(Benched::Removed));
    tracing::info!(owner = owner.0, device = %id, "device removed by its owner");
    Ok(StatusCode::NO_CONTENT)
}

/// Entries per page of an owner's earnings.
const EARNINGS_PAGE: u32 = 100;

/// Paging of an owner's earnings.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EarningsPage {
    /// Entries with ids below this (the previous page's `next_before`).
    before: Option<i64>,
}

fn earning_kind(txn: &str, amount: i64) -> EarningKind {
    match txn.split(':').next().unwrap_or("") {
        "pay" | "result" => EarningKind::Earned,
        "matured" if amount > 0 => EarningKind::Released,
        "matured" => EarningKind::Other,
        "revoked" => EarningKind::Revoked,
        "forfeit" => EarningKind::Forfeited,
        "payout" => EarningKind::Payout,
        _ => EarningKind::Other,
    }
}

/// The calling owner's money: balance, held earnings, payouts asked for, and the history of
/// each entry (naming the device, job and chunk a payment came from), newest first.
#[utoipa::path(get, path = "/v1/owner/earnings", tag = "accounts", params(EarningsPage),
    security(("enrollment_token" = [])),
    responses((status = 200, body = Earnings)))]
pub async fn earnings(
    State(grid): State<Arc<Grid>>,
    owner: Enroller,
    ApiQuery(page): ApiQuery<EarningsPage>,
) -> ApiResult<Json<Earnings>> {
    use idlegrid_domain::Account;
    let sums = grid
        .store
        .balances(&[Account::Owner(owner.0), Account::Held(owner.0)])
        .await?;
    let requested = grid.store.payouts_requested(owner.0).await?;
    let rows = grid
        .store
        .earnings(owner.0, page.before, EARNINGS_PAGE + 1)
        .await?;
    let more = rows.len() > EARNINGS_PAGE as usize;
    let entries: Vec<Earning> = rows
        .into_iter()
        .take(EARNINGS_PAGE as usize)
        .map(|row| Earning {
            id: row.id,
            kind: earning_kind(&row.txn, row.amount.0),
            held: row.held,
            amount: row.amount,
            at: timestamp(row.at),
            device: row.device,
            job: row.job,
            chunk_index: row.chunk,
            txn: row.txn,
        })
        .collect();
    Ok(Json(Earnings {
        balance: sums[0],
        held: sums[1],
        requested,
        available: Credits((sums[0].0 - requested.0).max(0)),
        next_before: more.then(|| entries.last().map(|e| e.id)).flatten(),
        entries,
        display: grid.config.credit_display.clone(),
    }))
}

/// The API's view of a payout.
pub fn payout_view(record: PayoutRecord) -> Payout {
    Payout {
        id: record.id,
        owner: record.owner,
        owner_name: record.owner_name,
        amount: record.amount,
        state: match record.state {
            PayoutState::Requested => idlegrid_api::accounts::PayoutState::Requested,
            PayoutState::Paid => idlegrid_api::accounts::PayoutState::Paid,
            PayoutState::Refused => idlegrid_api::accounts::PayoutState::Refused,
        },
        requested_at: timestamp(record.requested_at),
        settled_at: record.settled_at.map(timestamp),
        reference: record.reference,
        note: record.note,
    }
}

/// Ask to be paid out: at most the balance less payouts already asked for. An operator
/// settles it.
#[utoipa::path(post, path = "/v1/owner/payouts", tag = "accounts", request_body = PayoutRequest,
    security(("enrollment_token" = [])),
    responses((status = 201, body = Payout), (status = 422, body = ErrorBody)))]
pub async fn request_payout(
    State(grid): State<Arc<Grid>>,
    owner: Enroller,
    ApiJson(request): ApiJson<PayoutRequest>,
) -> ApiResult<(StatusCode, Json<Payout>)> {
    match grid.store.request_payout(owner.0, request.amount).await? {
        PayoutAsked::Asked(record) => {
            tracing::info!(
                owner = owner.0,
                amount = record.amount.0,
                "payout requested"
            );
            Ok((StatusCode::CREATED, Json(payout_view(record))))
        }
        PayoutAsked::Exceeds { available } => Err(ApiError::invalid(
            "payout_exceeds_balance",
            format!(
                "a payout must be more than 0 and at most what is available: {available} credits (your balance less payouts already asked for)"
            ),
        )),
    }
}

/// The calling owner's payouts, newest first.
#[utoipa::path(get, path = "/v1/owner/payouts", tag = "accounts",
    security(("enrollment_token" = [])),
    responses((status = 200, body = Payouts)))]
pub async fn owner_payouts(
    State(grid): State<Arc<Grid>>,
    owner: Enroller,
) -> ApiResult<Json<Payouts>> {
    let payouts = grid.store.payouts(Some(owner.0), None, 200).await?;
    Ok(Json(Payouts {
        payouts: payouts.into_iter().map(payout_view).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use idlegrid_domain::{Capabilities, WorkerId};
    use idlegrid_storage::records::Reputation;

    fn record(quarantined: bool) -> DeviceRecord {
        DeviceRecord {
            paused: false,
            id: WorkerId(1),
            name: "laptop".into(),
            capabilities: Capabilities::default(),
            registered_at: 0,
            last_seen_at: None,
            reputation: Reputation {
                quarantined_at_ms: quarantined.then_some(5),
                ..Default::default()
            },
        }
    }

    #[test]
    fn status_follows_last_contact_tasks_and_quarantine() {
        let now = 1_000_000;
        let fresh = Some(now - 1_000);
        let stale = Some(now - ONLINE_WITHIN_MS - 1);
        assert_eq!(status(&record(false), None, 0, now), DeviceStatus::Offline);
        assert_eq!(status(&record(false), stale, 3, now), DeviceStatus::Offline);
        assert_eq!(status(&record(false), fresh, 0, now), DeviceStatus::Online);
        assert_eq!(status(&record(false), fresh, 2, now), DeviceStatus::Busy);
        assert_eq!(
            status(&record(true), fresh, 2, now),
            DeviceStatus::Quarantined
        );
    }
}
