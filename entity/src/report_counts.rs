use sea_orm::entity::prelude::*;

/// Reports of a group per hour: the time series.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "report_counts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub app_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub group_hash: String,
    /// Start of the hour, in Unix seconds (UTC).
    #[sea_orm(primary_key, auto_increment = false)]
    pub hour: i64,
    pub count: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
