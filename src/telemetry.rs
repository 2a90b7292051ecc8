//! Logging: the tracing subscriber, one span per request carrying its request id, tenant
//! and subject, and the request context that error bodies read their trace id from.

use std::{sync::Once, time::Instant};

use actix_web::{
    Error, HttpMessage,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::header::{HeaderName, HeaderValue},
    middleware::Next,
};
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RootSpanBuilder};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::LogFormat;

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Installs the global subscriber once; later calls (tests) are no-ops. Logs go to
/// stderr: the CLI prints its results (a token, a folder key) on stdout.
pub fn init(format: LogFormat) {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let filter = EnvFilter::try_from_env("UPLIFT_LOG")
            .or_else(|_| EnvFilter::try_from_default_env())
            .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn"));
        let registry = tracing_subscriber::registry().with(filter);
        let result = match format {
            LogFormat::Json => registry
                .with(
                    fmt::layer()
                        .with_writer(std::io::stderr)
                        .json()
                        .with_current_span(true)
                        .with_span_list(false),
                )
                .try_init(),
            LogFormat::Text => registry
                .with(fmt::layer().with_writer(std::io::stderr).with_target(false))
                .try_init(),
        };
        // Another subscriber may already be installed (a test harness); keep it.
        let _ = result;
    });
}

/// The request id, as received in `X-Request-Id` (when sane) or generated.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: String,
    pub path: String,
}

tokio::task_local! {
    static REQUEST_CONTEXT: RequestContext;
}

/// The context of the request being served on this task, if any.
pub fn current_request() -> Option<RequestContext> {
    REQUEST_CONTEXT.try_with(Clone::clone).ok()
}

fn accept_request_id(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    let sane = !text.is_empty()
        && text.len() <= 128
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    sane.then(|| text.to_string())
}

/// Builds the per-request span; the request id is decided here so the span has it.
pub struct UpliftRootSpan;

impl RootSpanBuilder for UpliftRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let request_id = request
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(accept_request_id)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        request
            .extensions_mut()
            .insert(RequestId(request_id.clone()));
        let route = request
            .match_pattern()
            .unwrap_or_else(|| "unmatched".into());
        tracing::info_span!(
            "request",
            method = %request.method(),
            route = %route,
            request_id = %request_id,
            tenant = tracing::field::Empty,
            subject = tracing::field::Empty,
            status = tracing::field::Empty,
            // Filled by tracing-actix-web when a handler returns an error.
            exception.message = tracing::field::Empty,
            exception.details = tracing::field::Empty,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        if let Ok(response) = outcome {
            span.record("status", response.status().as_u16());
        }
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

/// Runs inside the request span: makes the request context visible to error bodies,
/// echoes the request id and logs one line per request.
pub async fn request_context(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let context = RequestContext {
        request_id: request_id.clone(),
        path: request.path().to_string(),
    };
    let mut response = REQUEST_CONTEXT.scope(context, next.call(request)).await?;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response
            .response_mut()
            .headers_mut()
            .insert(REQUEST_ID_HEADER, value);
    }
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    if status >= 500 {
        tracing::error!(status, latency_ms, "request completed");
    } else {
        tracing::info!(status, latency_ms, "request completed");
    }
    Ok(response)
}

/// Adds the caller's identity to the current request span.
pub fn record_caller(tenant: &str, subject: &str) {
    let span = Span::current();
    span.record("tenant", tenant);
    span.record("subject", subject);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sane_request_id_is_kept() {
        assert_eq!(
            accept_request_id(&HeaderValue::from_static("ci-run.42:7")).as_deref(),
            Some("ci-run.42:7")
        );
    }

    #[test]
    fn a_request_id_with_odd_characters_or_too_long_is_replaced() {
        assert_eq!(accept_request_id(&HeaderValue::from_static("a b")), None);
        assert_eq!(
            accept_request_id(&HeaderValue::from_str(&"x".repeat(200)).unwrap()),
            None
        );
        assert_eq!(accept_request_id(&HeaderValue::from_static("")), None);
    }
}
