//! On SQLite, one item's upgrade as a write transaction (`BEGIN IMMEDIATE`: the writer
//! holds the database from its first read, so nothing changes between read and write).

use chrono::Utc;
use entity::deployment;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, TransactionSession, TransactionTrait,
    sea_query::Expr,
};

use super::{
    engine::BulkUpgrade,
    item::{ItemResult, Moved, UpgradeItem, find_current, find_target},
};
use crate::{
    db,
    service::events::{self, Change, EventKind},
};

pub(crate) struct SqliteTransaction;

impl UpgradeItem for SqliteTransaction {
    /// SQLite has one writer: concurrent write transactions would only queue on its
    /// lock, and a waiting writer sleeps in its busy handler for up to 100 ms at a
    /// time. One after another is the fastest order there.
    fn concurrency(&self, _requested: usize) -> usize {
        1
    }

    async fn upgrade<C>(&self, db: &C, job: &BulkUpgrade<'_>, id: &str) -> ItemResult
    where
        C: ConnectionTrait + TransactionTrait,
    {
        let txn = db::begin_write(db).await?;
        let moved = apply(&txn, job, id).await?;
        txn.commit().await?;
        Ok(moved)
    }
}

/// The upgrade of one deployment inside the caller's write transaction (which the
/// caller commits; dropping it undoes everything): read, move forwards, record.
pub(crate) async fn apply<C: ConnectionTrait>(
    txn: &C,
    job: &BulkUpgrade<'_>,
    id: &str,
) -> ItemResult {
    let Some((current, app_system_name)) = find_current(txn, job, id).await? else {
        return Ok(None);
    };
    let (target, published_at) = find_target(txn, job, current.app_id).await?;
    // A deployment already on (or, after an unpublish, beyond) the target version
    // stays where it is: an upgrade never moves a deployment backwards.
    if target <= current.version {
        return Ok(Some(Moved {
            app_system_name,
            from_version: current.version,
            to_version: current.version,
        }));
    }
    // Never timed before the version it moves to was published (replicas' clocks
    // differ a little; `postgres.rs` applies the same rule).
    let at = Utc::now().max(published_at);
    deployment::Entity::update_many()
        .col_expr(deployment::Column::Version, Expr::value(target))
        .col_expr(deployment::Column::UpdatedAt, Expr::value(at))
        .filter(deployment::Column::Id.eq(id))
        .exec(txn)
        .await?;
    events::record(
        txn,
        Change {
            tenant_id: job.tenant_id,
            deployment_id: id,
            kind: EventKind::Upgrade,
            from_version: Some(current.version),
            to_version: target,
            at,
        },
        job.actor,
    )
    .await?;
    Ok(Some(Moved {
        app_system_name,
        from_version: current.version,
        to_version: target,
    }))
}
