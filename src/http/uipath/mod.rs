//! UiPath Apps API routes, served under `/{organization}/apps_/default/api/v1/default`.

mod bulk_upgrade;
mod catalog;
mod deployed_apps;
mod folders;
mod history;
mod odata;
mod operations;
mod params;
mod rollouts;
mod version_counts;
mod webhooks;

use utoipa::IntoParams;

pub use self::bulk_upgrade::BulkParams;

/// The folder a call acts in.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct FolderHeader {
    /// Key (UUID) of the folder; the caller needs the call's permission there.
    #[param(rename = "X-UiPath-FolderKey")]
    folder_key: String,
}

super::api_area! {
    /// The UiPath routes, with paths relative to the UiPath base path.
    UiPathApi {
        // The fixed paths (name check, version counts) first, before the `{deployed_app_id}` routes.
        deployed_apps::check_unique_name,
        version_counts::deployed_version_counts,
        bulk_upgrade::update_to_latest_app_version_bulk,
        deployed_apps::list_deployed_apps,
        history::deployment_history,
        history::rollback_deployment,
        deployed_apps::edit_deployed_app,
        deployed_apps::deploy,
        catalog::publish_coded_app,
        catalog::published_apps,
        catalog::published_versions,
        catalog::unpublish_version,
        folders::list_folders,
        // The fixed `/operations/upgrades` before the `{operation_id}` routes.
        operations::create_upgrade_operation,
        operations::list_operations,
        operations::get_operation,
        operations::operation_items,
        operations::cancel_operation,
        webhooks::create_webhook,
        webhooks::list_webhooks,
        webhooks::get_webhook,
        webhooks::update_webhook,
        webhooks::delete_webhook,
        webhooks::rotate_webhook_secret,
        webhooks::webhook_deliveries,
        webhooks::replay_webhook_delivery,
        webhooks::replay_webhook,
        webhooks::test_webhook,
        // The fixed `/rollouts` before the `{rollout_id}` routes.
        rollouts::create_rollout,
        rollouts::list_rollouts,
        rollouts::get_rollout,
        rollouts::pause_rollout,
        rollouts::resume_rollout,
        rollouts::approve_rollout,
        rollouts::abort_rollout,
        rollouts::retry_rollout,
        rollouts::rollback_rollout,
    }
}
