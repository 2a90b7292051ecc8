//! `Idempotency-Key` on calls that change data (POST and PATCH): the first answer is
//! stored per tenant and subject and replayed for a repeat of the same request; the same
//! key with another request is a 422; a repeat while the first still runs is a 409.
//!
//! A running call renews a lease on its key; if its server dies the lease lapses and a
//! retry takes the key over and does the work, which every data-changing call here can
//! safely redo (upgrades skip what is already done).

use std::time::Duration;

use actix_web::{
    Error, HttpResponse,
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

use super::{
    ApiError,
    auth::{self, TokenScheme},
    extract::read_body,
    registered,
    uipath::BulkParams,
};
use crate::{
    app::IdempotencyPolicy,
    idempotency::{self as store, Claim, KeyId, Lease, StoredResponse},
};

pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
const MAX_KEY_LEN: usize = 255;

/// On the UiPath routes (bearer tokens).
pub async fn uipath(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    middleware(req, next, TokenScheme::Bearer).await
}

/// On the Rainbond routes (bearer or bare tokens).
pub async fn rainbond(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    middleware(req, next, TokenScheme::BearerOrBare).await
}

async fn middleware(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
    scheme: TokenScheme,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let applies = matches!(*req.method(), Method::POST | Method::PATCH)
        && req.headers().contains_key(IDEMPOTENCY_KEY)
        && !is_dry_run(req.query_string());
    if !applies {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    }
    let key = match key_of(&req) {
        Ok(key) => key,
        Err(e) => return Ok(req.error_response(e)),
    };
    let db = registered::<DatabaseConnection>(req.request())?;
    let policy = *registered::<IdempotencyPolicy>(req.request())?.get_ref();
    // Without a valid token there is no key namespace; the handler answers 401. The
    // principal is kept in the request, so the handler does not verify it again.
    let Ok(principal) = auth::authenticate(req.request(), scheme).await else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    let (http_req, payload) = req.parts_mut();
    let body = match read_body(http_req, payload).await {
        Ok(body) => body,
        Err(e) => return Ok(req.error_response(e)),
    };
    let hash = request_hash(req.method(), req.path(), req.query_string(), &body);
    req.set_payload(body.into());

    let id = KeyId {
        tenant_id: principal.tenant_id,
        subject: principal.subject,
        key,
    };
    let claim = match store::claim(db.get_ref(), &id, &hash, policy.lease, policy.retention).await {
        Ok(claim) => claim,
        Err(e) => return Ok(req.error_response(ApiError::from(e))),
    };
    match claim {
        Claim::Mismatch => Ok(req.error_response(ApiError::Unprocessable(
            "this Idempotency-Key was already used with a different request; use a new key".into(),
        ))),
        Claim::InProgress { retry_after } => {
            let mut res = req.error_response(ApiError::Conflict(
                "a request with this Idempotency-Key is still in progress; retry shortly".into(),
            ));
            let seconds = retry_after.as_secs().max(1).to_string();
            if let Ok(value) = HeaderValue::from_str(&seconds) {
                res.headers_mut().insert(header::RETRY_AFTER, value);
            }
            Ok(res)
        }
        Claim::Replay(stored) => Ok(req.into_response(replay(stored))),
        Claim::Proceed(lease) => run_and_store(req, next, db, id, lease, policy.lease).await,
    }
}

async fn run_and_store(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
    db: web::Data<DatabaseConnection>,
    id: KeyId,
    lease: Lease,
    lease_time: Duration,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let mut guard = LeaseGuard::start(db.clone(), id.clone(), lease.clone(), lease_time);
    let response = next.call(req).await?;
    let status = response.status();
    let (request, response) = response.into_parts();
    let (head, body) = response.into_parts();
    let bytes = body::to_bytes(body)
        .await
        .map_err(|_| ApiError::Internal(anyhow::anyhow!("reading the response")))?;
    if is_replayable(status) {
        let stored = StoredResponse {
            status: status.as_u16(),
            content_type: head
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            body: bytes.to_vec(),
        };
        match store::complete(db.get_ref(), &id, &lease, &stored).await {
            Ok(()) => guard.completed = true,
            // Released below, so a retry runs again (safely) rather than waiting for
            // the lease to lapse.
            Err(e) => tracing::warn!(error = %e, "could not store the idempotent answer"),
        }
    }
    if !guard.completed {
        // Released before answering: a client that retries at once must find the key
        // free, not still "running".
        match store::release(db.get_ref(), &id, &lease).await {
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

/// Answers worth replaying: successes and the client's own mistakes. Not server errors,
/// nor answers a later retry may legitimately change (401, 403, 408, 409, 429).
fn is_replayable(status: StatusCode) -> bool {
    status.is_success()
        || (status.is_client_error() && !matches!(status.as_u16(), 401 | 403 | 408 | 409 | 429))
}

fn replay(stored: StoredResponse) -> HttpResponse {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = HttpResponse::build(status);
    if let Some(content_type) = stored.content_type {
        response.insert_header((header::CONTENT_TYPE, content_type));
    }
    response.insert_header((REPLAYED, "true"));
    response.body(stored.body)
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

/// A dry run changes nothing, so there is nothing to protect. Asked of the bulk call's
/// own parameter parser; a query it refuses is not taken for a dry run (the handler
/// answers it with a 400, kept under the key like any answer).
fn is_dry_run(query: &str) -> bool {
    BulkParams::from_query(query).is_ok_and(|p| p.dry_run)
}

fn request_hash(method: &Method, path: &str, query: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    for part in [
        method.as_str().as_bytes(),
        path.as_bytes(),
        query.as_bytes(),
    ] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher.update(body);
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
        let base = request_hash(&Method::POST, "/a", "", b"{}");
        assert_eq!(base, request_hash(&Method::POST, "/a", "", b"{}"));
        assert_ne!(base, request_hash(&Method::PATCH, "/a", "", b"{}"));
        assert_ne!(base, request_hash(&Method::POST, "/b", "", b"{}"));
        assert_ne!(base, request_hash(&Method::POST, "/a", "x=1", b"{}"));
        assert_ne!(base, request_hash(&Method::POST, "/a", "", b"{ }"));
        // Length prefixes keep parts from running into each other.
        assert_ne!(
            request_hash(&Method::POST, "/ab", "", b""),
            request_hash(&Method::POST, "/a", "b", b"")
        );
    }

    #[test]
    fn a_dry_run_is_recognised_in_the_query() {
        assert!(is_dry_run("dryRun=true"));
        assert!(is_dry_run("maxFailures=2&dryRun=TRUE"));
        assert!(!is_dry_run("dryRun=false"));
        assert!(!is_dry_run("notdryRun=true"));
        // Two values: refused by the handler, so not a dry run here either.
        assert!(!is_dry_run("dryRun=true&dryRun=false"));
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
