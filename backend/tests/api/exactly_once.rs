//! Exactly once (DESIGN §5, issue 12 item 2): a request repeated with its `Idempotency-Key`
//! gets the first answer and counts nothing, and a flush whose commit reply is lost on its
//! way back from PostgreSQL is answered 202, not 503, so the client does not send it again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::common::{Backend, TestApp, TestDatabase, expected_hash, json, report};

on_both_databases!(a_repeated_request_gets_the_first_answer_and_counts_nothing);

async fn post_with_key(app: &TestApp, path: &str, key: &str, body: &Value) -> (u16, Value, bool) {
    let response = app
        .client
        .post(app.url(path))
        .bearer_auth(&app.key)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let replayed = response.headers().contains_key("idempotency-replayed");
    let (status, answer) = json(response).await;
    (status, answer, replayed)
}

async fn sessions(app: &TestApp) -> i64 {
    app.scalar(&format!(
        "SELECT COALESCE(SUM(count), 0) FROM usage_counts WHERE app_id = {}",
        app.app_id
    ))
    .await
}

async fn a_repeated_request_gets_the_first_answer_and_counts_nothing(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[("REPORTS_RATE_LIMIT_PER_KEY_PER_MINUTE", "100000")],
    )
    .await;
    let body = report("3.0", "stable", "linux", "SIGBUS");
    let hash = expected_hash([
        "editor", "3.0", "stable", "linux", "x86_64", "crash", "SIGBUS",
    ]);

    let (status, first, replayed) = post_with_key(&app, "/reports/ingest", "single-1", &body).await;
    assert_eq!((status, replayed), (202, false), "{first}");
    let (status, again, replayed) = post_with_key(&app, "/reports/ingest", "single-1", &body).await;
    assert_eq!((status, replayed), (202, true));
    assert_eq!(again, first);
    assert_eq!(app.group_count(&hash).await, 1);

    // Ten copies at once: one is counted, every one is told the same.
    let mut copies = JoinSet::new();
    for _ in 0..10 {
        let (client, url, key, body) = (
            app.client.clone(),
            app.url("/reports/ingest"),
            app.key.clone(),
            body.clone(),
        );
        copies.spawn(async move {
            let response = client
                .post(url)
                .bearer_auth(key)
                .header("Idempotency-Key", "burst")
                .json(&body)
                .send()
                .await
                .unwrap();
            json(response).await
        });
    }
    let mut answers = Vec::new();
    while let Some(answer) = copies.join_next().await {
        let (status, answer) = answer.unwrap();
        assert_eq!(status, 202, "{answer}");
        answers.push(answer);
    }
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    assert_eq!(app.group_count(&hash).await, 2);

    // A batch and a usage count, each sent twice.
    let batch = json!({ "reports": [body.clone(), body.clone(), {"not": "a report"}] });
    let (status, first, _) = post_with_key(&app, "/reports/ingest/batch", "batch-1", &batch).await;
    assert_eq!(
        (status, first["accepted"].clone()),
        (202, json!(2)),
        "{first}"
    );
    let (_, again, replayed) =
        post_with_key(&app, "/reports/ingest/batch", "batch-1", &batch).await;
    assert!(replayed);
    assert_eq!(again, first);
    assert_eq!(app.group_count(&hash).await, 4);

    let usage = json!({
        "application": { "name": "editor", "version": "3.0", "channel": "stable" },
        "system": { "platform": "linux", "arch": "x86_64" },
        "kind": "session",
        "count": 40,
    });
    for _ in 0..3 {
        let (status, answer, _) = post_with_key(&app, "/reports/usage", "usage-1", &usage).await;
        assert_eq!((status, answer), (202, json!({ "counted": 40 })));
    }
    assert_eq!(sessions(&app).await, 40);

    // A new key counts again; a key that breaks the contract is refused.
    post_with_key(&app, "/reports/usage", "usage-2", &usage).await;
    assert_eq!(sessions(&app).await, 80);
    let (status, answer, _) = post_with_key(&app, "/reports/usage", &"k".repeat(129), &usage).await;
    assert_eq!(status, 422);
    assert_eq!(answer["error"]["field"], json!("Idempotency-Key"));
    app.stop().await;
}

/// A relay in front of PostgreSQL that, once armed, lets the first message carrying `marker`
/// through to the server and then drops the server's reply and the connection.
struct ReplyDropper {
    addr: std::net::SocketAddr,
    armed: Arc<AtomicBool>,
    dropped: Arc<AtomicUsize>,
}

impl ReplyDropper {
    async fn start(marker: &'static [u8]) -> ReplyDropper {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let armed = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicUsize::new(0));
        let (armed_flag, dropped_count) = (armed.clone(), dropped.clone());
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let (armed, dropped) = (armed_flag.clone(), dropped_count.clone());
                tokio::spawn(async move {
                    if let Ok(outbound) = TcpStream::connect("127.0.0.1:5432").await {
                        relay(inbound, outbound, marker, armed, dropped).await;
                    }
                });
            }
        });
        ReplyDropper {
            addr,
            armed,
            dropped,
        }
    }
}

async fn relay(
    inbound: TcpStream,
    outbound: TcpStream,
    marker: &'static [u8],
    armed: Arc<AtomicBool>,
    dropped: Arc<AtomicUsize>,
) {
    let (mut client_read, mut client_write) = inbound.into_split();
    let (mut server_read, mut server_write) = outbound.into_split();
    let doomed = Arc::new(AtomicBool::new(false));
    let doomed_up = doomed.clone();
    let upstream = tokio::spawn(async move {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let Ok(n) = client_read.read(&mut buffer).await else {
                return;
            };
            if n == 0 {
                return;
            }
            let chunk = &buffer[..n];
            if chunk.windows(marker.len()).any(|w| w == marker)
                && armed.swap(false, Ordering::SeqCst)
            {
                doomed_up.store(true, Ordering::SeqCst);
            }
            if server_write.write_all(chunk).await.is_err() {
                return;
            }
        }
    });
    let mut buffer = vec![0u8; 64 * 1024];
    while let Ok(n) = server_read.read(&mut buffer).await {
        if n == 0 {
            break;
        }
        if doomed.load(Ordering::SeqCst) {
            // The server has answered (its statement committed): the answer is lost.
            dropped.fetch_add(1, Ordering::SeqCst);
            break;
        }
        if client_write.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    upstream.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_commit_whose_reply_is_lost_is_answered_202_and_counted_once() {
    const LOST_REPLY_REASON: &str = "LOST-REPLY-MARKER";
    let dropper = ReplyDropper::start(LOST_REPLY_REASON.as_bytes()).await;
    let data_dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create(Backend::Postgres, data_dir.path()).await;
    let (_, name) = database.url.rsplit_once('/').unwrap();
    // Plain text, so the relay can see which message carries the marker.
    let through_relay = format!(
        "postgres://postgres@{}/{name}?sslmode=disable",
        dropper.addr
    );
    let app = TestApp::spawn_on(
        Backend::Postgres,
        data_dir,
        database,
        Some(through_relay),
        &[("REPORTS_RATE_LIMIT_PER_KEY_PER_MINUTE", "100000")],
    )
    .await;
    let body = report("4.0", "stable", "linux", LOST_REPLY_REASON);
    let hash = expected_hash([
        "editor",
        "4.0",
        "stable",
        "linux",
        "x86_64",
        "crash",
        LOST_REPLY_REASON,
    ]);
    let mut acknowledged = 0;
    for round in 0..5 {
        dropper.armed.store(true, Ordering::SeqCst);
        let response = app.report(&body).await;
        let status = response.status().as_u16();
        let (_, answer) = json(response).await;
        assert_eq!(status, 202, "round {round}: {answer}");
        acknowledged += 1;
        assert_eq!(dropper.dropped.load(Ordering::SeqCst), round + 1);
        // A report after the lost reply works on a new connection.
        assert_eq!(app.report(&body).await.status(), 202);
        acknowledged += 1;
    }
    // Read directly, not through the relay.
    assert_eq!(app.group_count(&hash).await, acknowledged);
    assert_eq!(app.hourly_total(&hash).await, acknowledged);
    app.stop().await;
}
