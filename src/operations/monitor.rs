//! Reading operations (the monitor, the folder's list, the items with their outcomes)
//! and cancelling one. Every read is scoped to a tenant and folder: another folder's
//! operation is not found, exactly like one that does not exist.

use chrono::Utc;
use entity::{
    operation::{self, OperationStatus},
    operation_item::{self, ItemStatus},
};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionSession, TransactionTrait, sea_query::Expr,
};

use super::{
    counters::{self, Counters},
    lease,
};
use crate::{
    db,
    domain::DeploymentId,
    error::Error,
    upgrade::{Failure, FailureCode, Outcome, Updated},
};

/// An operation with its counters, as of one read.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub operation: operation::Model,
    pub counters: Counters,
}

/// The operation `id` of this tenant and folder (`None` for any other, and for an id
/// that is not a UUID).
pub async fn find<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    folder_id: i32,
    id: &str,
) -> Result<Option<Snapshot>, Error> {
    let Some(id) = DeploymentId::parse(id) else {
        return Ok(None);
    };
    let Some(operation) = operation::Entity::find_by_id(id.as_str().to_string())
        .filter(operation::Column::TenantId.eq(tenant_id))
        .filter(operation::Column::FolderId.eq(folder_id))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(snapshot(db, operation).await?))
}

/// The operation `id`, whoever's it is (for the caller that just created it).
pub async fn load<C: ConnectionTrait>(db: &C, id: &str) -> Result<Option<operation::Model>, Error> {
    Ok(operation::Entity::find_by_id(id.to_string())
        .one(db)
        .await?)
}

pub async fn snapshot<C: ConnectionTrait>(
    db: &C,
    operation: operation::Model,
) -> Result<Snapshot, Error> {
    let counters = counters::of(db, &operation.id).await?;
    Ok(Snapshot {
        operation,
        counters,
    })
}

/// The folder's operations, newest first, with the total count.
pub async fn list<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    folder_id: i32,
    status: Option<OperationStatus>,
    top: u64,
    skip: u64,
) -> Result<(u64, Vec<Snapshot>), Error> {
    let mut query = operation::Entity::find()
        .filter(operation::Column::TenantId.eq(tenant_id))
        .filter(operation::Column::FolderId.eq(folder_id));
    if let Some(status) = status {
        query = query.filter(operation::Column::Status.eq(status));
    }
    let total = query.clone().count(db).await?;
    let page = query
        .order_by_desc(operation::Column::CreatedAt)
        .order_by_desc(operation::Column::Id)
        .offset(skip)
        .limit(top)
        .all(db)
        .await?;
    let mut snapshots = Vec::with_capacity(page.len());
    for operation in page {
        snapshots.push(snapshot(db, operation).await?);
    }
    Ok((total, snapshots))
}

/// One page of the operation's items in order, with the count of those matching.
/// Items a worker took and has not settled are stored `pending` (`lease.rs`); they
/// are shown, and filtered, as `running`, as the counters count them.
pub async fn items<C: ConnectionTrait>(
    db: &C,
    operation: &operation::Model,
    status: Option<ItemStatus>,
    top: u64,
    skip: u64,
) -> Result<(u64, Vec<operation_item::Model>), Error> {
    let mut query = operation_item::Entity::find()
        .filter(operation_item::Column::OperationId.eq(&operation.id));
    let taken = taken_by_its_holder(operation);
    query = match status {
        None => query,
        Some(ItemStatus::Running) => query.filter(
            Condition::any()
                // As the claims of earlier builds stored them.
                .add(operation_item::Column::Status.eq(ItemStatus::Running))
                .add(taken.clone()),
        ),
        Some(ItemStatus::Pending) => query
            .filter(operation_item::Column::Status.eq(ItemStatus::Pending))
            .filter(taken.clone().not()),
        Some(status) => query.filter(operation_item::Column::Status.eq(status)),
    };
    let total = query.clone().count(db).await?;
    let page = query
        .order_by_asc(operation_item::Column::Seq)
        .offset(skip)
        .limit(top)
        .all(db)
        .await?;
    let shown = page
        .into_iter()
        .map(|mut item| {
            if item.status == ItemStatus::Pending && is_taken(operation, item.seq) {
                item.status = ItemStatus::Running;
            }
            item
        })
        .collect();
    Ok((total, shown))
}

/// The pending items the operation's holder has taken: up to its claim cursor, while
/// it is leased.
fn taken_by_its_holder(operation: &operation::Model) -> Condition {
    if operation.lease_owner.is_none() {
        return Condition::all().add(Expr::value(false));
    }
    Condition::all()
        .add(operation_item::Column::Status.eq(ItemStatus::Pending))
        .add(operation_item::Column::Seq.lte(operation.claim_cursor))
}

fn is_taken(operation: &operation::Model, seq: i32) -> bool {
    operation.lease_owner.is_some() && seq <= operation.claim_cursor
}

/// Every settled item's outcome in order (the bulk call's answer shape).
pub async fn outcomes<C: ConnectionTrait>(
    db: &C,
    operation: &operation::Model,
) -> Result<Vec<Outcome>, Error> {
    let rows = operation_item::Entity::find()
        .filter(operation_item::Column::OperationId.eq(&operation.id))
        .order_by_asc(operation_item::Column::Seq)
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|item| outcome(operation, item))
        .collect())
}

/// The item's outcome, once it is settled.
pub fn outcome(operation: &operation::Model, item: operation_item::Model) -> Option<Outcome> {
    let failed = |code: FailureCode| {
        let mut failure = Failure::new(&item.raw_id, code);
        if code == FailureCode::Skipped
            && operation.error_code.as_deref() == Some(lease::StopReason::PermissionRevoked.code())
        {
            failure.message = "not started: the operation stopped (permission_revoked)".into();
        }
        Some(Outcome::Failed(failure))
    };
    match item.status {
        ItemStatus::Pending | ItemStatus::Running => None,
        ItemStatus::Updated | ItemStatus::Unchanged => {
            let from = item.from_version.unwrap_or_default();
            Some(Outcome::Updated(Updated {
                id: item.raw_id,
                app_system_name: item.app_system_name.unwrap_or_default(),
                version: item.to_version.unwrap_or(from),
                previous_version: from,
            }))
        }
        ItemStatus::Failed => failed(
            item.failure_code
                .as_deref()
                .and_then(FailureCode::parse)
                .unwrap_or(FailureCode::Internal),
        ),
        ItemStatus::Skipped => failed(FailureCode::Skipped),
        ItemStatus::Canceled => failed(FailureCode::Canceled),
    }
}

/// Cancels the operation: no item starts any more, items in flight finish first (the
/// cancel waits for them), the rest become `canceled` and the operation `Canceled`.
/// A finished operation cannot be canceled (`Conflict`).
pub async fn cancel<C>(
    db: &C,
    tenant_id: &str,
    folder_id: i32,
    id: &str,
) -> Result<Option<Snapshot>, Error>
where
    C: ConnectionTrait + TransactionTrait,
{
    let Some(id) = DeploymentId::parse(id) else {
        return Ok(None);
    };
    let txn = db::begin_write(db).await?;
    // Locked like a claim locks it; the items are then settled in this transaction,
    // and an item statement in flight holds its item row, so the cancel waits for it
    // (items in flight finish) and no later one finds its item still running.
    let Some(operation) = operation::Entity::find_by_id(id.as_str().to_string())
        .filter(operation::Column::TenantId.eq(tenant_id))
        .filter(operation::Column::FolderId.eq(folder_id))
        .lock_exclusive()
        .one(&txn)
        .await?
    else {
        return Ok(None);
    };
    if operation.status.is_terminal() {
        return Err(Error::Conflict(format!(
            "operation {} already finished ({}); only a running or not yet started operation can be canceled",
            operation.id,
            operation.status.as_str()
        )));
    }
    settle_as_canceled(&txn, &operation).await?;
    let canceled = operation::Entity::find_by_id(operation.id.clone())
        .one(&txn)
        .await?
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("the canceled operation vanished")))?;
    let snapshot = snapshot(&txn, canceled).await?;
    txn.commit().await?;
    Ok(Some(snapshot))
}

/// Cancels the operation `id` inside the caller's transaction (a rollout's abort,
/// retry or rollback): `false` when it had already finished.
pub async fn cancel_within<C: ConnectionTrait>(txn: &C, id: &str) -> Result<bool, Error> {
    let Some(operation) = operation::Entity::find_by_id(id.to_string())
        .lock_exclusive()
        .one(txn)
        .await?
    else {
        return Ok(false);
    };
    if operation.status.is_terminal() {
        return Ok(false);
    }
    settle_as_canceled(txn, &operation).await?;
    Ok(true)
}

/// The rest of the items `canceled`, a new generation, the operation `Canceled`.
async fn settle_as_canceled<C: ConnectionTrait>(
    txn: &C,
    operation: &operation::Model,
) -> Result<(), Error> {
    lease::settle_rest(txn, &operation.id, ItemStatus::Canceled).await?;
    let now = Utc::now();
    operation::Entity::update_many()
        .col_expr(operation::Column::CancelRequested, Expr::value(true))
        // A new generation: whoever held the lease holds nothing now.
        .col_expr(
            operation::Column::LeaseGeneration,
            Expr::value(operation.lease_generation + 1),
        )
        .col_expr(
            operation::Column::LeaseOwner,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            operation::Column::LeaseExpiresAt,
            Expr::value(Option::<chrono::DateTime<Utc>>::None),
        )
        .col_expr(
            operation::Column::Status,
            Expr::value(OperationStatus::Canceled),
        )
        .col_expr(
            operation::Column::StartedAt,
            Expr::value(operation.started_at.unwrap_or(now)),
        )
        .col_expr(operation::Column::FinishedAt, Expr::value(now))
        .filter(operation::Column::Id.eq(&operation.id))
        .exec(txn)
        .await?;
    // Every item is settled now: folded once, every later read is one row.
    super::counters::fold(txn, &operation.id, super::counters::FoldUpTo::All).await?;
    // Its `operation.completed` webhook event, in the same transaction (a rollout's
    // abort cancels through here too).
    let counts = super::counters::of(txn, &operation.id).await?;
    super::completion::record(txn, operation, OperationStatus::Canceled, None, &counts).await?;
    Ok(())
}
