//! A keyed request passes every check an unkeyed one does before anything is replayed
//! or stored (issue 20, points 3 and 4): the replay used to happen in the middleware,
//! before the handler's tenant, scope, folder and permission checks, with a
//! fingerprint that left out the tenant and folder headers.

use reqwest::Method;
use serde_json::json;
use uplift::access::Role;

use crate::{
    client::BULK_PATH,
    helpers::{ALL_SCOPES, READ_SCOPES, spawn_app},
};

/// A pipeline that reuses one key per run for staging and production used to get
/// staging's answer replayed for production, and production was never upgraded.
#[tokio::test]
async fn the_same_key_and_body_for_another_folder_is_refused_instead_of_replayed() {
    let app = spawn_app().await;
    let staging = app.folder("Staging").await;
    let production = app.folder("Production").await;
    for folder in [&staging, &production] {
        app.grant("ci", Role::FolderAdministrator, Some(folder))
            .await;
    }
    let published = app.publish("Portal", "1.0.0").await;
    let name = published.app.system_name.clone();
    let in_staging = app.deploy(&staging, &name, 1).await;
    let in_production = app.deploy(&production, &name, 1).await;
    app.publish("Portal", "1.1.0").await;
    let ids = vec![in_staging.id.clone(), in_production.id.clone()];
    let token = app.token("ci", ALL_SCOPES);

    app.bulk_call(&token, &staging.key, &ids)
        .key("run-7")
        .ok()
        .await;
    let problem = app
        .bulk_call(&token, &production.key, &ids)
        .key("run-7")
        .problem(422)
        .await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("Idempotency-Key")
    );
    assert_eq!(app.deployment(&in_production.id).await.version, 1);

    // With its own key the production call runs.
    app.bulk_call(&token, &production.key, &ids)
        .key("run-7-production")
        .ok()
        .await;
    assert_eq!(app.deployment(&in_production.id).await.version, 2);
}

/// A 400 about a missing header used to be stored, so the corrected retry got the same
/// 400 for 24 hours.
#[tokio::test]
async fn a_keyed_call_refused_for_a_header_is_not_stored_and_the_corrected_retry_runs() {
    let app = spawn_app().await;
    let (folder, deployment) = app.upgradable_deployment("ci").await;
    let token = app.token("ci", ALL_SCOPES);
    let ids = std::slice::from_ref(&deployment.id);
    app.call(Method::POST, BULK_PATH, &token, None)
        .body(json!({ "deploymentIds": ids }))
        .key("fix-the-header")
        .problem(400)
        .await;
    app.bulk_call(&token, &folder.key, ids)
        .tenant(None)
        .key("fix-the-header")
        .problem(400)
        .await;
    assert_eq!(app.idempotency_records().await, 0);

    let answer = app
        .bulk_call(&token, &folder.key, ids)
        .key("fix-the-header")
        .json()
        .await;
    assert_eq!(answer["updatedDeployments"][0]["version"], 2);
}

/// After a revocation, with a read-only token, a wrong tenant header or a bare token, a
/// keyed retry used to get its first 200 replayed.
#[tokio::test]
async fn a_keyed_retry_that_would_now_be_refused_is_refused_not_replayed() {
    let app = spawn_app().await;
    let (folder, deployment) = app.upgradable_deployment("ci").await;
    let ids = std::slice::from_ref(&deployment.id);
    let token = app.token("ci", ALL_SCOPES);
    app.bulk_call(&token, &folder.key, ids)
        .key("once")
        .ok()
        .await;

    let read_only = app.token("ci", READ_SCOPES);
    app.bulk_call(&read_only, &folder.key, ids)
        .key("once")
        .problem(403)
        .await;
    app.bulk_call(&token, &folder.key, ids)
        .tenant(Some("another-tenant"))
        .key("once")
        .problem(403)
        .await;
    app.bulk_call(&token, &folder.key, ids)
        .authorization(Some(&token))
        .key("once")
        .problem(401)
        .await;

    app.revoke("ci", Role::FolderAdministrator, Some(&folder))
        .await;
    app.bulk_call(&token, &folder.key, ids)
        .key("once")
        .problem(403)
        .await;
}

/// A replayed error body used to keep the first call's `traceId`, which points at the
/// first call's log lines, not the retry's.
#[tokio::test]
async fn a_replayed_error_carries_the_retry_s_own_trace_id() {
    let app = spawn_app().await;
    let fleet = app.fleet().administered_by("ci").deployments(0).await;
    let (folder, name) = (&fleet.folder, &fleet.system_name);
    let token = app.token("ci", ALL_SCOPES);
    let deploy = || {
        app.deploy_call(&token, &folder.key, name, 1)
            .body(json!({ "title": " " }))
            .key("blank-title")
    };
    let first = deploy()
        .header("X-Request-Id", "first-try")
        .problem(400)
        .await;
    assert_eq!(first["traceId"], "first-try");
    let response = deploy().header("X-Request-Id", "second-try").send().await;
    assert_eq!(response.headers()["idempotent-replayed"], "true");
    let second: serde_json::Value = response.json().await.unwrap();
    assert_eq!(second["traceId"], "second-try");
    assert_eq!(second["detail"], first["detail"]);
}

/// A valid token with no scope and no role used to write a record per key, also for
/// paths that do not exist.
#[tokio::test]
async fn a_token_without_scope_or_role_leaves_no_idempotency_record() {
    let app = spawn_app().await;
    let folder = app.folder("Ops").await;
    let nobody = app.token("nobody", "");
    let roleless = app.token("roleless", ALL_SCOPES);
    let ids = vec![uuid::Uuid::new_v4().to_string()];
    for (n, token) in [&nobody, &roleless].into_iter().enumerate() {
        app.bulk_call(token, &folder.key, &ids)
            .key(&format!("bulk-{n}"))
            .problem(403)
            .await;
        app.publish_call(token, "Portal", "1.0.0")
            .key(&format!("publish-{n}"))
            .problem(403)
            .await;
        app.call(
            Method::POST,
            "/models/no/such/route",
            token,
            Some(&folder.key),
        )
        .key(&format!("nowhere-{n}"))
        .problem(404)
        .await;
    }
    assert_eq!(app.idempotency_records().await, 0);
}
