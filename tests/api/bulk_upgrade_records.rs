//! What a bulk upgrade writes beside the move: one `upgrade` event and one outbox row
//! per deployment that moved, with the same time as the row's `updated_at`, and nothing
//! for an item that did not move (on SQLite the reads and writes of an item go to the
//! database together, so these check that every write matched exactly the moved rows).

use entity::{deployment, webhook_event};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, sea_query::Expr};
use serde_json::json;
use uplift::access::Role;

use crate::fixtures::failure_codes;
use crate::helpers::{TestApp, ids, spawn_app};

async fn outbox_rows(app: &TestApp, deployment_id: &str) -> Vec<webhook_event::Model> {
    webhook_event::Entity::find()
        .filter(webhook_event::Column::DeploymentId.eq(deployment_id))
        .order_by_asc(webhook_event::Column::Seq)
        .all(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn each_moved_deployment_gets_its_upgrade_event_and_outbox_row_at_the_time_of_the_move() {
    let app = spawn_app().await;
    let fleet = app
        .fleet()
        .administered_by("ci-bot")
        .deployments(2)
        .newer("1.1.0")
        .newer("2.0.0")
        .await;
    let [first, second] = fleet.each();
    let current = app.deploy(&fleet.folder, &fleet.system_name, 3).await;
    let mut request = fleet.ids();
    request.push(current.id.clone());

    let response = app
        .bulk_as("ci-bot", &fleet.folder.key, &request)
        .header("X-Request-Id", "release-7")
        .send()
        .await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();

    assert_eq!(body["failedItems"], json!([]));
    assert_eq!(body["updatedDeployments"][2]["version"], 3);
    assert_eq!(body["updatedDeployments"][2]["previousVersion"], 3);
    for d in [first, second] {
        let moved = app.deployment(&d.id).await;
        assert_eq!(moved.version, 3);
        let events = app.events(&d.id).await;
        assert_eq!(events.len(), 2, "the deploy and one upgrade");
        let upgrade = &events[1];
        assert_eq!(
            (
                upgrade.kind.as_str(),
                upgrade.from_version,
                upgrade.to_version
            ),
            ("upgrade", Some(1), 3)
        );
        assert_eq!(upgrade.tenant_id, app.tenant);
        assert_eq!(upgrade.actor, "ci-bot");
        assert_eq!(upgrade.request_id.as_deref(), Some("release-7"));
        assert_eq!(upgrade.operation_id, None);
        assert_eq!(upgrade.created_at, moved.updated_at);

        let outbox = outbox_rows(&app, &d.id).await;
        let types: Vec<&str> = outbox.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(types, ["deployment.deployed", "deployment.upgraded"]);
        let row = &outbox[1];
        assert!(uuid::Uuid::parse_str(&row.id).is_ok(), "{}", row.id);
        assert_ne!(row.id, outbox[0].id);
        assert_eq!(row.tenant_id, app.tenant);
        assert_eq!(row.ordering_key, d.id);
        assert_eq!((row.from_version, row.to_version), (Some(1), Some(3)));
        assert_eq!(row.folder_id, None);
        assert_eq!(row.actor, "ci-bot");
        assert_eq!(row.request_id.as_deref(), Some("release-7"));
        assert_eq!(row.operation_id, None);
        assert_eq!(row.data, None);
        assert_eq!(row.created_at, moved.updated_at);
    }
    // Already on the latest version: no event, no outbox row, the row untouched.
    assert_eq!(app.events(&current.id).await.len(), 1);
    assert_eq!(outbox_rows(&app, &current.id).await.len(), 1);
    assert_eq!(
        app.deployment(&current.id).await.updated_at,
        current.updated_at
    );
}

#[tokio::test]
async fn a_deployment_moved_to_another_folder_before_its_item_runs_is_not_found_and_nothing_is_written()
 {
    let app = spawn_app().await;
    let fleet = app.outdated_fleet("ci-bot", 2).await;
    let [moved_away, stays] = fleet.each();
    let elsewhere = app.folder("Elsewhere").await;
    // The caller is authorised in the fleet's folder; the row changed folder after
    // that check (a concurrent move), so only the write transaction's own check sees it.
    deployment::Entity::update_many()
        .col_expr(deployment::Column::FolderId, Expr::value(elsewhere.id))
        .filter(deployment::Column::Id.eq(&moved_away.id))
        .exec(&app.db)
        .await
        .unwrap();

    let body = app
        .bulk_json("ci-bot", &fleet.folder.key, &fleet.ids())
        .await;

    assert_eq!(body["failedItems"], json!([moved_away.id]));
    assert_eq!(failure_codes(&body), ["not_found"]);
    assert_eq!(body["updatedDeployments"][0]["id"], json!(stays.id));
    assert_eq!(app.deployment(&moved_away.id).await.version, 1);
    assert_eq!(app.events(&moved_away.id).await.len(), 1);
    assert_eq!(outbox_rows(&app, &moved_away.id).await.len(), 1);
    assert_eq!(app.deployment(&stays.id).await.version, 2);
    assert_eq!(outbox_rows(&app, &stays.id).await.len(), 2);
}

#[tokio::test]
async fn a_deployment_whose_app_has_no_published_version_left_is_reported_and_keeps_its_version() {
    let app = spawn_app().await;
    let folder = app
        .granted_folder("Ops", "ci-bot", Role::FolderAdministrator)
        .await;
    let withdrawn = app.publish("Withdrawn", "1.0.0").await.app.system_name;
    let orphan = app.deploy(&folder, &withdrawn, 1).await;
    app.withdraw_version(&withdrawn, 1).await;

    let body = app.bulk_json("ci-bot", &folder.key, &ids(&[&orphan])).await;

    assert_eq!(failure_codes(&body), ["no_published_version"]);
    assert_eq!(body["updatedDeployments"], json!([]));
    assert_eq!(app.deployment(&orphan.id).await.version, 1);
    assert_eq!(app.events(&orphan.id).await.len(), 1);
    assert_eq!(outbox_rows(&app, &orphan.id).await.len(), 1);
}

#[tokio::test]
async fn a_deployment_beyond_its_apps_highest_published_version_stays_where_it_is() {
    let app = spawn_app().await;
    let (folder, deployment) = app.upgradable_deployment("ci-bot").await;
    let first = app
        .bulk_json("ci-bot", &folder.key, &ids(&[&deployment]))
        .await;
    assert_eq!(first["updatedDeployments"][0]["version"], 2);
    let system_name = first["updatedDeployments"][0]["appSystemName"]
        .as_str()
        .unwrap()
        .to_string();
    // Its version is unpublished afterwards: the latest published one is now behind it.
    app.withdraw_version(&system_name, 2).await;

    let again = app
        .bulk_json("ci-bot", &folder.key, &ids(&[&deployment]))
        .await;

    assert_eq!(
        again["updatedDeployments"],
        json!([{"id": deployment.id, "appSystemName": system_name, "version": 2, "previousVersion": 2}])
    );
    assert_eq!(app.deployment(&deployment.id).await.version, 2);
    assert_eq!(app.events(&deployment.id).await.len(), 2);
    assert_eq!(outbox_rows(&app, &deployment.id).await.len(), 2);
}
