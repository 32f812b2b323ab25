//! `/metrics`: Prometheus text whose counters move with the traffic sent. Each server has its
//! own recorder, so the tests running beside this one in the same process do not move these
//! numbers; the test still compares before and after, so it does not depend on that.

use std::collections::HashMap;

use rollwatch::config::Config;
use rollwatch::server::Server;
use serde_json::json;

use crate::common::{self, ADMIN_EMAIL, ADMIN_PASSWORD, Backend, TestApp, report};

/// One scrape: each sample by its name and labels as written (`name{a="x",b="y"}`).
#[derive(Debug)]
struct Scrape(HashMap<String, f64>);

impl Scrape {
    /// The value of a sample, 0 when it has not been recorded yet.
    fn get(&self, sample: &str) -> f64 {
        self.0.get(sample).copied().unwrap_or(0.0)
    }
}

/// Parses the Prometheus text format, failing the test on any line that is not a comment, a
/// blank line or `name{labels} value`.
fn parse(text: &str) -> Scrape {
    let mut samples = HashMap::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            assert!(
                comment.starts_with("HELP ") || comment.starts_with("TYPE "),
                "comment: {line}"
            );
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            number => number
                .parse()
                .unwrap_or_else(|e| panic!("value of {line:?}: {e}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => (
                name,
                Some(
                    labels
                        .strip_suffix('}')
                        .unwrap_or_else(|| panic!("labels: {line}")),
                ),
            ),
            None => (series, None),
        };
        assert!(
            !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "metric name: {line}"
        );
        for label in labels.into_iter().flat_map(|labels| labels.split(',')) {
            let (key, quoted) = label
                .split_once('=')
                .unwrap_or_else(|| panic!("label {label:?} in {line}"));
            assert!(
                !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "label name {key:?} in {line}"
            );
            assert!(
                quoted.len() >= 2 && quoted.starts_with('"') && quoted.ends_with('"'),
                "label value {quoted:?} in {line}"
            );
        }
        assert!(
            samples.insert(series.to_owned(), value).is_none(),
            "sample twice: {line}"
        );
    }
    Scrape(samples)
}

async fn scrape(app: &TestApp) -> Scrape {
    let answer = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert!(
        answer.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    parse(&answer.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counters_move_with_the_traffic_sent() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[("REPORTS_RATE_LIMIT_PER_DEVICE_PER_MINUTE", "1")],
    )
    .await;
    let before = scrape(&app).await;

    // Three accepted, one of them with details (a blob upload).
    let mut with_details = report("1.0.0", "stable", "linux", "E_ONE");
    with_details["details"] = json!({
        "encoding": "gzip",
        "data": common::gzip_base64(br#"{"stack":["main"]}"#),
    });
    for body in [
        with_details,
        report("1.0.0", "stable", "linux", "E_TWO"),
        report("1.0.0", "stable", "windows", "E_ONE"),
    ] {
        assert_eq!(app.report(&body).await.status(), 202);
    }
    // One rejected: not a platform.
    let invalid = report("1.0.0", "stable", "beos", "E_ONE");
    assert_eq!(app.report(&invalid).await.status(), 422);
    // A wrong key.
    let wrong_key = app
        .post(
            "/reports/ingest",
            Some("rpk_not-a-key"),
            &report("1.0.0", "stable", "linux", "E_ONE"),
        )
        .await;
    assert_eq!(wrong_key.status(), 401);
    // A batch of two good reports and a bad one.
    let batch = json!({ "reports": [
        report("1.0.0", "beta", "linux", "E_ONE"),
        report("1.0.0", "beta", "linux", "E_TWO"),
        report("1.0.0", "beta", "linux", ""),
    ]});
    let (status, body) = common::json(
        app.post("/reports/ingest/batch", Some(&app.key), &batch)
            .await,
    )
    .await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (202, Some(2)),
        "{body}"
    );
    // The device's one report a minute, then a throttled one.
    for expected in [202, 429] {
        let answer = app
            .client
            .post(app.url("/reports/ingest"))
            .bearer_auth(&app.key)
            .header("X-Device-ID", "device-1")
            .json(&report("1.0.0", "stable", "linux", "E_DEVICE"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), expected);
    }
    // A Sentry SDK without a key: refused on a route with a parameter.
    let sentry = app
        .client
        .post(app.url(&format!("/api/{}/store/", app.app_id)))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(sentry.status(), 401);
    // No route: one label value for every such path.
    for path in ["/nothing/here", "/wp-login.php"] {
        let answer = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(answer.status(), 404);
    }
    // A failed sign-in, a good one, and a gate verdict asked for.
    let refused = common::login_attempt(&app, ADMIN_EMAIL, "not-the-password").await;
    assert!(refused.get("errors").is_some(), "{refused}");
    let token = common::login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let gate = common::graphql(
        &app,
        Some(&token),
        "query($app: ID!) { releaseGate(appId: $app, version: \"1.0.0\", channel: \"stable\") { verdict } }",
        json!({ "app": app.app_id.to_string() }),
    )
    .await;
    let verdict = common::data(&gate)["releaseGate"]["verdict"]
        .as_str()
        .unwrap()
        .to_owned();

    let after = scrape(&app).await;
    let delta = |sample: &str| after.get(sample) - before.get(sample);
    assert_eq!(delta("rollwatch_reports_accepted_total"), 6.0, "{after:#?}");
    for (code, n) in [
        ("invalid_field", 2.0),
        ("invalid_key", 1.0),
        ("missing_key", 1.0),
        ("rate_limited", 1.0),
    ] {
        assert_eq!(
            delta(&format!(
                "rollwatch_reports_rejected_total{{code=\"{code}\"}}"
            )),
            n,
            "{code}"
        );
    }
    assert_eq!(delta("rollwatch_reports_throttled_total"), 1.0);
    let requests = |route: &str, status: u16, method: &str| {
        delta(&format!(
            "rollwatch_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}}"
        ))
    };
    assert_eq!(requests("/reports/ingest", 202, "POST"), 4.0);
    assert_eq!(requests("/reports/ingest", 422, "POST"), 1.0);
    assert_eq!(requests("/reports/ingest", 401, "POST"), 1.0);
    assert_eq!(requests("/reports/ingest", 429, "POST"), 1.0);
    assert_eq!(requests("/reports/ingest/batch", 202, "POST"), 1.0);
    assert_eq!(requests("unmatched", 404, "GET"), 2.0);
    assert_eq!(requests("/api/{app_id}/store/", 401, "POST"), 1.0);
    assert_eq!(requests("/graphql", 200, "POST"), 3.0);
    // The first scrape was counted once it was answered.
    assert_eq!(requests("/metrics", 200, "GET"), 1.0);
    assert!(
        !after.0.keys().any(|sample| sample.contains("wp-login")),
        "a raw path became a label"
    );
    // Every committed request was one job of some flush, and each flush was timed.
    assert_eq!(delta("rollwatch_writer_batch_jobs_sum"), 5.0);
    let flushes = delta("rollwatch_writer_batch_jobs_count");
    assert!((1.0..=5.0).contains(&flushes), "{flushes}");
    assert_eq!(
        delta("rollwatch_writer_commit_duration_seconds_count"),
        flushes
    );
    assert_eq!(
        delta("rollwatch_writer_commit_duration_seconds_bucket{le=\"+Inf\"}"),
        flushes
    );
    assert_eq!(after.get("rollwatch_write_queue_depth"), 0.0);
    assert_eq!(
        delta("rollwatch_blob_operation_duration_seconds_count{operation=\"put\"}"),
        1.0
    );
    assert_eq!(
        delta("rollwatch_blob_failures_total{operation=\"put\"}"),
        0.0
    );
    assert_eq!(
        delta("rollwatch_login_failures_total{reason=\"bad_credentials\"}"),
        1.0
    );
    assert_eq!(
        delta(&format!(
            "rollwatch_gate_evaluations_total{{caller=\"api\",verdict=\"{verdict}\"}}"
        )),
        1.0
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_token_keeps_out_whoever_lacks_it() {
    const TOKEN: &str = "scrape-token-0123456789abcdef";
    let app = TestApp::spawn_with(Backend::Sqlite, &[("METRICS_TOKEN", TOKEN)]).await;
    for bearer in [None, Some("scrape-token-wrong")] {
        let mut request = app.client.get(app.url("/metrics"));
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        let answer = request.send().await.unwrap();
        assert_eq!(answer.headers()["www-authenticate"], "Bearer");
        let (status, body) = common::json(answer).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("unauthorized"))
        );
    }
    let answer = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    parse(&answer.text().await.unwrap());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_addr_serves_them_on_their_own_listener_only() {
    let data_dir = tempfile::tempdir().unwrap();
    let env: HashMap<&str, String> = [
        ("BIND_ADDR", "127.0.0.1:0".to_owned()),
        ("METRICS_ADDR", "127.0.0.1:0".to_owned()),
        ("ROLLWATCH_DATA_DIR", data_dir.path().display().to_string()),
        ("ROLLWATCH_ADMIN_PASSWORD", ADMIN_PASSWORD.to_owned()),
    ]
    .into_iter()
    .collect();
    let config = Config::from_lookup(|var| env.get(var).cloned()).unwrap();
    let server = Server::build(config).await.unwrap();
    let addr = server.local_addr().unwrap();
    let metrics_addr = server.metrics_addr().unwrap().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let get =
        |at: std::net::SocketAddr, path: &str| client.get(format!("http://{at}{path}")).send();

    assert_eq!(get(addr, "/metrics").await.unwrap().status(), 404);
    assert_eq!(get(addr, "/healthz").await.unwrap().status(), 200);
    let own = get(metrics_addr, "/metrics").await.unwrap();
    assert_eq!(own.status(), 200);
    let scraped = parse(&own.text().await.unwrap());
    assert_eq!(
        scraped
            .get("rollwatch_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"}"),
        1.0,
        "{scraped:#?}"
    );
    assert_eq!(get(metrics_addr, "/healthz").await.unwrap().status(), 404);

    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
    // Both listeners are closed once the server has stopped.
    assert!(tokio::net::TcpStream::connect(metrics_addr).await.is_err());
}
