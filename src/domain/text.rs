//! Text a client chooses: deployment titles, routing names and tags.

use std::fmt;

use crate::error::Error;

pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_ROUTING_NAME_CHARS: usize = 63;
pub const MAX_TAG_CHARS: usize = 100;
pub const MAX_TAGS: usize = 50;

/// A deployment's title: 1 to 200 characters, not only spaces; kept trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Title(String);

impl Title {
    pub fn parse(raw: &str) -> Result<Self, Error> {
        let trimmed = raw.trim();
        if trimmed.is_empty() || raw.chars().count() > MAX_TITLE_CHARS {
            return Err(Error::invalid(format!(
                "title must be 1 to {MAX_TITLE_CHARS} characters"
            )));
        }
        Ok(Title(trimmed.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A routing name (it appears in URLs): 1 to 63 lowercase letters, digits and inner
/// hyphens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingName(String);

impl RoutingName {
    pub fn parse(raw: &str) -> Result<Self, Error> {
        let ok = !raw.is_empty()
            && raw.len() <= MAX_ROUTING_NAME_CHARS
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !raw.starts_with('-')
            && !raw.ends_with('-');
        if ok {
            Ok(RoutingName(raw.to_string()))
        } else {
            Err(Error::invalid(format!(
                "routingName {raw:?} must be 1 to {MAX_ROUTING_NAME_CHARS} lowercase letters, digits or inner hyphens"
            )))
        }
    }

    /// `{system name as letters, digits and hyphens}-{suffix}` for a deploy that chose
    /// no name; the suffix is lowercase hex.
    pub fn generated(system_name: &str, suffix: &str) -> Self {
        let mut base: String = system_name
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let room = MAX_ROUTING_NAME_CHARS.saturating_sub(suffix.len() + 1);
        base.truncate(room.min(48));
        let base = base.trim_matches('-');
        RoutingName(format!(
            "{}-{suffix}",
            if base.is_empty() { "app" } else { base }
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for RoutingName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A deployment's tags: each trimmed, 1 to 100 characters; duplicates dropped keeping
/// the first order; at most 50.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tags(Vec<String>);

impl Tags {
    pub fn parse(raw: &[String]) -> Result<Self, Error> {
        let mut out: Vec<String> = Vec::new();
        for tag in raw {
            let tag = tag.trim();
            if tag.is_empty() || tag.chars().count() > MAX_TAG_CHARS {
                return Err(Error::invalid(format!(
                    "tags must be 1 to {MAX_TAG_CHARS} characters each"
                )));
            }
            if tag.contains(',') {
                // `tags=a,b` filters on two tags: a tag holding a comma could be stored
                // but never found.
                return Err(Error::invalid(format!(
                    "tag {tag:?} contains a comma; tags may not contain commas"
                )));
            }
            if !out.iter().any(|t| t == tag) {
                out.push(tag.to_string());
            }
        }
        if out.len() > MAX_TAGS {
            return Err(Error::invalid(format!(
                "at most {MAX_TAGS} tags are allowed"
            )));
        }
        Ok(Tags(out))
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_routing_names_are_valid_routing_names() {
        let long_suffix = "0123456789abcdef0123456789abcdef";
        for name in ["Employee_Onboarding", "___", "X".repeat(100).as_str()] {
            for suffix in ["0a1b2c", long_suffix] {
                let routing = RoutingName::generated(name, suffix);
                RoutingName::parse(routing.as_str()).unwrap();
                assert!(routing.as_str().ends_with(suffix), "{routing}");
            }
        }
        assert_eq!(
            RoutingName::generated("Employee_Onboarding", "0a1b2c").as_str(),
            "employee-onboarding-0a1b2c"
        );
    }

    #[test]
    fn routing_names_with_uppercase_or_edge_hyphens_are_refused() {
        assert!(RoutingName::parse("Hr").is_err());
        assert!(RoutingName::parse("-hr").is_err());
        assert!(RoutingName::parse("hr-").is_err());
        assert!(RoutingName::parse(&"a".repeat(64)).is_err());
        assert!(RoutingName::parse("hr-portal").is_ok());
    }

    #[test]
    fn tags_are_trimmed_and_deduplicated() {
        let tags = Tags::parse(&[" a ".into(), "b".into(), "a".into()]).unwrap();
        assert_eq!(tags.as_slice(), ["a", "b"]);
        assert!(Tags::parse(&["".into()]).is_err());
        let many: Vec<String> = (0..51).map(|i| i.to_string()).collect();
        assert!(Tags::parse(&many).is_err());
    }

    #[test]
    fn titles_are_trimmed_and_blank_or_long_ones_refused() {
        assert_eq!(Title::parse("  Payroll ").unwrap().as_str(), "Payroll");
        assert!(Title::parse("   ").is_err());
        assert!(Title::parse(&"t".repeat(201)).is_err());
        assert!(Title::parse(&"t".repeat(200)).is_ok());
    }
}
