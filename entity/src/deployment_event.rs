use sea_orm::entity::prelude::*;

/// Append-only: a row is written in the same transaction as the change it records and
/// never updated afterwards.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "deployment_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub tenant_id: String,
    pub deployment_id: String,
    pub kind: EventKind,
    pub from_version: Option<i32>,
    pub to_version: i32,
    pub actor: String,
    pub request_id: Option<String>,
    pub created_at: DateTimeUtc,
    /// The operation that made the change, when one did.
    pub operation_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// What a deployment event records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum EventKind {
    #[sea_orm(string_value = "deploy")]
    Deploy,
    #[sea_orm(string_value = "upgrade")]
    Upgrade,
    #[sea_orm(string_value = "edit")]
    Edit,
    #[sea_orm(string_value = "rollback")]
    Rollback,
}

impl EventKind {
    /// The stored (and wire) name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Deploy => "deploy",
            EventKind::Upgrade => "upgrade",
            EventKind::Edit => "edit",
            EventKind::Rollback => "rollback",
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The wire name.
impl From<EventKind> for String {
    fn from(kind: EventKind) -> Self {
        kind.as_str().to_string()
    }
}

impl PartialEq<&str> for EventKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}
