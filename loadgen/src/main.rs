//! `loadgen`: the ingestion benchmark behind `cargo xtask bench` (issue 6, DESIGN §9).
//!
//! For each database back end it starts `rollwatch serve` on a fresh data dir and database,
//! creates an app, and for each scenario measures, over loopback from this process:
//! the do-nothing endpoint (`POST /bench/noop`, same JSON) and ingestion, each at full load
//! and at half of ingestion's maximum, with the disk's own `fdatasync` latency probed beside
//! every run. After every ingestion run it checks that the database holds exactly as many
//! reports as were answered 202, and prints a markdown table.
//!
//! With `--read` it runs the read-path benchmark instead (module `read`, issue 16).

mod cpu;
mod disk;
mod load;
mod payloads;
mod read;
mod server;
mod store;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use hyper::header::HeaderValue;
use sea_orm::{Database, DatabaseConnection, DbErr};

use cpu::CpuReading;
use disk::{DiskLatency, DiskProbe};
use load::{Outcome, Pace, Plan, Target};
use payloads::Scenario;
use server::Rollwatch;
use store::{Backend, BenchDatabase, StoredTotals};

const APP_NAME: &str = "bench";

#[derive(Parser)]
#[command(about = "Rollwatch ingestion benchmark (run it with `cargo xtask bench`)")]
struct Args {
    /// The `rollwatch` binary; by default the one next to this program.
    #[arg(long)]
    rollwatch: Option<PathBuf>,
    /// Database back ends to run, in order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "sqlite,postgres"
    )]
    backends: Vec<Backend>,
    /// Scenarios to run on each back end, in order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "hot-group,distinct-groups,ten-percent-details"
    )]
    scenarios: Vec<Scenario>,
    /// The PostgreSQL server; a database is created on it for the run and dropped after.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres: String,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Measured seconds per run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Seconds of load before measuring starts.
    #[arg(long, default_value_t = 2)]
    warmup_seconds: u64,
    /// Benchmark the dashboard's and CI's GraphQL queries over a generated dataset instead.
    #[arg(long)]
    read: bool,
    /// With `--read`: the dataset's size, in multiples of the default (50 versions, 10,000
    /// groups, 1,000,000 hourly rows over 90 days).
    #[arg(long, default_value_t = 1)]
    scale: u32,
    /// With `--read`: timed runs of each query.
    #[arg(long, default_value_t = 20)]
    repeats: usize,
    /// With `--read`: keep the dataset's database (printing its URL), e.g. for EXPLAIN.
    #[arg(long)]
    keep_dataset: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("cannot start {what}: {source}")]
    Spawn {
        what: String,
        source: std::io::Error,
    },
    #[error("{what} failed: {stderr}")]
    Command { what: &'static str, stderr: String },
    #[error("rollwatch serve did not start listening; see its log {}", log.display())]
    ServerDidNotStart { log: PathBuf },
    #[error("no VmHWM in /proc/PID/status")]
    NoPeakRss,
    #[error("the server did not fold the dataset's old hours into days within {0:?}")]
    NotFolded(Duration),
    #[error("the report key is not a valid header value")]
    BadKey,
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("GraphQL: {0}")]
    GraphQl(String),
    #[error("database: {0}")]
    Database(#[from] DbErr),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// One line of the table.
struct Row {
    scenario: Scenario,
    endpoint: &'static str,
    load: String,
    outcome: Outcome,
    /// For ingestion runs: what the database gained during the run.
    stored: Option<StoredTotals>,
    /// The disk's `fdatasync` latency during the run.
    disk: DiskLatency,
    /// CPU µs per answered request, "server / PostgreSQL".
    cpu: String,
}

impl Row {
    /// The stored counts equal the 202s; vacuous for the do-nothing endpoint.
    fn counts_match(&self) -> bool {
        self.stored.is_none_or(|stored| {
            let accepted = self.outcome.accepted_total as i64;
            stored.group_counts == accepted && stored.hourly_counts == accepted
        })
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let binary = match args.rollwatch.clone().map_or_else(sibling_rollwatch, Ok) {
        Ok(binary) => binary,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", machine());
    let mut all_counts_match = true;
    for backend in args.backends.clone() {
        let outcome = if args.read {
            bench_reads(&args, &binary, backend)
                .await
                .map(|()| Vec::new())
        } else {
            bench_backend(&args, &binary, backend).await
        };
        match outcome {
            Ok(rows) => all_counts_match &= rows.iter().all(Row::counts_match),
            Err(e) => {
                eprintln!("loadgen: {}: {e}", backend.title());
                return ExitCode::FAILURE;
            }
        }
    }
    if args.read {
        ExitCode::SUCCESS
    } else if all_counts_match {
        println!("\nEvery run: stored count = 202s received.");
        ExitCode::SUCCESS
    } else {
        println!("\nMISMATCH: some run stored a different count than the 202s it received.");
        ExitCode::FAILURE
    }
}

fn sibling_rollwatch() -> Result<PathBuf, std::io::Error> {
    Ok(std::env::current_exe()?.with_file_name("rollwatch"))
}

/// `nproc` and the CPU model, for the record.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    format!("Machine: {cores} cores ({cpu}); load generator and server share them.")
}

const ADMIN_EMAIL: &str = "bench@localhost";
const ADMIN_PASSWORD: &str = "bench-password-not-secret";

/// A fresh data dir and database for one back end, and `rollwatch` configured to use them.
async fn fresh_install(
    args: &Args,
    binary: &Path,
    backend: Backend,
) -> Result<(PathBuf, BenchDatabase, Rollwatch), BenchError> {
    let data_dir = std::env::temp_dir().join(format!(
        "rollwatch-bench-{}-{backend:?}",
        std::process::id()
    ));
    if data_dir.exists() {
        std::fs::remove_dir_all(&data_dir)?;
    }
    std::fs::create_dir_all(&data_dir)?;
    let database = BenchDatabase::create(backend, &data_dir, &args.postgres).await?;
    let rollwatch = Rollwatch {
        binary: binary.to_path_buf(),
        env: vec![
            ("BIND_ADDR", "127.0.0.1:0".to_owned()),
            ("ROLLWATCH_DATA_DIR", data_dir.display().to_string()),
            ("DATABASE_URL", database.url.clone()),
            ("ROLLWATCH_ADMIN_EMAIL", ADMIN_EMAIL.to_owned()),
            ("ROLLWATCH_ADMIN_PASSWORD", ADMIN_PASSWORD.to_owned()),
            (
                "REPORTS_RATE_LIMIT_PER_KEY_PER_MINUTE",
                "10000000".to_owned(),
            ),
            ("ROLLWATCH_BENCH_ENDPOINTS", "true".to_owned()),
            (
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned()),
            ),
        ],
    };
    Ok((data_dir, database, rollwatch))
}

/// The read-path benchmark on one back end: the dataset written, then every query timed.
async fn bench_reads(args: &Args, binary: &Path, backend: Backend) -> Result<(), BenchError> {
    let (data_dir, database, rollwatch) = fresh_install(args, binary, backend).await?;
    let server_log = data_dir.with_extension("log");
    let server = rollwatch.serve(&server_log)?;
    rollwatch.create_app(APP_NAME)?;
    let mut client = read::GraphQl::connect(server.addr).await?;
    client.login(ADMIN_EMAIL, ADMIN_PASSWORD).await?;
    let dataset = read::Dataset::new(client.app_id(APP_NAME).await?, args.scale);
    let db = Database::connect(&database.url).await?;
    let started = std::time::Instant::now();
    dataset.write(&db, APP_NAME).await?;
    let written_in = started.elapsed();
    // The reads of an install 90 days old: its daily upkeep has folded the hours older than
    // 30 days into days. The server runs the upkeep at start-up when today's has not run.
    drop(client);
    server.stop()?;
    read::forget_todays_upkeep(&db).await?;
    let server = rollwatch.serve(&server_log.with_extension("restarted.log"))?;
    let folded_in = read::wait_until_folded(&db).await?;
    read::vacuum(&db).await?;
    let mut client = read::GraphQl::connect(server.addr).await?;
    client.login(ADMIN_EMAIL, ADMIN_PASSWORD).await?;
    println!(
        "\n### {} — scale {}, dataset written in {:.1} s and folded in {:.1} s, {} timed runs \
         per query\n",
        backend.title(),
        args.scale,
        written_in.as_secs_f64(),
        folded_in.as_secs_f64(),
        args.repeats
    );
    dataset.time_queries(&mut client, args.repeats).await?;
    db.close().await?;
    drop(client);
    server.stop()?;
    if args.keep_dataset {
        println!(
            "\nDataset kept: {} (app id {})",
            database.url, dataset.app_id
        );
        return Ok(());
    }
    database.remove().await?;
    std::fs::remove_dir_all(&data_dir)?;
    Ok(())
}

async fn bench_backend(
    args: &Args,
    binary: &Path,
    backend: Backend,
) -> Result<Vec<Row>, BenchError> {
    let (data_dir, database, rollwatch) = fresh_install(args, binary, backend).await?;
    // Kept after the run (beside, not in, the data dir), for a look at any warning.
    let server_log = data_dir.with_extension("log");
    let server = rollwatch.serve(&server_log)?;
    let key = rollwatch.create_app(APP_NAME)?;
    let authorization =
        HeaderValue::try_from(format!("Bearer {key}")).map_err(|_| BenchError::BadKey)?;
    let target = |path| {
        Arc::new(Target {
            addr: server.addr,
            path,
            authorization: authorization.clone(),
        })
    };
    let (noop, ingest) = (target("/bench/noop"), target("/reports/ingest"));
    let db = Database::connect(&database.url).await?;

    let plan = Plan {
        connections: args.connections,
        warmup: Duration::from_secs(args.warmup_seconds),
        measured: Duration::from_secs(args.seconds),
        pace: Pace::AsFastAsAnswered,
    };
    println!(
        "\n### {} — {} connections, {} s measured after {} s of warm-up per run\n",
        backend.title(),
        plan.connections,
        args.seconds,
        args.warmup_seconds
    );
    println!(concat!(
        "| scenario | endpoint | load | reports/s | p50 ms | p99 ms | non-202 | errors ",
        "| 202s | stored (groups / hourly) | check | CPU µs/request server / PG ",
        "| disk fsync p99 / max ms |\n",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"
    ));
    let mut rows = Vec::new();
    let mut body_sizes = Vec::new();
    for &scenario in &args.scenarios {
        let bodies = Arc::new(scenario.bodies(APP_NAME)?);
        let run = Run {
            server_pid: server.pid(),
            data_dir: &data_dir,
            bodies: &bodies,
            scenario,
        };
        print_row(&run.measure(&noop, None, plan, "max".to_owned()).await?);
        let max = run
            .measure(&ingest, Some(&db), plan, "max".to_owned())
            .await?;
        print_row(&max);
        let half_rate = max.outcome.accepted_per_second() / 2.0;
        let half_plan = Plan {
            pace: Pace::PerSecond(half_rate.max(1.0)),
            ..plan
        };
        let half_load = format!("50% ({half_rate:.0}/s)");
        print_row(
            &run.measure(&noop, None, half_plan, half_load.clone())
                .await?,
        );
        let half = run
            .measure(&ingest, Some(&db), half_plan, half_load)
            .await?;
        print_row(&half);
        rows.push(max);
        rows.push(half);
        body_sizes.push(format!(
            "{} {} B",
            scenario.title(),
            payloads::mean_len(&bodies)
        ));
    }
    println!("\nMean request body: {}.", body_sizes.join("; "));
    let peak_rss_kib = server.peak_rss_kib()?;
    println!(
        "Peak RSS of rollwatch serve (VmHWM): {:.1} MiB; its log: {}",
        peak_rss_kib as f64 / 1024.0,
        server_log.display()
    );
    db.close().await?;
    server.stop()?;
    database.remove().await?;
    std::fs::remove_dir_all(&data_dir)?;
    Ok(rows)
}

/// What every run of one scenario on one back end shares.
struct Run<'a> {
    server_pid: u32,
    data_dir: &'a Path,
    bodies: &'a Arc<Vec<Bytes>>,
    scenario: Scenario,
}

impl Run<'_> {
    /// One run against `target` with the disk probed beside it; for ingestion (`db` given),
    /// with the database's totals taken before and after it.
    async fn measure(
        &self,
        target: &Arc<Target>,
        db: Option<&DatabaseConnection>,
        plan: Plan,
        load: String,
    ) -> Result<Row, BenchError> {
        let before = match db {
            Some(db) => Some((db, store::stored_totals(db).await?)),
            None => None,
        };
        let probe = DiskProbe::start(self.data_dir)?;
        let cpu_before = CpuReading::take(self.server_pid);
        let outcome = load::run(target.clone(), self.bodies.clone(), plan).await;
        let cpu = cpu_before.per_request(CpuReading::take(self.server_pid), outcome.accepted_total);
        let disk = probe.finish();
        let stored = match before {
            Some((db, before)) => Some(store::stored_totals(db).await? - before),
            None => None,
        };
        Ok(Row {
            scenario: self.scenario,
            endpoint: target.path,
            load,
            outcome,
            stored,
            disk,
            cpu,
        })
    }
}

fn print_row(row: &Row) {
    let outcome = &row.outcome;
    let (accepted, stored, check) = match row.stored {
        None => ("–".to_owned(), "–".to_owned(), "–"),
        Some(stored) => (
            outcome.accepted_total.to_string(),
            format!("{} / {}", stored.group_counts, stored.hourly_counts),
            if row.counts_match() { "ok" } else { "MISMATCH" },
        ),
    };
    println!(
        "| {} | {} | {} | {:.0} | {:.1} | {:.1} | {} | {} | {accepted} | {stored} | {check} | {} | {} |",
        row.scenario.title(),
        row.endpoint,
        row.load,
        outcome.accepted_per_second(),
        outcome.latency_ms(0.50),
        outcome.latency_ms(0.99),
        outcome.other_statuses_in_window,
        outcome.transport_errors,
        row.cpu,
        row.disk.summary(),
    );
}
