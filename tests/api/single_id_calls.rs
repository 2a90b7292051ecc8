//! One-id bulk calls, the commonest CI call. On PostgreSQL a plain one (no dry run, no
//! key, synchronous) checks the caller's grant and upgrades in one statement; these
//! tests hold it to the answers of the ordinary path on both databases: grants held on
//! the folder, tenant-wide or inherited, no grant, a viewer's grant, revocation seen
//! by another replica on the very next call, and a deployment of another folder.

use entity::webhook_event;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use uplift::{
    access::{self, Role},
    http::Application,
    service::Actor,
    upgrade::{self, FolderGrant, Outcome},
};

use crate::{
    client::BULK_PATH,
    helpers::{TestApp, WRITE_SCOPES, assert_problem, ids, is_postgres, spawn_app},
};

/// Another server on the same database, as a second replica; its UiPath base URL.
async fn second_replica(app: &TestApp) -> String {
    let replica = Application::build(app.settings.clone())
        .await
        .expect("build the second replica");
    let base = format!(
        "http://127.0.0.1:{}{}",
        replica.port(),
        app.settings.uipath_base_path()
    );
    tokio::spawn(replica.run_until_stopped());
    base
}

/// A one-id bulk call by `subject` sent to the server at `base`.
async fn one_id_call_at(
    app: &TestApp,
    base: &str,
    subject: &str,
    folder_key: &str,
    id: &str,
) -> reqwest::Response {
    app.client
        .post(format!("{base}{BULK_PATH}"))
        .bearer_auth(app.token(subject, WRITE_SCOPES))
        .header("X-UiPath-Internal-TenantId", &app.tenant)
        .header("X-UiPath-FolderKey", folder_key)
        .json(&json!({ "deploymentIds": [id] }))
        .send()
        .await
        .unwrap()
}

async fn outbox_rows(app: &TestApp, deployment_id: &str) -> u64 {
    webhook_event::Entity::find()
        .filter(webhook_event::Column::DeploymentId.eq(deployment_id))
        .count(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_one_id_call_with_a_grant_on_the_folder_upgrades_and_records_the_event_and_the_outbox_row()
 {
    let app = spawn_app().await;
    let (folder, deployment) = app.upgradable_deployment("ci-bot").await;

    let body = app
        .bulk_json("ci-bot", &folder.key, &ids(&[&deployment]))
        .await;
    assert_eq!(body["failedItems"], json!([]), "{body}");
    let updated = &body["updatedDeployments"][0];
    assert_eq!(updated["id"], deployment.id);
    assert_eq!(updated["previousVersion"], 1);
    assert_eq!(updated["version"], 2);
    assert_eq!(app.deployment(&deployment.id).await.version, 2);
    let events = app.events(&deployment.id).await;
    let upgrade = events.last().unwrap();
    assert_eq!(
        (
            upgrade.kind.as_str(),
            upgrade.from_version,
            upgrade.to_version
        ),
        ("upgrade", Some(1), 2)
    );
    assert_eq!(upgrade.actor, "ci-bot");
    // The deploy's event and the upgrade's.
    assert_eq!(outbox_rows(&app, &deployment.id).await, 2);

    // Again: already on the latest, reported unchanged and nothing more written.
    let again = app
        .bulk_json("ci-bot", &folder.key, &ids(&[&deployment]))
        .await;
    assert_eq!(again["updatedDeployments"][0]["previousVersion"], 2);
    assert_eq!(again["updatedDeployments"][0]["version"], 2);
    assert_eq!(app.events(&deployment.id).await.len(), events.len());
    assert_eq!(outbox_rows(&app, &deployment.id).await, 2);
}

#[tokio::test]
async fn a_one_id_call_by_a_tenant_wide_administrator_or_through_a_parent_folder_upgrades() {
    let app = spawn_app().await;
    let parent = app.folder("Company").await;
    let child = app.subfolder("Finance", &parent).await;
    app.grant("inherits", Role::FolderAdministrator, Some(&parent))
        .await;
    app.grant("admin", Role::Administrator, None).await;
    let name = app.publish("Portal", "1.0.0").await.app.system_name;
    let first = app.deploy(&child, &name, 1).await;
    let second = app.deploy(&child, &name, 1).await;
    app.publish("Portal", "1.1.0").await;

    for (subject, deployment) in [("inherits", &first), ("admin", &second)] {
        let body = app
            .bulk_json(subject, &child.key, &ids(&[deployment]))
            .await;
        assert_eq!(
            body["updatedDeployments"][0]["version"], 2,
            "{subject}: {body}"
        );
        assert_eq!(app.deployment(&deployment.id).await.version, 2);
    }
}

#[tokio::test]
async fn a_one_id_call_without_an_editing_grant_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let (folder, deployment) = app.upgradable_deployment("ci-bot").await;
    app.grant("viewer", Role::AutomationUser, Some(&folder))
        .await;
    let elsewhere = app.folder("Elsewhere").await;
    app.grant("other-folder", Role::FolderAdministrator, Some(&elsewhere))
        .await;
    let events = app.events(&deployment.id).await.len();

    for subject in ["viewer", "other-folder", "nobody"] {
        let problem = assert_problem(
            app.bulk(subject, &folder.key, &ids(&[&deployment])).await,
            403,
        )
        .await;
        assert!(
            problem["detail"].as_str().unwrap().contains("Apps.Edit"),
            "{subject}: {problem}"
        );
    }
    // An unknown folder answers as a folder without a grant does.
    let unknown = uuid::Uuid::new_v4().to_string();
    assert_problem(
        app.bulk("ci-bot", &unknown, &ids(&[&deployment])).await,
        403,
    )
    .await;
    assert_eq!(app.deployment(&deployment.id).await.version, 1);
    assert_eq!(app.events(&deployment.id).await.len(), events);
    assert_eq!(outbox_rows(&app, &deployment.id).await, 1);
}

#[tokio::test]
async fn a_grant_revoked_through_one_replica_is_refused_by_the_other_on_the_next_one_id_call() {
    let app = spawn_app().await;
    let other = second_replica(&app).await;
    let fleet = app
        .fleet()
        .in_folder("Ops")
        .administered_by("ci-bot")
        .of("Portal", "1.0.0")
        .deployments(2)
        .newer("1.1.0")
        .await;
    let [before, after] = fleet.each();

    let answer = one_id_call_at(&app, &other, "ci-bot", &fleet.folder.key, &before.id).await;
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["updatedDeployments"][0]["version"], 2, "{body}");

    app.revoke("ci-bot", Role::FolderAdministrator, Some(&fleet.folder))
        .await;
    for base in [&other, &app.base] {
        let refused = one_id_call_at(&app, base, "ci-bot", &fleet.folder.key, &after.id).await;
        assert_problem(refused, 403).await;
    }
    assert_eq!(app.deployment(&after.id).await.version, 1);
}

#[tokio::test]
async fn a_one_id_call_for_a_deployment_of_another_folder_or_a_malformed_id_is_a_failed_item() {
    let app = spawn_app().await;
    let (folder, _) = app.upgradable_deployment("ci-bot").await;
    let (_, foreign) = app.upgradable_deployment("someone-else").await;

    for id in [foreign.id.clone(), "not-a-uuid".to_string()] {
        let body = app
            .bulk_json("ci-bot", &folder.key, std::slice::from_ref(&id))
            .await;
        assert_eq!(body["failedItems"], json!([id]), "{body}");
        assert_eq!(body["failures"][0]["id"], id);
        assert_eq!(body["failures"][0]["code"], "not_found");
    }
    assert_eq!(app.deployment(&foreign.id).await.version, 1);
}

#[tokio::test]
async fn on_postgresql_the_grant_and_the_upgrade_are_one_statement_and_a_missing_grant_changes_nothing()
 {
    let app = spawn_app().await;
    let (folder, deployment) = app.upgradable_deployment("ci-bot").await;
    let roles = access::roles_granting_in_folder(access::Permission::AppsEdit).unwrap();
    let (stranger, ci_bot) = (Actor::new("stranger", None), Actor::new("ci-bot", None));
    let grant_of = |actor| FolderGrant {
        tenant_id: &app.tenant,
        folder_key: &folder.key,
        roles: &roles,
        actor,
    };

    let refused =
        upgrade::upgrade_single_where_granted(&app.db, &grant_of(&stranger), &deployment.id).await;
    assert!(refused.is_none());
    assert_eq!(app.deployment(&deployment.id).await.version, 1);

    let done =
        upgrade::upgrade_single_where_granted(&app.db, &grant_of(&ci_bot), &deployment.id).await;
    if is_postgres() {
        let (folder_id, outcome) = done.expect("the one-statement path answers on PostgreSQL");
        assert_eq!(folder_id, folder.id);
        let Outcome::Updated(updated) = outcome else {
            panic!("not updated: {outcome:?}")
        };
        assert_eq!((updated.previous_version, updated.version), (1, 2));
        assert_eq!(app.deployment(&deployment.id).await.version, 2);
        assert_eq!(outbox_rows(&app, &deployment.id).await, 2);
    } else {
        // SQLite always takes the ordinary path.
        assert!(done.is_none());
        assert_eq!(app.deployment(&deployment.id).await.version, 1);
    }
}
