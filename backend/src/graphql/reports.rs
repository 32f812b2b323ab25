//! The reports side of the schema: groups (a Relay connection), rollout health per cell,
//! time series and blob downloads. Counts come from the one roll-up (`crate::rollup`); each
//! answer is one or two aggregate statements after the permission check.

use async_graphql::connection::{Connection, CursorType, Edge};
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use entity::{report_blobs, report_groups};
use sea_orm::sea_query::Condition;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::error::{GqlError, GqlResult};
use super::types::parse_id;
use super::{actor, request_info, state};
use crate::auth::{self, Permission};
use crate::gate::{
    self,
    evaluate::{MetricResult, Verdict},
};
use crate::model::{Arch, Counts, Dimension, EventType, Metric, Platform};
use crate::rollup::{self, Cell, HOUR_SECONDS, Slice};
use crate::state::AppState;
use crate::throttled::{self, ThrottledHour};

const DEFAULT_PAGE: i32 = 50;
const MAX_PAGE: i32 = 100;
const DAY_SECONDS: i64 = 24 * HOUR_SECONDS;

/// Narrows groups and counts; every field is optional and they combine with AND. Time
/// bounds apply per hour for counts, and to a group's first/last sighting for groups.
#[derive(InputObject, Clone, Debug, Default)]
pub struct ReportFilter {
    pub version: Option<String>,
    pub channel: Option<String>,
    pub platform: Option<String>,
    pub arch: Option<String>,
    pub event_type: Option<EventType>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// One group, by its hash. Usage counts belong to releases, not groups, so sessions stay
    /// those of the release.
    pub group_hash: Option<String>,
}

impl ReportFilter {
    /// The filter as the roll-up takes it, normalised as ingestion stores values. Hours
    /// overlapping `since..until` count.
    pub fn slice(&self) -> GqlResult<Slice> {
        let trimmed = |v: &Option<String>| v.as_deref().map(str::trim).map(str::to_owned);
        Ok(Slice {
            version: trimmed(&self.version),
            channel: trimmed(&self.channel),
            platform: self
                .platform
                .as_deref()
                .map(|p| Platform::parse("platform", p))
                .transpose()?,
            arch: self
                .arch
                .as_deref()
                .map(|a| Arch::parse("arch", a))
                .transpose()?,
            event_type: self.event_type,
            group_hash: self.group_hash.as_deref().map(|h| h.trim().to_lowercase()),
            from_hour: self
                .since
                .map(|since| since.timestamp().div_euclid(HOUR_SECONDS) * HOUR_SECONDS),
            until: self.until.map(|until| until.timestamp()),
        })
    }
}

#[derive(SimpleObject, Clone, Debug)]
pub struct ReportGroup {
    pub group_hash: String,
    pub app_name: String,
    pub version: String,
    pub channel: String,
    pub platform: String,
    pub arch: String,
    pub event_type: Option<EventType>,
    pub reason: String,
    /// Reports of the group since it was first seen.
    pub count: i64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub blob_count: i32,
}

impl From<report_groups::Model> for ReportGroup {
    fn from(g: report_groups::Model) -> Self {
        ReportGroup {
            event_type: EventType::from_stored(&g.event_type),
            group_hash: g.group_hash,
            app_name: g.app_name,
            version: g.version,
            channel: g.channel,
            platform: g.platform,
            arch: g.arch,
            reason: g.reason,
            count: g.count,
            first_seen: g.first_seen,
            last_seen: g.last_seen,
            blob_count: g.blob_count,
        }
    }
}

#[derive(Enum, Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum GroupOrder {
    /// Most recently seen first.
    #[default]
    LastSeen,
    /// Most reports first.
    Count,
}

/// Where a page ends: the sort value and the group hash that breaks ties, so pages neither
/// skip nor repeat groups that share a value.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupCursor {
    after: SortValue,
    group_hash: String,
}

#[derive(Clone, Debug, PartialEq)]
enum SortValue {
    LastSeen(DateTime<Utc>),
    Count(i64),
}

impl SortValue {
    fn of(order: GroupOrder, group: &report_groups::Model) -> Self {
        match order {
            GroupOrder::LastSeen => SortValue::LastSeen(group.last_seen),
            GroupOrder::Count => SortValue::Count(group.count),
        }
    }
}

impl CursorType for GroupCursor {
    type Error = &'static str;

    fn decode_cursor(s: &str) -> Result<Self, Self::Error> {
        const BAD: &str = "not a cursor of this list";
        let text = URL_SAFE_NO_PAD
            .decode(s)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or(BAD)?;
        let mut parts = text.splitn(3, '|');
        let (kind, value, group_hash) = (parts.next(), parts.next(), parts.next());
        let after = match (kind, value) {
            (Some("l"), Some(v)) => {
                SortValue::LastSeen(DateTime::parse_from_rfc3339(v).map_err(|_| BAD)?.to_utc())
            }
            (Some("c"), Some(v)) => SortValue::Count(v.parse().map_err(|_| BAD)?),
            _ => return Err(BAD),
        };
        let group_hash = group_hash
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or(BAD)?
            .to_owned();
        Ok(GroupCursor { after, group_hash })
    }

    fn encode_cursor(&self) -> String {
        let value = match &self.after {
            SortValue::LastSeen(at) => format!("l|{}", at.to_rfc3339()),
            SortValue::Count(n) => format!("c|{n}"),
        };
        URL_SAFE_NO_PAD.encode(format!("{value}|{}", self.group_hash))
    }
}

/// The connection's `totalCount`, counted only when asked for.
pub struct GroupTotal {
    condition: Condition,
}

#[Object]
impl GroupTotal {
    /// Groups matching the filter, over all pages.
    async fn total_count(&self, ctx: &Context<'_>) -> GqlResult<u64> {
        Ok(report_groups::Entity::find()
            .filter(self.condition.clone())
            .count(&state(ctx).db)
            .await?)
    }
}

/// The groups of the filter; a group is in `since..until` when it was seen at some time in it.
fn group_condition(app_id: i64, filter: &ReportFilter) -> GqlResult<Condition> {
    let mut condition = rollup::group_filter(app_id, &filter.slice()?);
    if let Some(since) = filter.since {
        condition = condition.add(report_groups::Column::LastSeen.gte(since));
    }
    if let Some(until) = filter.until {
        condition = condition.add(report_groups::Column::FirstSeen.lt(until));
    }
    Ok(condition)
}

/// Counts and rates of one cell of `rolloutHealth`; the dimensions not grouped by are null.
#[derive(SimpleObject, Clone, Debug, PartialEq)]
pub struct HealthCell {
    pub version: Option<String>,
    pub channel: Option<String>,
    pub platform: Option<String>,
    pub arch: Option<String>,
    pub event_type: Option<EventType>,
    /// All reports of the cell.
    pub reports: i64,
    pub crashes: i64,
    pub update_failures: i64,
    pub install_failures: i64,
    pub sessions: i64,
    pub updates_succeeded: i64,
    pub installs_succeeded: i64,
    /// False when the cell is split (or filtered) by platform or arch and some of its
    /// release's reports or usage do not say theirs (`unknown`, as Sentry sessions): its
    /// counts are shown, its rates are null, since they would compare different slices.
    pub sliced_alike: bool,
    /// crashes / sessions; null without sessions, or when not sliced alike.
    pub crash_rate: Option<f64>,
    /// update failures / (update failures + updates succeeded); null when both are 0.
    pub update_failure_rate: Option<f64>,
    /// install failures / (install failures + installs succeeded); null when both are 0.
    pub install_failure_rate: Option<f64>,
    /// The gate's judgement of the cell's counts against the policy's absolute limits (no
    /// baseline): what colours it, so a cell is never "over limit" on a point estimate
    /// alone.
    pub verdict: Verdict,
    /// Each metric's status and time-uniform bounds behind `verdict`.
    pub judged: Vec<MetricResult>,
}

impl HealthCell {
    fn new(cell: Cell, (verdict, judged): (Verdict, Vec<MetricResult>)) -> Self {
        let counts = cell.counts;
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let rate = |metric| counts.rate(metric).filter(|_| cell.sliced_alike);
        HealthCell {
            version: cell.key.version,
            channel: cell.key.channel,
            platform: cell.key.platform,
            arch: cell.key.arch,
            event_type: cell.event_type,
            reports: count(counts.reports()),
            crashes: count(counts.crashes),
            update_failures: count(counts.update_failed),
            install_failures: count(counts.install_failed),
            sessions: count(counts.sessions),
            updates_succeeded: count(counts.update_succeeded),
            installs_succeeded: count(counts.install_succeeded),
            sliced_alike: cell.sliced_alike,
            crash_rate: rate(Metric::CrashRate),
            update_failure_rate: rate(Metric::UpdateFailureRate),
            install_failure_rate: rate(Metric::InstallFailureRate),
            verdict,
            judged,
        }
    }
}

#[derive(Enum, Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum Interval {
    #[default]
    Hour,
    Day,
}

#[derive(SimpleObject, Clone, Debug, Default, PartialEq)]
pub struct SeriesPoint {
    /// Start of the bucket (UTC).
    pub at: DateTime<Utc>,
    pub reports: i64,
    pub crashes: i64,
    pub update_failures: i64,
    pub install_failures: i64,
    pub sessions: i64,
}

impl SeriesPoint {
    fn new(bucket: i64, counts: &Counts) -> Self {
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        SeriesPoint {
            at: DateTime::from_timestamp(bucket, 0).unwrap_or_default(),
            reports: count(counts.reports()),
            crashes: count(counts.crashes),
            update_failures: count(counts.update_failed),
            install_failures: count(counts.install_failed),
            sessions: count(counts.sessions),
        }
    }
}

#[derive(SimpleObject)]
pub struct Blob {
    pub id: ID,
    /// Downloads the gzip of the details as sent; works until `expiresAt`.
    pub url: String,
    pub expires_at: DateTime<Utc>,
    pub size_compressed: i64,
    pub size_decompressed: i64,
    pub created_at: DateTime<Utc>,
}

#[derive(Default)]
pub struct ReportsQuery;

#[Object]
impl ReportsQuery {
    /// The app's groups, a page at a time (`first` ≤ 100, default 50; `after` a cursor).
    #[graphql(
        complexity = "first.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE) as usize * child_complexity"
    )]
    async fn report_groups(
        &self,
        ctx: &Context<'_>,
        app_id: ID,
        filter: Option<ReportFilter>,
        order_by: Option<GroupOrder>,
        first: Option<i32>,
        after: Option<String>,
    ) -> GqlResult<Connection<GroupCursor, ReportGroup, GroupTotal>> {
        let app_id = readable_app(ctx, &app_id).await?;
        let filter = filter.unwrap_or_default();
        let order = order_by.unwrap_or_default();
        let first = first.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&first) {
            return Err(GqlError::bad_input(
                "first",
                format!("first must be 1 to {MAX_PAGE}"),
            ));
        }
        let after = after
            .map(|s| GroupCursor::decode_cursor(&s))
            .transpose()
            .map_err(|e| GqlError::bad_input("after", e))?;
        let condition = group_condition(app_id, &filter)?;
        let mut rows = group_page(
            &state(ctx).db,
            condition.clone(),
            order,
            first as u64 + 1,
            after.as_ref(),
        )
        .await?;
        let has_next = rows.len() > first as usize;
        rows.truncate(first as usize);
        let mut connection =
            Connection::with_additional_fields(after.is_some(), has_next, GroupTotal { condition });
        connection.edges = rows
            .into_iter()
            .map(|group| {
                let cursor = GroupCursor {
                    after: SortValue::of(order, &group),
                    group_hash: group.group_hash.clone(),
                };
                Edge::new(cursor, group.into())
            })
            .collect();
        Ok(connection)
    }

    /// Report and usage counts, with rates, per combination of the `groupBy` dimensions.
    async fn rollout_health(
        &self,
        ctx: &Context<'_>,
        app_id: ID,
        group_by: Vec<Dimension>,
        filter: Option<ReportFilter>,
    ) -> GqlResult<Vec<HealthCell>> {
        let app_id = readable_app(ctx, &app_id).await?;
        let slice = filter.unwrap_or_default().slice()?;
        let db = &state(ctx).db;
        let cells = rollup::cells(db, app_id, &slice, &group_by).await?;
        let judged = gate::judge_cells(db, app_id, &cells).await?;
        Ok(cells
            .into_iter()
            .zip(judged)
            .map(|(cell, judged)| HealthCell::new(cell, judged))
            .collect())
    }

    /// Reports and usage messages of the app refused for the rate limit, per hour, in the
    /// filter's time range: any rate over those hours may be missing them.
    async fn throttled(
        &self,
        ctx: &Context<'_>,
        app_id: ID,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> GqlResult<Vec<ThrottledHour>> {
        let app_id = readable_app(ctx, &app_id).await?;
        let from = since.map(|since| since.timestamp().div_euclid(HOUR_SECONDS) * HOUR_SECONDS);
        let until = until.map(|until| until.timestamp());
        Ok(throttled::hours(&state(ctx).db, app_id, from, until).await?)
    }

    /// Reports (by type) and sessions per hour or day; buckets without any are left out.
    async fn time_series(
        &self,
        ctx: &Context<'_>,
        app_id: ID,
        filter: Option<ReportFilter>,
        interval: Option<Interval>,
    ) -> GqlResult<Vec<SeriesPoint>> {
        let app_id = readable_app(ctx, &app_id).await?;
        let bucket = match interval.unwrap_or_default() {
            Interval::Hour => HOUR_SECONDS,
            Interval::Day => DAY_SECONDS,
        };
        let slice = filter.unwrap_or_default().slice()?;
        let buckets = rollup::series(&state(ctx).db, app_id, &slice, bucket).await?;
        Ok(buckets
            .into_iter()
            .map(|(bucket, counts)| SeriesPoint::new(bucket, &counts))
            .collect())
    }

    /// The stored details of a group, newest first, each with a download URL that expires.
    async fn group_blobs(
        &self,
        ctx: &Context<'_>,
        app_id: ID,
        group_hash: String,
    ) -> GqlResult<Vec<Blob>> {
        let app_id = readable_app(ctx, &app_id).await?;
        let state = state(ctx);
        let rows = report_blobs::Entity::find()
            .filter(report_blobs::Column::AppId.eq(app_id))
            .filter(report_blobs::Column::GroupHash.eq(group_hash.trim().to_lowercase()))
            .order_by_desc(report_blobs::Column::CreatedAt)
            .all(&state.db)
            .await?;
        let base_url = &request_info(ctx).base_url;
        let mut blobs = Vec::with_capacity(rows.len());
        for row in rows {
            let link = state
                .blobs
                .download_link(
                    &row.id,
                    &row.storage_key,
                    state.config.blob_url_ttl,
                    &state.blob_links,
                    base_url,
                )
                .await?;
            blobs.push(Blob {
                id: row.id.into(),
                url: link.url,
                expires_at: link.expires_at,
                size_compressed: row.size_compressed,
                size_decompressed: row.size_decompressed,
                created_at: row.created_at,
            });
        }
        Ok(blobs)
    }
}

/// The app id when the caller may read its reports, and the reports API is on.
pub(super) async fn readable_app(ctx: &Context<'_>, app_id: &ID) -> GqlResult<i64> {
    let state: &AppState = state(ctx);
    if !state.config.reports.enabled {
        return Err(GqlError::NotFound(
            "the reports API is not enabled on this server (REPORTS_ENABLED=false)".to_owned(),
        ));
    }
    let actor = actor(ctx)?;
    let app = auth::authorize_app(
        &state.db,
        actor,
        Permission::Download,
        parse_id(app_id, "appId")?,
    )
    .await?;
    Ok(app.id)
}

/// One page of groups, in one statement.
async fn group_page(
    db: &impl ConnectionTrait,
    condition: Condition,
    order: GroupOrder,
    limit: u64,
    after: Option<&GroupCursor>,
) -> Result<Vec<report_groups::Model>, DbErr> {
    use report_groups::Column as G;
    let mut query = report_groups::Entity::find().filter(condition);
    if let Some(cursor) = after {
        let hash = cursor.group_hash.as_str();
        // Sorted descending by value, then ascending by hash.
        let beyond = match &cursor.after {
            SortValue::LastSeen(at) => Condition::any().add(G::LastSeen.lt(*at)).add(
                Condition::all()
                    .add(G::LastSeen.eq(*at))
                    .add(G::GroupHash.gt(hash)),
            ),
            SortValue::Count(n) => Condition::any().add(G::Count.lt(*n)).add(
                Condition::all()
                    .add(G::Count.eq(*n))
                    .add(G::GroupHash.gt(hash)),
            ),
        };
        query = query.filter(beyond);
    }
    let sort = match order {
        GroupOrder::LastSeen => G::LastSeen,
        GroupOrder::Count => G::Count,
    };
    query
        .order_by_desc(sort)
        .order_by_asc(G::GroupHash)
        .limit(limit)
        .all(db)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let hash = "ab".repeat(32);
        for after in [SortValue::LastSeen(Utc::now()), SortValue::Count(42)] {
            let cursor = GroupCursor {
                after,
                group_hash: hash.clone(),
            };
            assert_eq!(
                GroupCursor::decode_cursor(&cursor.encode_cursor()),
                Ok(cursor)
            );
        }
        for bad in [
            "",
            "!!",
            &URL_SAFE_NO_PAD.encode("c|1|short"),
            &URL_SAFE_NO_PAD.encode("x|1|aa"),
        ] {
            assert!(GroupCursor::decode_cursor(bad).is_err(), "{bad}");
        }
    }
}
