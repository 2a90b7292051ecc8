//! A rollout's plan as the rest of the crate sees it: validated sizes, budgets, gates
//! and the failure policy (the wire form is the HTTP layer's).

use crate::{error::Error, operations::Selector, upgrade::Target};

use super::window::Window;

/// How many deployments a wave takes: a count, or a percentage of the whole
/// selection (rounded down, at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Count(u32),
    Percent(u32),
}

impl Size {
    /// `3` or `"25%"` (a count of at least 1; a percentage from 1 to 100).
    pub fn parse(field: &str, raw: &serde_json::Value) -> Result<Self, Error> {
        parse_amount(field, raw, 1).map(|amount| match amount {
            Amount::Count(n) => Size::Count(n),
            Amount::Percent(p) => Size::Percent(p),
        })
    }

    /// The wave's share of a selection of `total` deployments.
    pub fn of(self, total: usize) -> usize {
        match self {
            Size::Count(n) => n as usize,
            Size::Percent(p) => (total * p as usize / 100).max(1),
        }
    }
}

/// How many failed items a wave tolerates: a count (0: none) or a percentage of the
/// wave (rounded down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tolerance {
    Count(u32),
    Percent(u32),
}

impl Tolerance {
    pub fn parse(field: &str, raw: &serde_json::Value) -> Result<Self, Error> {
        parse_amount(field, raw, 0).map(|amount| match amount {
            Amount::Count(n) => Tolerance::Count(n),
            Amount::Percent(p) => Tolerance::Percent(p),
        })
    }

    /// Failures tolerated in a wave of `total` items; one more stops the rollout.
    pub fn of(self, total: usize) -> usize {
        match self {
            Tolerance::Count(n) => n as usize,
            Tolerance::Percent(p) => total * p as usize / 100,
        }
    }
}

enum Amount {
    Count(u32),
    Percent(u32),
}

fn parse_amount(field: &str, raw: &serde_json::Value, least: u32) -> Result<Amount, Error> {
    let refuse = || {
        Error::invalid(format!(
            "{field} must be a whole number of at least {least} or a percentage such as \"25%\", not {raw}"
        ))
    };
    let count = |n: u64| {
        u32::try_from(n)
            .ok()
            .filter(|n| *n >= least)
            .map(Amount::Count)
    };
    match raw {
        serde_json::Value::Number(n) => n.as_u64().and_then(count).ok_or_else(refuse),
        serde_json::Value::String(s) => {
            let s = s.trim();
            match s.strip_suffix('%') {
                Some(p) => p
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|p| (least.max(1)..=100).contains(p) || (least == 0 && *p == 0))
                    .map(Amount::Percent)
                    .ok_or_else(refuse),
                None => s.parse::<u64>().ok().and_then(count).ok_or_else(refuse),
            }
        }
        _ => Err(refuse()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Auto,
    Manual,
}

impl Gate {
    pub fn parse(field: &str, raw: Option<&str>) -> Result<Self, Error> {
        match raw {
            None | Some("auto") => Ok(Gate::Auto),
            Some("manual") => Ok(Gate::Manual),
            Some(other) => Err(Error::invalid(format!(
                "{field} must be \"auto\" or \"manual\", not \"{other}\""
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Gate::Auto => "auto",
            Gate::Manual => "manual",
        }
    }
}

/// What a wave that spends its failure budget does to the rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    Pause,
    Rollback,
}

impl OnFailure {
    pub fn parse(raw: Option<&str>) -> Result<Self, Error> {
        match raw {
            None | Some("pause") => Ok(OnFailure::Pause),
            Some("rollback") => Ok(OnFailure::Rollback),
            Some(other) => Err(Error::invalid(format!(
                "onFailure must be \"pause\" or \"rollback\", not \"{other}\""
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OnFailure::Pause => "pause",
            OnFailure::Rollback => "rollback",
        }
    }
}

/// A folder a wave draws from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WaveFolder {
    pub key: String,
    #[serde(default)]
    pub include_subfolders: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WavePlan {
    pub name: String,
    /// Empty: everything selected and not in an earlier wave.
    pub folders: Vec<WaveFolder>,
    /// `None`: everything left it may take.
    pub size: Option<Size>,
    pub max_concurrency: usize,
    pub max_failures: Tolerance,
    pub bake_seconds: u64,
    pub gate: Gate,
}

/// The version an app's deployments are to reach under `target.versions`: a version
/// number, or a package version such as `"1.1.0"` (resolved at creation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppVersion {
    Number(i32),
    Package(String),
}

/// What a rollout upgrades to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutTarget {
    /// The operations' targets: the latest published version of each app, or one
    /// version number for every app.
    Same(Target),
    /// A version per app, by system name: every selected deployment's app must be
    /// named, and each named version must be published.
    PerApp(std::collections::BTreeMap<String, AppVersion>),
}

/// The most apps `target.versions` may name.
pub const MAX_TARGET_APPS: usize = 1000;

impl RolloutTarget {
    /// `{"versions": {...}}` of the wire form: `None` when `raw` is not that shape (the
    /// other forms are the operations' `target`).
    pub fn parse_per_app(raw: &serde_json::Value) -> Option<Result<Self, Error>> {
        let versions = raw.as_object()?.get("versions")?;
        Some(Self::per_app(versions))
    }

    fn per_app(versions: &serde_json::Value) -> Result<Self, Error> {
        let Some(fields) = versions.as_object().filter(|f| !f.is_empty()) else {
            return Err(Error::invalid(format!(
                "target.versions must be an object naming at least one app, such as {{\"Invoice_Portal\": 3}}, not {versions}"
            )));
        };
        if fields.len() > MAX_TARGET_APPS {
            return Err(Error::invalid(format!(
                "target.versions may name at most {MAX_TARGET_APPS} apps"
            )));
        }
        let mut problems = Vec::new();
        let mut out = std::collections::BTreeMap::new();
        for (app, raw) in fields {
            let version = match raw {
                serde_json::Value::Number(n) => n
                    .as_i64()
                    .filter(|v| *v >= 1)
                    .and_then(|v| i32::try_from(v).ok())
                    .map(AppVersion::Number),
                serde_json::Value::String(p) if !p.trim().is_empty() && p.len() <= 100 => {
                    Some(AppVersion::Package(p.trim().to_string()))
                }
                _ => None,
            };
            match version {
                Some(v) if !app.trim().is_empty() => {
                    out.insert(app.clone(), v);
                }
                _ => problems.push(format!(
                    "target.versions.{app}: must be a version number of at least 1 or a package version such as \"1.1.0\", not {raw}"
                )),
            }
        }
        if problems.is_empty() {
            Ok(RolloutTarget::PerApp(out))
        } else {
            Err(Error::invalid(problems.join("; ")))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub name: String,
    pub selector: Selector,
    pub target: RolloutTarget,
    pub waves: Vec<WavePlan>,
    pub window: Option<Window>,
    pub four_eyes: bool,
    pub on_failure: OnFailure,
}

/// The most waves one rollout may have.
pub const MAX_WAVES: usize = 50;
/// The longest bake (a week).
pub const MAX_BAKE_SECONDS: u64 = 7 * 24 * 3600;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_size_is_a_count_or_a_percentage_rounded_down_and_at_least_one() {
        assert_eq!(Size::parse("size", &json!(3)).unwrap(), Size::Count(3));
        assert_eq!(
            Size::parse("size", &json!("25%")).unwrap(),
            Size::Percent(25)
        );
        assert_eq!(Size::Percent(25).of(10), 2);
        assert_eq!(Size::Percent(25).of(3), 1);
        assert_eq!(Size::Percent(100).of(7), 7);
        for bad in [json!(0), json!("0%"), json!("101%"), json!(-2), json!(true)] {
            let err = Size::parse("waves[1].size", &bad).unwrap_err().to_string();
            assert!(err.contains("waves[1].size"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_tolerance_may_be_zero_and_a_percentage_of_the_wave_rounds_down() {
        assert_eq!(
            Tolerance::parse("m", &json!(0)).unwrap(),
            Tolerance::Count(0)
        );
        assert_eq!(
            Tolerance::parse("m", &json!("10%")).unwrap(),
            Tolerance::Percent(10)
        );
        assert_eq!(Tolerance::Percent(10).of(25), 2);
        assert_eq!(Tolerance::Percent(10).of(5), 0);
        assert!(Tolerance::parse("m", &json!("x")).is_err());
    }

    #[test]
    fn gates_and_failure_policies_name_what_was_wrong() {
        assert_eq!(Gate::parse("g", None).unwrap(), Gate::Auto);
        assert_eq!(Gate::parse("g", Some("manual")).unwrap(), Gate::Manual);
        assert!(
            Gate::parse("waves[0].gate", Some("later"))
                .unwrap_err()
                .to_string()
                .contains("waves[0].gate")
        );
        assert_eq!(OnFailure::parse(None).unwrap(), OnFailure::Pause);
        assert!(OnFailure::parse(Some("panic")).is_err());
    }

    #[test]
    fn a_version_per_app_is_a_number_or_a_package_version_and_each_bad_one_is_named() {
        assert!(RolloutTarget::parse_per_app(&json!("latest")).is_none());
        assert!(RolloutTarget::parse_per_app(&json!({"version": 2})).is_none());
        let parsed = RolloutTarget::parse_per_app(&json!({"versions": {"A": 2, "B": "1.1.0"}}))
            .unwrap()
            .unwrap();
        let RolloutTarget::PerApp(map) = parsed else {
            panic!("{parsed:?}")
        };
        assert_eq!(map["A"], AppVersion::Number(2));
        assert_eq!(map["B"], AppVersion::Package("1.1.0".into()));
        let err = RolloutTarget::parse_per_app(&json!({"versions": {"A": 0, "B": true, "C": 3}}))
            .unwrap()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("target.versions.A") && err.contains("target.versions.B"),
            "{err}"
        );
        assert!(!err.contains("target.versions.C"), "{err}");
        assert!(
            RolloutTarget::parse_per_app(&json!({"versions": {}}))
                .unwrap()
                .is_err()
        );
    }
}
