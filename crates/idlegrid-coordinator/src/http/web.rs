//! The Computing Platform's web UI: the dashboard pages for customers, device owners and
//! operators, served by the coordinator itself from `web/ui/` (plain HTML, CSS and JavaScript
//! modules, nothing fetched from elsewhere). Release builds embed the files; debug builds read
//! them from the source tree at run time, so an edited page shows on reload.
//!
//! The pages talk to the coordinator only through the public APIs, with the secret the person
//! signed in with; this module knows nothing of jobs or devices.
//!
//! `/contribute` is the browser worker: a page that leases tasks and runs them in a Web Worker
//! (`ui/runner.js`, with `ui/runner.py` and `ui/runner-rules.json`) with Pyodide and
//! ffmpeg.wasm, which are served from the directory `scripts/browser-runtimes.sh` fills from
//! npm (`/runtimes/`). That page and its scripts are cross-origin isolated (COOP + COEP), so
//! browsers that can run multi-threaded WebAssembly may, and their policy allows compiling
//! WebAssembly, which the dashboard's does not.

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

/// The browser worker's policy: the dashboard's, plus compiling WebAssembly (Pyodide,
/// ffmpeg.wasm) and Web Workers from this origin.
const CONTRIBUTE_POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     worker-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; \
     object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// `GET /`: the dashboard's page.
pub async fn index() -> Response {
    file("index.html")
}

/// `GET /contribute`: the browser worker's page.
pub async fn contribute() -> Response {
    file("contribute.html")
}

/// `GET /ui/{path}`: one of the dashboard's files.
pub async fn asset(Path(path): Path<String>) -> Response {
    file(&path)
}

/// Whether a UI file belongs to the browser worker (isolated, may compile WebAssembly).
fn is_contribute(path: &str) -> bool {
    path.starts_with("contribute") || path.starts_with("runner")
}

/// Makes a response part of the cross-origin isolated browser worker.
fn isolate(headers: &mut axum::http::HeaderMap) {
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        "cross-origin-embedder-policy",
        HeaderValue::from_static("require-corp"),
    );
    headers.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
}

/// The service behind `/runtimes/`: the files of `dir` (conditional requests and ranges by
/// `tower_http`), isolated like the page that loads them. `scripts/browser-runtimes.sh` puts
/// each runtime in a directory named by its version, so what is in one never changes: browsers
/// keep those files for a year without asking again (a returning page loads its 46 MB of
/// WebAssembly from its cache, and each ffmpeg.wasm run's 64 thread scripts without a round
/// trip). Anything else, `runtimes.json` (which names the directories) above all, is
/// revalidated on each load. Without a directory, a 404 that says how to get one.
pub fn runtimes(dir: Option<std::path::PathBuf>) -> axum::Router {
    match dir {
        Some(dir) => axum::Router::new()
            .fallback_service(tower_http::services::ServeDir::new(dir))
            .layer(axum::middleware::from_fn(
                |request: axum::extract::Request, next: axum::middleware::Next| async move {
                    let versioned = in_versioned_dir(request.uri().path());
                    let mut response = next.run(request).await;
                    let keep = versioned && response.status().is_success();
                    let headers = response.headers_mut();
                    isolate(headers);
                    headers.insert(
                        header::X_CONTENT_TYPE_OPTIONS,
                        HeaderValue::from_static("nosniff"),
                    );
                    headers.insert(
                        header::CACHE_CONTROL,
                        HeaderValue::from_static(if keep {
                            "public, max-age=31536000, immutable"
                        } else {
                            "no-cache"
                        }),
                    );
                    response
                },
            )),
        None => axum::Router::new().fallback(|| async {
            crate::http::error::ApiError::not_found(
                "no_browser_runtimes",
                "this coordinator serves no browser runtimes: run scripts/browser-runtimes.sh \
                 and start it with --browser-runtimes DIR",
            )
        }),
    }
}

/// Whether `path` (under `/runtimes`) is a file in a directory named by a version, as
/// `scripts/browser-runtimes.sh` names them: `/pyodide-314.0.8/pyodide.mjs` is,
/// `/runtimes.json` and `/ffmpeg/ffmpeg-core.js` (an earlier, unversioned layout) are not.
fn in_versioned_dir(path: &str) -> bool {
    let Some((dir, file)) = path.trim_start_matches('/').split_once('/') else {
        return false;
    };
    let version = dir.rsplit_once('-').map_or("", |(_, v)| v);
    !file.is_empty()
        && version.contains('.')
        && version
            .split('.')
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn file(path: &str) -> Response {
    let Some(found) = Ui::get(path) else {
        return crate::http::error::ApiError::not_found(
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
    if is_contribute(path) {
        isolate(headers);
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTRIBUTE_POLICY),
        );
    } else {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // The pages change with the binary; revalidating each load keeps them in step with the API.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::in_versioned_dir;

    #[test]
    fn only_files_in_versioned_directories_are_kept() {
        for path in [
            "/pyodide-314.0.8/pyodide.mjs",
            "/ffmpeg-core-mt-0.12.10/ffmpeg-core.worker.js",
        ] {
            assert!(in_versioned_dir(path), "{path}");
        }
        for path in [
            "/runtimes.json",
            "/ffmpeg/ffmpeg-core.js",
            "/pyodide-314.0.8/",
            "/pyodide-latest/pyodide.mjs",
            "/pyodide-3..1/pyodide.mjs",
            "/pyodide-314/pyodide.mjs",
        ] {
            assert!(!in_versioned_dir(path), "{path}");
        }
    }
}
