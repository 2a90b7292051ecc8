use sea_orm::entity::prelude::*;

/// A durable bulk operation: its request, its fixed set of items (`operation_item`),
/// its status and the lease of the worker running it.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "operations")]
pub struct Model {
    /// A lowercase hyphenated UUID.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub folder_id: i32,
    pub kind: OperationKind,
    pub status: OperationStatus,
    /// The create call's body as accepted (JSON), shown by the monitor.
    pub request: String,
    pub created_by: String,
    pub request_id: Option<String>,
    pub created_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
    /// `None`: the latest published version.
    pub target_version: Option<i32>,
    pub dry_run: bool,
    /// Once this many items failed, the items not started are skipped.
    pub max_failures: Option<i32>,
    pub max_concurrency: i32,
    /// Number of items; fixed at creation.
    pub total: i32,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub cancel_requested: bool,
    pub lease_owner: Option<String>,
    /// Grows by one with every claim: the fencing token of the current lease.
    pub lease_generation: i64,
    pub lease_expires_at: Option<DateTimeUtc>,
    /// When a worker last released it (`None`: never run): the fair order of claims.
    pub last_served_at: Option<DateTimeUtc>,
    /// The highest item `seq` claimed so far: the next claim looks beyond it first, so
    /// it does not walk the settled items again.
    pub claim_cursor: i32,
    /// The rollout whose wave this operation runs, if any.
    pub rollout_id: Option<String>,
    pub rollout_wave: Option<i32>,
    /// No new batch of items is taken from this instant on (a maintenance window's
    /// close, or a pause); `None`: no limit.
    pub run_until: Option<DateTimeUtc>,
    /// Every item with `seq` up to this one is settled, and counted in the `settled_*`
    /// columns (settled items never change): reads count only the items after it.
    pub settled_through: i32,
    pub settled_updated: i32,
    pub settled_unchanged: i32,
    pub settled_failed: i32,
    pub settled_skipped: i32,
    pub settled_canceled: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::operation_item::Entity")]
    Item,
}

impl Related<super::operation_item::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Item.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum OperationKind {
    #[sea_orm(string_value = "upgrade")]
    Upgrade,
}

/// Azure's long-running operation states (the stored and the wire names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum OperationStatus {
    #[sea_orm(string_value = "NotStarted")]
    NotStarted,
    #[sea_orm(string_value = "Running")]
    Running,
    #[sea_orm(string_value = "Succeeded")]
    Succeeded,
    #[sea_orm(string_value = "Failed")]
    Failed,
    #[sea_orm(string_value = "Canceled")]
    Canceled,
}

impl OperationStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            OperationStatus::Succeeded | OperationStatus::Failed | OperationStatus::Canceled
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OperationStatus::NotStarted => "NotStarted",
            OperationStatus::Running => "Running",
            OperationStatus::Succeeded => "Succeeded",
            OperationStatus::Failed => "Failed",
            OperationStatus::Canceled => "Canceled",
        }
    }
}
