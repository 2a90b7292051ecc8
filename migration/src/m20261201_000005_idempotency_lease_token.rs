//! A token per lease of an idempotency key: the call holding the key fences every
//! later write (store the answer, renew, release) with it, so a call whose lease
//! lapsed and was taken over cannot overwrite or delete the new owner's record.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261122_000001_initial_schema::{add_column, drop_column};

migration!();

async fn up(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    // Rows from before this migration hold no token; no call can present an
    // empty one, so such a running row is only ever taken over, never written.
    add_column(
        manager,
        IdempotencyKeys::Table,
        string(IdempotencyKeys::LeaseToken).default(""),
    )
    .await
}

async fn down(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    drop_column(manager, IdempotencyKeys::Table, IdempotencyKeys::LeaseToken).await
}

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    LeaseToken,
}
