//! The error body of every failed request: a stable machine-readable `code` and a sentence for
//! people that names the problem and, where there is one, the fix.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Body of every 4xx and 5xx response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable identifier, e.g. `digest_mismatch`, `lease_not_held`, `unknown_app`.
    pub code: String,
    /// Human-readable explanation naming the problem.
    pub message: String,
}

impl ErrorBody {
    /// Builds an error body.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorBody {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
            },
        }
    }
}

impl std::fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.error.message, self.error.code)
    }
}
