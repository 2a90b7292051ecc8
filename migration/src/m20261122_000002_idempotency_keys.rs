//! Stored answers of calls made with an `Idempotency-Key`, per tenant and subject.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261122_000001_initial_schema::{drop_table, index};

migration!();

async fn up(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(IdempotencyKeys::Table)
                .col(string(IdempotencyKeys::TenantId))
                .col(string(IdempotencyKeys::Subject))
                .col(string(IdempotencyKeys::Key))
                .col(string(IdempotencyKeys::RequestHash))
                .col(string(IdempotencyKeys::State))
                .col(integer_null(IdempotencyKeys::ResponseStatus))
                .col(string_null(IdempotencyKeys::ResponseContentType))
                .col(blob_null(IdempotencyKeys::ResponseBody))
                .col(timestamp_with_time_zone(IdempotencyKeys::LeaseExpiresAt))
                .col(timestamp_with_time_zone(IdempotencyKeys::CreatedAt))
                .primary_key(
                    Index::create()
                        .col(IdempotencyKeys::TenantId)
                        .col(IdempotencyKeys::Subject)
                        .col(IdempotencyKeys::Key),
                )
                .to_owned(),
        )
        .await?;
    index(
        manager,
        "ix_idempotency_keys_created_at",
        IdempotencyKeys::Table,
        &[IdempotencyKeys::CreatedAt],
    )
    .await
}

async fn down(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    drop_table(manager, IdempotencyKeys::Table).await
}

#[derive(DeriveIden, Clone)]
enum IdempotencyKeys {
    Table,
    TenantId,
    Subject,
    Key,
    RequestHash,
    State,
    ResponseStatus,
    ResponseContentType,
    ResponseBody,
    LeaseExpiresAt,
    CreatedAt,
}
