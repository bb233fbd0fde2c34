//! Opening a coordinator's data directory: its backends, its secrets key, and on first start
//! the credentials of its first customer, device owner and operator (`credentials.json`,
//! readable by its owner only), with the customer's opening credit.

use crate::config::Config;
use crate::grid::Grid;
use crate::secrets::write_private;
use crate::state::credentials::{
    API_KEY_PREFIX, ENROLLMENT_PREFIX, FIRST_SECRET, OPERATOR_PREFIX, make_secret,
};
use idlegrid_storage::Result as StorageResult;
use idlegrid_storage::records::Principal;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The secrets a fresh coordinator creates for its first customer and device owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// API key of the `default` tenant.
    pub api_key: String,
    /// Enrollment token of the `default` device owner.
    pub enrollment_token: String,
    /// Key of the `default` operator (the dashboard's grid page). Data directories made
    /// before operators existed get one on their next start.
    #[serde(default)]
    pub operator_key: String,
}

const CREDENTIALS_FILE: &str = "credentials.json";

impl Grid {
    /// Opens the backends `config.backends` names (embedded ones in `config.data_dir`),
    /// creating the bootstrap credentials on first use, and returns the grid with those
    /// credentials; clears the scratch of coordinators that were killed ([`crate::scratch`]).
    /// In-process queues start empty: [`crate::serve`] rebuilds them.
    pub async fn open(config: Config) -> anyhow::Result<(Arc<Grid>, Credentials)> {
        std::fs::create_dir_all(&config.data_dir)?;
        crate::scratch::clear_abandoned();
        let opened = config.backends.open(&config.data_dir).await?;
        let secrets = match (&config.secrets_key, opened.engines.shared_records) {
            (Some(key), _) => {
                Some(crate::secrets::SecretBox::from_base64(key).map_err(anyhow::Error::msg)?)
            }
            // Records of this coordinator alone: the key lives beside them.
            (None, false) => Some(crate::secrets::SecretBox::load_or_create(
                &config.data_dir.join("secrets.key"),
            )?),
            // Shared records: every coordinator must seal with the same key, given to all.
            (None, true) => None,
        };
        let mut grid = Grid::new(config, opened.store, opened.queues, opened.blobs);
        grid.secrets = secrets;
        grid.engines = opened.engines;
        let credentials = grid.bootstrap_credentials().await?;
        Ok((Arc::new(grid), credentials))
    }

    async fn bootstrap_credentials(&self) -> anyhow::Result<Credentials> {
        let path = self.config.data_dir.join(CREDENTIALS_FILE);
        if let Ok(text) = std::fs::read_to_string(&path) {
            let mut credentials: Credentials = serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{} is not valid: {e}", path.display()))?;
            if credentials.operator_key.is_empty() {
                credentials.operator_key = self.add_operator_key().await?;
                self.save_credentials(&path, &credentials)?;
            }
            // Grids from before the ledger give their customer the opening credit too.
            let tenant = self.store.ensure_tenant("default").await?;
            self.grant_opening_credit(tenant).await?;
            self.default_owner_is_the_default_customer(tenant).await?;
            return Ok(credentials);
        }
        let tenant = self.store.ensure_tenant("default").await?;
        self.grant_opening_credit(tenant).await?;
        let owner = self.default_owner_is_the_default_customer(tenant).await?;
        let (api_key, stored) = make_secret(API_KEY_PREFIX, FIRST_SECRET, None);
        self.store
            .add_secret(Principal::Tenant(tenant), &stored)
            .await?;
        let (enrollment_token, stored) = make_secret(ENROLLMENT_PREFIX, FIRST_SECRET, None);
        self.store
            .add_secret(Principal::Owner(owner), &stored)
            .await?;
        let credentials = Credentials {
            api_key,
            enrollment_token,
            operator_key: self.add_operator_key().await?,
        };
        self.save_credentials(&path, &credentials)?;
        Ok(credentials)
    }

    /// Makes the first device owner part of the first customer's account: a fresh grid is one
    /// person's, whose devices are their own fleet. Returns the owner.
    async fn default_owner_is_the_default_customer(
        &self,
        tenant: idlegrid_domain::TenantId,
    ) -> StorageResult<i64> {
        let owner = self.store.ensure_owner("default").await?;
        self.store.set_owner_tenant(owner, Some(tenant)).await?;
        Ok(owner)
    }

    /// Gives a customer the configured opening credit, once (repeats post nothing).
    pub async fn grant_opening_credit(
        &self,
        tenant: idlegrid_domain::TenantId,
    ) -> StorageResult<()> {
        if self.config.opening_credit.0 > 0 {
            self.store
                .transfer(
                    &format!("opening:{tenant}"),
                    idlegrid_domain::Account::PlatformGrants,
                    idlegrid_domain::Account::Customer(tenant),
                    self.config.opening_credit,
                )
                .await?;
        }
        Ok(())
    }

    /// Creates a key for the `default` operator and returns it.
    async fn add_operator_key(&self) -> anyhow::Result<String> {
        let (key, stored) = make_secret(OPERATOR_PREFIX, FIRST_SECRET, None);
        let operator = self.store.ensure_operator("default").await?;
        self.store
            .add_secret(Principal::Operator(operator), &stored)
            .await?;
        Ok(key)
    }

    fn save_credentials(
        &self,
        path: &std::path::Path,
        credentials: &Credentials,
    ) -> anyhow::Result<()> {
        let tmp = path.with_extension("json.tmp");
        write_private(&tmp, serde_json::to_string_pretty(credentials)?.as_bytes())?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}
