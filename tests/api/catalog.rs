//! Publishing, the published catalogue and unpublishing.

use reqwest::Method;
use serde_json::{Value, json};
use uplift::access::Role;

use crate::helpers::{
    ALL_SCOPES, READ_SCOPES, TestApp, WRITE_SCOPES, assert_problem, ids, spawn_app,
};

async fn publish(app: &TestApp, token: &str, package: &str, version: &str) -> reqwest::Response {
    app.publish_call(token, package, version)
        .field("tenantName", "DefaultTenant")
        .send()
        .await
}

async fn admin(app: &TestApp) -> String {
    app.grant("admin", Role::Administrator, None).await;
    app.token("admin", ALL_SCOPES)
}

#[tokio::test]
async fn publishing_numbers_versions_in_publish_order_and_a_repeat_returns_the_first_answer() {
    let app = spawn_app().await;
    let token = admin(&app).await;
    let mut answers = Vec::new();
    for version in ["1.0.0", "1.1.0", "1.0.0", "2.0.0-beta.1"] {
        let response = publish(&app, &token, "Invoice Portal", version).await;
        assert_eq!(response.status(), 200);
        answers.push(response.json::<Value>().await.unwrap());
    }
    let definition = |version: &str, deploy_version: i32| {
        json!({
            "systemName": "Invoice_Portal",
            "title": "Invoice Portal",
            "packageName": "Invoice Portal",
            "packageVersion": version,
            "deployVersion": deploy_version,
        })
    };
    assert_eq!(
        answers[0],
        json!({"systemName": "Invoice_Portal", "deployVersion": 1, "definition": definition("1.0.0", 1)})
    );
    assert_eq!(
        answers[1],
        json!({"systemName": "Invoice_Portal", "deployVersion": 2, "definition": definition("1.1.0", 2)})
    );
    assert_eq!(answers[2], answers[0], "publishing 1.0.0 again is a no-op");
    assert_eq!(answers[3]["deployVersion"], 3);
}

#[tokio::test]
async fn a_package_version_that_is_not_semver_is_a_400_naming_it() {
    let app = spawn_app().await;
    let token = admin(&app).await;
    for bad in ["1.0", "v1.0.0", "latest", ""] {
        let body = assert_problem(publish(&app, &token, "Portal", bad).await, 400).await;
        assert!(
            body["detail"].as_str().unwrap().contains("packageVersion"),
            "{bad}: {body}"
        );
    }
    let body = app
        .call(Method::POST, "/models/apps/codedapp/publish", &token, None)
        .body(json!({"packageName": "Portal"}))
        .problem(400)
        .await;
    assert!(body["detail"].as_str().unwrap().contains("packageVersion"));
}

#[tokio::test]
async fn publishing_needs_app_versions_create_granted_tenant_wide_and_a_write_scope() {
    let app = spawn_app().await;
    let folder = app.folder("Ops").await;
    app.grant("folder-admin", Role::FolderAdministrator, Some(&folder))
        .await;
    app.grant("admin", Role::Administrator, None).await;
    assert_problem(
        publish(&app, &app.token("folder-admin", ALL_SCOPES), "P", "1.0.0").await,
        403,
    )
    .await;
    assert_problem(
        publish(&app, &app.token("admin", READ_SCOPES), "P", "1.0.0").await,
        403,
    )
    .await;
    assert_eq!(
        publish(&app, &app.token("admin", "Apps.Write"), "P", "1.0.0")
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn the_catalogue_lists_latest_published_versions_and_versions_newest_first() {
    let app = spawn_app().await;
    let token = admin(&app).await;
    for (package, version) in [
        ("Alpha", "1.0.0"),
        ("Alpha", "1.1.0"),
        ("Beta", "0.1.0"),
        ("Alpha", "1.2.0"),
    ] {
        publish(&app, &token, package, version).await;
    }
    app.publish_in("other-tenant", "Gamma", "1.0.0").await;
    let delete = app.unpublish_call(&token, "Alpha", 3).send().await;
    assert_eq!(delete.status(), 204);

    let apps = app.catalog_apps(&token, &app.tenant).json().await;
    assert_eq!(apps["@odata.count"], 2, "another tenant's app is invisible");
    let summary: Vec<(Value, Value)> = apps["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["systemName"].clone(), a["deployVersion"].clone()))
        .collect();
    assert_eq!(
        summary,
        [(json!("Alpha"), json!(2)), (json!("Beta"), json!(1))]
    );
    assert_eq!(apps["value"][0]["title"], "Alpha");

    let versions = app
        .catalog_versions(&token, "Alpha", &app.tenant)
        .json()
        .await;
    let listed: Vec<(Value, Value)> = versions["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["deployVersion"].clone(), v["packageVersion"].clone()))
        .collect();
    assert_eq!(
        listed,
        [(json!(2), json!("1.1.0")), (json!(1), json!("1.0.0"))]
    );
    assert_eq!(versions["value"][0]["publishedBy"], "admin");
    assert!(versions["value"][0]["publishedAt"].as_str().is_some());
}

#[tokio::test]
async fn another_tenants_catalogue_is_refused_and_its_apps_read_like_missing_ones() {
    let app = spawn_app().await;
    let token = admin(&app).await;
    app.publish_in("other-tenant", "Gamma", "1.0.0").await;
    app.catalog_apps(&token, "other-tenant").problem(403).await;
    let theirs = app
        .catalog_versions(&token, "Gamma", &app.tenant)
        .problem(404)
        .await;
    let missing = app
        .catalog_versions(&token, "Nope", &app.tenant)
        .problem(404)
        .await;
    assert_eq!(
        theirs["detail"].as_str().unwrap().replace("Gamma", "X"),
        missing["detail"].as_str().unwrap().replace("Nope", "X")
    );
}

#[tokio::test]
async fn a_folder_role_may_read_the_catalogue_but_a_stranger_may_not() {
    let app = spawn_app().await;
    let folder = app.folder("Ops").await;
    app.grant("viewer", Role::AutomationUser, Some(&folder))
        .await;
    let catalogue =
        |subject: &str, scopes: &str| app.catalog_apps(&app.token(subject, scopes), &app.tenant);
    catalogue("viewer", READ_SCOPES).ok().await;
    catalogue("stranger", READ_SCOPES).problem(403).await;
    catalogue("viewer", WRITE_SCOPES).problem(403).await;
}

#[tokio::test]
async fn an_unpublished_version_is_never_the_upgrade_target_nor_deployable() {
    let app = spawn_app().await;
    let token = admin(&app).await;
    let folder = app.folder("Ops").await;
    for v in ["1.0.0", "1.1.0", "1.2.0"] {
        publish(&app, &token, "Portal", v).await;
    }
    let d = app.deploy(&folder, "Portal", 1).await;
    let folder_admin_only = app.token("folder-admin", ALL_SCOPES);
    app.grant("folder-admin", Role::FolderAdministrator, Some(&folder))
        .await;
    app.unpublish_call(&folder_admin_only, "Portal", 3)
        .problem(403)
        .await;
    let delete = app.unpublish_call(&token, "Portal", 3).send().await;
    assert_eq!(delete.status(), 204);
    let again = app.unpublish_call(&token, "Portal", 3).send().await;
    assert_eq!(again.status(), 204, "unpublishing twice is not an error");
    app.unpublish_call(&token, "Portal", 9).problem(404).await;

    let body = app.bulk_json("admin", &folder.key, &ids(&[&d])).await;
    assert_eq!(body["updatedDeployments"][0]["version"], 2);
    app.deploy_call(&token, &folder.key, "Portal", 3)
        .problem(404)
        .await;
}
