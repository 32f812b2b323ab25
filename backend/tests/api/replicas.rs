//! Several `rollwatch serve` on one PostgreSQL (issue 18): start-up work runs once.

use entity::{accounts, users};
use sea_orm::{EntityTrait, PaginatorTrait};

use crate::common::{Backend, TestDatabase, start_server};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_starting_together_migrate_once_and_make_one_first_admin() {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create(Backend::Postgres, dir.path()).await;
    let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Both start on the empty database at once; each would migrate and make an admin alone.
    let ((_, stop_first, first_task), (_, stop_second, second_task)) = tokio::join!(
        start_server(&first, &database.url, &[]),
        start_server(&second, &database.url, &[]),
    );
    let db = rollwatch::db::connect(&database.url).await.unwrap();
    assert_eq!(users::Entity::find().count(&db).await.unwrap(), 1);
    assert_eq!(accounts::Entity::find().count(&db).await.unwrap(), 1);
    for (stop, task) in [(stop_first, first_task), (stop_second, second_task)] {
        let _ = stop.send(());
        task.await.unwrap().unwrap();
    }
    db.close().await.unwrap();
}
