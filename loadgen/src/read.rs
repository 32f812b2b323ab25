//! The read-path benchmark (`cargo xtask bench --read`, issue 16): a dataset of an app's 90
//! days written straight into the database in a few set-based statements, then each dashboard
//! and CI query timed through the real GraphQL endpoint of `rollwatch serve`.
//!
//! The shape at scale 1 is the issue's: 50 versions × 2 channels × 5 platform/arch × 20
//! reasons = 10,000 groups, each version live for 10 days of the 90, each group reporting in
//! 5 of every 12 of its hours (1,000,000 hourly rows), and sessions for every hour of every
//! release (120,000 usage rows, plus succeeded updates every tenth hour). Scale N has N times
//! the versions over the same 90 days: N times the rows, N times as many releases live at once.

use std::net::SocketAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request};
use sea_orm::prelude::ChronoDateTimeUtc;
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection};
use serde_json::{Value, json};

use crate::BenchError;
use crate::load::{open_connection, quantile_ms};

/// Versions at scale 1, and how many groups each has (2 channels × 5 platform/arch × 20).
const VERSIONS_PER_SCALE: i64 = 50;
const GROUPS_PER_VERSION: i64 = 200;
const DATASET_HOURS: i64 = 90 * 24;
/// How long each version reports and counts sessions.
const LIVE_HOURS: i64 = 10 * 24;
const HOUR: i64 = 3600;
/// Untimed runs of each query before the timed ones.
const WARMUP_RUNS: usize = 2;

/// How long the server may take to fold the dataset's old hours into days.
const FOLD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// Forgets that today's daily upkeep ran, and what it folded (nothing, before the dataset was
/// written), so the next `rollwatch serve` folds the dataset at start-up as the upkeep of the
/// days it covers would have.
pub async fn forget_todays_upkeep(db: &DatabaseConnection) -> Result<(), BenchError> {
    for statement in [
        "DELETE FROM leases WHERE name = 'retention'",
        "DELETE FROM count_folding",
    ] {
        db.execute_unprepared(statement).await?;
    }
    Ok(())
}

/// Waits until the server's daily upkeep has folded every hour before its horizon into days
/// (the state of any install older than `REPORTS_HOURLY_COUNTS_DAYS`); how long it took.
pub async fn wait_until_folded(db: &DatabaseConnection) -> Result<std::time::Duration, BenchError> {
    let started = Instant::now();
    let left_before_horizon = |table: &str| {
        sea_orm::Statement::from_string(
            db.get_database_backend(),
            format!(
                "SELECT 1 AS left_over FROM {table} \
                 WHERE hour < (SELECT folded_before FROM count_folding) LIMIT 1"
            ),
        )
    };
    // The weeks before the horizon are summed first, then the hours deleted.
    let weeks_summed = sea_orm::Statement::from_string(
        db.get_database_backend(),
        "SELECT 1 AS summed FROM count_folding WHERE weeks_before IS NOT NULL",
    );
    loop {
        let mut folded = db.query_one_raw(weeks_summed.clone()).await?.is_some();
        for table in ["report_counts", "release_counts", "usage_counts"] {
            if db
                .query_one_raw(left_before_horizon(table))
                .await?
                .is_some()
            {
                folded = false;
                break;
            }
        }
        if folded {
            return Ok(started.elapsed());
        }
        if started.elapsed() > FOLD_TIMEOUT {
            return Err(BenchError::NotFolded(FOLD_TIMEOUT));
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// On PostgreSQL, what autovacuum does soon after a load and a fold like these: without it
/// no page of the fresh tables is marked all-visible, so no read can be index-only (the
/// hourly series over 7 days read 38,000 heap pages at scale 10: 360 ms instead of 77).
/// SQLite has no such daemon and needs none.
pub async fn vacuum(db: &DatabaseConnection) -> Result<(), BenchError> {
    if db.get_database_backend() == DatabaseBackend::Postgres {
        db.execute_unprepared("VACUUM ANALYZE").await?;
    }
    Ok(())
}

/// The time range of the generated data and the versions in it.
pub struct Dataset {
    pub app_id: i64,
    versions: i64,
    /// Start of the first hour (Unix seconds); the data ends `DATASET_HOURS` later, now.
    first_hour: i64,
}

impl Dataset {
    pub fn new(app_id: i64, scale: u32) -> Dataset {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        Dataset {
            app_id,
            versions: VERSIONS_PER_SCALE * i64::from(scale.max(1)),
            first_hour: now - now % HOUR - DATASET_HOURS * HOUR,
        }
    }

    fn groups(&self) -> i64 {
        self.versions * GROUPS_PER_VERSION
    }

    fn latest_version(&self) -> String {
        format!("1.{}", self.versions - 1)
    }

    /// SQL for the first hour of version `v` (an integer expression).
    fn version_start(&self, v: &str) -> String {
        let spread = DATASET_HOURS - LIVE_HOURS;
        let gaps = (self.versions - 1).max(1);
        format!(
            "(CAST({} AS BIGINT) + (({v}) * {spread} / {gaps}) * {HOUR})",
            self.first_hour
        )
    }

    /// Writes the dataset for app `app_id` (named `app_name`), in one transaction.
    pub async fn write(&self, db: &DatabaseConnection, app_name: &str) -> Result<(), BenchError> {
        let app = self.app_id;
        let numbers = |name: &str, below: i64| {
            format!(
                "{name}(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM {name} WHERE n + 1 < {below})"
            )
        };
        // A group g is reason g % 20 of release g / 20; release r is version r / 10, channel
        // (r / 5) % 2, platform/arch r % 5.
        let release_columns = |r: &str| {
            format!(
                "'1.' || CAST(({r}) / 10 AS TEXT), \
                 CASE (({r}) / 5) % 2 WHEN 0 THEN 'stable' ELSE 'beta' END, \
                 CASE ({r}) % 5 WHEN 0 THEN 'linux' WHEN 1 THEN 'windows' WHEN 2 THEN 'macos' \
                     WHEN 3 THEN 'android' ELSE 'linux' END, \
                 CASE ({r}) % 5 WHEN 2 THEN 'aarch64' WHEN 3 THEN 'aarch64' WHEN 4 THEN 'aarch64' \
                     ELSE 'x86_64' END"
            )
        };
        let timestamp = |seconds: String| match db.get_database_backend() {
            DatabaseBackend::Postgres => format!("to_timestamp({seconds})"),
            _ => format!("strftime('%Y-%m-%dT%H:%M:%S+00:00', {seconds}, 'unixepoch')"),
        };
        let start = self.version_start("g.n / 200");
        let groups = format!(
            "INSERT INTO report_groups (app_id, group_hash, app_name, version, channel, platform, \
                 arch, event_type, reason, count, first_seen, last_seen, blob_count) \
             WITH RECURSIVE {gs} \
             SELECT {app}, 'g' || CAST(g.n AS TEXT), '{app_name}', {release}, \
                 CASE WHEN g.n % 20 < 12 THEN 'crash' WHEN g.n % 20 < 16 THEN 'update_failed' \
                     ELSE 'install_failed' END, \
                 'reason-' || CAST(g.n % 20 AS TEXT), 0, {first_seen}, {last_seen}, 0 \
             FROM gs AS g",
            gs = numbers("gs", self.groups()),
            release = release_columns("g.n / 20"),
            first_seen = timestamp(start.clone()),
            last_seen = timestamp(format!("{start} + {}", (LIVE_HOURS - 1) * HOUR)),
        );
        let counts = format!(
            "INSERT INTO report_counts (app_id, group_hash, hour, count) \
             WITH RECURSIVE {gs}, {hs} \
             SELECT {app}, 'g' || CAST(g.n AS TEXT), {start} + h.n * {HOUR}, 1 + (g.n + h.n) % 5 \
             FROM gs AS g, hs AS h WHERE (g.n * 7 + h.n * 13) % 12 < 5",
            gs = numbers("gs", self.groups()),
            hs = numbers("hs", LIVE_HOURS),
        );
        let group_totals = format!(
            "UPDATE report_groups SET count = (SELECT SUM(c.count) FROM report_counts AS c \
                 WHERE c.app_id = report_groups.app_id AND c.group_hash = report_groups.group_hash) \
             WHERE app_id = {app}"
        );
        let release_start = self.version_start("r.n / 10");
        let usage = format!(
            "INSERT INTO usage_counts (app_id, version, channel, platform, arch, kind, hour, count) \
             WITH RECURSIVE {rs}, {hs} \
             SELECT {app}, {release}, 'session', {release_start} + h.n * {HOUR}, \
                 2000 + (r.n * 3 + h.n) % 1000 FROM rs AS r, hs AS h \
             UNION ALL \
             SELECT {app}, {release}, 'update_succeeded', {release_start} + h.n * {HOUR}, \
                 100 + (r.n + h.n) % 50 FROM rs AS r, hs AS h WHERE h.n % 10 = 0",
            rs = numbers("rs", self.versions * 10),
            hs = numbers("hs", LIVE_HOURS),
            release = release_columns("r.n"),
        );
        let txn = sea_orm::TransactionTrait::begin(db).await?;
        for statement in [groups, counts, group_totals, usage] {
            txn.execute_unprepared(&statement).await?;
        }
        // The roll-ups the server keeps on ingestion, filled as an upgrade fills them.
        for statement in migration::roll_up_backfill() {
            txn.execute_unprepared(&statement).await?;
        }
        txn.commit().await?;
        if db.get_database_backend() == DatabaseBackend::Postgres {
            // What autovacuum does soon after a load like this; SQLite has no such daemon.
            db.execute_unprepared("ANALYZE").await?;
        }
        Ok(())
    }

    /// The dashboard's and CI's queries, each with a name for the table.
    fn queries(&self) -> Vec<(&'static str, String, Value)> {
        let app = self.app_id.to_string();
        let latest = self.latest_version();
        let hours_back = |hours: i64| {
            ChronoDateTimeUtc::from_timestamp(self.first_hour + (DATASET_HOURS - hours) * HOUR, 0)
                .map(|at| at.to_rfc3339())
                .unwrap_or_default()
        };
        let last_week = hours_back(7 * 24);
        let cells = "version channel platform arch eventType reports sessions crashRate";
        vec![
            (
                "releaseGate, latest version on stable",
                "query($app: ID!, $version: String!) { releaseGate(appId: $app, version: $version, \
                 channel: \"stable\") { verdict baselineVersion metrics { metric status } } }"
                    .to_owned(),
                json!({ "app": app, "version": latest }),
            ),
            (
                "timeSeries by day, whole range",
                "query($app: ID!) { timeSeries(appId: $app, interval: DAY) { __typename } }"
                    .to_owned(),
                json!({ "app": app }),
            ),
            (
                "rolloutHealth by version × channel, whole range",
                format!(
                    "query($app: ID!) {{ rolloutHealth(appId: $app, groupBy: [VERSION, CHANNEL]) \
                     {{ {cells} }} }}"
                ),
                json!({ "app": app }),
            ),
            (
                // The web app's matrix over its longest range, a quarter back from now: not
                // aligned to days or weeks.
                "rolloutHealth by version × channel, last 90 days",
                format!(
                    "query($app: ID!, $since: DateTime!) {{ rolloutHealth(appId: $app, \
                     groupBy: [VERSION, CHANNEL], filter: {{ since: $since }}) {{ {cells} }} }}"
                ),
                json!({ "app": app, "since": hours_back(90 * 24 - 5) }),
            ),
            (
                "rolloutHealth by platform × arch, latest version",
                format!(
                    "query($app: ID!, $version: String!) {{ rolloutHealth(appId: $app, \
                     groupBy: [PLATFORM, ARCH], filter: {{ version: $version }}) {{ {cells} }} }}"
                ),
                json!({ "app": app, "version": latest }),
            ),
            (
                "timeSeries by hour, last 7 days",
                "query($app: ID!, $since: DateTime!) { timeSeries(appId: $app, interval: HOUR, \
                 filter: { since: $since }) { __typename } }"
                    .to_owned(),
                json!({ "app": app, "since": last_week }),
            ),
            (
                "rolloutHealth by version × channel, last 7 days",
                format!(
                    "query($app: ID!, $since: DateTime!) {{ rolloutHealth(appId: $app, \
                     groupBy: [VERSION, CHANNEL], filter: {{ since: $since }}) {{ {cells} }} }}"
                ),
                json!({ "app": app, "since": last_week }),
            ),
            (
                "reportGroups, top 50 by count",
                "query($app: ID!) { reportGroups(appId: $app, orderBy: COUNT, first: 50) \
                 { edges { node { groupHash count } } } }"
                    .to_owned(),
                json!({ "app": app }),
            ),
        ]
    }

    /// Runs every query `repeats` times (after `WARMUP_RUNS`) and prints a markdown table.
    pub async fn time_queries(
        &self,
        client: &mut GraphQl,
        repeats: usize,
    ) -> Result<(), BenchError> {
        println!("| query | median ms | p95 ms | items answered |\n|---|---:|---:|---:|");
        for (name, query, variables) in self.queries() {
            let body = Bytes::from(json!({ "query": query, "variables": variables }).to_string());
            let mut items = 0;
            let mut latencies_us = Vec::with_capacity(repeats);
            for run in 0..WARMUP_RUNS + repeats {
                let started = Instant::now();
                let data = match client.post(body.clone()).await {
                    Ok(data) => data,
                    // A query past the server's deadline is a finding, not the end of the run.
                    Err(BenchError::GraphQl(errors)) => {
                        println!("| {name} | failed: {errors} | | |");
                        break;
                    }
                    Err(e) => return Err(e),
                };
                let elapsed = started.elapsed();
                if run >= WARMUP_RUNS {
                    latencies_us.push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX));
                }
                items = items_in(&data);
            }
            if latencies_us.len() < repeats {
                continue;
            }
            latencies_us.sort_unstable();
            println!(
                "| {name} | {:.1} | {:.1} | {items} |",
                quantile_ms(&latencies_us, 0.5),
                quantile_ms(&latencies_us, 0.95)
            );
        }
        Ok(())
    }
}

/// How many things the answer holds: a list's length, a connection's edges, else 1.
fn items_in(data: &Value) -> usize {
    let Some(answer) = data.as_object().and_then(|fields| fields.values().next()) else {
        return 0;
    };
    match answer {
        Value::Array(items) => items.len(),
        Value::Object(fields) => fields
            .get("edges")
            .and_then(Value::as_array)
            .map_or(1, Vec::len),
        _ => 1,
    }
}

/// One keep-alive connection to `POST /graphql`.
pub struct GraphQl {
    sender: SendRequest<Full<Bytes>>,
    authorization: Option<HeaderValue>,
}

impl GraphQl {
    pub async fn connect(addr: SocketAddr) -> Result<GraphQl, BenchError> {
        Ok(GraphQl {
            sender: open_connection(addr).await?,
            authorization: None,
        })
    }

    /// Signs in; later requests carry the session.
    pub async fn login(&mut self, email: &str, password: &str) -> Result<(), BenchError> {
        let body = json!({
            "query": "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }",
            "variables": { "e": email, "p": password },
        });
        let data = self.post(Bytes::from(body.to_string())).await?;
        let token = data["login"]["token"]
            .as_str()
            .ok_or_else(|| BenchError::GraphQl("login answered no token".to_owned()))?;
        self.authorization =
            Some(HeaderValue::try_from(format!("Bearer {token}")).map_err(|_| BenchError::BadKey)?);
        Ok(())
    }

    /// The id of the app named `name`.
    pub async fn app_id(&mut self, name: &str) -> Result<i64, BenchError> {
        let body = json!({ "query": "{ apps { id name } }" });
        let data = self.post(Bytes::from(body.to_string())).await?;
        data["apps"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|app| app["name"] == name)
            .and_then(|app| app["id"].as_str())
            .and_then(|id| id.parse().ok())
            .ok_or_else(|| BenchError::GraphQl(format!("no app {name} in `apps`")))
    }

    /// Posts a GraphQL request body; its `data`, or its errors as an error.
    async fn post(&mut self, body: Bytes) -> Result<Value, BenchError> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = hyper::Uri::from_static("/graphql");
        let headers = request.headers_mut();
        headers.insert(HOST, HeaderValue::from_static("localhost"));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(authorization) = &self.authorization {
            headers.insert(AUTHORIZATION, authorization.clone());
        }
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let bytes = response.into_body().collect().await?.to_bytes();
        let mut answer: Value = serde_json::from_slice(&bytes)
            .map_err(|e| BenchError::GraphQl(format!("not JSON ({e})")))?;
        if let Some(errors) = answer.get("errors") {
            return Err(BenchError::GraphQl(errors.to_string()));
        }
        Ok(answer["data"].take())
    }
}
