//! The deployed-apps list: paging, ordering, search and tag filters, always in a total
//! order (the id breaks ties) so pages never repeat or skip an item.

use std::{collections::HashMap, str::FromStr};

use crate::error::Error;
use entity::{app, app_version, deployment, deployment_tag};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, Order, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait,
    sea_query::{Expr, ExprTrait, Func, LikeExpr},
};

pub const MAX_TOP: u64 = 1000;
pub const DEFAULT_TOP: u64 = 100;
/// The most app names one list may filter by (as many as an operation's selector).
pub const MAX_APP_NAMES: usize = 1000;

/// A deployment as the list shows it (the wire form is `http`'s `DeployedApp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedDeployment {
    pub id: String,
    pub app_system_name: String,
    pub title: String,
    pub description: String,
    pub version: i32,
    /// The package version (semantic version) of `version`.
    pub package_version: String,
    pub routing_name: String,
    pub tags: Vec<String>,
    /// The latest published version of the app, when one is published.
    pub latest: Option<LatestVersion>,
}

impl ListedDeployment {
    /// Behind the latest published version of its app.
    pub fn is_outdated(&self) -> bool {
        self.latest
            .as_ref()
            .is_some_and(|l| l.version > self.version)
    }
}

/// An app's latest published version: the highest published integer version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatestVersion {
    pub version: i32,
    pub package_version: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    Id,
    Title,
    Description,
    Version,
    RoutingName,
    AppSystemName,
}

impl FromStr for SortField {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "id" => SortField::Id,
            "title" => SortField::Title,
            "description" => SortField::Description,
            "version" => SortField::Version,
            "routingname" => SortField::RoutingName,
            "appsystemname" => SortField::AppSystemName,
            _ => {
                return Err(Error::invalid(format!(
                    "orderBy field {s:?} is unknown; use id, title, description, version, routingName or appSystemName"
                )));
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub top: u64,
    pub skip: u64,
    pub order_by: Vec<(SortField, Order)>,
    pub search_text: Option<String>,
    /// A deployment matches when it carries every one of these tags.
    pub tags: Vec<String>,
    /// A deployment matches when it runs any of these apps (empty: every app).
    pub app_system_names: Vec<String>,
    /// `Some(true)`: only deployments behind their app's latest published version;
    /// `Some(false)`: only those on it (or whose app has none published).
    pub outdated: Option<bool>,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            top: DEFAULT_TOP,
            skip: 0,
            order_by: Vec::new(),
            search_text: None,
            tags: Vec::new(),
            app_system_names: Vec::new(),
            outdated: None,
        }
    }
}

/// Parses `orderBy` as OData does: `field [asc|desc]`, several separated by commas.
pub fn parse_order_by(raw: &str) -> Result<Vec<(SortField, Order)>, Error> {
    parse_order_by_of(raw)
}

/// `parse_order_by` over another list's fields (`F::from_str` names an unknown one).
pub fn parse_order_by_of<F: FromStr<Err = Error>>(raw: &str) -> Result<Vec<(F, Order)>, Error> {
    raw.split(',')
        .filter(|term| !term.trim().is_empty())
        .map(|term| {
            let mut words = term.split_whitespace();
            let field: F = words.next().unwrap_or_default().parse()?;
            let order = match words.next().map(str::to_ascii_lowercase).as_deref() {
                None | Some("asc") => Order::Asc,
                Some("desc") => Order::Desc,
                Some(other) => {
                    return Err(Error::invalid(format!(
                        "orderBy direction {other:?} must be asc or desc"
                    )));
                }
            };
            if words.next().is_some() {
                return Err(Error::invalid(format!(
                    "orderBy term {term:?} must be 'field [asc|desc]'"
                )));
            }
            Ok((field, order))
        })
        .collect()
}

/// Parses a non-negative whole number query parameter, naming it when it is not one.
pub fn parse_count(name: &str, raw: &str, max: u64) -> Result<u64, Error> {
    raw.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| *n <= max)
        .ok_or_else(|| {
            Error::invalid(format!(
                "{name} must be a whole number from 0 to {max}, not {raw:?}"
            ))
        })
}

/// Total matching count and the requested page.
#[tracing::instrument(skip_all, fields(tenant, folder = folder_id))]
pub async fn list<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    folder_id: i32,
    query: &ListQuery,
) -> Result<(u64, Vec<ListedDeployment>), Error> {
    let mut select = deployment::Entity::find()
        .find_also_related(app::Entity)
        .filter(deployment::Column::TenantId.eq(tenant))
        .filter(deployment::Column::FolderId.eq(folder_id));
    select = select
        .filter(search_and_tags(db, tenant, query.search_text.as_deref(), &query.tags).await?);
    if !query.app_system_names.is_empty() {
        let apps = app::Entity::find()
            .select_only()
            .column(app::Column::Id)
            .filter(app::Column::TenantId.eq(tenant))
            .filter(app::Column::SystemName.is_in(query.app_system_names.iter().cloned()))
            .into_query();
        select = select.filter(deployment::Column::AppId.in_subquery(apps));
    }
    match query.outdated {
        Some(true) => select = select.filter(Expr::cust(OUTDATED)),
        Some(false) => select = select.filter(Expr::cust(OUTDATED).not()),
        None => {}
    }
    let total = select.clone().count(db).await?;

    for (field, order) in &query.order_by {
        select = match field {
            SortField::Id => select.order_by(deployment::Column::Id, order.clone()),
            SortField::Title => select.order_by(deployment::Column::Title, order.clone()),
            SortField::Description => {
                select.order_by(deployment::Column::Description, order.clone())
            }
            SortField::Version => select.order_by(deployment::Column::Version, order.clone()),
            SortField::RoutingName => {
                select.order_by(deployment::Column::RoutingName, order.clone())
            }
            SortField::AppSystemName => select.order_by(app::Column::SystemName, order.clone()),
        };
    }
    if query.order_by.is_empty() {
        select = select.order_by_asc(deployment::Column::Title);
    }
    // The id makes the order total, so paging is stable.
    let rows = select
        .order_by_asc(deployment::Column::Id)
        .offset(query.skip)
        .limit(query.top)
        .all(db)
        .await?;

    let ids: Vec<String> = rows.iter().map(|(d, _)| d.id.clone()).collect();
    let mut tags = tags_of(db, &ids).await?;
    let versions: Vec<(i32, i32)> = rows.iter().map(|(d, _)| (d.app_id, d.version)).collect();
    let package_versions = package_versions_of(db, &versions).await?;
    let app_ids: Vec<i32> = rows.iter().map(|(d, _)| d.app_id).collect();
    let latest = latest_of(db, &app_ids).await?;
    Ok((
        total,
        rows.into_iter()
            .map(|(d, a)| {
                let tags = tags.remove(&d.id).unwrap_or_default();
                let package_version = package_versions
                    .get(&(d.app_id, d.version))
                    .cloned()
                    .unwrap_or_default();
                let latest = latest.get(&d.app_id).cloned();
                listed(
                    d,
                    a.map(|a| a.system_name).unwrap_or_default(),
                    package_version,
                    tags,
                    latest,
                )
            })
            .collect(),
    ))
}

pub fn listed(
    d: deployment::Model,
    app_system_name: String,
    package_version: String,
    tags: Vec<String>,
    latest: Option<LatestVersion>,
) -> ListedDeployment {
    ListedDeployment {
        id: d.id,
        app_system_name,
        title: d.title,
        description: d.description,
        version: d.version,
        package_version,
        routing_name: d.routing_name,
        tags,
        latest,
    }
}

/// "Behind the latest published version of its app", as SQL over `deployments`: the
/// same test as the operations' `onlyOutdated` selector. `NOT` of it also holds for a
/// deployment whose app has no published version (the comparison with NULL is false,
/// and the `COALESCE` keeps it so under `NOT`).
const OUTDATED: &str = "COALESCE(deployments.version < (SELECT MAX(v.version) FROM app_versions v \
     WHERE v.app_id = deployments.app_id AND v.published), FALSE)";

/// The latest published version of each of these apps (apps with none are left out):
/// two queries for any number of apps, never one per deployment.
pub async fn latest_of<C: ConnectionTrait>(
    db: &C,
    app_ids: &[i32],
) -> Result<HashMap<i32, LatestVersion>, Error> {
    let app_ids: std::collections::BTreeSet<i32> = app_ids.iter().copied().collect();
    if app_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let highest: Vec<(i32, Option<i32>)> = app_version::Entity::find()
        .select_only()
        .column(app_version::Column::AppId)
        .column_as(app_version::Column::Version.max(), "latest")
        .filter(app_version::Column::AppId.is_in(app_ids))
        .filter(app_version::Column::Published.eq(true))
        .group_by(app_version::Column::AppId)
        .into_tuple()
        .all(db)
        .await?;
    let pairs: Vec<(i32, i32)> = highest
        .into_iter()
        .filter_map(|(app, version)| version.map(|v| (app, v)))
        .collect();
    let labels = package_versions_of(db, &pairs).await?;
    Ok(pairs
        .into_iter()
        .map(|(app, version)| {
            let package_version = labels.get(&(app, version)).cloned().unwrap_or_default();
            (
                app,
                LatestVersion {
                    version,
                    package_version,
                },
            )
        })
        .collect())
}

/// How many of a folder's deployments run each version of an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppVersionCounts {
    pub app_system_name: String,
    pub latest: Option<LatestVersion>,
    /// `(integer version, package version, deployments)`, oldest version first.
    pub versions: Vec<(i32, String, u64)>,
}

/// Per app in the folder, its deployments counted by version: one grouped query
/// over the folder's deployments, then the few apps' names and versions.
#[tracing::instrument(skip_all, fields(tenant, folder = folder_id))]
pub async fn version_counts<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    folder_id: i32,
) -> Result<Vec<AppVersionCounts>, Error> {
    let groups: Vec<(i32, i32, i64)> = deployment::Entity::find()
        .select_only()
        .column(deployment::Column::AppId)
        .column(deployment::Column::Version)
        .column_as(deployment::Column::Id.count(), "deployments")
        .filter(deployment::Column::TenantId.eq(tenant))
        .filter(deployment::Column::FolderId.eq(folder_id))
        .group_by(deployment::Column::AppId)
        .group_by(deployment::Column::Version)
        .into_tuple()
        .all(db)
        .await?;
    let app_ids: Vec<i32> = groups.iter().map(|g| g.0).collect();
    let names: HashMap<i32, String> = app::Entity::find()
        .filter(app::Column::Id.is_in(app_ids.iter().copied()))
        .all(db)
        .await?
        .into_iter()
        .map(|a| (a.id, a.system_name))
        .collect();
    let pairs: Vec<(i32, i32)> = groups.iter().map(|g| (g.0, g.1)).collect();
    let labels = package_versions_of(db, &pairs).await?;
    let mut latest = latest_of(db, &app_ids).await?;
    let mut by_app: std::collections::BTreeMap<String, AppVersionCounts> = Default::default();
    for (app_id, version, count) in groups {
        let name = names.get(&app_id).cloned().unwrap_or_default();
        let entry = by_app
            .entry(name.clone())
            .or_insert_with(|| AppVersionCounts {
                app_system_name: name,
                latest: latest.remove(&app_id),
                versions: Vec::new(),
            });
        let label = labels.get(&(app_id, version)).cloned().unwrap_or_default();
        entry
            .versions
            .push((version, label, u64::try_from(count).unwrap_or_default()));
    }
    Ok(by_app
        .into_values()
        .map(|mut a| {
            a.versions.sort_by_key(|v| v.0);
            a
        })
        .collect())
}

/// The package version of each `(app id, integer version)`.
pub async fn package_versions_of<C: ConnectionTrait>(
    db: &C,
    versions: &[(i32, i32)],
) -> Result<HashMap<(i32, i32), String>, Error> {
    if versions.is_empty() {
        return Ok(HashMap::new());
    }
    let app_ids: std::collections::BTreeSet<i32> = versions.iter().map(|v| v.0).collect();
    let numbers: std::collections::BTreeSet<i32> = versions.iter().map(|v| v.1).collect();
    let rows = app_version::Entity::find()
        .filter(app_version::Column::AppId.is_in(app_ids))
        .filter(app_version::Column::Version.is_in(numbers))
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|v| ((v.app_id, v.version), v.package_version))
        .collect())
}

/// Tags of each deployment, sorted.
pub async fn tags_of<C: ConnectionTrait>(
    db: &C,
    ids: &[String],
) -> Result<HashMap<String, Vec<String>>, Error> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let rows = deployment_tag::Entity::find()
        .filter(deployment_tag::Column::DeploymentId.is_in(ids.iter().cloned()))
        .order_by_asc(deployment_tag::Column::Tag)
        .all(db)
        .await?;
    for row in rows {
        out.entry(row.deployment_id).or_default().push(row.tag);
    }
    Ok(out)
}

/// Most letters folded by hand in SQLite's search: one `replace()` each.
const MAX_SQLITE_FOLDS: usize = 32;

/// (upper case, lower case) for each distinct non-ASCII letter of the lower-cased
/// search text that has a one-letter upper-case form, at most `MAX_SQLITE_FOLDS`.
fn non_ascii_folds(lowered: &str) -> Vec<(char, char)> {
    let mut folds: Vec<(char, char)> = Vec::new();
    for lower in lowered.chars().filter(|c| !c.is_ascii()) {
        let mut upper = lower.to_uppercase();
        if let (Some(u), None) = (upper.next(), upper.next())
            && u != lower
            && u.to_lowercase().eq([lower])
            && !folds.iter().any(|(_, l)| *l == lower)
            && folds.len() < MAX_SQLITE_FOLDS
        {
            folds.push((u, lower));
        }
    }
    folds
}

fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// The deployments of `tenant` whose title, routing name or app system name contains
/// `search_text` (case-insensitive) and that carry every one of `tags`: the list's
/// filters, also the operations' selector.
pub async fn search_and_tags<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    search_text: Option<&str>,
    tags: &[String],
) -> Result<Condition, Error> {
    let mut condition = Condition::all();
    if let Some(text) = search_text.map(str::trim).filter(|t| !t.is_empty()) {
        let lowered = text.to_lowercase();
        let pattern = format!("%{}%", escape_like(&lowered));
        // SQLite's lower() folds only ASCII; PostgreSQL's folds every letter. On SQLite
        // the upper-case forms of the search text's own non-ASCII letters are replaced
        // first, so `Émile` and `émile` both find "Émile" there too.
        let folds = match db.get_database_backend() {
            sea_orm::DbBackend::Sqlite => non_ascii_folds(&lowered),
            _ => Vec::new(),
        };
        let like = |col: Expr| {
            let mut folded = col;
            for (upper, lower) in &folds {
                folded = Expr::expr(
                    Func::cust("replace")
                        .arg(folded)
                        .arg(upper.to_string())
                        .arg(lower.to_string()),
                );
            }
            Expr::expr(Func::lower(folded)).like(LikeExpr::new(pattern.clone()).escape('\\'))
        };
        // The tenant's few apps whose system name matches, looked up first: an
        // `app_id IN (…)` list, unlike a condition on the joined table, lets
        // PostgreSQL combine it with the trigram indexes of title and routing name
        // instead of reading the whole folder.
        let apps: Vec<i32> = app::Entity::find()
            .select_only()
            .column(app::Column::Id)
            .filter(app::Column::TenantId.eq(tenant))
            .filter(like(Expr::col((app::Entity, app::Column::SystemName))))
            .into_tuple()
            .all(db)
            .await?;
        let mut matches = Condition::any()
            .add(like(Expr::col((
                deployment::Entity,
                deployment::Column::Title,
            ))))
            .add(like(Expr::col((
                deployment::Entity,
                deployment::Column::RoutingName,
            ))));
        if !apps.is_empty() {
            matches = matches.add(deployment::Column::AppId.is_in(apps));
        }
        condition = condition.add(matches);
    }
    if !tags.is_empty() {
        // Distinct, or `tags=a,a` would ask for two matching tags and find none.
        let wanted: std::collections::BTreeSet<&String> = tags.iter().collect();
        let tagged = deployment_tag::Entity::find()
            .select_only()
            .column(deployment_tag::Column::DeploymentId)
            .filter(deployment_tag::Column::Tag.is_in(wanted.iter().map(|t| t.to_string())))
            .group_by(deployment_tag::Column::DeploymentId)
            .having(
                Expr::col(deployment_tag::Column::Tag)
                    .count_distinct()
                    .eq(wanted.len() as i64),
            )
            .into_query();
        condition = condition.add(deployment::Column::Id.in_subquery(tagged));
    }
    Ok(condition)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_by_accepts_odata_terms() {
        let order = parse_order_by("title asc, version DESC,routingName").unwrap();
        assert_eq!(
            order,
            vec![
                (SortField::Title, Order::Asc),
                (SortField::Version, Order::Desc),
                (SortField::RoutingName, Order::Asc)
            ]
        );
    }

    #[test]
    fn order_by_names_an_unknown_field_or_direction() {
        let err = parse_order_by("colour asc").unwrap_err().to_string();
        assert!(err.contains("colour"), "{err}");
        assert!(
            parse_order_by("title sideways")
                .unwrap_err()
                .to_string()
                .contains("sideways")
        );
        assert!(parse_order_by("title asc extra").is_err());
    }

    #[test]
    fn counts_must_be_non_negative_whole_numbers_within_bounds() {
        assert_eq!(parse_count("top", "10", 1000).unwrap(), 10);
        for bad in ["-1", "ten", "1.5", "1001", ""] {
            let err = parse_count("top", bad, 1000).unwrap_err().to_string();
            assert!(err.contains("top"), "{bad}: {err}");
        }
    }

    #[test]
    fn non_ascii_letters_of_the_search_text_are_folded_from_their_upper_case() {
        assert_eq!(non_ascii_folds("émile zürich é"), [('É', 'é'), ('Ü', 'ü')]);
        assert!(non_ascii_folds("plain ascii").is_empty());
        assert!(non_ascii_folds("ß").is_empty(), "no one-letter upper case");
    }

    #[test]
    fn like_wildcards_in_search_text_are_taken_literally() {
        assert_eq!(escape_like("50%_off\\"), "50\\%\\_off\\\\");
    }

    proptest::proptest! {
        #[test]
        fn any_order_by_or_count_text_parses_or_is_a_bad_request(text in ".{0,60}") {
            if let Err(e) = parse_order_by(&text) {
                proptest::prop_assert!(matches!(e, Error::Invalid(_)));
            }
            if let Err(e) = parse_count("top", &text, MAX_TOP) {
                proptest::prop_assert!(e.to_string().contains("top"));
            }
        }
    }
}
