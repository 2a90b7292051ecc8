//! How a rollout moves on: starting a wave (or waiting for its window), a wave's end
//! (its outcomes copied, its failure budget judged), the bake, the gate, and the
//! rollback of one deployment. Each function runs inside the caller's transaction,
//! which holds the rollout's row; each state change goes through `timeline`.

use chrono::{DateTime, Duration, Utc};
use entity::{deployment, operation, rollout, rollout_deployment, rollout_wave};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, sea_query::Expr,
};

use super::{
    plan::OnFailure,
    state::RolloutStatus,
    timeline::{self, Step},
    window::{WaveStart, Window, WindowSpec},
};
use crate::{
    error::Error,
    operations::{self, FixedItem, FixedOperation},
    service::{
        Actor,
        deployments::is_published,
        events::{self, Change, EventKind},
    },
    upgrade::Target,
};

/// Outcomes that count as done: a retry does not run them again.
const DONE: [&str; 2] = ["updated", "unchanged"];

pub fn window_of(rollout: &rollout::Model) -> Option<Window> {
    let spec: WindowSpec = serde_json::from_str(rollout.window.as_deref()?).ok()?;
    Window::parse(spec).ok()
}

pub async fn wave<C: ConnectionTrait>(
    txn: &C,
    rollout_id: &str,
    idx: i32,
) -> Result<Option<rollout_wave::Model>, Error> {
    Ok(
        rollout_wave::Entity::find_by_id((rollout_id.to_string(), idx))
            .one(txn)
            .await?,
    )
}

pub async fn wave_count<C: ConnectionTrait>(txn: &C, rollout_id: &str) -> Result<i32, Error> {
    let n = rollout_wave::Entity::find()
        .filter(rollout_wave::Column::RolloutId.eq(rollout_id))
        .all(txn)
        .await?
        .len();
    Ok(n as i32)
}

/// Starts wave `idx` now, or waits for the window that lets it start. A wave whose
/// gate is manual and that was never approved waits for approval instead, unless
/// `approved`.
pub async fn start_or_wait<C: ConnectionTrait>(
    txn: &C,
    current: &rollout::Model,
    idx: i32,
    step: Step<'_>,
    now: DateTime<Utc>,
) -> Result<rollout::Model, Error> {
    let (run_until, wait) = match window_of(current) {
        None => (None, None),
        Some(window) => match window.wave_start(now) {
            WaveStart::Now { closes_at } => (Some(closes_at), None),
            WaveStart::At(opens_at) => (None, Some(opens_at)),
        },
    };
    if let Some(opens_at) = wait {
        let changes = rollout::ActiveModel {
            current_wave: Set(idx),
            window_opens_at: Set(Some(opens_at)),
            bake_until: Set(None),
            ..Default::default()
        };
        let step = Step {
            detail: Some(format!(
                "wave {idx} starts when the window opens at {opens_at}"
            )),
            wave: Some(idx),
            ..step
        };
        return timeline::transition(
            txn,
            current,
            RolloutStatus::WaitingForWindow,
            changes,
            step,
            now,
        )
        .await;
    }
    // The rollout acts with its creator's rights, checked in each of the wave's
    // folders as the wave starts (the operation's workers re-check its listing folder
    // before every batch).
    let creator = crate::auth::Principal {
        subject: current.created_by.clone(),
        tenant_id: current.tenant_id.clone(),
        scopes: Vec::new(),
    };
    let folders = super::actions::wave_folder_ids(txn, &current.id, idx).await?;
    if !super::actions::may(txn, &creator, &folders, crate::access::Permission::AppsEdit).await? {
        let reason = format!(
            "the rollout's creator ({}) no longer holds Apps.Edit in every folder of wave {idx}",
            current.created_by
        );
        deactivate(txn, &current.id).await?;
        return timeline::transition(
            txn,
            current,
            RolloutStatus::Failed,
            finished(now, Some(&reason)),
            Step {
                kind: "permission_revoked",
                detail: Some(reason.clone()),
                wave: Some(idx),
                ..step
            },
            now,
        )
        .await;
    }
    let Some(planned) = wave(txn, &current.id, idx).await? else {
        return Err(Error::Internal(anyhow::anyhow!(
            "wave {idx} of rollout {} is missing",
            current.id
        )));
    };
    let members: Vec<FixedItem> = rollout_deployment::Entity::find()
        .select_only()
        .column(rollout_deployment::Column::DeploymentId)
        .column(rollout_deployment::Column::FolderId)
        .column(rollout_deployment::Column::TargetVersion)
        .filter(rollout_deployment::Column::RolloutId.eq(&current.id))
        .filter(rollout_deployment::Column::Wave.eq(idx))
        .filter(
            sea_orm::Condition::any()
                .add(rollout_deployment::Column::Outcome.is_null())
                .add(rollout_deployment::Column::Outcome.is_not_in(DONE)),
        )
        .order_by_asc(rollout_deployment::Column::Seq)
        .into_tuple::<(String, i32, Option<i32>)>()
        .all(txn)
        .await?
        .into_iter()
        .map(|(deployment_id, folder_id, target_version)| FixedItem {
            deployment_id,
            folder_id,
            target_version,
        })
        .collect();
    let creator = Actor::new(current.created_by.clone(), current.request_id.clone());
    let folder_id = members.first().map_or(0, |m| m.folder_id);
    let operation = operations::create_fixed(
        txn,
        FixedOperation {
            tenant_id: &current.tenant_id,
            folder_id,
            actor: &creator,
            items: &members,
            target: match current.target_version {
                None => Target::Latest,
                Some(v) => Target::Version(v),
            },
            // One failure more than the wave tolerates stops starting items.
            max_failures: Some(planned.max_failures as usize + 1),
            max_concurrency: planned.max_concurrency.max(1) as usize,
            rollout_id: &current.id,
            rollout_wave: idx,
            run_until,
            request_json: serde_json::json!({
                "rollout": current.id,
                "wave": idx,
                "deploymentIdCount": members.len(),
            }),
        },
    )
    .await?;
    rollout_wave::Entity::update_many()
        .col_expr(rollout_wave::Column::Status, Expr::value("Running"))
        .col_expr(
            rollout_wave::Column::OperationId,
            Expr::value(operation.id.clone()),
        )
        .col_expr(
            rollout_wave::Column::Attempts,
            Expr::value(planned.attempts + 1),
        )
        .col_expr(
            rollout_wave::Column::StartedAt,
            Expr::value(planned.started_at.unwrap_or(now)),
        )
        .col_expr(
            rollout_wave::Column::FinishedAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(rollout_wave::Column::RolloutId.eq(&current.id))
        .filter(rollout_wave::Column::Idx.eq(idx))
        .exec(txn)
        .await?;
    let changes = rollout::ActiveModel {
        current_wave: Set(idx),
        operation_id: Set(Some(operation.id.clone())),
        window_opens_at: Set(None),
        bake_until: Set(None),
        reason: Set(None),
        ..Default::default()
    };
    let step = Step {
        detail: Some(format!(
            "wave {idx} ('{}'): operation {} over {} deployments",
            planned.name,
            operation.id,
            members.len()
        )),
        wave: Some(idx),
        ..step
    };
    timeline::transition(txn, current, RolloutStatus::Running, changes, step, now).await
}

/// Copies the settled items of `operation_id` onto the rollout's deployments.
pub async fn copy_outcomes<C: ConnectionTrait>(
    txn: &C,
    rollout_id: &str,
    operation_id: &str,
) -> Result<(), Error> {
    let items = entity::operation_item::Entity::find()
        .filter(entity::operation_item::Column::OperationId.eq(operation_id))
        .all(txn)
        .await?;
    for item in items {
        let Some(deployment_id) = item.deployment_id else {
            continue;
        };
        rollout_deployment::Entity::update_many()
            .col_expr(
                rollout_deployment::Column::Outcome,
                Expr::value(item.status.as_str()),
            )
            .col_expr(
                rollout_deployment::Column::FromVersion,
                Expr::value(item.from_version),
            )
            .col_expr(
                rollout_deployment::Column::ToVersion,
                Expr::value(item.to_version),
            )
            .filter(rollout_deployment::Column::RolloutId.eq(rollout_id))
            .filter(rollout_deployment::Column::DeploymentId.eq(deployment_id))
            .exec(txn)
            .await?;
    }
    Ok(())
}

/// The wave's operation finished: judge its failures, then bake, pause or roll back.
pub async fn finish_wave<C: ConnectionTrait>(
    txn: &C,
    current: &rollout::Model,
    operation: &operation::Model,
    now: DateTime<Utc>,
) -> Result<rollout::Model, Error> {
    let idx = current.current_wave;
    copy_outcomes(txn, &current.id, &operation.id).await?;
    let planned = wave(txn, &current.id, idx)
        .await?
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("wave {idx} is missing")))?;
    let failed = rollout_deployment::Entity::find()
        .filter(rollout_deployment::Column::RolloutId.eq(&current.id))
        .filter(rollout_deployment::Column::Wave.eq(idx))
        .filter(rollout_deployment::Column::Outcome.eq("failed"))
        .all(txn)
        .await?
        .len();
    let driver = Actor::new("uplift", None);
    let over_budget = failed > planned.max_failures as usize;
    let revoked = operation.error_code.as_deref() == Some("permission_revoked");
    rollout_wave::Entity::update_many()
        .col_expr(
            rollout_wave::Column::Status,
            Expr::value(if over_budget || revoked {
                "Failed"
            } else {
                "Succeeded"
            }),
        )
        .col_expr(rollout_wave::Column::FinishedAt, Expr::value(now))
        .filter(rollout_wave::Column::RolloutId.eq(&current.id))
        .filter(rollout_wave::Column::Idx.eq(idx))
        .exec(txn)
        .await?;
    if revoked {
        let reason = "the rollout's creator no longer holds Apps.Edit in a folder of the wave";
        let changes = finished(now, Some(reason));
        deactivate(txn, &current.id).await?;
        return timeline::transition(
            txn,
            current,
            RolloutStatus::Failed,
            changes,
            Step {
                kind: "wave_failed",
                actor: &driver,
                comment: None,
                detail: Some(reason.into()),
                wave: Some(idx),
            },
            now,
        )
        .await;
    }
    if over_budget {
        let reason = format!(
            "wave {idx} ('{}'): {failed} deployments failed, more than its maxFailures ({})",
            planned.name, planned.max_failures
        );
        let policy = if current.on_failure == OnFailure::Rollback.as_str() {
            OnFailure::Rollback
        } else {
            OnFailure::Pause
        };
        let step = Step {
            kind: "failure_budget_exhausted",
            actor: &driver,
            comment: None,
            detail: Some(reason.clone()),
            wave: Some(idx),
        };
        return match policy {
            OnFailure::Pause => {
                let changes = rollout::ActiveModel {
                    reason: Set(Some(reason)),
                    // A resume accepts the failures and goes on with the bake.
                    resume_to: Set(Some(RolloutStatus::Baking)),
                    bake_until: Set(None),
                    ..Default::default()
                };
                timeline::transition(txn, current, RolloutStatus::Paused, changes, step, now).await
            }
            OnFailure::Rollback => {
                let changes = rollout::ActiveModel {
                    reason: Set(Some(reason)),
                    rollback_from_wave: Set(idx),
                    ..Default::default()
                };
                timeline::transition(txn, current, RolloutStatus::RollingBack, changes, step, now)
                    .await
            }
        };
    }
    let step = Step {
        kind: "wave_finished",
        actor: &driver,
        comment: None,
        detail: Some(format!(
            "wave {idx} ('{}') finished; {failed} failed",
            planned.name
        )),
        wave: Some(idx),
    };
    start_bake(txn, current, planned.bake_seconds, step, now).await
}

/// Bakes for `seconds` (the deadline stored), or moves on at once.
pub async fn start_bake<C: ConnectionTrait>(
    txn: &C,
    current: &rollout::Model,
    seconds: i64,
    step: Step<'_>,
    now: DateTime<Utc>,
) -> Result<rollout::Model, Error> {
    if seconds <= 0 {
        let moved = timeline::transition(
            txn,
            current,
            RolloutStatus::Baking,
            rollout::ActiveModel {
                bake_until: Set(Some(now)),
                ..Default::default()
            },
            step,
            now,
        )
        .await?;
        return after_bake(txn, &moved, now).await;
    }
    let until = now + Duration::seconds(seconds);
    let step = Step {
        detail: Some(format!(
            "{}; baking until {until}",
            step.detail.clone().unwrap_or_default()
        )),
        ..step
    };
    timeline::transition(
        txn,
        current,
        RolloutStatus::Baking,
        rollout::ActiveModel {
            bake_until: Set(Some(until)),
            ..Default::default()
        },
        step,
        now,
    )
    .await
}

/// The bake is over: the next wave (or its gate), or the end.
pub async fn after_bake<C: ConnectionTrait>(
    txn: &C,
    current: &rollout::Model,
    now: DateTime<Utc>,
) -> Result<rollout::Model, Error> {
    let driver = Actor::new("uplift", None);
    let next = current.current_wave + 1;
    if next >= wave_count(txn, &current.id).await? {
        deactivate(txn, &current.id).await?;
        return timeline::transition(
            txn,
            current,
            RolloutStatus::Succeeded,
            finished(now, None),
            Step {
                kind: "succeeded",
                actor: &driver,
                comment: None,
                detail: None,
                wave: None,
            },
            now,
        )
        .await;
    }
    let planned = wave(txn, &current.id, next)
        .await?
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("wave {next} is missing")))?;
    if planned.gate == "manual" {
        return timeline::transition(
            txn,
            current,
            RolloutStatus::AwaitingApproval,
            rollout::ActiveModel {
                current_wave: Set(next),
                operation_id: Set(None),
                ..Default::default()
            },
            Step {
                kind: "awaiting_approval",
                actor: &driver,
                comment: None,
                detail: Some(format!(
                    "wave {next} ('{}') waits for approve",
                    planned.name
                )),
                wave: Some(next),
            },
            now,
        )
        .await;
    }
    start_or_wait(
        txn,
        current,
        next,
        Step {
            kind: "wave_started",
            actor: &driver,
            comment: None,
            detail: None,
            wave: Some(next),
        },
        now,
    )
    .await
}

/// The columns of a rollout that finished.
pub fn finished(now: DateTime<Utc>, reason: Option<&str>) -> rollout::ActiveModel {
    rollout::ActiveModel {
        finished_at: Set(Some(now)),
        reason: Set(reason.map(str::to_string)),
        bake_until: Set(None),
        window_opens_at: Set(None),
        ..Default::default()
    }
}

/// The rollout no longer holds its deployments.
pub async fn deactivate<C: ConnectionTrait>(txn: &C, rollout_id: &str) -> Result<(), Error> {
    rollout_deployment::Entity::update_many()
        .col_expr(rollout_deployment::Column::Active, Expr::value(false))
        .filter(rollout_deployment::Column::RolloutId.eq(rollout_id))
        .exec(txn)
        .await?;
    Ok(())
}

/// The rollout holds its deployments again (retry or rollback of a finished one); a
/// 409 naming the rollout that took one of them in the meantime.
pub async fn reactivate<C: ConnectionTrait>(txn: &C, rollout_id: &str) -> Result<(), Error> {
    let members: Vec<(String, i32)> = rollout_deployment::Entity::find()
        .select_only()
        .column(rollout_deployment::Column::DeploymentId)
        .column(rollout_deployment::Column::FolderId)
        .filter(rollout_deployment::Column::RolloutId.eq(rollout_id))
        .filter(rollout_deployment::Column::Active.eq(false))
        .into_tuple()
        .all(txn)
        .await?;
    if members.is_empty() {
        return Ok(());
    }
    super::create::refuse_overlap(txn, &members).await?;
    rollout_deployment::Entity::update_many()
        .col_expr(rollout_deployment::Column::Active, Expr::value(true))
        .filter(rollout_deployment::Column::RolloutId.eq(rollout_id))
        .exec(txn)
        .await
        .map_err(|e| {
            if crate::db::is_unique_violation(&e) {
                Error::Conflict(
                    "another active rollout holds some of this rollout's deployments".into(),
                )
            } else {
                e.into()
            }
        })?;
    Ok(())
}

/// Stops the current wave's operation if it still runs, and records what it did.
pub async fn stop_current<C: ConnectionTrait>(
    txn: &C,
    current: &rollout::Model,
) -> Result<(), Error> {
    let Some(operation_id) = current.operation_id.as_deref() else {
        return Ok(());
    };
    operations::cancel_within(txn, operation_id).await?;
    copy_outcomes(txn, &current.id, operation_id).await
}

/// The current operation, if it still runs.
pub async fn running_operation<C: ConnectionTrait>(
    txn: &C,
    current: &rollout::Model,
) -> Result<Option<operation::Model>, Error> {
    let Some(id) = current.operation_id.as_deref() else {
        return Ok(None);
    };
    Ok(operations::load(txn, id)
        .await?
        .filter(|o| !o.status.is_terminal()))
}

/// What one rollback step did.
pub enum Reverted {
    One,
    NoneLeft,
}

/// Restores one upgraded deployment (newest wave first) to the exact version it had
/// before, with a `rollback` event, in the caller's transaction; a deployment changed
/// since by someone else is left alone and recorded as `changed_since`, one whose
/// previous version is no longer published as `previous_unpublished`.
pub async fn revert_one<C: ConnectionTrait>(
    txn: &C,
    current: &rollout::Model,
    now: DateTime<Utc>,
) -> Result<Reverted, Error> {
    let Some(next) = rollout_deployment::Entity::find()
        .filter(rollout_deployment::Column::RolloutId.eq(&current.id))
        .filter(rollout_deployment::Column::Wave.gte(current.rollback_from_wave))
        .filter(rollout_deployment::Column::Outcome.eq("updated"))
        .filter(rollout_deployment::Column::Rollback.is_null())
        .order_by_desc(rollout_deployment::Column::Wave)
        .order_by_desc(rollout_deployment::Column::Seq)
        .one(txn)
        .await?
    else {
        return Ok(Reverted::NoneLeft);
    };
    let found = deployment::Entity::find_by_id(next.deployment_id.clone())
        .filter(deployment::Column::TenantId.eq(&current.tenant_id))
        .lock_exclusive()
        .one(txn)
        .await?;
    // A deployment moves only onto a published version: one whose previous version was
    // withdrawn since the wave stays where it is (a version row read under a share lock,
    // as every other move does, so an unpublish cannot slip in before the commit).
    let previous_published = match (&found, next.from_version) {
        (Some(found), Some(from)) => is_published(txn, found.app_id, from).await?,
        _ => false,
    };
    let result = match (found, next.from_version, next.to_version) {
        (Some(found), Some(_), Some(to)) if found.version == to && !previous_published => {
            "previous_unpublished"
        }
        (Some(found), Some(from), Some(to)) if found.version == to => {
            deployment::Entity::update_many()
                .col_expr(deployment::Column::Version, Expr::value(from))
                .col_expr(deployment::Column::UpdatedAt, Expr::value(now))
                .filter(deployment::Column::Id.eq(&found.id))
                .exec(txn)
                .await?;
            let actor = Actor::new(current.created_by.clone(), current.request_id.clone());
            events::record(
                txn,
                Change {
                    tenant_id: &current.tenant_id,
                    deployment_id: &found.id,
                    kind: EventKind::Rollback,
                    from_version: Some(to),
                    to_version: from,
                    at: now,
                },
                &actor,
            )
            .await?;
            "rolled_back"
        }
        (Some(found), Some(from), _) if found.version == from => "already_previous",
        _ => "changed_since",
    };
    rollout_deployment::Entity::update_many()
        .col_expr(rollout_deployment::Column::Rollback, Expr::value(result))
        .filter(rollout_deployment::Column::RolloutId.eq(&current.id))
        .filter(rollout_deployment::Column::DeploymentId.eq(&next.deployment_id))
        .exec(txn)
        .await?;
    Ok(Reverted::One)
}
