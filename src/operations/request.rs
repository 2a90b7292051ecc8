//! What a caller asks an operation to do, validated: which deployments, to which
//! version, with which failure budget and concurrency. (The wire form is the HTTP
//! layer's; this is what the rest of the crate is handed.)

use serde::{Deserialize, Serialize};

use crate::{domain::MAX_TAGS, error::Error, upgrade::Target};

/// The deployments an operation acts on, fixed when it is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// These ids, in this order (duplicates once, first spelling kept).
    Ids(Vec<String>),
    Selector(Selector),
}

/// Deployments of the folder (and, when asked, its subfolders) that match every given
/// criterion.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Selector {
    /// Any of these apps (empty: every app).
    #[serde(default)]
    pub app_system_names: Vec<String>,
    /// Every one of these tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Title, routing name or app system name contains this (case-insensitive).
    #[serde(default)]
    pub search_text: Option<String>,
    #[serde(default)]
    pub include_subfolders: bool,
    /// Only deployments behind the target version.
    #[serde(default = "yes")]
    pub only_outdated: bool,
}

fn yes() -> bool {
    true
}

/// The most app names one selector may list (each is a bound parameter of the query).
pub const MAX_SELECTOR_APPS: usize = 1000;
/// The longest `searchText`.
pub const MAX_SEARCH_CHARS: usize = 200;

impl Selector {
    /// Refuses a selector too large to be one query, naming the field.
    pub fn check(&self) -> Result<(), Error> {
        if self.app_system_names.len() > MAX_SELECTOR_APPS {
            return Err(Error::invalid(format!(
                "selector.appSystemNames holds {} names; at most {MAX_SELECTOR_APPS} are accepted",
                self.app_system_names.len()
            )));
        }
        if self.tags.len() > MAX_TAGS {
            return Err(Error::invalid(format!(
                "selector.tags holds {} tags; at most {MAX_TAGS} are accepted",
                self.tags.len()
            )));
        }
        if self
            .search_text
            .as_deref()
            .is_some_and(|t| t.chars().count() > MAX_SEARCH_CHARS)
        {
            return Err(Error::invalid(format!(
                "selector.searchText must be at most {MAX_SEARCH_CHARS} characters"
            )));
        }
        Ok(())
    }
}

/// When an operation stops starting items: after this many failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureBudget {
    Count(u32),
    /// A percentage of the operation's items (`"5%"`), rounded up, at least 1.
    Percent(u32),
}

impl FailureBudget {
    /// Parses `3` or `"5%"` (0 < percentage ≤ 100).
    pub fn parse(raw: &serde_json::Value) -> Result<Self, Error> {
        let refuse = || {
            Error::invalid(format!(
                "maxFailures must be a whole number of at least 1 or a percentage such as \"5%\", not {raw}"
            ))
        };
        match raw {
            serde_json::Value::Number(n) => n
                .as_u64()
                .filter(|n| *n >= 1)
                .and_then(|n| u32::try_from(n).ok())
                .map(FailureBudget::Count)
                .ok_or_else(refuse),
            serde_json::Value::String(s) => {
                let s = s.trim();
                if let Some(percent) = s.strip_suffix('%') {
                    percent
                        .trim()
                        .parse::<u32>()
                        .ok()
                        .filter(|p| (1..=100).contains(p))
                        .map(FailureBudget::Percent)
                        .ok_or_else(refuse)
                } else {
                    s.parse::<u32>()
                        .ok()
                        .filter(|n| *n >= 1)
                        .map(FailureBudget::Count)
                        .ok_or_else(refuse)
                }
            }
            _ => Err(refuse()),
        }
    }

    /// The number of failures after which no new item starts, for `total` items.
    pub fn limit(self, total: usize) -> usize {
        match self {
            FailureBudget::Count(n) => n as usize,
            FailureBudget::Percent(p) => (total * p as usize).div_ceil(100).max(1),
        }
    }
}

/// A validated request for an upgrade operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRequest {
    pub selection: Selection,
    pub target: Target,
    pub max_failures: Option<FailureBudget>,
    pub max_concurrency: usize,
    pub dry_run: bool,
}

/// Checks a requested concurrency against the allowed range, naming the field.
pub fn concurrency(requested: Option<u64>, default: usize, max: usize) -> Result<usize, Error> {
    match requested {
        None => Ok(default.min(max)),
        Some(n) if n >= 1 && n as usize <= max => Ok(n as usize),
        Some(n) => Err(Error::invalid(format!(
            "maxConcurrency must be from 1 to {max}, not {n}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_budget_is_a_count_or_a_percentage_and_anything_else_is_named() {
        assert_eq!(
            FailureBudget::parse(&json!(3)).unwrap(),
            FailureBudget::Count(3)
        );
        assert_eq!(
            FailureBudget::parse(&json!("5%")).unwrap(),
            FailureBudget::Percent(5)
        );
        assert_eq!(
            FailureBudget::parse(&json!("7")).unwrap(),
            FailureBudget::Count(7)
        );
        for bad in [
            json!(0),
            json!(-1),
            json!(1.5),
            json!("0%"),
            json!("101%"),
            json!("x%"),
            json!(true),
        ] {
            let err = FailureBudget::parse(&bad).unwrap_err().to_string();
            assert!(err.contains("maxFailures"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_percentage_budget_rounds_up_and_allows_at_least_one_failure() {
        assert_eq!(FailureBudget::Percent(5).limit(100), 5);
        assert_eq!(FailureBudget::Percent(5).limit(101), 6);
        assert_eq!(FailureBudget::Percent(5).limit(3), 1);
        assert_eq!(FailureBudget::Percent(100).limit(0), 1);
        assert_eq!(FailureBudget::Count(4).limit(2), 4);
    }

    #[test]
    fn a_selector_too_large_for_one_query_is_refused_naming_the_field() {
        let many = |n: usize| (0..n).map(|i| format!("x{i}")).collect::<Vec<_>>();
        let apps = Selector {
            app_system_names: many(MAX_SELECTOR_APPS + 1),
            ..Selector::default()
        };
        assert!(
            apps.check()
                .unwrap_err()
                .to_string()
                .contains("appSystemNames")
        );
        let tags = Selector {
            tags: many(MAX_TAGS + 1),
            ..Selector::default()
        };
        assert!(tags.check().unwrap_err().to_string().contains("tags"));
        let text = Selector {
            search_text: Some("a".repeat(MAX_SEARCH_CHARS + 1)),
            ..Selector::default()
        };
        assert!(text.check().unwrap_err().to_string().contains("searchText"));
        assert!(Selector::default().check().is_ok());
    }

    #[test]
    fn concurrency_defaults_and_is_bounded() {
        assert_eq!(concurrency(None, 8, 64).unwrap(), 8);
        assert_eq!(concurrency(Some(64), 8, 64).unwrap(), 64);
        assert!(
            concurrency(Some(0), 8, 64)
                .unwrap_err()
                .to_string()
                .contains("maxConcurrency")
        );
        assert!(concurrency(Some(65), 8, 64).is_err());
    }
}
