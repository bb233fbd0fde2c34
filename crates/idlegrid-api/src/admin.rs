//! Operators' wire types: customers and device owners to create, list, suspend and delete;
//! customers' quotas; every device and job on the grid; payouts to settle.

use crate::accounts::DeviceStatus;
use idlegrid_domain::{Credits, JobId, JobState, TenantId, WorkerId};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Whether an account may act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccountState {
    /// It may.
    Active,
    /// Suspended: its secrets are refused, its devices get no work, until resumed.
    Suspended,
    /// Deleted: its secrets are gone; its records stay for the books.
    Deleted,
}

/// A customer's quotas; `null`: no limit of its own (the grid's defaults hold).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Quotas {
    /// Jobs submitted and not yet ended, at once.
    #[serde(default)]
    pub max_running_jobs: Option<u64>,
    /// Bytes kept: inputs, outputs and published app bundles.
    #[serde(default)]
    pub max_stored_bytes: Option<u64>,
    /// Requests a second over all its keys (bursts of twice that).
    #[serde(default)]
    pub requests_per_sec: Option<u32>,
}

/// A customer, as operators see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Customer {
    /// Id.
    #[schema(value_type = i64)]
    pub id: TenantId,
    /// Unique name.
    pub name: String,
    /// Whether it may act.
    pub state: AccountState,
    /// When created.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// Spendable balance, micro-credits.
    #[schema(value_type = i64)]
    pub balance: Credits,
    /// Jobs submitted and not yet ended.
    pub running_jobs: u64,
    /// Bytes kept: inputs, outputs and published app bundles.
    pub stored_bytes: u64,
    /// Its quotas.
    pub quotas: Quotas,
}

/// A device owner, as operators see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Owner {
    /// Id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Whether it may act.
    pub state: AccountState,
    /// When created.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// The customer whose own fleet it is, if any.
    #[schema(value_type = Option<i64>)]
    pub customer: Option<TenantId>,
    /// Earnings on the balance, micro-credits.
    #[schema(value_type = i64)]
    pub balance: Credits,
}

/// `GET /v1/admin/customers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Customers {
    /// Newest first.
    pub customers: Vec<Customer>,
    /// Pass as `?before=` for the next page, if there is one.
    #[serde(default)]
    pub next_before: Option<i64>,
}

/// `GET /v1/admin/owners`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Owners {
    /// Newest first.
    pub owners: Vec<Owner>,
    /// Pass as `?before=` for the next page, if there is one.
    #[serde(default)]
    pub next_before: Option<i64>,
}

/// `POST /v1/admin/customers`: a new customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCustomer {
    /// Unique name, 1 to 200 printable characters.
    pub name: String,
    /// Its quotas (default: none of its own).
    #[serde(default)]
    pub quotas: Quotas,
}

/// A customer just created, with its first API key (shown this once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreatedCustomer {
    /// The customer.
    pub customer: Customer,
    /// Its API key: keep it, it is not shown again.
    pub api_key: String,
}

/// `PATCH /v1/admin/customers/{id}` and `/v1/admin/owners/{id}`: suspend or resume; set a
/// customer's quotas.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountChange {
    /// `true` suspends, `false` resumes.
    #[serde(default)]
    pub suspended: Option<bool>,
    /// A customer's new quotas (replacing all three).
    #[serde(default)]
    pub quotas: Option<Quotas>,
}

/// A device anywhere on the grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GridDevice {
    /// Worker id.
    pub id: WorkerId,
    /// Its name.
    pub name: String,
    /// Its owner.
    pub owner: i64,
    /// The owner's name.
    pub owner_name: String,
    /// Working, waiting, gone, paused or quarantined.
    pub status: DeviceStatus,
    /// When last heard from.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_seen: Option<Timestamp>,
    /// Results accepted.
    pub valid: u64,
    /// Results rejected.
    pub invalid: u64,
}

/// `GET /v1/admin/devices`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GridDevices {
    /// Oldest first.
    pub devices: Vec<GridDevice>,
}

/// A job anywhere on the grid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GridJob {
    /// Id.
    pub id: JobId,
    /// Its customer.
    #[schema(value_type = i64)]
    pub customer: TenantId,
    /// The customer's name.
    #[serde(default)]
    pub customer_name: String,
    /// What the customer called it.
    #[serde(default)]
    pub name: Option<String>,
    /// The app.
    pub app: String,
    /// Its state.
    pub state: JobState,
    /// When created.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// Chunks done of all.
    pub tasks_done: u64,
    /// Chunks in all.
    pub tasks_total: u64,
    /// Why it failed.
    pub error: Option<String>,
}

/// `GET /v1/admin/jobs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GridJobs {
    /// Newest first.
    pub jobs: Vec<GridJob>,
    /// Pass as `?before=` for the next page, if there is one.
    #[serde(default)]
    pub next_before: Option<JobId>,
}

/// `POST /v1/admin/payouts/{id}/settle`: pay or refuse a payout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Settlement {
    /// `true`: paid (the ledger moves it from the owner's balance, never more than that
    /// balance); `false`: refused.
    pub paid: bool,
    /// Your reference for the payment.
    #[serde(default)]
    pub reference: Option<String>,
    /// A note the owner sees.
    #[serde(default)]
    pub note: Option<String>,
}
