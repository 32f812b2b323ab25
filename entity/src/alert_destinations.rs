use sea_orm::entity::prelude::*;

/// Where an app's alerts are posted. The signing secret is not stored: it is derived from the
/// server secret and `salt`, so a copy of the database signs nothing.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "alert_destinations")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub app_id: i64,
    pub name: String,
    pub url: String,
    /// `generic` or `slack`.
    pub format: String,
    pub salt: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
