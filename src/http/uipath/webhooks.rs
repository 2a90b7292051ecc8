//! Webhook endpoints under the UiPath base path: register, list, read, change,
//! remove; rotate the secret; the delivery log; replay one delivery or everything
//! since a time; send a test event. Tenant-wide Administrators only
//! (`Webhooks.View` to read, `Webhooks.Manage` to change).

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use entity::{webhook_delivery::DeliveryStatus, webhook_endpoint::Model as Endpoint};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::params::{PageParams, paged_params};
use crate::{
    access::Permission,
    app::AppState,
    http::{
        ApiError,
        auth::UiPathCaller,
        extract::{JsonBody, OptionalJsonBody, parse_json, parse_query},
        idempotency,
        problem::Problem,
        registered,
        wire::wire_enum,
    },
    webhooks::{
        Relay, WebhookPolicy,
        deliveries::{self, Logged},
        endpoints::{self, EndpointFields},
        guard::{Guard, SystemLookup},
        message,
    },
};

/// A new endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateWebhook {
    /// Where events are POSTed: `https://` (or `http://` where the operator allows
    /// it), never an address inside (loopback, private, link-local…) unless the
    /// operator's allow-list opens it.
    #[schema(max_length = 2048)]
    pub url: String,
    /// The event types wanted; empty or absent: all.
    #[serde(default)]
    pub event_types: Vec<String>,
    /// Only events of these folders (tenant-wide events always); empty: all.
    #[serde(default)]
    #[schema(max_items = 100)]
    pub folder_keys: Vec<String>,
    /// Default true.
    pub enabled: Option<bool>,
    /// `standard` (default) or `cloudevents` (binary mode).
    pub format: Option<WebhookFormat>,
    #[schema(max_length = 500)]
    pub description: Option<String>,
}

/// Fields to change; those absent stay.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateWebhook {
    #[schema(max_length = 2048)]
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    #[schema(max_items = 100)]
    pub folder_keys: Option<Vec<String>>,
    /// `true` enables it again (also after it was disabled by a 410 or by failing).
    pub enabled: Option<bool>,
    pub format: Option<WebhookFormat>,
    #[schema(max_length = 500)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    Standard,
    Cloudevents,
}

impl WebhookFormat {
    fn as_str(self) -> &'static str {
        match self {
            WebhookFormat::Standard => message::FORMAT_STANDARD,
            WebhookFormat::Cloudevents => message::FORMAT_CLOUDEVENTS,
        }
    }

    fn of(stored: &str) -> Self {
        if stored == message::FORMAT_CLOUDEVENTS {
            WebhookFormat::Cloudevents
        } else {
            WebhookFormat::Standard
        }
    }
}

/// An endpoint (never its secret, which only its creation and a rotation show).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub folder_keys: Vec<String>,
    pub format: WebhookFormat,
    pub enabled: bool,
    /// `gone` (the receiver answered 410) or `failing` (every attempt failed for the
    /// configured period); null when enabled or disabled by its owner.
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<DateTime<Utc>>,
    /// Until then the secret before the last rotation also signs.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Endpoint> for WebhookView {
    fn from(e: Endpoint) -> Self {
        let (event_types, folder_keys) = endpoints::filters(&e);
        WebhookView {
            format: WebhookFormat::of(&e.format),
            id: e.id,
            url: e.url,
            description: e.description,
            event_types,
            folder_keys,
            enabled: e.enabled,
            disabled_reason: e.disabled_reason,
            disabled_at: e.disabled_at,
            previous_secret_expires_at: e.previous_secret_expires_at,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

/// A created endpoint, with its signing secret (shown this once).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub endpoint: WebhookView,
    /// `whsec_…`: verify each delivery's `webhook-signature` with it.
    pub secret: String,
}

/// A new secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotatedSecret {
    pub secret: String,
    /// The previous secret signs too (a second signature) until then.
    pub previous_secret_expires_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhooksPage {
    pub count: u64,
    pub value: Vec<WebhookView>,
}

wire_enum! {
    #[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
    #[serde(rename_all = "lowercase")]
    pub enum DeliveryStatusName mirrors DeliveryStatus {
        /// Waiting for its next attempt.
        Pending,
        /// Being sent.
        Sending,
        Succeeded,
        /// Given up: retries exhausted, or the receiver answered 410.
        Failed,
    }
}

/// One delivery of an event to the endpoint and its attempts.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    pub id: String,
    /// The `webhook-id` it is sent with (the same for every delivery of the event).
    pub webhook_id: Option<String>,
    pub event_type: Option<String>,
    /// When the change it reports committed.
    pub event_timestamp: Option<DateTime<Utc>>,
    pub status: DeliveryStatusName,
    /// Made by a replay.
    pub replay: bool,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// When the next attempt is due (`pending` only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub attempts: Vec<AttemptView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptView {
    pub at: DateTime<Utc>,
    /// The receiver's status code, when it answered.
    pub status_code: Option<i32>,
    /// `status N`, `timeout`, `connect: …`, `blocked_address: …`, `dns: …`.
    pub error: Option<String>,
    pub duration_ms: i64,
}

impl From<Logged> for DeliveryView {
    fn from(l: Logged) -> Self {
        let Logged {
            delivery,
            event,
            attempts,
        } = l;
        DeliveryView {
            webhook_id: event.as_ref().map(message::webhook_id),
            event_type: event.as_ref().map(|e| e.event_type.clone()),
            event_timestamp: event.as_ref().map(|e| e.created_at),
            status: delivery.status.into(),
            replay: delivery.replay,
            created_at: delivery.created_at,
            delivered_at: delivery.delivered_at,
            next_attempt_at: (delivery.status == DeliveryStatus::Pending)
                .then_some(delivery.next_attempt_at),
            attempts: attempts
                .into_iter()
                .map(|a| AttemptView {
                    at: a.attempted_at,
                    status_code: a.status_code,
                    error: a.error,
                    duration_ms: a.duration_ms,
                })
                .collect(),
            id: delivery.id,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveriesPage {
    pub count: u64,
    pub value: Vec<DeliveryView>,
}

/// How many deliveries a replay queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayQueued {
    pub count: u64,
}

paged_params! {
    pub struct DeliveryParams {
        /// Only deliveries in this state.
        pub status: Option<DeliveryStatusName>,
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReplayParams {
    /// RFC 3339 time (`2026-12-01T10:00:00Z`): every event since then is sent again.
    pub since: Option<String>,
}

/// The body's fields, read only once the caller may make the call (a caller without
/// the permission learns nothing about what the body should hold).
fn fields_of<T: serde::de::DeserializeOwned>(body: serde_json::Value) -> Result<T, ApiError> {
    let bytes = serde_json::to_vec(&body)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("a parsed body as JSON: {e}")))?;
    parse_json(&bytes)
}

fn guard(policy: &WebhookPolicy) -> Guard {
    Guard::new(
        std::sync::Arc::new(SystemLookup),
        policy.allow.clone(),
        policy.allow_http,
    )
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no webhook endpoint {id} in this tenant"))
}

/// Every call here is tenant-wide: the token's scope for `permission`, then the
/// caller's tenant-wide role.
async fn allowed(
    state: &AppState,
    caller: &UiPathCaller,
    permission: Permission,
) -> Result<(), ApiError> {
    caller.needs(permission)?.in_tenant(&state.db).await
}

async fn endpoint(state: &AppState, caller: &UiPathCaller, id: &str) -> Result<Endpoint, ApiError> {
    endpoints::find(&state.db, caller.tenant_id(), id)
        .await?
        .ok_or_else(|| not_found(id))
}

/// Register a webhook endpoint
///
/// Answers 201 with the endpoint and its signing secret, shown this once.
#[utoipa::path(
    post,
    path = "/webhooks",
    tag = "Webhooks",
    request_body = CreateWebhook,
    responses(
        (status = 201, description = "Registered; keep the secret", body = CreatedWebhook),
        (status = 400, description = "A field is wrong (the URL's scheme or address, an unknown event type, …)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The tenant has the most endpoints it may have", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn create_webhook(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: UiPathCaller,
    body: JsonBody<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    allowed(&state, &caller, Permission::WebhooksManage).await?;
    let policy = registered::<WebhookPolicy>(&req)?;
    let body: CreateWebhook = fields_of(body.0)?;
    if let Some(answer) = idempotency::claim(&req).await? {
        return Ok(answer);
    }
    let created = endpoints::create(
        &state.db,
        &guard(&policy),
        caller.tenant_id(),
        EndpointFields {
            url: Some(body.url),
            event_types: Some(body.event_types),
            folder_keys: Some(body.folder_keys),
            enabled: body.enabled,
            format: body.format.map(|f| f.as_str().to_string()),
            description: body.description,
        },
    )
    .await?;
    tracing::info!(endpoint = %created.id, "webhook endpoint registered");
    let secret = created.secret.clone();
    Ok(HttpResponse::Created().json(CreatedWebhook {
        endpoint: created.into(),
        secret,
    }))
}

/// List the tenant's webhook endpoints
///
/// Oldest first.
#[utoipa::path(
    get,
    path = "/webhooks",
    tag = "Webhooks",
    params(PageParams),
    responses((status = 200, description = "One page of endpoints", body = WebhooksPage)),
)]
pub async fn list_webhooks(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: UiPathCaller,
) -> Result<HttpResponse, ApiError> {
    allowed(&state, &caller, Permission::WebhooksView).await?;
    let PageParams { top, skip } = PageParams::from_query(req.query_string())?;
    let (count, page) = endpoints::list(&state.db, caller.tenant_id(), top, skip).await?;
    Ok(HttpResponse::Ok().json(WebhooksPage {
        count,
        value: page.into_iter().map(Into::into).collect(),
    }))
}

/// Read a webhook endpoint
///
/// Its fields and state (never its secret).
#[utoipa::path(
    get,
    path = "/webhooks/{webhook_id}",
    tag = "Webhooks",
    params(("webhook_id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "The endpoint", body = WebhookView),
        (status = 404, description = "No such endpoint in this tenant", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn get_webhook(
    state: web::Data<AppState>,
    caller: UiPathCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    allowed(&state, &caller, Permission::WebhooksView).await?;
    let found = endpoint(&state, &caller, &path).await?;
    Ok(HttpResponse::Ok().json(WebhookView::from(found)))
}

/// Change a webhook endpoint
///
/// The fields given change; `enabled: true` enables a disabled endpoint again.
#[utoipa::path(
    patch,
    path = "/webhooks/{webhook_id}",
    tag = "Webhooks",
    params(("webhook_id" = String, Path, description = "The endpoint's id")),
    request_body = UpdateWebhook,
    responses(
        (status = 200, description = "The endpoint as changed", body = WebhookView),
        (status = 400, description = "A field is wrong", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint in this tenant", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn update_webhook(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: UiPathCaller,
    path: web::Path<String>,
    body: JsonBody<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    allowed(&state, &caller, Permission::WebhooksManage).await?;
    let policy = registered::<WebhookPolicy>(&req)?;
    let body: UpdateWebhook = fields_of(body.0)?;
    if let Some(answer) = idempotency::claim(&req).await? {
        return Ok(answer);
    }
    let updated = endpoints::update(
        &state.db,
        &guard(&policy),
        caller.tenant_id(),
        &path,
        EndpointFields {
            url: body.url,
            event_types: body.event_types,
            folder_keys: body.folder_keys,
            enabled: body.enabled,
            format: body.format.map(|f| f.as_str().to_string()),
            description: body.description,
        },
    )
    .await?
    .ok_or_else(|| not_found(&path))?;
    registered::<Relay>(&req)?.wake();
    Ok(HttpResponse::Ok().json(WebhookView::from(updated)))
}

/// Remove a webhook endpoint
///
/// Its deliveries and their log go with it.
#[utoipa::path(
    delete,
    path = "/webhooks/{webhook_id}",
    tag = "Webhooks",
    params(("webhook_id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such endpoint in this tenant", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn delete_webhook(
    state: web::Data<AppState>,
    caller: UiPathCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    allowed(&state, &caller, Permission::WebhooksManage).await?;
    if !endpoints::delete(&state.db, caller.tenant_id(), &path).await? {
        return Err(not_found(&path));
    }
    Ok(HttpResponse::NoContent().finish())
}

/// Rotate an endpoint's signing secret
///
/// A new secret signs from now on; the previous one signs too (a second
/// `v1,` signature) for the configured overlap (default 24 hours).
#[utoipa::path(
    post,
    path = "/webhooks/{webhook_id}/rotate-secret",
    tag = "Webhooks",
    params(("webhook_id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "The new secret, shown this once", body = RotatedSecret),
        (status = 404, description = "No such endpoint in this tenant", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn rotate_webhook_secret(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: UiPathCaller,
    path: web::Path<String>,
    _body: OptionalJsonBody<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    allowed(&state, &caller, Permission::WebhooksManage).await?;
    let policy = registered::<WebhookPolicy>(&req)?;
    if let Some(answer) = idempotency::claim(&req).await? {
        return Ok(answer);
    }
    let until = Utc::now()
        + chrono::Duration::from_std(policy.secret_overlap).unwrap_or(chrono::Duration::hours(24));
    let rotated = endpoints::rotate_secret(&state.db, caller.tenant_id(), &path, until)
        .await?
        .ok_or_else(|| not_found(&path))?;
    tracing::info!(endpoint = %rotated.id, "webhook secret rotated");
    Ok(HttpResponse::Ok().json(RotatedSecret {
        secret: rotated.secret,
        previous_secret_expires_at: until,
    }))
}

/// An endpoint's delivery log
///
/// Newest first, each with its attempts (time, status code or error, duration).
#[utoipa::path(
    get,
    path = "/webhooks/{webhook_id}/deliveries",
    tag = "Webhooks",
    params(("webhook_id" = String, Path, description = "The endpoint's id"), DeliveryParams),
    responses(
        (status = 200, description = "One page of deliveries", body = DeliveriesPage),
        (status = 404, description = "No such endpoint in this tenant", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn webhook_deliveries(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: UiPathCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    allowed(&state, &caller, Permission::WebhooksView).await?;
    let params: DeliveryParams = parse_query(req.query_string())?;
    let (top, skip) = (params.top, params.skip);
    let found = endpoint(&state, &caller, &path).await?;
    let (count, logged) = deliveries::log(
        &state.db,
        &found.id,
        params.status.map(Into::into),
        top,
        skip,
    )
    .await?;
    Ok(HttpResponse::Ok().json(DeliveriesPage {
        count,
        value: logged.into_iter().map(Into::into).collect(),
    }))
}

/// Send one delivery again
///
/// A new delivery of the same event (the same `webhook-id`), due now.
#[utoipa::path(
    post,
    path = "/webhooks/{webhook_id}/deliveries/{delivery_id}/replay",
    tag = "Webhooks",
    params(
        ("webhook_id" = String, Path, description = "The endpoint's id"),
        ("delivery_id" = String, Path, description = "The delivery's id"),
    ),
    responses(
        (status = 202, description = "Queued", body = DeliveryView),
        (status = 404, description = "No such endpoint or delivery", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn replay_webhook_delivery(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: UiPathCaller,
    path: web::Path<(String, String)>,
    _body: OptionalJsonBody<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    allowed(&state, &caller, Permission::WebhooksManage).await?;
    let (endpoint_id, delivery_id) = path.into_inner();
    let found = endpoint(&state, &caller, &endpoint_id).await?;
    if let Some(answer) = idempotency::claim(&req).await? {
        return Ok(answer);
    }
    let queued = deliveries::replay_one(&state.db, &found, &delivery_id)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no delivery {delivery_id} of webhook endpoint {endpoint_id}"
            ))
        })?;
    registered::<Relay>(&req)?.wake();
    let view = DeliveryView::from(deliveries::logged(&state.db, queued).await?);
    Ok(HttpResponse::Accepted().json(view))
}

/// Send everything since a time again
///
/// Every event of the tenant since `since` that the endpoint's filters want (the
/// outbox keeps events for the configured retention, default 7 days), as new
/// deliveries with their events' `webhook-id`s.
#[utoipa::path(
    post,
    path = "/webhooks/{webhook_id}/replay",
    tag = "Webhooks",
    params(("webhook_id" = String, Path, description = "The endpoint's id"), ReplayParams),
    responses(
        (status = 202, description = "Queued", body = ReplayQueued),
        (status = 400, description = "since is missing or not an RFC 3339 time", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint in this tenant", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn replay_webhook(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: UiPathCaller,
    path: web::Path<String>,
    _body: OptionalJsonBody<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    allowed(&state, &caller, Permission::WebhooksManage).await?;
    let params: ReplayParams = parse_query(req.query_string())?;
    let since = params
        .since
        .as_deref()
        .ok_or_else(|| ApiError::bad_request("since is required (an RFC 3339 time)"))?;
    let since = DateTime::parse_from_rfc3339(since.trim())
        .map_err(|e| {
            ApiError::bad_request(format!(
                "since {since:?} is not an RFC 3339 time such as 2026-12-01T10:00:00Z: {e}"
            ))
        })?
        .with_timezone(&Utc);
    let found = endpoint(&state, &caller, &path).await?;
    if let Some(answer) = idempotency::claim(&req).await? {
        return Ok(answer);
    }
    let count = deliveries::replay_since(&state.db, &found, since).await?;
    registered::<Relay>(&req)?.wake();
    Ok(HttpResponse::Accepted().json(ReplayQueued { count }))
}

/// Send a test event
///
/// A `webhook.test` event to this endpoint only.
#[utoipa::path(
    post,
    path = "/webhooks/{webhook_id}/test",
    tag = "Webhooks",
    params(("webhook_id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 202, description = "Queued", body = DeliveryView),
        (status = 404, description = "No such endpoint in this tenant", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn test_webhook(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: UiPathCaller,
    path: web::Path<String>,
    _body: OptionalJsonBody<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    allowed(&state, &caller, Permission::WebhooksManage).await?;
    let found = endpoint(&state, &caller, &path).await?;
    if let Some(answer) = idempotency::claim(&req).await? {
        return Ok(answer);
    }
    let actor = caller.actor();
    let queued = deliveries::test(
        &state.db,
        &found,
        &actor.subject,
        actor.request_id.as_deref(),
    )
    .await?;
    registered::<Relay>(&req)?.wake();
    let view = DeliveryView::from(deliveries::logged(&state.db, queued).await?);
    Ok(HttpResponse::Accepted().json(view))
}
