use sea_orm::entity::prelude::*;

/// One event for one endpoint, retried until delivered or given up.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub endpoint_id: String,
    pub event_seq: i64,
    pub ordering_key: String,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    pub lease_owner: Option<String>,
    /// A `sending` delivery whose lease lapsed (its replica died) is claimed again.
    pub lease_expires_at: Option<DateTimeUtc>,
    /// Made by a replay rather than by the event's fan-out.
    pub replay: bool,
    pub created_at: DateTimeUtc,
    pub delivered_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    #[sea_orm(string_value = "pending")]
    Pending,
    /// Claimed by a relay, under a lease.
    #[sea_orm(string_value = "sending")]
    Sending,
    #[sea_orm(string_value = "succeeded")]
    Succeeded,
    /// Given up: retries exhausted, or the endpoint answered 410.
    #[sea_orm(string_value = "failed")]
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Sending => "sending",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Failed => "failed",
        }
    }
}
