//! An operation's counters, counted from its items: an item's state changes in the
//! transaction that settles it, so every count is exact at every read and the parts
//! always add up to `total`.
//!
//! Reads stay cheap however large the operation: settled items never change again, so
//! the operation's row keeps the counts of its settled head (every item up to
//! `settled_through`, folded in once per batch by the holder and once when it
//! finishes: `fold`), and every item after `claim_cursor` of an unfinished operation
//! is pending (a cancel or a stop settles them in the transaction that finishes the
//! operation). A read counts only the items between the two, about a batch (counting
//! all 100,000 items took 100 ms a poll); the pending ones among them are `running`
//! while a worker holds the operation (`lease.rs`: taking a batch writes nothing to
//! its items).

use entity::{
    operation,
    operation_item::{self, ItemStatus},
};
use sea_orm::{
    ActiveEnum, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Statement,
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

/// The operation's items counted by state, in one statement (one snapshot): the
/// settled head and the pending tail from the operation's row, the items between them
/// one by one.
pub async fn of<C: ConnectionTrait>(db: &C, operation_id: &str) -> Result<Counters, DbErr> {
    let statement =
        Statement::from_sql_and_values(db.get_database_backend(), COUNT, [operation_id.into()]);
    let mut counters = Counters::default();
    for row in db.query_all_raw(statement).await? {
        let status = ItemStatus::try_from_value(&row.try_get::<String>("", "status")?)?;
        let n: i64 = row.try_get("", "n")?;
        counters.add(status, u64::try_from(n).unwrap_or(0));
    }
    Ok(counters)
}

/// `$1`: the operation id (the same placeholder text on both databases: SQLite reads
/// `$1` as one named parameter). The items counted one by one lie after the settled
/// head and, while the operation is unfinished, up to its claim cursor (or the head,
/// if that is further: a finish folds every item first); both bounds are index
/// bounds, so the read is a range of the primary key. Those still pending while the
/// operation is leased are the holder's, taken and not settled yet: `running`. The
/// items after that bound are the pending tail.
const COUNT: &str = r#"
SELECT CASE WHEN i.status = 'pending'
                 AND (SELECT o.lease_owner FROM operations o WHERE o.id = $1) IS NOT NULL
            THEN 'running' ELSE i.status END AS status,
       COUNT(*) AS n
FROM operation_items i
WHERE i.operation_id = $1
  AND i.seq > (SELECT o.settled_through FROM operations o WHERE o.id = $1)
  AND i.seq <= (SELECT CASE WHEN o.status NOT IN ('NotStarted', 'Running') THEN o.total
                            WHEN o.claim_cursor > o.settled_through THEN o.claim_cursor
                            ELSE o.settled_through END
                FROM operations o WHERE o.id = $1)
GROUP BY 1
UNION ALL
SELECT 'pending', CASE WHEN status NOT IN ('NotStarted', 'Running') THEN 0
                       WHEN claim_cursor > settled_through THEN total - claim_cursor
                       ELSE total - settled_through END
FROM operations WHERE id = $1
UNION ALL SELECT 'updated', settled_updated FROM operations WHERE id = $1
UNION ALL SELECT 'unchanged', settled_unchanged FROM operations WHERE id = $1
UNION ALL SELECT 'failed', settled_failed FROM operations WHERE id = $1
UNION ALL SELECT 'skipped', settled_skipped FROM operations WHERE id = $1
UNION ALL SELECT 'canceled', settled_canceled FROM operations WHERE id = $1
"#;

/// How far a fold may look.
#[derive(Debug, Clone, Copy)]
pub enum FoldUpTo {
    /// The items claimed so far (a holder, before its next batch).
    Claimed,
    /// Every item (the operation finishes: all of them are settled).
    All,
}

/// Folds the settled items after the operation's settled head into its counts, up to
/// the first item still open, and answers the new head (`settled_through`). Called
/// under the lock on the operation row that a claim, a holder's next batch and a
/// finish hold, so two folds never overlap; it reads the row itself, so a caller's
/// copy of it may be older.
pub async fn fold<C: ConnectionTrait>(
    txn: &C,
    operation_id: &str,
    up_to: FoldUpTo,
) -> Result<i32, DbErr> {
    let Some((from, cursor, total)) = operation::Entity::find_by_id(operation_id.to_string())
        .select_only()
        .column(operation::Column::SettledThrough)
        .column(operation::Column::ClaimCursor)
        .column(operation::Column::Total)
        .into_tuple::<(i32, i32, i32)>()
        .one(txn)
        .await?
    else {
        return Ok(0);
    };
    let last = match up_to {
        FoldUpTo::Claimed => cursor,
        FoldUpTo::All => total,
    };
    if last <= from {
        return Ok(from);
    }
    let items: Vec<(i32, ItemStatus)> = operation_item::Entity::find()
        .select_only()
        .column(operation_item::Column::Seq)
        .column(operation_item::Column::Status)
        .filter(operation_item::Column::OperationId.eq(operation_id))
        .filter(operation_item::Column::Seq.gt(from))
        .filter(operation_item::Column::Seq.lte(last))
        .order_by_asc(operation_item::Column::Seq)
        .into_tuple()
        .all(txn)
        .await?;
    let (through, head) = settled_head(from, &items);
    if through == from {
        return Ok(from);
    }
    let mut update = operation::Entity::update_many()
        .col_expr(operation::Column::SettledThrough, Expr::value(through));
    for (column, n) in [
        (operation::Column::SettledUpdated, head.updated),
        (operation::Column::SettledUnchanged, head.unchanged),
        (operation::Column::SettledFailed, head.failed),
        (operation::Column::SettledSkipped, head.skipped),
        (operation::Column::SettledCanceled, head.canceled),
    ] {
        update = update.col_expr(
            column,
            Expr::col(column).add(i32::try_from(n).unwrap_or(i32::MAX)),
        );
    }
    update
        .filter(operation::Column::Id.eq(operation_id))
        .filter(operation::Column::SettledThrough.eq(from))
        .exec(txn)
        .await?;
    Ok(through)
}

/// The last seq of the settled run at the start of `items` (in `seq` order, all after
/// `from`), and that run's counts.
fn settled_head(from: i32, items: &[(i32, ItemStatus)]) -> (i32, Counters) {
    let mut through = from;
    let mut head = Counters::default();
    for &(seq, status) in items {
        if matches!(status, ItemStatus::Pending | ItemStatus::Running) {
            break;
        }
        head.add(status, 1);
        through = seq;
    }
    (through, head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ItemStatus::*;

    #[test]
    fn the_settled_head_stops_at_the_first_item_still_open() {
        let items = [(4, Updated), (5, Failed), (6, Running), (7, Updated)];
        let (through, head) = settled_head(3, &items);
        assert_eq!(through, 5);
        assert_eq!((head.total, head.updated, head.failed), (2, 1, 1));
    }

    #[test]
    fn nothing_is_folded_when_the_first_item_is_open_or_there_is_none() {
        assert_eq!(settled_head(3, &[(4, Pending), (5, Updated)]).0, 3);
        assert_eq!(settled_head(3, &[]), (3, Counters::default()));
    }

    #[test]
    fn every_settled_state_is_counted_in_its_own_part() {
        let items = [
            (1, Updated),
            (2, Unchanged),
            (3, Failed),
            (4, Skipped),
            (5, Canceled),
        ];
        let (through, head) = settled_head(0, &items);
        assert_eq!(through, 5);
        assert_eq!(
            head,
            Counters {
                total: 5,
                updated: 1,
                unchanged: 1,
                failed: 1,
                skipped: 1,
                canceled: 1,
                ..Counters::default()
            }
        );
    }
}
