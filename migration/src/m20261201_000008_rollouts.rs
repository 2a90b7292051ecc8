//! Progressive rollouts: the rollout, its waves, the deployments fixed in each wave
//! at creation, and its timeline (every transition, written in the transaction that
//! makes it, so a later outbox can emit `rollout.*` events from that one place).
//!
//! Each wave runs as an operation: `operations.rollout_id`/`rollout_wave` say whose,
//! and `operations.run_until` is the instant after which no new batch of items is
//! taken (a maintenance window's close, or a pause): the worker checks it before a
//! batch, never per item. Bake deadlines and window openings are columns of the
//! rollout, so a restart or a `kill -9` loses no timer.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261122_000001_initial_schema::{foreign_key, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        for column in [
            string_len_null(Operations::RolloutId, 36),
            integer_null(Operations::RolloutWave),
            timestamp_with_time_zone_null(Operations::RunUntil),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Operations::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(Rollouts::Table)
                    .col(string_len(Rollouts::Id, 36).primary_key())
                    .col(string(Rollouts::TenantId))
                    .col(string(Rollouts::Name))
                    .col(string(Rollouts::Status))
                    .col(text(Rollouts::Plan))
                    .col(integer_null(Rollouts::TargetVersion))
                    .col(string(Rollouts::OnFailure))
                    .col(boolean(Rollouts::FourEyes).default(false))
                    .col(text_null(Rollouts::Window))
                    .col(text(Rollouts::FolderIds))
                    .col(string(Rollouts::CreatedBy))
                    .col(string_null(Rollouts::RequestId))
                    .col(timestamp_with_time_zone(Rollouts::CreatedAt))
                    .col(timestamp_with_time_zone(Rollouts::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Rollouts::FinishedAt))
                    .col(integer(Rollouts::CurrentWave).default(0))
                    .col(string_len_null(Rollouts::OperationId, 36))
                    .col(text_null(Rollouts::Reason))
                    .col(timestamp_with_time_zone_null(Rollouts::BakeUntil))
                    .col(timestamp_with_time_zone_null(Rollouts::WindowOpensAt))
                    .col(string_null(Rollouts::ResumeTo))
                    .col(integer(Rollouts::RollbackFromWave).default(0))
                    .col(integer(Rollouts::Total).default(0))
                    .to_owned(),
            )
            .await?;
        // The driver's scan (by state) and the tenant's list (newest first).
        index(
            manager,
            "ix_rollouts_status",
            Rollouts::Table,
            &[Rollouts::Status],
        )
        .await?;
        index(
            manager,
            "ix_rollouts_tenant",
            Rollouts::Table,
            &[Rollouts::TenantId, Rollouts::CreatedAt],
        )
        .await?;
        manager
            .create_table(
                Table::create()
                    .table(RolloutWaves::Table)
                    .col(string_len(RolloutWaves::RolloutId, 36))
                    .col(integer(RolloutWaves::Idx))
                    .col(string(RolloutWaves::Name))
                    .col(text(RolloutWaves::Folders))
                    .col(string(RolloutWaves::Gate))
                    .col(big_integer(RolloutWaves::BakeSeconds))
                    .col(integer(RolloutWaves::MaxConcurrency))
                    .col(integer(RolloutWaves::MaxFailures))
                    .col(integer(RolloutWaves::Total))
                    .col(string(RolloutWaves::Status))
                    .col(string_len_null(RolloutWaves::OperationId, 36))
                    .col(integer(RolloutWaves::Attempts).default(0))
                    .col(timestamp_with_time_zone_null(RolloutWaves::StartedAt))
                    .col(timestamp_with_time_zone_null(RolloutWaves::FinishedAt))
                    .primary_key(
                        Index::create()
                            .col(RolloutWaves::RolloutId)
                            .col(RolloutWaves::Idx),
                    )
                    .foreign_key(&mut foreign_key(
                        "fk_rollout_waves_rollout",
                        (RolloutWaves::Table, RolloutWaves::RolloutId),
                        (Rollouts::Table, Rollouts::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RolloutDeployments::Table)
                    .col(string_len(RolloutDeployments::RolloutId, 36))
                    .col(string_len(RolloutDeployments::DeploymentId, 36))
                    .col(integer(RolloutDeployments::Wave))
                    .col(integer(RolloutDeployments::Seq))
                    .col(integer(RolloutDeployments::FolderId))
                    .col(boolean(RolloutDeployments::Active))
                    .col(string_null(RolloutDeployments::Outcome))
                    .col(integer_null(RolloutDeployments::FromVersion))
                    .col(integer_null(RolloutDeployments::ToVersion))
                    .col(string_null(RolloutDeployments::Rollback))
                    .primary_key(
                        Index::create()
                            .col(RolloutDeployments::RolloutId)
                            .col(RolloutDeployments::DeploymentId),
                    )
                    .foreign_key(&mut foreign_key(
                        "fk_rollout_deployments_rollout",
                        (RolloutDeployments::Table, RolloutDeployments::RolloutId),
                        (Rollouts::Table, Rollouts::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "ix_rollout_deployments_wave",
            RolloutDeployments::Table,
            &[
                RolloutDeployments::RolloutId,
                RolloutDeployments::Wave,
                RolloutDeployments::Seq,
            ],
        )
        .await?;
        // Two active rollouts never hold the same deployment, even when created at the
        // same moment on two replicas: the database refuses the second.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX ux_rollout_deployments_active \
                 ON rollout_deployments (deployment_id) WHERE active",
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RolloutEvents::Table)
                    .col(
                        big_integer(RolloutEvents::Id)
                            .primary_key()
                            .auto_increment(),
                    )
                    .col(string_len(RolloutEvents::RolloutId, 36))
                    .col(string(RolloutEvents::Kind))
                    .col(string_null(RolloutEvents::FromStatus))
                    .col(string(RolloutEvents::ToStatus))
                    .col(integer_null(RolloutEvents::Wave))
                    .col(string(RolloutEvents::Actor))
                    .col(string_null(RolloutEvents::RequestId))
                    .col(text_null(RolloutEvents::Comment))
                    .col(text_null(RolloutEvents::Detail))
                    .col(timestamp_with_time_zone(RolloutEvents::At))
                    .foreign_key(&mut foreign_key(
                        "fk_rollout_events_rollout",
                        (RolloutEvents::Table, RolloutEvents::RolloutId),
                        (Rollouts::Table, Rollouts::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "ix_rollout_events_rollout",
            RolloutEvents::Table,
            &[RolloutEvents::RolloutId, RolloutEvents::Id],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            RolloutEvents::Table.into_iden(),
            RolloutDeployments::Table.into_iden(),
            RolloutWaves::Table.into_iden(),
            Rollouts::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        for column in [
            Operations::RunUntil,
            Operations::RolloutWave,
            Operations::RolloutId,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Operations::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Operations {
    Table,
    RolloutId,
    RolloutWave,
    RunUntil,
}

#[derive(DeriveIden, Clone, Copy)]
enum Rollouts {
    Table,
    Id,
    TenantId,
    Name,
    Status,
    Plan,
    TargetVersion,
    OnFailure,
    FourEyes,
    Window,
    FolderIds,
    CreatedBy,
    RequestId,
    CreatedAt,
    UpdatedAt,
    FinishedAt,
    CurrentWave,
    OperationId,
    Reason,
    BakeUntil,
    WindowOpensAt,
    ResumeTo,
    RollbackFromWave,
    Total,
}

#[derive(DeriveIden, Clone, Copy)]
enum RolloutWaves {
    Table,
    RolloutId,
    Idx,
    Name,
    Folders,
    Gate,
    BakeSeconds,
    MaxConcurrency,
    MaxFailures,
    Total,
    Status,
    OperationId,
    Attempts,
    StartedAt,
    FinishedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum RolloutDeployments {
    Table,
    RolloutId,
    DeploymentId,
    Wave,
    Seq,
    FolderId,
    Active,
    Outcome,
    FromVersion,
    ToVersion,
    Rollback,
}

#[derive(DeriveIden, Clone, Copy)]
enum RolloutEvents {
    Table,
    Id,
    RolloutId,
    Kind,
    FromStatus,
    ToStatus,
    Wave,
    Actor,
    RequestId,
    Comment,
    Detail,
    At,
}
