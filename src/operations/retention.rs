//! Keeping finished operations for their retention period, and the queue's state for
//! the metrics.

use std::time::Duration;

use chrono::Utc;
use entity::operation::{self, OperationStatus};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, Iterable, QueryFilter, QueryOrder,
    QuerySelect,
    sea_query::{Expr, ExprTrait},
};

use crate::metrics::OperationsSnapshot;

/// Deletes operations (and, by cascade, their items) finished longer than `retention`
/// ago. The `upgrade` events they wrote stay, still naming the operation.
pub async fn purge<C: ConnectionTrait>(db: &C, retention: Duration) -> Result<u64, DbErr> {
    let cutoff =
        Utc::now() - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    let deleted = operation::Entity::delete_many()
        .filter(operation::Column::FinishedAt.lt(cutoff))
        .exec(db)
        .await?;
    Ok(deleted.rows_affected)
}

/// Operations by status, the pending items of unfinished ones, and how long the
/// oldest of those has waited.
pub async fn snapshot<C: ConnectionTrait>(db: &C) -> Result<OperationsSnapshot, DbErr> {
    let counted: Vec<(OperationStatus, i64)> = operation::Entity::find()
        .select_only()
        .column(operation::Column::Status)
        .expr(Expr::col(operation::Column::Id).count())
        .group_by(operation::Column::Status)
        .into_tuple()
        .all(db)
        .await?;
    let by_status = OperationStatus::iter()
        .map(|status| {
            let n = counted
                .iter()
                .find(|(s, _)| *s == status)
                .map_or(0, |(_, n)| *n);
            (status.as_str(), n)
        })
        .collect();
    // Each unfinished operation's pending items from its counters (its settled head
    // and pending tail are on its row): a count of every item would read the whole
    // table every sweep.
    let unfinished: Vec<(String, chrono::DateTime<Utc>)> = operation::Entity::find()
        .select_only()
        .column(operation::Column::Id)
        .column(operation::Column::CreatedAt)
        .filter(
            operation::Column::Status
                .is_in([OperationStatus::NotStarted, OperationStatus::Running]),
        )
        .order_by_asc(operation::Column::CreatedAt)
        .into_tuple()
        .all(db)
        .await?;
    let mut pending: i64 = 0;
    let mut oldest = None;
    for (id, created_at) in unfinished {
        let waiting = super::counters::of(db, &id).await?.pending;
        if waiting > 0 {
            oldest.get_or_insert(created_at);
            pending += i64::try_from(waiting).unwrap_or(i64::MAX);
        }
    }
    Ok(OperationsSnapshot {
        by_status,
        pending_items: pending,
        oldest_pending_seconds: oldest.map_or(0, |created_at| {
            std::cmp::max((Utc::now() - created_at).num_seconds(), 0)
        }),
    })
}
