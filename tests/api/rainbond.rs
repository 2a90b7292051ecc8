//! The Rainbond-compatible upgrade API over the same data and engine.

use serde_json::{Value, json};
use uplift::{access::Role, service::catalog};

use crate::helpers::{ALL_SCOPES, READ_SCOPES, TestApp, ids, spawn_app};

fn url(app: &TestApp, team: &str, region: &str, app_id: impl std::fmt::Display) -> String {
    format!(
        "{}/openapi/v1/teams/{team}/regions/{region}/apps/{app_id}/upgrade",
        app.address
    )
}

async fn get(app: &TestApp, token: &str, folder: &entity::folder::Model) -> reqwest::Response {
    app.client
        .get(url(app, &app.tenant, &folder.region, folder.id))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn post(
    app: &TestApp,
    token: &str,
    folder: &entity::folder::Model,
    items: Value,
) -> reqwest::Response {
    app.client
        .post(url(app, &app.tenant, &folder.region, folder.id))
        .bearer_auth(token)
        .json(&json!({ "update_versions": items }))
        .send()
        .await
        .unwrap()
}

fn item(model: &str, version: &str) -> Value {
    json!({"market_name": "local", "app_model_id": model, "app_model_version": version})
}

async fn setup() -> (TestApp, entity::folder::Model, String) {
    let app = spawn_app().await;
    let (folder, token) = app.editor_in("Group", "editor").await;
    (app, folder, token)
}

#[tokio::test]
async fn the_listing_orders_tricky_versions_by_semver_and_leaves_out_unpublished_ones() {
    let (app, folder, token) = setup().await;
    for v in ["1.0.0", "1.9.0", "1.10.0", "1.10.0-rc.1", "2.0.0", "2.1.0"] {
        app.publish("Portal", v).await;
    }
    catalog::unpublish(&app.db, &app.tenant, "Portal", 6)
        .await
        .unwrap();
    app.deploy(&folder, "Portal", 1).await;
    app.deploy(&folder, "Portal", 3).await;

    let response = get(&app, &token, &folder).await;
    assert_eq!(response.status(), 200);
    let models: Value = response.json().await.unwrap();
    assert_eq!(
        models,
        json!([{
            "market_name": "local",
            "app_model_id": "Portal",
            "app_model_name": "Portal",
            "current_version": "1.0.0",
            "enterprise_id": "acme",
            "can_upgrade": true,
            "upgrade_versions": ["2.0.0", "1.10.0", "1.10.0-rc.1", "1.9.0"],
            "source": "uplift",
        }])
    );
}

#[tokio::test]
async fn an_upgrade_moves_every_deployment_of_the_model_and_agrees_with_the_uipath_list() {
    let (app, folder, token) = setup().await;
    for v in ["1.0.0", "1.9.0", "1.10.0"] {
        app.publish("Portal", v).await;
    }
    app.publish("Other", "0.1.0").await;
    let a = app.deploy(&folder, "Portal", 1).await;
    let b = app.deploy(&folder, "Portal", 2).await;
    let other = app.deploy(&folder, "Other", 1).await;

    let response = post(&app, &token, &folder, json!([item("Portal", "1.9.0")])).await;
    assert_eq!(response.status(), 200);
    let models: Value = response.json().await.unwrap();
    let portal = models
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["app_model_id"] == "Portal")
        .unwrap();
    assert_eq!(portal["current_version"], "1.9.0");
    assert_eq!(portal["upgrade_versions"], json!(["1.10.0"]));
    assert_eq!(app.deployment(&a.id).await.version, 2);
    assert_eq!(
        app.deployment(&b.id).await.version,
        2,
        "already there: unchanged"
    );
    assert_eq!(app.events(&a.id).await.last().unwrap().kind, "upgrade");
    assert_eq!(
        app.events(&b.id).await.len(),
        1,
        "no event when nothing changed"
    );
    assert_eq!(
        app.deployment(&other.id).await.version,
        1,
        "other models are not touched"
    );

    // The UiPath list call sees the same versions, and a GET now agrees with the POST.
    let listed: Value = app.list_deployed(&token, &folder.key, "").json().await;
    let versions: Vec<i64> = listed["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["appSystemName"] == "Portal")
        .map(|d| d["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [2, 2]);
    assert_eq!(
        get(&app, &token, &folder)
            .await
            .json::<Value>()
            .await
            .unwrap(),
        models
    );
}

#[tokio::test]
async fn a_deployment_upgraded_through_the_uipath_bulk_call_shows_upgraded_here() {
    let (app, folder, token) = setup().await;
    app.publish("Portal", "1.0.0").await;
    let d = app.deploy(&folder, "Portal", 1).await;
    app.publish("Portal", "1.1.0").await;
    let before: Value = get(&app, &token, &folder).await.json().await.unwrap();
    assert_eq!(before[0]["can_upgrade"], true);
    app.bulk_json("editor", &folder.key, &ids(&[&d])).await;
    let after: Value = get(&app, &token, &folder).await.json().await.unwrap();
    assert_eq!(after[0]["current_version"], "1.1.0");
    assert_eq!(after[0]["can_upgrade"], false);
    assert_eq!(after[0]["upgrade_versions"], json!([]));
}

#[tokio::test]
async fn bad_items_are_all_named_in_a_400_and_nothing_changes() {
    let (app, folder, token) = setup().await;
    for v in ["1.0.0", "1.1.0", "1.2.0"] {
        app.publish("Portal", v).await;
    }
    catalog::unpublish(&app.db, &app.tenant, "Portal", 3)
        .await
        .unwrap();
    let d = app.deploy(&folder, "Portal", 2).await;
    app.publish("Elsewhere", "1.0.0").await;

    let response = post(
        &app,
        &token,
        &folder,
        json!([
            item("Portal", "1.2.0"),
            item("Portal", "1.0.0"),
            item("Elsewhere", "1.0.0"),
            item("Nope", "9.0.0")
        ]),
    )
    .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], 400);
    assert!(
        body["msg_show"]
            .as_str()
            .unwrap()
            .contains("nothing was upgraded")
    );
    assert_eq!(body["data"]["bean"], json!({}));
    let reasons: Vec<(&str, &str)> = body["data"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["app_model_id"].as_str().unwrap(),
                i["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(reasons.len(), 4, "{body}");
    assert!(reasons[0].1.contains("not published"));
    assert!(reasons[1].1.contains("named more than once"));
    assert!(
        reasons[2].1.contains("no such app model"),
        "deployed elsewhere is not deployed here"
    );
    assert!(reasons[3].1.contains("no such app model"));

    let older = post(&app, &token, &folder, json!([item("Portal", "1.0.0")])).await;
    let older: Value = older.json().await.unwrap();
    assert!(
        older["data"]["list"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("not newer")
    );
    let wrong_market = post(
        &app,
        &token,
        &folder,
        json!([{"market_name": "other", "app_model_id": "Portal", "app_model_version": "1.2.0"}]),
    )
    .await;
    assert_eq!(wrong_market.status(), 400);
    assert_eq!(post(&app, &token, &folder, json!([])).await.status(), 400);
    assert_eq!(app.deployment(&d.id).await.version, 2);
    assert_eq!(app.events(&d.id).await.len(), 1, "nothing changed");
}

#[tokio::test]
async fn errors_use_rainbonds_body_and_the_bare_token_form_is_accepted() {
    let (app, folder, token) = setup().await;
    let bare = app
        .client
        .get(url(&app, &app.tenant, &folder.region, folder.id))
        .header("Authorization", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        bare.status(),
        200,
        "Authorization: <token> without a scheme"
    );
    let anonymous = app
        .client
        .get(url(&app, &app.tenant, &folder.region, folder.id))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(
        anonymous.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    assert_eq!(anonymous.headers()["content-type"], "application/json");
    let body: Value = anonymous.json().await.unwrap();
    assert_eq!(body["code"], 401);
    assert_eq!(body["data"], json!({"bean": {}, "list": []}));
    assert!(body["msg_show"].as_str().unwrap().contains("token"));
    let malformed = app
        .client
        .post(url(&app, &app.tenant, &folder.region, folder.id))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    assert_eq!(malformed.json::<Value>().await.unwrap()["code"], 400);
    let not_a_number = app
        .client
        .get(url(&app, &app.tenant, &folder.region, "abc"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(not_a_number.status(), 400);
    assert_eq!(not_a_number.json::<Value>().await.unwrap()["code"], 400);
}

#[tokio::test]
async fn another_team_region_or_app_reads_like_a_missing_app_and_permissions_apply() {
    let (app, folder, token) = setup().await;
    app.publish("Portal", "1.0.0").await;
    app.deploy(&folder, "Portal", 1).await;
    app.publish("Portal", "1.1.0").await;
    let theirs = app.folder_in("tenant-b", "Theirs").await;
    let sibling = app.folder("Sibling").await;
    let mut details = Vec::new();
    for (region, app_id) in [
        ("default", theirs.id),
        ("elsewhere", folder.id),
        ("default", 999_999),
    ] {
        let response = app
            .client
            .get(url(&app, &app.tenant, region, app_id))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{region}/{app_id}");
        let body: Value = response.json().await.unwrap();
        details.push(
            body["msg_show"]
                .as_str()
                .unwrap()
                .replace(&app_id.to_string(), "ID")
                .replace(region, "R"),
        );
    }
    assert!(details.iter().all(|d| d == &details[0]), "{details:?}");
    let other_team = app
        .client
        .get(url(&app, "tenant-b", "default", theirs.id))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(other_team.status(), 403);
    // No role in the sibling folder; a viewer may list but not upgrade.
    assert_eq!(get(&app, &token, &sibling).await.status(), 403);
    app.grant("viewer", Role::AutomationUser, Some(&folder))
        .await;
    let viewer = app.token("viewer", ALL_SCOPES);
    assert_eq!(get(&app, &viewer, &folder).await.status(), 200);
    assert_eq!(
        post(&app, &viewer, &folder, json!([item("Portal", "1.1.0")]))
            .await
            .status(),
        403
    );
    let read_only = app.token("editor", READ_SCOPES);
    assert_eq!(
        post(&app, &read_only, &folder, json!([item("Portal", "1.1.0")]))
            .await
            .status(),
        403
    );
}

#[tokio::test]
async fn a_deployment_whose_upgrade_fails_is_not_shown_as_upgraded() {
    let (app, folder, token) = setup().await;
    app.publish("Portal", "1.0.0").await;
    let d1 = app.deploy(&folder, "Portal", 1).await;
    let d2 = app.deploy(&folder, "Portal", 1).await;
    app.publish("Portal", "1.1.0").await;
    crate::bulk_upgrade::inject_event_failure(&app, &d2.id).await;
    let response = post(&app, &token, &folder, json!([item("Portal", "1.1.0")])).await;
    assert_eq!(response.status(), 200);
    let models: Value = response.json().await.unwrap();
    assert_eq!(
        models[0]["current_version"], "1.0.0",
        "one deployment is still on 1.0.0"
    );
    assert_eq!(models[0]["can_upgrade"], true);
    assert_eq!(app.deployment(&d1.id).await.version, 2);
    assert_eq!(app.deployment(&d2.id).await.version, 1);
}

#[tokio::test]
async fn an_upgrade_naming_more_items_than_the_bulk_limit_is_refused_and_each_bad_item_is_named_once()
 {
    let (app, folder, token) = setup().await;
    app.publish("Portal", "1.0.0").await;
    app.deploy(&folder, "Portal", 1).await;
    let limit = app.settings.max_bulk_items;

    let too_many: Vec<Value> = (0..=limit)
        .map(|i| item(&format!("M{i}"), "1.0.0"))
        .collect();
    let response = post(&app, &token, &folder, Value::Array(too_many)).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    let message = body["msg_show"].as_str().unwrap();
    assert!(message.contains(&format!("at most {limit}")), "{body}");
    assert_eq!(body["data"]["list"], json!([]));

    let bad: Vec<Value> = (0..limit)
        .map(|i| item(&format!("Missing{i}"), "1.0.0"))
        .collect();
    let started = std::time::Instant::now();
    let response = post(&app, &token, &folder, Value::Array(bad)).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(response.status(), 400);
    let text = response.text().await.unwrap();
    assert_eq!(
        text.matches("\"Missing7\"").count(),
        1,
        "each bad item appears once: {text}"
    );
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["data"]["list"].as_array().unwrap().len(), limit);
    assert!(!body["msg_show"].as_str().unwrap().contains("Missing"));
}
