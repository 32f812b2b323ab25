//! The database: SQLite (WAL) by default, PostgreSQL in production; migrated at start-up.

use std::sync::Arc;
use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr};
use tokio::sync::{Mutex, MutexGuard};

pub fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

/// Connects and brings the schema up to date.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(if is_sqlite(url) { 4 } else { 16 })
        .min_connections(1)
        // A database that is down must give a quick 503, not a request hanging for 30 s.
        .connect_timeout(Duration::from_secs(3))
        .acquire_timeout(Duration::from_secs(3))
        .sqlx_logging(false);
    let db = Database::connect(options).await?;
    if is_sqlite(url) {
        // WAL lets readers run beside the single writer; it is a property of the file.
        db.execute_unprepared("PRAGMA journal_mode=WAL").await?;
    }
    Migrator::up(&db, None).await?;
    Ok(db)
}

/// Queues this process's writes to a SQLite file in memory, first come first served.
///
/// SQLite lets one connection write at a time and makes the others retry on a sleep schedule
/// (1, 2, 5, 10, … 100 ms), so a blob-slot update colliding with a flush stalled both for tens
/// of milliseconds. Waiting here instead wakes the next writer the moment the lock is free.
/// PostgreSQL locks rows, not the database, so there the gate is open.
#[derive(Clone, Default)]
pub struct WriteGate(Option<Arc<Mutex<()>>>);

impl WriteGate {
    pub fn for_url(url: &str) -> WriteGate {
        WriteGate(is_sqlite(url).then(|| Arc::new(Mutex::new(()))))
    }

    /// Waits for this process's other SQLite writes; hold the guard across the write.
    pub async fn enter(&self) -> Option<MutexGuard<'_, ()>> {
        match &self.0 {
            Some(lock) => Some(lock.lock().await),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_writes_take_turns_and_postgres_writes_do_not_wait() {
        let sqlite = WriteGate::for_url("sqlite:///tmp/rollwatch.db");
        let first = sqlite.enter().await;
        assert!(first.is_some());
        let second = tokio::time::timeout(Duration::from_millis(50), sqlite.enter()).await;
        assert!(second.is_err(), "a second SQLite write waits for the first");
        drop(first);
        assert!(sqlite.enter().await.is_some());

        let postgres = WriteGate::for_url("postgres://db.internal/rollwatch");
        let _held = postgres.enter().await;
        assert!(postgres.enter().await.is_none());
    }
}
