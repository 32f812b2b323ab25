//! Sentry ingestion (issue 14) fed hand-made envelopes, only for what no stock SDK sends:
//! broken framing, a gzip bomb, item types the server drops, keys that must not work, more
//! sessions than an envelope may hold, and identity in every field Rollwatch must never keep.
//! What the real SDKs send is tested with the SDKs themselves (sentry_sdk.rs, the Python
//! unittest run by xtask, and e2e/tests/sentry-*.spec.ts).

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::common::{ADMIN_EMAIL, ADMIN_PASSWORD, Backend, TestApp, data, graphql, login};

/// The bytes of an envelope: its header line, then each item's header and payload. Each item
/// header gets the payload's true `length` unless it already has one.
fn envelope(header: &Value, items: &[(Value, Vec<u8>)]) -> Vec<u8> {
    let mut out = serde_json::to_vec(header).unwrap();
    out.push(b'\n');
    for (item_header, payload) in items {
        let mut item_header = item_header.clone();
        if item_header.get("length").is_none() {
            item_header["length"] = json!(payload.len());
        }
        out.extend(serde_json::to_vec(&item_header).unwrap());
        out.push(b'\n');
        out.extend(payload);
        out.push(b'\n');
    }
    out
}

fn event_item(event: &Value) -> (Value, Vec<u8>) {
    (
        json!({ "type": "event" }),
        serde_json::to_vec(event).unwrap(),
    )
}

fn session_item(sid: usize) -> (Value, Vec<u8>) {
    let session = json!({
        "sid": format!("{sid:032x}"), "init": true, "status": "exited", "errors": 0,
        "started": "2026-01-01T00:00:00Z", "timestamp": "2026-01-01T00:00:01Z",
        "attrs": { "release": "editor@1.4.2", "environment": "beta" },
    });
    (
        json!({ "type": "session" }),
        serde_json::to_vec(&session).unwrap(),
    )
}

/// A new event id, as an SDK makes one per event.
fn event_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("{:032x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// An unhandled exception as the `sentry` crate sends it: Linux on x86_64, a new event id.
fn crash_event(reason: &str) -> Value {
    json!({
        "event_id": event_id(),
        "level": "fatal",
        "platform": "native",
        "release": "editor@1.4.2",
        "environment": "beta",
        "exception": { "values": [{
            "type": reason, "value": "it broke",
            "mechanism": { "type": "panic", "handled": false },
        }] },
        "contexts": {
            "os": { "type": "os", "name": "Linux" },
            "device": { "type": "device", "arch": "x86_64" },
        },
        "sdk": { "name": "sentry.rust", "version": "0.49.5" },
    })
}

fn auth_header(key: &str) -> String {
    format!("Sentry sentry_key={key}, sentry_version=7, sentry_client=sentry.rust/0.49.5")
}

/// POSTs `body` to `/api/{app_id}/envelope/` with the key in `X-Sentry-Auth`.
async fn post_envelope(app: &TestApp, app_id: i64, key: &str, body: Vec<u8>) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/{app_id}/envelope/")))
        .header("X-Sentry-Auth", auth_header(key))
        .header("Content-Type", "application/x-sentry-envelope")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn crashes(app: &TestApp) -> i64 {
    app.scalar(&format!(
        "SELECT COALESCE(SUM(count), 0) FROM report_groups WHERE app_id = {}",
        app.app_id
    ))
    .await
}

async fn sessions(app: &TestApp) -> i64 {
    app.scalar(&format!(
        "SELECT COALESCE(SUM(count), 0) FROM usage_counts WHERE app_id = {} AND kind = 'session'",
        app.app_id
    ))
    .await
}

/// The status and the JSON body (`Null` when it is not JSON).
async fn answer(response: reqwest::Response) -> (u16, Value) {
    crate::common::json(response).await
}

async fn framing_that_lies_is_refused_and_counts_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let event = serde_json::to_vec(&crash_event("SIGSEGV")).unwrap();

    let mut not_json_header = b"{\"event_id\": \"abc\"\n".to_vec();
    not_json_header.extend(envelope(&json!({}), &[event_item(&crash_event("SIGSEGV"))]));
    let mut header_is_a_list = b"[1, 2]\n".to_vec();
    header_is_a_list.extend(b"{\"type\":\"event\"}\n{}\n");
    let length_too_long = envelope(
        &json!({}),
        &[(
            json!({ "type": "event", "length": event.len() + 500 }),
            event.clone(),
        )],
    );
    let length_too_short = envelope(
        &json!({}),
        &[(json!({ "type": "event", "length": 10 }), event.clone())],
    );
    let item_header_not_json = b"{}\n{\"type\": event}\n{}\n".to_vec();
    for (what, body) in [
        ("an envelope header that is not JSON", not_json_header),
        ("an envelope header that is not an object", header_is_a_list),
        ("a length past the end", length_too_long),
        ("a length that cuts the payload", length_too_short),
        ("an item header that is not JSON", item_header_not_json),
    ] {
        let (status, body) = answer(post_envelope(&app, app.app_id, &app.key, body).await).await;
        assert_eq!(status, 400, "{what}: {body}");
        assert!(
            body["error"]["code"].is_string(),
            "{what}: a JSON error, {body}"
        );
    }
    assert_eq!(
        crashes(&app).await,
        0,
        "nothing of a refused envelope is counted"
    );
    app.stop().await;
}

async fn a_gzip_bomb_is_refused_not_inflated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // A valid envelope head, then 64 MiB of spaces: about 64 KiB of gzip, inside the body cap,
    // far past any decompressed cap.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(b"{}\n{\"type\":\"event\"}\n").unwrap();
    let chunk = vec![b' '; 1 << 20];
    for _ in 0..64 {
        encoder.write_all(&chunk).unwrap();
    }
    let bomb = encoder.finish().unwrap();
    assert!(
        bomb.len() < 262_144,
        "the bomb fits the body cap: {}",
        bomb.len()
    );

    let started = Instant::now();
    let response = app
        .client
        .post(app.url(&format!("/api/{}/envelope/", app.app_id)))
        .header("X-Sentry-Auth", auth_header(&app.key))
        .header("Content-Encoding", "gzip")
        .body(bomb)
        .send()
        .await
        .unwrap();
    let (status, body) = answer(response).await;
    assert_eq!(status, 413, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refused while streaming, not after inflating: {:?}",
        started.elapsed()
    );

    // The same route still takes a gzip envelope of normal size.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(&envelope(
            &json!({}),
            &[event_item(&crash_event("SIGSEGV"))],
        ))
        .unwrap();
    let response = app
        .client
        .post(app.url(&format!("/api/{}/envelope/", app.app_id)))
        .header("X-Sentry-Auth", auth_header(&app.key))
        .header("Content-Encoding", "gzip")
        .body(encoder.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(crashes(&app).await, 1);
    app.stop().await;
}

async fn item_types_rollwatch_does_not_use_are_accepted_and_dropped(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let items = vec![
        (
            json!({ "type": "transaction" }),
            b"{\"type\":\"transaction\",\"spans\":[]}".to_vec(),
        ),
        (
            json!({ "type": "attachment", "filename": "log.txt" }),
            b"raw bytes\n\0\x01".to_vec(),
        ),
        (
            json!({ "type": "client_report" }),
            b"{\"discarded_events\":[]}".to_vec(),
        ),
        (
            json!({ "type": "replay_recording" }),
            vec![0xff, 0xfe, 0x00],
        ),
        (
            json!({ "type": "check_in" }),
            b"{\"status\":\"ok\"}".to_vec(),
        ),
        (json!({ "type": "log" }), b"{\"items\":[]}".to_vec()),
        (json!({ "type": "profile" }), b"{}".to_vec()),
        (
            json!({ "type": "a_type_sentry_adds_next_year" }),
            b"{}".to_vec(),
        ),
        session_item(1),
    ];
    let (status, body) =
        answer(post_envelope(&app, app.app_id, &app.key, envelope(&json!({}), &items)).await).await;
    assert_eq!(
        status, 200,
        "accepted, so the SDK does not retry it: {body}"
    );
    assert_eq!(crashes(&app).await, 0, "no item of these is a report");
    assert_eq!(
        sessions(&app).await,
        1,
        "the session beside them still counts"
    );
    app.stop().await;
}

async fn keys_that_are_not_this_apps_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (other, other_key) = rollwatch::apps::create(&app.db, &app.operator(), "other")
        .await
        .unwrap();
    // Disabled before its key is ever used, so no cache holds it enabled.
    app.db
        .execute_unprepared(&format!(
            "UPDATE apps SET reports_enabled = false WHERE id = {}",
            other.id
        ))
        .await
        .unwrap();
    let body = || envelope(&json!({}), &[event_item(&crash_event("SIGSEGV"))]);
    let unknown = format!("rpk_{}", "0".repeat(64));

    for (what, path_app, key) in [
        ("an unknown key", app.app_id, unknown.as_str()),
        ("not a key at all", app.app_id, "0123456789abcdef"),
        ("the key of another app", app.app_id, other_key.key.as_str()),
        ("another app's id in the path", other.id, app.key.as_str()),
    ] {
        let (status, body) = answer(post_envelope(&app, path_app, key, body()).await).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert!(body["error"]["code"].is_string(), "{what}: {body}");
    }
    // No key anywhere.
    let response = app
        .client
        .post(app.url(&format!("/api/{}/envelope/", app.app_id)))
        .body(body())
        .send()
        .await
        .unwrap();
    assert!(matches!(response.status().as_u16(), 401 | 403));
    assert_eq!(crashes(&app).await, 0);

    // Each place Sentry's own ingestion takes the key from works.
    let by_query = app
        .client
        .post(app.url(&format!(
            "/api/{}/envelope/?sentry_version=7&sentry_key={}",
            app.app_id, app.key
        )))
        .body(body())
        .send()
        .await
        .unwrap();
    assert_eq!(by_query.status(), 200, "sentry_key in the query");
    let dsn = format!("http://{}@{}/{}", app.key, app.addr, app.app_id);
    let by_dsn = app
        .client
        .post(app.url(&format!("/api/{}/envelope/", app.app_id)))
        .body(envelope(
            &json!({ "dsn": dsn }),
            &[event_item(&crash_event("SIGSEGV"))],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(by_dsn.status(), 200, "dsn in the envelope header");
    let stored_event = crash_event("SIGSEGV");
    let store = app
        .client
        .post(app.url(&format!("/api/{}/store/", app.app_id)))
        .header("X-Sentry-Auth", auth_header(&app.key))
        .header("Content-Type", "application/json")
        .json(&stored_event)
        .send()
        .await
        .unwrap();
    let (status, answered) = answer(store).await;
    assert_eq!(status, 200, "the legacy store endpoint: {answered}");
    assert_eq!(answered["id"], stored_event["event_id"], "{answered}");
    assert_eq!(crashes(&app).await, 3);

    // Reports disabled for the app: 403, as for /reports/ingest.
    let (status, answered) =
        answer(post_envelope(&app, other.id, &other_key.key, body()).await).await;
    assert_eq!(status, 403, "{answered}");
    assert_eq!(crashes(&app).await, 3);
    app.stop().await;
}

async fn more_sessions_than_an_envelope_may_hold_are_refused_whole(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let hundred: Vec<_> = (0..100).map(session_item).collect();
    let (status, body) =
        answer(post_envelope(&app, app.app_id, &app.key, envelope(&json!({}), &hundred)).await)
            .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(sessions(&app).await, 100);

    let hundred_and_one: Vec<_> = (100..201).map(session_item).collect();
    let (status, body) = answer(
        post_envelope(
            &app,
            app.app_id,
            &app.key,
            envelope(&json!({}), &hundred_and_one),
        )
        .await,
    )
    .await;
    assert!(
        matches!(status, 400 | 413),
        "Sentry's limit is 100 sessions per envelope: {status} {body}"
    );
    assert_eq!(sessions(&app).await, 100, "none of the 101 is counted");
    app.stop().await;
}

async fn the_rate_limit_names_its_categories_for_sentry_sdks(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("REPORTS_RATE_LIMIT_PER_KEY_PER_MINUTE", "2")]).await;
    let mut last = None;
    for _ in 0..3 {
        last = Some(
            post_envelope(
                &app,
                app.app_id,
                &app.key,
                envelope(&json!({}), &[event_item(&crash_event("SIGSEGV"))]),
            )
            .await,
        );
    }
    let limited = last.unwrap();
    assert_eq!(limited.status(), 429);
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let limits = limited.headers()["x-sentry-rate-limits"].to_str().unwrap();
    let (seconds, rest) = limits.split_once(':').unwrap();
    assert!(seconds.parse::<u64>().unwrap() >= 1, "{limits}");
    let categories = rest.split(':').next().unwrap();
    assert!(
        categories.split(';').any(|c| c == "error")
            && categories.split(';').any(|c| c == "session"),
        "the SDK must stop both events and sessions: {limits}"
    );
    assert_eq!(crashes(&app).await, 2);
    app.stop().await;
}

const EMAIL: &str = "jane.doe@example.org";
const IPV4: &str = "203.0.113.77";
const IPV6: &str = "2001:db8:4006:812::200e";
const COOKIE: &str = "sid-cookie-7c1e9a";
const BEARER: &str = "bearer-secret-5d2f10";
const QUERY: &str = "query-secret-88a1c3";
const USER_ID: &str = "user-id-4471";
const USERNAME: &str = "jdoe-handle";
const DEVICE: &str = "device-id-b0b0b0";

/// Every file under the data dir, gzip files inflated, as bytes (SQLite keeps its database
/// and WAL there; the local blob store its objects).
fn data_dir_contents(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let bytes = if path.extension().is_some_and(|e| e == "gz") {
            let mut inflated = Vec::new();
            flate2::read::GzDecoder::new(bytes.as_slice())
                .read_to_end(&mut inflated)
                .unwrap();
            inflated
        } else {
            bytes
        };
        out.push((path.display().to_string(), bytes));
    }
    out
}

/// Every row of every table, as text, on PostgreSQL (whose files are not in the data dir).
async fn postgres_rows(app: &TestApp) -> String {
    let backend = app.db.get_database_backend();
    let tables = app
        .db
        .query_all_raw(sea_orm::Statement::from_string(
            backend,
            "SELECT table_name::text AS t FROM information_schema.tables WHERE table_schema = 'public'",
        ))
        .await
        .unwrap();
    let mut text = String::new();
    for table in tables {
        let name: String = table.try_get("", "t").unwrap();
        let rows = app
            .db
            .query_all_raw(sea_orm::Statement::from_string(
                backend,
                format!("SELECT CAST(r AS TEXT) AS v FROM \"{name}\" r"),
            ))
            .await
            .unwrap();
        for row in rows {
            text.push_str(&row.try_get::<String>("", "v").unwrap());
            text.push('\n');
        }
    }
    text
}

async fn identity_is_never_stored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let event = json!({
        "event_id": "fedcba9876543210fedcba9876543210",
        "level": "error",
        "platform": "python",
        "release": "editor@1.4.2+linux.x86_64",
        "environment": "beta",
        "server_name": "host-of-jane",
        "message": { "formatted": format!("marker-kept-text: sync failed for {EMAIL} at {IPV4}") },
        "exception": { "values": [{
            "type": "PermissionError",
            "value": format!("cannot write for {EMAIL} from {IPV6}"),
            "mechanism": { "type": "excepthook", "handled": false },
        }] },
        "user": {
            "id": USER_ID, "email": EMAIL, "ip_address": IPV4, "username": USERNAME,
            "geo": { "city": "Springfield" },
        },
        "request": {
            "url": format!("https://app.example.org/sync?token={QUERY}"),
            "method": "POST",
            "query_string": format!("token={QUERY}"),
            "cookies": format!("session={COOKIE}"),
            "headers": {
                "Authorization": format!("Bearer {BEARER}"),
                "Cookie": format!("session={COOKIE}"),
                "X-Forwarded-For": IPV4,
                "Accept": "application/json",
            },
            "env": { "REMOTE_ADDR": IPV4 },
            "data": { "email": EMAIL },
        },
        "breadcrumbs": { "values": [
            { "message": format!("signed in as {EMAIL}"), "category": "auth" },
            { "message": format!("GET https://{IPV4}/api?token={QUERY}"), "category": "http",
              "data": { "url": format!("https://{IPV4}/api?token={QUERY}") } },
        ] },
        "contexts": { "device": { "arch": "x86_64" } },
        "tags": { "user.email": EMAIL },
        "extra": { "sys.argv": ["app", "--user", EMAIL] },
    });
    let session = json!({
        "sid": "aaaabbbbccccddddeeeeffff00001111", "did": DEVICE, "init": true, "status": "exited",
        "started": "2026-01-01T00:00:00Z", "errors": 0,
        "attrs": { "release": "editor@1.4.2+linux.x86_64", "environment": "beta",
                   "ip_address": IPV4, "user_agent": format!("Editor/1.4.2 ({EMAIL})") },
    });
    let body = envelope(
        &json!({ "event_id": "fedcba9876543210fedcba9876543210", "sent_at": "2026-01-01T00:00:02Z",
                 "trace": { "user_id": USER_ID, "public_key": app.key } }),
        &[
            event_item(&event),
            (
                json!({ "type": "session" }),
                serde_json::to_vec(&session).unwrap(),
            ),
        ],
    );
    let (status, answer_body) = answer(post_envelope(&app, app.app_id, &app.key, body).await).await;
    assert_eq!(status, 200, "{answer_body}");
    assert_eq!(crashes(&app).await, 1, "the crash is counted");
    assert_eq!(sessions(&app).await, 1, "the session is counted");

    let blobs: Vec<_> = data_dir_contents(app.data_dir.path())
        .into_iter()
        .filter(|(path, _)| path.ends_with(".gz"))
        .collect();
    assert_eq!(blobs.len(), 1, "the details were kept: {blobs:?}");
    let details = String::from_utf8_lossy(&blobs[0].1);
    assert!(details.contains("marker-kept-text"), "{details}");
    assert!(details.contains("PermissionError"), "{details}");

    let mut stored = data_dir_contents(app.data_dir.path());
    if backend == Backend::Postgres {
        stored.push((
            "postgres".to_owned(),
            postgres_rows(&app).await.into_bytes(),
        ));
    }
    for needle in [
        EMAIL,
        IPV4,
        IPV6,
        COOKIE,
        BEARER,
        QUERY,
        USER_ID,
        USERNAME,
        DEVICE,
        "Springfield",
    ] {
        for (path, bytes) in &stored {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle:?} is stored in {path}"
            );
        }
    }
    app.stop().await;
}

/// An SDK resends an envelope whose answer it lost under the same event id: it counts once,
/// and the resend gets the first answer.
async fn a_resent_envelope_counts_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let event = crash_event("SIGABRT");
    let header = json!({ "event_id": event["event_id"] });
    let body = envelope(&header, &[event_item(&event), session_item(7)]);
    let first = post_envelope(&app, app.app_id, &app.key, body.clone()).await;
    let (status, first_answer) = answer(first).await;
    assert_eq!(status, 200, "{first_answer}");
    let again = post_envelope(&app, app.app_id, &app.key, body).await;
    let (status, again_answer) = answer(again).await;
    assert_eq!(status, 200, "{again_answer}");
    assert_eq!(again_answer, first_answer);
    assert_eq!(crashes(&app).await, 1, "the crash is counted once");
    assert_eq!(sessions(&app).await, 1, "the session is counted once");
    app.stop().await;
}

/// A crash that says Linux/x86_64 beside a session that says nothing (no build metadata): the
/// whole release's rate is shown and judged, its platform × arch cells show counts only, and
/// the gate will not judge the release on Linux alone.
async fn rates_are_only_shown_where_crashes_and_sessions_were_sliced_alike(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = envelope(
        &json!({}),
        &[
            event_item(&crash_event("SIGSEGV")),
            session_item(1),
            session_item(2),
        ],
    );
    let (status, answered) = answer(post_envelope(&app, app.app_id, &app.key, body).await).await;
    assert_eq!(status, 200, "{answered}");
    let admin = login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let health = |group_by: &'static str| {
        let query = format!(
            "query($a: ID!) {{ rolloutHealth(appId: $a, groupBy: [{group_by}]) {{
                platform arch crashes sessions slicedAlike crashRate }} }}"
        );
        let (app, admin) = (&app, &admin);
        async move {
            let answer = graphql(
                app,
                Some(admin),
                &query,
                json!({ "a": app.app_id.to_string() }),
            )
            .await;
            data(&answer)["rolloutHealth"].clone()
        }
    };
    assert_eq!(
        health("VERSION, CHANNEL").await,
        json!([{ "platform": null, "arch": null, "crashes": 1, "sessions": 2,
                 "slicedAlike": true, "crashRate": 0.5 }])
    );
    assert_eq!(
        health("VERSION, CHANNEL, PLATFORM, ARCH").await,
        json!([
            { "platform": "linux", "arch": "x86_64", "crashes": 1, "sessions": 0,
              "slicedAlike": false, "crashRate": null },
            { "platform": "unknown", "arch": "unknown", "crashes": 0, "sessions": 2,
              "slicedAlike": false, "crashRate": null },
        ])
    );
    let gate = |platform: &'static str| {
        let query = format!(
            "query($a: ID!) {{ releaseGate(appId: $a, version: \"1.4.2\", channel: \"beta\"{platform}) {{
                verdict reasons }} }}"
        );
        let (app, admin) = (&app, &admin);
        async move {
            let answer = graphql(
                app,
                Some(admin),
                &query,
                json!({ "a": app.app_id.to_string() }),
            )
            .await;
            data(&answer)["releaseGate"].clone()
        }
    };
    let on_linux = gate(", platform: \"linux\"").await;
    assert_eq!(on_linux["verdict"], "INSUFFICIENT_DATA", "{on_linux}");
    assert!(
        on_linux["reasons"][0]
            .as_str()
            .is_some_and(|r| r.contains("platform or architecture")),
        "{on_linux}"
    );
    let whole = gate("").await;
    assert!(
        !whole["reasons"]
            .to_string()
            .contains("do not say their platform"),
        "{whole}"
    );
    app.stop().await;
}

on_both_databases!(
    rates_are_only_shown_where_crashes_and_sessions_were_sliced_alike,
    a_resent_envelope_counts_once,
    framing_that_lies_is_refused_and_counts_nothing,
    a_gzip_bomb_is_refused_not_inflated,
    item_types_rollwatch_does_not_use_are_accepted_and_dropped,
    keys_that_are_not_this_apps_are_refused,
    more_sessions_than_an_envelope_may_hold_are_refused_whole,
    the_rate_limit_names_its_categories_for_sentry_sdks,
    identity_is_never_stored,
);
