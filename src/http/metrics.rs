//! Middleware: counts and times every request in the application's `Metrics`.

use std::time::Instant;

use actix_web::{
    Error,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::Method,
    middleware::Next,
};

use super::registered;
use crate::metrics::{Metrics, UNMATCHED};

pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let metrics = registered::<Metrics>(req.request())?;
    let started = Instant::now();
    let method = method_label(req.method());
    metrics.request_started();
    let result = next.call(req).await;
    let (route, status) = match &result {
        Ok(res) => (
            res.request().match_pattern(),
            res.response().status().as_u16(),
        ),
        Err(e) => (None, e.as_response_error().status_code().as_u16()),
    };
    let route = route.unwrap_or_else(|| UNMATCHED.to_string());
    metrics.request_finished(method, &route, status, started.elapsed());
    result
}

/// Method label of a request whose method is none of the standard ones: actix accepts
/// any token as a method, and one series per invented method would grow the registry
/// without bound.
pub const OTHER_METHOD: &str = "other";

/// The method's label, from a closed set: the nine methods of RFC 9110, else `other`.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => OTHER_METHOD,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_standard_methods_are_labelled_by_name() {
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        assert_eq!(
            method_label(&Method::from_bytes(b"BREW").unwrap()),
            OTHER_METHOD
        );
        assert_eq!(
            method_label(&Method::from_bytes(b"get").unwrap()),
            OTHER_METHOD
        );
    }
}
