//! Rainbond's view of the same data: a folder is an app ("group", `app_id` = the
//! folder's integer id) and each app deployed in it is an app model. Versions are
//! `packageVersion` strings ordered by semver precedence (not Rainbond's own
//! segment-by-segment comparison, which puts `1.9` after `1.10`).

use std::{
    cmp::Ordering,
    collections::{BTreeMap, HashMap, HashSet},
};

use entity::{app, app_version, deployment};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use crate::error::Error;

/// One app model as Rainbond's upgrade listing shows it (the wire form is
/// `http::rainbond::AppModel`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelView {
    pub market_name: String,
    /// The app's system name.
    pub app_model_id: String,
    /// The app's title.
    pub app_model_name: String,
    /// The oldest version the folder's deployments of this app are on.
    pub current_version: String,
    pub enterprise_id: String,
    /// True exactly when `upgrade_versions` is not empty.
    pub can_upgrade: bool,
    /// Every published version newer than `current_version`, newest first.
    pub upgrade_versions: Vec<String>,
    pub source: String,
}

/// One item of a Rainbond upgrade request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedUpgrade {
    pub market_name: String,
    pub app_model_id: String,
    pub app_model_version: String,
}

/// Why a requested item cannot be done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidItem {
    pub app_model_id: String,
    pub app_model_version: String,
    pub reason: String,
}

/// An app deployed in the folder, with its deployments there and all its versions.
#[derive(Debug, Clone)]
pub struct DeployedModel {
    pub app: app::Model,
    pub deployments: Vec<deployment::Model>,
    pub versions: Vec<app_version::Model>,
}

/// What a validated request will do: move these deployments to this integer version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedUpgrade {
    pub app_model_id: String,
    pub version: i32,
    pub deployment_ids: Vec<String>,
}

pub async fn deployed_models<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    folder_id: i32,
) -> Result<Vec<DeployedModel>, Error> {
    let deployments = deployment::Entity::find()
        .filter(deployment::Column::TenantId.eq(tenant))
        .filter(deployment::Column::FolderId.eq(folder_id))
        .all(db)
        .await?;
    let mut by_app: BTreeMap<i32, Vec<deployment::Model>> = BTreeMap::new();
    for d in deployments {
        by_app.entry(d.app_id).or_default().push(d);
    }
    let app_ids: Vec<i32> = by_app.keys().copied().collect();
    let apps = app::Entity::find()
        .filter(app::Column::Id.is_in(app_ids.clone()))
        .all(db)
        .await?;
    let versions = app_version::Entity::find()
        .filter(app_version::Column::AppId.is_in(app_ids))
        .all(db)
        .await?;
    let mut models: Vec<DeployedModel> = apps
        .into_iter()
        .map(|app| DeployedModel {
            deployments: by_app.remove(&app.id).unwrap_or_default(),
            versions: versions
                .iter()
                .filter(|v| v.app_id == app.id)
                .cloned()
                .collect(),
            app,
        })
        .collect();
    models.sort_by(|a, b| a.app.system_name.cmp(&b.app.system_name));
    Ok(models)
}

/// Semver precedence; labels that do not parse (none should: publish requires semver)
/// sort below every valid version, then by text.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    match (semver::Version::parse(a), semver::Version::parse(b)) {
        (Ok(a), Ok(b)) => a.cmp_precedence(&b),
        (Ok(_), Err(_)) => Ordering::Greater,
        (Err(_), Ok(_)) => Ordering::Less,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

impl DeployedModel {
    fn label(&self, version: i32) -> Option<&str> {
        self.versions
            .iter()
            .find(|v| v.version == version)
            .map(|v| v.package_version.as_str())
    }

    /// The oldest `packageVersion` among the folder's deployments of this app.
    pub fn current_version(&self) -> String {
        self.deployments
            .iter()
            .filter_map(|d| self.label(d.version))
            .min_by(|a, b| compare_versions(a, b))
            .unwrap_or_default()
            .to_string()
    }

    /// Published versions newer than the current one, newest first.
    pub fn upgrade_versions(&self) -> Vec<&app_version::Model> {
        let current = self.current_version();
        let mut newer: Vec<&app_version::Model> = self
            .versions
            .iter()
            .filter(|v| {
                v.published && compare_versions(&v.package_version, &current) == Ordering::Greater
            })
            .collect();
        newer.sort_by(|a, b| compare_versions(&b.package_version, &a.package_version));
        newer
    }

    pub fn view(&self, enterprise_id: &str) -> ModelView {
        let upgrade_versions: Vec<String> = self
            .upgrade_versions()
            .iter()
            .map(|v| v.package_version.clone())
            .collect();
        ModelView {
            market_name: self.app.market_name.clone(),
            app_model_id: self.app.system_name.clone(),
            app_model_name: self.app.title.clone(),
            current_version: self.current_version(),
            enterprise_id: enterprise_id.to_string(),
            can_upgrade: !upgrade_versions.is_empty(),
            upgrade_versions,
            source: self.app.source.clone(),
        }
    }
}

/// Checks every requested item before anything changes: the model must be deployed in
/// the folder (and in the named market), the version published and newer than the
/// current one, and each model named once. All problems are reported together.
pub fn plan(
    models: &[DeployedModel],
    requested: &[RequestedUpgrade],
) -> Result<Vec<PlannedUpgrade>, Vec<InvalidItem>> {
    let mut planned = Vec::new();
    let mut invalid = Vec::new();
    // Looked up by name, so the check is linear in the number of items.
    let by_name: HashMap<&str, &DeployedModel> = models
        .iter()
        .map(|m| (m.app.system_name.as_str(), m))
        .collect();
    let mut seen: HashSet<&str> = HashSet::with_capacity(requested.len());
    for item in requested {
        let reject = |reason: String| InvalidItem {
            app_model_id: item.app_model_id.clone(),
            app_model_version: item.app_model_version.clone(),
            reason,
        };
        if !seen.insert(item.app_model_id.as_str()) {
            invalid.push(reject("this app model is named more than once".into()));
            continue;
        }
        let Some(model) = by_name.get(item.app_model_id.as_str()).copied() else {
            invalid.push(reject("no such app model is deployed in this app".into()));
            continue;
        };
        if model.app.market_name != item.market_name {
            invalid.push(reject(format!(
                "the app model comes from market {:?}",
                model.app.market_name
            )));
            continue;
        }
        let target = model
            .upgrade_versions()
            .into_iter()
            .find(|v| v.package_version == item.app_model_version);
        match target {
            Some(version) => planned.push(PlannedUpgrade {
                app_model_id: item.app_model_id.clone(),
                version: version.version,
                deployment_ids: model.deployments.iter().map(|d| d.id.clone()).collect(),
            }),
            None => {
                let published = model
                    .versions
                    .iter()
                    .any(|v| v.published && v.package_version == item.app_model_version);
                invalid.push(reject(if published {
                    format!(
                        "version is not newer than the current version {}",
                        model.current_version()
                    )
                } else {
                    "version is not published".into()
                }));
            }
        }
    }
    if invalid.is_empty() {
        Ok(planned)
    } else {
        Err(invalid)
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn version(n: i32, label: &str, published: bool) -> app_version::Model {
        app_version::Model {
            id: n,
            app_id: 1,
            version: n,
            package_version: label.into(),
            published,
            published_by: "t".into(),
            published_at: Utc::now(),
            unpublished_at: None,
        }
    }

    fn deployment_on(n: i32) -> deployment::Model {
        deployment::Model {
            id: format!("d{n}"),
            tenant_id: "t".into(),
            folder_id: 1,
            app_id: 1,
            version: n,
            title: "x".into(),
            description: String::new(),
            routing_name: format!("r{n}"),
            maintenance_enabled: false,
            maintenance_url: None,
            maintenance_excluded_users: "[]".into(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn model(versions: Vec<app_version::Model>, on: &[i32]) -> DeployedModel {
        DeployedModel {
            app: app::Model {
                id: 1,
                tenant_id: "t".into(),
                system_name: "Portal".into(),
                package_name: "Portal".into(),
                title: "Portal".into(),
                market_name: "local".into(),
                source: "uplift".into(),
                created_at: Utc::now(),
            },
            deployments: on.iter().map(|n| deployment_on(*n)).collect(),
            versions,
        }
    }

    #[test]
    fn upgrade_versions_are_newest_first_by_semver_precedence() {
        // Published in an order unlike their precedence.
        let m = model(
            vec![
                version(1, "1.0.0", true),
                version(2, "1.10.0", true),
                version(3, "1.9.0", true),
                version(4, "2.0.0", true),
                version(5, "1.10.0-rc.1", true),
                version(6, "2.0.0-beta.1", true),
            ],
            &[1],
        );
        let labels: Vec<&str> = m
            .upgrade_versions()
            .iter()
            .map(|v| v.package_version.as_str())
            .collect();
        assert_eq!(
            labels,
            ["2.0.0", "2.0.0-beta.1", "1.10.0", "1.10.0-rc.1", "1.9.0"]
        );
    }

    #[test]
    fn the_current_version_is_the_oldest_deployed_one_and_unpublished_versions_are_never_offered() {
        let m = model(
            vec![
                version(1, "1.0.0", true),
                version(2, "1.1.0", false),
                version(3, "1.2.0", true),
            ],
            &[3, 1, 3],
        );
        assert_eq!(m.current_version(), "1.0.0");
        let view = m.view("acme");
        assert_eq!(view.upgrade_versions, ["1.2.0"]);
        assert!(view.can_upgrade);
        let latest = model(
            vec![version(1, "1.0.0", true), version(2, "1.1.0", true)],
            &[2],
        );
        assert!(!latest.view("acme").can_upgrade);
    }

    #[test]
    fn a_plan_names_every_bad_item_and_plans_nothing_then() {
        let models = [model(
            vec![
                version(1, "1.0.0", true),
                version(2, "1.1.0", true),
                version(3, "1.2.0", false),
            ],
            &[2],
        )];
        let item = |id: &str, v: &str| RequestedUpgrade {
            market_name: "local".into(),
            app_model_id: id.into(),
            app_model_version: v.into(),
        };
        let err = plan(
            &models,
            &[
                item("Nope", "1.0.0"),
                item("Portal", "1.0.0"),
                item("Portal", "1.2.0"),
            ],
        )
        .unwrap_err();
        let reasons: Vec<&str> = err.iter().map(|i| i.reason.as_str()).collect();
        assert_eq!(reasons.len(), 3);
        assert!(reasons[0].contains("no such app model"));
        assert!(reasons[1].contains("not newer"));
        assert!(reasons[2].contains("named more than once"));
        let err = plan(&models, &[item("Portal", "1.0.0")]).unwrap_err();
        assert!(err[0].reason.contains("not newer"), "{err:?}");
        let err = plan(&models, &[item("Portal", "1.2.0")]).unwrap_err();
        assert!(err[0].reason.contains("not published"), "{err:?}");
        let models = [model(
            vec![version(1, "1.0.0", true), version(2, "1.1.0", true)],
            &[1],
        )];
        let ok = plan(&models, &[item("Portal", "1.1.0")]).unwrap();
        assert_eq!(
            ok,
            [PlannedUpgrade {
                app_model_id: "Portal".into(),
                version: 2,
                deployment_ids: vec!["d1".into()]
            }]
        );
    }

    #[test]
    fn semver_precedence_not_segment_text_decides() {
        assert_eq!(compare_versions("1.10.0", "1.9.0"), Ordering::Greater);
        assert_eq!(compare_versions("2.0.0", "2.0.0-beta.1"), Ordering::Greater);
        assert_eq!(
            compare_versions("1.0.0+build.2", "1.0.0+build.1"),
            Ordering::Equal
        );
    }
}
