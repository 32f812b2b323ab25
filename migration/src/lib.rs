//! Schema migrations, applied automatically when `rollwatch` starts.

pub use sea_orm_migration::prelude::*;

mod m20261122_000001_initial;
mod m20261122_000002_gate_policies;
mod m20261202_000001_exactly_once;
mod m20261203_000001_release_counts;
mod m20261203_000003_alerts;
mod m20261204_000001_throttled_counts;
mod m20261205_000001_daily_folding;
mod m20261206_000001_week_counts;

pub use m20261203_000001_release_counts::backfill as roll_up_backfill;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_initial::Migration),
            Box::new(m20261122_000002_gate_policies::Migration),
            Box::new(m20261202_000001_exactly_once::Migration),
            Box::new(m20261203_000001_release_counts::Migration),
            Box::new(m20261203_000003_alerts::Migration),
            Box::new(m20261204_000001_throttled_counts::Migration),
            Box::new(m20261205_000001_daily_folding::Migration),
            Box::new(m20261206_000001_week_counts::Migration),
        ]
    }
}
