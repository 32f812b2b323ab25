//! PostgreSQL becomes unreachable under load: ingestion answers 503, and once the database is
//! back the counts equal exactly the reports that were acknowledged.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common;
use crate::common::{Backend, TestApp, TestDatabase, expected_hash, report};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

/// A TCP relay in front of PostgreSQL that can cut every connection and refuse new ones.
struct Relay {
    addr: std::net::SocketAddr,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Relay {
    async fn start(target: &'static str) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let (up_flag, open) = (up.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up_flag.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is closed at once
                }
                open.lock().await.push(tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                }));
            }
        });
        Relay {
            addr,
            up,
            connections,
        }
    }

    async fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for connection in self.connections.lock().await.drain(..) {
            connection.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ingestion_answers_503_while_postgres_is_down_and_loses_nothing() {
    let relay = Relay::start("127.0.0.1:5432").await;
    let data_dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create(Backend::Postgres, data_dir.path()).await;
    let (_, name) = database.url.rsplit_once('/').unwrap();
    let through_relay = format!("postgres://postgres@{}/{name}", relay.addr);
    let app = TestApp::spawn_on(
        Backend::Postgres,
        data_dir,
        database,
        Some(through_relay),
        &[],
    )
    .await;
    let body = report("7.0", "stable", "windows", "STATUS_STACK_OVERFLOW");
    let hash = expected_hash([
        "editor",
        "7.0",
        "stable",
        "windows",
        "x86_64",
        "crash",
        "STATUS_STACK_OVERFLOW",
    ]);

    let mut acknowledged = 0;
    for _ in 0..20 {
        assert_eq!(app.report(&body).await.status(), 202);
        acknowledged += 1;
    }

    relay.cut().await;
    let mut unavailable = 0;
    for _ in 0..10 {
        let response = app.report(&body).await;
        match response.status().as_u16() {
            202 => acknowledged += 1,
            503 => {
                assert!(response.headers().contains_key("retry-after"));
                let (_, answer) = common::json(response).await;
                assert_eq!(
                    answer["error"]["code"],
                    serde_json::json!("store_unavailable")
                );
                unavailable += 1;
            }
            other => panic!("unexpected status {other} while the database is down"),
        }
    }
    assert!(
        unavailable >= 9,
        "only {unavailable} of 10 reports got 503 while down"
    );
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);

    relay.restore();
    let back = Instant::now();
    loop {
        match app.report(&body).await.status().as_u16() {
            202 => {
                acknowledged += 1;
                break;
            }
            503 => assert!(
                back.elapsed() < Duration::from_secs(30),
                "the database never came back"
            ),
            other => panic!("unexpected status {other} after the database came back"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for _ in 0..5 {
        assert_eq!(app.report(&body).await.status(), 202);
        acknowledged += 1;
    }
    // Read directly, not through the relay.
    assert_eq!(app.group_count(&hash).await, acknowledged);
    assert_eq!(app.hourly_total(&hash).await, acknowledged);
    app.stop().await;
}
