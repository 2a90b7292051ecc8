//! RFC 7240 `Prefer` as the bulk call reads it: `respond-async` asks for a 202 and a
//! monitor; `wait=N` with it means "answer as usual if the work is done within N
//! seconds". Other preferences are ignored, as the RFC asks.

use std::time::Duration;

use actix_web::{HttpRequest, http::header::HeaderName};

pub const PREFER: HeaderName = HeaderName::from_static("prefer");
pub const PREFERENCE_APPLIED: HeaderName = HeaderName::from_static("preference-applied");

/// The longest `wait` honoured; a longer one is treated as this.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Preferences {
    pub respond_async: bool,
    pub wait: Option<Duration>,
}

impl Preferences {
    /// Every `Prefer` header of the request, each a comma-separated list.
    pub fn of(req: &HttpRequest) -> Self {
        let mut preferences = Preferences::default();
        for value in req.headers().get_all(PREFER) {
            if let Ok(text) = value.to_str() {
                preferences.read(text);
            }
        }
        preferences
    }

    fn read(&mut self, header: &str) {
        for preference in header.split(',') {
            // A preference's own parameters follow `;`; none is used here.
            let token = preference.split(';').next().unwrap_or_default().trim();
            let (name, value) = match token.split_once('=') {
                Some((name, value)) => (name.trim(), Some(value.trim().trim_matches('"'))),
                None => (token, None),
            };
            if name.eq_ignore_ascii_case("respond-async") {
                self.respond_async = true;
            } else if name.eq_ignore_ascii_case("wait")
                && let Some(seconds) = value.and_then(|v| v.parse::<u64>().ok())
            {
                self.wait = Some(Duration::from_secs(seconds).min(MAX_WAIT));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(header: &str) -> Preferences {
        let mut p = Preferences::default();
        p.read(header);
        p
    }

    #[test]
    fn respond_async_and_wait_are_read_in_any_case_and_order() {
        assert_eq!(
            parse("wait=10, Respond-Async"),
            Preferences {
                respond_async: true,
                wait: Some(Duration::from_secs(10))
            }
        );
        assert_eq!(
            parse("respond-async"),
            Preferences {
                respond_async: true,
                wait: None
            }
        );
    }

    #[test]
    fn unknown_or_malformed_preferences_are_ignored_and_long_waits_capped() {
        assert_eq!(parse("return=minimal, wait=soon"), Preferences::default());
        assert_eq!(parse("respond-async, wait=100000").wait, Some(MAX_WAIT));
        assert!(!parse("respond-asynchronously").respond_async);
    }
}
