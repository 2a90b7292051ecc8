//! The authenticated caller as extractors, and the one authorization step every route
//! takes: name the `Permission` the call needs, and the scope it needs follows from it
//! (`Permission::scope`), checked before the folder or tenant permission.
//!
//! A handler that takes a `UiPathCaller` or `RainbondCaller` cannot run for an
//! anonymous request. The token is verified once per request: the idempotency
//! middleware and the handler share the `Principal` through the request extensions.

use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, http::header};
use entity::folder;
use futures_util::future::LocalBoxFuture;
use sea_orm::{ConnectionTrait, DatabaseConnection};

use super::{ApiError, extract::FolderKeyHeader, registered};
use crate::{
    access::{self, Permission},
    auth::{Keys, Principal, keys::CLIENT_ID_CLAIM},
    service::{Actor, clients, folders},
    telemetry::{self, RequestId},
};

pub use crate::api_paths::{TENANT_HEADER, TENANT_HEADER_ALIAS};

/// How an API area accepts its token in `Authorization`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenScheme {
    /// `Bearer <token>` only (UiPath).
    Bearer,
    /// `Bearer <token>` or the bare token, as Rainbond clients send it.
    BearerOrBare,
}

/// The request's caller from its verified token; verified on the first call in a
/// request and reused after.
pub async fn authenticate(req: &HttpRequest, scheme: TokenScheme) -> Result<Principal, ApiError> {
    if let Some(principal) = req.extensions().get::<Principal>().cloned() {
        return Ok(principal);
    }
    let keys = registered::<Keys>(req)?;
    let db = registered::<DatabaseConnection>(req)?;
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::InvalidToken("missing bearer token".into()))?
        .to_str()
        .map_err(|_| ApiError::InvalidToken("malformed Authorization header".into()))?
        .trim();
    let token = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        None if scheme == TokenScheme::BearerOrBare && !value.is_empty() => value,
        _ => {
            return Err(ApiError::InvalidToken(
                match scheme {
                    TokenScheme::Bearer => "Authorization must be 'Bearer <token>'",
                    TokenScheme::BearerOrBare => {
                        "Authorization must be '<token>' or 'Bearer <token>'"
                    }
                }
                .into(),
            ));
        }
    };
    let claims = keys
        .verify(token)
        .await
        .map_err(|e| ApiError::InvalidToken(e.0))?;
    let principal = Principal::from_claims(&claims, keys.tenant_claim())?;
    // A token from our token endpoint names its client: refuse it once the client is
    // deleted, even before it expires. Only when we hold a signing key (we may have
    // minted it): in verify-only setups `client_id` is another issuer's claim about
    // clients we know nothing of. Other tokens cost no query.
    if keys.can_mint()
        && let Some(client_id) = claims.get(CLIENT_ID_CLAIM)
    {
        let client_id = client_id
            .as_str()
            .ok_or_else(|| ApiError::InvalidToken("client_id claim must be a string".into()))?;
        clients::ensure_active(
            db.get_ref(),
            client_id,
            &principal.subject,
            &principal.tenant_id,
        )
        .await?;
    }
    telemetry::record_caller(&principal.tenant_id, &principal.subject);
    req.extensions_mut().insert(principal.clone());
    Ok(principal)
}

/// A verified caller and the request it made, as the history records it.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    request_id: Option<String>,
}

impl Caller {
    async fn from_request(req: &HttpRequest, scheme: TokenScheme) -> Result<Self, ApiError> {
        let principal = authenticate(req, scheme).await?;
        let request_id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
        Ok(Caller {
            principal,
            request_id,
        })
    }

    pub fn tenant_id(&self) -> &str {
        &self.principal.tenant_id
    }

    /// Who causes a change, as recorded in the deployment history.
    pub fn actor(&self) -> Actor {
        Actor::new(self.principal.subject.clone(), self.request_id.clone())
    }

    /// Checks the token scope `permission` needs; the permission itself is checked
    /// where the call acts (`in_folder`, `in_tenant`, `in_rainbond_app`).
    pub fn needs(&self, permission: Permission) -> Result<Needs<'_>, ApiError> {
        self.principal.require(permission.scope())?;
        Ok(Needs {
            caller: self,
            permission,
        })
    }
}

/// A caller whose token has the scope for `permission`.
pub struct Needs<'a> {
    caller: &'a Caller,
    permission: Permission,
}

/// Where an authorized call acts, and who acts.
pub struct InFolder {
    pub folder: folder::Model,
    pub actor: Actor,
}

impl Needs<'_> {
    /// The folder named by `X-UiPath-FolderKey`, if the caller holds the permission
    /// there (directly, on an ancestor, or tenant-wide).
    pub async fn in_folder<C: ConnectionTrait>(
        self,
        db: &C,
        key: &FolderKeyHeader,
    ) -> Result<InFolder, ApiError> {
        let folder =
            access::authorize_folder(db, &self.caller.principal, &key.0, self.permission).await?;
        Ok(self.acting_in(folder))
    }

    /// The folders of the caller's tenant where the caller holds the permission.
    pub async fn folders<C: ConnectionTrait>(self, db: &C) -> Result<Vec<folder::Model>, ApiError> {
        Ok(access::folders_with(db, &self.caller.principal, self.permission).await?)
    }

    /// The caller's tenant, if the caller holds the (tenant-level) permission.
    pub async fn in_tenant<C: ConnectionTrait>(self, db: &C) -> Result<(), ApiError> {
        Ok(access::authorize_tenant(db, &self.caller.principal, self.permission).await?)
    }

    /// The folder behind a Rainbond app path. Another team's, region's or an unknown
    /// app all answer 404 alike.
    pub async fn in_rainbond_app<C: ConnectionTrait>(
        self,
        db: &C,
        team_id: &str,
        region_name: &str,
        app_id: i32,
    ) -> Result<InFolder, ApiError> {
        if team_id != self.caller.tenant_id() {
            return Err(ApiError::Forbidden(
                "the token was issued for another team than the path names".into(),
            ));
        }
        let folder = folders::find_in_region(db, self.caller.tenant_id(), app_id, region_name)
            .await?
            .ok_or_else(|| {
                ApiError::NotFound(format!("no app {app_id} in region {region_name}"))
            })?;
        let folder =
            access::authorize_in_folder(db, &self.caller.principal, folder, self.permission)
                .await?;
        Ok(self.acting_in(folder))
    }

    fn acting_in(self, folder: folder::Model) -> InFolder {
        InFolder {
            folder,
            actor: self.caller.actor(),
        }
    }
}

/// A caller of the Rainbond API: a verified token sent as `Bearer <token>` or, as
/// Rainbond clients do, bare (`Authorization: <token>`).
pub struct RainbondCaller(pub Caller);

impl std::ops::Deref for RainbondCaller {
    type Target = Caller;
    fn deref(&self) -> &Caller {
        &self.0
    }
}

impl FromRequest for RainbondCaller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            Caller::from_request(&req, TokenScheme::BearerOrBare)
                .await
                .map(RainbondCaller)
        })
    }
}

/// A caller of the UiPath API: a verified token whose tenant equals the
/// `X-UiPath-Internal-TenantId` header (or its alias `X-UiPath-TenantId`).
pub struct UiPathCaller(pub Caller);

impl std::ops::Deref for UiPathCaller {
    type Target = Caller;
    fn deref(&self) -> &Caller {
        &self.0
    }
}

impl FromRequest for UiPathCaller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let caller = Caller::from_request(&req, TokenScheme::Bearer).await?;
            let tenant = tenant_header(&req)?;
            if tenant != caller.tenant_id() {
                return Err(ApiError::Forbidden(format!(
                    "the token was issued for another tenant than {TENANT_HEADER} (or {TENANT_HEADER_ALIAS}) names"
                )));
            }
            Ok(UiPathCaller(caller))
        })
    }
}

/// The tenant a UiPath call names: `X-UiPath-Internal-TenantId` or, as UiPath's Python
/// SDK sends it, `X-UiPath-TenantId`. Both sent must agree.
fn tenant_header(req: &HttpRequest) -> Result<String, ApiError> {
    let read = |name: &str| -> Result<Option<String>, ApiError> {
        let Some(value) = req.headers().get(name) else {
            return Ok(None);
        };
        let value = value
            .to_str()
            .map_err(|_| ApiError::bad_request(format!("header {name} is not valid text")))?
            .trim();
        if value.is_empty() {
            return Err(ApiError::bad_request(format!("header {name} is empty")));
        }
        Ok(Some(value.to_string()))
    };
    match (read(TENANT_HEADER)?, read(TENANT_HEADER_ALIAS)?) {
        (Some(internal), Some(alias)) if internal != alias => Err(ApiError::bad_request(format!(
            "headers {TENANT_HEADER} and {TENANT_HEADER_ALIAS} name different tenants; send one, or the same tenant in both"
        ))),
        (Some(tenant), _) | (None, Some(tenant)) => Ok(tenant),
        (None, None) => Err(ApiError::bad_request(format!(
            "missing header {TENANT_HEADER} (or {TENANT_HEADER_ALIAS})"
        ))),
    }
}
