use sea_orm::entity::prelude::*;

/// A receiver a tenant registered. `event_types` and `folder_keys` are JSON arrays of
/// strings (empty: every type, every folder).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_endpoints")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub url: String,
    pub description: String,
    pub event_types: String,
    pub folder_keys: String,
    /// `standard` or `cloudevents`.
    pub format: String,
    pub enabled: bool,
    /// `gone` (the receiver answered 410) or `failing` (every attempt failed for the
    /// configured period); `None` when enabled or disabled by its owner.
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<DateTimeUtc>,
    /// `whsec_…`; signs every delivery.
    pub secret: String,
    /// The secret before the last rotation, which also signs until it expires.
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<DateTimeUtc>,
    /// Start of the current run of failed attempts (`None` after a success).
    pub failing_since: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
