//! One deployment's upgrade, behind one trait with two implementations: PostgreSQL's
//! single statement (`postgres.rs`) and SQLite's transaction (`sqlite.rs`). The engine
//! picks one per bulk call from the database backend; both give the same answers, and
//! the reads of dry runs are here.

use chrono::{DateTime, Utc};
use entity::{app, app_version, deployment};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionSession, TransactionTrait,
};

use super::engine::{BulkUpgrade, Target};

/// Where one deployment went: `from_version == to_version` when it was already on
/// (or, after an unpublish, beyond) the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    pub app_system_name: String,
    pub from_version: i32,
    pub to_version: i32,
}

pub enum ItemError {
    /// The app has no published version (of the requested number).
    NoPublishedVersion,
    Db(DbErr),
}

impl From<DbErr> for ItemError {
    fn from(e: DbErr) -> Self {
        ItemError::Db(e)
    }
}

/// `Ok(None)`: no deployment with this (canonical) id in the job's tenant and folder.
pub type ItemResult = Result<Option<Moved>, ItemError>;

/// Upgrades one deployment in its own transaction: lock it, re-check tenant and folder
/// on the locked row, find the target version, move it there and record an `upgrade`
/// event, all or nothing.
pub(crate) trait UpgradeItem: Sync {
    /// How many items of one call run at once on this backend.
    fn concurrency(&self, requested: usize) -> usize;

    async fn upgrade<C>(&self, db: &C, job: &BulkUpgrade<'_>, id: &str) -> ItemResult
    where
        C: ConnectionTrait + TransactionTrait;
}

/// The deployment (in the job's tenant and folder) and its app's system name.
async fn find_current<C: ConnectionTrait>(
    db: &C,
    job: &BulkUpgrade<'_>,
    id: &str,
) -> Result<Option<(deployment::Model, String)>, DbErr> {
    // Tenant and folder are part of the WHERE, so a row of another folder is neither
    // read nor waited for: it answers `not_found` like any other id outside the folder.
    let found = deployment::Entity::find_by_id(id.to_string())
        .filter(deployment::Column::TenantId.eq(job.tenant_id))
        .filter(deployment::Column::FolderId.eq(job.folder_id))
        .find_also_related(app::Entity)
        .one(db)
        .await?;
    Ok(found.and_then(|(current, app)| Some((current, app?.system_name))))
}

/// The job's target version of the app, and when it was published.
async fn find_target<C: ConnectionTrait>(
    db: &C,
    job: &BulkUpgrade<'_>,
    app_id: i32,
) -> Result<(i32, DateTime<Utc>), ItemError> {
    let mut query = app_version::Entity::find()
        .select_only()
        .column(app_version::Column::Version)
        .column(app_version::Column::PublishedAt)
        .filter(app_version::Column::AppId.eq(app_id))
        .filter(app_version::Column::Published.eq(true))
        .order_by_desc(app_version::Column::Version)
        .limit(1);
    if let Target::Version(version) = job.target {
        query = query.filter(app_version::Column::Version.eq(version));
    }
    query
        .into_tuple::<(i32, DateTime<Utc>)>()
        .one(db)
        .await?
        .ok_or(ItemError::NoPublishedVersion)
}

/// What a real upgrade would do to this deployment now; reads only, no locks.
pub(crate) async fn preview<C>(db: &C, job: &BulkUpgrade<'_>, id: &str) -> ItemResult
where
    C: ConnectionTrait + TransactionTrait,
{
    // One snapshot for both reads.
    let txn = db.begin().await?;
    let Some((current, app_system_name)) = find_current(&txn, job, id).await? else {
        return Ok(None);
    };
    let (target, _) = find_target(&txn, job, current.app_id).await?;
    txn.rollback().await?;
    Ok(Some(Moved {
        app_system_name,
        from_version: current.version,
        // Never backwards: "already there" reports the current version.
        to_version: target.max(current.version),
    }))
}
