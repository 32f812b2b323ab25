//! `rollwatch backup PATH`: a consistent copy of the embedded SQLite database, taken while
//! the server runs.
//!
//! `VACUUM INTO` reads the database inside one read transaction, so the copy is the database
//! as of one instant, with every commit before it and none after; in WAL mode that read
//! blocks no writer. PostgreSQL has its own tools for this (pg_dump), so it is refused here.

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DbBackend, Statement};

use crate::db::{SQLITE_BUSY_TIMEOUT, is_sqlite};

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(
        "backup copies the embedded SQLite database; DATABASE_URL is PostgreSQL: use pg_dump (e.g. pg_dump --format=custom --file=rollwatch.dump \"$DATABASE_URL\")"
    )]
    NotSqlite,
    #[error("{0} already exists; choose a new file (a backup never overwrites)")]
    Exists(PathBuf),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{0} is not a UTF-8 path")]
    PathNotUtf8(PathBuf),
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
}

/// A finished backup.
#[derive(Debug)]
pub struct Backup {
    pub path: PathBuf,
    pub bytes: u64,
}

/// Copies the SQLite database of `database_url` to `to`, a file that must not exist yet.
pub async fn sqlite_copy(database_url: &str, to: &Path) -> Result<Backup, BackupError> {
    if !is_sqlite(database_url) {
        return Err(BackupError::NotSqlite);
    }
    let target = to
        .to_str()
        .ok_or_else(|| BackupError::PathNotUtf8(to.into()))?;
    // Created here, empty, rather than by SQLite: `create_new` refuses an existing file
    // atomically, and the copy (password hashes, key hashes) is readable by its owner only.
    // VACUUM INTO accepts an empty file.
    create_empty(to)?;
    if let Err(e) = vacuum_into(database_url, target).await {
        // Nothing half-written is left behind to be mistaken for a backup.
        let _ = std::fs::remove_file(to);
        return Err(e);
    }
    let bytes = std::fs::metadata(to)
        .map_err(|source| BackupError::Io {
            path: to.into(),
            source,
        })?
        .len();
    Ok(Backup {
        path: to.into(),
        bytes,
    })
}

fn create_empty(path: &Path) -> Result<(), BackupError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(BackupError::Exists(path.into())),
        Err(source) => Err(BackupError::Io {
            path: path.into(),
            source,
        }),
    }
}

async fn vacuum_into(database_url: &str, target: &str) -> Result<(), BackupError> {
    let mut options = ConnectOptions::new(database_url.to_owned());
    options
        .max_connections(1)
        .sqlx_logging(false)
        // A backup of a database that is not there is an error, not a new empty database
        // (the default URL says `mode=rwc`). No migration either: the copy is as it was.
        .map_sqlx_sqlite_opts(|sqlite| {
            sqlite
                .create_if_missing(false)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
        });
    let db = Database::connect(options).await?;
    let copied = db
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "VACUUM INTO ?",
            [target.into()],
        ))
        .await;
    let closed = db.close().await;
    copied?;
    closed?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_postgres_an_existing_file_and_a_missing_database() {
        let dir = tempfile::tempdir().expect("temp dir");
        let err = sqlite_copy("postgres://x@localhost/db", &dir.path().join("b.db"))
            .await
            .expect_err("postgres");
        assert!(err.to_string().contains("pg_dump"), "{err}");

        let existing = dir.path().join("existing.db");
        std::fs::write(&existing, b"keep me").expect("file");
        let url = format!("sqlite://{}/live.db?mode=rwc", dir.path().display());
        let err = sqlite_copy(&url, &existing).await.expect_err("exists");
        assert!(matches!(err, BackupError::Exists(_)), "{err}");
        assert_eq!(std::fs::read(&existing).expect("file"), b"keep me");

        let target = dir.path().join("copy.db");
        sqlite_copy(&url, &target).await.expect_err("no database");
        assert!(!target.exists(), "no empty file left behind");
        assert!(!dir.path().join("live.db").exists(), "no database created");
    }
}
