//! Keeping finished operations for their retention period, and the queue's state for
//! the metrics.

use std::time::Duration;

use chrono::Utc;
use entity::{
    operation::{self, OperationStatus},
    operation_item::{self, ItemStatus},
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, Iterable, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait,
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
    let unfinished = operation::Entity::find()
        .select_only()
        .column(operation::Column::Id)
        .filter(
            operation::Column::Status
                .is_in([OperationStatus::NotStarted, OperationStatus::Running]),
        )
        .into_query();
    let pending: Option<i64> = operation_item::Entity::find()
        .select_only()
        .expr(Expr::col(operation_item::Column::Seq).count())
        .filter(operation_item::Column::OperationId.in_subquery(unfinished.clone()))
        .filter(operation_item::Column::Status.eq(ItemStatus::Pending))
        .into_tuple()
        .one(db)
        .await?;
    let waiting = operation_item::Entity::find()
        .select_only()
        .column(operation_item::Column::OperationId)
        .filter(operation_item::Column::OperationId.in_subquery(unfinished))
        .filter(operation_item::Column::Status.eq(ItemStatus::Pending))
        .into_query();
    let oldest = operation::Entity::find()
        .filter(operation::Column::Id.in_subquery(waiting))
        .order_by_asc(operation::Column::CreatedAt)
        .one(db)
        .await?;
    Ok(OperationsSnapshot {
        by_status,
        pending_items: pending.unwrap_or(0),
        oldest_pending_seconds: oldest.map_or(0, |o| {
            std::cmp::max((Utc::now() - o.created_at).num_seconds(), 0)
        }),
    })
}
