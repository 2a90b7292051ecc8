//! Two bulk calls over the same deployments at once, while newer versions are published:
//! no lost update, no change without its event, every deployment on a published version.

use std::collections::{HashMap, HashSet};

use entity::{app_version, deployment, deployment_event};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};
use uplift::access::Role;

use crate::helpers::{is_postgres, spawn_app, spawn_app_with};

#[tokio::test]
async fn overlapping_bulk_calls_during_publishes_lose_no_update_and_keep_history_exact() {
    let app = spawn_app().await;
    let fleet = app
        .fleet()
        .administered_by("ci-a")
        .administered_by("ci-b")
        .deployments(200)
        .newer("1.1.0")
        .await;
    let (folder, published, all) = (&fleet.folder, &fleet.published, fleet.ids());

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
/// that it exists, and without waiting for (or taking) its lock. On PostgreSQL the
/// holder locks that one row; SQLite has no row locks, so there the holder takes the
/// database's write lock, which every write waits for.
#[tokio::test]
async fn a_locked_deployment_of_another_folder_is_not_found_not_a_conflict() {
    use sea_orm::{ConnectionTrait, QuerySelect, TransactionTrait};
    let app = spawn_app_with(|s| s.lock_timeout_ms = 300).await;
    let mine = app.folder("Ops").await;
    let theirs = app.folder("Finance").await;
    app.grant("ci-ops", Role::FolderAdministrator, Some(&mine))
        .await;
    let published = app.publish("Portal", "1.0.0").await;
    let other = app.deploy(&theirs, &published.app.system_name, 1).await.id;
    app.publish("Portal", "1.1.0").await;
    let missing = uuid::Uuid::new_v4().to_string();

    let holder = if is_postgres() {
        let holder = app.db.begin().await.unwrap();
        deployment::Entity::find_by_id(other.clone())
            .lock_exclusive()
            .one(&holder)
            .await
            .unwrap()
            .unwrap();
        holder
    } else {
        let holder = uplift::db::begin_write(&app.db).await.unwrap();
        holder
            .execute_unprepared("UPDATE folders SET name = name WHERE id = 0")
            .await
            .unwrap();
        holder
    };
    let request = [other.clone(), missing.clone()];
    let while_held = app.bulk_json("ci-ops", &mine.key, &request).await;
    holder.rollback().await.unwrap();
    let after = app.bulk_json("ci-ops", &mine.key, &request).await;

    // Held or not, the other folder's deployment gets exactly the answer of an id that
    // does not exist.
    for answer in [&while_held, &after] {
        assert_eq!(answer["updatedDeployments"], json!([]), "{answer}");
        assert_eq!(answer["failedItems"], json!(request), "{answer}");
        let failures = answer["failures"].as_array().unwrap();
        assert_eq!(
            failures[0]["code"], failures[1]["code"],
            "the locked deployment reads like an id that does not exist: {answer}"
        );
        assert_eq!(
            failures[0]["message"], failures[1]["message"],
            "the locked deployment reads like an id that does not exist: {answer}"
        );
    }
    assert_eq!(after["failures"][0]["code"], "not_found", "{after}");
    let held_code = &while_held["failures"][0]["code"];
    if is_postgres() {
        // A row lock elsewhere is neither waited for nor reported.
        assert_eq!(held_code, "not_found", "{while_held}");
    } else if held_code == "conflict" {
        // SQLite: a held write lock makes every item a conflict, an unknown id too, so
        // nothing is revealed; that a row lock is not even waited for needs PostgreSQL.
        eprintln!(
            "a_locked_deployment_of_another_folder_is_not_found_not_a_conflict: on SQLite \
             every item is a conflict while a writer holds the database; the not_found \
             answer under a row lock is checked on PostgreSQL (UPLIFT_TEST_POSTGRES_URL)"
        );
    } else {
        assert_eq!(held_code, "not_found", "{while_held}");
    }
    assert_eq!(app.deployment(&other).await.version, 1, "left unchanged");
    assert_eq!(app.events(&other).await.len(), 1, "no event written for it");
}

/// Found by scripts/chaos.py: a replica paused (SIGSTOP) inside a transaction past
/// PostgreSQL's idle-in-transaction timeout found its session ended on resuming and
/// answered 500. A session the server ends under a request (that timeout, a shutdown,
/// `pg_terminate_backend`) commits nothing: it is a 503 to retry, like a database
/// that cannot be reached. Here the server ends the session of a PATCH waiting for a
/// row lock. SQLite has no server to end a session: PostgreSQL only.
#[tokio::test]
async fn a_request_whose_database_session_the_server_ends_is_a_503_to_retry_not_a_500() {
    use sea_orm::{ConnectionTrait, QuerySelect, Statement, TransactionTrait};
    if !is_postgres() {
        eprintln!(
            "a_request_whose_database_session_the_server_ends_is_a_503_to_retry_not_a_500: \
             needs PostgreSQL (UPLIFT_TEST_POSTGRES_URL)"
        );
        return;
    }
    let app = spawn_app_with(|s| s.lock_timeout_ms = 20_000).await;
    let folder = app.folder("Ops").await;
    app.grant("ci-ops", Role::FolderAdministrator, Some(&folder))
        .await;
    let published = app.publish("Portal", "1.0.0").await;
    let deployed = app.deploy(&folder, &published.app.system_name, 1).await;
    let (id, title) = (deployed.id, deployed.title);
    let holder = app.db.begin().await.unwrap();
    deployment::Entity::find_by_id(id.clone())
        .lock_exclusive()
        .one(&holder)
        .await
        .unwrap()
        .unwrap();
    let token = app.token("ci-ops", crate::helpers::ALL_SCOPES);

    let edit = app.edit_deployed(&token, &folder.key, &id, json!({"title": "Renamed"}));
    let terminate = async {
        // The PATCH's session, waiting for the holder's lock: ended by the server.
        for _ in 0..200 {
            let ended = app
                .db
                .query_one_raw(Statement::from_string(
                    app.db.get_database_backend(),
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                     WHERE datname = current_database() AND wait_event_type = 'Lock' \
                     AND pid <> pg_backend_pid()",
                ))
                .await
                .unwrap()
                .unwrap()
                .try_get_by_index::<i64>(0)
                .unwrap();
            if ended > 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("the PATCH never waited for the lock");
    };
    let (answer, ()) = tokio::join!(edit.expect(503), terminate);
    let problem: Value = answer.json().await.unwrap();
    assert_eq!(
        problem["type"], "urn:uplift:problem:unavailable",
        "{problem}"
    );
    holder.rollback().await.unwrap();

    assert_eq!(
        app.deployment(&id).await.title,
        title,
        "nothing of the PATCH was kept"
    );
    app.edit_deployed(&token, &folder.key, &id, json!({"title": "Renamed"}))
        .expect(200)
        .await;
}
