//! The HTTP front: every handler of the Jobs API (customers), the Tasks API (worker devices),
//! accounts, billing, links, operations and the dashboard, the router over them and the OpenAPI
//! document generated from them. Handlers check what they are sent and read or write the
//! records and queues; the work itself is done by the [`pipeline`](crate::pipeline).

pub mod accounts_api;
pub mod admin;
pub mod apps_api;
pub mod auth;
pub mod billing;
pub mod checks;
pub mod device_links;
pub mod error;
pub mod jobs_api;
pub mod links;
pub mod ops;
pub mod secrets;
pub mod signup;
pub mod tasks_api;
pub mod uploads;
pub mod views;
pub mod web;

use crate::grid::Grid;
use axum::Json;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, patch, post, put};
use std::sync::Arc;
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

/// The OpenAPI document of both APIs.
#[derive(OpenApi)]
#[openapi(
    info(title = "idlegrid", description = "Jobs API (customers), Tasks API (worker devices), accounts and grid statistics of an idlegrid coordinator."),
    paths(
        jobs_api::create_job, jobs_api::upload_input, jobs_api::run_job, jobs_api::get_job,
        jobs_api::list_jobs, jobs_api::cancel_job, jobs_api::delete_job, jobs_api::clone_job, jobs_api::download_output, jobs_api::job_events, jobs_api::job_logs,
        jobs_api::jobs_events,
        jobs_api::job_chunks,
        apps_api::list_apps, apps_api::publish_app, apps_api::app_versions, apps_api::change_app,
        apps_api::list_published_apps,
        uploads::upload_part, uploads::list_parts, uploads::complete_upload,
        links::create_links,
        accounts_api::me, accounts_api::owner_devices, accounts_api::change_device,
        accounts_api::remove_device, accounts_api::earnings, accounts_api::request_payout,
        accounts_api::owner_payouts,
        secrets::list_secrets, secrets::create_secret, secrets::revoke_secret,
        secrets::rotate_secret, secrets::create_session,
        signup::options, signup::sign_up,
        admin::list_customers, admin::create_customer, admin::change_customer,
        admin::delete_customer, admin::list_owners, admin::create_owner, admin::change_owner,
        admin::delete_owner, admin::list_devices, admin::list_jobs, admin::list_payouts,
        admin::settle_payout,
        ops::grid_stats,
        jobs_api::webhook_deliveries,
        billing::estimate, billing::balance, billing::deposit,
        tasks_api::register, tasks_api::lease, tasks_api::heartbeat, tasks_api::report,
        tasks_api::lease_input, tasks_api::lease_output, tasks_api::bundle, tasks_api::me, tasks_api::update_capabilities,
        device_links::create_link_code, device_links::link_worker,
    ),
    modifiers(&SecuritySchemes),
    tags((name = "jobs", description = "Jobs API, for customers"),
         (name = "apps", description = "Apps to run: built in, and those customers and partners publish"),
         (name = "tasks", description = "Tasks API, for worker devices"),
         (name = "accounts", description = "What a secret stands for; an account's keys and sessions; device owners' devices, earnings and payouts; sign-up"),
         (name = "operators", description = "Customers, owners, devices, jobs and payouts, for operators"),
         (name = "billing", description = "Prices before a job runs, balances, earnings, deposits"),
         (name = "grid", description = "The grid's statistics, for operators"))
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, description) in [
            (
                "api_key",
                "A customer's API key (`igk_…`) or dashboard session (`igs_…`): the Jobs API.",
            ),
            (
                "enrollment_token",
                "A device owner's enrollment token (`ige_…`) or session: registers and manages devices.",
            ),
            (
                "worker_token",
                "A registered device's token (`igw_…`): the Tasks API.",
            ),
            (
                "operator_key",
                "An operator's key (`igo_…`) or session: the whole grid's accounts and statistics.",
            ),
        ] {
            let mut scheme = Http::new(HttpAuthScheme::Bearer);
            scheme.description = Some(description.to_string());
            components.add_security_scheme(name, SecurityScheme::Http(scheme));
        }
        // Answers every operation can give, whatever its own: a malformed request, a missing
        // or unknown secret, the wrong kind of secret, too many requests, and storage trouble.
        let common = [
            ("400", "malformed request (body, path or query)"),
            ("401", "missing or unknown credentials"),
            ("403", "credentials of the wrong kind for this endpoint"),
            (
                "429",
                "too many requests with this credential; retry after the Retry-After seconds",
            ),
            ("503", "the coordinator's storage failed; retry shortly"),
        ];
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.patch,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                let json_body = operation
                    .request_body
                    .as_ref()
                    .is_some_and(|body| match body {
                        utoipa::openapi::RefOr::T(body) => {
                            body.content.contains_key("application/json")
                        }
                        utoipa::openapi::RefOr::Ref(_) => false,
                    });
                let unsupported = ("415", "the body is not `Content-Type: application/json`");
                for (status, description) in
                    common.into_iter().chain(json_body.then_some(unsupported))
                {
                    operation
                        .responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| error_response(description));
                }
            }
        }
    }
}

fn error_response(description: &str) -> utoipa::openapi::RefOr<utoipa::openapi::Response> {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
        .into()
}

/// Largest JSON body of a report (outputs inline, base64).
const REPORT_BODY_LIMIT: usize = 32 * 1024 * 1024;

/// The router of both APIs over a grid.
pub fn router(grid: Arc<Grid>) -> Router {
    Router::new()
        .route(
            idlegrid_api::paths::JOBS,
            post(jobs_api::create_job).get(jobs_api::list_jobs),
        )
        .route(idlegrid_api::paths::JOBS_EVENTS, get(jobs_api::jobs_events))
        .route(idlegrid_api::paths::JOBS_ESTIMATE, post(billing::estimate))
        .route(idlegrid_api::paths::BALANCE, get(billing::balance))
        .route("/v1/customers/{id}/deposits", post(billing::deposit))
        .route(
            "/v1/jobs/{id}",
            get(jobs_api::get_job).delete(jobs_api::delete_job),
        )
        .route("/v1/jobs/{id}/input", put(jobs_api::upload_input))
        .route("/v1/jobs/{id}/run", post(jobs_api::run_job))
        .route("/v1/jobs/{id}/cancel", post(jobs_api::cancel_job))
        .route("/v1/jobs/{id}/clone", post(jobs_api::clone_job))
        .route("/v1/jobs/{id}/output", get(jobs_api::download_output))
        .route("/v1/jobs/{id}/events", get(jobs_api::job_events))
        .route("/v1/jobs/{id}/logs", get(jobs_api::job_logs))
        .route("/v1/jobs/{id}/tasks", get(jobs_api::job_chunks))
        .route("/v1/jobs/{id}/input/parts", get(uploads::list_parts))
        .route(
            "/v1/jobs/{id}/input/parts/{part}",
            put(uploads::upload_part),
        )
        .route(
            "/v1/jobs/{id}/input/complete",
            post(uploads::complete_upload),
        )
        .route("/v1/jobs/{id}/links", post(links::create_links))
        .route("/v1/links/{token}/output", get(links::linked_output))
        .route("/v1/links/{token}/hls/{*path}", get(links::linked_hls_file))
        .route(idlegrid_api::paths::ME, get(accounts_api::me))
        .route(
            idlegrid_api::paths::OWNER_DEVICES,
            get(accounts_api::owner_devices),
        )
        .route(idlegrid_api::paths::OWNERS, post(admin::create_owner))
        .route(
            "/v1/owner/devices/{id}",
            patch(accounts_api::change_device).delete(accounts_api::remove_device),
        )
        .route(
            idlegrid_api::paths::OWNER_EARNINGS,
            get(accounts_api::earnings),
        )
        .route(
            idlegrid_api::paths::OWNER_PAYOUTS,
            get(accounts_api::owner_payouts).post(accounts_api::request_payout),
        )
        .route(
            idlegrid_api::paths::SECRETS,
            get(secrets::list_secrets).post(secrets::create_secret),
        )
        .route("/v1/secrets/{id}", delete(secrets::revoke_secret))
        .route("/v1/secrets/{id}/rotate", post(secrets::rotate_secret))
        .route(idlegrid_api::paths::SESSIONS, post(secrets::create_session))
        .route(
            idlegrid_api::paths::SIGNUP,
            get(signup::options).post(signup::sign_up),
        )
        .route(
            idlegrid_api::paths::ADMIN_CUSTOMERS,
            get(admin::list_customers).post(admin::create_customer),
        )
        .route(
            "/v1/admin/customers/{id}",
            patch(admin::change_customer).delete(admin::delete_customer),
        )
        .route(
            idlegrid_api::paths::ADMIN_OWNERS,
            get(admin::list_owners).post(admin::create_owner),
        )
        .route(
            "/v1/admin/owners/{id}",
            patch(admin::change_owner).delete(admin::delete_owner),
        )
        .route(idlegrid_api::paths::ADMIN_DEVICES, get(admin::list_devices))
        .route(idlegrid_api::paths::ADMIN_JOBS, get(admin::list_jobs))
        .route(idlegrid_api::paths::ADMIN_PAYOUTS, get(admin::list_payouts))
        .route("/v1/admin/payouts/{id}/settle", post(admin::settle_payout))
        .route(idlegrid_api::paths::GRID_STATS, get(ops::grid_stats))
        .route("/", get(web::index))
        .route("/ui/{*path}", get(web::asset))
        .route(idlegrid_api::paths::CONTRIBUTE, get(web::contribute))
        .nest_service(
            "/runtimes",
            web::runtimes(grid.config.browser_runtimes.clone()),
        )
        .route(
            "/v1/jobs/{id}/webhook/deliveries",
            get(jobs_api::webhook_deliveries),
        )
        .route(
            idlegrid_api::paths::APPS,
            get(apps_api::list_apps)
                .post(apps_api::publish_app)
                .layer(DefaultBodyLimit::max(apps_api::PUBLISH_BODY_LIMIT)),
        )
        .route("/v1/apps/{name}/versions", get(apps_api::app_versions))
        .route(
            idlegrid_api::paths::ADMIN_APPS,
            get(apps_api::list_published_apps),
        )
        .route("/v1/admin/apps/{name}", post(apps_api::change_app))
        .route(
            idlegrid_api::paths::WORKERS_REGISTER,
            post(tasks_api::register),
        )
        .route(
            idlegrid_api::paths::WORKERS_LINK,
            post(device_links::link_worker),
        )
        .route(
            idlegrid_api::paths::OWNER_LINK_CODES,
            post(device_links::create_link_code),
        )
        .route(idlegrid_api::paths::WORKERS_ME, get(tasks_api::me))
        .route(
            idlegrid_api::paths::WORKERS_ME_CAPABILITIES,
            put(tasks_api::update_capabilities),
        )
        .route(idlegrid_api::paths::LEASES, post(tasks_api::lease))
        .route(
            idlegrid_api::paths::LEASES_HEARTBEAT,
            post(tasks_api::heartbeat),
        )
        .route(
            idlegrid_api::paths::LEASES_REPORT,
            post(tasks_api::report).layer(DefaultBodyLimit::max(REPORT_BODY_LIMIT)),
        )
        .route("/v1/leases/{id}/input", get(tasks_api::lease_input))
        .route("/v1/leases/{id}/output", put(tasks_api::lease_output))
        .route("/v1/bundles/{sha256}", get(tasks_api::bundle))
        .route(
            idlegrid_api::paths::OPENAPI,
            get(|| async { Json(ApiDoc::openapi()) }),
        )
        .route(
            idlegrid_api::paths::HEALTH,
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/livez", get(crate::http::ops::livez))
        .route("/readyz", get(crate::http::ops::readyz))
        .route("/metrics", get(crate::http::ops::metrics))
        .fallback(|| async {
            crate::http::error::ApiError::not_found(
                "no_such_endpoint",
                "there is no such endpoint; see /openapi.json",
            )
        })
        .layer(axum::middleware::from_fn(crate::http::ops::track))
        .with_state(grid)
}
