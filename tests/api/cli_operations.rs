//! `uplift upgrade --async` and `uplift operations` through the real binary against a
//! real server: the monitor printed at once, `--wait` ending with the final answer and
//! its exit code, selector flags, list/show/items/cancel, and Ctrl-C while waiting.

use serde_json::{Value, json};
use uplift::access::Role;

use crate::client::assert_counters_add_up;
use crate::helpers::{
    ALL_SCOPES, CliOutput, TestApp, run_cli, seed_deployments, spawn_app, spawn_app_with,
};
use crate::operations::started_operation;

fn json_of(output: &CliOutput) -> Value {
    serde_json::from_str(output.stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {output:?}"))
}

/// The ids a selector picked, sorted (a selection's order is the server's).
fn selected(answer: &Value) -> Vec<String> {
    let mut ids: Vec<String> = updated_ids(answer).into_iter().map(String::from).collect();
    ids.sort();
    ids
}

fn sorted(ids: &[&String]) -> Vec<String> {
    let mut ids: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
    ids.sort();
    ids
}

fn updated_ids(answer: &Value) -> Vec<&str> {
    answer["updatedDeployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect()
}

/// `uplift upgrade ARGS` as `ci-bot` (a token in UPLIFT_TOKEN), with `stdin`.
async fn upgrade(app: &TestApp, folder: &str, args: &[&str], stdin: Option<&str>) -> CliOutput {
    let mut command = app.upgrade_command(folder);
    command
        .args(args)
        .env("UPLIFT_TOKEN", app.token("ci-bot", ALL_SCOPES));
    run_cli(command, stdin).await
}

/// `uplift operations ARGS` as `ci-bot`.
async fn operations(app: &TestApp, folder: &str, args: &[&str]) -> CliOutput {
    let mut command = app.operations_command(folder, args);
    command.env("UPLIFT_TOKEN", app.token("ci-bot", ALL_SCOPES));
    run_cli(command, None).await
}

#[tokio::test]
async fn upgrade_async_prints_the_monitor_at_once_and_passes_its_options_through() {
    let app = spawn_app().await;
    let fleet = app.outdated_fleet("ci-bot", 2).await;
    let folder = &fleet.folder.key;
    let ids = fleet.ids();
    let mut args = vec![
        "--async",
        "--max-failures",
        "50%",
        "--max-concurrency",
        "2",
        "--idempotency-key",
        "run-1",
    ];
    args.extend(ids.iter().map(String::as_str));

    let output = upgrade(&app, folder, &args, None).await;

    assert_eq!(output.code, 0, "{output:?}");
    let monitor = json_of(&output);
    let id = monitor["id"].as_str().unwrap().to_string();
    assert_eq!(monitor["kind"], "upgrade");
    assert_eq!(monitor["counters"]["total"], 2);
    assert_counters_add_up(&monitor);
    assert_eq!(monitor["request"]["maxFailures"], "50%");
    assert_eq!(monitor["request"]["maxConcurrency"], 2);
    assert!(output.stderr.contains(&id), "{}", output.stderr);
    let token = app.token("ci-bot", ALL_SCOPES);
    let done = app.finished_operation(&token, folder, &id).await;
    assert_eq!(done["status"], "Succeeded");
    for id in &ids {
        assert_eq!(app.deployment(id).await.version, 2);
    }

    let again = upgrade(&app, folder, &args, None).await;
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(
        json_of(&again)["id"],
        id.as_str(),
        "the same key, the same operation"
    );
}

#[tokio::test]
async fn upgrade_async_wait_follows_the_operation_and_ends_with_the_final_answer_and_exit_0() {
    let app = spawn_app().await;
    let fleet = app.outdated_fleet("ci-bot", 3).await;
    let ids = fleet.ids();
    let stdin = ids.join("\n");

    let output = upgrade(
        &app,
        &fleet.folder.key,
        &["--async", "--wait"],
        Some(&stdin),
    )
    .await;

    assert_eq!(output.code, 0, "{output:?}");
    let answer = json_of(&output);
    assert_eq!(updated_ids(&answer), ids);
    assert_eq!(answer["failedItems"], json!([]));
    assert_eq!(answer["updatedDeployments"][0]["version"], 2);
    assert_eq!(answer["updatedDeployments"][0]["previousVersion"], 1);
    // Not a terminal: plain progress lines, then the summary.
    assert!(
        output.stderr.contains("uplift: operation "),
        "{}",
        output.stderr
    );
    assert!(output.stderr.contains("Succeeded"), "{}", output.stderr);
    assert!(output.stderr.contains("3 updated"), "{}", output.stderr);
}

#[tokio::test]
async fn upgrade_async_wait_exits_2_when_an_id_does_not_exist() {
    let app = spawn_app().await;
    let fleet = app.outdated_fleet("ci-bot", 2).await;
    let [first, second] = fleet.each();
    let missing = uuid::Uuid::new_v4().to_string();

    let output = upgrade(
        &app,
        &fleet.folder.key,
        &["--async", "--wait", &first.id, &missing, &second.id],
        None,
    )
    .await;

    assert_eq!(output.code, 2, "{output:?}");
    let answer = json_of(&output);
    assert_eq!(answer["failedItems"], json!([missing]));
    assert_eq!(answer["failures"][0]["code"], "not_found");
    assert_eq!(updated_ids(&answer), [&first.id, &second.id]);
    assert!(output.stderr.contains("items_failed"), "{}", output.stderr);
}

#[tokio::test]
async fn an_operation_too_large_for_an_inline_result_ends_with_every_item_paged_from_its_items() {
    let app = spawn_app_with(|s| s.max_bulk_items = 2).await;
    let fleet = app.outdated_fleet("ci-bot", 3).await;
    let ids = fleet.ids();
    let mut args = vec!["--async", "--wait"];
    args.extend(ids.iter().map(String::as_str));

    let output = upgrade(&app, &fleet.folder.key, &args, None).await;

    assert_eq!(output.code, 0, "{output:?}");
    let answer = json_of(&output);
    assert_eq!(updated_ids(&answer), ids);
    assert_eq!(answer["updatedDeployments"][2]["version"], 2);
    assert_eq!(answer["failedItems"], json!([]));
}

#[tokio::test]
async fn the_selector_flags_select_what_the_api_selects() {
    let app = spawn_app().await;
    let fleet = app.outdated_fleet("ci-bot", 3).await;
    let token = app.token("ci-bot", ALL_SCOPES);
    let folder = &fleet.folder;
    let [prod_eu, prod_eu_too, eu_only] = fleet.each();
    app.tag(
        &token,
        &folder.key,
        &[
            (prod_eu, &["eu", "prod"]),
            (prod_eu_too, &["prod", "eu"]),
            (eu_only, &["eu"]),
        ],
    )
    .await;
    let sub = app.subfolder("Ops/EU", folder).await;
    let in_sub = app.deploy(&sub, &fleet.system_name, 1).await;
    let elsewhere = app
        .granted_folder("Elsewhere", "ci-bot", Role::FolderAdministrator)
        .await;
    let other = app.deploy(&elsewhere, &fleet.system_name, 1).await;

    // The API's answer to the same selector, as a dry run.
    let by_api = app
        .create_operation(
            &token,
            &folder.key,
            json!({"selector": {"tags": ["prod", "eu"]}, "dryRun": true}),
        )
        .accepted()
        .await;
    let by_api = app
        .finished_operation(&token, &folder.key, by_api["id"].as_str().unwrap())
        .await;
    let tagged = upgrade(
        &app,
        &folder.key,
        &["--async", "--wait", "--tag", "prod", "--tag", "eu"],
        None,
    )
    .await;
    assert_eq!(tagged.code, 0, "{tagged:?}");
    let tagged = json_of(&tagged);
    assert_eq!(selected(&tagged), sorted(&[&prod_eu.id, &prod_eu_too.id]));
    assert_eq!(selected(&tagged), selected(&by_api["result"]));

    // Everything still outdated, here and below; never another folder.
    let all = upgrade(
        &app,
        &folder.key,
        &["--async", "--wait", "--all", "--include-subfolders"],
        None,
    )
    .await;
    assert_eq!(all.code, 0, "{all:?}");
    assert_eq!(selected(&json_of(&all)), sorted(&[&eu_only.id, &in_sub.id]));
    assert_eq!(app.deployment(&other.id).await.version, 1);

    // Up to date ones too, by app, this folder only: all three, unchanged.
    let by_app = upgrade(
        &app,
        &folder.key,
        &[
            "--async",
            "--wait",
            "--app",
            &fleet.system_name,
            "--include-up-to-date",
        ],
        None,
    )
    .await;
    assert_eq!(by_app.code, 0, "{by_app:?}");
    let by_app = json_of(&by_app);
    assert_eq!(
        selected(&by_app),
        sorted(&fleet.deployments.iter().map(|d| &d.id).collect::<Vec<_>>())
    );
    assert!(
        by_app["updatedDeployments"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["version"] == u["previousVersion"])
    );

    // A selector without --async is a usage error (1), never a guess.
    let refused = upgrade(&app, &folder.key, &["--tag", "eu"], None).await;
    assert_eq!(refused.code, 1, "{refused:?}");
}

#[tokio::test]
async fn operations_list_show_and_items_print_json_and_cancelling_a_finished_one_exits_1() {
    let app = spawn_app().await;
    let fleet = app.outdated_fleet("ci-bot", 2).await;
    let token = app.token("ci-bot", ALL_SCOPES);
    let folder = &fleet.folder.key;
    let created = app
        .create_operation(&token, folder, json!({"deploymentIds": fleet.ids()}))
        .accepted()
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    app.finished_operation(&token, folder, &id).await;

    let list = operations(&app, folder, &["list", "--status", "Succeeded"]).await;
    assert_eq!(list.code, 0, "{list:?}");
    let list = json_of(&list);
    assert_eq!(list["count"], 1);
    assert_eq!(list["value"][0]["id"], id.as_str());
    let none = json_of(&operations(&app, folder, &["list", "--status", "Running"]).await);
    assert_eq!(none["count"], 0);

    let show = operations(&app, folder, &["show", &id]).await;
    assert_eq!(show.code, 0, "{show:?}");
    let monitor = json_of(&show);
    assert_eq!(monitor["status"], "Succeeded");
    assert_eq!(updated_ids(&monitor["result"]), fleet.ids());

    let waited = operations(&app, folder, &["show", &id, "--wait"]).await;
    assert_eq!(waited.code, 0, "{waited:?}");
    assert_eq!(updated_ids(&json_of(&waited)), fleet.ids());

    let items = operations(&app, folder, &["items", &id, "--top", "1", "--skip", "1"]).await;
    assert_eq!(items.code, 0, "{items:?}");
    let items = json_of(&items);
    assert_eq!(items["count"], 2);
    assert_eq!(items["value"][0]["id"], fleet.ids()[1].as_str());

    let cancel = operations(&app, folder, &["cancel", &id]).await;
    assert_eq!(cancel.code, 1, "{cancel:?}");
    assert_eq!(cancel.stdout, "");
    assert!(cancel.stderr.contains("409"), "{}", cancel.stderr);
    assert!(
        cancel.stderr.contains("already finished"),
        "{}",
        cancel.stderr
    );

    let missing = operations(&app, folder, &["show", &uuid::Uuid::new_v4().to_string()]).await;
    assert_eq!(missing.code, 1, "{missing:?}");
    assert!(missing.stderr.contains("404"), "{}", missing.stderr);
}

/// An operation over 3,000 deployments, one at a time: long enough to act on mid-run.
async fn a_long_operation(app: &TestApp) -> (String, String) {
    let fleet = app.fleet().administered_by("ci-bot").newer("1.1.0").await;
    let ids = seed_deployments(&app.db, &fleet.folder, fleet.published.app.id, 1, 3000).await;
    let token = app.token("ci-bot", ALL_SCOPES);
    let folder = fleet.folder.key.clone();
    let id = started_operation(app, &token, &folder, &ids).await;
    (folder, id)
}

#[tokio::test]
async fn operations_cancel_stops_a_running_operation_and_waiting_for_it_then_exits_2() {
    let app = spawn_app_with(|s| s.operation_batch_items = 20).await;
    let (folder, id) = a_long_operation(&app).await;

    let cancel = operations(&app, &folder, &["cancel", &id]).await;

    assert_eq!(cancel.code, 0, "{cancel:?}");
    let monitor = json_of(&cancel);
    assert_eq!(monitor["status"], "Canceled");
    let canceled = monitor["counters"]["canceled"].as_u64().unwrap();
    assert!(canceled > 0, "{monitor}");

    let waited = operations(&app, &folder, &["show", &id, "--wait"]).await;
    assert_eq!(waited.code, 2, "canceled: {waited:?}");
    let answer = json_of(&waited);
    let failed = answer["failedItems"].as_array().unwrap().len() as u64;
    assert_eq!(failed, canceled, "every canceled item is in failedItems");
    assert_eq!(
        answer["updatedDeployments"].as_array().unwrap().len() as u64,
        monitor["counters"]["updated"].as_u64().unwrap()
    );
}

#[tokio::test]
async fn ctrl_c_while_waiting_stops_following_but_not_the_operation_and_prints_its_id() {
    let app = spawn_app_with(|s| s.operation_batch_items = 20).await;
    let (folder, id) = a_long_operation(&app).await;
    let token = app.token("ci-bot", ALL_SCOPES);

    let mut command = app.operations_command(&folder, &["show", &id, "--wait"]);
    command
        .env("UPLIFT_TOKEN", &token)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = command.spawn().unwrap();
    // Long enough for it to have set up its Ctrl-C handler and polled once.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let interrupted = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);

    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(
        stderr.contains(&format!("uplift operations cancel {id}")),
        "{stderr}"
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), "");
    // It goes on on the server.
    let then = app.operation(&token, &folder, &id).json().await;
    assert_ne!(then["status"], "Canceled", "{then}");
    let progressed = |m: &Value| {
        m["status"] == "Succeeded" || m["counters"]["updated"] != then["counters"]["updated"]
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let now = app.operation(&token, &folder, &id).json().await;
        if progressed(&now) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "stuck: {now}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    app.cancel_operation(&token, &folder, &id).send().await;
}
