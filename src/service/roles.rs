//! Granting and revoking roles. Assignments are idempotent: granting a role twice
//! leaves one assignment.

use chrono::Utc;
use entity::role_assignment;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Select, Set,
};

use super::folders;
use crate::{
    access::Role,
    domain::{FolderKey, TenantId},
    error::Error,
};

/// Grants `role` to `subject`, tenant-wide when `folder_key` is `None`. Returns whether
/// a new assignment was made.
#[tracing::instrument(skip_all, fields(tenant, subject, role = %role))]
pub async fn assign<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    subject: &str,
    role: Role,
    folder_key: Option<&str>,
) -> Result<bool, Error> {
    TenantId::parse(tenant)?;
    if subject.trim().is_empty() {
        return Err(Error::invalid("subject must not be empty"));
    }
    let folder_id = resolve_folder(db, tenant, folder_key).await?;
    if matching(tenant, subject, role, folder_id)
        .one(db)
        .await?
        .is_some()
    {
        return Ok(false);
    }
    role_assignment::ActiveModel {
        tenant_id: Set(tenant.to_string()),
        subject: Set(subject.to_string()),
        role: Set(role),
        folder_id: Set(folder_id),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(true)
}

/// Removes the assignment; returns how many were removed (0 when there was none).
#[tracing::instrument(skip_all, fields(tenant, subject, role = %role))]
pub async fn revoke<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    subject: &str,
    role: Role,
    folder_key: Option<&str>,
) -> Result<u64, Error> {
    let folder_id = resolve_folder(db, tenant, folder_key).await?;
    let ids: Vec<i32> = matching(tenant, subject, role, folder_id)
        .all(db)
        .await?
        .into_iter()
        .map(|a| a.id)
        .collect();
    let result = role_assignment::Entity::delete_many()
        .filter(role_assignment::Column::Id.is_in(ids))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

async fn resolve_folder<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    key: Option<&str>,
) -> Result<Option<i32>, Error> {
    match key {
        None => Ok(None),
        Some(key) => {
            let folder = folders::find_by_key(db, tenant, &FolderKey::parse(key)?)
                .await?
                .ok_or_else(|| {
                    Error::NotFound(format!("folder {key} not found in tenant {tenant}"))
                })?;
            Ok(Some(folder.id))
        }
    }
}

fn matching(
    tenant: &str,
    subject: &str,
    role: Role,
    folder_id: Option<i32>,
) -> Select<role_assignment::Entity> {
    let query = role_assignment::Entity::find()
        .filter(role_assignment::Column::TenantId.eq(tenant))
        .filter(role_assignment::Column::Subject.eq(subject))
        .filter(role_assignment::Column::Role.eq(role));
    match folder_id {
        Some(id) => query.filter(role_assignment::Column::FolderId.eq(id)),
        None => query.filter(role_assignment::Column::FolderId.is_null()),
    }
}
