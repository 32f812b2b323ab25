//! Requests refused for a rate limit (429), counted per app and hour (issue 15). A refused
//! report may be a crash of the release being judged, so the gate must know how many were
//! refused; the report itself is never read or stored.
//!
//! A refusal costs a hash-map increment under a mutex; a periodic task adds what piled up to
//! `throttled_counts` with one upsert per app and hour, so a storm of refusals never becomes
//! a storm of writes. Counts of the last seconds before a crash can be lost: they describe
//! requests that were refused, not data that was acknowledged.

use std::collections::HashMap;
use std::sync::Mutex;

use async_graphql::SimpleObject;
use chrono::{DateTime, Utc};
use entity::throttled_counts;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde::{Deserialize, Serialize};

use crate::db::Store;
use crate::rollup::HOUR_SECONDS;

/// What a limit refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Traffic {
    /// Reports: numerators of the rates.
    Reports,
    /// Usage messages: their denominators.
    Usage,
}

/// Refused requests of an app over some hours.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, SimpleObject)]
#[serde(rename_all = "camelCase")]
pub struct Throttled {
    /// Reports refused with 429 (each report of a batch counts).
    pub reports: u64,
    /// Usage messages refused with 429.
    pub usage: u64,
}

impl Throttled {
    fn add(&mut self, traffic: Traffic, n: u64) {
        match traffic {
            Traffic::Reports => self.reports += n,
            Traffic::Usage => self.usage += n,
        }
    }

    pub fn any(&self) -> bool {
        self.reports > 0 || self.usage > 0
    }
}

/// One hour of an app's refusals, for the dashboard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, SimpleObject)]
pub struct ThrottledHour {
    pub hour: DateTime<Utc>,
    pub reports: u64,
    pub usage: u64,
}

/// Refusals counted since the last flush, per app and hour.
#[derive(Default)]
pub struct ThrottledTally {
    pending: Mutex<HashMap<(i64, i64), Throttled>>,
}

impl ThrottledTally {
    /// Counts `n` refused items of the app, now.
    pub fn count(&self, app_id: i64, traffic: Traffic, n: u64) {
        let hour = Utc::now().timestamp().div_euclid(HOUR_SECONDS) * HOUR_SECONDS;
        // A poisoned lock only means another refusal panicked mid-increment: keep counting.
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.entry((app_id, hour)).or_default().add(traffic, n);
    }

    /// Adds what piled up to the table, one upsert per app and hour; what a failed write held
    /// is put back for the next flush.
    pub async fn flush(&self, db: &Store) -> Result<usize, DbErr> {
        let taken = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        if taken.is_empty() {
            return Ok(0);
        }
        let rows = taken.len();
        match upsert(db, &taken).await {
            Ok(()) => Ok(rows),
            Err(e) => {
                let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                for (key, throttled) in taken {
                    let slot = pending.entry(key).or_default();
                    slot.add(Traffic::Reports, throttled.reports);
                    slot.add(Traffic::Usage, throttled.usage);
                }
                Err(e)
            }
        }
    }
}

async fn upsert(db: &Store, taken: &HashMap<(i64, i64), Throttled>) -> Result<(), DbErr> {
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let rows = taken.iter().map(
        |(&(app_id, hour), throttled)| throttled_counts::ActiveModel {
            app_id: Set(app_id),
            hour: Set(hour),
            reports: Set(count(throttled.reports)),
            usage: Set(count(throttled.usage)),
        },
    );
    let txn = db.begin_write().await?;
    throttled_counts::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::columns([
                throttled_counts::Column::AppId,
                throttled_counts::Column::Hour,
            ])
            .value(
                throttled_counts::Column::Reports,
                Expr::cust("throttled_counts.reports + excluded.reports"),
            )
            .value(
                throttled_counts::Column::Usage,
                Expr::cust("throttled_counts.usage + excluded.usage"),
            )
            .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
    txn.commit().await
}

/// The app's refusals in the hours from `from` (inclusive) to `until` (exclusive).
pub async fn refused_in(
    db: &impl ConnectionTrait,
    app_id: i64,
    from: i64,
    until: i64,
) -> Result<Throttled, DbErr> {
    Ok(hours(db, app_id, Some(from), Some(until))
        .await?
        .into_iter()
        .fold(Throttled::default(), |mut sum, hour| {
            sum.reports += hour.reports;
            sum.usage += hour.usage;
            sum
        }))
}

/// The app's refusals per hour, oldest first, in the hours from `from` to `until` when given.
pub async fn hours(
    db: &impl ConnectionTrait,
    app_id: i64,
    from: Option<i64>,
    until: Option<i64>,
) -> Result<Vec<ThrottledHour>, DbErr> {
    let mut query = throttled_counts::Entity::find()
        .filter(throttled_counts::Column::AppId.eq(app_id))
        .order_by_asc(throttled_counts::Column::Hour);
    if let Some(from) = from {
        query = query.filter(throttled_counts::Column::Hour.gte(from));
    }
    if let Some(until) = until {
        query = query.filter(throttled_counts::Column::Hour.lt(until));
    }
    let non_negative = |n: i64| u64::try_from(n).unwrap_or(0);
    Ok(query
        .limit(MAX_HOURS)
        .all(db)
        .await?
        .into_iter()
        .filter_map(|row| {
            Some(ThrottledHour {
                hour: DateTime::from_timestamp(row.hour, 0)?,
                reports: non_negative(row.reports),
                usage: non_negative(row.usage),
            })
        })
        .collect())
}

/// 90 days of hours: the longest range the dashboard shows.
const MAX_HOURS: u64 = 90 * 24;
