//! The database under test: a fresh one per back end, and the stored totals the 202s are
//! checked against.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbErr, Statement};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn title(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

/// A database made for one benchmark run; a PostgreSQL one is dropped by `remove`.
pub struct BenchDatabase {
    pub url: String,
    postgres: Option<PostgresDatabase>,
}

struct PostgresDatabase {
    server_url: String,
    name: String,
}

impl BenchDatabase {
    /// A new SQLite file in `data_dir`, or a new database on the PostgreSQL server.
    pub async fn create(
        backend: Backend,
        data_dir: &Path,
        postgres_server_url: &str,
    ) -> Result<BenchDatabase, DbErr> {
        match backend {
            Backend::Sqlite => Ok(BenchDatabase {
                url: format!("sqlite://{}/rollwatch.db?mode=rwc", data_dir.display()),
                postgres: None,
            }),
            Backend::Postgres => {
                let stamp = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or_default();
                let name = format!("rollwatch_bench_{}_{stamp}", std::process::id());
                let server = Database::connect(postgres_server_url).await?;
                server
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await?;
                server.close().await?;
                // Same server and options (`?sslmode=…`), the new database's name.
                let (path, options) = postgres_server_url
                    .split_once('?')
                    .map_or((postgres_server_url, ""), |(path, query)| (path, query));
                let base = path.rsplit_once('/').map_or(path, |(base, _)| base);
                let options = if options.is_empty() {
                    String::new()
                } else {
                    format!("?{options}")
                };
                Ok(BenchDatabase {
                    url: format!("{base}/{name}{options}"),
                    postgres: Some(PostgresDatabase {
                        server_url: postgres_server_url.to_owned(),
                        name,
                    }),
                })
            }
        }
    }

    /// Drops the PostgreSQL database; a SQLite file goes with its data dir.
    pub async fn remove(self) -> Result<(), DbErr> {
        if let Some(postgres) = self.postgres {
            let server = Database::connect(&postgres.server_url).await?;
            server
                .execute_unprepared(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    postgres.name
                ))
                .await?;
            server.close().await?;
        }
        Ok(())
    }
}

/// What the database holds: the groups' counts and the hourly series, which must agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredTotals {
    pub group_counts: i64,
    pub hourly_counts: i64,
}

impl std::ops::Sub for StoredTotals {
    type Output = StoredTotals;
    fn sub(self, before: StoredTotals) -> StoredTotals {
        StoredTotals {
            group_counts: self.group_counts - before.group_counts,
            hourly_counts: self.hourly_counts - before.hourly_counts,
        }
    }
}

pub async fn stored_totals(db: &DatabaseConnection) -> Result<StoredTotals, DbErr> {
    Ok(StoredTotals {
        group_counts: sum_of_counts(db, "report_groups").await?,
        hourly_counts: sum_of_counts(db, "report_counts").await?,
    })
}

async fn sum_of_counts(db: &DatabaseConnection, table: &str) -> Result<i64, DbErr> {
    let sql = format!("SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) AS total FROM {table}");
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("no sum from {table}")))?;
    row.try_get("", "total")
}
