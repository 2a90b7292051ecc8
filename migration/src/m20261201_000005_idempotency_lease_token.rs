//! A token per lease of an idempotency key: the call holding the key fences every
//! later write (store the answer, renew, release) with it, so a call whose lease
//! lapsed and was taken over cannot overwrite or delete the new owner's record.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Rows from before this migration hold no token; no call can present an
        // empty one, so such a running row is only ever taken over, never written.
        manager
            .alter_table(
                Table::alter()
                    .table(IdempotencyKeys::Table)
                    .add_column(string(IdempotencyKeys::LeaseToken).default(""))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(IdempotencyKeys::Table)
                    .drop_column(IdempotencyKeys::LeaseToken)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    LeaseToken,
}
