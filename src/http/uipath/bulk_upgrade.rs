//! `POST /models/deployed/apps/updateToLatestAppVersionBulk`.

use actix_web::{FromRequest, HttpRequest, HttpResponse, dev::Payload, web};
use futures_util::future::LocalBoxFuture;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    access::{self, Permission},
    app::AppState,
    app::OperationPolicy,
    domain::FolderKey,
    http::wire::{wire_enum, wire_struct},
    http::{
        ApiError,
        auth::UiPathCaller,
        extract::{BodyLimit, FolderKeyHeader, parse_json, parse_query, read_json_bytes_within},
        idempotency,
        prefer::Preferences,
        registered,
    },
    metrics::BulkApi,
    upgrade::{self, BulkUpgrade, FailureCode as DomainFailureCode, FolderGrant, Outcome, Target},
};

/// The bulk call's body: under the operation body limit when the call is to answer
/// asynchronously (`Prefer: respond-async`), which takes up to
/// `UPLIFT_MAX_OPERATION_ITEMS` ids instead of `UPLIFT_MAX_BULK_ITEMS`.
pub struct BulkBody(pub BulkUpgradeRequest);

impl FromRequest for BulkBody {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = if Preferences::of(req).respond_async {
            BodyLimit::Operation
        } else {
            BodyLimit::Default
        };
        let body = read_json_bytes_within(req, payload, limit);
        Box::pin(async move { parse_json(&body.await?).map(BulkBody) })
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BulkUpgradeRequest {
    /// Deployment ids; duplicates are processed once.
    pub deployment_ids: Vec<String>,
}

wire_struct! {
    /// A deployment now on the latest published version (possibly unchanged).
    #[derive(Debug, Serialize, ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct Updated from upgrade::Updated {
        /// The id as the client sent it.
        pub id: String,
        pub app_system_name: String,
        pub version: i32,
        pub previous_version: i32,
    }
}

wire_struct! {
    #[derive(Debug, Serialize, ToSchema)]
    pub struct Failure from upgrade::Failure {
        pub id: String,
        pub code: FailureCode,
        pub message: String,
    }
}

wire_enum! {
    #[derive(Debug, Clone, Copy, Serialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum FailureCode mirrors DomainFailureCode {
        /// Unknown, malformed, or in another folder or tenant: never says which.
        NotFound,
        /// The app has no published version to upgrade to.
        NoPublishedVersion,
        /// Another transaction held the deployment longer than the lock timeout.
        Conflict,
        /// Anything else; the cause is in the server log under the request id.
        Internal,
        /// Not started: the call's failure budget (`maxFailures`) was spent, or the
        /// operation running it stopped.
        Skipped,
        /// Not started: the operation running it was canceled.
        Canceled,
    }
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
                Outcome::Updated(updated) => response.updated_deployments.push(updated.into()),
                Outcome::Failed(failure) => {
                    response.failed_items.push(failure.id.clone());
                    response.failures.push(failure.into());
                }
            }
        }
        response
    }
}

/// Query options of the bulk call, both uplift extensions. The one parser of these
/// parameters: the handler reads it as `web::Query`, the idempotency middleware asks
/// it whether a call is a dry run, and the OpenAPI document lists it.
#[derive(Debug, Default, PartialEq, Eq, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BulkParams {
    /// `true`: answer what a real call would answer now, and write nothing.
    #[serde(rename = "dryRun", default, deserialize_with = "flag")]
    #[param(rename = "dryRun", value_type = Option<bool>)]
    pub dry_run: bool,
    /// Once this many items (at least 1) have failed, items not started are `skipped`.
    #[serde(rename = "maxFailures", default, deserialize_with = "at_least_one")]
    #[param(rename = "maxFailures", minimum = 1, value_type = Option<u32>)]
    pub max_failures: Option<usize>,
}

impl BulkParams {
    /// Parses a query string; a parameter given twice is refused (which of two
    /// `dryRun`s counts must never be a guess).
    pub fn from_query(query: &str) -> Result<Self, ApiError> {
        parse_query(query)
    }
}

/// `true`/`false`, also `1`/`0` in any case; a bare `dryRun` means `true`.
fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let raw = String::deserialize(d)?;
    match raw.to_ascii_lowercase().as_str() {
        "false" | "0" => Ok(false),
        "true" | "1" | "" => Ok(true),
        _ => Err(serde::de::Error::custom(format!(
            "dryRun must be true or false, not {raw:?}"
        ))),
    }
}

fn at_least_one<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    let raw = String::deserialize(d)?;
    raw.trim()
        .parse::<usize>()
        .ok()
        .filter(|n| *n >= 1)
        .map(Some)
        .ok_or_else(|| {
            serde::de::Error::custom(format!(
                "maxFailures must be a whole number of at least 1, not {raw:?}"
            ))
        })
}

/// The `Prefer` header of the bulk call.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct PreferHeader {
    /// `respond-async`: answer 202 with an operation's monitor (`Operation-Location`)
    /// instead of waiting for every item; with `wait=N` (at most 60), answer the usual
    /// 200 if the work finished within N seconds.
    #[param(rename = "Prefer")]
    prefer: Option<String>,
}

/// Upgrade deployed apps to the latest version (bulk)
///
/// Each distinct id is upgraded in its own transaction; the answer is 200 also when
/// some items failed. With `Prefer: respond-async` the work becomes a durable
/// operation and the answer is 202 with its monitor.
#[utoipa::path(
    post,
    path = "/models/deployed/apps/updateToLatestAppVersionBulk",
    tag = "UiPath Apps",
    params(BulkParams, super::FolderHeader, PreferHeader),
    request_body = BulkUpgradeRequest,
    responses(
        (status = 200, description = "What was upgraded and what failed", body = BulkUpgradeResponse),
        (status = 202, description = "Asked for with `Prefer: respond-async`: the operation now doing the work", body = super::operations::OperationMonitor,
         headers(("Operation-Location" = String, description = "The monitor's absolute URL"),
                 ("Preference-Applied" = String, description = "`respond-async`"),
                 ("Retry-After" = u32, description = "Seconds until it is worth polling"))),
    ),
)]
pub async fn update_to_latest_app_version_bulk(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: UiPathCaller,
    folder_key: FolderKeyHeader,
    body: BulkBody,
) -> Result<HttpResponse, ApiError> {
    let needs = caller.needs(Permission::AppsEdit)?;
    let options = BulkParams::from_query(req.query_string())?;
    let preferences = Preferences::of(&req);
    let ids = body.0.deployment_ids;
    let (max, per) = if preferences.respond_async {
        let policy = registered::<OperationPolicy>(&req)?;
        (policy.max_items, "asynchronous call")
    } else {
        (state.settings.max_bulk_items, "call")
    };
    if ids.len() > max {
        return Err(ApiError::bad_request(format!(
            "deploymentIds holds {} ids; at most {max} are accepted per {per}",
            ids.len()
        )));
    }
    if let Some(answer) = single_id_in_one_statement(
        &req,
        &state,
        &caller,
        &folder_key,
        &ids,
        &options,
        &preferences,
    )
    .await
    {
        return Ok(answer);
    }
    let at = needs.in_folder(&state.db, &folder_key).await?;
    // A dry run changes nothing, so there is nothing to protect.
    if !options.dry_run
        && let Some(answer) = idempotency::claim(&req).await?
    {
        return Ok(answer);
    }
    if preferences.respond_async {
        return super::operations::respond_async(
            &req,
            &state,
            &caller,
            &at,
            ids,
            &options,
            preferences.wait,
        )
        .await;
    }
    let actor = at.actor;
    let job = BulkUpgrade {
        tenant_id: caller.tenant_id(),
        folder_id: at.folder.id,
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

/// The commonest CI call, one id, done in one round trip on PostgreSQL: the grant and
/// the upgrade in a single statement (`upgrade::upgrade_single_where_granted`) instead
/// of the grant read and then the item's statement. Only for a plain synchronous
/// call (no dry run, no `Idempotency-Key`, no `respond-async`); `None` sends the call
/// down the ordinary path, which then answers it whatever the reason (an inherited
/// grant, no grant, SQLite).
async fn single_id_in_one_statement(
    req: &HttpRequest,
    state: &AppState,
    caller: &UiPathCaller,
    folder_key: &FolderKeyHeader,
    ids: &[String],
    options: &BulkParams,
    preferences: &Preferences,
) -> Option<HttpResponse> {
    let [id] = ids else { return None };
    if options.dry_run
        || preferences.respond_async
        || req.headers().contains_key(idempotency::IDEMPOTENCY_KEY)
    {
        return None;
    }
    let folder_key = FolderKey::parse(&folder_key.0).ok()?;
    let roles = access::roles_granting_in_folder(Permission::AppsEdit)?;
    let actor = caller.actor();
    let grant = FolderGrant {
        tenant_id: caller.tenant_id(),
        folder_key: folder_key.as_str(),
        roles: &roles,
        actor: &actor,
    };
    let (_, outcome) = upgrade::upgrade_single_where_granted(&state.db, &grant, id).await?;
    let outcomes = vec![outcome];
    state.metrics.record_bulk(BulkApi::UiPath, false, &outcomes);
    Some(HttpResponse::Ok().json(BulkUpgradeResponse::from_outcomes(outcomes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_default_to_a_real_call_without_a_budget() {
        assert_eq!(BulkParams::from_query("").unwrap(), BulkParams::default());
    }

    #[test]
    fn dry_run_and_max_failures_are_parsed_and_bad_values_named() {
        let options = BulkParams::from_query("dryRun=TRUE&maxFailures=3").unwrap();
        assert_eq!(
            options,
            BulkParams {
                dry_run: true,
                max_failures: Some(3)
            }
        );
        assert!(BulkParams::from_query("dryRun").unwrap().dry_run);
        assert!(!BulkParams::from_query("dryRun=0").unwrap().dry_run);
        for query in [
            "dryRun=maybe",
            "maxFailures=0",
            "maxFailures=-1",
            "maxFailures=x",
        ] {
            let err = BulkParams::from_query(query).unwrap_err().to_string();
            let name = query.split('=').next().unwrap();
            assert!(err.contains(name), "{query}: {err}");
        }
    }

    #[test]
    fn a_parameter_sent_twice_is_refused_rather_than_guessed() {
        for query in ["dryRun=true&dryRun=false", "maxFailures=1&maxFailures=2"] {
            let err = BulkParams::from_query(query).unwrap_err().to_string();
            assert!(err.contains("more than once"), "{query}: {err}");
        }
    }
}
