//! `Idempotency-Key` on calls that change data (POST and PATCH): the first answer is
//! stored per tenant and subject and replayed for a repeat of the same request; the same
//! key with another request is a 422; a repeat while the first still runs is a 409.
//!
//! A running call renews a lease on its key; if its server dies the lease lapses and a
//! retry takes the key over and does the work, which every data-changing call here can
//! safely redo (upgrades skip what is already done).

pub mod store;

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
use sha2::{Digest, Sha256};

use self::store::{Claim, KeyId, StoredResponse};
use crate::{auth::Principal, error::ApiError, extract::read_body, startup::AppState};

pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
const MAX_KEY_LEN: usize = 255;

pub async fn middleware(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
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
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    // Without a valid token there is no key namespace; the handler answers 401.
    let Ok(principal) = Principal::authenticate(req.request(), &state, true).await else {
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
    let lease = Duration::from_secs(state.settings.idempotency_lease_seconds);
    let retention = Duration::from_secs(state.settings.idempotency_retention_hours * 3600);
    let claim = match store::claim(&state.db, &id, &hash, lease, retention).await {
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
        Claim::Proceed => run_and_store(req, next, state, id, lease).await,
    }
}

async fn run_and_store(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
    state: web::Data<AppState>,
    id: KeyId,
    lease: Duration,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let mut guard = LeaseGuard::start(state.clone(), id.clone(), lease);
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
        match store::complete(&state.db, &id, &stored).await {
            Ok(()) => guard.completed = true,
            // Released below, so a retry runs again (safely) rather than waiting for
            // the lease to lapse.
            Err(e) => tracing::warn!(error = %e, "could not store the idempotent answer"),
        }
    }
    if !guard.completed {
        // Released before answering: a client that retries at once must find the key
        // free, not still "running".
        match store::delete(&state.db, &id).await {
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
    state: web::Data<AppState>,
    id: KeyId,
    completed: bool,
}

impl LeaseGuard {
    fn start(state: web::Data<AppState>, id: KeyId, lease: Duration) -> Self {
        let (db, key) = (state.db.clone(), id.clone());
        let renewer = tokio::spawn(async move {
            let mut tick = tokio::time::interval(lease / 3);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = store::renew(&db, &key, lease).await {
                    tracing::warn!(error = %e, "could not renew an idempotency lease");
                }
            }
        });
        LeaseGuard {
            renewer,
            state,
            id,
            completed: false,
        }
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.renewer.abort();
        if !self.completed {
            let (db, id) = (self.state.db.clone(), self.id.clone());
            tokio::spawn(async move {
                if let Err(e) = store::delete(&db, &id).await {
                    tracing::warn!(error = %e, "could not release an idempotency key");
                }
            });
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

fn is_dry_run(query: &str) -> bool {
    query.split('&').any(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        name == "dryRun" && matches!(value.to_ascii_lowercase().as_str(), "true" | "1" | "")
    })
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
