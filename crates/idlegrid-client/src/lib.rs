//! Typed HTTP client for idlegrid's coordinator, used by the worker agent, the CLI and tests.
//!
//! - [`Client`]: one authenticated connection pool; the Jobs API methods live in `jobs.rs`, the
//!   Tasks API methods in `tasks.rs`, accounts and grid statistics in `accounts.rs`.
//! - [`ClientError`]: failures, with [`ClientError::is_retryable`] to tell "coordinator away"
//!   from "request refused".
//! - [`sha256_file`]: the one place files are hashed, shared with the worker.
//! - [`sse`]: the server-sent-events parser behind [`Client::job_events`].
//!
//! Large bodies (job inputs and outputs, task chunks and results) are streamed to and from disk,
//! never held in memory whole.

mod accounts;
mod admin;
pub use admin::AccountListing;
mod billing;
mod error;
mod jobs;
pub mod sse;
mod tasks;
mod transfer;

pub use error::ClientError;
pub use idlegrid_api::paths::is_sha256_hex;
pub use transfer::{sha256_bytes, sha256_file};

use reqwest::{Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use std::time::Duration;

/// How long to wait for a TCP connection to the coordinator.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Whole-request limit for small JSON calls.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest silence tolerated while streaming a download before giving up on the connection.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Error bodies are echoed into messages; keep them readable.
const MAX_ERROR_TEXT: usize = 2048;

/// An authenticated client for one coordinator. Cloning is cheap and shares the connection
/// pool.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    /// A client for the coordinator at `base` (e.g. `http://127.0.0.1:8080`) that authenticates
    /// with `token`: a customer API key for the Jobs API, a worker token for the Tasks API.
    pub fn new(base: &str, token: &str) -> Result<Client, ClientError> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_keepalive(Duration::from_secs(30))
            .user_agent(concat!("idlegrid/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
        })
    }

    /// The coordinator's base URL, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A request to `path` with the bearer token and the default whole-request timeout.
    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .timeout(CALL_TIMEOUT)
    }

    /// A request without a whole-request timeout, for transfers whose length is unbounded;
    /// callers bound them another way.
    fn streaming_request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }
}

/// Sends a request and turns a non-2xx answer into [`ClientError::Api`].
/// `path` with `pairs` as its query string, each encoded.
fn with_query(path: &str, pairs: &[(&str, String)]) -> String {
    if pairs.is_empty() {
        return path.to_string();
    }
    let mut url = reqwest::Url::parse("http://query.invalid/").expect("a valid base");
    url.query_pairs_mut().extend_pairs(pairs);
    format!("{path}?{}", url.query().unwrap_or_default())
}

async fn send(request: RequestBuilder) -> Result<Response, ClientError> {
    let response = request.send().await?;
    if response.status().is_success() {
        Ok(response)
    } else {
        Err(api_error(response).await)
    }
}

/// Reads an error response; bodies that are not an [`idlegrid_api::ErrorBody`] (a proxy's HTML
/// page, a panic message) still become one, so callers always get a code and a message.
async fn api_error(response: Response) -> ClientError {
    let status = response.status();
    let bytes = match response.bytes().await {
        Ok(bytes) => bytes,
        Err(err) => return ClientError::Transport(err),
    };
    let body = serde_json::from_slice::<idlegrid_api::ErrorBody>(&bytes).unwrap_or_else(|_| {
        let text = String::from_utf8_lossy(&bytes);
        let text = text.trim();
        let message = if text.is_empty() {
            status
                .canonical_reason()
                .unwrap_or("no error message")
                .to_string()
        } else {
            truncate(text, MAX_ERROR_TEXT)
        };
        idlegrid_api::ErrorBody::new(format!("http_{}", status.as_u16()), message)
    });
    ClientError::Api {
        status: status.as_u16(),
        body,
    }
}

/// Sends a request and decodes its 2xx JSON body.
async fn send_json<T: DeserializeOwned>(request: RequestBuilder) -> Result<T, ClientError> {
    let response = send(request).await?;
    let url = response.url().path().to_string();
    let bytes = response.bytes().await?;
    decode(&url, &bytes)
}

fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(bytes).map_err(|err| ClientError::Decode(format!("{what}: {err}")))
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_loses_its_trailing_slash() {
        let client = Client::new("http://127.0.0.1:8080/", "t").unwrap();
        assert_eq!(client.base(), "http://127.0.0.1:8080");
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h…");
        assert_eq!(truncate("abc", 3), "abc");
    }
}
