use sea_orm::entity::prelude::*;

/// A progressive rollout: waves over a selection fixed at creation, each wave run as
/// an operation; its timers (bake deadline, window opening) are columns.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "rollouts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub status: RolloutStatus,
    /// The create call's body as accepted (JSON).
    pub plan: String,
    /// `None`: the latest published version.
    pub target_version: Option<i32>,
    /// `pause` or `rollback`.
    pub on_failure: String,
    pub four_eyes: bool,
    /// The maintenance window (JSON), if any.
    pub window: Option<String>,
    /// The ids of every folder the rollout touches (JSON array).
    pub folder_ids: String,
    pub created_by: String,
    pub request_id: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
    /// Index of the wave running, baking, or about to start.
    pub current_wave: i32,
    /// The current wave's operation.
    pub operation_id: Option<String>,
    /// Why it paused, failed or stopped.
    pub reason: Option<String>,
    pub bake_until: Option<DateTimeUtc>,
    pub window_opens_at: Option<DateTimeUtc>,
    /// The state a `resume` returns to.
    pub resume_to: Option<RolloutStatus>,
    /// A rollback reverts the deployments of this wave and the later ones.
    pub rollback_from_wave: i32,
    pub total: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum RolloutStatus {
    #[sea_orm(string_value = "Pending")]
    Pending,
    #[sea_orm(string_value = "Running")]
    Running,
    #[sea_orm(string_value = "Baking")]
    Baking,
    #[sea_orm(string_value = "AwaitingApproval")]
    AwaitingApproval,
    #[sea_orm(string_value = "WaitingForWindow")]
    WaitingForWindow,
    #[sea_orm(string_value = "Paused")]
    Paused,
    #[sea_orm(string_value = "Succeeded")]
    Succeeded,
    #[sea_orm(string_value = "Aborted")]
    Aborted,
    #[sea_orm(string_value = "RollingBack")]
    RollingBack,
    #[sea_orm(string_value = "RolledBack")]
    RolledBack,
    #[sea_orm(string_value = "Failed")]
    Failed,
}
