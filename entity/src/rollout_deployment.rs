use sea_orm::entity::prelude::*;

/// A deployment's place in a rollout (fixed at creation) and what the rollout did to
/// it: the outcome copied from its wave's operation, and its rollback.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "rollout_deployments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub rollout_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub deployment_id: String,
    pub wave: i32,
    /// Order within the wave (deployment id order).
    pub seq: i32,
    pub folder_id: i32,
    /// Held by a rollout that is not finished: at most one active row per deployment.
    pub active: bool,
    /// The operation item's status once the wave ran.
    pub outcome: Option<String>,
    pub from_version: Option<i32>,
    pub to_version: Option<i32>,
    /// `rolled_back`, `already_previous`, `changed_since` or `previous_unpublished`.
    pub rollback: Option<String>,
    /// The version the rollout moves it to (`target.versions`); `None`: the
    /// rollout's target (latest, or its one version).
    pub target_version: Option<i32>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
