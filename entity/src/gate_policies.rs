use sea_orm::entity::prelude::*;

/// A release-gate policy of an app: for every channel (`channel` is empty) or for one channel.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "gate_policies")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub app_id: i64,
    /// Empty for the app-wide policy.
    pub channel: String,
    /// The whole policy as JSON (`rollwatch::gate::policy::GatePolicy`).
    pub policy: String,
    /// `user:<id>`, `token:<id>` or `cli`, as in `audit_log.actor`.
    pub updated_by: String,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
