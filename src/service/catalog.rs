//! Apps and their published versions. The first publish of a package creates its app;
//! each new `packageVersion` becomes the next integer version (UiPath's
//! `deployVersion`). "Latest" always means the highest published integer version.

use chrono::Utc;
use entity::{app, app_version};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionSession, TransactionTrait, sea_query::LockType,
};

use super::Actor;
use crate::{db, error::Error};

const MAX_PACKAGE_NAME_CHARS: usize = 200;
/// Attempts at a publish that lost a race for the next version number.
const PUBLISH_ATTEMPTS: usize = 5;

#[derive(Debug, Clone)]
pub struct Published {
    pub app: app::Model,
    pub version: app_version::Model,
    /// False when this exact `packageVersion` had been published before.
    pub created: bool,
}

/// Defaults for apps created by a publish (Rainbond's market name and source).
#[derive(Debug, Clone)]
pub struct AppDefaults {
    pub market_name: String,
    pub source: String,
}

impl Default for AppDefaults {
    fn default() -> Self {
        AppDefaults::from_settings(&crate::config::Settings::default())
    }
}

impl AppDefaults {
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        AppDefaults {
            market_name: settings.default_market_name.clone(),
            source: settings.default_source.clone(),
        }
    }
}

/// Publishes `package_version` of `package_name`. Retrying the same publish returns
/// the version published the first time.
#[tracing::instrument(skip_all, fields(tenant, package = package_name, version = package_version))]
pub async fn publish<C>(
    db: &C,
    tenant: &str,
    package_name: &str,
    package_version: &str,
    actor: &Actor,
    defaults: &AppDefaults,
) -> Result<Published, Error>
where
    C: ConnectionTrait + TransactionTrait,
{
    let package_name = package_name.trim();
    if package_name.is_empty() || package_name.chars().count() > MAX_PACKAGE_NAME_CHARS {
        return Err(Error::invalid(format!(
            "packageName must be 1 to {MAX_PACKAGE_NAME_CHARS} characters"
        )));
    }
    let parsed = semver::Version::parse(package_version.trim()).map_err(|e| {
        Error::invalid(format!(
            "packageVersion {package_version:?} is not a semantic version: {e}"
        ))
    })?;
    let package_version = parsed.to_string();
    for _ in 0..PUBLISH_ATTEMPTS {
        match try_publish(db, tenant, package_name, &package_version, actor, defaults).await {
            Ok(published) => return Ok(published),
            // Two publishers raced to create the same app, or the app's row stayed
            // locked past the lock timeout: read again.
            Err(e) if db::is_unique_violation(&e) || db::is_lock_conflict(&e) => {
                tracing::info!(error = %e, "publish raced another one; retrying");
            }
            Err(e) => return Err(e.into()),
        }
    }
    // A race lost every time is the caller's cue to retry (409), not a server error.
    Err(Error::Conflict(
        "publish kept conflicting with concurrent publishes; retry".into(),
    ))
}

async fn try_publish<C>(
    db: &C,
    tenant: &str,
    package_name: &str,
    package_version: &str,
    actor: &Actor,
    defaults: &AppDefaults,
) -> Result<Published, DbErr>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = db::begin_write(db).await?;
    // Publishers of one app take turns on its row (PostgreSQL; SQLite's BEGIN IMMEDIATE
    // already serialises writers), so each reads the highest version number after the
    // previous one committed: without it, concurrent publishers all read the same
    // number, all but one hit the unique index, and after a few lost rounds a publish
    // failed. NO KEY UPDATE does not block the KEY SHARE that deployment inserts take
    // through their foreign key.
    let app = match app::Entity::find()
        .filter(app::Column::TenantId.eq(tenant))
        .filter(app::Column::PackageName.eq(package_name))
        .lock(LockType::NoKeyUpdate)
        .one(&txn)
        .await?
    {
        Some(app) => app,
        None => create_app(&txn, tenant, package_name, defaults).await?,
    };
    let existing = app_version::Entity::find()
        .filter(app_version::Column::AppId.eq(app.id))
        .filter(app_version::Column::PackageVersion.eq(package_version))
        .one(&txn)
        .await?;
    let (version, created) = match existing {
        Some(v) if v.published => (v, false),
        // Publishing an unpublished version again makes it available again.
        Some(v) => {
            let mut active: app_version::ActiveModel = v.into();
            active.published = Set(true);
            active.unpublished_at = Set(None);
            (active.update(&txn).await?, false)
        }
        None => {
            let highest: Option<i32> = app_version::Entity::find()
                .select_only()
                .column_as(app_version::Column::Version.max(), "max")
                .filter(app_version::Column::AppId.eq(app.id))
                .into_tuple()
                .one(&txn)
                .await?
                .flatten();
            let version = app_version::ActiveModel {
                app_id: Set(app.id),
                version: Set(highest.unwrap_or(0) + 1),
                package_version: Set(package_version.to_string()),
                published: Set(true),
                published_by: Set(actor.subject.clone()),
                published_at: Set(Utc::now()),
                unpublished_at: Set(None),
                ..Default::default()
            }
            .insert(&txn)
            .await?;
            (version, true)
        }
    };
    txn.commit().await?;
    Ok(Published {
        app,
        version,
        created,
    })
}

async fn create_app<C: ConnectionTrait>(
    txn: &C,
    tenant: &str,
    package_name: &str,
    defaults: &AppDefaults,
) -> Result<app::Model, DbErr> {
    let base = system_name_for(package_name);
    let mut candidate = base.clone();
    let mut n = 1;
    // Two package names may reduce to the same system name ("My App", "My_App").
    while app::Entity::find()
        .filter(app::Column::TenantId.eq(tenant))
        .filter(app::Column::SystemName.eq(&candidate))
        .one(txn)
        .await?
        .is_some()
    {
        n += 1;
        candidate = format!("{base}_{n}");
    }
    app::ActiveModel {
        tenant_id: Set(tenant.to_string()),
        system_name: Set(candidate),
        package_name: Set(package_name.to_string()),
        title: Set(package_name.to_string()),
        market_name: Set(defaults.market_name.clone()),
        source: Set(defaults.source.clone()),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(txn)
    .await
}

/// A stable, URL-safe system name: ASCII letters and digits kept, runs of anything else
/// folded into one underscore.
pub fn system_name_for(package_name: &str) -> String {
    let mut out = String::new();
    for c in package_name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let trimmed = out.trim_matches('_');
    if trimmed.is_empty() {
        "app".to_string()
    } else {
        trimmed.to_string()
    }
}

pub async fn find_app<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    system_name: &str,
) -> Result<Option<app::Model>, DbErr> {
    app::Entity::find()
        .filter(app::Column::TenantId.eq(tenant))
        .filter(app::Column::SystemName.eq(system_name))
        .one(db)
        .await
}

/// The highest published version of an app, if any.
pub async fn latest_published<C: ConnectionTrait>(
    db: &C,
    app_id: i32,
) -> Result<Option<app_version::Model>, DbErr> {
    app_version::Entity::find()
        .filter(app_version::Column::AppId.eq(app_id))
        .filter(app_version::Column::Published.eq(true))
        .order_by_desc(app_version::Column::Version)
        .one(db)
        .await
}

/// Withdraws a published version: deployments on it keep running, but nothing is
/// upgraded or deployed to it any more. Unpublishing twice is not an error.
#[tracing::instrument(skip_all, fields(tenant, app = system_name, version))]
pub async fn unpublish<C>(
    db: &C,
    tenant: &str,
    system_name: &str,
    version: i32,
) -> Result<(), Error>
where
    C: ConnectionTrait + TransactionTrait,
{
    let app = find_app(db, tenant, system_name)
        .await?
        .ok_or_else(|| Error::NotFound(format!("app {system_name} not found")))?;
    let txn = db::begin_write(db).await?;
    // FOR UPDATE waits for upgrades holding this row FOR SHARE, so no upgrade can move
    // a deployment onto it after the unpublish commits.
    let row = app_version::Entity::find()
        .filter(app_version::Column::AppId.eq(app.id))
        .filter(app_version::Column::Version.eq(version))
        .lock_exclusive()
        .one(&txn)
        .await?
        .ok_or_else(|| {
            Error::NotFound(format!("version {version} of app {system_name} not found"))
        })?;
    if row.published {
        let mut active: app_version::ActiveModel = row.into();
        active.published = Set(false);
        active.unpublished_at = Set(Some(Utc::now()));
        active.update(&txn).await?;
    }
    txn.commit().await?;
    Ok(())
}

/// Each app of the tenant with a published version, and its latest published version.
#[tracing::instrument(skip_all, fields(tenant))]
pub async fn published_apps<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
) -> Result<Vec<(app::Model, app_version::Model)>, Error> {
    let apps = app::Entity::find()
        .filter(app::Column::TenantId.eq(tenant))
        .order_by_asc(app::Column::SystemName)
        .all(db)
        .await?;
    let app_ids: Vec<i32> = apps.iter().map(|a| a.id).collect();
    let versions = app_version::Entity::find()
        .filter(app_version::Column::AppId.is_in(app_ids))
        .filter(app_version::Column::Published.eq(true))
        .order_by_asc(app_version::Column::Version)
        .all(db)
        .await?;
    let mut latest = std::collections::HashMap::new();
    for v in versions {
        latest.insert(v.app_id, v);
    }
    Ok(apps
        .into_iter()
        .filter_map(|a| latest.remove(&a.id).map(|v| (a, v)))
        .collect())
}

/// The published versions of an app, newest first; `None` when the app does not exist.
#[tracing::instrument(skip_all, fields(tenant, app = system_name))]
pub async fn published_versions<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    system_name: &str,
) -> Result<Option<(app::Model, Vec<app_version::Model>)>, Error> {
    let Some(app) = find_app(db, tenant, system_name).await? else {
        return Ok(None);
    };
    let versions = app_version::Entity::find()
        .filter(app_version::Column::AppId.eq(app.id))
        .filter(app_version::Column::Published.eq(true))
        .order_by_desc(app_version::Column::Version)
        .all(db)
        .await?;
    Ok(Some((app, versions)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_names_keep_letters_and_digits_and_fold_the_rest() {
        assert_eq!(
            system_name_for("Employee Onboarding"),
            "Employee_Onboarding"
        );
        assert_eq!(system_name_for("  acme.hr--portal  "), "acme_hr_portal");
        assert_eq!(system_name_for("日本"), "app");
    }
}
