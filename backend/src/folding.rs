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

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait, OnConflict, Order, Query};
use sea_orm::{ConnectionTrait, DbErr};

use crate::db::Store;
use crate::rollup::{DAY_SECONDS, start_of_day};

/// Groups whose old hours move in one transaction: on SQLite the writer waits for it, so it
/// stays well under a second even on a first fold of months of hours.
pub const GROUPS_PER_BATCH: u64 = 100;

const HORIZON_TABLE: &str = "count_folding";
const HORIZON: &str = "folded_before";

/// What one fold did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Folded {
    /// Hourly rows of release and usage counts deleted (their days hold them).
    pub roll_up_hours: u64,
    /// Hourly rows of groups moved into days.
    pub group_hours: u64,
}

/// Hours starting before this were folded into days (or are being): `None` until a fold ran.
pub async fn folded_before(db: &impl ConnectionTrait) -> Result<Option<i64>, DbErr> {
    let query = Query::select()
        .column(Alias::new(HORIZON))
        .from(Alias::new(HORIZON_TABLE))
        .and_where(Expr::col(Alias::new("id")).eq(1))
        .to_owned();
    match db.query_one(&query).await? {
        Some(row) => row.try_get("", HORIZON).map(Some),
        None => Ok(None),
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
    let mut folded = Folded::default();
    for app_id in app_ids(db).await? {
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
