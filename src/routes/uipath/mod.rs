//! UiPath Apps API routes, served under `/{organization}/apps_/default/api/v1/default`.

mod bulk_upgrade;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(bulk_upgrade::update_to_latest_app_version_bulk);
}
