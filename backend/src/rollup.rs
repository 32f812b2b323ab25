//! The one roll-up: report counts per event type and usage counts per kind, for the slice of
//! an app's data a caller asks about, summed by the dimensions it asks for. The dashboard's
//! matrix and time series, the release gate (and what later reads counts) all call it, so they
//! cannot disagree on what a release counted.
//!
//! Each answer is one aggregate statement over `report_counts` (joined to its group for the
//! dimensions) and one over `usage_counts`, whatever the number of rows.

use std::collections::BTreeMap;

use entity::{report_counts, report_groups, usage_counts};
use sea_orm::sea_query::{
    Alias, Condition, Expr, ExprTrait, Iden, IntoColumnRef, Query, SelectStatement,
};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, FromQueryResult};

use crate::model::{Arch, Counts, Dimension, EventType, Platform, UsageKind};

pub const HOUR_SECONDS: i64 = 3600;

/// Which of an app's counts to sum: every field narrows (AND); hours are Unix seconds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Slice {
    pub version: Option<String>,
    pub channel: Option<String>,
    pub platform: Option<Platform>,
    pub arch: Option<Arch>,
    /// Narrows reports only: usage has no event type.
    pub event_type: Option<EventType>,
    /// One group. Usage belongs to releases, not groups, so sessions stay the release's.
    pub group_hash: Option<String>,
    /// Hours starting at or after this.
    pub from_hour: Option<i64>,
    /// Hours starting before this.
    pub until: Option<i64>,
}

/// The release dimensions of a cell, as stored; those not summed by are `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CellKey {
    pub version: Option<String>,
    pub channel: Option<String>,
    pub platform: Option<String>,
    pub arch: Option<String>,
}

/// One combination of the dimensions summed by, with its counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    pub key: CellKey,
    /// Set when summing by event type: the cell then holds that type's reports only (and the
    /// usage of its release dimensions).
    pub event_type: Option<EventType>,
    pub counts: Counts,
    /// Its reports and its usage were split the same way. False where the cell is split (or
    /// the slice filtered) by platform or arch and some counts of its release do not say
    /// theirs (`unknown`, as a Sentry session's): its counts are real, a rate of them is not.
    pub sliced_alike: bool,
}

/// A slice's counts summed together, and whether its rates mean anything (`Cell::sliced_alike`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub counts: Counts,
    pub sliced_alike: bool,
}

/// The slice's counts summed by `by`. Usage has no event type, so a cell of an event type
/// carries the usage of its release dimensions; releases with usage and no report at all are
/// cells too, since the healthiest releases must show.
pub async fn cells(
    db: &impl ConnectionTrait,
    app_id: i64,
    slice: &Slice,
    by: &[Dimension],
) -> Result<Vec<Cell>, DbErr> {
    let mut cells = summed_cells(db, app_id, slice, by).await?;
    unlike_where_a_split_is_unknown(&mut cells, by);
    // A filter on platform or arch splits too: the counts it leaves out as `unknown` may
    // belong to the platform asked for.
    if slice.platform == Some(Platform::Unknown) || slice.arch == Some(Arch::Unknown) {
        cells.iter_mut().for_each(|cell| cell.sliced_alike = false);
        return Ok(cells);
    }
    let mut unknown_siblings = Vec::new();
    if slice.platform.is_some() {
        let platform = Some(Platform::Unknown);
        unknown_siblings.push((
            Dimension::Platform,
            Slice {
                platform,
                ..slice.clone()
            },
        ));
    }
    if slice.arch.is_some() {
        let arch = Some(Arch::Unknown);
        unknown_siblings.push((
            Dimension::Arch,
            Slice {
                arch,
                ..slice.clone()
            },
        ));
    }
    for (dimension, sibling) in unknown_siblings {
        let unknown: Vec<CellKey> = summed_cells(db, app_id, &sibling, by)
            .await?
            .into_iter()
            .map(|cell| cell.key.without(&[dimension]))
            .collect();
        for cell in &mut cells {
            if unknown.contains(&cell.key.without(&[dimension])) {
                cell.sliced_alike = false;
            }
        }
    }
    Ok(cells)
}

impl CellKey {
    /// Platform or arch, among the dimensions split by, is `unknown`.
    fn unknown_in(&self, split: &[Dimension]) -> bool {
        let unknown = |value: &Option<String>, named: &str| value.as_deref() == Some(named);
        (split.contains(&Dimension::Platform)
            && unknown(&self.platform, Platform::Unknown.as_str()))
            || (split.contains(&Dimension::Arch) && unknown(&self.arch, Arch::Unknown.as_str()))
    }

    /// The key without the `split` dimensions: the cells sharing it are one release split.
    fn without(&self, split: &[Dimension]) -> CellKey {
        let mut key = self.clone();
        for dimension in split {
            match dimension {
                Dimension::Platform => key.platform = None,
                Dimension::Arch => key.arch = None,
                Dimension::Version => key.version = None,
                Dimension::Channel => key.channel = None,
                Dimension::EventType => {}
            }
        }
        key
    }
}

/// Marks every cell of a release split by platform and/or arch as not sliced alike when one
/// of the release's cells is `unknown` in a dimension split by (that cell included).
fn unlike_where_a_split_is_unknown(cells: &mut [Cell], by: &[Dimension]) {
    let split: Vec<Dimension> = [Dimension::Platform, Dimension::Arch]
        .into_iter()
        .filter(|dimension| by.contains(dimension))
        .collect();
    if split.is_empty() {
        return;
    }
    let releases_with_unknown: Vec<CellKey> = cells
        .iter()
        .filter(|cell| cell.key.unknown_in(&split))
        .map(|cell| cell.key.without(&split))
        .collect();
    for cell in cells {
        if releases_with_unknown.contains(&cell.key.without(&split)) {
            cell.sliced_alike = false;
        }
    }
}

async fn summed_cells(
    db: &impl ConnectionTrait,
    app_id: i64,
    slice: &Slice,
    by: &[Dimension],
) -> Result<Vec<Cell>, DbErr> {
    use report_groups::Column as G;
    use usage_counts::Column as U;
    let mut reports = summed_reports(app_id, slice);
    release_dimensions(
        &mut reports,
        by,
        report_groups::Entity,
        [G::Version, G::Channel, G::Platform, G::Arch],
    );
    grouped(&mut reports, (report_groups::Entity, G::EventType), "kind");
    let mut usage = summed_usage(app_id, slice);
    release_dimensions(
        &mut usage,
        by,
        usage_counts::Entity,
        [U::Version, U::Channel, U::Platform, U::Arch],
    );
    grouped(&mut usage, (usage_counts::Entity, U::Kind), "kind");

    let mut usage_of: BTreeMap<CellKey, Counts> = BTreeMap::new();
    for row in CellRow::all(db, &usage).await? {
        if let Some(kind) = UsageKind::from_stored(&row.kind) {
            usage_of
                .entry(row.key())
                .or_default()
                .add_usage(kind, row.total());
        }
    }
    let by_event_type = by.contains(&Dimension::EventType);
    let mut cells: BTreeMap<(CellKey, Option<EventType>), Counts> = BTreeMap::new();
    for row in CellRow::all(db, &reports).await? {
        let Some(event_type) = EventType::from_stored(&row.kind) else {
            continue;
        };
        let key = row.key();
        cells
            .entry((key.clone(), by_event_type.then_some(event_type)))
            .or_insert_with(|| usage_of.get(&key).copied().unwrap_or_default())
            .add_reports(event_type, row.total());
    }
    for (key, usage) in usage_of {
        if !cells.keys().any(|(reported, _)| *reported == key) {
            cells.insert((key, None), usage);
        }
    }
    Ok(cells
        .into_iter()
        .map(|((key, event_type), counts)| Cell {
            key,
            event_type,
            counts,
            sliced_alike: true,
        })
        .collect())
}

/// The slice's counts, all summed together.
pub async fn totals(
    db: &impl ConnectionTrait,
    app_id: i64,
    slice: &Slice,
) -> Result<Totals, DbErr> {
    Ok(cells(db, app_id, slice, &[]).await?.into_iter().fold(
        Totals {
            counts: Counts::default(),
            sliced_alike: true,
        },
        |mut sum, cell| {
            sum.counts.add(&cell.counts);
            sum.sliced_alike &= cell.sliced_alike;
            sum
        },
    ))
}

/// The slice's counts per bucket of `bucket_seconds` (a multiple of an hour), oldest first;
/// buckets without any count are left out.
pub async fn series(
    db: &impl ConnectionTrait,
    app_id: i64,
    slice: &Slice,
    bucket_seconds: i64,
) -> Result<Vec<(i64, Counts)>, DbErr> {
    let bucket_of =
        |table: &str| Expr::cust(format!("{table}.hour - ({table}.hour % {bucket_seconds})"));
    let by_bucket = |query: &mut SelectStatement, table: &str, kind: Expr| {
        query
            .expr_as(bucket_of(table), Alias::new("bucket"))
            .expr_as(kind.clone(), Alias::new("kind"))
            .add_group_by([bucket_of(table), kind]);
    };
    let mut reports = summed_reports(app_id, slice);
    let event_type = Expr::col((report_groups::Entity, report_groups::Column::EventType));
    by_bucket(&mut reports, "report_counts", event_type);
    let mut usage = summed_usage(app_id, slice);
    let kind = Expr::col((usage_counts::Entity, usage_counts::Column::Kind));
    by_bucket(&mut usage, "usage_counts", kind);

    let backend = db.get_database_backend();
    let mut buckets: BTreeMap<i64, Counts> = BTreeMap::new();
    for row in BucketRow::find_by_statement(backend.build(&reports))
        .all(db)
        .await?
    {
        if let Some(event_type) = EventType::from_stored(&row.kind) {
            buckets
                .entry(row.bucket)
                .or_default()
                .add_reports(event_type, non_negative(row.total));
        }
    }
    for row in BucketRow::find_by_statement(backend.build(&usage))
        .all(db)
        .await?
    {
        if let Some(kind) = UsageKind::from_stored(&row.kind) {
            buckets
                .entry(row.bucket)
                .or_default()
                .add_usage(kind, non_negative(row.total));
        }
    }
    Ok(buckets.into_iter().collect())
}

/// The latest hour with usage or reports in the slice.
pub async fn last_hour(
    db: &impl ConnectionTrait,
    app_id: i64,
    slice: &Slice,
) -> Result<Option<i64>, DbErr> {
    let mut usage = usage_rows(app_id, slice);
    usage.expr_as(
        Expr::col((usage_counts::Entity, usage_counts::Column::Hour)).max(),
        Alias::new("last_hour"),
    );
    let mut reports = report_rows(app_id, slice);
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

/// Every version with usage in the slice, with its first hour.
pub async fn versions_with_usage(
    db: &impl ConnectionTrait,
    app_id: i64,
    slice: &Slice,
) -> Result<Vec<(String, i64)>, DbErr> {
    use usage_counts::Column as U;
    let mut query = usage_rows(app_id, slice);
    query
        .expr_as(
            Expr::col((usage_counts::Entity, U::Version)),
            Alias::new("version"),
        )
        .expr_as(
            Expr::col((usage_counts::Entity, U::Hour)).min(),
            Alias::new("first_hour"),
        )
        .add_group_by([Expr::col((usage_counts::Entity, U::Version))]);
    db.query_all(&query)
        .await?
        .iter()
        .map(|row| Ok((row.try_get("", "version")?, row.try_get("", "first_hour")?)))
        .collect()
}

impl Slice {
    /// The release dimensions on `[version, channel, platform, arch]` columns.
    fn releases<C: ColumnTrait>(&self, [version, channel, platform, arch]: [C; 4]) -> Condition {
        let mut condition = Condition::all();
        for (column, value) in [
            (version, self.version.as_deref()),
            (channel, self.channel.as_deref()),
            (platform, self.platform.map(Platform::as_str)),
            (arch, self.arch.map(Arch::as_str)),
        ] {
            if let Some(value) = value {
                condition = condition.add(column.eq(value));
            }
        }
        condition
    }

    /// Hours in `from_hour..until`.
    fn hours<C: ColumnTrait>(&self, hour: C) -> Condition {
        let mut condition = Condition::all();
        if let Some(from) = self.from_hour {
            condition = condition.add(hour.gte(from));
        }
        if let Some(until) = self.until {
            condition = condition.add(hour.lt(until));
        }
        condition
    }
}

/// The app's groups in the slice's dimensions (hours aside): what the group list shows.
pub fn group_filter(app_id: i64, slice: &Slice) -> Condition {
    use report_groups::Column as G;
    let mut groups = Condition::all()
        .add(G::AppId.eq(app_id))
        .add(slice.releases([G::Version, G::Channel, G::Platform, G::Arch]));
    if let Some(event_type) = slice.event_type {
        groups = groups.add(G::EventType.eq(event_type.as_str()));
    }
    if let Some(hash) = &slice.group_hash {
        groups = groups.add(G::GroupHash.eq(hash.as_str()));
    }
    groups
}

/// `report_counts` rows of the slice, joined to their group for its dimensions.
fn report_rows(app_id: i64, slice: &Slice) -> SelectStatement {
    use report_groups::Column as G;
    let (g, rc) = (report_groups::Entity, report_counts::Entity);
    Query::select()
        .from(rc)
        .inner_join(
            g,
            Condition::all()
                .add(Expr::col((g, G::AppId)).equals((rc, report_counts::Column::AppId)))
                .add(Expr::col((g, G::GroupHash)).equals((rc, report_counts::Column::GroupHash))),
        )
        .cond_where(group_filter(app_id, slice))
        .cond_where(slice.hours(report_counts::Column::Hour))
        .to_owned()
}

/// `usage_counts` rows of the slice's releases and hours.
fn usage_rows(app_id: i64, slice: &Slice) -> SelectStatement {
    use usage_counts::Column as U;
    Query::select()
        .from(usage_counts::Entity)
        .cond_where(
            Condition::all()
                .add(U::AppId.eq(app_id))
                .add(slice.releases([U::Version, U::Channel, U::Platform, U::Arch]))
                .add(slice.hours(U::Hour)),
        )
        .to_owned()
}

fn summed_reports(app_id: i64, slice: &Slice) -> SelectStatement {
    let mut query = report_rows(app_id, slice);
    query.expr_as(
        sum_of((report_counts::Entity, report_counts::Column::Count)),
        Alias::new("total"),
    );
    query
}

fn summed_usage(app_id: i64, slice: &Slice) -> SelectStatement {
    let mut query = usage_rows(app_id, slice);
    query.expr_as(
        sum_of((usage_counts::Entity, usage_counts::Column::Count)),
        Alias::new("total"),
    );
    query
}

/// `SUM(count)` as a BIGINT: PostgreSQL widens a sum of BIGINTs to NUMERIC.
fn sum_of(column: impl IntoColumnRef) -> Expr {
    Expr::col(column).sum().cast_as(Alias::new("BIGINT"))
}

/// Selects `column` as `alias` and groups by it.
fn grouped<T, C>(query: &mut SelectStatement, column: (T, C), alias: &'static str)
where
    T: Iden + Copy + 'static,
    C: Iden + Copy + 'static,
{
    query
        .expr_as(Expr::col(column), Alias::new(alias))
        .add_group_by([Expr::col(column)]);
}

/// `table`'s `[version, channel, platform, arch]` columns under those names: grouped by when
/// in `by`, else typed NULLs.
fn release_dimensions<T, C>(
    query: &mut SelectStatement,
    by: &[Dimension],
    table: T,
    columns: [C; 4],
) where
    T: Iden + Copy + 'static,
    C: Iden + Copy + 'static,
{
    let dimensions = [
        Dimension::Version,
        Dimension::Channel,
        Dimension::Platform,
        Dimension::Arch,
    ];
    for (dimension, column) in dimensions.into_iter().zip(columns) {
        if by.contains(&dimension) {
            grouped(query, (table, column), dimension.as_str());
        } else {
            query.expr_as(
                Expr::cust("CAST(NULL AS TEXT)"),
                Alias::new(dimension.as_str()),
            );
        }
    }
}

/// Sums are of non-negative counts; a negative one would be a corrupt row, counted as 0.
fn non_negative(total: i64) -> u64 {
    u64::try_from(total).unwrap_or(0)
}

/// A row of either aggregate of `cells`: the release dimensions, a kind (event type or usage
/// kind) and its total.
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
    async fn all(db: &impl ConnectionTrait, query: &SelectStatement) -> Result<Vec<Self>, DbErr> {
        CellRow::find_by_statement(db.get_database_backend().build(query))
            .all(db)
            .await
    }

    fn key(&self) -> CellKey {
        CellKey {
            version: self.version.clone(),
            channel: self.channel.clone(),
            platform: self.platform.clone(),
            arch: self.arch.clone(),
        }
    }

    fn total(&self) -> u64 {
        non_negative(self.total)
    }
}

#[derive(FromQueryResult)]
struct BucketRow {
    bucket: i64,
    kind: String,
    total: i64,
}
