//! `uplift seed --demo`: a demo tenant with folders, grants, apps and deployments on
//! older versions, and ready-made tokens, so every call can be tried in a minute.

use std::time::Duration;

use sea_orm::DatabaseConnection;
use serde_json::{Value, json};

use crate::{
    access::Role,
    auth::Keys,
    config::Settings,
    service::{
        Actor,
        catalog::{self, AppDefaults},
        deployments::{self, DeployOptions},
        folders, roles,
    },
};

const APPS: [(&str, &[&str]); 3] = [
    ("HR Portal", &["1.0.0", "1.1.0", "1.2.0"]),
    ("Expense Tracker", &["0.9.0", "1.0.0"]),
    ("Inventory", &["2.0.0", "2.1.0", "3.0.0"]),
];

pub async fn demo(
    db: &DatabaseConnection,
    settings: &Settings,
    keys: &Keys,
) -> anyhow::Result<Value> {
    let tenant = format!("demo-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let actor = Actor::new("uplift-seed", None);
    let region = settings.default_region.as_str();
    let operations = folders::create(db, &tenant, "Operations", None, region).await?;
    let payroll = folders::create(db, &tenant, "Payroll", Some(&operations.key), region).await?;
    roles::assign(db, &tenant, "demo-admin", Role::Administrator, None).await?;
    roles::assign(
        db,
        &tenant,
        "demo-editor",
        Role::FolderAdministrator,
        Some(&operations.key),
    )
    .await?;
    roles::assign(
        db,
        &tenant,
        "demo-viewer",
        Role::AutomationUser,
        Some(&operations.key),
    )
    .await?;

    let mut apps = Vec::new();
    let mut deployment_ids = Vec::new();
    for (package, versions) in APPS {
        let mut system_name = String::new();
        for version in versions {
            let published = catalog::publish(
                db,
                &tenant,
                package,
                version,
                &actor,
                &AppDefaults::from_settings(settings),
            )
            .await?;
            system_name = published.app.system_name;
        }
        // Two deployments per folder, all on the first version, so there is work to do.
        for folder in [&operations, &payroll] {
            for _ in 0..2 {
                let d = deployments::deploy(
                    db,
                    folder,
                    &system_name,
                    1,
                    DeployOptions::default(),
                    &actor,
                )
                .await?;
                deployment_ids.push(json!({"id": d.id, "folderKey": folder.key, "appSystemName": system_name, "version": 1}));
            }
        }
        apps.push(json!({"systemName": system_name, "packageName": package, "versions": versions}));
    }

    let ttl = Duration::from_secs(settings.token_ttl_seconds);
    let token = |subject: &str, scope: &str| keys.issue(&tenant, subject, scope, ttl);
    Ok(json!({
        "tenantId": tenant,
        "baseUrl": format!("http://{}{}", settings.listen.replace("0.0.0.0", "127.0.0.1"), settings.uipath_base_path()),
        "folders": {
            "operations": {"key": operations.key, "id": operations.id},
            "payroll": {"key": payroll.key, "id": payroll.id, "parentKey": operations.key},
        },
        "apps": apps,
        "deployments": deployment_ids,
        "tokens": {
            "administrator": token("demo-admin", "Apps OR.Folders.Read")?,
            "folderEditor": token("demo-editor", "Apps OR.Folders.Read")?,
            "viewer": token("demo-viewer", "Apps.Read OR.Folders.Read")?,
        },
    }))
}
