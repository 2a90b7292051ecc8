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
