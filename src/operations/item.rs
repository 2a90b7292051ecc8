//! One item of an operation: its upgrade and the record of its outcome commit in one
//! transaction, and only while the worker's claim still holds the item (the item is
//! `pending` and no later claim marked it: `lease::still_takes`). A worker whose lease
//! was taken over, or whose operation was canceled, applies and records nothing.
//!
//! PostgreSQL: one statement (like the bulk call's, `upgrade/postgres.rs`), fenced by
//! the locked item row. SQLite: one write transaction that checks the same (and the
//! operation's generation, and that its `run_until` had not passed when the item
//! started) before writing; SQLite's writes are serialised anyway.

use chrono::{DateTime, Utc};
use entity::{
    operation,
    operation_item::{self, ItemStatus},
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, Statement,
    TransactionSession, TransactionTrait, Value, sea_query::Expr,
};

use super::lease;
use crate::{
    db,
    service::{Actor, events::EventKind},
    upgrade::{self, BulkUpgrade, FailureCode, ItemError, ItemResult, Target},
};

/// What running one item did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemRun {
    Settled(ItemStatus),
    /// The claim no longer holds the item: nothing was written.
    Fenced,
    /// The operation's `run_until` (a pause, a window's close) was at or before the
    /// instant the item started, though the worker's copy did not say so yet: nothing
    /// was written, the item waits for the next claim. SQLite only, where the item's
    /// transaction reads the operation's row anyway; PostgreSQL's statement leaves
    /// that row alone (see `OPERATION_ITEM`) and the worker's copy stops the items.
    Halted {
        run_until: Option<DateTime<Utc>>,
    },
}

/// Upgrades (or, in a dry run, inspects) one item that `started` then and records its
/// outcome, fenced by `generation`. A database error leaves the item as it was
/// (`pending`); the caller records it as a failure (`record_failure`).
pub async fn run<C>(
    db: &C,
    operation: &operation::Model,
    generation: i64,
    item: &operation_item::Model,
    actor: &Actor,
    started: DateTime<Utc>,
) -> Result<ItemRun, DbErr>
where
    C: ConnectionTrait + TransactionTrait,
{
    match db.get_database_backend() {
        DbBackend::Postgres => run_statement(db, operation, generation, item, actor).await,
        _ => run_transaction(db, operation, generation, item, actor, started).await,
    }
}

async fn run_statement<C: ConnectionTrait>(
    db: &C,
    operation: &operation::Model,
    generation: i64,
    item: &operation_item::Model,
    actor: &Actor,
) -> Result<ItemRun, DbErr> {
    let values: Vec<Value> = vec![
        item.deployment_id.clone().into(),
        operation.tenant_id.clone().into(),
        item.folder_id.into(),
        item.target_version.or(operation.target_version).into(),
        Utc::now().into(),
        EventKind::Upgrade.as_str().into(),
        actor.subject.clone().into(),
        actor.request_id.clone().into(),
        operation.id.clone().into(),
        generation.into(),
        item.seq.into(),
        operation.dry_run.into(),
    ];
    let statement = Statement::from_sql_and_values(DbBackend::Postgres, OPERATION_ITEM, values);
    let row = db.query_one_raw(statement).await?;
    let status: Option<String> = match row {
        Some(row) => row.try_get("", "status")?,
        None => None,
    };
    Ok(match status.as_deref() {
        Some("updated") => ItemRun::Settled(ItemStatus::Updated),
        Some("unchanged") => ItemRun::Settled(ItemStatus::Unchanged),
        Some(_) => ItemRun::Settled(ItemStatus::Failed),
        None => ItemRun::Fenced,
    })
}

async fn run_transaction<C>(
    db: &C,
    operation: &operation::Model,
    generation: i64,
    item: &operation_item::Model,
    actor: &Actor,
    started: DateTime<Utc>,
) -> Result<ItemRun, DbErr>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = db::begin_write(db).await?;
    let Some(live) = operation::Entity::find_by_id(operation.id.clone())
        .filter(operation::Column::LeaseGeneration.eq(generation))
        .filter(operation::Column::CancelRequested.eq(false))
        .one(&txn)
        .await?
    else {
        return Ok(ItemRun::Fenced);
    };
    // SQLite writes one transaction at a time: a pause committed before this one
    // began is seen here, whatever the worker's copy says yet. An item that started
    // before the limit and waited for the write lock past it is in flight: it runs.
    if live.run_until.is_some_and(|until| until <= started) {
        return Ok(ItemRun::Halted {
            run_until: live.run_until,
        });
    }
    let held = operation_item::Entity::find_by_id((operation.id.clone(), item.seq))
        .filter(lease::still_takes(generation))
        .one(&txn)
        .await?
        .is_some();
    if !held {
        return Ok(ItemRun::Fenced);
    }
    let job = BulkUpgrade {
        tenant_id: &operation.tenant_id,
        folder_id: item.folder_id,
        actor,
        concurrency: 1,
        dry_run: operation.dry_run,
        max_failures: None,
        target: item
            .target_version
            .or(operation.target_version)
            .map_or(Target::Latest, Target::Version),
    };
    let result: ItemResult = match item.deployment_id.as_deref() {
        None => Ok(None),
        Some(id) if operation.dry_run => upgrade::preview(&txn, &job, id).await,
        Some(id) => upgrade::apply_in_write_transaction(&txn, &job, id).await,
    };
    let (status, code, moved) = match result {
        Ok(Some(moved)) if moved.to_version > moved.from_version => {
            (ItemStatus::Updated, None, Some(moved))
        }
        Ok(Some(moved)) => (ItemStatus::Unchanged, None, Some(moved)),
        Ok(None) => (ItemStatus::Failed, Some(FailureCode::NotFound), None),
        Err(ItemError::NoPublishedVersion) => (
            ItemStatus::Failed,
            Some(FailureCode::NoPublishedVersion),
            None,
        ),
        // Dropping the transaction undoes whatever the item had written.
        Err(ItemError::Db(e)) => return Err(e),
    };
    operation_item::Entity::update_many()
        .col_expr(operation_item::Column::Status, Expr::value(status))
        .col_expr(
            operation_item::Column::FailureCode,
            Expr::value(code.map(FailureCode::as_str)),
        )
        .col_expr(
            operation_item::Column::AppSystemName,
            Expr::value(moved.as_ref().map(|m| m.app_system_name.clone())),
        )
        .col_expr(
            operation_item::Column::FromVersion,
            Expr::value(moved.as_ref().map(|m| m.from_version)),
        )
        .col_expr(
            operation_item::Column::ToVersion,
            Expr::value(moved.as_ref().map(|m| m.to_version)),
        )
        .col_expr(
            operation_item::Column::LeaseGeneration,
            Expr::value(Option::<i64>::None),
        )
        .col_expr(operation_item::Column::FinishedAt, Expr::value(Utc::now()))
        .filter(operation_item::Column::OperationId.eq(&operation.id))
        .filter(operation_item::Column::Seq.eq(item.seq))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(ItemRun::Settled(status))
}

/// Records an item whose run failed with a database error as `failed` with `code`
/// (`conflict` or `internal`), if the claim still holds it.
pub async fn record_failure<C: ConnectionTrait>(
    db: &C,
    operation_id: &str,
    generation: i64,
    seq: i32,
    code: FailureCode,
) -> Result<bool, DbErr> {
    let recorded = operation_item::Entity::update_many()
        .col_expr(
            operation_item::Column::Status,
            Expr::value(ItemStatus::Failed),
        )
        .col_expr(
            operation_item::Column::FailureCode,
            Expr::value(code.as_str()),
        )
        .col_expr(
            operation_item::Column::LeaseGeneration,
            Expr::value(Option::<i64>::None),
        )
        .col_expr(operation_item::Column::FinishedAt, Expr::value(Utc::now()))
        .filter(operation_item::Column::OperationId.eq(operation_id))
        .filter(operation_item::Column::Seq.eq(seq))
        .filter(lease::still_takes(generation))
        .exec(db)
        .await?;
    Ok(recorded.rows_affected == 1)
}

/// The item's whole transaction on PostgreSQL, `$1`…`$12`: as the bulk call's
/// statement, deployment id (NULL: not a UUID), tenant, the item's folder id, target
/// version (NULL: the latest), the change's time, event kind, actor, request id; then
/// operation id, lease generation, item seq, dry run. Answers the item's new status, or no status when the claim
/// no longer holds the item.
///
/// The fence is the item row: `settled` updates it only while it is `pending` and
/// marked by no claim newer than this generation, and the deployment moves only when
/// `settled` returned that row (`moved` reads it), so the fence, the upgrade and the
/// outcome are one write each, and the item row is written once. A take-over marks
/// the old holder's unsettled items with its generation and a cancel settles them,
/// both by updating those rows; whichever comes second waits for the row and
/// re-checks, so an item is applied and recorded once. (The operation's own row is
/// not locked here: eight sessions sharing a lock on one row cost PostgreSQL a
/// multixact per lock and halved the throughput. Locking the item row before
/// updating it cost a second heap write per item.)
pub const OPERATION_ITEM: &str = concat!(
    "WITH",
    upgrade::locked_deployment_and_target_sql!("$3"),
    r#",
settled AS (
    UPDATE operation_items i
    SET status = CASE
            WHEN NOT EXISTS (SELECT 1 FROM cur) THEN 'failed'
            WHEN NOT EXISTS (SELECT 1 FROM target) THEN 'failed'
            WHEN (SELECT version FROM target) > (SELECT version FROM cur) THEN 'updated'
            ELSE 'unchanged'
        END,
        failure_code = CASE
            WHEN NOT EXISTS (SELECT 1 FROM cur) THEN 'not_found'
            WHEN NOT EXISTS (SELECT 1 FROM target) THEN 'no_published_version'
        END,
        app_system_name = (SELECT system_name FROM cur),
        from_version = (SELECT version FROM cur),
        to_version = GREATEST((SELECT version FROM target), (SELECT version FROM cur)),
        lease_generation = NULL,
        finished_at = $5
    WHERE i.operation_id = $9 AND i.seq = $11 AND i.status = 'pending'
      AND (i.lease_generation IS NULL OR i.lease_generation <= $10)
    RETURNING i.status
),
moved AS (
    UPDATE deployments d
    SET version = target.version, updated_at = GREATEST($5, target.published_at)
    FROM cur, target, settled
    WHERE d.id = cur.id AND target.version > cur.version AND NOT $12::boolean
    RETURNING d.id, cur.version AS from_version, target.version AS to_version, d.updated_at
),
recorded AS (
    INSERT INTO deployment_events
        (tenant_id, deployment_id, kind, from_version, to_version, actor, request_id,
         created_at, operation_id)
    SELECT $2, moved.id, $6, moved.from_version, moved.to_version, $7, $8,
           moved.updated_at, $9
    FROM moved
),
outboxed AS (
    INSERT INTO webhook_events
        (id, tenant_id, event_type, ordering_key, deployment_id, from_version, to_version,
         actor, request_id, created_at, operation_id)
    SELECT gen_random_uuid()::text, $2, 'deployment.upgraded', moved.id, moved.id,
           moved.from_version, moved.to_version, $7, $8, moved.updated_at, $9
    FROM moved
)
SELECT (SELECT status FROM settled) AS status
"#
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_item_statement_binds_exactly_twelve_parameters() {
        let all: Vec<(usize, String)> = (1..=12).map(|n| (n, format!("<p{n}>"))).collect();
        let filled = upgrade::with_params(OPERATION_ITEM, &all);
        assert!(!filled.contains('$'), "{filled}");
        for n in 1..=12 {
            assert!(filled.contains(&format!("<p{n}>")), "${n} unused");
        }
    }
}
