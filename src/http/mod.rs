//! Everything actix: the server, extractors, middleware, errors as problem+json, and
//! one module per API area (UiPath, Rainbond, identity, operations) owning its wire
//! types and routes. Below it the domain (`service`, `access`, `upgrade`) knows
//! nothing of HTTP.

pub mod auth;
pub mod extract;
pub mod idempotency;
pub mod identity;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod ops;
pub mod problem;
pub mod rainbond;
pub mod server;
pub mod uipath;

pub use problem::ApiError;
pub use server::Application;

use actix_web::{
    HttpRequest, ResponseError,
    body::MessageBody,
    dev::ServiceResponse,
    http::{StatusCode, header},
    middleware::{ErrorHandlerResponse, from_fn},
    web,
};

use self::problem::{PROBLEM_JSON, Problem};
use crate::config::Settings;

/// A collaborator the server registered (`server::register_state`). Missing one is a
/// wiring bug: an internal error, never a silent fallback to another behaviour.
pub fn registered<T: 'static>(req: &HttpRequest) -> Result<web::Data<T>, ApiError> {
    req.app_data::<web::Data<T>>().cloned().ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!(
            "{} is not registered with the server",
            std::any::type_name::<T>()
        ))
    })
}

pub fn configure(cfg: &mut web::ServiceConfig, settings: &Settings) {
    cfg.configure(ops::configure)
        .configure(|cfg| {
            method_not_allowed_fallbacks(cfg, &<ops::OpsApi as utoipa::OpenApi>::openapi())
        })
        .service(openapi::swagger_ui(settings))
        .service(web::redirect("/docs", "/docs/"))
        .service(
            web::scope(rainbond::BASE)
                .wrap(from_fn(idempotency::rainbond))
                .wrap(from_fn(rainbond::rainbond_errors))
                .configure(rainbond::configure),
        )
        .configure(identity::configure)
        .service(
            web::scope(&settings.uipath_base_path())
                .wrap(from_fn(idempotency::uipath))
                .configure(uipath::configure),
        );
}

/// Turns any bare error response (unknown route, actix's own extractor errors) into
/// problem+json.
pub fn problem_for_bare_errors<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    // A JSON error body is already structured: problem+json, or Rainbond's error body
    // on its routes, the token endpoint's OAuth errors. Only bare answers (empty or plain text) are rewritten.
    let structured = res.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
        let v = v.as_bytes();
        v.starts_with(PROBLEM_JSON.as_bytes()) || v.starts_with(b"application/json")
    });
    if structured {
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

/// Registers, after the real routes, one resource per documented path that answers any
/// other method with 405 and the `Allow` header (actix would answer 404: its method
/// guards make a wrong method look like an unknown path).
pub fn method_not_allowed_fallbacks(cfg: &mut web::ServiceConfig, api: &utoipa::openapi::OpenApi) {
    for (path, item) in &api.paths.paths {
        let allowed: Vec<&str> = [
            ("GET", item.get.is_some()),
            ("POST", item.post.is_some()),
            ("PUT", item.put.is_some()),
            ("PATCH", item.patch.is_some()),
            ("DELETE", item.delete.is_some()),
        ]
        .into_iter()
        .filter_map(|(method, present)| present.then_some(method))
        .collect();
        let allow = allowed.join(", ");
        cfg.service(web::resource(path.as_str()).to(move |req: HttpRequest| {
            let allow = allow.clone();
            async move {
                let mut response = ApiError::MethodNotAllowed(format!(
                    "{} is not allowed on {}; use {allow}",
                    req.method(),
                    req.path()
                ))
                .error_response();
                if let Ok(value) = header::HeaderValue::from_str(&allow) {
                    response.headers_mut().insert(header::ALLOW, value);
                }
                response
            }
        }));
    }
}
