//! `ApiError`: every failure a handler can return, rendered as RFC 9457
//! `application/problem+json` with the request's trace id. Domain errors
//! (`crate::error::Error`) get their status code here and nowhere else.

use std::fmt;

use actix_web::{
    HttpResponse, ResponseError,
    http::{StatusCode, header},
};
use sea_orm::DbErr;
use serde::Serialize;

use crate::{error::Error, telemetry};

#[derive(thiserror::Error)]
pub enum ApiError {
    /// The request is malformed; the message names what was wrong.
    #[error("{0}")]
    BadRequest(String),
    /// No usable bearer token.
    #[error("{0}")]
    InvalidToken(String),
    /// The token is valid but lacks a scope the call needs.
    #[error("the token lacks the scope this call needs: {0}")]
    InsufficientScope(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("request body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    RequestTimeout(String),
    #[error("the request headers are larger than the limit of {0} bytes")]
    HeadersTooLarge(usize),
    /// 429 with `Retry-After` (whole seconds, at least 1).
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after: std::time::Duration,
    },
    #[error("the database is unavailable; try again shortly")]
    Unavailable(#[source] DbErr),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// Prints the whole cause chain, so the request log explains a 500.
impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::error::write_chain(self, f)
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        match err {
            Error::Invalid(msg) => ApiError::BadRequest(msg),
            Error::InvalidToken(msg) => ApiError::InvalidToken(msg),
            Error::InsufficientScope(scopes) => ApiError::InsufficientScope(scopes),
            Error::Forbidden(msg) => ApiError::Forbidden(msg),
            Error::NotFound(msg) => ApiError::NotFound(msg),
            Error::Conflict(msg) => ApiError::Conflict(msg),
            Error::Unprocessable(msg) => ApiError::Unprocessable(msg),
            Error::Busy {
                message,
                retry_after,
            } => ApiError::TooManyRequests {
                message,
                retry_after,
            },
            Error::Unavailable(err) => ApiError::Unavailable(err),
            Error::Internal(err) => ApiError::Internal(err),
        }
    }
}

impl From<DbErr> for ApiError {
    fn from(err: DbErr) -> Self {
        Error::from(err).into()
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> Self {
        ApiError::Internal(err)
    }
}

impl ApiError {
    pub fn bad_request(msg: impl Into<String>) -> Self {
        ApiError::BadRequest(msg.into())
    }

    /// A stable, documented identifier of the problem kind.
    pub fn slug(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad-request",
            ApiError::InvalidToken(_) => "invalid-token",
            ApiError::InsufficientScope(_) => "insufficient-scope",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not-found",
            ApiError::MethodNotAllowed(_) => "method-not-allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge(_) => "payload-too-large",
            ApiError::UnsupportedMediaType(_) => "unsupported-media-type",
            ApiError::Unprocessable(_) => "unprocessable",
            ApiError::RequestTimeout(_) => "request-timeout",
            ApiError::HeadersTooLarge(_) => "headers-too-large",
            ApiError::TooManyRequests { .. } => "too-many-requests",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// What the client may read: internal causes stay in the log.
    fn detail(&self) -> String {
        self.to_string()
    }
}

/// The RFC 9457 body. `traceId` is the request id also sent as `X-Request-Id`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// `urn:uplift:problem:<kind>`, e.g. `urn:uplift:problem:invalid-token`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// The HTTP status phrase.
    pub title: String,
    pub status: u16,
    /// What was wrong, naming the field, header or parameter.
    pub detail: String,
    /// The request path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The request id (also the `X-Request-Id` response header), to find the log lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

pub const PROBLEM_JSON: &str = "application/problem+json";

impl Problem {
    pub fn new(status: StatusCode, slug: &str, detail: String) -> Self {
        let context = telemetry::current_request();
        Problem {
            type_uri: format!("urn:uplift:problem:{slug}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail,
            instance: context.as_ref().map(|c| c.path.clone()),
            trace_id: context.map(|c| c.request_id),
        }
    }

    pub fn into_response(self, status: StatusCode) -> HttpResponse {
        HttpResponse::build(status)
            .insert_header((header::CONTENT_TYPE, PROBLEM_JSON))
            .json(self)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            ApiError::InsufficientScope(_) | ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(error = ?self, "request failed");
        }
        let mut response = Problem::new(status, self.slug(), self.detail()).into_response(status);
        // RFC 6750 §3: tell the client which token problem it has.
        let challenge = match self {
            ApiError::InvalidToken(msg) => Some(format!(
                "Bearer error=\"invalid_token\", error_description=\"{}\"",
                msg.replace('"', "'")
            )),
            ApiError::InsufficientScope(scope) => Some(format!(
                "Bearer error=\"insufficient_scope\", scope=\"{scope}\""
            )),
            _ => None,
        };
        if let Some(value) = challenge.and_then(|v| header::HeaderValue::from_str(&v).ok()) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        if let ApiError::TooManyRequests { retry_after, .. } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, retry_after_value(*retry_after));
        }
        response
    }
}

/// `Retry-After` in whole seconds, rounded up, at least 1.
pub fn retry_after_value(wait: std::time::Duration) -> header::HeaderValue {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    header::HeaderValue::from(seconds.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_domain_error_kind_answers_with_its_status() {
        let cases = [
            (Error::invalid("x"), 400),
            (Error::InvalidToken("x".into()), 401),
            (Error::InsufficientScope("Apps".into()), 403),
            (Error::Forbidden("x".into()), 403),
            (Error::NotFound("x".into()), 404),
            (Error::Conflict("x".into()), 409),
            (Error::Unprocessable("x".into()), 422),
            (
                Error::Busy {
                    message: "x".into(),
                    retry_after: std::time::Duration::from_millis(1500),
                },
                429,
            ),
            (Error::Internal(anyhow::anyhow!("x")), 500),
        ];
        for (err, status) in cases {
            assert_eq!(ApiError::from(err).status_code().as_u16(), status);
        }
    }

    #[test]
    fn invalid_token_carries_a_bearer_challenge() {
        let response = ApiError::InvalidToken("token expired".into()).error_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let challenge = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .unwrap()
            .to_str()
            .unwrap();
        assert!(challenge.starts_with("Bearer error=\"invalid_token\""));
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE).unwrap(),
            PROBLEM_JSON
        );
    }

    #[test]
    fn internal_details_are_not_shown_to_the_client() {
        let err = ApiError::Internal(anyhow::anyhow!("password=hunter2"));
        assert_eq!(err.detail(), "internal error");
    }
}
