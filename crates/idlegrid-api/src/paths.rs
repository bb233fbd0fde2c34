//! URL paths and header names of both APIs.

/// Header carrying the hex SHA-256 of an upload's body; the server refuses the upload if the
/// bytes it received hash differently.
pub const CONTENT_SHA256: &str = "x-content-sha256";

/// `POST` create, `GET` list.
pub const JOBS: &str = "/v1/jobs";
/// `GET` one job's status.
pub fn job(id: crate::JobId) -> String {
    format!("/v1/jobs/{id}")
}
/// `PUT` the job's input (streamed; [`CONTENT_SHA256`] required).
pub fn job_input(id: crate::JobId) -> String {
    format!("/v1/jobs/{id}/input")
}
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
/// `GET` the job's state changes and their delivery to its webhook.
pub fn job_webhook_deliveries(id: crate::JobId) -> String {
    format!("/v1/jobs/{id}/webhook/deliveries")
}
/// `GET` the apps this coordinator offers.
pub const APPS: &str = "/v1/apps";

/// `POST` register a device (enrollment token) and receive a worker token.
pub const WORKERS_REGISTER: &str = "/v1/workers/register";
/// `GET` the calling device's own record (reputation, quarantine).
pub const WORKERS_ME: &str = "/v1/workers/me";
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
