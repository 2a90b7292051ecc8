//! The actions a caller may take on a rollout: each locks the rollout's row (waiting
//! for the driver's step in progress), checks that it applies in the current state
//! (else a 409 naming the states that allow it) and makes its transition.

use chrono::{Duration, Utc};
use entity::{folder, rollout, rollout_deployment};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QuerySelect, TransactionSession, TransactionTrait,
};

use super::{
    progress,
    state::{Action, RolloutStatus},
    timeline::{self, Step},
    window::WindowState,
};
use crate::{
    access::{self, Permission},
    auth::Principal,
    db,
    domain::DeploymentId,
    error::Error,
    operations,
    service::Actor,
};

/// Who asks, and why.
pub struct Request<'a> {
    pub principal: &'a Principal,
    pub actor: &'a Actor,
    pub comment: Option<&'a str>,
}

/// Takes `action` on rollout `id` of the caller's tenant. `Ok(None)`: no such rollout
/// the caller may see (answered like one that does not exist).
pub async fn act<C>(
    db: &C,
    id: &str,
    action: Action,
    request: Request<'_>,
) -> Result<Option<rollout::Model>, Error>
where
    C: ConnectionTrait + TransactionTrait,
{
    let Some(id) = DeploymentId::parse(id) else {
        return Ok(None);
    };
    let tenant = request.principal.tenant_id.as_str();
    let txn = db::begin_write(db).await?;
    let Some(current) = rollout::Entity::find_by_id(id.as_str().to_string())
        .filter(rollout::Column::TenantId.eq(tenant))
        .lock_exclusive()
        .one(&txn)
        .await?
    else {
        return Ok(None);
    };
    if !may(
        &txn,
        request.principal,
        &folder_ids(&current),
        Permission::AppsView,
    )
    .await?
    {
        return Ok(None);
    }
    action.check(current.status).map_err(Error::Conflict)?;
    let wave = Some(current.current_wave);
    let step = |kind| Step {
        kind,
        actor: request.actor,
        comment: request.comment,
        detail: None,
        wave,
    };
    let now = Utc::now();
    let updated = match action {
        Action::Approve => {
            // The wave waiting at the gate is the current one; an empty wave (its
            // folders held nothing) is approved by whoever may act on the rollout.
            let mut wave_folders = wave_folder_ids(&txn, &current.id, current.current_wave).await?;
            if wave_folders.is_empty() {
                wave_folders = folder_ids(&current);
            }
            if !may(&txn, request.principal, &wave_folders, Permission::AppsEdit).await? {
                return Err(Error::Forbidden(
                    "approving this wave needs the Apps.Edit permission in every folder of the wave".into(),
                ));
            }
            if current.four_eyes && request.principal.subject == current.created_by {
                return Err(Error::Forbidden(
                    "this rollout asks for four eyes: its approver must be another subject than its creator"
                        .into(),
                ));
            }
            progress::start_or_wait(&txn, &current, current.current_wave, step("approved"), now)
                .await?
        }
        _ => {
            if !may(
                &txn,
                request.principal,
                &folder_ids(&current),
                Permission::AppsEdit,
            )
            .await?
            {
                return Err(Error::Forbidden(
                    "this action needs the Apps.Edit permission in every folder of the rollout"
                        .into(),
                ));
            }
            match action {
                Action::Pause => pause(&txn, &current, step("paused"), now).await?,
                Action::Resume => resume(&txn, &current, step("resumed"), now).await?,
                Action::Abort => {
                    progress::stop_current(&txn, &current).await?;
                    progress::deactivate(&txn, &current.id).await?;
                    timeline::transition(
                        &txn,
                        &current,
                        RolloutStatus::Aborted,
                        progress::finished(now, Some("aborted")),
                        step("aborted"),
                        now,
                    )
                    .await?
                }
                Action::Retry => retry(&txn, &current, step("retried"), now).await?,
                Action::Rollback => {
                    progress::reactivate(&txn, &current.id).await?;
                    progress::stop_current(&txn, &current).await?;
                    timeline::transition(
                        &txn,
                        &current,
                        RolloutStatus::RollingBack,
                        rollout::ActiveModel {
                            rollback_from_wave: Set(0),
                            finished_at: Set(None),
                            ..Default::default()
                        },
                        step("rollback_requested"),
                        now,
                    )
                    .await?
                }
                Action::Approve => unreachable!("handled above"),
            }
        }
    };
    txn.commit().await?;
    Ok(Some(updated))
}

async fn pause<C: ConnectionTrait>(
    txn: &C,
    current: &rollout::Model,
    step: Step<'_>,
    now: chrono::DateTime<Utc>,
) -> Result<rollout::Model, Error> {
    if let Some(operation) = progress::running_operation(txn, current).await? {
        // No item starts from now on (the worker holding the operation sees it within
        // a poll); the items in flight finish.
        operations::set_run_until(txn, &operation.id, Some(now)).await?;
    }
    timeline::transition(
        txn,
        current,
        RolloutStatus::Paused,
        rollout::ActiveModel {
            resume_to: Set(Some(current.status)),
            reason: Set(Some("paused".into())),
            ..Default::default()
        },
        step,
        now,
    )
    .await
}

async fn resume<C: ConnectionTrait>(
    txn: &C,
    current: &rollout::Model,
    step: Step<'_>,
    now: chrono::DateTime<Utc>,
) -> Result<rollout::Model, Error> {
    let to = current.resume_to.unwrap_or(RolloutStatus::Running);
    let mut changes = rollout::ActiveModel {
        resume_to: Set(None),
        reason: Set(None),
        ..Default::default()
    };
    let mut target = to;
    match to {
        RolloutStatus::Running | RolloutStatus::WaitingForWindow => {
            if let Some(operation) = progress::running_operation(txn, current).await? {
                match progress::window_of(current).map(|w| w.at(now)) {
                    Some(WindowState::Closed { opens_at }) => {
                        target = RolloutStatus::WaitingForWindow;
                        changes.window_opens_at = Set(Some(opens_at));
                    }
                    Some(WindowState::Open { closes_at }) => {
                        target = RolloutStatus::Running;
                        operations::set_run_until(txn, &operation.id, Some(closes_at)).await?;
                    }
                    None => {
                        target = RolloutStatus::Running;
                        operations::set_run_until(txn, &operation.id, None).await?;
                    }
                }
            } else if to == RolloutStatus::Running {
                // The wave's operation ended while paused: the driver judges it now.
                target = RolloutStatus::Running;
            }
        }
        RolloutStatus::Baking if current.bake_until.is_none() => {
            // After a failure-budget pause: accept the failures and bake from now.
            let planned = progress::wave(txn, &current.id, current.current_wave).await?;
            let seconds = planned.map_or(0, |w| w.bake_seconds);
            changes.bake_until = Set(Some(now + Duration::seconds(seconds)));
        }
        // A bake keeps its original deadline; a wait keeps its window opening.
        _ => {}
    }
    timeline::transition(txn, current, target, changes, step, now).await
}

async fn retry<C: ConnectionTrait>(
    txn: &C,
    current: &rollout::Model,
    step: Step<'_>,
    now: chrono::DateTime<Utc>,
) -> Result<rollout::Model, Error> {
    progress::reactivate(txn, &current.id).await?;
    progress::stop_current(txn, current).await?;
    let idx = current.current_wave;
    let planned = progress::wave(txn, &current.id, idx)
        .await?
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("wave {idx} is missing")))?;
    let cleared = rollout::ActiveModel {
        finished_at: Set(None),
        resume_to: Set(None),
        ..Default::default()
    };
    let reopened =
        timeline::transition(txn, current, RolloutStatus::Pending, cleared, step, now).await?;
    let driver = Actor::new("uplift", None);
    let retry_step = |kind| Step {
        kind,
        actor: &driver,
        comment: None,
        detail: None,
        wave: Some(idx),
    };
    let left = rollout_deployment::Entity::find()
        .filter(rollout_deployment::Column::RolloutId.eq(&current.id))
        .filter(rollout_deployment::Column::Wave.eq(idx))
        .filter(
            sea_orm::Condition::any()
                .add(rollout_deployment::Column::Outcome.is_null())
                .add(rollout_deployment::Column::Outcome.is_not_in(["updated", "unchanged"])),
        )
        .count(txn)
        .await?;
    if left == 0 {
        // Nothing of the wave is left to run: go on as after the wave.
        return progress::start_bake(
            txn,
            &reopened,
            planned.bake_seconds,
            retry_step("wave_finished"),
            now,
        )
        .await;
    }
    if planned.status == "Pending" && planned.gate == "manual" {
        return timeline::transition(
            txn,
            &reopened,
            RolloutStatus::AwaitingApproval,
            rollout::ActiveModel::default(),
            retry_step("awaiting_approval"),
            now,
        )
        .await;
    }
    progress::start_or_wait(txn, &reopened, idx, retry_step("wave_started"), now).await
}

pub fn folder_ids(current: &rollout::Model) -> Vec<i32> {
    serde_json::from_str(&current.folder_ids).unwrap_or_default()
}

pub(super) async fn wave_folder_ids<C: ConnectionTrait>(
    txn: &C,
    rollout_id: &str,
    wave: i32,
) -> Result<Vec<i32>, Error> {
    let ids: Vec<i32> = rollout_deployment::Entity::find()
        .select_only()
        .column(rollout_deployment::Column::FolderId)
        .distinct()
        .filter(rollout_deployment::Column::RolloutId.eq(rollout_id))
        .filter(rollout_deployment::Column::Wave.eq(wave))
        .into_tuple()
        .all(txn)
        .await?;
    Ok(ids)
}

/// Whether the caller holds `permission` in every one of these folders. A folder
/// deleted since the rollout was created (or no folder at all) leaves nobody a grant
/// to show there but a tenant-wide one: only that counts for it, as for a call that
/// names no folder; skipping it would let anyone with the scope act on a rollout
/// whose folders are all gone.
pub async fn may<C: ConnectionTrait>(
    db: &C,
    principal: &Principal,
    folder_ids: &[i32],
    permission: Permission,
) -> Result<bool, Error> {
    let found = folder::Entity::find()
        .filter(folder::Column::Id.is_in(folder_ids.iter().copied()))
        .filter(folder::Column::TenantId.eq(&principal.tenant_id))
        .all(db)
        .await?;
    if found.len() < folder_ids.len() || folder_ids.is_empty() {
        match access::authorize_tenant(db, principal, permission).await {
            Ok(()) => {}
            Err(Error::Forbidden(_)) => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    for folder in found {
        match access::authorize_in_folder(db, principal, folder, permission).await {
            Ok(_) => {}
            Err(Error::Forbidden(_)) => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}
