//! The append-only deployment history. Every change to a deployment's version is
//! recorded by `record`, inside the transaction that makes the change, together
//! with its webhook event (`outbox`).

use chrono::{DateTime, Utc};
use entity::deployment_event;
pub use entity::deployment_event::EventKind;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DbErr, Set};

use super::Actor;
use crate::outbox::{self, EventType, NewEvent};

pub struct Change<'a> {
    pub tenant_id: &'a str,
    pub deployment_id: &'a str,
    pub kind: EventKind,
    pub from_version: Option<i32>,
    pub to_version: i32,
    /// When the change took effect (the row's `updated_at` carries the same time).
    pub at: DateTime<Utc>,
}

pub async fn record<C: ConnectionTrait>(
    txn: &C,
    change: Change<'_>,
    actor: &Actor,
) -> Result<(), DbErr> {
    deployment_event::ActiveModel {
        tenant_id: Set(change.tenant_id.to_string()),
        deployment_id: Set(change.deployment_id.to_string()),
        kind: Set(change.kind),
        from_version: Set(change.from_version),
        to_version: Set(change.to_version),
        actor: Set(actor.subject.clone()),
        request_id: Set(actor.request_id.clone()),
        created_at: Set(change.at),
        operation_id: Set(actor.operation_id.clone()),
        ..Default::default()
    }
    .insert(txn)
    .await?;
    // The webhook event of the same change, in the same transaction.
    outbox::record(
        txn,
        NewEvent {
            tenant_id: change.tenant_id,
            event_type: EventType::of_deployment_kind(change.kind),
            ordering_key: outbox::ordering_key("deployment", change.deployment_id),
            deployment_id: Some(change.deployment_id),
            folder_id: None,
            from_version: change.from_version,
            to_version: Some(change.to_version),
            actor: &actor.subject,
            request_id: actor.request_id.as_deref(),
            operation_id: actor.operation_id.as_deref(),
            data: None,
            at: change.at,
        },
    )
    .await
}
