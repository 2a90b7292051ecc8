//! How many deployments of a folder run each version of each app (extension): the
//! console's per-app version chart, in one call whatever the folder's size.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    access::Permission,
    app::AppState,
    http::{ApiError, auth::UiPathCaller, extract::FolderKeyHeader},
    service::listing::{self, AppVersionCounts},
};

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionCounts {
    /// One entry per app deployed in the folder, by system name.
    pub value: Vec<AppVersions>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppVersions {
    pub app_system_name: String,
    /// The app's latest published integer version (null when none is published).
    pub latest_version: Option<i32>,
    pub latest_sem_version: Option<String>,
    /// The versions the folder's deployments run, oldest first.
    pub versions: Vec<VersionCount>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionCount {
    pub version: i32,
    pub sem_version: String,
    /// Deployments of the folder on this version.
    pub count: u64,
}

impl From<AppVersionCounts> for AppVersions {
    fn from(a: AppVersionCounts) -> Self {
        let (latest_version, latest_sem_version) = match a.latest {
            Some(l) => (Some(l.version), Some(l.package_version)),
            None => (None, None),
        };
        AppVersions {
            app_system_name: a.app_system_name,
            latest_version,
            latest_sem_version,
            versions: a
                .versions
                .into_iter()
                .map(|(version, sem_version, count)| VersionCount {
                    version,
                    sem_version,
                    count,
                })
                .collect(),
        }
    }
}

/// Deployments per version, per app (uplift extension)
///
/// The folder's deployments counted by app and version, with each app's latest
/// published version.
#[utoipa::path(
    get,
    path = "/models/deployed/apps/versionCounts",
    tag = "uplift extensions",
    params(super::FolderHeader),
    responses((status = 200, description = "Counts per app and version", body = VersionCounts)),
)]
pub async fn deployed_version_counts(
    state: web::Data<AppState>,
    caller: UiPathCaller,
    folder_key: FolderKeyHeader,
) -> Result<HttpResponse, ApiError> {
    let needs = caller.needs(Permission::AppsView)?;
    let folder = needs.in_folder(&state.db, &folder_key).await?.folder;
    let counts = listing::version_counts(&state.db, caller.tenant_id(), folder.id).await?;
    Ok(HttpResponse::Ok().json(VersionCounts {
        value: counts.into_iter().map(AppVersions::from).collect(),
    }))
}
