//! Accounts: what a secret stands for (`GET /v1/me`, the dashboard's sign-in), a device
//! owner's devices with their state and record (`GET /v1/owner/devices`), and new device
//! owners made by operators (`POST /v1/owners`).

use crate::grid::Grid;
use crate::http::auth::{Anyone, Enroller, Operator, hash_secret, new_secret};
use crate::http::error::{ApiError, ApiJson, ApiResult};
use crate::state::presence::ONLINE_WITHIN_MS;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use idlegrid_api::ErrorBody;
use idlegrid_api::accounts::{
    AccountKind, CreatedOwner, Device, DeviceStatus, DeviceTotals, Me, NewOwner, OwnerDevices,
    OwnerInfo,
};
use idlegrid_storage::records::{DeviceRecord, Principal};
use jiff::Timestamp;
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

/// Create a device owner, optionally part of a customer's account (its devices are then that
/// customer's own fleet). The answer holds the owner's enrollment token, shown this once.
#[utoipa::path(post, path = "/v1/owners", tag = "accounts", request_body = NewOwner,
    security(("operator_key" = [])),
    responses((status = 201, body = CreatedOwner), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn create_owner(
    State(grid): State<Arc<Grid>>,
    _operator: Operator,
    ApiJson(request): ApiJson<NewOwner>,
) -> ApiResult<(StatusCode, Json<CreatedOwner>)> {
    let name = request.name.trim();
    if name.is_empty() || name.len() > 200 || name.chars().any(idlegrid_domain::text::is_hidden) {
        return Err(ApiError::invalid(
            "invalid_name",
            "an owner's name must be 1 to 200 printable characters",
        ));
    }
    if let Some(customer) = request.customer
        && grid
            .store
            .account_name(Principal::Tenant(customer))
            .await?
            .is_none()
    {
        return Err(ApiError::invalid(
            "unknown_customer",
            format!("there is no customer {customer}"),
        ));
    }
    let token = new_secret("ige_");
    let Some(id) = grid
        .store
        .create_owner(name, request.customer, hash_secret(&token))
        .await?
    else {
        return Err(ApiError::conflict(
            "owner_exists",
            format!("there is already an owner named {name:?}"),
        ));
    };
    tracing::info!(owner = id, name, customer = ?request.customer, "device owner created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedOwner {
            id,
            name: name.to_string(),
            customer: request.customer,
            enrollment_token: token,
        }),
    ))
}

fn timestamp(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// A device's status from when it was last heard from and the tasks it holds.
fn status(
    record: &DeviceRecord,
    last_seen: Option<i64>,
    running: u64,
    now_ms: i64,
) -> DeviceStatus {
    if record.reputation.quarantined_at_ms.is_some() {
        DeviceStatus::Quarantined
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

#[cfg(test)]
mod tests {
    use super::*;
    use idlegrid_domain::{Capabilities, WorkerId};
    use idlegrid_storage::records::Reputation;

    fn record(quarantined: bool) -> DeviceRecord {
        DeviceRecord {
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
