use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "apps")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub tenant_id: String,
    pub system_name: String,
    pub package_name: String,
    pub title: String,
    pub market_name: String,
    pub source: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::app_version::Entity")]
    AppVersion,
    #[sea_orm(has_many = "super::deployment::Entity")]
    Deployment,
}

impl Related<super::app_version::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::AppVersion.def()
    }
}

impl Related<super::deployment::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Deployment.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
