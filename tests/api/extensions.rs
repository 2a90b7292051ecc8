//! Beyond UiPath: dry run, failure budget, history and rollback.

use serde_json::{Value, json};
use uplift::{access::Role, service::catalog};

use crate::fixtures::failure_codes;
use crate::helpers::{ALL_SCOPES, assert_history_chains, ids, spawn_app, spawn_app_with};

#[tokio::test]
async fn a_dry_run_gives_the_answer_the_real_call_then_gives_and_writes_nothing() {
    let app = spawn_app().await;
    let fleet = app.fleet().administered_by("editor").newer("1.1.0").await;
    let (folder, token) = (&fleet.folder, app.token("editor", ALL_SCOPES));
    let [behind] = fleet.each();
    let current = app.deploy(folder, "Portal", 2).await;
    let orphan_app = app.publish("Orphan", "1.0.0").await;
    let orphan = app.deploy(folder, "Orphan", 1).await;
    catalog::unpublish(&app.db, &app.tenant, &orphan_app.app.system_name, 1)
        .await
        .unwrap();
    let request = vec![
        behind.id.clone(),
        current.id.clone(),
        uuid::Uuid::new_v4().to_string(),
        "junk".into(),
        orphan.id.clone(),
    ];
    let events_before = app.event_count().await;

    let preview = app
        .bulk_call(&token, &folder.key, &request)
        .dry_run()
        .key("dry-key")
        .json()
        .await;
    assert_eq!(
        app.deployment(&behind.id).await.version,
        1,
        "a dry run changes no version"
    );
    assert_eq!(
        app.event_count().await,
        events_before,
        "a dry run writes no event"
    );
    assert_eq!(
        app.idempotency_records().await,
        0,
        "nor an idempotency record"
    );

    let real: Value = app.bulk_call(&token, &folder.key, &request).json().await;
    assert_eq!(preview, real);
    assert_eq!(real["updatedDeployments"][0]["version"], 2);
    assert_eq!(real["updatedDeployments"][0]["previousVersion"], 1);
    assert_eq!(app.deployment(&behind.id).await.version, 2);
}

#[tokio::test]
async fn once_the_failure_budget_is_spent_no_new_item_starts() {
    let app = spawn_app_with(|s| s.upgrade_concurrency = 1).await;
    let fleet = app.outdated_fleet("editor", 2).await;
    let (folder, token) = (&fleet.folder, app.token("editor", ALL_SCOPES));
    let [first, last] = fleet.each();
    let request = vec![
        first.id.clone(),
        "missing-1".into(),
        "missing-2".into(),
        last.id.clone(),
    ];

    let body: Value = app
        .bulk_call(&token, &folder.key, &request)
        .max_failures(1)
        .json()
        .await;
    assert_eq!(body["updatedDeployments"].as_array().unwrap().len(), 1);
    assert_eq!(
        body["failedItems"],
        json!(["missing-1", "missing-2", last.id])
    );
    let codes = failure_codes(&body);
    assert_eq!(codes, ["not_found", "skipped", "skipped"]);
    assert_eq!(
        app.deployment(&last.id).await.version,
        1,
        "a skipped item is not touched"
    );

    let without_budget: Value = app.bulk_call(&token, &folder.key, &request).json().await;
    assert_eq!(
        without_budget["updatedDeployments"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    for bad in ["?maxFailures=0", "?maxFailures=-3", "?dryRun=perhaps"] {
        app.bulk_call(&token, &folder.key, &request)
            .query(bad)
            .problem(400)
            .await;
    }
}

#[tokio::test]
async fn history_lists_each_change_newest_first_with_versions_actor_and_request_id() {
    let app = spawn_app().await;
    let fleet = app
        .fleet()
        .administered_by("editor")
        .newer("1.1.0")
        .newer("1.2.0")
        .await;
    let (folder, token) = (&fleet.folder, app.token("editor", ALL_SCOPES));
    let [d] = fleet.each();
    app.bulk_call(&token, &folder.key, &ids(&[d])).send().await;
    app.edit_deployed(&token, &folder.key, &d.id, json!({"version": 2}))
        .ok()
        .await;
    let back = app.rollback(&token, &folder.key, &d.id, None).json().await;
    assert_eq!(
        back["version"], 3,
        "back to the version before the last change"
    );

    let body: Value = app.history(&token, &folder.key, &d.id, "").json().await;
    assert_eq!(body["@odata.count"], 4);
    let steps: Vec<(Value, Value, Value, Value)> = body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].clone(),
                e["fromVersion"].clone(),
                e["toVersion"].clone(),
                e["toPackageVersion"].clone(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            (json!("rollback"), json!(2), json!(3), json!("1.2.0")),
            (json!("edit"), json!(3), json!(2), json!("1.1.0")),
            (json!("upgrade"), json!(1), json!(3), json!("1.2.0")),
            (json!("deploy"), Value::Null, json!(1), json!("1.0.0")),
        ]
    );
    let newest = &body["value"][0];
    assert_eq!(newest["actor"], "editor");
    assert_eq!(newest["fromPackageVersion"], "1.1.0");
    assert!(newest["requestId"].as_str().is_some_and(|r| !r.is_empty()));
    assert!(newest["createdAt"].as_str().is_some());

    let page: Value = app
        .history(&token, &folder.key, &d.id, "?top=2&skip=1")
        .json()
        .await;
    let kinds: Vec<&str> = page["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["edit", "upgrade"]);
    app.history(&token, &folder.key, &d.id, "?top=5000")
        .problem(400)
        .await;
    app.history(&token, &folder.key, &uuid::Uuid::new_v4().to_string(), "")
        .problem(404)
        .await;
}

#[tokio::test]
async fn rollback_goes_only_to_published_versions_and_refuses_what_it_cannot_do() {
    let app = spawn_app().await;
    let (folder, token) = app.editor_in("Ops", "editor").await;
    let other = app.folder("Other").await;
    app.grant("viewer", Role::AutomationUser, Some(&folder))
        .await;
    for v in ["1.0.0", "1.1.0", "1.2.0"] {
        app.publish("Portal", v).await;
    }
    let fresh = app.deploy(&folder, "Portal", 1).await;
    let d = app.deploy(&folder, "Portal", 3).await;
    let elsewhere = app.deploy(&other, "Portal", 3).await;

    let rollback = |id: &str, body: Option<Value>| app.rollback(&token, &folder.key, id, body);
    let named = rollback(&d.id, Some(json!({"version": 1}))).json().await;
    assert_eq!(
        named,
        json!({"id": d.id, "appSystemName": "Portal", "version": 1, "previousVersion": 3})
    );
    catalog::unpublish(&app.db, &app.tenant, "Portal", 3)
        .await
        .unwrap();
    let to_unpublished = rollback(&d.id, None).problem(400).await;
    assert!(
        to_unpublished["detail"]
            .as_str()
            .unwrap()
            .contains("not published")
    );
    rollback(&fresh.id, None).problem(409).await;
    rollback(&d.id, Some(json!({"version": 0})))
        .problem(400)
        .await;
    rollback(&d.id, Some(json!({"version": "one"})))
        .problem(400)
        .await;
    rollback(&elsewhere.id, Some(json!({"version": 1})))
        .problem(404)
        .await;
    app.rollback(&app.token("viewer", ALL_SCOPES), &folder.key, &d.id, None)
        .problem(403)
        .await;
    assert_eq!(app.deployment(&d.id).await.version, 1);
    assert_eq!(app.deployment(&elsewhere.id).await.version, 3);
    assert_history_chains(&app.db).await;
}

#[tokio::test]
async fn after_a_mixed_workload_every_history_is_an_unbroken_chain_ending_at_the_current_version() {
    let app = spawn_app().await;
    let fleet = app.fleet().administered_by("editor").deployments(6).await;
    let (folder, token) = (&fleet.folder, app.token("editor", ALL_SCOPES));
    let deployments = fleet.ids();
    for round in 0..6u32 {
        app.publish("Portal", &format!("1.{}.0", round + 1)).await;
        if round % 3 == 2 {
            catalog::unpublish(
                &app.db,
                &app.tenant,
                "Portal",
                i32::try_from(round).unwrap() + 1,
            )
            .await
            .unwrap();
        }
        let (a, b, c) = tokio::join!(
            app.bulk_call(&token, &folder.key, &deployments[..4]).send(),
            app.edit_deployed(
                &token,
                &folder.key,
                &deployments[4],
                json!({"version": 1, "title": format!("round {round}")}),
            )
            .send(),
            app.rollback(
                &token,
                &folder.key,
                &deployments[(round as usize) % 4],
                None
            )
            .send(),
        );
        assert_eq!(a.status(), 200);
        assert!(b.status().is_success());
        assert!(
            matches!(c.status().as_u16(), 200 | 400 | 409),
            "{}",
            c.status()
        );
    }
    // The chain check reads the same events the history call shows.
    let events = assert_history_chains(&app.db).await;
    assert!(
        events > deployments.len() * 2,
        "the workload changed versions"
    );
    for id in &deployments {
        let body: Value = app
            .history(&token, &folder.key, id, "?top=1000")
            .json()
            .await;
        let newest_to = &body["value"][0]["toVersion"];
        assert_eq!(newest_to, &json!(app.deployment(id).await.version));
    }
}
