//! The rollout's states and which action applies in which: one table, so the 409 of
//! an action that does not apply names exactly the states that allow it.

pub use entity::rollout::RolloutStatus;

use RolloutStatus::*;

/// What a caller may ask of a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pause,
    Resume,
    Approve,
    Abort,
    Retry,
    Rollback,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Approve => "approve",
            Action::Abort => "abort",
            Action::Retry => "retry",
            Action::Rollback => "rollback",
        }
    }

    /// The states in which the action applies.
    pub fn allowed_in(self) -> &'static [RolloutStatus] {
        match self {
            Action::Pause => &[Pending, Running, Baking, AwaitingApproval, WaitingForWindow],
            Action::Resume => &[Paused],
            Action::Approve => &[AwaitingApproval],
            Action::Abort => &[
                Pending,
                Running,
                Baking,
                AwaitingApproval,
                WaitingForWindow,
                Paused,
            ],
            // After an abort as after a pause: retry is a first-class way back.
            Action::Retry => &[Paused, Aborted, Failed],
            Action::Rollback => &[
                Running,
                Baking,
                AwaitingApproval,
                WaitingForWindow,
                Paused,
                Succeeded,
                Aborted,
                Failed,
            ],
        }
    }

    /// `Err` with the sentence a 409 answers when the action does not apply.
    pub fn check(self, status: RolloutStatus) -> Result<(), String> {
        let allowed = self.allowed_in();
        if allowed.contains(&status) {
            return Ok(());
        }
        let names: Vec<&str> = allowed.iter().map(|s| name(*s)).collect();
        Err(format!(
            "{} does not apply to a rollout that is {}; it applies only when the rollout is {}",
            self.as_str(),
            name(status),
            names.join(", ")
        ))
    }
}

pub fn name(status: RolloutStatus) -> &'static str {
    match status {
        Pending => "Pending",
        Running => "Running",
        Baking => "Baking",
        AwaitingApproval => "AwaitingApproval",
        WaitingForWindow => "WaitingForWindow",
        Paused => "Paused",
        Succeeded => "Succeeded",
        Aborted => "Aborted",
        RollingBack => "RollingBack",
        RolledBack => "RolledBack",
        Failed => "Failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_action_that_does_not_apply_names_the_states_that_allow_it() {
        let err = Action::Approve.check(Running).unwrap_err();
        assert!(err.contains("approve"), "{err}");
        assert!(err.contains("is Running"), "{err}");
        assert!(err.contains("AwaitingApproval"), "{err}");
        assert!(Action::Approve.check(AwaitingApproval).is_ok());
    }

    #[test]
    fn retry_applies_after_an_abort_a_pause_or_a_failure_and_never_while_rolling_back() {
        for status in [Paused, Aborted, Failed] {
            assert!(Action::Retry.check(status).is_ok(), "{status:?}");
        }
        for status in [Running, RollingBack, RolledBack, Succeeded] {
            assert!(Action::Retry.check(status).is_err(), "{status:?}");
        }
    }

    #[test]
    fn nothing_but_a_rollback_follows_success_and_nothing_follows_a_rollback() {
        for action in [
            Action::Pause,
            Action::Resume,
            Action::Approve,
            Action::Abort,
            Action::Retry,
        ] {
            assert!(action.check(Succeeded).is_err(), "{action:?}");
        }
        assert!(Action::Rollback.check(Succeeded).is_ok());
        for action in [
            Action::Pause,
            Action::Resume,
            Action::Approve,
            Action::Abort,
            Action::Retry,
            Action::Rollback,
        ] {
            assert!(action.check(RolledBack).is_err(), "{action:?}");
            assert!(action.check(RollingBack).is_err(), "{action:?}");
        }
    }
}
