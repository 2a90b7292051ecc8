//! Progressive rollouts under the UiPath base path, at tenant scope (no folder
//! header: a rollout spans folders, and the caller's permission is checked in each):
//! create, read, list, and the actions pause, resume, approve, abort, retry, rollback.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    operations::{OperationCounters, SelectorBody, parse_target},
    params::PageParams,
};
use crate::{
    access::Permission,
    app::{AppState, OperationPolicy},
    http::{
        ApiError,
        auth::UiPathCaller,
        extract::{JsonBody, OptionalJsonBody},
        idempotency,
        problem::Problem,
        registered,
    },
    operations::{self, Workers},
    rollouts::{
        self, Action, Gate, MAX_BAKE_SECONDS, MAX_WAVES, NewRollout, OnFailure, Plan, Request,
        RolloutTarget, RolloutView, Size, Tolerance, WaveFolder, WavePlan, Window, WindowSpec,
    },
};

/// A rollout plan.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateRollout {
    /// 1 to 200 characters (required).
    pub name: Option<String>,
    /// The tenant's deployments (in the folders the caller may see) matching every
    /// criterion; `includeSubfolders` is not used here (waves name folders).
    pub selector: Option<SelectorBody>,
    /// `"latest"` (default), `{"version": N}` (that version of every selected app), or
    /// `{"versions": {"<appSystemName>": N or "1.1.0", …}}`: a version per app, naming
    /// every selected app, each version published (else a 400 naming each).
    #[schema(value_type = Option<Object>)]
    pub target: Option<serde_json::Value>,
    /// In order; 1 to 50 (required).
    #[serde(default)]
    pub waves: Vec<WaveBody>,
    pub window: Option<WindowBody>,
    pub approval: Option<ApprovalBody>,
    /// `pause` (default) or `rollback`: what a wave over its failure budget does.
    pub on_failure: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WaveBody {
    /// 1 to 100 characters, distinct among the waves; default `wave-N`.
    pub name: Option<String>,
    /// The folders the wave draws from (default: everything not in an earlier wave).
    #[serde(default)]
    pub folders: Vec<WaveFolderBody>,
    /// A count, or a percentage of the selection such as `"25%"` (rounded down, at
    /// least 1). Default, and always for the last wave: everything left.
    #[schema(value_type = Option<Object>)]
    pub size: Option<serde_json::Value>,
    /// Deployments upgraded at once (default the server's `upgrade_concurrency`).
    #[schema(minimum = 1)]
    pub max_concurrency: Option<u64>,
    /// Failed deployments tolerated: a count (default 0) or a percentage of the wave.
    #[schema(value_type = Option<Object>)]
    pub max_failures: Option<serde_json::Value>,
    /// Seconds to wait after the wave before the next (default 0).
    #[schema(minimum = 0, maximum = 604800)]
    pub bake_seconds: Option<u64>,
    /// `auto` (default) or `manual`: the wave waits for `approve`.
    pub gate: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WaveFolderBody {
    /// The folder's key.
    pub key: String,
    #[serde(default)]
    pub include_subfolders: bool,
}

/// Items start only inside a window; no new wave within `cutoffMinutes` of its end.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WindowBody {
    /// An IANA time zone such as `Europe/Berlin`.
    pub time_zone: String,
    pub weekly: Vec<SlotBody>,
    #[serde(default)]
    pub cutoff_minutes: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SlotBody {
    /// `Mon` … `Sun`.
    pub days: Vec<String>,
    /// `HH:MM` local time.
    pub start: String,
    /// `HH:MM` (or `24:00`); at or before `start`: the next day.
    pub end: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalBody {
    /// The approver must be another subject than the creator.
    #[serde(default)]
    pub four_eyes: bool,
}

impl CreateRollout {
    fn validate(
        self,
        policy: &OperationPolicy,
        default_concurrency: usize,
    ) -> Result<Plan, ApiError> {
        let name = self.name.as_deref().unwrap_or_default().trim().to_string();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(ApiError::bad_request("name must be 1 to 200 characters"));
        }
        if self.waves.is_empty() || self.waves.len() > MAX_WAVES {
            return Err(ApiError::bad_request(format!(
                "waves must list 1 to {MAX_WAVES} waves"
            )));
        }
        let names = wave_names(&self.waves)?;
        let mut waves = Vec::with_capacity(self.waves.len());
        for ((n, wave), name) in self.waves.into_iter().enumerate().zip(names) {
            let bake_seconds = wave.bake_seconds.unwrap_or(0);
            if bake_seconds > MAX_BAKE_SECONDS {
                return Err(ApiError::bad_request(format!(
                    "waves[{n}].bakeSeconds must be at most {MAX_BAKE_SECONDS}"
                )));
            }
            waves.push(WavePlan {
                name,
                folders: wave
                    .folders
                    .into_iter()
                    .map(|f| WaveFolder {
                        key: f.key,
                        include_subfolders: f.include_subfolders,
                    })
                    .collect(),
                size: wave
                    .size
                    .as_ref()
                    .filter(|v| !v.is_null())
                    .map(|v| Size::parse(&format!("waves[{n}].size"), v))
                    .transpose()?,
                max_concurrency: operations::concurrency(
                    wave.max_concurrency,
                    default_concurrency,
                    policy.max_concurrency,
                )
                .map_err(|_| {
                    ApiError::bad_request(format!(
                        "waves[{n}].maxConcurrency must be from 1 to {}",
                        policy.max_concurrency
                    ))
                })?,
                max_failures: wave
                    .max_failures
                    .as_ref()
                    .filter(|v| !v.is_null())
                    .map(|v| Tolerance::parse(&format!("waves[{n}].maxFailures"), v))
                    .transpose()?
                    .unwrap_or(Tolerance::Count(0)),
                bake_seconds,
                gate: Gate::parse(&format!("waves[{n}].gate"), wave.gate.as_deref())?,
            });
        }
        let window = self
            .window
            .map(|w| {
                Window::parse(WindowSpec {
                    time_zone: w.time_zone,
                    weekly: w
                        .weekly
                        .into_iter()
                        .map(|s| rollouts::SlotSpec {
                            days: s.days,
                            start: s.start,
                            end: s.end,
                        })
                        .collect(),
                    cutoff_minutes: w.cutoff_minutes,
                })
            })
            .transpose()?;
        Ok(Plan {
            name,
            selector: self.selector.map(Into::into).unwrap_or_default(),
            target: match self.target.as_ref().and_then(RolloutTarget::parse_per_app) {
                Some(per_app) => per_app?,
                None => RolloutTarget::Same(parse_target(self.target.as_ref())?),
            },
            waves,
            window,
            four_eyes: self.approval.is_some_and(|a| a.four_eyes),
            on_failure: OnFailure::parse(self.on_failure.as_deref())?,
        })
    }
}

/// The longest wave name.
const MAX_WAVE_NAME_CHARS: usize = 100;

/// Each wave's name (trimmed; default `wave-N`), or a 400 naming every wave whose name
/// is empty, too long, or another wave's too (names identify waves in the timeline,
/// the events and the CLI's progress).
fn wave_names(waves: &[WaveBody]) -> Result<Vec<String>, ApiError> {
    let names: Vec<String> = waves
        .iter()
        .enumerate()
        .map(|(n, w)| match &w.name {
            None => format!("wave-{n}"),
            Some(name) => name.trim().to_string(),
        })
        .collect();
    let mut problems = Vec::new();
    for (n, name) in names.iter().enumerate() {
        if name.is_empty() || name.chars().count() > MAX_WAVE_NAME_CHARS {
            problems.push(format!(
                "waves[{n}].name must be 1 to {MAX_WAVE_NAME_CHARS} characters"
            ));
        } else if let Some(first) = names[..n].iter().position(|other| other == name) {
            problems.push(format!(
                "waves[{n}].name '{name}' is already the name of waves[{first}]"
            ));
        }
    }
    if problems.is_empty() {
        Ok(names)
    } else {
        Err(ApiError::bad_request(problems.join("; ")))
    }
}

/// A rollout: its plan, state, waves and timeline.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutBody {
    pub id: String,
    pub name: String,
    /// `Pending`, `Running`, `Baking`, `AwaitingApproval`, `WaitingForWindow`,
    /// `Paused`, `Succeeded`, `Aborted`, `RollingBack`, `RolledBack` or `Failed`.
    pub status: String,
    /// Why it paused, failed or stopped.
    pub reason: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The wave running, baking, or next.
    pub current_wave: i32,
    pub bake_until: Option<DateTime<Utc>>,
    pub window_opens_at: Option<DateTime<Utc>>,
    pub total: i32,
    /// The create call's body as accepted.
    #[schema(value_type = Object)]
    pub plan: serde_json::Value,
    pub waves: Vec<WaveStatusBody>,
    pub timeline: Vec<TimelineEntry>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WaveStatusBody {
    pub index: i32,
    pub name: String,
    pub gate: String,
    pub bake_seconds: i64,
    pub max_concurrency: i32,
    /// Failures tolerated (resolved).
    pub max_failures: i32,
    /// `Pending`, `Running`, `Succeeded` or `Failed`.
    pub status: String,
    /// The wave's current operation (a retry starts a new one).
    pub operation_id: Option<String>,
    pub attempts: i32,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub total: i32,
    /// The current operation's counters.
    pub counters: Option<OperationCounters>,
    /// Deployments restored by a rollback.
    pub rolled_back: u64,
    pub deployment_ids: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimelineEntry {
    pub at: DateTime<Utc>,
    /// `created`, `wave_started`, `wave_finished`, `awaiting_approval`, `approved`, …
    pub kind: String,
    pub from: Option<String>,
    pub to: String,
    pub wave: Option<i32>,
    pub actor: String,
    pub comment: Option<String>,
    pub detail: Option<String>,
}

impl From<RolloutView> for RolloutBody {
    fn from(view: RolloutView) -> Self {
        let r = view.rollout;
        RolloutBody {
            status: rollouts::status_name(r.status).into(),
            plan: serde_json::from_str(&r.plan).unwrap_or(serde_json::Value::Null),
            waves: view
                .waves
                .into_iter()
                .map(|w| WaveStatusBody {
                    rolled_back: w
                        .deployments
                        .iter()
                        .filter(|d| d.rollback.as_deref() == Some("rolled_back"))
                        .count() as u64,
                    deployment_ids: w.deployments.into_iter().map(|d| d.deployment_id).collect(),
                    counters: w.counters.map(Into::into),
                    index: w.wave.idx,
                    name: w.wave.name,
                    gate: w.wave.gate,
                    bake_seconds: w.wave.bake_seconds,
                    max_concurrency: w.wave.max_concurrency,
                    max_failures: w.wave.max_failures,
                    status: w.wave.status,
                    operation_id: w.wave.operation_id,
                    attempts: w.wave.attempts,
                    started_at: w.wave.started_at,
                    finished_at: w.wave.finished_at,
                    total: w.wave.total,
                })
                .collect(),
            timeline: view
                .timeline
                .into_iter()
                .map(|e| TimelineEntry {
                    at: e.at,
                    kind: e.kind,
                    from: e.from_status,
                    to: e.to_status,
                    wave: e.wave,
                    actor: e.actor,
                    comment: e.comment,
                    detail: e.detail,
                })
                .collect(),
            id: r.id,
            name: r.name,
            reason: r.reason,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
            finished_at: r.finished_at,
            current_wave: r.current_wave,
            bake_until: r.bake_until,
            window_opens_at: r.window_opens_at,
            total: r.total,
        }
    }
}

/// Create a rollout
///
/// Validates the plan (every folder exists and the caller holds Apps.Edit in every
/// folder it touches, the waves cover the selection), fixes which deployment is in
/// which wave, and answers 201 with the rollout; the driver on any replica runs it.
#[utoipa::path(
    post,
    path = "/rollouts",
    tag = "Rollouts",
    request_body = CreateRollout,
    responses(
        (status = 201, description = "Created", body = RolloutBody),
        (status = 400, description = "The plan is wrong; the detail names each problem", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another active rollout holds some of the deployments", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn create_rollout(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: UiPathCaller,
    body: JsonBody<CreateRollout>,
) -> Result<HttpResponse, ApiError> {
    caller.needs(Permission::AppsEdit)?;
    let parsed = body.0;
    let plan_json = serde_json::to_value(&parsed)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("the plan as JSON: {e}")))?;
    let policy = *registered::<OperationPolicy>(&req)?.get_ref();
    let plan = parsed.validate(&policy, state.settings.upgrade_concurrency)?;
    if let Some(answer) = idempotency::claim(&req).await? {
        return Ok(answer);
    }
    let actor = caller.actor();
    let created = rollouts::create(
        &state.db,
        NewRollout {
            principal: &caller.principal,
            actor: &actor,
            plan,
            plan_json,
            max_items: policy.max_items,
        },
    )
    .await?;
    tracing::info!(rollout = %created.id, total = created.total, "rollout created");
    let view = rollouts::view(&state.db, created).await?;
    Ok(HttpResponse::Created().json(RolloutBody::from(view)))
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no rollout {id} in this tenant"))
}

/// Watch a rollout
///
/// The plan, the state, each wave with its operation and counters, and the timeline.
#[utoipa::path(
    get,
    path = "/rollouts/{rollout_id}",
    tag = "Rollouts",
    params(("rollout_id" = String, Path, description = "The rollout's id")),
    responses(
        (status = 200, description = "The rollout", body = RolloutBody),
        (status = 404, description = "No such rollout the caller may see", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn get_rollout(
    state: web::Data<AppState>,
    caller: UiPathCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.needs(Permission::OperationsView)?;
    let view = rollouts::find(&state.db, &caller.principal, &path)
        .await?
        .ok_or_else(|| not_found(&path))?;
    Ok(HttpResponse::Ok().json(RolloutBody::from(view)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RolloutsPage {
    pub count: u64,
    pub value: Vec<RolloutBody>,
}

/// List rollouts
///
/// The tenant's rollouts the caller may see, newest first.
#[utoipa::path(
    get,
    path = "/rollouts",
    tag = "Rollouts",
    params(PageParams),
    responses((status = 200, description = "One page of rollouts", body = RolloutsPage)),
)]
pub async fn list_rollouts(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: UiPathCaller,
) -> Result<HttpResponse, ApiError> {
    caller.needs(Permission::OperationsView)?;
    let PageParams { top, skip } = PageParams::from_query(req.query_string())?;
    let (count, page) = rollouts::list(&state.db, &caller.principal, top, skip).await?;
    let mut value = Vec::with_capacity(page.len());
    for found in page {
        value.push(rollouts::view(&state.db, found).await?.into());
    }
    Ok(HttpResponse::Ok().json(RolloutsPage { count, value }))
}

/// Why an action is taken, recorded in the timeline.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ActionBody {
    /// At most 1,000 characters.
    pub comment: Option<String>,
}

async fn take(
    req: &HttpRequest,
    state: &AppState,
    caller: &UiPathCaller,
    id: &str,
    action: Action,
    body: ActionBody,
) -> Result<HttpResponse, ApiError> {
    caller.needs(Permission::AppsEdit)?;
    if body
        .comment
        .as_ref()
        .is_some_and(|c| c.chars().count() > 1000)
    {
        return Err(ApiError::bad_request(
            "comment must be at most 1000 characters",
        ));
    }
    if let Some(answer) = idempotency::claim(req).await? {
        return Ok(answer);
    }
    let actor = caller.actor();
    let updated = rollouts::act(
        &state.db,
        id,
        action,
        Request {
            principal: &caller.principal,
            actor: &actor,
            comment: body.comment.as_deref(),
        },
    )
    .await?
    .ok_or_else(|| not_found(id))?;
    tracing::info!(rollout = %updated.id, action = action.as_str(), "rollout action");
    registered::<Workers>(req)?.wake();
    let view = rollouts::view(&state.db, updated).await?;
    Ok(HttpResponse::Ok().json(RolloutBody::from(view)))
}

macro_rules! action_route {
    ($handler:ident, $action:expr, $path:literal, $summary:literal, $description:literal) => {
        #[doc = $summary]
        #[doc = ""]
        #[doc = $description]
        #[utoipa::path(
            post,
            path = $path,
            tag = "Rollouts",
            params(("rollout_id" = String, Path, description = "The rollout's id")),
            request_body(content = Option<ActionBody>),
            responses(
                (status = 200, description = "Done; the rollout", body = RolloutBody),
                (status = 404, description = "No such rollout the caller may see", body = Problem, content_type = "application/problem+json"),
                (status = 409, description = "The action does not apply in the rollout's state; the detail names the states that allow it", body = Problem, content_type = "application/problem+json"),
            ),
        )]
        pub async fn $handler(
            req: HttpRequest,
            state: web::Data<AppState>,
            caller: UiPathCaller,
            path: web::Path<String>,
            body: OptionalJsonBody<ActionBody>,
        ) -> Result<HttpResponse, ApiError> {
            take(&req, &state, &caller, &path, $action, body.0).await
        }
    };
}

action_route!(
    pause_rollout,
    Action::Pause,
    "/rollouts/{rollout_id}/pause",
    "Pause a rollout",
    "No new item starts (within `UPLIFT_OPERATION_POLL_MS` of the pause: the worker holding the wave looks that often); items in flight finish."
);
action_route!(
    resume_rollout,
    Action::Resume,
    "/rollouts/{rollout_id}/resume",
    "Resume a paused rollout",
    "Back to the state it was paused in; a bake keeps its original deadline."
);
action_route!(
    approve_rollout,
    Action::Approve,
    "/rollouts/{rollout_id}/approve",
    "Approve the next wave",
    "Needs Apps.Edit in every folder of the wave; with four eyes, another subject than the creator."
);
action_route!(
    abort_rollout,
    Action::Abort,
    "/rollouts/{rollout_id}/abort",
    "Abort a rollout",
    "Stops starting items and leaves every deployment where it is; `retry` continues it."
);
action_route!(
    retry_rollout,
    Action::Retry,
    "/rollouts/{rollout_id}/retry",
    "Retry a rollout",
    "After Paused, Aborted or Failed: runs the current wave's failed and not started deployments again, then continues."
);
action_route!(
    rollback_rollout,
    Action::Rollback,
    "/rollouts/{rollout_id}/rollback",
    "Roll a rollout back",
    "Restores every deployment it upgraded to its exact previous version, newest wave first, each in its own transaction with a rollback event."
);
