//! Arguments of the account commands: `idlegrid keys`, `devices`, `earnings`, `payout` and
//! `admin`.

use clap::{Args, Subcommand};

/// Which coordinator an account command talks to, and with which secret.
#[derive(Debug, Clone, Args)]
pub struct AccountTarget {
    /// Coordinator URL (default: the grid started by `idlegrid local`).
    #[arg(long, env = "IDLEGRID_URL", global = true)]
    pub coordinator: Option<String>,
    /// The secret to act with: what the command names (an API key, an enrollment token or an
    /// operator key). Default: the local grid's of that kind.
    #[arg(
        long,
        env = "IDLEGRID_KEY",
        hide_env_values = true,
        value_name = "SECRET",
        global = true
    )]
    pub key: Option<String>,
    /// Print JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

/// `idlegrid keys`: the keys and sessions of the account whose secret is given (any kind).
#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: Option<KeysCommand>,
    #[command(flatten)]
    pub target: AccountTarget,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List the account's keys and sessions (never the secrets).
    List,
    /// Make a new key named NAME; it is printed this once.
    Create {
        /// What to call it, e.g. "ci runner".
        name: String,
    },
    /// Revoke a key or session by id: refused from the next request on, on every coordinator.
    Revoke {
        /// Its id (`idlegrid keys` lists them).
        id: i64,
    },
    /// Replace a key by a new one under the same name; the new one is printed this once.
    Rotate {
        /// Its id.
        id: i64,
    },
}

/// `idlegrid devices`: a device owner's devices (enrollment token in --key).
#[derive(Debug, Args)]
pub struct DevicesArgs {
    #[command(subcommand)]
    pub command: Option<DevicesCommand>,
    #[command(flatten)]
    pub target: AccountTarget,
}

#[derive(Debug, Subcommand)]
pub enum DevicesCommand {
    /// List your devices with their state, results and earnings.
    List,
    /// Rename a device.
    Rename {
        /// Device id.
        id: i64,
        /// Its new name.
        name: String,
    },
    /// Pause a device: it finishes what it holds, then gets no new work.
    Pause {
        /// Device id.
        id: i64,
    },
    /// Resume a paused device.
    Resume {
        /// Device id.
        id: i64,
    },
    /// Remove a device: its token is revoked; its past results and earnings stay.
    Remove {
        /// Device id.
        id: i64,
    },
}

/// `idlegrid earnings`: a device owner's balance and history (enrollment token in --key).
#[derive(Debug, Args)]
pub struct EarningsArgs {
    #[command(flatten)]
    pub target: AccountTarget,
}

/// `idlegrid payout AMOUNT`: ask to be paid out (enrollment token in --key).
#[derive(Debug, Args)]
pub struct PayoutArgs {
    /// Credits to be paid out, e.g. 12.5 (at most your balance less payouts asked for).
    #[arg(value_parser = idlegrid_domain::Credits::parse)]
    pub amount: idlegrid_domain::Credits,
    #[command(flatten)]
    pub target: AccountTarget,
}

/// `idlegrid admin`: operators' commands (operator key in --key).
#[derive(Debug, Args)]
pub struct AdminArgs {
    #[command(subcommand)]
    pub command: AdminCommand,
    #[command(flatten)]
    pub target: AccountTarget,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Customers: list, create, suspend, resume, delete, set quotas.
    #[command(subcommand)]
    Customers(AccountCommand),
    /// Device owners: list, create, suspend, resume, delete.
    #[command(subcommand)]
    Owners(AccountCommand),
    /// Every device on the grid.
    Devices {
        /// Only this owner's devices.
        #[arg(long)]
        owner: Option<i64>,
    },
    /// Every customer's jobs.
    Jobs {
        /// Only this customer's jobs.
        #[arg(long)]
        customer: Option<i64>,
        /// Only jobs in this state (e.g. running, failed).
        #[arg(long)]
        state: Option<String>,
    },
    /// Payouts owners asked for: list, pay, refuse.
    #[command(subcommand)]
    Payouts(PayoutsCommand),
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// List accounts (newest first).
    List {
        /// Only accounts in this state: active, suspended or deleted (default: all but deleted).
        #[arg(long)]
        state: Option<String>,
        /// Only names containing this.
        #[arg(long)]
        name: Option<String>,
    },
    /// Create an account; its first secret is printed this once.
    Create {
        /// Unique name.
        name: String,
        /// Owners only: the customer whose own fleet the owner's devices are.
        #[arg(long)]
        customer: Option<i64>,
    },
    /// Suspend an account: its secrets are refused and its devices get no work.
    Suspend {
        /// Account id.
        id: i64,
    },
    /// Resume a suspended account.
    Resume {
        /// Account id.
        id: i64,
    },
    /// Delete an account: secrets revoked, a customer's running jobs cancelled, an owner's
    /// devices removed; records kept for the books.
    Delete {
        /// Account id.
        id: i64,
    },
    /// Customers only: set quotas (each flag left out means no limit of its own).
    Quota {
        /// Customer id.
        id: i64,
        /// Jobs submitted and not yet ended at once.
        #[arg(long)]
        jobs: Option<u64>,
        /// Bytes kept: inputs, outputs and published app bundles.
        #[arg(long)]
        bytes: Option<u64>,
        /// Requests a second over all the customer's keys.
        #[arg(long)]
        rps: Option<u32>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PayoutsCommand {
    /// List payouts.
    List {
        /// Only payouts in this state: requested, paid or refused.
        #[arg(long)]
        state: Option<String>,
    },
    /// Mark a payout paid: the ledger moves it from the owner's balance.
    Pay {
        /// Payout id.
        id: i64,
        /// Your reference for the payment.
        #[arg(long)]
        reference: Option<String>,
    },
    /// Refuse a payout: nothing moves.
    Refuse {
        /// Payout id.
        id: i64,
        /// Why, for the owner.
        #[arg(long)]
        note: Option<String>,
    },
}
