//! Release-gate policies (DESIGN §8): one row per app for all channels (channel `''`) and one
//! per channel that overrides it. The policy itself is a JSON document, so new settings can be
//! added with a default without another migration.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum GatePolicies {
    Table,
    Id,
    AppId,
    Channel,
    Policy,
    UpdatedBy,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Apps {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(GatePolicies::Table)
                    .col(big_pk_auto(GatePolicies::Id))
                    .col(big_integer(GatePolicies::AppId))
                    .col(string_len(GatePolicies::Channel, 32))
                    .col(text(GatePolicies::Policy))
                    .col(string(GatePolicies::UpdatedBy))
                    .col(timestamp_with_time_zone(GatePolicies::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(GatePolicies::Table, GatePolicies::AppId)
                            .to(Apps::Table, Apps::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("gate_policies_app_channel")
                    .table(GatePolicies::Table)
                    .col(GatePolicies::AppId)
                    .col(GatePolicies::Channel)
                    .unique()
                    .take(),
            )
            .await
    }
}
