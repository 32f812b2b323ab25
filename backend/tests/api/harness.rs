//! The harness itself: a test that panics still leaves no PostgreSQL database behind.

use sea_orm::ConnectionTrait;

use crate::common::{Backend, TestDatabase, postgres_server_url};

/// Whether the PostgreSQL server has a database called `name`.
async fn database_exists(name: &str) -> bool {
    let admin = sea_orm::Database::connect(postgres_server_url())
        .await
        .unwrap();
    let row = admin
        .query_one_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DatabaseBackend::Postgres,
            "SELECT 1 FROM pg_database WHERE datname = $1",
            [name.into()],
        ))
        .await
        .unwrap();
    admin.close().await.unwrap();
    row.is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_test_leaves_no_postgres_database_behind() {
    let (created, name) = tokio::sync::oneshot::channel::<String>();
    let (fail, failing) = tokio::sync::oneshot::channel::<()>();
    let test = tokio::spawn(async move {
        let data_dir = tempfile::tempdir().unwrap();
        let database = TestDatabase::create(Backend::Postgres, data_dir.path()).await;
        created
            .send(database.postgres_name().unwrap().to_owned())
            .unwrap();
        let _ = failing.await;
        panic!("deliberately, while {} exists", database.url);
    });
    let name = name.await.unwrap();
    assert!(database_exists(&name).await, "{name} was created");
    fail.send(()).unwrap();
    let failed = test.await.unwrap_err();
    assert!(failed.is_panic(), "{failed}");
    assert!(
        !database_exists(&name).await,
        "{name} is still there after its test panicked"
    );
}
