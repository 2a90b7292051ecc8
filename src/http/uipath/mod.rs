//! UiPath Apps API routes, served under `/{organization}/apps_/default/api/v1/default`.

mod bulk_upgrade;
mod catalog;
mod deployed_apps;
mod history;
mod odata;

use actix_web::web;
use utoipa::{IntoParams, OpenApi};

pub use self::bulk_upgrade::BulkParams;

pub fn configure(cfg: &mut web::ServiceConfig) {
    // The name check's fixed path must be registered before the `{deployedAppId}` routes.
    cfg.service(deployed_apps::check_unique_name)
        .service(bulk_upgrade::update_to_latest_app_version_bulk)
        .service(deployed_apps::list_deployed_apps)
        .service(history::deployment_history)
        .service(history::rollback_deployment)
        .service(deployed_apps::edit_deployed_app)
        .service(deployed_apps::deploy)
        .service(catalog::publish_coded_app)
        .service(catalog::published_apps)
        .service(catalog::published_versions)
        .service(catalog::unpublish_version);
    super::method_not_allowed_fallbacks(cfg, &UiPathApi::openapi());
}

/// The folder a call acts in.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct FolderHeader {
    /// Key (UUID) of the folder; the caller needs the call's permission there.
    #[param(rename = "X-UiPath-FolderKey")]
    folder_key: String,
}

/// The UiPath routes, with paths relative to the UiPath base path.
#[derive(OpenApi)]
#[openapi(paths(
    bulk_upgrade::update_to_latest_app_version_bulk,
    catalog::publish_coded_app,
    catalog::published_apps,
    catalog::published_versions,
    catalog::unpublish_version,
    deployed_apps::deploy,
    deployed_apps::list_deployed_apps,
    deployed_apps::edit_deployed_app,
    deployed_apps::check_unique_name,
    history::deployment_history,
    history::rollback_deployment,
))]
pub struct UiPathApi;
