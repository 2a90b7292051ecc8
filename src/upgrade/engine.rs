//! One transaction per deployment:
//!
//! ```text
//! begin (SQLite: IMMEDIATE)
//! select the deployment and its app's system name   (PostgreSQL: FOR UPDATE OF deployments)
//! check tenant and folder on the locked row
//! select the latest published version               (PostgreSQL: FOR SHARE, so an unpublish waits)
//! if newer: update the version, append an 'upgrade' event
//! commit
//! ```
//!
//! On PostgreSQL the same transaction is sent as one statement (`postgres.rs`). A dry
//! run reads the same rows without locks and writes nothing, so it gives the answer a
//! real call would give at that moment.

use std::{
    collections::HashSet,
    sync::atomic::{AtomicUsize, Ordering},
};

use chrono::{DateTime, Utc};
use entity::{app, app_version, deployment};
use futures_util::{StreamExt, stream};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionSession, TransactionTrait,
    sea_query::{Expr, LockType},
};
use uuid::Uuid;

use super::{
    outcome::{Failure, FailureCode, Outcome, Updated},
    postgres,
};
use crate::{
    db,
    service::{
        Actor,
        events::{self, Change, EventKind},
    },
};

/// One bulk call's scope: the caller's tenant and the folder it is authorised in.
pub struct BulkUpgrade<'a> {
    pub tenant_id: &'a str,
    pub folder_id: i32,
    pub actor: &'a Actor,
    pub concurrency: usize,
    /// Read and report, but change nothing.
    pub dry_run: bool,
    /// Once this many items have failed, items not yet started are skipped.
    pub max_failures: Option<usize>,
    /// Where each deployment goes.
    pub target: Target,
}

/// The version a bulk upgrade moves deployments to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The app's highest published version (UiPath's bulk call).
    Latest,
    /// This integer version of the app, if still published (Rainbond's upgrade).
    Version(i32),
}

/// Upgrades each distinct id (first spelling wins) to the job's target and returns one
/// outcome per distinct id, in request order.
pub async fn upgrade<C>(db: &C, job: &BulkUpgrade<'_>, ids: &[String]) -> Vec<Outcome>
where
    C: ConnectionTrait + TransactionTrait,
{
    let failures = AtomicUsize::new(0);
    // SQLite has one writer: concurrent write transactions would only queue on its
    // lock, and a waiting writer sleeps in its busy handler for up to 100 ms at a
    // time. One after another is the fastest order there.
    let concurrency = if db.get_database_backend() == DbBackend::Sqlite && !job.dry_run {
        1
    } else {
        job.concurrency.max(1)
    };
    // Unordered, then sorted back: with `buffered`, one slow item at the head of the
    // window (a row lock wait) would keep the next items from starting although the
    // rest of the window had finished, so fewer than `concurrency` ran at once.
    let mut outcomes: Vec<(usize, Outcome)> = stream::iter(distinct(ids).into_iter().enumerate())
        .map(|(index, item)| {
            let failures = &failures;
            async move {
                // Checked when the item starts, so in-flight items still finish.
                if job
                    .max_failures
                    .is_some_and(|max| failures.load(Ordering::SeqCst) >= max)
                {
                    return (
                        index,
                        Outcome::Failed(Failure::new(&item.raw, FailureCode::Skipped)),
                    );
                }
                let outcome = upgrade_one(db, job, item).await;
                if matches!(outcome, Outcome::Failed(_)) {
                    failures.fetch_add(1, Ordering::SeqCst);
                }
                (index, outcome)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    outcomes.sort_unstable_by_key(|(index, _)| *index);
    outcomes.into_iter().map(|(_, outcome)| outcome).collect()
}

struct Item {
    /// As the client sent it, so the answer matches the request.
    raw: String,
    /// Lowercase hyphenated UUID, or `None` when the id is not a UUID at all.
    canonical: Option<String>,
}

fn distinct(ids: &[String]) -> Vec<Item> {
    let mut seen = HashSet::with_capacity(ids.len());
    ids.iter()
        .filter_map(|raw| {
            let canonical = Uuid::parse_str(raw.trim())
                .ok()
                .map(|u| u.hyphenated().to_string());
            let key = canonical.clone().unwrap_or_else(|| raw.clone());
            seen.insert(key).then(|| Item {
                raw: raw.clone(),
                canonical,
            })
        })
        .collect()
}

enum ItemError {
    NoPublishedVersion,
    Db(DbErr),
}

impl From<DbErr> for ItemError {
    fn from(e: DbErr) -> Self {
        ItemError::Db(e)
    }
}

async fn upgrade_one<C>(db: &C, job: &BulkUpgrade<'_>, item: Item) -> Outcome
where
    C: ConnectionTrait + TransactionTrait,
{
    let Some(id) = item.canonical else {
        return Outcome::Failed(Failure::new(&item.raw, FailureCode::NotFound));
    };
    let result = if db.get_database_backend() == DbBackend::Postgres && !job.dry_run {
        upgrade_in_one_statement(db, job, &id).await
    } else {
        upgrade_in_transaction(db, job, &id).await
    };
    match result {
        Ok(Some((app_system_name, previous_version, version))) => Outcome::Updated(Updated {
            id: item.raw,
            app_system_name,
            version,
            previous_version,
        }),
        Ok(None) => Outcome::Failed(Failure::new(&item.raw, FailureCode::NotFound)),
        Err(ItemError::NoPublishedVersion) => {
            Outcome::Failed(Failure::new(&item.raw, FailureCode::NoPublishedVersion))
        }
        Err(ItemError::Db(e)) if db::is_lock_conflict(&e) => {
            tracing::info!(deployment = %id, error = %e, "upgrade conflicted with another transaction");
            Outcome::Failed(Failure::new(&item.raw, FailureCode::Conflict))
        }
        Err(ItemError::Db(e)) => {
            tracing::warn!(deployment = %id, error = %e, "upgrade failed and was rolled back");
            Outcome::Failed(Failure::new(&item.raw, FailureCode::Internal))
        }
    }
}

/// PostgreSQL's one-round-trip form (`postgres.rs`), with the same answers as
/// `upgrade_in_transaction`.
async fn upgrade_in_one_statement<C: ConnectionTrait>(
    db: &C,
    job: &BulkUpgrade<'_>,
    id: &str,
) -> Result<Option<(String, i32, i32)>, ItemError> {
    let Some(row) = postgres::upgrade_one(db, job, id).await? else {
        return Ok(None);
    };
    let target = row.target_version.ok_or(ItemError::NoPublishedVersion)?;
    // As below: never backwards, so "already there" reports the current version.
    let to = target.max(row.current_version);
    Ok(Some((row.app_system_name, row.current_version, to)))
}

/// `Ok(None)`: no such deployment in this tenant and folder. `Ok(Some((app, from, to)))`
/// otherwise, with `from == to` when it was already on the latest version.
async fn upgrade_in_transaction<C>(
    db: &C,
    job: &BulkUpgrade<'_>,
    id: &str,
) -> Result<Option<(String, i32, i32)>, ItemError>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = if job.dry_run {
        db.begin().await?
    } else {
        db::begin_write(db).await?
    };

    // Tenant and folder are part of the WHERE, so a row of another folder is neither
    // locked nor waited for: an id locked elsewhere answers `not_found` like any other
    // id outside the folder, not `conflict` (which would reveal that it exists), and a
    // caller cannot hold up the upgrades of a folder it has no access to. PostgreSQL
    // re-checks the WHERE on the locked row.
    let mut query = deployment::Entity::find_by_id(id.to_string())
        .filter(deployment::Column::TenantId.eq(job.tenant_id))
        .filter(deployment::Column::FolderId.eq(job.folder_id))
        .find_also_related(app::Entity);
    if !job.dry_run {
        // Lock only the deployment row: locking the shared app row would serialise
        // every upgrade of the same app.
        QuerySelect::query(&mut query).lock_with_tables(LockType::Update, [deployment::Entity]);
    }
    let Some((current, Some(app))) = query.one(&txn).await? else {
        return Ok(None);
    };
    if current.folder_id != job.folder_id {
        return Ok(None);
    }

    let mut latest_query = app_version::Entity::find()
        .select_only()
        .column(app_version::Column::Version)
        .column(app_version::Column::PublishedAt)
        .filter(app_version::Column::AppId.eq(current.app_id))
        .filter(app_version::Column::Published.eq(true))
        .order_by_desc(app_version::Column::Version)
        .limit(1);
    if let Target::Version(version) = job.target {
        latest_query = latest_query.filter(app_version::Column::Version.eq(version));
    }
    if !job.dry_run {
        latest_query = latest_query.lock(LockType::Share);
    }
    let latest: Option<(i32, DateTime<Utc>)> = latest_query.into_tuple().one(&txn).await?;
    let (latest, published_at) = latest.ok_or(ItemError::NoPublishedVersion)?;

    // A deployment already on (or, after an unpublish, beyond) the target version
    // stays where it is: an upgrade never moves a deployment backwards.
    if latest <= current.version {
        txn.rollback().await?;
        return Ok(Some((app.system_name, current.version, current.version)));
    }
    if job.dry_run {
        txn.rollback().await?;
        return Ok(Some((app.system_name, current.version, latest)));
    }

    // Never timed before the version it moves to was published (replicas' clocks
    // differ a little; `postgres.rs` applies the same rule).
    let at = Utc::now().max(published_at);
    deployment::Entity::update_many()
        .col_expr(deployment::Column::Version, Expr::value(latest))
        .col_expr(deployment::Column::UpdatedAt, Expr::value(at))
        .filter(deployment::Column::Id.eq(id))
        .exec(&txn)
        .await?;
    events::record(
        &txn,
        Change {
            tenant_id: job.tenant_id,
            deployment_id: id,
            kind: EventKind::Upgrade,
            from_version: Some(current.version),
            to_version: latest,
            at,
        },
        job.actor,
    )
    .await?;
    txn.commit().await?;
    Ok(Some((app.system_name, current.version, latest)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_dropped_keeping_the_first_spelling_and_order() {
        let a = "6f9619ff-8b86-d011-b42d-00c04fc964ff";
        let ids: Vec<String> = vec![
            a.to_uppercase(),
            "junk".into(),
            a.into(),
            "junk".into(),
            "11111111-1111-1111-1111-111111111111".into(),
        ];
        let items = distinct(&ids);
        let raws: Vec<&str> = items.iter().map(|i| i.raw.as_str()).collect();
        assert_eq!(
            raws,
            [
                a.to_uppercase().as_str(),
                "junk",
                "11111111-1111-1111-1111-111111111111"
            ]
        );
        assert_eq!(items[0].canonical.as_deref(), Some(a));
        assert_eq!(items[1].canonical, None);
    }
}
