//! Which coordinator a client command talks to: `--coordinator`/`IDLEGRID_URL` with
//! `--api-key`/`IDLEGRID_API_KEY`, else the grid a running `idlegrid local` recorded.

use crate::cli::TargetArgs;
use crate::local::{LocalGridFile, local_grid_file};
use idlegrid_client::Client;

/// A client for the configured coordinator, or `None` if none is configured or running.
pub async fn configured(args: &TargetArgs) -> anyhow::Result<Option<Client>> {
    if let Some(url) = &args.coordinator {
        let key = match &args.api_key {
            Some(key) => key.clone(),
            None => anyhow::bail!(
                "--coordinator {url} needs a customer API key: pass --api-key or set IDLEGRID_API_KEY"
            ),
        };
        return Ok(Some(Client::new(url, &key)?));
    }
    let Ok(text) = std::fs::read_to_string(local_grid_file()?) else {
        return Ok(None);
    };
    let Ok(local) = serde_json::from_str::<LocalGridFile>(&text) else {
        return Ok(None);
    };
    let key = args.api_key.clone().unwrap_or(local.api_key);
    let client = Client::new(&local.url, &key)?;
    // A grid killed without cleaning up leaves its file behind: check that it answers.
    if client.apps().await.is_ok() {
        Ok(Some(client))
    } else {
        Ok(None)
    }
}

/// A client for the configured coordinator, or an error that says how to get one.
pub async fn required(args: &TargetArgs) -> anyhow::Result<Client> {
    configured(args).await?.ok_or_else(|| {
        anyhow::anyhow!(
            "no coordinator to talk to: start one with `idlegrid local`, or pass --coordinator URL and --api-key KEY"
        )
    })
}
