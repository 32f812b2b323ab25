use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "apps")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub account_id: i64,
    pub name: String,
    pub reports_enabled: bool,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::report_keys::Entity")]
    ReportKeys,
}

impl Related<super::report_keys::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ReportKeys.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
