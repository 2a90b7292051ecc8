//! Webhooks: the endpoints a tenant registers, the transactional outbox of events,
//! one delivery per (event, endpoint) and every attempt at it.
//!
//! The outbox row is written in the transaction of the change it reports. The relay
//! never reads it by "sequence greater than the last one seen" (sequences are taken
//! before commit and commit out of order); it claims undispatched rows and marks them
//! (`dispatched`), and claims due deliveries the same way. `seq` only orders the
//! events of one `ordering_key` (a deployment's events are written under its row
//! lock, so their `seq` order is their commit order).

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261122_000001_initial_schema::{foreign_key, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WebhookEndpoints::Table)
                    .col(string_len(WebhookEndpoints::Id, 36).primary_key())
                    .col(string(WebhookEndpoints::TenantId))
                    .col(text(WebhookEndpoints::Url))
                    .col(text(WebhookEndpoints::Description).default(""))
                    .col(text(WebhookEndpoints::EventTypes))
                    .col(text(WebhookEndpoints::FolderKeys))
                    .col(string(WebhookEndpoints::Format))
                    .col(boolean(WebhookEndpoints::Enabled))
                    .col(string_null(WebhookEndpoints::DisabledReason))
                    .col(timestamp_with_time_zone_null(WebhookEndpoints::DisabledAt))
                    .col(text(WebhookEndpoints::Secret))
                    .col(text_null(WebhookEndpoints::PreviousSecret))
                    .col(timestamp_with_time_zone_null(
                        WebhookEndpoints::PreviousSecretExpiresAt,
                    ))
                    .col(timestamp_with_time_zone_null(
                        WebhookEndpoints::FailingSince,
                    ))
                    .col(timestamp_with_time_zone(WebhookEndpoints::CreatedAt))
                    .col(timestamp_with_time_zone(WebhookEndpoints::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "ix_webhook_endpoints_tenant",
            WebhookEndpoints::Table,
            &[WebhookEndpoints::TenantId, WebhookEndpoints::CreatedAt],
        )
        .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookEvents::Table)
                    .col(big_pk_auto(WebhookEvents::Seq))
                    .col(string_len(WebhookEvents::Id, 36))
                    .col(string(WebhookEvents::TenantId))
                    .col(string(WebhookEvents::EventType))
                    .col(string(WebhookEvents::OrderingKey))
                    .col(string_len_null(WebhookEvents::DeploymentId, 36))
                    .col(integer_null(WebhookEvents::FolderId))
                    .col(integer_null(WebhookEvents::FromVersion))
                    .col(integer_null(WebhookEvents::ToVersion))
                    .col(string(WebhookEvents::Actor))
                    .col(string_null(WebhookEvents::RequestId))
                    .col(string_len_null(WebhookEvents::OperationId, 36))
                    .col(text_null(WebhookEvents::Data))
                    .col(timestamp_with_time_zone(WebhookEvents::CreatedAt))
                    .col(boolean(WebhookEvents::Dispatched).default(false))
                    .to_owned(),
            )
            .await?;
        // The relay's queue: only the rows not yet fanned out are in this index, so it
        // stays small however long the outbox is kept.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX ix_webhook_events_undispatched ON webhook_events (seq) WHERE NOT dispatched",
            )
            .await?;
        // Replay since a time, and the retention purge.
        index(
            manager,
            "ix_webhook_events_created",
            WebhookEvents::Table,
            &[WebhookEvents::CreatedAt],
        )
        .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookDeliveries::Table)
                    .col(string_len(WebhookDeliveries::Id, 36).primary_key())
                    .col(string_len(WebhookDeliveries::EndpointId, 36))
                    .col(big_integer(WebhookDeliveries::EventSeq))
                    .col(string(WebhookDeliveries::OrderingKey))
                    .col(string(WebhookDeliveries::Status))
                    .col(integer(WebhookDeliveries::Attempts).default(0))
                    .col(timestamp_with_time_zone(WebhookDeliveries::NextAttemptAt))
                    .col(string_null(WebhookDeliveries::LeaseOwner))
                    .col(timestamp_with_time_zone_null(
                        WebhookDeliveries::LeaseExpiresAt,
                    ))
                    .col(boolean(WebhookDeliveries::Replay).default(false))
                    .col(timestamp_with_time_zone(WebhookDeliveries::CreatedAt))
                    .col(timestamp_with_time_zone_null(
                        WebhookDeliveries::DeliveredAt,
                    ))
                    .foreign_key(&mut foreign_key(
                        "fk_webhook_deliveries_endpoint",
                        (WebhookDeliveries::Table, WebhookDeliveries::EndpointId),
                        (WebhookEndpoints::Table, WebhookEndpoints::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut foreign_key(
                        "fk_webhook_deliveries_event",
                        (WebhookDeliveries::Table, WebhookDeliveries::EventSeq),
                        (WebhookEvents::Table, WebhookEvents::Seq),
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        // The claim: due deliveries first.
        index(
            manager,
            "ix_webhook_deliveries_due",
            WebhookDeliveries::Table,
            &[WebhookDeliveries::Status, WebhookDeliveries::NextAttemptAt],
        )
        .await?;
        // The order check (an earlier delivery of the same key to the same endpoint
        // still open) and the log.
        index(
            manager,
            "ix_webhook_deliveries_order",
            WebhookDeliveries::Table,
            &[
                WebhookDeliveries::EndpointId,
                WebhookDeliveries::OrderingKey,
                WebhookDeliveries::EventSeq,
            ],
        )
        .await?;
        index(
            manager,
            "ix_webhook_deliveries_log",
            WebhookDeliveries::Table,
            &[WebhookDeliveries::EndpointId, WebhookDeliveries::CreatedAt],
        )
        .await?;
        index(
            manager,
            "ix_webhook_deliveries_event",
            WebhookDeliveries::Table,
            &[WebhookDeliveries::EventSeq],
        )
        .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookAttempts::Table)
                    .col(big_pk_auto(WebhookAttempts::Id))
                    .col(string_len(WebhookAttempts::DeliveryId, 36))
                    .col(timestamp_with_time_zone(WebhookAttempts::AttemptedAt))
                    .col(integer_null(WebhookAttempts::StatusCode))
                    .col(string_null(WebhookAttempts::Error))
                    .col(big_integer(WebhookAttempts::DurationMs))
                    .foreign_key(&mut foreign_key(
                        "fk_webhook_attempts_delivery",
                        (WebhookAttempts::Table, WebhookAttempts::DeliveryId),
                        (WebhookDeliveries::Table, WebhookDeliveries::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "ix_webhook_attempts_delivery",
            WebhookAttempts::Table,
            &[WebhookAttempts::DeliveryId, WebhookAttempts::Id],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            WebhookAttempts::Table.into_iden(),
            WebhookDeliveries::Table.into_iden(),
            WebhookEvents::Table.into_iden(),
            WebhookEndpoints::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum WebhookEndpoints {
    Table,
    Id,
    TenantId,
    Url,
    Description,
    EventTypes,
    FolderKeys,
    Format,
    Enabled,
    DisabledReason,
    DisabledAt,
    Secret,
    PreviousSecret,
    PreviousSecretExpiresAt,
    FailingSince,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum WebhookEvents {
    Table,
    Seq,
    Id,
    TenantId,
    EventType,
    OrderingKey,
    DeploymentId,
    FolderId,
    FromVersion,
    ToVersion,
    Actor,
    RequestId,
    OperationId,
    Data,
    CreatedAt,
    Dispatched,
}

#[derive(DeriveIden, Clone, Copy)]
enum WebhookDeliveries {
    Table,
    Id,
    EndpointId,
    EventSeq,
    OrderingKey,
    Status,
    Attempts,
    NextAttemptAt,
    LeaseOwner,
    LeaseExpiresAt,
    Replay,
    CreatedAt,
    DeliveredAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum WebhookAttempts {
    Table,
    Id,
    DeliveryId,
    AttemptedAt,
    StatusCode,
    Error,
    DurationMs,
}
