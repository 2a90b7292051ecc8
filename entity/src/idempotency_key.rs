use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "idempotency_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub subject: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    /// SHA-256 of method, path, query and body: the same key with another request is refused.
    pub request_hash: String,
    pub state: KeyState,
    pub response_status: Option<i32>,
    pub response_content_type: Option<String>,
    pub response_body: Option<Vec<u8>>,
    /// `Operation-Location` of a 202 answer, replayed with it.
    pub response_location: Option<String>,
    /// A running call renews this while it works; once it lapses (the server died),
    /// a retry takes the key over.
    pub lease_expires_at: DateTimeUtc,
    /// Names the current lease: set anew by each claim or take-over, and required by
    /// every write of the call that holds it.
    pub lease_token: String,
    pub created_at: DateTimeUtc,
}

/// `running` until the answer is stored, then `done`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum KeyState {
    #[sea_orm(string_value = "running")]
    Running,
    #[sea_orm(string_value = "done")]
    Done,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
