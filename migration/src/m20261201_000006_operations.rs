//! Durable bulk operations: one row per operation, one per target deployment (its
//! item), and the operation that wrote each `upgrade` event.
//!
//! The lease columns make an operation claimable by any replica: `lease_generation`
//! grows with every claim and is copied onto the items the claim takes, so a worker
//! that lost its lease finds its items no longer match and writes nothing.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261122_000001_initial_schema::{
    add_column, drop_column, drop_table, foreign_key, index,
};

migration!();

async fn up(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(Operations::Table)
                .col(string_len(Operations::Id, 36).primary_key())
                .col(string(Operations::TenantId))
                .col(integer(Operations::FolderId))
                .col(string(Operations::Kind))
                .col(string(Operations::Status))
                .col(text(Operations::Request))
                .col(string(Operations::CreatedBy))
                .col(string_null(Operations::RequestId))
                .col(timestamp_with_time_zone(Operations::CreatedAt))
                .col(timestamp_with_time_zone_null(Operations::StartedAt))
                .col(timestamp_with_time_zone_null(Operations::FinishedAt))
                .col(integer_null(Operations::TargetVersion))
                .col(boolean(Operations::DryRun))
                .col(integer_null(Operations::MaxFailures))
                .col(integer(Operations::MaxConcurrency))
                .col(integer(Operations::Total))
                .col(string_null(Operations::ErrorCode))
                .col(text_null(Operations::ErrorMessage))
                .col(boolean(Operations::CancelRequested).default(false))
                .col(string_null(Operations::LeaseOwner))
                .col(big_integer(Operations::LeaseGeneration).default(0))
                .col(timestamp_with_time_zone_null(Operations::LeaseExpiresAt))
                .col(timestamp_with_time_zone_null(Operations::LastServedAt))
                .col(integer(Operations::ClaimCursor).default(0))
                .to_owned(),
        )
        .await?;
    // The workers' claim: unfinished operations, least recently served first.
    index(
        manager,
        "ix_operations_claim",
        Operations::Table,
        &[Operations::Status, Operations::LastServedAt],
    )
    .await?;
    // The folder's list, newest first, and the retention purge.
    index(
        manager,
        "ix_operations_folder",
        Operations::Table,
        &[
            Operations::TenantId,
            Operations::FolderId,
            Operations::CreatedAt,
        ],
    )
    .await?;
    index(
        manager,
        "ix_operations_finished",
        Operations::Table,
        &[Operations::FinishedAt],
    )
    .await?;
    manager
        .create_table(
            Table::create()
                .table(OperationItems::Table)
                .col(string_len(OperationItems::OperationId, 36))
                .col(integer(OperationItems::Seq))
                .col(string(OperationItems::RawId))
                .col(string_len_null(OperationItems::DeploymentId, 36))
                .col(integer(OperationItems::FolderId))
                .col(string(OperationItems::Status))
                .col(big_integer_null(OperationItems::LeaseGeneration))
                .col(string_null(OperationItems::AppSystemName))
                .col(integer_null(OperationItems::FromVersion))
                .col(integer_null(OperationItems::ToVersion))
                .col(string_null(OperationItems::FailureCode))
                .col(timestamp_with_time_zone_null(OperationItems::FinishedAt))
                .primary_key(
                    Index::create()
                        .col(OperationItems::OperationId)
                        .col(OperationItems::Seq),
                )
                .foreign_key(&mut foreign_key(
                    "fk_operation_items_operation",
                    (OperationItems::Table, OperationItems::OperationId),
                    (Operations::Table, Operations::Id),
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
        )
        .await?;
    // No index on `status`: an item's row changes state twice (claimed, settled),
    // and with no indexed column changing, PostgreSQL updates it in place on its
    // page (a HOT update, no index entries), which the free space left on each
    // page makes possible (70 % full here; 40 % since `m20261202_000012`, which says
    // why). The counters and the next pending items read the operation's range of
    // the primary key.
    if manager.get_database_backend() == sea_orm_migration::sea_orm::DbBackend::Postgres {
        manager
            .get_connection()
            .execute_unprepared("ALTER TABLE operation_items SET (fillfactor = 70)")
            .await?;
    }
    add_column(
        manager,
        DeploymentEvents::Table,
        string_len_null(DeploymentEvents::OperationId, 36),
    )
    .await?;
    // A created operation answers 202 with its monitor's address; a replay of the
    // keyed call must name it too.
    add_column(
        manager,
        IdempotencyKeys::Table,
        string_null(IdempotencyKeys::ResponseLocation),
    )
    .await
}

async fn down(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    drop_column(
        manager,
        IdempotencyKeys::Table,
        IdempotencyKeys::ResponseLocation,
    )
    .await?;
    drop_column(
        manager,
        DeploymentEvents::Table,
        DeploymentEvents::OperationId,
    )
    .await?;
    drop_table(manager, OperationItems::Table).await?;
    drop_table(manager, Operations::Table).await
}

#[derive(DeriveIden, Clone, Copy)]
enum Operations {
    Table,
    Id,
    TenantId,
    FolderId,
    Kind,
    Status,
    Request,
    CreatedBy,
    RequestId,
    CreatedAt,
    StartedAt,
    FinishedAt,
    TargetVersion,
    DryRun,
    MaxFailures,
    MaxConcurrency,
    Total,
    ErrorCode,
    ErrorMessage,
    CancelRequested,
    LeaseOwner,
    LeaseGeneration,
    LeaseExpiresAt,
    LastServedAt,
    ClaimCursor,
}

#[derive(DeriveIden, Clone, Copy)]
enum OperationItems {
    Table,
    OperationId,
    Seq,
    RawId,
    DeploymentId,
    FolderId,
    Status,
    LeaseGeneration,
    AppSystemName,
    FromVersion,
    ToVersion,
    FailureCode,
    FinishedAt,
}

#[derive(DeriveIden)]
enum DeploymentEvents {
    Table,
    OperationId,
}

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    ResponseLocation,
}
