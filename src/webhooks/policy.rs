//! How this replica delivers webhooks, from `Settings` once.

use std::time::Duration;

use rand::Rng;

use crate::{address::AllowList, config::Settings};

#[derive(Debug, Clone)]
pub struct WebhookPolicy {
    /// Delay before each attempt (the first is normally 0).
    pub schedule: Vec<Duration>,
    pub timeout: Duration,
    pub disable_after: Duration,
    pub secret_overlap: Duration,
    pub retention: Duration,
    pub poll: Duration,
    pub concurrency: usize,
    pub relay: bool,
    pub allow: AllowList,
    pub allow_http: bool,
    /// CloudEvents `source`: this service and organization.
    pub source: String,
}

/// The longest `Retry-After` honoured; a longer one waits this long.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

impl WebhookPolicy {
    pub fn from_settings(settings: &Settings) -> Self {
        WebhookPolicy {
            schedule: settings
                .webhook_retry_schedule_seconds
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
            timeout: Duration::from_millis(settings.webhook_timeout_ms),
            disable_after: Duration::from_secs(settings.webhook_disable_after_seconds),
            secret_overlap: Duration::from_secs(settings.webhook_secret_overlap_seconds),
            retention: Duration::from_secs(settings.webhook_retention_days * 24 * 3600),
            poll: Duration::from_millis(settings.webhook_poll_ms),
            concurrency: settings.webhook_concurrency,
            relay: settings.webhook_relay,
            // Validated when the settings were loaded.
            allow: AllowList::parse(&settings.webhook_allow_networks).unwrap_or_default(),
            allow_http: settings.webhook_allow_http,
            source: format!("/uplift/{}", settings.organization),
        }
    }

    /// The lease of a claimed delivery: longer than any send can take (the timeout
    /// bounds it) with room for recording it; a replica killed mid-send has its
    /// deliveries sent again this long after it claimed them.
    pub fn lease(&self) -> Duration {
        self.timeout * 2 + Duration::from_secs(5)
    }

    /// How long to wait after attempt number `attempts` (1, 2, …) failed, or `None`
    /// when that was the last one. `Retry-After` (of a 429 or 503) replaces the
    /// schedule's wait.
    pub fn next_delay(
        &self,
        attempts: usize,
        status: Option<u16>,
        retry_after: Option<&str>,
    ) -> Option<Duration> {
        let scheduled = *self.schedule.get(attempts)?;
        if matches!(status, Some(429 | 503))
            && let Some(wait) = retry_after.and_then(parse_retry_after)
        {
            return Some(wait.min(MAX_RETRY_AFTER));
        }
        Some(with_jitter(scheduled))
    }
}

/// Up to a tenth more, so that receivers coming back are not hit by every retry at once.
fn with_jitter(delay: Duration) -> Duration {
    let tenth = delay.as_millis() as u64 / 10;
    if tenth == 0 {
        return delay;
    }
    delay + Duration::from_millis(rand::rng().random_range(0..=tenth))
}

/// `Retry-After`: whole seconds, or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(schedule: &[u64]) -> WebhookPolicy {
        let settings = Settings {
            webhook_retry_schedule_seconds: schedule.to_vec(),
            ..Settings::default()
        };
        WebhookPolicy::from_settings(&settings)
    }

    #[test]
    fn the_default_schedule_is_the_standard_webhooks_one_with_at_most_a_tenth_of_jitter() {
        let p = WebhookPolicy::from_settings(&Settings::default());
        let expected = [5u64, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400];
        for (attempt, base) in expected.iter().enumerate() {
            let delay = p.next_delay(attempt + 1, Some(500), None).unwrap();
            assert!(
                delay >= Duration::from_secs(*base) && delay <= Duration::from_millis(base * 1100),
                "after attempt {}: {delay:?}",
                attempt + 1
            );
        }
        assert_eq!(
            p.next_delay(10, Some(500), None),
            None,
            "ten attempts in all"
        );
    }

    #[test]
    fn retry_after_of_a_429_or_503_replaces_the_scheduled_wait_and_is_bounded() {
        let p = policy(&[0, 1, 1]);
        assert_eq!(
            p.next_delay(1, Some(429), Some("7")),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            p.next_delay(1, Some(503), Some("999999")),
            Some(MAX_RETRY_AFTER)
        );
        // Other statuses keep the schedule (with its jitter); a malformed value is
        // ignored.
        let scheduled = |d: Option<Duration>| {
            d.is_some_and(|d| d >= Duration::from_secs(1) && d <= Duration::from_millis(1100))
        };
        assert!(scheduled(p.next_delay(1, Some(500), Some("7"))));
        assert!(scheduled(p.next_delay(1, Some(429), Some("soon"))));
        // The schedule still bounds the number of attempts.
        assert_eq!(p.next_delay(3, Some(429), Some("7")), None);
    }

    #[test]
    fn retry_after_as_an_http_date_waits_until_then() {
        let later = (chrono::Utc::now() + chrono::Duration::seconds(120)).to_rfc2822();
        let wait = parse_retry_after(&later).unwrap();
        assert!(wait > Duration::from_secs(100) && wait <= Duration::from_secs(120));
        let past = (chrono::Utc::now() - chrono::Duration::seconds(120)).to_rfc2822();
        assert_eq!(parse_retry_after(&past), Some(Duration::ZERO));
    }
}
