use sea_orm::entity::prelude::*;

/// A change of a watched release's gate verdict, as the background evaluation saw it.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "release_verdicts")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub app_id: i64,
    pub channel: String,
    pub version: String,
    /// `PASS`, `FAIL` or `INSUFFICIENT_DATA`.
    pub verdict: String,
    /// The verdict before; `None` for the release's first evaluation.
    pub previous: Option<String>,
    /// The whole gate result as JSON (`rollwatch::gate::evaluate::GateResult`).
    pub result: String,
    pub evaluated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
