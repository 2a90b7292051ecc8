use sea_orm::entity::prelude::*;

/// One try at a delivery: the answer's status code, or why there was none.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_attempts")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub delivery_id: String,
    pub attempted_at: DateTimeUtc,
    pub status_code: Option<i32>,
    /// `timeout`, `connect`, `blocked_address: …`, `status` (a non-2xx answer), …
    pub error: Option<String>,
    pub duration_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
