//! Periodic work that replicas share: each interval's run is claimed by exactly one replica,
//! through a conditional upsert on the database every replica uses (no election, no clock
//! agreement beyond the interval's length).

use chrono::{DateTime, Utc};
use entity::leases;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{DbErr, EntityTrait, Set};

use crate::db::Store;

/// True for exactly one caller per `name` and interval of `every` (the interval holding
/// `now`), across every process on this database.
pub async fn claim(
    db: &Store,
    name: &str,
    every: std::time::Duration,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let slot = now
        .timestamp()
        .div_euclid(i64::try_from(Ord::max(every.as_secs(), 1)).unwrap_or(i64::MAX));
    let txn = db.begin_write().await?;
    let claimed = leases::Entity::insert(leases::ActiveModel {
        name: Set(name.to_owned()),
        slot: Set(slot),
    })
    .on_conflict(
        OnConflict::column(leases::Column::Name)
            .update_column(leases::Column::Slot)
            .action_and_where(Expr::col((leases::Entity, leases::Column::Slot)).lt(slot))
            .to_owned(),
    )
    .exec_without_returning(&txn)
    .await?;
    txn.commit().await?;
    Ok(claimed == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_interval_is_claimed_once_however_many_ask() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("lease.db").display()
        );
        let (one, other) = (
            crate::db::connect(&url).await.unwrap(),
            crate::db::connect(&url).await.unwrap(),
        );
        let day = std::time::Duration::from_secs(24 * 3600);
        let morning = DateTime::parse_from_rfc3339("2026-12-03T06:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let evening = morning + chrono::Duration::hours(12);
        assert!(claim(&one, "retention", day, morning).await.unwrap());
        assert!(!claim(&other, "retention", day, morning).await.unwrap());
        assert!(!claim(&one, "retention", day, evening).await.unwrap());
        // Another name is another lease; the next day is the next interval.
        assert!(claim(&other, "alerts", day, evening).await.unwrap());
        let tomorrow = morning + chrono::Duration::days(1);
        assert!(claim(&other, "retention", day, tomorrow).await.unwrap());
        assert!(!claim(&one, "retention", day, tomorrow).await.unwrap());
    }
}
