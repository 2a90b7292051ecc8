//! The workers every replica runs: each claims an operation (`lease::claim`), re-checks
//! its creator's permission, runs the claimed items at the operation's concurrency
//! while a heartbeat renews the lease, then gives the operation back so that the
//! next claim, on any replica, serves the operation waiting longest. A sweep keeps
//! the metrics' view of the queue fresh and purges operations past their retention.
//!
//! Stopping (SIGTERM): no new claim and no new item start; items in flight finish and
//! the lease is released at once, so another replica carries on without waiting for
//! it to lapse.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use entity::{folder, operation_item::ItemStatus};
use futures_util::{StreamExt, stream};
use sea_orm::{DatabaseConnection, DbBackend, EntityTrait};
use tokio::{
    sync::{Mutex, Notify, watch},
    task::JoinHandle,
};

use super::{
    item::{self, ItemRun},
    lease::{self, Claim, StopReason},
    retention,
};
use crate::{
    access::{self, Permission},
    app::OperationPolicy,
    auth::Principal,
    db,
    error::Error,
    metrics::Metrics,
    service::Actor,
    upgrade::FailureCode,
};

/// This replica's workers; cheap to share.
pub struct Workers {
    wake: Arc<Notify>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

struct Context {
    db: DatabaseConnection,
    policy: OperationPolicy,
    metrics: Arc<Metrics>,
    /// Names this process in `lease_owner` (for people reading the table; the
    /// generation, not the owner, is what fences).
    owner: String,
    wake: Arc<Notify>,
}

impl Workers {
    /// Starts `policy.workers` workers and the sweep on the current runtime.
    pub fn start(db: DatabaseConnection, policy: OperationPolicy, metrics: Arc<Metrics>) -> Self {
        let wake = Arc::new(Notify::new());
        let (stop, stopped) = watch::channel(false);
        let context = Arc::new(Context {
            db,
            policy,
            metrics,
            owner: format!(
                "{}:{}:{}",
                hostname(),
                std::process::id(),
                &uuid::Uuid::new_v4().to_string()[..8]
            ),
            wake: wake.clone(),
        });
        let mut tasks: Vec<JoinHandle<()>> = (0..policy.workers)
            .map(|_| tokio::spawn(work(context.clone(), stopped.clone())))
            .collect();
        tasks.push(tokio::spawn(sweep(context, stopped)));
        Workers {
            wake,
            stop,
            tasks: Mutex::new(tasks),
        }
    }

    /// A new operation exists: an idle worker looks now rather than at its next poll.
    pub fn wake(&self) {
        self.wake.notify_waiters();
        self.wake.notify_one();
    }

    /// Stops claiming and starting items; returns once the items in flight finished
    /// and the leases were released.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().await);
        for task in tasks {
            let _ = task.await;
        }
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "uplift".into())
}

async fn work(context: Arc<Context>, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        match lease::claim(
            &context.db,
            &context.owner,
            context.policy.lease,
            context.policy.batch,
        )
        .await
        {
            Ok(Some(claim)) => {
                run_claim(&context, claim, &stop).await;
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "could not claim an operation"),
        }
        tokio::select! {
            _ = context.wake.notified() => {}
            _ = tokio::time::sleep(context.policy.poll) => {}
            _ = stop.changed() => {}
        }
    }
}

#[tracing::instrument(
    skip_all,
    fields(operation = %claim.operation.id, generation = claim.generation, items = claim.items.len())
)]
async fn run_claim(context: &Context, claim: Claim, stop: &watch::Receiver<bool>) {
    let db = &context.db;
    let operation = &claim.operation;
    let generation = claim.generation;
    if claim.took_over {
        context.metrics.operation_takeover();
        tracing::info!("took over an operation whose lease had lapsed");
    }
    match creator_may_edit(db, operation).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!("the creator's Apps.Edit was revoked; stopping the operation");
            if let Err(e) =
                lease::stop(db, &operation.id, generation, StopReason::PermissionRevoked).await
            {
                tracing::warn!(error = %e, "could not stop the operation");
            }
            return;
        }
        Err(e) => {
            tracing::warn!(error = ?e, "could not check the creator's permission");
            release(db, &operation.id, generation).await;
            return;
        }
    }
    let actor = Actor::new(operation.created_by.clone(), operation.request_id.clone())
        .through_operation(operation.id.clone());
    let lost = Arc::new(AtomicBool::new(false));
    let heartbeat = tokio::spawn(renew_while_running(
        db.clone(),
        operation.id.clone(),
        generation,
        context.policy.lease,
        lost.clone(),
    ));
    let budget = operation
        .max_failures
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    let failed = AtomicUsize::new(claim.failed_before);
    let concurrency = match db.get_database_backend() {
        // One writer: items would only queue on SQLite's lock.
        DbBackend::Sqlite => 1,
        _ => usize::try_from(operation.max_concurrency)
            .unwrap_or(1)
            .max(1),
    };
    stream::iter(claim.items.iter())
        .for_each_concurrent(concurrency, |item| {
            let (lost, failed, actor) = (&lost, &failed, &actor);
            async move {
                // Checked as each item starts: items in flight always finish.
                if lost.load(Ordering::SeqCst)
                    || *stop.borrow()
                    || budget.is_some_and(|b| failed.load(Ordering::SeqCst) >= b)
                {
                    return;
                }
                if concurrency == 1 && db.get_database_backend() == DbBackend::Sqlite {
                    // SQLite has one writer: an API call's write goes before the next item.
                    db::yield_to_waiting_writers(Duration::from_millis(25)).await;
                }
                match item::run(db, operation, generation, item, actor).await {
                    Ok(ItemRun::Settled(status)) => {
                        context.metrics.operation_item(status.as_str());
                        if status == ItemStatus::Failed {
                            failed.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    Ok(ItemRun::Fenced) => lost.store(true, Ordering::SeqCst),
                    Err(e) => {
                        let code = if db::is_lock_conflict(&e) {
                            FailureCode::Conflict
                        } else {
                            FailureCode::Internal
                        };
                        tracing::warn!(seq = item.seq, error = %e, code = code.as_str(), "an operation item failed and was rolled back");
                        match item::record_failure(db, &operation.id, generation, item.seq, code).await {
                            Ok(true) => {
                                context.metrics.operation_item(ItemStatus::Failed.as_str());
                                failed.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok(false) => lost.store(true, Ordering::SeqCst),
                            // Left running: the release below makes it pending again.
                            Err(e) => tracing::warn!(error = %e, "could not record the item's failure"),
                        }
                    }
                }
            }
        })
        .await;
    heartbeat.abort();
    if lost.load(Ordering::SeqCst) {
        tracing::info!(
            "the lease was taken over or the operation canceled; this worker stops writing"
        );
        return;
    }
    if budget.is_some_and(|b| failed.load(Ordering::SeqCst) >= b) {
        if let Err(e) = lease::stop(
            db,
            &operation.id,
            generation,
            StopReason::FailureBudgetExhausted,
        )
        .await
        {
            tracing::warn!(error = %e, "could not stop the operation");
        }
        return;
    }
    release(db, &operation.id, generation).await;
}

async fn release(db: &DatabaseConnection, operation_id: &str, generation: i64) {
    // If this fails too, the lease lapses and another worker takes over.
    if let Err(e) = lease::release_or_finish(db, operation_id, generation).await {
        tracing::warn!(error = %e, "could not release the operation");
    }
}

/// Whether the operation's creator still holds `Apps.Edit` in its folder: the
/// operation acts with its creator's rights, checked again before every batch.
async fn creator_may_edit(
    db: &DatabaseConnection,
    operation: &entity::operation::Model,
) -> Result<bool, Error> {
    let Some(folder) = folder::Entity::find_by_id(operation.folder_id)
        .one(db)
        .await?
    else {
        return Ok(false);
    };
    let creator = Principal {
        subject: operation.created_by.clone(),
        tenant_id: operation.tenant_id.clone(),
        scopes: Vec::new(),
    };
    match access::authorize_in_folder(db, &creator, folder, Permission::AppsEdit).await {
        Ok(_) => Ok(true),
        Err(Error::Forbidden(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

async fn renew_while_running(
    db: DatabaseConnection,
    operation_id: String,
    generation: i64,
    lease: Duration,
    lost: Arc<AtomicBool>,
) {
    let mut tick = tokio::time::interval(lease / 3);
    tick.tick().await;
    loop {
        tick.tick().await;
        match lease::renew(&db, &operation_id, generation, lease).await {
            Ok(true) => {}
            Ok(false) => {
                lost.store(true, Ordering::SeqCst);
                return;
            }
            Err(e) => tracing::warn!(error = %e, "could not renew an operation's lease"),
        }
    }
}

/// Every few polls: the queue's gauges, and the purge of expired operations.
async fn sweep(context: Arc<Context>, mut stop: watch::Receiver<bool>) {
    let every = (context.policy.poll * 10).min(Duration::from_secs(10));
    loop {
        match retention::snapshot(&context.db).await {
            Ok(snapshot) => context.metrics.set_operations(&snapshot),
            Err(e) => tracing::warn!(error = %e, "could not read the operations' state"),
        }
        match retention::purge(&context.db, context.policy.retention).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "purged operations past their retention"),
            Err(e) => tracing::warn!(error = %e, "could not purge operations"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}
