//! Database schema, one file per migration. Migrations run at start-up and through
//! `uplift migrate`, identically on SQLite and PostgreSQL.

pub use sea_orm_migration::prelude::*;

/// The `Migration` of the file it stands in: named after the file (the name recorded in
/// `seaql_migrations`), running the file's `async fn up` and `async fn down`.
macro_rules! migration {
    () => {
        #[derive(DeriveMigrationName)]
        pub struct Migration;

        #[async_trait::async_trait]
        impl MigrationTrait for Migration {
            async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
                up(manager).await
            }

            async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
                down(manager).await
            }
        }
    };
}

mod m20261122_000001_initial_schema;
mod m20261122_000002_idempotency_keys;
mod m20261122_000003_clients;
mod m20261122_000004_list_indexes;
mod m20261201_000005_idempotency_lease_token;
mod m20261201_000006_operations;
mod m20261201_000007_webhooks;
mod m20261201_000008_rollouts;
mod m20261201_000009_per_app_targets;
mod m20261201_000010_relay_queue_indexes;
mod m20261202_000011_operation_settled_counts;
mod m20261202_000012_operation_items_fillfactor;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_initial_schema::Migration),
            Box::new(m20261122_000002_idempotency_keys::Migration),
            Box::new(m20261122_000003_clients::Migration),
            Box::new(m20261122_000004_list_indexes::Migration),
            Box::new(m20261201_000005_idempotency_lease_token::Migration),
            Box::new(m20261201_000006_operations::Migration),
            Box::new(m20261201_000007_webhooks::Migration),
            Box::new(m20261201_000008_rollouts::Migration),
            Box::new(m20261201_000009_per_app_targets::Migration),
            Box::new(m20261201_000010_relay_queue_indexes::Migration),
            Box::new(m20261202_000011_operation_settled_counts::Migration),
            Box::new(m20261202_000012_operation_items_fillfactor::Migration),
        ]
    }
}
