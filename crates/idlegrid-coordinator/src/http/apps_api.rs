//! Apps on the Jobs API: the apps an account may run (built in, its own published ones and the
//! public ones), publishing a version of an app, its versions, and an operator making one
//! public. What a job's `app` names is resolved here too ([`resolve_app`]).

use crate::apps::App;
use crate::apps::published::{self, MAX_BUNDLE_BYTES};
use crate::grid::Grid;
use crate::http::auth::{Customer, Operator};
use crate::http::error::{ApiError, ApiJson, ApiPath, ApiResult};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use idlegrid_api::jobs::{AppInfo, ChangeApp};
use idlegrid_api::{Bundle, ErrorBody, TenantId};
use idlegrid_storage::records::{AppVersion, Published};
use std::sync::Arc;

/// Largest body of `POST /v1/apps`: a bundle at its limit, with room for JSON's escapes.
pub const PUBLISH_BODY_LIMIT: usize = 2 * published::MAX_BUNDLE_WITH_WHEELS;

/// An app a job names, resolved for the account that runs it.
pub struct Resolved {
    /// The app.
    pub app: Arc<App>,
    /// The published version it is (its bundle is kept already); `None` for a built-in app.
    pub published: Option<AppVersion>,
}

/// What `reference` (`name` or `name@version`; the latest version when none is given) names
/// for `tenant`: a built-in app, or a version of a published app it may run. The error says
/// which apps there are to run.
pub async fn resolve_app(grid: &Grid, tenant: TenantId, reference: &str) -> ApiResult<Resolved> {
    let (name, version) = published::split_reference(reference);
    if let Some(app) = grid.apps.get(name) {
        return match version {
            Some(v) if v != app.manifest.version => Err(ApiError::invalid(
                "unknown_app",
                format!(
                    "app {name} is built in at version {} only, not {v}",
                    app.manifest.version
                ),
            )),
            _ => Ok(Resolved {
                app,
                published: None,
            }),
        };
    }
    let versions = grid.store.app_versions(name).await?;
    if !versions
        .first()
        .is_some_and(|v| v.tenant == tenant || v.public)
    {
        return Err(ApiError::invalid(
            "unknown_app",
            format!(
                "there is no app {name:?} you may run; built in: {} (GET /v1/apps lists them \
                 all)",
                grid.apps.names()
            ),
        ));
    }
    let chosen = match version {
        Some(v) => versions.iter().find(|x| x.version == v).ok_or_else(|| {
            ApiError::invalid(
                "unknown_version",
                format!(
                    "app {name} has no version {v}; its versions: {}",
                    versions
                        .iter()
                        .map(|x| x.version.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?,
        None => versions
            .iter()
            .max_by_key(|x| published::version_key(&x.version))
            .ok_or_else(|| {
                ApiError::invalid("unknown_app", format!("app {name} has no version"))
            })?,
    };
    let app = grid.apps.remember(chosen).ok_or_else(|| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unreadable_app",
            format!("app {name} {} cannot be read", chosen.version),
        )
    })?;
    Ok(Resolved {
        app,
        published: Some(chosen.clone()),
    })
}

/// A published version as the API shows it.
fn info(version: &AppVersion) -> Option<AppInfo> {
    Some(AppInfo {
        manifest: serde_json::from_str(&version.manifest).ok()?,
        bundle_sha256: Some(version.bundle_sha256.clone()),
        publisher: Some(version.tenant),
        public: version.public,
        published_at: Some(idlegrid_api::timestamp(version.created_ms)),
    })
}

/// The apps this account may run: those built in, then the latest version of each published
/// app it may run (its own and the public ones).
#[utoipa::path(get, path = "/v1/apps", tag = "apps", security(("api_key" = [])),
    responses((status = 200, body = Vec<AppInfo>)))]
pub async fn list_apps(
    State(grid): State<Arc<Grid>>,
    customer: Customer,
) -> ApiResult<Json<Vec<AppInfo>>> {
    let mut apps: Vec<AppInfo> = grid
        .apps
        .all()
        .map(|app| AppInfo {
            manifest: app.manifest.clone(),
            bundle_sha256: (!app.manifest.customer_script).then(|| app.bundle(None).1),
            publisher: None,
            public: true,
            published_at: None,
        })
        .collect();
    apps.extend(
        grid.store
            .latest_apps(Some(customer.0))
            .await?
            .iter()
            .filter_map(info),
    );
    Ok(Json(apps))
}

/// Publishes a version of an app: its bundle (manifest and files) is checked, kept by its
/// hash and recorded under the app's name, which belongs to the account that published it
/// first. Versions never change: publishing one again is fine only with the same bundle.
#[utoipa::path(post, path = "/v1/apps", tag = "apps", request_body = Bundle,
    security(("api_key" = [])),
    responses((status = 201, body = AppInfo, description = "published"),
        (status = 200, body = AppInfo, description = "this version was published already, as it is"),
        (status = 409, body = ErrorBody, description = "the version exists with other contents, or the name is another account's"),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn publish_app(
    State(grid): State<Arc<Grid>>,
    customer: Customer,
    ApiJson(bundle): ApiJson<Bundle>,
) -> ApiResult<(StatusCode, Json<AppInfo>)> {
    // Kept as workers are served it (without the coordinator's parameters schema): the hash
    // is of these bytes.
    let serialized = |bundle: &Bundle| {
        serde_json::to_vec(&published::served(bundle)).map_err(|e| {
            ApiError::invalid(
                "invalid_bundle",
                format!("the bundle does not serialize: {e}"),
            )
        })
    };
    let bytes = serialized(&bundle)?;
    let text_bytes = if bundle.wheels.is_empty() {
        bytes.len()
    } else {
        // Without its wheels (not cloned: they may be tens of MiB).
        serialized(&Bundle {
            manifest: bundle.manifest.clone(),
            files: bundle.files.clone(),
            wheels: Default::default(),
        })?
        .len()
    };
    let too_large = |what: &str, bytes: usize, limit: usize| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "bundle_too_large",
            format!("the {what} is {bytes} bytes; the limit is {limit}"),
        )
    };
    if text_bytes > MAX_BUNDLE_BYTES {
        return Err(too_large("bundle", text_bytes, MAX_BUNDLE_BYTES));
    }
    if bytes.len() > published::MAX_BUNDLE_WITH_WHEELS {
        return Err(too_large(
            "bundle with its wheels",
            bytes.len(),
            published::MAX_BUNDLE_WITH_WHEELS,
        ));
    }
    published::check_bundle(&bundle, text_bytes, &grid.apps)
        .map_err(|m| ApiError::invalid("invalid_bundle", m))?;
    // A published version is kept for ever: it counts against the storage quota (a version
    // published already, as it is, takes no more room).
    let room = crate::quotas::room(&grid, customer.0)
        .await?
        .map_err(crate::http::jobs_api::quota_exceeded)?
        .unwrap_or(u64::MAX);
    let published_already = grid
        .store
        .app_versions(&bundle.manifest.name)
        .await?
        .iter()
        .any(|v| v.version == bundle.manifest.version);
    if bytes.len() as u64 > room && !published_already {
        return Err(crate::http::jobs_api::quota_exceeded(format!(
            "the bundle is {} bytes and your storage quota has room for {room}: ask the grid's \
             operator for more",
            bytes.len()
        )));
    }
    let platforms =
        published::check_wheels(&bundle).map_err(|m| ApiError::invalid("invalid_bundle", m))?;
    // Jobs of it run only where its packages do: the platforms are part of its requirements
    // as recorded (not as served).
    let mut bundle = bundle;
    bundle.manifest.requirements.platforms = platforms;
    let sha = idlegrid_storage::blobs::sha256_hex(&bytes);
    let key = crate::blob_keys::bundle(&sha);
    let size = bytes.len() as u64;
    if grid.blobs.size(&key).await?.is_none() {
        grid.blobs.put_bytes(&key, bytes.into()).await?;
    }
    let manifest = &bundle.manifest;
    let version = AppVersion {
        name: manifest.name.clone(),
        version: manifest.version.clone(),
        tenant: customer.0,
        public: false,
        manifest: serde_json::to_string(manifest).unwrap_or_default(),
        bundle_sha256: sha,
        bundle_bytes: size,
        created_ms: idlegrid_storage::now_ms(),
    };
    let status = match grid.store.publish_app(&version).await? {
        Published::Created => StatusCode::CREATED,
        Published::Same => StatusCode::OK,
        Published::Exists => {
            return Err(ApiError::conflict(
                "version_exists",
                format!(
                    "app {} {} is published already with other contents: versions never \
                     change, so publish this one under a new version",
                    manifest.name, manifest.version
                ),
            ));
        }
        Published::NameTaken => {
            return Err(ApiError::conflict(
                "name_taken",
                format!(
                    "the app name {:?} belongs to another account: choose another",
                    manifest.name
                ),
            ));
        }
    };
    tracing::info!(app = %manifest.name, version = %manifest.version, tenant = %customer.0, "app published");
    // As recorded (a version published before keeps its own time).
    let kept = grid
        .store
        .app_versions(&manifest.name)
        .await?
        .into_iter()
        .find(|v| v.version == manifest.version)
        .unwrap_or(version);
    let shown = info(&kept).ok_or_else(|| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unreadable_app",
            "the app's manifest cannot be read back",
        )
    })?;
    Ok((status, Json(shown)))
}

/// The versions of a published app this account may run, oldest first.
#[utoipa::path(get, path = "/v1/apps/{name}/versions", tag = "apps",
    params(("name" = String, Path, description = "The app's name")),
    security(("api_key" = [])),
    responses((status = 200, body = Vec<AppInfo>), (status = 404, body = ErrorBody)))]
pub async fn app_versions(
    State(grid): State<Arc<Grid>>,
    customer: Customer,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Vec<AppInfo>>> {
    if let Some(app) = grid.apps.get(&name) {
        return Ok(Json(vec![AppInfo {
            manifest: app.manifest.clone(),
            bundle_sha256: (!app.manifest.customer_script).then(|| app.bundle(None).1),
            publisher: None,
            public: true,
            published_at: None,
        }]));
    }
    let versions = grid.store.app_versions(&name).await?;
    if !versions
        .first()
        .is_some_and(|v| v.tenant == customer.0 || v.public)
    {
        return Err(ApiError::not_found(
            "no_such_app",
            format!("there is no app {name:?} you may see"),
        ));
    }
    Ok(Json(versions.iter().filter_map(info).collect()))
}

/// Operators: every published app, at its latest version, public or not (to choose those to
/// make public).
#[utoipa::path(get, path = "/v1/admin/apps", tag = "operators",
    security(("operator_key" = [])),
    responses((status = 200, body = Vec<AppInfo>)))]
pub async fn list_published_apps(
    State(grid): State<Arc<Grid>>,
    _operator: Operator,
) -> ApiResult<Json<Vec<AppInfo>>> {
    Ok(Json(
        grid.store
            .latest_apps(None)
            .await?
            .iter()
            .filter_map(info)
            .collect(),
    ))
}

/// Operators: makes a published app public (every account may see and run it) or private
/// again (its publisher's only).
#[utoipa::path(post, path = "/v1/admin/apps/{name}", tag = "operators", request_body = ChangeApp,
    params(("name" = String, Path, description = "The app's name")),
    security(("operator_key" = [])),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn change_app(
    State(grid): State<Arc<Grid>>,
    _operator: Operator,
    ApiPath(name): ApiPath<String>,
    ApiJson(change): ApiJson<ChangeApp>,
) -> ApiResult<StatusCode> {
    if grid.store.set_app_public(&name, change.public).await? {
        tracing::info!(app = %name, public = change.public, "app visibility changed");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(
            "no_such_app",
            format!("there is no published app {name:?}"),
        ))
    }
}
