//! A holder's copy of its operation's `run_until`: the instant from which no item of
//! it starts (a rollout's window closes, or it was paused). Items are checked against
//! it as they start, in memory, so the per-item database path is unchanged; the copy
//! is refreshed from the operation's row at every batch and every poll (the worker's
//! `watch_while_running`), and on SQLite an item's transaction checks the row itself.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};

/// `None` (no limit) is stored as `i64::MAX` microseconds.
#[derive(Debug)]
pub struct RunUntil(AtomicI64);

const NO_LIMIT: i64 = i64::MAX;

impl RunUntil {
    pub fn new(until: Option<DateTime<Utc>>) -> Self {
        Self(AtomicI64::new(Self::encode(until)))
    }

    pub fn set(&self, until: Option<DateTime<Utc>>) {
        self.0.store(Self::encode(until), Ordering::SeqCst);
    }

    /// Whether an item starting at `now` is past the limit.
    pub fn passed(&self, now: DateTime<Utc>) -> bool {
        self.0.load(Ordering::SeqCst) <= now.timestamp_micros()
    }

    fn encode(until: Option<DateTime<Utc>>) -> i64 {
        until.map_or(NO_LIMIT, |t| t.timestamp_micros())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn no_limit_is_never_passed() {
        let limit = RunUntil::new(None);
        assert!(!limit.passed(DateTime::<Utc>::MAX_UTC));
    }

    #[test]
    fn a_limit_is_passed_at_and_after_its_instant_and_not_before() {
        let at = Utc::now();
        let limit = RunUntil::new(Some(at));
        assert!(!limit.passed(at - Duration::microseconds(1)));
        assert!(limit.passed(at));
        assert!(limit.passed(at + Duration::seconds(1)));
    }

    #[test]
    fn a_new_limit_replaces_the_old_one() {
        let at = Utc::now();
        let limit = RunUntil::new(None);
        limit.set(Some(at));
        assert!(limit.passed(at));
        limit.set(Some(at + Duration::minutes(1)));
        assert!(!limit.passed(at));
        limit.set(None);
        assert!(!limit.passed(at + Duration::days(1)));
    }
}
