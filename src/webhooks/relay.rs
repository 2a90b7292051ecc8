//! Deliveries: claim the due ones, send each, record the attempt and what follows.
//!
//! The claim marks deliveries `sending` under a lease (`FOR UPDATE SKIP LOCKED` on
//! PostgreSQL: replicas take different rows; SQLite has one writer). A delivery whose
//! sender died is claimed again once its lease lapsed and sent again with the same
//! `webhook-id` (at least once). A delivery is claimable only when no earlier event
//! with its ordering key (its deployment, app or operation) is still open for the
//! same endpoint, nor any earlier event still waiting for fan-out: one endpoint
//! receives a deployment's events one at a time, in commit order.
//!
//! The fan-out check is against the oldest event not yet fanned out (one read of the
//! partial index of undispatched rows), not per ordering key: per key, PostgreSQL
//! planned a hash anti-join over the whole outbox (its statistics, taken while rows
//! were undispatched, promised thousands): 67 ms of each claim at 20,000 events.
//! Fan-out runs in `seq` order, so what this holds back is about one pass's worth; a
//! row that commits late holds back the later deliveries until the next pass takes it.

use std::{collections::HashSet, time::Duration};

use chrono::{DateTime, Utc};
use entity::{
    webhook_attempt,
    webhook_delivery::{self, DeliveryStatus},
    webhook_endpoint, webhook_event,
};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr,
    EntityTrait, ExprTrait, QueryFilter, QuerySelect, Statement, TransactionSession,
    TransactionTrait, Value, sea_query::Expr,
};

use super::{policy::WebhookPolicy, transport::Failure};
use crate::db;

/// Up to `$2` claimable deliveries, oldest event first, with their owner (set only
/// when a sender's lease lapsed: a settled attempt clears it). `{state}` picks them:
/// due pending deliveries, or lapsed sending ones. Claimable means: the endpoint is
/// enabled, no earlier delivery of the same ordering key is still open for the same
/// endpoint, and no earlier event still waits for fan-out.
///
/// Every condition is checked as the rows are read, before the limit. It used to be
/// checked on a window of the 256 oldest rows, and a window full of rows that could
/// not go stopped every endpoint of every tenant: a disabled endpoint keeps its
/// pending deliveries (they go out when it is enabled again), and a delivery waiting
/// for its retry holds back the rest of its key. Such rows are now read past instead
/// (about 0.4 µs a row on PostgreSQL: 20 ms a claim behind 50,000 of them). What is
/// read are partial indexes of the open deliveries only (migration
/// `m20261201_000010`): the delivered history is never walked, so a claim costs the
/// same however long the outbox is kept (it was 17.6 ms with 130,000 delivered rows
/// in front of the queue; 1 ms now).
const DUE: &str = r#"
SELECT c.id, c.lease_owner AS previous_owner
FROM webhook_deliveries c
WHERE {state}
  AND c.event_seq < COALESCE(
      (SELECT min(ev.seq) FROM webhook_events ev WHERE NOT ev.dispatched),
      9223372036854775807)
  AND c.endpoint_id IN (SELECT e.id FROM webhook_endpoints e WHERE e.enabled)
  AND NOT EXISTS (
      SELECT 1 FROM webhook_deliveries p
      WHERE p.endpoint_id = c.endpoint_id AND p.ordering_key = c.ordering_key
        AND p.event_seq < c.event_seq AND p.status IN ('pending', 'sending'))
ORDER BY {order}
LIMIT $2
{lock}
"#;

/// Which deliveries a claim reads: each is read in the order of its index.
#[derive(Clone, Copy)]
enum Queue {
    Pending,
    Lapsed,
}

fn due(queue: Queue, backend: DbBackend) -> String {
    let (state, order) = match queue {
        // In event order, not by due time: the oldest events have waited longest,
        // and the order is the partial index's, so the read stops at the limit.
        Queue::Pending => (
            "c.status = 'pending' AND c.next_attempt_at <= $1",
            "c.event_seq",
        ),
        Queue::Lapsed => (
            "c.status = 'sending' AND c.lease_expires_at < $1",
            "c.lease_expires_at",
        ),
    };
    let lock = match backend {
        DbBackend::Postgres => "FOR UPDATE OF c SKIP LOCKED",
        _ => "",
    };
    DUE.replace("{state}", state)
        .replace("{order}", order)
        .replace("{lock}", lock)
}

/// One claimed delivery, with what sending it needs.
pub struct Claimed {
    pub delivery: webhook_delivery::Model,
    pub endpoint: webhook_endpoint::Model,
    pub event: webhook_event::Model,
    /// Another sender had it and its lease lapsed: the receiver may see it twice.
    pub taken_over: bool,
}

/// Whether any delivery is due (read without the write lock): an idle relay asks
/// this before it claims, so it does not take SQLite's one writer (or a PostgreSQL
/// transaction) every poll. A busy one claims straight away.
pub async fn anything_due<C: ConnectionTrait>(db: &C) -> Result<bool, DbErr> {
    let now = Utc::now();
    let due = webhook_delivery::Entity::find()
        .select_only()
        .column(webhook_delivery::Column::Id)
        .filter(
            Condition::any()
                .add(
                    Condition::all()
                        .add(webhook_delivery::Column::Status.eq(DeliveryStatus::Pending))
                        .add(webhook_delivery::Column::NextAttemptAt.lte(now)),
                )
                .add(
                    Condition::all()
                        .add(webhook_delivery::Column::Status.eq(DeliveryStatus::Sending))
                        .add(webhook_delivery::Column::LeaseExpiresAt.lt(now)),
                ),
        )
        .limit(1)
        .into_tuple::<String>()
        .one(db)
        .await?;
    Ok(due.is_some())
}

/// Claims up to `limit` due deliveries (lapsed leases first), at most one per
/// (endpoint, ordering key): the next is claimable only once this one is settled.
pub async fn claim<C>(
    db: &C,
    owner: &str,
    policy: &WebhookPolicy,
    limit: usize,
) -> Result<Vec<Claimed>, DbErr>
where
    C: ConnectionTrait + TransactionTrait,
{
    let backend = db.get_database_backend();
    let txn = db::begin_write(db).await?;
    // After the begin, which can wait out another writer on SQLite: the lease runs
    // from the moment the deliveries are taken.
    let now = Utc::now();
    let until = expiry(now, policy.lease());
    // In the partial indexes' order, planned at each run (`db::QUEUE_READ_PLAN`).
    db::plan_queue_read(&txn).await?;
    let mut ids: Vec<String> = Vec::with_capacity(limit);
    let mut taken = Vec::new();
    // Lapsed leases first (a dead replica's deliveries), then the due ones.
    for queue in [Queue::Lapsed, Queue::Pending] {
        if ids.len() >= limit {
            break;
        }
        let values: Vec<Value> = vec![now.into(), ((limit - ids.len()) as i64).into()];
        let rows = txn
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                due(queue, backend),
                values,
            ))
            .await?;
        for row in rows {
            let id: String = row.try_get("", "id")?;
            let previous: Option<String> = row.try_get("", "previous_owner")?;
            if previous.is_some() {
                taken.push(id.clone());
            }
            ids.push(id);
        }
    }
    // The rows read are locked (PostgreSQL) or this is the one writer (SQLite): they
    // are still due when marked.
    if !ids.is_empty() {
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

/// What sending one claimed delivery gave: the status of a 2xx, or the status (if
/// any), `Retry-After` (if any) and the failure.
pub type SendResult = Result<u16, (Option<u16>, Option<String>, Failure)>;

/// One claimed delivery, sent.
pub struct Sent {
    pub claimed: Claimed,
    pub took: Duration,
    pub result: SendResult,
}

/// Records a batch of attempts and their consequences in one transaction (one commit
/// for the batch, not one per delivery), each fenced by its claim (`owner` and
/// `sending`): the delivery's next state, and each endpoint's (410 disables it; a run
/// of failures longer than `disable_after` disables it; a success ends the run). A
/// failure to record leaves the batch `sending`: once the lease lapses it is sent
/// again (at least once).
///
/// The statements do not grow with the batch where it matters: the fence is one read
/// (locking the rows still held on PostgreSQL; SQLite's one writer holds them anyway)
/// and every delivered one is marked by one update; only failures, each with its own
/// next attempt, are one statement each.
pub async fn settle<C>(
    db: &C,
    owner: &str,
    sent: &[Sent],
    policy: &WebhookPolicy,
) -> Result<Vec<Settled>, DbErr>
where
    C: ConnectionTrait + TransactionTrait,
{
    let now = Utc::now();
    let txn = db::begin_write(db).await?;
    let held: HashSet<String> = webhook_delivery::Entity::find()
        .select_only()
        .column(webhook_delivery::Column::Id)
        .filter(
            webhook_delivery::Column::Id.is_in(sent.iter().map(|s| s.claimed.delivery.id.clone())),
        )
        .filter(webhook_delivery::Column::Status.eq(DeliveryStatus::Sending))
        .filter(webhook_delivery::Column::LeaseOwner.eq(owner))
        .lock_exclusive()
        .into_tuple::<String>()
        .all(&txn)
        .await?
        .into_iter()
        .collect();
    let mut outcomes = Vec::with_capacity(sent.len());
    let mut delivered = Vec::with_capacity(sent.len());
    let mut attempts_made = Vec::with_capacity(sent.len());
    // Per endpoint: (any delivered, any failed, any 410).
    let mut effects: Vec<(String, bool, bool, bool)> = Vec::new();
    for Sent {
        claimed,
        took,
        result,
    } in sent
    {
        let delivery = &claimed.delivery;
        if !held.contains(&delivery.id) {
            outcomes.push(Settled::Fenced);
            continue;
        }
        let attempts = delivery.attempts + 1;
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
        if outcome == Settled::Delivered {
            delivered.push(delivery.id.clone());
        } else {
            let status = match outcome {
                Settled::Retrying => DeliveryStatus::Pending,
                _ => DeliveryStatus::Failed,
            };
            let next_at = next.map_or(now, |wait| expiry(now, wait));
            released(webhook_delivery::Entity::update_many())
                .col_expr(webhook_delivery::Column::Status, Expr::value(status))
                .col_expr(webhook_delivery::Column::Attempts, Expr::value(attempts))
                .col_expr(
                    webhook_delivery::Column::NextAttemptAt,
                    Expr::value(next_at),
                )
                .col_expr(
                    webhook_delivery::Column::DeliveredAt,
                    Expr::value(Option::<DateTime<Utc>>::None),
                )
                .filter(webhook_delivery::Column::Id.eq(&delivery.id))
                .exec(&txn)
                .await?;
        }
        outcomes.push(outcome);
        attempts_made.push(webhook_attempt::ActiveModel {
            delivery_id: Set(delivery.id.clone()),
            attempted_at: Set(now - chrono::Duration::from_std(*took).unwrap_or_default()),
            status_code: Set(status_code.map(i32::from)),
            error: Set(error.map(|failure| match (failure, status_code) {
                (_, Some(code)) => format!("status {code}"),
                (failure, None) => failure.recorded(),
            })),
            duration_ms: Set(took.as_millis() as i64),
            ..Default::default()
        });
        let endpoint = &claimed.endpoint.id;
        let entry = match effects.iter_mut().find(|(id, ..)| id == endpoint) {
            Some(entry) => entry,
            None => {
                effects.push((endpoint.clone(), false, false, false));
                effects.last_mut().expect("just pushed")
            }
        };
        entry.1 |= outcome == Settled::Delivered;
        entry.2 |= outcome != Settled::Delivered;
        entry.3 |= gone;
    }
    for chunk in delivered.chunks(500) {
        released(webhook_delivery::Entity::update_many())
            .col_expr(
                webhook_delivery::Column::Status,
                Expr::value(DeliveryStatus::Succeeded),
            )
            .col_expr(
                webhook_delivery::Column::Attempts,
                Expr::col(webhook_delivery::Column::Attempts).add(1),
            )
            .col_expr(webhook_delivery::Column::NextAttemptAt, Expr::value(now))
            .col_expr(webhook_delivery::Column::DeliveredAt, Expr::value(now))
            .filter(webhook_delivery::Column::Id.is_in(chunk.to_vec()))
            .exec(&txn)
            .await?;
    }
    for chunk in attempts_made.chunks(500) {
        webhook_attempt::Entity::insert_many(chunk.to_vec())
            .exec(&txn)
            .await?;
    }
    // Only endpoints whose state may change are read: one that delivered and was not
    // failing has nothing to record.
    let relevant: Vec<String> = effects
        .iter()
        .filter(|(id, delivered, failed, _)| {
            *failed
                || (*delivered
                    && sent.iter().any(|s| {
                        &s.claimed.endpoint.id == id && s.claimed.endpoint.failing_since.is_some()
                    }))
        })
        .map(|(id, ..)| id.clone())
        .collect();
    if !relevant.is_empty() {
        let endpoints = webhook_endpoint::Entity::find()
            .filter(webhook_endpoint::Column::Id.is_in(relevant))
            .all(&txn)
            .await?;
        for endpoint in endpoints {
            let Some((_, delivered, _, gone)) =
                effects.iter().find(|(id, ..)| *id == endpoint.id).cloned()
            else {
                continue;
            };
            endpoint_after(&txn, endpoint, delivered, gone, policy, now).await?;
        }
    }
    txn.commit().await?;
    Ok(outcomes)
}

/// An update of deliveries that ends their claim (no owner, no lease).
fn released(
    update: sea_orm::UpdateMany<webhook_delivery::Entity>,
) -> sea_orm::UpdateMany<webhook_delivery::Entity> {
    update
        .col_expr(
            webhook_delivery::Column::LeaseOwner,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            webhook_delivery::Column::LeaseExpiresAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
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

/// Deletes events past the retention (their deliveries and attempts go with them), in
/// one transaction: a failure between the deletes leaves nothing half-purged (no event
/// whose deliveries are gone while it still counts for "replay since").
pub async fn purge<C>(db: &C, retention: Duration) -> Result<u64, DbErr>
where
    C: ConnectionTrait + TransactionTrait,
{
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
    let txn = db::begin_write(db).await?;
    let mut purged = 0;
    for chunk in old.chunks(500) {
        webhook_delivery::Entity::delete_many()
            .filter(webhook_delivery::Column::EventSeq.is_in(chunk.to_vec()))
            .exec(&txn)
            .await?;
        purged += webhook_event::Entity::delete_many()
            .filter(webhook_event::Column::Seq.is_in(chunk.to_vec()))
            .exec(&txn)
            .await?
            .rows_affected;
    }
    txn.commit().await?;
    Ok(purged)
}
