//! Alerts (issue 17): the verdict history of watched releases, alert rules and their webhook
//! destinations, the deliveries (with their attempts), the cool-down of each rule, and the
//! leases that make periodic work run once per interval across replicas.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Apps {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Leases {
    Table,
    Name,
    Slot,
}

#[derive(DeriveIden)]
enum ReleaseVerdicts {
    Table,
    Id,
    AppId,
    Channel,
    Version,
    Verdict,
    Previous,
    Result,
    EvaluatedAt,
}

#[derive(DeriveIden)]
enum AlertDestinations {
    Table,
    Id,
    AppId,
    Name,
    Url,
    Format,
    Salt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum AlertRules {
    Table,
    Id,
    AppId,
    Name,
    Kind,
    Channel,
    Threshold,
    WindowMinutes,
    NotifyRecovery,
    CooldownMinutes,
    DestinationIds,
    CreatedAt,
}

#[derive(DeriveIden)]
enum AlertFirings {
    Table,
    RuleId,
    Subject,
    Active,
    FiredAt,
}

#[derive(DeriveIden)]
enum AlertDeliveries {
    Table,
    Id,
    AppId,
    DestinationId,
    RuleId,
    Event,
    Body,
    State,
    Attempts,
    NextAttemptAt,
    ClaimedUntil,
    Log,
    CreatedAt,
    FinishedAt,
}

fn cascade_from(table: impl IntoIden, column: impl IntoIden) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(table, column)
        .to(Apps::Table, Apps::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Leases::Table)
                    .col(string(Leases::Name).primary_key())
                    .col(big_integer(Leases::Slot))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ReleaseVerdicts::Table)
                    .col(big_pk_auto(ReleaseVerdicts::Id))
                    .col(big_integer(ReleaseVerdicts::AppId))
                    .col(string_len(ReleaseVerdicts::Channel, 32))
                    .col(string_len(ReleaseVerdicts::Version, 64))
                    .col(string_len(ReleaseVerdicts::Verdict, 32))
                    .col(string_len_null(ReleaseVerdicts::Previous, 32))
                    .col(text(ReleaseVerdicts::Result))
                    .col(timestamp_with_time_zone(ReleaseVerdicts::EvaluatedAt))
                    .foreign_key(&mut cascade_from(
                        ReleaseVerdicts::Table,
                        ReleaseVerdicts::AppId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("release_verdicts_release")
                    .table(ReleaseVerdicts::Table)
                    .col(ReleaseVerdicts::AppId)
                    .col(ReleaseVerdicts::Channel)
                    .col(ReleaseVerdicts::Version)
                    .col(ReleaseVerdicts::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AlertDestinations::Table)
                    .col(big_pk_auto(AlertDestinations::Id))
                    .col(big_integer(AlertDestinations::AppId))
                    .col(string_len(AlertDestinations::Name, 64))
                    .col(text(AlertDestinations::Url))
                    .col(string_len(AlertDestinations::Format, 16))
                    .col(string_len(AlertDestinations::Salt, 64))
                    .col(timestamp_with_time_zone(AlertDestinations::CreatedAt))
                    .foreign_key(&mut cascade_from(
                        AlertDestinations::Table,
                        AlertDestinations::AppId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AlertRules::Table)
                    .col(big_pk_auto(AlertRules::Id))
                    .col(big_integer(AlertRules::AppId))
                    .col(string_len(AlertRules::Name, 64))
                    .col(string_len(AlertRules::Kind, 32))
                    .col(string_len(AlertRules::Channel, 32))
                    .col(big_integer(AlertRules::Threshold))
                    .col(integer(AlertRules::WindowMinutes))
                    .col(boolean(AlertRules::NotifyRecovery))
                    .col(integer(AlertRules::CooldownMinutes))
                    .col(text(AlertRules::DestinationIds))
                    .col(timestamp_with_time_zone(AlertRules::CreatedAt))
                    .foreign_key(&mut cascade_from(AlertRules::Table, AlertRules::AppId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AlertFirings::Table)
                    .col(big_integer(AlertFirings::RuleId))
                    .col(string(AlertFirings::Subject))
                    .col(boolean(AlertFirings::Active))
                    .col(timestamp_with_time_zone(AlertFirings::FiredAt))
                    .primary_key(
                        Index::create()
                            .col(AlertFirings::RuleId)
                            .col(AlertFirings::Subject),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(AlertFirings::Table, AlertFirings::RuleId)
                            .to(AlertRules::Table, AlertRules::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AlertDeliveries::Table)
                    .col(big_pk_auto(AlertDeliveries::Id))
                    .col(big_integer(AlertDeliveries::AppId))
                    .col(big_integer(AlertDeliveries::DestinationId))
                    .col(big_integer_null(AlertDeliveries::RuleId))
                    .col(string_len(AlertDeliveries::Event, 32))
                    .col(text(AlertDeliveries::Body))
                    .col(string_len(AlertDeliveries::State, 16))
                    .col(integer(AlertDeliveries::Attempts))
                    .col(timestamp_with_time_zone(AlertDeliveries::NextAttemptAt))
                    .col(timestamp_with_time_zone_null(AlertDeliveries::ClaimedUntil))
                    .col(text(AlertDeliveries::Log))
                    .col(timestamp_with_time_zone(AlertDeliveries::CreatedAt))
                    .col(timestamp_with_time_zone_null(AlertDeliveries::FinishedAt))
                    .foreign_key(&mut cascade_from(
                        AlertDeliveries::Table,
                        AlertDeliveries::AppId,
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .from(AlertDeliveries::Table, AlertDeliveries::DestinationId)
                            .to(AlertDestinations::Table, AlertDestinations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("alert_deliveries_due")
                    .table(AlertDeliveries::Table)
                    .col(AlertDeliveries::State)
                    .col(AlertDeliveries::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("alert_deliveries_destination")
                    .table(AlertDeliveries::Table)
                    .col(AlertDeliveries::DestinationId)
                    .col(AlertDeliveries::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AlertDeliveries::Table.into_iden(),
            AlertFirings::Table.into_iden(),
            AlertRules::Table.into_iden(),
            AlertDestinations::Table.into_iden(),
            ReleaseVerdicts::Table.into_iden(),
            Leases::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
