//! The Computing Platform's web UI: the dashboard pages for customers, device owners and
//! operators, served by the coordinator itself from `web/ui/` (plain HTML, CSS and JavaScript
//! modules, nothing fetched from elsewhere). Release builds embed the files; debug builds read
//! them from the source tree at run time, so an edited page shows on reload.
//!
//! The pages talk to the coordinator only through the public APIs, with the secret the person
//! signed in with; this module knows nothing of jobs or devices.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(rust_embed::RustEmbed)]
#[folder = "web/ui/"]
struct Ui;

/// What the pages may load: only this origin's scripts, styles, images and media; no inline
/// script, no framing by other sites.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; object-src 'none'; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// `GET /`: the dashboard's page.
pub async fn index() -> Response {
    file("index.html")
}

/// `GET /ui/{path}`: one of the dashboard's files.
pub async fn asset(Path(path): Path<String>) -> Response {
    file(&path)
}

fn file(path: &str) -> Response {
    let Some(found) = Ui::get(path) else {
        return crate::error::ApiError::not_found(
            "no_such_page",
            format!("the dashboard has no file {path:?}"),
        )
        .into_response();
    };
    let mime = found.metadata.mimetype().to_string();
    let mut response = (StatusCode::OK, found.data.into_owned()).into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&mime) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // The pages change with the binary; revalidating each load keeps them in step with the API.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
