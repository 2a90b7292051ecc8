//! `uplift seed --deployments N`: a tenant with one folder, a few apps with three
//! published versions each, and N deployments on older versions (each with its
//! `deploy` event), written in multi-row batches so 100,000 take seconds. For the
//! benchmarks (`bench/run.sh`) and for trying the list call on a realistic size.

use std::time::Duration;

use chrono::Utc;
use entity::{
    deployment,
    deployment_event::{self, EventKind},
    webhook_event,
};
use sea_orm::{DatabaseConnection, EntityTrait, Set, TransactionTrait};
use serde_json::{Value, json};

use crate::{
    access::Role,
    auth::Keys,
    config::Settings,
    outbox::{self, EventType},
    service::{
        Actor,
        catalog::{self, AppDefaults},
        folders, roles,
    },
};

/// Rows per INSERT: well under SQLite's limit of 32,766 bound values (13 columns).
const BATCH: usize = 1000;
/// Words spread over the titles so a `searchText` matches about 1 in 26.
const WORDS: [&str; 26] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliett",
    "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
    "uniform", "victor", "whiskey", "xray", "yankee", "zulu",
];

pub struct Volume {
    pub deployments: usize,
    pub apps: usize,
}

/// Seeds and returns what a benchmark needs to call the API (tenant, folder, token)
/// and the ids, in insertion order.
pub async fn volume(
    db: &DatabaseConnection,
    settings: &Settings,
    keys: &Keys,
    size: &Volume,
) -> anyhow::Result<(Value, Vec<String>)> {
    anyhow::ensure!(size.apps >= 1, "--apps must be at least 1");
    let tenant = format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let actor = Actor::new("uplift-seed", None);
    let folder = folders::create(db, &tenant, "Bench", None, &settings.default_region).await?;
    roles::assign(db, &tenant, "bench-admin", Role::Administrator, None).await?;

    let mut apps = Vec::new();
    for n in 1..=size.apps {
        let package = format!("Bench App {n}");
        let mut published = None;
        for version in ["1.0.0", "1.1.0", "2.0.0"] {
            published = Some(
                catalog::publish(
                    db,
                    &tenant,
                    &package,
                    version,
                    &actor,
                    &AppDefaults::from_settings(settings),
                )
                .await?,
            );
        }
        apps.push(published.expect("three versions were published").app);
    }

    let now = Utc::now();
    let mut ids = Vec::with_capacity(size.deployments);
    for start in (0..size.deployments).step_by(BATCH) {
        let end = (start + BATCH).min(size.deployments);
        let mut rows = Vec::with_capacity(end - start);
        let mut events = Vec::with_capacity(end - start);
        let mut outboxed = Vec::with_capacity(end - start);
        for n in start..end {
            let id = uuid::Uuid::new_v4().hyphenated().to_string();
            let app = &apps[n % apps.len()];
            // Versions 1 and 2 of 3: every deployment has an upgrade waiting.
            let version = 1 + (n / apps.len() % 2) as i32;
            rows.push(deployment::ActiveModel {
                id: Set(id.clone()),
                tenant_id: Set(tenant.clone()),
                folder_id: Set(folder.id),
                app_id: Set(app.id),
                version: Set(version),
                // Each app's deployments cycle through all the words (`n % 26` alone
                // would give app 1 only even words, as `n % 4` and `n % 26` share a
                // factor), so a search hit is spread evenly over the title order.
                title: Set(format!(
                    "{} {} {n:06}",
                    app.title,
                    WORDS[(n / apps.len()) % WORDS.len()]
                )),
                description: Set(String::new()),
                routing_name: Set(format!("bench-{n}-{}", &id[..8])),
                maintenance_enabled: Set(false),
                maintenance_url: Set(None),
                maintenance_excluded_users: Set("[]".into()),
                created_at: Set(now),
                updated_at: Set(now),
            });
            events.push(deployment_event::ActiveModel {
                tenant_id: Set(tenant.clone()),
                deployment_id: Set(id.clone()),
                kind: Set(EventKind::Deploy),
                from_version: Set(None),
                to_version: Set(version),
                actor: Set(actor.subject.clone()),
                request_id: Set(None),
                created_at: Set(now),
                ..Default::default()
            });
            // Their webhook events, like every deploy's (the outbox is written with
            // every deployment event).
            outboxed.push(webhook_event::ActiveModel {
                id: Set(uuid::Uuid::new_v4().to_string()),
                tenant_id: Set(tenant.clone()),
                event_type: Set(EventType::DeploymentDeployed.as_str().to_string()),
                ordering_key: Set(outbox::ordering_key("deployment", &id)),
                deployment_id: Set(Some(id.clone())),
                folder_id: Set(None),
                from_version: Set(None),
                to_version: Set(Some(version)),
                actor: Set(actor.subject.clone()),
                request_id: Set(None),
                operation_id: Set(None),
                data: Set(None),
                created_at: Set(now),
                dispatched: Set(false),
                ..Default::default()
            });
            ids.push(id);
        }
        let txn = db.begin().await?;
        deployment::Entity::insert_many(rows).exec(&txn).await?;
        deployment_event::Entity::insert_many(events)
            .exec(&txn)
            .await?;
        webhook_event::Entity::insert_many(outboxed)
            .exec(&txn)
            .await?;
        txn.commit().await?;
    }

    let token = keys.issue(
        &tenant,
        "bench-admin",
        "Apps OR.Folders.Read",
        // As long as the service accepts: a benchmark may run for hours.
        Duration::from_secs(settings.max_token_lifetime_seconds),
    )?;
    let summary = json!({
        "tenantId": tenant,
        "folderKey": folder.key,
        "folderId": folder.id,
        "token": token,
        "deployments": ids.len(),
        "apps": apps.iter().map(|a| &a.system_name).collect::<Vec<_>>(),
        "latestVersion": 3,
        "searchWords": WORDS.len(),
    });
    Ok((summary, ids))
}
