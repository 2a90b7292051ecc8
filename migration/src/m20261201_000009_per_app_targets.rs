//! A target version per deployment: a rollout may name a version per app
//! (`target: {"versions": {...}}`), so each of its deployments carries the version it
//! is to reach, and so does each item of a wave's operation. `NULL`: the operation's
//! own target (`operations.target_version`, itself `NULL` for "latest"), which is what
//! every row from before this migration means.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261122_000001_initial_schema::{add_column, drop_column};

migration!();

async fn up(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    add_column(
        manager,
        RolloutDeployments::Table,
        integer_null(RolloutDeployments::TargetVersion),
    )
    .await?;
    add_column(
        manager,
        OperationItems::Table,
        integer_null(OperationItems::TargetVersion),
    )
    .await
}

async fn down(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    drop_column(
        manager,
        OperationItems::Table,
        OperationItems::TargetVersion,
    )
    .await?;
    drop_column(
        manager,
        RolloutDeployments::Table,
        RolloutDeployments::TargetVersion,
    )
    .await
}

#[derive(DeriveIden)]
enum RolloutDeployments {
    Table,
    TargetVersion,
}

#[derive(DeriveIden)]
enum OperationItems {
    Table,
    TargetVersion,
}
