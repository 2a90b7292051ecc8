//! Apps and their published versions. The first publish of a package creates its app;
//! each new `packageVersion` becomes the next integer version (UiPath's
//! `deployVersion`). "Latest" always means the highest published integer version.

use chrono::Utc;
use entity::{app, app_version};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, Order, QueryFilter,
    QueryOrder, QuerySelect, Set, TransactionSession, TransactionTrait, sea_query::LockType,
};
use std::{cmp::Ordering, str::FromStr};

use super::{
    Actor,
    listing::{DEFAULT_TOP, parse_order_by_of},
};
use crate::{
    db,
    domain::Title,
    error::Error,
    outbox::{self, EventType, NewEvent},
};

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
    publish_titled(
        db,
        tenant,
        package_name,
        package_version,
        None,
        actor,
        defaults,
    )
    .await
}

/// `publish`, where `title` (when given) is the app's title if this publish creates
/// the app; an existing app keeps its title.
#[tracing::instrument(skip_all, fields(tenant, package = package_name, version = package_version))]
pub async fn publish_titled<C>(
    db: &C,
    tenant: &str,
    package_name: &str,
    package_version: &str,
    title: Option<&Title>,
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
        let new_app = NewApp {
            package_name,
            title: title.map_or(package_name, Title::as_str),
            defaults,
        };
        match try_publish(db, tenant, &new_app, &package_version, actor).await {
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

/// What a publish that creates its app gives the app.
struct NewApp<'a> {
    package_name: &'a str,
    title: &'a str,
    defaults: &'a AppDefaults,
}

async fn try_publish<C>(
    db: &C,
    tenant: &str,
    new_app: &NewApp<'_>,
    package_version: &str,
    actor: &Actor,
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
        .filter(app::Column::PackageName.eq(new_app.package_name))
        .lock(LockType::NoKeyUpdate)
        .one(&txn)
        .await?
    {
        Some(app) => app,
        None => create_app(&txn, tenant, new_app).await?,
    };
    let existing = app_version::Entity::find()
        .filter(app_version::Column::AppId.eq(app.id))
        .filter(app_version::Column::PackageVersion.eq(package_version))
        .one(&txn)
        .await?;
    // A retried publish of a version already published changes nothing: no event.
    let existing_was_published = existing.as_ref().is_some_and(|v| v.published);
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
    if !existing_was_published {
        record_version_event(
            &txn,
            tenant,
            EventType::AppVersionPublished,
            &app,
            &version,
            actor,
        )
        .await?;
    }
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
    new_app: &NewApp<'_>,
) -> Result<app::Model, DbErr> {
    let NewApp {
        package_name,
        title,
        defaults,
    } = new_app;
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
        title: Set(title.to_string()),
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
pub async fn unpublish<C>(
    db: &C,
    tenant: &str,
    system_name: &str,
    version: i32,
) -> Result<(), Error>
where
    C: ConnectionTrait + TransactionTrait,
{
    unpublish_by(
        db,
        tenant,
        system_name,
        version,
        &Actor::new("uplift", None),
    )
    .await
}

/// `unpublish` on behalf of `actor` (named in the webhook event).
#[tracing::instrument(skip_all, fields(tenant, app = system_name, version))]
pub async fn unpublish_by<C>(
    db: &C,
    tenant: &str,
    system_name: &str,
    version: i32,
    actor: &Actor,
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
        let row = active.update(&txn).await?;
        record_version_event(
            &txn,
            tenant,
            EventType::AppVersionUnpublished,
            &app,
            &row,
            actor,
        )
        .await?;
    }
    txn.commit().await?;
    Ok(())
}

/// The webhook event of a version published or unpublished, in the caller's transaction.
async fn record_version_event<C: ConnectionTrait>(
    txn: &C,
    tenant: &str,
    event_type: EventType,
    app: &app::Model,
    version: &app_version::Model,
    actor: &Actor,
) -> Result<(), DbErr> {
    outbox::record(
        txn,
        NewEvent {
            tenant_id: tenant,
            event_type,
            ordering_key: outbox::ordering_key("app", app.id),
            deployment_id: None,
            folder_id: None,
            from_version: None,
            to_version: Some(version.version),
            actor: &actor.subject,
            request_id: actor.request_id.as_deref(),
            operation_id: actor.operation_id.as_deref(),
            data: Some(serde_json::json!({
                "appSystemName": app.system_name,
                "version": version.version,
                "packageVersion": version.package_version,
            })),
            at: Utc::now(),
        },
    )
    .await
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

/// One page of a catalogue list: `top`/`skip` and the `orderBy` terms over `F`, the
/// list's fields; what breaks ties is the list's own (so pages are stable).
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogQuery<F> {
    pub top: u64,
    pub skip: u64,
    pub order_by: Vec<(F, Order)>,
    /// Case-insensitive text in the title or system name (published apps only).
    pub search_text: Option<String>,
}

impl<F> Default for CatalogQuery<F> {
    fn default() -> Self {
        CatalogQuery {
            top: DEFAULT_TOP,
            skip: 0,
            order_by: Vec::new(),
            search_text: None,
        }
    }
}

impl<F: FromStr<Err = Error>> CatalogQuery<F> {
    /// Parses `orderBy` (`field [asc|desc]`, comma-separated) over `F`.
    pub fn order_by(raw: Option<&str>) -> Result<Vec<(F, Order)>, Error> {
        Ok(raw.map(parse_order_by_of).transpose()?.unwrap_or_default())
    }
}

/// What the published-apps list orders by (default: systemName).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppSortField {
    SystemName,
    Title,
    PackageName,
    /// The latest published version.
    DeployVersion,
    /// Its package version, in semantic-version precedence.
    PackageVersion,
}

impl FromStr for AppSortField {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "systemname" => AppSortField::SystemName,
            "title" => AppSortField::Title,
            "packagename" => AppSortField::PackageName,
            "deployversion" => AppSortField::DeployVersion,
            "packageversion" | "appversion" => AppSortField::PackageVersion,
            _ => {
                return Err(Error::invalid(format!(
                    "orderBy field {s:?} is unknown; use systemName, title, packageName, deployVersion or packageVersion"
                )));
            }
        })
    }
}

/// What the published-versions list orders by (default: deployVersion desc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSortField {
    DeployVersion,
    /// In semantic-version precedence.
    PackageVersion,
    PublishedAt,
    PublishedBy,
}

impl FromStr for VersionSortField {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "deployversion" => VersionSortField::DeployVersion,
            "packageversion" | "appversion" => VersionSortField::PackageVersion,
            "publishedat" => VersionSortField::PublishedAt,
            "publishedby" => VersionSortField::PublishedBy,
            _ => {
                return Err(Error::invalid(format!(
                    "orderBy field {s:?} is unknown; use deployVersion, packageVersion, publishedAt or publishedBy"
                )));
            }
        })
    }
}

/// Package versions in semantic-version precedence (all were checked at publish);
/// text order for any that somehow is not one.
fn semver_cmp(a: &str, b: &str) -> Ordering {
    match (semver::Version::parse(a), semver::Version::parse(b)) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        _ => a.cmp(b),
    }
}

/// Sorts by the terms, then by `tie` (a total order), and returns the total and the page.
fn page<T, F: Copy>(
    mut items: Vec<T>,
    query: &CatalogQuery<F>,
    default: &[(F, Order)],
    by: impl Fn(&T, &T, F) -> Ordering,
    tie: impl Fn(&T, &T) -> Ordering,
) -> (u64, Vec<T>) {
    let terms = if query.order_by.is_empty() {
        default
    } else {
        &query.order_by
    };
    items.sort_by(|a, b| {
        terms
            .iter()
            .map(|(field, order)| match order {
                Order::Desc => by(a, b, *field).reverse(),
                _ => by(a, b, *field),
            })
            .find(|o| o.is_ne())
            .unwrap_or_else(|| tie(a, b))
    });
    let total = items.len() as u64;
    let skip = usize::try_from(query.skip).unwrap_or(usize::MAX);
    let top = usize::try_from(query.top).unwrap_or(usize::MAX);
    (total, items.into_iter().skip(skip).take(top).collect())
}

/// A page of `published_apps`, filtered by the search text: the total matching and
/// the page.
pub async fn published_apps_page<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    query: &CatalogQuery<AppSortField>,
) -> Result<(u64, Vec<(app::Model, app_version::Model)>), Error> {
    let mut apps = published_apps(db, tenant).await?;
    if let Some(text) = query
        .search_text
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        let text = text.to_lowercase();
        apps.retain(|(a, _)| {
            a.title.to_lowercase().contains(&text) || a.system_name.to_lowercase().contains(&text)
        });
    }
    Ok(page(
        apps,
        query,
        &[(AppSortField::SystemName, Order::Asc)],
        |(a, av), (b, bv), field| match field {
            AppSortField::SystemName => a.system_name.cmp(&b.system_name),
            AppSortField::Title => a.title.cmp(&b.title),
            AppSortField::PackageName => a.package_name.cmp(&b.package_name),
            AppSortField::DeployVersion => av.version.cmp(&bv.version),
            AppSortField::PackageVersion => semver_cmp(&av.package_version, &bv.package_version),
        },
        |(a, _), (b, _)| a.id.cmp(&b.id),
    ))
}

/// A page of `published_versions`: the app, the total and the page; `None` when the
/// app does not exist.
pub async fn published_versions_page<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    system_name: &str,
    query: &CatalogQuery<VersionSortField>,
) -> Result<Option<(app::Model, u64, Vec<app_version::Model>)>, Error> {
    let Some((app, versions)) = published_versions(db, tenant, system_name).await? else {
        return Ok(None);
    };
    let (total, versions) = page(
        versions,
        query,
        &[(VersionSortField::DeployVersion, Order::Desc)],
        |a, b, field| match field {
            VersionSortField::DeployVersion => a.version.cmp(&b.version),
            VersionSortField::PackageVersion => semver_cmp(&a.package_version, &b.package_version),
            VersionSortField::PublishedAt => a.published_at.cmp(&b.published_at),
            VersionSortField::PublishedBy => a.published_by.cmp(&b.published_by),
        },
        |a, b| a.version.cmp(&b.version),
    );
    Ok(Some((app, total, versions)))
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

    #[test]
    fn catalogue_order_fields_are_named_when_unknown_and_versions_sort_by_precedence() {
        let err = CatalogQuery::<AppSortField>::order_by(Some("colour"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("colour"), "{err}");
        assert!(CatalogQuery::<VersionSortField>::order_by(Some("title")).is_err());
        assert_eq!(
            CatalogQuery::<VersionSortField>::order_by(Some("packageVersion desc")).unwrap(),
            [(VersionSortField::PackageVersion, Order::Desc)]
        );
        assert_eq!(semver_cmp("1.10.0", "1.9.0"), Ordering::Greater);
        assert_eq!(semver_cmp("2.0.0-beta.1", "2.0.0"), Ordering::Less);
    }

    #[test]
    fn a_page_is_sorted_by_the_terms_then_the_tie_breaker_and_counts_everything() {
        let query = CatalogQuery {
            top: 2,
            skip: 1,
            order_by: vec![(VersionSortField::PublishedBy, Order::Desc)],
            search_text: None,
        };
        let items = vec![(1, "a"), (2, "b"), (3, "a"), (4, "b")];
        let (total, got) = page(
            items,
            &query,
            &[],
            |a, b, _| a.1.cmp(b.1),
            |a, b| a.0.cmp(&b.0),
        );
        assert_eq!(total, 4);
        assert_eq!(got, [(4, "b"), (1, "a")]);
    }
}
