//! Logging: the tracing subscriber, one span per request carrying its request id, tenant
//! and subject, and the request context that error bodies read their trace id from.

use std::{
    fmt::{self, Write as _},
    io::IsTerminal,
    sync::Once,
    time::Instant,
};

use actix_web::{
    Error, HttpMessage,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::header::{HeaderName, HeaderValue},
    middleware::Next,
};
use tracing::{
    Span,
    field::{Field, Visit},
};
use tracing_actix_web::{DefaultRootSpanBuilder, RootSpanBuilder};
use tracing_subscriber::{
    EnvFilter,
    field::RecordFields,
    fmt::{FormatFields, format::Writer},
    prelude::*,
};

use crate::config::LogFormat;

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The filter when neither `UPLIFT_LOG` nor `RUST_LOG` is set.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn,sea_orm=warn";

/// actix-http's connection handling logs a client's malformed request line (or a
/// connection the client broke) at ERROR as "stream error", outside any request, so
/// with no request id: a client's fault, not ours. It already answered 400; the line is
/// kept out unless the filter names `actix_http` itself (its `trace` level also shows
/// the parse error).
const CLIENT_CONNECTION_ERRORS: &str = "actix_http::h1::dispatcher=off";

/// The filter directives in force: `UPLIFT_LOG`, else `RUST_LOG`, else the default;
/// the connection errors of clients are off unless they name `actix_http`.
pub fn filter_directives(uplift_log: Option<&str>, rust_log: Option<&str>) -> String {
    let chosen = [uplift_log, rust_log]
        .into_iter()
        .flatten()
        .find(|v| !v.trim().is_empty())
        .unwrap_or(DEFAULT_FILTER);
    if chosen.contains("actix_http") {
        chosen.to_string()
    } else {
        format!("{chosen},{CLIENT_CONNECTION_ERRORS}")
    }
}

/// Installs the global subscriber once; later calls (tests) are no-ops. Logs go to
/// stderr: the CLI prints its results (a token, a folder key) on stdout.
///
/// Every value that reaches a log line may come from a request (a path parameter, a
/// form field's name, a token's `kid`): in the text format each field is written with
/// its control characters escaped (`EscapedFields`), so a `%0A` cannot forge a line and
/// an `ESC` cannot rewrite the terminal; the JSON format escapes them as JSON does.
pub fn init(format: LogFormat) {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let directives = filter_directives(
            std::env::var("UPLIFT_LOG").ok().as_deref(),
            std::env::var("RUST_LOG").ok().as_deref(),
        );
        let filter = EnvFilter::try_new(&directives).unwrap_or_else(|e| {
            eprintln!("ignoring the log filter {directives:?}: {e}");
            EnvFilter::new(filter_directives(None, None))
        });
        let registry = tracing_subscriber::registry().with(filter);
        let result = match format {
            LogFormat::Json => registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_writer(std::io::stderr)
                        .json()
                        .with_current_span(true)
                        .with_span_list(false),
                )
                .try_init(),
            LogFormat::Text => registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_writer(std::io::stderr)
                        .with_target(false)
                        .with_ansi(std::io::stderr().is_terminal())
                        .fmt_fields(EscapedFields),
                )
                .try_init(),
        };
        // Another subscriber may already be installed (a test harness); keep it.
        let _ = result;
    });
}

/// Field formatting of the text log: `name=value` pairs (the message bare), every
/// value with its control characters escaped (`\n`, `\u{1b}`), whatever its source.
pub struct EscapedFields;

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = EscapingVisitor {
            writer,
            result: Ok(()),
            first: true,
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct EscapingVisitor<'writer> {
    writer: Writer<'writer>,
    result: fmt::Result,
    first: bool,
}

impl EscapingVisitor<'_> {
    fn write(&mut self, field: &Field, text: &str) {
        // tracing-log's metadata of `log` records, already shown as the event's own.
        if self.result.is_err() || field.name().starts_with("log.") {
            return;
        }
        let separator = if std::mem::take(&mut self.first) {
            ""
        } else {
            " "
        };
        self.result = if field.name() == "message" {
            write!(self.writer, "{separator}{}", Escaped(text))
        } else {
            write!(self.writer, "{separator}{}={}", field.name(), Escaped(text))
        };
    }
}

impl Visit for EscapingVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.write(field, value);
        } else {
            self.write(field, &format!("{value:?}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, &format!("{value:?}"));
    }
}

/// Text with every control character written as its Rust escape.
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
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
    fn control_characters_are_escaped_in_text_log_values() {
        assert_eq!(
            Escaped("a\nb\u{1b}[2K\tc é").to_string(),
            "a\\nb\\u{1b}[2K\\tc é"
        );
    }

    #[test]
    fn malformed_connections_are_off_unless_the_filter_names_actix_http() {
        assert_eq!(
            filter_directives(None, None),
            "info,sqlx=warn,sea_orm=warn,actix_http::h1::dispatcher=off"
        );
        assert_eq!(
            filter_directives(Some("debug"), Some("warn")),
            "debug,actix_http::h1::dispatcher=off"
        );
        assert_eq!(
            filter_directives(Some(""), Some("warn")),
            "warn,actix_http::h1::dispatcher=off"
        );
        assert_eq!(
            filter_directives(Some("info,actix_http=trace"), None),
            "info,actix_http=trace"
        );
    }

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
