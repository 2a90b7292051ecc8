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
use sea_orm::{ConnectionTrait, DbBackend, DbErr, QueryResult, Statement, TransactionTrait, Value};

use super::{
    engine::{BulkUpgrade, Target},
    item::{ItemError, ItemResult, Moved, UpgradeItem},
};
use crate::service::{Actor, events::EventKind};

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
        match db.query_one_raw(statement).await? {
            Some(row) => item_result(&row),
            None => Ok(None),
        }
    }
}

/// Who acts in which folder, for a one-id call checked and done in one statement.
pub struct FolderGrant<'a> {
    pub tenant_id: &'a str,
    pub folder_key: &'a str,
    /// The roles that give the call's permission on the folder itself or tenant-wide
    /// (`access::roles_granting_in_folder`).
    pub roles: &'a [String],
    pub actor: &'a Actor,
}

/// Runs `UPGRADE_ITEM_WHERE_GRANTED` for one deployment: `None` when the caller holds
/// no such grant on the folder (nothing was changed), else the folder's id and the
/// item's result.
pub(crate) async fn upgrade_where_granted<C: ConnectionTrait>(
    db: &C,
    grant: &FolderGrant<'_>,
    id: &str,
) -> Result<Option<(i32, ItemResult)>, DbErr> {
    let values: Vec<Value> = vec![
        id.into(),
        grant.tenant_id.into(),
        grant.folder_key.into(),
        Option::<i32>::None.into(),
        Utc::now().into(),
        EventKind::Upgrade.as_str().into(),
        grant.actor.subject.clone().into(),
        grant.actor.request_id.clone().into(),
        grant.roles.join(",").into(),
    ];
    let statement =
        Statement::from_sql_and_values(DbBackend::Postgres, UPGRADE_ITEM_WHERE_GRANTED, values);
    let Some(row) = db.query_one_raw(statement).await? else {
        return Ok(None);
    };
    let folder_id: i32 = row.try_get("", "folder_id")?;
    // `cur` is left-joined: no deployment of this id in the folder leaves its columns NULL.
    let found: Option<i32> = row.try_get("", "current_version")?;
    let result = match found {
        Some(_) => item_result(&row),
        None => Ok(None),
    };
    Ok(Some((folder_id, result)))
}

/// Where the statement's row says the deployment went.
fn item_result(row: &QueryResult) -> ItemResult {
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

/// The first two parts of every per-item upgrade statement on PostgreSQL (the bulk
/// call's here, an operation item's in `operations/item.rs`): `cur`, the deployment
/// locked `FOR UPDATE` with tenant and folder re-checked on the locked row, and
/// `target`, its target version read `FOR SHARE` (an unpublish of it waits). `$1`,
/// `$2`, `$4`: deployment id, tenant, target version (NULL: the latest); the folder id
/// is the SQL expression given (`"$3"` where it is bound).
macro_rules! locked_deployment_and_target_sql {
    ($folder_id:literal) => {
        concat!(
            r#"
cur AS (
    SELECT d.id, d.version, d.app_id, a.system_name
    FROM deployments d
    JOIN apps a ON a.id = d.app_id
    WHERE d.id = $1 AND d.tenant_id = $2 AND d.folder_id = "#,
            $folder_id,
            r#"
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
        )
    };
}
pub(crate) use locked_deployment_and_target_sql;

/// The writes of a bulk call's item, after `cur` and `target`: the move forwards, its
/// `upgrade` event and its webhook event (the outbox row). `$2`, `$5`…`$8`: tenant,
/// the change's time, the event kind, actor, request id.
macro_rules! move_and_record_sql {
    () => {
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
"#
    };
}

/// The statement, with `$1`…`$8` bound to: deployment id, tenant, folder id, target
/// version (NULL: the latest), the change's time, the event kind, actor, request id.
/// Printed by `uplift debug sql upgrade-item`, which the benchmark feeds to pgbench.
pub const UPGRADE_ITEM: &str = concat!(
    "WITH",
    locked_deployment_and_target_sql!("$3"),
    move_and_record_sql!(),
    r#"SELECT cur.system_name, cur.version AS current_version,
       (SELECT version FROM target) AS target_version
FROM cur
"#
);

/// A one-id call's whole work in one round trip: the caller's grant checked and the
/// item upgraded in the same statement. `granted` is the folder named by its key
/// (`$3`) in the tenant, only if the caller (`$7`) holds one of the roles `$9` (their
/// names, comma-separated) on that folder itself or tenant-wide; the item's parts then
/// run in that folder as in `UPGRADE_ITEM` (`$1`, `$2`, `$4`…`$8` the same). No row:
/// no such grant (or no such folder); grants inherited from an ancestor are not looked
/// at here, so the caller then takes the full path (`access::authorize_folder`).
pub const UPGRADE_ITEM_WHERE_GRANTED: &str = concat!(
    r#"WITH granted AS (
    SELECT f.id
    FROM folders f
    WHERE f.key = $3 AND f.tenant_id = $2
      AND EXISTS (
          SELECT 1 FROM role_assignments g
          WHERE g.tenant_id = f.tenant_id AND g.subject = $7
            AND (g.folder_id IS NULL OR g.folder_id = f.id)
            AND g.role = ANY (string_to_array($9, ','))
      )
),"#,
    locked_deployment_and_target_sql!("(SELECT id FROM granted)"),
    move_and_record_sql!(),
    r#"SELECT granted.id AS folder_id, cur.system_name, cur.version AS current_version,
       (SELECT version FROM target) AS target_version
FROM granted LEFT JOIN cur ON true
"#
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upgrade::placeholders::assert_binds_exactly;

    #[test]
    fn the_granted_statement_binds_exactly_nine_parameters_and_upgrades_in_the_granted_folder() {
        assert_binds_exactly(UPGRADE_ITEM_WHERE_GRANTED, 9);
        assert!(UPGRADE_ITEM_WHERE_GRANTED.contains("d.folder_id = (SELECT id FROM granted)"));
    }

    #[test]
    fn the_statement_binds_exactly_eight_parameters() {
        assert_binds_exactly(UPGRADE_ITEM, 8);
    }
}
