//! URL paths and header names of both APIs.

/// Header carrying the hex SHA-256 of an upload's body; the server refuses the upload if the
/// bytes it received hash differently.
pub const CONTENT_SHA256: &str = "x-content-sha256";

/// Whether `s` looks like a hex SHA-256 (64 hex digits, either case), as every digest in the
/// APIs must; anything else must not become part of a URL, a blob key or a cache path.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `POST` create, `GET` list.
pub const JOBS: &str = "/v1/jobs";
/// `GET` server-sent events of all the customer's recent jobs.
pub const JOBS_EVENTS: &str = "/v1/jobs/events";
/// `GET` one job's status.
pub fn job(id: crate::JobId) -> String {
    format!("/v1/jobs/{id}")
}
/// `PUT` the job's input (streamed; [`CONTENT_SHA256`] required).
pub fn job_input(id: crate::JobId) -> String {
    format!("/v1/jobs/{id}/input")
}
/// `PUT` one part of the job's input ([`CONTENT_SHA256`] of the part required).
pub fn job_input_part(id: crate::JobId, part: u32) -> String {
    format!("/v1/jobs/{id}/input/parts/{part}")
}
/// `GET` the parts of the job's input received so far.
pub fn job_input_parts(id: crate::JobId) -> String {
    format!("/v1/jobs/{id}/input/parts")
}
/// `POST` join the uploaded parts into the job's input.
pub fn job_input_complete(id: crate::JobId) -> String {
    format!("/v1/jobs/{id}/input/complete")
}
/// `GET` a page of the job's chunks and their states.
pub fn job_tasks(id: crate::JobId) -> String {
    format!("/v1/jobs/{id}/tasks")
}
/// `POST` links to the job's output that need no credentials.
pub fn job_links(id: crate::JobId) -> String {
    format!("/v1/jobs/{id}/links")
}
/// `GET` what the request's secret stands for.
pub const ME: &str = "/v1/me";
/// Price and time of a job before it runs.
pub const JOBS_ESTIMATE: &str = "/v1/jobs/estimate";
/// The money side of whoever asks.
pub const BALANCE: &str = "/v1/balance";
/// Credit paid in by a customer (operators).
pub fn customer_deposits(customer: crate::TenantId) -> String {
    format!("/v1/customers/{customer}/deposits")
}
/// `GET` the calling owner's devices.
pub const OWNER_DEVICES: &str = "/v1/owner/devices";
/// Device owners (operators create them).
pub const OWNERS: &str = "/v1/owners";
/// `PATCH` (rename, pause, resume) or `DELETE` one of the calling owner's devices.
pub fn owner_device(id: crate::WorkerId) -> String {
    format!("/v1/owner/devices/{id}")
}
/// `GET` the calling owner's earnings.
pub const OWNER_EARNINGS: &str = "/v1/owner/earnings";
/// `GET` the calling owner's payouts, `POST` ask for one.
pub const OWNER_PAYOUTS: &str = "/v1/owner/payouts";
/// `GET` the calling account's secrets, `POST` make a key.
pub const SECRETS: &str = "/v1/secrets";
/// `DELETE` (revoke) one of the calling account's secrets.
pub fn secret(id: i64) -> String {
    format!("/v1/secrets/{id}")
}
/// `POST` replace one of the calling account's keys by a new one.
pub fn secret_rotate(id: i64) -> String {
    format!("/v1/secrets/{id}/rotate")
}
/// `POST` a dashboard session for the calling account.
pub const SESSIONS: &str = "/v1/sessions";
/// `GET` which sign-ups the grid takes, `POST` sign up.
pub const SIGNUP: &str = "/v1/signup";
/// `GET` customers, `POST` create one (operators).
pub const ADMIN_CUSTOMERS: &str = "/v1/admin/customers";
/// `PATCH` or `DELETE` a customer (operators).
pub fn admin_customer(id: crate::TenantId) -> String {
    format!("/v1/admin/customers/{id}")
}
/// `GET` device owners, `POST` create one (operators).
pub const ADMIN_OWNERS: &str = "/v1/admin/owners";
/// `PATCH` or `DELETE` an owner (operators).
pub fn admin_owner(id: i64) -> String {
    format!("/v1/admin/owners/{id}")
}
/// `GET` every device (operators).
pub const ADMIN_DEVICES: &str = "/v1/admin/devices";
/// `GET` every job (operators).
pub const ADMIN_JOBS: &str = "/v1/admin/jobs";
/// `GET` payouts (operators).
pub const ADMIN_PAYOUTS: &str = "/v1/admin/payouts";
/// `POST` settle a payout (operators).
pub fn admin_payout_settle(id: i64) -> String {
    format!("/v1/admin/payouts/{id}/settle")
}
/// `GET` the grid's statistics over time (operators).
pub const GRID_STATS: &str = "/v1/grid/stats";
/// `POST` start processing.
pub fn job_run(id: crate::JobId) -> String {
    format!("/v1/jobs/{id}/run")
}
/// `POST` cancel.
pub fn job_cancel(id: crate::JobId) -> String {
    format!("/v1/jobs/{id}/cancel")
}
/// `GET` the assembled output.
pub fn job_output(id: crate::JobId) -> String {
    format!("/v1/jobs/{id}/output")
}
/// `GET` server-sent events of the job's state and progress.
pub fn job_events(id: crate::JobId) -> String {
    format!("/v1/jobs/{id}/events")
}
/// `GET` a page of the job's logs.
pub fn job_logs(id: crate::JobId) -> String {
    format!("/v1/jobs/{id}/logs")
}
/// `GET` the job's state changes and their delivery to its webhook.
pub fn job_webhook_deliveries(id: crate::JobId) -> String {
    format!("/v1/jobs/{id}/webhook/deliveries")
}
/// `GET` the apps this coordinator offers (built in, and published ones the account may run);
/// `POST` an app's bundle to publish a version of it.
pub const APPS: &str = "/v1/apps";
/// `GET`: the versions of a published app.
pub fn app_versions(name: &str) -> String {
    format!("/v1/apps/{name}/versions")
}
/// `GET` (operators): every published app at its latest version.
pub const ADMIN_APPS: &str = "/v1/admin/apps";
/// `POST` (operators): makes a published app public or private.
pub fn admin_app(name: &str) -> String {
    format!("/v1/admin/apps/{name}")
}

/// `POST` register a device (enrollment token) and receive a worker token.
pub const WORKERS_REGISTER: &str = "/v1/workers/register";
/// `POST` register a device with an owner's link code (no credentials).
pub const WORKERS_LINK: &str = "/v1/workers/link";
/// `POST` a code that links one device to the calling owner.
pub const OWNER_LINK_CODES: &str = "/v1/owner/link-codes";
/// The page that turns a browser into a worker.
pub const CONTRIBUTE: &str = "/contribute";
/// `GET` the calling device's own record (reputation, quarantine).
pub const WORKERS_ME: &str = "/v1/workers/me";
/// `PUT` what the calling device offers (its owner changed its allowances, its benchmark moved).
pub const WORKERS_ME_CAPABILITIES: &str = "/v1/workers/me/capabilities";
/// `POST` lease tasks (long-poll).
pub const LEASES: &str = "/v1/leases";
/// `POST` heartbeat held leases.
pub const LEASES_HEARTBEAT: &str = "/v1/leases/heartbeat";
/// `POST` report outcomes: completed, failed, or handed back.
pub const LEASES_REPORT: &str = "/v1/leases/report";
/// `GET` the chunk of a held lease.
pub fn lease_input(id: crate::LeaseId) -> String {
    format!("/v1/leases/{id}/input")
}
/// `PUT` the output of a held lease ([`CONTENT_SHA256`] required).
pub fn lease_output(id: crate::LeaseId) -> String {
    format!("/v1/leases/{id}/output")
}
/// `GET` an app bundle by its SHA-256, for the task of a lease the worker holds.
pub fn bundle(sha256: &str, lease: crate::LeaseId) -> String {
    format!("/v1/bundles/{sha256}?lease={lease}")
}

/// `GET` liveness.
pub const HEALTH: &str = "/healthz";
/// `GET` the OpenAPI document.
pub const OPENAPI: &str = "/openapi.json";
