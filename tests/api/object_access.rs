//! Object-level authorisation: for every route that takes an id, another folder's and
//! another tenant's ids get exactly the answer an id that does not exist gets, and
//! nothing of theirs is read or changed.

use reqwest::Method;
use serde_json::{Value, json};
use uplift::access::Role;

use crate::helpers::{ALL_SCOPES, TestApp, spawn_app};

/// Status and body with the id and per-request values blanked, for comparing answers.
async fn normalized(response: reqwest::Response, id: &str) -> (u16, Value) {
    let status = response.status().as_u16();
    let mut body: Value = response.json().await.unwrap_or(Value::Null);
    if let Some(obj) = body.as_object_mut() {
        obj.remove("traceId");
        obj.remove("instance");
    }
    let text = body.to_string().replace(id, "ID");
    (status, serde_json::from_str(&text).unwrap())
}

async fn call(
    app: &TestApp,
    token: &str,
    folder: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let call = app.call(method, path, token, Some(folder));
    match body {
        Some(body) => call.body(body).send().await,
        None => call.send().await,
    }
}

#[tokio::test]
async fn another_folders_or_tenants_deployment_ids_answer_exactly_like_missing_ones_on_every_route()
{
    let app = spawn_app().await;
    let mine = app.folder("Mine").await;
    let sibling = app.folder("Sibling").await;
    app.grant("editor", Role::FolderAdministrator, Some(&mine))
        .await;
    let token = app.token("editor", ALL_SCOPES);
    for v in ["1.0.0", "1.1.0"] {
        app.publish("Portal", v).await;
        app.publish_in("tenant-b", "Portal", v).await;
    }
    let theirs_folder = app.folder_in("tenant-b", "Theirs").await;
    let other_folder = app.deploy(&sibling, "Portal", 1).await;
    let other_tenant = app.deploy(&theirs_folder, "Portal", 1).await;
    let missing = uuid::Uuid::new_v4().to_string();

    let routes: Vec<(Method, &str, Option<Value>)> = vec![
        (
            Method::PATCH,
            "/models/deployed/apps/{id}",
            Some(json!({"title": "taken over", "version": 2})),
        ),
        (Method::GET, "/models/deployed/apps/{id}/history", None),
        (
            Method::POST,
            "/models/deployed/apps/{id}/rollback",
            Some(json!({"version": 2})),
        ),
    ];
    for (method, template, body) in routes {
        let mut answers = Vec::new();
        for id in [&missing, &other_folder.id, &other_tenant.id] {
            let path = template.replace("{id}", id);
            answers.push(
                normalized(
                    call(&app, &token, &mine.key, method.clone(), &path, body.clone()).await,
                    id,
                )
                .await,
            );
        }
        assert_eq!(answers[0].0, 404, "{method} {template}");
        assert_eq!(
            answers[1], answers[0],
            "another folder's id on {method} {template}"
        );
        assert_eq!(
            answers[2], answers[0],
            "another tenant's id on {method} {template}"
        );
    }
    let bulk: Value = app
        .bulk_call(
            &token,
            &mine.key,
            &[
                missing.clone(),
                other_folder.id.clone(),
                other_tenant.id.clone(),
            ],
        )
        .json()
        .await;
    let failures = bulk["failures"].as_array().unwrap();
    assert!(
        failures
            .iter()
            .all(|f| f["code"] == "not_found" && f["message"] == failures[0]["message"]),
        "{bulk}"
    );

    for d in [&other_folder, &other_tenant] {
        let now = app.deployment(&d.id).await;
        assert_eq!(
            (now.version, now.title.as_str()),
            (1, "Portal"),
            "untouched"
        );
        assert_eq!(app.events(&d.id).await.len(), 1, "no event written for it");
    }
}

#[tokio::test]
async fn another_tenants_apps_and_versions_answer_exactly_like_missing_ones() {
    let app = spawn_app().await;
    let folder = app.folder("Mine").await;
    app.grant("admin", Role::Administrator, None).await;
    let token = app.token("admin", ALL_SCOPES);
    app.publish("Ours", "1.0.0").await;
    app.publish_in("tenant-b", "Theirs", "1.0.0").await;
    let tenant = app.tenant.clone();
    let routes: Vec<(Method, String)> = vec![
        (
            Method::GET,
            format!("/models/{{app}}/tenants/{tenant}/publish/versions"),
        ),
        (
            Method::POST,
            "/models/{app}/publish/versions/1/deploy".into(),
        ),
        (Method::DELETE, "/models/{app}/publish/versions/1".into()),
    ];
    for (method, template) in routes {
        let theirs = call(
            &app,
            &token,
            &folder.key,
            method.clone(),
            &template.replace("{app}", "Theirs"),
            None,
        )
        .await;
        let none = call(
            &app,
            &token,
            &folder.key,
            method.clone(),
            &template.replace("{app}", "Nothing"),
            None,
        )
        .await;
        let (theirs, none) = (
            normalized(theirs, "Theirs").await,
            normalized(none, "Nothing").await,
        );
        assert_eq!(theirs.0, 404, "{method} {template}");
        assert_eq!(theirs, none, "{method} {template}");
    }
    let theirs = uplift::service::catalog::find_app(&app.db, "tenant-b", "Theirs")
        .await
        .unwrap()
        .unwrap();
    let versions = uplift::service::catalog::published_versions(&app.db, "tenant-b", "Theirs")
        .await
        .unwrap()
        .unwrap()
        .1;
    assert_eq!(versions.len(), 1, "their version is still published");
    assert_eq!(theirs.system_name, "Theirs");
}
