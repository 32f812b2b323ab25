//! The browser client (issue 13): the server hands out `/sdk/rollwatch.js` from any origin with
//! cache validation, and takes the script's `navigator.sendBeacon` requests, which carry the key,
//! Idempotency-Key and device id in the query and their JSON as `text/plain`.

use serde_json::{Value, json};

use crate::common::{Backend, TestApp, json, report, report_hash};

on_both_databases!(a_beacon_with_its_key_in_the_query_is_counted_once);

/// GET /sdk/rollwatch.js with one request header.
async fn get_script(app: &TestApp, name: &str, value: &str) -> reqwest::Response {
    app.client
        .get(app.url("/sdk/rollwatch.js"))
        .header(name, value)
        .send()
        .await
        .unwrap()
}

fn header_of(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn script_source() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../sdk/browser/rollwatch.js"
    ))
    .unwrap()
}

/// A usage count as the script sends it.
pub fn web_usage(count: u64) -> Value {
    json!({
        "application": { "name": "editor", "version": "2.0", "channel": "stable" },
        "system": { "platform": "web", "arch": "other" },
        "kind": "session",
        "count": count,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_script_is_served_cacheable_and_readable_from_any_origin() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let response = get_script(&app, "Origin", "http://shop.example").await;
    assert_eq!(response.status(), 200);
    let header = |name: &str| header_of(&response, name);
    assert_eq!(header("content-type"), "text/javascript; charset=utf-8");
    assert_eq!(header("access-control-allow-origin"), "*");
    assert_eq!(header("cache-control"), "public, max-age=3600");
    assert_eq!(header("x-content-type-options"), "nosniff");
    let etag = header("etag");
    assert!(etag.starts_with("W/\"") && etag.len() > 10, "{etag}");
    let body = response.text().await.unwrap();
    assert_eq!(body, script_source());

    let again = get_script(&app, "If-None-Match", &etag).await;
    assert_eq!(again.status(), 304);
    assert_eq!(header_of(&again, "etag"), etag);
    assert!(again.text().await.unwrap().is_empty());
    // A validator from an older script (or its strong form from a cache) is not this one.
    let changed = get_script(&app, "If-None-Match", "\"0123\", W/\"4567\"").await;
    assert_eq!(changed.status(), 200);
    assert_eq!(changed.text().await.unwrap(), script_source());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_script_travels_gzipped_and_other_sdk_paths_are_json_404s() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let response = get_script(&app, "Accept-Encoding", "gzip").await;
    assert_eq!(response.status(), 200);
    assert_eq!(header_of(&response, "content-encoding"), "gzip");
    let gzipped = response.bytes().await.unwrap();
    let mut script = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gzipped[..]), &mut script)
        .unwrap();
    assert_eq!(script, script_source());
    assert!(
        gzipped.len() * 2 < script.len(),
        "{} bytes gzipped",
        gzipped.len()
    );

    let (status, body) = json(
        app.client
            .get(app.url("/sdk/rollwatch.min.js"))
            .header("Accept", "text/html")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, &body["error"]["code"]), (404, &json!("not_found")));
}

/// A POST as `navigator.sendBeacon` sends it: no header but the `text/plain` content type.
fn beacon_request(app: &TestApp, path: &str, query: &str, body: &Value) -> reqwest::RequestBuilder {
    app.client
        .post(app.url(&format!("{path}?{query}")))
        .header("Content-Type", "text/plain;charset=UTF-8")
        .body(body.to_string())
}

async fn beacon(app: &TestApp, path: &str, query: &str, body: &Value) -> (u16, Value) {
    json(beacon_request(app, path, query, body).send().await.unwrap()).await
}

async fn a_beacon_with_its_key_in_the_query_is_counted_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let batch = json!({ "reports": [report("2.0", "stable", "web", "TypeError")] });
    let hash = report_hash("2.0", "stable", "web", "TypeError");
    let query = format!(
        "key={}&idempotency_key=beacon-1&device_id=0123abcd",
        app.key
    );

    let (status, first) = beacon(&app, "/reports/ingest/batch", &query, &batch).await;
    assert_eq!(status, 202, "{first}");
    assert_eq!(first["accepted"], 1, "{first}");
    // The page loaded again and resent its queue under the same key: not counted twice.
    let (status, again) = beacon(&app, "/reports/ingest/batch", &query, &batch).await;
    assert_eq!((status, &again), (202, &first));
    assert_eq!(app.group_count(&hash).await, 1);

    let usage = web_usage(3);
    let (status, answer) =
        beacon(&app, "/reports/usage", &format!("key={}", app.key), &usage).await;
    assert_eq!((status, answer), (202, json!({ "counted": 3 })));

    // The query key is checked like the header key.
    let (status, refused) = beacon(&app, "/reports/ingest/batch", "key=rpk_wrong", &batch).await;
    assert_eq!(
        (status, refused["error"]["code"].clone()),
        (401, json!("invalid_key"))
    );
    // The beacon's answer, like every ingestion answer, is readable from any origin.
    let response = beacon_request(&app, "/reports/usage", &format!("key={}", app.key), &usage)
        .header("Origin", "http://shop.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(header_of(&response, "access-control-allow-origin"), "*");
    // A device id that is no header value is refused as a field, not taken for no device.
    let (status, refused) = beacon(
        &app,
        "/reports/usage",
        &format!("key={}&device_id=%0A", app.key),
        &usage,
    )
    .await;
    assert_eq!(
        (status, refused["error"]["field"].clone()),
        (422, json!("device_id"))
    );

    // A JSON request must bring its key in Authorization: the query is for beacons only.
    let (status, refused) = json(
        app.client
            .post(app.url(&format!("/reports/ingest/batch?key={}", app.key)))
            .json(&batch)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, refused["error"]["code"].clone()),
        (401, json!("missing_key"))
    );
    // Without the query key, text/plain is still not JSON.
    let response = app
        .client
        .post(app.url("/reports/ingest/batch"))
        .bearer_auth(&app.key)
        .header("Content-Type", "text/plain")
        .body(batch.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    assert_eq!(app.group_count(&hash).await, 1);
    assert_eq!(
        app.scalar(&format!(
            "SELECT COALESCE(SUM(count), 0) FROM usage_counts WHERE app_id = {} AND kind = 'session'",
            app.app_id
        ))
        .await,
        6
    );
}
