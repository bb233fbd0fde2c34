//! Self-service sign-up for customers and device owners, when the operator opens it (`serve
//! --signup customers,owners`). A new customer gets the grid's opening credit, so sign-up is
//! where free credit leaks: each address may make a few accounts an hour and the whole grid a
//! hundred ([`crate::state::signups`]), names are checked like every account's, and an operator
//! can suspend or delete what got through.

use crate::grid::Grid;
use crate::http::admin::{account_name, new_customer, new_owner};
use crate::http::error::{ApiError, ApiJson, ApiResult};
use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use idlegrid_api::ErrorBody;
use idlegrid_api::accounts::{SignedUp, Signup, SignupKind, SignupOptions};
use std::net::SocketAddr;
use std::sync::Arc;

/// Which sign-ups this grid takes.
#[utoipa::path(get, path = "/v1/signup", tag = "accounts",
    responses((status = 200, body = SignupOptions)))]
pub async fn options(State(grid): State<Arc<Grid>>) -> Json<SignupOptions> {
    Json(SignupOptions {
        customers: grid.config.signup.customers,
        owners: grid.config.signup.owners,
        opening_credit: grid.config.opening_credit,
    })
}

/// Sign up as a customer or a device owner, when the grid's operator allows it. The answer
/// holds the new account's first key (an API key or an enrollment token), shown this once.
#[utoipa::path(post, path = "/v1/signup", tag = "accounts", request_body = Signup,
    responses((status = 201, body = SignedUp), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 429, body = ErrorBody)))]
pub async fn sign_up(
    State(grid): State<Arc<Grid>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(request): ApiJson<Signup>,
) -> ApiResult<(StatusCode, Json<SignedUp>)> {
    let open = match request.kind {
        SignupKind::Customer => grid.config.signup.customers,
        SignupKind::Owner => grid.config.signup.owners,
    };
    if !open {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "signup_closed",
            "this grid does not take sign-ups of that kind; ask its operator for an account",
        ));
    }
    let name = account_name(&request.name)?;
    grid.signups
        .admit(peer.ip())
        .map_err(|why| ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", why))?;
    let (secret, id) = match request.kind {
        SignupKind::Customer => {
            let (key, id) = new_customer(&grid, name).await?;
            (key, id.0)
        }
        SignupKind::Owner => new_owner(&grid, name, None).await?,
    };
    tracing::info!(kind = ?request.kind, id, address = %peer.ip(), "account signed up");
    Ok((
        StatusCode::CREATED,
        Json(SignedUp {
            kind: request.kind,
            id,
            name: name.to_string(),
            secret,
        }),
    ))
}
