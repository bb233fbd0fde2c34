//! Operators' endpoints: customers and device owners created, listed, suspended, resumed and
//! deleted; customers' quotas; every device and job on the grid, with filters; payouts settled.
//!
//! Suspending an account refuses its secrets at once on every coordinator (secrets are looked
//! up on each request) and keeps its devices from work (each coordinator's benched list,
//! here at once, elsewhere with the mirror's next look). Deleting one also ends a customer's
//! jobs and removes an owner's devices; its rows stay for the books.

use crate::grid::Grid;
use crate::http::accounts_api::{payout_view, status};
use crate::http::auth::{Operator, make_secret};
use crate::http::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::state::credentials::{API_KEY_PREFIX, ENROLLMENT_PREFIX, FIRST_SECRET};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use idlegrid_api::ErrorBody;
use idlegrid_api::accounts::{CreatedOwner, NewOwner, Payouts};
use idlegrid_api::admin::{
    AccountChange, AccountState, CreatedCustomer, Customer, Customers, GridDevice, GridDevices,
    GridJob, GridJobs, NewCustomer, Owner, Owners, Quotas, Settlement,
};
use idlegrid_api::timestamp;
use idlegrid_domain::{Account, JobId, JobState, TenantId};
use idlegrid_storage::records::{
    AccountFilter, AccountKind, AccountRecord, Benched, PayoutState, Settled, Standing,
};
use serde::Deserialize;
use std::sync::Arc;

/// Most rows of one list.
const MAX_LIST: u32 = 500;

/// A name an operator gives an account: 1 to 200 printable characters, trimmed.
pub fn account_name(name: &str) -> ApiResult<&str> {
    crate::http::checks::given_text(name, 200, "an account's name", "invalid_name")
}

fn state_of(standing: Standing) -> AccountState {
    match standing {
        Standing::Active => AccountState::Active,
        Standing::Suspended => AccountState::Suspended,
        Standing::Deleted => AccountState::Deleted,
    }
}

fn standing_of(state: AccountState) -> Standing {
    match state {
        AccountState::Active => Standing::Active,
        AccountState::Suspended => Standing::Suspended,
        AccountState::Deleted => Standing::Deleted,
    }
}

fn quotas_view(quotas: &idlegrid_storage::records::Quotas) -> Quotas {
    Quotas {
        max_running_jobs: quotas.max_running_jobs.map(|n| n.max(0) as u64),
        max_stored_bytes: quotas.max_stored_bytes.map(|n| n.max(0) as u64),
        requests_per_sec: quotas
            .requests_per_sec
            .map(|n| u32::try_from(n.max(0)).unwrap_or(u32::MAX)),
    }
}

fn checked_quotas(quotas: &Quotas) -> ApiResult<idlegrid_storage::records::Quotas> {
    const MAX_RATE: u32 = 100_000;
    if quotas
        .requests_per_sec
        .is_some_and(|r| r == 0 || r > MAX_RATE)
    {
        return Err(ApiError::invalid(
            "invalid_quotas",
            format!(
                "requests_per_sec must be from 1 to {MAX_RATE} (suspend the customer to stop it)"
            ),
        ));
    }
    let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    Ok(idlegrid_storage::records::Quotas {
        max_running_jobs: quotas.max_running_jobs.map(int),
        max_stored_bytes: quotas.max_stored_bytes.map(int),
        requests_per_sec: quotas.requests_per_sec.map(i64::from),
    })
}

async fn customer_view(grid: &Grid, record: AccountRecord) -> ApiResult<Customer> {
    let tenant = TenantId(record.id);
    let usage = grid.store.usage(tenant).await?;
    let balance = grid.store.balances(&[Account::Customer(tenant)]).await?[0];
    Ok(Customer {
        id: tenant,
        name: record.name,
        state: state_of(record.standing),
        created_at: timestamp(record.created_at),
        balance,
        running_jobs: usage.running_jobs,
        stored_bytes: usage.stored_bytes,
        quotas: quotas_view(&record.quotas),
    })
}

async fn owner_view(grid: &Grid, record: AccountRecord) -> ApiResult<Owner> {
    let balance = grid.store.balances(&[Account::Owner(record.id)]).await?[0];
    Ok(Owner {
        id: record.id,
        name: record.name,
        state: state_of(record.standing),
        created_at: timestamp(record.created_at),
        customer: record.customer,
        balance,
    })
}

/// Filters of the lists of accounts.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccountQuery {
    /// Only accounts in this state (default: active and suspended).
    state: Option<AccountState>,
    /// Only names containing this text (any case).
    name: Option<String>,
    /// Only ids below this (paging).
    before: Option<i64>,
    /// At most this many (default and most: 500).
    limit: Option<u32>,
}

impl AccountQuery {
    /// The filter, asking for one row more than the page holds (to tell whether another
    /// page follows), and the page's size.
    fn filter(self) -> (AccountFilter, usize) {
        let limit = self.limit.unwrap_or(MAX_LIST).clamp(1, MAX_LIST);
        let filter = AccountFilter {
            standing: self.state.map(standing_of),
            name: self.name,
            before: self.before,
            limit: limit + 1,
        };
        (filter, limit as usize)
    }
}

/// A page of `rows` (one more than `limit` fetched when another page follows) and the
/// `before` of the next page.
fn page<T>(mut rows: Vec<T>, limit: usize, id: impl Fn(&T) -> i64) -> (Vec<T>, Option<i64>) {
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = if more { rows.last().map(id) } else { None };
    (rows, next)
}

/// Customers, newest first.
#[utoipa::path(get, path = "/v1/admin/customers", tag = "operators", params(AccountQuery),
    security(("operator_key" = [])),
    responses((status = 200, body = Customers), (status = 403, body = ErrorBody)))]
pub async fn list_customers(
    State(grid): State<Arc<Grid>>,
    _operator: Operator,
    ApiQuery(query): ApiQuery<AccountQuery>,
) -> ApiResult<Json<Customers>> {
    let (filter, limit) = query.filter();
    let records = grid.store.accounts(AccountKind::Customer, &filter).await?;
    let (records, next_before) = page(records, limit, |r| r.id);
    let mut customers = Vec::with_capacity(records.len());
    for record in records {
        customers.push(customer_view(&grid, record).await?);
    }
    Ok(Json(Customers {
        customers,
        next_before,
    }))
}

/// Create a customer with the grid's opening credit and its first API key (shown this once).
#[utoipa::path(post, path = "/v1/admin/customers", tag = "operators", request_body = NewCustomer,
    security(("operator_key" = [])),
    responses((status = 201, body = CreatedCustomer), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn create_customer(
    State(grid): State<Arc<Grid>>,
    _operator: Operator,
    ApiJson(request): ApiJson<NewCustomer>,
) -> ApiResult<(StatusCode, Json<CreatedCustomer>)> {
    let name = account_name(&request.name)?;
    let quotas = checked_quotas(&request.quotas)?;
    let (api_key, id) = new_customer(&grid, name).await?;
    if quotas != Default::default() {
        grid.store.set_quotas(id, &quotas).await?;
    }
    let record = grid
        .store
        .account(AccountKind::Customer, id.0)
        .await?
        .ok_or_else(|| no_such(AccountKind::Customer, id.0))?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedCustomer {
            customer: customer_view(&grid, record).await?,
            api_key,
        }),
    ))
}

/// Makes a customer with its first key and the opening credit; the key and the id.
pub async fn new_customer(grid: &Grid, name: &str) -> ApiResult<(String, TenantId)> {
    let (api_key, stored) = make_secret(API_KEY_PREFIX, FIRST_SECRET, None);
    let Some(id) = grid
        .store
        .create_account(AccountKind::Customer, name, None, &stored)
        .await?
    else {
        return Err(name_taken(name));
    };
    let id = TenantId(id);
    grid.grant_opening_credit(id).await?;
    tracing::info!(customer = %id, name, "customer created");
    Ok((api_key, id))
}

/// Makes a device owner with its first enrollment token; the token and the id.
pub async fn new_owner(
    grid: &Grid,
    name: &str,
    customer: Option<TenantId>,
) -> ApiResult<(String, i64)> {
    let (token, stored) = make_secret(ENROLLMENT_PREFIX, FIRST_SECRET, None);
    let Some(id) = grid
        .store
        .create_account(AccountKind::Owner, name, customer, &stored)
        .await?
    else {
        return Err(name_taken(name));
    };
    tracing::info!(owner = id, name, customer = ?customer, "device owner created");
    Ok((token, id))
}

fn name_taken(name: &str) -> ApiError {
    ApiError::conflict(
        "name_taken",
        format!("there is already an account named {name:?}"),
    )
}

fn no_such(kind: AccountKind, id: i64) -> ApiError {
    match kind {
        AccountKind::Customer => {
            ApiError::not_found("no_such_customer", format!("there is no customer {id}"))
        }
        AccountKind::Owner => {
            ApiError::not_found("no_such_owner", format!("there is no device owner {id}"))
        }
    }
}

/// Device owners, newest first.
#[utoipa::path(get, path = "/v1/admin/owners", tag = "operators", params(AccountQuery),
    security(("operator_key" = [])),
    responses((status = 200, body = Owners), (status = 403, body = ErrorBody)))]
pub async fn list_owners(
    State(grid): State<Arc<Grid>>,
    _operator: Operator,
    ApiQuery(query): ApiQuery<AccountQuery>,
) -> ApiResult<Json<Owners>> {
    let (filter, limit) = query.filter();
    let records = grid.store.accounts(AccountKind::Owner, &filter).await?;
    let (records, next_before) = page(records, limit, |r| r.id);
    let mut owners = Vec::with_capacity(records.len());
    for record in records {
        owners.push(owner_view(&grid, record).await?);
    }
    Ok(Json(Owners {
        owners,
        next_before,
    }))
}

/// Create a device owner, optionally part of a customer's account (its devices are then that
/// customer's own fleet). The answer holds the owner's enrollment token, shown this once.
#[utoipa::path(post, path = "/v1/admin/owners", tag = "operators", request_body = NewOwner,
    security(("operator_key" = [])),
    responses((status = 201, body = CreatedOwner), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn create_owner(
    State(grid): State<Arc<Grid>>,
    _operator: Operator,
    ApiJson(request): ApiJson<NewOwner>,
) -> ApiResult<(StatusCode, Json<CreatedOwner>)> {
    let name = account_name(&request.name)?;
    if let Some(customer) = request.customer
        && grid
            .store
            .account(AccountKind::Customer, customer.0)
            .await?
            .is_none_or(|c| c.standing == Standing::Deleted)
    {
        return Err(ApiError::invalid(
            "unknown_customer",
            format!("there is no customer {customer}"),
        ));
    }
    let (enrollment_token, id) = new_owner(&grid, name, request.customer).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedOwner {
            id,
            name: name.to_string(),
            customer: request.customer,
            enrollment_token,
        }),
    ))
}

async fn change(
    grid: &Grid,
    kind: AccountKind,
    id: i64,
    change: &AccountChange,
) -> ApiResult<AccountRecord> {
    if change.suspended.is_none() && change.quotas.is_none() {
        return Err(ApiError::invalid(
            "nothing_to_change",
            "give `suspended` (true or false) or `quotas`",
        ));
    }
    grid.store
        .account(kind, id)
        .await?
        .filter(|r| r.standing != Standing::Deleted)
        .ok_or_else(|| no_such(kind, id))?;
    if let Some(quotas) = &change.quotas {
        if kind != AccountKind::Customer {
            return Err(ApiError::invalid(
                "quotas_for_customers",
                "quotas are set on customers, not device owners",
            ));
        }
        let quotas = checked_quotas(quotas)?;
        grid.store.set_quotas(TenantId(id), &quotas).await?;
    }
    if let Some(suspended) = change.suspended {
        grid.store.set_suspended(kind, id, suspended).await?;
        tracing::info!(kind = ?kind, id, suspended, "account standing changed by an operator");
        if kind == AccountKind::Owner {
            grid.set_benched(grid.store.benched_workers().await?);
        }
    }
    grid.store
        .account(kind, id)
        .await?
        .ok_or_else(|| no_such(kind, id))
}

/// Suspend or resume a customer (its keys are refused at once, on every coordinator), or set
/// its quotas.
#[utoipa::path(patch, path = "/v1/admin/customers/{id}", tag = "operators",
    request_body = AccountChange, params(("id" = i64, Path, description = "Customer id")),
    security(("operator_key" = [])),
    responses((status = 200, body = Customer), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn change_customer(
    State(grid): State<Arc<Grid>>,
    _operator: Operator,
    ApiPath(id): ApiPath<i64>,
    ApiJson(request): ApiJson<AccountChange>,
) -> ApiResult<Json<Customer>> {
    let record = change(&grid, AccountKind::Customer, id, &request).await?;
    Ok(Json(customer_view(&grid, record).await?))
}

/// Suspend or resume a device owner: their tokens are refused and their devices get no work.
#[utoipa::path(patch, path = "/v1/admin/owners/{id}", tag = "operators",
    request_body = AccountChange, params(("id" = i64, Path, description = "Owner id")),
    security(("operator_key" = [])),
    responses((status = 200, body = Owner), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn change_owner(
    State(grid): State<Arc<Grid>>,
    _operator: Operator,
    ApiPath(id): ApiPath<i64>,
    ApiJson(request): ApiJson<AccountChange>,
) -> ApiResult<Json<Owner>> {
    let record = change(&grid, AccountKind::Owner, id, &request).await?;
    Ok(Json(owner_view(&grid, record).await?))
}

/// Delete a customer: its jobs still running are cancelled, its keys revoked; its records stay
/// for the books.
#[utoipa::path(delete, path = "/v1/admin/customers/{id}", tag = "operators",
    params(("id" = i64, Path, description = "Customer id")),
    security(("operator_key" = [])),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_customer(
    State(grid): State<Arc<Grid>>,
    _operator: Operator,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    if !grid.store.delete_account(AccountKind::Customer, id).await? {
        return Err(no_such(AccountKind::Customer, id));
    }
    let mut before = None;
    loop {
        let jobs = grid
            .store
            .grid_jobs(Some(TenantId(id)), None, before, MAX_LIST)
            .await?;
        let Some((last, _)) = jobs.last() else { break };
        before = Some(last.id);
        for (job, _) in jobs.iter().filter(|(j, _)| !j.state.is_terminal()) {
            crate::lifecycle::end_job(&grid, job.id, JobState::Cancelled, None).await?;
        }
    }
    tracing::info!(customer = id, "customer deleted by an operator");
    Ok(StatusCode::NO_CONTENT)
}

/// Delete a device owner: their tokens are revoked and their devices removed; their records
/// and earnings stay for the books.
#[utoipa::path(delete, path = "/v1/admin/owners/{id}", tag = "operators",
    params(("id" = i64, Path, description = "Owner id")),
    security(("operator_key" = [])),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_owner(
    State(grid): State<Arc<Grid>>,
    _operator: Operator,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    if !grid.store.delete_account(AccountKind::Owner, id).await? {
        return Err(no_such(AccountKind::Owner, id));
    }
    grid.set_benched(grid.store.benched_workers().await?);
    tracing::info!(owner = id, "device owner deleted by an operator");
    Ok(StatusCode::NO_CONTENT)
}

/// Filters of the list of devices.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeviceQuery {
    /// Only this owner's devices.
    owner: Option<i64>,
    /// Only devices in this status.
    status: Option<idlegrid_api::accounts::DeviceStatus>,
}

/// Every device on the grid (not removed), oldest first.
#[utoipa::path(get, path = "/v1/admin/devices", tag = "operators", params(DeviceQuery),
    security(("operator_key" = [])),
    responses((status = 200, body = GridDevices), (status = 403, body = ErrorBody)))]
pub async fn list_devices(
    State(grid): State<Arc<Grid>>,
    _operator: Operator,
    ApiQuery(query): ApiQuery<DeviceQuery>,
) -> ApiResult<Json<GridDevices>> {
    let rows = grid.store.grid_devices(query.owner, 10_000).await?;
    let ids: Vec<_> = rows.iter().map(|(r, _, _)| r.id).collect();
    let held = grid.queues.leases_held(&ids).await?;
    let now = idlegrid_storage::now_ms();
    let devices = rows
        .into_iter()
        .zip(held)
        .map(|((record, owner, owner_name), running)| {
            let last_seen = record.last_seen_at.max(grid.presence.last_seen(record.id));
            let mut status = status(&record, last_seen, running, now);
            if matches!(
                grid.benched(record.id),
                Some(Benched::OwnerSuspended | Benched::Paused)
            ) && status != idlegrid_api::accounts::DeviceStatus::Quarantined
            {
                status = idlegrid_api::accounts::DeviceStatus::Paused;
            }
            GridDevice {
                id: record.id,
                name: record.name,
                owner,
                owner_name,
                status,
                last_seen: last_seen.map(timestamp),
                valid: record.reputation.valid,
                invalid: record.reputation.invalid,
            }
        })
        .filter(|d| query.status.is_none_or(|s| s == d.status))
        .take(MAX_LIST as usize)
        .collect();
    Ok(Json(GridDevices { devices }))
}

/// Filters of the list of jobs.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobQuery {
    /// Only this customer's jobs.
    customer: Option<i64>,
    /// Only jobs in this state.
    state: Option<JobState>,
    /// Only ids below this (paging).
    before: Option<JobId>,
    /// At most this many (default and most: 500).
    limit: Option<u32>,
}

/// Every customer's jobs, newest first.
#[utoipa::path(get, path = "/v1/admin/jobs", tag = "operators", params(JobQuery),
    security(("operator_key" = [])),
    responses((status = 200, body = GridJobs), (status = 403, body = ErrorBody)))]
pub async fn list_jobs(
    State(grid): State<Arc<Grid>>,
    _operator: Operator,
    ApiQuery(query): ApiQuery<JobQuery>,
) -> ApiResult<Json<GridJobs>> {
    let limit = query.limit.unwrap_or(MAX_LIST).clamp(1, MAX_LIST);
    let jobs = grid
        .store
        .grid_jobs(
            query.customer.map(TenantId),
            query.state,
            query.before,
            limit + 1,
        )
        .await?;
    let (jobs, next_before) = page(jobs, limit as usize, |(j, _)| j.id.0);
    Ok(Json(GridJobs {
        jobs: jobs
            .into_iter()
            .map(|(job, customer_name)| GridJob {
                id: job.id,
                customer: job.spec.tenant,
                customer_name,
                name: job.spec.name,
                app: job.spec.app,
                state: job.state,
                created_at: timestamp(job.created_at),
                tasks_done: job.chunks_done,
                tasks_total: job.chunks_total.unwrap_or(job.chunks_created),
                error: job.error,
            })
            .collect(),
        next_before: next_before.map(JobId),
    }))
}

/// Filters of the list of payouts.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PayoutQuery {
    /// Only this owner's payouts.
    owner: Option<i64>,
    /// Only payouts in this state (`requested`, `paid`, `refused`).
    state: Option<idlegrid_api::accounts::PayoutState>,
}

/// Payouts owners asked for, newest first.
#[utoipa::path(get, path = "/v1/admin/payouts", tag = "operators", params(PayoutQuery),
    security(("operator_key" = [])),
    responses((status = 200, body = Payouts), (status = 403, body = ErrorBody)))]
pub async fn list_payouts(
    State(grid): State<Arc<Grid>>,
    _operator: Operator,
    ApiQuery(query): ApiQuery<PayoutQuery>,
) -> ApiResult<Json<Payouts>> {
    let state = query.state.map(|s| match s {
        idlegrid_api::accounts::PayoutState::Requested => PayoutState::Requested,
        idlegrid_api::accounts::PayoutState::Paid => PayoutState::Paid,
        idlegrid_api::accounts::PayoutState::Refused => PayoutState::Refused,
    });
    let payouts = grid.store.payouts(query.owner, state, MAX_LIST).await?;
    Ok(Json(Payouts {
        payouts: payouts.into_iter().map(payout_view).collect(),
    }))
}

/// Settle a payout: paid (the ledger moves the amount from the owner's balance to the payouts
/// account, refused if the balance no longer covers it) or refused.
#[utoipa::path(post, path = "/v1/admin/payouts/{id}/settle", tag = "operators",
    request_body = Settlement, params(("id" = i64, Path, description = "Payout id")),
    security(("operator_key" = [])),
    responses((status = 200, body = idlegrid_api::accounts::Payout), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn settle_payout(
    State(grid): State<Arc<Grid>>,
    _operator: Operator,
    ApiPath(id): ApiPath<i64>,
    ApiJson(request): ApiJson<Settlement>,
) -> ApiResult<Json<idlegrid_api::accounts::Payout>> {
    use crate::http::checks::optional_text;
    let reference = optional_text(
        request.reference.as_deref(),
        200,
        "a reference",
        "invalid_text",
    )?;
    let note = optional_text(request.note.as_deref(), 200, "a note", "invalid_text")?;
    match grid
        .store
        .settle_payout(id, request.paid, reference.as_deref(), note.as_deref())
        .await?
    {
        Settled::Done(record) => {
            tracing::info!(payout = id, paid = request.paid, "payout settled");
            Ok(Json(payout_view(record)))
        }
        Settled::NotFound => Err(ApiError::not_found(
            "no_such_payout",
            format!("there is no payout {id}"),
        )),
        Settled::AlreadySettled(record) => Err(ApiError::conflict(
            "payout_settled",
            format!("payout {id} is already {}", record.state.as_str()),
        )),
        Settled::Exceeds { balance } => Err(ApiError::conflict(
            "payout_exceeds_balance",
            format!(
                "payout {id} is more than the owner's balance ({balance} credits) now; refuse it or wait"
            ),
        )),
    }
}
