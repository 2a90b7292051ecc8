//! An endpoint's delivery log, and the ways to send again: one delivery, everything
//! since a time (from the outbox, kept for the retention period), and a test event.
//! A replay is a new delivery of the same event, so it has the event's `webhook-id`:
//! a receiver that already processed it can recognise it.

use chrono::{DateTime, Utc};
use entity::{
    webhook_attempt,
    webhook_delivery::{self, DeliveryStatus},
    webhook_endpoint, webhook_event,
};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, TransactionSession, TransactionTrait,
};
use serde_json::json;

use super::fanout::{self, Filter};
use crate::{db, error::Error, outbox::EventType};

/// One delivery with its event and its attempts, oldest attempt first.
pub struct Logged {
    pub delivery: webhook_delivery::Model,
    pub event: Option<webhook_event::Model>,
    pub attempts: Vec<webhook_attempt::Model>,
}

/// The endpoint's deliveries, newest first.
pub async fn log<C: ConnectionTrait>(
    db: &C,
    endpoint_id: &str,
    status: Option<DeliveryStatus>,
    top: u64,
    skip: u64,
) -> Result<(u64, Vec<Logged>), Error> {
    let mut query = webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::EndpointId.eq(endpoint_id));
    if let Some(status) = status {
        query = query.filter(webhook_delivery::Column::Status.eq(status));
    }
    let count = query.clone().count(db).await?;
    let page = query
        .order_by_desc(webhook_delivery::Column::CreatedAt)
        .order_by_desc(webhook_delivery::Column::EventSeq)
        .limit(top)
        .offset(skip)
        .all(db)
        .await?;
    let ids: Vec<String> = page.iter().map(|d| d.id.clone()).collect();
    let seqs: Vec<i64> = page.iter().map(|d| d.event_seq).collect();
    let events = webhook_event::Entity::find()
        .filter(webhook_event::Column::Seq.is_in(seqs))
        .all(db)
        .await?;
    let attempts = webhook_attempt::Entity::find()
        .filter(webhook_attempt::Column::DeliveryId.is_in(ids))
        .order_by_asc(webhook_attempt::Column::Id)
        .all(db)
        .await?;
    let logged = page
        .into_iter()
        .map(|delivery| Logged {
            event: events.iter().find(|e| e.seq == delivery.event_seq).cloned(),
            attempts: attempts
                .iter()
                .filter(|a| a.delivery_id == delivery.id)
                .cloned()
                .collect(),
            delivery,
        })
        .collect();
    Ok((count, logged))
}

/// One delivery as the log shows it.
pub async fn logged<C: ConnectionTrait>(
    db: &C,
    delivery: webhook_delivery::Model,
) -> Result<Logged, Error> {
    let event = webhook_event::Entity::find_by_id(delivery.event_seq)
        .one(db)
        .await?;
    let attempts = webhook_attempt::Entity::find()
        .filter(webhook_attempt::Column::DeliveryId.eq(&delivery.id))
        .order_by_asc(webhook_attempt::Column::Id)
        .all(db)
        .await?;
    Ok(Logged {
        delivery,
        event,
        attempts,
    })
}

fn new_delivery(
    endpoint_id: &str,
    event: &webhook_event::Model,
    replay: bool,
    now: DateTime<Utc>,
) -> webhook_delivery::ActiveModel {
    webhook_delivery::ActiveModel {
        id: Set(uuid::Uuid::new_v4().to_string()),
        endpoint_id: Set(endpoint_id.to_string()),
        event_seq: Set(event.seq),
        ordering_key: Set(event.ordering_key.clone()),
        status: Set(DeliveryStatus::Pending),
        attempts: Set(0),
        next_attempt_at: Set(now),
        lease_owner: Set(None),
        lease_expires_at: Set(None),
        replay: Set(replay),
        created_at: Set(now),
        delivered_at: Set(None),
    }
}

/// Sends delivery `delivery_id`'s event to its endpoint again, as a new delivery.
pub async fn replay_one<C: ConnectionTrait>(
    db: &C,
    endpoint: &webhook_endpoint::Model,
    delivery_id: &str,
) -> Result<Option<webhook_delivery::Model>, Error> {
    let Some(id) = crate::domain::DeploymentId::parse(delivery_id) else {
        return Ok(None);
    };
    let Some(original) = webhook_delivery::Entity::find_by_id(id.as_str().to_string())
        .filter(webhook_delivery::Column::EndpointId.eq(&endpoint.id))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let Some(event) = webhook_event::Entity::find_by_id(original.event_seq)
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(
        new_delivery(&endpoint.id, &event, true, Utc::now())
            .insert(db)
            .await?,
    ))
}

/// The most events one replay may re-send.
pub const MAX_REPLAY: u64 = 100_000;

/// Re-sends every event of the tenant since `since` that the endpoint's filters want
/// (events not yet fanned out are left to the fan-out); how many.
pub async fn replay_since<C>(
    db: &C,
    endpoint: &webhook_endpoint::Model,
    since: DateTime<Utc>,
) -> Result<u64, Error>
where
    C: ConnectionTrait + TransactionTrait,
{
    let filter = Filter::of(endpoint);
    let txn = db::begin_write(db).await?;
    let now = Utc::now();
    let mut after: i64 = 0;
    let mut replayed = 0u64;
    loop {
        let page = webhook_event::Entity::find()
            .filter(webhook_event::Column::TenantId.eq(&endpoint.tenant_id))
            .filter(webhook_event::Column::CreatedAt.gte(since))
            .filter(webhook_event::Column::Dispatched.eq(true))
            .filter(webhook_event::Column::EventType.ne(EventType::WebhookTest.as_str()))
            .filter(webhook_event::Column::Seq.gt(after))
            .order_by_asc(webhook_event::Column::Seq)
            .limit(1000)
            .all(&txn)
            .await?;
        let mut page = page;
        let Some(last) = page.last() else { break };
        after = last.seq;
        // Events fanned out while the tenant had no endpoint were not completed then.
        fanout::complete_missing(&txn, &mut page).await?;
        let wanted: Vec<webhook_delivery::ActiveModel> = page
            .iter()
            .filter(|event| {
                filter.wants(&event.event_type, fanout::folder_key_of(event).as_deref())
            })
            .map(|event| new_delivery(&endpoint.id, event, true, now))
            .collect();
        replayed += wanted.len() as u64;
        if replayed > MAX_REPLAY {
            return Err(Error::invalid(format!(
                "since: more than {MAX_REPLAY} events would be re-sent; choose a later time"
            )));
        }
        if !wanted.is_empty() {
            webhook_delivery::Entity::insert_many(wanted)
                .exec(&txn)
                .await?;
        }
    }
    txn.commit().await?;
    Ok(replayed)
}

/// A `webhook.test` event for this endpoint only.
pub async fn test<C>(
    db: &C,
    endpoint: &webhook_endpoint::Model,
    actor: &str,
    request_id: Option<&str>,
) -> Result<webhook_delivery::Model, Error>
where
    C: ConnectionTrait + TransactionTrait,
{
    let now = Utc::now();
    let txn = db::begin_write(db).await?;
    let event = webhook_event::ActiveModel {
        id: Set(uuid::Uuid::new_v4().to_string()),
        tenant_id: Set(endpoint.tenant_id.clone()),
        event_type: Set(EventType::WebhookTest.as_str().to_string()),
        ordering_key: Set(format!("test:{}", endpoint.id)),
        deployment_id: Set(None),
        folder_id: Set(None),
        from_version: Set(None),
        to_version: Set(None),
        actor: Set(actor.to_string()),
        request_id: Set(request_id.map(str::to_string)),
        operation_id: Set(None),
        data: Set(Some(
            json!({
                "tenantId": endpoint.tenant_id,
                "endpointId": endpoint.id,
                "actor": actor,
                "requestId": request_id,
            })
            .to_string(),
        )),
        created_at: Set(now),
        // Made for this endpoint alone: the fan-out never sees it.
        dispatched: Set(true),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    let delivery = new_delivery(&endpoint.id, &event, false, now)
        .insert(&txn)
        .await?;
    txn.commit().await?;
    Ok(delivery)
}
