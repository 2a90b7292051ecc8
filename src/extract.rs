//! Request-body and header extractors whose errors are problem+json naming the field.

use actix_web::{
    FromRequest, HttpRequest,
    dev::Payload,
    error::{JsonPayloadError, PathError, PayloadError, QueryPayloadError},
    http::header,
    web::{self, Bytes},
};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use crate::{error::ApiError, startup::AppState};

/// A JSON body, read within the configured size limit and deserialised with the path
/// of the offending field in the error (`deploymentIds[2]: invalid type…`).
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_json_bytes(req, payload);
        Box::pin(async move { parse_json(&body.await?).map(JsonBody) })
    }
}

/// A JSON body that may be left out entirely (an empty body reads as `T::default()`).
pub struct OptionalJsonBody<T>(pub T);

impl<T: DeserializeOwned + Default + 'static> FromRequest for OptionalJsonBody<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_json_bytes(req, payload);
        Box::pin(async move {
            let bytes = body.await?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                Ok(OptionalJsonBody(T::default()))
            } else {
                parse_json(&bytes).map(OptionalJsonBody)
            }
        })
    }
}

/// Reads the body within the configured limit, refusing content types other than JSON.
fn read_json_bytes(
    req: &HttpRequest,
    payload: &mut Payload,
) -> LocalBoxFuture<'static, Result<Bytes, ApiError>> {
    let content_type_ok = match req.headers().get(header::CONTENT_TYPE) {
        None => true,
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json")
            })
            .unwrap_or(false),
    };
    let limit = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.settings.max_body_bytes)
        .unwrap_or(256 * 1024);
    let body = Bytes::from_request(req, payload);
    Box::pin(async move {
        if !content_type_ok {
            return Err(ApiError::UnsupportedMediaType(
                "send the body as application/json".into(),
            ));
        }
        body.await.map_err(|e| body_error(e, limit))
    })
}

/// Deserialises JSON, naming the failing field path in the error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::bad_request(
            "the request body is empty; a JSON object is required",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            ApiError::bad_request(format!("invalid JSON body: {inner}"))
        } else {
            ApiError::bad_request(format!("invalid JSON body at {path}: {inner}"))
        }
    })?;
    de.end()
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    Ok(value)
}

fn body_error(err: actix_web::Error, limit: usize) -> ApiError {
    match err.as_error::<PayloadError>() {
        Some(PayloadError::Overflow) => ApiError::PayloadTooLarge(limit),
        Some(other) => ApiError::bad_request(format!("could not read the request body: {other}")),
        None => ApiError::bad_request(format!("could not read the request body: {err}")),
    }
}

/// `web::Json`, `web::Query` and `web::Path` errors as problem+json.
pub fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    match err {
        JsonPayloadError::Overflow { limit }
        | JsonPayloadError::OverflowKnownLength { limit, .. } => {
            ApiError::PayloadTooLarge(limit).into()
        }
        JsonPayloadError::ContentType => {
            ApiError::UnsupportedMediaType("send the body as application/json".into()).into()
        }
        other => ApiError::bad_request(format!("invalid JSON body: {other}")).into(),
    }
}

pub fn query_error(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::bad_request(format!("invalid query string: {err}")).into()
}

pub fn path_error(err: PathError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::bad_request(format!("invalid path parameter: {err}")).into()
}

/// The raw `X-UiPath-FolderKey` header (validated by `access::authorize_folder`).
pub struct FolderKeyHeader(pub String);

pub const FOLDER_KEY_HEADER: &str = "X-UiPath-FolderKey";

impl FromRequest for FolderKeyHeader {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let value = req
            .headers()
            .get(FOLDER_KEY_HEADER)
            .ok_or_else(|| ApiError::bad_request(format!("missing header {FOLDER_KEY_HEADER}")))
            .and_then(|v| {
                v.to_str()
                    .map(|s| FolderKeyHeader(s.to_string()))
                    .map_err(|_| {
                        ApiError::bad_request(format!(
                            "header {FOLDER_KEY_HEADER} is not valid text"
                        ))
                    })
            });
        std::future::ready(value)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Body {
        deployment_ids: Vec<String>,
    }

    #[test]
    fn a_wrong_type_names_the_field_path() {
        let err = parse_json::<Body>(br#"{"deploymentIds": ["a", 5]}"#).unwrap_err();
        assert!(err.to_string().contains("deploymentIds[1]"), "{err}");
    }

    #[test]
    fn a_missing_field_is_named() {
        let err = parse_json::<Body>(br#"{}"#).unwrap_err();
        assert!(err.to_string().contains("deploymentIds"), "{err}");
    }

    #[test]
    fn trailing_garbage_and_empty_bodies_are_refused() {
        assert!(parse_json::<Body>(br#"{"deploymentIds": []} x"#).is_err());
        assert!(parse_json::<Body>(b"").is_err());
    }

    #[test]
    fn deeply_nested_json_is_refused_without_overflowing_the_stack() {
        let body = format!(
            "{{\"deploymentIds\": {}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(parse_json::<Body>(body.as_bytes()).is_err());
    }
}
