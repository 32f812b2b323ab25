//! The reports side of the schema: groups (a Relay connection), rollout health per cell,
//! time series and blob downloads. Each answer is one or two aggregate statements after the
//! permission check, whatever the number of rows.

use std::collections::{BTreeMap, HashMap};

use async_graphql::connection::{Connection, CursorType, Edge};
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use entity::{report_blobs, report_counts, report_groups, usage_counts};
use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait, Iden, Query, SelectStatement};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, FromQueryResult, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use super::error::{GqlError, GqlResult};
use super::types::parse_id;
use super::{actor, request_info, state};
use crate::auth::{self, Permission};
use crate::server::AppState;

const DEFAULT_PAGE: i32 = 50;
const MAX_PAGE: i32 = 100;
const HOUR_SECONDS: i64 = 3600;
const DAY_SECONDS: i64 = 24 * HOUR_SECONDS;

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    Crash,
    UpdateFailed,
    InstallFailed,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Crash => "crash",
            EventType::UpdateFailed => "update_failed",
            EventType::InstallFailed => "install_failed",
        }
    }

    fn parse(stored: &str) -> Option<Self> {
        [Self::Crash, Self::UpdateFailed, Self::InstallFailed]
            .into_iter()
            .find(|t| t.as_str() == stored)
    }
}

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
    /// The release dimensions, normalised as ingestion stores them.
    fn releases<C: ColumnTrait>(&self, version: C, channel: C, platform: C, arch: C) -> Condition {
        let mut condition = Condition::all();
        let trimmed = |v: &Option<String>| v.as_deref().map(str::trim).map(str::to_owned);
        let lower = |v: &Option<String>| trimmed(v).map(|v| v.to_lowercase());
        for (column, value) in [
            (version, trimmed(&self.version)),
            (channel, trimmed(&self.channel)),
            (platform, lower(&self.platform)),
            (arch, lower(&self.arch)),
        ] {
            if let Some(value) = value {
                condition = condition.add(column.eq(value));
            }
        }
        condition
    }

    fn groups(&self, app_id: i64) -> Condition {
        use report_groups::Column as G;
        let mut condition = Condition::all().add(G::AppId.eq(app_id)).add(self.releases(
            G::Version,
            G::Channel,
            G::Platform,
            G::Arch,
        ));
        if let Some(event_type) = self.event_type {
            condition = condition.add(G::EventType.eq(event_type.as_str()));
        }
        if let Some(hash) = &self.group_hash {
            condition = condition.add(G::GroupHash.eq(hash.trim().to_lowercase()));
        }
        condition
    }

    /// Hours that overlap `since..until`.
    fn hours<C: ColumnTrait>(&self, hour: C) -> Condition {
        let mut condition = Condition::all();
        if let Some(since) = self.since {
            condition =
                condition.add(hour.gte(since.timestamp().div_euclid(HOUR_SECONDS) * HOUR_SECONDS));
        }
        if let Some(until) = self.until {
            condition = condition.add(hour.lt(until.timestamp()));
        }
        condition
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
            event_type: EventType::parse(&g.event_type),
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
    app_id: i64,
    filter: ReportFilter,
}

#[Object]
impl GroupTotal {
    /// Groups matching the filter, over all pages.
    async fn total_count(&self, ctx: &Context<'_>) -> GqlResult<u64> {
        Ok(report_groups::Entity::find()
            .filter(group_condition(self.app_id, &self.filter))
            .count(&state(ctx).db)
            .await?)
    }
}

/// A group is in `since..until` when it was seen at some time in it.
fn group_condition(app_id: i64, filter: &ReportFilter) -> Condition {
    let mut condition = filter.groups(app_id);
    if let Some(since) = filter.since {
        condition = condition.add(report_groups::Column::LastSeen.gte(since));
    }
    if let Some(until) = filter.until {
        condition = condition.add(report_groups::Column::FirstSeen.lt(until));
    }
    condition
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum Dimension {
    Version,
    Channel,
    Platform,
    Arch,
    EventType,
}

/// Counts and rates of one cell of `rolloutHealth`; the dimensions not grouped by are null.
#[derive(SimpleObject, Clone, Debug, Default, PartialEq)]
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
    /// crashes / sessions; null without sessions.
    pub crash_rate: Option<f64>,
    /// update failures / (update failures + updates succeeded); null when both are 0.
    pub update_failure_rate: Option<f64>,
    /// install failures / (install failures + installs succeeded); null when both are 0.
    pub install_failure_rate: Option<f64>,
}

fn rate(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

impl HealthCell {
    fn add_reports(&mut self, event_type: &str, n: i64) {
        self.reports += n;
        match EventType::parse(event_type) {
            Some(EventType::Crash) => self.crashes += n,
            Some(EventType::UpdateFailed) => self.update_failures += n,
            Some(EventType::InstallFailed) => self.install_failures += n,
            None => {}
        }
    }

    fn add_usage(&mut self, kind: &str, n: i64) {
        match kind {
            "session" => self.sessions += n,
            "update_succeeded" => self.updates_succeeded += n,
            "install_succeeded" => self.installs_succeeded += n,
            _ => {}
        }
    }

    fn with_rates(mut self) -> Self {
        self.crash_rate = rate(self.crashes, self.sessions);
        self.update_failure_rate = rate(
            self.update_failures,
            self.update_failures + self.updates_succeeded,
        );
        self.install_failure_rate = rate(
            self.install_failures,
            self.install_failures + self.installs_succeeded,
        );
        self
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
        let mut rows = group_page(
            &state(ctx).db,
            app_id,
            &filter,
            order,
            first as u64 + 1,
            after.as_ref(),
        )
        .await?;
        let has_next = rows.len() > first as usize;
        rows.truncate(first as usize);
        let mut connection = Connection::with_additional_fields(
            after.is_some(),
            has_next,
            GroupTotal { app_id, filter },
        );
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
        Ok(health(
            &state(ctx).db,
            app_id,
            &group_by,
            &filter.unwrap_or_default(),
        )
        .await?)
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
        Ok(series(&state(ctx).db, app_id, &filter.unwrap_or_default(), bucket).await?)
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
    app_id: i64,
    filter: &ReportFilter,
    order: GroupOrder,
    limit: u64,
    after: Option<&GroupCursor>,
) -> Result<Vec<report_groups::Model>, DbErr> {
    use report_groups::Column as G;
    let mut query = report_groups::Entity::find().filter(group_condition(app_id, filter));
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

/// `report_counts` of the app's groups and hours that pass the filter, joined to their
/// group (for its dimensions) and summed as `total`; callers add columns and grouping.
fn summed_report_counts(app_id: i64, filter: &ReportFilter) -> SelectStatement {
    let (g, rc) = (report_groups::Entity, report_counts::Entity);
    Query::select()
        .from(rc)
        .inner_join(
            g,
            Condition::all()
                .add(
                    Expr::col((g, report_groups::Column::AppId))
                        .equals((rc, report_counts::Column::AppId)),
                )
                .add(
                    Expr::col((g, report_groups::Column::GroupHash))
                        .equals((rc, report_counts::Column::GroupHash)),
                ),
        )
        .expr_as(
            Expr::cust("CAST(SUM(report_counts.count) AS BIGINT)"),
            Alias::new("total"),
        )
        .cond_where(filter.groups(app_id))
        .cond_where(filter.hours(report_counts::Column::Hour))
        .to_owned()
}

/// `usage_counts` of the app's releases and hours that pass the filter, summed as `total`.
fn summed_usage_counts(app_id: i64, filter: &ReportFilter) -> SelectStatement {
    use usage_counts::Column as U;
    Query::select()
        .from(usage_counts::Entity)
        .expr_as(
            Expr::cust("CAST(SUM(usage_counts.count) AS BIGINT)"),
            Alias::new("total"),
        )
        .cond_where(
            Condition::all()
                .add(U::AppId.eq(app_id))
                .add(filter.releases(U::Version, U::Channel, U::Platform, U::Arch))
                .add(filter.hours(U::Hour)),
        )
        .to_owned()
}

/// Selects `column` as `alias` and groups by it.
fn grouped_column<T, C>(query: &mut SelectStatement, column: (T, C), alias: &'static str)
where
    T: Iden + Copy + 'static,
    C: Iden + Copy + 'static,
{
    query
        .expr_as(Expr::col(column), Alias::new(alias))
        .add_group_by([Expr::col(column)]);
}

/// The release dimensions of `table`'s `[version, channel, platform, arch]` columns, under
/// those names: grouped by when in `group_by`, else typed NULLs.
fn release_dimensions<T, C>(
    query: &mut SelectStatement,
    group_by: &[Dimension],
    table: T,
    columns: [C; 4],
) where
    T: Iden + Copy + 'static,
    C: Iden + Copy + 'static,
{
    let dimensions = [
        (Dimension::Version, "version"),
        (Dimension::Channel, "channel"),
        (Dimension::Platform, "platform"),
        (Dimension::Arch, "arch"),
    ];
    for ((dimension, alias), column) in dimensions.into_iter().zip(columns) {
        if group_by.contains(&dimension) {
            grouped_column(query, (table, column), alias);
        } else {
            query.expr_as(Expr::cust("CAST(NULL AS TEXT)"), Alias::new(alias));
        }
    }
}

/// A row of either aggregate: the release dimensions, a kind (event type or usage kind)
/// and its total.
#[derive(FromQueryResult)]
struct CellRow {
    version: Option<String>,
    channel: Option<String>,
    platform: Option<String>,
    arch: Option<String>,
    kind: String,
    total: i64,
}

impl CellRow {
    fn release(self) -> (ReleaseKey, String, i64) {
        (
            (self.version, self.channel, self.platform, self.arch),
            self.kind,
            self.total,
        )
    }
}

type ReleaseKey = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// `rolloutHealth`: one statement for reports, one for usage, merged per cell. Usage has no
/// event type, so a cell of an event type carries the usage of its release dimensions.
pub async fn health(
    db: &impl ConnectionTrait,
    app_id: i64,
    group_by: &[Dimension],
    filter: &ReportFilter,
) -> Result<Vec<HealthCell>, DbErr> {
    use report_groups::Column as G;
    use usage_counts::Column as U;
    let backend = db.get_database_backend();

    let mut reports = summed_report_counts(app_id, filter);
    let g = report_groups::Entity;
    release_dimensions(
        &mut reports,
        group_by,
        g,
        [G::Version, G::Channel, G::Platform, G::Arch],
    );
    grouped_column(&mut reports, (g, G::EventType), "kind");
    let report_rows = CellRow::find_by_statement(backend.build(&reports))
        .all(db)
        .await?;

    let mut usage = summed_usage_counts(app_id, filter);
    let u = usage_counts::Entity;
    release_dimensions(
        &mut usage,
        group_by,
        u,
        [U::Version, U::Channel, U::Platform, U::Arch],
    );
    grouped_column(&mut usage, (u, U::Kind), "kind");
    let usage_rows = CellRow::find_by_statement(backend.build(&usage))
        .all(db)
        .await?;

    let mut usage_by_release: HashMap<ReleaseKey, HealthCell> = HashMap::new();
    for (release, kind, total) in usage_rows.into_iter().map(CellRow::release) {
        usage_by_release
            .entry(release)
            .or_default()
            .add_usage(&kind, total);
    }
    let by_event_type = group_by.contains(&Dimension::EventType);
    let mut cells: BTreeMap<(ReleaseKey, Option<&'static str>), HealthCell> = BTreeMap::new();
    for (release, kind, total) in report_rows.into_iter().map(CellRow::release) {
        let event_type = EventType::parse(&kind).filter(|_| by_event_type);
        cells
            .entry((release, event_type.map(EventType::as_str)))
            .or_insert_with_key(|(release, _)| HealthCell {
                event_type,
                ..usage_by_release.get(release).cloned().unwrap_or_default()
            })
            .add_reports(&kind, total);
    }
    // Releases with usage and no report at all: the healthiest cells must show too.
    for (release, usage) in usage_by_release {
        if !cells.keys().any(|(r, _)| *r == release) {
            cells.insert((release, None), usage);
        }
    }
    Ok(cells
        .into_iter()
        .map(|(((version, channel, platform, arch), _), cell)| {
            HealthCell {
                version,
                channel,
                platform,
                arch,
                ..cell
            }
            .with_rates()
        })
        .collect())
}

#[derive(FromQueryResult)]
struct BucketRow {
    bucket: i64,
    kind: String,
    total: i64,
}

/// `timeSeries`: one statement for reports by type, one for sessions, per bucket.
pub async fn series(
    db: &impl ConnectionTrait,
    app_id: i64,
    filter: &ReportFilter,
    bucket_seconds: i64,
) -> Result<Vec<SeriesPoint>, DbErr> {
    let bucket_of =
        |table: &str| Expr::cust(format!("{table}.hour - ({table}.hour % {bucket_seconds})"));
    let by_bucket = |query: &mut SelectStatement, table: &str, kind: Expr| {
        query
            .expr_as(bucket_of(table), Alias::new("bucket"))
            .expr_as(kind.clone(), Alias::new("kind"))
            .add_group_by([bucket_of(table), kind]);
    };

    let mut reports = summed_report_counts(app_id, filter);
    let event_type = Expr::col((report_groups::Entity, report_groups::Column::EventType));
    by_bucket(&mut reports, "report_counts", event_type);

    let mut sessions = summed_usage_counts(app_id, filter);
    sessions.and_where(usage_counts::Column::Kind.eq("session"));
    let kind = Expr::col((usage_counts::Entity, usage_counts::Column::Kind));
    by_bucket(&mut sessions, "usage_counts", kind);

    let backend = db.get_database_backend();
    let mut points: BTreeMap<i64, SeriesPoint> = BTreeMap::new();
    fn point(points: &mut BTreeMap<i64, SeriesPoint>, bucket: i64) -> &mut SeriesPoint {
        points.entry(bucket).or_insert_with(|| SeriesPoint {
            at: DateTime::from_timestamp(bucket, 0).unwrap_or_default(),
            ..SeriesPoint::default()
        })
    }
    for row in BucketRow::find_by_statement(backend.build(&reports))
        .all(db)
        .await?
    {
        let p = point(&mut points, row.bucket);
        p.reports += row.total;
        match EventType::parse(&row.kind) {
            Some(EventType::Crash) => p.crashes += row.total,
            Some(EventType::UpdateFailed) => p.update_failures += row.total,
            Some(EventType::InstallFailed) => p.install_failures += row.total,
            None => {}
        }
    }
    for row in BucketRow::find_by_statement(backend.build(&sessions))
        .all(db)
        .await?
    {
        point(&mut points, row.bucket).sessions += row.total;
    }
    Ok(points.into_values().collect())
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

    #[test]
    fn rates_follow_design_section_8() {
        let mut cell = HealthCell::default();
        cell.add_reports("crash", 3);
        cell.add_reports("update_failed", 1);
        cell.add_usage("session", 300);
        cell.add_usage("update_succeeded", 9);
        let cell = cell.with_rates();
        assert_eq!(cell.reports, 4);
        assert_eq!(cell.crash_rate, Some(0.01));
        assert_eq!(cell.update_failure_rate, Some(0.1));
        assert_eq!(cell.install_failure_rate, None);
    }
}
