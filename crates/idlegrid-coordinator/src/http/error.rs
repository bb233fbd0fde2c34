//! The one error type of both HTTP APIs: every failure becomes a status code and a JSON body
//! (`idlegrid_api::ErrorBody`) whose message names the problem.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use idlegrid_api::ErrorBody;
use idlegrid_storage::StorageError;

/// A failed request.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The body.
    pub body: ErrorBody,
}

/// Result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with a status, a stable code and a message.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody::new(code, message),
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404: no such thing (or not the caller's).
    pub fn not_found(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 409: the request conflicts with the current state.
    pub fn conflict(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 422: well-formed but unacceptable values.
    pub fn invalid(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        // What failed is the operator's to know (the log says): the details name the
        // coordinator's files, databases and keys, which are none of the caller's business.
        match e {
            // Asked for something that is not (or no longer) stored: retrying will not help.
            StorageError::NotFound(_) => {
                tracing::warn!(error = %e, "a stored item was asked for and is not there");
                ApiError::not_found(
                    "not_stored",
                    "what was asked for is not stored (it may have been deleted)",
                )
            }
            // Stored data this coordinator cannot read: a fault for the operator, not a
            // passing outage.
            StorageError::Corrupt(_) => {
                tracing::error!(error = %e, "stored data cannot be read");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "storage_corrupt",
                    "the coordinator found stored data it cannot read; its operator has been \
                     told (see the coordinator's log)",
                )
            }
            StorageError::Backend(_) => {
                tracing::error!(error = %e, "storage failure");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    "the coordinator's storage failed; retry shortly",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            // Limits are per second: by then the bucket has refilled.
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}

/// Turns axum's JSON extraction failures into our error body, so a malformed request says what
/// is wrong with it in the same shape as every other error.
pub fn json_rejection(rejection: axum::extract::rejection::JsonRejection) -> ApiError {
    // JSON of the wrong shape is a malformed request like any other (axum says 422): one
    // status for "fix your request", as the API documents.
    let status = match rejection.status() {
        StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
        other => other,
    };
    ApiError::new(
        status,
        "malformed_json",
        format!(
            "request body is not acceptable JSON: {}",
            rejection.body_text()
        ),
    )
}

/// `Json` whose rejection is an [`ApiError`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for ApiJson<T>
where
    axum::Json<T>:
        axum::extract::FromRequest<S, Rejection = axum::extract::rejection::JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        axum::Json::<T>::from_request(req, state)
            .await
            .map(|Json(value)| ApiJson(value))
            .map_err(json_rejection)
    }
}

/// An extractor of axum's wrapped so that its rejection is an [`ApiError`] with `code` and a
/// message starting with `what`.
macro_rules! api_extractor {
    ($(#[$doc:meta])* $name:ident, $inner:ident, $code:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $name<T>(pub T);

        impl<S, T> axum::extract::FromRequestParts<S> for $name<T>
        where
            T: serde::de::DeserializeOwned + Send,
            S: Send + Sync,
        {
            type Rejection = ApiError;

            async fn from_request_parts(
                parts: &mut axum::http::request::Parts,
                state: &S,
            ) -> Result<Self, ApiError> {
                axum::extract::$inner::<T>::from_request_parts(parts, state)
                    .await
                    .map(|axum::extract::$inner(value)| $name(value))
                    .map_err(|rejection| {
                        ApiError::bad_request(
                            $code,
                            format!(concat!($what, ": {}"), rejection.body_text()),
                        )
                    })
            }
        }
    };
}

api_extractor!(
    /// `Path` whose rejection is an [`ApiError`].
    ApiPath, Path, "malformed_path", "bad path parameter"
);
api_extractor!(
    /// `Query` whose rejection is an [`ApiError`].
    ApiQuery, Query, "malformed_query", "bad query string"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_errors_say_whether_retrying_helps_and_name_nothing_internal() {
        let cases = [
            (
                StorageError::NotFound("blobs/jobs/14/input".into()),
                StatusCode::NOT_FOUND,
            ),
            (
                StorageError::Corrupt("jobs row 14 in /var/lib/idlegrid".into()),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            (
                StorageError::Backend("connection to 10.0.0.5:5432 refused".into()),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
        ];
        for (error, status) in cases {
            let api = ApiError::from(error);
            assert_eq!(api.status, status);
            let shown = serde_json::to_string(&api.body).unwrap();
            for secret in ["blobs/", "/var/lib", "10.0.0.5", "row 14"] {
                assert!(!shown.contains(secret), "{shown}");
            }
        }
    }
}
