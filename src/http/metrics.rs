//! Middleware: counts and times every request in the application's `Metrics`.

use std::time::Instant;

use actix_web::{
    Error,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
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
    let method = req.method().clone();
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
    metrics.request_finished(method.as_str(), &route, status, started.elapsed());
    result
}
