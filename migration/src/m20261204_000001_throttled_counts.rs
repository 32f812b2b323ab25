//! Requests refused for a rate limit, counted per app and hour (issue 15): a rate computed
//! while reports were being refused may be missing failures, and the gate must know.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Apps {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum ThrottledCounts {
    Table,
    AppId,
    Hour,
    Reports,
    Usage,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ThrottledCounts::Table)
                    .col(big_integer(ThrottledCounts::AppId))
                    .col(big_integer(ThrottledCounts::Hour))
                    .col(big_integer(ThrottledCounts::Reports))
                    .col(big_integer(ThrottledCounts::Usage))
                    .primary_key(
                        Index::create()
                            .col(ThrottledCounts::AppId)
                            .col(ThrottledCounts::Hour),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(ThrottledCounts::Table, ThrottledCounts::AppId)
                            .to(Apps::Table, Apps::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ThrottledCounts::Table).to_owned())
            .await
    }
}
