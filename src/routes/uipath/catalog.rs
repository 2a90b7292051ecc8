//! Publishing coded apps and reading the published catalogue.

use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::odata;
use crate::{
    access::{self, Permission},
    auth::{UiPathCaller, scopes::ScopeRule},
    error::ApiError,
    extract::JsonBody,
    service::catalog::{self, AppDefaults},
    startup::AppState,
};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishRequest {
    pub package_name: String,
    pub package_version: String,
    // UiPath's `tenantName` is accepted and ignored: the tenant comes from the token.
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishResponse {
    pub system_name: String,
    pub deploy_version: i32,
}

/// `POST /models/apps/codedapp/publish`: idempotent for a `packageVersion` already published.
#[post("/models/apps/codedapp/publish")]
pub async fn publish_coded_app(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: UiPathCaller,
    body: JsonBody<PublishRequest>,
) -> Result<HttpResponse, ApiError> {
    caller.require(ScopeRule::Write)?;
    access::authorize_tenant(&state.db, &caller, Permission::AppVersionsCreate).await?;
    let body = body.0;
    let published = catalog::publish(
        &state.db,
        &caller.tenant_id,
        &body.package_name,
        &body.package_version,
        &super::actor(&req, &caller),
        &AppDefaults::default(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(PublishResponse {
        system_name: published.app.system_name,
        deploy_version: published.version.version,
    }))
}

/// `GET /models/tenants/{cloudTenantId}/publish/apps`: each app and its latest published version.
#[get("/models/tenants/{cloud_tenant_id}/publish/apps")]
pub async fn published_apps(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: UiPathCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(ScopeRule::Read)?;
    access::require_own_tenant(&caller, &path)?;
    access::authorize_catalog_read(&state.db, &caller).await?;
    let items: Vec<_> = catalog::published_apps(&state.db, &caller.tenant_id)
        .await?
        .into_iter()
        .map(|(app, latest)| {
            json!({
                "systemName": app.system_name,
                "title": app.title,
                "deployVersion": latest.version,
                "packageName": app.package_name,
                "packageVersion": latest.package_version,
            })
        })
        .collect();
    let count = items.len() as u64;
    Ok(HttpResponse::Ok().json(odata::collection(&req, "PublishedApps", count, items)))
}

/// `GET /models/{appSystemName}/tenants/{cloudTenantId}/publish/versions`: newest first.
#[get("/models/{app_system_name}/tenants/{cloud_tenant_id}/publish/versions")]
pub async fn published_versions(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: UiPathCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    caller.require(ScopeRule::Read)?;
    let (system_name, tenant) = path.into_inner();
    access::require_own_tenant(&caller, &tenant)?;
    access::authorize_catalog_read(&state.db, &caller).await?;
    let (app, versions) = catalog::published_versions(&state.db, &caller.tenant_id, &system_name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("app {system_name} not found")))?;
    let items: Vec<_> = versions
        .into_iter()
        .map(|v| {
            json!({
                "systemName": app.system_name,
                "deployVersion": v.version,
                "packageVersion": v.package_version,
                "publishedBy": v.published_by,
                "publishedAt": v.published_at,
            })
        })
        .collect();
    let count = items.len() as u64;
    Ok(HttpResponse::Ok().json(odata::collection(&req, "PublishedVersions", count, items)))
}

/// `DELETE /models/{appSystemName}/publish/versions/{version}` (an uplift extension):
/// unpublishes a version. Deployments on it keep running.
#[delete("/models/{app_system_name}/publish/versions/{version}")]
pub async fn unpublish_version(
    state: web::Data<AppState>,
    caller: UiPathCaller,
    path: web::Path<(String, i32)>,
) -> Result<HttpResponse, ApiError> {
    caller.require(ScopeRule::Write)?;
    access::authorize_tenant(&state.db, &caller, Permission::AppVersionsDelete).await?;
    let (system_name, version) = path.into_inner();
    catalog::unpublish(&state.db, &caller.tenant_id, &system_name, version).await?;
    Ok(HttpResponse::NoContent().finish())
}
