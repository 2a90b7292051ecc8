//! `Idempotency-Key` on calls that change data (POST and PATCH): the first answer is
//! stored per tenant and subject and replayed for a repeat of the same request; the same
//! key with another request is a 422; a repeat while the first still runs is a 409.
//!
//! Two halves, so that a keyed request passes every check an unkeyed one does before
//! anything is replayed or stored:
//!
//! - the middleware (`keys`) reads the body and fingerprints the request (method, path,
//!   query, the tenant and folder headers, body) and, once the handler has answered,
//!   stores or releases the key the handler claimed;
//! - the handler calls `claim` after its authentication, tenant, scope and permission
//!   checks. Only then is a key claimed or an answer replayed: a request that matched
//!   no route, or was refused before the handler's checks passed, leaves no record.
//!
//! A running call renews a lease on its key; if its server dies the lease lapses and a
//! retry takes the key over and does the work, which every data-changing call here can
//! safely redo (upgrades skip what is already done). Every write of the key is fenced
//! by its lease, so a call that lost it cannot overwrite the new holder's record.

use std::time::Duration;

use actix_web::{
    Error, HttpMessage, HttpRequest, HttpResponse, ResponseError,
    body::{self, BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::{
        Method, StatusCode,
        header::{self, HeaderName, HeaderValue},
    },
    middleware::Next,
    web,
};
use sea_orm::DatabaseConnection;
use sha2::{Digest, Sha256};

use super::{ApiError, extract::read_body, problem::PROBLEM_JSON, registered};
use crate::{
    api_paths::{FOLDER_KEY_HEADER, TENANT_HEADER, TENANT_HEADER_ALIAS},
    app::IdempotencyPolicy,
    auth::Principal,
    idempotency::{self as store, Claim, KeyId, Lease, StoredResponse},
    telemetry,
};

pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
/// Where a 202 answer's operation is watched (Azure's long-running operations).
pub const OPERATION_LOCATION: HeaderName = HeaderName::from_static("operation-location");
const MAX_KEY_LEN: usize = 255;

/// A keyed request, fingerprinted by the middleware for the handler's `claim`.
#[derive(Clone)]
struct KeyedRequest {
    key: String,
    hash: String,
}

/// The key a handler claimed, for the middleware to settle once the answer exists.
struct Claimed {
    guard: LeaseGuard,
}

/// The middleware half, on the UiPath and Rainbond scopes.
pub async fn keys(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let keyed = matches!(*req.method(), Method::POST | Method::PATCH)
        && req.headers().contains_key(IDEMPOTENCY_KEY);
    if !keyed {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    }
    let key = match key_of(&req) {
        Ok(key) => key,
        Err(e) => return Ok(req.error_response(e)),
    };
    let (http_req, payload) = req.parts_mut();
    let body = match read_body(http_req, payload).await {
        Ok(body) => body,
        Err(e) => return Ok(req.error_response(e)),
    };
    let header = |name: &str| {
        req.headers()
            .get(name)
            .map(HeaderValue::as_bytes)
            .unwrap_or_default()
    };
    let hash = request_hash(&[
        req.method().as_str().as_bytes(),
        req.path().as_bytes(),
        req.query_string().as_bytes(),
        // Either spelling of the tenant header: the caller check makes them agree.
        if req.headers().contains_key(TENANT_HEADER) {
            header(TENANT_HEADER)
        } else {
            header(TENANT_HEADER_ALIAS)
        },
        header(FOLDER_KEY_HEADER),
        &body,
    ]);
    req.set_payload(body.into());
    req.extensions_mut().insert(KeyedRequest { key, hash });

    let response = next.call(req).await?;
    let claimed = response.request().extensions_mut().remove::<Claimed>();
    match claimed {
        // Not claimed: refused before the handler's checks passed, a dry run, or a
        // replay. Nothing to store.
        None => Ok(response.map_into_boxed_body()),
        Some(Claimed { guard }) => settle(response, guard).await,
    }
}

/// The handler half: called once the request passed authentication and authorization.
/// `Ok(None)`: not keyed, or the key is this call's now: do the work. `Ok(Some(answer))`:
/// answer with that instead (the stored answer of the first call, or a 409/422).
pub async fn claim(req: &HttpRequest) -> Result<Option<HttpResponse>, ApiError> {
    let Some(keyed) = req.extensions().get::<KeyedRequest>().cloned() else {
        return Ok(None);
    };
    let principal = req
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("claim before authentication")))?;
    let db = registered::<DatabaseConnection>(req)?;
    let policy = *registered::<IdempotencyPolicy>(req)?.get_ref();
    let id = KeyId {
        tenant_id: principal.tenant_id,
        subject: principal.subject,
        key: keyed.key,
    };
    let claim = store::claim(
        db.get_ref(),
        &id,
        &keyed.hash,
        policy.lease,
        policy.retention,
    )
    .await
    .map_err(ApiError::from)?;
    match claim {
        Claim::Mismatch => Err(ApiError::Unprocessable(
            "this Idempotency-Key was already used with a different request; use a new key".into(),
        )),
        Claim::InProgress { retry_after } => {
            let mut res = ApiError::Conflict(
                "a request with this Idempotency-Key is still in progress; retry shortly".into(),
            )
            .error_response();
            let seconds = retry_after.as_secs().max(1).to_string();
            if let Ok(value) = HeaderValue::from_str(&seconds) {
                res.headers_mut().insert(header::RETRY_AFTER, value);
            }
            Ok(Some(res))
        }
        Claim::Replay(stored) => Ok(Some(replay(stored))),
        Claim::Proceed(lease) => {
            let guard = LeaseGuard::start(db, id, lease, policy.lease);
            req.extensions_mut().insert(Claimed { guard });
            Ok(None)
        }
    }
}

/// Stores the claimed call's answer when a retry must see it again, else releases the
/// key so a retry runs afresh.
async fn settle(
    response: ServiceResponse<impl MessageBody + 'static>,
    mut guard: LeaseGuard,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let status = response.status();
    let (request, response) = response.into_parts();
    let (head, body) = response.into_parts();
    let bytes = body::to_bytes(body)
        .await
        .map_err(|_| ApiError::Internal(anyhow::anyhow!("reading the response")))?;
    let db = guard.db.clone();
    if is_replayable(status) {
        let stored = StoredResponse {
            status: status.as_u16(),
            content_type: head
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            body: bytes.to_vec(),
            location: head
                .headers()
                .get(OPERATION_LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        };
        match store::complete(db.get_ref(), &guard.id, &guard.lease, &stored).await {
            Ok(true) => guard.completed = true,
            // A retry took the key over after our lease lapsed (this server was paused
            // or cut off): the retry's answer is the one kept, so this one must not
            // reach the client as if it were.
            Ok(false) => {
                guard.completed = true;
                tracing::warn!("the idempotency key was taken over; not answering for it");
                let taken_over = ApiError::Conflict(
                    "a retry with this Idempotency-Key took the call over; its answer is the one kept: \
                     repeat the request with the same key to read it"
                        .into(),
                );
                return Ok(ServiceResponse::from_err(taken_over, request));
            }
            // Not stored (the database went away): a client must never get an answer
            // that a retry with the same key would not give again, so it gets a 503
            // and its retry runs the call afresh (safely: an upgrade never moves a
            // deployment twice). Released first, so the retry need not wait for the
            // lease to lapse.
            Err(e) => {
                tracing::warn!(error = %e, "could not store the idempotent answer; answering 503");
                if store::release(db.get_ref(), &guard.id, &guard.lease)
                    .await
                    .is_ok()
                {
                    guard.completed = true;
                }
                return Ok(ServiceResponse::from_err(ApiError::Unavailable(e), request));
            }
        }
    }
    if !guard.completed {
        // Released before answering: a client that retries at once must find the key
        // free, not still "running".
        match store::release(db.get_ref(), &guard.id, &guard.lease).await {
            Ok(()) => guard.completed = true,
            Err(e) => tracing::warn!(error = %e, "could not release an idempotency key"),
        }
    }
    Ok(ServiceResponse::new(
        request,
        head.set_body(bytes).map_into_boxed_body(),
    ))
}

/// Renews the lease while the call runs; on drop stops renewing and, if the call did not
/// settle its key (the client went away, or the handler failed), forgets the key in
/// the background so a retry can run.
struct LeaseGuard {
    renewer: tokio::task::JoinHandle<()>,
    db: web::Data<DatabaseConnection>,
    id: KeyId,
    lease: Lease,
    completed: bool,
}

impl LeaseGuard {
    fn start(db: web::Data<DatabaseConnection>, id: KeyId, lease: Lease, time: Duration) -> Self {
        let (conn, key, held) = (db.clone(), id.clone(), lease.clone());
        // The background work belongs to this request: its log lines carry its id.
        let span = tracing::Span::current();
        let renewer = tokio::spawn(tracing::Instrument::instrument(
            async move {
                let mut tick = tokio::time::interval(time / 3);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    match store::renew(conn.get_ref(), &key, &held, time).await {
                        Ok(true) => {}
                        // Taken over by a retry after this lease lapsed: the key is
                        // no longer ours to renew.
                        Ok(false) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "could not renew an idempotency lease")
                        }
                    }
                }
            },
            span,
        ));
        LeaseGuard {
            renewer,
            db,
            id,
            lease,
            completed: false,
        }
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.renewer.abort();
        if !self.completed {
            let (db, id, lease) = (self.db.clone(), self.id.clone(), self.lease.clone());
            let span = tracing::Span::current();
            tokio::spawn(tracing::Instrument::instrument(
                async move {
                    if let Err(e) = store::release(db.get_ref(), &id, &lease).await {
                        tracing::warn!(error = %e, "could not release an idempotency key");
                    }
                },
                span,
            ));
        }
    }
}

/// Answers worth replaying: successes and the client's own mistakes about what it asked
/// for. Not server errors, nor answers a later retry may legitimately change (401, 403,
/// 408, 409, 429). (Answers about headers and routes are never claimed at all.)
fn is_replayable(status: StatusCode) -> bool {
    status.is_success()
        || (status.is_client_error() && !matches!(status.as_u16(), 401 | 403 | 408 | 409 | 429))
}

/// The stored answer, marked as replayed. A problem+json body gets this request's trace
/// id and path, so its `traceId` leads to this request's log lines.
fn replay(stored: StoredResponse) -> HttpResponse {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = HttpResponse::build(status);
    let is_problem = stored
        .content_type
        .as_deref()
        .is_some_and(|t| t.starts_with(PROBLEM_JSON));
    if let Some(content_type) = stored.content_type {
        response.insert_header((header::CONTENT_TYPE, content_type));
    }
    response.insert_header((REPLAYED, "true"));
    if let Some(location) = stored.location {
        response.insert_header((OPERATION_LOCATION, location));
    }
    let body = if is_problem {
        retraced(&stored.body).unwrap_or(stored.body)
    } else {
        stored.body
    };
    response.body(body)
}

/// A problem body with `traceId` and `instance` of the current request.
fn retraced(body: &[u8]) -> Option<Vec<u8>> {
    let mut problem: serde_json::Value = serde_json::from_slice(body).ok()?;
    let context = telemetry::current_request()?;
    let object = problem.as_object_mut()?;
    object.insert("traceId".into(), context.request_id.into());
    object.insert("instance".into(), context.path.into());
    serde_json::to_vec(&problem).ok()
}

fn key_of(req: &ServiceRequest) -> Result<String, ApiError> {
    let raw = req
        .headers()
        .get(IDEMPOTENCY_KEY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim();
    let ok =
        !raw.is_empty() && raw.len() <= MAX_KEY_LEN && raw.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(raw.to_string())
    } else {
        Err(ApiError::bad_request(format!(
            "Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters"
        )))
    }
}

/// SHA-256 over the parts, each length-prefixed so parts cannot run into each other.
fn request_hash(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_changes_with_any_part_of_the_request() {
        let hash = |parts: [&str; 6]| request_hash(&parts.map(str::as_bytes));
        let base = hash(["POST", "/a", "", "t", "f", "{}"]);
        assert_eq!(base, hash(["POST", "/a", "", "t", "f", "{}"]));
        for changed in [
            ["PATCH", "/a", "", "t", "f", "{}"],
            ["POST", "/b", "", "t", "f", "{}"],
            ["POST", "/a", "x=1", "t", "f", "{}"],
            ["POST", "/a", "", "t2", "f", "{}"],
            ["POST", "/a", "", "t", "f2", "{}"],
            ["POST", "/a", "", "t", "f", "{ }"],
        ] {
            assert_ne!(base, hash(changed), "{changed:?}");
        }
        // Length prefixes keep parts from running into each other.
        assert_ne!(
            hash(["POST", "/ab", "", "", "", ""]),
            hash(["POST", "/a", "b", "", "", ""])
        );
    }

    #[test]
    fn server_errors_and_auth_answers_are_not_replayed() {
        assert!(is_replayable(StatusCode::OK));
        assert!(is_replayable(StatusCode::BAD_REQUEST));
        assert!(is_replayable(StatusCode::NOT_FOUND));
        for status in [401, 403, 409, 429, 500, 503] {
            assert!(
                !is_replayable(StatusCode::from_u16(status).unwrap()),
                "{status}"
            );
        }
    }
}
