use sea_orm::entity::prelude::*;

/// One target deployment of an operation and, once settled, its outcome. The outcome
/// is written in the same transaction as the upgrade it records.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "operation_items")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub operation_id: String,
    /// Position in the operation (request order, or the selector's order).
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i32,
    /// The id as the client sent it.
    pub raw_id: String,
    /// The canonical id; `None` when the raw id is not a UUID.
    pub deployment_id: Option<String>,
    /// The folder the deployment must still be in (the operation's or a subfolder).
    pub folder_id: i32,
    pub status: ItemStatus,
    /// The lease generation of the claim that took the item (`running` items only).
    pub lease_generation: Option<i64>,
    pub app_system_name: Option<String>,
    pub from_version: Option<i32>,
    pub to_version: Option<i32>,
    pub failure_code: Option<String>,
    /// The version this item is to reach (a rollout's version for its app); `None`:
    /// the operation's target.
    pub target_version: Option<i32>,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::operation::Entity",
        from = "Column::OperationId",
        to = "super::operation::Column::Id"
    )]
    Operation,
}

impl Related<super::operation::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Operation.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

/// `pending` → `running` (claimed by a worker) → one of the settled states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum ItemStatus {
    #[sea_orm(string_value = "pending")]
    Pending,
    #[sea_orm(string_value = "running")]
    Running,
    /// Moved to a newer version.
    #[sea_orm(string_value = "updated")]
    Updated,
    /// Already on the target version.
    #[sea_orm(string_value = "unchanged")]
    Unchanged,
    #[sea_orm(string_value = "failed")]
    Failed,
    /// Not started: the operation stopped (failure budget, revoked permission).
    #[sea_orm(string_value = "skipped")]
    Skipped,
    #[sea_orm(string_value = "canceled")]
    Canceled,
}

impl ItemStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemStatus::Pending => "pending",
            ItemStatus::Running => "running",
            ItemStatus::Updated => "updated",
            ItemStatus::Unchanged => "unchanged",
            ItemStatus::Failed => "failed",
            ItemStatus::Skipped => "skipped",
            ItemStatus::Canceled => "canceled",
        }
    }

    pub fn is_settled(self) -> bool {
        !matches!(self, ItemStatus::Pending | ItemStatus::Running)
    }
}
