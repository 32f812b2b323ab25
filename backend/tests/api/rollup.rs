//! The roll-ups (issue 16) against what they roll up: for a seeded random dataset — hours of
//! history that an upgrade backfills, then reports and usage ingested over REST through the
//! group commit — every dimension set of `rolloutHealth`, both `timeSeries` intervals and the
//! gate's windows read the reports recomputed from `report_counts` and their groups and the
//! sessions recomputed from `usage_counts`.

use std::collections::BTreeMap;

use crate::common::{ADMIN_EMAIL, ADMIN_PASSWORD, Backend, TestApp, data, graphql, json, login};
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rollwatch::model::{Arch, Platform};
use rollwatch::rollup::{self, HOUR_SECONDS, Slice};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

on_both_databases!(the_roll_ups_read_the_counts_of_report_and_usage_counts_for_every_slice);

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
    write_history(&app, &mut rng, this_hour).await;
    write_usage_history(&app, &mut rng, this_hour).await;
    for statement in migration::roll_up_backfill() {
        app.db.execute_unprepared(&statement).await.unwrap();
    }
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

/// Groups and hourly rows as an install holds them before the roll-up exists.
async fn write_history(app: &TestApp, rng: &mut StdRng, this_hour: i64) {
    for group in 0..40 {
        let (platform, arch) = SYSTEMS[rng.random_range(0..SYSTEMS.len())];
        let (version, channel, event_type) = (
            pick(rng, &VERSIONS),
            pick(rng, &CHANNELS),
            pick(rng, &EVENT_TYPES),
        );
        let hash = format!("history-{group}");
        let mut hours: Vec<i64> = (0..rng.random_range(1..30))
            .map(|_| this_hour - rng.random_range(1..HISTORY_HOURS) * HOUR_SECONDS)
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
async fn write_usage_history(app: &TestApp, rng: &mut StdRng, this_hour: i64) {
    for _ in 0..300 {
        let (platform, arch) = SYSTEMS[rng.random_range(0..SYSTEMS.len())];
        let (version, channel) = (pick(rng, &VERSIONS), pick(rng, &CHANNELS));
        let hour = this_hour - rng.random_range(1..HISTORY_HOURS) * HOUR_SECONDS;
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
