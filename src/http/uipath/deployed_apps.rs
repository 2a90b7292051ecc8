//! Deploying, listing, editing deployed apps, and the routing-name check.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::odata::{self, ODataCollection};
use super::params::ListParams;
use crate::{
    access::Permission,
    app::AppState,
    auth::scopes::ScopeRule,
    domain::{RoutingName, Tags, Title},
    http::extract::{FolderKeyHeader, JsonBody, OptionalJsonBody},
    http::problem::{ApiError, Problem},
    http::{auth::UiPathCaller, idempotency},
    service::{
        deployments::{self, DeployOptions, Edit, MaintenancePatch},
        listing::{self, ListedDeployment},
    },
};

/// The optional deploy body; the whole body may be left out.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeployRequest {
    #[serde(default)]
    pub tags: Vec<String>,
    /// Default: the app's title.
    pub title: Option<String>,
    /// Default: generated from the app's system name; must be free in the tenant.
    pub routing_name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeployResponse {
    /// The new deployment's id.
    pub id: String,
}

/// Deploy a published version
///
/// Deploys into the `X-UiPath-FolderKey` folder and records a `deploy` event.
#[utoipa::path(
    post,
    path = "/models/{app_system_name}/publish/versions/{version}/deploy",
    tag = "UiPath Apps",
    params(
        ("app_system_name" = String, Path, description = "The app's system name"),
        ("version" = i32, Path, description = "A published integer version (deployVersion)"),
        super::FolderHeader,
    ),
    request_body(content = Option<DeployRequest>, description = "Optional"),
    responses(
        (status = 200, description = "Deployed", body = DeployResponse),
        (status = 404, description = "No such app, or the version is not published", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn deploy(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: UiPathCaller,
    folder_key: FolderKeyHeader,
    path: web::Path<(String, i32)>,
    body: OptionalJsonBody<DeployRequest>,
) -> Result<HttpResponse, ApiError> {
    let needs = caller.needs(Permission::AppsCreate)?;
    let folder = needs.in_folder(&state.db, &folder_key).await?.folder;
    if let Some(answer) = idempotency::claim(&req).await? {
        return Ok(answer);
    }
    let (system_name, version) = path.into_inner();
    let body = body.0;
    let options = DeployOptions {
        title: body.title.as_deref().map(Title::parse).transpose()?,
        routing_name: body
            .routing_name
            .as_deref()
            .map(RoutingName::parse)
            .transpose()?,
        tags: Tags::parse(&body.tags)?,
    };
    let deployment = deployments::deploy(
        &state.db,
        &folder,
        &system_name,
        version,
        options,
        &caller.actor(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(DeployResponse { id: deployment.id }))
}

/// A deployed app as UiPath's list call shows it. `systemName`, `semVersion` and
/// `deployVersion` are the names UiPath's clients read, beside uplift's own.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeployedApp {
    pub id: String,
    pub app_system_name: String,
    /// The same as `appSystemName`.
    pub system_name: String,
    pub title: String,
    pub description: String,
    /// The integer version the deployment runs.
    pub version: i32,
    /// The same as `version`.
    pub deploy_version: i32,
    /// The package version (semantic version) of `version`.
    pub sem_version: String,
    pub routing_name: String,
    pub tags: Vec<String>,
    /// The latest published integer version of the app (null when none is published).
    pub latest_version: Option<i32>,
    /// The package version of `latestVersion`.
    pub latest_sem_version: Option<String>,
    /// True when `latestVersion` is newer than `version`: the bulk call would upgrade it.
    pub is_outdated: bool,
}

impl From<ListedDeployment> for DeployedApp {
    fn from(d: ListedDeployment) -> Self {
        let is_outdated = d.is_outdated();
        let (latest_version, latest_sem_version) = match d.latest {
            Some(l) => (Some(l.version), Some(l.package_version)),
            None => (None, None),
        };
        DeployedApp {
            latest_version,
            latest_sem_version,
            is_outdated,
            id: d.id,
            system_name: d.app_system_name.clone(),
            app_system_name: d.app_system_name,
            title: d.title,
            description: d.description,
            version: d.version,
            deploy_version: d.version,
            sem_version: d.package_version,
            routing_name: d.routing_name,
            tags: d.tags,
        }
    }
}

/// Get deployed apps
///
/// The folder's deployments, a page at a time, in a stable order, each with its app's
/// latest published version and whether it is behind it; filtered by search text,
/// tags, apps and `outdated`.
#[utoipa::path(
    get,
    path = "/models/deployed/apps",
    tag = "UiPath Apps",
    params(ListParams, super::FolderHeader),
    responses((status = 200, description = "A page of deployed apps", body = ODataCollection<DeployedApp>)),
)]
pub async fn list_deployed_apps(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: UiPathCaller,
    folder_key: FolderKeyHeader,
) -> Result<HttpResponse, ApiError> {
    let needs = caller.needs(Permission::AppsView)?;
    let list_query = ListParams::from_query(req.query_string())?;
    let folder = needs.in_folder(&state.db, &folder_key).await?.folder;
    let (count, items) =
        listing::list(&state.db, caller.tenant_id(), folder.id, &list_query).await?;
    let items: Vec<DeployedApp> = items.into_iter().map(DeployedApp::from).collect();
    Ok(HttpResponse::Ok().json(odata::collection(&req, "DeployedApps", count, items)))
}

/// Every field is optional; a field left out keeps its value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EditRequest {
    /// Moves the deployment to this published version.
    pub version: Option<i32>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub maintenance_mode_data: Option<MaintenanceModeData>,
    pub tags: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceModeData {
    pub is_maintenance_mode_enabled: Option<bool>,
    pub maintenance_mode_url: Option<String>,
    pub maintenance_excluded_users: Option<Vec<String>>,
}

/// A deployed app with its maintenance-mode settings, as the edit call answers.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeployedAppDetails {
    #[serde(flatten)]
    pub app: DeployedApp,
    pub maintenance_mode_data: MaintenanceMode,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceMode {
    pub is_maintenance_mode_enabled: bool,
    pub maintenance_mode_url: Option<String>,
    pub maintenance_excluded_users: Vec<String>,
}

/// Edit a deployed app
///
/// Moving `version` goes only to a published version and records an `edit` event.
#[utoipa::path(
    patch,
    path = "/models/deployed/apps/{deployed_app_id}",
    tag = "UiPath Apps",
    params(("deployed_app_id" = String, Path, description = "The deployment id"), super::FolderHeader),
    request_body = EditRequest,
    responses(
        (status = 200, description = "The edited deployed app", body = DeployedAppDetails),
        (status = 404, description = "No such deployment in this folder", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn edit_deployed_app(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: UiPathCaller,
    folder_key: FolderKeyHeader,
    path: web::Path<String>,
    body: JsonBody<EditRequest>,
) -> Result<HttpResponse, ApiError> {
    let needs = caller.needs(Permission::AppsEdit)?;
    let folder = needs.in_folder(&state.db, &folder_key).await?.folder;
    if let Some(answer) = idempotency::claim(&req).await? {
        return Ok(answer);
    }
    let body = body.0;
    let edit = Edit {
        version: body.version,
        title: body.title.as_deref().map(Title::parse).transpose()?,
        description: body.description,
        maintenance: body.maintenance_mode_data.map(|m| MaintenancePatch {
            enabled: m.is_maintenance_mode_enabled,
            url: m.maintenance_mode_url,
            excluded_users: m.maintenance_excluded_users,
        }),
        tags: body.tags.as_deref().map(Tags::parse).transpose()?,
    };
    let id = path.into_inner();
    let (deployment, system_name) = deployments::edit(
        &state.db,
        caller.tenant_id(),
        folder.id,
        &id,
        edit,
        &caller.actor(),
    )
    .await?
    .ok_or_else(|| deployment_not_found(&id))?;
    let tags = listing::tags_of(&state.db, std::slice::from_ref(&deployment.id))
        .await?
        .remove(&deployment.id)
        .unwrap_or_default();
    let package_version =
        listing::package_versions_of(&state.db, &[(deployment.app_id, deployment.version)])
            .await?
            .remove(&(deployment.app_id, deployment.version))
            .unwrap_or_default();
    let latest = listing::latest_of(&state.db, &[deployment.app_id])
        .await?
        .remove(&deployment.app_id);
    let maintenance = MaintenanceMode {
        is_maintenance_mode_enabled: deployment.maintenance_enabled,
        maintenance_mode_url: deployment.maintenance_url.clone(),
        maintenance_excluded_users: serde_json::from_str(&deployment.maintenance_excluded_users)
            .unwrap_or_default(),
    };
    Ok(HttpResponse::Ok().json(DeployedAppDetails {
        app: listing::listed(deployment, system_name, package_version, tags, latest).into(),
        maintenance_mode_data: maintenance,
    }))
}

pub fn deployment_not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no deployed app {id} in this folder"))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NameCheck {
    pub routing_name: String,
    /// True when no deployment in the tenant uses the name.
    pub is_unique: bool,
}

/// Check app name uniqueness
///
/// Whether a routing name is free in the caller's tenant.
#[utoipa::path(
    get,
    path = "/models/deployed/apps/uniquename/check/{routing_name}",
    tag = "UiPath Apps",
    params(("routing_name" = String, Path, description = "Lowercase letters, digits and inner hyphens")),
    responses((status = 200, description = "Whether the name is free", body = NameCheck)),
)]
pub async fn check_unique_name(
    state: web::Data<AppState>,
    caller: UiPathCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    // Any token that may read: the answer is about the tenant's names, no folder's.
    caller.principal.require(ScopeRule::Read)?;
    let name = RoutingName::parse(&path.into_inner())?;
    let free =
        deployments::is_routing_name_free(&state.db, caller.tenant_id(), name.as_str()).await?;
    Ok(HttpResponse::Ok().json(NameCheck {
        routing_name: name.into_string(),
        is_unique: free,
    }))
}
