//! Leases on operations: how the workers of every replica share them.
//!
//! A claim takes one unfinished operation whose lease is free or lapsed (least
//! recently served first, so a large operation takes turns with small ones) and raises
//! its `lease_generation`; the holder then takes its items a batch at a time by moving
//! the operation's `claim_cursor` on. Taking a batch writes nothing to the items: they
//! stay `pending` until their own transaction settles them, so each item's row is
//! written once. The items a holder took and has not settled are the `pending` ones up
//! to the cursor while the operation is leased; the counters and the items call show
//! them as `running` (`counters.rs`, `monitor.rs`).
//!
//! The fence is the generation. An item statement (`item.rs`) settles its item only
//! while it is `pending` and carries no generation newer than the holder's
//! (`lease_generation`, NULL until a claim marks it). A claim marks every item an
//! earlier holder may still hold (the pending ones after the settled head, up to the
//! cursor: a holder only ever takes items up to the cursor) with its own generation,
//! and runs them first; a cancel settles them. A holder
//! that lost its lease (paused, partitioned, killed and restarted) therefore matches
//! no item row and writes nothing, while the new holder runs those items once more.
//! Renewals and releases require the operation to carry the holder's generation.
//!
//! On PostgreSQL the claim locks the operation `FOR UPDATE SKIP LOCKED`, so two
//! replicas never claim it at once; every other write of a holder locks the operation
//! row too and checks the generation under that lock. The items are fenced by their
//! own rows: a claim's mark of an item in flight waits for that item's statement and
//! then finds it settled, and an item statement that waited for a claim's mark finds
//! the newer generation. On SQLite writes are serialised anyway.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::{
    operation::{self, OperationStatus},
    operation_item::{self, ItemStatus},
};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, Order, QueryFilter, QueryOrder,
    QuerySelect, Select, TransactionSession, TransactionTrait,
    sea_query::{Expr, ExprTrait, LockBehavior, LockType},
};

use super::counters::{self, Counters, FoldUpTo};
use crate::db;

/// Why an operation stopped before all its items ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    FailureBudgetExhausted,
    PermissionRevoked,
}

impl StopReason {
    pub fn code(self) -> &'static str {
        match self {
            StopReason::FailureBudgetExhausted => "failure_budget_exhausted",
            StopReason::PermissionRevoked => "permission_revoked",
        }
    }
}

/// A worker's hold on an operation and the batch of items it took.
#[derive(Debug, Clone)]
pub struct Claim {
    pub operation: operation::Model,
    pub generation: i64,
    pub items: Vec<operation_item::Model>,
    /// Failed items before this batch (for the failure budget).
    pub failed_before: usize,
    /// The previous holder's lease had lapsed without being released.
    pub took_over: bool,
}

/// Claims the next operation with work to do, or `None` when there is none. An
/// operation found with nothing left to run is finished on the way.
pub async fn claim<C>(
    db: &C,
    owner: &str,
    lease: Duration,
    batch: usize,
) -> Result<Option<Claim>, DbErr>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = db::begin_write(db).await?;
    // The clock is read once the write lock is held: on SQLite the begin can wait
    // out another writer for seconds, and an instant read before it could still be
    // inside a maintenance window (`run_until`) that has closed meanwhile.
    let now = Utc::now();
    let Some(found) = operation::Entity::find()
        .filter(waiting_for_a_worker(now))
        // Never served first, then the one served longest ago.
        .order_by(
            Expr::col(operation::Column::LastServedAt).is_not_null(),
            Order::Asc,
        )
        .order_by_asc(operation::Column::LastServedAt)
        .order_by_asc(operation::Column::CreatedAt)
        .limit(1)
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .one(&txn)
        .await?
    else {
        return Ok(None);
    };
    let generation = found.lease_generation + 1;
    let took_over = found.lease_owner.is_some();
    operation::Entity::update_many()
        .col_expr(operation::Column::LeaseGeneration, Expr::value(generation))
        .col_expr(operation::Column::LeaseOwner, Expr::value(owner))
        .col_expr(
            operation::Column::Status,
            Expr::value(OperationStatus::Running),
        )
        .col_expr(
            operation::Column::StartedAt,
            Expr::value(found.started_at.unwrap_or(now)),
        )
        .filter(operation::Column::Id.eq(&found.id))
        .filter(operation::Column::LeaseGeneration.eq(found.lease_generation))
        .exec(&txn)
        .await?;
    // Items an earlier holder took and did not settle run again under this claim, and
    // its statements can no longer match them.
    let head = counters::fold(&txn, &found.id, FoldUpTo::Claimed).await?;
    mark_taken(&txn, &found.id, generation, head, found.claim_cursor).await?;
    let items = take_next(&txn, &found.id, head, found.claim_cursor, lease, batch).await?;
    let mut operation = found;
    operation.lease_generation = generation;
    operation.lease_owner = Some(owner.to_string());
    operation.status = OperationStatus::Running;
    operation.started_at = operation.started_at.or(Some(now));
    if items.is_empty() {
        // Nothing left to run (a holder died after its last item): finish it now.
        finish(&txn, &operation, generation, None).await?;
        txn.commit().await?;
        return Ok(None);
    }
    let failed_before = counters::of(&txn, &operation.id).await?.failed as usize;
    txn.commit().await?;
    Ok(Some(Claim {
        operation,
        generation,
        items,
        failed_before,
        took_over,
    }))
}

/// What a holder finds when its batch is done and it asks for the next one.
#[derive(Debug)]
pub enum NextBatch {
    /// The next items after the claim cursor, which moved past them; the lease
    /// extended. `run_until` as the operation's row has it now.
    Items {
        items: Vec<operation_item::Model>,
        run_until: Option<DateTime<Utc>>,
    },
    /// Another operation waits for a worker: give this one back so that the next
    /// claim serves the one waiting longest.
    Yield,
    /// No pending item is left, a cancel was asked for, or `run_until` passed:
    /// release (which finishes the operation when nothing is left to run) once the
    /// items started finish; `run_until` as the operation's row has it now (a pause
    /// just asked for: the items taken ahead must not start).
    Empty { run_until: Option<DateTime<Utc>> },
    /// The generation no longer holds the operation: write nothing more.
    Lost,
}

/// The holder's next batch, the pending items after `after` (the last seq it took),
/// without giving the lease back: one short transaction instead of a release and a
/// claim, and the operation's items are not counted again. Taken while the previous
/// batch's last items still run, so the workers never idle between batches.
pub async fn next_batch<C>(
    db: &C,
    operation_id: &str,
    generation: i64,
    after: i32,
    lease: Duration,
    batch: usize,
) -> Result<NextBatch, DbErr>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = db::begin_write(db).await?;
    let Some(operation) = still_held(&txn, operation_id, generation).await? else {
        return Ok(NextBatch::Lost);
    };
    if operation.cancel_requested || operation.run_until.is_some_and(|until| until <= Utc::now()) {
        return Ok(NextBatch::Empty {
            run_until: operation.run_until,
        });
    }
    if another_waits(&txn, operation_id).await? {
        return Ok(NextBatch::Yield);
    }
    counters::fold(&txn, operation_id, FoldUpTo::Claimed).await?;
    let items = take_next(
        &txn,
        operation_id,
        after,
        operation.claim_cursor,
        lease,
        batch,
    )
    .await?;
    txn.commit().await?;
    Ok(if items.is_empty() {
        NextBatch::Empty {
            run_until: operation.run_until,
        }
    } else {
        NextBatch::Items {
            items,
            run_until: operation.run_until,
        }
    })
}

/// Unfinished operations with no live lease at `now`.
fn waiting_for_a_worker(now: DateTime<Utc>) -> Condition {
    Condition::all()
        .add(
            operation::Column::Status
                .is_in([OperationStatus::NotStarted, OperationStatus::Running]),
        )
        .add(
            Condition::any()
                .add(operation::Column::LeaseExpiresAt.is_null())
                .add(operation::Column::LeaseExpiresAt.lt(now)),
        )
        .add(may_run(now))
}

/// No limit on taking items, or one not reached yet (`run_until`: a rollout's
/// maintenance window closes, or it was paused). Checked before a batch is taken,
/// never per item: the items of a batch already taken finish.
fn may_run(now: DateTime<Utc>) -> Condition {
    Condition::any()
        .add(operation::Column::RunUntil.is_null())
        .add(operation::Column::RunUntil.gt(now))
}

/// Whether an operation other than `operation_id` waits for a worker.
async fn another_waits<C: ConnectionTrait>(txn: &C, operation_id: &str) -> Result<bool, DbErr> {
    let waiting = operation::Entity::find()
        .select_only()
        .column(operation::Column::Id)
        .filter(waiting_for_a_worker(Utc::now()))
        .filter(operation::Column::Id.ne(operation_id))
        .limit(1)
        .into_tuple::<String>()
        .one(txn)
        .await?;
    Ok(waiting.is_some())
}

/// Takes the next batch of pending items after `after` in `seq` order, moves the
/// claim cursor (`cursor`, as read under the lock) past them if it is not past them
/// already, and the lease's expiry on. Nothing is written to the items.
///
/// A holder reads from where it took its last item, not from the cursor: after a
/// take-over it first runs the items its predecessor took and did not settle (behind
/// the cursor, marked with its generation by its claim), then goes on past the
/// cursor. The cursor never moves back, so every item after it is one nobody took.
async fn take_next<C: ConnectionTrait>(
    txn: &C,
    operation_id: &str,
    after: i32,
    cursor: i32,
    lease: Duration,
    batch: usize,
) -> Result<Vec<operation_item::Model>, DbErr> {
    // Along the primary key from `after` (`db::QUEUE_READ_PLAN`): a new operation's
    // items are in no statistics yet.
    db::plan_queue_read(txn).await?;
    let items = next_pending(operation_id, after, batch).all(txn).await?;
    let cursor = items
        .last()
        .map_or(cursor, |last| std::cmp::max(last.seq, cursor));
    // The lease runs from the end of the claim, not its start: taking a large batch
    // must not eat into it.
    operation::Entity::update_many()
        .col_expr(operation::Column::ClaimCursor, Expr::value(cursor))
        .col_expr(
            operation::Column::LeaseExpiresAt,
            Expr::value(expiry(Utc::now(), lease)),
        )
        .filter(operation::Column::Id.eq(operation_id))
        .exec(txn)
        .await?;
    Ok(items)
}

/// The next `batch` pending items after `after`, in `seq` order: read along the
/// primary key from `after`, so a batch costs its own rows whatever the size of the
/// operation.
pub fn next_pending(
    operation_id: &str,
    after: i32,
    batch: usize,
) -> Select<operation_item::Entity> {
    operation_item::Entity::find()
        .filter(operation_item::Column::OperationId.eq(operation_id))
        .filter(operation_item::Column::Seq.gt(after))
        .filter(operation_item::Column::Status.eq(ItemStatus::Pending))
        .order_by_asc(operation_item::Column::Seq)
        .limit(batch as u64)
}

/// Marks with `generation` the items after the settled head `head` up to the claim
/// cursor that are not settled: the only ones an earlier holder can still hold. Their
/// statements then find a newer generation and write nothing. (Items `running` were
/// marked so by the claims of earlier builds, during a rolling upgrade; they are
/// pending again here.)
async fn mark_taken<C: ConnectionTrait>(
    txn: &C,
    operation_id: &str,
    generation: i64,
    head: i32,
    cursor: i32,
) -> Result<(), DbErr> {
    if cursor <= head {
        return Ok(());
    }
    operation_item::Entity::update_many()
        .col_expr(
            operation_item::Column::Status,
            Expr::value(ItemStatus::Pending),
        )
        .col_expr(
            operation_item::Column::LeaseGeneration,
            Expr::value(generation),
        )
        .filter(operation_item::Column::OperationId.eq(operation_id))
        .filter(operation_item::Column::Seq.gt(head))
        .filter(operation_item::Column::Seq.lte(cursor))
        .filter(operation_item::Column::Status.is_in([ItemStatus::Pending, ItemStatus::Running]))
        .exec(txn)
        .await?;
    Ok(())
}

/// The item, if the holder of `generation` may still settle it: pending, and marked by
/// no later claim.
pub(super) fn still_takes(generation: i64) -> Condition {
    Condition::all()
        .add(operation_item::Column::Status.eq(ItemStatus::Pending))
        .add(
            Condition::any()
                .add(operation_item::Column::LeaseGeneration.is_null())
                .add(operation_item::Column::LeaseGeneration.lte(generation)),
        )
}

fn expiry(now: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(15))
}

/// The operation, if this generation still holds it.
fn held(operation_id: &str, generation: i64) -> Condition {
    Condition::all()
        .add(operation::Column::Id.eq(operation_id))
        .add(operation::Column::LeaseGeneration.eq(generation))
        .add(
            operation::Column::Status
                .is_in([OperationStatus::NotStarted, OperationStatus::Running]),
        )
}

async fn still_held<C: ConnectionTrait>(
    txn: &C,
    operation_id: &str,
    generation: i64,
) -> Result<Option<operation::Model>, DbErr> {
    // Locked: a claim (which also locks it) cannot slip in between this check and the
    // caller's writes.
    operation::Entity::find()
        .filter(held(operation_id, generation))
        .lock_exclusive()
        .one(txn)
        .await
}

/// The operation's `run_until` as its row has it now (`None` when it is gone too).
pub async fn run_until<C: ConnectionTrait>(
    db: &C,
    operation_id: &str,
) -> Result<Option<DateTime<Utc>>, DbErr> {
    let found: Option<Option<DateTime<Utc>>> = operation::Entity::find_by_id(operation_id)
        .select_only()
        .column(operation::Column::RunUntil)
        .into_tuple()
        .one(db)
        .await?;
    Ok(found.flatten())
}

/// Extends the lease; `false` when this generation no longer holds the operation or
/// gave it back.
pub async fn renew<C: ConnectionTrait>(
    db: &C,
    operation_id: &str,
    generation: i64,
    lease: Duration,
) -> Result<bool, DbErr> {
    let renewed = operation::Entity::update_many()
        .col_expr(
            operation::Column::LeaseExpiresAt,
            Expr::value(expiry(Utc::now(), lease)),
        )
        .filter(held(operation_id, generation))
        // A release keeps the generation (the next claim raises it). A renewal sent
        // before the release and applied after it (the heartbeat's statement is not
        // withdrawn when its task is aborted, and on SQLite it can wait out another
        // writer for seconds) must not lease the operation again for a whole lease
        // to a holder that has gone.
        .filter(operation::Column::LeaseExpiresAt.is_not_null())
        .exec(db)
        .await?;
    Ok(renewed.rows_affected == 1)
}

/// Gives the operation back (its batch done, or this replica stopping): any worker may
/// claim it at once, and the items this generation took and did not settle run under
/// the next claim. Finishes it instead when nothing is left to run.
pub async fn release_or_finish<C>(db: &C, operation_id: &str, generation: i64) -> Result<(), DbErr>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = db::begin_write(db).await?;
    let Some(operation) = still_held(&txn, operation_id, generation).await? else {
        return Ok(());
    };
    let left = counters::of(&txn, operation_id).await?;
    if left.pending == 0 && left.running == 0 {
        finish(&txn, &operation, generation, None).await?;
    } else {
        operation::Entity::update_many()
            .col_expr(
                operation::Column::LeaseOwner,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                operation::Column::LeaseExpiresAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(operation::Column::LastServedAt, Expr::value(Utc::now()))
            .filter(held(operation_id, generation))
            .exec(&txn)
            .await?;
    }
    txn.commit().await
}

/// Stops the operation: every item not settled is `skipped`, and it fails with
/// `reason`. Nothing happens when this generation no longer holds it.
pub async fn stop<C>(
    db: &C,
    operation_id: &str,
    generation: i64,
    reason: StopReason,
) -> Result<(), DbErr>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = db::begin_write(db).await?;
    let Some(operation) = still_held(&txn, operation_id, generation).await? else {
        return Ok(());
    };
    settle_rest(&txn, operation_id, ItemStatus::Skipped).await?;
    finish(&txn, &operation, generation, Some(reason)).await?;
    txn.commit().await
}

/// Marks every pending or running item of the operation `status`, now.
pub(super) async fn settle_rest<C: ConnectionTrait>(
    txn: &C,
    operation_id: &str,
    status: ItemStatus,
) -> Result<(), DbErr> {
    operation_item::Entity::update_many()
        .col_expr(operation_item::Column::Status, Expr::value(status))
        .col_expr(
            operation_item::Column::LeaseGeneration,
            Expr::value(Option::<i64>::None),
        )
        .col_expr(operation_item::Column::FinishedAt, Expr::value(Utc::now()))
        .filter(operation_item::Column::OperationId.eq(operation_id))
        .filter(operation_item::Column::Status.is_in([ItemStatus::Pending, ItemStatus::Running]))
        .exec(txn)
        .await?;
    Ok(())
}

/// Writes the final status from the settled items' counts (inside the caller's
/// transaction, which holds the generation).
async fn finish<C: ConnectionTrait>(
    txn: &C,
    operation: &operation::Model,
    generation: i64,
    reason: Option<StopReason>,
) -> Result<(), DbErr> {
    // Every item is settled now: folded once, every later read is one row.
    counters::fold(txn, &operation.id, FoldUpTo::All).await?;
    let counts = counters::of(txn, &operation.id).await?;
    let (status, code, message) = final_status(operation.cancel_requested, reason, &counts);
    super::completion::record(txn, operation, status, code.as_deref(), &counts).await?;
    operation::Entity::update_many()
        .col_expr(operation::Column::Status, Expr::value(status))
        .col_expr(operation::Column::ErrorCode, Expr::value(code))
        .col_expr(operation::Column::ErrorMessage, Expr::value(message))
        .col_expr(operation::Column::FinishedAt, Expr::value(Utc::now()))
        .col_expr(
            operation::Column::LeaseOwner,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            operation::Column::LeaseExpiresAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(held(&operation.id, generation))
        .exec(txn)
        .await?;
    Ok(())
}

/// The terminal status (and error) of an operation whose items are all settled.
pub fn final_status(
    cancel_requested: bool,
    reason: Option<StopReason>,
    counts: &Counters,
) -> (OperationStatus, Option<String>, Option<String>) {
    if cancel_requested {
        return (OperationStatus::Canceled, None, None);
    }
    match reason {
        Some(StopReason::FailureBudgetExhausted) => (
            OperationStatus::Failed,
            Some(StopReason::FailureBudgetExhausted.code().into()),
            Some(format!(
                "{} items failed, which spent the failure budget (maxFailures); {} items were skipped",
                counts.failed, counts.skipped
            )),
        ),
        Some(StopReason::PermissionRevoked) => (
            OperationStatus::Failed,
            Some(StopReason::PermissionRevoked.code().into()),
            Some(
                "the operation's creator no longer holds Apps.Edit in the folder; the items not started were skipped"
                    .into(),
            ),
        ),
        None if counts.failed + counts.skipped + counts.canceled > 0 => (
            OperationStatus::Failed,
            Some("items_failed".into()),
            Some(format!("{} of {} items failed", counts.failed, counts.total)),
        ),
        None => (OperationStatus::Succeeded, None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(updated: u64, failed: u64) -> Counters {
        Counters {
            total: updated + failed,
            updated,
            failed,
            ..Counters::default()
        }
    }

    #[test]
    fn an_operation_succeeds_only_when_no_item_failed() {
        assert_eq!(
            final_status(false, None, &counts(3, 0)).0,
            OperationStatus::Succeeded
        );
        let (status, code, _) = final_status(false, None, &counts(3, 1));
        assert_eq!(status, OperationStatus::Failed);
        assert_eq!(code.as_deref(), Some("items_failed"));
    }

    #[test]
    fn a_cancel_wins_over_failures_and_a_stop_names_its_reason() {
        assert_eq!(
            final_status(true, None, &counts(1, 1)).0,
            OperationStatus::Canceled
        );
        let (_, code, message) =
            final_status(false, Some(StopReason::PermissionRevoked), &counts(1, 0));
        assert_eq!(code.as_deref(), Some("permission_revoked"));
        assert!(message.unwrap().contains("Apps.Edit"));
    }
}
