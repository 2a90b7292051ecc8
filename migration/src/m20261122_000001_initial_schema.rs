//! Folders, role assignments, apps, app versions, deployments (with their tags) and the
//! append-only deployment history.

use sea_orm_migration::{prelude::*, schema::*};

migration!();

async fn up(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(Folders::Table)
                .col(pk_auto(Folders::Id))
                .col(string_len_uniq(Folders::Key, 36))
                .col(string(Folders::TenantId))
                .col(string(Folders::Name))
                .col(integer_null(Folders::ParentId))
                .col(string(Folders::Region))
                .col(timestamp_with_time_zone(Folders::CreatedAt))
                .foreign_key(&mut foreign_key(
                    "fk_folders_parent",
                    (Folders::Table, Folders::ParentId),
                    (Folders::Table, Folders::Id),
                    ForeignKeyAction::Restrict,
                ))
                .to_owned(),
        )
        .await?;
    index(
        manager,
        "ix_folders_tenant_parent",
        Folders::Table,
        &[Folders::TenantId, Folders::ParentId],
    )
    .await?;

    manager
        .create_table(
            Table::create()
                .table(RoleAssignments::Table)
                .col(pk_auto(RoleAssignments::Id))
                .col(string(RoleAssignments::TenantId))
                .col(string(RoleAssignments::Subject))
                .col(string(RoleAssignments::Role))
                .col(integer_null(RoleAssignments::FolderId))
                .col(timestamp_with_time_zone(RoleAssignments::CreatedAt))
                .foreign_key(&mut foreign_key(
                    "fk_role_assignments_folder",
                    (RoleAssignments::Table, RoleAssignments::FolderId),
                    (Folders::Table, Folders::Id),
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
        )
        .await?;
    index(
        manager,
        "ix_role_assignments_subject",
        RoleAssignments::Table,
        &[RoleAssignments::TenantId, RoleAssignments::Subject],
    )
    .await?;

    manager
        .create_table(
            Table::create()
                .table(Apps::Table)
                .col(pk_auto(Apps::Id))
                .col(string(Apps::TenantId))
                .col(string(Apps::SystemName))
                .col(string(Apps::PackageName))
                .col(string(Apps::Title))
                .col(string(Apps::MarketName))
                .col(string(Apps::Source))
                .col(timestamp_with_time_zone(Apps::CreatedAt))
                .to_owned(),
        )
        .await?;
    unique(
        manager,
        "ux_apps_tenant_system_name",
        Apps::Table,
        &[Apps::TenantId, Apps::SystemName],
    )
    .await?;
    unique(
        manager,
        "ux_apps_tenant_package_name",
        Apps::Table,
        &[Apps::TenantId, Apps::PackageName],
    )
    .await?;

    manager
        .create_table(
            Table::create()
                .table(AppVersions::Table)
                .col(pk_auto(AppVersions::Id))
                .col(integer(AppVersions::AppId))
                .col(integer(AppVersions::Version))
                .col(string(AppVersions::PackageVersion))
                .col(boolean(AppVersions::Published))
                .col(string(AppVersions::PublishedBy))
                .col(timestamp_with_time_zone(AppVersions::PublishedAt))
                .col(timestamp_with_time_zone_null(AppVersions::UnpublishedAt))
                .foreign_key(&mut foreign_key(
                    "fk_app_versions_app",
                    (AppVersions::Table, AppVersions::AppId),
                    (Apps::Table, Apps::Id),
                    ForeignKeyAction::Restrict,
                ))
                .to_owned(),
        )
        .await?;
    unique(
        manager,
        "ux_app_versions_app_version",
        AppVersions::Table,
        &[AppVersions::AppId, AppVersions::Version],
    )
    .await?;
    unique(
        manager,
        "ux_app_versions_app_package_version",
        AppVersions::Table,
        &[AppVersions::AppId, AppVersions::PackageVersion],
    )
    .await?;
    // "Latest published" is the hottest read of the upgrade engine.
    index(
        manager,
        "ix_app_versions_latest_published",
        AppVersions::Table,
        &[
            AppVersions::AppId,
            AppVersions::Published,
            AppVersions::Version,
        ],
    )
    .await?;

    manager
        .create_table(
            Table::create()
                .table(Deployments::Table)
                .col(string_len(Deployments::Id, 36).primary_key())
                .col(string(Deployments::TenantId))
                .col(integer(Deployments::FolderId))
                .col(integer(Deployments::AppId))
                .col(integer(Deployments::Version))
                .col(string(Deployments::Title))
                .col(text(Deployments::Description))
                .col(string(Deployments::RoutingName))
                .col(boolean(Deployments::MaintenanceEnabled))
                .col(text_null(Deployments::MaintenanceUrl))
                .col(text(Deployments::MaintenanceExcludedUsers))
                .col(timestamp_with_time_zone(Deployments::CreatedAt))
                .col(timestamp_with_time_zone(Deployments::UpdatedAt))
                .foreign_key(&mut foreign_key(
                    "fk_deployments_folder",
                    (Deployments::Table, Deployments::FolderId),
                    (Folders::Table, Folders::Id),
                    ForeignKeyAction::Restrict,
                ))
                .foreign_key(&mut foreign_key(
                    "fk_deployments_app",
                    (Deployments::Table, Deployments::AppId),
                    (Apps::Table, Apps::Id),
                    ForeignKeyAction::Restrict,
                ))
                .to_owned(),
        )
        .await?;
    unique(
        manager,
        "ux_deployments_tenant_routing_name",
        Deployments::Table,
        &[Deployments::TenantId, Deployments::RoutingName],
    )
    .await?;
    index(
        manager,
        "ix_deployments_folder_title",
        Deployments::Table,
        &[Deployments::FolderId, Deployments::Title],
    )
    .await?;
    index(
        manager,
        "ix_deployments_app",
        Deployments::Table,
        &[Deployments::AppId],
    )
    .await?;

    manager
        .create_table(
            Table::create()
                .table(DeploymentTags::Table)
                .col(string_len(DeploymentTags::DeploymentId, 36))
                .col(string(DeploymentTags::Tag))
                .primary_key(
                    Index::create()
                        .col(DeploymentTags::DeploymentId)
                        .col(DeploymentTags::Tag),
                )
                .foreign_key(&mut foreign_key(
                    "fk_deployment_tags_deployment",
                    (DeploymentTags::Table, DeploymentTags::DeploymentId),
                    (Deployments::Table, Deployments::Id),
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
        )
        .await?;
    index(
        manager,
        "ix_deployment_tags_tag",
        DeploymentTags::Table,
        &[DeploymentTags::Tag],
    )
    .await?;

    manager
        .create_table(
            Table::create()
                .table(DeploymentEvents::Table)
                .col(big_pk_auto(DeploymentEvents::Id))
                .col(string(DeploymentEvents::TenantId))
                .col(string_len(DeploymentEvents::DeploymentId, 36))
                .col(string(DeploymentEvents::Kind))
                .col(integer_null(DeploymentEvents::FromVersion))
                .col(integer(DeploymentEvents::ToVersion))
                .col(string(DeploymentEvents::Actor))
                .col(string_null(DeploymentEvents::RequestId))
                .col(timestamp_with_time_zone(DeploymentEvents::CreatedAt))
                .foreign_key(&mut foreign_key(
                    "fk_deployment_events_deployment",
                    (DeploymentEvents::Table, DeploymentEvents::DeploymentId),
                    (Deployments::Table, Deployments::Id),
                    ForeignKeyAction::Restrict,
                ))
                .to_owned(),
        )
        .await?;
    index(
        manager,
        "ix_deployment_events_deployment",
        DeploymentEvents::Table,
        &[DeploymentEvents::DeploymentId, DeploymentEvents::Id],
    )
    .await
}

async fn down(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    for table in [
        DeploymentEvents::Table.into_iden(),
        DeploymentTags::Table.into_iden(),
        Deployments::Table.into_iden(),
        AppVersions::Table.into_iden(),
        Apps::Table.into_iden(),
        RoleAssignments::Table.into_iden(),
        Folders::Table.into_iden(),
    ] {
        drop_table(manager, table).await?;
    }
    Ok(())
}

/// A foreign key `name` from `from` to `to` (shared with later migrations).
pub(crate) fn foreign_key<A, B, C, D>(
    name: &str,
    from: (A, B),
    to: (C, D),
    on_delete: ForeignKeyAction,
) -> ForeignKeyCreateStatement
where
    A: IntoIden + 'static,
    B: IntoIden + 'static,
    C: IntoIden + 'static,
    D: IntoIden + 'static,
{
    ForeignKey::create()
        .name(name)
        .from(from.0, from.1)
        .to(to.0, to.1)
        .on_delete(on_delete)
        .to_owned()
}

/// Creates a plain index (shared with later migrations).
pub(crate) async fn index<T, C>(
    manager: &SchemaManager<'_>,
    name: &str,
    table: T,
    cols: &[C],
) -> Result<(), DbErr>
where
    T: IntoIden + Clone + 'static,
    C: IntoIden + Clone + 'static,
{
    manager
        .create_index(index_on(name, table, cols).to_owned())
        .await
}

/// Creates a unique index.
async fn unique<T, C>(
    manager: &SchemaManager<'_>,
    name: &str,
    table: T,
    cols: &[C],
) -> Result<(), DbErr>
where
    T: IntoIden + Clone + 'static,
    C: IntoIden + Clone + 'static,
{
    manager
        .create_index(index_on(name, table, cols).unique().to_owned())
        .await
}

/// The index `name` on `cols` of `table`.
fn index_on<T, C>(name: &str, table: T, cols: &[C]) -> IndexCreateStatement
where
    T: IntoIden + 'static,
    C: IntoIden + Clone + 'static,
{
    let mut stmt = Index::create();
    stmt.name(name).table(table);
    for col in cols {
        stmt.col(col.clone());
    }
    stmt
}

/// Drops `table` (shared with later migrations).
pub(crate) async fn drop_table<T>(manager: &SchemaManager<'_>, table: T) -> Result<(), DbErr>
where
    T: IntoIden + 'static,
{
    manager
        .drop_table(Table::drop().table(table).to_owned())
        .await
}

/// Adds `column` to `table` (shared with later migrations).
pub(crate) async fn add_column<T>(
    manager: &SchemaManager<'_>,
    table: T,
    column: impl IntoColumnDef,
) -> Result<(), DbErr>
where
    T: IntoIden + 'static,
{
    manager
        .alter_table(Table::alter().table(table).add_column(column).to_owned())
        .await
}

/// Drops `column` of `table` (shared with later migrations).
pub(crate) async fn drop_column<T, C>(
    manager: &SchemaManager<'_>,
    table: T,
    column: C,
) -> Result<(), DbErr>
where
    T: IntoIden + 'static,
    C: IntoIden + 'static,
{
    manager
        .alter_table(Table::alter().table(table).drop_column(column).to_owned())
        .await
}

#[derive(DeriveIden, Clone)]
enum Folders {
    Table,
    Id,
    Key,
    TenantId,
    Name,
    ParentId,
    Region,
    CreatedAt,
}

#[derive(DeriveIden, Clone)]
enum RoleAssignments {
    Table,
    Id,
    TenantId,
    Subject,
    Role,
    FolderId,
    CreatedAt,
}

#[derive(DeriveIden, Clone)]
enum Apps {
    Table,
    Id,
    TenantId,
    SystemName,
    PackageName,
    Title,
    MarketName,
    Source,
    CreatedAt,
}

#[derive(DeriveIden, Clone)]
enum AppVersions {
    Table,
    Id,
    AppId,
    Version,
    PackageVersion,
    Published,
    PublishedBy,
    PublishedAt,
    UnpublishedAt,
}

#[derive(DeriveIden, Clone)]
enum Deployments {
    Table,
    Id,
    TenantId,
    FolderId,
    AppId,
    Version,
    Title,
    Description,
    RoutingName,
    MaintenanceEnabled,
    MaintenanceUrl,
    MaintenanceExcludedUsers,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone)]
enum DeploymentTags {
    Table,
    DeploymentId,
    Tag,
}

#[derive(DeriveIden, Clone)]
enum DeploymentEvents {
    Table,
    Id,
    TenantId,
    DeploymentId,
    Kind,
    FromVersion,
    ToVersion,
    Actor,
    RequestId,
    CreatedAt,
}
