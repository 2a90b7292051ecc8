//! On SQLite, one item's upgrade as a write transaction (`BEGIN IMMEDIATE`: the writer
//! holds the database from its first read, so nothing changes between read and write).
//!
//! Each sqlx SQLite connection is a worker thread, and every statement sent to it is a
//! message to that thread and an answer back (docs/benchmarks.md). So an item's read
//! and its writes go as one multi-statement string, [`UPGRADE_ITEM`]: three hand-offs
//! per item (BEGIN IMMEDIATE, the item, COMMIT) instead of seven. And a bulk call keeps
//! one pooled connection for all its items (they run one after another anyway): a
//! connection given back to the pool is pinged by sqlx on the way (one more hand-off),
//! and the next item would often get another one, whose page cache SQLite drops
//! because the database changed since that connection last read it.

use std::sync::Arc;

use chrono::Utc;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, RuntimeErr, Statement, TransactionTrait,
    Value, Values,
    sqlx::{self, Connection, Sqlite, SqlitePool, pool::PoolConnection},
};
use sea_query_sqlx::SqlxValues;
use tokio::sync::Mutex;

use super::{
    engine::{BulkUpgrade, Target},
    item::{ItemError, ItemResult, Moved, UpgradeItem},
};
use crate::{db, outbox::EventType, service::events::EventKind};

/// The SQLite implementation for one bulk call: its items in their own transactions,
/// one after another, on one connection held from the first item to the end of the call.
pub(crate) struct SqliteTransaction {
    pool: SqlitePool,
    held: Mutex<Option<PoolConnection<Sqlite>>>,
}

impl SqliteTransaction {
    pub(crate) fn on(db: &DatabaseConnection) -> Self {
        SqliteTransaction {
            pool: db.get_sqlite_connection_pool().clone(),
            held: Mutex::new(None),
        }
    }
}

impl UpgradeItem for SqliteTransaction {
    /// SQLite has one writer: concurrent write transactions would only queue on its
    /// lock, and a waiting writer sleeps in its busy handler for up to 100 ms at a
    /// time. One after another is the fastest order there.
    fn concurrency(&self, _requested: usize) -> usize {
        1
    }

    async fn upgrade<C>(&self, _db: &C, job: &BulkUpgrade<'_>, id: &str) -> ItemResult
    where
        C: ConnectionTrait + TransactionTrait,
    {
        let mut held = self.held.lock().await;
        let conn = match &mut *held {
            Some(conn) => conn,
            None => held.insert(
                self.pool
                    .acquire()
                    .await
                    .map_err(|e| DbErr::Conn(RuntimeErr::SqlxError(Arc::new(e))))?,
            ),
        };
        let mut txn = db::waiting_for_sqlite_write_lock(conn.begin_with("BEGIN IMMEDIATE"))
            .await
            .map_err(query_err)?;
        // All rows, not one: sqlx stops running a multi-statement string once it has
        // the rows asked for, which would skip the writes after the answer.
        let rows: Vec<(i32, String, Option<i32>)> =
            sqlx::query_as_with(UPGRADE_ITEM, SqlxValues(Values(parameters(job, id))))
                .fetch_all(&mut *txn)
                .await
                .map_err(query_err)?;
        // Dropping `txn` on an error rolls the item back.
        let moved = answer(rows.into_iter().next())?;
        txn.commit().await.map_err(query_err)?;
        Ok(moved)
    }
}

/// As SeaORM reports a failed statement, so that `db::is_lock_conflict` reads it.
fn query_err(e: sqlx::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(Arc::new(e)))
}

/// The upgrade of one deployment inside the caller's write transaction (an operation's
/// item, which writes its own row in the same transaction; the caller commits, and
/// dropping the transaction undoes everything).
pub(crate) async fn apply<C: ConnectionTrait>(
    txn: &C,
    job: &BulkUpgrade<'_>,
    id: &str,
) -> ItemResult {
    let statement =
        Statement::from_sql_and_values(DbBackend::Sqlite, UPGRADE_ITEM, parameters(job, id));
    // All rows, as above.
    let rows = txn.query_all_raw(statement).await?;
    let row = match rows.first() {
        Some(row) => Some((
            row.try_get("", "current_version")?,
            row.try_get("", "system_name")?,
            row.try_get("", "target_version")?,
        )),
        None => None,
    };
    answer(row)
}

/// `?1`…`?11` of [`UPGRADE_ITEM`].
fn parameters(job: &BulkUpgrade<'_>, id: &str) -> Vec<Value> {
    let target = match job.target {
        Target::Latest => None,
        Target::Version(version) => Some(version),
    };
    vec![
        id.into(),
        job.tenant_id.into(),
        job.folder_id.into(),
        target.into(),
        Utc::now().into(),
        job.actor.subject.clone().into(),
        job.actor.request_id.clone().into(),
        job.actor.operation_id.clone().into(),
        EventKind::Upgrade.as_str().into(),
        uuid::Uuid::new_v4().to_string().into(),
        EventType::of_deployment_kind(EventKind::Upgrade)
            .as_str()
            .into(),
    ]
}

/// The item's outcome from the answer row (current version, app system name, target
/// version), or from its absence (no such deployment in the tenant and folder).
fn answer(row: Option<(i32, String, Option<i32>)>) -> ItemResult {
    let Some((from_version, app_system_name, target)) = row else {
        return Ok(None);
    };
    let target = target.ok_or(ItemError::NoPublishedVersion)?;
    Ok(Some(Moved {
        app_system_name,
        from_version,
        // Never backwards: "already there" (or, after an unpublish, beyond) reports
        // the current version, and the writes matched nothing.
        to_version: target.max(from_version),
    }))
}

/// The target version of deployment `d`: its app's highest published version, or
/// version `?4` if that one is published (`?4` NULL: the latest).
macro_rules! target_of_d_sql {
    () => {
        "(SELECT max(v.version) FROM app_versions v
      WHERE v.app_id = d.app_id AND v.published AND (?4 IS NULL OR v.version = ?4))"
    };
}

/// Deployment `d` (`?1`, in tenant `?2` and folder `?3`) joined to its target version
/// `t`, only when that moves it forwards. The three writes match on this, so they
/// write all or none; the two inserts run before the `UPDATE` and read the old version.
macro_rules! moves_forward_sql {
    () => {
        concat!(
            "t.app_id = d.app_id AND t.version = ",
            target_of_d_sql!(),
            "
  AND d.id = ?1 AND d.tenant_id = ?2 AND d.folder_id = ?3 AND t.version > d.version"
        )
    };
}

/// When the change takes effect: now (`?5`), but never before the version it moves to
/// was published (as on PostgreSQL: replicas' clocks differ a little). Both are
/// chrono's RFC 3339 text in UTC with the shortest exact fraction, whose text order is
/// time order (tested below), so SQLite's `max` of the texts is the later instant.
macro_rules! change_time_sql {
    () => {
        "max(?5, t.published_at)"
    };
}

/// One item, in the caller's write transaction, as four statements sent together.
/// sqlx runs every statement of the string in one call to its worker and binds the
/// numbered parameters in each (a number a statement skips is bound to a spare value,
/// which SQLite ignores):
///
/// 1. the answer: the deployment's version and app, and its target (NULL: none
///    published); no row when the id is not in the tenant and folder;
/// 2. the `upgrade` event and 3. its webhook event (the outbox row), when it moves;
/// 4. the move.
///
/// `?1`…`?11`: deployment id, tenant, folder id, target version (NULL: the latest), the
/// change's time, actor, request id, operation id, event kind, outbox row id, webhook
/// event type.
pub const UPGRADE_ITEM: &str = concat!(
    "SELECT d.version AS current_version, a.system_name, ",
    target_of_d_sql!(),
    " AS target_version
FROM deployments d JOIN apps a ON a.id = d.app_id
WHERE d.id = ?1 AND d.tenant_id = ?2 AND d.folder_id = ?3;
INSERT INTO deployment_events
    (tenant_id, deployment_id, kind, from_version, to_version, actor, request_id, created_at,
     operation_id)
SELECT ?2, d.id, ?9, d.version, t.version, ?6, ?7, ",
    change_time_sql!(),
    ", ?8
FROM deployments d, app_versions t
WHERE ",
    moves_forward_sql!(),
    ";
INSERT INTO webhook_events
    (id, tenant_id, event_type, ordering_key, deployment_id, from_version, to_version, actor,
     request_id, operation_id, created_at)
SELECT ?10, ?2, ?11, d.id, d.id, d.version, t.version, ?6, ?7, ?8, ",
    change_time_sql!(),
    "
FROM deployments d, app_versions t
WHERE ",
    moves_forward_sql!(),
    ";
UPDATE deployments AS d SET version = t.version, updated_at = ",
    change_time_sql!(),
    "
FROM app_versions t
WHERE ",
    moves_forward_sql!(),
    ";"
);

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Duration, SecondsFormat, TimeZone, Utc};

    use super::*;
    use crate::upgrade::placeholders::assert_binds_exactly;

    /// The form sqlx writes a `DateTime<Utc>` in on SQLite.
    fn stored(at: DateTime<Utc>) -> String {
        at.to_rfc3339_opts(SecondsFormat::AutoSi, false)
    }

    #[test]
    fn stored_times_sort_as_text_in_time_order() {
        let base = Utc.with_ymd_and_hms(2026, 12, 1, 16, 45, 50).unwrap();
        let steps = [
            Duration::zero(),
            Duration::nanoseconds(1),
            Duration::microseconds(1),
            Duration::microseconds(1) + Duration::nanoseconds(500),
            Duration::milliseconds(1),
            Duration::milliseconds(120),
            Duration::milliseconds(500),
            Duration::seconds(1),
            Duration::seconds(10),
            Duration::hours(30),
        ];
        let times: Vec<DateTime<Utc>> = steps.iter().map(|step| base + *step).collect();
        for a in &times {
            for b in &times {
                assert_eq!(
                    stored(*a).cmp(&stored(*b)),
                    a.cmp(b),
                    "{} vs {}",
                    stored(*a),
                    stored(*b)
                );
            }
        }
    }

    #[test]
    fn the_four_statements_bind_exactly_eleven_parameters() {
        assert_binds_exactly(UPGRADE_ITEM, 11);
        assert_eq!(UPGRADE_ITEM.matches(';').count(), 4);
    }
}
