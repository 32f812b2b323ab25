use sea_orm::entity::prelude::*;

/// One alert to one destination, retried until delivered or given up.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "alert_deliveries")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub app_id: i64,
    pub destination_id: i64,
    /// `None` for a test delivery.
    pub rule_id: Option<i64>,
    /// `gate.fail`, `gate.recovered`, `crash_rate.over`, `crash_rate.recovered`,
    /// `group.new`, `group.regressed` or `test`.
    pub event: String,
    /// The JSON document posted (before the destination's format is applied).
    pub body: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    /// A replica holds the delivery until then while it sends it.
    pub claimed_until: Option<DateTimeUtc>,
    /// JSON array of the attempts: when, HTTP status or error, latency.
    pub log: String,
    pub created_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
