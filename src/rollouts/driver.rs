//! The rollout driver every replica runs (like the operation workers): it looks for
//! rollouts with something to do (pending, a wave's operation finished or its window
//! closed, a bake deadline or a window opening passed, a rollback under way), claims
//! one with `FOR UPDATE SKIP LOCKED` (on SQLite writes are serialised anyway) and
//! takes its next step in that transaction. Nothing is held in memory between steps:
//! the deadlines are columns, so a restarted or other replica carries on where a
//! killed one stopped.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use entity::{operation, rollout};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
    sea_query::{LockBehavior, LockType, Query},
};
use tokio::sync::watch;

use super::{
    progress::{self, Reverted},
    state::RolloutStatus,
    timeline::{self, Step},
    window::WindowState,
};
use crate::{
    background::Tasks,
    db,
    error::Error,
    operations::{self, OperationStatus, Workers},
    service::Actor,
};

pub struct Driver {
    tasks: Tasks,
}

impl Driver {
    /// Starts the driver on the current runtime; it looks every `poll`.
    pub fn start(db: DatabaseConnection, workers: Arc<Workers>, poll: Duration) -> Self {
        let mut tasks = Tasks::new();
        tasks.spawn(|stop| drive(db, workers, poll, stop));
        Driver { tasks }
    }

    /// Stops after the step in progress (a step is one transaction).
    pub async fn shutdown(&self) {
        self.tasks.shutdown().await;
    }
}

async fn drive(
    db: DatabaseConnection,
    workers: Arc<Workers>,
    poll: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        // Every step that did something is followed at once by the next.
        loop {
            if *stop.borrow() {
                return;
            }
            match step(&db).await {
                Ok(Some(started)) => {
                    if started {
                        workers.wake();
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = ?e, "a rollout step failed; retrying at the next poll");
                    break;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Rollouts with something to do at `now`.
fn due(now: DateTime<Utc>) -> Condition {
    let finished_or_closed = Query::select()
        .column(operation::Column::Id)
        .from(operation::Entity)
        .cond_where(
            Condition::any()
                .add(operation::Column::Status.is_in([
                    OperationStatus::Succeeded,
                    OperationStatus::Failed,
                    OperationStatus::Canceled,
                ]))
                .add(operation::Column::RunUntil.lte(now)),
        )
        .to_owned();
    Condition::any()
        .add(rollout::Column::Status.is_in([RolloutStatus::Pending, RolloutStatus::RollingBack]))
        .add(
            Condition::all()
                .add(rollout::Column::Status.eq(RolloutStatus::Running))
                .add(rollout::Column::OperationId.in_subquery(finished_or_closed)),
        )
        .add(
            Condition::all()
                .add(rollout::Column::Status.eq(RolloutStatus::Baking))
                .add(rollout::Column::BakeUntil.lte(now)),
        )
        .add(
            Condition::all()
                .add(rollout::Column::Status.eq(RolloutStatus::WaitingForWindow))
                .add(rollout::Column::WindowOpensAt.lte(now)),
        )
}

/// Takes one step of one due rollout: `None` when none is due, `Some(true)` when the
/// step created an operation (the workers are woken).
pub async fn step(db: &DatabaseConnection) -> Result<Option<bool>, Error> {
    let txn = db::begin_write(db).await?;
    // Read once the write lock is held (SQLite's begin can wait out another writer):
    // a window's close or a bake's end is judged at the step's own instant.
    let now = Utc::now();
    let Some(current) = rollout::Entity::find()
        .filter(due(now))
        .order_by_asc(rollout::Column::UpdatedAt)
        .limit(1)
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .one(&txn)
        .await?
    else {
        return Ok(None);
    };
    let before = current.operation_id.clone();
    let after = advance(&txn, &current, now).await?;
    txn.commit().await?;
    Ok(Some(
        after.operation_id != before && after.status == RolloutStatus::Running,
    ))
}

async fn advance<C: sea_orm::ConnectionTrait + TransactionTrait>(
    txn: &C,
    current: &rollout::Model,
    now: DateTime<Utc>,
) -> Result<rollout::Model, Error> {
    let driver = Actor::new("uplift", None);
    match current.status {
        RolloutStatus::Pending => {
            let first = progress::wave(txn, &current.id, 0).await?;
            if first.is_some_and(|w| w.gate == "manual") {
                return timeline::transition(
                    txn,
                    current,
                    RolloutStatus::AwaitingApproval,
                    rollout::ActiveModel::default(),
                    Step {
                        kind: "awaiting_approval",
                        actor: &driver,
                        comment: None,
                        detail: Some("wave 0 waits for approve".into()),
                        wave: Some(0),
                    },
                    now,
                )
                .await;
            }
            progress::start_or_wait(
                txn,
                current,
                0,
                Step {
                    kind: "wave_started",
                    actor: &driver,
                    comment: None,
                    detail: None,
                    wave: Some(0),
                },
                now,
            )
            .await
        }
        RolloutStatus::Running => {
            let found = match current.operation_id.as_deref() {
                Some(id) => operations::load(txn, id).await?,
                None => None,
            };
            let Some(operation) = found else {
                return Err(Error::Internal(anyhow::anyhow!(
                    "running rollout {} has no operation",
                    current.id
                )));
            };
            if operation.status.is_terminal() {
                return progress::finish_wave(txn, current, &operation, now).await;
            }
            // The window closed mid-wave: items in flight finished; wait for the next.
            match progress::window_of(current).map(|w| w.at(now)) {
                Some(WindowState::Open { closes_at }) => {
                    operations::set_run_until(txn, &operation.id, Some(closes_at)).await?;
                    Ok(current.clone())
                }
                Some(WindowState::Closed { opens_at }) => timeline::transition(
                    txn,
                    current,
                    RolloutStatus::WaitingForWindow,
                    rollout::ActiveModel {
                        window_opens_at: sea_orm::Set(Some(opens_at)),
                        ..Default::default()
                    },
                    Step {
                        kind: "window_closed",
                        actor: &driver,
                        comment: None,
                        detail: Some(format!(
                            "the window closed mid-wave; items resume when it opens at {opens_at}"
                        )),
                        wave: Some(current.current_wave),
                    },
                    now,
                )
                .await,
                None => {
                    operations::set_run_until(txn, &operation.id, None).await?;
                    Ok(current.clone())
                }
            }
        }
        RolloutStatus::Baking => progress::after_bake(txn, current, now).await,
        RolloutStatus::WaitingForWindow => {
            if let Some(operation) = progress::running_operation(txn, current).await? {
                // A wave interrupted by the window's close goes on.
                return match progress::window_of(current).map(|w| w.at(now)) {
                    Some(WindowState::Closed { opens_at }) => {
                        let changes = rollout::ActiveModel {
                            id: sea_orm::Set(current.id.clone()),
                            window_opens_at: sea_orm::Set(Some(opens_at)),
                            ..Default::default()
                        };
                        Ok(sea_orm::ActiveModelTrait::update(changes, txn).await?)
                    }
                    open => {
                        let until = match open {
                            Some(WindowState::Open { closes_at }) => Some(closes_at),
                            _ => None,
                        };
                        operations::set_run_until(txn, &operation.id, until).await?;
                        timeline::transition(
                            txn,
                            current,
                            RolloutStatus::Running,
                            rollout::ActiveModel {
                                window_opens_at: sea_orm::Set(None),
                                ..Default::default()
                            },
                            Step {
                                kind: "window_opened",
                                actor: &driver,
                                comment: None,
                                detail: None,
                                wave: Some(current.current_wave),
                            },
                            now,
                        )
                        .await
                    }
                };
            }
            progress::start_or_wait(
                txn,
                current,
                current.current_wave,
                Step {
                    kind: "window_opened",
                    actor: &driver,
                    comment: None,
                    detail: None,
                    wave: Some(current.current_wave),
                },
                now,
            )
            .await
        }
        RolloutStatus::RollingBack => match progress::revert_one(txn, current, now).await? {
            Reverted::One => {
                // Moves it to the back of the line, so other rollouts take turns.
                let touch = rollout::ActiveModel {
                    id: sea_orm::Set(current.id.clone()),
                    updated_at: sea_orm::Set(now),
                    ..Default::default()
                };
                Ok(sea_orm::ActiveModelTrait::update(touch, txn).await?)
            }
            Reverted::NoneLeft => {
                progress::deactivate(txn, &current.id).await?;
                let restored = entity::rollout_deployment::Entity::find()
                    .filter(entity::rollout_deployment::Column::RolloutId.eq(&current.id))
                    .filter(entity::rollout_deployment::Column::Rollback.eq("rolled_back"))
                    .all(txn)
                    .await?
                    .len();
                let left = entity::rollout_deployment::Entity::find()
                    .filter(entity::rollout_deployment::Column::RolloutId.eq(&current.id))
                    .filter(
                        entity::rollout_deployment::Column::Rollback
                            .is_in(["changed_since", "previous_unpublished"]),
                    )
                    .all(txn)
                    .await?
                    .len();
                let mut changes = progress::finished(now, current.reason.as_deref());
                changes.operation_id = sea_orm::Set(current.operation_id.clone());
                timeline::transition(
                    txn,
                    current,
                    RolloutStatus::RolledBack,
                    changes,
                    Step {
                        kind: "rolled_back",
                        actor: &driver,
                        comment: None,
                        detail: Some(format!(
                            "{restored} deployments restored to their previous version; {left} left alone (changed since, or their previous version withdrawn)"
                        )),
                        wave: None,
                    },
                    now,
                )
                .await
            }
        },
        // Not due: the filter never selects them.
        _ => Ok(current.clone()),
    }
}
