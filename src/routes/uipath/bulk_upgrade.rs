//! `POST /models/deployed/apps/updateToLatestAppVersionBulk`.

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, post, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    access::{self, Permission},
    auth::{UiPathCaller, scopes::ScopeRule},
    error::ApiError,
    extract::{FolderKeyHeader, JsonBody},
    metrics::BulkApi,
    startup::AppState,
    upgrade::{self, BulkUpgrade, Failure, Outcome, Target, Updated},
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BulkUpgradeRequest {
    /// Deployment ids; duplicates are processed once.
    pub deployment_ids: Vec<String>,
}

/// UiPath's answer, plus `previousVersion` on each updated deployment and `failures`
/// (why each failed item failed).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BulkUpgradeResponse {
    /// Deployments now on the latest published version, in request order (an item
    /// already there is listed with its version unchanged).
    pub updated_deployments: Vec<Updated>,
    /// Ids that failed, in request order.
    pub failed_items: Vec<String>,
    /// Why each failed item failed (uplift extension).
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

/// Query options of the bulk call, both uplift extensions.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct BulkParams {
    /// `true`: answer what a real call would answer now, and write nothing.
    #[param(rename = "dryRun")]
    dry_run: Option<bool>,
    /// Once this many items (at least 1) have failed, items not started are `skipped`.
    #[param(rename = "maxFailures", minimum = 1)]
    max_failures: Option<u32>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct BulkOptions {
    /// `dryRun=true`: the answer a real call would give now; nothing is written.
    pub dry_run: bool,
    /// `maxFailures=N`: once N items have failed, items not started are `skipped`.
    pub max_failures: Option<usize>,
}

impl BulkOptions {
    pub fn from_query(query: &HashMap<String, String>) -> Result<Self, ApiError> {
        let dry_run = match query
            .get("dryRun")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") | Some("") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "dryRun must be true or false, not {other:?}"
                )));
            }
        };
        let max_failures = query
            .get("maxFailures")
            .map(|raw| {
                raw.trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "maxFailures must be a whole number of at least 1, not {raw:?}"
                        ))
                    })
            })
            .transpose()?;
        Ok(BulkOptions {
            dry_run,
            max_failures,
        })
    }
}

/// Upgrade deployed apps to the latest version (bulk)
///
/// Each distinct id is upgraded in its own transaction; the answer is 200 also when
/// some items failed.
#[utoipa::path(
    tag = "UiPath Apps",
    params(BulkParams, super::FolderHeader),
    request_body = BulkUpgradeRequest,
    responses((status = 200, description = "What was upgraded and what failed", body = BulkUpgradeResponse)),
)]
#[post("/models/deployed/apps/updateToLatestAppVersionBulk")]
pub async fn update_to_latest_app_version_bulk(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: UiPathCaller,
    folder_key: FolderKeyHeader,
    query: web::Query<HashMap<String, String>>,
    body: JsonBody<BulkUpgradeRequest>,
) -> Result<HttpResponse, ApiError> {
    caller.require(ScopeRule::WriteInFolder)?;
    let options = BulkOptions::from_query(&query)?;
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
        dry_run: options.dry_run,
        max_failures: options.max_failures,
        target: Target::Latest,
    };
    let outcomes = upgrade::upgrade(&state.db, &job, &ids).await;
    state
        .metrics
        .record_bulk(BulkApi::UiPath, options.dry_run, &outcomes);
    Ok(HttpResponse::Ok().json(BulkUpgradeResponse::from_outcomes(outcomes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn options_default_to_a_real_call_without_a_budget() {
        assert_eq!(
            BulkOptions::from_query(&query(&[])).unwrap(),
            BulkOptions::default()
        );
    }

    #[test]
    fn dry_run_and_max_failures_are_parsed_and_bad_values_named() {
        let options =
            BulkOptions::from_query(&query(&[("dryRun", "TRUE"), ("maxFailures", "3")])).unwrap();
        assert_eq!(
            options,
            BulkOptions {
                dry_run: true,
                max_failures: Some(3)
            }
        );
        for (k, v) in [
            ("dryRun", "maybe"),
            ("maxFailures", "0"),
            ("maxFailures", "-1"),
            ("maxFailures", "x"),
        ] {
            let err = BulkOptions::from_query(&query(&[(k, v)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(k), "{k}={v}: {err}");
        }
    }
}
