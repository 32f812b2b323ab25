//! The roll-ups (issue 16) against what they roll up: for a seeded random dataset — hours of
//! history that an upgrade backfills, then reports and usage ingested over REST through the
//! group commit — every dimension set of `rolloutHealth`, both `timeSeries` intervals and the
//! gate's windows read the reports recomputed from `report_counts` and their groups and the
//! sessions recomputed from `usage_counts`.
//!
//! Folding (issue 18): the same reads answer the same after the hours older than 30 days are
//! folded into days and their days summed into weeks, and after a fold that failed part-way.

use std::collections::BTreeMap;

use crate::common::{ADMIN_EMAIL, ADMIN_PASSWORD, Backend, TestApp, data, graphql, json, login};
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rollwatch::folding;
use rollwatch::model::{Arch, Platform};
use rollwatch::rollup::{self, DAY_SECONDS, HOUR_SECONDS, Slice};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

on_both_databases!(
    the_roll_ups_read_the_counts_of_report_and_usage_counts_for_every_slice,
    every_read_answers_the_same_after_old_hours_are_folded_into_days,
    a_fold_that_fails_part_way_leaves_every_count_exact,
    a_fold_that_fails_summing_weeks_leaves_every_count_exact,
);

const VERSIONS: [&str; 3] = ["1.0", "1.1", "2.0"];
const CHANNELS: [&str; 2] = ["stable", "beta"];
const SYSTEMS: [(&str, &str); 3] = [
    ("linux", "x86_64"),
    ("windows", "x86_64"),
    ("macos", "aarch64"),
];
const EVENT_TYPES: [&str; 3] = ["crash", "update_failed", "install_failed"];
const DIMENSIONS: [&str; 5] = ["VERSION", "CHANNEL", "PLATFORM", "ARCH", "EVENT_TYPE"];
const HISTORY_HOURS: i64 = 10 * 24;

/// A row of counts with its dimensions, in `DIMENSIONS` order: a `report_counts` row with its
/// group's five, or a `usage_counts` row with its release's four.
struct Counts<const N: usize> {
    dimensions: [String; N],
    hour: i64,
    count: u64,
}

type Row = Counts<5>;
type UsageRow = Counts<4>;

/// Reports per event type: crashes, update failures, install failures.
type Reports = [u64; 3];

/// A cell's or bucket's reports and sessions.
type Counted = (Reports, u64);

fn add(reports: &mut Reports, event_type: &str, count: u64) {
    let index = EVENT_TYPES.iter().position(|t| *t == event_type).unwrap();
    reports[index] += count;
}

fn pick<'a>(rng: &mut StdRng, values: &[&'a str]) -> &'a str {
    values[rng.random_range(0..values.len())]
}

async fn the_roll_ups_read_the_counts_of_report_and_usage_counts_for_every_slice(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[("REPORTS_RATE_LIMIT_PER_KEY_PER_MINUTE", "100000")],
    )
    .await;
    let mut rng = StdRng::seed_from_u64(16);
    let now = Utc::now().timestamp();
    let this_hour = now - now % HOUR_SECONDS;
    write_history(&app, &mut rng, this_hour, HISTORY_HOURS).await;
    write_usage_history(&app, &mut rng, this_hour, HISTORY_HOURS).await;
    backfill(&app).await;
    ingest(&app, &mut rng).await;

    let rows = report_counts(&app).await;
    let usage = sessions(&app).await;
    assert!(rows.len() > 100, "a dataset worth checking: {}", rows.len());
    assert!(usage.len() > 100, "usage worth checking: {}", usage.len());
    let token = login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let week_ago = this_hour - 7 * 24 * HOUR_SECONDS;
    for window in [None, Some((week_ago, this_hour))] {
        for set in 0..(1 << DIMENSIONS.len()) {
            let by: Vec<usize> = (0..DIMENSIONS.len())
                .filter(|d| set & (1 << d) != 0)
                .collect();
            let expected = expected_cells(&rows, &usage, &by, window);
            let actual = health_cells(&app, &token, &by, window).await;
            assert_eq!(actual, expected, "rolloutHealth by {by:?} over {window:?}");
        }
    }
    for (interval, bucket) in [("HOUR", HOUR_SECONDS), ("DAY", 24 * HOUR_SECONDS)] {
        let mut expected: BTreeMap<i64, Counted> = BTreeMap::new();
        for row in &rows {
            let at = row.hour - row.hour.rem_euclid(bucket);
            let (reports, _) = expected.entry(at).or_default();
            add(reports, &row.dimensions[4], row.count);
        }
        for row in &usage {
            expected
                .entry(row.hour - row.hour.rem_euclid(bucket))
                .or_default()
                .1 += row.count;
        }
        assert_eq!(
            series(&app, &token, interval).await,
            expected,
            "timeSeries by {interval}"
        );
    }
    // The gate's windows: a release's counts over hours ending at various points.
    for version in VERSIONS {
        for channel in CHANNELS {
            for (platform, arch) in [(None, None), (Some(SYSTEMS[2].0), Some(SYSTEMS[2].1))] {
                for _ in 0..4 {
                    let until = this_hour + HOUR_SECONDS
                        - rng.random_range(0..HISTORY_HOURS) * HOUR_SECONDS;
                    let from = until - rng.random_range(1..=7 * 24) * HOUR_SECONDS;
                    let slice = Slice {
                        version: Some(version.to_owned()),
                        channel: Some(channel.to_owned()),
                        platform: platform.and_then(Platform::from_stored),
                        arch: arch.and_then(Arch::from_stored),
                        from_hour: Some(from),
                        until: Some(until),
                        ..Slice::default()
                    };
                    let counts = rollup::totals(&app.db, app.app_id, &slice).await.unwrap();
                    let in_slice = |dimensions: &[String], hour: i64| {
                        dimensions[0] == version
                            && dimensions[1] == channel
                            && platform.is_none_or(|p| dimensions[2] == p)
                            && arch.is_none_or(|a| dimensions[3] == a)
                            && (from..until).contains(&hour)
                    };
                    let mut expected = Counted::default();
                    for row in rows
                        .iter()
                        .filter(|row| in_slice(&row.dimensions, row.hour))
                    {
                        add(&mut expected.0, &row.dimensions[4], row.count);
                    }
                    for row in usage
                        .iter()
                        .filter(|row| in_slice(&row.dimensions, row.hour))
                    {
                        expected.1 += row.count;
                    }
                    let counts = counts.counts;
                    assert_eq!(
                        (
                            [counts.crashes, counts.update_failed, counts.install_failed],
                            counts.sessions
                        ),
                        expected,
                        "{version} {channel} {platform:?} hours {from}..{until}"
                    );
                }
            }
        }
    }
    app.stop().await;
}

/// The roll-ups filled from the hourly rows, as the upgrade that added them does.
async fn backfill(app: &TestApp) {
    for statement in migration::roll_up_backfill() {
        app.db.execute_unprepared(&statement).await.unwrap();
    }
}

/// Groups and hourly rows as an install holds them before the roll-up exists.
async fn write_history(app: &TestApp, rng: &mut StdRng, this_hour: i64, history_hours: i64) {
    for group in 0..40 {
        let (platform, arch) = SYSTEMS[rng.random_range(0..SYSTEMS.len())];
        let (version, channel, event_type) = (
            pick(rng, &VERSIONS),
            pick(rng, &CHANNELS),
            pick(rng, &EVENT_TYPES),
        );
        let hash = format!("history-{group}");
        let mut hours: Vec<i64> = (0..rng.random_range(1..30))
            .map(|_| this_hour - rng.random_range(1..history_hours) * HOUR_SECONDS)
            .collect();
        hours.sort_unstable();
        hours.dedup();
        let mut total = 0;
        for hour in &hours {
            let count = rng.random_range(1..20);
            total += count;
            execute(
                app,
                &format!(
                    "INSERT INTO report_counts (app_id, group_hash, hour, count) \
                     VALUES ({}, '{hash}', {hour}, {count})",
                    app.app_id
                ),
            )
            .await;
        }
        let seen = |hour: i64| {
            let at = DateTime::<Utc>::from_timestamp(hour, 0)
                .unwrap()
                .to_rfc3339();
            match app.backend {
                Backend::Postgres => format!("'{at}'::timestamptz"),
                Backend::Sqlite => format!("'{at}'"),
            }
        };
        execute(
            app,
            &format!(
                "INSERT INTO report_groups (app_id, group_hash, app_name, version, channel, \
                 platform, arch, event_type, reason, count, first_seen, last_seen, blob_count) \
                 VALUES ({}, '{hash}', '{}', '{version}', '{channel}', '{platform}', '{arch}', \
                 '{event_type}', 'reason-{group}', {total}, {}, {}, 0)",
                app.app_id,
                app.app_name,
                seen(hours[0]),
                seen(hours[hours.len() - 1]),
            ),
        )
        .await;
    }
}

/// Hourly sessions as an install holds them before the daily roll-up exists.
async fn write_usage_history(app: &TestApp, rng: &mut StdRng, this_hour: i64, history_hours: i64) {
    for _ in 0..300 {
        let (platform, arch) = SYSTEMS[rng.random_range(0..SYSTEMS.len())];
        let (version, channel) = (pick(rng, &VERSIONS), pick(rng, &CHANNELS));
        let hour = this_hour - rng.random_range(1..history_hours) * HOUR_SECONDS;
        let count = rng.random_range(1..500);
        execute(
            app,
            &format!(
                "INSERT INTO usage_counts (app_id, version, channel, platform, arch, kind, hour, \
                 count) VALUES ({}, '{version}', '{channel}', '{platform}', '{arch}', 'session', \
                 {hour}, {count}) ON CONFLICT (app_id, version, channel, platform, arch, kind, \
                 hour) DO UPDATE SET count = usage_counts.count + excluded.count",
                app.app_id
            ),
        )
        .await;
    }
}

/// Random reports and sessions over REST, the reports in batches, so the group commit folds
/// many of them together.
async fn ingest(app: &TestApp, rng: &mut StdRng) {
    for _ in 0..20 {
        let (platform, arch) = SYSTEMS[rng.random_range(0..SYSTEMS.len())];
        let body = json!({
            "application": {
                "name": app.app_name,
                "version": pick(rng, &VERSIONS),
                "channel": pick(rng, &CHANNELS),
            },
            "system": { "platform": platform, "arch": arch },
            "kind": "session",
            "count": rng.random_range(1..100),
        });
        let (status, answer) = json(app.post("/reports/usage", Some(&app.key), &body).await).await;
        assert_eq!(status, 202, "{answer}");
    }
    for _ in 0..4 {
        let reports: Vec<Value> = (0..rng.random_range(50..100))
            .map(|_| {
                let (platform, arch) = SYSTEMS[rng.random_range(0..SYSTEMS.len())];
                json!({
                    "application": {
                        "name": app.app_name,
                        "version": pick(rng, &VERSIONS),
                        "channel": pick(rng, &CHANNELS),
                    },
                    "system": { "platform": platform, "arch": arch },
                    "event": {
                        "type": pick(rng, &EVENT_TYPES),
                        "reason": format!("reason-{}", rng.random_range(0..4)),
                    },
                })
            })
            .collect();
        let body = json!({ "reports": reports });
        let (status, answer) = json(
            app.post("/reports/ingest/batch", Some(&app.key), &body)
                .await,
        )
        .await;
        assert_eq!(status, 202, "{answer}");
    }
}

async fn execute(app: &TestApp, sql: &str) {
    app.db.execute_unprepared(sql).await.unwrap();
}

/// Every `report_counts` row of the app with its group's dimensions.
async fn report_counts(app: &TestApp) -> Vec<Row> {
    let sql = format!(
        "SELECT g.version, g.channel, g.platform, g.arch, g.event_type, c.hour, c.count \
         FROM report_counts AS c JOIN report_groups AS g \
             ON g.app_id = c.app_id AND g.group_hash = c.group_hash \
         WHERE c.app_id = {}",
        app.app_id
    );
    counts(
        app,
        sql,
        ["version", "channel", "platform", "arch", "event_type"],
    )
    .await
}

/// Every `usage_counts` row of sessions of the app with its release.
async fn sessions(app: &TestApp) -> Vec<UsageRow> {
    let sql = format!(
        "SELECT version, channel, platform, arch, hour, count FROM usage_counts \
         WHERE app_id = {} AND kind = 'session'",
        app.app_id
    );
    counts(app, sql, ["version", "channel", "platform", "arch"]).await
}

/// The rows `sql` selects: the `dimensions` columns, `hour` and `count`.
async fn counts<const N: usize>(
    app: &TestApp,
    sql: String,
    dimensions: [&str; N],
) -> Vec<Counts<N>> {
    let rows = app
        .db
        .query_all_raw(Statement::from_string(app.db.get_database_backend(), sql))
        .await
        .unwrap();
    rows.iter()
        .map(|row| Counts {
            dimensions: dimensions.map(|column| row.try_get::<String>("", column).unwrap()),
            hour: row.try_get("", "hour").unwrap(),
            count: row.try_get::<i64>("", "count").unwrap() as u64,
        })
        .collect()
}

/// A cell's key: the grouped-by dimensions (event type as the API spells it), others `None`.
type CellKey = [Option<String>; 5];

/// What `rolloutHealth` answers, by its definition: a cell per grouped-by value with
/// reports, carrying the sessions of its release dimensions; a cell per release value with
/// sessions and no report at all.
fn expected_cells(
    rows: &[Row],
    usage: &[UsageRow],
    by: &[usize],
    window: Option<(i64, i64)>,
) -> BTreeMap<CellKey, Counted> {
    let in_window = |hour: i64| window.is_none_or(|(from, until)| (from..until).contains(&hour));
    let mut sessions_of: BTreeMap<CellKey, u64> = BTreeMap::new();
    for row in usage.iter().filter(|row| in_window(row.hour)) {
        let key: CellKey =
            std::array::from_fn(|d| (d < 4 && by.contains(&d)).then(|| row.dimensions[d].clone()));
        *sessions_of.entry(key).or_default() += row.count;
    }
    let release_of = |key: &CellKey| -> CellKey {
        let mut release = key.clone();
        release[4] = None;
        release
    };
    let mut cells: BTreeMap<CellKey, Counted> = BTreeMap::new();
    for row in rows.iter().filter(|row| in_window(row.hour)) {
        let key: CellKey = std::array::from_fn(|d| {
            by.contains(&d).then(|| match d {
                4 => row.dimensions[d].to_uppercase(),
                _ => row.dimensions[d].clone(),
            })
        });
        let sessions = sessions_of.get(&release_of(&key)).copied().unwrap_or(0);
        let (reports, _) = cells.entry(key).or_insert((Reports::default(), sessions));
        add(reports, &row.dimensions[4], row.count);
    }
    for (release, sessions) in sessions_of {
        if !cells.keys().any(|key| release_of(key) == release) {
            cells.insert(release, (Reports::default(), sessions));
        }
    }
    cells
}

fn rfc3339(seconds: i64) -> String {
    DateTime::<Utc>::from_timestamp(seconds, 0)
        .unwrap()
        .to_rfc3339()
}

async fn health_cells(
    app: &TestApp,
    token: &str,
    by: &[usize],
    window: Option<(i64, i64)>,
) -> BTreeMap<CellKey, Counted> {
    let group_by: Vec<&str> = by.iter().map(|d| DIMENSIONS[*d]).collect();
    let filter = window.map_or(
        json!({}),
        |(from, until)| json!({ "since": rfc3339(from), "until": rfc3339(until) }),
    );
    let answer = graphql(
        app,
        Some(token),
        "query($app: ID!, $by: [Dimension!]!, $filter: ReportFilter) { \
         rolloutHealth(appId: $app, groupBy: $by, filter: $filter) { \
         version channel platform arch eventType crashes updateFailures installFailures \
         sessions } }",
        json!({ "app": app.app_id.to_string(), "by": group_by, "filter": filter }),
    )
    .await;
    data(&answer)["rolloutHealth"]
        .as_array()
        .unwrap()
        .iter()
        .map(|cell| {
            let key: CellKey = ["version", "channel", "platform", "arch", "eventType"]
                .map(|field| cell[field].as_str().map(str::to_owned));
            let reports = ["crashes", "updateFailures", "installFailures"]
                .map(|field| cell[field].as_u64().unwrap());
            (key, (reports, cell["sessions"].as_u64().unwrap()))
        })
        .collect()
}

async fn series(app: &TestApp, token: &str, interval: &str) -> BTreeMap<i64, Counted> {
    let answer = graphql(
        app,
        Some(token),
        "query($app: ID!, $interval: Interval) { timeSeries(appId: $app, interval: $interval) { \
         at crashes updateFailures installFailures sessions } }",
        json!({ "app": app.app_id.to_string(), "interval": interval }),
    )
    .await;
    data(&answer)["timeSeries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|point| {
            let at = DateTime::parse_from_rfc3339(point["at"].as_str().unwrap())
                .unwrap()
                .timestamp();
            let reports = ["crashes", "updateFailures", "installFailures"]
                .map(|field| point[field].as_u64().unwrap());
            (at, (reports, point["sessions"].as_u64().unwrap()))
        })
        .collect()
}

/// Hours of history in the folding tests: 40 days, of which the oldest 10 are folded.
const FOLDED_HISTORY_HOURS: i64 = 40 * 24;
const KEEP_HOURLY_DAYS: u32 = 30;

/// An app with 40 days of history (backfilled) and this hour's reports and usage, the folding
/// cutoff, and a user's token.
async fn app_with_history(backend: Backend) -> (TestApp, i64, String) {
    // The server's own daily fold (at start-up) keeps ten years by the hour: only the test's
    // folds, after the history is written, touch it.
    let app = TestApp::spawn_with(
        backend,
        &[
            ("REPORTS_RATE_LIMIT_PER_KEY_PER_MINUTE", "100000"),
            ("REPORTS_HOURLY_COUNTS_DAYS", "3650"),
        ],
    )
    .await;
    let mut rng = StdRng::seed_from_u64(18);
    let now = Utc::now();
    let this_hour = now.timestamp() - now.timestamp() % HOUR_SECONDS;
    write_history(&app, &mut rng, this_hour, FOLDED_HISTORY_HOURS).await;
    write_usage_history(&app, &mut rng, this_hour, FOLDED_HISTORY_HOURS).await;
    backfill(&app).await;
    ingest(&app, &mut rng).await;
    let token = login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    (app, folding::cutoff(now, KEEP_HOURLY_DAYS), token)
}

/// Every read of the app's counts, by what it asked: `rolloutHealth` by every dimension set
/// (whole range, from a day before the cutoff, the last week), `timeSeries` by day (and by
/// hour after the cutoff), each group's counts, random gate windows and the versions seen.
/// Windows start and end on days before the cutoff: there, days are the resolution.
async fn reads(app: &TestApp, token: &str, cutoff: i64) -> BTreeMap<String, String> {
    let mut answers = BTreeMap::new();
    let day_before_cutoff = |at: i64| {
        if at < cutoff {
            at - at.rem_euclid(DAY_SECONDS)
        } else {
            at
        }
    };
    let this_hour = Utc::now().timestamp() / HOUR_SECONDS * HOUR_SECONDS;
    let windows = [
        None,
        Some((cutoff - 3 * DAY_SECONDS, this_hour + HOUR_SECONDS)),
        Some((cutoff + 5 * HOUR_SECONDS, this_hour - 2 * DAY_SECONDS)),
    ];
    for window in windows {
        for set in 0..(1 << DIMENSIONS.len()) {
            let by: Vec<usize> = (0..DIMENSIONS.len())
                .filter(|d| set & (1 << d) != 0)
                .collect();
            let cells = health_cells(app, token, &by, window).await;
            answers.insert(
                format!("rolloutHealth {by:?} {window:?}"),
                format!("{cells:?}"),
            );
        }
    }
    answers.insert(
        "timeSeries DAY".into(),
        format!("{:?}", series(app, token, "DAY").await),
    );
    // By the hour after the cutoff; before it, each day's hours together (once folded, one
    // point at the day's start).
    let mut hours: BTreeMap<i64, Counted> = BTreeMap::new();
    for (at, (reports, sessions)) in series(app, token, "HOUR").await {
        let point = hours.entry(day_before_cutoff(at)).or_default();
        for (sum, count) in point.0.iter_mut().zip(reports) {
            *sum += count;
        }
        point.1 += sessions;
    }
    answers.insert("timeSeries HOUR".into(), format!("{hours:?}"));
    let mut rng = StdRng::seed_from_u64(1818);
    for group in 0..40 {
        for from in [
            None,
            Some(cutoff - 4 * DAY_SECONDS),
            Some(cutoff + 7 * HOUR_SECONDS),
        ] {
            let slice = Slice {
                group_hash: Some(format!("history-{group}")),
                from_hour: from,
                ..Slice::default()
            };
            let totals = rollup::totals(&app.db, app.app_id, &slice).await.unwrap();
            answers.insert(
                format!("group {group} from {from:?}"),
                format!("{totals:?}"),
            );
        }
    }
    for version in VERSIONS {
        for channel in CHANNELS {
            for _ in 0..6 {
                let until = day_before_cutoff(
                    this_hour + HOUR_SECONDS
                        - rng.random_range(0..FOLDED_HISTORY_HOURS) * HOUR_SECONDS,
                );
                let from = day_before_cutoff(until - rng.random_range(1..=9 * 24) * HOUR_SECONDS);
                let slice = Slice {
                    version: Some(version.to_owned()),
                    channel: Some(channel.to_owned()),
                    from_hour: Some(from),
                    until: Some(until),
                    ..Slice::default()
                };
                let totals = rollup::totals(&app.db, app.app_id, &slice).await.unwrap();
                answers.insert(
                    format!("gate {version} {channel} {from}..{until}"),
                    format!("{totals:?}"),
                );
            }
        }
    }
    for channel in CHANNELS {
        let seen = Slice {
            channel: Some(channel.to_owned()),
            ..Slice::default()
        };
        let versions = rollup::versions_with_usage(&app.db, app.app_id, &seen)
            .await
            .unwrap();
        // The first hour of a version first seen before the cutoff is its day's, once folded.
        let first_days: Vec<(String, i64)> = versions
            .into_iter()
            .map(|(version, first)| (version, day_before_cutoff(first)))
            .collect();
        answers.insert(
            format!("versions seen on {channel}"),
            format!("{first_days:?}"),
        );
    }
    answers
}

/// Rows of `table` whose `time` starts before `cutoff`.
async fn rows_before(app: &TestApp, table: &str, time: &str, cutoff: i64) -> i64 {
    let sql = format!("SELECT COUNT(*) AS n FROM {table} WHERE {time} < {cutoff}");
    let row = app
        .db
        .query_one_raw(Statement::from_string(app.db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "n").unwrap()
}

async fn every_read_answers_the_same_after_old_hours_are_folded_into_days(backend: Backend) {
    let (app, cutoff, token) = app_with_history(backend).await;
    let hourly_before = [
        rows_before(&app, "report_counts", "hour", cutoff).await,
        rows_before(&app, "release_counts", "hour", cutoff).await,
        rows_before(&app, "usage_counts", "hour", cutoff).await,
    ];
    assert!(
        hourly_before.iter().all(|rows| *rows > 20),
        "history worth folding: {hourly_before:?}"
    );
    let before = reads(&app, &token, cutoff).await;

    let folded = folding::fold_hours_before(&app.db, cutoff, folding::GROUPS_PER_BATCH)
        .await
        .unwrap();
    assert_eq!(folded.group_hours as i64, hourly_before[0]);
    assert_eq!(
        folded.roll_up_hours as i64,
        hourly_before[1] + hourly_before[2]
    );
    for (table, time) in [
        ("report_counts", "hour"),
        ("release_counts", "hour"),
        ("usage_counts", "hour"),
    ] {
        assert_eq!(rows_before(&app, table, time, cutoff).await, 0, "{table}");
    }
    let days = rows_before(&app, "report_day_counts", "day", cutoff).await;
    assert!(
        // As many as the hours at most: a group's hours of one day become one row.
        days > 0 && days <= hourly_before[0],
        "{days} days for {} hours",
        hourly_before[0]
    );
    // The ten days before the cutoff hold a whole week at least, summed into weeks.
    let weeks = [
        rows_before(&app, "release_week_counts", "week", cutoff).await,
        rows_before(&app, "usage_week_counts", "week", cutoff).await,
    ];
    assert!(weeks.iter().all(|rows| *rows > 0), "{weeks:?}");
    assert_eq!(folded.week_rows as i64, weeks[0] + weeks[1]);
    assert_eq!(
        folding::horizons(&app.db).await.unwrap().weeks,
        Some(rollup::start_of_week(cutoff))
    );
    assert_eq!(reads(&app, &token, cutoff).await, before);

    // A second fold, the next day's, finds nothing more before the same cutoff.
    let again = folding::fold_hours_before(&app.db, cutoff, folding::GROUPS_PER_BATCH)
        .await
        .unwrap();
    assert_eq!(again, folding::Folded::default());
    assert_eq!(reads(&app, &token, cutoff).await, before);
    app.stop().await;
}

/// Makes deleting `group`'s hours fail, as a crash or a lost connection would mid-fold.
async fn fail_folding_of(app: &TestApp, group: &str) {
    fail_on(
        app,
        "DELETE",
        "report_counts",
        &format!("old.group_hash = '{group}'"),
    )
    .await;
}

/// Makes `event` (`INSERT`, `DELETE`) on `table` fail for the rows `when` holds for.
async fn fail_on(app: &TestApp, event: &str, table: &str, when: &str) {
    let statements: Vec<String> = match app.backend {
        Backend::Sqlite => vec![format!(
            "CREATE TRIGGER injected_failure BEFORE {event} ON {table} \
             WHEN {when} BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
        )],
        Backend::Postgres => vec![
            "CREATE FUNCTION injected_failure() RETURNS trigger AS $$ \
             BEGIN RAISE EXCEPTION 'injected failure'; END $$ LANGUAGE plpgsql"
                .to_owned(),
            format!(
                "CREATE TRIGGER injected_failure BEFORE {event} ON {table} FOR EACH ROW \
                 WHEN ({when}) EXECUTE FUNCTION injected_failure()"
            ),
        ],
    };
    for statement in statements {
        execute(app, &statement).await;
    }
}

async fn stop_failing_on(app: &TestApp, table: &str) {
    let drop = match app.backend {
        Backend::Sqlite => "DROP TRIGGER injected_failure".to_owned(),
        Backend::Postgres => format!("DROP TRIGGER injected_failure ON {table}"),
    };
    execute(app, &drop).await;
}

async fn a_fold_that_fails_part_way_leaves_every_count_exact(backend: Backend) {
    let (app, cutoff, token) = app_with_history(backend).await;
    let before = reads(&app, &token, cutoff).await;
    let hourly_before = rows_before(&app, "report_counts", "hour", cutoff).await;
    // Groups fold 7 at a time, in hash order: history-20 is in a middle batch.
    fail_folding_of(&app, "history-20").await;
    let failed = folding::fold_hours_before(&app.db, cutoff, 7).await;
    assert!(failed.is_err(), "{failed:?}");
    let left = rows_before(&app, "report_counts", "hour", cutoff).await;
    assert!(
        0 < left && left < hourly_before,
        "some batches folded, the failed one and those after it not: {left} of {hourly_before}"
    );
    assert_eq!(reads(&app, &token, cutoff).await, before);

    stop_failing_on(&app, "report_counts").await;
    let resumed = folding::fold_hours_before(&app.db, cutoff, 7)
        .await
        .unwrap();
    assert_eq!(resumed.group_hours as i64, left);
    assert_eq!(rows_before(&app, "report_counts", "hour", cutoff).await, 0);
    assert_eq!(reads(&app, &token, cutoff).await, before);
    app.stop().await;
}

async fn a_fold_that_fails_summing_weeks_leaves_every_count_exact(backend: Backend) {
    let (app, cutoff, token) = app_with_history(backend).await;
    let before = reads(&app, &token, cutoff).await;
    // The last week before the cutoff's fails, after any before it was summed.
    let last_week = rollup::start_of_week(cutoff) - 7 * DAY_SECONDS;
    fail_on(
        &app,
        "INSERT",
        "usage_week_counts",
        &format!("new.week = {last_week}"),
    )
    .await;
    let failed = folding::fold_hours_before(&app.db, cutoff, folding::GROUPS_PER_BATCH).await;
    assert!(failed.is_err(), "{failed:?}");
    assert_eq!(
        rows_before(
            &app,
            "release_week_counts",
            "week",
            last_week + 7 * DAY_SECONDS
        )
        .await,
        rows_before(&app, "release_week_counts", "week", last_week).await,
        "the failed week's release sums were written with its usage sums or not at all"
    );
    assert_ne!(
        folding::horizons(&app.db).await.unwrap().weeks,
        Some(rollup::start_of_week(cutoff)),
        "the weeks' horizon moves once every week is summed"
    );
    assert_eq!(reads(&app, &token, cutoff).await, before);

    stop_failing_on(&app, "usage_week_counts").await;
    let resumed = folding::fold_hours_before(&app.db, cutoff, folding::GROUPS_PER_BATCH)
        .await
        .unwrap();
    assert!(resumed.week_rows > 0, "{resumed:?}");
    assert_eq!(
        folding::horizons(&app.db).await.unwrap().weeks,
        Some(rollup::start_of_week(cutoff))
    );
    assert_eq!(reads(&app, &token, cutoff).await, before);
    app.stop().await;
}
