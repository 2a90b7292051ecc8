//! Operator endpoints: liveness and readiness.

use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    error::{ApiError, Problem},
    startup::AppState,
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(healthz).service(readyz);
}

/// The operator routes, for the OpenAPI document and the 405 fallbacks.
#[derive(utoipa::OpenApi)]
#[openapi(paths(healthz, readyz))]
pub struct OpsApi;

#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    /// `ok` (alive) or `ready` (the database answers).
    pub status: &'static str,
}

/// Liveness
///
/// The process is up and serving HTTP.
#[utoipa::path(tag = "Operations", responses((status = 200, description = "Alive", body = Status)))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Status { status: "ok" })
}

/// Readiness
///
/// The database answers; 503 while it does not.
#[utoipa::path(
    tag = "Operations",
    responses(
        (status = 200, description = "Ready", body = Status),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.db.ping().await.map_err(ApiError::Unavailable)?;
    Ok(HttpResponse::Ok().json(Status { status: "ready" }))
}
