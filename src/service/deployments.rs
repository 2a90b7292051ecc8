//! Deploying a published app version into a folder.

use chrono::Utc;
use entity::{deployment, deployment_tag, folder};
use rand::Rng;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, Set,
    TransactionSession, TransactionTrait,
};
use uuid::Uuid;

use super::{
    Actor, catalog,
    events::{self, Change, EventKind},
};
use crate::{
    db,
    domain::{DeploymentId, RoutingName, Tags, Title},
    error::Error,
};

#[derive(Debug, Clone, Default)]
pub struct DeployOptions {
    /// Default: the app's title.
    pub title: Option<Title>,
    /// Default: a free name made from the app's system name.
    pub routing_name: Option<RoutingName>,
    pub tags: Tags,
}

/// Deploys `version` of the app `system_name` into `folder`, writing a `deploy` event in
/// the same transaction.
pub async fn deploy<C>(
    db: &C,
    folder: &folder::Model,
    system_name: &str,
    version: i32,
    options: DeployOptions,
    actor: &Actor,
) -> Result<deployment::Model, Error>
where
    C: ConnectionTrait + TransactionTrait,
{
    deploy_with_suffixes(
        db,
        folder,
        system_name,
        version,
        options,
        actor,
        random_suffix,
    )
    .await
}

/// `deploy`, with the suffixes of a generated routing name taken from `suffixes`
/// (random in `deploy`; a test scripts them to make names collide).
#[tracing::instrument(skip_all, fields(tenant = %folder.tenant_id, folder = folder.id, app = system_name, version))]
pub async fn deploy_with_suffixes<C>(
    db: &C,
    folder: &folder::Model,
    system_name: &str,
    version: i32,
    options: DeployOptions,
    actor: &Actor,
    suffixes: impl FnMut() -> String,
) -> Result<deployment::Model, Error>
where
    C: ConnectionTrait + TransactionTrait,
{
    let tenant = folder.tenant_id.as_str();
    let app = catalog::find_app(db, tenant, system_name)
        .await?
        .ok_or_else(|| Error::NotFound(format!("app {system_name} not found")))?;
    let txn = db::begin_write(db).await?;
    let published = entity::app_version::Entity::find()
        .filter(entity::app_version::Column::AppId.eq(app.id))
        .filter(entity::app_version::Column::Version.eq(version))
        .filter(entity::app_version::Column::Published.eq(true))
        .lock_shared()
        .one(&txn)
        .await?;
    if published.is_none() {
        return Err(Error::NotFound(format!(
            "version {version} of app {system_name} is not published"
        )));
    }
    let routing_name = match options.routing_name {
        Some(name) if is_routing_name_free(&txn, tenant, name.as_str()).await? => name,
        Some(name) => {
            return Err(Error::Conflict(format!(
                "routing name {name} is already taken"
            )));
        }
        None => free_generated_name(&txn, tenant, &app.system_name, suffixes).await?,
    };
    let now = Utc::now();
    let model = deployment::ActiveModel {
        id: Set(Uuid::new_v4().to_string()),
        tenant_id: Set(tenant.to_string()),
        folder_id: Set(folder.id),
        app_id: Set(app.id),
        version: Set(version),
        title: Set(options
            .title
            .map(Title::into_string)
            .unwrap_or_else(|| app.title.clone())),
        description: Set(String::new()),
        routing_name: Set(routing_name.into_string()),
        maintenance_enabled: Set(false),
        maintenance_url: Set(None),
        maintenance_excluded_users: Set("[]".into()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await
    .map_err(|e| {
        if db::is_unique_violation(&e) {
            Error::Conflict("routing name is already taken".into())
        } else {
            e.into()
        }
    })?;
    replace_tags(&txn, &model.id, options.tags.as_slice()).await?;
    events::record(
        &txn,
        Change {
            tenant_id: tenant,
            deployment_id: &model.id,
            kind: EventKind::Deploy,
            from_version: None,
            to_version: version,
            at: Utc::now(),
        },
        actor,
    )
    .await?;
    txn.commit().await?;
    Ok(model)
}

/// A partial update of a deployment; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct Edit {
    pub version: Option<i32>,
    pub title: Option<Title>,
    pub description: Option<String>,
    pub maintenance: Option<MaintenancePatch>,
    pub tags: Option<Tags>,
}

#[derive(Debug, Clone, Default)]
pub struct MaintenancePatch {
    pub enabled: Option<bool>,
    pub url: Option<String>,
    pub excluded_users: Option<Vec<String>>,
}

const MAX_DESCRIPTION_CHARS: usize = 4000;
const MAX_URL_CHARS: usize = 2048;
const MAX_EXCLUDED_USERS: usize = 1000;

impl Edit {
    fn validate(&self) -> Result<(), Error> {
        if self
            .description
            .as_ref()
            .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS)
        {
            return Err(Error::invalid(format!(
                "description must be at most {MAX_DESCRIPTION_CHARS} characters"
            )));
        }
        if self.version.is_some_and(|v| v < 1) {
            return Err(Error::invalid(
                "version must be a published version number (1 or more)",
            ));
        }
        if let Some(m) = &self.maintenance {
            if let Some(url) = &m.url
                && !url.is_empty()
                && (url.len() > MAX_URL_CHARS
                    || !(url.starts_with("https://") || url.starts_with("http://")))
            {
                return Err(Error::invalid(
                    "maintenanceModeData.maintenanceModeUrl must be an http(s) URL of at most 2048 characters",
                ));
            }
            if let Some(users) = &m.excluded_users
                && (users.len() > MAX_EXCLUDED_USERS
                    || users.iter().any(|u| u.trim().is_empty() || u.len() > 256))
            {
                return Err(Error::invalid(format!(
                    "maintenanceModeData.maintenanceExcludedUsers must hold at most {MAX_EXCLUDED_USERS} non-empty names"
                )));
            }
        }
        Ok(())
    }
}

/// Applies `edit` to the deployment `id` in `folder_id`, in one transaction with the row
/// locked. Moving `version` goes only to a published version. Writes an `edit` event
/// when anything changed. `Ok(None)`: no such deployment in this tenant and folder.
#[tracing::instrument(skip_all, fields(tenant, folder = folder_id, deployment = id))]
pub async fn edit<C>(
    db: &C,
    tenant: &str,
    folder_id: i32,
    id: &str,
    edit: Edit,
    actor: &Actor,
) -> Result<Option<(deployment::Model, String)>, Error>
where
    C: ConnectionTrait + TransactionTrait,
{
    edit.validate()?;
    let tags = edit.tags.as_ref().map(|t| t.as_slice().to_vec());
    let Some(id) = DeploymentId::parse(id) else {
        return Ok(None);
    };
    let id = id.as_str().to_string();
    let txn = db::begin_write(db).await?;
    let Some((current, app)) = lock_in_folder(&txn, tenant, folder_id, &id).await? else {
        return Ok(None);
    };
    if let Some(version) = edit.version
        && version != current.version
        && !is_published(&txn, current.app_id, version).await?
    {
        return Err(Error::invalid(format!(
            "version {version} of app {} is not published; a deployment moves only to a published version",
            app.system_name
        )));
    }

    let mut active: deployment::ActiveModel = current.clone().into();
    if let Some(version) = edit.version {
        active.version = Set(version);
    }
    if let Some(title) = edit.title {
        active.title = Set(title.into_string());
    }
    if let Some(description) = edit.description {
        active.description = Set(description);
    }
    if let Some(m) = edit.maintenance {
        if let Some(enabled) = m.enabled {
            active.maintenance_enabled = Set(enabled);
        }
        if let Some(url) = m.url {
            active.maintenance_url = Set(Some(url).filter(|u| !u.is_empty()));
        }
        if let Some(users) = m.excluded_users {
            active.maintenance_excluded_users =
                Set(serde_json::to_string(&users).map_err(anyhow::Error::from)?);
        }
    }
    let fields_changed = active.is_changed()
        && (active.version.as_ref() != &current.version
            || active.title.as_ref() != &current.title
            || active.description.as_ref() != &current.description
            || active.maintenance_enabled.as_ref() != &current.maintenance_enabled
            || active.maintenance_url.as_ref() != &current.maintenance_url
            || active.maintenance_excluded_users.as_ref() != &current.maintenance_excluded_users);
    let tags_changed = match &tags {
        Some(new) => {
            let old = super::listing::tags_of(&txn, std::slice::from_ref(&id))
                .await?
                .remove(&id)
                .unwrap_or_default();
            let mut sorted = new.clone();
            sorted.sort();
            sorted != old
        }
        None => false,
    };
    if !fields_changed && !tags_changed {
        txn.rollback().await?;
        return Ok(Some((current, app.system_name)));
    }
    active.updated_at = Set(Utc::now());
    let updated = active.update(&txn).await?;
    if let Some(tags) = &tags {
        replace_tags(&txn, &id, tags).await?;
    }
    events::record(
        &txn,
        Change {
            tenant_id: tenant,
            deployment_id: &id,
            kind: EventKind::Edit,
            from_version: Some(current.version),
            to_version: updated.version,
            at: Utc::now(),
        },
        actor,
    )
    .await?;
    txn.commit().await?;
    Ok(Some((updated, app.system_name)))
}

/// Whether `version` is published, holding the row FOR SHARE (PostgreSQL) until the
/// transaction ends, so a concurrent unpublish waits for the move to commit.
pub async fn is_published<C: ConnectionTrait>(
    txn: &C,
    app_id: i32,
    version: i32,
) -> Result<bool, Error> {
    Ok(entity::app_version::Entity::find()
        .filter(entity::app_version::Column::AppId.eq(app_id))
        .filter(entity::app_version::Column::Version.eq(version))
        .filter(entity::app_version::Column::Published.eq(true))
        .lock_shared()
        .one(txn)
        .await?
        .is_some())
}

/// The deployment `id` of this tenant and folder, locked until `txn` ends, with its app.
pub async fn lock_in_folder<C: ConnectionTrait>(
    txn: &C,
    tenant: &str,
    folder_id: i32,
    id: &str,
) -> Result<Option<(deployment::Model, entity::app::Model)>, Error> {
    let Some(current) = deployment::Entity::find_by_id(id.to_string())
        .filter(deployment::Column::TenantId.eq(tenant))
        .filter(deployment::Column::FolderId.eq(folder_id))
        .lock_exclusive()
        .one(txn)
        .await?
    else {
        return Ok(None);
    };
    let app = entity::app::Entity::find_by_id(current.app_id)
        .one(txn)
        .await?
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("deployment {id} has no app")))?;
    Ok(Some((current, app)))
}

pub async fn is_routing_name_free<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    name: &str,
) -> Result<bool, Error> {
    Ok(deployment::Entity::find()
        .filter(deployment::Column::TenantId.eq(tenant))
        .filter(deployment::Column::RoutingName.eq(name))
        .one(db)
        .await?
        .is_none())
}

pub async fn replace_tags<C: ConnectionTrait>(
    txn: &C,
    deployment_id: &str,
    tags: &[String],
) -> Result<(), Error> {
    deployment_tag::Entity::delete_many()
        .filter(deployment_tag::Column::DeploymentId.eq(deployment_id))
        .exec(txn)
        .await?;
    if tags.is_empty() {
        return Ok(());
    }
    deployment_tag::Entity::insert_many(tags.iter().map(|tag| deployment_tag::ActiveModel {
        deployment_id: Set(deployment_id.to_string()),
        tag: Set(tag.clone()),
    }))
    .exec(txn)
    .await?;
    Ok(())
}

/// Short random suffixes are tried first (readable names); after this many collisions
/// the suffix is a UUID's 128 random bits, which no other generated name shares.
const SHORT_SUFFIX_ATTEMPTS: usize = 8;
const GENERATED_NAME_ATTEMPTS: usize = 16;

/// A routing name nobody in the tenant has, for a deploy that chose none. The client
/// did not ask for any particular name, so a taken candidate is never its error: the
/// next one is tried. (With one 24-bit suffix and no retry, a few thousand deployments
/// of one app made deploys fail with 409.)
async fn free_generated_name<C: ConnectionTrait>(
    txn: &C,
    tenant: &str,
    system_name: &str,
    mut suffixes: impl FnMut() -> String,
) -> Result<RoutingName, Error> {
    for attempt in 0..GENERATED_NAME_ATTEMPTS {
        let name = if attempt < SHORT_SUFFIX_ATTEMPTS {
            RoutingName::generated(system_name, &suffixes())
        } else {
            RoutingName::generated(system_name, &Uuid::new_v4().simple().to_string())
        };
        if is_routing_name_free(txn, tenant, name.as_str()).await? {
            return Ok(name);
        }
    }
    // 8 UUID suffixes all taken: not a state any sequence of requests can reach.
    Err(Error::Internal(anyhow::anyhow!(
        "no free routing name for {system_name} after {GENERATED_NAME_ATTEMPTS} attempts"
    )))
}

/// Six random hex digits.
fn random_suffix() -> String {
    format!("{:06x}", rand::rng().random_range(0..0x100_0000u32))
}
