use entity::app_version;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, sea_query::Expr};
use serde_json::{Value, json};
use uplift::access::Role;

use crate::fixtures::failure_codes;
use crate::helpers::{assert_history_chains, assert_problem, ids, is_postgres, spawn_app};

#[tokio::test]
async fn bulk_upgrade_moves_deployments_to_the_latest_published_version_with_uipaths_answer_shape()
{
    let app = spawn_app().await;
    let fleet = app
        .fleet()
        .in_folder("Finance")
        .administered_by("ci-bot")
        .of("Invoice Portal", "1.0.0")
        .deployments(2)
        .newer("1.1.0")
        .newer("2.0.0")
        .await;
    let (folder, system_name) = (&fleet.folder, &fleet.system_name);
    let [first, second] = fleet.each();

    let body = app.bulk_json("ci-bot", &folder.key, &fleet.ids()).await;

    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["failedItems", "failures", "updatedDeployments"]);
    assert_eq!(
        body["updatedDeployments"],
        json!([
            {"id": first.id, "appSystemName": system_name, "version": 3, "previousVersion": 1},
            {"id": second.id, "appSystemName": system_name, "version": 3, "previousVersion": 1},
        ])
    );
    assert_eq!(body["failedItems"], json!([]));
    assert_eq!(body["failures"], json!([]));
    for d in [first, second] {
        assert_eq!(app.deployment(&d.id).await.version, 3);
        let events = app.events(&d.id).await;
        assert_eq!(events.len(), 2, "a deploy event and one upgrade event");
        assert_eq!(
            (
                events[1].kind.as_str(),
                events[1].from_version,
                events[1].to_version
            ),
            ("upgrade", Some(1), 3)
        );
        assert_eq!(events[1].actor, "ci-bot");
        assert!(events[1].request_id.is_some());
    }
}

#[tokio::test]
async fn a_mixed_batch_reports_every_item_in_request_order_with_a_reason_per_failure() {
    let app = spawn_app().await;
    let folder = app.folder("Ops").await;
    let elsewhere = app.folder("Elsewhere").await;
    app.grant("ci-bot", Role::FolderAdministrator, Some(&folder))
        .await;
    let portal = app.publish("Portal", "1.0.0").await.app.system_name;
    let upgradable = app.deploy(&folder, &portal, 1).await;
    app.publish("Portal", "1.1.0").await;
    let current = app.deploy(&folder, &portal, 2).await;
    let in_other_folder = app.deploy(&elsewhere, &portal, 1).await;
    let other_tenant = "other-tenant";
    let foreign_folder = app.folder_in(other_tenant, "Theirs").await;
    let theirs = app
        .publish_in(other_tenant, "Portal", "1.0.0")
        .await
        .app
        .system_name;
    let foreign = app.deploy(&foreign_folder, &theirs, 1).await;
    let withdrawn = app.publish("Withdrawn", "1.0.0").await;
    let orphan = app.deploy(&folder, &withdrawn.app.system_name, 1).await;
    app_version::Entity::update_many()
        .col_expr(app_version::Column::Published, Expr::value(false))
        .filter(app_version::Column::AppId.eq(withdrawn.app.id))
        .exec(&app.db)
        .await
        .unwrap();
    let unknown = uuid::Uuid::new_v4().to_string();

    let request: Vec<String> = vec![
        upgradable.id.clone(),
        current.id.clone(),
        unknown.clone(),
        "not-a-uuid".into(),
        in_other_folder.id.clone(),
        foreign.id.clone(),
        orphan.id.clone(),
        upgradable.id.to_uppercase(),
        current.id.clone(),
    ];
    let body = app.bulk_json("ci-bot", &folder.key, &request).await;

    assert_eq!(
        body["updatedDeployments"],
        json!([
            {"id": upgradable.id, "appSystemName": portal, "version": 2, "previousVersion": 1},
            {"id": current.id, "appSystemName": portal, "version": 2, "previousVersion": 2},
        ])
    );
    assert_eq!(
        body["failedItems"],
        json!([
            unknown,
            "not-a-uuid",
            in_other_folder.id,
            foreign.id,
            orphan.id
        ])
    );
    let codes = failure_codes(&body);
    assert_eq!(
        codes,
        [
            "not_found",
            "not_found",
            "not_found",
            "not_found",
            "no_published_version"
        ]
    );
    // Another folder's and another tenant's deployments read exactly like unknown ids.
    let failures = body["failures"].as_array().unwrap();
    assert_eq!(failures[0]["message"], failures[2]["message"]);
    assert_eq!(failures[0]["message"], failures[3]["message"]);
    // Nothing outside the folder moved, and the duplicate was processed once.
    assert_eq!(app.deployment(&in_other_folder.id).await.version, 1);
    assert_eq!(app.deployment(&foreign.id).await.version, 1);
    assert_eq!(app.events(&upgradable.id).await.len(), 2);
    assert_eq!(
        app.events(&current.id).await.len(),
        1,
        "already on the latest version: no event"
    );
}

#[tokio::test]
async fn an_item_whose_transaction_fails_rolls_back_alone_while_its_neighbours_commit() {
    let app = spawn_app().await;
    let fleet = app.outdated_fleet("ci-bot", 3).await;
    let [before, doomed, after] = fleet.each();
    inject_event_failure(&app, &doomed.id).await;

    let body = app
        .bulk_json("ci-bot", &fleet.folder.key, &fleet.ids())
        .await;

    assert_eq!(body["failedItems"], json!([doomed.id]));
    assert_eq!(body["failures"][0]["code"], "internal");
    let updated: Vec<&Value> = body["updatedDeployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| &u["id"])
        .collect();
    assert_eq!(updated, [&json!(before.id), &json!(after.id)]);
    // The version change was written before the event insert failed: both are gone.
    assert_eq!(app.deployment(&doomed.id).await.version, 1);
    assert_eq!(app.events(&doomed.id).await.len(), 1);
    for ok in [before, after] {
        assert_eq!(app.deployment(&ok.id).await.version, 2);
        assert_eq!(app.events(&ok.id).await.len(), 2);
    }
}

/// Makes the database itself refuse the history row of one deployment.
pub async fn inject_event_failure(app: &crate::helpers::TestApp, deployment_id: &str) {
    if is_postgres() {
        app.db
            .execute_unprepared(&format!(
                "CREATE FUNCTION fail_event() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 IF NEW.deployment_id = '{deployment_id}' THEN RAISE EXCEPTION 'injected failure'; END IF; \
                 RETURN NEW; END $$"
            ))
            .await
            .unwrap();
        app.db
            .execute_unprepared(
                "CREATE TRIGGER fail_event BEFORE INSERT ON deployment_events FOR EACH ROW EXECUTE FUNCTION fail_event()",
            )
            .await
            .unwrap();
    } else {
        app.db
            .execute_unprepared(&format!(
                "CREATE TRIGGER fail_event BEFORE INSERT ON deployment_events \
                 WHEN NEW.deployment_id = '{deployment_id}' BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
            ))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn an_empty_list_is_a_200_with_nothing_done() {
    let app = spawn_app().await;
    let folder = app
        .granted_folder("Ops", "ci-bot", Role::FolderAdministrator)
        .await;
    let body = app.bulk_json("ci-bot", &folder.key, &[]).await;
    assert_eq!(
        body,
        json!({"updatedDeployments": [], "failedItems": [], "failures": []})
    );
}

#[tokio::test]
async fn unknown_json_fields_are_ignored() {
    let app = spawn_app().await;
    let folder = app
        .granted_folder("Ops", "ci-bot", Role::FolderAdministrator)
        .await;
    app.bulk_as("ci-bot", &folder.key, &[])
        .field("comment", "from a newer client")
        .ok()
        .await;
}

#[tokio::test]
async fn a_retried_bulk_call_reports_no_failures_and_writes_no_new_events() {
    let app = spawn_app().await;
    let fleet = app.fleet().administered_by("ci-bot").newer("1.0.1").await;
    let [d] = fleet.each();
    let first = app.bulk_json("ci-bot", &fleet.folder.key, &ids(&[d])).await;
    let retry = app.bulk_json("ci-bot", &fleet.folder.key, &ids(&[d])).await;
    assert_eq!(first["updatedDeployments"][0]["version"], 2);
    assert_eq!(retry["updatedDeployments"][0]["version"], 2);
    assert_eq!(retry["updatedDeployments"][0]["previousVersion"], 2);
    assert_eq!(retry["failedItems"], json!([]));
    assert_eq!(app.events(&d.id).await.len(), 2);
}

#[tokio::test]
async fn the_request_id_sent_by_the_client_is_echoed_and_recorded_in_the_history() {
    let app = spawn_app().await;
    let fleet = app.fleet().administered_by("ci-bot").newer("1.0.1").await;
    let [d] = fleet.each();
    let response = app
        .bulk_as("ci-bot", &fleet.folder.key, &ids(&[d]))
        .header("X-Request-Id", "pipeline-42")
        .send()
        .await;
    assert_eq!(response.headers()["x-request-id"], "pipeline-42");
    assert_eq!(
        app.events(&d.id).await[1].request_id.as_deref(),
        Some("pipeline-42")
    );
}

#[tokio::test]
async fn unknown_routes_answer_404_as_problem_json() {
    let app = spawn_app().await;
    let response = app.get_path("/nowhere").await;
    let body = assert_problem(response, 404).await;
    assert!(body["detail"].as_str().unwrap().contains("/nowhere"));
}

#[tokio::test]
async fn health_and_readiness_answer_200() {
    let app = spawn_app().await;
    for path in ["/healthz", "/readyz"] {
        let response = app.get_path(path).await;
        assert_eq!(response.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn a_wrong_method_on_a_known_path_answers_405_with_the_allowed_methods() {
    let app = spawn_app().await;
    let response = app.client.get(app.bulk_url()).send().await.unwrap();
    let allow = response.headers()["allow"].to_str().unwrap().to_string();
    let body = assert_problem(response, 405).await;
    assert_eq!(allow, "POST");
    assert!(body["detail"].as_str().unwrap().contains("use POST"));
    let id = uuid::Uuid::new_v4();
    let response = app
        .client
        .delete(format!("{}/models/deployed/apps/{id}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["allow"], "PATCH");
    assert_problem(response, 405).await;
    let response = app
        .client
        .post(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["allow"], "GET");
    assert_problem(response, 405).await;
}

#[tokio::test]
async fn an_upgrade_is_never_timed_before_the_version_it_moves_to_was_published() {
    let app = spawn_app().await;
    let (folder, deployment) = app.upgradable_deployment("ci-bot").await;
    // A publish whose time is later than the upgrade's own clock reading: a replica
    // whose clock runs ahead, or (PostgreSQL) a version committed while the upgrade
    // waited for a connection after reading its clock.
    // Microseconds: what PostgreSQL keeps.
    let published_at =
        chrono::SubsecRound::trunc_subsecs(chrono::Utc::now() + chrono::Duration::hours(1), 6);
    app_version::Entity::update_many()
        .col_expr(app_version::Column::PublishedAt, Expr::value(published_at))
        .filter(app_version::Column::Version.eq(2))
        .exec(&app.db)
        .await
        .unwrap();

    let body = app
        .bulk_json("ci-bot", &folder.key, &ids(&[&deployment]))
        .await;

    assert_eq!(body["updatedDeployments"][0]["version"], 2, "{body}");
    let upgrade = app.events(&deployment.id).await.pop().unwrap();
    assert_eq!(upgrade.kind, "upgrade");
    assert!(
        upgrade.created_at >= published_at,
        "event at {} before the publish at {published_at}",
        upgrade.created_at
    );
    assert_eq!(
        app.deployment(&deployment.id).await.updated_at,
        upgrade.created_at
    );
}

#[tokio::test]
async fn seeded_volume_deployments_are_all_upgradable_with_the_printed_token() {
    let app = spawn_app().await;
    let ids_file = tempfile::NamedTempFile::new().unwrap();
    let mut seed = app.uplift_command();
    seed.args(["seed", "--deployments", "30", "--apps", "3", "--ids-file"])
        .arg(ids_file.path());

    let output = crate::helpers::run_cli(seed, None).await;

    assert_eq!(output.code, 0, "{}", output.stderr);
    let summary: Value = serde_json::from_str(&output.stdout).unwrap();
    let ids: Vec<String> = std::fs::read_to_string(ids_file.path())
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(ids.len(), 30);
    assert_eq!(summary["deployments"], 30);
    let token = summary["token"].as_str().unwrap();
    let tenant = summary["tenantId"].as_str().unwrap();
    let body = app
        .bulk_call(token, summary["folderKey"].as_str().unwrap(), &ids)
        .tenant(Some(tenant))
        .json()
        .await;
    assert_eq!(body["failedItems"], json!([]));
    let moved = body["updatedDeployments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["version"] == 3 && u["previousVersion"] != 3)
        .count();
    assert_eq!(moved, 30, "every seeded deployment had an upgrade waiting");
    assert_history_chains(&app.db).await;
}
