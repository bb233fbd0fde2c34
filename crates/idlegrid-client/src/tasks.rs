//! Tasks API calls, made by worker devices with their worker token.

use crate::transfer::{body_to_file, file_body, with_path};
use crate::{CALL_TIMEOUT, Client, ClientError, api_error, decode, send, send_json};
use idlegrid_api::tasks::{
    Heartbeat, HeartbeatReply, LeaseGrant, LeaseRequest, RegisterWorker, Registered, Report,
    ReportReply,
};
use idlegrid_api::{Bundle, LeaseId, UploadReceipt, paths};
use reqwest::{Method, StatusCode};
use std::path::Path;
use std::time::Duration;

impl Client {
    /// `POST /v1/workers/register` with an owner's enrollment token. Build the client for
    /// further calls from the returned worker token.
    pub async fn register(
        base: &str,
        enrollment_token: &str,
        worker: &RegisterWorker,
    ) -> Result<Registered, ClientError> {
        let client = Client::new(base, enrollment_token)?;
        send_json(
            client
                .request(Method::POST, paths::WORKERS_REGISTER)
                .json(worker),
        )
        .await
    }

    /// `POST /v1/workers/link`: registers a device with its owner's link code (no token).
    pub async fn link(
        base: &str,
        request: &idlegrid_api::tasks::LinkWorker,
    ) -> Result<Registered, ClientError> {
        let client = Client::new(base, "")?;
        send_json(
            client
                .http
                .post(format!("{}{}", client.base, paths::WORKERS_LINK))
                .timeout(CALL_TIMEOUT)
                .json(request),
        )
        .await
    }

    /// `POST /v1/leases`. The coordinator may hold the request for up to `wait_ms` when no
    /// task is ready, so the deadline is that plus the usual allowance.
    pub async fn lease(&self, request: &LeaseRequest) -> Result<LeaseGrant, ClientError> {
        let timeout = CALL_TIMEOUT + Duration::from_millis(request.wait_ms);
        send_json(
            self.request(Method::POST, paths::LEASES)
                .timeout(timeout)
                .json(request),
        )
        .await
    }

    /// `POST /v1/leases/heartbeat`: keeps leases alive and learns which are no longer held.
    pub async fn heartbeat(&self, heartbeat: &Heartbeat) -> Result<HeartbeatReply, ClientError> {
        send_json(
            self.request(Method::POST, paths::LEASES_HEARTBEAT)
                .json(heartbeat),
        )
        .await
    }

    /// `POST /v1/leases/report`. The coordinator answers 409 when it refused any item, with the
    /// per-item verdicts in the body; that is returned as `Ok` so the caller can see which items
    /// were accepted.
    pub async fn report(&self, report: &Report) -> Result<ReportReply, ClientError> {
        let response = self
            .request(Method::POST, paths::LEASES_REPORT)
            .json(report)
            .send()
            .await?;
        let status = response.status();
        if status.is_success() {
            let bytes = response.bytes().await?;
            return decode(paths::LEASES_REPORT, &bytes);
        }
        if status != StatusCode::CONFLICT {
            return Err(api_error(response).await);
        }
        let bytes = response.bytes().await?;
        match serde_json::from_slice::<ReportReply>(&bytes) {
            Ok(reply) => Ok(reply),
            Err(_) => {
                let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                    idlegrid_api::ErrorBody::new(
                        "http_409",
                        String::from_utf8_lossy(&bytes).trim().to_string(),
                    )
                });
                Err(ClientError::Api {
                    status: status.as_u16(),
                    body,
                })
            }
        }
    }

    /// `GET /v1/leases/{id}/input`: streams the chunk into a new file at `path`. Returns its
    /// size.
    pub async fn download_lease_input(
        &self,
        lease: LeaseId,
        path: &Path,
    ) -> Result<u64, ClientError> {
        let response =
            send(self.streaming_request(Method::GET, &paths::lease_input(lease))).await?;
        let mut file = tokio::fs::File::create(path)
            .await
            .map_err(|err| with_path(err, "cannot create", path))?;
        let (size, _) = body_to_file(response, &mut file, path).await?;
        Ok(size)
    }

    /// `PUT /v1/leases/{id}/output`: streams the file at `path`, whose SHA-256 the caller has
    /// already computed (it is also reported).
    pub async fn upload_lease_output(
        &self,
        lease: LeaseId,
        path: &Path,
        sha256: &str,
    ) -> Result<UploadReceipt, ClientError> {
        let request = self.streaming_request(Method::PUT, &paths::lease_output(lease));
        send_json(file_body(request, path, sha256).await?).await
    }

    /// `GET /v1/workers/me`: this device's record (reputation, quarantine).
    pub async fn me(&self) -> Result<idlegrid_api::tasks::WorkerStatus, ClientError> {
        send_json(self.request(Method::GET, paths::WORKERS_ME)).await
    }

    /// `PUT /v1/workers/me/capabilities`: replaces what this device offers.
    pub async fn update_capabilities(
        &self,
        capabilities: &idlegrid_api::Capabilities,
    ) -> Result<(), ClientError> {
        send(
            self.request(Method::PUT, paths::WORKERS_ME_CAPABILITIES)
                .json(capabilities),
        )
        .await?;
        Ok(())
    }

    /// `GET /v1/bundles/{sha256}?lease=`: an app bundle, for a lease this worker holds,
    /// checked against the hash it was asked by.
    pub async fn bundle(&self, sha256: &str, lease: LeaseId) -> Result<Bundle, ClientError> {
        if !crate::is_sha256_hex(sha256) {
            return Err(ClientError::Decode(format!(
                "bundle hash {sha256:?} is not a hex SHA-256"
            )));
        }
        let response = send(self.request(Method::GET, &paths::bundle(sha256, lease))).await?;
        let bytes = response.bytes().await?;
        let actual = crate::sha256_bytes(&bytes);
        if !actual.eq_ignore_ascii_case(sha256) {
            return Err(ClientError::Digest {
                expected: sha256.to_string(),
                actual,
            });
        }
        decode(&format!("bundle {sha256}"), &bytes)
    }
}
