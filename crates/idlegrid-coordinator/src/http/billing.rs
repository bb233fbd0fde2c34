//! Billing: prices before a job runs (`POST /v1/jobs/estimate`), balances (`GET /v1/balance`),
//! credit paid in (`POST /v1/customers/{id}/deposits`, operators), and what a job has cost.
//!
//! The books themselves are kept by the records: the Partitioner holds a job's quote before any
//! chunk exists ([`crate::pipeline::partitioner`]), and the database pays each validated result and
//! releases what is left of a hold when its job ends, by triggers in the same transaction as
//! the verdict or the state change, so no path can accept a result without paying for it.

use crate::apps::plugin::{InputSize, PartitionError, Plan, Workload};
use crate::grid::Grid;
use crate::http::auth::{Anyone, Customer, Operator};
use crate::http::checks::check_preferences;
use crate::http::error::{ApiError, ApiJson, ApiPath, ApiResult};
use crate::http::views::{own_job, preferences_of};
use crate::pipeline::partitioner::insufficient;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use idlegrid_api::jobs::{
    Balance, BalanceEntry, Deposit, DepositReceipt, Estimate, EstimateRequest, TierEstimate,
};
use idlegrid_api::timestamp;
use idlegrid_api::{ErrorBody, TenantId};
use idlegrid_domain::pricing::{MICROS, quote};
use idlegrid_domain::schedule::{Capacity, eta_secs};
use idlegrid_domain::{Account, Credits, JobState, Replication, Tier};
use idlegrid_storage::records::{JobRecord, Principal};
use std::sync::Arc;

/// Largest single deposit: a million credits.
const MAX_DEPOSIT: i64 = 1_000_000 * MICROS;
/// Entries shown with a balance.
const ENTRIES_SHOWN: u32 = 50;
/// Seconds a job spends outside the devices (splitting, checking, joining), added to ETAs.
const FIXED_SECS: f64 = 5.0;

fn payment_required(message: String) -> ApiError {
    ApiError::new(
        StatusCode::PAYMENT_REQUIRED,
        "insufficient_balance",
        message,
    )
}

async fn balance_of(grid: &Grid, account: Account) -> ApiResult<Credits> {
    Ok(grid.store.balances(&[account]).await?[0])
}

/// Refuses to run a job its customer cannot pay for: the quote when the input's size alone
/// prices it, otherwise an empty balance. The Partitioner holds the exact quote later.
pub async fn check_affordable(grid: &Grid, job: &JobRecord) -> ApiResult<()> {
    let available = balance_of(grid, Account::Customer(job.spec.tenant)).await?;
    let Some(app) = grid.app_of(job).await? else {
        return Ok(());
    };
    // Cut as the Partitioner will cut it: on the grid as it is now.
    let plan = Plan::of(job, grid.capacity().await);
    let priced = job.input.as_ref().and_then(|input| {
        app.partitioner
            .workload(
                &job.spec.params,
                &job.spec.partition_options,
                &InputSize::Bytes(input.size),
                &plan,
            )
            .ok()
            .map(|w| app.with_steps(w))
    });
    match priced {
        Some(workload) => {
            let price = quote(
                job.spec.tier,
                workload.work_ms,
                workload.chunks,
                job.spec.replication.billed_copies(),
            )
            .price;
            if let Some(max) = job.spec.max_price
                && price > max
            {
                return Err(ApiError::invalid(
                    "over_max_price",
                    format!(
                        "the quote for this job is {price} credits, above its max_price of \
                         {max} credits; raise max_price or choose a cheaper tier"
                    ),
                ));
            }
            if available < price {
                return Err(payment_required(insufficient(price, available)));
            }
        }
        None if available.0 <= 0 => {
            return Err(payment_required(format!(
                "not enough credit: your balance is {available} credits; add credit before \
                 running a job"
            )));
        }
        None => {}
    }
    Ok(())
}

/// The work of running jobs at `tier` or above still to do, roughly: their queued and running
/// chunks, each counted as their largest.
async fn work_ahead(grid: &Grid, tier: Tier) -> ApiResult<i64> {
    let mut ahead = 0i64;
    for id in grid.schedule.jobs() {
        let Some(active) = grid.schedule.get(id) else {
            continue;
        };
        if active.tier.rank() < tier.rank() {
            continue;
        }
        let depth = grid.queues.job_depth(id).await?;
        ahead = ahead
            .saturating_add((depth.queued + depth.leased) as i64 * active.chunk_work_ms.max(0));
    }
    Ok(ahead)
}

fn tier_estimate(
    tier: Tier,
    workload: &Workload,
    replication: &Replication,
    ahead_ms: i64,
    capacity: Capacity,
) -> TierEstimate {
    let q = quote(
        tier,
        workload.work_ms,
        workload.chunks,
        replication.billed_copies(),
    );
    let eta = eta_secs(q.work_ms, ahead_ms, workload.largest_chunk_ms, capacity);
    TierEstimate {
        tier,
        price: q.price,
        price_credits: q.price.to_string(),
        eta_secs: eta.is_finite().then_some(eta + FIXED_SECS),
        chunks: workload.chunks,
        work_core_seconds: q.work_ms as f64 / 1000.0,
    }
}

/// Price and time of a job before it runs, for every tier, from the job's size and the grid's
/// current capacity. With `job`, the price is the one `run` will hold.
#[utoipa::path(post, path = "/v1/jobs/estimate", tag = "billing", request_body = EstimateRequest,
    security(("api_key" = [])),
    responses((status = 200, body = Estimate), (status = 404, body = ErrorBody),
              (status = 422, description = "the job or its input cannot be priced", body = ErrorBody)))]
pub async fn estimate(
    State(grid): State<Arc<Grid>>,
    customer: Customer,
    ApiJson(request): ApiJson<EstimateRequest>,
) -> ApiResult<Json<Estimate>> {
    let (app_name, params, options, preferences, size, exact) = match request.job {
        Some(id) => {
            let job = own_job(&grid, customer, id).await?;
            if job.input.is_none() {
                return Err(ApiError::conflict(
                    "missing_input",
                    format!("job {id} has no input yet: upload it, then ask for its estimate"),
                ));
            }
            let Some(app) = grid.app_of(&job).await? else {
                return Err(ApiError::invalid(
                    "unknown_app",
                    format!("app {:?} is no longer offered", job.spec.app),
                ));
            };
            let measured = crate::tools::in_stage(
                crate::tools::Stage::Partition,
                app.partitioner.measure(&job, grid.blobs.as_ref()),
            )
            .await;
            let size = match measured {
                Ok(size) => size,
                Err(PartitionError::Rejected(reason)) => {
                    // Running it would refuse it the same way.
                    crate::lifecycle::refuse_input(&grid, id, &format!("input rejected: {reason}"))
                        .await?;
                    return Err(ApiError::invalid(
                        "invalid_input",
                        format!(
                            "the input cannot be priced: {reason}; job {id} failed and its \
                             input was deleted"
                        ),
                    ));
                }
                Err(PartitionError::Storage(e)) => return Err(e.into()),
                Err(PartitionError::Stopped) => {
                    return Err(ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "stopping",
                        "the coordinator is stopping; ask again",
                    ));
                }
            };
            let preferences = preferences_of(&job);
            let spec = job.spec;
            (
                spec.app,
                spec.params,
                spec.partition_options,
                preferences,
                size,
                true,
            )
        }
        None => {
            let app = request.app.clone().ok_or_else(|| {
                ApiError::invalid(
                    "missing_app",
                    "say which app to price in `app`, or give a `job` of yours",
                )
            })?;
            check_preferences(&request.preferences)
                .map_err(|m| ApiError::invalid("invalid_preferences", m))?;
            let size = match (request.input_bytes, request.video) {
                (Some(bytes), None) => match request.input_lines {
                    Some(lines) => InputSize::Text { bytes, lines },
                    None => InputSize::Bytes(bytes),
                },
                (None, Some(v)) => {
                    let valid = (0.0..=86_400.0).contains(&v.duration_secs)
                        && v.duration_secs > 0.0
                        && (0.0..=240.0).contains(&v.fps)
                        && v.fps > 0.0
                        && (1..=16_384).contains(&v.width)
                        && (1..=16_384).contains(&v.height);
                    if !valid {
                        return Err(ApiError::invalid(
                            "invalid_input",
                            "video: duration_secs must be in (0, 86400], fps in (0, 240], \
                             width and height from 1 to 16384",
                        ));
                    }
                    InputSize::Video {
                        frames: (v.duration_secs * v.fps).round() as u64,
                        fps: v.fps,
                        width: v.width,
                        height: v.height,
                        audio_secs: if v.audio { v.duration_secs } else { 0.0 },
                    }
                }
                _ => {
                    return Err(ApiError::invalid(
                        "missing_input",
                        "describe the input by one of `job`, `input_bytes` or `video`",
                    ));
                }
            };
            let options = crate::apps::plugin::partition_options(
                request.chunk_lines,
                request.chunk_seconds,
                request.chunk_items,
            );
            (
                app,
                request.params,
                options,
                request.preferences,
                size,
                false,
            )
        }
    };
    let app = crate::http::apps_api::resolve_app(&grid, customer.0, &app_name)
        .await?
        .app;
    app.partitioner
        .check_job(&params, &options)
        .and_then(|()| crate::apps::published::check_params(&app.manifest, &params))
        .map_err(|m| ApiError::invalid("invalid_params", m))?;
    let (_, replication) = crate::http::checks::placement_and_replication(
        &grid,
        customer.0,
        &preferences,
        &app.manifest,
    )
    .await?;
    let capacity = grid.capacity().await;
    let mut tiers = Vec::with_capacity(Tier::ALL.len());
    for tier in Tier::ALL {
        let plan = Plan {
            tier,
            capacity,
            timeout_secs: preferences.task_timeout_secs,
        };
        let workload = app
            .partitioner
            .workload(&params, &options, &size, &plan)
            .map(|w| app.with_steps(w))
            .map_err(|m| ApiError::invalid("invalid_input", m))?;
        let ahead = work_ahead(&grid, tier).await?;
        tiers.push(tier_estimate(
            tier,
            &workload,
            &replication,
            ahead,
            capacity,
        ));
    }
    let chosen = tiers
        .iter()
        .find(|t| t.tier == preferences.tier)
        .cloned()
        .unwrap_or_else(|| tiers[0].clone());
    let balance = balance_of(&grid, Account::Customer(customer.0)).await?;
    let problem = match preferences.max_price {
        Some(max) if chosen.price > max => Some(format!(
            "the quote is {} credits, above max_price {max} credits",
            chosen.price
        )),
        _ if balance < chosen.price => Some(insufficient(chosen.price, balance)),
        _ => None,
    };
    let meets_deadline = match (preferences.deadline_secs, chosen.eta_secs) {
        (Some(deadline), Some(eta)) => Some(eta <= deadline as f64),
        _ => None,
    };
    let affordable = problem.is_none();
    let problem = match (problem, meets_deadline) {
        (None, Some(false)) => Some(format!(
            "the grid as it is now would take about {:.0} s, past the {} s deadline; choose \
             a faster tier or a later deadline",
            chosen.eta_secs.unwrap_or_default(),
            preferences.deadline_secs.unwrap_or_default()
        )),
        (problem, _) => problem,
    };
    Ok(Json(Estimate {
        quote: chosen,
        tiers,
        balance,
        affordable,
        problem,
        meets_deadline,
        devices_online: grid.presence.online(idlegrid_storage::now_ms()).len() as u64,
        slots: capacity.slots,
        exact,
    }))
}

/// The money side of whoever asks: a customer's balance and holds, an owner's earnings, the
/// platform's fees (operators, with whether the books balance), a device's earnings.
#[utoipa::path(get, path = "/v1/balance", tag = "billing",
    security(("api_key" = []), ("enrollment_token" = []), ("operator_key" = []), ("worker_token" = [])),
    responses((status = 200, body = Balance)))]
pub async fn balance(
    State(grid): State<Arc<Grid>>,
    Anyone(principal): Anyone,
) -> ApiResult<Json<Balance>> {
    let (kind, account) = match principal {
        Principal::Tenant(t) => ("customer", Account::Customer(t)),
        Principal::Owner(o) => ("owner", Account::Owner(o)),
        Principal::Operator(_) => ("operator", Account::PlatformFee),
        Principal::Worker(w) => {
            let earned = grid.store.earned_by_workers(&[w]).await?[0];
            return Ok(Json(Balance {
                kind: "device".into(),
                balance: earned,
                held: Credits::default(),
                entries: Vec::new(),
                books_balance: None,
                display: grid.config.credit_display.clone(),
            }));
        }
    };
    let balance = balance_of(&grid, account).await?;
    let held = match principal {
        Principal::Tenant(t) => {
            let running: Vec<Account> = grid
                .store
                .jobs_in_states(&[
                    JobState::Partitioning,
                    JobState::Running,
                    JobState::Assembling,
                ])
                .await?
                .into_iter()
                .filter(|j| j.spec.tenant == t)
                .map(|j| Account::Job(j.id))
                .collect();
            Credits(
                grid.store
                    .balances(&running)
                    .await?
                    .iter()
                    .map(|c| c.0)
                    .sum(),
            )
        }
        _ => Credits::default(),
    };
    let books_balance = match principal {
        Principal::Operator(_) => {
            let audit = grid.store.audit_ledger().await?;
            Some(audit.total.0 == 0 && audit.unbalanced == 0 && audit.over_quote == 0)
        }
        _ => None,
    };
    let entries = grid
        .store
        .account_entries(account, ENTRIES_SHOWN)
        .await?
        .into_iter()
        .map(|e| BalanceEntry {
            job: job_of_txn(&e.txn),
            txn: e.txn,
            amount: e.amount,
            at: timestamp(e.at),
        })
        .collect();
    Ok(Json(Balance {
        kind: kind.into(),
        balance,
        held,
        entries,
        books_balance,
        display: grid.config.credit_display.clone(),
    }))
}

/// The job a customer's ledger transaction was for: `hold:<job>` and `release:<job>`.
fn job_of_txn(txn: &str) -> Option<idlegrid_domain::JobId> {
    let (kind, rest) = txn.split_once(':')?;
    matches!(kind, "hold" | "release")
        .then(|| rest.parse().ok().map(idlegrid_domain::JobId))
        .flatten()
}

/// Credit a customer paid in (operators). Posted once per `reference`.
#[utoipa::path(post, path = "/v1/customers/{id}/deposits", tag = "billing", request_body = Deposit,
    params(("id" = i64, Path, description = "customer id (`GET /v1/me` shows it)")),
    security(("operator_key" = [])),
    responses((status = 200, body = DepositReceipt), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn deposit(
    State(grid): State<Arc<Grid>>,
    _operator: Operator,
    ApiPath(customer): ApiPath<TenantId>,
    ApiJson(deposit): ApiJson<Deposit>,
) -> ApiResult<Json<DepositReceipt>> {
    if !(1..=MAX_DEPOSIT).contains(&deposit.amount.0) {
        return Err(ApiError::invalid(
            "invalid_amount",
            format!(
                "amount must be from 1 to {MAX_DEPOSIT} micro-credits (a million credits), got {}",
                deposit.amount.0
            ),
        ));
    }
    let reference = deposit.reference.trim();
    if reference.is_empty() || reference.len() > 200 {
        return Err(ApiError::invalid(
            "invalid_reference",
            "reference must be 1 to 200 characters: your payment's reference",
        ));
    }
    if grid
        .store
        .account_name(Principal::Tenant(customer))
        .await?
        .is_none()
    {
        return Err(ApiError::not_found(
            "no_such_customer",
            format!("there is no customer {customer}"),
        ));
    }
    let posted = grid
        .store
        .transfer(
            &format!("deposit:{customer}:{reference}"),
            Account::ExternalDeposits,
            Account::Customer(customer),
            deposit.amount,
        )
        .await?;
    Ok(Json(DepositReceipt {
        posted,
        balance: balance_of(&grid, Account::Customer(customer)).await?,
    }))
}
