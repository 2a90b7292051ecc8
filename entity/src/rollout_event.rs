use sea_orm::entity::prelude::*;

/// One transition of a rollout, written in the transaction that made it.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "rollout_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub rollout_id: String,
    /// What happened: `created`, `wave_started`, `approved`, `paused`, …
    pub kind: String,
    pub from_status: Option<String>,
    pub to_status: String,
    pub wave: Option<i32>,
    /// The subject that caused it (`uplift` for the driver's own steps).
    pub actor: String,
    pub request_id: Option<String>,
    pub comment: Option<String>,
    pub detail: Option<String>,
    pub at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
