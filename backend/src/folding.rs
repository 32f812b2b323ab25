//! Bounded storage (issue 18): hourly counts older than `REPORTS_HOURLY_COUNTS_DAYS` are
//! folded into days by the daily task, so a group costs that many days of hours plus one row
//! per day, however long it lives.
//!
//! The steps are ordered so that a fold stopped anywhere leaves every read exact:
//! 1. the horizon moves first: readers (`rollup`) then take every hour before it from the
//!    daily tables, which the writer keeps complete for releases and usage;
//! 2. the release and usage hours before it are deleted, a day per transaction (their days
//!    already hold them);
//! 3. each batch of groups moves its old hours into `report_day_counts` in one transaction
//!    (the sums added, the hours deleted), so each count is in exactly one of the two tables,
//!    and `rollup` reads a group from both.
//!
//! Before step 2, the release and usage days of whole weeks before the horizon are summed
//! into weeks (`release_week_counts`, `usage_week_counts`), a week of an app per transaction,
//! and only then does the weeks' horizon move: readers take a week from the weeks only before
//! it. No count lands before the horizon after it moved (the writer counts each report and
//! usage message at the time it is received), so a week once summed stays right.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait, OnConflict, Order, Query};
use sea_orm::{ConnectionTrait, DbErr};

use crate::db::Store;
use crate::rollup::{DAY_SECONDS, WEEK_SECONDS, start_of_day, start_of_week};

/// Groups whose old hours move in one transaction: on SQLite the writer waits for it, so it
/// stays well under a second even on a first fold of months of hours.
pub const GROUPS_PER_BATCH: u64 = 100;

const HORIZON_TABLE: &str = "count_folding";
const HORIZON: &str = "folded_before";
const WEEKS_HORIZON: &str = "weeks_before";

/// What one fold did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Folded {
    /// Hourly rows of release and usage counts deleted (their days hold them).
    pub roll_up_hours: u64,
    /// Hourly rows of groups moved into days.
    pub group_hours: u64,
    /// Weekly rows of releases and usage written.
    pub week_rows: u64,
}

/// Where readers take counts from: the hours before `hours` from the days (or weeks) only,
/// since they may be gone from the hourly tables; the weeks starting before `weeks` from the
/// weeks, which hold them. `None` until a fold moved them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Horizons {
    pub hours: Option<i64>,
    pub weeks: Option<i64>,
}

pub async fn horizons(db: &impl ConnectionTrait) -> Result<Horizons, DbErr> {
    let query = Query::select()
        .columns([Alias::new(HORIZON), Alias::new(WEEKS_HORIZON)])
        .from(Alias::new(HORIZON_TABLE))
        .and_where(Expr::col(Alias::new("id")).eq(1))
        .to_owned();
    match db.query_one(&query).await? {
        Some(row) => Ok(Horizons {
            hours: row.try_get("", HORIZON)?,
            weeks: row.try_get("", WEEKS_HORIZON)?,
        }),
        None => Ok(Horizons::default()),
    }
}

/// The start of the UTC day `keep_days` before `now`'s day: hours before it are folded.
pub fn cutoff(now: DateTime<Utc>, keep_days: u32) -> i64 {
    start_of_day(now.timestamp()) - i64::from(keep_days) * DAY_SECONDS
}

/// Folds every hour before `cutoff` (rounded down to a day) into days, `groups_per_batch`
/// groups per transaction. Safe to run again after any failure, and by any replica.
pub async fn fold_hours_before(
    db: &Store,
    cutoff: i64,
    groups_per_batch: u64,
) -> Result<Folded, DbErr> {
    let cutoff = start_of_day(cutoff);
    move_horizon(db, cutoff).await?;
    let apps = app_ids(db).await?;
    let mut folded = Folded {
        week_rows: sum_weeks_before(db, &apps, start_of_week(cutoff)).await?,
        ..Folded::default()
    };
    for app_id in apps {
        for table in ROLL_UP_HOURS {
            folded.roll_up_hours += delete_old_hours(db, table, app_id, cutoff).await?;
        }
        let mut after: Option<String> = None;
        loop {
            let Some(last) =
                group_batch_end(db, app_id, after.as_deref(), cutoff, groups_per_batch).await?
            else {
                break;
            };
            folded.group_hours += fold_groups(db, app_id, after.as_deref(), &last, cutoff).await?;
            after = Some(last);
        }
    }
    Ok(folded)
}

/// The hourly roll-ups whose days the writer keeps; each has an index leading with the app
/// and the hour, which the deletes use.
const ROLL_UP_HOURS: [&str; 2] = ["release_counts", "usage_counts"];

/// Moves the horizon to `cutoff`, never back.
async fn move_horizon(db: &Store, cutoff: i64) -> Result<(), DbErr> {
    let horizon = Alias::new(HORIZON);
    let insert = Query::insert()
        .into_table(Alias::new(HORIZON_TABLE))
        .columns([Alias::new("id"), horizon.clone()])
        .values_panic([1.into(), cutoff.into()])
        .on_conflict(
            OnConflict::column(Alias::new("id"))
                .update_column(horizon.clone())
                .action_and_where(Expr::col((Alias::new(HORIZON_TABLE), horizon)).lt(cutoff))
                .to_owned(),
        )
        .to_owned();
    let txn = db.begin_write().await?;
    txn.execute(&insert).await?;
    txn.commit().await
}

/// The release and usage days, and the weeks they are summed into: `(days, weeks, kind)`.
const WEEKS_OF_DAYS: [(&str, &str, &str); 2] = [
    ("release_day_counts", "release_week_counts", "event_type"),
    ("usage_day_counts", "usage_week_counts", "kind"),
];

/// Sums the days of each week before `until` (a week's start) not summed yet, a week of one
/// of `apps` per transaction, then moves the weeks' horizon there. A week summed again (after
/// a fold that stopped before the horizon moved) replaces its sums: no count is added twice.
async fn sum_weeks_before(db: &Store, apps: &[i64], until: i64) -> Result<u64, DbErr> {
    let summed_before = horizons(db).await?.weeks;
    if summed_before.is_some_and(|weeks| weeks >= until) {
        return Ok(0);
    }
    let mut rows = 0;
    for &app_id in apps {
        let mut from = summed_before;
        while let Some(day) = first_day(db, app_id, from, until).await? {
            let week = start_of_week(day);
            let txn = db.begin_write().await?;
            for (days, weeks, kind) in WEEKS_OF_DAYS {
                rows += txn
                    .execute_unprepared(&week_sums(days, weeks, kind, app_id, week))
                    .await?
                    .rows_affected();
            }
            txn.commit().await?;
            from = Some(week + WEEK_SECONDS);
        }
    }
    let horizon = Alias::new(WEEKS_HORIZON);
    let weeks = Expr::col(horizon.clone());
    let moved = Query::update()
        .table(Alias::new(HORIZON_TABLE))
        .value(horizon, until)
        .and_where(Expr::col(Alias::new("id")).eq(1))
        .cond_where(
            Condition::any()
                .add(weeks.clone().is_null())
                .add(weeks.lt(until)),
        )
        .to_owned();
    let txn = db.begin_write().await?;
    txn.execute(&moved).await?;
    txn.commit().await?;
    Ok(rows)
}

/// The first day in `from..until` with release or usage counts of the app.
async fn first_day(
    db: &Store,
    app_id: i64,
    from: Option<i64>,
    until: i64,
) -> Result<Option<i64>, DbErr> {
    let mut first = None;
    for (days, _, _) in WEEKS_OF_DAYS {
        let day = Alias::new("day");
        let mut query = Query::select()
            .expr_as(Expr::col(day.clone()).min(), Alias::new("first"))
            .from(Alias::new(days))
            .and_where(Expr::col(Alias::new("app_id")).eq(app_id))
            .and_where(Expr::col(day.clone()).lt(until))
            .to_owned();
        if let Some(from) = from {
            query.and_where(Expr::col(day).gte(from));
        }
        if let Some(row) = db.query_one(&query).await? {
            let day: Option<i64> = row.try_get("", "first")?;
            first = first.into_iter().chain(day).min();
        }
    }
    Ok(first)
}

/// The statement writing the app's sums of `days` for the week starting at `week` into
/// `weeks`, replacing any earlier sums of that week.
fn week_sums(days: &str, weeks: &str, kind: &str, app_id: i64, week: i64) -> String {
    let release = format!("app_id, version, channel, platform, arch, {kind}");
    format!(
        "INSERT INTO {weeks} ({release}, week, count) \
         SELECT {release}, {week}, CAST(SUM(count) AS BIGINT) FROM {days} \
         WHERE app_id = {app_id} AND day >= {week} AND day < {end} \
         GROUP BY {release} \
         ON CONFLICT ({release}, week) DO UPDATE SET count = excluded.count",
        end = week + WEEK_SECONDS
    )
}

async fn app_ids(db: &Store) -> Result<Vec<i64>, DbErr> {
    let query = Query::select()
        .column(Alias::new("id"))
        .from(Alias::new("apps"))
        .to_owned();
    db.query_all(&query)
        .await?
        .iter()
        .map(|row| row.try_get("", "id"))
        .collect()
}

/// Deletes the app's rows of `table` before `cutoff`, a day per transaction, oldest first.
async fn delete_old_hours(
    db: &Store,
    table: &'static str,
    app_id: i64,
    cutoff: i64,
) -> Result<u64, DbErr> {
    let (table_name, hour) = (Alias::new(table), Alias::new("hour"));
    let oldest = Query::select()
        .expr_as(Expr::col(hour.clone()).min(), Alias::new("oldest"))
        .from(table_name.clone())
        .and_where(Expr::col(Alias::new("app_id")).eq(app_id))
        .and_where(Expr::col(hour.clone()).lt(cutoff))
        .to_owned();
    let Some(oldest) = db
        .query_one(&oldest)
        .await?
        .map(|row| row.try_get::<Option<i64>>("", "oldest"))
        .transpose()?
        .flatten()
    else {
        return Ok(0);
    };
    let mut deleted = 0;
    let mut day = start_of_day(oldest);
    while day < cutoff {
        let delete = Query::delete()
            .from_table(table_name.clone())
            .and_where(Expr::col(Alias::new("app_id")).eq(app_id))
            .and_where(Expr::col(hour.clone()).lt(day + DAY_SECONDS))
            .to_owned();
        let txn = db.begin_write().await?;
        deleted += txn.execute(&delete).await?.rows_affected();
        txn.commit().await?;
        day += DAY_SECONDS;
    }
    Ok(deleted)
}

/// The last group hash of the app's next batch of groups after `after`, in hash order, among
/// those that can have hours before `cutoff`: a group first seen since has none.
async fn group_batch_end(
    db: &Store,
    app_id: i64,
    after: Option<&str>,
    cutoff: i64,
    groups_per_batch: u64,
) -> Result<Option<String>, DbErr> {
    let first_seen_before = DateTime::<Utc>::from_timestamp(cutoff, 0)
        .ok_or_else(|| DbErr::Custom(format!("no time at {cutoff} s")))?;
    let group_hash = Alias::new("group_hash");
    let mut batch = Query::select()
        .column(group_hash.clone())
        .from(Alias::new("report_groups"))
        .and_where(Expr::col(Alias::new("app_id")).eq(app_id))
        .and_where(Expr::col(Alias::new("first_seen")).lt(first_seen_before))
        .order_by(group_hash.clone(), Order::Asc)
        .limit(groups_per_batch)
        .to_owned();
    if let Some(after) = after {
        batch.and_where(Expr::col(group_hash).gt(after));
    }
    db.query_all(&batch)
        .await?
        .last()
        .map(|row| row.try_get("", "group_hash"))
        .transpose()
}

/// Moves the hours before `cutoff` of the app's groups in `(after, last]` into days, in one
/// transaction: the sums are added to `report_day_counts` and the hours deleted.
async fn fold_groups(
    db: &Store,
    app_id: i64,
    after: Option<&str>,
    last: &str,
    cutoff: i64,
) -> Result<u64, DbErr> {
    let (hours, days) = (Alias::new("report_counts"), Alias::new("report_day_counts"));
    let column = |name: &str| Expr::col((hours.clone(), Alias::new(name)));
    let mut in_batch = Condition::all()
        .add(column("app_id").eq(app_id))
        .add(column("group_hash").lte(last))
        .add(column("hour").lt(cutoff));
    if let Some(after) = after {
        in_batch = in_batch.add(column("group_hash").gt(after));
    }
    let day = Expr::cust(format!(
        "report_counts.hour - report_counts.hour % {DAY_SECONDS}"
    ));
    let sums = Query::select()
        .expr(column("app_id"))
        .expr(column("group_hash"))
        .expr(day.clone())
        .expr(column("count").sum().cast_as(Alias::new("BIGINT")))
        .from(hours.clone())
        .cond_where(in_batch.clone())
        .add_group_by([column("app_id"), column("group_hash"), day])
        .to_owned();
    let insert = Query::insert()
        .into_table(days.clone())
        .columns(["app_id", "group_hash", "day", "count"].map(Alias::new))
        .select_from(sums)
        .map_err(|e| DbErr::Custom(e.to_string()))?
        .on_conflict(
            OnConflict::columns(["app_id", "group_hash", "day"].map(Alias::new))
                .value(
                    Alias::new("count"),
                    Expr::cust("report_day_counts.count + excluded.count"),
                )
                .to_owned(),
        )
        .to_owned();
    let delete = Query::delete()
        .from_table(hours)
        .cond_where(in_batch)
        .to_owned();
    let txn = db.begin_write().await?;
    txn.execute(&insert).await?;
    let moved = txn.execute(&delete).await?.rows_affected();
    txn.commit().await?;
    Ok(moved)
}
