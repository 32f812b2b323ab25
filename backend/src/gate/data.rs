//! The counts the gate reads: report counts per event type and usage counts per kind, for one
//! version of a channel (optionally one platform and architecture) over a window of hours.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{report_counts, report_groups, usage_counts};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DbErr};

use super::baseline::VersionSeen;
use super::evaluate::{Measured, ReleaseCounts, Window};

const HOUR: i64 = 3600;

/// The slice of an app's data a gate looks at; the version varies, the rest does not.
#[derive(Clone, Copy, Debug)]
pub struct Selection<'a> {
    pub app_id: i64,
    pub channel: &'a str,
    pub platform: Option<&'a str>,
    pub arch: Option<&'a str>,
}

/// Every version with usage on the selection's channel, with its first hour.
pub async fn versions_seen(
    db: &impl ConnectionTrait,
    selection: Selection<'_>,
) -> Result<Vec<VersionSeen>, DbErr> {
    use usage_counts::Column as U;
    let mut query = Query::select();
    query
        .column(U::Version)
        .expr_as(Expr::col(U::Hour).min(), Alias::new("first_hour"))
        .from(usage_counts::Entity)
        .group_by_col(U::Version);
    selection.usage_filter(&mut query);
    db.query_all(&query)
        .await?
        .iter()
        .map(|row| {
            Ok(VersionSeen {
                version: row.try_get("", "version")?,
                first_hour: row.try_get("", "first_hour")?,
            })
        })
        .collect()
}

/// The version's counts over the `window_hours` up to its last hour with any data.
pub async fn measure(
    db: &impl ConnectionTrait,
    selection: Selection<'_>,
    version: &str,
    window_hours: u32,
) -> Result<Measured, DbErr> {
    let nothing = Measured {
        version: version.to_owned(),
        window: None,
        counts: ReleaseCounts::default(),
    };
    let Some(last_hour) = selection.last_hour(db, version).await? else {
        return Ok(nothing);
    };
    let first_hour = last_hour - (i64::from(window_hours) - 1) * HOUR;
    let hours = first_hour..=last_hour;
    let (Some(from), Some(to)) = (
        DateTime::<Utc>::from_timestamp(first_hour, 0),
        DateTime::<Utc>::from_timestamp(last_hour + HOUR, 0),
    ) else {
        return Ok(nothing);
    };
    let usage = selection.usage_totals(db, version, &hours).await?;
    let reports = selection.report_totals(db, version, &hours).await?;
    let count = |totals: &HashMap<String, i64>, key: &str| {
        totals
            .get(key)
            .map_or(0, |&total| u64::try_from(total).unwrap_or(0))
    };
    Ok(Measured {
        version: version.to_owned(),
        window: Some(Window { from, to }),
        counts: ReleaseCounts {
            sessions: count(&usage, "session"),
            crashes: count(&reports, "crash"),
            update_succeeded: count(&usage, "update_succeeded"),
            update_failed: count(&reports, "update_failed"),
            install_succeeded: count(&usage, "install_succeeded"),
            install_failed: count(&reports, "install_failed"),
        },
    })
}

/// `SUM(count)` as a BIGINT: PostgreSQL widens a sum of BIGINTs to NUMERIC.
fn sum_of(column: impl sea_orm::sea_query::IntoColumnRef) -> Expr {
    Expr::col(column).sum().cast_as(Alias::new("BIGINT"))
}

impl Selection<'_> {
    fn usage_filter(&self, query: &mut SelectStatement) {
        use usage_counts::Column as U;
        query
            .and_where(Expr::col(U::AppId).eq(self.app_id))
            .and_where(Expr::col(U::Channel).eq(self.channel));
        if let Some(platform) = self.platform {
            query.and_where(Expr::col(U::Platform).eq(platform));
        }
        if let Some(arch) = self.arch {
            query.and_where(Expr::col(U::Arch).eq(arch));
        }
    }

    /// Reports joined to their group, filtered on the group's dimensions.
    fn reports_of(&self, version: &str) -> SelectStatement {
        use report_counts::Column as R;
        use report_groups::Column as G;
        let (groups, counts) = (report_groups::Entity, report_counts::Entity);
        let mut query = Query::select();
        query
            .from(counts)
            .inner_join(
                groups,
                Expr::col((groups, G::AppId))
                    .equals((counts, R::AppId))
                    .and(Expr::col((groups, G::GroupHash)).equals((counts, R::GroupHash))),
            )
            .and_where(Expr::col((groups, G::AppId)).eq(self.app_id))
            .and_where(Expr::col((groups, G::Version)).eq(version))
            .and_where(Expr::col((groups, G::Channel)).eq(self.channel));
        if let Some(platform) = self.platform {
            query.and_where(Expr::col((groups, G::Platform)).eq(platform));
        }
        if let Some(arch) = self.arch {
            query.and_where(Expr::col((groups, G::Arch)).eq(arch));
        }
        query
    }

    /// The latest hour with usage or reports of the version.
    async fn last_hour(
        &self,
        db: &impl ConnectionTrait,
        version: &str,
    ) -> Result<Option<i64>, DbErr> {
        use usage_counts::Column as U;
        let mut usage = Query::select();
        usage
            .expr_as(Expr::col(U::Hour).max(), Alias::new("last_hour"))
            .from(usage_counts::Entity)
            .and_where(Expr::col(U::Version).eq(version));
        self.usage_filter(&mut usage);
        let mut reports = self.reports_of(version);
        reports.expr_as(
            Expr::col((report_counts::Entity, report_counts::Column::Hour)).max(),
            Alias::new("last_hour"),
        );
        let mut last = None;
        for query in [usage, reports] {
            if let Some(row) = db.query_one(&query).await? {
                let hour: Option<i64> = row.try_get("", "last_hour")?;
                last = Ord::max(last, hour);
            }
        }
        Ok(last)
    }

    /// Usage counts per kind.
    async fn usage_totals(
        &self,
        db: &impl ConnectionTrait,
        version: &str,
        hours: &std::ops::RangeInclusive<i64>,
    ) -> Result<HashMap<String, i64>, DbErr> {
        use usage_counts::Column as U;
        let mut query = Query::select();
        query
            .expr_as(Expr::col(U::Kind), Alias::new("key"))
            .expr_as(sum_of(U::Count), Alias::new("total"))
            .from(usage_counts::Entity)
            .and_where(Expr::col(U::Version).eq(version))
            .and_where(Expr::col(U::Hour).between(*hours.start(), *hours.end()))
            .group_by_col(U::Kind);
        self.usage_filter(&mut query);
        totals(db, &query).await
    }

    /// Report counts per event type.
    async fn report_totals(
        &self,
        db: &impl ConnectionTrait,
        version: &str,
        hours: &std::ops::RangeInclusive<i64>,
    ) -> Result<HashMap<String, i64>, DbErr> {
        use report_counts::Column as R;
        use report_groups::Column as G;
        let (groups, counts) = (report_groups::Entity, report_counts::Entity);
        let mut query = self.reports_of(version);
        query
            .expr_as(Expr::col((groups, G::EventType)), Alias::new("key"))
            .expr_as(sum_of((counts, R::Count)), Alias::new("total"))
            .and_where(Expr::col((counts, R::Hour)).between(*hours.start(), *hours.end()))
            .group_by_col((groups, G::EventType));
        totals(db, &query).await
    }
}

/// The `key → total` rows of a grouped sum.
async fn totals(
    db: &impl ConnectionTrait,
    query: &SelectStatement,
) -> Result<HashMap<String, i64>, DbErr> {
    db.query_all(query)
        .await?
        .iter()
        .map(|row| Ok((row.try_get("", "key")?, row.try_get("", "total")?)))
        .collect()
}
