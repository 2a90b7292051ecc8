//! Identifiers that are UUIDs on the wire, stored in one spelling (lowercase,
//! hyphenated) whatever case or form the client sent.

use std::fmt;

use uuid::Uuid;

use crate::{api_paths::FOLDER_KEY_HEADER, error::Error};

/// The one canonical spelling of a UUID given in any of `uuid`'s accepted forms.
fn canonical_uuid(raw: &str) -> Option<String> {
    Uuid::parse_str(raw.trim())
        .ok()
        .map(|u| u.hyphenated().to_string())
}

/// A deployment's id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeploymentId(String);

impl DeploymentId {
    /// `None` when `raw` is not a UUID at all. Callers answer that exactly like an id
    /// that exists elsewhere (`not_found`), so there is no error to tell apart.
    pub fn parse(raw: &str) -> Option<Self> {
        canonical_uuid(raw).map(DeploymentId)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeploymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tenant's id, as tokens, headers and the command line give it: not empty or only
/// spaces, no control characters (they end up in queries and log lines), at most 128
/// characters. Kept as given.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TenantId(String);

pub const MAX_TENANT_CHARS: usize = 128;

impl TenantId {
    pub fn parse(raw: &str) -> Result<Self, Error> {
        if raw.trim().is_empty() {
            return Err(Error::invalid("tenant must not be empty"));
        }
        if raw.chars().any(char::is_control) {
            return Err(Error::invalid("tenant must not hold control characters"));
        }
        if raw.chars().count() > MAX_TENANT_CHARS {
            return Err(Error::invalid(format!(
                "tenant must be at most {MAX_TENANT_CHARS} characters"
            )));
        }
        Ok(TenantId(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A folder's key (`X-UiPath-FolderKey`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FolderKey(String);

impl FolderKey {
    /// A malformed key is the client's mistake.
    pub fn parse(raw: &str) -> Result<Self, Error> {
        canonical_uuid(raw)
            .map(FolderKey)
            .ok_or_else(|| Error::invalid(format!("header {FOLDER_KEY_HEADER} is not a UUID")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FolderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_keys_are_normalised_to_lowercase_uuids() {
        let key = FolderKey::parse(" 6F9619FF-8B86-D011-B42D-00C04FC964FF ").unwrap();
        assert_eq!(key.as_str(), "6f9619ff-8b86-d011-b42d-00c04fc964ff");
        let err = FolderKey::parse("not-a-key").unwrap_err().to_string();
        assert!(err.contains("X-UiPath-FolderKey"), "{err}");
    }

    #[test]
    fn tenants_are_kept_as_given_but_blank_control_or_overlong_ones_refused() {
        assert_eq!(TenantId::parse("acme").unwrap().as_str(), "acme");
        assert_eq!(TenantId::parse("Acme Corp").unwrap().as_str(), "Acme Corp");
        for bad in ["", "   ", "a\u{0}b", "a\nb", &"t".repeat(129)] {
            assert!(TenantId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn deployment_ids_in_any_uuid_form_are_one_id_and_anything_else_none() {
        let a = DeploymentId::parse("6F9619FF8B86D011B42D00C04FC964FF").unwrap();
        let b = DeploymentId::parse("{6f9619ff-8b86-d011-b42d-00c04fc964ff}").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.as_str(), "6f9619ff-8b86-d011-b42d-00c04fc964ff");
        assert!(DeploymentId::parse("junk").is_none());
        assert!(DeploymentId::parse("").is_none());
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_a_canonical_id_or_none(raw in ".{0,40}") {
            if let Some(id) = DeploymentId::parse(&raw) {
                proptest::prop_assert_eq!(DeploymentId::parse(id.as_str()), Some(id.clone()));
                proptest::prop_assert_eq!(id.as_str().len(), 36);
            }
        }
    }
}
