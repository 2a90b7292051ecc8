//! Deliveries: claim the due ones, send each, record the attempt and what follows.
//!
//! The claim marks deliveries `sending` under a lease (`FOR UPDATE SKIP LOCKED` on
//! PostgreSQL: replicas take different rows; SQLite has one writer). A delivery whose
//! sender died is claimed again once its lease lapsed and sent again with the same
//! `webhook-id` (at least once). A delivery is claimable only when no earlier event
//! with its ordering key (its deployment, app or operation) is still open for the
//! same endpoint, nor still waiting for fan-out: one endpoint receives a
//! deployment's events one at a time, in commit order.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::{
    webhook_attempt,
    webhook_delivery::{self, DeliveryStatus},
    webhook_endpoint, webhook_event,
};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, DbErr,
    EntityTrait, QueryFilter, QuerySelect, Statement, TransactionSession, TransactionTrait, Value,
    sea_query::Expr,
};

use super::{policy::WebhookPolicy, transport::Failure};
use crate::db;

/// Up to `$2` due deliveries at `$1` (with their owner, set only when a sender's
/// lease lapsed: a settled attempt clears it).
const DUE: &str = r#"
    SELECT d.id, d.lease_owner AS previous_owner
    FROM webhook_deliveries d
    JOIN webhook_endpoints e ON e.id = d.endpoint_id
    WHERE ((d.status = 'pending' AND d.next_attempt_at <= $1)
           OR (d.status = 'sending' AND d.lease_expires_at < $1))
      AND e.enabled
      AND NOT EXISTS (
          SELECT 1 FROM webhook_deliveries p
          WHERE p.endpoint_id = d.endpoint_id AND p.ordering_key = d.ordering_key
            AND p.event_seq < d.event_seq AND p.status IN ('pending', 'sending'))
      AND NOT EXISTS (
          SELECT 1 FROM webhook_events ev
          WHERE NOT ev.dispatched AND ev.ordering_key = d.ordering_key
            AND ev.seq < d.event_seq)
    ORDER BY d.next_attempt_at
    LIMIT $2
"#;

/// PostgreSQL: the due deliveries locked (skipping those another replica is
/// claiming) and marked `sending` for owner `$3` until `$4`, in one statement.
fn claim_statement() -> String {
    format!(
        "UPDATE webhook_deliveries SET status = 'sending', lease_owner = $3, lease_expires_at = $4 \
         FROM ({DUE} FOR UPDATE OF d SKIP LOCKED) AS due \
         WHERE webhook_deliveries.id = due.id \
         RETURNING webhook_deliveries.id, due.previous_owner"
    )
}

/// One claimed delivery, with what sending it needs.
pub struct Claimed {
    pub delivery: webhook_delivery::Model,
    pub endpoint: webhook_endpoint::Model,
    pub event: webhook_event::Model,
    /// Another sender had it and its lease lapsed: the receiver may see it twice.
    pub taken_over: bool,
}

pub async fn claim<C>(
    db: &C,
    owner: &str,
    policy: &WebhookPolicy,
    limit: usize,
) -> Result<Vec<Claimed>, DbErr>
where
    C: ConnectionTrait + TransactionTrait,
{
    let now = Utc::now();
    let backend = db.get_database_backend();
    let until = expiry(now, policy.lease());
    let txn = db::begin_write(db).await?;
    let rows = match backend {
        DbBackend::Postgres => {
            let values: Vec<Value> = vec![
                now.into(),
                (limit as i64).into(),
                owner.into(),
                until.into(),
            ];
            txn.query_all_raw(Statement::from_sql_and_values(
                backend,
                claim_statement(),
                values,
            ))
            .await?
        }
        // One writer: the due rows read in this write transaction stay due until it
        // marks them.
        _ => {
            let values: Vec<Value> = vec![now.into(), (limit as i64).into()];
            txn.query_all_raw(Statement::from_sql_and_values(backend, DUE, values))
                .await?
        }
    };
    let mut ids = Vec::with_capacity(rows.len());
    let mut taken = Vec::new();
    for row in rows {
        let id: String = row.try_get("", "id")?;
        let previous: Option<String> = row.try_get("", "previous_owner")?;
        if previous.is_some() {
            taken.push(id.clone());
        }
        ids.push(id);
    }
    if backend != DbBackend::Postgres && !ids.is_empty() {
        webhook_delivery::Entity::update_many()
            .col_expr(
                webhook_delivery::Column::Status,
                Expr::value(DeliveryStatus::Sending),
            )
            .col_expr(webhook_delivery::Column::LeaseOwner, Expr::value(owner))
            .col_expr(webhook_delivery::Column::LeaseExpiresAt, Expr::value(until))
            .filter(webhook_delivery::Column::Id.is_in(ids.clone()))
            .exec(&txn)
            .await?;
    }
    if ids.is_empty() {
        txn.commit().await?;
        return Ok(Vec::new());
    }
    let deliveries = webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::Id.is_in(ids))
        .all(&txn)
        .await?;
    let endpoint_ids: Vec<String> = deliveries.iter().map(|d| d.endpoint_id.clone()).collect();
    let endpoints = webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::Id.is_in(endpoint_ids))
        .all(&txn)
        .await?;
    let seqs: Vec<i64> = deliveries.iter().map(|d| d.event_seq).collect();
    let events = webhook_event::Entity::find()
        .filter(webhook_event::Column::Seq.is_in(seqs))
        .all(&txn)
        .await?;
    txn.commit().await?;
    let mut claimed = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        let (Some(endpoint), Some(event)) = (
            endpoints.iter().find(|e| e.id == delivery.endpoint_id),
            events.iter().find(|e| e.seq == delivery.event_seq),
        ) else {
            continue;
        };
        claimed.push(Claimed {
            taken_over: taken.contains(&delivery.id),
            endpoint: endpoint.clone(),
            event: event.clone(),
            delivery,
        });
    }
    Ok(claimed)
}

fn expiry(now: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::minutes(1))
}

/// What became of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    Delivered,
    /// Another attempt is scheduled.
    Retrying,
    /// Given up (retries exhausted, or 410).
    Failed,
    /// This sender no longer held the delivery; nothing was recorded.
    Fenced,
}

impl Settled {
    pub fn as_str(self) -> &'static str {
        match self {
            Settled::Delivered => "delivered",
            Settled::Retrying => "retrying",
            Settled::Failed => "failed",
            Settled::Fenced => "fenced",
        }
    }
}

/// Records an attempt and its consequence, fenced by the claim (`owner` and
/// `sending`): the delivery's next state, and the endpoint's (410 disables it; a run
/// of failures longer than `disable_after` disables it; a success ends the run).
pub async fn settle<C>(
    db: &C,
    owner: &str,
    claimed: &Claimed,
    policy: &WebhookPolicy,
    took: Duration,
    result: &Result<u16, (Option<u16>, Option<String>, Failure)>,
) -> Result<Settled, DbErr>
where
    C: ConnectionTrait + TransactionTrait,
{
    let now = Utc::now();
    let delivery = &claimed.delivery;
    let attempts = delivery.attempts + 1;
    let txn = db::begin_write(db).await?;
    let (status_code, error) = match result {
        Ok(code) => (Some(*code), None),
        Err((code, _, failure)) => (*code, Some(failure)),
    };
    let (next, gone) = match result {
        Ok(_) => (None, false),
        Err((Some(410), _, _)) => (None, true),
        Err((code, retry_after, _)) => (
            policy.next_delay(attempts as usize, *code, retry_after.as_deref()),
            false,
        ),
    };
    let outcome = match (result, next) {
        (Ok(_), _) => Settled::Delivered,
        (Err(_), Some(_)) => Settled::Retrying,
        (Err(_), None) => Settled::Failed,
    };
    let status = match outcome {
        Settled::Delivered => DeliveryStatus::Succeeded,
        Settled::Retrying => DeliveryStatus::Pending,
        _ => DeliveryStatus::Failed,
    };
    let next_at = next.map_or(now, |wait| expiry(now, wait));
    let updated = webhook_delivery::Entity::update_many()
        .col_expr(webhook_delivery::Column::Status, Expr::value(status))
        .col_expr(webhook_delivery::Column::Attempts, Expr::value(attempts))
        .col_expr(
            webhook_delivery::Column::NextAttemptAt,
            Expr::value(next_at),
        )
        .col_expr(
            webhook_delivery::Column::LeaseOwner,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            webhook_delivery::Column::LeaseExpiresAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            webhook_delivery::Column::DeliveredAt,
            Expr::value((outcome == Settled::Delivered).then_some(now)),
        )
        .filter(webhook_delivery::Column::Id.eq(&delivery.id))
        .filter(webhook_delivery::Column::Status.eq(DeliveryStatus::Sending))
        .filter(webhook_delivery::Column::LeaseOwner.eq(owner))
        .exec(&txn)
        .await?;
    if updated.rows_affected == 0 {
        return Ok(Settled::Fenced);
    }
    webhook_attempt::ActiveModel {
        delivery_id: Set(delivery.id.clone()),
        attempted_at: Set(now - chrono::Duration::from_std(took).unwrap_or_default()),
        status_code: Set(status_code.map(i32::from)),
        error: Set(error.map(|failure| match (failure, status_code) {
            (_, Some(code)) => format!("status {code}"),
            (failure, None) => failure.recorded(),
        })),
        duration_ms: Set(took.as_millis() as i64),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    let endpoint = webhook_endpoint::Entity::find_by_id(claimed.endpoint.id.clone())
        .one(&txn)
        .await?;
    if let Some(endpoint) = endpoint {
        endpoint_after(
            &txn,
            endpoint,
            outcome == Settled::Delivered,
            gone,
            policy,
            now,
        )
        .await?;
    }
    txn.commit().await?;
    Ok(outcome)
}

async fn endpoint_after<C: ConnectionTrait>(
    txn: &C,
    endpoint: webhook_endpoint::Model,
    delivered: bool,
    gone: bool,
    policy: &WebhookPolicy,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let failing_since = endpoint.failing_since;
    let mut active: webhook_endpoint::ActiveModel = endpoint.clone().into();
    if delivered {
        if failing_since.is_none() {
            return Ok(());
        }
        active.failing_since = Set(None);
    } else {
        let since = failing_since.unwrap_or(now);
        active.failing_since = Set(Some(since));
        let failing_for = (now - since).to_std().unwrap_or_default();
        let reason = if gone {
            Some("gone")
        } else if failing_for >= policy.disable_after {
            Some("failing")
        } else {
            None
        };
        if let Some(reason) = reason
            && endpoint.enabled
        {
            tracing::warn!(endpoint = %endpoint.id, reason, "webhook endpoint disabled");
            active.enabled = Set(false);
            active.disabled_reason = Set(Some(reason.into()));
            active.disabled_at = Set(Some(now));
        } else if failing_since.is_some() {
            return Ok(());
        }
    }
    active.updated_at = Set(now);
    active.update(txn).await?;
    Ok(())
}

/// Pending deliveries that already failed at least once, and disabled endpoints.
pub async fn gauges<C: ConnectionTrait>(db: &C) -> Result<(i64, i64), DbErr> {
    use sea_orm::PaginatorTrait;
    let retrying = webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::Status.eq(DeliveryStatus::Pending))
        .filter(webhook_delivery::Column::Attempts.gt(0))
        .count(db)
        .await?;
    let disabled = webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::Enabled.eq(false))
        .count(db)
        .await?;
    Ok((retrying as i64, disabled as i64))
}

/// Deletes events past the retention (their deliveries and attempts go with them).
pub async fn purge<C: ConnectionTrait>(db: &C, retention: Duration) -> Result<u64, DbErr> {
    let before = Utc::now() - chrono::Duration::from_std(retention).unwrap_or_default();
    // A bounded pass: the sweep comes back for the rest.
    let old: Vec<i64> = webhook_event::Entity::find()
        .select_only()
        .column(webhook_event::Column::Seq)
        .filter(webhook_event::Column::CreatedAt.lt(before))
        .filter(webhook_event::Column::Dispatched.eq(true))
        .limit(5000)
        .into_tuple()
        .all(db)
        .await?;
    if old.is_empty() {
        return Ok(0);
    }
    let mut purged = 0;
    for chunk in old.chunks(500) {
        webhook_delivery::Entity::delete_many()
            .filter(webhook_delivery::Column::EventSeq.is_in(chunk.to_vec()))
            .exec(db)
            .await?;
        purged += webhook_event::Entity::delete_many()
            .filter(webhook_event::Column::Seq.is_in(chunk.to_vec()))
            .exec(db)
            .await?
            .rows_affected;
    }
    Ok(purged)
}
