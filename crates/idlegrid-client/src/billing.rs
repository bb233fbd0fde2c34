//! Billing calls: a job's price before it runs (API key), the caller's balance (any secret),
//! deposits (operator key).

use crate::{Client, ClientError, send_json};
use idlegrid_api::jobs::{Balance, Deposit, DepositReceipt, Estimate, EstimateRequest};
use idlegrid_api::{TenantId, paths};
use reqwest::Method;

impl Client {
    /// `POST /v1/jobs/estimate`: price and time of a job, for every tier.
    pub async fn estimate(&self, request: &EstimateRequest) -> Result<Estimate, ClientError> {
        send_json(
            self.request(Method::POST, paths::JOBS_ESTIMATE)
                .json(request),
        )
        .await
    }

    /// `GET /v1/balance`: the caller's balance, holds or earnings, and recent entries.
    pub async fn balance(&self) -> Result<Balance, ClientError> {
        send_json(self.request(Method::GET, paths::BALANCE)).await
    }

    /// `POST /v1/customers/{id}/deposits`: credit paid in by a customer (operator key).
    pub async fn deposit(
        &self,
        customer: TenantId,
        deposit: &Deposit,
    ) -> Result<DepositReceipt, ClientError> {
        send_json(
            self.request(Method::POST, &paths::customer_deposits(customer))
                .json(deposit),
        )
        .await
    }
}
