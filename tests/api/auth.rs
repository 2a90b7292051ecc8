//! The 400/401/403/413 matrix of the bulk call.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::json;
use uplift::access::Role;

use crate::{
    client::{BULK_PATH, Call},
    helpers::{TestApp, WRITE_SCOPES, assert_problem, spawn_app_with},
};

async fn ready_app() -> (TestApp, entity::folder::Model) {
    let app = spawn_app_with(|s| {
        s.max_bulk_items = 3;
        s.max_body_bytes = 2048;
    })
    .await;
    let folder = app
        .granted_folder("Ops", "ci-bot", Role::FolderAdministrator)
        .await;
    (app, folder)
}

fn signed(app: &TestApp, claims: serde_json::Value, secret: &str) -> String {
    let _ = app;
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn bad_requests_get_400_naming_the_problem() {
    let (app, folder) = ready_app().await;
    let token = app.token("ci-bot", WRITE_SCOPES);
    let bulk = |ids: &[String]| app.bulk_call(&token, &folder.key, ids);
    let four: Vec<String> = ["a", "b", "c", "d"].map(String::from).into();

    let cases: Vec<(&str, Call, &str)> = vec![
        (
            "malformed JSON",
            bulk(&[]).raw("application/json", "{\"deploymentIds\": ["),
            "invalid JSON body",
        ),
        ("missing field", bulk(&[]).body(json!({})), "deploymentIds"),
        (
            "wrong type",
            bulk(&[]).body(json!({"deploymentIds": "abc"})),
            "deploymentIds",
        ),
        (
            "wrong item type",
            bulk(&[]).body(json!({"deploymentIds": ["a", 7]})),
            "deploymentIds[1]",
        ),
        ("too many ids", bulk(&four), "at most 3"),
        (
            "missing tenant header",
            bulk(&[]).tenant(None),
            "X-UiPath-Internal-TenantId",
        ),
        (
            "missing folder header",
            app.call(Method::POST, BULK_PATH, &token, None)
                .body(json!({"deploymentIds": []})),
            "X-UiPath-FolderKey",
        ),
        (
            "malformed folder key",
            app.bulk_call(&token, "finance", &[]),
            "X-UiPath-FolderKey",
        ),
    ];
    for (case, call, named) in cases {
        let body = call.problem(400).await;
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.contains(named),
            "{case}: {detail:?} should name {named:?}"
        );
    }
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413() {
    let (app, folder) = ready_app().await;
    let big: Vec<String> = (0..200).map(|i| format!("id-{i:040}")).collect();
    app.bulk_as("ci-bot", &folder.key, &big).problem(413).await;
}

#[tokio::test]
async fn a_body_that_is_not_json_gets_415() {
    let (app, folder) = ready_app().await;
    app.bulk_as("ci-bot", &folder.key, &[])
        .raw("text/plain", "x")
        .problem(415)
        .await;
}

#[tokio::test]
async fn unusable_tokens_get_401_with_an_invalid_token_challenge() {
    let (app, folder) = ready_app().await;
    let now = jsonwebtoken::get_current_timestamp();
    let secret = app.jwt_secret();
    let good_claims = |extra: serde_json::Value| {
        let mut claims = json!({"sub": "ci-bot", "tenant_id": app.tenant, "scope": WRITE_SCOPES, "exp": now + 600});
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        claims
    };
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("not a JWT", Some("Bearer abc.def".into())),
        (
            "wrong scheme",
            Some(format!("Basic {}", app.token("ci-bot", WRITE_SCOPES))),
        ),
        (
            "expired",
            Some(format!(
                "Bearer {}",
                signed(&app, good_claims(json!({"exp": now - 600})), &secret)
            )),
        ),
        (
            "not yet valid",
            Some(format!(
                "Bearer {}",
                signed(&app, good_claims(json!({"nbf": now + 600})), &secret)
            )),
        ),
        (
            "wrong key",
            Some(format!(
                "Bearer {}",
                signed(&app, good_claims(json!({})), &"k".repeat(40))
            )),
        ),
        (
            "no subject",
            Some(format!(
                "Bearer {}",
                signed(
                    &app,
                    json!({"tenant_id": app.tenant, "exp": now + 600}),
                    &secret
                )
            )),
        ),
        (
            "no tenant claim",
            Some(format!(
                "Bearer {}",
                signed(&app, json!({"sub": "ci-bot", "exp": now + 600}), &secret)
            )),
        ),
        (
            "scope of a wrong type",
            Some(format!(
                "Bearer {}",
                signed(&app, good_claims(json!({"scope": {"a": 1}})), &secret)
            )),
        ),
    ];
    for (case, authorization) in cases {
        let response = app
            .bulk_call("", &folder.key, &[])
            .authorization(authorization.as_deref())
            .send()
            .await;
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_string());
        assert_problem(response, 401).await;
        assert!(
            challenge
                .as_deref()
                .is_some_and(|c| c.starts_with("Bearer error=\"invalid_token\"")),
            "{case}: {challenge:?}"
        );
    }
}

#[tokio::test]
async fn a_token_without_the_write_scopes_gets_403_insufficient_scope() {
    let (app, folder) = ready_app().await;
    for scope in ["Apps.Write", "Apps.Read OR.Folders.Read", ""] {
        let response = app
            .bulk_call(&app.token("ci-bot", scope), &folder.key, &[])
            .send()
            .await;
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        assert_problem(response, 403).await;
        assert!(
            challenge.contains("error=\"insufficient_scope\""),
            "{scope:?}: {challenge}"
        );
    }
}

#[tokio::test]
async fn a_token_for_another_tenant_than_the_header_gets_403() {
    let (app, folder) = ready_app().await;
    let token = app.token_for("someone-else", "ci-bot", WRITE_SCOPES);
    app.bulk_call(&token, &folder.key, &[]).problem(403).await;
}

#[tokio::test]
async fn an_unknown_folder_and_a_folder_without_apps_edit_both_get_403() {
    let (app, folder) = ready_app().await;
    app.grant("viewer", Role::AutomationUser, Some(&folder))
        .await;
    let unknown = uuid::Uuid::new_v4().to_string();
    let cases = [
        ("ci-bot", unknown.as_str()),
        ("viewer", folder.key.as_str()),
        ("stranger", folder.key.as_str()),
    ];
    let mut details = Vec::new();
    for (subject, key) in cases {
        let body = app.bulk_as(subject, key, &[]).problem(403).await;
        details.push(body["detail"].clone());
    }
    assert_eq!(
        details[0], details[1],
        "an unknown folder reads like a forbidden one"
    );
}

#[tokio::test]
async fn a_folder_of_another_tenant_is_an_unknown_folder() {
    let (app, _) = ready_app().await;
    let theirs = app.folder_in("other-tenant", "Theirs").await;
    app.grant("ci-bot", Role::Administrator, None).await;
    app.bulk_as("ci-bot", &theirs.key, &[]).problem(403).await;
}
