//! Weeks of the per-release roll-ups (issue 16): reports and usage per app, release, kind and
//! week, summed by the daily fold from the days before the folding horizon, so a read over
//! months takes a row per release, kind and week where a whole week lies in its range.
//!
//! `count_folding.weeks_before`: weeks starting before it are summed (NULL until a fold ran).

use sea_orm_migration::prelude::*;

use crate::m20261203_000001_release_counts::{by_time, roll_up_table};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `(table, kind column)`; the time column is `week`.
const WEEK_TABLES: [(&str, &str); 2] = [
    ("release_week_counts", "event_type"),
    ("usage_week_counts", "kind"),
];

#[derive(DeriveIden)]
enum CountFolding {
    Table,
    WeeksBefore,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, kind) in WEEK_TABLES {
            manager
                .create_table(roll_up_table(
                    name,
                    kind,
                    "week",
                    manager.get_database_backend(),
                ))
                .await?;
            manager.create_index(by_time(name, kind, "week")).await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(CountFolding::Table)
                    .add_column(
                        ColumnDef::new(CountFolding::WeeksBefore)
                            .big_integer()
                            .null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(CountFolding::Table)
                    .drop_column(CountFolding::WeeksBefore)
                    .to_owned(),
            )
            .await?;
        for (name, _) in WEEK_TABLES {
            manager
                .drop_table(Table::drop().table(Alias::new(name)).to_owned())
                .await?;
        }
        Ok(())
    }
}
