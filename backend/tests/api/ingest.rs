//! REST ingestion against the real server, on SQLite and PostgreSQL (DESIGN §5).

use std::time::{Duration, Instant};

use crate::common::{Backend, TestApp, expected_hash, gzip_base64, json, report};
use serde_json::json;

on_both_databases!(
    a_report_is_grouped_by_the_documented_hash,
    every_bad_input_gets_its_status_and_code,
    a_revoked_key_stops_working_within_seconds,
    reports_disabled_for_the_app_answer_403,
    the_101st_report_in_a_minute_is_rate_limited,
    concurrent_reports_to_one_group_are_all_counted,
    a_batch_judges_each_report_alone,
    usage_counts_are_summed_per_release_and_hour,
);

async fn a_report_is_grouped_by_the_documented_hash(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut body = report("1.4.2", "stable", " Windows ", "EXCEPTION_ACCESS_VIOLATION");
    body["system"]["arch"] = json!("X86_64");
    body["application"]["channel"] = json!(" stable ");
    let (status, answer) = json(app.report(&body).await).await;
    assert_eq!(status, 202, "{answer}");

    let hash = expected_hash([
        "editor",
        "1.4.2",
        "stable",
        "windows",
        "x86_64",
        "crash",
        "EXCEPTION_ACCESS_VIOLATION",
    ]);
    assert_eq!(answer["group"], json!(hash));
    assert_eq!(answer["details_stored"], json!(false));

    // The same report again, from another device with another OS version: same group.
    body["system"]["os_version"] = json!("11.0");
    let again = app
        .client
        .post(app.url("/reports/ingest"))
        .bearer_auth(&app.key)
        .header("X-Device-ID", "device-42")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(json(again).await.1["group"], json!(hash));
    assert_eq!(app.group_count(&hash).await, 2);
    assert_eq!(app.hourly_total(&hash).await, 2);
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM report_groups WHERE group_hash = '{hash}' AND platform = 'windows' AND arch = 'x86_64' AND channel = 'stable'"
        ))
        .await,
        1
    );
    app.stop().await;
}

async fn every_bad_input_gets_its_status_and_code(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[
            ("REPORTS_MAX_BODY_BYTES", "65536"),
            ("REPORTS_MAX_DETAILS_COMPRESSED_BYTES", "16384"),
            ("REPORTS_MAX_DETAILS_DECOMPRESSED_BYTES", "65536"),
            ("REPORTS_RATE_LIMIT_PER_KEY_PER_MINUTE", "1000"),
        ],
    )
    .await;
    let valid = report("1.0.0", "stable", "linux", "SIGSEGV");
    let with = |pointer: &str, value: serde_json::Value| {
        let mut body = valid.clone();
        *body.pointer_mut(pointer).unwrap() = value;
        body
    };
    let details = |data: String| {
        let mut body = valid.clone();
        body["details"] = json!({ "encoding": "gzip", "data": data });
        body
    };
    let post_json = |key: Option<&str>, body: serde_json::Value| {
        let key = key.map(str::to_owned);
        let app = &app;
        async move { app.post("/reports/ingest", key.as_deref(), &body).await }
    };
    let post_raw = |content_type: &'static str, body: String| {
        app.client
            .post(app.url("/reports/ingest"))
            .bearer_auth(&app.key)
            .header("Content-Type", content_type)
            .body(body)
            .send()
    };
    let post_raw = |content_type, body| async move { post_raw(content_type, body).await.unwrap() };
    let key = Some(app.key.as_str());
    let rpk_unknown = format!("rpk_{}", "ab".repeat(32));
    let bomb = gzip_base64(&vec![b'A'; 8 << 20]);
    assert!(bomb.len() < 16384, "the bomb fits under the compressed cap");

    let cases: Vec<(&str, reqwest::Response, u16, &str, Option<&str>)> = vec![
        (
            "no key",
            post_json(None, valid.clone()).await,
            401,
            "missing_key",
            None,
        ),
        (
            "malformed key",
            post_json(Some("rpk_short"), valid.clone()).await,
            401,
            "invalid_key",
            None,
        ),
        (
            "unknown key",
            post_json(Some(&rpk_unknown), valid.clone()).await,
            401,
            "invalid_key",
            None,
        ),
        (
            "not json",
            post_raw("text/plain", valid.to_string()).await,
            415,
            "unsupported_media_type",
            None,
        ),
        (
            "malformed json",
            post_raw("application/json", "{\"application\": {".to_owned()).await,
            400,
            "malformed_json",
            None,
        ),
        (
            "missing field",
            post_json(key, json!({"application": valid["application"]})).await,
            422,
            "invalid_field",
            Some("system"),
        ),
        (
            "unknown event type",
            post_json(key, with("/event/type", json!("explode"))).await,
            422,
            "invalid_field",
            Some("event.type"),
        ),
        (
            "bad platform",
            post_json(key, with("/system/platform", json!("beos"))).await,
            422,
            "invalid_field",
            Some("system.platform"),
        ),
        (
            "bad arch",
            post_json(key, with("/system/arch", json!("mips"))).await,
            422,
            "invalid_field",
            Some("system.arch"),
        ),
        (
            "overlong version",
            post_json(key, with("/application/version", json!("9".repeat(65)))).await,
            422,
            "invalid_field",
            Some("application.version"),
        ),
        (
            "overlong reason",
            post_json(key, with("/event/reason", json!("r".repeat(257)))).await,
            422,
            "invalid_field",
            Some("event.reason"),
        ),
        (
            "control characters",
            post_json(key, with("/event/reason", json!("bad\u{0}reason"))).await,
            422,
            "invalid_field",
            Some("event.reason"),
        ),
        (
            "wrong type",
            post_json(key, with("/application/version", json!(142))).await,
            422,
            "invalid_field",
            Some("application.version"),
        ),
        (
            "app name mismatch",
            post_json(key, with("/application/name", json!("other-app"))).await,
            422,
            "invalid_field",
            Some("application.name"),
        ),
        (
            "body over the cap",
            post_json(key, with("/event/reason", json!("x".repeat(70_000)))).await,
            413,
            "too_large",
            None,
        ),
        (
            "details over the compressed cap",
            post_json(
                key,
                details(gzip_base64(
                    &(0..20_000)
                        .map(|_| rand::random::<u8>())
                        .collect::<Vec<u8>>(),
                )),
            )
            .await,
            413,
            "too_large",
            Some("details.data"),
        ),
        (
            "gzip bomb",
            post_json(key, details(bomb)).await,
            413,
            "too_large",
            Some("details.data"),
        ),
        (
            "base64 garbage",
            post_json(key, details("!!!! not base64 ????".to_owned())).await,
            422,
            "invalid_field",
            Some("details.data"),
        ),
        (
            "not gzip",
            post_json(key, details("aGVsbG8gd29ybGQ=".to_owned())).await,
            422,
            "invalid_field",
            Some("details.data"),
        ),
        (
            "device id too long",
            app.client
                .post(app.url("/reports/ingest"))
                .bearer_auth(&app.key)
                .header("X-Device-ID", "d".repeat(129))
                .json(&valid)
                .send()
                .await
                .unwrap(),
            422,
            "invalid_field",
            Some("X-Device-ID"),
        ),
    ];
    for (name, response, status, code, field) in cases {
        let (got, body) = json(response).await;
        assert_eq!(got, status, "{name}: {body}");
        assert_eq!(body["error"]["code"], json!(code), "{name}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{name}: {body}"
        );
        if let Some(field) = field {
            assert_eq!(body["error"]["field"], json!(field), "{name}: {body}");
        }
    }
    // Nothing of the refused reports was counted.
    assert_eq!(app.scalar("SELECT COUNT(*) FROM report_groups").await, 0);

    let batch: Vec<_> = (0..101).map(|_| valid.clone()).collect();
    let (status, body) = json(
        app.post("/reports/ingest/batch", key, &json!({ "reports": batch }))
            .await,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (413, json!("batch_too_large")),
        "{body}"
    );
    assert_eq!(app.scalar("SELECT COUNT(*) FROM report_groups").await, 0);
    app.stop().await;
}

async fn a_revoked_key_stops_working_within_seconds(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = report("1.0", "beta", "macos", "EXC_BAD_ACCESS");
    assert_eq!(app.report(&body).await.status(), 202);

    rollwatch::keys::revoke(&app.db, &app.operator(), app.app_id)
        .await
        .unwrap();
    let revoked_at = Instant::now();
    loop {
        let (status, answer) = json(app.report(&body).await).await;
        if status == 401 {
            assert_eq!(answer["error"]["code"], json!("invalid_key"));
            break;
        }
        assert_eq!(status, 202);
        assert!(
            revoked_at.elapsed() < Duration::from_secs(10),
            "revoked key still accepted"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The rotated key works at once (it was never cached), the old one stays refused.
    let new_key = rollwatch::keys::rotate(&app.db, &app.operator(), app.app_id)
        .await
        .unwrap();
    assert_eq!(
        app.post("/reports/ingest", Some(&new_key.key), &body)
            .await
            .status(),
        202
    );
    assert_eq!(app.report(&body).await.status(), 401);
    app.stop().await;
}

async fn reports_disabled_for_the_app_answer_403(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    use sea_orm::ConnectionTrait;
    app.db
        .execute_unprepared(&format!(
            "UPDATE apps SET reports_enabled = false WHERE id = {}",
            app.app_id
        ))
        .await
        .unwrap();
    let (status, body) = json(app.report(&report("1.0", "stable", "linux", "x")).await).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (403, json!("reports_disabled"))
    );
    app.stop().await;
}

async fn the_101st_report_in_a_minute_is_rate_limited(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = report("2.0", "stable", "android", "ANR");
    // The limit is a rate (governor's GCRA): 100 at once, then one more every 0.6 s. On a slow
    // machine sending takes longer than that, so count the allowance that refilled meanwhile.
    let started = Instant::now();
    let mut accepted = 0u64;
    let refused = loop {
        let response = app.report(&body).await;
        if response.status() != 202 {
            break response;
        }
        accepted += 1;
        assert!(accepted <= 1000, "no limit after {accepted} reports");
    };
    let refilled = (started.elapsed().as_millis() / 600) as u64;
    assert!(
        (100..=100 + refilled).contains(&accepted),
        "{accepted} accepted in {:?}",
        started.elapsed()
    );
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=60).contains(&retry_after),
        "Retry-After: {retry_after}"
    );
    let (_, answer) = json(refused).await;
    assert_eq!(answer["error"]["code"], json!("rate_limited"));
    assert_eq!(
        app.group_count(&expected_hash([
            "editor", "2.0", "stable", "android", "x86_64", "crash", "ANR"
        ]))
        .await,
        accepted as i64
    );
    app.stop().await;
}

async fn concurrent_reports_to_one_group_are_all_counted(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[("REPORTS_RATE_LIMIT_PER_KEY_PER_MINUTE", "100000")],
    )
    .await;
    let body = report("3.1.0", "stable", "windows", "STATUS_HEAP_CORRUPTION");
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let client = app.client.clone();
        let url = app.url("/reports/ingest");
        let key = app.key.clone();
        let body = body.clone();
        requests.spawn(async move {
            client
                .post(url)
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .map(|r| r.status().as_u16())
        });
    }
    let mut accepted = 0;
    while let Some(status) = requests.join_next().await {
        assert_eq!(status.unwrap().unwrap(), 202);
        accepted += 1;
    }
    assert_eq!(accepted, 1000);
    let hash = expected_hash([
        "editor",
        "3.1.0",
        "stable",
        "windows",
        "x86_64",
        "crash",
        "STATUS_HEAP_CORRUPTION",
    ]);
    assert_eq!(app.group_count(&hash).await, 1000);
    assert_eq!(app.hourly_total(&hash).await, 1000);
    app.stop().await;
}

async fn a_batch_judges_each_report_alone(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let good = report("1.0", "stable", "ios", "EXC_CRASH");
    let mut bad = good.clone();
    bad["event"]["type"] = json!("meltdown");
    let (status, body) = json(
        app.post(
            "/reports/ingest/batch",
            Some(&app.key),
            &json!({ "reports": [good, bad, good, "not an object"] }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"], json!(2));
    assert_eq!(body["rejected"], json!(2));
    let results = body["results"].as_array().unwrap();
    assert_eq!(results[0]["status"], json!(202));
    assert_eq!(results[1]["status"], json!(422));
    assert_eq!(results[1]["error"]["field"], json!("event.type"));
    assert_eq!(results[3]["status"], json!(422));
    let hash = expected_hash([
        "editor",
        "1.0",
        "stable",
        "ios",
        "x86_64",
        "crash",
        "EXC_CRASH",
    ]);
    assert_eq!(results[2]["group"], json!(hash));
    assert_eq!(app.group_count(&hash).await, 2);
    app.stop().await;
}

async fn usage_counts_are_summed_per_release_and_hour(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let usage = |kind: &str, count: i64| {
        json!({
            "application": { "name": "editor", "version": "1.4.2", "channel": "stable" },
            "system": { "platform": "linux", "arch": "aarch64" },
            "kind": kind,
            "count": count,
        })
    };
    for (kind, count) in [("session", 40), ("session", 2), ("update_succeeded", 7)] {
        let (status, body) = json(
            app.post("/reports/usage", Some(&app.key), &usage(kind, count))
                .await,
        )
        .await;
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["counted"], json!(count));
    }
    for (bad, field) in [
        (usage("reboots", 1), "kind"),
        (usage("session", 0), "count"),
    ] {
        let (status, body) = json(app.post("/reports/usage", Some(&app.key), &bad).await).await;
        assert_eq!(
            (status, body["error"]["field"].clone()),
            (422, json!(field)),
            "{body}"
        );
    }
    let sessions = app
        .scalar("SELECT SUM(count) FROM usage_counts WHERE kind = 'session' AND version = '1.4.2' AND arch = 'aarch64'")
        .await;
    assert_eq!(sessions, 42);
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM usage_counts WHERE kind = 'session'")
            .await,
        1
    );
    assert_eq!(
        app.scalar("SELECT SUM(count) FROM usage_counts WHERE kind = 'update_succeeded'")
            .await,
        7
    );
    app.stop().await;
}

#[tokio::test]
async fn with_reports_disabled_no_report_route_exists() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[("REPORTS_ENABLED", "false")]).await;
    for path in ["/reports/ingest", "/reports/ingest/batch", "/reports/usage"] {
        let response = app.report(&report("1", "stable", "linux", "x")).await;
        assert_eq!(response.status(), 404, "{path}");
        let response = app.post(path, Some(&app.key), &json!({})).await;
        assert_eq!(response.status(), 404, "{path}");
    }
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    app.stop().await;
}
