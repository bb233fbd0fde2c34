//! Operators' calls (operator key): customers and owners created, listed, changed and deleted;
//! every device and job; payouts settled.

use crate::{Client, ClientError, send, send_json, with_query};
use idlegrid_api::accounts::{CreatedOwner, NewOwner, Payout, PayoutState, Payouts};
use idlegrid_api::admin::{
    AccountChange, AccountState, CreatedCustomer, Customer, Customers, GridDevices, GridJobs,
    NewCustomer, Owner, Owners, Settlement,
};
use idlegrid_api::{JobState, TenantId, paths};
use reqwest::Method;

/// Which accounts a list shows.
#[derive(Debug, Clone, Default)]
pub struct AccountListing {
    /// Only accounts in this state (default: active and suspended).
    pub state: Option<AccountState>,
    /// Only names containing this.
    pub name: Option<String>,
}

fn listing_query(listing: &AccountListing) -> Vec<(&'static str, String)> {
    let mut query = Vec::new();
    if let Some(state) = listing.state {
        let state = serde_json::to_value(state).unwrap_or_default();
        query.push(("state", state.as_str().unwrap_or_default().to_string()));
    }
    if let Some(name) = &listing.name {
        query.push(("name", name.clone()));
    }
    query
}

impl Client {
    /// `GET /v1/admin/customers`.
    pub async fn customers(&self, listing: &AccountListing) -> Result<Customers, ClientError> {
        let path = with_query(paths::ADMIN_CUSTOMERS, &listing_query(listing));
        send_json(self.request(Method::GET, &path)).await
    }

    /// `POST /v1/admin/customers`: a new customer and its API key (shown this once).
    pub async fn create_customer(
        &self,
        customer: &NewCustomer,
    ) -> Result<CreatedCustomer, ClientError> {
        send_json(
            self.request(Method::POST, paths::ADMIN_CUSTOMERS)
                .json(customer),
        )
        .await
    }

    /// `PATCH /v1/admin/customers/{id}`: suspends, resumes, or sets quotas.
    pub async fn change_customer(
        &self,
        id: TenantId,
        change: &AccountChange,
    ) -> Result<Customer, ClientError> {
        send_json(
            self.request(Method::PATCH, &paths::admin_customer(id))
                .json(change),
        )
        .await
    }

    /// `DELETE /v1/admin/customers/{id}`.
    pub async fn delete_customer(&self, id: TenantId) -> Result<(), ClientError> {
        send(self.request(Method::DELETE, &paths::admin_customer(id)))
            .await
            .map(drop)
    }

    /// `GET /v1/admin/owners`.
    pub async fn owners(&self, listing: &AccountListing) -> Result<Owners, ClientError> {
        let path = with_query(paths::ADMIN_OWNERS, &listing_query(listing));
        send_json(self.request(Method::GET, &path)).await
    }

    /// `POST /v1/admin/owners`: a new owner and its enrollment token (shown this once).
    pub async fn create_owner_account(
        &self,
        owner: &NewOwner,
    ) -> Result<CreatedOwner, ClientError> {
        send_json(self.request(Method::POST, paths::ADMIN_OWNERS).json(owner)).await
    }

    /// `PATCH /v1/admin/owners/{id}`: suspends or resumes.
    pub async fn change_owner(
        &self,
        id: i64,
        change: &AccountChange,
    ) -> Result<Owner, ClientError> {
        send_json(
            self.request(Method::PATCH, &paths::admin_owner(id))
                .json(change),
        )
        .await
    }

    /// `DELETE /v1/admin/owners/{id}`.
    pub async fn delete_owner(&self, id: i64) -> Result<(), ClientError> {
        send(self.request(Method::DELETE, &paths::admin_owner(id)))
            .await
            .map(drop)
    }

    /// `GET /v1/admin/devices`: every device, or one owner's.
    pub async fn grid_devices(&self, owner: Option<i64>) -> Result<GridDevices, ClientError> {
        let query: Vec<(&str, String)> = owner
            .map(|o| ("owner", o.to_string()))
            .into_iter()
            .collect();
        send_json(self.request(Method::GET, &with_query(paths::ADMIN_DEVICES, &query))).await
    }

    /// `GET /v1/admin/jobs`: every customer's jobs, or one's, in one state or all.
    pub async fn grid_jobs(
        &self,
        customer: Option<TenantId>,
        state: Option<JobState>,
    ) -> Result<GridJobs, ClientError> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(customer) = customer {
            query.push(("customer", customer.0.to_string()));
        }
        if let Some(state) = state {
            query.push(("state", state.as_str().to_string()));
        }
        send_json(self.request(Method::GET, &with_query(paths::ADMIN_JOBS, &query))).await
    }

    /// `GET /v1/admin/payouts`.
    pub async fn payouts(&self, state: Option<PayoutState>) -> Result<Payouts, ClientError> {
        let query: Vec<(&str, String)> = state
            .map(|s| {
                let s = serde_json::to_value(s).unwrap_or_default();
                ("state", s.as_str().unwrap_or_default().to_string())
            })
            .into_iter()
            .collect();
        send_json(self.request(Method::GET, &with_query(paths::ADMIN_PAYOUTS, &query))).await
    }

    /// `POST /v1/admin/payouts/{id}/settle`: pays or refuses a payout.
    pub async fn settle_payout(
        &self,
        id: i64,
        settlement: &Settlement,
    ) -> Result<Payout, ClientError> {
        send_json(
            self.request(Method::POST, &paths::admin_payout_settle(id))
                .json(settlement),
        )
        .await
    }
}
