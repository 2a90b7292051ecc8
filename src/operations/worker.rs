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

use chrono::{DateTime, Utc};
use entity::{
    folder,
    operation_item::{self, ItemStatus},
};
use futures_util::{StreamExt, stream};
use sea_orm::{DatabaseConnection, DbBackend, EntityTrait};
use tokio::sync::{Notify, mpsc, watch};

use super::{
    item::{self, ItemRun},
    lease::{self, Claim, NextBatch, StopReason},
    retention,
    run_until::RunUntil,
};
use crate::{
    access::{self, Permission},
    app::OperationPolicy,
    auth::Principal,
    background::Tasks,
    db,
    error::Error,
    metrics::Metrics,
    service::Actor,
    upgrade::FailureCode,
};

/// This replica's workers; cheap to share.
pub struct Workers {
    wake: Arc<Notify>,
    tasks: Tasks,
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
        let mut tasks = Tasks::new();
        for _ in 0..policy.workers {
            let context = context.clone();
            tasks.spawn(|stop| work(context, stop));
        }
        tasks.spawn(|stop| sweep(context, stop));
        Workers { wake, tasks }
    }

    /// A new operation exists: an idle worker looks now rather than at its next poll.
    pub fn wake(&self) {
        self.wake.notify_waiters();
        self.wake.notify_one();
    }

    /// Stops claiming and starting items; returns once the items in flight finished
    /// and the leases were released.
    pub async fn shutdown(&self) {
        self.tasks.shutdown().await;
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
async fn run_claim(context: &Arc<Context>, claim: Claim, stop: &watch::Receiver<bool>) {
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
            stop_operation(db, &operation.id, generation, StopReason::PermissionRevoked).await;
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
    let run_until = Arc::new(RunUntil::new(operation.run_until));
    let heartbeat = tokio::spawn(watch_while_running(
        db.clone(),
        operation.id.clone(),
        generation,
        (context.policy.lease, context.policy.poll),
        lost.clone(),
        run_until.clone(),
    ));
    let hold = Arc::new(Hold {
        context: context.clone(),
        operation: operation.clone(),
        generation,
        budget: operation
            .max_failures
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        failed: AtomicUsize::new(claim.failed_before),
        lost: lost.clone(),
        run_until,
        revoked: AtomicBool::new(false),
        stop: stop.clone(),
        actor,
    });
    let concurrency = match db.get_database_backend() {
        // One writer: items would only queue on SQLite's lock.
        DbBackend::Sqlite => 1,
        _ => usize::try_from(operation.max_concurrency)
            .unwrap_or(1)
            .max(1),
    };
    // The items flow through a queue: once a batch is queued the next one is taken
    // (`lease::next_batch`) while the queued items still run, so the workers do not
    // idle between batches and the lease is not given back and claimed again. Half a
    // batch queued outlasts taking the next one even at 100,000 items.
    let (queue, queued) = mpsc::channel((context.policy.batch / 2).max(2 * concurrency));
    let items = stream::unfold(queued, |mut queued| async move {
        queued.recv().await.map(|item| (item, queued))
    });
    // Each item's future owns its share of the hold: borrowing it trips rustc's
    // check that the worker's task is `Send`.
    let run = items.for_each_concurrent(concurrency, |item| {
        let hold = hold.clone();
        async move { hold.run_item(item, concurrency).await }
    });
    futures_util::join!(hold.feed(claim.items, queue), run);
    heartbeat.abort();
    if lost.load(Ordering::SeqCst) {
        tracing::info!(
            "the lease was taken over or the operation canceled; this worker stops writing"
        );
        return;
    }
    if hold.revoked.load(Ordering::SeqCst) {
        tracing::info!("the creator's Apps.Edit was revoked; stopping the operation");
        stop_operation(db, &operation.id, generation, StopReason::PermissionRevoked).await;
        return;
    }
    if hold.spent() {
        stop_operation(
            db,
            &operation.id,
            generation,
            StopReason::FailureBudgetExhausted,
        )
        .await;
        return;
    }
    release(db, &operation.id, generation).await;
}

/// One worker's hold on an operation, shared by the batch feed and the items.
struct Hold {
    context: Arc<Context>,
    operation: entity::operation::Model,
    generation: i64,
    budget: Option<usize>,
    /// Failed items of the operation so far (counted at the claim, then here).
    failed: AtomicUsize,
    /// The lease was taken over or the operation canceled.
    lost: Arc<AtomicBool>,
    /// No item starts from then on (a window closed, a pause), though it was taken.
    run_until: Arc<RunUntil>,
    /// The creator's `Apps.Edit` was found revoked before a batch.
    revoked: AtomicBool,
    stop: watch::Receiver<bool>,
    actor: Actor,
}

impl Hold {
    fn spent(&self) -> bool {
        self.budget
            .is_some_and(|b| self.failed.load(Ordering::SeqCst) >= b)
    }

    /// Whether no further item may start.
    fn halted(&self) -> bool {
        self.halted_at(Utc::now())
    }

    /// Whether an item starting at `now` may not start.
    fn halted_at(&self, now: DateTime<Utc>) -> bool {
        self.lost.load(Ordering::SeqCst)
            || self.revoked.load(Ordering::SeqCst)
            || *self.stop.borrow()
            || self.spent()
            || self.run_until.passed(now)
    }

    /// Queues the claimed batch, then each next one while the hold lasts: the
    /// creator's permission is checked before every batch; another operation waiting
    /// for a worker ends the hold (fairness), as does an empty batch.
    async fn feed(
        &self,
        first: Vec<operation_item::Model>,
        queue: mpsc::Sender<operation_item::Model>,
    ) {
        let db = &self.context.db;
        let mut batch = first;
        loop {
            // Batches come in `seq` order: the next one starts after this one's last.
            let Some(after) = batch.last().map(|item| item.seq) else {
                return;
            };
            for item in batch {
                if self.halted() || queue.send(item).await.is_err() {
                    return;
                }
            }
            if self.halted() {
                return;
            }
            match creator_may_edit(db, &self.operation).await {
                Ok(true) => {}
                Ok(false) => {
                    self.revoked.store(true, Ordering::SeqCst);
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = ?e, "could not check the creator's permission");
                    return;
                }
            }
            let next = lease::next_batch(
                db,
                &self.operation.id,
                self.generation,
                after,
                self.context.policy.lease,
                self.context.policy.batch,
            )
            .await;
            batch = match next {
                Ok(NextBatch::Items { items, run_until }) => {
                    self.run_until.set(run_until);
                    items
                }
                Ok(NextBatch::Lost) => {
                    self.lost.store(true, Ordering::SeqCst);
                    return;
                }
                Ok(NextBatch::Empty { run_until }) => {
                    self.run_until.set(run_until);
                    return;
                }
                Ok(NextBatch::Yield) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "could not take the next batch; releasing the operation");
                    return;
                }
            };
        }
    }

    async fn run_item(&self, item: operation_item::Model, concurrency: usize) {
        let (context, db) = (&self.context, &self.context.db);
        let (operation, generation, actor) = (&self.operation, self.generation, &self.actor);
        // Checked as each item starts: items in flight always finish.
        if self.halted() {
            return;
        }
        if concurrency == 1 && db.get_database_backend() == DbBackend::Sqlite {
            // SQLite has one writer: an API call's write goes before the next item.
            db::yield_to_waiting_writers(Duration::from_millis(25)).await;
        }
        // The item starts now (the write that went first may have been a pause).
        let started = Utc::now();
        if self.halted_at(started) {
            return;
        }
        match item::run(db, operation, generation, &item, actor, started).await {
            Ok(ItemRun::Settled(status)) => {
                context.metrics.operation_item(status.as_str());
                if status == ItemStatus::Failed {
                    self.failed.fetch_add(1, Ordering::SeqCst);
                }
            }
            Ok(ItemRun::Fenced) => self.lost.store(true, Ordering::SeqCst),
            Ok(ItemRun::Halted { run_until }) => self.run_until.set(run_until),
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
                        self.failed.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(false) => self.lost.store(true, Ordering::SeqCst),
                    // Left pending: the next claim takes it again.
                    Err(e) => tracing::warn!(error = %e, "could not record the item's failure"),
                }
            }
        }
    }
}

async fn stop_operation(
    db: &DatabaseConnection,
    operation_id: &str,
    generation: i64,
    reason: StopReason,
) {
    if let Err(e) = lease::stop(db, operation_id, generation, reason).await {
        tracing::warn!(error = %e, "could not stop the operation");
    }
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

/// The hold's watch on its operation's row while it runs: renews the lease every third
/// of it, and reads `run_until` at every poll. A pause sets `run_until` to its instant
/// and nothing else tells the worker (the items stay `pending`, to run after a
/// resume), so the items it took ahead (up to a batch and a half) stop starting
/// within a poll of the pause, not at the next batch or renewal.
async fn watch_while_running(
    db: DatabaseConnection,
    operation_id: String,
    generation: i64,
    (lease, poll): (Duration, Duration),
    lost: Arc<AtomicBool>,
    run_until: Arc<RunUntil>,
) {
    let mut renewal = tokio::time::interval(lease / 3);
    let mut watch = tokio::time::interval(poll);
    for every in [&mut renewal, &mut watch] {
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
    }
    loop {
        tokio::select! {
            _ = renewal.tick() => match lease::renew(&db, &operation_id, generation, lease).await {
                Ok(true) => {}
                Ok(false) => {
                    lost.store(true, Ordering::SeqCst);
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "could not renew an operation's lease"),
            },
            _ = watch.tick() => match lease::run_until(&db, &operation_id).await {
                Ok(until) => run_until.set(until),
                // Twice a second by default: a database that is away says so through
                // the renewal's warning (and the items'), not through this one.
                Err(e) => tracing::debug!(error = %e, "could not read an operation's run_until"),
            },
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
