//! Publishing coded apps and reading the published catalogue.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::odata::{self, ODataCollection};
use super::params::{PublishedAppsParams, PublishedVersionsParams};
use crate::{
    access::{self, Permission},
    app::AppState,
    domain::Title,
    http::extract::JsonBody,
    http::problem::{ApiError, Problem},
    http::{auth::UiPathCaller, idempotency},
    service::catalog::{self, AppDefaults},
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublishRequest {
    /// The coded app's package; its first publish creates the app.
    pub package_name: String,
    /// A semantic version; each new one becomes the next `deployVersion`.
    pub package_version: String,
    /// Accepted for UiPath compatibility and ignored: the tenant comes from the token.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    #[allow(dead_code)]
    pub tenant_name: Option<serde::de::IgnoredAny>,
    /// The app's title when this publish creates the app (default: the package name);
    /// later publishes leave the title as it is.
    #[serde(default)]
    pub title: Option<String>,
    /// Any JSON, accepted for UiPath compatibility (its clients send the app's schema)
    /// and ignored.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    #[allow(dead_code)]
    pub schema: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublishResponse {
    pub system_name: String,
    pub deploy_version: i32,
    /// The published app version under the names UiPath's clients read.
    pub definition: PublishedDefinition,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublishedDefinition {
    pub system_name: String,
    /// The app's title.
    pub title: String,
    pub package_name: String,
    pub package_version: String,
    /// The same as the answer's `deployVersion`.
    pub deploy_version: i32,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublishedApp {
    pub system_name: String,
    pub title: String,
    /// The latest published version.
    pub deploy_version: i32,
    pub package_name: String,
    pub package_version: String,
    /// The same as `packageVersion`, as UiPath's clients read it.
    pub app_version: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublishedVersion {
    pub system_name: String,
    pub deploy_version: i32,
    pub package_version: String,
    /// The same as `packageVersion`, as UiPath's clients read it.
    pub app_version: String,
    pub published_by: String,
    pub published_at: DateTime<Utc>,
}

/// Publish a coded app version
///
/// Idempotent: publishing a `packageVersion` that exists returns the first answer.
#[utoipa::path(
    post,
    path = "/models/apps/codedapp/publish",
    tag = "UiPath Apps",
    request_body = PublishRequest,
    responses(
        (status = 200, description = "Published (or already published)", body = PublishResponse),
        (status = 400, description = "Missing field or not a semantic version", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn publish_coded_app(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: UiPathCaller,
    body: JsonBody<PublishRequest>,
) -> Result<HttpResponse, ApiError> {
    caller
        .needs(Permission::AppVersionsCreate)?
        .in_tenant(&state.db)
        .await?;
    let body = body.0;
    let title = body.title.as_deref().map(Title::parse).transpose()?;
    if let Some(answer) = idempotency::claim(&req).await? {
        return Ok(answer);
    }
    let published = catalog::publish_titled(
        &state.db,
        caller.tenant_id(),
        &body.package_name,
        &body.package_version,
        title.as_ref(),
        &caller.actor(),
        &AppDefaults::from_settings(&state.settings),
    )
    .await?;
    let (app, version) = (published.app, published.version);
    Ok(HttpResponse::Ok().json(PublishResponse {
        definition: PublishedDefinition {
            system_name: app.system_name.clone(),
            title: app.title,
            package_name: app.package_name,
            package_version: version.package_version,
            deploy_version: version.version,
        },
        system_name: app.system_name,
        deploy_version: version.version,
    }))
}

/// Get published apps
///
/// Each app with a published version, and its latest published version, a page at a
/// time in a stable order. `folderFeedType` is accepted for UiPath compatibility: the
/// catalogue is the tenant's, whichever feed is asked for.
#[utoipa::path(
    get,
    path = "/models/tenants/{cloud_tenant_id}/publish/apps",
    tag = "UiPath Apps",
    params(
        ("cloud_tenant_id" = String, Path, description = "Must be the caller's tenant"),
        PublishedAppsParams,
    ),
    responses((status = 200, description = "Published apps", body = ODataCollection<PublishedApp>)),
)]
pub async fn published_apps(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: UiPathCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let needs = caller.needs(Permission::AppVersionsView)?;
    access::require_own_tenant(&caller.principal, &path)?;
    let query = PublishedAppsParams::from_query(req.query_string())?;
    needs.in_tenant(&state.db).await?;
    let (count, page) = catalog::published_apps_page(&state.db, caller.tenant_id(), &query).await?;
    let items: Vec<PublishedApp> = page
        .into_iter()
        .map(|(app, latest)| PublishedApp {
            system_name: app.system_name,
            title: app.title,
            deploy_version: latest.version,
            package_name: app.package_name,
            app_version: latest.package_version.clone(),
            package_version: latest.package_version,
        })
        .collect();
    Ok(HttpResponse::Ok().json(odata::collection(&req, "PublishedApps", count, items)))
}

/// Get published app versions
///
/// The app's published versions, newest first unless `orderBy` says otherwise, a page
/// at a time.
#[utoipa::path(
    get,
    path = "/models/{app_system_name}/tenants/{cloud_tenant_id}/publish/versions",
    tag = "UiPath Apps",
    params(
        ("app_system_name" = String, Path, description = "The app's system name"),
        ("cloud_tenant_id" = String, Path, description = "Must be the caller's tenant"),
        PublishedVersionsParams,
    ),
    responses(
        (status = 200, description = "Published versions, newest first", body = ODataCollection<PublishedVersion>),
        (status = 404, description = "No such app in this tenant", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn published_versions(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: UiPathCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let needs = caller.needs(Permission::AppVersionsView)?;
    let (system_name, tenant) = path.into_inner();
    access::require_own_tenant(&caller.principal, &tenant)?;
    let query = PublishedVersionsParams::from_query(req.query_string())?;
    needs.in_tenant(&state.db).await?;
    let (app, count, versions) =
        catalog::published_versions_page(&state.db, caller.tenant_id(), &system_name, &query)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("app {system_name} not found")))?;
    let items: Vec<PublishedVersion> = versions
        .into_iter()
        .map(|v| PublishedVersion {
            system_name: app.system_name.clone(),
            deploy_version: v.version,
            app_version: v.package_version.clone(),
            package_version: v.package_version,
            published_by: v.published_by,
            published_at: v.published_at,
        })
        .collect();
    Ok(HttpResponse::Ok().json(odata::collection(&req, "PublishedVersions", count, items)))
}

/// Unpublish a version (uplift extension)
///
/// Deployments on it keep running; nothing is upgraded, deployed or edited onto it again.
#[utoipa::path(
    delete,
    path = "/models/{app_system_name}/publish/versions/{version}",
    tag = "uplift extensions",
    params(
        ("app_system_name" = String, Path, description = "The app's system name"),
        ("version" = i32, Path, description = "The integer version (deployVersion)"),
    ),
    responses(
        (status = 204, description = "Unpublished (also when it already was)"),
        (status = 404, description = "No such app or version in this tenant", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn unpublish_version(
    state: web::Data<AppState>,
    caller: UiPathCaller,
    path: web::Path<(String, i32)>,
) -> Result<HttpResponse, ApiError> {
    caller
        .needs(Permission::AppVersionsDelete)?
        .in_tenant(&state.db)
        .await?;
    let (system_name, version) = path.into_inner();
    catalog::unpublish_by(
        &state.db,
        caller.tenant_id(),
        &system_name,
        version,
        &caller.actor(),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
