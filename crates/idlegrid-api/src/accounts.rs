//! Accounts wire types: what a secret stands for, and a device owner's view of their devices.

use idlegrid_domain::{Capabilities, WorkerId};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The kinds of secret a coordinator knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    /// A customer's API key (Jobs API).
    Customer,
    /// A device owner's enrollment token (registers devices, lists them).
    Owner,
    /// An operator's key (watches the whole grid).
    Operator,
    /// A registered device's worker token (Tasks API).
    Worker,
}

/// `GET /v1/me`: what the secret in the request stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Me {
    /// Which kind of account.
    pub kind: AccountKind,
    /// The account's id (tenant, owner, operator or worker id).
    pub id: i64,
    /// The account's name (`null` for a worker).
    pub name: Option<String>,
}

/// `POST /v1/owners` (operator): a new device owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOwner {
    /// Unique name, 1 to 200 printable characters.
    pub name: String,
    /// The customer account the owner belongs to, if any: its devices become that customer's
    /// own fleet, and do not count as independent of each other's results.
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub customer: Option<idlegrid_domain::TenantId>,
}

/// A device owner just created, with its enrollment token (shown this once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreatedOwner {
    /// Owner id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// The customer account it belongs to, if any.
    #[schema(value_type = Option<i64>)]
    pub customer: Option<idlegrid_domain::TenantId>,
    /// The token its devices register with (`idlegrid worker --token`): keep it, it is not
    /// shown again.
    pub enrollment_token: String,
}

/// Whether a device is working, waiting for work, or gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeviceStatus {
    /// Heard from recently and running tasks.
    Busy,
    /// Heard from recently, no task right now.
    Online,
    /// Not heard from for a while (its owner stopped it, or it lost the network).
    Offline,
    /// Too many invalid results: it gets no more work.
    Quarantined,
}

/// One of an owner's devices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Device {
    /// Worker id.
    pub id: WorkerId,
    /// The name it registered with.
    pub name: String,
    /// Working, waiting, gone or quarantined.
    pub status: DeviceStatus,
    /// When a coordinator last heard from it.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_seen: Option<Timestamp>,
    /// When it registered.
    #[schema(value_type = String, format = DateTime)]
    pub registered_at: Timestamp,
    /// What it offers, with its benchmark score.
    pub capabilities: Capabilities,
    /// Tasks it holds right now.
    pub running: u64,
    /// Results accepted.
    pub valid: u64,
    /// Results rejected by a validator.
    pub invalid: u64,
    /// Tasks it took and never answered for.
    pub timed_out: u64,
    /// Its run of consecutive valid results (trust under adaptive replication).
    pub streak: u64,
    /// What its validated results have earned, in micro-credits.
    #[serde(default)]
    #[schema(value_type = i64)]
    pub earned: idlegrid_domain::Credits,
}

/// Sums over an owner's devices.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeviceTotals {
    /// Devices registered.
    pub devices: u64,
    /// Devices online or busy now.
    pub online: u64,
    /// Results accepted.
    pub valid: u64,
    /// Results rejected.
    pub invalid: u64,
    /// Tasks never answered for.
    pub timed_out: u64,
    /// Earnings so far over all devices, in micro-credits.
    #[serde(default)]
    #[schema(value_type = i64)]
    pub earned: idlegrid_domain::Credits,
}

/// A device owner's account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OwnerInfo {
    /// Owner id.
    pub id: i64,
    /// Owner name.
    pub name: Option<String>,
}

/// `GET /v1/owner/devices`: the calling owner's devices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OwnerDevices {
    /// The owner.
    pub owner: OwnerInfo,
    /// Their devices, oldest first.
    pub devices: Vec<Device>,
    /// Sums over them.
    pub totals: DeviceTotals,
}
