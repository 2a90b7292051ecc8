//! Folder and tenant permissions, read from the database on every request (so a revoked
//! grant stops working on the very next call). Roles mirror UiPath Orchestrator's.

use std::fmt;

use entity::{folder, role_assignment};
use sea_orm::{
    ActiveEnum, ColumnTrait, Condition, ConnectionTrait, EntityTrait, JoinType, QueryFilter,
    QueryOrder, QuerySelect, RelationDef,
    sea_query::{Expr, ExprTrait},
};

use crate::{
    auth::{Principal, scopes::ScopeRule},
    domain::FolderKey,
    error::Error,
};

/// Deepest folder nesting walked when collecting inherited grants.
const MAX_FOLDER_DEPTH: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    AppsView,
    /// `Apps.View`, for watching operations: any token that may start one may watch it.
    OperationsView,
    AppsEdit,
    AppsCreate,
    AppsDelete,
    AppVersionsView,
    AppVersionsCreate,
    AppVersionsDelete,
    /// Reading the tenant's webhook endpoints and their delivery logs.
    WebhooksView,
    /// Registering, changing, removing webhook endpoints; replaying; rotating secrets.
    WebhooksManage,
}

impl Permission {
    /// The token scope a call that needs this permission must carry: reads need
    /// `Apps.Read`, folder writes `Apps.Write` with `OR.Folders.Read`, tenant writes
    /// (publish, unpublish) `Apps.Write` (`Apps` covers both).
    pub fn scope(self) -> ScopeRule {
        match self {
            Permission::AppsView | Permission::AppVersionsView | Permission::WebhooksView => {
                ScopeRule::Read
            }
            Permission::OperationsView => ScopeRule::ReadOrWriteInFolder,
            Permission::AppsEdit | Permission::AppsCreate | Permission::AppsDelete => {
                ScopeRule::WriteInFolder
            }
            Permission::AppVersionsCreate
            | Permission::AppVersionsDelete
            | Permission::WebhooksManage => ScopeRule::Write,
        }
    }

    fn is_tenant_level(self) -> bool {
        matches!(
            self,
            Permission::AppVersionsView
                | Permission::AppVersionsCreate
                | Permission::AppVersionsDelete
                | Permission::WebhooksView
                | Permission::WebhooksManage
        )
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Permission::AppsView | Permission::OperationsView => "Apps.View",
            Permission::AppsEdit => "Apps.Edit",
            Permission::AppsCreate => "Apps.Create",
            Permission::AppsDelete => "Apps.Delete",
            Permission::AppVersionsView => "AppVersions.View",
            Permission::AppVersionsCreate => "AppVersions.Create",
            Permission::AppVersionsDelete => "AppVersions.Delete",
            Permission::WebhooksView => "Webhooks.View",
            Permission::WebhooksManage => "Webhooks.Manage",
        })
    }
}

pub use entity::role_assignment::Role;

/// Whether holding `role` (tenant-wide when `tenant_wide`) grants `permission`.
/// Administrator: everything, tenant-level permissions only when granted tenant-wide;
/// FolderAdministrator: the four Apps permissions in a folder and below;
/// AutomationUser: `Apps.View`.
pub fn role_grants(role: Role, permission: Permission, tenant_wide: bool) -> bool {
    if permission.is_tenant_level() {
        return tenant_wide && role == Role::Administrator;
    }
    match role {
        Role::Administrator | Role::FolderAdministrator => true,
        Role::AutomationUser => {
            matches!(
                permission,
                Permission::AppsView | Permission::OperationsView
            )
        }
    }
}

/// Loads the folder named by `key` in the caller's tenant and checks that the caller
/// holds `permission` there (directly, on an ancestor, or tenant-wide).
#[tracing::instrument(skip_all, level = "debug", fields(permission = %permission))]
pub async fn authorize_folder<C: ConnectionTrait>(
    db: &C,
    principal: &Principal,
    key: &str,
    permission: Permission,
) -> Result<folder::Model, Error> {
    let key = FolderKey::parse(key)?;
    // One round trip for the common case: the folder together with the caller's grants
    // on it and tenant-wide. Only when those do not suffice and the folder has a parent
    // are the ancestors' grants read as well (`authorize_in_folder`).
    let rows = folder::Entity::find()
        .filter(folder::Column::Key.eq(key.as_str()))
        .filter(folder::Column::TenantId.eq(&principal.tenant_id))
        .select_also(role_assignment::Entity)
        .join(
            JoinType::LeftJoin,
            grants_on_folder_or_tenant(&principal.subject),
        )
        .all(db)
        .await?;
    let Some(folder) = rows.first().map(|(f, _)| f.clone()) else {
        // Same answer as "no permission": never reveal which folders exist.
        return Err(forbidden(permission));
    };
    if rows
        .iter()
        .filter_map(|(_, grant)| grant.as_ref())
        .any(|grant| grants(grant, permission))
    {
        return Ok(folder);
    }
    if folder.parent_id.is_none() {
        // The full check would look at exactly these grants again.
        return Err(forbidden(permission));
    }
    authorize_in_folder(db, principal, folder, permission).await
}

/// `folders LEFT JOIN role_assignments`: the subject's grants in the folder's tenant
/// that are on that folder or tenant-wide.
fn grants_on_folder_or_tenant(subject: &str) -> RelationDef {
    let subject = subject.to_string();
    folder::Entity::belongs_to(role_assignment::Entity)
        .from(folder::Column::TenantId)
        .to(role_assignment::Column::TenantId)
        .on_condition(move |folders, grants| {
            Condition::all()
                .add(Expr::col((grants.clone(), role_assignment::Column::Subject)).eq(&subject))
                .add(
                    Condition::any()
                        .add(
                            Expr::col((grants.clone(), role_assignment::Column::FolderId))
                                .is_null(),
                        )
                        .add(
                            Expr::col((grants, role_assignment::Column::FolderId))
                                .equals((folders, folder::Column::Id)),
                        ),
                )
        })
        .into()
}

/// Checks that the caller holds `permission` in an already loaded folder of its tenant
/// (directly, on an ancestor, or tenant-wide).
#[tracing::instrument(skip_all, level = "debug", fields(permission = %permission))]
pub async fn authorize_in_folder<C: ConnectionTrait>(
    db: &C,
    principal: &Principal,
    folder: folder::Model,
    permission: Permission,
) -> Result<folder::Model, Error> {
    if folder.tenant_id != principal.tenant_id {
        return Err(forbidden(permission));
    }
    let chain = ancestry(db, &folder).await?;
    if holds(db, principal, &chain, permission).await? {
        Ok(folder)
    } else {
        Err(forbidden(permission))
    }
}

/// Checks a tenant-level permission (such as `AppVersions.Create`). Reading the
/// catalogue (`AppVersions.View`) is also open to any role in the tenant.
#[tracing::instrument(skip_all, level = "debug", fields(permission = %permission))]
pub async fn authorize_tenant<C: ConnectionTrait>(
    db: &C,
    principal: &Principal,
    permission: Permission,
) -> Result<(), Error> {
    if permission == Permission::AppVersionsView {
        return authorize_catalog_read(db, principal).await;
    }
    if holds(db, principal, &[], permission).await? {
        Ok(())
    } else {
        Err(Error::Forbidden(format!(
            "you need the {permission} permission in this tenant"
        )))
    }
}

/// Reading the tenant's catalogue of published apps: `AppVersions.View` tenant-wide, or
/// any role in the tenant (whoever deploys or runs apps needs to see what exists).
async fn authorize_catalog_read<C: ConnectionTrait>(
    db: &C,
    principal: &Principal,
) -> Result<(), Error> {
    if holds(db, principal, &[], Permission::AppVersionsView).await? {
        return Ok(());
    }
    let any_role = role_assignment::Entity::find()
        .filter(role_assignment::Column::TenantId.eq(&principal.tenant_id))
        .filter(role_assignment::Column::Subject.eq(&principal.subject))
        .one(db)
        .await?
        .is_some();
    if any_role {
        Ok(())
    } else {
        Err(Error::Forbidden(
            "you need the AppVersions.View permission or a role in this tenant".into(),
        ))
    }
}

/// The folders of the caller's tenant where the caller holds `permission` (directly,
/// on an ancestor, or tenant-wide), in id order: what a folder picker may offer. Two
/// queries whatever the number of folders: the tenant's folders and the caller's
/// grants; inheritance is worked out in memory.
#[tracing::instrument(skip_all, level = "debug", fields(permission = %permission))]
pub async fn folders_with<C: ConnectionTrait>(
    db: &C,
    principal: &Principal,
    permission: Permission,
) -> Result<Vec<folder::Model>, Error> {
    let grants = role_assignment::Entity::find()
        .filter(role_assignment::Column::TenantId.eq(&principal.tenant_id))
        .filter(role_assignment::Column::Subject.eq(&principal.subject))
        .all(db)
        .await?;
    let granting: Vec<&role_assignment::Model> = grants
        .iter()
        .filter(|g| self::grants(g, permission))
        .collect();
    if granting.is_empty() {
        return Ok(Vec::new());
    }
    let folders = folder::Entity::find()
        .filter(folder::Column::TenantId.eq(&principal.tenant_id))
        .order_by_asc(folder::Column::Id)
        .all(db)
        .await?;
    if granting.iter().any(|g| g.folder_id.is_none()) {
        return Ok(folders);
    }
    let granted: std::collections::HashSet<i32> =
        granting.iter().filter_map(|g| g.folder_id).collect();
    let parent: std::collections::HashMap<i32, Option<i32>> =
        folders.iter().map(|f| (f.id, f.parent_id)).collect();
    let holds_in = |id: i32| {
        let mut current = Some(id);
        // Bounded like `ancestry`: a cycle cannot loop forever.
        for _ in 0..MAX_FOLDER_DEPTH {
            let Some(at) = current else { break };
            if granted.contains(&at) {
                return true;
            }
            current = parent.get(&at).copied().flatten();
        }
        false
    };
    Ok(folders.into_iter().filter(|f| holds_in(f.id)).collect())
}

/// A tenant named in the path (`{cloudTenantId}`) must be the caller's own.
pub fn require_own_tenant(principal: &Principal, tenant_in_path: &str) -> Result<(), Error> {
    if tenant_in_path == principal.tenant_id {
        Ok(())
    } else {
        Err(Error::Forbidden(
            "the token was issued for another tenant than the path names".into(),
        ))
    }
}

fn forbidden(permission: Permission) -> Error {
    Error::Forbidden(format!(
        "you need the {permission} permission in this folder"
    ))
}

/// The folder's id followed by its ancestors' ids, nearest first.
pub async fn ancestry<C: ConnectionTrait>(
    db: &C,
    folder: &folder::Model,
) -> Result<Vec<i32>, Error> {
    let mut chain = vec![folder.id];
    let mut parent = folder.parent_id;
    while let Some(id) = parent {
        if chain.len() >= MAX_FOLDER_DEPTH || chain.contains(&id) {
            break;
        }
        chain.push(id);
        parent = folder::Entity::find_by_id(id)
            .one(db)
            .await?
            .and_then(|f| f.parent_id);
    }
    Ok(chain)
}

async fn holds<C: ConnectionTrait>(
    db: &C,
    principal: &Principal,
    folder_chain: &[i32],
    permission: Permission,
) -> Result<bool, Error> {
    let mut scope = Condition::any().add(role_assignment::Column::FolderId.is_null());
    if !folder_chain.is_empty() {
        scope = scope.add(role_assignment::Column::FolderId.is_in(folder_chain.iter().copied()));
    }
    let grants = role_assignment::Entity::find()
        .filter(role_assignment::Column::TenantId.eq(&principal.tenant_id))
        .filter(role_assignment::Column::Subject.eq(&principal.subject))
        .filter(scope)
        .all(db)
        .await?;
    Ok(grants.iter().any(|g| self::grants(g, permission)))
}

fn grants(grant: &role_assignment::Model, permission: Permission) -> bool {
    role_grants(grant.role, permission, grant.folder_id.is_none())
}

/// The roles (as stored) that grant a folder-level `permission` when held on the
/// folder itself or tenant-wide — the same set either way, which is what lets a
/// single statement check such a grant (`upgrade::upgrade_single_where_granted`).
/// `None` for tenant-level permissions, which only a tenant-wide grant gives.
pub fn roles_granting_in_folder(permission: Permission) -> Option<Vec<String>> {
    if permission.is_tenant_level() {
        return None;
    }
    Some(
        Role::ALL
            .into_iter()
            .filter(|&role| role_grants(role, permission, false))
            .map(|role| role.to_value())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_roles_a_single_statement_checks_are_those_granting_on_the_folder_and_tenant_wide() {
        for permission in [Permission::AppsEdit, Permission::AppsView] {
            let roles = roles_granting_in_folder(permission).unwrap();
            for role in Role::ALL {
                let listed = roles.contains(&role.to_value());
                assert_eq!(
                    listed,
                    role_grants(role, permission, false),
                    "{role:?} {permission}"
                );
                assert_eq!(
                    listed,
                    role_grants(role, permission, true),
                    "{role:?} {permission}"
                );
            }
        }
        assert_eq!(
            roles_granting_in_folder(Permission::AppsEdit).unwrap(),
            ["Administrator", "FolderAdministrator"]
        );
        assert_eq!(roles_granting_in_folder(Permission::WebhooksManage), None);
    }

    #[test]
    fn folder_administrator_holds_every_apps_permission_but_no_tenant_permission() {
        for p in [
            Permission::AppsView,
            Permission::AppsEdit,
            Permission::AppsCreate,
            Permission::AppsDelete,
        ] {
            assert!(role_grants(Role::FolderAdministrator, p, false));
        }
        assert!(!role_grants(
            Role::FolderAdministrator,
            Permission::AppVersionsCreate,
            true
        ));
    }

    #[test]
    fn the_scope_a_permission_needs_follows_from_it() {
        assert_eq!(Permission::AppsView.scope(), ScopeRule::Read);
        assert_eq!(Permission::AppVersionsView.scope(), ScopeRule::Read);
        assert_eq!(Permission::AppsEdit.scope(), ScopeRule::WriteInFolder);
        assert_eq!(Permission::AppsCreate.scope(), ScopeRule::WriteInFolder);
        assert_eq!(Permission::AppVersionsCreate.scope(), ScopeRule::Write);
        assert_eq!(Permission::AppVersionsDelete.scope(), ScopeRule::Write);
    }

    #[test]
    fn automation_user_may_only_view() {
        assert!(role_grants(
            Role::AutomationUser,
            Permission::AppsView,
            false
        ));
        assert!(!role_grants(
            Role::AutomationUser,
            Permission::AppsEdit,
            true
        ));
    }

    #[test]
    fn administrator_gets_tenant_permissions_only_when_granted_tenant_wide() {
        assert!(role_grants(
            Role::Administrator,
            Permission::AppVersionsCreate,
            true
        ));
        assert!(!role_grants(
            Role::Administrator,
            Permission::AppVersionsCreate,
            false
        ));
        assert!(role_grants(
            Role::Administrator,
            Permission::AppsEdit,
            false
        ));
    }

    #[test]
    fn role_names_parse_case_insensitively_and_unknown_ones_are_refused() {
        assert_eq!(
            "folderadministrator".parse::<Role>().unwrap(),
            Role::FolderAdministrator
        );
        assert!("Owner".parse::<Role>().is_err());
    }
}
