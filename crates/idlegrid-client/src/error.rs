//! What can go wrong talking to the coordinator, sorted so callers can decide whether to retry.

use idlegrid_api::ErrorBody;

/// A failed call to the coordinator.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The coordinator answered with a non-2xx status.
    #[error("{} ({}, HTTP {status})", body.error.message, body.error.code)]
    Api {
        /// HTTP status code.
        status: u16,
        /// The error body; synthesized with code `http_<status>` when the response had none.
        body: ErrorBody,
    },
    /// The request did not complete: connection refused, reset, timed out.
    #[error("cannot reach the coordinator: {}", chain(.0))]
    Transport(#[from] reqwest::Error),
    /// A streamed transfer went silent for too long; the message names the transfer.
    #[error("{0}")]
    Stalled(String),
    /// A local file could not be read or written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Bytes received or about to be sent do not hash to the expected SHA-256.
    #[error("SHA-256 mismatch: expected {expected}, got {actual}")]
    Digest {
        /// The hash that was asked for.
        expected: String,
        /// The hash of the bytes actually seen.
        actual: String,
    },
    /// The coordinator answered 2xx with a body this client cannot understand.
    #[error("unexpected response from the coordinator: {0}")]
    Decode(String),
}

impl ClientError {
    /// Whether trying the same call again later may succeed: the coordinator was unreachable,
    /// overloaded or failed internally.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Transport(_) | ClientError::Stalled(_) => true,
            ClientError::Api { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            ClientError::Io(_) | ClientError::Digest { .. } | ClientError::Decode(_) => false,
        }
    }

    /// The HTTP status, for errors the coordinator answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The coordinator's error code (e.g. `lease_not_held`), for errors it answered.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { body, .. } => Some(&body.error.code),
            _ => None,
        }
    }
}

/// reqwest's own message omits the cause ("error sending request for url ..."); the chain says
/// what actually happened ("Connection refused").
fn chain(err: &reqwest::Error) -> String {
    let mut out = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_error_reads_like_a_sentence() {
        let err = ClientError::Api {
            status: 409,
            body: ErrorBody::new("lease_not_held", "lease 7 is no longer held"),
        };
        assert_eq!(
            err.to_string(),
            "lease 7 is no longer held (lease_not_held, HTTP 409)"
        );
        assert!(!err.is_retryable());
        assert_eq!(err.status(), Some(409));
        assert_eq!(err.code(), Some("lease_not_held"));
    }

    #[test]
    fn server_errors_are_retryable() {
        let err = ClientError::Api {
            status: 503,
            body: ErrorBody::new("http_503", "busy"),
        };
        assert!(err.is_retryable());
    }
}
