use sea_orm::entity::prelude::*;

/// When an app's alerts fire, and where they go.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "alert_rules")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub app_id: i64,
    pub name: String,
    /// `gate_fail`, `crash_rate`, `new_group` or `regression`.
    pub kind: String,
    /// Empty for every channel.
    pub channel: String,
    /// `new_group`: the reports a new group must reach; 0 for other kinds.
    pub threshold: i64,
    /// `new_group`: within this many minutes of its first report; 0 for other kinds.
    pub window_minutes: i32,
    /// `gate_fail` and `crash_rate`: also tell when the release recovers.
    pub notify_recovery: bool,
    pub cooldown_minutes: i32,
    /// JSON array of `alert_destinations.id`.
    pub destination_ids: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
