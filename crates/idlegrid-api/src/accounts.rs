//! Accounts wire types: what a secret stands for; the named secrets of an account; a device
//! owner's view of their devices, earnings and payouts; sign-up.

use idlegrid_domain::{Capabilities, Credits, JobId, WorkerId};
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
    /// Its owner paused it: it gets no new work until resumed.
    Paused,
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

/// `PATCH /v1/owner/devices/{id}`: rename a device, pause or resume it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceChange {
    /// A new name, 1 to 100 printable characters.
    #[serde(default)]
    pub name: Option<String>,
    /// `true` pauses it (it finishes what it holds, then gets no new work); `false` resumes it.
    #[serde(default)]
    pub paused: Option<bool>,
}

/// Whether a secret is a key (kept until revoked) or a dashboard session (expires).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecretKind {
    /// An API key, enrollment token or operator key.
    Key,
    /// A dashboard session, made by signing in.
    Session,
}

/// One of an account's secrets, as listed: never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SecretInfo {
    /// Id, to revoke or rotate it by.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Its first characters, to recognise it by.
    pub prefix: String,
    /// Key or session.
    pub kind: SecretKind,
    /// When it was made.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When it was last used (written within a minute or so).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<Timestamp>,
    /// When a session expires.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    /// Whether it is the secret this request was made with.
    pub current: bool,
}

/// `GET /v1/secrets`: the calling account's secrets, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Secrets {
    /// The secrets.
    pub secrets: Vec<SecretInfo>,
}

/// `POST /v1/secrets`: a new key for the calling account; `POST /v1/sessions`: a dashboard
/// session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSecret {
    /// What to call it, 1 to 100 printable characters (a session: defaults to "dashboard").
    #[serde(default)]
    pub name: Option<String>,
}

/// A secret just made: the only time it is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreatedSecret {
    /// What the list shows of it.
    #[serde(flatten)]
    pub info: SecretInfo,
    /// The secret: keep it, it is not shown again.
    pub secret: String,
}

/// What an entry of an owner's earnings was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EarningKind {
    /// Results accepted and paid.
    Earned,
    /// Held earnings verified and moved to the balance.
    Released,
    /// A payment taken back: its result's owner was caught forging.
    Revoked,
    /// Held earnings kept by the platform after forging was caught.
    Forfeited,
    /// Paid out.
    Payout,
    /// Anything else the books hold.
    Other,
}

/// One entry of an owner's earnings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Earning {
    /// Entry id (page with `?before=`).
    pub id: i64,
    /// What it was.
    pub kind: EarningKind,
    /// On the held account (earned but not yet verified) rather than the balance.
    pub held: bool,
    /// Signed amount, in micro-credits.
    #[schema(value_type = i64)]
    pub amount: Credits,
    /// When.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// The device it came from.
    pub device: Option<String>,
    /// The job of the result.
    #[schema(value_type = Option<i64>)]
    pub job: Option<JobId>,
    /// The chunk of that result (0-based, as `chunk_index` everywhere in the APIs); a payment
    /// covering several results of a job names the first.
    pub chunk_index: Option<u64>,
    /// The ledger transaction.
    pub txn: String,
}

/// `GET /v1/owner/earnings`: an owner's money and its history, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Earnings {
    /// Earnings on the balance (payouts come from it).
    #[schema(value_type = i64)]
    pub balance: Credits,
    /// Earnings held until verified.
    #[schema(value_type = i64)]
    pub held: Credits,
    /// Payouts asked for and not yet settled.
    #[schema(value_type = i64)]
    pub requested: Credits,
    /// What a new payout may ask for: balance less payouts requested.
    #[schema(value_type = i64)]
    pub available: Credits,
    /// Entries, newest first.
    pub entries: Vec<Earning>,
    /// Pass as `?before=` for the next page, if there is one.
    pub next_before: Option<i64>,
    /// How this grid shows credits to people.
    #[serde(default)]
    pub display: crate::jobs::CreditDisplay,
}

/// `POST /v1/owner/payouts`: ask to be paid out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayoutRequest {
    /// Micro-credits, more than zero and at most what is available.
    #[schema(value_type = i64)]
    pub amount: Credits,
}

/// Where a payout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PayoutState {
    /// Waiting for an operator.
    Requested,
    /// Paid out.
    Paid,
    /// Refused (nothing moved).
    Refused,
}

/// A payout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Payout {
    /// Id.
    pub id: i64,
    /// The owner.
    pub owner: i64,
    /// The owner's name.
    #[serde(default)]
    pub owner_name: String,
    /// Micro-credits.
    #[schema(value_type = i64)]
    pub amount: Credits,
    /// Where it stands.
    pub state: PayoutState,
    /// When asked.
    #[schema(value_type = String, format = DateTime)]
    pub requested_at: Timestamp,
    /// When settled.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub settled_at: Option<Timestamp>,
    /// The operator's payment reference.
    pub reference: Option<String>,
    /// The operator's note.
    pub note: Option<String>,
}

/// A list of payouts, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Payouts {
    /// The payouts.
    pub payouts: Vec<Payout>,
}

/// Which kind of account to sign up for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignupKind {
    /// A customer: runs jobs.
    Customer,
    /// A device owner: lends devices.
    Owner,
}

/// `GET /v1/signup`: which sign-ups this grid takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SignupOptions {
    /// Whether customers may sign up.
    pub customers: bool,
    /// Whether device owners may sign up.
    pub owners: bool,
    /// What a new customer starts with, in micro-credits.
    #[schema(value_type = i64)]
    pub opening_credit: Credits,
}

/// `POST /v1/signup`: a new account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Signup {
    /// Customer or owner.
    pub kind: SignupKind,
    /// A unique name, 1 to 100 printable characters.
    pub name: String,
}

/// An account just made, with its first secret (shown this once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SignedUp {
    /// Customer or owner.
    pub kind: SignupKind,
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Its first key (API key or enrollment token): keep it, it is not shown again.
    pub secret: String,
}
