use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "report_groups")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub app_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub group_hash: String,
    pub app_name: String,
    pub version: String,
    pub channel: String,
    pub platform: String,
    pub arch: String,
    pub event_type: String,
    pub reason: String,
    pub count: i64,
    pub first_seen: DateTimeUtc,
    pub last_seen: DateTimeUtc,
    /// Live blobs of the group, kept under `REPORTS_MAX_BLOBS_PER_GROUP`.
    pub blob_count: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
