//! The transactional outbox of webhook events: every event row is written inside the
//! transaction (or the single statement) of the change it reports, so a change that
//! rolls back leaves no event and a committed change always has one. The relay
//! (`webhooks`) fans the rows out to endpoints later.
//!
//! A leaf beside `entity`: the services, the engine's statements and the operations
//! write here; nothing here knows about endpoints or HTTP.
//!
//! Rows are written whether or not the tenant has an endpoint: "replay since" must be
//! able to re-send what happened before an endpoint existed (or while it was
//! disabled), and deciding per change would put a read of the endpoints into every
//! upgrade's transaction, which costs about what the insert does.

mod event_type;

use chrono::{DateTime, Utc};
use entity::webhook_event;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DbErr, Set};

pub use event_type::EventType;

/// One event, as its writer knows it.
pub struct NewEvent<'a> {
    pub tenant_id: &'a str,
    pub event_type: EventType,
    /// See [`webhook_event::Model::ordering_key`]; [`ordering_key`] makes one.
    pub ordering_key: String,
    pub deployment_id: Option<&'a str>,
    pub folder_id: Option<i32>,
    pub from_version: Option<i32>,
    pub to_version: Option<i32>,
    pub actor: &'a str,
    pub request_id: Option<&'a str>,
    pub operation_id: Option<&'a str>,
    /// The event's own fields, when the writer has them (the relay adds the rest).
    pub data: Option<serde_json::Value>,
    pub at: DateTime<Utc>,
}

/// The key that orders an event among the others of its subject: a deployment's
/// events by the deployment, an app's by the app, an operation's by the operation.
pub fn ordering_key(kind: &str, id: impl std::fmt::Display) -> String {
    match kind {
        "deployment" => id.to_string(),
        _ => format!("{kind}:{id}"),
    }
}

/// Writes the event inside the caller's transaction.
pub async fn record<C: ConnectionTrait>(txn: &C, event: NewEvent<'_>) -> Result<(), DbErr> {
    webhook_event::ActiveModel {
        id: Set(uuid::Uuid::new_v4().to_string()),
        tenant_id: Set(event.tenant_id.to_string()),
        event_type: Set(event.event_type.as_str().to_string()),
        ordering_key: Set(event.ordering_key),
        deployment_id: Set(event.deployment_id.map(str::to_string)),
        folder_id: Set(event.folder_id),
        from_version: Set(event.from_version),
        to_version: Set(event.to_version),
        actor: Set(event.actor.to_string()),
        request_id: Set(event.request_id.map(str::to_string)),
        operation_id: Set(event.operation_id.map(str::to_string)),
        data: Set(event.data.map(|d| d.to_string())),
        created_at: Set(event.at),
        dispatched: Set(false),
        ..Default::default()
    }
    .insert(txn)
    .await?;
    Ok(())
}
