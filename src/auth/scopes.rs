//! The OAuth scopes UiPath's Apps API asks for. Scopes are checked before folder
//! permissions, so a token that could never make a call is turned away first.

use crate::error::Error;

pub const APPS: &str = "Apps";
pub const APPS_READ: &str = "Apps.Read";
pub const APPS_WRITE: &str = "Apps.Write";
pub const FOLDERS_READ: &str = "OR.Folders.Read";

/// Orchestrator resources whose `OR.<Resource>`, `OR.<Resource>.Read` and
/// `OR.<Resource>.Write` scopes UiPath's external applications are registered with.
/// A client here may hold and ask for them, so pipelines copied from UiPath's guides
/// (`Apps OR.Folders.Read OR.Execution`) work unchanged; they grant nothing in uplift
/// beyond what its own four scopes grant.
pub const ORCHESTRATOR_RESOURCES: [&str; 23] = [
    "Administration",
    "Analytics",
    "Assets",
    "Audit",
    "BackgroundTasks",
    "Execution",
    "Folders",
    "Hypervisor",
    "Jobs",
    "License",
    "Machines",
    "ML",
    "Monitoring",
    "Queues",
    "Robots",
    "Settings",
    "Tasks",
    "TestDataQueues",
    "TestSetExecutions",
    "TestSetSchedules",
    "TestSets",
    "Users",
    "Webhooks",
];

/// Whether `scope` is one of UiPath's Orchestrator scopes (case as UiPath writes them).
pub fn is_orchestrator_scope(scope: &str) -> bool {
    let Some(rest) = scope.strip_prefix("OR.") else {
        return false;
    };
    let resource = rest
        .strip_suffix(".Read")
        .or_else(|| rest.strip_suffix(".Write"))
        .unwrap_or(rest);
    ORCHESTRATOR_RESOURCES.contains(&resource)
}

/// What a call needs from the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeRule {
    /// `Apps` or `Apps.Read`.
    Read,
    /// `Apps` or `Apps.Write` (tenant-level calls such as publish).
    Write,
    /// `Apps` or `Apps.Write`, plus `OR.Folders.Read` (folder-level writes).
    WriteInFolder,
    /// `Read` or `WriteInFolder`: watching an operation, which a token allowed to
    /// start one must be able to do (a CI job polls with the token it upgraded with).
    ReadOrWriteInFolder,
}

impl ScopeRule {
    pub fn check(self, scopes: &[String]) -> Result<(), Error> {
        let has = |s: &str| scopes.iter().any(|granted| granted == s);
        let (ok, required) = match self {
            ScopeRule::Read => (has(APPS) || has(APPS_READ), "Apps or Apps.Read"),
            ScopeRule::Write => (has(APPS) || has(APPS_WRITE), "Apps or Apps.Write"),
            ScopeRule::WriteInFolder => (
                (has(APPS) || has(APPS_WRITE)) && has(FOLDERS_READ),
                "Apps or Apps.Write, and OR.Folders.Read",
            ),
            ScopeRule::ReadOrWriteInFolder => (
                has(APPS) || has(APPS_READ) || (has(APPS_WRITE) && has(FOLDERS_READ)),
                "Apps, Apps.Read, or Apps.Write with OR.Folders.Read",
            ),
        };
        if ok {
            Ok(())
        } else {
            Err(Error::InsufficientScope(required.into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn folder_writes_need_both_an_apps_write_scope_and_folders_read() {
        assert!(
            ScopeRule::WriteInFolder
                .check(&scopes(&["Apps.Write", "OR.Folders.Read"]))
                .is_ok()
        );
        assert!(
            ScopeRule::WriteInFolder
                .check(&scopes(&["Apps", "OR.Folders.Read"]))
                .is_ok()
        );
        assert!(
            ScopeRule::WriteInFolder
                .check(&scopes(&["Apps.Write"]))
                .is_err()
        );
        assert!(
            ScopeRule::WriteInFolder
                .check(&scopes(&["Apps.Read", "OR.Folders.Read"]))
                .is_err()
        );
    }

    #[test]
    fn reads_accept_apps_or_apps_read_only() {
        assert!(ScopeRule::Read.check(&scopes(&["Apps"])).is_ok());
        assert!(ScopeRule::Read.check(&scopes(&["Apps.Read"])).is_ok());
        assert!(
            ScopeRule::Read
                .check(&scopes(&["OR.Folders.Read"]))
                .is_err()
        );
        assert!(ScopeRule::Read.check(&[]).is_err());
    }

    #[test]
    fn orchestrator_scopes_are_recognised_in_their_three_forms_only() {
        for scope in [
            "OR.Execution",
            "OR.Jobs.Read",
            "OR.Robots.Write",
            "OR.Folders",
        ] {
            assert!(is_orchestrator_scope(scope), "{scope}");
        }
        for scope in [
            "OR.Nonsense",
            "OR.Jobs.Delete",
            "or.jobs",
            "Apps.Admin",
            "OR.",
        ] {
            assert!(!is_orchestrator_scope(scope), "{scope}");
        }
    }

    #[test]
    fn scope_names_are_case_sensitive() {
        assert!(ScopeRule::Read.check(&scopes(&["apps"])).is_err());
    }
}
