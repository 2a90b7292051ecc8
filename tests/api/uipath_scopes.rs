//! UiPath's Orchestrator scopes on client applications (issue 13, point 3): UiPath's CI
//! guide registers external applications with `Apps OR.Folders.Read OR.Execution`, and
//! its SDK asks for `OR.Execution`; uplift used to refuse both with `invalid_scope`.
//! They are accepted now and grant nothing beyond uplift's own four scopes.

use serde_json::Value;
use uplift::access::Role;

use crate::{fixtures::client_credentials, helpers::spawn_app};

#[tokio::test]
async fn a_client_registered_as_uipath_s_ci_guide_says_gets_its_token_and_upgrades() {
    let app = spawn_app().await;
    let scope = "Apps OR.Folders.Read OR.Execution";
    let (client_id, secret) = app.create_client("pipeline", scope).await;
    let (folder, deployment) = app.upgradable_deployment(&client_id).await;
    let mut form = client_credentials(&client_id, &secret);
    form.push(("scope", scope));
    let response = app.request_token(&form).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["scope"], scope);
    let token = body["access_token"].as_str().unwrap();
    let answer = app
        .bulk_call(token, &folder.key, std::slice::from_ref(&deployment.id))
        .json()
        .await;
    assert_eq!(answer["updatedDeployments"][0]["version"], 2);
}

#[tokio::test]
async fn orchestrator_scopes_alone_grant_nothing_in_uplift() {
    let app = spawn_app().await;
    let (client_id, secret) = app.create_client("sdk", "OR.Execution OR.Jobs.Read").await;
    let (folder, deployment) = app.upgradable_deployment(&client_id).await;
    app.grant(&client_id, Role::Administrator, None).await;
    let token = app.client_token(&client_id, &secret).await;
    let problem = app
        .bulk_call(&token, &folder.key, std::slice::from_ref(&deployment.id))
        .problem(403)
        .await;
    assert!(
        problem["detail"].as_str().unwrap().contains("Apps"),
        "{problem}"
    );
    app.list_deployed(&token, &folder.key, "")
        .problem(403)
        .await;
    assert_eq!(app.deployment(&deployment.id).await.version, 1);
}

#[tokio::test]
async fn a_scope_that_is_neither_uplift_s_nor_uipath_s_is_still_refused() {
    let app = spawn_app().await;
    for scope in ["Apps OR.Nonsense", "Apps OR.Jobs.Delete", "Apps.Admin"] {
        let refused = uplift::service::clients::create(&app.db, &app.tenant, "x", scope).await;
        let err = refused.expect_err(scope).to_string();
        assert!(err.contains("unknown scope"), "{scope}: {err}");
    }
    // A held client asks for one it does not hold: RFC 6749's invalid_scope.
    let (client_id, secret) = app.create_client("ci", "Apps").await;
    let mut form = client_credentials(&client_id, &secret);
    form.push(("scope", "Apps OR.Execution"));
    let response = app.request_token(&form).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_scope");
}
