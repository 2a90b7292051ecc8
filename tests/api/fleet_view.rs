//! What the console's fleet view reads from the API: the deployed-apps list with each
//! deployment's latest published version and out-of-date mark, its app and
//! `outdated` filters, the per-app version counts, and the folders a caller may see.

use serde_json::{Value, json};
use uplift::access::Role;

use crate::helpers::{ALL_SCOPES, READ_SCOPES, spawn_app};

fn ids_of(list: &Value) -> Vec<String> {
    let mut ids: Vec<String> = list["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn the_list_marks_each_deployment_with_its_latest_published_version_and_whether_it_is_behind()
{
    let app = spawn_app().await;
    let fleet = app
        .fleet()
        .administered_by("editor")
        .deployments(3)
        .newer("1.1.0")
        .newer("2.0.0")
        .await;
    let token = app.token("editor", ALL_SCOPES);
    let [first, _, _] = fleet.each();
    app.bulk_call(&token, &fleet.folder.key, std::slice::from_ref(&first.id))
        .ok()
        .await;
    // A version published but then withdrawn is not "latest".
    app.publish("Portal", "3.0.0").await;
    app.withdraw_version(&fleet.system_name, 4).await;

    let list = app
        .list_deployed(&token, &fleet.folder.key, "")
        .json()
        .await;
    assert_eq!(list["@odata.count"], 3);
    for item in list["value"].as_array().unwrap() {
        assert_eq!(item["latestVersion"], 3, "{item}");
        assert_eq!(item["latestSemVersion"], "2.0.0", "{item}");
        let upgraded = item["id"] == first.id.as_str();
        assert_eq!(item["version"], if upgraded { 3 } else { 1 });
        assert_eq!(item["isOutdated"], !upgraded, "{item}");
    }
}

#[tokio::test]
async fn a_deployment_of_an_app_with_no_published_version_left_is_not_outdated() {
    let app = spawn_app().await;
    let fleet = app.fleet().administered_by("editor").await;
    let token = app.token("editor", ALL_SCOPES);
    app.withdraw_version(&fleet.system_name, 1).await;
    let list = app
        .list_deployed(&token, &fleet.folder.key, "")
        .json()
        .await;
    let item = &list["value"][0];
    assert_eq!(item["latestVersion"], Value::Null);
    assert_eq!(item["latestSemVersion"], Value::Null);
    assert_eq!(item["isOutdated"], false);
    let behind = app
        .list_deployed(&token, &fleet.folder.key, "outdated=true")
        .json()
        .await;
    assert_eq!(behind["@odata.count"], 0);
    let current = app
        .list_deployed(&token, &fleet.folder.key, "outdated=false")
        .json()
        .await;
    assert_eq!(current["@odata.count"], 1);
}

#[tokio::test]
async fn outdated_and_app_filters_select_in_the_database_and_count_what_they_select() {
    let app = spawn_app().await;
    let fleet = app.outdated_fleet("editor", 4).await;
    let token = app.token("editor", ALL_SCOPES);
    let other = app.publish("Ledger", "1.0.0").await;
    let ledger = app.deploy(&fleet.folder, &other.app.system_name, 1).await;
    let [a, b, _, _] = fleet.each();
    app.bulk_call(&token, &fleet.folder.key, &[a.id.clone(), b.id.clone()])
        .ok()
        .await;
    let key = &fleet.folder.key;

    let behind = app
        .list_deployed(&token, key, "outdated=true&top=1")
        .json()
        .await;
    assert_eq!(
        behind["@odata.count"], 2,
        "the count is of every match, not the page"
    );
    assert_eq!(behind["value"].as_array().unwrap().len(), 1);
    let behind = app.list_deployed(&token, key, "outdated=true").json().await;
    let mut expected: Vec<String> = fleet.ids()[2..].to_vec();
    expected.sort();
    assert_eq!(ids_of(&behind), expected);

    let current = app
        .list_deployed(&token, key, "outdated=false")
        .json()
        .await;
    let mut expected = vec![a.id.clone(), b.id.clone(), ledger.id.clone()];
    expected.sort();
    assert_eq!(ids_of(&current), expected);

    let ledgers = app
        .list_deployed(
            &token,
            key,
            &format!("appSystemNames={}", other.app.system_name),
        )
        .json()
        .await;
    assert_eq!(ids_of(&ledgers), vec![ledger.id.clone()]);
    let both = app
        .list_deployed(
            &token,
            key,
            &format!("appSystemNames=Portal,{},Unknown", other.app.system_name),
        )
        .json()
        .await;
    assert_eq!(both["@odata.count"], 5);
    let none = app
        .list_deployed(&token, key, "appSystemNames=Unknown&outdated=true")
        .json()
        .await;
    assert_eq!(none["@odata.count"], 0);
    let portal_behind = app
        .list_deployed(
            &token,
            key,
            "appSystemNames=Portal&outdated=true&orderBy=version desc",
        )
        .json()
        .await;
    assert_eq!(portal_behind["@odata.count"], 2);
}

#[tokio::test]
async fn a_malformed_outdated_flag_or_too_many_app_names_is_a_bad_request_naming_it() {
    let app = spawn_app().await;
    let fleet = app.fleet().administered_by("editor").await;
    let token = app.token("editor", ALL_SCOPES);
    let problem = app
        .list_deployed(&token, &fleet.folder.key, "outdated=maybe")
        .problem(400)
        .await;
    assert!(
        problem["detail"].as_str().unwrap().contains("outdated"),
        "{problem}"
    );
    let names: Vec<String> = (0..1001).map(|i| format!("a{i}")).collect();
    let problem = app
        .list_deployed(
            &token,
            &fleet.folder.key,
            &format!("appSystemNames={}", names.join(",")),
        )
        .problem(400)
        .await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("appSystemNames"),
        "{problem}"
    );
}

#[tokio::test]
async fn version_counts_give_each_app_its_deployments_per_version_and_its_latest() {
    let app = spawn_app().await;
    let fleet = app
        .fleet()
        .granted("viewer", Role::AutomationUser)
        .administered_by("editor")
        .deployments(3)
        .newer("1.1.0")
        .await;
    let editor = app.token("editor", ALL_SCOPES);
    let [a, _, _] = fleet.each();
    app.bulk_call(&editor, &fleet.folder.key, std::slice::from_ref(&a.id))
        .ok()
        .await;
    let ledger = app.publish("Ledger", "0.1.0").await;
    app.deploy(&fleet.folder, &ledger.app.system_name, 1).await;
    // Another folder's deployments are not counted.
    let elsewhere = app.folder("Elsewhere").await;
    app.deploy(&elsewhere, &fleet.system_name, 1).await;

    let viewer = app.token("viewer", READ_SCOPES);
    let counts = app.version_counts(&viewer, &fleet.folder.key).json().await;
    assert_eq!(
        counts,
        json!({"value": [
            {"appSystemName": ledger.app.system_name, "latestVersion": 1, "latestSemVersion": "0.1.0",
             "versions": [{"version": 1, "semVersion": "0.1.0", "count": 1}]},
            {"appSystemName": fleet.system_name, "latestVersion": 2, "latestSemVersion": "1.1.0",
             "versions": [{"version": 1, "semVersion": "1.0.0", "count": 2},
                          {"version": 2, "semVersion": "1.1.0", "count": 1}]},
        ]})
    );
    let stranger = app.token("stranger", READ_SCOPES);
    app.version_counts(&stranger, &fleet.folder.key)
        .problem(403)
        .await;
}

#[tokio::test]
async fn the_folder_list_shows_only_folders_where_the_caller_may_view_apps_with_their_subfolders() {
    let app = spawn_app().await;
    let ops = app.folder("Ops").await;
    let payroll = app.subfolder("Payroll", &ops).await;
    let eu = app.subfolder("EU", &payroll).await;
    let finance = app.folder("Finance").await;
    app.folder_in("another-tenant", "Theirs").await;
    app.grant("viewer", Role::AutomationUser, Some(&payroll))
        .await;
    app.grant("admin", Role::Administrator, None).await;

    let viewer = app.token("viewer", READ_SCOPES);
    let listed = app.folders(&viewer, "").json().await;
    assert_eq!(listed["@odata.count"], 2);
    assert_eq!(
        listed["value"],
        json!([
            // Ops is not the viewer's: Payroll is a top folder for them.
            {"key": payroll.key, "displayName": "Payroll", "fullyQualifiedName": "Payroll", "parentKey": null},
            {"key": eu.key, "displayName": "EU", "fullyQualifiedName": "Payroll/EU", "parentKey": payroll.key},
        ])
    );

    let admin = app.token("admin", READ_SCOPES);
    let listed = app.folders(&admin, "").json().await;
    let names: Vec<&str> = listed["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["fullyQualifiedName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Ops", "Ops/Payroll", "Ops/Payroll/EU", "Finance"]);
    assert_eq!(listed["value"][1]["parentKey"], ops.key.as_str());
    assert_eq!(listed["value"][3]["key"], finance.key.as_str());

    let page = app.folders(&admin, "top=1&skip=1").json().await;
    assert_eq!(page["@odata.count"], 4);
    assert_eq!(page["value"].as_array().unwrap().len(), 1);
    assert_eq!(page["value"][0]["key"], payroll.key.as_str());

    let nobody = app.token("nobody", READ_SCOPES);
    let listed = app.folders(&nobody, "").json().await;
    assert_eq!(listed["@odata.count"], 0);
    assert_eq!(listed["value"], json!([]));
}

#[tokio::test]
async fn the_folder_list_needs_a_read_scope_and_refuses_bad_paging() {
    let app = spawn_app().await;
    app.grant("admin", Role::Administrator, None).await;
    let scopeless = app.token("admin", "OR.Folders.Read");
    let problem = app.folders(&scopeless, "").problem(403).await;
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .ends_with("insufficient-scope"),
        "{problem}"
    );
    let token = app.token("admin", READ_SCOPES);
    let problem = app.folders(&token, "top=ten").problem(400).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("top"),
        "{problem}"
    );
    app.folders("not-a-token", "").problem(401).await;
}
