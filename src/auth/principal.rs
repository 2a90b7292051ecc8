//! The caller a verified token names. (The HTTP layer turns a request into one in
//! `http::auth`.)

use serde_json::Value;

use super::{
    keys::{CLIENT_ID_CLAIM, Claims},
    scopes::ScopeRule,
};
use crate::{domain::MAX_TENANT_CHARS, error::Error};

/// Who is calling, from a verified token.
#[derive(Debug, Clone)]
pub struct Principal {
    pub subject: String,
    pub tenant_id: String,
    pub scopes: Vec<String>,
}

impl Principal {
    pub fn from_claims(claims: &Claims, tenant_claim: &str) -> Result<Self, Error> {
        let subject = match claims.get("sub") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(Error::InvalidToken("token has no subject (sub)".into())),
        };
        let tenant_id = match claims.get(tenant_claim) {
            // Control characters are refused below, with the other identity claims.
            Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= MAX_TENANT_CHARS => {
                s.clone()
            }
            _ => {
                return Err(Error::InvalidToken(format!(
                    "token has no tenant claim ({tenant_claim})"
                )));
            }
        };
        // Identity claims end up in queries (PostgreSQL refuses U+0000 in text) and in
        // log lines: a control character in one is refused, however well signed.
        let named = [
            ("sub", Some(subject.as_str())),
            (tenant_claim, Some(tenant_id.as_str())),
            (
                CLIENT_ID_CLAIM,
                claims.get(CLIENT_ID_CLAIM).and_then(Value::as_str),
            ),
        ];
        for (claim, value) in named {
            if value.is_some_and(|v| v.chars().any(char::is_control)) {
                return Err(Error::InvalidToken(format!(
                    "the {claim} claim holds a control character"
                )));
            }
        }
        let scopes = match claims.get("scope") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| Error::InvalidToken("scope claim must hold only strings".into()))?,
            Some(_) => {
                return Err(Error::InvalidToken(
                    "scope claim must be a string or an array of strings".into(),
                ));
            }
        };
        Ok(Principal {
            subject,
            tenant_id,
            scopes,
        })
    }

    pub fn require(&self, rule: ScopeRule) -> Result<(), Error> {
        rule.check(&self.scopes)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn claims(v: Value) -> Claims {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn scopes_may_be_a_space_separated_string_or_an_array() {
        let p = Principal::from_claims(
            &claims(json!({"sub": "a", "tenant_id": "t", "scope": "Apps  OR.Folders.Read"})),
            "tenant_id",
        )
        .unwrap();
        assert_eq!(p.scopes, ["Apps", "OR.Folders.Read"]);
        let p = Principal::from_claims(
            &claims(json!({"sub": "a", "tenant_id": "t", "scope": ["Apps.Read"]})),
            "tenant_id",
        )
        .unwrap();
        assert_eq!(p.scopes, ["Apps.Read"]);
    }

    #[test]
    fn a_scope_of_another_type_is_an_invalid_token() {
        let err = Principal::from_claims(
            &claims(json!({"sub": "a", "tenant_id": "t", "scope": 7})),
            "tenant_id",
        )
        .unwrap_err();
        assert!(matches!(err, Error::InvalidToken(_)));
        let err = Principal::from_claims(
            &claims(json!({"sub": "a", "tenant_id": "t", "scope": [1]})),
            "tenant_id",
        )
        .unwrap_err();
        assert!(matches!(err, Error::InvalidToken(_)));
    }

    #[test]
    fn the_tenant_claim_name_is_configurable_and_required() {
        let c = claims(json!({"sub": "a", "tid": "t9"}));
        assert_eq!(Principal::from_claims(&c, "tid").unwrap().tenant_id, "t9");
        assert!(Principal::from_claims(&c, "tenant_id").is_err());
    }

    #[test]
    fn an_empty_or_non_string_subject_is_refused() {
        assert!(
            Principal::from_claims(&claims(json!({"sub": "", "tenant_id": "t"})), "tenant_id")
                .is_err()
        );
        assert!(
            Principal::from_claims(&claims(json!({"sub": 5, "tenant_id": "t"})), "tenant_id")
                .is_err()
        );
    }

    #[test]
    fn control_characters_in_identity_claims_are_an_invalid_token() {
        for c in [
            json!({"sub": "a\u{0}b", "tenant_id": "t"}),
            json!({"sub": "a", "tenant_id": "t\n"}),
            json!({"sub": "a", "tenant_id": "t", "client_id": "c\u{1b}[2K"}),
        ] {
            let err = Principal::from_claims(&claims(c.clone()), "tenant_id").unwrap_err();
            assert!(matches!(err, Error::InvalidToken(_)), "{c}");
        }
        let c = claims(json!({"sub": "Zoë", "tenant_id": "t", "client_id": "c"}));
        assert!(Principal::from_claims(&c, "tenant_id").is_ok());
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[a-zA-Z. ]{0,20}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::hash_map("[a-z_]{1,8}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn any_claims_yield_a_principal_exactly_when_subject_tenant_and_scope_are_usable(sub in json_value(), tenant in json_value(), scope in json_value()) {
            let c = claims(json!({"sub": sub, "tenant_id": tenant, "scope": scope}));
            // The rule, stated apart from the code: subject and tenant are non-empty
            // strings without control characters; scope is absent, null, a string, or
            // an array of strings.
            let identity = |v: &Value| v.as_str().is_some_and(|s| !s.is_empty() && !s.chars().any(char::is_control));
            let scopes: Option<Vec<String>> = match &scope {
                Value::Null => Some(Vec::new()),
                Value::String(s) => Some(s.split_whitespace().map(str::to_string).collect()),
                Value::Array(items) => items.iter().map(|v| v.as_str().map(str::to_string)).collect(),
                _ => None,
            };
            match Principal::from_claims(&c, "tenant_id") {
                Ok(p) => {
                    proptest::prop_assert!(identity(&sub) && identity(&tenant));
                    proptest::prop_assert_eq!(Some(p.scopes), scopes);
                    proptest::prop_assert_eq!(Some(p.subject.as_str()), sub.as_str());
                    proptest::prop_assert_eq!(Some(p.tenant_id.as_str()), tenant.as_str());
                }
                Err(e) => {
                    proptest::prop_assert!(!(identity(&sub) && identity(&tenant) && scopes.is_some()), "refused usable claims: {e}");
                    proptest::prop_assert!(matches!(e, Error::InvalidToken(_)));
                }
            }
        }
    }
}
