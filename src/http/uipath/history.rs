//! Deployment history and rollback (uplift extensions).

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::params::PageParams;
use super::{
    deployed_apps::deployment_not_found,
    odata::{self, ODataCollection},
};
use crate::{
    access::Permission,
    app::AppState,
    http::extract::{FolderKeyHeader, OptionalJsonBody},
    http::problem::{ApiError, Problem},
    http::wire::wire_struct,
    http::{auth::UiPathCaller, idempotency},
    service::history,
};

wire_struct! {
    #[derive(Debug, Serialize, ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct HistoryEntry from history::HistoryEntry {
        pub id: i64,
        /// `deploy`, `upgrade`, `edit` or `rollback`.
        pub kind: String,
        pub from_version: Option<i32>,
        pub from_package_version: Option<String>,
        pub to_version: i32,
        pub to_package_version: Option<String>,
        pub actor: String,
        pub request_id: Option<String>,
        pub created_at: DateTime<Utc>,
        /// The operation (`/operations/{id}`) that made the change, when one did.
        pub operation_id: Option<String>,
    }
}

wire_struct! {
    /// What a rollback did.
    #[derive(Debug, Serialize, ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct RolledBack from history::RolledBack {
        pub id: String,
        pub app_system_name: String,
        pub version: i32,
        pub previous_version: i32,
    }
}

/// Deployment history (uplift extension)
///
/// The deployment's events, newest first: each event's "from" is the previous event's
/// "to", and the newest "to" is the current version.
#[utoipa::path(
    get,
    path = "/models/deployed/apps/{deployed_app_id}/history",
    tag = "uplift extensions",
    params(("deployed_app_id" = String, Path, description = "The deployment id"), PageParams, super::FolderHeader),
    responses(
        (status = 200, description = "A page of events", body = ODataCollection<HistoryEntry>),
        (status = 404, description = "No such deployment in this folder", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn deployment_history(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: UiPathCaller,
    folder_key: FolderKeyHeader,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let needs = caller.needs(Permission::AppsView)?;
    let PageParams { top, skip } = PageParams::from_query(req.query_string())?;
    let folder = needs.in_folder(&state.db, &folder_key).await?.folder;
    let id = path.into_inner();
    let (count, entries) = history::page(&state.db, caller.tenant_id(), folder.id, &id, top, skip)
        .await?
        .ok_or_else(|| deployment_not_found(&id))?;
    let entries: Vec<HistoryEntry> = entries.into_iter().map(HistoryEntry::from).collect();
    Ok(HttpResponse::Ok().json(odata::collection(&req, "DeploymentHistory", count, entries)))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RollbackRequest {
    /// Target version; without it, the version before the last version change.
    pub version: Option<i32>,
}

/// Roll a deployment back (uplift extension)
///
/// To the named published version, or without one to the version before the last
/// version change; records a `rollback` event.
#[utoipa::path(
    post,
    path = "/models/deployed/apps/{deployed_app_id}/rollback",
    tag = "uplift extensions",
    params(("deployed_app_id" = String, Path, description = "The deployment id"), super::FolderHeader),
    request_body(content = Option<RollbackRequest>, description = "Optional"),
    responses(
        (status = 200, description = "Rolled back (or already on that version)", body = RolledBack),
        (status = 404, description = "No such deployment in this folder", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn rollback_deployment(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: UiPathCaller,
    folder_key: FolderKeyHeader,
    path: web::Path<String>,
    body: OptionalJsonBody<RollbackRequest>,
) -> Result<HttpResponse, ApiError> {
    let needs = caller.needs(Permission::AppsEdit)?;
    let folder = needs.in_folder(&state.db, &folder_key).await?.folder;
    if let Some(answer) = idempotency::claim(&req).await? {
        return Ok(answer);
    }
    let id = path.into_inner();
    if body.0.version.is_some_and(|v| v < 1) {
        return Err(ApiError::bad_request(
            "version must be a published version number (1 or more)",
        ));
    }
    let rolled_back = history::rollback(
        &state.db,
        caller.tenant_id(),
        folder.id,
        &id,
        body.0.version,
        &caller.actor(),
    )
    .await?
    .ok_or_else(|| deployment_not_found(&id))?;
    Ok(HttpResponse::Ok().json(RolledBack::from(rolled_back)))
}
