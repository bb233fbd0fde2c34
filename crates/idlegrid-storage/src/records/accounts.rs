//! Accounts in the records: customers and device owners that operators create, suspend and
//! delete; the named secrets of every account (API keys, enrollment tokens, operator keys and
//! dashboard sessions: only their hashes); customers' quotas; owners' devices paused or
//! removed; owners' earnings and the payouts operators settle.
//!
//! Written once over the query layer for both engines ([`super::sql`]).

use super::Principal;
use super::rows::{self, Columns};
use super::sql::{Engine, On, SqlStore, args, sql};
use super::store::post;
use super::{DeviceRecord, JobRecord};
use crate::{Result, StorageError, now_ms};
use async_trait::async_trait;
use idlegrid_domain::{Account, Credits, JobId, JobState, TenantId, WorkerId};

/// The two kinds of account operators manage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountKind {
    /// A customer (tenant): pays for jobs.
    Customer,
    /// A device owner: lends devices, earns.
    Owner,
}

impl AccountKind {
    /// The principal of account `id` of this kind.
    pub fn principal(self, id: i64) -> Principal {
        match self {
            AccountKind::Customer => Principal::Tenant(TenantId(id)),
            AccountKind::Owner => Principal::Owner(id),
        }
    }
}

/// Whether an account may act.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// It may.
    Active,
    /// An operator suspended it: its secrets are refused with a reason, its devices get no
    /// work; it can be resumed.
    Suspended,
    /// An operator deleted it: its secrets are gone, its rows stay for the books.
    Deleted,
}

/// What an operator lets a customer use; `None`: the grid's default (no limit of its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Quotas {
    /// Jobs queued or running at once.
    pub max_running_jobs: Option<i64>,
    /// Bytes kept for the customer: inputs, outputs and published app bundles.
    pub max_stored_bytes: Option<i64>,
    /// Requests a second over all the customer's keys.
    pub requests_per_sec: Option<i64>,
}

/// A customer or device owner as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecord {
    /// Id (a customer's is its tenant id).
    pub id: i64,
    /// Its kind.
    pub kind: AccountKind,
    /// Unique name among its kind.
    pub name: String,
    /// When created (Unix ms).
    pub created_at: i64,
    /// Whether it may act.
    pub standing: Standing,
    /// A customer's quotas (owners have none).
    pub quotas: Quotas,
    /// An owner that is part of a customer's account: that customer.
    pub customer: Option<TenantId>,
}

/// Which accounts a list shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountFilter {
    /// Only accounts in this standing (`None`: all but deleted ones).
    pub standing: Option<Standing>,
    /// Only names containing this text (case-insensitive).
    pub name: Option<String>,
    /// Only ids below this (paging, newest first).
    pub before: Option<i64>,
    /// At most this many.
    pub limit: u32,
}

/// A secret to store: only its hash and what identifies it to people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSecret {
    /// SHA-256 of the secret.
    pub hash: [u8; 32],
    /// Its first characters, to recognise it by in lists.
    pub prefix: String,
    /// What its holder called it.
    pub name: String,
    /// A dashboard session's expiry (Unix ms); `None` for keys, which do not expire.
    pub session_expires_at: Option<i64>,
    /// A session's key: revoking or rotating it ends the session too.
    pub parent: Option<i64>,
}

/// A stored secret as its account sees it in a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRecord {
    /// Id, to revoke or rotate it by.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Its first characters.
    pub prefix: String,
    /// When created (Unix ms).
    pub created_at: i64,
    /// When last used (Unix ms), as far as written yet.
    pub last_used_at: Option<i64>,
    /// A dashboard session's expiry.
    pub session_expires_at: Option<i64>,
}

/// What a secret's hash authenticates, for the request holding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credential {
    /// The secret's id.
    pub id: i64,
    /// A session's key (`None` for keys).
    pub parent: Option<i64>,
    /// Who it authenticates.
    pub principal: Principal,
    /// Whether that account may act (workers: their owner's).
    pub standing: Standing,
    /// A customer's own limit of requests a second, if an operator set one.
    pub requests_per_sec: Option<i64>,
}

/// What revoking a secret did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// It is gone.
    Revoked,
    /// The account has no such secret.
    NotFound,
    /// It is the account's last key: revoking it would lock the account out (rotate it).
    LastKey,
}

/// How a device is kept from work, other than quarantine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Benched {
    /// Its owner paused it: it gets no new work until resumed.
    Paused,
    /// Its owner removed it: its token is revoked.
    Removed,
    /// Its owner's account is suspended or deleted.
    OwnerSuspended,
}

/// Where a payout request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayoutState {
    /// Waiting for an operator.
    Requested,
    /// Paid: the ledger moved the amount to the payouts account.
    Paid,
    /// Refused by an operator: nothing moved.
    Refused,
}

impl PayoutState {
    /// Lower-case name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            PayoutState::Requested => "requested",
            PayoutState::Paid => "paid",
            PayoutState::Refused => "refused",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "requested" => Ok(PayoutState::Requested),
            "paid" => Ok(PayoutState::Paid),
            "refused" => Ok(PayoutState::Refused),
            other => Err(StorageError::Corrupt(format!("payout state {other:?}"))),
        }
    }
}

/// A payout an owner asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoutRecord {
    /// Id.
    pub id: i64,
    /// The owner.
    pub owner: i64,
    /// The owner's name.
    pub owner_name: String,
    /// Amount.
    pub amount: Credits,
    /// Where it stands.
    pub state: PayoutState,
    /// When asked (Unix ms).
    pub requested_at: i64,
    /// When settled (Unix ms).
    pub settled_at: Option<i64>,
    /// The operator's reference for the payment (paid), if given.
    pub reference: Option<String>,
    /// The operator's note (refused, or paid).
    pub note: Option<String>,
}

/// What asking for a payout did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayoutAsked {
    /// Asked.
    Asked(PayoutRecord),
    /// More than the owner has left to ask for (balance less payouts still requested).
    Exceeds {
        /// What may still be asked for.
        available: Credits,
    },
}

/// What settling a payout did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Settled now.
    Done(PayoutRecord),
    /// No such payout.
    NotFound,
    /// Settled before.
    AlreadySettled(PayoutRecord),
    /// Paying it would take the owner's balance below zero (nothing moved).
    Exceeds {
        /// The owner's balance.
        balance: Credits,
    },
}

/// One entry of an owner's earnings history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EarningRecord {
    /// The journal row (paging).
    pub id: i64,
    /// The transaction, e.g. `pay:12`, `matured:90:3`, `payout:4`.
    pub txn: String,
    /// Whether the row is on the held account (earnings not yet verified).
    pub held: bool,
    /// Signed amount.
    pub amount: Credits,
    /// When (Unix ms).
    pub at: i64,
    /// The device it came from, if any.
    pub device: Option<String>,
    /// The job of the result paid or revoked.
    pub job: Option<JobId>,
    /// The chunk (0-based index) of that result.
    pub chunk: Option<u64>,
}

/// What a customer keeps and runs, against its quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Jobs submitted and not yet ended (`submitted`, `partitioning`, `running`,
    /// `assembling`).
    pub running_jobs: u64,
    /// Bytes of jobs' inputs and outputs kept, and of the app bundles the customer published.
    pub stored_bytes: u64,
}

/// Accounts in the records.
#[async_trait]
pub trait Accounts: Send + Sync + 'static {
    /// Creates a customer or device owner (an owner optionally part of `customer`'s account)
    /// with its first secret; `None` when the name is taken (nothing is created).
    async fn create_account(
        &self,
        kind: AccountKind,
        name: &str,
        customer: Option<TenantId>,
        first: &NewSecret,
    ) -> Result<Option<i64>>;
    /// One account.
    async fn account(&self, kind: AccountKind, id: i64) -> Result<Option<AccountRecord>>;
    /// Accounts of a kind, newest first.
    async fn accounts(
        &self,
        kind: AccountKind,
        filter: &AccountFilter,
    ) -> Result<Vec<AccountRecord>>;
    /// Suspends or resumes an account that is not deleted; `false` if there is none.
    async fn set_suspended(&self, kind: AccountKind, id: i64, suspended: bool) -> Result<bool>;
    /// Deletes an account: its secrets go (an owner's devices' too, and the devices are
    /// removed); its rows stay for the books. `false` if there is none or it was deleted.
    async fn delete_account(&self, kind: AccountKind, id: i64) -> Result<bool>;
    /// Sets a customer's quotas; `false` if there is no such customer.
    async fn set_quotas(&self, customer: TenantId, quotas: &Quotas) -> Result<bool>;
    /// What a customer keeps and runs now.
    async fn usage(&self, customer: TenantId) -> Result<Usage>;

    /// Stores the hash of a secret that authenticates `principal`; returns its id.
    async fn add_secret(&self, principal: Principal, secret: &NewSecret) -> Result<i64>;
    /// Looks a secret's hash up (expired sessions are not found).
    async fn credential(&self, secret_hash: [u8; 32]) -> Result<Option<Credential>>;
    /// The secrets of an account, oldest first (workers' tokens are never listed).
    async fn secrets(&self, principal: Principal) -> Result<Vec<SecretRecord>>;
    /// Revokes one of an account's secrets.
    async fn revoke_secret(&self, principal: Principal, id: i64) -> Result<Revoked>;
    /// Replaces one of an account's secrets by `new` under the same name, in one transaction;
    /// the new secret's id, or `None` if the account has no such secret.
    async fn rotate_secret(
        &self,
        principal: Principal,
        id: i64,
        new: &NewSecret,
    ) -> Result<Option<i64>>;
    /// Records when secrets were last used; a time never moves back.
    async fn touch_secrets(&self, used: &[(i64, i64)]) -> Result<()>;

    /// Renames an owner's device; `false` if the owner has no such device.
    async fn rename_device(&self, owner: i64, device: WorkerId, name: &str) -> Result<bool>;
    /// Pauses or resumes an owner's device; `false` if the owner has no such device.
    async fn set_device_paused(&self, owner: i64, device: WorkerId, paused: bool) -> Result<bool>;
    /// Removes an owner's device and revokes its token; `false` if the owner has no such device.
    async fn remove_device(&self, owner: i64, device: WorkerId) -> Result<bool>;
    /// Every device kept from work by its owner or its owner's standing.
    async fn benched_workers(&self) -> Result<Vec<(WorkerId, Benched)>>;

    /// Jobs of every customer (or one's), in one state or all, newest first, ids below
    /// `before`, each with its customer's name.
    async fn grid_jobs(
        &self,
        customer: Option<TenantId>,
        state: Option<JobState>,
        before: Option<JobId>,
        limit: u32,
    ) -> Result<Vec<(JobRecord, String)>>;
    /// Devices of every owner (or one's) not removed, oldest first, with their owner's id and
    /// name.
    async fn grid_devices(
        &self,
        owner: Option<i64>,
        limit: u32,
    ) -> Result<Vec<(DeviceRecord, i64, String)>>;

    /// An owner's earnings history, newest first: entries of their balance and held accounts
    /// with journal ids below `before`.
    async fn earnings(
        &self,
        owner: i64,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<EarningRecord>>;
    /// What an owner's payouts still requested add up to.
    async fn payouts_requested(&self, owner: i64) -> Result<Credits>;
    /// Asks for `amount` to be paid out, if the owner's balance less payouts still requested
    /// covers it.
    async fn request_payout(&self, owner: i64, amount: Credits) -> Result<PayoutAsked>;
    /// Payouts, newest first: one owner's or everyone's, in one state or all.
    async fn payouts(
        &self,
        owner: Option<i64>,
        state: Option<PayoutState>,
        limit: u32,
    ) -> Result<Vec<PayoutRecord>>;
    /// Settles a requested payout: paid (the ledger moves it from the owner to
    /// [`Account::Payouts`] as `payout:<id>`, never more than the owner's balance) or refused.
    async fn settle_payout(
        &self,
        id: i64,
        pay: bool,
        reference: Option<&str>,
        note: Option<&str>,
    ) -> Result<Settled>;
}

fn principal_key(principal: Principal) -> (&'static str, i64) {
    match principal {
        Principal::Tenant(t) => ("api_key", t.0),
        Principal::Owner(o) => ("enrollment", o),
        Principal::Worker(w) => ("worker", w.0),
        Principal::Operator(o) => ("operator", o),
    }
}

fn standing_of(suspended_at: Option<i64>, deleted_at: Option<i64>) -> Standing {
    if deleted_at.is_some() {
        Standing::Deleted
    } else if suspended_at.is_some() {
        Standing::Suspended
    } else {
        Standing::Active
    }
}

fn account_row(kind: AccountKind, row: &impl Columns) -> Result<AccountRecord> {
    let quotas = match kind {
        AccountKind::Customer => Quotas {
            max_running_jobs: row.int_opt("max_running_jobs")?,
            max_stored_bytes: row.int_opt("max_stored_bytes")?,
            requests_per_sec: row.int_opt("requests_per_sec")?,
        },
        AccountKind::Owner => Quotas::default(),
    };
    let customer = match kind {
        AccountKind::Owner => row.int_opt("tenant_id")?.map(TenantId),
        AccountKind::Customer => None,
    };
    Ok(AccountRecord {
        id: row.int("id")?,
        kind,
        name: row.text("name")?,
        created_at: row.int("created_at")?,
        standing: standing_of(row.int_opt("suspended_at")?, row.int_opt("deleted_at")?),
        quotas,
        customer,
    })
}

fn secret_row(row: &impl Columns) -> Result<SecretRecord> {
    Ok(SecretRecord {
        id: row.int("id")?,
        name: row.text("name")?,
        prefix: row.text("prefix")?,
        created_at: row.int("created_at")?,
        last_used_at: row.int_opt("last_used_at")?,
        session_expires_at: row.int_opt("expires_at")?,
    })
}

fn payout_row(row: &impl Columns) -> Result<PayoutRecord> {
    Ok(PayoutRecord {
        id: row.int("id")?,
        owner: row.int("owner_id")?,
        owner_name: row.text("owner_name")?,
        amount: Credits(row.int("amount")?),
        state: PayoutState::parse(&row.text("state")?)?,
        requested_at: row.int("requested_at")?,
        settled_at: row.int_opt("settled_at")?,
        reference: row.text_opt("reference")?,
        note: row.text_opt("note")?,
    })
}

/// Inserts a secret in `tx`.
async fn insert_secret<E: Engine>(
    tx: &mut E::Tx,
    principal: Principal,
    secret: &NewSecret,
) -> Result<i64> {
    let (kind, subject) = principal_key(principal);
    let row = E::optional(
        On::Tx(tx),
        sql!(
            "INSERT INTO credentials (secret_hash, kind, subject, created_at, name, prefix, \
             session, expires_at, parent_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             RETURNING id"
        ),
        args![
            secret.hash,
            kind,
            subject,
            now_ms(),
            secret.name.as_str(),
            secret.prefix.as_str(),
            secret.session_expires_at.is_some(),
            secret.session_expires_at,
            secret.parent
        ],
    )
    .await?
    .ok_or_else(|| StorageError::Backend("an insert returned no row".into()))?;
    row.int("id")
}

/// A payout by id, in `tx`, locked for settling.
async fn payout_in<E: Engine>(tx: &mut E::Tx, id: i64) -> Result<Option<PayoutRecord>> {
    E::optional(
        On::Tx(tx),
        sql!(
            "SELECT p.*, o.name AS owner_name FROM payouts p JOIN owners o \
             ON o.id = p.owner_id WHERE p.id = $1"[lock_all]
        ),
        args![id],
    )
    .await?
    .map(|row| payout_row(&row))
    .transpose()
}

/// What an owner's payouts still requested add up to.
async fn requested_payouts<E: Engine>(on: On<'_, E>, owner: i64) -> Result<i64> {
    let row = E::optional(
        on,
        sql!(
            "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS amount FROM payouts \
             WHERE owner_id = $1 AND state = 'requested'"
        ),
        args![owner],
    )
    .await?;
    row.map_or(Ok(0), |r| r.int("amount"))
}

/// An owner's balance in `tx`, its row locked first so payouts of one owner settle in turn.
async fn locked_owner_balance<E: Engine>(tx: &mut E::Tx, owner: i64) -> Result<i64> {
    E::optional(
        On::Tx(tx),
        sql!("SELECT id FROM owners WHERE id = $1"[lock_all]),
        args![owner],
    )
    .await?;
    let row = E::optional(
        On::Tx(tx),
        sql!(
            "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS amount FROM ledger_entries \
             WHERE account = $1"
        ),
        args![Account::Owner(owner).to_string()],
    )
    .await?;
    row.map_or(Ok(0), |r| r.int("amount"))
}

#[async_trait]
impl<E: Engine> Accounts for SqlStore<E> {
    async fn create_account(
        &self,
        kind: AccountKind,
        name: &str,
        customer: Option<TenantId>,
        first: &NewSecret,
    ) -> Result<Option<i64>> {
        let mut tx = self.engine.begin().await?;
        let now = now_ms();
        let row = match kind {
            AccountKind::Customer => {
                E::optional(
                    On::Tx(&mut tx),
                    sql!(
                        "INSERT INTO tenants (name, created_at) VALUES ($1, $2) \
                         ON CONFLICT (name) DO NOTHING RETURNING id"
                    ),
                    args![name, now],
                )
                .await?
            }
            AccountKind::Owner => {
                E::optional(
                    On::Tx(&mut tx),
                    sql!(
                        "INSERT INTO owners (name, tenant_id, created_at) VALUES ($1, $2, $3) \
                         ON CONFLICT (name) DO NOTHING RETURNING id"
                    ),
                    args![name, customer.map(|t| t.0), now],
                )
                .await?
            }
        };
        let Some(row) = row else {
            return Ok(None);
        };
        let id = row.int("id")?;
        insert_secret::<E>(&mut tx, kind.principal(id), first).await?;
        E::commit(tx).await?;
        Ok(Some(id))
    }

    async fn account(&self, kind: AccountKind, id: i64) -> Result<Option<AccountRecord>> {
        let sql = match kind {
            AccountKind::Customer => sql!("SELECT * FROM tenants WHERE id = $1"),
            AccountKind::Owner => sql!("SELECT * FROM owners WHERE id = $1"),
        };
        E::optional(On::Read(&self.engine), sql, args![id])
            .await?
            .map(|row| account_row(kind, &row))
            .transpose()
    }

    async fn accounts(
        &self,
        kind: AccountKind,
        filter: &AccountFilter,
    ) -> Result<Vec<AccountRecord>> {
        // Standing as a number: 0 all but deleted, 1 active, 2 suspended, 3 deleted.
        let standing: i64 = match filter.standing {
            None => 0,
            Some(Standing::Active) => 1,
            Some(Standing::Suspended) => 2,
            Some(Standing::Deleted) => 3,
        };
        let pattern = format!(
            "%{}%",
            filter
                .name
                .as_deref()
                .unwrap_or("")
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        macro_rules! listing {
            ($table:literal) => {
                sql!(
                    "SELECT * FROM " $table " WHERE id < $1 \
                     AND lower(name) LIKE $2 ESCAPE '\\' \
                     AND CASE $3 WHEN 0 THEN deleted_at IS NULL \
                        WHEN 1 THEN deleted_at IS NULL AND suspended_at IS NULL \
                        WHEN 2 THEN deleted_at IS NULL AND suspended_at IS NOT NULL \
                        ELSE deleted_at IS NOT NULL END \
                     ORDER BY id DESC LIMIT $4"
                )
            };
        }
        let sql = match kind {
            AccountKind::Customer => listing!("tenants"),
            AccountKind::Owner => listing!("owners"),
        };
        let rows = E::all(
            On::Read(&self.engine),
            sql,
            args![
                filter.before.unwrap_or(i64::MAX),
                pattern,
                standing,
                i64::from(filter.limit)
            ],
        )
        .await?;
        rows.iter().map(|row| account_row(kind, row)).collect()
    }

    async fn set_suspended(&self, kind: AccountKind, id: i64, suspended: bool) -> Result<bool> {
        let at = suspended.then(now_ms);
        let sql = match kind {
            AccountKind::Customer => {
                sql!("UPDATE tenants SET suspended_at = $2 WHERE id = $1 AND deleted_at IS NULL")
            }
            AccountKind::Owner => {
                sql!("UPDATE owners SET suspended_at = $2 WHERE id = $1 AND deleted_at IS NULL")
            }
        };
        Ok(E::execute(On::Write(&self.engine), sql, args![id, at]).await? > 0)
    }

    async fn delete_account(&self, kind: AccountKind, id: i64) -> Result<bool> {
        let mut tx = self.engine.begin().await?;
        let now = now_ms();
        let sql = match kind {
            AccountKind::Customer => {
                sql!("UPDATE tenants SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL")
            }
            AccountKind::Owner => {
                sql!("UPDATE owners SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL")
            }
        };
        if E::execute(On::Tx(&mut tx), sql, args![id, now]).await? == 0 {
            return Ok(false);
        }
        let (credential_kind, _) = principal_key(kind.principal(id));
        E::execute(
            On::Tx(&mut tx),
            sql!("DELETE FROM credentials WHERE kind = $1 AND subject = $2"),
            args![credential_kind, id],
        )
        .await?;
        if kind == AccountKind::Owner {
            E::execute(
                On::Tx(&mut tx),
                sql!(
                    "DELETE FROM credentials WHERE kind = 'worker' AND subject IN \
                     (SELECT id FROM workers WHERE owner_id = $1)"
                ),
                args![id],
            )
            .await?;
            E::execute(
                On::Tx(&mut tx),
                sql!(
                    "UPDATE workers SET removed_at = $2 WHERE owner_id = $1 \
                     AND removed_at IS NULL"
                ),
                args![id, now],
            )
            .await?;
            E::execute(
                On::Tx(&mut tx),
                sql!("DELETE FROM link_codes WHERE owner_id = $1"),
                args![id],
            )
            .await?;
        }
        E::commit(tx).await?;
        Ok(true)
    }

    async fn set_quotas(&self, customer: TenantId, quotas: &Quotas) -> Result<bool> {
        let changed = E::execute(
            On::Write(&self.engine),
            sql!(
                "UPDATE tenants SET max_running_jobs = $2, max_stored_bytes = $3, \
                 requests_per_sec = $4 WHERE id = $1 AND deleted_at IS NULL"
            ),
            args![
                customer.0,
                quotas.max_running_jobs,
                quotas.max_stored_bytes,
                quotas.requests_per_sec
            ],
        )
        .await?;
        Ok(changed > 0)
    }

    async fn usage(&self, customer: TenantId) -> Result<Usage> {
        let row = E::optional(
            On::Read(&self.engine),
            sql!(
                "SELECT CAST(COALESCE(SUM(CASE WHEN state IN \
                 ('submitted', 'partitioning', 'running', 'assembling') \
                 THEN 1 ELSE 0 END), 0) AS BIGINT) AS running, \
                 CAST(COALESCE(SUM(COALESCE(input_size, 0) + COALESCE(output_size, 0)), 0) \
                 AS BIGINT) AS stored, \
                 CAST(COALESCE((SELECT SUM(v.bundle_bytes) FROM app_versions v \
                 JOIN app_names n ON n.name = v.name WHERE n.tenant_id = $1), 0) AS BIGINT) \
                 AS bundles FROM jobs WHERE tenant_id = $1"
            ),
            args![customer.0],
        )
        .await?;
        let Some(row) = row else {
            return Ok(Usage::default());
        };
        Ok(Usage {
            running_jobs: row.int("running")?.max(0) as u64,
            stored_bytes: (row.int("stored")?.max(0) + row.int("bundles")?.max(0)) as u64,
        })
    }

    async fn add_secret(&self, principal: Principal, secret: &NewSecret) -> Result<i64> {
        let mut tx = self.engine.begin().await?;
        let id = insert_secret::<E>(&mut tx, principal, secret).await?;
        E::commit(tx).await?;
        Ok(id)
    }

    async fn credential(&self, secret_hash: [u8; 32]) -> Result<Option<Credential>> {
        let row = E::optional(
            On::Read(&self.engine),
            sql!(
                "SELECT c.id, c.kind, c.subject, c.expires_at, c.parent_id, \
                 COALESCE(t.suspended_at, o.suspended_at, wo.suspended_at) AS suspended_at, \
                 COALESCE(t.deleted_at, o.deleted_at, wo.deleted_at) AS deleted_at, \
                 t.requests_per_sec \
                 FROM credentials c \
                 LEFT JOIN tenants t ON c.kind = 'api_key' AND t.id = c.subject \
                 LEFT JOIN owners o ON c.kind = 'enrollment' AND o.id = c.subject \
                 LEFT JOIN workers w ON c.kind = 'worker' AND w.id = c.subject \
                 LEFT JOIN owners wo ON wo.id = w.owner_id \
                 WHERE c.secret_hash = $1"
            ),
            args![secret_hash],
        )
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        if row.int_opt("expires_at")?.is_some_and(|at| at <= now_ms()) {
            return Ok(None);
        }
        let subject = row.int("subject")?;
        let principal = match row.text("kind")?.as_str() {
            "api_key" => Principal::Tenant(TenantId(subject)),
            "enrollment" => Principal::Owner(subject),
            "worker" => Principal::Worker(WorkerId(subject)),
            "operator" => Principal::Operator(subject),
            other => return Err(StorageError::Corrupt(format!("credential kind {other:?}"))),
        };
        Ok(Some(Credential {
            id: row.int("id")?,
            parent: row.int_opt("parent_id")?,
            principal,
            standing: standing_of(row.int_opt("suspended_at")?, row.int_opt("deleted_at")?),
            requests_per_sec: row.int_opt("requests_per_sec")?,
        }))
    }

    async fn secrets(&self, principal: Principal) -> Result<Vec<SecretRecord>> {
        let (kind, subject) = principal_key(principal);
        if kind == "worker" {
            return Ok(Vec::new());
        }
        let rows = E::all(
            On::Read(&self.engine),
            sql!(
                "SELECT * FROM credentials WHERE kind = $1 AND subject = $2 \
                 AND (expires_at IS NULL OR expires_at > $3) ORDER BY id"
            ),
            args![kind, subject, now_ms()],
        )
        .await?;
        rows.iter().map(secret_row).collect()
    }

    async fn revoke_secret(&self, principal: Principal, id: i64) -> Result<Revoked> {
        let (kind, subject) = principal_key(principal);
        let mut tx = self.engine.begin().await?;
        let rows = E::all(
            On::Tx(&mut tx),
            sql!(
                "SELECT id, session FROM credentials WHERE kind = $1 AND subject = $2 \
                 AND (expires_at IS NULL OR expires_at > $3)"[lock_all]
            ),
            args![kind, subject, now_ms()],
        )
        .await?;
        let mut found = None;
        let mut keys = 0;
        for row in &rows {
            let session = row.flag("session")?;
            keys += usize::from(!session);
            if row.int("id")? == id {
                found = Some(session);
            }
        }
        match found {
            None => return Ok(Revoked::NotFound),
            Some(false) if keys <= 1 => return Ok(Revoked::LastKey),
            Some(_) => {}
        }
        // A key's sessions go with it.
        E::execute(
            On::Tx(&mut tx),
            sql!("DELETE FROM credentials WHERE id = $1 OR parent_id = $1"),
            args![id],
        )
        .await?;
        E::commit(tx).await?;
        Ok(Revoked::Revoked)
    }

    async fn rotate_secret(
        &self,
        principal: Principal,
        id: i64,
        new: &NewSecret,
    ) -> Result<Option<i64>> {
        let (kind, subject) = principal_key(principal);
        let mut tx = self.engine.begin().await?;
        let row = E::optional(
            On::Tx(&mut tx),
            sql!(
                "DELETE FROM credentials WHERE id = $1 AND kind = $2 AND subject = $3 \
                 AND session = $4 RETURNING name"
            ),
            args![id, kind, subject, false],
        )
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        E::execute(
            On::Tx(&mut tx),
            sql!("DELETE FROM credentials WHERE parent_id = $1"),
            args![id],
        )
        .await?;
        let named = NewSecret {
            name: row.text("name")?,
            ..new.clone()
        };
        let new_id = insert_secret::<E>(&mut tx, principal, &named).await?;
        E::commit(tx).await?;
        Ok(Some(new_id))
    }

    async fn touch_secrets(&self, used: &[(i64, i64)]) -> Result<()> {
        if used.is_empty() {
            return Ok(());
        }
        let mut tx = self.engine.begin().await?;
        for &(id, at) in used {
            E::execute(
                On::Tx(&mut tx),
                sql!(
                    "UPDATE credentials SET last_used_at = $2 WHERE id = $1 \
                     AND (last_used_at IS NULL OR last_used_at < $2)"
                ),
                args![id, at],
            )
            .await?;
        }
        E::commit(tx).await
    }

    async fn rename_device(&self, owner: i64, device: WorkerId, name: &str) -> Result<bool> {
        let changed = E::execute(
            On::Write(&self.engine),
            sql!(
                "UPDATE workers SET name = $3 WHERE id = $1 AND owner_id = $2 \
                 AND removed_at IS NULL"
            ),
            args![device.0, owner, name],
        )
        .await?;
        Ok(changed > 0)
    }

    async fn set_device_paused(&self, owner: i64, device: WorkerId, paused: bool) -> Result<bool> {
        let changed = E::execute(
            On::Write(&self.engine),
            sql!(
                "UPDATE workers SET paused_at = $3 WHERE id = $1 AND owner_id = $2 \
                 AND removed_at IS NULL"
            ),
            args![device.0, owner, paused.then(now_ms)],
        )
        .await?;
        Ok(changed > 0)
    }

    async fn remove_device(&self, owner: i64, device: WorkerId) -> Result<bool> {
        let mut tx = self.engine.begin().await?;
        let changed = E::execute(
            On::Tx(&mut tx),
            sql!(
                "UPDATE workers SET removed_at = $3 WHERE id = $1 AND owner_id = $2 \
                 AND removed_at IS NULL"
            ),
            args![device.0, owner, now_ms()],
        )
        .await?;
        if changed == 0 {
            return Ok(false);
        }
        E::execute(
            On::Tx(&mut tx),
            sql!("DELETE FROM credentials WHERE kind = 'worker' AND subject = $1"),
            args![device.0],
        )
        .await?;
        E::commit(tx).await?;
        Ok(true)
    }

    async fn benched_workers(&self) -> Result<Vec<(WorkerId, Benched)>> {
        let rows = E::all(
            On::Read(&self.engine),
            sql!(
                "SELECT w.id, w.paused_at, w.removed_at, o.suspended_at, o.deleted_at \
                 FROM workers w JOIN owners o ON o.id = w.owner_id \
                 WHERE w.paused_at IS NOT NULL OR w.removed_at IS NOT NULL \
                 OR o.suspended_at IS NOT NULL OR o.deleted_at IS NOT NULL"
            ),
            args![],
        )
        .await?;
        rows.iter()
            .map(|row| {
                let why = if row.int_opt("removed_at")?.is_some() {
                    Benched::Removed
                } else if row.int_opt("suspended_at")?.is_some()
                    || row.int_opt("deleted_at")?.is_some()
                {
                    Benched::OwnerSuspended
                } else {
                    Benched::Paused
                };
                Ok((WorkerId(row.int("id")?), why))
            })
            .collect()
    }

    async fn grid_jobs(
        &self,
        customer: Option<TenantId>,
        state: Option<JobState>,
        before: Option<JobId>,
        limit: u32,
    ) -> Result<Vec<(JobRecord, String)>> {
        let rows = E::all(
            On::Read(&self.engine),
            sql!(
                "SELECT j.*, t.name AS customer_name FROM jobs j JOIN tenants t \
                 ON t.id = j.tenant_id WHERE ($1 < 0 OR j.tenant_id = $1) \
                 AND ($2 = '' OR j.state = $2) AND j.id < $3 ORDER BY j.id DESC LIMIT $4"
            ),
            args![
                customer.map_or(-1, |c| c.0),
                state.map_or("", JobState::as_str),
                before.map_or(i64::MAX, |b| b.0),
                i64::from(limit)
            ],
        )
        .await?;
        rows.iter()
            .map(|row| Ok((rows::job(row)?, row.text("customer_name")?)))
            .collect()
    }

    async fn grid_devices(
        &self,
        owner: Option<i64>,
        limit: u32,
    ) -> Result<Vec<(DeviceRecord, i64, String)>> {
        let rows = E::all(
            On::Read(&self.engine),
            sql!(
                "SELECT w.id, w.name, w.capabilities, w.created_at, w.last_seen_at, \
                 w.valid_streak, w.quarantined_at, w.paused_at, w.owner_id, o.name AS owner_name, \
                 (SELECT count(*) FROM results WHERE worker_id = w.id \
                  AND validate_state IN ('valid', 'redundant')) AS valid, \
                 (SELECT count(*) FROM results WHERE worker_id = w.id \
                  AND validate_state = 'invalid') AS invalid, \
                 (SELECT count(*) FROM results WHERE worker_id = w.id \
                  AND outcome = 'no_reply') AS timed_out \
                 FROM workers w JOIN owners o ON o.id = w.owner_id \
                 WHERE ($1 < 0 OR w.owner_id = $1) AND w.removed_at IS NULL \
                 ORDER BY w.id LIMIT $2"
            ),
            args![owner.unwrap_or(-1), i64::from(limit)],
        )
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    rows::device(row)?,
                    row.int("owner_id")?,
                    row.text("owner_name")?,
                ))
            })
            .collect()
    }

    async fn earnings(
        &self,
        owner: i64,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<EarningRecord>> {
        let balance = Account::Owner(owner).to_string();
        let held = Account::Held(owner).to_string();
        let rows = E::all(
            On::Read(&self.engine),
            sql!(
                "SELECT e.id, e.txn, e.account, e.amount, e.at, w.name AS device, \
                 r.job_id, t.idx \
                 FROM ledger_entries e \
                 LEFT JOIN workers w ON w.id = e.worker_id \
                 LEFT JOIN results r ON r.id = CASE \
                    WHEN e.txn LIKE 'pay:%' THEN CAST(substr(e.txn, 5) AS BIGINT) \
                    WHEN e.txn LIKE 'result:%' THEN CAST(substr(e.txn, 8) AS BIGINT) \
                    WHEN e.txn LIKE 'revoked:%' THEN CAST(substr(e.txn, 9) AS BIGINT) END \
                 LEFT JOIN tasks t ON t.id = r.task_id \
                 WHERE e.account IN ($1, $2) AND e.id < $3 \
                 ORDER BY e.id DESC LIMIT $4"
            ),
            args![
                balance.clone(),
                held,
                before.unwrap_or(i64::MAX),
                i64::from(limit)
            ],
        )
        .await?;
        rows.iter()
            .map(|row| {
                Ok(EarningRecord {
                    id: row.int("id")?,
                    txn: row.text("txn")?,
                    held: row.text("account")? != balance,
                    amount: Credits(row.int("amount")?),
                    at: row.int("at")?,
                    device: row.text_opt("device")?,
                    job: row.int_opt("job_id")?.map(JobId),
                    chunk: row.int_opt("idx")?.map(|i| i.max(0) as u64),
                })
            })
            .collect()
    }

    async fn payouts_requested(&self, owner: i64) -> Result<Credits> {
        requested_payouts::<E>(On::Read(&self.engine), owner)
            .await
            .map(Credits)
    }

    async fn request_payout(&self, owner: i64, amount: Credits) -> Result<PayoutAsked> {
        let mut tx = self.engine.begin().await?;
        let balance = locked_owner_balance::<E>(&mut tx, owner).await?;
        let asked = requested_payouts::<E>(On::Tx(&mut tx), owner).await?;
        let available = (balance - asked).max(0);
        if amount.0 <= 0 || amount.0 > available {
            return Ok(PayoutAsked::Exceeds {
                available: Credits(available),
            });
        }
        let row = E::optional(
            On::Tx(&mut tx),
            sql!(
                "INSERT INTO payouts (owner_id, amount, state, requested_at) \
                 VALUES ($1, $2, 'requested', $3) RETURNING id"
            ),
            args![owner, amount.0, now_ms()],
        )
        .await?
        .ok_or_else(|| StorageError::Backend("an insert returned no row".into()))?;
        let record = payout_in::<E>(&mut tx, row.int("id")?)
            .await?
            .ok_or_else(|| StorageError::Backend("a payout just made is gone".into()))?;
        E::commit(tx).await?;
        Ok(PayoutAsked::Asked(record))
    }

    async fn payouts(
        &self,
        owner: Option<i64>,
        state: Option<PayoutState>,
        limit: u32,
    ) -> Result<Vec<PayoutRecord>> {
        let rows = E::all(
            On::Read(&self.engine),
            sql!(
                "SELECT p.*, o.name AS owner_name FROM payouts p JOIN owners o ON o.id = p.owner_id \
                 WHERE ($1 < 0 OR p.owner_id = $1) AND ($2 = '' OR p.state = $2) \
                 ORDER BY p.id DESC LIMIT $3"
            ),
            args![
                owner.unwrap_or(-1),
                state.map_or("", PayoutState::as_str),
                i64::from(limit)
            ],
        )
        .await?;
        rows.iter().map(payout_row).collect()
    }

    async fn settle_payout(
        &self,
        id: i64,
        pay: bool,
        reference: Option<&str>,
        note: Option<&str>,
    ) -> Result<Settled> {
        let mut tx = self.engine.begin().await?;
        let Some(payout) = payout_in::<E>(&mut tx, id).await? else {
            return Ok(Settled::NotFound);
        };
        if payout.state != PayoutState::Requested {
            return Ok(Settled::AlreadySettled(payout));
        }
        if pay {
            let balance = locked_owner_balance::<E>(&mut tx, payout.owner).await?;
            if payout.amount.0 > balance {
                return Ok(Settled::Exceeds {
                    balance: Credits(balance),
                });
            }
            post::<E>(
                &mut tx,
                &format!("payout:{id}"),
                &[
                    (Account::Owner(payout.owner).to_string(), -payout.amount.0),
                    (Account::Payouts.to_string(), payout.amount.0),
                ],
            )
            .await?;
        }
        let state = if pay {
            PayoutState::Paid
        } else {
            PayoutState::Refused
        };
        E::execute(
            On::Tx(&mut tx),
            sql!(
                "UPDATE payouts SET state = $2, settled_at = $3, reference = $4, note = $5 \
                 WHERE id = $1"
            ),
            args![id, state.as_str(), now_ms(), reference, note],
        )
        .await?;
        let settled = payout_in::<E>(&mut tx, id)
            .await?
            .ok_or_else(|| StorageError::Backend("a payout being settled is gone".into()))?;
        E::commit(tx).await?;
        Ok(Settled::Done(settled))
    }
}
