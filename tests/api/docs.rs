//! The OpenAPI document and the docs page are served by the binary itself.

use serde_json::{Value, json};
use uplift::access::Role;

use crate::helpers::{ALL_SCOPES, assert_problem, concrete_path, spawn_app};

#[tokio::test]
async fn the_openapi_document_is_served_for_the_configured_organization() {
    let app = spawn_app().await;
    let response = app.get_path("/openapi.json").await;
    assert_eq!(response.status(), 200);
    let doc: Value = response.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let bulk =
        "/acme/apps_/default/api/v1/default/models/deployed/apps/updateToLatestAppVersionBulk";
    assert!(
        doc["paths"][bulk]["post"].is_object(),
        "paths follow UPLIFT_ORGANIZATION"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[tokio::test]
async fn the_docs_page_is_served_without_internet_access() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::limited(3))
        .build()
        .unwrap();
    let page = client
        .get(format!("{}/docs", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    // Every script the page loads comes from this server, not a CDN.
    assert!(
        !html.contains("https://"),
        "the page must not load anything from the internet"
    );
    let initializer = client
        .get(format!("{}/docs/swagger-initializer.js", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(initializer.status(), 200);
    assert!(initializer.text().await.unwrap().contains("/openapi.json"));
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Walks every operation of the served document under the UiPath base path and, for
/// each one, checks both what the document says and what the server does: it names the
/// bearer scheme (which the document defines) and documents a success and the 400,
/// 401, 403 and 500 problem+json answers; and on the wire it answers 401 without a
/// token, 403 to a token without scopes and 400 without the tenant header.
#[tokio::test]
async fn every_uipath_operation_is_protected_and_documents_its_errors() {
    let app = spawn_app().await;
    let folder = app.folder("Ops").await;
    app.grant("admin", Role::Administrator, None).await;
    app.publish("Portal", "1.0.0").await;
    let d = app.deploy(&folder, "Portal", 1).await;
    let doc: Value = app.get_path("/openapi.json").await.json().await.unwrap();
    let base = app.settings.uipath_base_path();
    let schemes = &doc["components"]["securitySchemes"];

    let mut walked = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let Some(suffix) = path.strip_prefix(&base) else {
            continue;
        };
        for (key, operation) in item.as_object().unwrap() {
            if !METHODS.contains(&key.as_str()) {
                assert!(
                    ["parameters", "summary", "description", "servers"].contains(&key.as_str()),
                    "{path}: unexpected {key:?}"
                );
                continue;
            }
            let op = format!("{} {suffix}", key.to_uppercase());
            walked.push(op.clone());

            let security = operation["security"].as_array();
            assert!(
                security.is_some_and(|s| !s.is_empty()),
                "{op}: no security requirement"
            );
            for requirement in security.unwrap() {
                let names = requirement.as_object().unwrap();
                assert!(
                    !names.is_empty(),
                    "{op}: an empty requirement makes auth optional"
                );
                for name in names.keys() {
                    assert_eq!(
                        (&schemes[name]["type"], &schemes[name]["scheme"]),
                        (&json!("http"), &json!("bearer")),
                        "{op}: scheme {name:?} is not a defined bearer scheme"
                    );
                }
            }
            let responses = operation["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{op}: no success documented"
            );
            for status in ["400", "401", "403", "500"] {
                let schema = &responses
                    .get(status)
                    .unwrap_or_else(|| panic!("{op} does not document {status}"))["content"]["application/problem+json"]
                    ["schema"]["$ref"];
                assert!(
                    schema.as_str().is_some_and(|r| r.ends_with("/Problem")),
                    "{op}: {status} is not documented as problem+json: {schema}"
                );
            }

            // What the document says holds on the wire.
            let url = format!(
                "{}{}",
                app.address,
                concrete_path(path, &d.id, &app.tenant, folder.id)
            );
            let method: reqwest::Method = key.to_uppercase().parse().unwrap();
            let send = |token: Option<String>, tenant: Option<&str>| {
                let mut request = app
                    .client
                    .request(method.clone(), &url)
                    .header("X-UiPath-FolderKey", &folder.key);
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                if let Some(tenant) = tenant {
                    request = request.header("X-UiPath-Internal-TenantId", tenant);
                }
                if operation.get("requestBody").is_some() {
                    request = request.json(&json!({"deploymentIds": [], "packageName": "Portal", "packageVersion": "9.9.9"}));
                }
                request.send()
            };
            let anonymous = send(None, Some(&app.tenant)).await.unwrap();
            let challenge = anonymous.headers().get("www-authenticate").cloned();
            assert_problem(anonymous, 401).await;
            assert!(
                challenge.is_some_and(|c| c.to_str().unwrap().starts_with("Bearer")),
                "{op}: a 401 without a Bearer challenge"
            );
            let no_scope = Some(app.token("admin", ""));
            assert_problem(send(no_scope, Some(&app.tenant)).await.unwrap(), 403).await;
            let all = Some(app.token("admin", ALL_SCOPES));
            let body = assert_problem(send(all, None).await.unwrap(), 400).await;
            assert!(
                body["detail"]
                    .as_str()
                    .unwrap()
                    .contains("X-UiPath-Internal-TenantId"),
                "{op}: {body}"
            );
        }
    }
    for known in [
        "POST /models/deployed/apps/updateToLatestAppVersionBulk",
        "GET /models/deployed/apps",
        "PATCH /models/deployed/apps/{deployed_app_id}",
        "GET /models/deployed/apps/{deployed_app_id}/history",
        "POST /models/deployed/apps/{deployed_app_id}/rollback",
        "GET /models/deployed/apps/uniquename/check/{routing_name}",
        "POST /models/{app_system_name}/publish/versions/{version}/deploy",
        "DELETE /models/{app_system_name}/publish/versions/{version}",
        "POST /models/apps/codedapp/publish",
        "GET /models/tenants/{cloud_tenant_id}/publish/apps",
        "GET /models/{app_system_name}/tenants/{cloud_tenant_id}/publish/versions",
    ] {
        assert!(
            walked.iter().any(|w| w == known),
            "{known} is not documented: {walked:?}"
        );
    }
    assert_eq!(
        app.deployment(&d.id).await.version,
        1,
        "no call changed anything"
    );
}

/// Generated clients take one base URL, the origin: the document's one server is the
/// origin itself (`/`, relative to where the document is served), and every path stays
/// absolute, the organization included, so those paths are the ones served.
#[tokio::test]
async fn the_document_names_its_own_origin_as_the_server_and_keeps_absolute_paths() {
    let app = spawn_app().await;
    let doc: Value = app.get_path("/openapi.json").await.json().await.unwrap();
    let servers = doc["servers"].as_array().expect("servers");
    assert_eq!(servers.len(), 1, "{servers:?}");
    assert_eq!(servers[0]["url"], "/");
    let base = app.settings.uipath_base_path();
    let list = format!("{base}/models/deployed/apps");
    assert!(doc["paths"][&list]["get"].is_object(), "{list}");
    let folder = app.folder("Served").await;
    app.grant("viewer", Role::FolderAdministrator, Some(&folder))
        .await;
    let token = app.token("viewer", "Apps.Read");
    let answer = app
        .client
        .get(format!("{}{list}", app.address))
        .bearer_auth(token)
        .header("X-UiPath-Internal-TenantId", &app.tenant)
        .header("X-UiPath-FolderKey", &folder.key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        answer.status(),
        200,
        "the documented path is the served one"
    );
}

/// Redocly's `security-defined` and the generated clients both read an operation with
/// no `security` as "whatever the document's default is"; the public routes say
/// outright that they take no token, and each one indeed answers without one.
#[tokio::test]
async fn the_public_routes_are_documented_as_needing_no_token_and_answer_without_one() {
    let app = spawn_app().await;
    let doc: Value = app.get_path("/openapi.json").await.json().await.unwrap();
    let mut public = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let security = operation["security"]
                .as_array()
                .unwrap_or_else(|| panic!("{method} {path}: no security stated"));
            if security.is_empty() {
                public.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    public.sort();
    assert_eq!(
        public,
        [
            "GET /.well-known/jwks.json",
            "GET /healthz",
            "GET /metrics",
            "GET /readyz",
            "POST /acme/identity_/connect/token",
            "POST /identity_/connect/token",
        ]
    );
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(app.get_path(path).await.status(), 200, "{path}");
    }
    // The JWKS answers 404 (problem+json, as documented) with the test's shared secret.
    assert_problem(app.get_path("/.well-known/jwks.json").await, 404).await;
}

fn references(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                found.push(r.trim_start_matches("#/components/schemas/").to_string());
            }
            map.values().for_each(|v| references(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, found)),
        _ => {}
    }
}

/// A schema that is both a component and copied inline gives generated clients two
/// types for one thing, and the linters an unused component: every component is
/// referenced, and no inline schema equals one.
#[tokio::test]
async fn every_component_schema_is_referenced_and_none_is_also_inlined() {
    let app = spawn_app().await;
    let doc: Value = app.get_path("/openapi.json").await.json().await.unwrap();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let mut used = Vec::new();
    references(&doc["paths"], &mut used);
    references(&doc["components"]["schemas"], &mut used);
    for name in schemas.keys() {
        assert!(used.contains(name), "{name} is never referenced");
    }
    fn inline_copies<'a>(value: &'a Value, top: bool, out: &mut Vec<&'a Value>) {
        match value {
            Value::Object(map) => {
                if !top {
                    out.push(value);
                }
                map.values().for_each(|v| inline_copies(v, false, out));
            }
            Value::Array(items) => items.iter().for_each(|v| inline_copies(v, false, out)),
            _ => {}
        }
    }
    let mut inline = Vec::new();
    inline_copies(&doc["paths"], true, &mut inline);
    for schema in schemas.values() {
        inline_copies(schema, true, &mut inline);
    }
    for (name, component) in schemas {
        let is_object = component.get("properties").is_some() || component.get("allOf").is_some();
        if is_object {
            assert!(!inline.contains(&component), "{name} is also inlined");
        }
    }
}

/// `oneOf: [DeployRequest, {type: null}]` means "the JSON value null", not "no body",
/// and generated clients crashed on it when the body was left out. The optional bodies
/// are plain references with `required: false`, and leaving one out, even with the JSON
/// content type a generated client still sends, deploys.
#[tokio::test]
async fn the_optional_bodies_are_plain_references_and_may_be_left_out() {
    let app = spawn_app().await;
    let doc: Value = app.get_path("/openapi.json").await.json().await.unwrap();
    let base = app.settings.uipath_base_path();
    for (path, schema) in [
        (
            format!("{base}/models/{{app_system_name}}/publish/versions/{{version}}/deploy"),
            "DeployRequest",
        ),
        (
            format!("{base}/models/deployed/apps/{{deployed_app_id}}/rollback"),
            "RollbackRequest",
        ),
    ] {
        let body = &doc["paths"][&path]["post"]["requestBody"];
        assert_eq!(body["required"], false, "{path}");
        assert_eq!(
            body["content"]["application/json"]["schema"],
            json!({"$ref": format!("#/components/schemas/{schema}")}),
            "{path}"
        );
    }

    let folder = app.folder("Bodiless").await;
    app.grant("deployer", Role::Administrator, None).await;
    app.publish("Portal", "1.0.0").await;
    let token = app.token("deployer", ALL_SCOPES);
    let deployed = app
        .deploy_call(&token, &folder.key, "Portal", 1)
        .raw("application/json", Vec::new())
        .json()
        .await;
    assert!(deployed["id"].is_string(), "{deployed}");
}
