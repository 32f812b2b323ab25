//! Every table of DESIGN §4. Hours are Unix seconds so the same upsert works on both back ends.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Accounts {
    Table,
    Id,
    Name,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    AccountId,
    Email,
    PasswordHash,
    Role,
    TokenVersion,
    Disabled,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Apps {
    Table,
    Id,
    AccountId,
    Name,
    ReportsEnabled,
    CreatedAt,
}

#[derive(DeriveIden)]
enum AppAccess {
    Table,
    UserId,
    AppId,
}

#[derive(DeriveIden)]
enum ReportKeys {
    Table,
    Id,
    AppId,
    KeyHash,
    KeyPrefix,
    CreatedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum ReportGroups {
    Table,
    AppId,
    GroupHash,
    AppName,
    Version,
    Channel,
    Platform,
    Arch,
    EventType,
    Reason,
    Count,
    FirstSeen,
    LastSeen,
    BlobCount,
}

#[derive(DeriveIden)]
enum ReportCounts {
    Table,
    AppId,
    GroupHash,
    Hour,
    Count,
}

#[derive(DeriveIden)]
enum UsageCounts {
    Table,
    AppId,
    Version,
    Channel,
    Platform,
    Arch,
    Kind,
    Hour,
    Count,
}

#[derive(DeriveIden)]
enum ReportBlobs {
    Table,
    Id,
    AppId,
    GroupHash,
    StorageKey,
    SizeCompressed,
    SizeDecompressed,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ApiTokens {
    Table,
    Id,
    AccountId,
    Name,
    TokenHash,
    TokenPrefix,
    AllApps,
    CreatedBy,
    CreatedAt,
    LastUsedAt,
    ExpiresAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum ApiTokenApps {
    Table,
    TokenId,
    AppId,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    AccountId,
    Actor,
    Action,
    TargetType,
    TargetId,
    Detail,
    CreatedAt,
}

/// A foreign key that removes the child rows with their parent.
fn cascade(
    from_table: impl IntoIden,
    from_col: impl IntoIden,
    to_table: impl IntoIden,
    to_col: impl IntoIden,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(from_table, from_col)
        .to(to_table, to_col)
        .on_delete(ForeignKeyAction::Cascade)
        .take()
}

fn app_fk(table: impl IntoIden, col: impl IntoIden) -> ForeignKeyCreateStatement {
    cascade(table, col, Apps::Table, Apps::Id)
}

fn account_fk(table: impl IntoIden, col: impl IntoIden) -> ForeignKeyCreateStatement {
    cascade(table, col, Accounts::Table, Accounts::Id)
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let tables = [
            Table::create()
                .table(Accounts::Table)
                .col(big_pk_auto(Accounts::Id))
                .col(string_uniq(Accounts::Name))
                .col(timestamp_with_time_zone(Accounts::CreatedAt))
                .take(),
            Table::create()
                .table(Users::Table)
                .col(big_pk_auto(Users::Id))
                .col(big_integer(Users::AccountId))
                .col(string_uniq(Users::Email))
                .col(string(Users::PasswordHash))
                .col(string(Users::Role))
                .col(integer(Users::TokenVersion).default(0))
                .col(boolean(Users::Disabled).default(false))
                .col(timestamp_with_time_zone(Users::CreatedAt))
                .foreign_key(&mut account_fk(Users::Table, Users::AccountId))
                .take(),
            Table::create()
                .table(Apps::Table)
                .col(big_pk_auto(Apps::Id))
                .col(big_integer(Apps::AccountId))
                .col(string(Apps::Name))
                .col(boolean(Apps::ReportsEnabled).default(true))
                .col(timestamp_with_time_zone(Apps::CreatedAt))
                .foreign_key(&mut account_fk(Apps::Table, Apps::AccountId))
                .take(),
            Table::create()
                .table(AppAccess::Table)
                .col(big_integer(AppAccess::UserId))
                .col(big_integer(AppAccess::AppId))
                .primary_key(Index::create().col(AppAccess::UserId).col(AppAccess::AppId))
                .foreign_key(&mut cascade(
                    AppAccess::Table,
                    AppAccess::UserId,
                    Users::Table,
                    Users::Id,
                ))
                .foreign_key(&mut app_fk(AppAccess::Table, AppAccess::AppId))
                .take(),
            Table::create()
                .table(ReportKeys::Table)
                .col(big_pk_auto(ReportKeys::Id))
                .col(big_integer(ReportKeys::AppId))
                .col(string_uniq(ReportKeys::KeyHash))
                .col(string(ReportKeys::KeyPrefix))
                .col(timestamp_with_time_zone(ReportKeys::CreatedAt))
                .col(timestamp_with_time_zone_null(ReportKeys::RevokedAt))
                .foreign_key(&mut app_fk(ReportKeys::Table, ReportKeys::AppId))
                .take(),
            Table::create()
                .table(ReportGroups::Table)
                .col(big_integer(ReportGroups::AppId))
                .col(string_len(ReportGroups::GroupHash, 64))
                .col(string(ReportGroups::AppName))
                .col(string(ReportGroups::Version))
                .col(string(ReportGroups::Channel))
                .col(string(ReportGroups::Platform))
                .col(string(ReportGroups::Arch))
                .col(string(ReportGroups::EventType))
                .col(text(ReportGroups::Reason))
                .col(big_integer(ReportGroups::Count))
                .col(timestamp_with_time_zone(ReportGroups::FirstSeen))
                .col(timestamp_with_time_zone(ReportGroups::LastSeen))
                .col(integer(ReportGroups::BlobCount).default(0))
                .primary_key(
                    Index::create()
                        .col(ReportGroups::AppId)
                        .col(ReportGroups::GroupHash),
                )
                .foreign_key(&mut app_fk(ReportGroups::Table, ReportGroups::AppId))
                .take(),
            Table::create()
                .table(ReportCounts::Table)
                .col(big_integer(ReportCounts::AppId))
                .col(string_len(ReportCounts::GroupHash, 64))
                .col(big_integer(ReportCounts::Hour))
                .col(big_integer(ReportCounts::Count))
                .primary_key(
                    Index::create()
                        .col(ReportCounts::AppId)
                        .col(ReportCounts::GroupHash)
                        .col(ReportCounts::Hour),
                )
                .foreign_key(&mut app_fk(ReportCounts::Table, ReportCounts::AppId))
                .take(),
            Table::create()
                .table(UsageCounts::Table)
                .col(big_integer(UsageCounts::AppId))
                .col(string(UsageCounts::Version))
                .col(string(UsageCounts::Channel))
                .col(string(UsageCounts::Platform))
                .col(string(UsageCounts::Arch))
                .col(string(UsageCounts::Kind))
                .col(big_integer(UsageCounts::Hour))
                .col(big_integer(UsageCounts::Count))
                .primary_key(
                    Index::create()
                        .col(UsageCounts::AppId)
                        .col(UsageCounts::Version)
                        .col(UsageCounts::Channel)
                        .col(UsageCounts::Platform)
                        .col(UsageCounts::Arch)
                        .col(UsageCounts::Kind)
                        .col(UsageCounts::Hour),
                )
                .foreign_key(&mut app_fk(UsageCounts::Table, UsageCounts::AppId))
                .take(),
            Table::create()
                .table(ReportBlobs::Table)
                .col(string_len(ReportBlobs::Id, 32).primary_key())
                .col(big_integer(ReportBlobs::AppId))
                .col(string_len(ReportBlobs::GroupHash, 64))
                .col(string(ReportBlobs::StorageKey))
                .col(big_integer(ReportBlobs::SizeCompressed))
                .col(big_integer(ReportBlobs::SizeDecompressed))
                .col(timestamp_with_time_zone(ReportBlobs::CreatedAt))
                .foreign_key(&mut app_fk(ReportBlobs::Table, ReportBlobs::AppId))
                .take(),
            Table::create()
                .table(ApiTokens::Table)
                .col(big_pk_auto(ApiTokens::Id))
                .col(big_integer(ApiTokens::AccountId))
                .col(string(ApiTokens::Name))
                .col(string_uniq(ApiTokens::TokenHash))
                .col(string(ApiTokens::TokenPrefix))
                .col(boolean(ApiTokens::AllApps))
                .col(big_integer_null(ApiTokens::CreatedBy))
                .col(timestamp_with_time_zone(ApiTokens::CreatedAt))
                .col(timestamp_with_time_zone_null(ApiTokens::LastUsedAt))
                .col(timestamp_with_time_zone_null(ApiTokens::ExpiresAt))
                .col(timestamp_with_time_zone_null(ApiTokens::RevokedAt))
                .foreign_key(&mut account_fk(ApiTokens::Table, ApiTokens::AccountId))
                .take(),
            Table::create()
                .table(ApiTokenApps::Table)
                .col(big_integer(ApiTokenApps::TokenId))
                .col(big_integer(ApiTokenApps::AppId))
                .primary_key(
                    Index::create()
                        .col(ApiTokenApps::TokenId)
                        .col(ApiTokenApps::AppId),
                )
                .foreign_key(&mut cascade(
                    ApiTokenApps::Table,
                    ApiTokenApps::TokenId,
                    ApiTokens::Table,
                    ApiTokens::Id,
                ))
                .foreign_key(&mut app_fk(ApiTokenApps::Table, ApiTokenApps::AppId))
                .take(),
            Table::create()
                .table(AuditLog::Table)
                .col(big_pk_auto(AuditLog::Id))
                .col(big_integer(AuditLog::AccountId))
                .col(string(AuditLog::Actor))
                .col(string(AuditLog::Action))
                .col(string(AuditLog::TargetType))
                .col(string_null(AuditLog::TargetId))
                .col(text_null(AuditLog::Detail))
                .col(timestamp_with_time_zone(AuditLog::CreatedAt))
                .foreign_key(&mut account_fk(AuditLog::Table, AuditLog::AccountId))
                .take(),
        ];
        for table in tables {
            manager.create_table(table).await?;
        }

        let indexes = [
            Index::create()
                .name("apps_account_name")
                .table(Apps::Table)
                .col(Apps::AccountId)
                .col(Apps::Name)
                .unique()
                .take(),
            Index::create()
                .name("report_keys_app")
                .table(ReportKeys::Table)
                .col(ReportKeys::AppId)
                .take(),
            Index::create()
                .name("report_groups_app_last_seen")
                .table(ReportGroups::Table)
                .col(ReportGroups::AppId)
                .col(ReportGroups::LastSeen)
                .take(),
            Index::create()
                .name("report_blobs_group")
                .table(ReportBlobs::Table)
                .col(ReportBlobs::AppId)
                .col(ReportBlobs::GroupHash)
                .take(),
            Index::create()
                .name("report_blobs_created")
                .table(ReportBlobs::Table)
                .col(ReportBlobs::CreatedAt)
                .take(),
            Index::create()
                .name("audit_log_account_created")
                .table(AuditLog::Table)
                .col(AuditLog::AccountId)
                .col(AuditLog::CreatedAt)
                .take(),
        ];
        for index in indexes {
            manager.create_index(index).await?;
        }
        Ok(())
    }
}
