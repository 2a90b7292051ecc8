//! The events a webhook endpoint can subscribe to. Adding one: a variant, its name in
//! `as_str` and `ALL`, and the writer that records it in its change's transaction.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    DeploymentDeployed,
    DeploymentUpgraded,
    DeploymentEdited,
    DeploymentRolledBack,
    AppVersionPublished,
    AppVersionUnpublished,
    OperationCompleted,
    RolloutWaveCompleted,
    RolloutAwaitingApproval,
    RolloutCompleted,
    RolloutPaused,
    RolloutRolledBack,
    /// Sent by `POST …/webhooks/{id}/test` to that endpoint only; not subscribable.
    WebhookTest,
}

impl EventType {
    /// Every type an endpoint may name in `eventTypes`.
    pub const ALL: &'static [EventType] = &[
        EventType::DeploymentDeployed,
        EventType::DeploymentUpgraded,
        EventType::DeploymentEdited,
        EventType::DeploymentRolledBack,
        EventType::AppVersionPublished,
        EventType::AppVersionUnpublished,
        EventType::OperationCompleted,
        EventType::RolloutWaveCompleted,
        EventType::RolloutAwaitingApproval,
        EventType::RolloutCompleted,
        EventType::RolloutPaused,
        EventType::RolloutRolledBack,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::DeploymentDeployed => "deployment.deployed",
            EventType::DeploymentUpgraded => "deployment.upgraded",
            EventType::DeploymentEdited => "deployment.edited",
            EventType::DeploymentRolledBack => "deployment.rolled_back",
            EventType::AppVersionPublished => "app.version_published",
            EventType::AppVersionUnpublished => "app.version_unpublished",
            EventType::OperationCompleted => "operation.completed",
            EventType::RolloutWaveCompleted => "rollout.wave_completed",
            EventType::RolloutAwaitingApproval => "rollout.awaiting_approval",
            EventType::RolloutCompleted => "rollout.completed",
            EventType::RolloutPaused => "rollout.paused",
            EventType::RolloutRolledBack => "rollout.rolled_back",
            EventType::WebhookTest => "webhook.test",
        }
    }

    /// A subscribable type by its name.
    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL.iter().copied().find(|t| t.as_str() == name)
    }

    /// The deployment-history kind behind a deployment event.
    pub fn of_deployment_kind(kind: entity::deployment_event::EventKind) -> EventType {
        use entity::deployment_event::EventKind;
        match kind {
            EventKind::Deploy => EventType::DeploymentDeployed,
            EventKind::Upgrade => EventType::DeploymentUpgraded,
            EventKind::Edit => EventType::DeploymentEdited,
            EventKind::Rollback => EventType::DeploymentRolledBack,
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subscribable_type_parses_back_from_its_name_and_the_test_event_does_not() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(*t));
        }
        assert_eq!(EventType::parse("webhook.test"), None);
        assert_eq!(EventType::parse("deployment.Upgraded"), None);
    }
}
