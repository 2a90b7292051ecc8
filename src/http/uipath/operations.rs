//! Durable operations under the UiPath base path: create an upgrade operation over ids
//! or a selector, watch it (`/operations/{id}`), page its items, list the folder's,
//! cancel one. The bulk call's `Prefer: respond-async` form (`bulk_upgrade.rs`)
//! creates one too and answers with the same monitor.

use std::time::Duration;

use actix_web::{
    HttpRequest, HttpResponse,
    http::{StatusCode, header},
    web,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    bulk_upgrade::{BulkParams, BulkUpgradeResponse, Failure},
    odata::origin,
    params::paged_params,
};
use crate::{
    access::Permission,
    app::{AppState, OperationPolicy},
    http::wire::{wire_enum, wire_struct},
    http::{
        ApiError,
        auth::{InFolder, UiPathCaller},
        extract::{FolderKeyHeader, OperationJsonBody, parse_query},
        idempotency::{self, OPERATION_LOCATION},
        prefer::PREFERENCE_APPLIED,
        problem::Problem,
        registered,
    },
    operations::{
        self, Counters, FailureBudget, ItemStatus, NewOperation, Operation, OperationStatus,
        Selection, Selector, Snapshot, UpgradeRequest,
    },
    upgrade::{Outcome, Target},
};

/// The longest listed id an operation accepts.
const MAX_LISTED_ID_CHARS: usize = 256;

/// How soon a client should poll a monitor that is not finished.
const POLL_AFTER_SECONDS: &str = "1";

/// Which deployments, to which version, how carefully.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateUpgradeOperation {
    /// These deployments, in this order (duplicates once), each at most 256
    /// characters. Give this or `selector`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_ids: Option<Vec<String>>,
    /// The folder's deployments matching every criterion. Give this or `deploymentIds`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<SelectorBody>,
    /// `"latest"` (default) or `{"version": N}`: the app's published integer version N.
    #[schema(value_type = Option<TargetBody>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<serde_json::Value>,
    /// Stop starting items after this many failures: a count (`3`) or a percentage of
    /// the items (`"5%"`, rounded up, at least 1). Default: no budget.
    #[schema(value_type = Option<MaxFailuresBody>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_failures: Option<serde_json::Value>,
    /// Items upgraded at once (1 to the configured maximum, default the server's
    /// `upgrade_concurrency`; SQLite runs one at a time).
    #[schema(minimum = 1)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u64>,
    /// Record what each item would do, change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

wire_struct! {
    /// Selects deployments of the folder.
    #[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct SelectorBody into Selector {
        /// Any of these apps (default: every app); at most 1,000.
        #[serde(default)]
        #[schema(max_items = 1000)]
        pub app_system_names: Vec<String>,
        /// Every one of these tags; at most 50.
        #[serde(default)]
        #[schema(max_items = 50)]
        pub tags: Vec<String>,
        /// Case-insensitive text in the title, routing name or app system name; at most
        /// 200 characters.
        #[schema(max_length = 200)]
        pub search_text: Option<String>,
        /// Also the folders below this one (default false).
        #[serde(default)]
        pub include_subfolders: bool,
        /// Only deployments behind the target version (default true).
        #[serde(default = "default_true")]
        pub only_outdated: bool,
    }
}

fn default_true() -> bool {
    true
}

/// `"latest"`, or a published integer version of each app.
#[derive(ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum TargetBody {
    Latest(LatestTarget),
    Version(VersionTarget),
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub enum LatestTarget {
    #[serde(rename = "latest")]
    Latest,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct VersionTarget {
    #[schema(minimum = 1)]
    version: i32,
}

/// A count of failures, or a percentage of the items such as `"5%"`.
#[derive(ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum MaxFailuresBody {
    /// At least 1.
    Count(u32),
    /// `1%` to `100%`.
    Percent(String),
}

impl CreateUpgradeOperation {
    /// The request as the monitor shows it: the fields uplift reads, without any it
    /// ignores, and a listed ids' count instead of the ids (up to 100,000 of them;
    /// `/items` lists them).
    fn as_recorded(&self) -> Result<serde_json::Value, ApiError> {
        // Serialised without the ids: as JSON values they would cost tens of MiB for a
        // moment at 100,000 ids, only to be dropped again.
        let without_ids = CreateUpgradeOperation {
            deployment_ids: None,
            selector: self.selector.clone(),
            target: self.target.clone(),
            max_failures: self.max_failures.clone(),
            max_concurrency: self.max_concurrency,
            dry_run: self.dry_run,
        };
        let mut recorded = serde_json::to_value(&without_ids)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("the request as JSON: {e}")))?;
        if let Some(fields) = recorded.as_object_mut()
            && let Some(ids) = &self.deployment_ids
        {
            fields.insert("deploymentIdCount".into(), ids.len().into());
        }
        Ok(recorded)
    }

    /// The validated request; each refusal names the field.
    fn validate(
        self,
        policy: &OperationPolicy,
        default_concurrency: usize,
    ) -> Result<UpgradeRequest, ApiError> {
        let selection = match (self.deployment_ids, self.selector) {
            (Some(ids), None) => {
                // A deployment id is a GUID (36 characters, 38 in braces); far longer is
                // no id, and one such would make its insert statement as long.
                if let Some((n, id)) = ids
                    .iter()
                    .enumerate()
                    .find(|(_, id)| id.chars().count() > MAX_LISTED_ID_CHARS)
                {
                    return Err(ApiError::bad_request(format!(
                        "deploymentIds[{n}] is {} characters long; a deployment id has at most {MAX_LISTED_ID_CHARS}",
                        id.chars().count()
                    )));
                }
                Selection::Ids(ids)
            }
            (None, Some(selector)) => Selection::Selector(selector.into()),
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_request(
                    "give either deploymentIds or selector, not both",
                ));
            }
            (None, None) => {
                return Err(ApiError::bad_request(
                    "deploymentIds or selector is required",
                ));
            }
        };
        Ok(UpgradeRequest {
            selection,
            target: parse_target(self.target.as_ref())?,
            max_failures: self
                .max_failures
                .as_ref()
                .filter(|v| !v.is_null())
                .map(FailureBudget::parse)
                .transpose()?,
            max_concurrency: operations::concurrency(
                self.max_concurrency,
                default_concurrency,
                policy.max_concurrency,
            )?,
            dry_run: self.dry_run,
        })
    }
}

pub(super) fn parse_target(raw: Option<&serde_json::Value>) -> Result<Target, ApiError> {
    use serde_json::Value;
    let refuse = |raw: &Value| {
        ApiError::bad_request(format!(
            "target must be \"latest\" or {{\"version\": N}} with N a whole number of at least 1, not {raw}"
        ))
    };
    match raw {
        None | Some(Value::Null) => Ok(Target::Latest),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("latest") => Ok(Target::Latest),
        Some(raw @ Value::Object(fields)) => fields
            .get("version")
            .and_then(Value::as_i64)
            .filter(|v| *v >= 1)
            .and_then(|v| i32::try_from(v).ok())
            .map(Target::Version)
            .ok_or_else(|| refuse(raw)),
        Some(raw) => Err(refuse(raw)),
    }
}

/// An operation as its monitor shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationMonitor {
    pub id: String,
    /// `upgrade`.
    pub kind: String,
    pub status: OperationStatusName,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The token subject that created it; the operation acts with its rights.
    pub created_by: String,
    pub folder_key: String,
    /// The create call's request as accepted.
    #[schema(value_type = Object)]
    pub request: serde_json::Value,
    pub counters: OperationCounters,
    /// Why it failed (`Failed` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<OperationError>,
    /// The bulk call's answer, once finished, when it has at most
    /// `UPLIFT_MAX_BULK_ITEMS` items (`/items` pages any operation's items).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<BulkUpgradeResponse>,
}

wire_enum! {
    #[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
    pub enum OperationStatusName mirrors OperationStatus {
        NotStarted,
        Running,
        /// Every item updated or unchanged.
        Succeeded,
        Failed,
        Canceled,
    }
}

wire_struct! {
    /// Items by state; the parts always add up to `total`, which never changes.
    #[derive(Debug, Serialize, ToSchema)]
    pub struct OperationCounters from Counters {
        pub total: u64,
        /// Not started.
        pub pending: u64,
        /// Taken by a worker and not finished.
        pub running: u64,
        /// Moved to a newer version.
        pub updated: u64,
        /// Already on the target version.
        pub unchanged: u64,
        pub failed: u64,
        /// Not started because the operation stopped (failure budget, revoked permission).
        pub skipped: u64,
        pub canceled: u64,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OperationError {
    /// `items_failed`, `failure_budget_exhausted`, `permission_revoked` or `internal`.
    pub code: String,
    pub message: String,
}

/// One page of a collection with the count of all matching entries.
#[derive(Debug, Serialize, ToSchema)]
pub struct OperationsPage {
    pub count: u64,
    pub value: Vec<OperationMonitor>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OperationItemsPage {
    pub count: u64,
    pub value: Vec<OperationItemView>,
}

/// One item of an operation and, once settled, its outcome.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationItemView {
    /// Position in the operation, from 1.
    pub seq: i32,
    /// The deployment id as given (or as selected).
    pub id: String,
    pub status: ItemStatusName,
    pub app_system_name: Option<String>,
    pub previous_version: Option<i32>,
    pub version: Option<i32>,
    /// Why it failed, was skipped or canceled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    pub finished_at: Option<DateTime<Utc>>,
}

wire_enum! {
    #[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
    #[serde(rename_all = "camelCase")]
    pub enum ItemStatusName mirrors ItemStatus {
        Pending,
        Running,
        Updated,
        Unchanged,
        Failed,
        Skipped,
        Canceled,
    }
}

/// The monitor of `snapshot`, with the inline result when it is finished and small.
pub async fn monitor(
    state: &AppState,
    snapshot: Snapshot,
    folder_key: &str,
    with_result: bool,
) -> Result<OperationMonitor, ApiError> {
    let Snapshot {
        operation,
        counters,
    } = snapshot;
    let result = if with_result
        && operation.status.is_terminal()
        && counters.total as usize <= state.settings.max_bulk_items
    {
        Some(BulkUpgradeResponse::from_outcomes(
            operations::outcomes(&state.db, &operation).await?,
        ))
    } else {
        None
    };
    let error = operation.error_code.clone().map(|code| OperationError {
        code,
        message: operation.error_message.clone().unwrap_or_default(),
    });
    Ok(OperationMonitor {
        request: serde_json::from_str(&operation.request).unwrap_or(serde_json::Value::Null),
        kind: "upgrade".into(),
        status: operation.status.into(),
        created_at: operation.created_at,
        started_at: operation.started_at,
        finished_at: operation.finished_at,
        created_by: operation.created_by,
        folder_key: folder_key.to_string(),
        counters: counters.into(),
        error,
        result,
        id: operation.id,
    })
}

/// The monitor's absolute URL, as the client reached this server.
fn monitor_url(req: &HttpRequest, state: &AppState, id: &str) -> String {
    let (scheme, host) = origin(req);
    format!(
        "{scheme}://{host}{}/operations/{id}",
        state.settings.uipath_base_path()
    )
}

/// A monitor answer; `Retry-After` while the operation is not finished.
fn monitor_response(status: StatusCode, monitor: &OperationMonitor) -> HttpResponse {
    let mut response = HttpResponse::build(status);
    if !matches!(
        monitor.status,
        OperationStatusName::Succeeded
            | OperationStatusName::Failed
            | OperationStatusName::Canceled
    ) {
        response.insert_header((header::RETRY_AFTER, POLL_AFTER_SECONDS));
    }
    response.json(monitor)
}

/// Creates the operation and starts it on this replica's workers.
pub async fn start(
    req: &HttpRequest,
    state: &AppState,
    caller: &UiPathCaller,
    at: &InFolder,
    request: UpgradeRequest,
    request_json: serde_json::Value,
) -> Result<Operation, ApiError> {
    let policy = *registered::<OperationPolicy>(req)?.get_ref();
    let created = operations::create(
        &state.db,
        NewOperation {
            tenant_id: caller.tenant_id(),
            folder: &at.folder,
            actor: &at.actor,
            request,
            request_json,
            max_items: policy.max_items,
        },
    )
    .await?;
    registered::<operations::Workers>(req)?.wake();
    tracing::info!(operation = %created.id, total = created.total, "operation created");
    Ok(created)
}

/// The 202 answer: the monitor, where to watch it, when to look again.
pub async fn accepted(
    req: &HttpRequest,
    state: &AppState,
    operation: Operation,
    folder_key: &str,
) -> Result<HttpResponse, ApiError> {
    let location = monitor_url(req, state, &operation.id);
    let snapshot = operations::snapshot(&state.db, operation).await?;
    let monitor = monitor(state, snapshot, folder_key, true).await?;
    let mut response = monitor_response(StatusCode::ACCEPTED, &monitor);
    response
        .headers_mut()
        .insert(OPERATION_LOCATION, header_value(&location)?);
    response.headers_mut().insert(
        PREFERENCE_APPLIED,
        header::HeaderValue::from_static("respond-async"),
    );
    Ok(response)
}

fn header_value(text: &str) -> Result<header::HeaderValue, ApiError> {
    header::HeaderValue::from_str(text)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("a header value: {e}")))
}

/// Waits up to `wait` for the operation to finish; its settled outcomes if it did.
async fn wait_for(
    state: &AppState,
    operation_id: &str,
    wait: Duration,
) -> Result<Option<Vec<Outcome>>, ApiError> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let Some(current) = operations::load(&state.db, operation_id).await? else {
            return Ok(None);
        };
        if current.status.is_terminal() {
            return Ok(Some(operations::outcomes(&state.db, &current).await?));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(50).min(deadline - tokio::time::Instant::now()))
            .await;
    }
}

/// The bulk call's `Prefer: respond-async` form: its ids become an operation; with
/// `wait`, the usual 200 answer if it finished in time (and is no larger than a
/// synchronous call's), else 202 and the monitor.
pub async fn respond_async(
    req: &HttpRequest,
    state: &AppState,
    caller: &UiPathCaller,
    at: &InFolder,
    ids: Vec<String>,
    options: &BulkParams,
    wait: Option<Duration>,
) -> Result<HttpResponse, ApiError> {
    let policy = *registered::<OperationPolicy>(req)?.get_ref();
    let max_failures = options
        .max_failures
        .map(|n| FailureBudget::Count(u32::try_from(n).unwrap_or(u32::MAX)));
    let request_json = serde_json::json!({
        "deploymentIdCount": ids.len(),
        "target": "latest",
        "maxFailures": options.max_failures,
        "dryRun": options.dry_run,
    });
    let request = UpgradeRequest {
        selection: Selection::Ids(ids),
        target: Target::Latest,
        max_failures,
        max_concurrency: state
            .settings
            .upgrade_concurrency
            .min(policy.max_concurrency),
        dry_run: options.dry_run,
    };
    let operation = start(req, state, caller, at, request, request_json).await?;
    if let Some(wait) = wait
        && let Some(outcomes) = wait_for(state, &operation.id, wait).await?
        && outcomes.len() <= state.settings.max_bulk_items
    {
        return Ok(HttpResponse::Ok().json(BulkUpgradeResponse::from_outcomes(outcomes)));
    }
    accepted(req, state, operation, &at.folder.key).await
}

/// Create an upgrade operation
///
/// Fixes its set of deployments now (`total` never changes; a deployment created
/// later is not in it) and answers 202 with the monitor at once; workers on any
/// replica carry it out, each item in its own transaction.
#[utoipa::path(
    post,
    path = "/operations/upgrades",
    tag = "Operations",
    params(super::FolderHeader),
    request_body = CreateUpgradeOperation,
    responses(
        (status = 202, description = "Created; watch it at Operation-Location", body = OperationMonitor,
         headers(("Operation-Location" = String, description = "The monitor's absolute URL"),
                 ("Retry-After" = u32, description = "Seconds until it is worth polling"))),
        (status = 400, description = "The request names no deployments, or a field is wrong", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn create_upgrade_operation(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: UiPathCaller,
    folder_key: FolderKeyHeader,
    body: OperationJsonBody<CreateUpgradeOperation>,
) -> Result<HttpResponse, ApiError> {
    let needs = caller.needs(Permission::AppsEdit)?;
    let parsed = body.0;
    let request_json = parsed.as_recorded()?;
    let policy = *registered::<OperationPolicy>(&req)?.get_ref();
    let request = parsed.validate(&policy, state.settings.upgrade_concurrency)?;
    let at = needs.in_folder(&state.db, &folder_key).await?;
    if let Some(answer) = idempotency::claim(&req).await? {
        return Ok(answer);
    }
    let operation = start(&req, &state, &caller, &at, request, request_json).await?;
    accepted(&req, &state, operation, &at.folder.key).await
}

/// The operation `{operation_id}` of the caller's folder (404 for any other).
async fn find_in_folder(
    state: &AppState,
    caller: &UiPathCaller,
    folder_id: i32,
    id: &str,
) -> Result<Snapshot, ApiError> {
    operations::find(&state.db, caller.tenant_id(), folder_id, id)
        .await?
        .ok_or_else(|| not_found(id))
}

fn not_found(id: &str) -> ApiError {
    // The same words for an operation of another folder or tenant as for none at all.
    ApiError::NotFound(format!("no operation {id} in this folder"))
}

/// Watch an operation
///
/// Status, counters and, once finished, the result. `Retry-After` while it runs.
#[utoipa::path(
    get,
    path = "/operations/{operation_id}",
    tag = "Operations",
    params(("operation_id" = String, Path, description = "The operation's id"), super::FolderHeader),
    responses(
        (status = 200, description = "The monitor", body = OperationMonitor),
        (status = 404, description = "No such operation in this folder", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn get_operation(
    state: web::Data<AppState>,
    caller: UiPathCaller,
    folder_key: FolderKeyHeader,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let needs = caller.needs(Permission::OperationsView)?;
    let folder = needs.in_folder(&state.db, &folder_key).await?.folder;
    let snapshot = find_in_folder(&state, &caller, folder.id, &path).await?;
    let monitor = monitor(&state, snapshot, &folder.key, true).await?;
    Ok(monitor_response(StatusCode::OK, &monitor))
}

paged_params! {
    /// The query of the operations list.
    pub struct OperationListParams {
        /// Only operations in this status.
        pub status: Option<OperationStatusName>,
    }
}

paged_params! {
    /// The query of the items list.
    pub struct OperationItemParams {
        /// Only items in this state.
        pub status: Option<ItemStatusName>,
    }
}

/// List the folder's operations
///
/// Newest first.
#[utoipa::path(
    get,
    path = "/operations",
    tag = "Operations",
    params(OperationListParams, super::FolderHeader),
    responses((status = 200, description = "One page of the folder's operations", body = OperationsPage)),
)]
pub async fn list_operations(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: UiPathCaller,
    folder_key: FolderKeyHeader,
) -> Result<HttpResponse, ApiError> {
    let needs = caller.needs(Permission::OperationsView)?;
    let params: OperationListParams = parse_query(req.query_string())?;
    let (top, skip) = (params.top, params.skip);
    let folder = needs.in_folder(&state.db, &folder_key).await?.folder;
    let (count, snapshots) = operations::list(
        &state.db,
        caller.tenant_id(),
        folder.id,
        params.status.map(Into::into),
        top,
        skip,
    )
    .await?;
    let mut value = Vec::with_capacity(snapshots.len());
    for snapshot in snapshots {
        value.push(monitor(&state, snapshot, &folder.key, false).await?);
    }
    Ok(HttpResponse::Ok().json(OperationsPage { count, value }))
}

/// Page an operation's items
///
/// Every item in order with its outcome, for any size of operation.
#[utoipa::path(
    get,
    path = "/operations/{operation_id}/items",
    tag = "Operations",
    params(("operation_id" = String, Path, description = "The operation's id"), OperationItemParams, super::FolderHeader),
    responses(
        (status = 200, description = "One page of items", body = OperationItemsPage),
        (status = 404, description = "No such operation in this folder", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn operation_items(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: UiPathCaller,
    folder_key: FolderKeyHeader,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let needs = caller.needs(Permission::OperationsView)?;
    let params: OperationItemParams = parse_query(req.query_string())?;
    let (top, skip) = (params.top, params.skip);
    let folder = needs.in_folder(&state.db, &folder_key).await?.folder;
    let snapshot = find_in_folder(&state, &caller, folder.id, &path).await?;
    let operation = snapshot.operation;
    let (count, items) = operations::items(
        &state.db,
        &operation,
        params.status.map(Into::into),
        top,
        skip,
    )
    .await?;
    let value = items
        .into_iter()
        .map(|item| {
            let (seq, status, finished_at) = (item.seq, item.status, item.finished_at);
            let (id, system_name, from, to) = (
                item.raw_id.clone(),
                item.app_system_name.clone(),
                item.from_version,
                item.to_version,
            );
            let failure = match operations::outcome(&operation, item) {
                Some(Outcome::Failed(failure)) => Some(failure.into()),
                _ => None,
            };
            OperationItemView {
                seq,
                id,
                status: status.into(),
                app_system_name: system_name,
                previous_version: from,
                version: to,
                failure,
                finished_at,
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(OperationItemsPage { count, value }))
}

/// Cancel an operation
///
/// No new item starts; items in flight finish first; the rest become `canceled`.
/// A finished operation cannot be canceled (409).
#[utoipa::path(
    post,
    path = "/operations/{operation_id}/cancel",
    tag = "Operations",
    params(("operation_id" = String, Path, description = "The operation's id"), super::FolderHeader),
    responses(
        (status = 200, description = "Canceled; the monitor", body = OperationMonitor),
        (status = 404, description = "No such operation in this folder", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The operation already finished", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn cancel_operation(
    state: web::Data<AppState>,
    caller: UiPathCaller,
    folder_key: FolderKeyHeader,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let needs = caller.needs(Permission::AppsEdit)?;
    let folder = needs.in_folder(&state.db, &folder_key).await?.folder;
    let snapshot = operations::cancel(&state.db, caller.tenant_id(), folder.id, &path)
        .await?
        .ok_or_else(|| not_found(&path))?;
    tracing::info!(operation = %snapshot.operation.id, "operation canceled");
    let monitor = monitor(&state, snapshot, &folder.key, true).await?;
    Ok(monitor_response(StatusCode::OK, &monitor))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_target_is_latest_or_a_version_and_anything_else_is_named() {
        assert_eq!(parse_target(None).unwrap(), Target::Latest);
        assert_eq!(
            parse_target(Some(&json!("latest"))).unwrap(),
            Target::Latest
        );
        assert_eq!(
            parse_target(Some(&json!({"version": 3}))).unwrap(),
            Target::Version(3)
        );
        for bad in [
            json!("newest"),
            json!({"version": 0}),
            json!({"version": "3"}),
            json!(3),
        ] {
            let err = parse_target(Some(&bad)).unwrap_err().to_string();
            assert!(err.contains("target"), "{bad}: {err}");
        }
    }
}
