//! Publishing, the published catalogue and unpublishing.

use reqwest::Method;
use serde_json::{Value, json};
use uplift::access::Role;

use crate::helpers::{
    ALL_SCOPES, READ_SCOPES, TestApp, WRITE_SCOPES, assert_problem, ids, spawn_app,
};

async fn publish(app: &TestApp, token: &str, package: &str, version: &str) -> reqwest::Response {
    app.request(Method::POST, "/models/apps/codedapp/publish", token, None)
        .json(&json!({"packageName": package, "packageVersion": version, "tenantName": "DefaultTenant"}))
        .send()
        .await
        .unwrap()
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
    assert_eq!(
        answers[0],
        json!({"systemName": "Invoice_Portal", "deployVersion": 1})
    );
    assert_eq!(
        answers[1],
        json!({"systemName": "Invoice_Portal", "deployVersion": 2})
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
    let body = assert_problem(
        app.request(Method::POST, "/models/apps/codedapp/publish", &token, None)
            .json(&json!({"packageName": "Portal"}))
            .send()
            .await
            .unwrap(),
        400,
    )
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
    let delete = app
        .request(
            Method::DELETE,
            "/models/Alpha/publish/versions/3",
            &token,
            None,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 204);

    let apps: Value = app
        .request(
            Method::GET,
            &format!("/models/tenants/{}/publish/apps", app.tenant),
            &token,
            None,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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

    let versions: Value = app
        .request(
            Method::GET,
            &format!("/models/Alpha/tenants/{}/publish/versions", app.tenant),
            &token,
            None,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
    let response = app
        .request(
            Method::GET,
            "/models/tenants/other-tenant/publish/apps",
            &token,
            None,
        )
        .send()
        .await
        .unwrap();
    assert_problem(response, 403).await;
    let theirs = app
        .request(
            Method::GET,
            &format!("/models/Gamma/tenants/{}/publish/versions", app.tenant),
            &token,
            None,
        )
        .send()
        .await
        .unwrap();
    let missing = app
        .request(
            Method::GET,
            &format!("/models/Nope/tenants/{}/publish/versions", app.tenant),
            &token,
            None,
        )
        .send()
        .await
        .unwrap();
    let (theirs, missing) = (
        assert_problem(theirs, 404).await,
        assert_problem(missing, 404).await,
    );
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
    let path = format!("/models/tenants/{}/publish/apps", app.tenant);
    let ok = app
        .request(Method::GET, &path, &app.token("viewer", READ_SCOPES), None)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let stranger = app
        .request(
            Method::GET,
            &path,
            &app.token("stranger", READ_SCOPES),
            None,
        )
        .send()
        .await
        .unwrap();
    assert_problem(stranger, 403).await;
    let no_read_scope = app
        .request(Method::GET, &path, &app.token("viewer", WRITE_SCOPES), None)
        .send()
        .await
        .unwrap();
    assert_problem(no_read_scope, 403).await;
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
    assert_problem(
        app.request(
            Method::DELETE,
            "/models/Portal/publish/versions/3",
            &folder_admin_only,
            None,
        )
        .send()
        .await
        .unwrap(),
        403,
    )
    .await;
    let delete = app
        .request(
            Method::DELETE,
            "/models/Portal/publish/versions/3",
            &token,
            None,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 204);
    let again = app
        .request(
            Method::DELETE,
            "/models/Portal/publish/versions/3",
            &token,
            None,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 204, "unpublishing twice is not an error");
    assert_problem(
        app.request(
            Method::DELETE,
            "/models/Portal/publish/versions/9",
            &token,
            None,
        )
        .send()
        .await
        .unwrap(),
        404,
    )
    .await;

    let body = app.bulk_json("admin", &folder.key, &ids(&[&d])).await;
    assert_eq!(body["updatedDeployments"][0]["version"], 2);
    let deploy = app
        .request(
            Method::POST,
            "/models/Portal/publish/versions/3/deploy",
            &token,
            Some(&folder.key),
        )
        .send()
        .await
        .unwrap();
    assert_problem(deploy, 404).await;
}
