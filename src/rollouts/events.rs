//! The `rollout.*` webhook events: which transition emits which (pure), and their
//! thin `data`, written to the outbox by `timeline::transition` in the transaction of
//! the transition itself, so a transition that rolls back leaves no event and every
//! committed one that matters to a receiver has its event.

use chrono::{DateTime, Utc};
use entity::{rollout, rollout_deployment};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect,
    sea_query::{Expr, Func},
};
use serde_json::{Value, json};

use super::{
    progress,
    state::{RolloutStatus, name},
    timeline::Step,
};
use crate::{
    error::Error,
    outbox::{self, EventType, NewEvent},
};

/// The timeline kinds that end a wave (within its budget, over it, or with the
/// creator's rights revoked; a retry with nothing left to run ends it too).
const WAVE_ENDS: [&str; 3] = ["wave_finished", "failure_budget_exhausted", "wave_failed"];

/// The events a transition from `from` to `to`, recorded as `kind`, emits (a wave over
/// its budget that pauses the rollout emits two).
pub fn emitted(from: RolloutStatus, to: RolloutStatus, kind: &str) -> Vec<EventType> {
    let mut out = Vec::new();
    if WAVE_ENDS.contains(&kind) {
        out.push(EventType::RolloutWaveCompleted);
    }
    // A status kept (none such today) is no news.
    if from == to {
        return out;
    }
    match to {
        RolloutStatus::AwaitingApproval => out.push(EventType::RolloutAwaitingApproval),
        RolloutStatus::Paused => out.push(EventType::RolloutPaused),
        RolloutStatus::Succeeded | RolloutStatus::Aborted | RolloutStatus::Failed => {
            out.push(EventType::RolloutCompleted)
        }
        RolloutStatus::RolledBack => out.push(EventType::RolloutRolledBack),
        _ => {}
    }
    out
}

/// Writes the events of the transition of `current` to `updated` (recorded as `step`).
pub async fn record<C: ConnectionTrait>(
    txn: &C,
    current: &rollout::Model,
    updated: &rollout::Model,
    step: &Step<'_>,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let types = emitted(current.status, updated.status, step.kind);
    if types.is_empty() {
        return Ok(());
    }
    let wave_idx = step.wave.unwrap_or(updated.current_wave);
    let wave = progress::wave(txn, &updated.id, wave_idx).await?;
    for event_type in types {
        let of_wave = event_type == EventType::RolloutWaveCompleted;
        let counters = counters(txn, &updated.id, of_wave.then_some(wave_idx)).await?;
        let data = json!({
            "rolloutId": updated.id,
            "rolloutName": updated.name,
            "status": name(updated.status),
            "previousStatus": name(current.status),
            "step": step.kind,
            "wave": wave.as_ref().map(|w| json!({
                "index": w.idx,
                "name": w.name,
                "status": w.status,
                "operationId": w.operation_id,
            })),
            "counters": counters,
            "comment": step.comment,
            "reason": updated.reason,
        });
        outbox::record(
            txn,
            NewEvent {
                tenant_id: &updated.tenant_id,
                event_type,
                ordering_key: outbox::ordering_key("rollout", &updated.id),
                deployment_id: None,
                // A rollout spans folders: a tenant-wide event (every folder filter
                // lets it through).
                folder_id: None,
                from_version: None,
                to_version: None,
                actor: &step.actor.subject,
                request_id: step.actor.request_id.as_deref(),
                operation_id: None,
                data: Some(data),
                at: now,
            },
        )
        .await?;
    }
    Ok(())
}

/// What the rollout recorded of its deployments (of one wave, or of all): the outcome
/// of each settled item, those not run yet, and those a rollback restored.
async fn counters<C: ConnectionTrait>(
    txn: &C,
    rollout_id: &str,
    wave: Option<i32>,
) -> Result<Value, Error> {
    let mut query = rollout_deployment::Entity::find()
        .select_only()
        .column(rollout_deployment::Column::Outcome)
        .column(rollout_deployment::Column::Rollback)
        .column_as(
            Expr::from(Func::count(Expr::col(
                rollout_deployment::Column::DeploymentId,
            ))),
            "n",
        )
        .filter(rollout_deployment::Column::RolloutId.eq(rollout_id))
        .group_by(rollout_deployment::Column::Outcome)
        .group_by(rollout_deployment::Column::Rollback);
    if let Some(wave) = wave {
        query = query.filter(rollout_deployment::Column::Wave.eq(wave));
    }
    let rows: Vec<(Option<String>, Option<String>, i64)> = query.into_tuple().all(txn).await?;
    let mut total = 0;
    let mut by_outcome = std::collections::BTreeMap::<&str, i64>::new();
    let mut rolled_back = 0;
    for (outcome, rollback, n) in &rows {
        total += n;
        let key = match outcome.as_deref() {
            Some("updated") => "updated",
            Some("unchanged") => "unchanged",
            Some("failed") => "failed",
            Some("skipped") => "skipped",
            Some("canceled") => "canceled",
            _ => "notRun",
        };
        *by_outcome.entry(key).or_default() += n;
        if rollback.as_deref() == Some("rolled_back") {
            rolled_back += n;
        }
    }
    let get = |k: &str| by_outcome.get(k).copied().unwrap_or(0);
    Ok(json!({
        "total": total,
        "updated": get("updated"),
        "unchanged": get("unchanged"),
        "failed": get("failed"),
        "skipped": get("skipped"),
        "canceled": get("canceled"),
        "notRun": get("notRun"),
        "rolledBack": rolled_back,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use RolloutStatus::*;

    #[test]
    fn a_wave_end_emits_wave_completed_and_a_budget_pause_emits_paused_as_well() {
        assert_eq!(
            emitted(Running, Baking, "wave_finished"),
            vec![EventType::RolloutWaveCompleted]
        );
        assert_eq!(
            emitted(Running, Paused, "failure_budget_exhausted"),
            vec![EventType::RolloutWaveCompleted, EventType::RolloutPaused]
        );
        assert_eq!(
            emitted(Running, Failed, "wave_failed"),
            vec![EventType::RolloutWaveCompleted, EventType::RolloutCompleted]
        );
    }

    #[test]
    fn each_final_state_and_each_wait_for_a_person_emits_its_event_and_the_rest_none() {
        for (from, to, kind, event) in [
            (
                Baking,
                AwaitingApproval,
                "awaiting_approval",
                EventType::RolloutAwaitingApproval,
            ),
            (Baking, Succeeded, "succeeded", EventType::RolloutCompleted),
            (Running, Aborted, "aborted", EventType::RolloutCompleted),
            (Running, Paused, "paused", EventType::RolloutPaused),
            (
                RollingBack,
                RolledBack,
                "rolled_back",
                EventType::RolloutRolledBack,
            ),
        ] {
            assert_eq!(emitted(from, to, kind), vec![event], "{kind}");
        }
        for (from, to, kind) in [
            (Pending, Running, "wave_started"),
            (Running, WaitingForWindow, "window_closed"),
            (WaitingForWindow, Running, "window_opened"),
            (Paused, Running, "resumed"),
            (Succeeded, RollingBack, "rollback_requested"),
        ] {
            assert!(emitted(from, to, kind).is_empty(), "{kind}");
        }
    }
}
