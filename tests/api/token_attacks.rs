//! RFC 8725 token attacks against every protected route of the OpenAPI document: each
//! gets 401 (or 403 for another tenant) and reaches no data.

use base64::Engine;
use entity::{app_version, deployment, deployment_event, idempotency_key};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use sea_orm::{DatabaseConnection, EntityTrait, PaginatorTrait};
use serde_json::{Value, json};
use uplift::{access::Role, config::Settings};

use crate::helpers::{ALL_SCOPES, TestApp, concrete_path, spawn_app, spawn_app_with};

const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "uplift";

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn b64(value: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

fn rs256(claims: &Value, private_key: &str) -> String {
    let pem = std::fs::read(fixture(private_key)).unwrap();
    jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        claims,
        &EncodingKey::from_rsa_pem(&pem).unwrap(),
    )
    .unwrap()
}

/// Every operation under the UiPath base path, with its path parameters filled in.
fn protected_operations(
    settings: &Settings,
    deployment_id: &str,
    tenant: &str,
    folder_id: i32,
) -> Vec<(Method, String)> {
    let doc = serde_json::to_value(uplift::http::openapi::document(settings)).unwrap();
    let base = settings.uipath_base_path();
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with(&base) && !path.starts_with("/openapi/v1/") {
            continue;
        }
        let concrete = concrete_path(path, deployment_id, tenant, folder_id);
        for method in item.as_object().unwrap().keys() {
            operations.push((method.to_uppercase().parse().unwrap(), concrete.clone()));
        }
    }
    operations
}

async fn counts(db: &DatabaseConnection) -> [u64; 4] {
    [
        deployment::Entity::find().count(db).await.unwrap(),
        deployment_event::Entity::find().count(db).await.unwrap(),
        app_version::Entity::find().count(db).await.unwrap(),
        idempotency_key::Entity::find().count(db).await.unwrap(),
    ]
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    authorization: &str,
    tenant: &str,
    folder: &str,
) -> reqwest::Response {
    let mut request = app
        .client
        .request(method.clone(), format!("{}{path}", app.address))
        .header("Authorization", authorization)
        .header("X-UiPath-Internal-TenantId", tenant)
        .header("X-UiPath-FolderKey", folder)
        .header("Idempotency-Key", "attack");
    if method == Method::POST || method == Method::PATCH {
        let ids = json!({"deploymentIds": [], "packageName": "Portal", "packageVersion": "9.9.9", "title": "x"});
        request = request.json(&ids);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn every_token_attack_is_refused_on_every_protected_route_and_reaches_no_data() {
    let app = spawn_app_with(|s| {
        s.jwt_secret = None;
        s.jwt_public_key = Some(fixture("attack-rsa1-public.pem"));
        s.jwt_private_key = Some(fixture("attack-rsa1-private.pem").into());
        s.jwt_issuer = Some(ISSUER.into());
        s.jwt_audience = Some(AUDIENCE.into());
    })
    .await;
    let folder = app.folder("Ops").await;
    app.grant("attacker", Role::Administrator, None).await;
    app.publish("Portal", "1.0.0").await;
    let d = app.deploy(&folder, "Portal", 1).await;
    app.publish("Portal", "1.1.0").await;
    let good = app.token("attacker", ALL_SCOPES);
    // The genuine token works, so every refusal below is the attack's doing.
    let ok = send(
        &app,
        Method::GET,
        &format!("{}/models/deployed/apps", app.settings.uipath_base_path()),
        &format!("Bearer {good}"),
        &app.tenant,
        &folder.key,
    )
    .await;
    assert_eq!(ok.status(), 200);

    let now = jsonwebtoken::get_current_timestamp();
    let claims = |extra: Value| {
        let mut c = json!({"sub": "attacker", "tenant_id": app.tenant, "scope": ALL_SCOPES,
                           "iss": ISSUER, "aud": AUDIENCE, "exp": now + 600, "nbf": now - 10});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };
    // Claims with these changes, signed with the key the service trusts.
    let trusted_key_signed = |changes: Value| rs256(&claims(changes), "attack-rsa1-private.pem");
    let public_pem = std::fs::read(fixture("attack-rsa1-public.pem")).unwrap();
    let good_parts: Vec<&str> = good.split('.').collect();
    let attacks: Vec<(&str, String)> = vec![
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT"})),
                b64(&claims(json!({})))
            ),
        ),
        (
            "HS256 keyed with the RSA public key",
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims(json!({})),
                &EncodingKey::from_secret(&public_pem),
            )
            .unwrap(),
        ),
        (
            "another RSA key",
            rs256(&claims(json!({})), "attack-rsa2-private.pem"),
        ),
        (
            "tampered payload",
            format!(
                "{}.{}.{}",
                good_parts[0],
                b64(&claims(json!({"sub": "root"}))),
                good_parts[2]
            ),
        ),
        ("expired", trusted_key_signed(json!({"exp": now - 600}))),
        (
            "nbf in the future",
            trusted_key_signed(json!({"nbf": now + 600})),
        ),
        (
            "wrong iss",
            trusted_key_signed(json!({"iss": "https://evil.test"})),
        ),
        ("no iss", trusted_key_signed(json!({"iss": null}))),
        (
            "wrong aud",
            trusted_key_signed(json!({"aud": "someone-else"})),
        ),
        ("missing sub", trusted_key_signed(json!({"sub": null}))),
        (
            "scope of an unexpected type",
            trusted_key_signed(json!({"scope": {"Apps": true}})),
        ),
        (
            "a 100 KB token",
            format!(
                "{}.{}.{}",
                good_parts[0],
                "A".repeat(100 * 1024),
                good_parts[2]
            ),
        ),
    ];
    let before = counts(&app.db).await;
    let operations = protected_operations(&app.settings, &d.id, &app.tenant, folder.id);
    assert!(operations.len() >= 13, "{operations:?}");
    for (name, token) in &attacks {
        for (method, path) in &operations {
            let response = send(
                &app,
                method.clone(),
                path,
                &format!("Bearer {token}"),
                &app.tenant,
                &folder.key,
            )
            .await;
            assert_eq!(response.status(), 401, "{name}: {method} {path}");
        }
    }
    // A genuine token of tenant A with tenant B's header.
    // (Rainbond routes name the team in the path, checked in tests/api/rainbond.rs.)
    for (method, path) in operations
        .iter()
        .filter(|(_, p)| !p.starts_with("/openapi/v1/"))
    {
        let response = send(
            &app,
            method.clone(),
            path,
            &format!("Bearer {good}"),
            "tenant-b",
            &folder.key,
        )
        .await;
        assert_eq!(
            response.status(),
            403,
            "another tenant's header: {method} {path}"
        );
    }
    assert_eq!(counts(&app.db).await, before, "no attack changed anything");
    assert_eq!(app.deployment(&d.id).await.version, 1);
}

/// `token` with the byte at `position` replaced by `byte`.
fn with_byte(token: &str, position: usize, byte: u8) -> Vec<u8> {
    let mut bytes = token.as_bytes().to_vec();
    bytes[position] = byte;
    bytes
}

/// Asserts that `keys` refuses `token` with the byte at each position replaced by each
/// of `replacements(original byte)` (those that keep it a string; every token byte is
/// ASCII, so these are the ASCII replacements). Returns how many were tried.
async fn assert_every_change_refused(
    what: &str,
    keys: &uplift::auth::Keys,
    token: &str,
    replacements: impl Fn(u8) -> Vec<u8>,
) -> usize {
    assert!(token.is_ascii(), "{what}: {token}");
    keys.verify(token)
        .await
        .unwrap_or_else(|e| panic!("{what}: the genuine token is refused: {e:?}"));
    let mut tried = 0;
    for position in 0..token.len() {
        let original = token.as_bytes()[position];
        for byte in replacements(original) {
            assert_ne!(byte, original);
            let tampered = String::from_utf8(with_byte(token, position, byte)).unwrap();
            assert!(
                keys.verify(&tampered).await.is_err(),
                "{what}: byte {position} changed from {:?} to {:?} is accepted: {tampered}",
                original as char,
                byte as char,
            );
            tried += 1;
        }
    }
    tried
}

/// Every byte of a genuine token matters: a change anywhere (header, payload or
/// signature, the dots included) is refused, whatever the new byte. Exhaustive for
/// HS256 (every position, every ASCII byte through `Keys::verify`, every position with
/// a non-ASCII byte over HTTP, where no `&str` can carry it); for RS256 and ES256,
/// whose verification is slower, every position with a few bytes each.
#[tokio::test]
async fn a_genuine_token_with_any_byte_changed_is_refused() {
    let app = spawn_app().await;
    let folder = app.folder("Ops").await;
    app.grant("x", Role::FolderAdministrator, Some(&folder))
        .await;
    let token = app.token("x", ALL_SCOPES);
    let every_other_ascii = |original: u8| (0u8..0x80).filter(|b| *b != original).collect();
    let tried = assert_every_change_refused("HS256", &app.keys, &token, every_other_ascii).await;
    assert_eq!(tried, token.len() * 127);

    // Over HTTP: the genuine token lists, each token with a non-ASCII byte is a 401.
    let list = |authorization: reqwest::header::HeaderValue| {
        app.client
            .get(format!("{}/models/deployed/apps", app.base))
            .header("Authorization", authorization)
            .header("X-UiPath-Internal-TenantId", &app.tenant)
            .header("X-UiPath-FolderKey", &folder.key)
            .send()
    };
    let bearer = |bytes: &[u8]| {
        reqwest::header::HeaderValue::from_bytes(&[b"Bearer ".as_slice(), bytes].concat()).unwrap()
    };
    assert_eq!(list(bearer(token.as_bytes())).await.unwrap().status(), 200);
    for position in 0..token.len() {
        let byte = token.as_bytes()[position] | 0x80;
        let response = list(bearer(&with_byte(&token, position, byte)))
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            401,
            "byte {position} changed to {byte:#x} over HTTP"
        );
    }

    // The base64url neighbours of each character (the likeliest to decode to the same
    // bytes), a dot and a space.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let a_few = |original: u8| {
        let mut bytes = vec![b'.', b' '];
        if let Some(i) = ALPHABET.iter().position(|b| *b == original) {
            bytes.push(ALPHABET[i ^ 1]);
            bytes.push(ALPHABET[(i + 1) % 64]);
        } else {
            bytes.push(b'A');
        }
        bytes.retain(|b| *b != original);
        bytes.dedup();
        bytes
    };
    for (what, pair) in [
        ("RS256", crate::helpers::rsa_key_pair()),
        ("ES256", crate::helpers::ec_key_pair()),
    ] {
        let keys = uplift::auth::Keys::from_settings(&Settings {
            jwt_public_key: Some(pair.0.clone()),
            jwt_private_key: Some(pair.1.clone().into()),
            ..Settings::default()
        })
        .unwrap();
        let token = keys
            .issue("t", "x", ALL_SCOPES, std::time::Duration::from_secs(60))
            .unwrap();
        let tried = assert_every_change_refused(what, &keys, &token, a_few).await;
        assert!(tried >= token.len() * 3, "{what}: {tried}");
    }
}

#[tokio::test]
async fn a_genuine_token_whose_subject_tenant_or_client_id_holds_a_control_character_is_a_401() {
    let app = spawn_app().await;
    let (folder, deployed) = app.upgradable_deployment("bot").await;
    let ids = vec![deployed.id.clone()];
    let now = jsonwebtoken::get_current_timestamp();
    let signed = |claims: Value| {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(app.jwt_secret().as_bytes()),
        )
        .unwrap()
    };
    let tenant = app.tenant.clone();
    let tokens = [
        app.token("bot\u{0}x", ALL_SCOPES),
        app.token("bot\u{1b}[2K", ALL_SCOPES),
        app.token_for(&format!("{tenant}\u{0}"), "bot", ALL_SCOPES),
        signed(json!({
            "sub": "bot", "tenant_id": tenant, "scope": ALL_SCOPES, "exp": now + 600,
            "client_id": "c\u{0}",
        })),
    ];
    for (i, token) in tokens.iter().enumerate() {
        let body = app.bulk_call(token, &folder.key, &ids).problem(401).await;
        assert_eq!(body["type"], "urn:uplift:problem:invalid-token", "{body}");
        let body = app
            .bulk_call(token, &folder.key, &ids)
            .key(&format!("control-{i}"))
            .problem(401)
            .await;
        assert_eq!(body["type"], "urn:uplift:problem:invalid-token", "{body}");
        let body = app.list_deployed(token, &folder.key, "").problem(401).await;
        assert_eq!(body["type"], "urn:uplift:problem:invalid-token", "{body}");
    }
    assert_eq!(app.deployment(&deployed.id).await.version, deployed.version);
}

#[tokio::test]
async fn a_token_with_a_critical_header_or_a_lifetime_beyond_the_maximum_is_a_401() {
    let app = spawn_app_with(|s| s.max_token_lifetime_seconds = 7200).await;
    let (folder, deployed) = app.upgradable_deployment("bot").await;
    let now = jsonwebtoken::get_current_timestamp();
    let key = EncodingKey::from_secret(app.jwt_secret().as_bytes());
    let claims = |iat: u64, exp: u64| json!({"sub": "bot", "tenant_id": app.tenant, "scope": ALL_SCOPES, "iat": iat, "exp": exp});
    let sign =
        |header: &Header, claims: &Value| jsonwebtoken::encode(header, claims, &key).unwrap();
    let mut critical = Header::new(Algorithm::HS256);
    critical.crit = Some(vec!["x-must-understand".into()]);
    critical.extras.insert("x-must-understand", true);
    let plain = Header::new(Algorithm::HS256);
    let refused = [
        (
            "an unknown critical header",
            sign(&critical, &claims(now, now + 600)),
        ),
        ("exp of 2^63", sign(&plain, &claims(now, 1 << 63))),
        (
            "exp three hours ahead",
            sign(&plain, &claims(now, now + 3 * 3600)),
        ),
        (
            "exp - iat beyond the maximum",
            sign(&plain, &claims(now - 7000, now + 600)),
        ),
    ];
    for (what, token) in &refused {
        let body = app.list_deployed(token, &folder.key, "").problem(401).await;
        assert_eq!(
            body["type"], "urn:uplift:problem:invalid-token",
            "{what}: {body}"
        );
    }
    // Within the maximum, the same key's token is fine.
    let fine = sign(&plain, &claims(now, now + 3600));
    app.list_deployed(&fine, &folder.key, "").ok().await;
    assert_eq!(app.deployment(&deployed.id).await.version, deployed.version);
}
