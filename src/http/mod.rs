//! Everything actix: the server, extractors, middleware, errors as problem+json, and
//! one module per API area (UiPath, Rainbond, identity, operations) owning its wire
//! types and routes, and the operator console's page and files (`console`). Below it the domain (`service`, `access`, `upgrade`) knows
//! nothing of HTTP.

pub mod auth;
pub mod console;
pub mod extract;
pub mod idempotency;
pub mod identity;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod ops;
pub mod prefer;
pub mod problem;
pub mod rainbond;
pub mod server;
pub mod uipath;
mod wire;

pub use problem::ApiError;
pub use server::Application;

use actix_web::{
    HttpRequest,
    body::MessageBody,
    dev::ServiceResponse,
    http::{StatusCode, header},
    middleware::{ErrorHandlerResponse, ErrorHandlers, from_fn},
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

/// States an API area's routes once: the table lists each handler, the handler's
/// `#[utoipa::path]` gives its method and path. The area's OpenAPI struct and its actix
/// resources are both made from that (`register`), so nothing is served undocumented
/// or documented unserved.
macro_rules! api_area {
    (
        $(#[$meta:meta])*
        $api:ident $(components($($schema:path),* $(,)?))? {
            $($($handler:ident)::+),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(utoipa::OpenApi)]
        #[openapi(paths($($($handler)::+),*) $(, components(schemas($($schema),*)))?)]
        pub struct $api;

        impl $api {
            /// Serves every route of the area, in the table's order.
            pub fn register(cfg: &mut actix_web::web::ServiceConfig) {
                $crate::http::register(
                    cfg,
                    &<$api as utoipa::OpenApi>::openapi(),
                    vec![$((stringify!($($handler)::+), actix_web::web::route().to($($handler)::+))),*],
                );
            }
        }
    };
}
pub(crate) use api_area;

/// Serves each `(handler path, route)` at the path and method that the handler's
/// operation has in `api` (its operation id is the handler's name, utoipa's default),
/// one actix resource per path in first-seen order, so a wrong method on a known path
/// is actix's 405 with `Allow` (turned into problem+json with the rest).
///
/// Panics when a handler has no operation in the document: a wiring mistake, seen the
/// moment any server or test starts.
pub fn register(
    cfg: &mut web::ServiceConfig,
    api: &utoipa::openapi::OpenApi,
    routes: Vec<(&'static str, actix_web::Route)>,
) {
    let mut resources: Vec<(String, actix_web::Resource)> = Vec::new();
    for (handler, route) in routes {
        let operation_id = handler.rsplit("::").next().unwrap_or(handler).trim();
        let (path, method) = api
            .paths
            .paths
            .iter()
            .find_map(|(path, item)| {
                operations(item)
                    .find(|(_, op)| op.operation_id.as_deref() == Some(operation_id))
                    .map(|(method, _)| (path.clone(), method))
            })
            .unwrap_or_else(|| panic!("{operation_id} is not in the area's OpenAPI document"));
        let route = route.method(method);
        match resources.iter_mut().find(|(p, _)| *p == path) {
            Some((_, resource)) => {
                let taken = std::mem::replace(resource, web::resource(""));
                *resource = taken.route(route);
            }
            None => resources.push((path.clone(), web::resource(path).route(route))),
        }
    }
    for (_, resource) in resources {
        cfg.service(resource);
    }
}

/// An OpenAPI path item's operations with their HTTP methods.
fn operations(
    item: &utoipa::openapi::PathItem,
) -> impl Iterator<Item = (actix_web::http::Method, &utoipa::openapi::path::Operation)> {
    use actix_web::http::Method;
    [
        (Method::GET, &item.get),
        (Method::POST, &item.post),
        (Method::PUT, &item.put),
        (Method::PATCH, &item.patch),
        (Method::DELETE, &item.delete),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.as_ref().map(|op| (method, op)))
}

pub fn configure(cfg: &mut web::ServiceConfig, settings: &Settings) {
    cfg.configure(ops::OpsApi::register)
        .service(openapi::swagger_ui(settings))
        .service(web::redirect("/docs", "/docs/"))
        .configure(|cfg| console::register(cfg, settings))
        .service(
            web::scope(rainbond::BASE)
                // Innermost: actix's bare 405 becomes problem+json, which
                // `rainbond_errors` then rewrites as every other error here.
                .wrap(
                    ErrorHandlers::new()
                        .handler(StatusCode::METHOD_NOT_ALLOWED, problem_for_bare_errors),
                )
                .wrap(from_fn(idempotency::keys))
                .wrap(from_fn(rainbond::rainbond_errors))
                .configure(rainbond::RainbondApi::register),
        )
        .configure(identity::IdentityApi::register)
        .service(
            web::scope(&settings.uipath_base_path())
                .wrap(from_fn(idempotency::keys))
                .configure(uipath::UiPathApi::register),
        )
        // After the UiPath scope, which shares the `/{organization}` prefix: a scope
        // takes every path under its prefix.
        .service(
            web::scope(&settings.organization_path())
                .configure(identity::OrganizationIdentityApi::register),
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
        StatusCode::METHOD_NOT_ALLOWED => {
            let allow = old
                .headers()
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .map(|allow| format!("; use {allow}"))
                .unwrap_or_default();
            (
                "method-not-allowed",
                format!("{} is not allowed on {}{allow}", req.method(), req.path()),
            )
        }
        _ => (
            "error",
            status.canonical_reason().unwrap_or("error").to_string(),
        ),
    };
    let mut response = Problem::new(status, slug, detail).into_response(status);
    // Keep headers the original response set for a reason (Allow, WWW-Authenticate),
    // and the console's security headers, which hold for its errors too.
    for name in [
        header::ALLOW,
        header::WWW_AUTHENTICATE,
        header::RETRY_AFTER,
        header::CONTENT_SECURITY_POLICY,
        header::X_CONTENT_TYPE_OPTIONS,
        header::X_FRAME_OPTIONS,
        header::REFERRER_POLICY,
        header::CACHE_CONTROL,
    ] {
        if let Some(value) = old.headers().get(&name) {
            response.headers_mut().insert(name, value.clone());
        }
    }
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, response).map_into_right_body(),
    ))
}

#[cfg(test)]
mod tests {
    use actix_web::{App, HttpResponse, http::StatusCode, test, web};
    use serde_json::Value;

    use super::extract::JsonBody;

    async fn echo(body: JsonBody<Value>) -> HttpResponse {
        HttpResponse::Ok().json(body.0)
    }

    /// The body extractor used to fall back to a 256 KiB limit and a 30 s timeout when
    /// the limits were not registered; a wiring mistake now fails closed and loudly.
    #[actix_web::test]
    async fn a_collaborator_the_server_did_not_register_is_an_internal_error_not_a_fallback() {
        let bare = test::init_service(App::new().route("/", web::post().to(echo))).await;
        let request = test::TestRequest::post()
            .uri("/")
            .insert_header(("content-type", "application/json"))
            .set_payload("{}")
            .to_request();
        let response = test::call_service(&bare, request).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);

        let limits = crate::app::Limits {
            max_body_bytes: 1024,
            max_operation_body_bytes: 1024,
            body_timeout: std::time::Duration::from_secs(5),
            max_header_bytes: 1024,
        };
        let wired = test::init_service(
            App::new()
                .app_data(web::Data::new(limits))
                .route("/", web::post().to(echo)),
        )
        .await;
        let request = test::TestRequest::post()
            .uri("/")
            .insert_header(("content-type", "application/json"))
            .set_payload("{}")
            .to_request();
        assert_eq!(
            test::call_service(&wired, request).await.status(),
            StatusCode::OK
        );
    }
}
