//! Folders: the permission boundary deployments live in. A folder has a UUID key (the
//! `X-UiPath-FolderKey` header), a small integer id (Rainbond's `app_id`) and a region.

use chrono::Utc;
use entity::folder;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use uuid::Uuid;

use crate::{
    domain::{FolderKey, TenantId},
    error::Error,
};

const MAX_NAME_CHARS: usize = 200;

#[tracing::instrument(skip_all, fields(tenant, name))]
pub async fn create<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    name: &str,
    parent_key: Option<&str>,
    region: &str,
) -> Result<folder::Model, Error> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(Error::invalid(format!(
            "folder name must be 1 to {MAX_NAME_CHARS} characters"
        )));
    }
    let tenant = TenantId::parse(tenant)?;
    let tenant = tenant.as_str();
    let parent = match parent_key {
        Some(key) => Some(
            find_by_key(db, tenant, &FolderKey::parse(key)?)
                .await?
                .ok_or_else(|| Error::NotFound(format!("parent folder {key} not found")))?,
        ),
        None => None,
    };
    let folder = folder::ActiveModel {
        key: Set(Uuid::new_v4().to_string()),
        tenant_id: Set(tenant.to_string()),
        name: Set(name.to_string()),
        parent_id: Set(parent.as_ref().map(|p| p.id)),
        region: Set(region.to_string()),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(folder)
}

pub async fn find_by_key<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    key: &FolderKey,
) -> Result<Option<folder::Model>, Error> {
    Ok(folder::Entity::find()
        .filter(folder::Column::TenantId.eq(tenant))
        .filter(folder::Column::Key.eq(key.as_str()))
        .one(db)
        .await?)
}

/// The folder with this integer id in the tenant, if it is in `region` (a Rainbond
/// app: `/teams/{tenant}/regions/{region}/apps/{id}`).
pub async fn find_in_region<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    id: i32,
    region: &str,
) -> Result<Option<folder::Model>, Error> {
    Ok(folder::Entity::find_by_id(id)
        .filter(folder::Column::TenantId.eq(tenant))
        .one(db)
        .await?
        .filter(|f| f.region == region))
}

pub async fn list<C: ConnectionTrait>(db: &C, tenant: &str) -> Result<Vec<folder::Model>, Error> {
    Ok(folder::Entity::find()
        .filter(folder::Column::TenantId.eq(tenant))
        .order_by_asc(folder::Column::Id)
        .all(db)
        .await?)
}

/// The folder's id and those of every folder below it, in the folder's tenant.
pub async fn with_descendants<C: ConnectionTrait>(
    db: &C,
    root: &folder::Model,
) -> Result<Vec<i32>, Error> {
    let mut all = vec![root.id];
    let mut level = vec![root.id];
    // Bounded like the ancestry walk in `access`: a cycle cannot loop forever.
    for _ in 0..64 {
        let children: Vec<i32> = folder::Entity::find()
            .select_only()
            .column(folder::Column::Id)
            .filter(folder::Column::TenantId.eq(&root.tenant_id))
            .filter(folder::Column::ParentId.is_in(level))
            .into_tuple()
            .all(db)
            .await?;
        level = children
            .into_iter()
            .filter(|id| !all.contains(id))
            .collect();
        if level.is_empty() {
            break;
        }
        all.extend(&level);
    }
    Ok(all)
}
