//! Alerts (issue 17) against a real HTTP receiver started by the test: a release turning bad
//! is delivered once and signed, a failing receiver is retried and logged, a velocity rule
//! fires once within its cool-down, and two replicas on one PostgreSQL deliver once.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use rollwatch::alerts::signing::{self, REPLAY_TOLERANCE_SECONDS, VerifyError};
use serde_json::{Value, json};

use crate::common::{
    ADMIN_EMAIL, ADMIN_PASSWORD, Backend, TestApp, data, graphql, json as answer_of, login, report,
};
use crate::gate::{send_reports, send_usage};

on_both_databases!(
    a_release_turning_bad_is_delivered_once_and_signed,
    a_failing_receiver_is_retried_and_every_attempt_logged,
    a_velocity_rule_fires_once_within_its_cooldown,
    each_interval_is_claimed_by_one_replica,
);

/// What the receiver got.
#[derive(Clone, Debug)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Clone, Default)]
struct Log {
    received: Arc<Mutex<Vec<Received>>>,
    /// Statuses to answer, in order; 200 once they run out.
    script: Arc<Mutex<VecDeque<u16>>>,
}

/// A webhook receiver on a random port.
struct Receiver {
    url: String,
    log: Log,
}

impl Receiver {
    async fn start(script: &[u16]) -> Receiver {
        let log = Log::default();
        log.script.lock().unwrap().extend(script);
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(log.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver {
            url: format!("http://{addr}/hook"),
            log,
        }
    }

    fn received(&self) -> Vec<Received> {
        self.log.received.lock().unwrap().clone()
    }

    /// Waits until `n` requests came (or 30 s passed); what came.
    async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.received().len() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.received()
    }
}

async fn receive(State(log): State<Log>, headers: HeaderMap, body: Bytes) -> StatusCode {
    log.received
        .lock()
        .unwrap()
        .push(Received { headers, body });
    let status = log.script.lock().unwrap().pop_front().unwrap_or(200);
    StatusCode::from_u16(status).unwrap()
}

/// The test server, evaluating every second and retrying after a second.
async fn spawn(backend: Backend, extra: &[(&str, &str)]) -> TestApp {
    let mut vars = vec![
        ("REPORTS_RATE_LIMIT_PER_KEY_PER_MINUTE", "1000000"),
        ("ALERTS_EVALUATE_EVERY_SECONDS", "1"),
        ("ALERTS_RETRY_FIRST_SECONDS", "1"),
        ("ALERTS_ALLOW_PRIVATE_DESTINATIONS", "true"),
        ("PUBLIC_URL", "https://rollwatch.example.com"),
    ];
    vars.extend_from_slice(extra);
    TestApp::spawn_with(backend, &vars).await
}

/// A destination for `url`; its id and signing secret.
async fn destination(app: &TestApp, token: &str, url: &str) -> (String, String) {
    let answer = graphql(
        app,
        Some(token),
        "mutation($app: ID!, $url: String!) {
           createAlertDestination(appId: $app, name: \"ops\", url: $url) {
             destination { id url format } secret } }",
        json!({ "app": app.app_id.to_string(), "url": url }),
    )
    .await;
    let created = &data(&answer)["createAlertDestination"];
    assert_eq!(created["destination"]["format"], "GENERIC");
    // The path is not shown again.
    assert!(
        created["destination"]["url"]
            .as_str()
            .unwrap()
            .ends_with("/…")
    );
    (
        created["destination"]["id"].as_str().unwrap().to_owned(),
        created["secret"].as_str().unwrap().to_owned(),
    )
}

async fn rule(app: &TestApp, token: &str, rule: Value) -> Value {
    let answer = graphql(
        app,
        Some(token),
        "mutation($app: ID!, $rule: AlertRuleInput!) {
           createAlertRule(appId: $app, rule: $rule) { id kind threshold windowMinutes cooldownMinutes } }",
        json!({ "app": app.app_id.to_string(), "rule": rule }),
    )
    .await;
    data(&answer)["createAlertRule"].clone()
}

/// No regression limit and a small floor, so a release with no crash can PASS without a
/// baseline.
async fn lenient_policy(app: &TestApp, token: &str) {
    let answer = graphql(
        app,
        Some(token),
        "mutation($app: ID!) { setGatePolicy(appId: $app, policy: {
           crashRate: { maxRegression: null, minSample: 100 } }) { confidence } }",
        json!({ "app": app.app_id.to_string() }),
    )
    .await;
    data(&answer);
}

/// The verdicts of the release's history, oldest first, once it holds `last` (or 30 s passed).
async fn history_until(
    app: &TestApp,
    token: &str,
    version: &str,
    last: &str,
) -> Vec<(String, Option<String>)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = graphql(
            app,
            Some(token),
            "query($app: ID!, $v: String!) { verdictHistory(appId: $app, version: $v, channel: \"stable\") {
               verdict previous result { verdict } } }",
            json!({ "app": app.app_id.to_string(), "v": version }),
        )
        .await;
        let mut changes: Vec<(String, Option<String>)> = data(&answer)["verdictHistory"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                assert_eq!(c["verdict"], c["result"]["verdict"]);
                (
                    c["verdict"].as_str().unwrap().to_owned(),
                    c["previous"].as_str().map(str::to_owned),
                )
            })
            .collect();
        changes.reverse();
        if changes.last().is_some_and(|(v, _)| v == last) || Instant::now() > deadline {
            return changes;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn a_release_turning_bad_is_delivered_once_and_signed(backend: Backend) {
    let app = spawn(backend, &[]).await;
    let token = login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let receiver = Receiver::start(&[]).await;
    let (destination_id, secret) = destination(&app, &token, &receiver.url).await;
    let created = rule(
        &app,
        &token,
        json!({ "name": "gate", "kind": "GATE_FAIL", "destinationIds": [destination_id] }),
    )
    .await;
    assert_eq!(created["kind"], "GATE_FAIL");
    assert_eq!(created["cooldownMinutes"], 60);
    lenient_policy(&app, &token).await;

    let release = ("2.0.0", "stable", "linux");
    send_usage(&app, release, "session", 20_000).await;
    assert_eq!(
        history_until(&app, &token, "2.0.0", "PASS").await,
        vec![("PASS".to_owned(), None)]
    );
    assert!(
        receiver.received().is_empty(),
        "a passing release alerts nobody"
    );

    send_reports(&app, release, "crash", 1_000).await;
    assert_eq!(
        history_until(&app, &token, "2.0.0", "FAIL").await,
        vec![
            ("PASS".to_owned(), None),
            ("FAIL".to_owned(), Some("PASS".to_owned()))
        ]
    );
    let got = receiver.wait_for(1).await;
    // Later rounds see the same FAIL: still one delivery.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got_later = receiver.received();
    assert_eq!(got_later.len(), 1, "{got_later:?}");
    let delivery = &got[0];
    assert_eq!(delivery.header("rollwatch-event"), "gate.fail");
    let body = delivery.json();
    assert_eq!(body["event"], "gate.fail");
    assert_eq!(body["verdict"], "FAIL");
    assert_eq!(body["previous"], "PASS");
    assert_eq!(
        body["release"],
        json!({ "version": "2.0.0", "channel": "stable" })
    );
    assert_eq!(body["app"]["name"], "editor");
    assert_eq!(
        body["url"],
        format!(
            "https://rollwatch.example.com/apps/{}/gate?version=2.0.0&channel=stable",
            app.app_id
        )
    );
    assert!(body["metrics"].as_array().is_some_and(|m| !m.is_empty()));
    assert!(!body["reasons"].as_array().unwrap().is_empty());

    // The documented check: the signature verifies now, and a replay later is refused.
    let signature = delivery.header(signing::SIGNATURE_HEADER);
    let now = chrono::Utc::now().timestamp();
    assert_eq!(
        signing::verify(
            &secret,
            signature,
            &delivery.body,
            now,
            REPLAY_TOLERANCE_SECONDS
        ),
        Ok(())
    );
    assert_eq!(
        signing::verify(
            &secret,
            signature,
            &delivery.body,
            now + 600,
            REPLAY_TOLERANCE_SECONDS
        ),
        Err(VerifyError::TooOld)
    );
    assert_eq!(
        signing::verify(
            &secret,
            signature,
            b"{\"forged\":true}",
            now,
            REPLAY_TOLERANCE_SECONDS
        ),
        Err(VerifyError::Mismatch)
    );
    app.stop().await;
}

async fn deliveries(app: &TestApp, token: &str, destination_id: &str) -> Vec<Value> {
    let answer = graphql(
        app,
        Some(token),
        "query($d: ID!) { alertDeliveries(destinationId: $d) {
           id event state ruleId attempts { status error latencyMs } } }",
        json!({ "d": destination_id }),
    )
    .await;
    data(&answer)["alertDeliveries"].as_array().unwrap().clone()
}

async fn a_failing_receiver_is_retried_and_every_attempt_logged(backend: Backend) {
    let app = spawn(backend, &[]).await;
    let token = login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let receiver = Receiver::start(&[500, 500, 200]).await;
    let (destination_id, _) = destination(&app, &token, &receiver.url).await;
    let answer = graphql(
        &app,
        Some(&token),
        "mutation($d: ID!) { sendTestAlert(destinationId: $d) { id event state } }",
        json!({ "d": destination_id }),
    )
    .await;
    let queued = &data(&answer)["sendTestAlert"];
    assert_eq!(
        (&queued["event"], &queued["state"]),
        (&json!("test"), &json!("pending"))
    );

    let got = receiver.wait_for(3).await;
    assert_eq!(got.len(), 3);
    let ids: Vec<&str> = got.iter().map(|r| r.header("rollwatch-delivery")).collect();
    assert!(
        ids.iter().all(|id| *id == ids[0] && !id.is_empty()),
        "{ids:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = deliveries(&app, &token, &destination_id).await;
        if log[0]["state"] == "delivered" || Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["state"], "delivered");
    assert_eq!(log[0]["ruleId"], Value::Null);
    let statuses: Vec<&Value> = log[0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["status"])
        .collect();
    assert_eq!(statuses, [&json!(500), &json!(500), &json!(200)]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.received().len(), 3, "nothing after the success");
    app.stop().await;
}

async fn a_velocity_rule_fires_once_within_its_cooldown(backend: Backend) {
    let app = spawn(backend, &[]).await;
    let token = login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let receiver = Receiver::start(&[]).await;
    let (destination_id, _) = destination(&app, &token, &receiver.url).await;
    let created = rule(
        &app,
        &token,
        json!({ "name": "velocity", "kind": "NEW_GROUP", "threshold": 5, "windowMinutes": 30,
                "destinationIds": [destination_id] }),
    )
    .await;
    assert_eq!(
        (&created["threshold"], &created["windowMinutes"]),
        (&json!(5), &json!(30))
    );

    let send = |reason: &'static str, n: usize| {
        let app = &app;
        async move {
            for _ in 0..n {
                let (status, body) = answer_of(
                    app.report(&report("3.0.0", "stable", "linux", reason))
                        .await,
                )
                .await;
                assert_eq!(status, 202, "{body}");
            }
        }
    };
    // Below the threshold: nothing.
    send("Quiet", 2).await;
    send("Storm", 5).await;
    let got = receiver.wait_for(1).await;
    assert_eq!(got.len(), 1);
    let body = got[0].json();
    assert_eq!(body["event"], "group.new");
    assert_eq!(body["group"]["reason"], "Storm");
    assert!(body["group"]["count"].as_i64().unwrap() >= 5);
    // More of the same group within the cool-down: no second alert.
    send("Storm", 5).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got = receiver.received();
    assert_eq!(got.len(), 1, "{got:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_on_one_postgres_deliver_once() {
    let shared_secret = [(
        "JWT_SECRET",
        "a-shared-secret-of-enough-length-for-replicas",
    )];
    let app = spawn(Backend::Postgres, &shared_secret).await;
    let replica = app
        .replica(&[
            ("REPORTS_RATE_LIMIT_PER_KEY_PER_MINUTE", "1000000"),
            ("ALERTS_EVALUATE_EVERY_SECONDS", "1"),
            ("ALERTS_RETRY_FIRST_SECONDS", "1"),
            ("ALERTS_ALLOW_PRIVATE_DESTINATIONS", "true"),
            shared_secret[0],
        ])
        .await;
    let token = login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let receiver = Receiver::start(&[]).await;
    let (destination_id, secret) = destination(&app, &token, &receiver.url).await;
    rule(
        &app,
        &token,
        json!({ "name": "gate", "kind": "GATE_FAIL", "destinationIds": [destination_id] }),
    )
    .await;
    lenient_policy(&app, &token).await;
    let release = ("4.0.0", "stable", "linux");
    send_usage(&app, release, "session", 20_000).await;
    send_reports(&app, release, "crash", 1_000).await;
    let got = receiver.wait_for(1).await;
    // Both replicas evaluate every second; give them several rounds to double up.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let got_later = receiver.received();
    assert_eq!(got_later.len(), 1, "{got_later:?}");
    assert_eq!(got[0].header("rollwatch-event"), "gate.fail");
    let now = chrono::Utc::now().timestamp();
    // Either replica may have sent it: both derive the same secret.
    assert_eq!(
        signing::verify(
            &secret,
            got[0].header(signing::SIGNATURE_HEADER),
            &got[0].body,
            now,
            REPLAY_TOLERANCE_SECONDS
        ),
        Ok(())
    );
    let fails = app
        .scalar(&format!(
            "SELECT COUNT(*) FROM release_verdicts WHERE app_id = {} AND version = '4.0.0' AND verdict = 'FAIL'",
            app.app_id
        ))
        .await;
    assert_eq!(fails, 1);
    replica.stop().await;
    app.stop().await;
}

async fn each_interval_is_claimed_by_one_replica(backend: Backend) {
    let app = spawn(backend, &[]).await;
    let every = Duration::from_secs(300);
    let at = |seconds| chrono::DateTime::from_timestamp(seconds, 0).unwrap();
    // Two connection pools, as two replicas have, claiming the same rounds at once.
    let other = rollwatch::db::connect(&app.database.url).await.unwrap();
    for (round, now) in [at(1_800_000_000), at(1_800_000_299), at(1_800_000_300)]
        .into_iter()
        .enumerate()
    {
        let mut claims = tokio::task::JoinSet::new();
        for i in 0..10 {
            let db = if i % 2 == 0 {
                app.db.clone()
            } else {
                other.clone()
            };
            claims.spawn(async move {
                rollwatch::lease::claim(&db, "test.round", every, now)
                    .await
                    .unwrap()
            });
        }
        let won = claims
            .join_all()
            .await
            .into_iter()
            .filter(|won| *won)
            .count();
        // 1_800_000_299 is in the interval of 1_800_000_000: already claimed.
        assert_eq!(won, usize::from(round != 1), "round {round}");
    }
    other.close().await.unwrap();
    app.stop().await;
}
