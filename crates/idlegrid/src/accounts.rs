//! The account commands: `idlegrid keys` (any account's keys and sessions), `devices`,
//! `earnings` and `payout` (device owners), `admin` (operators). Names and reasons that come
//! from other people are printed through `shown`, so they cannot move the cursor or hide text.

use crate::cli::accounts::{
    AccountCommand, AdminArgs, AdminCommand, DevicesArgs, DevicesCommand, EarningsArgs, KeysArgs,
    KeysCommand, PayoutArgs, PayoutsCommand,
};
use crate::output;
use crate::target::{self, Role};
use idlegrid_api::accounts::{
    CreatedSecret, DeviceChange, NewOwner, Payout, PayoutState, SecretKind,
};
use idlegrid_api::admin::{AccountChange, AccountState, NewCustomer, Quotas, Settlement};
use idlegrid_api::{JobState, TenantId, WorkerId};
use idlegrid_client::AccountListing;
use idlegrid_domain::text::shown;
use std::fmt::Write;
use std::process::ExitCode;

fn print(
    json: bool,
    value: &impl serde::Serialize,
    text: impl FnOnce() -> String,
) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", output::json(value)?);
    } else {
        print!("{}", text());
    }
    Ok(ExitCode::SUCCESS)
}

fn when(at: Option<jiff::Timestamp>) -> String {
    at.map_or_else(
        || "never".into(),
        |t| t.strftime("%Y-%m-%d %H:%M").to_string(),
    )
}

fn created_secret(made: &CreatedSecret, what: &str) -> String {
    format!(
        "{what} {} ({:?}, id {}): {}\nkeep it now: it is not shown again\n",
        made.info.prefix, made.info.name, made.info.id, made.secret
    )
}

/// `idlegrid keys`.
pub async fn keys(args: KeysArgs) -> anyhow::Result<ExitCode> {
    let client = target::account(&args.target, Role::Customer).await?;
    let json = args.target.json;
    match args.command.unwrap_or(KeysCommand::List) {
        KeysCommand::List => {
            let secrets = client.secrets().await?;
            print(json, &secrets, || {
                let mut s = format!(
                    "{:>5}  {:<14}  {:<8}  {:<16}  {:<16}  {}\n",
                    "ID", "STARTS", "KIND", "CREATED", "LAST USED", "NAME"
                );
                for k in &secrets.secrets {
                    let kind = match k.kind {
                        SecretKind::Key => "key",
                        SecretKind::Session => "session",
                    };
                    let _ = writeln!(
                        s,
                        "{:>5}  {:<14}  {:<8}  {:<16}  {:<16}  {}{}",
                        k.id,
                        k.prefix,
                        kind,
                        when(Some(k.created_at)),
                        when(k.last_used_at),
                        shown(&k.name),
                        if k.current { "  (this one)" } else { "" }
                    );
                }
                s
            })
        }
        KeysCommand::Create { name } => {
            let made = client.create_secret(&name).await?;
            print(json, &made, || created_secret(&made, "new key"))
        }
        KeysCommand::Revoke { id } => {
            client.revoke_secret(id).await?;
            print(json, &serde_json::json!({"revoked": id}), || {
                format!("revoked secret {id}: it is refused from now on\n")
            })
        }
        KeysCommand::Rotate { id } => {
            let made = client.rotate_secret(id).await?;
            print(json, &made, || {
                format!(
                    "secret {id} is revoked; {}",
                    created_secret(&made, "its replacement")
                )
            })
        }
    }
}

/// `idlegrid devices`.
pub async fn devices(args: DevicesArgs) -> anyhow::Result<ExitCode> {
    let client = target::account(&args.target, Role::Owner).await?;
    let json = args.target.json;
    let change = |name: Option<String>, paused: Option<bool>| DeviceChange { name, paused };
    let (id, done) = match args.command.unwrap_or(DevicesCommand::List) {
        DevicesCommand::List => {
            let devices = client.owner_devices().await?;
            return print(json, &devices, || {
                let mut s = format!(
                    "{:>5}  {:<12}  {:>7}  {:>7}  {:>16}  {:<16}  {}\n",
                    "ID", "STATUS", "VALID", "INVALID", "EARNED", "LAST SEEN", "NAME"
                );
                for d in &devices.devices {
                    let status = serde_json::to_value(d.status).unwrap_or_default();
                    let _ = writeln!(
                        s,
                        "{:>5}  {:<12}  {:>7}  {:>7}  {:>16}  {:<16}  {}",
                        d.id.0,
                        status.as_str().unwrap_or("?"),
                        d.valid,
                        d.invalid,
                        d.earned.to_string(),
                        when(d.last_seen),
                        shown(&d.name)
                    );
                }
                let _ = writeln!(
                    s,
                    "{} online; earned {} credits in all",
                    output::counted(devices.totals.devices, "device", "devices"),
                    devices.totals.earned
                );
                s
            });
        }
        DevicesCommand::Rename { id, name } => {
            client
                .change_device(WorkerId(id), &change(Some(name.clone()), None))
                .await?;
            (id, format!("renamed to {:?}", shown(name.trim())))
        }
        DevicesCommand::Pause { id } => {
            client
                .change_device(WorkerId(id), &change(None, Some(true)))
                .await?;
            (
                id,
                "paused: it finishes what it holds, then gets no new work".into(),
            )
        }
        DevicesCommand::Resume { id } => {
            client
                .change_device(WorkerId(id), &change(None, Some(false)))
                .await?;
            (id, "resumed".into())
        }
        DevicesCommand::Remove { id } => {
            client.remove_device(WorkerId(id)).await?;
            (id, "removed: its token is revoked".into())
        }
    };
    print(
        json,
        &serde_json::json!({"device": id, "done": done}),
        || format!("device {id} {done}\n"),
    )
}

/// `idlegrid earnings`.
pub async fn earnings(args: EarningsArgs) -> anyhow::Result<ExitCode> {
    let client = target::account(&args.target, Role::Owner).await?;
    let earnings = client.earnings(None).await?;
    print(args.target.json, &earnings, || {
        let show = |c: idlegrid_domain::Credits| earnings.display.show(c.0);
        let mut s = format!(
            "balance {}; held until verified {}; payouts asked for {}; available {}\n",
            show(earnings.balance),
            show(earnings.held),
            show(earnings.requested),
            show(earnings.available)
        );
        for e in &earnings.entries {
            let what = serde_json::to_value(e.kind).unwrap_or_default();
            let source = match (e.job, e.chunk_index) {
                (Some(job), Some(chunk)) => format!("job {job}, chunk {}", chunk + 1),
                (Some(job), None) => format!("job {job}"),
                _ => String::new(),
            };
            let _ = writeln!(
                s,
                "  {}  {:<9}{}  {:>16}  {}  {}",
                e.at.strftime("%Y-%m-%d %H:%M"),
                what.as_str().unwrap_or("?"),
                if e.held { " (held)" } else { "       " },
                e.amount.to_string(),
                source,
                e.device.as_deref().map(shown).unwrap_or_default()
            );
        }
        s
    })
}

/// `idlegrid payout AMOUNT`.
pub async fn payout(args: PayoutArgs) -> anyhow::Result<ExitCode> {
    let client = target::account(&args.target, Role::Owner).await?;
    let payout = client.request_payout(args.amount).await?;
    print(args.target.json, &payout, || {
        format!(
            "payout {} of {} credits requested; an operator settles it\n",
            payout.id, payout.amount
        )
    })
}

fn parse_state<T: serde::de::DeserializeOwned>(
    value: Option<&str>,
    what: &str,
    choices: &str,
) -> anyhow::Result<Option<T>> {
    value
        .map(|v| {
            serde_json::from_value(serde_json::Value::String(v.to_string()))
                .map_err(|_| anyhow::anyhow!("{v:?} is not a {what}: {choices}"))
        })
        .transpose()
}

fn payout_line(p: &Payout) -> String {
    let state = serde_json::to_value(p.state).unwrap_or_default();
    format!(
        "{:>5}  owner {:<5}  {:>16}  {:<9}  {}  {}{}\n",
        p.id,
        p.owner,
        p.amount.to_string(),
        state.as_str().unwrap_or("?"),
        p.requested_at.strftime("%Y-%m-%d %H:%M"),
        p.reference.as_deref().map(shown).unwrap_or_default(),
        p.note
            .as_deref()
            .map(|n| format!(" ({})", shown(n)))
            .unwrap_or_default()
    )
}

/// `idlegrid admin`.
pub async fn admin(args: AdminArgs) -> anyhow::Result<ExitCode> {
    let client = target::account(&args.target, Role::Operator).await?;
    let json = args.target.json;
    match args.command {
        AdminCommand::Customers(command) => customers(&client, command, json).await,
        AdminCommand::Owners(command) => owners(&client, command, json).await,
        AdminCommand::Devices { owner } => {
            let devices = client.grid_devices(owner).await?;
            print(json, &devices, || {
                let mut s = format!(
                    "{:>5}  {:<12}  {:>7}  {:>7}  {:<24}  {}\n",
                    "ID", "STATUS", "VALID", "INVALID", "OWNER", "NAME"
                );
                for d in &devices.devices {
                    let status = serde_json::to_value(d.status).unwrap_or_default();
                    let _ = writeln!(
                        s,
                        "{:>5}  {:<12}  {:>7}  {:>7}  {:<24}  {}",
                        d.id.0,
                        status.as_str().unwrap_or("?"),
                        d.valid,
                        d.invalid,
                        format!("{} {}", d.owner, shown(&d.owner_name)),
                        shown(&d.name)
                    );
                }
                s
            })
        }
        AdminCommand::Jobs { customer, state } => {
            let state: Option<JobState> = parse_state(
                state.as_deref(),
                "job state",
                "created, submitted, partitioning, running, assembling, completed, failed or cancelled",
            )?;
            let jobs = client.grid_jobs(customer.map(TenantId), state).await?;
            print(json, &jobs, || {
                let mut s = format!(
                    "{:>6}  {:>8}  {:<12}  {:<14}  {:>11}  {}\n",
                    "ID", "CUSTOMER", "STATE", "APP", "CHUNKS", "CREATED"
                );
                for j in &jobs.jobs {
                    let _ = writeln!(
                        s,
                        "{:>6}  {:>8}  {:<12}  {:<14}  {:>11}  {}",
                        j.id,
                        j.customer.0,
                        j.state.as_str(),
                        shown(&j.app),
                        format!("{}/{}", j.tasks_done, j.tasks_total),
                        j.created_at.strftime("%Y-%m-%d %H:%M")
                    );
                }
                s
            })
        }
        AdminCommand::Payouts(command) => match command {
            PayoutsCommand::List { state } => {
                let state: Option<PayoutState> = parse_state(
                    state.as_deref(),
                    "payout state",
                    "requested, paid or refused",
                )?;
                let payouts = client.payouts(state).await?;
                print(json, &payouts, || {
                    let mut s = String::new();
                    for p in &payouts.payouts {
                        s.push_str(&payout_line(p));
                    }
                    if s.is_empty() {
                        s.push_str("no payouts\n");
                    }
                    s
                })
            }
            PayoutsCommand::Pay { id, reference } => {
                let settled = client
                    .settle_payout(
                        id,
                        &Settlement {
                            paid: true,
                            reference,
                            note: None,
                        },
                    )
                    .await?;
                print(json, &settled, || {
                    format!("paid: {}", payout_line(&settled))
                })
            }
            PayoutsCommand::Refuse { id, note } => {
                let settled = client
                    .settle_payout(
                        id,
                        &Settlement {
                            paid: false,
                            reference: None,
                            note,
                        },
                    )
                    .await?;
                print(json, &settled, || {
                    format!("refused: {}", payout_line(&settled))
                })
            }
        },
    }
}

fn state_name(state: AccountState) -> &'static str {
    match state {
        AccountState::Active => "active",
        AccountState::Suspended => "suspended",
        AccountState::Deleted => "deleted",
    }
}

fn listing(state: Option<&str>, name: Option<String>) -> anyhow::Result<AccountListing> {
    Ok(AccountListing {
        state: parse_state(state, "account state", "active, suspended or deleted")?,
        name,
    })
}

fn suspension(suspended: bool) -> AccountChange {
    AccountChange {
        suspended: Some(suspended),
        quotas: None,
    }
}

fn limit(n: Option<u64>) -> String {
    n.map_or_else(|| "-".into(), |n| n.to_string())
}

async fn customers(
    client: &idlegrid_client::Client,
    command: AccountCommand,
    json: bool,
) -> anyhow::Result<ExitCode> {
    match command {
        AccountCommand::List { state, name } => {
            let list = client.customers(&listing(state.as_deref(), name)?).await?;
            print(json, &list, || {
                let mut s = format!(
                    "{:>5}  {:<9}  {:>16}  {:>4}  {:>12}  {:<16}  {}\n",
                    "ID", "STATE", "BALANCE", "JOBS", "BYTES", "QUOTAS j/B/rps", "NAME"
                );
                for c in &list.customers {
                    let q = &c.quotas;
                    let _ = writeln!(
                        s,
                        "{:>5}  {:<9}  {:>16}  {:>4}  {:>12}  {:<16}  {}",
                        c.id.0,
                        state_name(c.state),
                        c.balance.to_string(),
                        c.running_jobs,
                        c.stored_bytes,
                        format!(
                            "{}/{}/{}",
                            limit(q.max_running_jobs),
                            limit(q.max_stored_bytes),
                            limit(q.requests_per_sec.map(u64::from))
                        ),
                        shown(&c.name)
                    );
                }
                s
            })
        }
        AccountCommand::Create { name, customer } => {
            if customer.is_some() {
                anyhow::bail!("--customer is for owners: a customer belongs to no one");
            }
            let made = client
                .create_customer(&NewCustomer {
                    name,
                    quotas: Quotas::default(),
                })
                .await?;
            print(json, &made, || {
                format!(
                    "customer {} {:?} created with {} credits\napi key: {}\nkeep it now: it is not shown again\n",
                    made.customer.id.0,
                    shown(&made.customer.name),
                    made.customer.balance,
                    made.api_key
                )
            })
        }
        AccountCommand::Suspend { id } | AccountCommand::Resume { id } => {
            let suspended = matches!(command, AccountCommand::Suspend { .. });
            let c = client
                .change_customer(TenantId(id), &suspension(suspended))
                .await?;
            print(json, &c, || {
                format!("customer {id} is {}\n", state_name(c.state))
            })
        }
        AccountCommand::Delete { id } => {
            client.delete_customer(TenantId(id)).await?;
            print(json, &serde_json::json!({"deleted": id}), || {
                format!("customer {id} deleted: keys revoked, running jobs cancelled\n")
            })
        }
        AccountCommand::Quota {
            id,
            jobs,
            bytes,
            rps,
        } => {
            let change = AccountChange {
                suspended: None,
                quotas: Some(Quotas {
                    max_running_jobs: jobs,
                    max_stored_bytes: bytes,
                    requests_per_sec: rps,
                }),
            };
            let c = client.change_customer(TenantId(id), &change).await?;
            print(json, &c, || {
                format!(
                    "customer {id}: at most {} jobs at once, {} bytes kept, {} requests a second\n",
                    limit(c.quotas.max_running_jobs),
                    limit(c.quotas.max_stored_bytes),
                    limit(c.quotas.requests_per_sec.map(u64::from))
                )
            })
        }
    }
}

async fn owners(
    client: &idlegrid_client::Client,
    command: AccountCommand,
    json: bool,
) -> anyhow::Result<ExitCode> {
    match command {
        AccountCommand::List { state, name } => {
            let list = client.owners(&listing(state.as_deref(), name)?).await?;
            print(json, &list, || {
                let mut s = format!(
                    "{:>5}  {:<9}  {:>16}  {:>8}  {}\n",
                    "ID", "STATE", "BALANCE", "CUSTOMER", "NAME"
                );
                for o in &list.owners {
                    let _ = writeln!(
                        s,
                        "{:>5}  {:<9}  {:>16}  {:>8}  {}",
                        o.id,
                        state_name(o.state),
                        o.balance.to_string(),
                        o.customer.map_or_else(|| "-".into(), |c| c.0.to_string()),
                        shown(&o.name)
                    );
                }
                s
            })
        }
        AccountCommand::Create { name, customer } => {
            let made = client
                .create_owner_account(&NewOwner {
                    name,
                    customer: customer.map(TenantId),
                })
                .await?;
            print(json, &made, || {
                format!(
                    "device owner {} {:?} created\nenrollment token: {}\nkeep it now: it is not shown again\n",
                    made.id,
                    shown(&made.name),
                    made.enrollment_token
                )
            })
        }
        AccountCommand::Suspend { id } | AccountCommand::Resume { id } => {
            let suspended = matches!(command, AccountCommand::Suspend { .. });
            let o = client.change_owner(id, &suspension(suspended)).await?;
            print(json, &o, || {
                format!("owner {id} is {}\n", state_name(o.state))
            })
        }
        AccountCommand::Delete { id } => {
            client.delete_owner(id).await?;
            print(json, &serde_json::json!({"deleted": id}), || {
                format!("owner {id} deleted: tokens revoked, devices removed\n")
            })
        }
        AccountCommand::Quota { .. } => {
            anyhow::bail!("quotas are set on customers: `idlegrid admin customers quota ID`")
        }
    }
}
