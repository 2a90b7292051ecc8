//! Deploy, list, edit and the routing-name check, and the full lifecycle through HTTP.

use std::collections::HashSet;

use chrono::Utc;
use entity::deployment;
use sea_orm::{EntityTrait, Set};
use serde_json::{Value, json};
use uplift::access::Role;

use crate::helpers::{ALL_SCOPES, READ_SCOPES, WRITE_SCOPES, spawn_app, spawn_app_with};

#[tokio::test]
async fn deploying_creates_a_deployment_with_its_tags_and_a_deploy_event() {
    let app = spawn_app().await;
    let (folder, token) = app.editor_in("Ops", "editor").await;
    app.publish("Portal", "1.0.0").await;
    let deployed = app
        .deploy_call(&token, &folder.key, "Portal", 1)
        .body(json!({"tags": ["prod", "eu"]}))
        .json()
        .await;
    let id = deployed["id"].as_str().unwrap().to_string();
    let listed = app.list_deployed(&token, &folder.key, "").json().await;
    assert_eq!(listed["@odata.count"], 1);
    let item = &listed["value"][0];
    assert_eq!(item["id"], id.as_str());
    assert_eq!(item["appSystemName"], "Portal");
    assert_eq!(item["version"], 1);
    assert_eq!(item["tags"], json!(["eu", "prod"]));
    let keys: HashSet<&str> = item
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        HashSet::from([
            "id",
            "appSystemName",
            "systemName",
            "title",
            "description",
            "version",
            "deployVersion",
            "semVersion",
            "routingName",
            "tags",
            "latestVersion",
            "latestSemVersion",
            "isOutdated"
        ])
    );
    let events = app.events(&id).await;
    assert_eq!(
        (
            events[0].kind.as_str(),
            events[0].from_version,
            events[0].to_version
        ),
        ("deploy", None, 1)
    );
    assert_eq!(events[0].actor, "editor");
}

#[tokio::test]
async fn deploy_refuses_what_cannot_be_deployed_with_a_clear_status() {
    let app = spawn_app().await;
    let (folder, token) = app.editor_in("Ops", "editor").await;
    app.publish("Portal", "1.0.0").await;
    app.publish_in("other-tenant", "Theirs", "1.0.0").await;
    let deploy = |app_name: &str, version: &str, body: Value| {
        app.deploy_call(&token, &folder.key, app_name, version)
            .body(body)
    };
    deploy("Portal", "7", json!({})).problem(404).await;
    let theirs = deploy("Theirs", "1", json!({})).problem(404).await;
    let nothing = deploy("Nothing", "1", json!({})).problem(404).await;
    assert_eq!(
        theirs["detail"].as_str().unwrap().replace("Theirs", "X"),
        nothing["detail"].as_str().unwrap().replace("Nothing", "X"),
        "another tenant's app reads like a missing one"
    );
    deploy("Portal", "one", json!({})).problem(400).await;
    deploy("Portal", "1", json!({"tags": "prod"}))
        .problem(400)
        .await;
    deploy("Portal", "1", json!({"routingName": "portal"}))
        .ok()
        .await;
    deploy("Portal", "1", json!({"routingName": "portal"}))
        .problem(409)
        .await;
    deploy("Portal", "1", json!({"routingName": "Not Valid"}))
        .problem(400)
        .await;
}

#[tokio::test]
async fn each_permission_is_needed_for_its_call() {
    let app = spawn_app().await;
    let fleet = app.fleet().granted("viewer", Role::AutomationUser).await;
    let (folder, [d]) = (&fleet.folder, fleet.each());
    let viewer = app.token("viewer", ALL_SCOPES);
    // Apps.View is enough to list, but not to deploy (Apps.Create) or edit (Apps.Edit).
    app.list_deployed(&viewer, &folder.key, "").ok().await;
    app.deploy_call(&viewer, &folder.key, "Portal", 1)
        .problem(403)
        .await;
    app.edit_deployed(&viewer, &folder.key, &d.id, json!({"title": "x"}))
        .problem(403)
        .await;
    // Without any role in the folder even listing is refused; without a read scope too.
    app.list_deployed(&app.token("stranger", ALL_SCOPES), &folder.key, "")
        .problem(403)
        .await;
    app.list_deployed(&app.token("viewer", WRITE_SCOPES), &folder.key, "")
        .problem(403)
        .await;
}

#[tokio::test]
async fn paging_through_2500_deployments_returns_each_exactly_once_in_a_stable_order() {
    let app = spawn_app().await;
    let (folder, token) = app.editor_in("Ops", "editor").await;
    let published = app.publish("Portal", "1.0.0").await;
    app.publish("Portal", "1.1.0").await;
    let now = Utc::now();
    let rows: Vec<deployment::ActiveModel> = (0..2500)
        .map(|i| deployment::ActiveModel {
            id: Set(uuid::Uuid::new_v4().to_string()),
            tenant_id: Set(app.tenant.clone()),
            folder_id: Set(folder.id),
            app_id: Set(published.app.id),
            version: Set(1 + (i % 2)),
            // Many equal titles: the order must still be total.
            title: Set(format!("App {:02}", i % 7)),
            description: Set(String::new()),
            routing_name: Set(format!("portal-{i}")),
            maintenance_enabled: Set(false),
            maintenance_url: Set(None),
            maintenance_excluded_users: Set("[]".into()),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .collect();
    for chunk in rows.chunks(250) {
        deployment::Entity::insert_many(chunk.to_vec())
            .exec(&app.db)
            .await
            .unwrap();
    }
    for order in [
        "",
        "&orderBy=version desc",
        "&orderBy=title asc,routingName desc",
    ] {
        let mut seen = Vec::new();
        for page in 0..3 {
            let body = app
                .list_deployed(
                    &token,
                    &folder.key,
                    &format!("?top=1000&skip={}{order}", page * 1000),
                )
                .json()
                .await;
            assert_eq!(body["@odata.count"], 2500);
            seen.extend(
                body["value"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v["id"].as_str().unwrap().to_string()),
            );
        }
        let distinct: HashSet<&String> = seen.iter().collect();
        assert_eq!(
            (seen.len(), distinct.len()),
            (2500, 2500),
            "order {order:?}"
        );
    }
    let newest = app
        .list_deployed(&token, &folder.key, "?top=3&orderBy=version desc")
        .json()
        .await;
    assert!(
        newest["value"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["version"] == 2)
    );
}

#[tokio::test]
async fn list_filters_by_search_text_and_tags_within_the_folder_only() {
    let app = spawn_app().await;
    let (folder, token) = app.editor_in("Ops", "editor").await;
    let other = app.folder("Other").await;
    app.publish("Portal", "1.0.0").await;
    let token_body = |title: &str, tags: Value| json!({"title": title, "tags": tags});
    for (title, tags) in [
        ("Payroll EU", json!(["prod", "eu"])),
        ("Payroll US", json!(["prod"])),
        ("Docs 100%", json!([])),
    ] {
        app.deploy_call(&token, &folder.key, "Portal", 1)
            .body(token_body(title, tags))
            .ok()
            .await;
    }
    app.deploy(&other, "Portal", 1).await;
    let all = app.listed_titles(&token, &folder.key, "").await;
    assert_eq!(all, ["Docs 100%", "Payroll EU", "Payroll US"]);
    let search = app
        .listed_titles(&token, &folder.key, "?searchText=payroll")
        .await;
    assert_eq!(search, ["Payroll EU", "Payroll US"]);
    let literal = app
        .listed_titles(&token, &folder.key, "?searchText=0%25")
        .await;
    assert_eq!(
        literal,
        ["Docs 100%"],
        "% in the search text is a literal character"
    );
    let tagged = app
        .listed_titles(&token, &folder.key, "?tags=prod,eu")
        .await;
    assert_eq!(
        tagged,
        ["Payroll EU"],
        "a deployment must carry every listed tag"
    );
}

#[tokio::test]
async fn list_parameters_out_of_bounds_are_a_400_naming_the_parameter() {
    let app = spawn_app().await;
    let (folder, token) = app.editor_in("Ops", "editor").await;
    for (query, named) in [
        ("?top=1001", "top"),
        ("?top=-1", "top"),
        ("?top=ten", "top"),
        ("?skip=-5", "skip"),
        ("?orderBy=colour", "colour"),
        ("?orderBy=title%20sideways", "sideways"),
    ] {
        let body = app
            .list_deployed(&token, &folder.key, query)
            .problem(400)
            .await;
        assert!(
            body["detail"].as_str().unwrap().contains(named),
            "{query}: {body}"
        );
    }
}

#[tokio::test]
async fn editing_changes_fields_and_moves_only_to_a_published_version_with_an_edit_event() {
    let app = spawn_app().await;
    let (folder, token) = app.editor_in("Ops", "editor").await;
    for v in ["1.0.0", "1.1.0", "1.2.0"] {
        app.publish("Portal", v).await;
    }
    let d = app.deploy(&folder, "Portal", 1).await;
    uplift::service::catalog::unpublish(&app.db, &app.tenant, "Portal", 3)
        .await
        .unwrap();
    let patch = |body: Value| app.edit_deployed(&token, &folder.key, &d.id, body);

    let body = patch(json!({
        "version": 2,
        "title": "Portal (EU)",
        "description": "Customer portal",
        "tags": ["eu"],
        "maintenanceModeData": {"isMaintenanceModeEnabled": true, "maintenanceModeUrl": "https://status.example.org", "maintenanceExcludedUsers": ["ops@example.org"]}
    }))
    .json()
    .await;
    assert_eq!(
        (
            body["version"].clone(),
            body["title"].clone(),
            body["tags"].clone()
        ),
        (json!(2), json!("Portal (EU)"), json!(["eu"]))
    );
    assert_eq!(
        body["maintenanceModeData"]["maintenanceExcludedUsers"],
        json!(["ops@example.org"])
    );
    let events = app.events(&d.id).await;
    assert_eq!(
        (
            events[1].kind.as_str(),
            events[1].from_version,
            events[1].to_version
        ),
        ("edit", Some(1), 2)
    );

    let refused = patch(json!({"version": 3})).problem(400).await;
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("not published")
    );
    patch(json!({"version": 9})).problem(400).await;
    patch(json!({"title": ""})).problem(400).await;
    patch(json!({"version": "two"})).problem(400).await;
    patch(json!({"maintenanceModeData": {"maintenanceModeUrl": "ftp://x"}}))
        .problem(400)
        .await;
    assert_eq!(
        app.deployment(&d.id).await.version,
        2,
        "refused edits change nothing"
    );
    assert_eq!(app.events(&d.id).await.len(), 2);

    patch(json!({"title": "Portal (EU)"})).ok().await;
    assert_eq!(
        app.events(&d.id).await.len(),
        2,
        "an edit that changes nothing writes no event"
    );
}

#[tokio::test]
async fn another_folders_or_tenants_deployment_cannot_be_edited_and_reads_like_a_missing_one() {
    let app = spawn_app().await;
    let (folder, token) = app.editor_in("Ops", "editor").await;
    let other = app.folder("Other").await;
    app.publish("Portal", "1.0.0").await;
    let elsewhere = app.deploy(&other, "Portal", 1).await;
    let theirs_folder = app.folder_in("other-tenant", "Theirs").await;
    app.publish_in("other-tenant", "Portal", "1.0.0").await;
    let theirs = app.deploy(&theirs_folder, "Portal", 1).await;
    let mut details = HashSet::new();
    for id in [
        elsewhere.id.clone(),
        theirs.id.clone(),
        uuid::Uuid::new_v4().to_string(),
        "junk".into(),
    ] {
        let body = app
            .edit_deployed(&token, &folder.key, &id, json!({"title": "hijacked"}))
            .problem(404)
            .await;
        details.insert(body["detail"].as_str().unwrap().replace(&id, "ID"));
    }
    assert_eq!(details.len(), 1, "{details:?}");
    assert_eq!(app.deployment(&elsewhere.id).await.title, "Portal");
    assert_eq!(app.deployment(&theirs.id).await.title, "Portal");
}

#[tokio::test]
async fn the_name_check_says_whether_a_routing_name_is_free_in_the_tenant() {
    let app = spawn_app().await;
    let (folder, token) = app.editor_in("Ops", "editor").await;
    app.publish("Portal", "1.0.0").await;
    app.deploy_call(&token, &folder.key, "Portal", 1)
        .body(json!({"routingName": "portal"}))
        .send()
        .await;
    let theirs_folder = app.folder_in("other-tenant", "Theirs").await;
    app.publish_in("other-tenant", "X", "1.0.0").await;
    uplift::service::deployments::deploy(
        &app.db,
        &theirs_folder,
        "X",
        1,
        uplift::service::deployments::DeployOptions {
            routing_name: Some(uplift::domain::RoutingName::parse("theirs").unwrap()),
            ..Default::default()
        },
        &uplift::service::Actor::new("x", None),
    )
    .await
    .unwrap();
    let reader = app.token("editor", READ_SCOPES);
    for (name, free) in [("portal", false), ("portal-2", true), ("theirs", true)] {
        let body: Value = app.name_check(&reader, name).json().await;
        assert_eq!(body, json!({"routingName": name, "isUnique": free}));
    }
    app.name_check(&reader, "Bad%20Name").problem(400).await;
}

#[tokio::test]
async fn the_full_lifecycle_publish_deploy_publish_upgrade_list_works_through_http() {
    let app = spawn_app().await;
    let (folder, token) = app.editor_in("Ops", "editor").await;
    app.grant("release-bot", Role::Administrator, None).await;
    let release = app.token("release-bot", "Apps.Write");
    let publish = |version: &str| {
        app.publish_call(&release, "Portal", version)
            .field("tenantName", "Default")
            .send()
    };
    assert_eq!(
        publish("1.0.0").await.json::<Value>().await.unwrap()["deployVersion"],
        1
    );
    let mut ids = Vec::new();
    for _ in 0..3 {
        let response = app
            .deploy_call(&token, &folder.key, "Portal", 1)
            .send()
            .await;
        ids.push(
            response.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(
        publish("1.1.0").await.json::<Value>().await.unwrap()["deployVersion"],
        2
    );
    let upgraded: Value = app.bulk_call(&token, &folder.key, &ids).json().await;
    assert_eq!(upgraded["updatedDeployments"].as_array().unwrap().len(), 3);
    let listed: Value = app.list_deployed(&token, &folder.key, "").json().await;
    assert!(
        listed["value"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["version"] == 2),
        "{listed}"
    );
}

#[tokio::test]
async fn search_text_also_matches_the_apps_system_name_of_this_tenant_only() {
    let app = spawn_app().await;
    let (folder, token) = app.editor_in("Ops", "editor").await;
    let portal = app.publish("Portal", "1.0.0").await.app.system_name;
    let ledger = app.publish("General Ledger", "1.0.0").await.app.system_name;
    // Titles that say nothing of the app, so only its system name can match.
    let mut deployed = Vec::new();
    for system_name in [&portal, &ledger] {
        let body = app
            .deploy_call(&token, &folder.key, system_name, 1)
            .body(json!({"title": "Books"}))
            .json()
            .await;
        deployed.push(body["id"].as_str().unwrap().to_string());
    }
    // Another tenant's app of the same name must not widen the match.
    app.publish_in("tenant-elsewhere", "Portal Ledger", "1.0.0")
        .await;

    let ids = |body: Value| -> Vec<String> {
        body["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["id"].as_str().unwrap().to_string())
            .collect()
    };
    let by_app = ids(
        // `_` is literal, and only the system name has one (`General_Ledger`; the
        // routing name is `general-ledger-…`).
        app.list_deployed(&token, &folder.key, "?searchText=AL_LED")
            .json()
            .await,
    );
    let by_none = ids(app
        .list_deployed(&token, &folder.key, "?searchText=nothing-like-this")
        .json()
        .await);

    assert_eq!(by_app, [deployed[1].clone()]);
    assert!(by_none.is_empty());
}

#[tokio::test]
async fn a_tag_with_a_comma_is_refused_since_a_tags_filter_could_never_find_it() {
    let app = spawn_app().await;
    let (folder, token) = app.editor_in("Ops", "editor").await;
    app.publish("Portal", "1.0.0").await;
    let body = app
        .deploy_call(&token, &folder.key, "Portal", 1)
        .body(json!({"tags": ["prod,eu"]}))
        .problem(400)
        .await;
    assert!(body["detail"].as_str().unwrap().contains("comma"), "{body}");
    let deployed = app
        .deploy_call(&token, &folder.key, "Portal", 1)
        .body(json!({"tags": ["prod"]}))
        .json()
        .await;
    let id = deployed["id"].as_str().unwrap();
    let body = app
        .edit_deployed(&token, &folder.key, id, json!({"tags": ["a,b"]}))
        .problem(400)
        .await;
    assert!(body["detail"].as_str().unwrap().contains("comma"), "{body}");
    let listed = app.list_deployed(&token, &folder.key, "").json().await;
    assert_eq!(listed["value"][0]["tags"], json!(["prod"]));
}

#[tokio::test]
async fn search_finds_non_ascii_titles_spelled_exactly_or_in_lower_case() {
    let app = spawn_app().await;
    let (folder, token) = app.editor_in("Ops", "editor").await;
    app.publish("Portal", "1.0.0").await;
    for title in ["Émile Zürich", "ÅSA ÖRE", "Plain"] {
        app.deploy_call(&token, &folder.key, "Portal", 1)
            .body(json!({"title": title}))
            .ok()
            .await;
    }
    for (search, found) in [
        ("Émile", "Émile Zürich"),
        ("Zürich", "Émile Zürich"),
        ("émile", "Émile Zürich"),
        ("zürich", "Émile Zürich"),
        ("ÉMILE", "Émile Zürich"),
        ("ÅSA ÖRE", "ÅSA ÖRE"),
        ("åsa öre", "ÅSA ÖRE"),
        ("ÅSA", "ÅSA ÖRE"),
    ] {
        let query = format!(
            "?searchText={}",
            form_urlencoded::byte_serialize(search.as_bytes()).collect::<String>()
        );
        let listed = app.listed_titles(&token, &folder.key, &query).await;
        assert_eq!(listed, [found], "search {search:?}");
    }
}

#[tokio::test]
async fn the_odata_context_ignores_forwarded_headers_unless_they_come_from_a_trusted_proxy() {
    for trusted in [false, true] {
        let app = spawn_app_with(|s| {
            if trusted {
                s.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
            }
        })
        .await;
        let (folder, token) = app.editor_in("Ops", "editor").await;
        let forged = app
            .list_deployed(&token, &folder.key, "")
            .header("X-Forwarded-Host", "evil.example")
            .header("X-Forwarded-Proto", "https")
            .json()
            .await;
        let also_forged = app
            .list_deployed(&token, &folder.key, "")
            .header("Forwarded", "host=evil.example;proto=https")
            .json()
            .await;
        let plain = app.list_deployed(&token, &folder.key, "").json().await;
        let base = format!("{}/$metadata#DeployedApps", app.base);
        assert_eq!(plain["@odata.context"], base.as_str());
        for body in [forged, also_forged] {
            let context = body["@odata.context"].as_str().unwrap();
            if trusted {
                assert!(
                    context.starts_with("https://evil.example/"),
                    "a trusted proxy's headers are believed: {context}"
                );
            } else {
                assert_eq!(context, base, "a client's X-Forwarded-* is not believed");
            }
        }
    }
}
