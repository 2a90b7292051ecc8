//! Durable operations through real HTTP: the bulk call's `Prefer: respond-async`
//! form, operations over ids and selectors, the monitor and its counters, items,
//! cancel, failure budgets, revocation, isolation, idempotent creation and retention.

use chrono::Utc;
use entity::operation;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use serde_json::{Value, json};
use uplift::access::Role;

use crate::client::assert_counters_add_up;
use crate::helpers::{
    ALL_SCOPES, READ_SCOPES, WRITE_SCOPES, seed_deployments, spawn_app, spawn_app_with,
};

/// An operation over a new outdated fleet of `count` in a server whose workers are off,
/// so nothing runs it: the server, the fleet, a token that may edit it, the monitor.
pub(crate) async fn an_operation_no_worker_runs(
    count: usize,
) -> (
    crate::helpers::TestApp,
    crate::fixtures::Fleet,
    String,
    Value,
) {
    let app = spawn_app_with(|s| s.operation_workers = 0).await;
    let fleet = app.outdated_fleet("ci-bot", count).await;
    let token = app.token("ci-bot", WRITE_SCOPES);
    let monitor = app
        .create_operation(&token, &fleet.folder.key, json!({"selector": {}}))
        .accepted()
        .await;
    (app, fleet, token, monitor)
}

fn operation_id(monitor: &Value) -> String {
    monitor["id"].as_str().expect("an operation id").to_string()
}

/// Creates a one-at-a-time operation over `ids` and returns its id once its first item
/// is done (so what the test does next lands mid-run).
pub async fn started_operation(
    app: &crate::helpers::TestApp,
    token: &str,
    folder: &str,
    ids: &[String],
) -> String {
    let created = app.one_at_a_time_operation(token, folder, ids).await;
    let id = operation_id(&created);
    loop {
        let m = app.operation(token, folder, &id).json().await;
        if m["counters"]["updated"].as_u64().unwrap() > 0 {
            return id;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_bulk_call_with_prefer_respond_async_answers_202_with_a_monitor_that_finishes_with_the_usual_answer()
 {
    let app = spawn_app().await;
    let fleet = app.outdated_fleet("ci-bot", 3).await;
    let token = app.token("ci-bot", WRITE_SCOPES);
    let folder = &fleet.folder.key;
    let mut ids = fleet.ids();
    ids.push("no-such-deployment".into());

    let response = app
        .bulk_call(&token, folder, &ids)
        .header("Prefer", "respond-async")
        .send()
        .await;

    assert_eq!(response.status(), 202);
    let headers = response.headers().clone();
    assert_eq!(headers["preference-applied"], "respond-async");
    assert!(headers.contains_key("retry-after"));
    let monitor: Value = response.json().await.unwrap();
    let id = operation_id(&monitor);
    let location = headers["operation-location"].to_str().unwrap();
    assert_eq!(
        location,
        format!("{}/operations/{id}", app.base),
        "an absolute URL of the monitor"
    );
    assert_eq!(monitor["kind"], "upgrade");
    assert_eq!(monitor["folderKey"], folder.as_str());
    assert_eq!(monitor["createdBy"], "ci-bot");
    assert_eq!(monitor["counters"]["total"], 4);
    assert_counters_add_up(&monitor);

    let done = app.finished_operation(&token, folder, &id).await;
    assert_eq!(done["status"], "Failed", "one id does not exist");
    assert_eq!(done["error"]["code"], "items_failed");
    assert_eq!(done["counters"]["updated"], 3);
    assert_eq!(done["counters"]["failed"], 1);
    assert!(done["finishedAt"].is_string() && done["startedAt"].is_string());
    let result = &done["result"];
    assert_eq!(result["failedItems"], json!(["no-such-deployment"]));
    assert_eq!(result["failures"][0]["code"], "not_found");
    let updated: Vec<&str> = result["updatedDeployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        updated,
        fleet.ids().iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(result["updatedDeployments"][0]["version"], 2);
    assert_eq!(result["updatedDeployments"][0]["previousVersion"], 1);

    for d in &fleet.deployments {
        assert_eq!(app.deployment(&d.id).await.version, 2);
        let events = app.events(&d.id).await;
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].operation_id.as_deref(), Some(id.as_str()));
        assert_eq!(events[1].actor, "ci-bot");
    }
    let reader = app.token("ci-bot", ALL_SCOPES);
    let history = app
        .history(&reader, folder, &fleet.ids()[0], "")
        .json()
        .await;
    assert_eq!(history["value"][0]["operationId"], id.as_str());
    assert_eq!(history["value"][1]["operationId"], Value::Null);
}

#[tokio::test]
async fn prefer_wait_answers_the_usual_200_when_the_work_finishes_in_time() {
    let app = spawn_app().await;
    let fleet = app.outdated_fleet("ci-bot", 2).await;
    let token = app.token("ci-bot", WRITE_SCOPES);

    let response = app
        .bulk_call(&token, &fleet.folder.key, &fleet.ids())
        .header("Prefer", "respond-async, wait=20")
        .send()
        .await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["updatedDeployments"].as_array().unwrap().len(), 2);
    assert_eq!(body["failedItems"], json!([]));
    assert_eq!(app.deployment(&fleet.ids()[0]).await.version, 2);
}

#[tokio::test]
async fn an_asynchronous_bulk_call_takes_more_ids_than_a_synchronous_one() {
    let app = spawn_app_with(|s| s.max_bulk_items = 2).await;
    let fleet = app.outdated_fleet("ci-bot", 3).await;
    let token = app.token("ci-bot", WRITE_SCOPES);

    let refused = app
        .bulk_call(&token, &fleet.folder.key, &fleet.ids())
        .problem(400)
        .await;
    assert!(refused["detail"].as_str().unwrap().contains("at most 2"));

    let accepted = app
        .bulk_call(&token, &fleet.folder.key, &fleet.ids())
        .header("Prefer", "respond-async")
        .send()
        .await;
    assert_eq!(accepted.status(), 202);
    let id = operation_id(&accepted.json().await.unwrap());
    let done = app.finished_operation(&token, &fleet.folder.key, &id).await;
    assert_eq!(done["status"], "Succeeded");
    assert!(
        done.get("result").is_none(),
        "more items than a synchronous answer holds: page them at /items"
    );
    let items = app
        .operation_items(&token, &fleet.folder.key, &id, "top=2")
        .json()
        .await;
    assert_eq!(items["count"], 3);
    assert_eq!(items["value"].as_array().unwrap().len(), 2);
    assert_eq!(items["value"][0]["status"], "updated");
    assert_eq!(items["value"][0]["seq"], 1);
    let rest = app
        .operation_items(&token, &fleet.folder.key, &id, "skip=2")
        .json()
        .await;
    assert_eq!(rest["value"][0]["id"], fleet.ids()[2].as_str());
}

#[tokio::test]
async fn a_selector_picks_the_folders_outdated_deployments_with_every_tag_and_nothing_elsewhere() {
    let app = spawn_app().await;
    let fleet = app.outdated_fleet("ci-bot", 3).await;
    let token = app.token("ci-bot", ALL_SCOPES);
    let folder = &fleet.folder;
    let [tagged, current, untagged] = fleet.each();
    app.tag(
        &token,
        &folder.key,
        &[
            (tagged, &["eu", "prod"]),
            (current, &["eu", "prod"]),
            (untagged, &["eu"]),
        ],
    )
    .await;
    // Already on the latest version: not outdated.
    app.bulk_call(&token, &folder.key, std::slice::from_ref(&current.id))
        .ok()
        .await;
    // The same app deployed in a subfolder and in another folder.
    let sub = app.subfolder("Ops/EU", folder).await;
    let in_sub = app.deploy(&sub, &fleet.system_name, 1).await;
    app.edit_deployed(
        &token,
        &sub.key,
        &in_sub.id,
        json!({"tags": ["eu", "prod"]}),
    )
    .ok()
    .await;
    let elsewhere = app
        .granted_folder("Elsewhere", "ci-bot", Role::FolderAdministrator)
        .await;
    let other = app.deploy(&elsewhere, &fleet.system_name, 1).await;

    let selector = |include_subfolders: bool| json!({"selector": {"tags": ["prod", "eu"], "includeSubfolders": include_subfolders}});
    let here = app
        .operation_run_to_the_end(&token, &folder.key, selector(false))
        .await;
    assert_eq!(here["counters"]["total"], 1, "{here}");
    assert_eq!(
        here["result"]["updatedDeployments"][0]["id"],
        tagged.id.as_str()
    );

    let below = app
        .operation_run_to_the_end(&token, &folder.key, selector(true))
        .await;
    assert_eq!(
        below["counters"]["total"], 1,
        "only the subfolder's is still outdated: {below}"
    );
    assert_eq!(
        below["result"]["updatedDeployments"][0]["id"],
        in_sub.id.as_str()
    );
    assert_eq!(app.deployment(&untagged.id).await.version, 1);
    assert_eq!(
        app.deployment(&other.id).await.version,
        1,
        "another folder is never selected"
    );

    let all = app
        .operation_run_to_the_end(
            &token,
            &folder.key,
            json!({"selector": {"onlyOutdated": false, "appSystemNames": [fleet.system_name]}}),
        )
        .await;
    assert_eq!(all["counters"]["total"], 3);
    assert_eq!(all["counters"]["updated"], 1);
    assert_eq!(all["counters"]["unchanged"], 2);
    assert_eq!(all["status"], "Succeeded");
}

#[tokio::test]
async fn an_empty_selection_is_a_finished_operation_with_total_zero_not_an_error() {
    let app = spawn_app().await;
    let fleet = app.fleet().administered_by("ci-bot").await;
    let token = app.token("ci-bot", WRITE_SCOPES);

    let response = app
        .create_operation(
            &token,
            &fleet.folder.key,
            json!({"selector": {"tags": ["none"]}}),
        )
        .send()
        .await;

    assert_eq!(response.status(), 202);
    let monitor: Value = response.json().await.unwrap();
    assert_eq!(monitor["status"], "Succeeded");
    assert_eq!(monitor["counters"]["total"], 0);
    assert_eq!(monitor["result"]["updatedDeployments"], json!([]));
}

#[tokio::test]
async fn the_set_of_items_is_fixed_when_the_operation_is_created() {
    let (app, fleet, token, monitor) = an_operation_no_worker_runs(2).await;
    assert_eq!(
        monitor["status"], "NotStarted",
        "no worker runs on this replica"
    );

    app.deploy(&fleet.folder, &fleet.system_name, 1).await;

    let again = app
        .operation(&token, &fleet.folder.key, &operation_id(&monitor))
        .json()
        .await;
    assert_eq!(again["counters"]["total"], 2);
    assert_eq!(again["counters"]["pending"], 2);
}

#[tokio::test]
async fn the_monitor_keeps_the_request_with_a_count_of_the_listed_ids_instead_of_the_ids() {
    let app = spawn_app_with(|s| s.operation_workers = 0).await;
    let fleet = app.outdated_fleet("ci-bot", 2).await;
    let token = app.token("ci-bot", WRITE_SCOPES);
    let mut listed = fleet.ids();
    listed.push(listed[0].clone());
    let monitor = app
        .create_operation(
            &token,
            &fleet.folder.key,
            json!({"deploymentIds": listed, "maxConcurrency": 2, "maxFailures": "50%"}),
        )
        .accepted()
        .await;
    let request = &monitor["request"];
    assert_eq!(request["deploymentIdCount"], 3, "as listed, duplicates too");
    assert!(request.get("deploymentIds").is_none(), "{request}");
    assert_eq!(request["maxConcurrency"], 2);
    assert_eq!(request["maxFailures"], "50%");
    assert_eq!(request["dryRun"], false);
    assert_eq!(monitor["counters"]["total"], 2, "duplicates once");
}

#[tokio::test]
async fn listed_ids_past_one_insert_statement_are_numbered_in_the_order_given_with_repeats_once() {
    // Far more ids than one insert statement carries (15 KB of them): the seqs run on
    // across statements, an id repeated in a later statement is still left out, and
    // ids spelled otherwise or no ids at all keep their place.
    let app = spawn_app_with(|s| s.operation_workers = 0).await;
    let fleet = app.outdated_fleet("ci-bot", 1).await;
    let token = app.token("ci-bot", WRITE_SCOPES);
    let mut listed: Vec<String> = (1..=4_500u32)
        .map(|n| format!("00000000-0000-4000-8000-{n:012x}"))
        .collect();
    listed.insert(999, "not a deployment id".into());
    listed.insert(1_999, fleet.ids()[0].to_uppercase());
    listed.insert(
        2_999,
        format!("{{{}}}", "00000000-0000-4000-8000-999999999999"),
    );
    listed.push(listed[10].to_uppercase());
    listed.push(listed[2_500].clone());
    listed.push(fleet.ids()[0].clone());
    let monitor = app
        .create_operation(&token, &fleet.folder.key, json!({"deploymentIds": listed}))
        .accepted()
        .await;
    assert_eq!(monitor["counters"]["total"], 4_503);
    assert_eq!(monitor["counters"]["pending"], 4_503);
    let id = operation_id(&monitor);
    for at in [0, 999, 1_999, 2_999, 3_995, 4_502] {
        let page = app
            .operation_items(&token, &fleet.folder.key, &id, &format!("?top=1&skip={at}"))
            .json()
            .await;
        let item = &page["value"][0];
        assert_eq!(item["seq"], at + 1, "{page}");
        assert_eq!(item["id"], listed[at], "{page}");
        assert_eq!(page["count"], 4_503);
    }
    // What a worker will upgrade: the canonical id, or nothing for a non-id.
    let canonical = |seq: i32| {
        let (db, id) = (app.db.clone(), id.clone());
        async move {
            use sea_orm::EntityTrait;
            entity::operation_item::Entity::find_by_id((id, seq))
                .one(&db)
                .await
                .unwrap()
                .unwrap()
                .deployment_id
        }
    };
    assert_eq!(canonical(1).await.as_deref(), Some(listed[0].as_str()));
    assert_eq!(canonical(1_000).await, None);
    assert_eq!(canonical(2_000).await, Some(fleet.ids()[0].clone()));
    assert_eq!(
        canonical(3_000).await.as_deref(),
        Some("00000000-0000-4000-8000-999999999999")
    );
}

#[tokio::test]
async fn bad_operation_requests_are_refused_naming_the_field_and_create_nothing() {
    let app = spawn_app().await;
    let fleet = app.fleet().administered_by("ci-bot").await;
    let token = app.token("ci-bot", WRITE_SCOPES);
    let cases = [
        (json!({}), "deploymentIds or selector"),
        (json!({"deploymentIds": [], "selector": {}}), "not both"),
        (json!({"deploymentIds": "x"}), "deploymentIds"),
        (json!({"selector": {"tags": "eu"}}), "tags"),
        (json!({"deploymentIds": [], "target": "newest"}), "target"),
        (
            json!({"deploymentIds": [], "target": {"version": 0}}),
            "target",
        ),
        (
            json!({"deploymentIds": [], "maxFailures": 0}),
            "maxFailures",
        ),
        (
            json!({"deploymentIds": [], "maxFailures": "150%"}),
            "maxFailures",
        ),
        (
            json!({"deploymentIds": [], "maxConcurrency": 0}),
            "maxConcurrency",
        ),
        (
            json!({"deploymentIds": [], "maxConcurrency": 100000}),
            "maxConcurrency",
        ),
        (json!({"deploymentIds": [], "dryRun": "yes"}), "dryRun"),
        // Each name and tag is a bound parameter: more than one query takes is a 400.
        (
            json!({"selector": {"appSystemNames": vec!["a"; 70_000]}}),
            "appSystemNames",
        ),
        (json!({"selector": {"tags": vec!["t"; 60]}}), "tags"),
        (
            json!({"deploymentIds": ["6f9619ff-8b86-d011-b42d-00c04fc964ff", "x".repeat(257)]}),
            "deploymentIds[1]",
        ),
    ];
    for (body, named) in cases {
        let problem = app
            .create_operation(&token, &fleet.folder.key, body.clone())
            .problem(400)
            .await;
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(named), "{body}: {detail}");
    }
    assert_eq!(
        operation::Entity::find().all(&app.db).await.unwrap().len(),
        0
    );
}

#[tokio::test]
async fn too_many_ids_for_one_operation_are_refused() {
    let app = spawn_app_with(|s| s.max_operation_items = 3).await;
    let fleet = app.fleet().administered_by("ci-bot").deployments(4).await;
    let token = app.token("ci-bot", WRITE_SCOPES);

    let listed = app
        .create_operation(
            &token,
            &fleet.folder.key,
            json!({"deploymentIds": fleet.ids()}),
        )
        .problem(400)
        .await;
    assert!(listed["detail"].as_str().unwrap().contains("at most 3"));
    let selected = app
        .create_operation(
            &token,
            &fleet.folder.key,
            json!({"selector": {"onlyOutdated": false}}),
        )
        .problem(400)
        .await;
    assert!(selected["detail"].as_str().unwrap().contains("matches 4"));
    assert_eq!(
        operation::Entity::find().all(&app.db).await.unwrap().len(),
        0,
        "a refused selector leaves no operation behind"
    );
}

/// Two missing ids first, then `deployments` outdated ones, one at a time under
/// `budget`: the finished monitor, and the first real deployment's version after it.
async fn budget_run(deployments: usize, budget: Value) -> (Value, i32) {
    let app = spawn_app().await;
    let fleet = app.outdated_fleet("ci-bot", deployments).await;
    let token = app.token("ci-bot", WRITE_SCOPES);
    let mut ids = vec!["missing-1".to_string(), "missing-2".to_string()];
    ids.extend(fleet.ids());
    let done = app
        .operation_run_to_the_end(
            &token,
            &fleet.folder.key,
            json!({"deploymentIds": ids, "maxFailures": budget, "maxConcurrency": 1}),
        )
        .await;
    (done, app.deployment(&fleet.ids()[0]).await.version)
}

#[tokio::test]
async fn a_failure_budget_as_a_count_skips_the_items_not_started() {
    let (done, version) = budget_run(3, json!(2)).await;

    assert_eq!(done["status"], "Failed");
    assert_eq!(done["error"]["code"], "failure_budget_exhausted");
    assert_eq!(done["counters"]["failed"], 2);
    assert_eq!(done["counters"]["skipped"], 3);
    assert_eq!(done["result"]["failures"][2]["code"], "skipped");
    assert_eq!(version, 1, "a skipped deployment is untouched");
}

#[tokio::test]
async fn a_failure_budget_as_a_percentage_rounds_up() {
    // 10 items, 10%: one failure spends the budget.
    let (done, version) = budget_run(8, json!("10%")).await;

    assert_eq!(done["error"]["code"], "failure_budget_exhausted", "{done}");
    assert_eq!(done["counters"]["failed"], 1);
    assert_eq!(done["counters"]["skipped"], 9);
    assert_eq!(version, 1);
}

#[tokio::test]
async fn a_dry_run_operation_reports_what_would_change_and_changes_nothing() {
    let app = spawn_app().await;
    let fleet = app.outdated_fleet("ci-bot", 2).await;
    let token = app.token("ci-bot", WRITE_SCOPES);
    let events = app.event_count().await;

    let done = app
        .operation_run_to_the_end(
            &token,
            &fleet.folder.key,
            json!({"selector": {}, "dryRun": true}),
        )
        .await;

    assert_eq!(done["counters"]["updated"], 2);
    assert_eq!(done["result"]["updatedDeployments"][0]["version"], 2);
    assert_eq!(app.deployment(&fleet.ids()[0]).await.version, 1);
    assert_eq!(app.event_count().await, events);
}

#[tokio::test]
async fn cancel_stops_a_running_operation_and_a_finished_one_cannot_be_canceled() {
    let app = spawn_app_with(|s| s.operation_batch_items = 20).await;
    let fleet = app.fleet().administered_by("ci-bot").newer("1.1.0").await;
    let app_id = fleet.published.app.id;
    let ids = seed_deployments(&app.db, &fleet.folder, app_id, 1, 3000).await;
    let token = app.token("ci-bot", WRITE_SCOPES);
    let folder = &fleet.folder.key;

    let id = started_operation(&app, &token, folder, &ids).await;

    let canceled = app.cancel_operation(&token, folder, &id).json().await;

    assert_eq!(canceled["status"], "Canceled");
    assert_counters_add_up(&canceled);
    let counters = &canceled["counters"];
    assert!(counters["canceled"].as_u64().unwrap() > 0, "{canceled}");
    assert_eq!(counters["pending"], 0);
    assert_eq!(counters["running"], 0);
    let updated = counters["updated"].as_u64().unwrap();
    // Nothing more is written once canceled.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let later = app.operation(&token, folder, &id).json().await;
    assert_eq!(later["counters"], canceled["counters"]);
    let upgraded = entity::deployment::Entity::find()
        .filter(entity::deployment::Column::Version.eq(2))
        .all(&app.db)
        .await
        .unwrap()
        .len() as u64;
    assert_eq!(
        upgraded, updated,
        "every updated item, and only those, moved"
    );

    let again = app.cancel_operation(&token, folder, &id).problem(409).await;
    assert!(
        again["detail"]
            .as_str()
            .unwrap()
            .contains("already finished")
    );
}

#[tokio::test]
async fn the_items_call_shows_the_items_a_worker_took_and_has_not_finished_as_running_and_filters_them_so()
 {
    use std::time::{Duration, Instant};
    // Lock waits and leases longer than the test holds the lock.
    let app = spawn_app_with(|s| {
        s.operation_batch_items = 100;
        s.lock_timeout_ms = 90_000;
        s.operation_lease_seconds = 120;
    })
    .await;
    let fleet = app.fleet().administered_by("ci-bot").newer("1.1.0").await;
    let ids = seed_deployments(&app.db, &fleet.folder, fleet.published.app.id, 1, 400).await;
    let token = app.token("ci-bot", WRITE_SCOPES);
    let folder = &fleet.folder.key;
    let id = started_operation(&app, &token, folder, &ids).await;

    // The item in flight waits for the lock; once the counters stop moving, the rest
    // of its batch is taken and not started.
    let blocker = app.hold_deployment_writes(&fleet.folder).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let held = loop {
        let before = app.operation(&token, folder, &id).json().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let after = app.operation(&token, folder, &id).json().await;
        if before["counters"] == after["counters"] {
            break after;
        }
        assert!(Instant::now() < deadline, "still moving: {after}");
    };
    assert_counters_add_up(&held);
    let count = |name: &str| held["counters"][name].as_u64().unwrap();
    let (updated, running, pending) = (count("updated"), count("running"), count("pending"));
    assert!(updated >= 1 && running >= 1 && pending >= 1, "{held}");
    assert_eq!(updated + running + pending, 400, "{held}");

    let seqs_and_statuses = |page: &Value| -> Vec<(u64, String)> {
        page["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["seq"].as_u64().unwrap(),
                    i["status"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    // One at a time, in order: the settled items, then the taken ones, then the rest.
    let taken = app
        .operation_items(&token, folder, &id, "status=running&top=1000")
        .json()
        .await;
    assert_eq!(taken["count"], running);
    let expected: Vec<(u64, String)> = (updated + 1..=updated + running)
        .map(|seq| (seq, "running".to_string()))
        .collect();
    assert_eq!(seqs_and_statuses(&taken), expected);
    let waiting = app
        .operation_items(&token, folder, &id, "status=pending&top=2")
        .json()
        .await;
    assert_eq!(waiting["count"], pending);
    let next = updated + running + 1;
    assert_eq!(
        seqs_and_statuses(&waiting),
        [
            (next, "pending".to_string()),
            (next + 1, "pending".to_string())
        ]
    );
    let boundary = app
        .operation_items(&token, folder, &id, &format!("top=2&skip={}", updated - 1))
        .json()
        .await;
    assert_eq!(boundary["count"], 400);
    assert_eq!(
        seqs_and_statuses(&boundary),
        [
            (updated, "updated".to_string()),
            (updated + 1, "running".to_string())
        ]
    );

    blocker.rollback().await.unwrap();
    let done = app.finished_operation(&token, folder, &id).await;
    assert_eq!(done["status"], "Succeeded", "{done}");
    assert_eq!(done["counters"]["updated"], 400);
    let none = app
        .operation_items(&token, folder, &id, "status=running")
        .json()
        .await;
    assert_eq!(none["count"], 0);
}

#[tokio::test]
async fn revoking_the_creators_grant_stops_the_operation_before_its_next_batch() {
    let app = spawn_app_with(|s| s.operation_batch_items = 10).await;
    let fleet = app.fleet().administered_by("ci-bot").newer("1.1.0").await;
    let ids = seed_deployments(&app.db, &fleet.folder, fleet.published.app.id, 1, 2000).await;
    let token = app.token("ci-bot", WRITE_SCOPES);
    let folder = &fleet.folder.key;

    let created = app.one_at_a_time_operation(&token, folder, &ids).await;
    app.revoke("ci-bot", Role::FolderAdministrator, Some(&fleet.folder))
        .await;
    // The creator can no longer read it; an administrator can.
    app.grant("auditor", Role::FolderAdministrator, Some(&fleet.folder))
        .await;
    let auditor = app.token("auditor", READ_SCOPES);
    let done = app
        .finished_operation(&auditor, folder, &operation_id(&created))
        .await;

    assert_eq!(done["status"], "Failed");
    assert_eq!(done["error"]["code"], "permission_revoked");
    let counters = &done["counters"];
    assert!(counters["skipped"].as_u64().unwrap() > 0, "{done}");
    assert!(counters["updated"].as_u64().unwrap() < 2000);
}

#[tokio::test]
async fn another_folders_or_tenants_operation_answers_exactly_like_a_missing_one() {
    let app = spawn_app().await;
    let fleet = app.fleet().administered_by("ci-bot").newer("1.1.0").await;
    let token = app.token("ci-bot", ALL_SCOPES);
    let created = app
        .create_operation(&token, &fleet.folder.key, json!({"selector": {}}))
        .accepted()
        .await;
    let id = operation_id(&created);
    let (other, outsider) = app.editor_in("Other", "outsider").await;
    let foreign_tenant = app.folder_in("other-tenant", "Theirs").await;
    app.grant("ci-bot", Role::FolderAdministrator, Some(&foreign_tenant))
        .await;

    let missing = uuid::Uuid::new_v4().to_string();
    let detail = |body: Value| {
        body["detail"]
            .as_str()
            .unwrap()
            .replace(&id, "ID")
            .replace(&missing, "ID")
    };
    let reference = detail(
        app.operation(&outsider, &other.key, &missing)
            .problem(404)
            .await,
    );
    for (token, folder) in [(&outsider, &other.key)] {
        let body = app.operation(token, folder, &id).problem(404).await;
        assert_eq!(detail(body), reference);
        let body = app
            .operation_items(token, folder, &id, "")
            .problem(404)
            .await;
        assert_eq!(detail(body), reference);
        let body = app.cancel_operation(token, folder, &id).problem(404).await;
        assert_eq!(detail(body), reference);
    }
    let foreign_token = app.token_for("other-tenant", "ci-bot", ALL_SCOPES);
    let body = app
        .operation(&foreign_token, &foreign_tenant.key, &id)
        .tenant(Some("other-tenant"))
        .problem(404)
        .await;
    assert_eq!(detail(body), reference);
    let listed = app.operations(&outsider, &other.key, "").json().await;
    assert_eq!(listed["count"], 0);
    let mine = app.operations(&token, &fleet.folder.key, "").json().await;
    assert_eq!(mine["count"], 1);
    assert_eq!(mine["value"][0]["id"], id.as_str());
    assert!(
        mine["value"][0].get("result").is_none(),
        "the list leaves results out"
    );
    app.operation(&token, &fleet.folder.key, "not-a-uuid")
        .problem(404)
        .await;
}

#[tokio::test]
async fn reading_needs_apps_view_and_creating_or_canceling_needs_apps_edit() {
    let app = spawn_app().await;
    let fleet = app
        .fleet()
        .administered_by("ci-bot")
        .granted("viewer", Role::AutomationUser)
        .await;
    let token = app.token("ci-bot", ALL_SCOPES);
    let viewer = app.token("viewer", ALL_SCOPES);
    let folder = &fleet.folder.key;
    let created = app
        .create_operation(&token, folder, json!({"selector": {}}))
        .accepted()
        .await;
    let id = operation_id(&created);

    app.operation(&viewer, folder, &id).ok().await;
    app.operations(&viewer, folder, "status=Succeeded")
        .ok()
        .await;
    app.create_operation(&viewer, folder, json!({"selector": {}}))
        .problem(403)
        .await;
    app.cancel_operation(&viewer, folder, &id)
        .problem(403)
        .await;
    let read_only = app.token("ci-bot", READ_SCOPES);
    app.create_operation(&read_only, folder, json!({"selector": {}}))
        .problem(403)
        .await;
}

#[tokio::test]
async fn the_list_filters_by_status_and_pages_newest_first() {
    let app = spawn_app().await;
    let fleet = app.fleet().administered_by("ci-bot").await;
    let token = app.token("ci-bot", ALL_SCOPES);
    let folder = &fleet.folder.key;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let created = app
            .create_operation(&token, folder, json!({"selector": {"tags": ["none"]}}))
            .accepted()
            .await;
        ids.push(operation_id(&created));
    }

    let page = app.operations(&token, folder, "top=2").json().await;
    assert_eq!(page["count"], 3);
    let listed: Vec<&str> = page["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [ids[2].as_str(), ids[1].as_str()]);
    let none = app
        .operations(&token, folder, "status=Running")
        .json()
        .await;
    assert_eq!(none["count"], 0);
    app.operations(&token, folder, "status=Done")
        .problem(400)
        .await;
    app.operations(&token, folder, "top=5000")
        .problem(400)
        .await;
    app.operations(&token, folder, "skip=18446744073709551615")
        .problem(400)
        .await;
}

#[tokio::test]
async fn an_idempotency_key_on_create_returns_the_same_operation_and_refuses_another_body() {
    let app = spawn_app().await;
    let fleet = app.fleet().administered_by("ci-bot").newer("1.1.0").await;
    let token = app.token("ci-bot", WRITE_SCOPES);
    let folder = &fleet.folder.key;
    let body = json!({"deploymentIds": fleet.ids()});

    let first = app
        .create_operation(&token, folder, body.clone())
        .key("op-1")
        .send()
        .await;
    assert_eq!(first.status(), 202);
    let location = first.headers()["operation-location"].clone();
    let first: Value = first.json().await.unwrap();
    let replay = app
        .create_operation(&token, folder, body)
        .key("op-1")
        .send()
        .await;
    assert_eq!(replay.status(), 202);
    assert_eq!(replay.headers()["operation-location"], location);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let replay: Value = replay.json().await.unwrap();
    assert_eq!(replay["id"], first["id"]);
    assert_eq!(
        operation::Entity::find().all(&app.db).await.unwrap().len(),
        1
    );
    app.create_operation(&token, folder, json!({"selector": {}}))
        .key("op-1")
        .problem(422)
        .await;
}

#[tokio::test]
async fn finished_operations_are_purged_after_their_retention() {
    let app = spawn_app_with(|s| s.operation_poll_ms = 50).await;
    let fleet = app.fleet().administered_by("ci-bot").await;
    let token = app.token("ci-bot", WRITE_SCOPES);
    let folder = &fleet.folder.key;
    let created = app
        .create_operation(&token, folder, json!({"selector": {"tags": ["none"]}}))
        .accepted()
        .await;
    let id = operation_id(&created);
    let kept = app
        .create_operation(&token, folder, json!({"selector": {"tags": ["none"]}}))
        .accepted()
        .await;

    operation::Entity::update_many()
        .col_expr(
            operation::Column::FinishedAt,
            Expr::value(Utc::now() - chrono::Duration::days(31)),
        )
        .filter(operation::Column::Id.eq(&id))
        .exec(&app.db)
        .await
        .unwrap();

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let response = app.operation(&token, folder, &id).send().await;
        if response.status() == 404 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never purged");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    app.operation(&token, folder, &operation_id(&kept))
        .ok()
        .await;
}

#[tokio::test]
async fn a_small_operation_is_not_kept_waiting_behind_a_large_one() {
    let app = spawn_app_with(|s| {
        s.operation_workers = 1;
        s.operation_batch_items = 50;
    })
    .await;
    let fleet = app.outdated_fleet("ci-bot", 3).await;
    let large = seed_deployments(&app.db, &fleet.folder, fleet.published.app.id, 1, 4000).await;
    let token = app.token("ci-bot", ALL_SCOPES);
    let folder = &fleet.folder.key;
    let big = started_operation(&app, &token, folder, &large).await;

    let small = app
        .operation_run_to_the_end(&token, folder, json!({"deploymentIds": fleet.ids()}))
        .await;
    let big_now = app.operation(&token, folder, &big).json().await;

    assert_eq!(small["status"], "Succeeded");
    assert!(
        big_now["counters"]["pending"].as_u64().unwrap() > 0,
        "the small one finished while the large one still had work: {big_now}"
    );
    app.cancel_operation(&token, folder, &big).ok().await;
}

#[tokio::test]
async fn operation_metrics_count_items_by_result_and_the_queue_by_status() {
    let app = spawn_app_with(|s| s.operation_poll_ms = 50).await;
    let fleet = app.outdated_fleet("ci-bot", 2).await;
    let token = app.token("ci-bot", ALL_SCOPES);
    let mut ids = fleet.ids();
    ids.push("missing".into());
    let created = app
        .create_operation(&token, &fleet.folder.key, json!({"deploymentIds": ids}))
        .accepted()
        .await;
    app.finished_operation(&token, &fleet.folder.key, &operation_id(&created))
        .await;

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = app.get_path("/metrics").await.text().await.unwrap();
        let has = |line: &str| text.lines().any(|l| l == line);
        if has("uplift_operations{status=\"Failed\"} 1") {
            assert!(
                has("uplift_operation_items_total{result=\"updated\"} 2"),
                "{text}"
            );
            assert!(
                has("uplift_operation_items_total{result=\"failed\"} 1"),
                "{text}"
            );
            assert!(has("uplift_operation_pending_items 0"), "{text}");
            assert!(has("uplift_operation_lease_takeovers_total 0"), "{text}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the gauges were never refreshed: {text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// One number from a query on the test's own database.
async fn count_of(app: &crate::helpers::TestApp, sql: &str) -> i64 {
    row_of(app, sql).await.try_get::<i64>("", "n").unwrap()
}

/// The one row a query on the test's own database answers.
async fn row_of(app: &crate::helpers::TestApp, sql: &str) -> sea_orm::QueryResult {
    use sea_orm::{ConnectionTrait, Statement};
    app.db
        .query_one_raw(Statement::from_string(app.db.get_database_backend(), sql))
        .await
        .unwrap()
        .expect("a row")
}

#[tokio::test]
async fn an_operation_over_100_000_deployments_on_postgresql_finishes_with_exact_counters() {
    if !crate::helpers::is_postgres() {
        return; // 100,000 items through SQLite's one writer is a benchmark, not a test.
    }
    const N: i64 = 100_000;
    let app = spawn_app().await;
    let fleet = app.outdated_fleet("ci-bot", 0).await;
    let (folder, app_id) = (&fleet.folder, fleet.published.app.id);
    use sea_orm::ConnectionTrait;
    // Deployments and their deploy events in one statement: seconds, not minutes.
    app.db
        .execute_unprepared(&format!(
            "WITH d AS (
               INSERT INTO deployments (id, tenant_id, folder_id, app_id, version, title, description,
                   routing_name, maintenance_enabled, maintenance_url, maintenance_excluded_users,
                   created_at, updated_at)
               SELECT gen_random_uuid()::text, '{tenant}', {folder_id}, {app_id}, 1, 'Seeded ' || g, '',
                   'seeded-' || g, false, NULL, '[]', now(), now()
               FROM generate_series(1, {N}) g
               RETURNING id)
             INSERT INTO deployment_events (tenant_id, deployment_id, kind, from_version, to_version,
                 actor, request_id, created_at)
             SELECT '{tenant}', id, 'deploy', NULL, 1, 'seed', NULL, now() FROM d",
            tenant = folder.tenant_id,
            folder_id = folder.id,
        ))
        .await
        .unwrap();
    let token = app.token("ci-bot", WRITE_SCOPES);
    let started = std::time::Instant::now();

    let created = app
        .create_operation(&token, &folder.key, json!({"selector": {}}))
        .accepted()
        .await;
    assert_eq!(created["counters"]["total"], N);
    let id = operation_id(&created);
    // finished_operation gives up after 60 s; a slow CI machine gets longer here.
    let deadline = started + std::time::Duration::from_secs(600);
    let done = loop {
        let monitor = app.operation(&token, &folder.key, &id).json().await;
        assert_counters_add_up(&monitor);
        assert_eq!(monitor["counters"]["total"], N, "total never changes");
        if ["Succeeded", "Failed", "Canceled"].contains(&monitor["status"].as_str().unwrap()) {
            break monitor;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not finished: {monitor}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    eprintln!("{N} items in {:.1} s", started.elapsed().as_secs_f64());

    assert_eq!(done["status"], "Succeeded", "{done}");
    let counters = &done["counters"];
    assert_eq!(counters["total"], N);
    assert_eq!(counters["updated"], N);
    for part in [
        "pending",
        "running",
        "unchanged",
        "failed",
        "skipped",
        "canceled",
    ] {
        assert_eq!(counters[part], 0, "{part}: {done}");
    }
    // Each deployment upgraded exactly once, by this operation, onto version 2.
    assert_eq!(
        count_of(
            &app,
            "SELECT count(*) AS n FROM deployments WHERE version = 2"
        )
        .await,
        N
    );
    assert_eq!(
        count_of(
            &app,
            &format!(
                "SELECT count(*) AS n FROM (SELECT deployment_id FROM deployment_events
                 WHERE kind = 'upgrade' AND from_version = 1 AND to_version = 2 AND operation_id = '{id}'
                 GROUP BY deployment_id HAVING count(*) = 1) once"
            )
        )
        .await,
        N
    );
    assert_eq!(
        count_of(
            &app,
            "SELECT count(*) AS n FROM deployment_events WHERE kind = 'upgrade'"
        )
        .await,
        N,
        "no other upgrade event"
    );
}

#[tokio::test]
async fn on_postgresql_every_items_one_update_stays_on_its_page() {
    if !crate::helpers::is_postgres() {
        return; // SQLite updates rows in place.
    }
    // An update that finds no room on its row's page writes the new version on
    // another page, with a new index entry: more WAL per item, and the next
    // operation's rows scattered among this one's (see the fillfactor migrations).
    // Taking a batch writes nothing to its items, so each item's row is updated once,
    // by its own transaction.
    const N: usize = 2_000;
    let app = spawn_app().await;
    let fleet = app.outdated_fleet("ci-bot", 0).await;
    let ids = seed_deployments(&app.db, &fleet.folder, fleet.published.app.id, 1, N).await;
    let token = app.token("ci-bot", WRITE_SCOPES);

    let done = app
        .operation_run_to_the_end(&token, &fleet.folder.key, json!({"deploymentIds": ids}))
        .await;
    assert_eq!(done["counters"]["updated"], N, "{done}");

    // Each connection reports its counts when it goes idle, within about a second.
    let sql = "SELECT n_tup_upd AS n, n_tup_hot_upd AS hot FROM pg_stat_user_tables \
               WHERE relname = 'operation_items'";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let (updates, hot) = loop {
        let row = row_of(&app, sql).await;
        let (n, hot): (i64, i64) = (
            row.try_get("", "n").unwrap(),
            row.try_get("", "hot").unwrap(),
        );
        if n >= N as i64 || std::time::Instant::now() > deadline {
            break (n, hot);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    // Once each: a claim marks only items an earlier holder took, and there was none.
    assert_eq!(updates, N as i64, "item updates counted");
    assert!(
        hot * 100 >= updates * 98,
        "{hot} of {updates} item updates stayed on their page"
    );
}
