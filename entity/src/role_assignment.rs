use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "role_assignments")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub tenant_id: String,
    pub subject: String,
    pub role: Role,
    /// `None` grants the role tenant-wide.
    pub folder_id: Option<i32>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Built-in roles, as UiPath Orchestrator names them (what each grants: `access`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum Role {
    #[sea_orm(string_value = "Administrator")]
    Administrator,
    #[sea_orm(string_value = "FolderAdministrator")]
    FolderAdministrator,
    #[sea_orm(string_value = "AutomationUser")]
    AutomationUser,
}

impl Role {
    pub const ALL: [Role; 3] = [
        Role::Administrator,
        Role::FolderAdministrator,
        Role::AutomationUser,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Administrator => "Administrator",
            Role::FolderAdministrator => "FolderAdministrator",
            Role::AutomationUser => "AutomationUser",
        }
    }
}

/// Case-insensitive, as operators type role names on the command line.
impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!("unknown role {s:?}; roles are Administrator, FolderAdministrator, AutomationUser")
            })
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
