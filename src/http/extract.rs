//! Request-body and header extractors whose errors are problem+json naming the field.

use actix_web::{
    FromRequest, HttpRequest,
    dev::Payload,
    error::{JsonPayloadError, PathError, QueryPayloadError},
    http::header,
    web::{Bytes, BytesMut},
};
use futures_util::{StreamExt, future::LocalBoxFuture};
use serde::de::DeserializeOwned;

use super::{ApiError, registered};
use crate::app::Limits;

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

/// A JSON body under the operation body limit (`BodyLimit::Operation`).
pub struct OperationJsonBody<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for OperationJsonBody<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_json_bytes_within(req, payload, BodyLimit::Operation);
        Box::pin(async move { parse_json(&body.await?).map(OperationJsonBody) })
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
    read_json_bytes_within(req, payload, BodyLimit::Default)
}

/// A JSON body read under `which` limit; the bulk call reads with
/// `BodyLimit::Operation` when it is asked to answer asynchronously.
pub fn read_json_bytes_within(
    req: &HttpRequest,
    payload: &mut Payload,
    which: BodyLimit,
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
    let body = read_body_within(req, payload, which);
    Box::pin(async move {
        if !content_type_ok {
            return Err(ApiError::UnsupportedMediaType(
                "send the body as application/json".into(),
            ));
        }
        body.await
    })
}

/// Which configured limit a body is read under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLimit {
    /// `max_body_bytes`: every call's body.
    Default,
    /// `max_operation_body_bytes`: the calls that create durable operations, whose id
    /// lists may be a hundred times longer than a synchronous call's.
    Operation,
}

/// Reads the whole body within the size limit and the body timeout: a client that
/// trickles its body gets a 408 instead of holding the request open indefinitely.
pub fn read_body(
    req: &HttpRequest,
    payload: &mut Payload,
) -> LocalBoxFuture<'static, Result<Bytes, ApiError>> {
    read_body_within(req, payload, BodyLimit::Default)
}

/// `read_body` under the chosen limit. A declared `Content-Length` over it is refused
/// before anything is read; a body that grows past it, as soon as it does.
pub fn read_body_within(
    req: &HttpRequest,
    payload: &mut Payload,
    which: BodyLimit,
) -> LocalBoxFuture<'static, Result<Bytes, ApiError>> {
    let limits = registered::<Limits>(req);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .map(|v| v.to_str().ok().and_then(|v| v.trim().parse::<usize>().ok()));
    // Content-Encoding is undone as actix's own body extractors do.
    let mut stream = actix_web::dev::Decompress::from_headers(payload.take(), req.headers());
    Box::pin(async move {
        let limits = limits?;
        let limit = match which {
            BodyLimit::Default => limits.max_body_bytes,
            BodyLimit::Operation => limits.max_operation_body_bytes.max(limits.max_body_bytes),
        };
        match declared {
            Some(None) => {
                return Err(ApiError::bad_request(
                    "could not read the request body: the Content-Length header is not a number",
                ));
            }
            Some(Some(length)) if length > limit => return Err(ApiError::PayloadTooLarge(limit)),
            _ => {}
        }
        let read = async {
            let mut body = BytesMut::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| {
                    ApiError::bad_request(format!("could not read the request body: {e}"))
                })?;
                if body.len() + chunk.len() > limit {
                    return Err(ApiError::PayloadTooLarge(limit));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body.freeze())
        };
        match tokio::time::timeout(limits.body_timeout, read).await {
            Ok(result) => result,
            Err(_) => Err(ApiError::RequestTimeout(format!(
                "the request body did not arrive within {} seconds",
                limits.body_timeout.as_secs()
            ))),
        }
    })
}

/// Deserialises JSON, naming the failing field path in the error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::bad_request(
            "the request body is empty; a JSON object is required",
        ));
    }
    let scan = scan_json(bytes);
    if scan.depth > MAX_JSON_DEPTH {
        return Err(ApiError::bad_request(format!(
            "invalid JSON body: nested deeper than {MAX_JSON_DEPTH} levels"
        )));
    }
    if scan.has_nul {
        return Err(ApiError::bad_request(
            "invalid JSON body: strings must not contain NUL characters (\\u0000)",
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

/// No request uplift serves nests deeper than a few levels.
pub const MAX_JSON_DEPTH: usize = 32;

/// What one pass over a JSON text finds: how deep arrays and objects nest (serde_json
/// skips unknown fields without a depth limit, so this bounds them too), and whether a
/// string holds a NUL character (`\u0000`), which PostgreSQL text cannot store.
struct JsonScan {
    depth: usize,
    has_nul: bool,
}

fn scan_json(bytes: &[u8]) -> JsonScan {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    let mut has_nul = false;
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            match b {
                b'u' if escaped => {
                    escaped = false;
                    has_nul |= bytes.get(i + 1..i + 5) == Some(b"0000");
                }
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    JsonScan {
        depth: deepest,
        has_nul,
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

/// A query string as `T`, with the message naming what was wrong; a parameter given
/// twice is refused (which of two values counts must never be a guess).
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    actix_web::web::Query::<T>::from_query(query)
        .map(actix_web::web::Query::into_inner)
        .map_err(|e| {
            let message = match &e {
                QueryPayloadError::Deserialize(inner) => inner.to_string(),
                other => other.to_string(),
            };
            let message = match message.strip_prefix("duplicate field `") {
                Some(rest) => format!(
                    "query parameter {} is given more than once",
                    rest.trim_end_matches('`')
                ),
                None => message,
            };
            ApiError::bad_request(message)
        })
}

pub fn query_error(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::bad_request(format!("invalid query string: {err}")).into()
}

pub fn path_error(err: PathError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::bad_request(format!("invalid path parameter: {err}")).into()
}

/// The raw `X-UiPath-FolderKey` header (validated by `access::authorize_folder`).
pub struct FolderKeyHeader(pub String);

pub use crate::api_paths::FOLDER_KEY_HEADER;

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
    fn nesting_depth_ignores_brackets_inside_strings() {
        assert_eq!(scan_json(br#"{"a": [1, {"b": "[[[{{{"}]}"#).depth, 3);
        assert_eq!(scan_json(br#"{"a": "\"[[["}"#).depth, 1);
        assert_eq!(scan_json(b"[]").depth, 1);
    }

    #[test]
    fn a_nul_character_in_any_string_is_refused_but_an_escaped_backslash_is_not() {
        assert!(scan_json(br#"{"title": "x\u0000y"}"#).has_nul);
        assert!(scan_json(br#"{"x\u0000": 1}"#).has_nul);
        assert!(!scan_json(br#"{"title": "x\\u0000y"}"#).has_nul);
        assert!(!scan_json(br#"{"title": "x\u0001y"}"#).has_nul);
        let err = parse_json::<Body>(br#"{"deploymentIds": ["a\u0000"]}"#).unwrap_err();
        assert!(err.to_string().contains("NUL"), "{err}");
    }

    #[test]
    fn deep_nesting_in_an_ignored_field_is_refused_too() {
        let body = format!(
            "{{\"extra\": {}{}, \"deploymentIds\": []}}",
            "[".repeat(40),
            "]".repeat(40)
        );
        let err = parse_json::<Body>(body.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("nested deeper"), "{err}");
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

    /// What `parse_json` must agree with: serde_json's own verdict, except that it also
    /// refuses deep nesting and NUL characters, saying so.
    fn agrees_with_serde_json(bytes: &[u8]) -> Result<(), proptest::test_runner::TestCaseError> {
        let ours = parse_json::<Body>(bytes);
        let theirs = serde_json::from_slice::<Body>(bytes);
        match (ours, theirs) {
            (Ok(a), Ok(b)) => proptest::prop_assert_eq!(a.deployment_ids, b.deployment_ids),
            (Ok(_), Err(e)) => {
                proptest::prop_assert!(false, "accepted what serde_json refuses: {e}")
            }
            (Err(e), Ok(_)) => {
                let why = e.to_string();
                proptest::prop_assert!(
                    why.contains("nested deeper") || why.contains("NUL"),
                    "refused what serde_json accepts: {why}"
                );
            }
            (Err(e), Err(_)) => {
                proptest::prop_assert!(matches!(e, ApiError::BadRequest(_)));
                proptest::prop_assert!(!e.to_string().is_empty());
            }
        }
        Ok(())
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_accepted_exactly_as_serde_json_accepts_them_or_refused_saying_why(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            agrees_with_serde_json(&bytes)?;
        }

        #[test]
        fn json_like_text_is_accepted_exactly_as_serde_json_accepts_it_or_refused_saying_why(text in r#"(\{"deploymentIds": \[)?[\[\]{}":,0-9a-zA-Z\\ ]{0,200}(\]\})?"#) {
            agrees_with_serde_json(text.as_bytes())?;
        }
    }
}
