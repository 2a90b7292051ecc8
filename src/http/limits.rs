//! Request limits enforced before any handler runs: header size and NUL characters in
//! the path or query.

use actix_web::{
    Error,
    body::{BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::header,
    middleware::Next,
};

use super::{ApiError, registered};
use crate::app::Limits;

/// Refuses requests whose headers add up to more than `max_header_bytes` with a 431.
/// actix itself accepts up to 128 KiB of headers; nothing uplift serves needs more than
/// a token and a few ids' worth.
pub async fn header_limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let max = registered::<Limits>(req.request())?.max_header_bytes;
    // Name, ": ", value and CRLF, as on the wire. Authorization is left to the token
    // check, which answers an oversized token with a 401 naming the token.
    let total: usize = req
        .headers()
        .iter()
        .filter(|(name, _)| *name != header::AUTHORIZATION)
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if total > max {
        return Ok(req.error_response(ApiError::HeadersTooLarge(max)));
    }
    // PostgreSQL text cannot hold NUL: a %00 in a path segment or query value that
    // reached a query would be a database error, so it is the client's 400 here.
    let uri = req.uri().to_string().to_ascii_lowercase();
    if uri.contains("%00") {
        return Ok(req.error_response(ApiError::bad_request(
            "the path and query must not contain NUL characters (%00)",
        )));
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_boxed_body)
}
