use sea_orm::entity::prelude::*;

/// Requests of an app refused for a rate limit in an hour, counted but never stored.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "throttled_counts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub app_id: i64,
    /// Start of the hour, in Unix seconds (UTC).
    #[sea_orm(primary_key, auto_increment = false)]
    pub hour: i64,
    /// Reports refused (each report of a batch counts).
    pub reports: i64,
    /// Usage messages refused (their counts were never read).
    pub usage: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
