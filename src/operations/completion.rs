//! The `operation.completed` webhook event, written in the transaction that gives the
//! operation its final status (`lease::finish`, `monitor::cancel`, and the creation of
//! an operation with nothing to do, which is finished as it is created).

use chrono::Utc;
use entity::operation::{self, OperationStatus};
use sea_orm::{ConnectionTrait, DbErr};
use serde_json::json;

use super::counters::Counters;
use crate::outbox::{self, EventType, NewEvent};

pub(super) async fn record<C: ConnectionTrait>(
    txn: &C,
    operation: &operation::Model,
    status: OperationStatus,
    error_code: Option<&str>,
    counts: &Counters,
) -> Result<(), DbErr> {
    outbox::record(
        txn,
        NewEvent {
            tenant_id: &operation.tenant_id,
            event_type: EventType::OperationCompleted,
            ordering_key: outbox::ordering_key("operation", &operation.id),
            deployment_id: None,
            folder_id: Some(operation.folder_id),
            from_version: None,
            to_version: operation.target_version,
            actor: &operation.created_by,
            request_id: operation.request_id.as_deref(),
            operation_id: Some(&operation.id),
            data: Some(json!({
                "status": status.as_str(),
                "errorCode": error_code,
                "dryRun": operation.dry_run,
                "counters": {
                    "total": counts.total,
                    "updated": counts.updated,
                    "unchanged": counts.unchanged,
                    "failed": counts.failed,
                    "skipped": counts.skipped,
                    "canceled": counts.canceled,
                },
            })),
            at: Utc::now(),
        },
    )
    .await
}

/// The event of an operation created finished because it has no items (a selector
/// matching nothing, an empty wave): its subscribers hear it completed like any other.
pub(super) async fn record_empty<C: ConnectionTrait>(
    txn: &C,
    operation: &operation::Model,
) -> Result<(), DbErr> {
    record(
        txn,
        operation,
        OperationStatus::Succeeded,
        None,
        &Counters::default(),
    )
    .await
}
