//! Operator endpoints: liveness, readiness and Prometheus metrics.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    app::AppState,
    http::problem::{ApiError, Problem},
};

const READINESS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

super::api_area! {
    /// The operator routes: liveness, readiness, metrics.
    OpsApi {
        healthz,
        readyz,
        metrics,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    /// `ok` (alive) or `ready` (the database answers).
    pub status: &'static str,
}

/// Liveness
///
/// The process is up and serving HTTP.
#[utoipa::path(get, path = "/healthz", tag = "Operations", responses((status = 200, description = "Alive", body = Status)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Status { status: "ok" })
}

/// Readiness
///
/// The database answers; 503 while it does not.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "Operations",
    responses(
        (status = 200, description = "Ready", body = Status),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    // The pool keeps retrying a connection to a database that is down for up to its
    // acquire timeout; a probe must answer well before an orchestrator gives up on it.
    match tokio::time::timeout(READINESS_TIMEOUT, state.db.ping()).await {
        Ok(result) => result.map_err(ApiError::Unavailable)?,
        Err(_) => {
            return Err(ApiError::Unavailable(sea_orm::DbErr::Custom(format!(
                "the database did not answer within {} s",
                READINESS_TIMEOUT.as_secs()
            ))));
        }
    }
    Ok(HttpResponse::Ok().json(Status { status: "ready" }))
}

/// Prometheus metrics
///
/// Requests by route and status with latency histograms, bulk-call sizes, upgrade
/// outcomes by result and failure code, and database pool use, in Prometheus' text
/// format. Unauthenticated, like the probes: expose it to the scraper's network only.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "Operations",
    responses((status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain; version=0.0.4")),
)]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render(&state.db))
}
