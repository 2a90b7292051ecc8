use sea_orm::entity::prelude::*;

/// One wave of a rollout, as planned, and its current operation.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "rollout_waves")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub rollout_id: String,
    /// Position from 0.
    #[sea_orm(primary_key, auto_increment = false)]
    pub idx: i32,
    pub name: String,
    /// The folder keys as planned (JSON array of `{key, includeSubfolders}`).
    pub folders: String,
    /// `auto` or `manual`: whether the wave waits for `approve` before it starts.
    pub gate: String,
    pub bake_seconds: i64,
    pub max_concurrency: i32,
    /// Failures tolerated (resolved from a count or percentage of `total`).
    pub max_failures: i32,
    pub total: i32,
    /// `Pending`, `Running`, `Succeeded` or `Failed`.
    pub status: String,
    pub operation_id: Option<String>,
    pub attempts: i32,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
