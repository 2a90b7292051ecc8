//! Fan-out: the relay claims outbox rows not yet dispatched (`FOR UPDATE SKIP LOCKED`
//! on PostgreSQL, so replicas take different rows; SQLite has one writer), completes
//! each event's `data` (folder key, app, package versions: looked up once, here, so
//! the writers' statements stay small), makes one delivery per endpoint that wants it
//! and marks the rows dispatched, all in one transaction. A row that commits late is
//! simply still undispatched when a later pass looks: nothing is read by position.

use std::collections::{HashMap, HashSet};

use chrono::Utc;
use entity::{
    app, app_version, deployment, folder,
    webhook_delivery::{self, DeliveryStatus},
    webhook_endpoint, webhook_event,
};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select,
    TransactionSession, TransactionTrait,
    sea_query::{Expr, ExprTrait, LockBehavior, LockType},
};
use serde_json::{Map, Value, json};

use crate::db;

/// Fans out up to `batch` events; how many it dispatched.
pub async fn fan_out<C>(db: &C, batch: u64) -> Result<usize, DbErr>
where
    C: ConnectionTrait + TransactionTrait,
{
    // Looked at without the write lock first: an idle relay must not take SQLite's
    // one writer (or a PostgreSQL transaction) every poll.
    let waiting = waiting_probe().into_tuple::<i64>().one(db).await?;
    if waiting.is_none() {
        return Ok(0);
    }
    let txn = db::begin_write(db).await?;
    let events = next_undispatched(batch).all(&txn).await?;
    if events.is_empty() {
        return Ok(0);
    }
    let tenants: HashSet<&str> = events.iter().map(|e| e.tenant_id.as_str()).collect();
    let endpoints = webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::TenantId.is_in(tenants))
        .filter(webhook_endpoint::Column::Enabled.eq(true))
        .all(&txn)
        .await?;
    let filters: Vec<(webhook_endpoint::Model, Filter)> = endpoints
        .into_iter()
        .map(|e| {
            let filter = Filter::of(&e);
            (e, filter)
        })
        .collect();
    // Only events some endpoint may want are completed here (a tenant without
    // endpoints costs the marking alone); a replay completes the others when it needs
    // them (`complete_missing`).
    let mut wanted: Vec<webhook_event::Model> = events
        .iter()
        .filter(|e| {
            filters
                .iter()
                .any(|(endpoint, _)| endpoint.tenant_id == e.tenant_id)
        })
        .cloned()
        .collect();
    complete_missing(&txn, &mut wanted).await?;
    let now = Utc::now();
    let mut deliveries = Vec::new();
    for event in &wanted {
        let folder_key = folder_key_of(event);
        for (endpoint, filter) in &filters {
            if endpoint.tenant_id == event.tenant_id
                && filter.wants(&event.event_type, folder_key.as_deref())
            {
                deliveries.push(webhook_delivery::ActiveModel {
                    id: Set(uuid::Uuid::new_v4().to_string()),
                    endpoint_id: Set(endpoint.id.clone()),
                    event_seq: Set(event.seq),
                    ordering_key: Set(event.ordering_key.clone()),
                    status: Set(DeliveryStatus::Pending),
                    attempts: Set(0),
                    next_attempt_at: Set(now),
                    lease_owner: Set(None),
                    lease_expires_at: Set(None),
                    replay: Set(false),
                    created_at: Set(now),
                    delivered_at: Set(None),
                });
            }
        }
    }
    for chunk in deliveries.chunks(500) {
        webhook_delivery::Entity::insert_many(chunk.to_vec())
            .exec(&txn)
            .await?;
    }
    webhook_event::Entity::update_many()
        .col_expr(webhook_event::Column::Dispatched, Expr::value(true))
        .filter(webhook_event::Column::Seq.is_in(events.iter().map(|e| e.seq)))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(events.len())
}

/// Whether any outbox row waits for its fan-out (the idle poll's look). Ordered by
/// `seq` so that the partial index (in `seq` order) is the plan whatever the
/// statistics say: unordered, a planner that still counts the rows as undispatched
/// (statistics taken before they were fanned out) picks a sequential scan expecting a
/// hit on the first page, and reads the whole outbox to find none (50 ms at 100,000).
pub fn waiting_probe() -> Select<webhook_event::Entity> {
    webhook_event::Entity::find()
        .select_only()
        .column(webhook_event::Column::Seq)
        .filter(undispatched())
        .order_by_asc(webhook_event::Column::Seq)
        .limit(1)
}

/// The oldest `batch` outbox rows not fanned out, locked (rows another replica holds
/// are skipped).
pub fn next_undispatched(batch: u64) -> Select<webhook_event::Entity> {
    webhook_event::Entity::find()
        .filter(undispatched())
        .order_by_asc(webhook_event::Column::Seq)
        .limit(batch)
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
}

/// `NOT dispatched`, written as the partial index's own predicate so that the queue's
/// reads go through it. A bound `dispatched = $1` cannot be matched to that index by
/// PostgreSQL's cached generic plan nor by SQLite at all: every idle poll then read
/// the whole outbox (267 buffers at 20,000 events instead of 2; up to a fifth of the
/// database's CPU in the operations benchmark).
fn undispatched() -> Expr {
    Expr::col((webhook_event::Entity, webhook_event::Column::Dispatched)).not()
}

/// Completes the `data` of the events that lack it (folder key, app, package
/// versions, the common fields) and stores it, so every delivery of an event, replays
/// included, sends the same body. A completed `data` always has `tenantId`; what a
/// writer stores never does.
pub async fn complete_missing<C: ConnectionTrait>(
    txn: &C,
    events: &mut [webhook_event::Model],
) -> Result<(), DbErr> {
    let missing: Vec<webhook_event::Model> =
        events.iter().filter(|e| !is_complete(e)).cloned().collect();
    if missing.is_empty() {
        return Ok(());
    }
    let lookups = Lookups::load(txn, &missing).await?;
    let mut completed: Vec<(i64, String)> = Vec::with_capacity(missing.len());
    for event in events.iter_mut().filter(|e| !is_complete(e)) {
        let data = lookups.complete(event).to_string();
        completed.push((event.seq, data.clone()));
        event.data = Some(data);
    }
    // One statement per chunk (`data = CASE seq WHEN … END`), not one per event: a
    // fan-out pass of 500 events was 500 round trips here.
    for chunk in completed.chunks(COMPLETE_CHUNK) {
        let mut data = Expr::case(
            webhook_event::Column::Seq.eq(chunk[0].0),
            Expr::value(chunk[0].1.clone()),
        );
        for (seq, value) in &chunk[1..] {
            data = data.case(
                webhook_event::Column::Seq.eq(*seq),
                Expr::value(value.clone()),
            );
        }
        webhook_event::Entity::update_many()
            .col_expr(
                webhook_event::Column::Data,
                data.finally(Expr::col(webhook_event::Column::Data)).into(),
            )
            .filter(webhook_event::Column::Seq.is_in(chunk.iter().map(|(seq, _)| *seq)))
            .exec(txn)
            .await?;
    }
    Ok(())
}

/// Events whose `data` one statement completes (three parameters each, well inside
/// SQLite's and PostgreSQL's limits).
const COMPLETE_CHUNK: usize = 250;

fn data_of(event: &webhook_event::Model) -> Option<Map<String, Value>> {
    event
        .data
        .as_deref()
        .and_then(|d| serde_json::from_str::<Map<String, Value>>(d).ok())
}

fn is_complete(event: &webhook_event::Model) -> bool {
    data_of(event).is_some_and(|d| d.contains_key("tenantId"))
}

/// The folder key of a completed event (`None`: a tenant-wide event).
pub fn folder_key_of(event: &webhook_event::Model) -> Option<String> {
    data_of(event).and_then(|d| {
        d.get("folderKey")
            .and_then(Value::as_str)
            .map(str::to_string)
    })
}

/// An endpoint's `eventTypes` and `folderKeys` (each empty: all).
pub struct Filter {
    types: Vec<String>,
    folders: Vec<String>,
}

impl Filter {
    pub fn of(endpoint: &webhook_endpoint::Model) -> Self {
        Filter {
            types: serde_json::from_str(&endpoint.event_types).unwrap_or_default(),
            folders: serde_json::from_str(&endpoint.folder_keys).unwrap_or_default(),
        }
    }

    /// Events of a folder pass the folder filter when their folder is listed; events
    /// of the tenant as a whole (the catalogue's) always do.
    pub fn wants(&self, event_type: &str, folder_key: Option<&str>) -> bool {
        (self.types.is_empty() || self.types.iter().any(|t| t == event_type))
            && (self.folders.is_empty()
                || folder_key.is_none_or(|key| self.folders.iter().any(|f| f == key)))
    }
}

/// What the batch's events refer to, read in one query per table.
struct Lookups {
    deployments: HashMap<String, deployment::Model>,
    folders: HashMap<i32, folder::Model>,
    apps: HashMap<i32, app::Model>,
    /// (app id, version) -> package version.
    packages: HashMap<(i32, i32), String>,
}

impl Lookups {
    async fn load<C: ConnectionTrait>(
        txn: &C,
        events: &[webhook_event::Model],
    ) -> Result<Self, DbErr> {
        let ids: HashSet<&str> = events
            .iter()
            .filter_map(|e| e.deployment_id.as_deref())
            .collect();
        let deployments: HashMap<String, deployment::Model> = if ids.is_empty() {
            HashMap::new()
        } else {
            deployment::Entity::find()
                .filter(deployment::Column::Id.is_in(ids))
                .all(txn)
                .await?
                .into_iter()
                .map(|d| (d.id.clone(), d))
                .collect()
        };
        let folder_ids: HashSet<i32> = deployments
            .values()
            .map(|d| d.folder_id)
            .chain(events.iter().filter_map(|e| e.folder_id))
            .collect();
        let folders = if folder_ids.is_empty() {
            HashMap::new()
        } else {
            folder::Entity::find()
                .filter(folder::Column::Id.is_in(folder_ids))
                .all(txn)
                .await?
                .into_iter()
                .map(|f| (f.id, f))
                .collect()
        };
        let app_ids: HashSet<i32> = deployments.values().map(|d| d.app_id).collect();
        let (apps, packages) = if app_ids.is_empty() {
            (HashMap::new(), HashMap::new())
        } else {
            let apps = app::Entity::find()
                .filter(app::Column::Id.is_in(app_ids.iter().copied()))
                .all(txn)
                .await?
                .into_iter()
                .map(|a| (a.id, a))
                .collect();
            let versions: HashSet<i32> = events
                .iter()
                .flat_map(|e| [e.from_version, e.to_version])
                .flatten()
                .collect();
            let packages = app_version::Entity::find()
                .filter(app_version::Column::AppId.is_in(app_ids))
                .filter(app_version::Column::Version.is_in(versions))
                .all(txn)
                .await?
                .into_iter()
                .map(|v| ((v.app_id, v.version), v.package_version))
                .collect();
            (apps, packages)
        };
        Ok(Lookups {
            deployments,
            folders,
            apps,
            packages,
        })
    }

    /// The event's full `data`.
    fn complete(&self, event: &webhook_event::Model) -> Value {
        let mut data: Map<String, Value> = data_of(event).unwrap_or_default();
        data.insert("tenantId".into(), json!(event.tenant_id));
        data.insert("actor".into(), json!(event.actor));
        data.insert("requestId".into(), json!(event.request_id));
        if let Some(operation) = &event.operation_id {
            data.insert("operationId".into(), json!(operation));
        }
        let mut folder_id = event.folder_id;
        if let Some(id) = &event.deployment_id {
            data.insert("deploymentId".into(), json!(id));
            data.insert("fromVersion".into(), json!(event.from_version));
            data.insert("toVersion".into(), json!(event.to_version));
            if let Some(d) = self.deployments.get(id) {
                folder_id = Some(d.folder_id);
                let package =
                    |v: Option<i32>| v.and_then(|v| self.packages.get(&(d.app_id, v)).cloned());
                data.insert(
                    "appSystemName".into(),
                    json!(self.apps.get(&d.app_id).map(|a| a.system_name.clone())),
                );
                data.insert(
                    "fromPackageVersion".into(),
                    json!(package(event.from_version)),
                );
                data.insert("toPackageVersion".into(), json!(package(event.to_version)));
            }
        }
        if let Some(id) = folder_id {
            let folder_key = self.folders.get(&id).map(|f| f.key.clone());
            data.insert("folderKey".into(), json!(folder_key));
        }
        Value::Object(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(types: &[&str], folders: &[&str]) -> Filter {
        Filter {
            types: types.iter().map(|s| s.to_string()).collect(),
            folders: folders.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn empty_filters_want_everything_and_a_folder_filter_lets_tenant_events_through() {
        assert!(filter(&[], &[]).wants("deployment.upgraded", Some("f1")));
        let f = filter(&["deployment.upgraded"], &["f1"]);
        assert!(f.wants("deployment.upgraded", Some("f1")));
        assert!(!f.wants("deployment.upgraded", Some("f2")));
        assert!(!f.wants("deployment.deployed", Some("f1")));
        let catalogue = filter(&["app.version_published"], &["f1"]);
        assert!(catalogue.wants("app.version_published", None));
    }
}
