//! The one roll-up: report counts per event type and usage counts per kind, for the slice of
//! an app's data a caller asks about, summed by the dimensions it asks for. The dashboard's
//! matrix and time series, the release gate (and what later reads counts) all call it, so they
//! cannot disagree on what a release counted.
//!
//! Each answer is a few aggregate statements, over tables the writer keeps in the same flush
//! as `report_counts`: reports per release, event type and hour (`release_counts`) and per day
//! (`release_day_counts`), usage per release, kind and hour (`usage_counts`) and per day
//! (`usage_day_counts`). A slice's whole days are read from the daily tables and the hours
//! around them from the hourly ones, so a read touches rows per release and day or hour,
//! however many groups (reasons) and hours the app has; only a slice of one group reads that
//! group's `report_counts` (and `report_day_counts`, its folded days).
//!
//! Hours before the folding horizon (`folding`) may be gone from the hourly tables: there a
//! read takes days only, and a day counts when it starts in the slice. The fold also sums
//! those days into weeks (`release_week_counts`, `usage_week_counts`): a sum over a slice
//! (`cells`) takes each week whose days all count from the weeks, a row per release and kind
//! where there were seven.

use std::collections::BTreeMap;

use entity::report_groups;
use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait, Query, SelectStatement};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, FromQueryResult};

use crate::folding::{self, Horizons};
use crate::model::{Arch, Counts, Dimension, EventType, Platform, UsageKind};

pub const HOUR_SECONDS: i64 = 3600;
pub const DAY_SECONDS: i64 = 24 * HOUR_SECONDS;
pub const WEEK_SECONDS: i64 = 7 * DAY_SECONDS;

/// The start of the UTC day holding `seconds` (Unix seconds).
pub fn start_of_day(seconds: i64) -> i64 {
    seconds - seconds.rem_euclid(DAY_SECONDS)
}

/// The start of the week (from Monday, UTC) holding `seconds`; 1 January 1970 was a Thursday.
pub fn start_of_week(seconds: i64) -> i64 {
    let day = start_of_day(seconds);
    day - (day / DAY_SECONDS + 3).rem_euclid(7) * DAY_SECONDS
}

/// The first start of a period (`start_of` it, `length` long) at or after `at`.
fn first_start_from(at: i64, length: i64, start_of: fn(i64) -> i64) -> i64 {
    let start = start_of(at);
    if start < at { start + length } else { start }
}

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
    let folded = folding::horizons(db).await?;
    let mut cells = summed_cells(db, app_id, slice, by, folded).await?;
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
        let unknown: Vec<CellKey> = summed_cells(db, app_id, &sibling, by, folded)
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
    folded: Horizons,
) -> Result<Vec<Cell>, DbErr> {
    let summed_by = |part: &Part| {
        let mut query = part.summed(app_id, slice);
        release_dimensions(&mut query, by, part.source.release_columns());
        grouped(&mut query, part.source.kind(), "kind");
        query
    };
    let mut usage_of: BTreeMap<CellKey, Counts> = BTreeMap::new();
    for part in Part::usage(slice, Resolution::Weeks, folded) {
        for row in CellRow::all(db, &summed_by(&part)).await? {
            if let Some(kind) = UsageKind::from_stored(&row.kind) {
                usage_of
                    .entry(row.key())
                    .or_default()
                    .add_usage(kind, row.total());
            }
        }
    }
    let by_event_type = by.contains(&Dimension::EventType);
    let mut cells: BTreeMap<(CellKey, Option<EventType>), Counts> = BTreeMap::new();
    for part in Part::reports(slice, Resolution::Weeks, folded) {
        for row in CellRow::all(db, &summed_by(&part)).await? {
            let Some(event_type) = EventType::from_stored(&row.kind) else {
                continue;
            };
            let key = row.key();
            cells
                .entry((key.clone(), by_event_type.then_some(event_type)))
                .or_insert_with(|| usage_of.get(&key).copied().unwrap_or_default())
                .add_reports(event_type, row.total());
        }
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
    let by_bucket = |part: &Part| {
        let mut query = part.summed(app_id, slice);
        let (table, time) = part.source.time_column();
        let bucket = Expr::cust(format!(
            "{table}.{time} - ({table}.{time} % {bucket_seconds})"
        ));
        let kind = part.source.kind();
        query
            .expr_as(bucket.clone(), Alias::new("bucket"))
            .expr_as(kind.clone(), Alias::new("kind"))
            .add_group_by([bucket, kind]);
        query
    };
    // Buckets of whole days can be summed from days; an hourly bucket needs the hours.
    let resolution = if bucket_seconds % DAY_SECONDS == 0 {
        Resolution::Days
    } else {
        Resolution::Hours
    };
    let folded = folding::horizons(db).await?;
    let backend = db.get_database_backend();
    let mut buckets: BTreeMap<i64, Counts> = BTreeMap::new();
    for part in Part::reports(slice, resolution, folded)
        .into_iter()
        .chain(Part::usage(slice, resolution, folded))
    {
        for row in BucketRow::find_by_statement(backend.build(&by_bucket(&part)))
            .all(db)
            .await?
        {
            let counts = buckets.entry(row.bucket).or_default();
            part.source.add(counts, &row.kind, non_negative(row.total));
        }
    }
    Ok(buckets.into_iter().collect())
}

/// The latest hour with usage or reports in the slice (the start of its day, if folded).
pub async fn last_hour(
    db: &impl ConnectionTrait,
    app_id: i64,
    slice: &Slice,
) -> Result<Option<i64>, DbErr> {
    let folded = folding::horizons(db).await?;
    let (hours, days): (Vec<Part>, Vec<Part>) = Part::usage(slice, Resolution::Hours, folded)
        .into_iter()
        .chain(Part::reports(slice, Resolution::Hours, folded))
        .partition(|part| part.source.of_hours());
    let mut last = None;
    // Folded days all come before the hours kept: read them only when no hour has data.
    for part in hours.into_iter().chain(days) {
        if last.is_some() && !part.source.of_hours() {
            break;
        }
        let mut query = part
            .past_horizon_unbounded(slice, folded.hours)
            .rows(app_id, slice);
        // `hour + 0`, not the column: on `MAX(hour)` both SQLite and PostgreSQL walk the
        // by-time index backwards hoping to meet the release soon, which reads most of the
        // app for an old release; an expression leaves them the primary key's range.
        let hour = part.source.time().add(0);
        query.expr_as(hour.max(), Alias::new("last_hour"));
        if let Some(row) = db.query_one(&query).await? {
            let hour: Option<i64> = row.try_get("", "last_hour")?;
            last = Ord::max(last, hour.filter(|hour| part.holds(*hour)));
        }
    }
    Ok(last)
}

/// Every version with usage in the slice, with its first hour (the start of its day, if
/// folded).
pub async fn versions_with_usage(
    db: &impl ConnectionTrait,
    app_id: i64,
    slice: &Slice,
) -> Result<Vec<(String, i64)>, DbErr> {
    let folded = folding::horizons(db).await?;
    let mut first_hours: BTreeMap<String, i64> = BTreeMap::new();
    for part in Part::usage(slice, Resolution::Hours, folded) {
        let mut query = part
            .past_horizon_unbounded(slice, folded.hours)
            .rows(app_id, slice);
        let [version, ..] = part.source.release_columns();
        query
            .expr_as(version.clone(), Alias::new("version"))
            .expr_as(part.source.time().min(), Alias::new("first_hour"))
            .add_group_by([version]);
        for row in db.query_all(&query).await? {
            let (version, hour): (String, i64) =
                (row.try_get("", "version")?, row.try_get("", "first_hour")?);
            // A version whose first kept hour is older than the part (hours a fold has not
            // deleted yet) has its first day in the folded days, read by the other part.
            if part.holds(hour) {
                let first = first_hours.entry(version).or_insert(hour);
                *first = Ord::min(*first, hour);
            }
        }
    }
    Ok(first_hours.into_iter().collect())
}

impl Slice {
    /// The release dimensions on `[version, channel, platform, arch]` columns.
    fn releases(&self, [version, channel, platform, arch]: [Expr; 4]) -> Condition {
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
}

/// The app's groups in the slice's dimensions (hours aside): what the group list shows.
pub fn group_filter(app_id: i64, slice: &Slice) -> Condition {
    use report_groups::Column as G;
    let mut groups = Condition::all()
        .add(G::AppId.eq(app_id))
        .add(slice.releases(Source::GROUP_HOURS.release_columns()));
    if let Some(event_type) = slice.event_type {
        groups = groups.add(G::EventType.eq(event_type.as_str()));
    }
    if let Some(hash) = &slice.group_hash {
        groups = groups.add(G::GroupHash.eq(hash.as_str()));
    }
    groups
}

/// A table of counts per app, release, kind and hour, day or week: what `cells`, `series` and
/// the gate read.
#[derive(Clone, Copy, PartialEq, Eq)]
struct RollUp {
    table: &'static str,
    /// `event_type` for reports, `kind` for usage.
    kind: &'static str,
    /// `hour`, `day` or `week`: the start of one in Unix seconds.
    time: &'static str,
    /// Narrowed by the slice's event type (reports; usage has none).
    of_reports: bool,
}

/// A table of one group's counts per hour or day, joined to `report_groups` for the
/// dimensions: a slice of one group, whose counts only these tables hold.
#[derive(Clone, Copy, PartialEq, Eq)]
struct GroupCounts {
    table: &'static str,
    /// `hour` or `day`.
    time: &'static str,
}

/// Where counts are read from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    RollUp(RollUp),
    Group(GroupCounts),
}

impl Source {
    const RELEASE_HOURS: Source = Source::RollUp(RollUp {
        table: "release_counts",
        kind: "event_type",
        time: "hour",
        of_reports: true,
    });
    const RELEASE_DAYS: Source = Source::RollUp(RollUp {
        table: "release_day_counts",
        kind: "event_type",
        time: "day",
        of_reports: true,
    });
    const RELEASE_WEEKS: Source = Source::RollUp(RollUp {
        table: "release_week_counts",
        kind: "event_type",
        time: "week",
        of_reports: true,
    });
    const USAGE_HOURS: Source = Source::RollUp(RollUp {
        table: "usage_counts",
        kind: "kind",
        time: "hour",
        of_reports: false,
    });
    const USAGE_DAYS: Source = Source::RollUp(RollUp {
        table: "usage_day_counts",
        kind: "kind",
        time: "day",
        of_reports: false,
    });
    const USAGE_WEEKS: Source = Source::RollUp(RollUp {
        table: "usage_week_counts",
        kind: "kind",
        time: "week",
        of_reports: false,
    });
    const GROUP_HOURS: Source = Source::Group(GroupCounts {
        table: "report_counts",
        time: "hour",
    });
    const GROUP_DAYS: Source = Source::Group(GroupCounts {
        table: "report_day_counts",
        time: "day",
    });

    /// The table and column of the start of a row's hour, day or week.
    fn time_column(self) -> (&'static str, &'static str) {
        match self {
            Source::RollUp(roll_up) => (roll_up.table, roll_up.time),
            Source::Group(group) => (group.table, group.time),
        }
    }

    /// Rows per hour, not per day or week.
    fn of_hours(self) -> bool {
        self.time_column().1 == "hour"
    }

    fn time(self) -> Expr {
        let (table, time) = self.time_column();
        column(table, time)
    }

    fn count(self) -> Expr {
        column(self.time_column().0, "count")
    }

    /// The event type or usage kind.
    fn kind(self) -> Expr {
        match self {
            Source::RollUp(roll_up) => column(roll_up.table, roll_up.kind),
            Source::Group(_) => column("report_groups", "event_type"),
        }
    }

    /// Adds `total` of `kind`, as this source stores an event type or usage kind.
    fn add(self, counts: &mut Counts, kind: &str, total: u64) {
        let of_reports = match self {
            Source::RollUp(roll_up) => roll_up.of_reports,
            Source::Group(_) => true,
        };
        if of_reports {
            if let Some(event_type) = EventType::from_stored(kind) {
                counts.add_reports(event_type, total);
            }
        } else if let Some(kind) = UsageKind::from_stored(kind) {
            counts.add_usage(kind, total);
        }
    }

    /// The `[version, channel, platform, arch]` columns.
    fn release_columns(self) -> [Expr; 4] {
        let table = match self {
            Source::RollUp(roll_up) => roll_up.table,
            Source::Group(_) => "report_groups",
        };
        ["version", "channel", "platform", "arch"].map(|name| column(table, name))
    }
}

/// `table.name`.
fn column(table: &'static str, name: &'static str) -> Expr {
    Expr::col((Alias::new(table), Alias::new(name)))
}

/// The coarsest rows a read may sum: a bucket of an hour needs hours, a bucket of a day can
/// take days, a sum over the whole slice can take weeks.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Resolution {
    Hours,
    Days,
    Weeks,
}

/// A roll-up's tables by the hour, by the day and by the week.
#[derive(Clone, Copy)]
struct Levels {
    hours: Source,
    days: Source,
    weeks: Source,
}

impl Levels {
    const RELEASES: Levels = Levels {
        hours: Source::RELEASE_HOURS,
        days: Source::RELEASE_DAYS,
        weeks: Source::RELEASE_WEEKS,
    };
    const USAGE: Levels = Levels {
        hours: Source::USAGE_HOURS,
        days: Source::USAGE_DAYS,
        weeks: Source::USAGE_WEEKS,
    };
}

/// One source's share of a slice: its rows in `from..until` (start of the hour, day or week).
struct Part {
    source: Source,
    from: Option<i64>,
    until: Option<i64>,
}

impl Part {
    /// Where the slice's reports are: one group's hours and folded days (folding moves a
    /// count from one to the other, so they never hold it twice), or the per-release roll-up.
    fn reports(slice: &Slice, resolution: Resolution, folded: Horizons) -> Vec<Part> {
        if slice.group_hash.is_some() {
            return [Source::GROUP_HOURS, Source::GROUP_DAYS]
                .map(|source| Part {
                    source,
                    from: slice.from_hour,
                    until: slice.until,
                })
                .into();
        }
        Part::split(slice, Levels::RELEASES, resolution, folded)
    }

    /// Where the slice's usage is (the release's, whatever group the slice is of).
    fn usage(slice: &Slice, resolution: Resolution, folded: Horizons) -> Vec<Part> {
        Part::split(slice, Levels::USAGE, resolution, folded)
    }

    /// The slice's counts, each read once. Before the horizon only days (and the weeks
    /// summed from them) are sure to hold them: a day counts when it starts in the slice, see
    /// `days_and_weeks`. After it, see `hours_and_days`.
    fn split(slice: &Slice, levels: Levels, resolution: Resolution, folded: Horizons) -> Vec<Part> {
        let (mut from, until) = (slice.from_hour, slice.until);
        let mut parts = Vec::new();
        if let Some(horizon) = folded.hours
            && from.is_none_or(|from| from < horizon)
        {
            let end = until.map_or(horizon, |until| Ord::min(until, horizon));
            if from.is_none_or(|from| from < end) {
                // A slice of one version reads a range of the primary key, a few hundred
                // rows of days: the weeks' bounds would only steer SQLite to a by-time index.
                let weeks = (resolution == Resolution::Weeks && slice.version.is_none())
                    .then_some(folded.weeks)
                    .flatten();
                parts = Part::days_and_weeks(from, end, levels, weeks);
            }
            if until.is_some_and(|until| until <= horizon) {
                return parts;
            }
            from = Some(horizon);
        }
        let whole_days = resolution >= Resolution::Days;
        for part in Part::hours_and_days(from, until, levels, whole_days) {
            // The folded days and the whole days after the horizon are one range of `days`.
            if let Some(last) = parts.last_mut()
                && last.source == part.source
                && last.until == part.from
            {
                last.until = part.until;
            } else {
                parts.push(part);
            }
        }
        parts
    }

    /// The days starting in `from..end`, before the horizon: with `weeks_before` (weeks
    /// starting before it are summed), the weeks all of whose days start in it from `weeks`
    /// and the days before and after them from `days`; else all from `days`.
    fn days_and_weeks(
        from: Option<i64>,
        end: i64,
        levels: Levels,
        weeks_before: Option<i64>,
    ) -> Vec<Part> {
        let all_days = vec![Part {
            source: levels.days,
            from,
            until: Some(end),
        }];
        let Some(weeks_before) = weeks_before else {
            return all_days;
        };
        let first_week = from.map(|from| first_start_from(from, WEEK_SECONDS, start_of_week));
        // A week is whole when its last day starts before `end`: it ends by the first day
        // starting at or after `end`.
        let end_day = first_start_from(end, DAY_SECONDS, start_of_day);
        let end_week = Ord::min(start_of_week(end_day), weeks_before);
        if first_week.is_some_and(|first| first >= end_week) {
            return all_days;
        }
        let mut parts = Vec::new();
        if let (Some(from), Some(first)) = (from, first_week)
            && from < first
        {
            parts.push(Part {
                source: levels.days,
                from: Some(from),
                until: Some(first),
            });
        }
        parts.push(Part {
            source: levels.weeks,
            from: first_week,
            until: Some(end_week),
        });
        if end_week < end {
            parts.push(Part {
                source: levels.days,
                from: Some(end_week),
                until: Some(end),
            });
        }
        parts
    }

    /// `from..until`, each hour read once: with `whole_days`, the days it covers whole from
    /// `days` and the hours before and after them from `hours`; else all from `hours`.
    fn hours_and_days(
        from: Option<i64>,
        until: Option<i64>,
        levels: Levels,
        whole_days: bool,
    ) -> Vec<Part> {
        let all_hours = vec![Part {
            source: levels.hours,
            from,
            until,
        }];
        if !whole_days {
            return all_hours;
        }
        // The first day starting at or after `from`, and the day `until` falls in: every
        // day in between lies wholly in the slice.
        let first_day = from.map(|from| first_start_from(from, DAY_SECONDS, start_of_day));
        let end_day = until.map(start_of_day);
        if let (Some(first), Some(end)) = (first_day, end_day)
            && first >= end
        {
            return all_hours;
        }
        let mut parts = vec![Part {
            source: levels.days,
            from: first_day,
            until: end_day,
        }];
        // The hours before the first whole day and after the last.
        for edge in [(from, first_day), (end_day, until)] {
            if let (Some(start), Some(end)) = edge
                && start < end
            {
                parts.push(Part {
                    source: levels.hours,
                    from: Some(start),
                    until: Some(end),
                });
            }
        }
        parts
    }

    /// The part without the folding horizon as its lower bound, for a `MIN` or `MAX` whose
    /// answer is then checked with `holds`: what lies before the horizon is read from the
    /// folded days by another part. Given the horizon as lower bound, both SQLite and
    /// PostgreSQL range over the by-time index from there, reading every release's rows since
    /// it; without it they take the release's range of the primary key. The slice's own lower
    /// bound stays (also when it is the horizon): nothing else reads what lies before it.
    fn past_horizon_unbounded(&self, slice: &Slice, folded: Option<i64>) -> Part {
        let horizon_bound =
            self.from.is_some() && self.from == folded && self.from != slice.from_hour;
        Part {
            source: self.source,
            from: if horizon_bound { None } else { self.from },
            until: self.until,
        }
    }

    /// Whether a start of an hour or day falls in this part.
    fn holds(&self, start: i64) -> bool {
        self.from.is_none_or(|from| start >= from) && self.until.is_none_or(|until| start < until)
    }

    /// The slice's rows of this part.
    fn rows(&self, app_id: i64, slice: &Slice) -> SelectStatement {
        let mut within = Condition::all();
        if let Some(from) = self.from {
            within = within.add(self.source.time().gte(from));
        }
        if let Some(until) = self.until {
            within = within.add(self.source.time().lt(until));
        }
        match self.source {
            Source::RollUp(roll_up) => {
                let mut rows = Condition::all()
                    .add(column(roll_up.table, "app_id").eq(app_id))
                    .add(slice.releases(self.source.release_columns()))
                    .add(within);
                if roll_up.of_reports
                    && let Some(event_type) = slice.event_type
                {
                    rows = rows.add(self.source.kind().eq(event_type.as_str()));
                }
                Query::select()
                    .from(Alias::new(roll_up.table))
                    .cond_where(rows)
                    .to_owned()
            }
            Source::Group(group) => {
                use report_groups::Column as G;
                let (g, counts) = (report_groups::Entity, Alias::new(group.table));
                let of_counts = |name: &str| (counts.clone(), Alias::new(name));
                Query::select()
                    .from(counts.clone())
                    .inner_join(
                        g,
                        Condition::all()
                            .add(Expr::col((g, G::AppId)).equals(of_counts("app_id")))
                            .add(Expr::col((g, G::GroupHash)).equals(of_counts("group_hash"))),
                    )
                    .cond_where(group_filter(app_id, slice))
                    .cond_where(within)
                    .to_owned()
            }
        }
    }

    /// The part's rows with `SUM(count)` as `total`.
    fn summed(&self, app_id: i64, slice: &Slice) -> SelectStatement {
        let mut query = self.rows(app_id, slice);
        query.expr_as(bigint_sum(self.source.count()), Alias::new("total"));
        query
    }
}

/// `SUM(column)` as a BIGINT: PostgreSQL widens a sum of BIGINTs to NUMERIC.
fn bigint_sum(column: Expr) -> Expr {
    column.sum().cast_as(Alias::new("BIGINT"))
}

/// Selects `column` as `alias` and groups by it.
fn grouped(query: &mut SelectStatement, column: Expr, alias: &'static str) {
    query
        .expr_as(column.clone(), Alias::new(alias))
        .add_group_by([column]);
}

/// The `[version, channel, platform, arch]` columns under those names: grouped by when in
/// `by`, else typed NULLs.
fn release_dimensions(query: &mut SelectStatement, by: &[Dimension], columns: [Expr; 4]) {
    let dimensions = [
        Dimension::Version,
        Dimension::Channel,
        Dimension::Platform,
        Dimension::Arch,
    ];
    for (dimension, column) in dimensions.into_iter().zip(columns) {
        if by.contains(&dimension) {
            grouped(query, column, dimension.as_str());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_folding_horizon_is_dropped_as_a_lower_bound() {
        let horizon = 30 * DAY_SECONDS;
        let whole = Slice::default();
        let folded = Horizons {
            hours: Some(horizon),
            weeks: None,
        };
        let parts = Part::usage(&whole, Resolution::Hours, folded);
        let kept_hours = parts
            .iter()
            .find(|part| part.source.of_hours())
            .expect("hours after the horizon");
        assert_eq!(kept_hours.from, Some(horizon));
        assert_eq!(
            kept_hours
                .past_horizon_unbounded(&whole, Some(horizon))
                .from,
            None,
            "the folded days before the horizon are read by the other part"
        );
        // From the horizon on, no part reads what lies before it: the bound is the slice's.
        let from_horizon = Slice {
            from_hour: Some(horizon),
            ..Slice::default()
        };
        for part in Part::usage(&from_horizon, Resolution::Hours, folded) {
            let read = part.past_horizon_unbounded(&from_horizon, Some(horizon));
            assert_eq!(read.from, Some(horizon));
        }
    }

    /// `(table, from, until)` of each part.
    fn spans(parts: &[Part]) -> Vec<(&'static str, Option<i64>, Option<i64>)> {
        parts
            .iter()
            .map(|part| (part.source.time_column().0, part.from, part.until))
            .collect()
    }

    #[test]
    fn a_sum_takes_the_whole_weeks_before_the_horizon_from_the_weeks() {
        let day = |n: i64| n * DAY_SECONDS;
        // 1 January 2024 was a Monday: weeks start at day 19723 + 7k.
        let monday = day(19_723);
        assert_eq!(start_of_week(monday + day(6) + 5), monday);
        let horizon = monday + day(7 * 8 + 3);
        let folded = Horizons {
            hours: Some(horizon),
            weeks: Some(start_of_week(horizon)),
        };
        let today = horizon + day(30);
        // From a Wednesday noon 6 weeks before the horizon's week, to this hour.
        let slice = Slice {
            from_hour: Some(monday + day(2) + 12 * HOUR_SECONDS),
            until: Some(today + 5 * HOUR_SECONDS),
            ..Slice::default()
        };
        let parts = Part::reports(&slice, Resolution::Weeks, folded);
        assert_eq!(
            spans(&parts),
            [
                // Thursday to Sunday: the days starting in the slice.
                ("release_day_counts", slice.from_hour, Some(monday + day(7))),
                ("release_week_counts", Some(monday + day(7)), folded.weeks),
                // The horizon's week, the days after it, up to today.
                ("release_day_counts", folded.weeks, Some(today)),
                ("release_counts", Some(today), slice.until),
            ]
        );
        // A series by the day, and anything before a fold summed weeks, takes days.
        for (resolution, folded) in [
            (Resolution::Days, folded),
            (
                Resolution::Weeks,
                Horizons {
                    weeks: None,
                    ..folded
                },
            ),
        ] {
            let parts = Part::reports(&slice, resolution, folded);
            assert_eq!(
                spans(&parts)[0],
                ("release_day_counts", slice.from_hour, Some(today))
            );
        }
        // One version's whole range: days, with no bound at all.
        let one_version = Slice {
            version: Some("1.0".to_owned()),
            ..Slice::default()
        };
        assert_eq!(
            spans(&Part::reports(&one_version, Resolution::Weeks, folded)),
            [("release_day_counts", None, None)]
        );
        // The whole range, ending on a Sunday before the horizon: every week is whole.
        let until_sunday = Slice {
            until: Some(monday + day(13) + HOUR_SECONDS),
            ..Slice::default()
        };
        assert_eq!(
            spans(&Part::usage(&until_sunday, Resolution::Weeks, folded)),
            [("usage_week_counts", None, Some(monday + day(14)))]
        );
    }
}
