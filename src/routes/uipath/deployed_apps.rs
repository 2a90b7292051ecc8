//! Deploying, listing, editing deployed apps, and the routing-name check.

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, get, patch, post, web};
use serde::Deserialize;
use serde_json::json;

use super::odata;
use crate::{
    access::{self, Permission},
    auth::{UiPathCaller, scopes::ScopeRule},
    error::ApiError,
    extract::{FolderKeyHeader, JsonBody, OptionalJsonBody},
    service::{
        deployments::{self, DeployOptions, Edit, MaintenancePatch},
        listing::{self, DEFAULT_TOP, ListQuery, MAX_TOP},
    },
    startup::AppState,
};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployRequest {
    #[serde(default)]
    pub tags: Vec<String>,
    pub title: Option<String>,
    pub routing_name: Option<String>,
}

/// `POST /models/{appSystemName}/publish/versions/{version}/deploy` → `{id}`.
#[post("/models/{app_system_name}/publish/versions/{version}/deploy")]
pub async fn deploy(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: UiPathCaller,
    folder_key: FolderKeyHeader,
    path: web::Path<(String, i32)>,
    body: OptionalJsonBody<DeployRequest>,
) -> Result<HttpResponse, ApiError> {
    caller.require(ScopeRule::WriteInFolder)?;
    let folder =
        access::authorize_folder(&state.db, &caller, &folder_key.0, Permission::AppsCreate).await?;
    let (system_name, version) = path.into_inner();
    let body = body.0;
    if let Some(title) = &body.title
        && (title.trim().is_empty() || title.chars().count() > 200)
    {
        return Err(ApiError::bad_request("title must be 1 to 200 characters"));
    }
    let options = DeployOptions {
        title: body.title,
        routing_name: body.routing_name,
        tags: body.tags,
    };
    let deployment = deployments::deploy(
        &state.db,
        &folder,
        &system_name,
        version,
        options,
        &super::actor(&req, &caller),
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "id": deployment.id })))
}

/// `GET /models/deployed/apps`: the folder's deployments, OData-style.
#[get("/models/deployed/apps")]
pub async fn list_deployed_apps(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: UiPathCaller,
    folder_key: FolderKeyHeader,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    caller.require(ScopeRule::Read)?;
    let list_query = parse_list_query(&query)?;
    let folder =
        access::authorize_folder(&state.db, &caller, &folder_key.0, Permission::AppsView).await?;
    let (count, items) =
        listing::list(&state.db, &caller.tenant_id, folder.id, &list_query).await?;
    Ok(HttpResponse::Ok().json(odata::collection(&req, "DeployedApps", count, items)))
}

/// Reads `top`, `skip`, `orderBy`, `searchText` and `tags` (also with OData's `$` prefix).
fn parse_list_query(query: &HashMap<String, String>) -> Result<ListQuery, ApiError> {
    let get = |name: &str| {
        query
            .get(name)
            .or_else(|| query.get(&format!("${name}")))
            .map(String::as_str)
    };
    Ok(ListQuery {
        top: get("top")
            .map(|v| listing::parse_count("top", v, MAX_TOP))
            .transpose()?
            .unwrap_or(DEFAULT_TOP),
        skip: get("skip")
            .map(|v| listing::parse_count("skip", v, u32::MAX as u64))
            .transpose()?
            .unwrap_or(0),
        order_by: get("orderBy")
            .map(listing::parse_order_by)
            .transpose()?
            .unwrap_or_default(),
        search_text: get("searchText").map(str::to_string),
        tags: get("tags")
            .map(|t| {
                t.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EditRequest {
    pub version: Option<i32>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub maintenance_mode_data: Option<MaintenanceModeData>,
    pub tags: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceModeData {
    pub is_maintenance_mode_enabled: Option<bool>,
    pub maintenance_mode_url: Option<String>,
    pub maintenance_excluded_users: Option<Vec<String>>,
}

/// `PATCH /models/deployed/apps/{deployedAppId}`: every field optional.
#[patch("/models/deployed/apps/{deployed_app_id}")]
pub async fn edit_deployed_app(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: UiPathCaller,
    folder_key: FolderKeyHeader,
    path: web::Path<String>,
    body: JsonBody<EditRequest>,
) -> Result<HttpResponse, ApiError> {
    caller.require(ScopeRule::WriteInFolder)?;
    let folder =
        access::authorize_folder(&state.db, &caller, &folder_key.0, Permission::AppsEdit).await?;
    let body = body.0;
    let edit = Edit {
        version: body.version,
        title: body.title,
        description: body.description,
        maintenance: body.maintenance_mode_data.map(|m| MaintenancePatch {
            enabled: m.is_maintenance_mode_enabled,
            url: m.maintenance_mode_url,
            excluded_users: m.maintenance_excluded_users,
        }),
        tags: body.tags,
    };
    let id = path.into_inner();
    let (deployment, system_name) = deployments::edit(
        &state.db,
        &caller.tenant_id,
        folder.id,
        &id,
        edit,
        &super::actor(&req, &caller),
    )
    .await?
    .ok_or_else(|| deployment_not_found(&id))?;
    let tags = listing::tags_of(&state.db, std::slice::from_ref(&deployment.id))
        .await?
        .remove(&deployment.id);
    let maintenance = json!({
        "isMaintenanceModeEnabled": deployment.maintenance_enabled,
        "maintenanceModeUrl": deployment.maintenance_url,
        "maintenanceExcludedUsers": serde_json::from_str::<serde_json::Value>(&deployment.maintenance_excluded_users)
            .unwrap_or_else(|_| json!([])),
    });
    let mut item = serde_json::to_value(listing::to_deployed_app(
        deployment,
        system_name,
        tags.unwrap_or_default(),
    ))
    .map_err(anyhow::Error::from)?;
    item["maintenanceModeData"] = maintenance;
    Ok(HttpResponse::Ok().json(item))
}

pub fn deployment_not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no deployed app {id} in this folder"))
}

/// `GET /models/deployed/apps/uniquename/check/{routingName}`: whether the name is free
/// in the caller's tenant.
#[get("/models/deployed/apps/uniquename/check/{routing_name}")]
pub async fn check_unique_name(
    state: web::Data<AppState>,
    caller: UiPathCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(ScopeRule::Read)?;
    let name = path.into_inner();
    deployments::validate_routing_name(&name)?;
    let free = deployments::is_routing_name_free(&state.db, &caller.tenant_id, &name).await?;
    Ok(HttpResponse::Ok().json(json!({ "routingName": name, "isUnique": free })))
}
