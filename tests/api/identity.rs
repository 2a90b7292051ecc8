//! Client applications, the token endpoint, the JWKS route and the `uplift upgrade`
//! pipeline command.

use std::time::Instant;

use base64::Engine;
use entity::deployment;
use reqwest::Response;
use serde_json::{Value, json};
use uplift::{access::Role, auth::Keys, config::Settings, service::clients};

use crate::fixtures::client_credentials;
use crate::helpers::{
    ALL_SCOPES, TestApp, assert_problem, ec_key_pair, ids, rsa_key_pair, run_cli, spawn_app,
    spawn_app_with,
};

/// An app with a folder, one app at version 1 deployed twice, and version 2 published.
async fn app_with_upgradable_deployments()
-> (TestApp, entity::folder::Model, Vec<deployment::Model>) {
    let app = spawn_app().await;
    let fleet = app.fleet().deployments(2).newer("1.1.0").await;
    (app, fleet.folder, fleet.deployments)
}

/// Asserts an RFC 6749 §5.2 error answer and returns its body.
async fn assert_oauth_error(response: Response, status: u16, error: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "unexpected status");
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["cache-control"], "no-store");
    if status == 401 {
        assert_eq!(headers["www-authenticate"], "Basic realm=\"uplift\"");
    }
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    body
}

#[tokio::test]
async fn a_client_created_on_the_command_line_gets_a_token_that_upgrades_once_its_id_holds_a_role()
{
    let (app, folder, deployments) = app_with_upgradable_deployments().await;

    let created = app
        .uplift(&[
            "client",
            "create",
            "--tenant",
            &app.tenant,
            "--name",
            "GitHub Actions",
            "--scope",
            "Apps OR.Folders.Read",
        ])
        .await;
    assert_eq!(created.code, 0, "{created:?}");
    let printed: Value = serde_json::from_str(created.stdout.trim()).unwrap();
    assert_eq!(printed["tenant"], app.tenant.as_str());
    assert_eq!(printed["scope"], "Apps OR.Folders.Read");
    let client_id = printed["client_id"].as_str().unwrap().to_string();
    let secret = printed["client_secret"].as_str().unwrap().to_string();

    let assigned = app
        .uplift(&[
            "role",
            "assign",
            "--tenant",
            &app.tenant,
            "--subject",
            &client_id,
            "--role",
            "FolderAdministrator",
            "--folder",
            &folder.key,
        ])
        .await;
    assert_eq!(assigned.code, 0);

    let response = app
        .request_token(&client_credentials(&client_id, &secret))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "Apps OR.Folders.Read");
    let token = body["access_token"].as_str().unwrap();

    let answer = app
        .bulk_call(token, &folder.key, &ids(&[&deployments[0]]))
        .json()
        .await;
    assert_eq!(answer["updatedDeployments"][0]["version"], 2, "{answer}");
    assert_eq!(answer["failedItems"], json!([]));
    let events = app.events(&deployments[0].id).await;
    assert_eq!(
        events.last().unwrap().actor,
        client_id,
        "the client is the actor"
    );

    let listed = app
        .uplift(&["client", "list", "--tenant", &app.tenant])
        .await;
    assert_eq!(listed.code, 0, "{listed:?}");
    let lines: Vec<Value> = listed
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["client_id"], client_id.as_str());
    assert_eq!(lines[0]["name"], "GitHub Actions");
    assert!(
        !listed.stdout.contains(&secret),
        "the secret is never listed"
    );
    assert!(!listed.stdout.contains("argon2"), "nor its hash");
}

#[tokio::test]
async fn a_wrong_secret_an_unknown_client_and_a_deleted_client_get_the_same_401_invalid_client() {
    let app = spawn_app().await;
    let (client_id, secret) = app.create_client("ci", ALL_SCOPES).await;
    let (deleted_id, deleted_secret) = app.create_client("old", ALL_SCOPES).await;
    clients::delete(&app.db, &app.tenant, &deleted_id)
        .await
        .unwrap();
    let unknown = uuid::Uuid::new_v4().to_string();

    let mut descriptions = Vec::new();
    for (id, secret) in [
        (client_id.as_str(), "not-the-secret"),
        (unknown.as_str(), secret.as_str()),
        (deleted_id.as_str(), deleted_secret.as_str()),
        ("nul\0in-the-id", secret.as_str()),
    ] {
        let response = app.request_token(&client_credentials(id, secret)).await;
        let body = assert_oauth_error(response, 401, "invalid_client").await;
        descriptions.push(body["error_description"].clone());
    }
    assert!(
        descriptions.iter().all(|d| *d == descriptions[0]),
        "{descriptions:?}"
    );
    // The right secret still works: the failures above were about the credentials.
    app.client_token(&client_id, &secret).await;
}

#[tokio::test]
async fn an_unknown_client_id_takes_about_as_long_to_refuse_as_a_wrong_secret() {
    let app = spawn_app().await;
    let (client_id, _) = app.create_client("ci", ALL_SCOPES).await;
    let unknown = uuid::Uuid::new_v4().to_string();
    let time = |id: String| {
        let app = &app;
        async move {
            let started = Instant::now();
            let response = app
                .request_token(&client_credentials(&id, "wrong-secret"))
                .await;
            assert_eq!(response.status(), 401);
            started.elapsed()
        }
    };
    // Warm-up, then interleaved so machine load affects both the same way.
    time(unknown.clone()).await;
    let (mut known_times, mut unknown_times) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        known_times.push(time(client_id.clone()).await);
        unknown_times.push(time(unknown.clone()).await);
    }
    known_times.sort();
    unknown_times.sort();
    let (known, unknown) = (known_times[3], unknown_times[3]);
    // Without the dummy verification an unknown id answers after one indexed read, an
    // order of magnitude sooner than an Argon2 verification.
    assert!(
        unknown.as_secs_f64() >= known.as_secs_f64() * 0.4,
        "unknown {unknown:?} vs wrong secret {known:?}"
    );
}

#[tokio::test]
async fn a_token_of_a_deleted_client_is_refused_on_the_next_call_even_as_an_idempotent_replay() {
    let (app, folder, deployments) = app_with_upgradable_deployments().await;
    let (client_id, secret) = app.create_client("ci", ALL_SCOPES).await;
    app.grant(&client_id, Role::FolderAdministrator, Some(&folder))
        .await;
    let token = app.client_token(&client_id, &secret).await;
    let keyed = || {
        app.bulk_call(&token, &folder.key, &ids(&[&deployments[0]]))
            .key("release-42")
    };
    keyed().ok().await;

    clients::delete(&app.db, &app.tenant, &client_id)
        .await
        .unwrap();

    let body = keyed().problem(401).await;
    assert!(
        body["detail"].as_str().unwrap().contains("deleted"),
        "{body}"
    );
    let response = app
        .bulk_call(&token, &folder.key, &ids(&[&deployments[1]]))
        .send()
        .await;
    let challenge = response.headers()["www-authenticate"].clone();
    assert_problem(response, 401).await;
    assert!(challenge.to_str().unwrap().contains("invalid_token"));
    assert_eq!(app.deployment(&deployments[1].id).await.version, 1);
    let response = app
        .request_token(&client_credentials(&client_id, &secret))
        .await;
    assert_oauth_error(response, 401, "invalid_client").await;
}

#[tokio::test]
async fn requested_scopes_must_be_a_subset_of_the_clients_scopes() {
    let app = spawn_app().await;
    let (client_id, secret) = app.create_client("reader", "Apps.Read").await;
    for scope in ["Apps.Read Apps.Write", "Apps", "Nonsense"] {
        let mut form = client_credentials(&client_id, &secret);
        form.push(("scope", scope));
        let body = assert_oauth_error(app.request_token(&form).await, 400, "invalid_scope").await;
        let description = body["error_description"].as_str().unwrap();
        assert!(description.contains("Apps.Read"), "{description}");
    }
    let mut form = client_credentials(&client_id, &secret);
    form.push(("scope", "Apps.Read"));
    let response = app.request_token(&form).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["scope"], "Apps.Read");
    let claims = app
        .keys
        .verify(body["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(claims["scope"], "Apps.Read");
    assert_eq!(claims["sub"], client_id.as_str());
    assert_eq!(claims["client_id"], client_id.as_str());
    assert_eq!(claims["tenant_id"], app.tenant.as_str());
}

#[tokio::test]
async fn a_json_body_gets_400_invalid_request_that_names_the_form_content_type() {
    let app = spawn_app().await;
    let (client_id, secret) = app.create_client("ci", ALL_SCOPES).await;
    let response = app
        .token_post()
        .json(&json!({
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
        }))
        .send()
        .await
        .unwrap();
    let body = assert_oauth_error(response, 400, "invalid_request").await;
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.contains("application/x-www-form-urlencoded") && description.contains("JSON"),
        "{description}"
    );
}

#[tokio::test]
async fn an_unsupported_or_missing_grant_type_is_refused() {
    let app = spawn_app().await;
    let (client_id, secret) = app.create_client("ci", ALL_SCOPES).await;
    for grant in ["password", "authorization_code", "CLIENT_CREDENTIALS"] {
        let mut form = client_credentials(&client_id, &secret);
        form[0] = ("grant_type", grant);
        let body = assert_oauth_error(
            app.request_token(&form).await,
            400,
            "unsupported_grant_type",
        )
        .await;
        assert!(
            body["error_description"].as_str().unwrap().contains(grant),
            "{body}"
        );
    }
    let form = &client_credentials(&client_id, &secret)[1..];
    let body = assert_oauth_error(app.request_token(form).await, 400, "invalid_request").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("grant_type")
    );
}

#[tokio::test]
async fn repeated_parameters_and_missing_fields_get_400_invalid_request() {
    let app = spawn_app().await;
    let (client_id, secret) = app.create_client("ci", ALL_SCOPES).await;
    let mut repeated = client_credentials(&client_id, &secret);
    repeated.push(("client_id", &client_id));
    let body = assert_oauth_error(app.request_token(&repeated).await, 400, "invalid_request").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("client_id")
    );

    let no_secret = &client_credentials(&client_id, &secret)[..2];
    let body = assert_oauth_error(app.request_token(no_secret).await, 400, "invalid_request").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("client_secret")
    );

    let nobody = &client_credentials(&client_id, &secret)[..1];
    assert_oauth_error(app.request_token(nobody).await, 401, "invalid_client").await;
}

#[tokio::test]
async fn http_basic_client_authentication_works_and_a_wrong_one_gets_a_basic_challenge() {
    let app = spawn_app().await;
    let (client_id, secret) = app.create_client("ci", "Apps.Read").await;
    let response = app
        .token_post()
        .basic_auth(&client_id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["scope"], "Apps.Read");

    let response = app
        .token_post()
        .basic_auth(&client_id, Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_oauth_error(response, 401, "invalid_client").await;

    let response = app
        .token_post()
        .basic_auth(&client_id, Some(&secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_secret", &secret),
        ])
        .send()
        .await
        .unwrap();
    assert_oauth_error(response, 400, "invalid_request").await;
}

#[tokio::test]
async fn the_upgrade_command_exits_0_when_every_deployment_was_upgraded() {
    let (app, folder, deployments) = app_with_upgradable_deployments().await;
    let (client_id, secret) = app.create_client("ci", ALL_SCOPES).await;
    app.grant(&client_id, Role::FolderAdministrator, Some(&folder))
        .await;

    let mut command = app.upgrade_command(&folder.key);
    command
        .args(["--client-id", &client_id, "--idempotency-key", "run-1"])
        .args(ids(&[&deployments[0], &deployments[1]]))
        .env("UPLIFT_CLIENT_SECRET", &secret);
    let output = run_cli(command, None).await;

    assert_eq!(output.code, 0, "{output:?}");
    let answer: Value = serde_json::from_str(output.stdout.trim()).unwrap();
    assert_eq!(answer["updatedDeployments"].as_array().unwrap().len(), 2);
    assert_eq!(answer["failedItems"], json!([]));
    for d in &deployments {
        assert_eq!(app.deployment(&d.id).await.version, 2);
    }
    assert!(!output.stderr.contains(&secret));
}

#[tokio::test]
async fn the_upgrade_command_reads_ids_from_stdin_and_exits_2_when_some_items_failed() {
    let (app, folder, deployments) = app_with_upgradable_deployments().await;
    app.grant("pipeline", Role::FolderAdministrator, Some(&folder))
        .await;
    let unknown = uuid::Uuid::new_v4().to_string();
    let stdin = format!(
        "{}\n\n  {unknown}  \n{}\n",
        deployments[0].id, deployments[1].id
    );

    let mut command = app.upgrade_command(&folder.key);
    command.env("UPLIFT_TOKEN", app.token("pipeline", ALL_SCOPES));
    let output = run_cli(command, Some(&stdin)).await;

    assert_eq!(output.code, 2, "{output:?}");
    let answer: Value = serde_json::from_str(output.stdout.trim()).unwrap();
    assert_eq!(answer["failedItems"], json!([unknown]));
    let updated: Vec<&str> = answer["updatedDeployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert_eq!(updated, [&deployments[0].id, &deployments[1].id]);
    assert!(output.stderr.contains("1 failed"), "{}", output.stderr);
}

#[tokio::test]
async fn the_upgrade_command_exits_1_on_an_error_answer_and_prints_the_problem_on_stderr() {
    let (app, folder, deployments) = app_with_upgradable_deployments().await;
    let (client_id, secret) = app.create_client("ci", ALL_SCOPES).await;
    // No role in the folder: the bulk call answers 403.
    let upgrade_with_secret = |secret: &str| {
        let mut command = app.upgrade_command(&folder.key);
        command
            .args(["--client-id", &client_id, &deployments[0].id])
            .env("UPLIFT_CLIENT_SECRET", secret);
        run_cli(command, None)
    };
    let output = upgrade_with_secret(&secret).await;
    assert_eq!(output.code, 1, "{output:?}");
    assert_eq!(output.stdout, "");
    assert!(output.stderr.contains("403"), "{}", output.stderr);
    assert!(output.stderr.contains("traceId"), "{}", output.stderr);

    let output = upgrade_with_secret("wrong").await;
    assert_eq!(output.code, 1, "{output:?}");
    assert!(
        output.stderr.contains("invalid_client"),
        "{}",
        output.stderr
    );

    // A usage error is 1 too, never the 2 that means "some items failed".
    let output = app
        .uplift(&["upgrade", "--base-url", &app.base, "--tenant", &app.tenant])
        .await;
    assert_eq!(output.code, 1, "{output:?}");
    assert_eq!(app.deployment(&deployments[0].id).await.version, 1);
}

/// The JWKS of `app` as a verifier would use it: a `Keys` that fetches it.
fn jwks_verifier(app: &TestApp) -> Keys {
    Keys::from_settings(&Settings {
        jwks_url: Some(format!("{}/.well-known/jwks.json", app.address)),
        ..Settings::default()
    })
    .unwrap()
}

fn header_kid(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_string()
}

/// An app signing with `pair`, a client token it minted, and its JWKS: one public key
/// (no private part) whose `kid` the token names.
async fn key_pair_app(pair: &(String, String)) -> (TestApp, String, String, Value) {
    let (public, private) = pair.clone();
    let app = spawn_app_with(|s| {
        s.jwt_secret = None;
        s.jwt_public_key = Some(public);
        s.jwt_private_key = Some(private.into());
    })
    .await;
    let (client_id, secret) = app.create_client("ci", ALL_SCOPES).await;
    let token = app.client_token(&client_id, &secret).await;
    let response = app.get_path("/.well-known/jwks.json").await;
    assert_eq!(response.status(), 200);
    let jwks: Value = response.json().await.unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1, "{jwks}");
    assert!(
        jwks["keys"][0].get("d").is_none(),
        "no private part: {jwks}"
    );
    assert_eq!(jwks["keys"][0]["kid"].as_str().unwrap(), header_kid(&token));
    (app, client_id, token, jwks)
}

/// Asserts these fields of the JWKS's first key.
fn assert_key(jwks: &Value, fields: [(&str, &str); 3]) {
    let key = &jwks["keys"][0];
    for (name, value) in fields {
        assert_eq!(key[name], value, "{name} of {jwks}");
    }
}

/// The claims of `token` as a verifier using `app`'s JWKS reads them.
async fn verified_by_the_jwks(app: &TestApp, token: &str) -> serde_json::Map<String, Value> {
    jwks_verifier(app).verify(token).await.unwrap()
}

#[tokio::test]
async fn with_an_rsa_key_pair_the_jwks_publishes_the_public_key_and_verifies_minted_tokens() {
    let (app, client_id, token, jwks) = key_pair_app(rsa_key_pair()).await;
    assert_key(&jwks, [("kty", "RSA"), ("alg", "RS256"), ("use", "sig")]);

    let claims = verified_by_the_jwks(&app, &token).await;
    assert_eq!(claims["sub"], client_id.as_str());
    // And the service accepts its own RS256 token on an API call.
    let response = app
        .list_deployed(&token, &app.folder("Ops").await.key, "")
        .send()
        .await;
    assert_eq!(
        response.status(),
        403,
        "authenticated; no role in the folder"
    );
}

#[tokio::test]
async fn with_an_ec_key_pair_the_jwks_publishes_a_p256_key_that_verifies_minted_tokens() {
    let (app, client_id, token, jwks) = key_pair_app(ec_key_pair()).await;
    assert_key(&jwks, [("kty", "EC"), ("crv", "P-256"), ("alg", "ES256")]);
    let claims = verified_by_the_jwks(&app, &token).await;
    assert_eq!(claims["client_id"], client_id.as_str());
}

#[tokio::test]
async fn with_an_hs256_secret_the_jwks_route_is_404_and_publishes_nothing() {
    let app = spawn_app().await;
    let response = app.get_path("/.well-known/jwks.json").await;
    let body = assert_problem(response, 404).await;
    let secret = app.jwt_secret();
    assert!(!body.to_string().contains(&secret));
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&secret);
    assert!(!body.to_string().contains(&encoded));
}

#[tokio::test]
async fn a_token_endpoint_that_cannot_sign_says_so_instead_of_failing() {
    let (public, _) = rsa_key_pair().clone();
    let app = spawn_app_with(|s| {
        s.jwt_secret = None;
        s.jwt_public_key = Some(public);
    })
    .await;
    let (client_id, secret) = app.create_client("ci", ALL_SCOPES).await;
    let response = app
        .request_token(&client_credentials(&client_id, &secret))
        .await;
    assert_oauth_error(response, 400, "unsupported_grant_type").await;
    let response = app.get_path("/.well-known/jwks.json").await;
    assert_problem(response, 404).await;
}

/// Basic credentials, each part form-urlencoded then base64 (RFC 6749 §2.3.1).
fn basic_header(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

#[tokio::test]
async fn http_basic_secrets_are_percent_decoded_so_text_after_an_ampersand_is_not_ignored() {
    use argon2::password_hash::PasswordHasher;
    use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait};

    let app = spawn_app().await;
    let (client_id, secret) = app.create_client("ci", "Apps.Read").await;
    let basic = |secret: &str| {
        app.token_post()
            .header("authorization", basic_header(&client_id, secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };

    let response = basic(&format!("{secret}&anything")).await.unwrap();
    assert_oauth_error(response, 401, "invalid_client").await;
    let response = basic(&format!("{secret}&x=y")).await.unwrap();
    assert_oauth_error(response, 401, "invalid_client").await;

    // A secret that really holds `&` and `=` is sent percent-encoded and works.
    let odd = format!("{secret}&x=y");
    let hash = argon2::Argon2::default()
        .hash_password(odd.as_bytes())
        .unwrap()
        .to_string();
    let mut row: entity::client::ActiveModel =
        entity::client::Entity::find_by_id(client_id.clone())
            .one(&app.db)
            .await
            .unwrap()
            .unwrap()
            .into();
    row.secret_hash = Set(hash);
    row.update(&app.db).await.unwrap();
    let response = basic(&format!("{secret}%26x%3Dy")).await.unwrap();
    assert_eq!(response.status(), 200);
    let response = basic(&secret).await.unwrap();
    assert_oauth_error(response, 401, "invalid_client").await;
}
