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
    /// `deploy`, `upgrade`, `edit` or `rollback`.
    pub kind: String,
    pub from_version: Option<i32>,
    pub to_version: i32,
    pub actor: String,
    pub request_id: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
