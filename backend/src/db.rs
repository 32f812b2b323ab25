//! The database: SQLite (WAL) by default, PostgreSQL in production; migrated at start-up.

use std::sync::Arc;
use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, ExecResult, QueryResult, SqliteTransactionMode, Statement, TransactionOptions,
    TransactionTrait,
};
use tokio::sync::{Mutex, MutexGuard};

pub fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

/// How long a SQLite write waits for another process's write (the operator's shell beside
/// `serve`, or the other way round) before it fails. Writes of this process queue in the
/// `WriteGate` instead and never reach this wait among themselves.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects and brings the schema up to date.
pub async fn connect(url: &str) -> Result<Store, DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(if is_sqlite(url) { 4 } else { 16 })
        .min_connections(1)
        // A database that is down must give a quick 503, not a request hanging for 30 s.
        .connect_timeout(Duration::from_secs(3))
        .acquire_timeout(Duration::from_secs(3))
        .sqlx_logging(false)
        // Stated here rather than left to sqlx's default: a write waits its turn this long.
        .map_sqlx_sqlite_opts(|sqlite| sqlite.busy_timeout(SQLITE_BUSY_TIMEOUT));
    let db = Database::connect(options).await?;
    if is_sqlite(url) {
        // WAL lets readers run beside the single writer; it is a property of the file.
        db.execute_unprepared("PRAGMA journal_mode=WAL").await?;
    }
    let lock = StartupLock::acquire(url).await?;
    let migrated = Migrator::up(&db, None).await;
    if let Some(lock) = lock {
        lock.release().await?;
    }
    migrated?;
    Ok(Store::new(db, WriteGate::for_url(url)))
}

/// The key of the PostgreSQL advisory lock that start-up work takes ("rollwatch" in ASCII).
const STARTUP_LOCK_KEY: i64 = 0x726f_6c6c_7761_7463;

/// On PostgreSQL, a session-level advisory lock held on a connection of its own: replicas
/// starting together migrate, and create the first admin, one after another; the second then
/// finds nothing to do. A replica that dies holding it releases it with its connection.
/// SQLite needs none: its writes already take turns (`Store::begin_write`).
pub struct StartupLock(DatabaseConnection);

impl StartupLock {
    pub async fn acquire(url: &str) -> Result<Option<StartupLock>, DbErr> {
        if is_sqlite(url) {
            return Ok(None);
        }
        let mut options = ConnectOptions::new(url.to_owned());
        // One connection: the lock belongs to the session that took it.
        options
            .max_connections(1)
            .min_connections(1)
            .connect_timeout(Duration::from_secs(3))
            .sqlx_logging(false);
        let conn = Database::connect(options).await?;
        conn.execute_unprepared(&format!("SELECT pg_advisory_lock({STARTUP_LOCK_KEY})"))
            .await?;
        Ok(Some(StartupLock(conn)))
    }

    pub async fn release(self) -> Result<(), DbErr> {
        self.0
            .execute_unprepared(&format!("SELECT pg_advisory_unlock({STARTUP_LOCK_KEY})"))
            .await?;
        self.0.close().await
    }
}

/// The database as the capabilities use it: reads straight through the pool (it is a
/// `ConnectionTrait`), every write through `begin_write`, so concurrent writers take turns
/// instead of failing with "database is locked".
#[derive(Clone)]
pub struct Store {
    conn: DatabaseConnection,
    gate: WriteGate,
}

impl Store {
    pub fn new(conn: DatabaseConnection, gate: WriteGate) -> Store {
        Store { conn, gate }
    }

    /// The pool itself, for the group-commit writer and health checks.
    pub fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// This process's queue of SQLite writers, shared with the group-commit writer.
    pub fn gate(&self) -> &WriteGate {
        &self.gate
    }

    /// Begins a write transaction once this process's other writes are done.
    ///
    /// On SQLite it takes the `WriteGate`, then begins `IMMEDIATE`: the write lock is taken at
    /// `BEGIN`, where SQLite waits up to `SQLITE_BUSY_TIMEOUT` for another process's writer.
    /// A deferred transaction that reads first and writes later fails at once with
    /// `SQLITE_BUSY` when another connection wrote meanwhile (the busy timeout does not apply
    /// to that upgrade), which is what every concurrent mutation hit. On PostgreSQL the gate
    /// is open and this is a plain `BEGIN`: row locks serialize what must be.
    pub async fn begin_write(&self) -> Result<WriteTxn<'_>, DbErr> {
        let turn = self.gate.enter().await;
        let txn = self
            .conn
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await?;
        Ok(WriteTxn { txn, _turn: turn })
    }

    pub async fn close(self) -> Result<(), DbErr> {
        self.conn.close().await
    }
}

/// A write transaction holding this process's turn to write until it commits, rolls back or
/// is dropped (which rolls it back).
pub struct WriteTxn<'a> {
    // Declared first, so a dropped transaction is rolled back before the turn passes on.
    txn: DatabaseTransaction,
    _turn: Option<MutexGuard<'a, ()>>,
}

impl WriteTxn<'_> {
    pub async fn commit(self) -> Result<(), DbErr> {
        self.txn.commit().await
    }

    pub async fn rollback(self) -> Result<(), DbErr> {
        self.txn.rollback().await
    }
}

/// Forwards every call to `inner`, so a `Store` or a `WriteTxn` goes wherever sea-orm wants a
/// connection.
macro_rules! forward_connection {
    ($type:ty, $inner:ident) => {
        #[async_trait::async_trait]
        impl ConnectionTrait for $type {
            fn get_database_backend(&self) -> DbBackend {
                self.$inner.get_database_backend()
            }

            async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
                self.$inner.execute_raw(stmt).await
            }

            async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
                self.$inner.execute_unprepared(sql).await
            }

            async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
                self.$inner.query_one_raw(stmt).await
            }

            async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
                self.$inner.query_all_raw(stmt).await
            }

            fn support_returning(&self) -> bool {
                self.$inner.support_returning()
            }

            fn is_mock_connection(&self) -> bool {
                self.$inner.is_mock_connection()
            }
        }
    };
}

forward_connection!(Store, conn);
forward_connection!(WriteTxn<'_>, txn);

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
