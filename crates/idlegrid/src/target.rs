//! Which coordinator a client command talks to: `--coordinator`/`IDLEGRID_URL` with the
//! command's secret (`--api-key`, or `--key` for the account commands), else the grid a running
//! `idlegrid local` recorded, with its secret of the kind the command needs. A secret given
//! without a coordinator goes to the local grid or fails: it never falls back to a throw-away
//! grid where any key would seem to work.

use crate::cli::TargetArgs;
use crate::cli::accounts::AccountTarget;
use crate::local::{LocalGridFile, local_grid_file};
use idlegrid_client::Client;

/// The kind of secret a command acts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A customer's API key.
    Customer,
    /// A device owner's enrollment token.
    Owner,
    /// An operator key.
    Operator,
}

impl Role {
    fn secret_name(self) -> &'static str {
        match self {
            Role::Customer => "a customer API key",
            Role::Owner => "a device owner's enrollment token",
            Role::Operator => "an operator key",
        }
    }

    fn local_secret(self, local: &LocalGridFile) -> String {
        match self {
            Role::Customer => local.api_key.clone(),
            Role::Owner => local.enrollment_token.clone(),
            Role::Operator => local.operator_key.clone(),
        }
    }
}

/// The grid `idlegrid local` recorded, if it is running (a grid killed without cleaning up
/// leaves its file behind: it must answer).
async fn running_local_grid() -> anyhow::Result<Option<LocalGridFile>> {
    let Ok(text) = std::fs::read_to_string(local_grid_file()?) else {
        return Ok(None);
    };
    let Ok(local) = serde_json::from_str::<LocalGridFile>(&text) else {
        return Ok(None);
    };
    let probe = Client::new(&local.url, &local.api_key)?;
    Ok(probe.apps().await.is_ok().then_some(local))
}

async fn client_for(
    coordinator: Option<&str>,
    secret: Option<&str>,
    role: Role,
    flag: &str,
) -> anyhow::Result<Option<Client>> {
    if let Some(url) = coordinator {
        let Some(secret) = secret else {
            anyhow::bail!(
                "--coordinator {url} needs {}: pass {flag}",
                role.secret_name()
            );
        };
        return Ok(Some(Client::new(url, secret)?));
    }
    let Some(local) = running_local_grid().await? else {
        if secret.is_some() {
            anyhow::bail!(
                "{flag} was given but no coordinator: pass --coordinator URL (or set IDLEGRID_URL), or start `idlegrid local` for the secret to be used there"
            );
        }
        return Ok(None);
    };
    let secret = match secret {
        Some(secret) => secret.to_string(),
        None => role.local_secret(&local),
    };
    if secret.is_empty() {
        anyhow::bail!(
            "the local grid was started by an older idlegrid and did not record {}: pass {flag}",
            role.secret_name()
        );
    }
    Ok(Some(Client::new(&local.url, &secret)?))
}

/// A customer's client for the configured coordinator, or `None` if none is configured or
/// running (`run` and `transcode` then start a throw-away grid).
pub async fn configured(args: &TargetArgs) -> anyhow::Result<Option<Client>> {
    client_for(
        args.coordinator.as_deref(),
        args.api_key.as_deref(),
        Role::Customer,
        "--api-key",
    )
    .await
}

fn no_coordinator() -> anyhow::Error {
    anyhow::anyhow!(
        "no coordinator to talk to: start one with `idlegrid local`, or pass --coordinator URL and the secret it needs"
    )
}

/// A customer's client for the configured coordinator, or an error that says how to get one.
pub async fn required(args: &TargetArgs) -> anyhow::Result<Client> {
    configured(args).await?.ok_or_else(no_coordinator)
}

/// A client of an account command acting as `role`.
pub async fn account(args: &AccountTarget, role: Role) -> anyhow::Result<Client> {
    client_for(
        args.coordinator.as_deref(),
        args.key.as_deref(),
        role,
        "--key",
    )
    .await?
    .ok_or_else(no_coordinator)
}
