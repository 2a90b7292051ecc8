//! Deploying a published app version into a folder.

use chrono::Utc;
use entity::{deployment, deployment_tag, folder};
use rand::Rng;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set,
    TransactionSession, TransactionTrait,
};
use uuid::Uuid;

use super::{
    Actor, catalog,
    events::{self, Change, EventKind},
};
use crate::{db, error::ApiError};

pub const MAX_TAGS: usize = 50;
pub const MAX_TAG_CHARS: usize = 100;
const MAX_ROUTING_NAME_CHARS: usize = 63;

#[derive(Debug, Clone, Default)]
pub struct DeployOptions {
    pub title: Option<String>,
    pub routing_name: Option<String>,
    pub tags: Vec<String>,
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
) -> Result<deployment::Model, ApiError>
where
    C: ConnectionTrait + TransactionTrait,
{
    let tenant = folder.tenant_id.as_str();
    let tags = normalize_tags(&options.tags)?;
    let app = catalog::find_app(db, tenant, system_name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("app {system_name} not found")))?;
    let routing_name = match options.routing_name {
        Some(name) => {
            validate_routing_name(&name)?;
            name
        }
        None => generate_routing_name(&app.system_name),
    };
    let txn = db::begin_write(db).await?;
    let published = entity::app_version::Entity::find()
        .filter(entity::app_version::Column::AppId.eq(app.id))
        .filter(entity::app_version::Column::Version.eq(version))
        .filter(entity::app_version::Column::Published.eq(true))
        .one(&txn)
        .await?;
    if published.is_none() {
        return Err(ApiError::NotFound(format!(
            "version {version} of app {system_name} is not published"
        )));
    }
    if !is_routing_name_free(&txn, tenant, &routing_name).await? {
        return Err(ApiError::Conflict(format!(
            "routing name {routing_name} is already taken"
        )));
    }
    let now = Utc::now();
    let model = deployment::ActiveModel {
        id: Set(Uuid::new_v4().to_string()),
        tenant_id: Set(tenant.to_string()),
        folder_id: Set(folder.id),
        app_id: Set(app.id),
        version: Set(version),
        title: Set(options.title.unwrap_or_else(|| app.title.clone())),
        description: Set(String::new()),
        routing_name: Set(routing_name),
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
            ApiError::Conflict("routing name is already taken".into())
        } else {
            e.into()
        }
    })?;
    replace_tags(&txn, &model.id, &tags).await?;
    events::record(
        &txn,
        Change {
            tenant_id: tenant,
            deployment_id: &model.id,
            kind: EventKind::Deploy,
            from_version: None,
            to_version: version,
        },
        actor,
    )
    .await?;
    txn.commit().await?;
    Ok(model)
}

pub async fn is_routing_name_free<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    name: &str,
) -> Result<bool, ApiError> {
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
) -> Result<(), ApiError> {
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

/// Trims tags, drops duplicates (keeping first order) and enforces the limits.
pub fn normalize_tags(tags: &[String]) -> Result<Vec<String>, ApiError> {
    let mut out: Vec<String> = Vec::new();
    for tag in tags {
        let tag = tag.trim();
        if tag.is_empty() || tag.chars().count() > MAX_TAG_CHARS {
            return Err(ApiError::bad_request(format!(
                "tags must be 1 to {MAX_TAG_CHARS} characters each"
            )));
        }
        if !out.iter().any(|t| t == tag) {
            out.push(tag.to_string());
        }
    }
    if out.len() > MAX_TAGS {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_TAGS} tags are allowed"
        )));
    }
    Ok(out)
}

/// Routing names appear in URLs: lowercase letters, digits and inner hyphens.
pub fn validate_routing_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_ROUTING_NAME_CHARS
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "routingName {name:?} must be 1 to {MAX_ROUTING_NAME_CHARS} lowercase letters, digits or inner hyphens"
        )))
    }
}

fn generate_routing_name(system_name: &str) -> String {
    let mut base: String = system_name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    base.truncate(48);
    let base = base.trim_matches('-');
    let suffix: u32 = rand::rng().random_range(0..0x100_0000);
    format!(
        "{}-{suffix:06x}",
        if base.is_empty() { "app" } else { base }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_routing_names_are_valid() {
        for name in ["Employee_Onboarding", "___", "X".repeat(100).as_str()] {
            let routing = generate_routing_name(name);
            validate_routing_name(&routing).unwrap();
        }
    }

    #[test]
    fn routing_names_with_uppercase_or_edge_hyphens_are_refused() {
        assert!(validate_routing_name("Hr").is_err());
        assert!(validate_routing_name("-hr").is_err());
        assert!(validate_routing_name("hr-portal").is_ok());
    }

    #[test]
    fn tags_are_trimmed_and_deduplicated() {
        let tags = normalize_tags(&[" a ".into(), "b".into(), "a".into()]).unwrap();
        assert_eq!(tags, ["a", "b"]);
        assert!(normalize_tags(&["".into()]).is_err());
    }
}
