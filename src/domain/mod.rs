//! Validated values: each type's `parse` holds the rule for its kind of input, so an
//! invalid value cannot be constructed and every caller (routes, CLI, seeders) gets
//! the same checks and the same messages.

mod ids;
mod text;

pub use ids::{DeploymentId, FolderKey, MAX_TENANT_CHARS, TenantId};
pub use text::{MAX_TAG_CHARS, MAX_TAGS, MAX_TITLE_CHARS, RoutingName, Tags, Title};
