//! The statements that add one flush's counts, on a connection the writer keeps.
//!
//! The writer holds one connection rather than taking one from the pool per flush: the pool
//! pings a connection when it hands it out and again when it takes it back, two round trips
//! per flush that a held connection skips. A held connection that sat idle is pinged before
//! use, so a database restarted during a quiet spell costs a reconnect, not a failed batch;
//! one that fails mid-flush is closed, the batch is answered 503 and the next flush connects
//! anew through the pool, which checks the connection it hands out.
//!
//! On PostgreSQL a flush is one statement whose text depends only on which tables it writes:
//! the rows travel as arrays and `unnest` turns them back into rows, so each statement is
//! prepared once per connection and commits on its own, with no BEGIN and COMMIT round trips.
//! SQLite has no INSERT inside WITH and no round trips to save (it runs in-process), so there a
//! flush is a transaction of multi-row upserts.

use std::sync::{LazyLock, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sea_orm::sqlx::pool::PoolConnection;
use sea_orm::sqlx::query_builder::Separated;
use sea_orm::sqlx::{self, Connection, PgConnection, Postgres, QueryBuilder, Sqlite};
use sea_orm::{DatabaseBackend, DatabaseConnection};

use super::writer::{Claim, Folded, Write, fold};
use crate::model::Release;

/// A request's writes and its claim, if it carries an `Idempotency-Key`.
pub type Job<'a> = (&'a [Write], Option<&'a Claim>);

/// The id a flush writes beside its counts, and when.
struct Flush<'a> {
    id: &'a str,
    at: i64,
}

/// Which jobs' keys are new: the first of a flush to carry a key may claim it, and only if
/// `claimed` (the keys the database took) holds it.
fn counted_jobs(jobs: &[Job<'_>], claimed: &[(i64, String)]) -> Vec<bool> {
    let mut seen = std::collections::HashSet::new();
    jobs.iter()
        .map(|(_, claim)| match claim {
            None => true,
            Some(claim) => {
                seen.insert((claim.app_id, claim.key.as_str()))
                    && claimed
                        .iter()
                        .any(|(app_id, key)| *app_id == claim.app_id && *key == claim.key)
            }
        })
        .collect()
}

/// Each distinct claim of the flush once: the first job's.
fn distinct_claims<'a>(jobs: &[Job<'a>]) -> Vec<&'a Claim> {
    let mut seen = std::collections::HashSet::new();
    jobs.iter()
        .filter_map(|(_, claim)| *claim)
        .filter(|claim| seen.insert((claim.app_id, claim.key.as_str())))
        .collect()
}

/// The writes of the jobs that count.
fn counted_writes<'a>(jobs: &[Job<'a>], counted: &[bool]) -> Folded<'a> {
    fold(
        jobs.iter()
            .zip(counted)
            .filter(|(_, counted)| **counted)
            .flat_map(|((writes, _), _)| writes.iter()),
    )
}

/// How long the writer keeps asking an unreachable database whether a flush committed.
const OUTCOME_LOOKUP_FOR: Duration = Duration::from_secs(5);
/// A held connection unused for longer than this is pinged before a flush uses it.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);
/// SQLite rows per multi-row statement, well under its bind-parameter limit.
const SQLITE_ROWS_PER_STATEMENT: usize = 500;

// Each table's columns and what an existing row gets, shared by both back ends, which
// differ only in how the rows arrive.
const GROUPS_INSERT: &str = "INSERT INTO report_groups (app_id, group_hash, app_name, version, \
     channel, platform, arch, event_type, reason, count, first_seen, last_seen, blob_count)";
const GROUPS_ON_CONFLICT: &str = "ON CONFLICT (app_id, group_hash) DO UPDATE \
     SET count = report_groups.count + excluded.count, last_seen = excluded.last_seen";
const HOURS_INSERT: &str = "INSERT INTO report_counts (app_id, group_hash, hour, count)";
const HOURS_ON_CONFLICT: &str = "ON CONFLICT (app_id, group_hash, hour) DO UPDATE \
     SET count = report_counts.count + excluded.count";
const RELEASES_INSERT: &str = "INSERT INTO release_counts (app_id, version, channel, platform, \
     arch, event_type, hour, count)";
const RELEASES_ON_CONFLICT: &str = "ON CONFLICT (app_id, version, channel, platform, arch, \
     event_type, hour) DO UPDATE SET count = release_counts.count + excluded.count";
const RELEASE_DAYS_INSERT: &str = "INSERT INTO release_day_counts (app_id, version, channel, \
     platform, arch, event_type, day, count)";
const RELEASE_DAYS_ON_CONFLICT: &str = "ON CONFLICT (app_id, version, channel, platform, arch, \
     event_type, day) DO UPDATE SET count = release_day_counts.count + excluded.count";
const USAGE_INSERT: &str =
    "INSERT INTO usage_counts (app_id, version, channel, platform, arch, kind, hour, count)";
const USAGE_ON_CONFLICT: &str = "ON CONFLICT (app_id, version, channel, platform, arch, kind, \
     hour) DO UPDATE SET count = usage_counts.count + excluded.count";
const USAGE_DAYS_INSERT: &str = "INSERT INTO usage_day_counts (app_id, version, channel, \
     platform, arch, kind, day, count)";
const USAGE_DAYS_ON_CONFLICT: &str = "ON CONFLICT (app_id, version, channel, platform, arch, \
     kind, day) DO UPDATE SET count = usage_day_counts.count + excluded.count";

const FLUSH_INSERT: &str = "INSERT INTO ingest_flushes (id, created_at)";
const CLAIMS_INSERT: &str = "INSERT INTO idempotency_keys (app_id, key, answer, created_at)";
const CLAIMS_ON_CONFLICT: &str = "ON CONFLICT (app_id, key) DO NOTHING RETURNING app_id, key";

/// A table a PostgreSQL flush statement can write.
struct FlushTable {
    /// Its bit in the set of tables a statement writes.
    bit: u8,
    cte: &'static str,
    insert: &'static str,
    /// The element type of each array its rows arrive in, in the order they are bound.
    arrays: &'static str,
    on_conflict: &'static str,
}

const GROUPS: u8 = 1;
const HOURS: u8 = 2;
const RELEASES: u8 = 4;
const RELEASE_DAYS: u8 = 8;
const USAGE: u8 = 16;
const USAGE_DAYS: u8 = 32;
/// The arrays of a row keyed by app, release, kind and hour or day (`ReleaseRows`).
const RELEASE_ARRAYS: &str = "int8 text text text text text int8 int8";

/// The tables in the order their rows are bound. A statement leaves out the tables it has no
/// rows for (a report-only flush has no usage, a usage-only one no groups): an empty upsert
/// still costs the database its parameters, locks on the table and its indexes, and an
/// executor node.
const FLUSH_TABLES: [FlushTable; 6] = [
    FlushTable {
        bit: GROUPS,
        cte: "groups",
        insert: GROUPS_INSERT,
        arrays: "int8 text text text text text text text text int8 timestamptz timestamptz",
        on_conflict: GROUPS_ON_CONFLICT,
    },
    FlushTable {
        bit: HOURS,
        cte: "hours",
        insert: HOURS_INSERT,
        arrays: "int8 text int8 int8",
        on_conflict: HOURS_ON_CONFLICT,
    },
    FlushTable {
        bit: RELEASES,
        cte: "releases",
        insert: RELEASES_INSERT,
        arrays: RELEASE_ARRAYS,
        on_conflict: RELEASES_ON_CONFLICT,
    },
    FlushTable {
        bit: RELEASE_DAYS,
        cte: "release_days",
        insert: RELEASE_DAYS_INSERT,
        arrays: RELEASE_ARRAYS,
        on_conflict: RELEASE_DAYS_ON_CONFLICT,
    },
    FlushTable {
        bit: USAGE,
        cte: "usage",
        insert: USAGE_INSERT,
        arrays: RELEASE_ARRAYS,
        on_conflict: USAGE_ON_CONFLICT,
    },
    FlushTable {
        bit: USAGE_DAYS,
        cte: "usage_days",
        insert: USAGE_DAYS_INSERT,
        arrays: RELEASE_ARRAYS,
        on_conflict: USAGE_DAYS_ON_CONFLICT,
    },
];

/// The flush statement writing `tables` (bits of `FLUSH_TABLES`) and the flush's id; its
/// text is fixed per set of tables, so each is prepared once per connection.
fn postgres_flush(tables: u8) -> &'static str {
    static STATEMENTS: [OnceLock<String>; 1 << FLUSH_TABLES.len()] =
        [const { OnceLock::new() }; 1 << FLUSH_TABLES.len()];
    STATEMENTS[usize::from(tables)].get_or_init(|| {
        let mut parameters = 0;
        let mut arrays = |types: &str| {
            let arrays: Vec<String> = types
                .split(' ')
                .map(|element| {
                    parameters += 1;
                    format!("${parameters}::{element}[]")
                })
                .collect();
            arrays.join(", ")
        };
        let upserts: Vec<String> = FLUSH_TABLES
            .iter()
            .filter(|table| tables & table.bit != 0)
            .map(|table| {
                // A new group has no blobs yet.
                let blob_count = if table.bit == GROUPS { ", 0" } else { "" };
                format!(
                    "{} AS ({} SELECT *{blob_count} FROM unnest({}) {})",
                    table.cte,
                    table.insert,
                    arrays(table.arrays),
                    table.on_conflict
                )
            })
            .collect();
        let flush = format!(
            "{FLUSH_INSERT} SELECT * FROM unnest({})",
            arrays("text int8")
        );
        if upserts.is_empty() {
            flush
        } else {
            format!("WITH {} {flush}", upserts.join(", "))
        }
    })
}

static POSTGRES_CLAIMS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{CLAIMS_INSERT} SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::int8[]) \
         {CLAIMS_ON_CONFLICT}"
    )
});

enum Held {
    Postgres(PoolConnection<Postgres>),
    Sqlite(PoolConnection<Sqlite>),
}

impl Held {
    async fn ping(&mut self) -> Result<(), sqlx::Error> {
        match self {
            Held::Postgres(conn) => conn.ping().await,
            Held::Sqlite(conn) => conn.ping().await,
        }
    }

    async fn add(&mut self, flush: &Flush<'_>, jobs: &[Job<'_>]) -> Result<Vec<bool>, sqlx::Error> {
        match self {
            Held::Postgres(conn) => add_postgres(conn, flush, jobs).await,
            Held::Sqlite(conn) => add_sqlite(conn, flush, jobs).await,
        }
    }

    /// Closes the connection politely, telling the server goodbye.
    async fn close(self) -> Result<(), sqlx::Error> {
        match self {
            Held::Postgres(conn) => conn.close().await,
            Held::Sqlite(conn) => conn.close().await,
        }
    }

    /// Closes the connection instead of returning it to the pool.
    fn discard(self) {
        match self {
            Held::Postgres(mut conn) => conn.close_on_drop(),
            Held::Sqlite(mut conn) => conn.close_on_drop(),
        }
    }
}

/// The writer's connection, taken from the application's pool when first needed.
pub struct CountStore {
    db: DatabaseConnection,
    held: Option<(Held, Instant)>,
}

impl CountStore {
    pub fn new(db: DatabaseConnection) -> CountStore {
        CountStore { db, held: None }
    }

    /// Adds the counts of `jobs` and the flush's id `flush_id` atomically: all of them are
    /// committed, or none. A job with a claim whose key an earlier request claimed adds
    /// nothing; for each job, whether its counts were added.
    pub async fn add(
        &mut self,
        flush_id: &str,
        jobs: &[Job<'_>],
    ) -> Result<Vec<bool>, sqlx::Error> {
        let flush = Flush {
            id: flush_id,
            at: Utc::now().timestamp(),
        };
        let mut held = match self.held.take() {
            Some((mut held, last_used)) if last_used.elapsed() > IDLE_BEFORE_PING => {
                match held.ping().await {
                    Ok(()) => held,
                    Err(e) => {
                        tracing::info!(error = %e, "the writer's idle connection is gone");
                        held.discard();
                        self.connect().await?
                    }
                }
            }
            Some((held, _)) => held,
            None => self.connect().await?,
        };
        match held.add(&flush, jobs).await {
            Ok(counted) => {
                self.held = Some((held, Instant::now()));
                Ok(counted)
            }
            Err(e) => {
                // The connection may be broken or mid-transaction; never reuse it.
                held.discard();
                Err(e)
            }
        }
    }

    /// Whether the flush `flush_id` committed, after its commit failed or its reply was lost.
    ///
    /// It writes the id itself: the insert waits for a transaction still holding that id, then
    /// either finds it (the flush committed) or stores it (the flush did not, and now never
    /// can). A database that stays unreachable for `OUTCOME_LOOKUP_FOR` leaves it unknown.
    pub async fn committed(&self, flush_id: &str) -> Result<bool, sea_orm::DbErr> {
        use sea_orm::sea_query::OnConflict;
        use sea_orm::{EntityTrait, Set};
        let deadline = Instant::now() + OUTCOME_LOOKUP_FOR;
        loop {
            let marker = entity::ingest_flushes::ActiveModel {
                id: Set(flush_id.to_owned()),
                created_at: Set(Utc::now().timestamp()),
            };
            let written = entity::ingest_flushes::Entity::insert(marker)
                .on_conflict(
                    OnConflict::column(entity::ingest_flushes::Column::Id)
                        .do_nothing()
                        .to_owned(),
                )
                .exec_without_returning(&self.db)
                .await;
            match written {
                Ok(rows) => return Ok(rows == 0),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Says goodbye to the database instead of leaving it a reset connection.
    pub async fn close(self) {
        let Some((held, _)) = self.held else { return };
        if let Err(e) = held.close().await {
            tracing::debug!(error = %e, "closing the writer's connection");
        }
    }

    async fn connect(&self) -> Result<Held, sqlx::Error> {
        Ok(match self.db.get_database_backend() {
            DatabaseBackend::Postgres => {
                Held::Postgres(self.db.get_postgres_connection_pool().acquire().await?)
            }
            _ => Held::Sqlite(self.db.get_sqlite_connection_pool().acquire().await?),
        })
    }
}

/// A release row's key columns after `app_id`, with `kind` its usage kind or event type, in
/// the order of the `usage_counts` and `release_counts` columns.
fn release_dimensions<'a>(release: &'a Release, kind: &'a str) -> [&'a str; 5] {
    [
        &release.version,
        &release.channel,
        release.platform.as_str(),
        release.arch.as_str(),
        kind,
    ]
}

/// One PostgreSQL flush statement's rows, column by column.
#[derive(Default)]
struct PostgresRows<'a> {
    /// Roughly the bytes the rows add to the statement's Bind message.
    bytes: usize,
    group_app: Vec<i64>,
    group_hash: Vec<&'a str>,
    group_dims: [Vec<&'a str>; 7],
    group_count: Vec<i64>,
    group_first: Vec<DateTime<Utc>>,
    group_last: Vec<DateTime<Utc>>,
    hour_app: Vec<i64>,
    hour_hash: Vec<&'a str>,
    hour_start: Vec<i64>,
    hour_count: Vec<i64>,
    usage: ReleaseRows<'a>,
    releases: ReleaseRows<'a>,
    release_days: ReleaseRows<'a>,
    usage_days: ReleaseRows<'a>,
}

/// Rows keyed by app, release, a kind (usage kind or event type) and hour or day, column by
/// column.
#[derive(Default)]
struct ReleaseRows<'a> {
    app: Vec<i64>,
    dims: [Vec<&'a str>; 5],
    /// Start of the hour or day.
    start: Vec<i64>,
    count: Vec<i64>,
}

/// A TLS record carries 16 KiB; this leaves room for the message's own framing.
const MAX_STATEMENT_BYTES: usize = 12 * 1024;
/// Per value: its length word plus room for numbers and timestamps.
const BYTES_PER_VALUE: usize = 12;

/// Splits a flush into statements whose Bind message stays within one TLS record.
///
/// sqlx 0.9.0 leaves Nagle's algorithm on (launchbadge/sqlx#4335) and hands rustls's records
/// to the socket one `write` at a time, so a message spanning two records waits for the
/// server's delayed ACK: 40 ms per flush, measured at 45 ms for 64 distinct groups. Messages
/// under one record never wait.
fn postgres_statements<'a>(folded: &Folded<'a>) -> Vec<PostgresRows<'a>> {
    fn room<'a, 'r>(
        statements: &'r mut Vec<PostgresRows<'a>>,
        bytes: usize,
    ) -> &'r mut PostgresRows<'a> {
        if statements
            .last()
            .is_none_or(|last| last.bytes > 0 && last.bytes + bytes > MAX_STATEMENT_BYTES)
        {
            statements.push(PostgresRows::default());
        }
        let rows = statements.last_mut().expect("just ensured");
        rows.bytes += bytes;
        rows
    }

    let mut statements = Vec::new();
    for ((app_id, hash), group) in &folded.groups {
        let dims = group.key.dimensions();
        let bytes = hash.len() + dims.iter().map(|d| d.len()).sum::<usize>() + 12 * BYTES_PER_VALUE;
        let rows = room(&mut statements, bytes);
        rows.group_app.push(*app_id);
        rows.group_hash.push(*hash);
        for (column, value) in rows.group_dims.iter_mut().zip(dims) {
            column.push(value);
        }
        rows.group_count.push(group.count);
        rows.group_first.push(group.first_seen);
        rows.group_last.push(group.last_seen);
    }
    for ((app_id, hash, hour), count) in &folded.hours {
        let rows = room(&mut statements, hash.len() + 4 * BYTES_PER_VALUE);
        rows.hour_app.push(*app_id);
        rows.hour_hash.push(*hash);
        rows.hour_start.push(*hour);
        rows.hour_count.push(*count);
    }
    type Table<'a> = for<'r> fn(&'r mut PostgresRows<'a>) -> &'r mut ReleaseRows<'a>;
    let tables: [(_, Table<'a>); 4] = [
        (&folded.usage, |rows| &mut rows.usage),
        (&folded.releases, |rows| &mut rows.releases),
        (&folded.release_days, |rows| &mut rows.release_days),
        (&folded.usage_days, |rows| &mut rows.usage_days),
    ];
    for (folded_rows, table) in tables {
        for ((app_id, release, kind, start), count) in folded_rows {
            let dims = release_dimensions(release, kind);
            let bytes = dims.iter().map(|d| d.len()).sum::<usize>() + 8 * BYTES_PER_VALUE;
            let rows = table(room(&mut statements, bytes));
            rows.app.push(*app_id);
            for (column, value) in rows.dims.iter_mut().zip(dims) {
                column.push(value);
            }
            rows.start.push(*start);
            rows.count.push(*count);
        }
    }
    statements
}

/// One flush statement; the one that carries `flush` also writes its id.
async fn execute_postgres(
    conn: &mut PgConnection,
    rows: PostgresRows<'_>,
    flush: Option<&Flush<'_>>,
) -> Result<(), sqlx::Error> {
    let tables = rows.tables();
    let mut query = sqlx::query(postgres_flush(tables));
    if tables & GROUPS != 0 {
        query = query.bind(rows.group_app).bind(rows.group_hash);
        for column in rows.group_dims {
            query = query.bind(column);
        }
        query = query
            .bind(rows.group_count)
            .bind(rows.group_first)
            .bind(rows.group_last);
    }
    if tables & HOURS != 0 {
        query = query
            .bind(rows.hour_app)
            .bind(rows.hour_hash)
            .bind(rows.hour_start)
            .bind(rows.hour_count);
    }
    for (bit, release_rows) in [
        (RELEASES, rows.releases),
        (RELEASE_DAYS, rows.release_days),
        (USAGE, rows.usage),
        (USAGE_DAYS, rows.usage_days),
    ] {
        if tables & bit != 0 {
            query = release_rows.bind_to(query);
        }
    }
    query
        .bind(flush.map(|f| f.id).into_iter().collect::<Vec<_>>())
        .bind(flush.map(|f| f.at).into_iter().collect::<Vec<_>>())
        .execute(conn)
        .await?;
    Ok(())
}

impl PostgresRows<'_> {
    /// The tables these rows write, as bits of `FLUSH_TABLES`.
    fn tables(&self) -> u8 {
        [
            (GROUPS, self.group_app.is_empty()),
            (HOURS, self.hour_app.is_empty()),
            (RELEASES, self.releases.app.is_empty()),
            (RELEASE_DAYS, self.release_days.app.is_empty()),
            (USAGE, self.usage.app.is_empty()),
            (USAGE_DAYS, self.usage_days.app.is_empty()),
        ]
        .into_iter()
        .filter(|(_, empty)| !empty)
        .fold(0, |tables, (bit, _)| tables | bit)
    }
}

impl<'a> ReleaseRows<'a> {
    /// Binds the rows as the next eight array parameters.
    fn bind_to(
        self,
        mut query: sqlx::query::Query<'a, Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'a, Postgres, sqlx::postgres::PgArguments> {
        query = query.bind(self.app);
        for column in self.dims {
            query = query.bind(column);
        }
        query.bind(self.start).bind(self.count)
    }
}

async fn add_postgres(
    conn: &mut PoolConnection<Postgres>,
    flush: &Flush<'_>,
    jobs: &[Job<'_>],
) -> Result<Vec<bool>, sqlx::Error> {
    let claims = distinct_claims(jobs);
    if claims.is_empty() {
        let folded = counted_writes(jobs, &vec![true; jobs.len()]);
        let statements = postgres_statements(&folded);
        if statements.len() <= 1 {
            // One statement commits on its own: no BEGIN and COMMIT round trips.
            for rows in statements {
                execute_postgres(conn, rows, Some(flush)).await?;
            }
            return Ok(vec![true; jobs.len()]);
        }
        let mut txn = conn.begin().await?;
        for (n, rows) in statements.into_iter().enumerate() {
            execute_postgres(&mut txn, rows, (n == 0).then_some(flush)).await?;
        }
        txn.commit().await?;
        return Ok(vec![true; jobs.len()]);
    }
    let mut txn = conn.begin().await?;
    let claimed: Vec<(i64, String)> = sqlx::query_as(POSTGRES_CLAIMS.as_str())
        .bind(claims.iter().map(|c| c.app_id).collect::<Vec<_>>())
        .bind(claims.iter().map(|c| c.key.as_str()).collect::<Vec<_>>())
        .bind(claims.iter().map(|c| c.answer.as_str()).collect::<Vec<_>>())
        .bind(vec![flush.at; claims.len()])
        .fetch_all(&mut *txn)
        .await?;
    let counted = counted_jobs(jobs, &claimed);
    let folded = counted_writes(jobs, &counted);
    let mut statements = postgres_statements(&folded);
    if statements.is_empty() {
        statements.push(PostgresRows::default());
    }
    for (n, rows) in statements.into_iter().enumerate() {
        execute_postgres(&mut txn, rows, (n == 0).then_some(flush)).await?;
    }
    txn.commit().await?;
    Ok(counted)
}

async fn add_sqlite(
    conn: &mut PoolConnection<Sqlite>,
    flush: &Flush<'_>,
    jobs: &[Job<'_>],
) -> Result<Vec<bool>, sqlx::Error> {
    let mut txn = conn.begin().await?;
    let claims = distinct_claims(jobs);
    let mut claimed: Vec<(i64, String)> = Vec::new();
    for chunk in claims.chunks(SQLITE_ROWS_PER_STATEMENT) {
        let mut statement = QueryBuilder::<Sqlite>::new(CLAIMS_INSERT);
        statement.push(" ");
        statement.push_values(chunk, |mut row, claim| {
            row.push_bind(claim.app_id)
                .push_bind(claim.key.as_str())
                .push_bind(claim.answer.as_str())
                .push_bind(flush.at);
        });
        statement.push(" ").push(CLAIMS_ON_CONFLICT);
        claimed.extend(
            statement
                .build_query_as::<(i64, String)>()
                .fetch_all(&mut *txn)
                .await?,
        );
    }
    let counted = counted_jobs(jobs, &claimed);
    let folded = counted_writes(jobs, &counted);
    // The flush's id and every upsert go to SQLite as one multi-statement query: each
    // statement is a round trip to the connection's worker thread, and on a busy hot group
    // those round trips, not the statements, were the flush's cost.
    let mut writes = QueryBuilder::<Sqlite>::new(FLUSH_INSERT);
    writes
        .push(" VALUES (")
        .push_bind(flush.id)
        .push(", ")
        .push_bind(flush.at)
        .push(");");
    let groups: Vec<_> = folded.groups.iter().collect();
    push_upserts(
        &mut writes,
        &groups,
        (GROUPS_INSERT, GROUPS_ON_CONFLICT),
        |mut row, ((app_id, hash), group)| {
            row.push_bind(*app_id).push_bind(*hash);
            for value in group.key.dimensions() {
                row.push_bind(value);
            }
            row.push_bind(group.count)
                .push_bind(group.first_seen)
                .push_bind(group.last_seen)
                .push_bind(0i32);
        },
    );
    let hours: Vec<_> = folded.hours.iter().collect();
    push_upserts(
        &mut writes,
        &hours,
        (HOURS_INSERT, HOURS_ON_CONFLICT),
        |mut row, ((app_id, hash, hour), count)| {
            row.push_bind(*app_id)
                .push_bind(*hash)
                .push_bind(*hour)
                .push_bind(**count);
        },
    );
    for (folded_rows, statement) in [
        (&folded.usage, (USAGE_INSERT, USAGE_ON_CONFLICT)),
        (&folded.releases, (RELEASES_INSERT, RELEASES_ON_CONFLICT)),
        (
            &folded.release_days,
            (RELEASE_DAYS_INSERT, RELEASE_DAYS_ON_CONFLICT),
        ),
        (
            &folded.usage_days,
            (USAGE_DAYS_INSERT, USAGE_DAYS_ON_CONFLICT),
        ),
    ] {
        let rows: Vec<_> = folded_rows.iter().collect();
        push_upserts(
            &mut writes,
            &rows,
            statement,
            |mut row, ((app_id, release, kind, start), count)| {
                row.push_bind(*app_id);
                for value in release_dimensions(release, kind) {
                    row.push_bind(value);
                }
                row.push_bind(*start).push_bind(**count);
            },
        );
    }
    writes.build().execute(&mut *txn).await?;
    txn.commit().await?;
    Ok(counted)
}

/// Appends upserts of `rows` into one table to `writes`: `(insert, on_conflict)` around
/// multi-row VALUES, in statements of at most `SQLITE_ROWS_PER_STATEMENT` rows; `bind_row`
/// binds one row's values.
fn push_upserts<T>(
    writes: &mut QueryBuilder<Sqlite>,
    rows: &[T],
    (insert, on_conflict): (&str, &str),
    mut bind_row: impl FnMut(Separated<'_, Sqlite, &'static str>, &T),
) {
    for chunk in rows.chunks(SQLITE_ROWS_PER_STATEMENT) {
        writes.push(" ").push(insert).push(" ");
        writes.push_values(chunk, &mut bind_row);
        writes.push(" ").push(on_conflict).push(";");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::writer::fold;
    use crate::ingest::writer::tests::{key, report};

    #[test]
    fn a_large_flush_is_split_into_statements_that_each_fit_a_tls_record() {
        let writes: Vec<_> = (0..300)
            .flat_map(|n| report(1, &format!("{n:0>200}")))
            .collect();
        let statements = postgres_statements(&fold(writes.iter()));
        assert!(statements.len() > 1);
        for rows in &statements {
            let text_bytes: usize = rows.group_hash.iter().map(|h| h.len()).sum::<usize>()
                + rows
                    .group_dims
                    .iter()
                    .flatten()
                    .map(|d| d.len())
                    .sum::<usize>()
                + rows.hour_hash.iter().map(|h| h.len()).sum::<usize>();
            assert!(text_bytes <= MAX_STATEMENT_BYTES, "{text_bytes} bytes");
        }
        let groups: usize = statements.iter().map(|rows| rows.group_hash.len()).sum();
        let hours: usize = statements.iter().map(|rows| rows.hour_hash.len()).sum();
        assert_eq!(
            (groups, hours),
            (300, 300),
            "every row in exactly one statement"
        );
    }

    #[test]
    fn a_small_flush_is_one_statement() {
        let writes: Vec<_> = (0..64).flat_map(|_| report(1, "SIGSEGV")).collect();
        let statements = postgres_statements(&fold(writes.iter()));
        assert_eq!(statements.len(), 1);
        assert_eq!(statements[0].group_count, vec![64]);
        assert_eq!(
            statements[0].group_dims[6],
            vec![key("SIGSEGV").reason.as_str()]
        );
    }

    #[test]
    fn a_report_only_flush_writes_no_usage_table() {
        let writes: Vec<_> = (0..3).flat_map(|_| report(1, "SIGSEGV")).collect();
        let statements = postgres_statements(&fold(writes.iter()));
        let tables = statements[0].tables();
        assert_eq!(tables, GROUPS | HOURS | RELEASES | RELEASE_DAYS);
        let statement = postgres_flush(tables);
        assert!(!statement.contains("usage"), "{statement}");
        // Groups 12, hours 4, two roll-ups 8 each and the flush's id 2: $1 to $34.
        assert!(statement.contains("$34::int8[]") && !statement.contains("$35"));
        let everything = postgres_flush(0b11_1111);
        assert!(everything.contains("usage_day_counts") && everything.contains("$50::int8[]"));
        assert_eq!(
            postgres_flush(0),
            "INSERT INTO ingest_flushes (id, created_at) SELECT * FROM unnest($1::text[], $2::int8[])"
        );
    }
}
