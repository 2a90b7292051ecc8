//! Two bulk calls over the same deployments at once, while newer versions are published:
//! no lost update, no change without its event, every deployment on a published version.

use std::collections::{HashMap, HashSet};

use entity::{app_version, deployment, deployment_event};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::Value;
use uplift::access::Role;

use crate::helpers::spawn_app;

#[tokio::test]
async fn overlapping_bulk_calls_during_publishes_lose_no_update_and_keep_history_exact() {
    let app = spawn_app().await;
    let folder = app.folder("Ops").await;
    app.grant("ci-a", Role::FolderAdministrator, Some(&folder))
        .await;
    app.grant("ci-b", Role::FolderAdministrator, Some(&folder))
        .await;
    let published = app.publish("Portal", "1.0.0").await;
    let name = published.app.system_name.clone();
    let mut all = Vec::new();
    for _ in 0..200 {
        all.push(app.deploy(&folder, &name, 1).await.id);
    }
    app.publish("Portal", "1.1.0").await;

    let mut reversed = all.clone();
    reversed.reverse();
    let (a, b, ()) = tokio::join!(
        app.bulk_json("ci-a", &folder.key, &all),
        app.bulk_json("ci-b", &folder.key, &reversed),
        async {
            for version in ["1.2.0", "1.3.0", "2.0.0"] {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                app.publish("Portal", version).await;
            }
        }
    );

    // Every failure is a lock conflict (allowed under overlap); nothing else went wrong.
    for answer in [&a, &b] {
        for failure in answer["failures"].as_array().unwrap() {
            assert_eq!(failure["code"], "conflict", "{failure}");
        }
    }
    let reported_changes: usize = [&a, &b]
        .iter()
        .flat_map(|answer| answer["updatedDeployments"].as_array().unwrap())
        .filter(|u| u["version"] != u["previousVersion"])
        .count();

    let published: HashSet<i32> = app_version::Entity::find()
        .filter(app_version::Column::AppId.eq(published.app.id))
        .filter(app_version::Column::Published.eq(true))
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.version)
        .collect();
    let deployments: HashMap<String, i32> = deployment::Entity::find()
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.id, d.version))
        .collect();
    let events = deployment_event::Entity::find()
        .order_by_asc(deployment_event::Column::Id)
        .all(&app.db)
        .await
        .unwrap();
    let mut chains: HashMap<&str, Vec<&deployment_event::Model>> = HashMap::new();
    for event in &events {
        chains
            .entry(event.deployment_id.as_str())
            .or_default()
            .push(event);
    }
    let mut upgrades = 0;
    for id in &all {
        let current = deployments[id];
        assert!(
            published.contains(&current),
            "{id} is on unpublished version {current}"
        );
        let chain = &chains[id.as_str()];
        assert_eq!(chain[0].kind, "deploy");
        for pair in chain.windows(2) {
            assert_eq!(
                pair[1].from_version,
                Some(pair[0].to_version),
                "broken history for {id}"
            );
            assert!(
                pair[1].to_version > pair[0].to_version,
                "an upgrade went backwards for {id}"
            );
        }
        assert_eq!(
            chain.last().unwrap().to_version,
            current,
            "history does not end at the current version"
        );
        upgrades += chain.len() - 1;
    }
    assert_eq!(
        upgrades, reported_changes,
        "each reported change has exactly one event and vice versa"
    );

    // A final call finds everything on the latest version or moves it there.
    let last: Value = app.bulk_json("ci-a", &folder.key, &all).await;
    assert_eq!(last["failedItems"].as_array().unwrap().len(), 0);
    let latest = *published.iter().max().unwrap();
    for u in last["updatedDeployments"].as_array().unwrap() {
        assert_eq!(u["version"], latest);
    }
}

/// CI pipelines publishing versions of one app at the same moment: each gets its own
/// integer version, none an error. (On PostgreSQL the publishers used to race for the
/// next number and give up with a 500 after five lost races; found by a publish storm
/// next to scripts/soak.sh.)
#[tokio::test]
async fn concurrent_publishes_of_one_app_each_get_their_own_version() {
    let app = spawn_app().await;
    app.publish("Portal", "1.0.0").await;
    let actor = uplift::service::Actor::new("publisher", None);
    let defaults = uplift::service::catalog::AppDefaults::default();
    let versions: Vec<String> = (0..16).map(|i| format!("1.1.{i}")).collect();
    let results = futures_util::future::join_all(versions.iter().map(|v| {
        uplift::service::catalog::publish(&app.db, &app.tenant, "Portal", v, &actor, &defaults)
    }))
    .await;
    let mut numbers: Vec<i32> = results
        .into_iter()
        .map(|r| r.expect("a concurrent publish failed").version.version)
        .collect();
    numbers.sort();
    assert_eq!(numbers, (2..=17).collect::<Vec<_>>());
}

/// A deployment of another folder that someone else holds locked is `not_found` for a
/// caller of this folder, like any id outside it: not `conflict`, which would reveal
/// that it exists, and without waiting for (or taking) its lock.
#[tokio::test]
async fn a_locked_deployment_of_another_folder_is_not_found_not_a_conflict() {
    use sea_orm::{QuerySelect, TransactionTrait};
    if !crate::helpers::is_postgres() {
        return; // SQLite has no row locks: a writer holds the whole database
    }
    let app = spawn_app().await;
    let mine = app.folder("Ops").await;
    let theirs = app.folder("Finance").await;
    app.grant("ci-ops", Role::FolderAdministrator, Some(&mine))
        .await;
    let published = app.publish("Portal", "1.0.0").await;
    let other = app.deploy(&theirs, &published.app.system_name, 1).await.id;
    app.publish("Portal", "1.1.0").await;

    let holder = app.db.begin().await.unwrap();
    deployment::Entity::find_by_id(other.clone())
        .lock_exclusive()
        .one(&holder)
        .await
        .unwrap()
        .unwrap();
    let answer = app
        .bulk_json("ci-ops", &mine.key, std::slice::from_ref(&other))
        .await;
    holder.rollback().await.unwrap();
    assert_eq!(answer["failures"][0]["code"], "not_found", "{answer}");
    assert_eq!(app.deployment(&other).await.version, 1);
}
