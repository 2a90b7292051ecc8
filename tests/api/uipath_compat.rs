//! UiPath's own clients work unchanged (issue 13): the field names they read, the
//! tenant header the Python SDK sends, the token endpoint under the organization, the
//! catalogue lists' paging, and Rainbond's bare token.

use reqwest::Method;
use serde_json::{Value, json};
use uplift::access::Role;

use crate::helpers::{ALL_SCOPES, TestApp, spawn_app};

async fn admin(app: &TestApp) -> String {
    app.grant("admin", Role::Administrator, None).await;
    app.token("admin", ALL_SCOPES)
}

/// The `key` field of each item of an OData collection.
fn field(collection: &Value, key: &str) -> Vec<Value> {
    collection["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item[key].clone())
        .collect()
}

#[tokio::test]
async fn the_publish_answer_adds_a_definition_and_the_first_publish_takes_the_title() {
    let app = spawn_app().await;
    let token = admin(&app).await;
    let first = app
        .publish_call(&token, "Invoice Portal", "1.0.0")
        .field("title", "Invoices")
        .field("schema", json!({"pages": [{"name": "Home"}], "version": 3}))
        .json()
        .await;
    assert_eq!(first["systemName"], "Invoice_Portal");
    assert_eq!(first["deployVersion"], 1);
    assert_eq!(
        first["definition"],
        json!({
            "systemName": "Invoice_Portal",
            "title": "Invoices",
            "packageName": "Invoice Portal",
            "packageVersion": "1.0.0",
            "deployVersion": 1,
        })
    );
    let second = app
        .publish_call(&token, "Invoice Portal", "1.1.0")
        .field("title", "Renamed")
        .json()
        .await;
    assert_eq!(second["deployVersion"], 2);
    assert_eq!(
        second["definition"]["title"], "Invoices",
        "a later publish leaves the title"
    );
    assert_eq!(second["definition"]["packageVersion"], "1.1.0");
    let untitled = app.publish_call(&token, "Payroll", "0.1.0").json().await;
    assert_eq!(untitled["definition"]["title"], "Payroll");
    let body = app
        .publish_call(&token, "Other", "1.0.0")
        .field("title", "   ")
        .problem(400)
        .await;
    assert!(body["detail"].as_str().unwrap().contains("title"), "{body}");
}

#[tokio::test]
async fn catalogue_items_carry_app_version_beside_package_version() {
    let app = spawn_app().await;
    let token = admin(&app).await;
    app.publish("Portal", "1.0.0").await;
    app.publish("Portal", "1.2.0-rc.1").await;
    let apps = app.catalog_apps(&token, &app.tenant).json().await;
    assert_eq!(apps["value"][0]["appVersion"], "1.2.0-rc.1");
    assert_eq!(apps["value"][0]["packageVersion"], "1.2.0-rc.1");
    let versions = app
        .catalog_versions(&token, "Portal", &app.tenant)
        .json()
        .await;
    assert_eq!(
        field(&versions, "appVersion"),
        [json!("1.2.0-rc.1"), json!("1.0.0")]
    );
    assert_eq!(
        field(&versions, "appVersion"),
        field(&versions, "packageVersion")
    );
}

#[tokio::test]
async fn deployed_apps_carry_system_name_sem_version_and_deploy_version_in_the_list_and_the_edit_answer()
 {
    let app = spawn_app().await;
    let token = admin(&app).await;
    let folder = app.folder("Ops").await;
    app.publish("Portal", "1.0.0").await;
    app.publish("Portal", "2.0.0").await;
    let d = app.deploy(&folder, "Portal", 1).await;
    let list = app.list_deployed(&token, &folder.key, "").json().await;
    let item = &list["value"][0];
    assert_eq!(item["systemName"], "Portal");
    assert_eq!(item["appSystemName"], "Portal");
    assert_eq!(item["semVersion"], "1.0.0");
    assert_eq!(
        (&item["deployVersion"], &item["version"]),
        (&json!(1), &json!(1))
    );
    let edited = app
        .edit_deployed(&token, &folder.key, &d.id, json!({"version": 2}))
        .json()
        .await;
    assert_eq!(edited["systemName"], "Portal");
    assert_eq!(edited["semVersion"], "2.0.0");
    assert_eq!(edited["deployVersion"], 2);
    assert_eq!(edited["version"], 2);
}

#[tokio::test]
async fn x_uipath_tenant_id_is_accepted_in_place_of_the_internal_header_under_the_same_rule() {
    let app = spawn_app().await;
    let token = admin(&app).await;
    let folder = app.folder("Ops").await;
    let alias = "X-UiPath-TenantId";
    let list = || app.list_deployed(&token, &folder.key, "").tenant(None);

    let alone = list().header(alias, &app.tenant).json().await;
    assert_eq!(alone["@odata.count"], 0);
    let both_same = app
        .list_deployed(&token, &folder.key, "")
        .header(alias, &app.tenant)
        .json()
        .await;
    assert_eq!(both_same["@odata.count"], 0);

    let other = list().header(alias, "another-tenant").problem(403).await;
    assert!(
        other["detail"].as_str().unwrap().contains("tenant"),
        "{other}"
    );
    let differ = app
        .list_deployed(&token, &folder.key, "")
        .header(alias, "another-tenant")
        .problem(400)
        .await;
    let detail = differ["detail"].as_str().unwrap();
    assert!(
        detail.contains("X-UiPath-Internal-TenantId") && detail.contains(alias),
        "{differ}"
    );
    let neither = list().problem(400).await;
    assert!(
        neither["detail"]
            .as_str()
            .unwrap()
            .contains("X-UiPath-Internal-TenantId"),
        "{neither}"
    );
    // A write with the alias too: publishing needs only the tenant.
    let published = app
        .publish_call(&token, "Portal", "1.0.0")
        .tenant(None)
        .header(alias, &app.tenant)
        .json()
        .await;
    assert_eq!(published["deployVersion"], 1);

    let doc: Value = app.get_path("/openapi.json").await.json().await.unwrap();
    let params = &doc["paths"][format!("{}/models/deployed/apps", app.settings.uipath_base_path())]
        ["get"]["parameters"];
    let names: Vec<&str> = params
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&alias), "{names:?}");
    let internal = params
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "X-UiPath-Internal-TenantId")
        .unwrap();
    assert!(internal["description"].as_str().unwrap().contains(alias));
}

#[tokio::test]
async fn the_token_endpoint_answers_under_the_configured_organization_exactly_as_at_the_root() {
    let app = spawn_app().await;
    let (id, secret) = app.create_client("ci", "Apps.Read").await;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", id.as_str()),
        ("client_secret", secret.as_str()),
    ];
    let url = format!(
        "{}/{}/identity_/connect/token",
        app.address, app.settings.organization
    );
    let response = app.client.post(&url).form(&form).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "Apps.Read");
    let token = body["access_token"].as_str().unwrap();
    app.grant(&id, Role::Administrator, None).await;
    app.catalog_apps(token, &app.tenant).json().await;

    // Errors in OAuth's shape, as at the root.
    let wrong = app
        .client
        .post(&url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
            ("client_secret", "wrong"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");

    // Only the configured organization's.
    let elsewhere = app
        .client
        .post(format!(
            "{}/someone-else/identity_/connect/token",
            app.address
        ))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 404);

    let doc: Value = app.get_path("/openapi.json").await.json().await.unwrap();
    let documented =
        &doc["paths"][format!("/{}/identity_/connect/token", app.settings.organization)]["post"];
    assert!(documented.is_object(), "not documented");
    assert_eq!(documented["tags"], json!(["Identity"]));
}

/// Publishes version 1.0.0 of each named package.
async fn catalogue(app: &TestApp, packages: &[&str]) {
    for package in packages {
        app.publish(package, "1.0.0").await;
    }
}

#[tokio::test]
async fn the_published_apps_list_pages_orders_and_searches_like_the_deployed_apps_list() {
    let app = spawn_app().await;
    let token = admin(&app).await;
    catalogue(&app, &["Delta", "alpha", "Charlie", "Bravo HR", "Echo"]).await;
    app.publish("Echo", "2.0.0").await;

    let all = app.catalog_apps(&token, &app.tenant).json().await;
    assert_eq!(all["@odata.count"], 5);
    assert_eq!(
        field(&all, "systemName"),
        ["Bravo_HR", "Charlie", "Delta", "Echo", "alpha"].map(|s| json!(s)),
        "default order: system name"
    );

    // Pages of two in title order, descending: none repeated, none skipped, and the
    // count is the total each time.
    let mut seen = Vec::new();
    for skip in [0, 2, 4] {
        let page = app
            .catalog_apps(&token, &app.tenant)
            .query(&format!("$top=2&$skip={skip}&$orderBy=title%20desc"))
            .json()
            .await;
        assert_eq!(page["@odata.count"], 5);
        seen.extend(field(&page, "title"));
    }
    assert_eq!(
        seen,
        ["alpha", "Echo", "Delta", "Charlie", "Bravo HR"].map(|s| json!(s))
    );

    let by_version = app
        .catalog_apps(&token, &app.tenant)
        .query("orderBy=deployVersion%20desc,systemName&top=1")
        .json()
        .await;
    assert_eq!(field(&by_version, "systemName"), [json!("Echo")]);

    let found = app
        .catalog_apps(&token, &app.tenant)
        .query("searchText=HR")
        .json()
        .await;
    assert_eq!(found["@odata.count"], 1);
    assert_eq!(field(&found, "title"), [json!("Bravo HR")]);
    let by_system_name = app
        .catalog_apps(&token, &app.tenant)
        .query("searchText=bravo_h")
        .json()
        .await;
    assert_eq!(field(&by_system_name, "systemName"), [json!("Bravo_HR")]);
    let case = app
        .catalog_apps(&token, &app.tenant)
        .query("searchText=ALPHA")
        .json()
        .await;
    assert_eq!(field(&case, "systemName"), [json!("alpha")]);
}

#[tokio::test]
async fn both_folder_feed_types_list_the_tenants_catalogue_and_anything_else_is_a_400() {
    let app = spawn_app().await;
    let token = admin(&app).await;
    catalogue(&app, &["Alpha", "Beta"]).await;
    for feed in ["tenant", "folderHierarchy"] {
        let apps = app
            .catalog_apps(&token, &app.tenant)
            .query(&format!("folderFeedType={feed}"))
            .json()
            .await;
        assert_eq!(apps["@odata.count"], 2, "{feed}");
    }
    let body = app
        .catalog_apps(&token, &app.tenant)
        .query("folderFeedType=folder")
        .problem(400)
        .await;
    assert!(
        body["detail"].as_str().unwrap().contains("folderFeedType"),
        "{body}"
    );
}

#[tokio::test]
async fn published_versions_page_in_a_stable_order_and_count_them_all() {
    let app = spawn_app().await;
    let token = admin(&app).await;
    for v in ["1.0.0", "1.10.0", "1.9.0", "2.0.0-rc.1", "2.0.0"] {
        app.publish("Portal", v).await;
    }
    let versions = |query: &str| {
        app.catalog_versions(&token, "Portal", &app.tenant)
            .query(query)
    };
    let newest_first = versions("").json().await;
    assert_eq!(
        field(&newest_first, "deployVersion"),
        [5, 4, 3, 2, 1].map(|v| json!(v))
    );

    let mut seen = Vec::new();
    for skip in [0, 2, 4] {
        let page = versions(&format!("top=2&skip={skip}&orderBy=packageVersion"))
            .json()
            .await;
        assert_eq!(page["@odata.count"], 5);
        seen.extend(field(&page, "appVersion"));
    }
    assert_eq!(
        seen,
        ["1.0.0", "1.9.0", "1.10.0", "2.0.0-rc.1", "2.0.0"].map(|s| json!(s)),
        "semantic-version precedence, not text order"
    );
    let none = versions("$top=0").json().await;
    assert_eq!(none["@odata.count"], 5);
    assert_eq!(none["value"], json!([]));
    let past_the_end = versions("$skip=10").json().await;
    assert_eq!(past_the_end["value"], json!([]));
}

#[tokio::test]
async fn bad_catalogue_paging_parameters_are_400s_naming_them() {
    let app = spawn_app().await;
    let token = admin(&app).await;
    app.publish("Portal", "1.0.0").await;
    for (query, named) in [
        ("top=1001", "top"),
        ("$top=-1", "top"),
        ("skip=x", "skip"),
        ("orderBy=colour", "colour"),
        ("$orderBy=deployVersion%20sideways", "sideways"),
        ("top=1&$top=2", "top"),
    ] {
        for call in [
            app.catalog_apps(&token, &app.tenant),
            app.catalog_versions(&token, "Portal", &app.tenant),
        ] {
            let body = call.query(query).problem(400).await;
            assert!(
                body["detail"].as_str().unwrap().contains(named),
                "{query}: {body}"
            );
        }
    }
    // A field of the other list is unknown here.
    let body = app
        .catalog_versions(&token, "Portal", &app.tenant)
        .query("orderBy=title")
        .problem(400)
        .await;
    assert!(body["detail"].as_str().unwrap().contains("title"), "{body}");
}

#[tokio::test]
async fn a_malformed_authorization_on_rainbond_routes_names_both_accepted_forms() {
    let app = spawn_app().await;
    let folder = app.folder("Group").await;
    let url = format!(
        "{}/openapi/v1/teams/{}/regions/{}/apps/{}/upgrade",
        app.address, app.tenant, folder.region, folder.id
    );
    let response = app
        .client
        .get(&url)
        .header("Authorization", "Token abc")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["msg_show"]
            .as_str()
            .unwrap()
            .contains("Authorization must be '<token>' or 'Bearer <token>'"),
        "{body}"
    );
    // UiPath routes still take only the bearer form, and say so.
    let uipath = app
        .call(Method::GET, "/models/deployed/apps", "x", Some(&folder.key))
        .authorization(Some("Token abc"))
        .problem(401)
        .await;
    assert!(
        uipath["detail"]
            .as_str()
            .unwrap()
            .contains("Authorization must be 'Bearer <token>'"),
        "{uipath}"
    );

    let doc: Value = app.get_path("/openapi.json").await.json().await.unwrap();
    let scheme = &doc["components"]["securitySchemes"]["apiKey"];
    assert_eq!(
        (&scheme["type"], &scheme["in"], &scheme["name"]),
        (&json!("apiKey"), &json!("header"), &json!("Authorization"))
    );
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let security = operation["security"].as_array().unwrap();
            // `security: []`: a public route (health, tokens, keys), no scheme at all.
            if security.is_empty() {
                continue;
            }
            let names: Vec<&String> = security
                .iter()
                .flat_map(|r| r.as_object().unwrap().keys())
                .collect();
            let rainbond = path.starts_with("/openapi/v1/");
            assert_eq!(
                names.iter().any(|n| *n == "apiKey"),
                rainbond,
                "{method} {path}: {names:?}"
            );
            assert!(names.iter().any(|n| *n == "bearer"), "{method} {path}");
        }
    }
}
