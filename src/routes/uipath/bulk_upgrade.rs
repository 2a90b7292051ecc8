//! `POST /models/deployed/apps/updateToLatestAppVersionBulk`.

use actix_web::{HttpRequest, HttpResponse, post, web};
use serde::{Deserialize, Serialize};

use crate::{
    access::{self, Permission},
    auth::{UiPathCaller, scopes::ScopeRule},
    error::ApiError,
    extract::{FolderKeyHeader, JsonBody},
    startup::AppState,
    upgrade::{self, BulkUpgrade, Failure, Outcome, Updated},
};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkUpgradeRequest {
    pub deployment_ids: Vec<String>,
}

/// UiPath's answer, plus `previousVersion` on each updated deployment and `failures`
/// (why each failed item failed).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkUpgradeResponse {
    pub updated_deployments: Vec<Updated>,
    pub failed_items: Vec<String>,
    pub failures: Vec<Failure>,
}

impl BulkUpgradeResponse {
    pub fn from_outcomes(outcomes: Vec<Outcome>) -> Self {
        let mut response = BulkUpgradeResponse {
            updated_deployments: Vec::new(),
            failed_items: Vec::new(),
            failures: Vec::new(),
        };
        for outcome in outcomes {
            match outcome {
                Outcome::Updated(updated) => response.updated_deployments.push(updated),
                Outcome::Failed(failure) => {
                    response.failed_items.push(failure.id.clone());
                    response.failures.push(failure);
                }
            }
        }
        response
    }
}

#[post("/models/deployed/apps/updateToLatestAppVersionBulk")]
pub async fn update_to_latest_app_version_bulk(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: UiPathCaller,
    folder_key: FolderKeyHeader,
    body: JsonBody<BulkUpgradeRequest>,
) -> Result<HttpResponse, ApiError> {
    caller.require(ScopeRule::WriteInFolder)?;
    let ids = body.0.deployment_ids;
    let max = state.settings.max_bulk_items;
    if ids.len() > max {
        return Err(ApiError::bad_request(format!(
            "deploymentIds holds {} ids; at most {max} are accepted per call",
            ids.len()
        )));
    }
    let folder =
        access::authorize_folder(&state.db, &caller, &folder_key.0, Permission::AppsEdit).await?;
    let actor = super::actor(&req, &caller);
    let job = BulkUpgrade {
        tenant_id: &caller.tenant_id,
        folder_id: folder.id,
        actor: &actor,
        concurrency: state.settings.upgrade_concurrency,
    };
    let outcomes = upgrade::upgrade_to_latest(&state.db, &job, &ids).await;
    Ok(HttpResponse::Ok().json(BulkUpgradeResponse::from_outcomes(outcomes)))
}
