//! Endpoints: a tenant's receivers, their filters and their secrets. Each rule about
//! an endpoint's fields lives here, so the API and any other caller get the same
//! refusals (each naming the field).

use chrono::{DateTime, Utc};
use entity::{folder, webhook_endpoint};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Statement, TransactionSession,
    TransactionTrait,
};

use super::{
    guard::Guard,
    message::{FORMAT_CLOUDEVENTS, FORMAT_STANDARD},
    signing,
};
use crate::{db, error::Error, outbox::EventType};

/// The most endpoints one tenant may register.
pub const MAX_ENDPOINTS: u64 = 50;
pub const MAX_DESCRIPTION_CHARS: usize = 500;
pub const MAX_FOLDER_KEYS: usize = 100;

/// Fields of a create (all that matter) or an update (those given).
#[derive(Debug, Default, Clone)]
pub struct EndpointFields {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub folder_keys: Option<Vec<String>>,
    pub enabled: Option<bool>,
    pub format: Option<String>,
    pub description: Option<String>,
}

fn event_types(types: &[String]) -> Result<String, Error> {
    let mut names: Vec<&str> = Vec::new();
    for name in types {
        let t = EventType::parse(name.trim()).ok_or_else(|| {
            Error::invalid(format!(
                "eventTypes: {name:?} is not an event type; the types are {}",
                EventType::ALL
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        if !names.contains(&t.as_str()) {
            names.push(t.as_str());
        }
    }
    Ok(serde_json::to_string(&names).expect("strings serialize"))
}

async fn folder_keys<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    keys: &[String],
) -> Result<String, Error> {
    if keys.len() > MAX_FOLDER_KEYS {
        return Err(Error::invalid(format!(
            "folderKeys: at most {MAX_FOLDER_KEYS} folders"
        )));
    }
    let mut canonical: Vec<String> = Vec::new();
    for key in keys {
        let parsed = crate::domain::FolderKey::parse(key)
            .map_err(|_| Error::invalid(format!("folderKeys: {key:?} is not a UUID")))?;
        if !canonical.iter().any(|k| k == parsed.as_str()) {
            canonical.push(parsed.as_str().to_string());
        }
    }
    if !canonical.is_empty() {
        let found = folder::Entity::find()
            .filter(folder::Column::TenantId.eq(tenant))
            .filter(folder::Column::Key.is_in(canonical.clone()))
            .count(db)
            .await?;
        if found as usize != canonical.len() {
            return Err(Error::invalid(
                "folderKeys: every key must name a folder of this tenant",
            ));
        }
    }
    Ok(serde_json::to_string(&canonical).expect("strings serialize"))
}

fn format(raw: &str) -> Result<String, Error> {
    match raw {
        FORMAT_STANDARD | FORMAT_CLOUDEVENTS => Ok(raw.to_string()),
        other => Err(Error::invalid(format!(
            "format must be \"standard\" or \"cloudevents\", not {other:?}"
        ))),
    }
}

fn description(raw: &str) -> Result<String, Error> {
    if raw.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(Error::invalid(format!(
            "description must be at most {MAX_DESCRIPTION_CHARS} characters"
        )));
    }
    if raw.chars().any(|c| c.is_control() && c != '\n') {
        return Err(Error::invalid(
            "description must not contain control characters",
        ));
    }
    Ok(raw.to_string())
}

pub async fn create<C>(
    db: &C,
    guard: &Guard,
    tenant: &str,
    fields: EndpointFields,
) -> Result<webhook_endpoint::Model, Error>
where
    C: ConnectionTrait + TransactionTrait,
{
    let url = fields
        .url
        .as_deref()
        .ok_or_else(|| Error::invalid("url is required"))?;
    let url = guard.check_url(url).map_err(Error::invalid)?;
    let event_types = event_types(fields.event_types.as_deref().unwrap_or_default())?;
    let folder_keys = folder_keys(
        db,
        tenant,
        fields.folder_keys.as_deref().unwrap_or_default(),
    )
    .await?;
    let format = format(fields.format.as_deref().unwrap_or(FORMAT_STANDARD))?;
    let description = description(fields.description.as_deref().unwrap_or(""))?;
    // The count and the insert are one transaction under the tenant's endpoint lock:
    // two creates at once must not both see 49 and make 51.
    let txn = db::begin_write(db).await?;
    lock_tenant_endpoints(&txn, tenant).await?;
    let existing = webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::TenantId.eq(tenant))
        .count(&txn)
        .await?;
    if existing >= MAX_ENDPOINTS {
        return Err(Error::Conflict(format!(
            "this tenant already has {MAX_ENDPOINTS} webhook endpoints, the most it may have"
        )));
    }
    let now = Utc::now();
    let model = webhook_endpoint::ActiveModel {
        id: Set(uuid::Uuid::new_v4().to_string()),
        tenant_id: Set(tenant.to_string()),
        url: Set(url.to_string()),
        description: Set(description),
        event_types: Set(event_types),
        folder_keys: Set(folder_keys),
        format: Set(format),
        enabled: Set(fields.enabled.unwrap_or(true)),
        disabled_reason: Set(None),
        disabled_at: Set((!fields.enabled.unwrap_or(true)).then_some(now)),
        secret: Set(signing::new_secret()),
        previous_secret: Set(None),
        previous_secret_expires_at: Set(None),
        failing_since: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(model)
}

/// Serializes the creates of one tenant's endpoints until the transaction ends: a
/// transaction-scoped advisory lock on PostgreSQL (there is no tenant row to lock);
/// on SQLite the transaction already holds the one write lock (`db::begin_write`).
async fn lock_tenant_endpoints<C: ConnectionTrait>(txn: &C, tenant: &str) -> Result<(), Error> {
    if txn.get_database_backend() == DbBackend::Postgres {
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock(hashtextextended('webhook_endpoints:' || $1, 0))",
            [tenant.into()],
        ))
        .await?;
    }
    Ok(())
}

pub async fn find<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    id: &str,
) -> Result<Option<webhook_endpoint::Model>, Error> {
    let Some(id) = crate::domain::DeploymentId::parse(id) else {
        return Ok(None);
    };
    Ok(
        webhook_endpoint::Entity::find_by_id(id.as_str().to_string())
            .filter(webhook_endpoint::Column::TenantId.eq(tenant))
            .one(db)
            .await?,
    )
}

pub async fn list<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    top: u64,
    skip: u64,
) -> Result<(u64, Vec<webhook_endpoint::Model>), Error> {
    let query =
        webhook_endpoint::Entity::find().filter(webhook_endpoint::Column::TenantId.eq(tenant));
    let count = query.clone().count(db).await?;
    let page = query
        .order_by_asc(webhook_endpoint::Column::CreatedAt)
        .order_by_asc(webhook_endpoint::Column::Id)
        .limit(top)
        .offset(skip)
        .all(db)
        .await?;
    Ok((count, page))
}

/// Changes the fields given. Enabling an endpoint clears why it was disabled and its
/// run of failures; its deliveries waiting meanwhile go out again.
pub async fn update<C: ConnectionTrait>(
    db: &C,
    guard: &Guard,
    tenant: &str,
    id: &str,
    fields: EndpointFields,
) -> Result<Option<webhook_endpoint::Model>, Error> {
    let Some(current) = find(db, tenant, id).await? else {
        return Ok(None);
    };
    let now = Utc::now();
    let was_enabled = current.enabled;
    let mut active: webhook_endpoint::ActiveModel = current.into();
    if let Some(url) = &fields.url {
        active.url = Set(guard.check_url(url).map_err(Error::invalid)?.to_string());
    }
    if let Some(types) = &fields.event_types {
        active.event_types = Set(event_types(types)?);
    }
    if let Some(keys) = &fields.folder_keys {
        active.folder_keys = Set(folder_keys(db, tenant, keys).await?);
    }
    if let Some(f) = &fields.format {
        active.format = Set(format(f)?);
    }
    if let Some(d) = &fields.description {
        active.description = Set(description(d)?);
    }
    match fields.enabled {
        Some(true) if !was_enabled => {
            active.enabled = Set(true);
            active.disabled_reason = Set(None);
            active.disabled_at = Set(None);
            active.failing_since = Set(None);
        }
        Some(false) if was_enabled => {
            active.enabled = Set(false);
            active.disabled_reason = Set(None);
            active.disabled_at = Set(Some(now));
        }
        _ => {}
    }
    active.updated_at = Set(now);
    Ok(Some(active.update(db).await?))
}

pub async fn delete<C: ConnectionTrait>(db: &C, tenant: &str, id: &str) -> Result<bool, Error> {
    let Some(current) = find(db, tenant, id).await? else {
        return Ok(false);
    };
    webhook_endpoint::Entity::delete_by_id(current.id)
        .exec(db)
        .await?;
    Ok(true)
}

/// A new secret; the current one keeps signing (beside it) until `until`.
pub async fn rotate_secret<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    id: &str,
    until: DateTime<Utc>,
) -> Result<Option<webhook_endpoint::Model>, Error> {
    let Some(current) = find(db, tenant, id).await? else {
        return Ok(None);
    };
    let previous = current.secret.clone();
    let mut active: webhook_endpoint::ActiveModel = current.into();
    active.previous_secret = Set(Some(previous));
    active.previous_secret_expires_at = Set(Some(until));
    active.secret = Set(signing::new_secret());
    active.updated_at = Set(Utc::now());
    Ok(Some(active.update(db).await?))
}

/// The endpoint's filters as lists.
pub fn filters(endpoint: &webhook_endpoint::Model) -> (Vec<String>, Vec<String>) {
    (
        serde_json::from_str(&endpoint.event_types).unwrap_or_default(),
        serde_json::from_str(&endpoint.folder_keys).unwrap_or_default(),
    )
}
