//! The identity routes: `POST /identity_/connect/token` (OAuth 2.0 client credentials,
//! as UiPath's external applications use it) and `GET /.well-known/jwks.json`.
//!
//! The token endpoint answers errors in OAuth's shape (RFC 6749 §5.2,
//! `{"error", "error_description"}`), not problem+json: OAuth client libraries read
//! `error`.

use std::{fmt, time::Duration};

use actix_web::{
    HttpRequest, HttpResponse, ResponseError,
    http::{
        StatusCode,
        header::{self, HeaderValue},
    },
    web,
};
use base64::Engine;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::json;

use super::{ApiError, problem::retry_after_value, registered};
use crate::{
    app::{AppState, Limits},
    service::clients,
};

pub use crate::api_paths::TOKEN_PATH;

/// Largest token request read. A real one is a few hundred bytes.
const MAX_TOKEN_REQUEST_BYTES: usize = 16 * 1024;

super::api_area! {
    /// The identity routes: tokens for registered clients and the signing key.
    IdentityApi components(TokenRequest, TokenResponse, OAuthErrorBody) {
        token,
        jwks,
    }
}

super::api_area! {
    /// The token endpoint again under the configured organization,
    /// `/{organization}/identity_/connect/token`, where UiPath's clients that build
    /// every URL on `https://cloud.uipath.com/{organization}` ask for tokens. Its paths
    /// are relative to `/{organization}`.
    OrganizationIdentityApi {
        organization_token,
    }
}

/// The form fields of a token request (`application/x-www-form-urlencoded`); the client
/// may instead authenticate with HTTP Basic (RFC 6749 §2.3.1).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct TokenRequest {
    /// `client_credentials`.
    grant_type: String,
    client_id: Option<String>,
    client_secret: Option<String>,
    /// Space-separated; a subset of the client's scopes (default: all of them).
    scope: Option<String>,
}

/// An RFC 6749 §5.2 error body.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct OAuthErrorBody {
    /// `invalid_request`, `invalid_client`, `invalid_scope`, `unsupported_grant_type`,
    /// `server_error` or `temporarily_unavailable`.
    error: String,
    error_description: String,
}

/// The answer of a successful token request (RFC 6749 §5.1).
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    scope: String,
}

/// The token endpoint's answers, for both of its paths.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum TokenAnswers {
    /// A bearer token
    #[response(status = 200)]
    Token(TokenResponse),
    /// invalid_request, invalid_scope or unsupported_grant_type
    #[response(status = 400)]
    BadRequest(OAuthErrorBody),
    /// invalid_client (unknown, deleted or wrong secret)
    #[response(status = 401)]
    InvalidClient(OAuthErrorBody),
    /// temporarily_unavailable: this client id or address used its budget, or too many token requests wait; Retry-After says when to retry
    #[response(status = 429)]
    SlowDown(OAuthErrorBody),
    /// server_error
    #[response(status = 500)]
    ServerError(OAuthErrorBody),
    /// temporarily_unavailable
    #[response(status = 503)]
    Unavailable(OAuthErrorBody),
}

/// Get an access token (client credentials)
///
/// For registered client applications, as UiPath's external applications use.
#[utoipa::path(
    post,
    path = "/identity_/connect/token",
    tag = "Identity",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses(TokenAnswers),
)]
async fn token(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, OAuthError> {
    let budget = &state.token_endpoint;
    // The peer's address: behind a proxy, the proxy's (see docs/operations.md).
    if let Some(address) = req.peer_addr() {
        budget
            .per_address
            .check(&address.ip().to_string())
            .map_err(OAuthError::slow_down)?;
    }
    check_content_type(&req)?;
    let limits = registered::<Limits>(&req).map_err(OAuthError::server)?;
    let body = read_body(payload, limits.body_timeout).await?;
    let form = TokenForm::parse(&body)?;
    match form.get("grant_type") {
        None => return Err(OAuthError::invalid_request("grant_type is missing")),
        Some("client_credentials") => {}
        Some(other) => {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                format!("grant_type {other:?} is not supported; use client_credentials"),
            ));
        }
    }
    let credentials = client_credentials(&req, &form)?;
    if !state.keys.can_mint() {
        // Verify-only setups (a JWKS URL, or a public key without its private key)
        // cannot sign: say so before spending a hash verification on the client.
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "this service issues no tokens: it only verifies tokens of another issuer".into(),
        ));
    }
    // Before the secret check, whether or not the id exists: unknown, wrong and deleted
    // clients still cost and answer the same.
    budget
        .per_client
        .check(&credentials.id)
        .map_err(OAuthError::slow_down)?;
    let client = clients::authenticate(
        &state.db,
        &budget.verifier,
        &credentials.id,
        &credentials.secret,
    )
    .await
    .map_err(|e| match e {
        crate::error::Error::Busy { retry_after, .. } => OAuthError::slow_down(retry_after),
        other => OAuthError::server(other),
    })?
    .ok_or_else(OAuthError::invalid_client)?;
    let scopes = grant_scopes(form.get("scope"), &clients::scopes_of(&client))?;
    let ttl = state.settings.token_ttl_seconds;
    let access_token = state
        .keys
        .issue_for_client(
            &client.tenant_id,
            &client.client_id,
            &scopes,
            Duration::from_secs(ttl),
        )
        .map_err(|e| OAuthError::server(ApiError::Internal(e)))?;
    tracing::info!(client_id = %client.client_id, tenant = %client.tenant_id, scope = %scopes, "issued a client token");
    Ok(no_store(HttpResponse::Ok()).json(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: ttl,
        scope: scopes,
    }))
}

/// Get an access token under the organization
///
/// The same as `POST /identity_/connect/token`, at the path UiPath's clients derive from
/// the organization URL (only the configured organization's).
#[utoipa::path(
    post,
    path = "/identity_/connect/token",
    tag = "Identity",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses(TokenAnswers),
)]
async fn organization_token(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, OAuthError> {
    token(req, state, payload).await
}

/// The signing public key
///
/// Our signing public key as a JWK set, so other services (or replicas configured with
/// `UPLIFT_JWKS_URL`) verify the tokens we mint. 404 unless we sign with an RSA/EC key
/// pair: an HS256 secret is never published.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "Identity",
    responses(
        (status = 200, description = "The public signing key as a JWK set", body = Object),
        (status = 404, description = "This service signs with a shared secret or does not sign", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    ),
)]
async fn jwks(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let set = state.keys.published_jwks().ok_or_else(|| {
        ApiError::NotFound(
            "this service publishes no keys: it signs with a shared secret, or does not sign"
                .into(),
        )
    })?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(set))
}

/// RFC 6749 §5.1: token answers (and, for good measure, their errors) are not cached.
fn no_store(mut builder: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    builder
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"));
    builder
}

/// RFC 6749 §4.4.2 requires a form body. JSON is the usual mistake, so it gets its own
/// explanation.
fn check_content_type(req: &HttpRequest) -> Result<(), OAuthError> {
    let mime = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase());
    match mime.as_deref() {
        Some("application/x-www-form-urlencoded") => Ok(()),
        Some(m) if m == "application/json" || m.ends_with("+json") => {
            Err(OAuthError::invalid_request(
                "the token request must be sent as application/x-www-form-urlencoded \
                 (grant_type=client_credentials&client_id=…&client_secret=…&scope=…), not as JSON",
            ))
        }
        _ => Err(OAuthError::invalid_request(
            "the token request must be sent as application/x-www-form-urlencoded",
        )),
    }
}

/// Reads the form within its own size limit and the server's body timeout, which
/// every other body read has too: this is the one unauthenticated POST, so a client
/// trickling a byte a second must not hold a connection open indefinitely.
async fn read_body(payload: web::Payload, timeout: Duration) -> Result<Vec<u8>, OAuthError> {
    tokio::time::timeout(timeout, read_all(payload))
        .await
        .unwrap_or_else(|_| {
            Err(OAuthError::new(
                StatusCode::REQUEST_TIMEOUT,
                "invalid_request",
                format!(
                    "the request body did not arrive within {} seconds",
                    timeout.as_secs()
                ),
            ))
        })
}

async fn read_all(mut payload: web::Payload) -> Result<Vec<u8>, OAuthError> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            OAuthError::invalid_request(format!("could not read the request body: {e}"))
        })?;
        if body.len() + chunk.len() > MAX_TOKEN_REQUEST_BYTES {
            return Err(OAuthError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                format!("the token request is larger than {MAX_TOKEN_REQUEST_BYTES} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The form's parameters. RFC 6749 §3.1: a parameter sent without a value counts as
/// omitted, and none may appear twice.
#[derive(Debug)]
struct TokenForm(Vec<(String, String)>);

impl TokenForm {
    fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        let mut params: Vec<(String, String)> = Vec::new();
        for (name, value) in form_urlencoded::parse(body) {
            if params.iter().any(|(n, _)| *n == name) {
                return Err(OAuthError::invalid_request(format!(
                    "parameter {name} is repeated; send each parameter once"
                )));
            }
            params.push((name.into_owned(), value.into_owned()));
        }
        Ok(TokenForm(params))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Credentials {
    id: String,
    secret: String,
}

/// The client's id and secret, from HTTP Basic (RFC 6749 §2.3.1: each part
/// form-urlencoded, then base64) or from the form. Only one method per request; a form
/// `client_id` equal to the Basic one is tolerated, as many clients send it anyway.
fn client_credentials(req: &HttpRequest, form: &TokenForm) -> Result<Credentials, OAuthError> {
    let basic = basic_credentials(req.headers().get(header::AUTHORIZATION))?;
    match basic {
        Some((id, secret)) => {
            if form.get("client_secret").is_some() {
                return Err(OAuthError::invalid_request(
                    "send the client secret either with HTTP Basic or as client_secret, not both",
                ));
            }
            if form.get("client_id").is_some_and(|form_id| form_id != id) {
                return Err(OAuthError::invalid_request(
                    "client_id differs from the HTTP Basic user name",
                ));
            }
            Ok(Credentials { id, secret })
        }
        None => match (form.get("client_id"), form.get("client_secret")) {
            (Some(id), Some(secret)) => Ok(Credentials {
                id: id.to_string(),
                secret: secret.to_string(),
            }),
            (Some(_), None) => Err(OAuthError::invalid_request("client_secret is missing")),
            (None, _) => Err(OAuthError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "no client authentication: send client_id and client_secret, as form fields or with HTTP Basic".into(),
            )
            .with_basic_challenge()),
        },
    }
}

/// `Authorization: Basic …` as (id, secret); `None` without an Authorization header or
/// with another scheme (a bearer token is not client authentication).
fn basic_credentials(value: Option<&HeaderValue>) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let malformed = || {
        OAuthError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "malformed HTTP Basic credentials".into(),
        )
        .with_basic_challenge()
    };
    let value = value.to_str().map_err(|_| malformed())?.trim();
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    let (id, secret) = (
        form_unescape(id).ok_or_else(malformed)?,
        form_unescape(secret).ok_or_else(malformed)?,
    );
    if id.is_empty() || secret.is_empty() {
        return Err(malformed());
    }
    Ok(Some((id, secret)))
}

/// One form-urlencoded value decoded: `+` is a space and `%XX` a byte, nothing else is
/// special. Not a form parse: `&` and `=` are literal characters of an id or secret, so
/// `secret&x` is not the secret `secret`. `None` when the bytes are not UTF-8.
fn form_unescape(part: &str) -> Option<String> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                bytes.get(i + 1).and_then(|b| hex(*b)),
                bytes.get(i + 2).and_then(|b| hex(*b)),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push((hi << 4) | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The scopes to put in the token: the requested ones (each once, in request order),
/// which must all be the client's; all of the client's when none are requested.
fn grant_scopes(requested: Option<&str>, allowed: &[String]) -> Result<String, OAuthError> {
    let Some(requested) = requested.filter(|r| !r.trim().is_empty()) else {
        return Ok(allowed.join(" "));
    };
    let mut granted: Vec<&str> = Vec::new();
    let mut refused: Vec<&str> = Vec::new();
    for scope in requested.split_whitespace() {
        if !allowed.iter().any(|a| a == scope) {
            refused.push(scope);
        } else if !granted.contains(&scope) {
            granted.push(scope);
        }
    }
    if !refused.is_empty() {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            format!(
                "the client may not ask for {}; it holds {}",
                refused.join(", "),
                allowed.join(" ")
            ),
        ));
    }
    Ok(granted.join(" "))
}

/// An RFC 6749 §5.2 error answer.
#[derive(Debug)]
pub struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    basic_challenge: bool,
    retry_after: Option<Duration>,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: String) -> Self {
        OAuthError {
            status,
            error,
            description,
            basic_challenge: false,
            retry_after: None,
        }
    }

    fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            description.into(),
        )
    }

    /// Unknown client, deleted client and wrong secret all read exactly like this.
    fn invalid_client() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed".into(),
        )
        .with_basic_challenge()
    }

    /// RFC 9110 §15.5.2: a 401 carries a challenge; HTTP Basic is the scheme the
    /// client can retry with (RFC 6749 §5.2).
    fn with_basic_challenge(mut self) -> Self {
        self.basic_challenge = true;
        self
    }

    /// 429 with `Retry-After`: this client or address has used its budget, or too many
    /// token requests wait already. RFC 6749 has no code for it; `temporarily_unavailable`
    /// is the one that says "retry later".
    fn slow_down(retry_after: Duration) -> Self {
        let mut error = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "temporarily_unavailable",
            "too many token requests; retry after the time in Retry-After".into(),
        );
        error.retry_after = Some(retry_after);
        error
    }

    /// A failure on our side (database down, signing failed): logged in full, answered
    /// as OAuth's `server_error` / `temporarily_unavailable` without the cause.
    fn server(err: impl Into<ApiError>) -> Self {
        let err: ApiError = err.into();
        let status = err.status_code();
        tracing::error!(error = ?err, "token request failed");
        let (error, description) = if status == StatusCode::SERVICE_UNAVAILABLE {
            (
                "temporarily_unavailable",
                "the database is unavailable; try again shortly",
            )
        } else {
            ("server_error", "internal error")
        };
        Self::new(status, error, description.into())
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error, self.description)
    }
}

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut builder = no_store(HttpResponse::build(self.status));
        if self.basic_challenge {
            builder.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"uplift\""));
        }
        if let Some(wait) = self.retry_after {
            builder.insert_header((header::RETRY_AFTER, retry_after_value(wait)));
        }
        builder.json(json!({"error": self.error, "error_description": self.description}))
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn form(body: &str) -> TokenForm {
        TokenForm::parse(body.as_bytes()).unwrap()
    }

    fn basic(id: &str, secret: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
        )
    }

    #[test]
    fn repeated_parameters_are_refused_and_empty_ones_count_as_omitted() {
        let err = TokenForm::parse(b"scope=Apps&grant_type=x&scope=Apps").unwrap_err();
        assert_eq!(err.error, "invalid_request");
        assert!(err.description.contains("scope"), "{err}");
        assert_eq!(form("scope=&grant_type=a+b").get("scope"), None);
        assert_eq!(form("scope=&grant_type=a+b").get("grant_type"), Some("a b"));
    }

    #[test]
    fn credentials_come_from_the_form_or_from_basic_but_not_both() {
        let req = TestRequest::default().to_http_request();
        let creds = client_credentials(&req, &form("client_id=a&client_secret=b")).unwrap();
        assert_eq!((creds.id.as_str(), creds.secret.as_str()), ("a", "b"));

        let req = TestRequest::default()
            .insert_header((header::AUTHORIZATION, basic("id%3A1", "s+cret%25")))
            .to_http_request();
        let creds = client_credentials(&req, &form("client_id=id:1")).unwrap();
        assert_eq!(
            (creds.id.as_str(), creds.secret.as_str()),
            ("id:1", "s cret%")
        );
        let err = client_credentials(&req, &form("client_secret=x")).unwrap_err();
        assert_eq!(err.error, "invalid_request");
        let err = client_credentials(&req, &form("client_id=other")).unwrap_err();
        assert_eq!(err.error, "invalid_request");
    }

    #[test]
    fn missing_credentials_name_what_is_missing() {
        let req = TestRequest::default().to_http_request();
        let err = client_credentials(&req, &form("client_id=a")).unwrap_err();
        assert_eq!((err.status.as_u16(), err.error), (400, "invalid_request"));
        assert!(err.description.contains("client_secret"));
        let err = client_credentials(&req, &form("")).unwrap_err();
        assert_eq!((err.status.as_u16(), err.error), (401, "invalid_client"));
        assert!(err.basic_challenge);
    }

    #[test]
    fn malformed_basic_credentials_are_an_invalid_client_and_other_schemes_are_ignored() {
        for bad in ["Basic !!!", "Basic bm9jb2xvbg==", "Basic OnNlY3JldA=="] {
            let value = HeaderValue::from_static(bad);
            let err = basic_credentials(Some(&value)).unwrap_err();
            assert_eq!(err.error, "invalid_client", "{bad}");
        }
        let bearer = HeaderValue::from_static("Bearer abc");
        assert_eq!(basic_credentials(Some(&bearer)).unwrap(), None);
    }

    #[test]
    fn basic_credentials_are_percent_decoded_not_parsed_as_a_form() {
        let value = HeaderValue::from_str(&basic("a%26b%3Dc", "s%26x&y=z+w%zz%")).unwrap();
        let (id, secret) = basic_credentials(Some(&value)).unwrap().unwrap();
        assert_eq!((id.as_str(), secret.as_str()), ("a&b=c", "s&x&y=z w%zz%"));
        let not_utf8 = HeaderValue::from_str(&basic("a", "%ff")).unwrap();
        assert_eq!(
            basic_credentials(Some(&not_utf8)).unwrap_err().error,
            "invalid_client"
        );
    }

    #[test]
    fn scopes_default_to_all_of_the_clients_and_must_be_a_subset() {
        let allowed = vec!["Apps".to_string(), "OR.Folders.Read".to_string()];
        assert_eq!(
            grant_scopes(None, &allowed).unwrap(),
            "Apps OR.Folders.Read"
        );
        assert_eq!(
            grant_scopes(Some("  "), &allowed).unwrap(),
            "Apps OR.Folders.Read"
        );
        assert_eq!(
            grant_scopes(Some("OR.Folders.Read Apps OR.Folders.Read"), &allowed).unwrap(),
            "OR.Folders.Read Apps"
        );
        let err = grant_scopes(Some("Apps Apps.Write"), &allowed).unwrap_err();
        assert_eq!((err.status.as_u16(), err.error), (400, "invalid_scope"));
        assert!(err.description.contains("Apps.Write"));
    }

    #[test]
    fn json_and_missing_content_types_are_refused_naming_the_form_type() {
        for content_type in [Some("application/json"), Some("text/plain"), None] {
            let mut req = TestRequest::post();
            if let Some(ct) = content_type {
                req = req.insert_header((header::CONTENT_TYPE, ct));
            }
            let err = check_content_type(&req.to_http_request()).unwrap_err();
            assert_eq!(err.error, "invalid_request");
            assert!(
                err.description
                    .contains("application/x-www-form-urlencoded"),
                "{err}"
            );
        }
        let req = TestRequest::post()
            .insert_header((
                header::CONTENT_TYPE,
                "application/x-www-form-urlencoded; charset=UTF-8",
            ))
            .to_http_request();
        assert!(check_content_type(&req).is_ok());
    }
}
