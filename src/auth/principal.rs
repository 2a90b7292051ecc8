//! The authenticated caller, as extractors: a handler that takes a `Principal` (or a
//! `UiPathCaller`) cannot run for an anonymous request.

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web};
use futures_util::future::LocalBoxFuture;
use serde_json::Value;

use super::{
    keys::{CLIENT_ID_CLAIM, Claims},
    scopes::ScopeRule,
};
use crate::{error::ApiError, service::clients, startup::AppState, telemetry};

pub const TENANT_HEADER: &str = "X-UiPath-Internal-TenantId";

/// Who is calling, from a verified token.
#[derive(Debug, Clone)]
pub struct Principal {
    pub subject: String,
    pub tenant_id: String,
    pub scopes: Vec<String>,
}

impl Principal {
    pub fn from_claims(claims: &Claims, tenant_claim: &str) -> Result<Self, ApiError> {
        let subject = match claims.get("sub") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(ApiError::InvalidToken("token has no subject (sub)".into())),
        };
        let tenant_id = match claims.get(tenant_claim) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => {
                return Err(ApiError::InvalidToken(format!(
                    "token has no tenant claim ({tenant_claim})"
                )));
            }
        };
        let scopes = match claims.get("scope") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    ApiError::InvalidToken("scope claim must hold only strings".into())
                })?,
            Some(_) => {
                return Err(ApiError::InvalidToken(
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

    pub fn require(&self, rule: ScopeRule) -> Result<(), ApiError> {
        rule.check(&self.scopes)
    }

    /// Authenticates a request from its `Authorization` header. `allow_bare` also accepts
    /// a token with no scheme (`Authorization: <token>`), as Rainbond clients send it.
    pub async fn authenticate(
        req: &HttpRequest,
        state: &AppState,
        allow_bare: bool,
    ) -> Result<Self, ApiError> {
        let value = req
            .headers()
            .get(header::AUTHORIZATION)
            .ok_or_else(|| ApiError::InvalidToken("missing bearer token".into()))?
            .to_str()
            .map_err(|_| ApiError::InvalidToken("malformed Authorization header".into()))?
            .trim();
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            None if allow_bare && !value.is_empty() => value,
            _ => {
                return Err(ApiError::InvalidToken(
                    "Authorization must be 'Bearer <token>'".into(),
                ));
            }
        };
        let claims = state
            .keys
            .verify(token)
            .await
            .map_err(|e| ApiError::InvalidToken(e.0))?;
        let principal = Principal::from_claims(&claims, state.keys.tenant_claim())?;
        // A token from our token endpoint names its client: refuse it once the client is
        // deleted, even before it expires. Only when we hold a signing key (we may have
        // minted it): in verify-only setups `client_id` is another issuer's claim about
        // clients we know nothing of. Other tokens cost no query.
        if state.keys.can_mint()
            && let Some(client_id) = claims.get(CLIENT_ID_CLAIM)
        {
            let client_id = client_id
                .as_str()
                .ok_or_else(|| ApiError::InvalidToken("client_id claim must be a string".into()))?;
            clients::ensure_active(
                &state.db,
                client_id,
                &principal.subject,
                &principal.tenant_id,
            )
            .await?;
        }
        telemetry::record_caller(&principal.tenant_id, &principal.subject);
        Ok(principal)
    }
}

fn app_state(req: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("application state is not registered")))
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = app_state(&req)?;
            Principal::authenticate(&req, &state, false).await
        })
    }
}

/// A caller of the Rainbond API: a verified token sent as `Bearer <token>` or, as
/// Rainbond clients do, bare (`Authorization: <token>`).
#[derive(Debug, Clone)]
pub struct RainbondCaller(pub Principal);

impl FromRequest for RainbondCaller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = app_state(&req)?;
            Principal::authenticate(&req, &state, true)
                .await
                .map(RainbondCaller)
        })
    }
}

/// A caller of the UiPath API: a verified token whose tenant equals the
/// `X-UiPath-Internal-TenantId` header.
#[derive(Debug, Clone)]
pub struct UiPathCaller(pub Principal);

impl std::ops::Deref for UiPathCaller {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.0
    }
}

impl FromRequest for UiPathCaller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = app_state(&req)?;
            let principal = Principal::authenticate(&req, &state, false).await?;
            let tenant = req
                .headers()
                .get(TENANT_HEADER)
                .ok_or_else(|| ApiError::bad_request(format!("missing header {TENANT_HEADER}")))?
                .to_str()
                .map_err(|_| {
                    ApiError::bad_request(format!("header {TENANT_HEADER} is not valid text"))
                })?
                .trim();
            if tenant.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "header {TENANT_HEADER} is empty"
                )));
            }
            if tenant != principal.tenant_id {
                return Err(ApiError::Forbidden(format!(
                    "the token was issued for another tenant than {TENANT_HEADER} names"
                )));
            }
            Ok(UiPathCaller(principal))
        })
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
        assert!(matches!(err, ApiError::InvalidToken(_)));
        let err = Principal::from_claims(
            &claims(json!({"sub": "a", "tenant_id": "t", "scope": [1]})),
            "tenant_id",
        )
        .unwrap_err();
        assert!(matches!(err, ApiError::InvalidToken(_)));
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
        fn any_claims_yield_a_principal_or_an_invalid_token(sub in json_value(), tenant in json_value(), scope in json_value()) {
            let c = claims(json!({"sub": sub, "tenant_id": tenant, "scope": scope}));
            if let Err(e) = Principal::from_claims(&c, "tenant_id") {
                proptest::prop_assert!(matches!(e, ApiError::InvalidToken(_)));
            }
        }
    }
}
