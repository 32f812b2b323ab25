//! Bounded storage (issue 18): hourly counts older than a configured age are folded into
//! days. A group's folded hours move to `report_day_counts`; the per-release and usage
//! roll-ups already have their days, so their old hours are only deleted.
//!
//! `count_folding` holds the one horizon readers need: hours before `folded_before` are read
//! from the daily tables only (they may be gone from the hourly ones).

use sea_orm_migration::sea_orm::DatabaseBackend;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

const USAGE_DAYS_BY_CHANNEL: &str = "usage_day_counts_app_channel";

#[derive(DeriveIden)]
enum Apps {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum ReportDayCounts {
    Table,
    AppId,
    GroupHash,
    Day,
    Count,
}

#[derive(DeriveIden)]
enum CountFolding {
    Table,
    Id,
    FoldedBefore,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut days = Table::create();
        days.table(ReportDayCounts::Table)
            .col(big_integer(ReportDayCounts::AppId))
            .col(string_len(ReportDayCounts::GroupHash, 64))
            .col(big_integer(ReportDayCounts::Day))
            .col(big_integer(ReportDayCounts::Count))
            .primary_key(
                Index::create()
                    .col(ReportDayCounts::AppId)
                    .col(ReportDayCounts::GroupHash)
                    .col(ReportDayCounts::Day),
            )
            .foreign_key(
                ForeignKey::create()
                    .from(ReportDayCounts::Table, ReportDayCounts::AppId)
                    .to(Apps::Table, Apps::Id)
                    .on_delete(ForeignKeyAction::Cascade),
            );
        if manager.get_database_backend() == DatabaseBackend::Sqlite {
            // A group's days are read as one range of the primary key.
            days.extra("WITHOUT ROWID");
        }
        manager.create_table(days).await?;
        // The gate's "versions seen on a channel" reads the folded days too.
        manager
            .create_index(
                Index::create()
                    .name(USAGE_DAYS_BY_CHANNEL)
                    .table(Alias::new("usage_day_counts"))
                    .col(Alias::new("app_id"))
                    .col(Alias::new("channel"))
                    .col(Alias::new("version"))
                    .col(Alias::new("platform"))
                    .col(Alias::new("arch"))
                    .col(Alias::new("day"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CountFolding::Table)
                    .col(integer(CountFolding::Id).primary_key())
                    .col(big_integer(CountFolding::FoldedBefore))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(USAGE_DAYS_BY_CHANNEL)
                    .table(Alias::new("usage_day_counts"))
                    .to_owned(),
            )
            .await?;
        for table in [
            ReportDayCounts::Table.into_iden(),
            CountFolding::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
