use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "clients")]
pub struct Model {
    /// Random UUID; the `sub` of the tokens the client gets.
    #[sea_orm(primary_key, auto_increment = false)]
    pub client_id: String,
    pub tenant_id: String,
    pub name: String,
    /// Space-separated scopes the client may ask for.
    pub scopes: String,
    /// Argon2id PHC string of the secret; the secret itself is never stored.
    pub secret_hash: String,
    pub created_at: DateTimeUtc,
    /// Set when the client is deleted; the row stays so its id is never reused.
    pub deleted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
