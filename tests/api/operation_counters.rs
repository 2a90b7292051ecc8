//! An operation's counters come from three places read in one statement: the settled
//! head kept on the operation's row, the items between it and the claim cursor counted
//! one by one, and the pending tail after the cursor. Whatever the split, they are the
//! items' own states.

use entity::operation;
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait};
use serde_json::json;
use uplift::operations::{self, Counters, ItemStatus, OperationItem};

use crate::helpers::{TestApp, WRITE_SCOPES, spawn_app_with};

const ID: &str = "00000000-0000-0000-0000-0000000000c1";

/// An operation of ten items in `states` (seq 1 first), its head folded through
/// `settled_through` with `head` counts, its cursor at `cursor`; a `Running` one is
/// leased by a worker.
async fn stored(
    db: &DatabaseConnection,
    status: &str,
    states: [&str; 10],
    cursor: i32,
    settled_through: i32,
    head_updated: i32,
) {
    db.execute_unprepared(&format!(
        "INSERT INTO operations (id, tenant_id, folder_id, kind, status, request, created_by, created_at, \
         dry_run, max_concurrency, total, lease_generation, claim_cursor, settled_through, settled_updated, \
         lease_owner) \
         VALUES ('{ID}', 't', 1, 'upgrade', '{status}', '{{}}', 'someone', CURRENT_TIMESTAMP, false, 8, 10, 1, \
         {cursor}, {settled_through}, {head_updated}, {owner})",
        owner = if status == "Running" { "'worker'" } else { "NULL" },
    ))
    .await
    .unwrap();
    for (i, state) in states.iter().enumerate() {
        db.execute_unprepared(&format!(
            "INSERT INTO operation_items (operation_id, seq, raw_id, folder_id, status) \
             VALUES ('{ID}', {}, 'd', 1, '{state}')",
            i + 1
        ))
        .await
        .unwrap();
    }
}

/// A server whose workers would not claim the operation `stored` writes.
async fn without_workers() -> TestApp {
    spawn_app_with(|s| s.operation_workers = 0).await
}

/// Seq 4 is taken by the worker (up to the cursor 6, after the head 2) and not settled.
const ONE_TAKEN: [&str; 10] = [
    "updated",
    "updated",
    "failed",
    "pending",
    "updated",
    "unchanged",
    "pending",
    "pending",
    "pending",
    "pending",
];

async fn counters(db: &DatabaseConnection) -> Counters {
    let operation = operation::Entity::find_by_id(ID.to_string())
        .one(db)
        .await
        .unwrap()
        .unwrap();
    operations::snapshot(db, operation).await.unwrap().counters
}

#[tokio::test]
async fn a_running_operations_counters_add_its_settled_head_the_items_up_to_its_cursor_and_its_pending_tail()
 {
    let app = without_workers().await;
    stored(&app.db, "Running", ONE_TAKEN, 6, 2, 2).await;
    assert_eq!(
        counters(&app.db).await,
        Counters {
            total: 10,
            pending: 4,
            running: 1,
            updated: 3,
            unchanged: 1,
            failed: 1,
            ..Counters::default()
        }
    );
}

#[tokio::test]
async fn items_taken_before_a_release_count_as_pending_until_the_next_claim() {
    let app = without_workers().await;
    stored(&app.db, "Running", ONE_TAKEN, 6, 2, 2).await;
    // Released (a SIGTERM, a closed window): nobody holds the item up to the cursor.
    app.db
        .execute_unprepared(&format!(
            "UPDATE operations SET lease_owner = NULL, lease_expires_at = NULL WHERE id = '{ID}'"
        ))
        .await
        .unwrap();
    let counted = counters(&app.db).await;
    assert_eq!(
        (counted.total, counted.pending, counted.running),
        (10, 5, 0)
    );
}

#[tokio::test]
async fn the_items_call_shows_the_pending_items_a_worker_took_as_running_and_filters_them_so() {
    let app = without_workers().await;
    let states = [
        "updated", "pending", "failed", "pending", "updated", "pending", "pending", "pending",
        "pending", "pending",
    ];
    // Taken up to seq 6 by a worker; seqs 2, 4 and 6 not settled yet.
    stored(&app.db, "Running", states, 6, 1, 1).await;
    let operation = operation::Entity::find_by_id(ID.to_string())
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    let seqs = |items: Vec<OperationItem>| -> Vec<(i32, ItemStatus)> {
        items.into_iter().map(|i| (i.seq, i.status)).collect()
    };

    let (n, all) = operations::items(&app.db, &operation, None, 5, 0)
        .await
        .unwrap();
    assert_eq!(n, 10);
    assert_eq!(
        seqs(all),
        [
            (1, ItemStatus::Updated),
            (2, ItemStatus::Running),
            (3, ItemStatus::Failed),
            (4, ItemStatus::Running),
            (5, ItemStatus::Updated)
        ]
    );
    let (n, running) = operations::items(&app.db, &operation, Some(ItemStatus::Running), 50, 0)
        .await
        .unwrap();
    assert_eq!((n, seqs(running).len()), (3, 3));
    let (n, pending) = operations::items(&app.db, &operation, Some(ItemStatus::Pending), 2, 0)
        .await
        .unwrap();
    assert_eq!(n, 4, "seqs 7 to 10");
    assert_eq!(
        seqs(pending),
        [(7, ItemStatus::Pending), (8, ItemStatus::Pending)]
    );
    assert_eq!(
        counters(&app.db).await.running,
        3,
        "as the counters count them"
    );
}

#[tokio::test]
async fn a_finished_operation_not_folded_yet_has_every_item_after_its_head_counted() {
    let app = without_workers().await;
    // As an operation finished before the settled head existed (head 0), or by a
    // cancel that settled its tail.
    let states = [
        "updated", "updated", "failed", "canceled", "canceled", "canceled", "canceled", "canceled",
        "canceled", "canceled",
    ];
    stored(&app.db, "Canceled", states, 3, 0, 0).await;
    let counted = counters(&app.db).await;
    assert_eq!(
        (
            counted.total,
            counted.updated,
            counted.failed,
            counted.canceled,
            counted.pending
        ),
        (10, 2, 1, 7, 0)
    );
}

#[tokio::test]
async fn an_operation_run_in_small_batches_ends_with_every_item_folded_and_counters_equal_to_its_items()
 {
    let app = spawn_app_with(|s| s.operation_batch_items = 3).await;
    let fleet = app.outdated_fleet("ci-bot", 20).await;
    let token = app.token("ci-bot", WRITE_SCOPES);
    let mut listed = fleet.ids();
    listed.push("not-a-deployment".into());
    let created = app
        .create_operation(
            &token,
            &fleet.folder.key,
            json!({"deploymentIds": listed, "maxConcurrency": 2}),
        )
        .accepted()
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    let done = app.finished_operation(&token, &fleet.folder.key, &id).await;
    let c = &done["counters"];
    assert_eq!(
        (
            c["total"].as_u64(),
            c["updated"].as_u64(),
            c["failed"].as_u64()
        ),
        (Some(21), Some(20), Some(1))
    );
    let row = operation::Entity::find_by_id(id.clone())
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (row.settled_through, row.settled_updated, row.settled_failed),
        (21, 20, 1),
        "the finish folds every item: a read of a finished operation is one row"
    );
}
