//! HTTP routes, one module per API area, and the handling of requests no route takes.

pub mod identity;
pub mod ops;
pub mod uipath;

use actix_web::{
    body::MessageBody,
    dev::ServiceResponse,
    http::{StatusCode, header},
    middleware::{ErrorHandlerResponse, from_fn},
    web,
};

use crate::{
    config::Settings,
    error::{PROBLEM_JSON, Problem},
    idempotency,
};

pub fn configure(cfg: &mut web::ServiceConfig, settings: &Settings) {
    cfg.configure(ops::configure)
        .configure(identity::configure)
        .service(
            web::scope(&settings.uipath_base_path())
                .wrap(from_fn(idempotency::middleware))
                .configure(uipath::configure),
        );
}

/// Turns any error response that is not already JSON (unknown route, wrong method,
/// actix's own extractor errors) into problem+json.
pub fn problem_for_bare_errors<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    // problem+json is already in shape; plain JSON is a handler's deliberate answer in
    // another standard's shape (the token endpoint's OAuth errors). Only what actix
    // produced on its own (text or empty bodies) is rewritten.
    let keep = res.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes().starts_with(PROBLEM_JSON.as_bytes())
            || v.as_bytes().starts_with(b"application/json")
    });
    if keep {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let (req, old) = res.into_parts();
    let (slug, detail) = match status {
        StatusCode::NOT_FOUND => (
            "not-found",
            format!("no route for {} {}", req.method(), req.path()),
        ),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method-not-allowed",
            format!("{} is not allowed on {}", req.method(), req.path()),
        ),
        _ => (
            "error",
            status.canonical_reason().unwrap_or("error").to_string(),
        ),
    };
    let mut response = Problem::new(status, slug, detail).into_response(status);
    // Keep headers the original response set for a reason (Allow, WWW-Authenticate).
    for name in [header::ALLOW, header::WWW_AUTHENTICATE, header::RETRY_AFTER] {
        if let Some(value) = old.headers().get(&name) {
            response.headers_mut().insert(name, value.clone());
        }
    }
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, response).map_into_right_body(),
    ))
}
