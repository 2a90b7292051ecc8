//! Rainbond's "upgrade the app" API over the same data and engine:
//! `GET|POST /openapi/v1/teams/{team_id}/regions/{region_name}/apps/{app_id}/upgrade`.
//! `team_id` is the tenant, `app_id` a folder's integer id, `region_name` its region.

use actix_web::{
    Error, HttpRequest, HttpResponse,
    body::{self, BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::{StatusCode, header},
    middleware::Next,
    web,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::{
    auth::{InFolder, RainbondCaller},
    extract::JsonBody,
    idempotency,
    problem::{ApiError, PROBLEM_JSON},
    wire::wire_struct,
};
use crate::{
    access::Permission,
    app::AppState,
    metrics::BulkApi,
    service::rainbond::{self, ModelView, RequestedUpgrade},
    upgrade::{self, BulkUpgrade, Target},
};

pub use crate::api_paths::RAINBOND_BASE as BASE;

/// Rainbond's error body, with the HTTP status as `code`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RainbondError {
    pub code: u16,
    /// A short English message.
    pub msg: String,
    /// The message to show a person.
    pub msg_show: String,
    pub data: RainbondErrorData,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RainbondErrorData {
    #[schema(value_type = Object)]
    pub bean: Map<String, Value>,
    /// For a refused upgrade request: each bad item and why (empty for other errors).
    #[schema(value_type = Vec<InvalidItem>)]
    pub list: Vec<Value>,
}

fn rainbond_error(status: StatusCode, msg_show: String, list: Vec<Value>) -> HttpResponse {
    HttpResponse::build(status).json(RainbondError {
        code: status.as_u16(),
        msg: status.canonical_reason().unwrap_or("error").to_lowercase(),
        msg_show,
        data: RainbondErrorData {
            bean: Map::new(),
            list,
        },
    })
}

/// Rewrites every problem+json answer on these routes (authentication, body and path
/// errors, permissions, idempotency) into Rainbond's error body, keeping status and
/// headers, so Rainbond clients can read them.
pub async fn rainbond_errors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let response = next.call(req).await?;
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if !is_problem {
        return Ok(response.map_into_boxed_body());
    }
    let status = response.status();
    let (request, response) = response.into_parts();
    let (head, body) = response.into_parts();
    let bytes = body::to_bytes(body).await.unwrap_or_default();
    let detail = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|p| p["detail"].as_str().map(str::to_string))
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
    let mut rewritten = rainbond_error(status, detail, Vec::new());
    for (name, value) in head.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rewritten.headers_mut().insert(name.clone(), value.clone());
        }
    }
    Ok(ServiceResponse::new(
        request,
        rewritten.map_into_boxed_body(),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AppPath {
    /// The tenant
    team_id: String,
    /// The folder's region
    region_name: String,
    /// The folder's integer id
    app_id: i32,
}

impl AppPath {
    /// The caller's access to the folder behind `app_id`, with `permission` there.
    async fn authorize(
        &self,
        state: &AppState,
        caller: &RainbondCaller,
        permission: Permission,
    ) -> Result<InFolder, ApiError> {
        caller
            .needs(permission)?
            .in_rainbond_app(&state.db, &self.team_id, &self.region_name, self.app_id)
            .await
    }
}

wire_struct! {
    /// One app model as Rainbond's upgrade listing shows it.
    #[derive(Debug, Serialize, ToSchema)]
    pub struct AppModel from ModelView {
        pub market_name: String,
        /// The app's system name.
        pub app_model_id: String,
        /// The app's title.
        pub app_model_name: String,
        /// The oldest version the folder's deployments of this app are on.
        pub current_version: String,
        pub enterprise_id: String,
        /// True exactly when `upgrade_versions` is not empty.
        pub can_upgrade: bool,
        /// Every published version newer than `current_version`, newest first.
        pub upgrade_versions: Vec<String>,
        pub source: String,
    }
}

wire_struct! {
    /// One item of a Rainbond upgrade request.
    #[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
    pub struct UpgradeBase into RequestedUpgrade {
        pub market_name: String,
        pub app_model_id: String,
        pub app_model_version: String,
    }
}

wire_struct! {
    /// Why a requested item cannot be done.
    #[derive(Debug, Serialize, ToSchema)]
    pub struct InvalidItem from rainbond::InvalidItem {
        pub app_model_id: String,
        pub app_model_version: String,
        pub reason: String,
    }
}

async fn listing(
    state: &AppState,
    tenant: &str,
    folder_id: i32,
) -> Result<Vec<AppModel>, ApiError> {
    let models = rainbond::deployed_models(&state.db, tenant, folder_id).await?;
    Ok(models
        .iter()
        .map(|m| AppModel::from(m.view(&state.settings.organization)))
        .collect())
}

/// List upgradable app models
///
/// For each app deployed in the app (folder): its current version (the oldest its
/// deployments are on) and every published version newer than that, newest first.
#[utoipa::path(
    get,
    path = "/teams/{team_id}/regions/{region_name}/apps/{app_id}/upgrade",
    tag = "Rainbond",
    params(AppPath),
    responses(
        (status = 200, description = "The app models", body = Vec<AppModel>),
        (status = 404, description = "No such app in this team and region", body = RainbondError),
    ),
)]
pub async fn list_upgrades(
    caller: RainbondCaller,
    state: web::Data<AppState>,
    path: web::Path<AppPath>,
) -> Result<HttpResponse, ApiError> {
    let at = path
        .authorize(&state, &caller, Permission::AppsView)
        .await?;
    Ok(HttpResponse::Ok().json(listing(&state, caller.tenant_id(), at.folder.id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UpgradeRequest {
    pub update_versions: Vec<UpgradeBase>,
}

/// Upgrade app models
///
/// Validates every item first (a model not deployed here, a version not published or
/// not newer than the current one: 400 naming each, nothing changed), then upgrades
/// every deployment of each model, one transaction each, and answers with the
/// refreshed list, which shows what really happened.
#[utoipa::path(
    post,
    path = "/teams/{team_id}/regions/{region_name}/apps/{app_id}/upgrade",
    tag = "Rainbond",
    params(AppPath),
    request_body = UpgradeRequest,
    responses(
        (status = 200, description = "The refreshed app models", body = Vec<AppModel>),
        (status = 400, description = "Bad items, each in data.list; nothing changed", body = RainbondError),
        (status = 404, description = "No such app in this team and region", body = RainbondError),
    ),
)]
pub async fn upgrade_app_models(
    req: HttpRequest,
    caller: RainbondCaller,
    state: web::Data<AppState>,
    path: web::Path<AppPath>,
    body: JsonBody<UpgradeRequest>,
) -> Result<HttpResponse, ApiError> {
    let InFolder { folder, actor } = path
        .authorize(&state, &caller, Permission::AppsEdit)
        .await?;
    if let Some(answer) = idempotency::claim(&req).await? {
        return Ok(answer);
    }
    let requested = body.0.update_versions;
    if requested.is_empty() {
        return Err(ApiError::bad_request(
            "update_versions must name at least one app model",
        ));
    }
    let max = state.settings.max_bulk_items;
    if requested.len() > max {
        return Err(ApiError::bad_request(format!(
            "update_versions names {} items; at most {max} are accepted in one call",
            requested.len()
        )));
    }
    let requested: Vec<RequestedUpgrade> = requested.into_iter().map(Into::into).collect();
    let models = rainbond::deployed_models(&state.db, caller.tenant_id(), folder.id).await?;
    let plan = match rainbond::plan(&models, &requested) {
        Ok(plan) => plan,
        Err(invalid) => return Ok(refused(invalid)),
    };
    for item in plan {
        let job = BulkUpgrade {
            tenant_id: caller.tenant_id(),
            folder_id: folder.id,
            actor: &actor,
            concurrency: state.settings.upgrade_concurrency,
            dry_run: false,
            max_failures: None,
            target: Target::Version(item.version),
        };
        // The answer is read back from the database below, so an item that failed
        // (a lock conflict, say) shows its real version rather than the requested one.
        let outcomes = upgrade::upgrade(&state.db, &job, &item.deployment_ids).await;
        state
            .metrics
            .record_bulk(BulkApi::Rainbond, false, &outcomes);
    }
    Ok(HttpResponse::Ok().json(listing(&state, caller.tenant_id(), folder.id).await?))
}

/// Each bad item is named once, in `data.list`; the message only counts them.
fn refused(invalid: Vec<rainbond::InvalidItem>) -> HttpResponse {
    let summary = match invalid.len() {
        1 => "1 item is invalid; see data.list".to_string(),
        n => format!("{n} items are invalid; see data.list"),
    };
    let list = invalid
        .into_iter()
        .filter_map(|i| serde_json::to_value(InvalidItem::from(i)).ok())
        .collect();
    rainbond_error(
        StatusCode::BAD_REQUEST,
        format!("nothing was upgraded: {summary}"),
        list,
    )
}

super::api_area! {
    /// The Rainbond routes, with paths relative to `/openapi/v1`.
    RainbondApi components(RainbondError, InvalidItem) {
        list_upgrades,
        upgrade_app_models,
    }
}
