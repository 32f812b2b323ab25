//! Hostile clients (issue 12): each attack runs against the real server while `/healthz` and
//! a normal report are timed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::{Backend, TestApp, error_code, json, report};
use serde_json::json;

/// What the issue asks of the server under attack.
const RESPONSIVE: Duration = Duration::from_millis(100);
/// Beyond this a probe is not slow but stuck.
const STUCK: Duration = Duration::from_secs(1);
const PROBE_ROUNDS: usize = 5;

/// Times `/healthz` and a normal report `PROBE_ROUNDS` times each, one after the other.
async fn probe(app: &TestApp, label: &str) -> (Vec<Duration>, Vec<Duration>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let (mut health, mut reports) = (Vec::new(), Vec::new());
    for round in 0..PROBE_ROUNDS {
        let started = Instant::now();
        let answer = client.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(answer.status(), 200);
        health.push(started.elapsed());
        let started = Instant::now();
        let answer = client
            .post(app.url("/reports/ingest"))
            .bearer_auth(&app.key)
            .json(&report(
                "1.0.0",
                "stable",
                "linux",
                &format!("{label}-{round}"),
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 202);
        reports.push(started.elapsed());
    }
    (health, reports)
}

/// The median probe within `RESPONSIVE` and none stuck: one slow fsync on a busy machine
/// does not fail the test, a server held up by the attack does.
fn assert_responsive(label: &str, (health, reports): (Vec<Duration>, Vec<Duration>)) {
    for (what, mut times) in [("/healthz", health), ("a report", reports)] {
        times.sort();
        let median = times[times.len() / 2];
        assert!(
            median <= RESPONSIVE && times.iter().all(|t| *t < STUCK),
            "{label}: {what} took {times:?}"
        );
    }
}

/// `levels` fragments, each spreading the next twice: 2^levels fields once expanded.
fn expanding_fragments(levels: usize) -> String {
    let mut doc = String::from("query { ...F0 }\n");
    for level in 0..levels {
        let next = level + 1;
        doc.push_str(&format!(
            "fragment F{level} on Query {{ ...F{next} ...F{next} }}\n"
        ));
    }
    doc.push_str(&format!("fragment F{levels} on Query {{ __typename }}\n"));
    doc
}

/// Posts `query` to `/graphql` without credentials, over and over, from `attackers` tasks,
/// until `stop` is set.
fn keep_posting(app: &TestApp, attackers: usize, query: &str, stop: &Arc<AtomicBool>) {
    for _ in 0..attackers {
        let (client, url, stop) = (app.client.clone(), app.url("/graphql"), stop.clone());
        let body = json!({ "query": query });
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let sent = client.post(&url).json(&body).send().await;
                if let Ok(answer) = sent {
                    let _ = answer.bytes().await;
                }
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expanding_fragments_are_refused_quickly_while_the_server_keeps_answering() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let bomb = expanding_fragments(24);
    assert!(bomb.len() < 2048, "a small document");

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let started = Instant::now();
    let answer = client
        .post(app.url("/graphql"))
        .json(&json!({ "query": bomb }))
        .send()
        .await
        .unwrap();
    let refused_in = started.elapsed();
    let (status, answer) = json(answer).await;
    assert_eq!(status, 200);
    assert_eq!(error_code(&answer), Some("BAD_USER_INPUT"), "{answer}");
    let message = answer["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("fragments"), "{message}");
    assert!(refused_in < STUCK, "refused after {refused_in:?}");

    let stop = Arc::new(AtomicBool::new(false));
    keep_posting(&app, 2, &bomb, &stop);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let probed = probe(&app, "fragments").await;
    stop.store(true, Ordering::SeqCst);
    assert_responsive("two clients posting expanding fragments", probed);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_is_for_signed_in_callers() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let query = "{ __schema { queryType { name } } }";
    for query in [query, r#"{ __type(name: "App") { name } }"#] {
        let anonymous = crate::common::graphql(&app, None, query, json!({})).await;
        assert_eq!(
            error_code(&anonymous),
            Some("UNAUTHENTICATED"),
            "{anonymous}"
        );
        assert!(anonymous["data"].is_null(), "{anonymous}");
    }
    // `__typename` is no introspection; the login mutation stays open.
    let typename = crate::common::graphql(&app, None, "{ __typename }", json!({})).await;
    assert_eq!(crate::common::data(&typename)["__typename"], "Query");
    let token = crate::common::login(
        &app,
        crate::common::ADMIN_EMAIL,
        crate::common::ADMIN_PASSWORD,
    )
    .await;
    let signed_in = crate::common::graphql(&app, Some(&token), query, json!({})).await;
    assert_eq!(
        crate::common::data(&signed_in)["__schema"]["queryType"]["name"],
        "Query"
    );
    app.stop().await;
}

/// Opens a connection and sends `head` one byte per `every`, then keeps silent; how long the
/// server kept the connection open.
async fn dripping_client(addr: std::net::SocketAddr, head: Vec<u8>, every: Duration) -> Duration {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let started = Instant::now();
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let closed = async move {
        let mut buf = [0u8; 256];
        while let Ok(n) = read.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    };
    let drip = async move {
        for byte in head {
            if write.write_all(&[byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(every).await;
        }
        std::future::pending::<()>().await;
    };
    tokio::select! {
        () = closed => {}
        () = drip => {}
        () = tokio::time::sleep(Duration::from_secs(30)) => panic!("never disconnected"),
    }
    started.elapsed()
}

fn slow_head(key: &str) -> Vec<u8> {
    format!(
        "POST /reports/ingest HTTP/1.1\r\nHost: rollwatch\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\n\r\n"
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_slow_clients_are_cut_off_at_the_header_timeout() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[("HTTP_HEADER_READ_TIMEOUT_SECONDS", "2")],
    )
    .await;
    let mut slow = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        slow.spawn(dripping_client(
            app.addr,
            slow_head(&app.key),
            Duration::from_secs(1),
        ));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let probed = probe(&app, "slow-headers").await;
    assert_eq!(slow.len(), 1000, "all slow clients still connected");
    while let Some(held) = slow.join_next().await {
        let held = held.unwrap();
        assert!(
            held >= Duration::from_millis(1500) && held < Duration::from_secs(10),
            "a slow client was held {held:?}"
        );
    }
    assert_responsive("a thousand clients sending headers a byte a second", probed);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_closed_when_idle() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[("HTTP_IDLE_TIMEOUT_SECONDS", "1")]).await;
    let silent = dripping_client(app.addr, Vec::new(), Duration::ZERO).await;
    assert!(silent < Duration::from_secs(8), "held {silent:?}");
    // A kept-alive connection whose answer has been sent is idle too.
    let head = b"GET /healthz HTTP/1.1\r\nHost: rollwatch\r\n\r\n".to_vec();
    let kept_alive = dripping_client(app.addr, head, Duration::ZERO).await;
    assert!(kept_alive < Duration::from_secs(8), "held {kept_alive:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_sent_too_slowly_is_answered_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[("HTTP_REQUEST_BODY_TIMEOUT_SECONDS", "1")],
    )
    .await;
    let stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let head = format!(
        "POST /reports/ingest HTTP/1.1\r\nHost: rollwatch\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{",
        app.key
    );
    write.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    // One byte every 300 ms: never idle for long, never done.
    let drip = async move {
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if write.write_all(b" ").await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    let answered = async move {
        let (mut answer, mut buf) = (Vec::new(), [0u8; 1024]);
        while let Ok(n) = read.read(&mut buf).await {
            answer.extend_from_slice(&buf[..n]);
            if n == 0 || String::from_utf8_lossy(&answer).contains("request_timeout") {
                break;
            }
        }
        String::from_utf8_lossy(&answer).into_owned()
    };
    let answer = tokio::select! {
        answer = answered => answer,
        () = drip => unreachable!(),
        () = tokio::time::sleep(Duration::from_secs(20)) => panic!("no answer"),
    };
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(15));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_for_a_free_one() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[("HTTP_MAX_CONNECTIONS", "2")]).await;
    let first = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let _second = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let client = reqwest::Client::new();
    let waiting = client
        .get(app.url("/healthz"))
        .timeout(Duration::from_millis(500))
        .send()
        .await;
    assert!(waiting.is_err(), "a third connection was served");
    drop(first);
    let served = client
        .get(app.url("/healthz"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_scheme_is_case_insensitive_everywhere() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for scheme in ["bearer", "BEARER", "bEaReR"] {
        let answer = app
            .client
            .post(app.url("/reports/ingest"))
            .header("Authorization", format!("{scheme} {}", app.key))
            .json(&report("1.0.0", "stable", "linux", scheme))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 202, "{scheme}");
    }
    let token = crate::common::login(
        &app,
        crate::common::ADMIN_EMAIL,
        crate::common::ADMIN_PASSWORD,
    )
    .await;
    let answer = app
        .client
        .post(app.url("/graphql"))
        .header("Authorization", format!("bearer {token}"))
        .json(&json!({ "query": "{ me { email } }" }))
        .send()
        .await
        .unwrap();
    let (_, answer) = json(answer).await;
    assert_eq!(
        crate::common::data(&answer)["me"]["email"],
        crate::common::ADMIN_EMAIL
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_may_report_from_any_origin() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for path in ["/reports/ingest", "/reports/ingest/batch", "/reports/usage"] {
        let preflight = app
            .client
            .request(reqwest::Method::OPTIONS, app.url(path))
            .header("Origin", "https://app.example")
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization, content-type, x-device-id, idempotency-key",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(preflight.status(), 204, "{path}");
        let headers = preflight.headers();
        assert_eq!(headers["access-control-allow-origin"], "*");
        assert!(headers.get("access-control-allow-credentials").is_none());
        assert!(
            headers["access-control-allow-methods"]
                .to_str()
                .unwrap()
                .contains("POST")
        );
        let allowed = headers["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .to_ascii_lowercase();
        for header in [
            "authorization",
            "content-type",
            "content-encoding",
            "x-device-id",
            "idempotency-key",
        ] {
            assert!(allowed.contains(header), "{path}: {allowed}");
        }
    }
    let accepted = app
        .client
        .post(app.url("/reports/ingest"))
        .header("Origin", "https://app.example")
        .bearer_auth(&app.key)
        .json(&report("1.0.0", "stable", "web", "CORS"))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 202);
    assert_eq!(accepted.headers()["access-control-allow-origin"], "*");
    // Refusals are readable by the page too, in the JSON envelope.
    let refused = app
        .client
        .post(app.url("/reports/ingest"))
        .header("Origin", "https://app.example")
        .header("Authorization", "Bearer rpk_nope")
        .json(&report("1.0.0", "stable", "web", "CORS"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.headers()["access-control-allow-origin"], "*");
    let (status, body) = json(refused).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_key"))
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_with_bad_bytes_are_refused_in_the_json_envelope() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let bad = reqwest::header::HeaderValue::from_bytes(b"dev\xff\xfeice").unwrap();
    let cases = [
        ("authorization", 401, "invalid_key"),
        ("x-device-id", 422, "invalid_field"),
        ("content-type", 415, "unsupported_media_type"),
    ];
    for (name, status, code) in cases {
        let mut request = app
            .client
            .post(app.url("/reports/ingest"))
            .body(report("1.0.0", "stable", "linux", "BYTES").to_string());
        if name != "content-type" {
            request = request.header("content-type", "application/json");
        }
        if name != "authorization" {
            request = request.bearer_auth(&app.key);
        }
        let answer = request.header(name, bad.clone()).send().await.unwrap();
        let (got, body) = json(answer).await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{name}: {body}"
        );
    }
    app.stop().await;
}

/// A folder with a built web app in it (an `index.html` is all the server looks for).
fn web_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("index.html"),
        "<!doctype html><title>Rollwatch</title>",
    )
    .unwrap();
    dir
}

async fn assert_json_404(app: &TestApp, method: reqwest::Method, path: &str) {
    let answer = app
        .client
        .request(method.clone(), app.url(path))
        .header("Accept", "text/html,application/xhtml+xml,*/*")
        .header("Content-Type", "application/json")
        .bearer_auth(&app.key)
        .body(report("1.0.0", "stable", "linux", "LOST").to_string())
        .send()
        .await
        .unwrap();
    let (status, body) = json(answer).await;
    assert_eq!(status, 404, "{method} {path}: {body}");
    assert_eq!(body["error"]["code"], "not_found", "{method} {path}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_answer_like_an_api_beside_the_web_app() {
    let web = web_dir();
    let web_path = web.path().display().to_string();
    let app =
        TestApp::spawn_with(Backend::Sqlite, &[("ROLLWATCH_WEB_DIR", web_path.as_str())]).await;
    for path in ["/nothing-here", "/apps/3", "/", "/reports/nothing"] {
        assert_json_404(&app, reqwest::Method::POST, path).await;
        assert_json_404(&app, reqwest::Method::PUT, path).await;
    }
    for path in [
        "/reports/nothing",
        "/api/3/nothing/",
        "/blobs/a/b",
        "/graphql/x",
    ] {
        assert_json_404(&app, reqwest::Method::GET, path).await;
    }
    // A page path still gets the web app, for GET and HEAD.
    for method in [reqwest::Method::GET, reqwest::Method::HEAD] {
        let page = app
            .client
            .request(method.clone(), app.url("/apps/3"))
            .header("Accept", "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200, "{method}");
        assert!(
            page.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_while_reports_are_disabled_is_a_json_404() {
    let web = web_dir();
    let web_path = web.path().display().to_string();
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            ("ROLLWATCH_WEB_DIR", web_path.as_str()),
            ("REPORTS_ENABLED", "false"),
        ],
    )
    .await;
    for path in ["/reports/ingest", "/reports/ingest/batch", "/reports/usage"] {
        assert_json_404(&app, reqwest::Method::POST, path).await;
    }
    app.stop().await;
}
