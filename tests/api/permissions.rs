//! Folder permissions: inheritance down the tree, tenant-wide roles, and revocation
//! taking effect on the very next request.

use uplift::access::Role;

use crate::helpers::{ids, spawn_app};

#[tokio::test]
async fn a_grant_on_a_folder_applies_to_its_subfolders_but_not_to_its_parent() {
    let app = spawn_app().await;
    let parent = app.folder("Company").await;
    let child = app.subfolder("Finance", &parent).await;
    let grandchild = app.subfolder("Payroll", &child).await;
    app.grant("ci-bot", Role::FolderAdministrator, Some(&child))
        .await;
    let name = app.publish("Portal", "1.0.0").await.app.system_name;
    let deep = app.deploy(&grandchild, &name, 1).await;
    app.publish("Portal", "1.1.0").await;

    let body = app
        .bulk_json("ci-bot", &grandchild.key, &ids(&[&deep]))
        .await;
    assert_eq!(body["updatedDeployments"][0]["version"], 2);
    assert_eq!(app.bulk("ci-bot", &child.key, &[]).await.status(), 200);
    assert_eq!(app.bulk("ci-bot", &parent.key, &[]).await.status(), 403);
}

#[tokio::test]
async fn a_tenant_wide_administrator_may_upgrade_in_every_folder() {
    let app = spawn_app().await;
    let a = app.folder("A").await;
    let b = app.subfolder("B", &a).await;
    app.grant("admin", Role::Administrator, None).await;
    for folder in [&a, &b] {
        assert_eq!(app.bulk("admin", &folder.key, &[]).await.status(), 200);
    }
}

#[tokio::test]
async fn a_revoked_grant_stops_working_on_the_next_request() {
    let app = spawn_app().await;
    let folder = app.folder("Ops").await;
    app.grant("ci-bot", Role::FolderAdministrator, Some(&folder))
        .await;
    assert_eq!(app.bulk("ci-bot", &folder.key, &[]).await.status(), 200);
    app.revoke("ci-bot", Role::FolderAdministrator, Some(&folder))
        .await;
    assert_eq!(app.bulk("ci-bot", &folder.key, &[]).await.status(), 403);
}

#[tokio::test]
async fn a_viewer_may_not_upgrade() {
    let app = spawn_app().await;
    let folder = app.folder("Ops").await;
    app.grant("viewer", Role::AutomationUser, Some(&folder))
        .await;
    assert_eq!(app.bulk("viewer", &folder.key, &[]).await.status(), 403);
}

#[tokio::test]
async fn only_the_callers_own_grants_count_and_a_viewer_grant_beside_an_editor_one_does_no_harm() {
    let app = spawn_app().await;
    let root = app.folder("Root").await;
    let sibling = app.folder("Sibling").await;
    let child = app.subfolder("Child", &root).await;
    // Someone else's grant on the folder, and the caller's own on another folder.
    app.grant("someone-else", Role::FolderAdministrator, Some(&root))
        .await;
    app.grant("ci-bot", Role::FolderAdministrator, Some(&sibling))
        .await;
    app.grant("ci-bot", Role::AutomationUser, Some(&root)).await;
    for folder in [&root, &child] {
        assert_eq!(app.bulk("ci-bot", &folder.key, &[]).await.status(), 403);
    }
    assert_eq!(app.bulk("ci-bot", &sibling.key, &[]).await.status(), 200);
    // A viewer grant on the folder itself does not hide an editor grant on its parent.
    app.grant("ci-bot", Role::AutomationUser, Some(&child))
        .await;
    app.grant("ci-bot", Role::FolderAdministrator, Some(&root))
        .await;
    for folder in [&root, &child] {
        assert_eq!(app.bulk("ci-bot", &folder.key, &[]).await.status(), 200);
    }
}
