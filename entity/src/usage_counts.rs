use sea_orm::entity::prelude::*;

/// Denominators per release dimension and hour: sessions, successful updates and installs.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "usage_counts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub app_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub version: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub channel: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub platform: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub arch: String,
    /// `session`, `update_succeeded` or `install_succeeded`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub kind: String,
    /// Start of the hour, in Unix seconds (UTC).
    #[sea_orm(primary_key, auto_increment = false)]
    pub hour: i64,
    pub count: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
