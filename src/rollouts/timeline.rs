//! The one place a rollout changes state: `transition` writes the new state, its
//! timeline entry and its `rollout.*` webhook events (`events`) in the caller's
//! transaction, so the timeline explains every step and no event is sent for a
//! transition that did not commit.

use chrono::{DateTime, Utc};
use entity::{rollout, rollout_event};
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};

use super::state::{RolloutStatus, name};
use crate::{error::Error, service::Actor};

/// One step: what happened, by whom, with what comment.
pub struct Step<'a> {
    pub kind: &'a str,
    pub actor: &'a Actor,
    pub comment: Option<&'a str>,
    pub detail: Option<String>,
    pub wave: Option<i32>,
}

/// Moves `current` to `to`, applying `changes` (other columns) in the same write, and
/// records the step. Returns the updated rollout.
pub async fn transition<C: ConnectionTrait>(
    txn: &C,
    current: &rollout::Model,
    to: RolloutStatus,
    mut changes: rollout::ActiveModel,
    step: Step<'_>,
    now: DateTime<Utc>,
) -> Result<rollout::Model, Error> {
    changes.id = Set(current.id.clone());
    changes.status = Set(to);
    changes.updated_at = Set(now);
    let updated = changes.update(txn).await?;
    super::events::record(txn, current, &updated, &step, now).await?;
    record(txn, &current.id, Some(current.status), to, step, now).await?;
    Ok(updated)
}

/// Appends a timeline entry (also for steps that keep the state, such as a window
/// opening in the middle of a wave).
pub async fn record<C: ConnectionTrait>(
    txn: &C,
    rollout_id: &str,
    from: Option<RolloutStatus>,
    to: RolloutStatus,
    step: Step<'_>,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    rollout_event::ActiveModel {
        rollout_id: Set(rollout_id.to_string()),
        kind: Set(step.kind.to_string()),
        from_status: Set(from.map(|s| name(s).to_string())),
        to_status: Set(name(to).to_string()),
        wave: Set(step.wave),
        actor: Set(step.actor.subject.clone()),
        request_id: Set(step.actor.request_id.clone()),
        comment: Set(step.comment.map(str::to_string)),
        detail: Set(step.detail),
        at: Set(now),
        ..Default::default()
    }
    .insert(txn)
    .await?;
    Ok(())
}
