//! Registered client applications (OAuth client credentials), for the token endpoint.
//!
//! A deleted client keeps its row with `deleted_at` set: its id stays the subject of the
//! history it wrote, can never be handed out again, and tokens it was issued keep
//! naming a row that says "deleted" (the principal check refuses them).

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261122_000001_initial_schema::{drop_table, index};

migration!();

async fn up(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(Clients::Table)
                // The primary key is the index that the per-request "is this client
                // still active?" check and the token endpoint's lookup use.
                .col(string_len(Clients::ClientId, 64).primary_key())
                .col(string(Clients::TenantId))
                .col(string(Clients::Name))
                .col(string(Clients::Scopes))
                .col(string(Clients::SecretHash))
                .col(timestamp_with_time_zone(Clients::CreatedAt))
                .col(timestamp_with_time_zone_null(Clients::DeletedAt))
                .to_owned(),
        )
        .await?;
    index(
        manager,
        "ix_clients_tenant",
        Clients::Table,
        &[Clients::TenantId],
    )
    .await
}

async fn down(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    drop_table(manager, Clients::Table).await
}

#[derive(DeriveIden, Clone)]
enum Clients {
    Table,
    ClientId,
    TenantId,
    Name,
    Scopes,
    SecretHash,
    CreatedAt,
    DeletedAt,
}
