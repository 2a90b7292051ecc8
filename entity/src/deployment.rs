use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "deployments")]
pub struct Model {
    /// A lowercase hyphenated UUID.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub folder_id: i32,
    pub app_id: i32,
    /// The app version (`app_versions.version`) this deployment runs.
    pub version: i32,
    pub title: String,
    pub description: String,
    pub routing_name: String,
    pub maintenance_enabled: bool,
    pub maintenance_url: Option<String>,
    /// JSON array of user names exempt from maintenance mode.
    pub maintenance_excluded_users: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::app::Entity",
        from = "Column::AppId",
        to = "super::app::Column::Id"
    )]
    App,
    #[sea_orm(has_many = "super::deployment_tag::Entity")]
    Tag,
}

impl Related<super::app::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::App.def()
    }
}

impl Related<super::deployment_tag::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Tag.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
