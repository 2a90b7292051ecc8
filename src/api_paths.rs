//! Paths and header names of uplift's API, shared by the server (`http`) and its own
//! client (`uplift upgrade`), so the two cannot drift apart. The route attributes in
//! `http` must spell the paths literally; a test there checks they match these.

/// The token endpoint (OAuth 2.0 client credentials), at the server's root.
pub const TOKEN_PATH: &str = "/identity_/connect/token";

/// The bulk call, relative to the UiPath base path.
pub const BULK_UPGRADE_PATH: &str = "models/deployed/apps/updateToLatestAppVersionBulk";

/// The tenant a UiPath call acts in; must be the token's tenant.
pub const TENANT_HEADER: &str = "X-UiPath-Internal-TenantId";

/// Accepted in place of `TENANT_HEADER` (UiPath's Python SDK sends it), under the same
/// rule; both sent with different values is a bad request.
pub const TENANT_HEADER_ALIAS: &str = "X-UiPath-TenantId";

/// The folder (key, a UUID) a UiPath call acts in.
pub const FOLDER_KEY_HEADER: &str = "X-UiPath-FolderKey";

/// Where the Rainbond-compatible API is served.
pub const RAINBOND_BASE: &str = "/openapi/v1";

/// The UiPath base path for an organization: `/{organization}/apps_/default/api/v1/default`.
pub fn uipath_base_path(organization: &str) -> String {
    format!("/{organization}/apps_/default/api/v1/default")
}
