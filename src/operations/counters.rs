//! An operation's counters, counted from its items: an item's state changes in the
//! transaction that settles it, so every count is exact at every read and the parts
//! always add up to `total`.

use entity::operation_item::{self, ItemStatus};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect,
    sea_query::{Expr, ExprTrait},
};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub total: u64,
    pub pending: u64,
    pub running: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub failed: u64,
    pub skipped: u64,
    pub canceled: u64,
}

impl Counters {
    fn add(&mut self, status: ItemStatus, n: u64) {
        self.total += n;
        let part = match status {
            ItemStatus::Pending => &mut self.pending,
            ItemStatus::Running => &mut self.running,
            ItemStatus::Updated => &mut self.updated,
            ItemStatus::Unchanged => &mut self.unchanged,
            ItemStatus::Failed => &mut self.failed,
            ItemStatus::Skipped => &mut self.skipped,
            ItemStatus::Canceled => &mut self.canceled,
        };
        *part += n;
    }
}

/// The operation's items counted by state, in one statement (one snapshot).
pub async fn of<C: ConnectionTrait>(db: &C, operation_id: &str) -> Result<Counters, DbErr> {
    let rows: Vec<(ItemStatus, i64)> = operation_item::Entity::find()
        .select_only()
        .column(operation_item::Column::Status)
        .expr(Expr::col(operation_item::Column::Seq).count())
        .filter(operation_item::Column::OperationId.eq(operation_id))
        .group_by(operation_item::Column::Status)
        .into_tuple()
        .all(db)
        .await?;
    let mut counters = Counters::default();
    for (status, n) in rows {
        counters.add(status, u64::try_from(n).unwrap_or(0));
    }
    Ok(counters)
}
