//! On PostgreSQL, one item's whole transaction as a single statement: one round trip
//! instead of six (BEGIN, lock, read the target, UPDATE, INSERT, COMMIT).
//!
//! A statement sent outside a transaction block is its own transaction, so the item is
//! still all-or-nothing: the deployment row is locked (`FOR UPDATE`, re-checking tenant
//! and folder on the locked row), the target version is read `FOR SHARE` (an unpublish
//! of it waits), and the update and its `upgrade` event commit together or not at all.
//! `lock_timeout` applies as it does to the multi-statement form.
//!
//! The change's time (`$5`) is read before the statement runs, possibly while it waits
//! for a pooled connection; a version published in that gap would seem to have been
//! published after the upgrade to it. The time written is therefore never earlier
//! than the target version's `published_at`.

use chrono::Utc;
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};

use super::engine::{BulkUpgrade, Target};
use crate::service::events::EventKind;

/// What the statement found: `None` when no deployment with this id is in the job's
/// tenant and folder.
pub struct Row {
    pub app_system_name: String,
    pub current_version: i32,
    /// `None`: the app has no published version (of the requested number).
    pub target_version: Option<i32>,
}

const UPGRADE_ONE: &str = r#"
WITH cur AS (
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
),
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
)
-- PostgreSQL runs data-modifying CTEs to completion whether or not they are read.
SELECT cur.system_name, cur.version AS current_version,
       (SELECT version FROM target) AS target_version
FROM cur
"#;

/// Runs one item's upgrade as one statement; the caller must not be inside a
/// transaction of its own (the statement is the transaction).
pub async fn upgrade_one<C: ConnectionTrait>(
    db: &C,
    job: &BulkUpgrade<'_>,
    id: &str,
) -> Result<Option<Row>, DbErr> {
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
    let statement = Statement::from_sql_and_values(DbBackend::Postgres, UPGRADE_ONE, values);
    let Some(row) = db.query_one_raw(statement).await? else {
        return Ok(None);
    };
    Ok(Some(Row {
        app_system_name: row.try_get("", "system_name")?,
        current_version: row.try_get("", "current_version")?,
        target_version: row.try_get("", "target_version")?,
    }))
}
