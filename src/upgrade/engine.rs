//! The bulk engine: each distinct id, in request order, at most N at once, through
//! one of the two per-item implementations (`item.rs`), chosen once per call from the
//! database backend:
//!
//! ```text
//! PostgreSQL: one statement per item, its own transaction          (postgres.rs)
//! SQLite:     BEGIN IMMEDIATE; the item's statements in one call; COMMIT,
//!             one connection held for the call                       (sqlite.rs)
//! ```
//!
//! Either way the deployment is re-checked for tenant and folder inside the
//! transaction, moves only forwards, and its `upgrade` event commits with the change.
//! A dry run reads the same rows without locks and writes nothing, so it gives the
//! answer a real call would give at that moment.

use std::{
    collections::HashSet,
    sync::atomic::{AtomicUsize, Ordering},
};

use futures_util::{StreamExt, stream};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, TransactionTrait};

use super::{
    item::{self, ItemError, ItemResult, UpgradeItem},
    outcome::{Failure, FailureCode, Outcome, Updated},
    postgres::{self, FolderGrant, PostgresStatement},
    sqlite::SqliteTransaction,
};
use crate::{db, domain::DeploymentId, service::Actor};

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
#[tracing::instrument(
    skip_all,
    fields(tenant = job.tenant_id, folder = job.folder_id, items = ids.len(), dry_run = job.dry_run)
)]
pub async fn upgrade(
    db: &DatabaseConnection,
    job: &BulkUpgrade<'_>,
    ids: &[String],
) -> Vec<Outcome> {
    match db.get_database_backend() {
        DbBackend::Postgres => run(db, job, ids, &PostgresStatement).await,
        _ => run(db, job, ids, &SqliteTransaction::on(db)).await,
    }
}

async fn run<C, U>(db: &C, job: &BulkUpgrade<'_>, ids: &[String], backend: &U) -> Vec<Outcome>
where
    C: ConnectionTrait + TransactionTrait,
    U: UpgradeItem,
{
    let failures = AtomicUsize::new(0);
    // A dry run only reads, so it may run as wide as asked on either backend.
    let concurrency = if job.dry_run {
        job.concurrency.max(1)
    } else {
        backend.concurrency(job.concurrency)
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
                let outcome = upgrade_one(db, job, backend, item).await;
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

pub struct Item {
    /// As the client sent it, so the answer matches the request.
    pub raw: String,
    /// `None` when the id is not a UUID at all.
    pub canonical: Option<DeploymentId>,
}

/// Each distinct id once (compared in canonical form), first spelling and order kept.
pub fn distinct(ids: &[String]) -> Vec<Item> {
    let mut seen = HashSet::with_capacity(ids.len());
    ids.iter()
        .filter_map(|raw| {
            let canonical = DeploymentId::parse(raw);
            let key = canonical
                .as_ref()
                .map_or_else(|| raw.clone(), |id| id.as_str().to_string());
            seen.insert(key).then(|| Item {
                raw: raw.clone(),
                canonical,
            })
        })
        .collect()
}

async fn upgrade_one<C, U>(db: &C, job: &BulkUpgrade<'_>, backend: &U, item: Item) -> Outcome
where
    C: ConnectionTrait + TransactionTrait,
    U: UpgradeItem,
{
    let Some(id) = item.canonical else {
        return Outcome::Failed(Failure::new(&item.raw, FailureCode::NotFound));
    };
    let result: ItemResult = if job.dry_run {
        item::preview(db, job, id.as_str()).await
    } else {
        backend.upgrade(db, job, id.as_str()).await
    };
    outcome(item.raw, &id, result)
}

/// A one-id call on PostgreSQL in a single round trip: the caller's grant on the folder
/// (held there or tenant-wide) is checked inside the item's own statement
/// (`UPGRADE_ITEM_WHERE_GRANTED`), so the grant read and the change share one snapshot
/// and a revoked grant is seen exactly as by the separate check. `Some` with the
/// folder's id and the outcome when that grant was there. `None` when it was not
/// (nothing was changed), when the id is not a UUID, or when the statement failed: the
/// caller then authorises in full (an inherited grant, or the 403) and runs the
/// ordinary path, which answers every case.
pub async fn upgrade_single_where_granted<C: ConnectionTrait>(
    db: &C,
    grant: &FolderGrant<'_>,
    raw: &str,
) -> Option<(i32, Outcome)> {
    if db.get_database_backend() != DbBackend::Postgres {
        return None;
    }
    let id = DeploymentId::parse(raw)?;
    match postgres::upgrade_where_granted(db, grant, id.as_str()).await {
        Ok(Some((folder_id, result))) => Some((folder_id, outcome(raw.to_string(), &id, result))),
        Ok(None) => None,
        Err(e) => {
            tracing::debug!(deployment = %id, error = %e, "one-statement call failed; taking the full path");
            None
        }
    }
}

/// The answer for one item from what its upgrade returned.
fn outcome(raw: String, id: &DeploymentId, result: ItemResult) -> Outcome {
    match result {
        Ok(Some(moved)) => Outcome::Updated(Updated {
            id: raw,
            app_system_name: moved.app_system_name,
            version: moved.to_version,
            previous_version: moved.from_version,
        }),
        Ok(None) => Outcome::Failed(Failure::new(&raw, FailureCode::NotFound)),
        Err(ItemError::NoPublishedVersion) => {
            Outcome::Failed(Failure::new(&raw, FailureCode::NoPublishedVersion))
        }
        Err(ItemError::Db(e)) if db::is_lock_conflict(&e) => {
            tracing::info!(deployment = %id, error = %e, "upgrade conflicted with another transaction");
            Outcome::Failed(Failure::new(&raw, FailureCode::Conflict))
        }
        Err(ItemError::Db(e)) => {
            tracing::warn!(deployment = %id, error = %e, "upgrade failed and was rolled back");
            Outcome::Failed(Failure::new(&raw, FailureCode::Internal))
        }
    }
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
        assert_eq!(
            items[0].canonical.as_ref().map(DeploymentId::as_str),
            Some(a)
        );
        assert_eq!(items[1].canonical, None);
    }
}
