//! On PostgreSQL, one item's whole transaction as a single statement: one round trip
//! instead of six (BEGIN, lock, read the target, UPDATE, INSERT, COMMIT).
//!
//! A statement sent outside a transaction block is its own transaction, so the item is
//! still all-or-nothing: the deployment row is locked (`FOR UPDATE`, re-checking tenant
//! and folder on the locked row), the target version is read `FOR SHARE` (an unpublish
//! of it waits), and the update, its `upgrade` event and its webhook event (the outbox row,
//! `outbox`) commit together or not at all.
//! `lock_timeout` applies as it does to the multi-statement form.
//!
//! The change's time (`$5`) is read before the statement runs, possibly while it waits
//! for a pooled connection; a version published in that gap would seem to have been
//! published after the upgrade to it. The time written is therefore never earlier
//! than the target version's `published_at`.

use chrono::Utc;
use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait, Value};

use super::{
    engine::{BulkUpgrade, Target},
    item::{ItemError, ItemResult, Moved, UpgradeItem},
};
use crate::service::events::EventKind;

pub(crate) struct PostgresStatement;

impl UpgradeItem for PostgresStatement {
    fn concurrency(&self, requested: usize) -> usize {
        requested.max(1)
    }

    /// The caller must not be inside a transaction of its own: the statement is the
    /// transaction.
    async fn upgrade<C>(&self, db: &C, job: &BulkUpgrade<'_>, id: &str) -> ItemResult
    where
        C: ConnectionTrait + TransactionTrait,
    {
        let target = match job.target {
            Target::Latest => None,
            Target::Version(version) => Some(version),
        };
        let values: Vec<Value> = vec![
            id.into(),
            job.tenant_id.into(),
            job.folder_id.into(),
            target.into(),
            Utc::now().into(),
            EventKind::Upgrade.as_str().into(),
            job.actor.subject.clone().into(),
            job.actor.request_id.clone().into(),
        ];
        let statement = Statement::from_sql_and_values(DbBackend::Postgres, UPGRADE_ITEM, values);
        let Some(row) = db.query_one_raw(statement).await? else {
            return Ok(None);
        };
        let from_version: i32 = row.try_get("", "current_version")?;
        let target: Option<i32> = row.try_get("", "target_version")?;
        let target = target.ok_or(ItemError::NoPublishedVersion)?;
        Ok(Some(Moved {
            app_system_name: row.try_get("", "system_name")?,
            from_version,
            // As on SQLite: never backwards, so "already there" reports the current
            // version.
            to_version: target.max(from_version),
        }))
    }
}

/// The first two parts of every per-item upgrade statement on PostgreSQL (the bulk
/// call's here, an operation item's in `operations/item.rs`): `cur`, the deployment
/// locked `FOR UPDATE` with tenant and folder re-checked on the locked row, and
/// `target`, its target version read `FOR SHARE` (an unpublish of it waits). `$1`…`$4`:
/// deployment id, tenant, folder id, target version (NULL: the latest).
macro_rules! locked_deployment_and_target_sql {
    () => {
        r#"
cur AS (
    SELECT d.id, d.version, d.app_id, a.system_name
    FROM deployments d
    JOIN apps a ON a.id = d.app_id
    WHERE d.id = $1 AND d.tenant_id = $2 AND d.folder_id = $3
    FOR UPDATE OF d
),
target AS (
    SELECT v.version, v.published_at
    FROM app_versions v
    JOIN cur ON v.app_id = cur.app_id
    WHERE v.published AND ($4::integer IS NULL OR v.version = $4::integer)
    ORDER BY v.version DESC
    LIMIT 1
    FOR SHARE OF v
)"#
    };
}
pub(crate) use locked_deployment_and_target_sql;

/// The statement, with `$1`…`$8` bound to: deployment id, tenant, folder id, target
/// version (NULL: the latest), the change's time, the event kind, actor, request id.
/// Printed by `uplift debug sql upgrade-item`, which the benchmark feeds to pgbench.
pub const UPGRADE_ITEM: &str = concat!(
    "WITH",
    locked_deployment_and_target_sql!(),
    r#",
moved AS (
    UPDATE deployments d
    SET version = target.version, updated_at = GREATEST($5, target.published_at)
    FROM cur, target
    WHERE d.id = cur.id AND target.version > cur.version
    RETURNING d.id, cur.version AS from_version, target.version AS to_version, d.updated_at
),
recorded AS (
    INSERT INTO deployment_events
        (tenant_id, deployment_id, kind, from_version, to_version, actor, request_id, created_at)
    SELECT $2, moved.id, $6, moved.from_version, moved.to_version, $7, $8, moved.updated_at
    FROM moved
),
outboxed AS (
    INSERT INTO webhook_events
        (id, tenant_id, event_type, ordering_key, deployment_id, from_version, to_version,
         actor, request_id, created_at)
    SELECT gen_random_uuid()::text, $2, 'deployment.upgraded', moved.id, moved.id,
           moved.from_version, moved.to_version, $7, $8, moved.updated_at
    FROM moved
)
-- PostgreSQL runs data-modifying CTEs to completion whether or not they are read.
SELECT cur.system_name, cur.version AS current_version,
       (SELECT version FROM target) AS target_version
FROM cur
"#
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upgrade::placeholders::assert_binds_exactly;

    #[test]
    fn the_statement_binds_exactly_eight_parameters() {
        assert_binds_exactly(UPGRADE_ITEM, 8);
    }
}
