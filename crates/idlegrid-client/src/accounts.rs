//! Calls about accounts and the grid: what a secret stands for, an owner's devices (with an
//! enrollment token), new owners and the grid's statistics (with an operator key).

use crate::{Client, ClientError, send_json};
use idlegrid_api::accounts::{CreatedOwner, Me, NewOwner, OwnerDevices};
use idlegrid_api::grid::GridStats;
use idlegrid_api::paths;
use reqwest::Method;

impl Client {
    /// `GET /v1/me`: what this client's secret stands for.
    pub async fn whoami(&self) -> Result<Me, ClientError> {
        send_json(self.request(Method::GET, paths::ME)).await
    }

    /// `GET /v1/owner/devices`: the owner's devices (enrollment token).
    pub async fn owner_devices(&self) -> Result<OwnerDevices, ClientError> {
        send_json(self.request(Method::GET, paths::OWNER_DEVICES)).await
    }

    /// `POST /v1/owner/link-codes`: a code that links one device to the owner (enrollment
    /// token).
    pub async fn create_link_code(&self) -> Result<idlegrid_api::tasks::LinkCode, ClientError> {
        send_json(self.request(Method::POST, paths::OWNER_LINK_CODES)).await
    }

    /// `POST /v1/owners`: a new device owner and its enrollment token (operator key).
    pub async fn create_owner(&self, owner: &NewOwner) -> Result<CreatedOwner, ClientError> {
        send_json(self.request(Method::POST, paths::OWNERS).json(owner)).await
    }

    /// `GET /metrics`: the coordinator's Prometheus metrics, as text.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        let response = crate::send(self.request(Method::GET, "/metrics")).await?;
        response
            .text()
            .await
            .map_err(|e| ClientError::Decode(format!("reading the metrics: {e}")))
    }

    /// `GET /v1/grid/stats`: the grid's statistics over time (operator key).
    pub async fn grid_stats(&self) -> Result<GridStats, ClientError> {
        send_json(self.request(Method::GET, paths::GRID_STATS)).await
    }
}
