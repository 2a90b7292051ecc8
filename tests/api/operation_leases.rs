//! Leases held, renewed and given back, through the lease API itself: the orders of
//! statements these tests fix are ones that real workers reach only by chance (a
//! heartbeat's renewal stuck behind another writer), so they are written out here.

use std::time::Duration;

use entity::operation;
use sea_orm::EntityTrait;
use uplift::operations::lease;

use crate::operations::an_operation_no_worker_runs;

const LEASE: Duration = Duration::from_secs(120);

#[tokio::test]
async fn a_renewal_applied_after_the_release_does_not_lease_the_operation_again() {
    let (app, _, _, monitor) = an_operation_no_worker_runs(2).await;
    let id = monitor["id"].as_str().unwrap().to_string();

    let claim = lease::claim(&app.db, "gone", LEASE, 1)
        .await
        .unwrap()
        .expect("the operation waits for a worker");
    lease::release_or_finish(&app.db, &id, claim.generation)
        .await
        .unwrap();
    let renewed = lease::renew(&app.db, &id, claim.generation, LEASE)
        .await
        .unwrap();

    assert!(!renewed, "the released lease was renewed");
    let row = operation::Entity::find_by_id(id.clone())
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.lease_expires_at, None, "{row:?}");
    let next = lease::claim(&app.db, "next", LEASE, 1).await.unwrap();
    let next = next.expect("another worker may claim it at once");
    assert_eq!(next.generation, claim.generation + 1);
    assert_eq!(next.items.len(), 1);
}
