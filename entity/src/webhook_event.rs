use sea_orm::entity::prelude::*;

/// The transactional outbox: one row per event, written in the transaction of the
/// change it reports. `data` holds the event's own fields when the writer had them at
/// hand; the relay adds what it looks up (folder key, app, package versions) when it
/// fans the event out.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_events")]
pub struct Model {
    /// Orders the events of one `ordering_key`; never read as a cursor.
    #[sea_orm(primary_key)]
    pub seq: i64,
    /// The event's id (a UUID), the `webhook-id` of every delivery of it.
    pub id: String,
    pub tenant_id: String,
    pub event_type: String,
    /// Events of one key are delivered to each endpoint in `seq` order (a deployment's
    /// id, `app:{id}`, `operation:{id}`).
    pub ordering_key: String,
    pub deployment_id: Option<String>,
    pub folder_id: Option<i32>,
    pub from_version: Option<i32>,
    pub to_version: Option<i32>,
    pub actor: String,
    pub request_id: Option<String>,
    pub operation_id: Option<String>,
    /// JSON object; the payload's `data` once the relay completed it.
    pub data: Option<String>,
    pub created_at: DateTimeUtc,
    /// Fanned out to the endpoints that want it.
    pub dispatched: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
