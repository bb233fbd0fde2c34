//! Calls about accounts and the grid: what a secret stands for; an account's keys and sessions;
//! an owner's devices, earnings and payouts (with an enrollment token); sign-up; new owners and
//! the grid's statistics (with an operator key).

use crate::{Client, ClientError, send, send_json, with_query};
use idlegrid_api::WorkerId;
use idlegrid_api::accounts::{
    CreatedOwner, CreatedSecret, DeviceChange, Earnings, Me, NewOwner, NewSecret, OwnerDevices,
    Payout, PayoutRequest, Payouts, Secrets, SignedUp, Signup, SignupOptions,
};
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

    /// `GET /v1/secrets`: this account's keys and sessions.
    pub async fn secrets(&self) -> Result<Secrets, ClientError> {
        send_json(self.request(Method::GET, paths::SECRETS)).await
    }

    /// `POST /v1/secrets`: a new key for this account, named `name` (shown this once).
    pub async fn create_secret(&self, name: &str) -> Result<CreatedSecret, ClientError> {
        let body = NewSecret {
            name: Some(name.to_string()),
        };
        send_json(self.request(Method::POST, paths::SECRETS).json(&body)).await
    }

    /// `DELETE /v1/secrets/{id}`: revokes one of this account's secrets.
    pub async fn revoke_secret(&self, id: i64) -> Result<(), ClientError> {
        send(self.request(Method::DELETE, &paths::secret(id)))
            .await
            .map(drop)
    }

    /// `POST /v1/secrets/{id}/rotate`: replaces one of this account's keys by a new one.
    pub async fn rotate_secret(&self, id: i64) -> Result<CreatedSecret, ClientError> {
        send_json(self.request(Method::POST, &paths::secret_rotate(id))).await
    }

    /// `PATCH /v1/owner/devices/{id}`: renames, pauses or resumes one of the owner's devices.
    pub async fn change_device(
        &self,
        device: WorkerId,
        change: &DeviceChange,
    ) -> Result<(), ClientError> {
        send(
            self.request(Method::PATCH, &paths::owner_device(device))
                .json(change),
        )
        .await
        .map(drop)
    }

    /// `DELETE /v1/owner/devices/{id}`: removes one of the owner's devices.
    pub async fn remove_device(&self, device: WorkerId) -> Result<(), ClientError> {
        send(self.request(Method::DELETE, &paths::owner_device(device)))
            .await
            .map(drop)
    }

    /// `GET /v1/owner/earnings`: the owner's balance, held earnings and history.
    pub async fn earnings(&self, before: Option<i64>) -> Result<Earnings, ClientError> {
        let query: Vec<(&str, String)> = before
            .map(|b| ("before", b.to_string()))
            .into_iter()
            .collect();
        send_json(self.request(Method::GET, &with_query(paths::OWNER_EARNINGS, &query))).await
    }

    /// `POST /v1/owner/payouts`: asks to be paid out `amount` micro-credits.
    pub async fn request_payout(
        &self,
        amount: idlegrid_api::Credits,
    ) -> Result<Payout, ClientError> {
        let body = PayoutRequest { amount };
        send_json(self.request(Method::POST, paths::OWNER_PAYOUTS).json(&body)).await
    }

    /// `GET /v1/owner/payouts`: the owner's payouts.
    pub async fn owner_payouts(&self) -> Result<Payouts, ClientError> {
        send_json(self.request(Method::GET, paths::OWNER_PAYOUTS)).await
    }

    /// `GET /v1/signup`: which sign-ups the grid takes (no secret needed).
    pub async fn signup_options(&self) -> Result<SignupOptions, ClientError> {
        send_json(self.request(Method::GET, paths::SIGNUP)).await
    }

    /// `POST /v1/signup`: a new account and its first key (no secret needed).
    pub async fn sign_up(&self, signup: &Signup) -> Result<SignedUp, ClientError> {
        send_json(self.request(Method::POST, paths::SIGNUP).json(signup)).await
    }
}
