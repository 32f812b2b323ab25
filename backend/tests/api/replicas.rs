//! Several `rollwatch serve` on one PostgreSQL (issue 18): start-up work runs once, reports
//! spread over replicas count exactly, and a replica killed mid-burst loses nothing it
//! acknowledged. The three-process test runs the README's production topology: PostgreSQL,
//! Redis for the limits, S3 for the details, three replicas started together.

use entity::{accounts, users};
use sea_orm::{EntityTrait, PaginatorTrait};

use crate::common::redis::RedisServer;
use crate::common::s3::S3Server;
use crate::common::{
    Backend, ServeProcess, TestDatabase, json, report, spawn_serve, start_server, wait_ready,
    with_details,
};

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

/// Sends `count` reports to `addr` from `senders` tasks; counts the 202s in `acked`.
async fn burst(
    client: reqwest::Client,
    addr: std::net::SocketAddr,
    key: String,
    count: usize,
    senders: usize,
    acked: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::Ordering;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..senders {
        let (client, key, acked) = (client.clone(), key.clone(), acked.clone());
        tasks.spawn(async move {
            let body = crate::common::report("1.0.0", "stable", "linux", "SIGSEGV");
            for _ in 0..count / senders {
                let sent = client
                    .post(format!("http://{addr}/reports/ingest"))
                    .bearer_auth(&key)
                    .json(&body)
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status() == 202 => {
                        acked.fetch_add(1, Ordering::SeqCst);
                    }
                    // A killed replica resets its connections: not acknowledged.
                    Ok(_) | Err(_) => {}
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_count_exactly_and_one_killed_mid_burst_loses_nothing_acknowledged() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create(Backend::Postgres, dir.path()).await;
    let (redis, s3) = (RedisServer::start(), S3Server::start().await);
    let mut vars = s3.env();
    vars.push(("REDIS_URL", redis.url()));
    // Three processes at the same moment on the empty database.
    let mut replicas: Vec<ServeProcess> =
        (0..3).map(|_| spawn_serve(&database.url, &vars)).collect();
    let client = reqwest::Client::new();
    for replica in &replicas {
        wait_ready(&client, replica.addr).await;
        let (_, ready) = json(
            client
                .get(format!("http://{}/readyz", replica.addr))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(ready["rate_limits"], "redis", "{ready}");
    }
    let db = rollwatch::db::connect(&database.url).await.unwrap();
    assert_eq!(users::Entity::find().count(&db).await.unwrap(), 1);
    let account = rollwatch::accounts::find_account(&db, None).await.unwrap();
    let operator = rollwatch::auth::Actor::Operator {
        account_id: account.id,
    };
    let (app, key) = rollwatch::apps::create(&db, &operator, "editor")
        .await
        .unwrap();
    let stored = || {
        let db = db.clone();
        async move {
            use sea_orm::{ConnectionTrait, Statement};
            let row = db
                .query_one_raw(Statement::from_string(
                    db.get_database_backend(),
                    format!(
                        "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) AS n FROM report_groups WHERE app_id = {}",
                        app.id
                    ),
                ))
                .await
                .unwrap()
                .unwrap();
            usize::try_from(row.try_get::<i64>("", "n").unwrap()).unwrap()
        }
    };

    // Details sent to each replica land in the one bucket.
    for (n, replica) in replicas.iter().enumerate() {
        let body = with_details(
            report("1.0.0", "stable", "linux", "with details"),
            format!("{{\"replica\": {n}}}").as_bytes(),
        );
        let (status, answer) = json(
            client
                .post(format!("http://{}/reports/ingest", replica.addr))
                .bearer_auth(&key.key)
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 202, "{answer}");
        assert_eq!(answer["details_stored"], true, "{answer}");
    }
    let objects = walk_files(&s3.object_path(""));
    assert_eq!(objects, 3, "one S3 object per report with details");
    assert_eq!(stored().await, 3);

    // 300 reports spread over the three: exactly 300 counted, each acknowledged once.
    let acked = Arc::new(AtomicUsize::new(0));
    let mut bursts = tokio::task::JoinSet::new();
    for replica in &replicas {
        let acked = acked.clone();
        bursts.spawn(burst(
            client.clone(),
            replica.addr,
            key.key.clone(),
            100,
            4,
            acked,
        ));
    }
    bursts.join_all().await;
    assert_eq!(acked.load(Ordering::SeqCst), 300);
    assert_eq!(stored().await, 303);

    // Another 900, and the third replica killed (SIGKILL) once it acknowledged 60 of its 300.
    let acked = Arc::new(AtomicUsize::new(0));
    let third_acked = Arc::new(AtomicUsize::new(0));
    let mut victim = replicas.pop().unwrap();
    let victim_addr = victim.addr;
    let killer = {
        let third_acked = third_acked.clone();
        tokio::spawn(async move {
            while third_acked.load(Ordering::SeqCst) < 60 {
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            victim.child.kill().unwrap();
            victim.child.wait().unwrap();
        })
    };
    let mut bursts = tokio::task::JoinSet::new();
    for replica in &replicas {
        let acked = acked.clone();
        bursts.spawn(burst(
            client.clone(),
            replica.addr,
            key.key.clone(),
            300,
            4,
            acked,
        ));
    }
    let doomed = third_acked.clone();
    bursts.spawn(burst(
        client.clone(),
        victim_addr,
        key.key.clone(),
        300,
        4,
        doomed,
    ));
    bursts.join_all().await;
    killer.await.unwrap();
    let acknowledged = acked.load(Ordering::SeqCst) + third_acked.load(Ordering::SeqCst);
    assert_eq!(
        acked.load(Ordering::SeqCst),
        600,
        "the survivors answered every report"
    );
    assert!(
        third_acked.load(Ordering::SeqCst) < 300,
        "the kill came mid-burst"
    );
    // Nothing acknowledged is lost; a report in flight at the kill may be counted unanswered,
    // none twice.
    let counted = stored().await - 303;
    assert!(
        (acknowledged..=900).contains(&counted),
        "{counted} counted, {acknowledged} acknowledged"
    );
    for mut replica in replicas {
        replica.child.kill().unwrap();
        replica.child.wait().unwrap();
    }
    db.close().await.unwrap();
}

/// Files under `dir`, at any depth.
fn walk_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| match entry.file_type() {
                    Ok(kind) if kind.is_dir() => walk_files(&entry.path()),
                    Ok(_) => 1,
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

on_both_databases!(a_replica_sees_a_switched_off_app_and_a_revoked_key_within_the_cache_ttl);

/// How long, at most, until `status` of a report sent to `addr` is `wanted`.
async fn seconds_until(
    app: &crate::common::TestApp,
    addr: std::net::SocketAddr,
    key: &str,
    wanted: u16,
) -> f64 {
    let started = std::time::Instant::now();
    let body = crate::common::report("1.0.0", "stable", "linux", "SIGSEGV");
    loop {
        let status = app
            .client
            .post(format!("http://{addr}/reports/ingest"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if status == wanted {
            return started.elapsed().as_secs_f64();
        }
        assert!(
            started.elapsed().as_secs() < 15,
            "still {status} after 15 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The change is made through the first server; the replica's key cache (5 s) must let it
/// through by itself, since nothing tells it.
async fn a_replica_sees_a_switched_off_app_and_a_revoked_key_within_the_cache_ttl(
    backend: Backend,
) {
    const CACHE_TTL_SECONDS: f64 = 5.0;
    let app = crate::common::TestApp::spawn(backend).await;
    let replica = app.replica(&[]).await;
    // The replica knows the key now: its cache holds it.
    seconds_until(&app, replica.addr, &app.key, 202).await;
    let operator = app.operator();
    rollwatch::apps::update(&app.db, &operator, app.app_id, None, Some(false))
        .await
        .unwrap();
    let switched_off = seconds_until(&app, replica.addr, &app.key, 403).await;
    assert!(switched_off <= CACHE_TTL_SECONDS + 1.0, "{switched_off} s");
    rollwatch::apps::update(&app.db, &operator, app.app_id, None, Some(true))
        .await
        .unwrap();
    seconds_until(&app, replica.addr, &app.key, 202).await;
    assert!(
        rollwatch::keys::revoke(&app.db, &operator, app.app_id)
            .await
            .unwrap()
    );
    let revoked = seconds_until(&app, replica.addr, &app.key, 401).await;
    assert!(revoked <= CACHE_TTL_SECONDS + 1.0, "{revoked} s");
    replica.stop().await;
    app.stop().await;
}
