//! A deployment's history (its events, newest first) and rolling it back.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{app_version, deployment, deployment_event};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionSession, TransactionTrait,
    sea_query::{Expr, ExprTrait},
};

use super::{
    Actor,
    deployments::{is_published, lock_in_folder},
    events::{self, Change, EventKind},
};
use crate::{db, domain::DeploymentId, error::Error};

/// One event of a deployment's history, with the package versions it moved between.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub id: i64,
    pub kind: EventKind,
    pub from_version: Option<i32>,
    pub from_package_version: Option<String>,
    pub to_version: i32,
    pub to_package_version: Option<String>,
    pub actor: String,
    pub request_id: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The operation that made the change, when one did.
    pub operation_id: Option<String>,
}

/// The deployment (when it is in this tenant and folder), and one page of its events,
/// newest first, with the total count.
#[tracing::instrument(skip_all, fields(tenant, folder = folder_id, deployment = id))]
pub async fn page<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    folder_id: i32,
    id: &str,
    top: u64,
    skip: u64,
) -> Result<Option<(u64, Vec<HistoryEntry>)>, Error> {
    let Some(deployment) = find_in_folder(db, tenant, folder_id, id).await? else {
        return Ok(None);
    };
    let query = deployment_event::Entity::find()
        .filter(deployment_event::Column::DeploymentId.eq(&deployment.id));
    let total = query.clone().count(db).await?;
    let rows = query
        .order_by_desc(deployment_event::Column::Id)
        .offset(skip)
        .limit(top)
        .all(db)
        .await?;
    let labels: HashMap<i32, String> = app_version::Entity::find()
        .filter(app_version::Column::AppId.eq(deployment.app_id))
        .all(db)
        .await?
        .into_iter()
        .map(|v| (v.version, v.package_version))
        .collect();
    let entries = rows
        .into_iter()
        .map(|e| HistoryEntry {
            id: e.id,
            kind: e.kind,
            from_package_version: e.from_version.and_then(|v| labels.get(&v).cloned()),
            from_version: e.from_version,
            to_package_version: labels.get(&e.to_version).cloned(),
            to_version: e.to_version,
            actor: e.actor,
            request_id: e.request_id,
            created_at: e.created_at,
            operation_id: e.operation_id,
        })
        .collect();
    Ok(Some((total, entries)))
}

async fn find_in_folder<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    folder_id: i32,
    id: &str,
) -> Result<Option<deployment::Model>, Error> {
    let Some(id) = DeploymentId::parse(id).map(|id| id.as_str().to_string()) else {
        return Ok(None);
    };
    Ok(deployment::Entity::find_by_id(id)
        .filter(deployment::Column::TenantId.eq(tenant))
        .filter(deployment::Column::FolderId.eq(folder_id))
        .one(db)
        .await?)
}

/// What a rollback did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolledBack {
    pub id: String,
    pub app_system_name: String,
    pub version: i32,
    pub previous_version: i32,
}

/// Moves the deployment back to `target`, or without one to the version it had before
/// its last version change. Only to a published version; its own transaction with a
/// `rollback` event. `Ok(None)`: no such deployment in this tenant and folder.
#[tracing::instrument(skip_all, fields(tenant, folder = folder_id, deployment = id, target))]
pub async fn rollback<C>(
    db: &C,
    tenant: &str,
    folder_id: i32,
    id: &str,
    target: Option<i32>,
    actor: &Actor,
) -> Result<Option<RolledBack>, Error>
where
    C: ConnectionTrait + TransactionTrait,
{
    let Some(id) = DeploymentId::parse(id).map(|id| id.as_str().to_string()) else {
        return Ok(None);
    };
    let txn = db::begin_write(db).await?;
    let Some((current, app)) = lock_in_folder(&txn, tenant, folder_id, &id).await? else {
        return Ok(None);
    };
    let target = match target {
        Some(version) => version,
        None => {
            let last_change = deployment_event::Entity::find()
                .filter(deployment_event::Column::DeploymentId.eq(&id))
                .filter(deployment_event::Column::FromVersion.is_not_null())
                .filter(
                    Expr::col(deployment_event::Column::FromVersion)
                        .ne(Expr::col(deployment_event::Column::ToVersion)),
                )
                .order_by_desc(deployment_event::Column::Id)
                .one(&txn)
                .await?;
            last_change.and_then(|e| e.from_version).ok_or_else(|| {
                Error::Conflict(
                    "the deployment has never changed version, so there is nothing to roll back to"
                        .into(),
                )
            })?
        }
    };
    let answer = |version| RolledBack {
        id: id.clone(),
        app_system_name: app.system_name.clone(),
        version,
        previous_version: current.version,
    };
    if target == current.version {
        txn.rollback().await?;
        return Ok(Some(answer(target)));
    }
    if !is_published(&txn, current.app_id, target).await? {
        return Err(Error::invalid(format!(
            "version {target} of app {} is not published; a deployment moves only to a published version",
            app.system_name
        )));
    }
    deployment::Entity::update_many()
        .col_expr(deployment::Column::Version, Expr::value(target))
        .col_expr(deployment::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(deployment::Column::Id.eq(&id))
        .exec(&txn)
        .await?;
    events::record(
        &txn,
        Change {
            tenant_id: tenant,
            deployment_id: &id,
            kind: EventKind::Rollback,
            from_version: Some(current.version),
            to_version: target,
            at: Utc::now(),
        },
        actor,
    )
    .await?;
    txn.commit().await?;
    Ok(Some(answer(target)))
}
