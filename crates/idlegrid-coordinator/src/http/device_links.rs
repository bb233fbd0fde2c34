//! Link codes: how a device joins its owner without the owner's enrollment token on it. The
//! owner asks for a code (`POST /v1/owner/link-codes`, in the dashboard or with
//! `idlegrid worker link`), types it on the device or opens the page link it comes with, and
//! the device registers with it (`POST /v1/workers/link`). A code is eight characters, works
//! once, for ten minutes; only its hash is kept (in the records, so any coordinator of a
//! shared grid redeems it). Guessing is held off by the size of the code space (32⁸ ≈ 10¹²)
//! and a coordinator-wide limit on attempts.

use crate::grid::Grid;
use crate::http::auth::{Enroller, hash_secret, new_secret};
use crate::http::error::{ApiError, ApiJson, ApiQuery, ApiResult};
use crate::http::tasks_api::{check_new_device, registered};
use crate::state::credentials::LINK_ATTEMPTS_PER_SEC;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use idlegrid_api::ErrorBody;
use idlegrid_api::tasks::{LinkCode, LinkWorker, Registered};
use std::sync::Arc;
use std::time::Duration;

/// How long a link code works.
pub const LINK_CODE_TTL: Duration = Duration::from_secs(600);
/// Characters of a code, without the dash.
const CODE_LEN: usize = 8;
/// Crockford's base32: no I, L, O or U, so a code read aloud or off a small screen is typed
/// right; [`normalize`] maps the look-alikes back.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A fresh code in canonical form (see [`normalize`]).
fn new_code() -> String {
    let bytes: [u8; CODE_LEN] = rand::random();
    bytes
        .iter()
        .map(|b| ALPHABET[usize::from(b % 32)] as char)
        .collect()
}

/// A canonical code as shown to people: `XXXX-XXXX`.
fn shown(canonical: &str) -> String {
    let (head, tail) = canonical.split_at(CODE_LEN / 2);
    format!("{head}-{tail}")
}

/// The code as typed, in canonical form: upper case, without spaces or dashes, look-alike
/// letters read as the digits they resemble; `None` when it cannot be a code.
fn normalize(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        })
        .collect();
    (code.len() == CODE_LEN && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

/// What the records keep of a code.
fn code_hash(canonical: &str) -> [u8; 32] {
    hash_secret(&format!("link:{canonical}"))
}

/// Where the dashboard that asks for a link code is served from.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LinkQuery {
    /// The dashboard's origin, e.g. `https://grid.example:8080`: the answer then holds the
    /// link page's whole address as a QR code.
    origin: Option<String>,
}

/// The link page's address as a QR code, for an `http(s)://host[:port]` origin.
fn qr_svg(origin: &str, path: &str) -> ApiResult<String> {
    let url = reqwest::Url::parse(origin).ok().filter(|u| {
        matches!(u.scheme(), "http" | "https")
            && u.host_str().is_some()
            && u.path() == "/"
            && u.query().is_none()
            && u.fragment().is_none()
            && u.username().is_empty()
            && origin.len() <= 200
    });
    let Some(url) = url else {
        return Err(ApiError::invalid(
            "invalid_origin",
            "origin must be like https://host or http://host:port, with nothing after it",
        ));
    };
    let address = format!("{}{path}", url.as_str().trim_end_matches('/'));
    let code = qrcode::QrCode::new(address.as_bytes())
        .map_err(|e| ApiError::invalid("invalid_origin", format!("no QR code for it: {e}")))?;
    Ok(code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build())
}

/// A code that links one device to the calling owner, for ten minutes.
#[utoipa::path(post, path = "/v1/owner/link-codes", tag = "accounts", params(LinkQuery),
    security(("enrollment_token" = [])),
    responses((status = 201, body = LinkCode), (status = 422, body = ErrorBody)))]
pub async fn create_link_code(
    State(grid): State<Arc<Grid>>,
    owner: Enroller,
    ApiQuery(query): ApiQuery<LinkQuery>,
) -> ApiResult<(StatusCode, Json<LinkCode>)> {
    let canonical = new_code();
    let code = shown(&canonical);
    let contribute_path = format!("{}#code={code}", idlegrid_api::paths::CONTRIBUTE);
    let qr_svg = query
        .origin
        .as_deref()
        .map(|origin| qr_svg(origin, &contribute_path))
        .transpose()?;
    let expires = idlegrid_storage::now_ms() + LINK_CODE_TTL.as_millis() as i64;
    grid.store
        .create_link_code(owner.0, code_hash(&canonical), expires)
        .await?;
    tracing::info!(owner = owner.0, "link code issued");
    Ok((
        StatusCode::CREATED,
        Json(LinkCode {
            contribute_path,
            code,
            expires_in_secs: LINK_CODE_TTL.as_secs(),
            qr_svg,
        }),
    ))
}

/// Register a device with its owner's link code; returns its worker token.
#[utoipa::path(post, path = "/v1/workers/link", tag = "tasks", request_body = LinkWorker,
    security(()),
    responses((status = 201, body = Registered),
              (status = 400, description = "the code is not eight letters and digits", body = ErrorBody),
              (status = 401, description = "the code is unknown, used or expired", body = ErrorBody),
              (status = 422, description = "a capability is out of range", body = ErrorBody),
              (status = 429, description = "too many attempts on this coordinator; retry shortly", body = ErrorBody)))]
pub async fn link_worker(
    State(grid): State<Arc<Grid>>,
    ApiJson(request): ApiJson<LinkWorker>,
) -> ApiResult<(StatusCode, Json<Registered>)> {
    if grid.link_attempts.check().is_err() {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "too many attempts to use link codes on this coordinator (at most \
                 {LINK_ATTEMPTS_PER_SEC} a second); retry after a second"
            ),
        ));
    }
    let canonical = normalize(&request.code).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_link_code",
            "a link code is eight letters and digits, like ABCD-2345",
        )
    })?;
    let name = check_new_device(&request.name, &request.capabilities)?;
    let token = new_secret(crate::state::credentials::WORKER_PREFIX);
    let worker = grid
        .store
        .register_linked_worker(
            code_hash(&canonical),
            idlegrid_storage::now_ms(),
            name,
            &request.capabilities,
            hash_secret(&token),
        )
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unknown_link_code",
                "this link code is unknown, already used or expired (codes work once, for ten \
                 minutes): ask for a new one in the dashboard or with `idlegrid worker link`",
            )
        })?;
    Ok(registered(
        &grid,
        worker,
        name,
        &request.capabilities,
        token,
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_qr_code_is_made_only_for_a_bare_http_origin() {
        let svg = super::qr_svg("https://grid.example:8443", "/contribute#code=ABCD-2345").unwrap();
        assert!(svg.starts_with("<?xml") && svg.contains("<svg"));
        for bad in [
            "javascript:alert(1)",
            "ftp://grid.example",
            "https://grid.example/path",
            "https://user@grid.example",
            "https://grid.example/?q=1",
            "grid.example",
        ] {
            assert!(super::qr_svg(bad, "/contribute").is_err(), "{bad}");
        }
    }

    use super::*;

    #[test]
    fn codes_are_read_as_typed() {
        for _ in 0..100 {
            let canonical = new_code();
            let code = shown(&canonical);
            assert_eq!(code.len(), CODE_LEN + 1);
            assert_eq!(normalize(&code), Some(canonical.clone()));
            assert_eq!(normalize(&code.to_lowercase()), Some(canonical.clone()));
            assert_eq!(normalize(&canonical), Some(canonical));
        }
        assert_eq!(normalize(" abcd - 2oil "), Some("ABCD2011".into()));
        assert_eq!(normalize("ABCD-234"), None, "too short");
        assert_eq!(normalize("ABCD-2345X"), None, "too long");
        assert_eq!(normalize("ABCD-23U5"), None, "U is not in the alphabet");
        assert_ne!(code_hash("ABCD2345"), code_hash("ABCD2346"));
    }
}
