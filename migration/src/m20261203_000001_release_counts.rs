//! The per-release roll-up (issue 16): reports per app, version, channel, platform, arch,
//! event type and hour, so the dashboard and the gate read one row per release, type and hour
//! instead of one per group and hour. The writer keeps it in the same flush as
//! `report_counts`; this migration fills it from the `report_counts` an install already has.
//!
//! Two more at the level of days (`release_day_counts`, `usage_day_counts`), so a read over
//! many days reads one row per release, kind and day.
//!
//! Every index here holds all the columns the roll-up's reads use, so no read looks rows up
//! in the table, and the planner's choice between them does not depend on statistics (SQLite
//! has none unless something runs `ANALYZE`).

use sea_orm_migration::sea_orm::DatabaseBackend;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Apps {
    Table,
    Id,
}

/// The roll-ups recomputed from `report_counts` and their groups and from `usage_counts`:
/// what the writer maintains, in the order they must run (the days sum the hours).
pub fn backfill() -> [String; 3] {
    let days = |table: &str, kind: &str, hours: &str| {
        format!(
            "INSERT INTO {table} (app_id, version, channel, platform, arch, {kind}, day, count) \
             SELECT app_id, version, channel, platform, arch, {kind}, hour - hour % 86400, \
                 CAST(SUM(count) AS BIGINT) \
             FROM {hours} \
             GROUP BY app_id, version, channel, platform, arch, {kind}, hour - hour % 86400"
        )
    };
    [
        "INSERT INTO release_counts \
         (app_id, version, channel, platform, arch, event_type, hour, count) \
         SELECT g.app_id, g.version, g.channel, g.platform, g.arch, g.event_type, c.hour, \
             CAST(SUM(c.count) AS BIGINT) \
         FROM report_counts AS c \
         JOIN report_groups AS g ON g.app_id = c.app_id AND g.group_hash = c.group_hash \
         GROUP BY g.app_id, g.version, g.channel, g.platform, g.arch, g.event_type, c.hour"
            .to_owned(),
        days("release_day_counts", "event_type", "release_counts"),
        days("usage_day_counts", "kind", "usage_counts"),
    ]
}

/// A table of counts per app, release, `kind` and `time` (start of an hour or day), and
/// its indexes: `(table, kind column, time column)`.
const ROLL_UPS: [(&str, &str, &str); 3] = [
    ("release_counts", "event_type", "hour"),
    ("release_day_counts", "event_type", "day"),
    ("usage_day_counts", "kind", "day"),
];

/// `name`'s index leading with the app and the time, then every other column the reads use.
pub(crate) fn by_time(table: &str, kind: &str, time: &str) -> IndexCreateStatement {
    Index::create()
        .name(format!("{table}_app_{time}"))
        .table(Alias::new(table))
        .col(Alias::new("app_id"))
        .col(Alias::new(time))
        .col(Alias::new("version"))
        .col(Alias::new("channel"))
        .col(Alias::new("platform"))
        .col(Alias::new("arch"))
        .col(Alias::new(kind))
        .col(Alias::new("count"))
        .to_owned()
}

/// A table of counts per app, release, `kind` and `time` (start of an hour, day or week).
pub(crate) fn roll_up_table(
    name: &str,
    kind: &str,
    time: &str,
    backend: DatabaseBackend,
) -> TableCreateStatement {
    let column = |name: &str| Alias::new(name);
    let mut table = Table::create();
    table
        .table(column(name))
        .col(big_integer(column("app_id")))
        .col(string(column("version")))
        .col(string(column("channel")))
        .col(string(column("platform")))
        .col(string(column("arch")))
        .col(string(column(kind)))
        .col(big_integer(column(time)))
        .col(big_integer(column("count")))
        // Ordered for the reads that narrow by release (the gate, a version's breakdown);
        // the writer's upserts conflict on it.
        .primary_key(
            Index::create()
                .col(column("app_id"))
                .col(column("version"))
                .col(column("channel"))
                .col(column("platform"))
                .col(column("arch"))
                .col(column(kind))
                .col(column(time)),
        )
        .foreign_key(
            ForeignKey::create()
                .from(column(name), column("app_id"))
                .to(Apps::Table, Apps::Id)
                .on_delete(ForeignKeyAction::Cascade),
        );
    if backend == DatabaseBackend::Sqlite {
        // The primary key is the table: a read by release is one range of one b-tree.
        table.extra("WITHOUT ROWID");
    }
    table.to_owned()
}

const USAGE_COUNTS_BY_CHANNEL: &str = "usage_counts_app_channel";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, kind, time) in ROLL_UPS {
            manager
                .create_table(roll_up_table(
                    name,
                    kind,
                    time,
                    manager.get_database_backend(),
                ))
                .await?;
            // For the reads that narrow by time and not by release ("the last 7 days").
            manager.create_index(by_time(name, kind, time)).await?;
        }
        manager
            .create_index(by_time("usage_counts", "kind", "hour"))
            .await?;
        // The gate's "versions seen on a channel" (first hour per version).
        manager
            .create_index(
                Index::create()
                    .name(USAGE_COUNTS_BY_CHANNEL)
                    .table(Alias::new("usage_counts"))
                    .col(Alias::new("app_id"))
                    .col(Alias::new("channel"))
                    .col(Alias::new("version"))
                    .col(Alias::new("platform"))
                    .col(Alias::new("arch"))
                    .col(Alias::new("hour"))
                    .to_owned(),
            )
            .await?;
        for statement in backfill() {
            manager
                .get_connection()
                .execute_unprepared(&statement)
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for name in ["usage_counts_app_hour", USAGE_COUNTS_BY_CHANNEL] {
            manager
                .drop_index(
                    Index::drop()
                        .name(name)
                        .table(Alias::new("usage_counts"))
                        .to_owned(),
                )
                .await?;
        }
        for (name, _, _) in ROLL_UPS {
            manager
                .drop_table(Table::drop().table(Alias::new(name)).to_owned())
                .await?;
        }
        Ok(())
    }
}
