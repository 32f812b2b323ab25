//! Release gating against the real server, on SQLite and PostgreSQL (DESIGN §8): reports and
//! usage go in over REST, verdicts come out of the gate.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Backend, TestApp, json};
use rollwatch::gate::evaluate::{MetricStatus, Verdict};
use rollwatch::gate::policy::{self, Actor, GatePolicy, PolicySource};
use rollwatch::gate::{self, GateQuery};
use serde_json::json;

on_both_databases!(
    the_gate_measures_releases_from_ingested_reports_and_usage,
    policies_apply_per_channel_over_the_app_default,
);

/// The test server with a rate limit that lets a test send a few hundred reports at once.
async fn spawn(backend: Backend) -> TestApp {
    TestApp::spawn_with(
        backend,
        &[("REPORTS_RATE_LIMIT_PER_KEY_PER_MINUTE", "100000")],
    )
    .await
}

async fn send_usage(app: &TestApp, release: (&str, &str, &str), kind: &str, count: u64) {
    let (version, channel, platform) = release;
    let body = json!({
        "application": { "name": app.app_name, "version": version, "channel": channel },
        "system": { "platform": platform, "arch": "x86_64" },
        "kind": kind,
        "count": count,
    });
    let (status, answer) = json(app.post("/reports/usage", Some(&app.key), &body).await).await;
    assert_eq!(status, 202, "{answer}");
}

/// `count` reports of `event_type`, in batches of 100.
async fn send_reports(app: &TestApp, release: (&str, &str, &str), event_type: &str, count: u64) {
    let (version, channel, platform) = release;
    let report = json!({
        "application": { "name": app.app_name, "version": version, "channel": channel },
        "system": { "platform": platform, "arch": "x86_64" },
        "event": { "type": event_type, "reason": "SIGSEGV" },
    });
    let mut left = count;
    while left > 0 {
        let batch = left.min(100);
        let body = json!({ "reports": vec![report.clone(); batch as usize] });
        let (status, answer) = json(
            app.post("/reports/ingest/batch", Some(&app.key), &body)
                .await,
        )
        .await;
        assert_eq!(status, 202, "{answer}");
        left -= batch;
    }
}

fn query(version: &str, channel: &str, platform: Option<&str>) -> GateQuery {
    GateQuery {
        version: version.to_owned(),
        channel: channel.to_owned(),
        platform: platform.map(str::to_owned),
        ..GateQuery::default()
    }
}

async fn the_gate_measures_releases_from_ingested_reports_and_usage(backend: Backend) {
    let app = spawn(backend).await;
    let old = ("1.3.0", "stable", "linux");
    let previous = ("1.4.0", "stable", "linux");
    let release = ("1.5.0", "stable", "linux");
    send_usage(&app, old, "session", 50_000).await;
    send_usage(&app, previous, "session", 20_000).await;
    send_reports(&app, previous, "crash", 40).await;
    send_usage(&app, release, "session", 20_000).await;
    send_reports(&app, release, "crash", 120).await;
    send_usage(&app, release, "update_succeeded", 290).await;
    send_reports(&app, release, "update_failed", 10).await;
    send_usage(&app, ("1.5.0", "stable", "windows"), "session", 5000).await;
    // Other channels and platforms must not leak into the numbers.
    send_usage(&app, ("1.5.0", "beta", "linux"), "session", 7).await;
    send_reports(&app, ("1.5.0", "beta", "linux"), "crash", 7).await;

    // 0.6 % against 0.2 % in 1.4.0: a tripled crash rate fails as a regression.
    let linux = gate::release_gate(
        &app.db,
        app.app_id,
        &query("1.5.0", "stable", Some("Linux")),
    )
    .await
    .unwrap();
    assert_eq!(linux.verdict, Verdict::Fail, "{linux:#?}");
    assert_eq!(linux.baseline_version.as_deref(), Some("1.4.0"));
    let crash = &linux.metrics[0];
    assert_eq!((crash.current.events, crash.current.trials), (120, 20_000));
    let baseline = crash.baseline.unwrap();
    assert_eq!((baseline.events, baseline.trials), (40, 20_000));
    assert_eq!(crash.status, MetricStatus::Fail);
    assert!(crash.p_value.unwrap() < 0.001);
    let updates = &linux.metrics[1];
    assert_eq!((updates.current.events, updates.current.trials), (10, 300));
    assert_eq!(updates.status, MetricStatus::Pass);
    let window = linux.window.unwrap();
    assert_eq!((window.to - window.from).num_hours(), 7 * 24);

    // Windows alone: no crashes, and no earlier version to compare with.
    let windows = gate::release_gate(
        &app.db,
        app.app_id,
        &query("1.5.0", "stable", Some("windows")),
    )
    .await
    .unwrap();
    assert_eq!(windows.verdict, Verdict::Pass, "{windows:#?}");
    assert_eq!(windows.baseline_version, None);
    assert!(
        windows
            .reasons
            .iter()
            .any(|r| r.contains("regressions were not checked"))
    );

    // Every platform of the channel together.
    let all = gate::release_gate(&app.db, app.app_id, &query("1.5.0", "stable", None))
        .await
        .unwrap();
    assert_eq!(
        (all.metrics[0].current.events, all.metrics[0].current.trials),
        (120, 25_000)
    );

    // A baseline asked for by name replaces the previous version.
    let against_old = gate::release_gate(
        &app.db,
        app.app_id,
        &GateQuery {
            baseline: Some("1.3.0".to_owned()),
            ..query("1.5.0", "stable", Some("linux"))
        },
    )
    .await
    .unwrap();
    assert_eq!(against_old.baseline_version.as_deref(), Some("1.3.0"));
    assert_eq!(against_old.metrics[0].baseline.unwrap().trials, 50_000);

    // A version nobody runs, and one of the beta channel's few sessions.
    for (version, channel) in [("9.9.9", "stable"), ("1.5.0", "beta")] {
        let unknown = gate::release_gate(&app.db, app.app_id, &query(version, channel, None))
            .await
            .unwrap();
        assert_eq!(unknown.verdict, Verdict::InsufficientData, "{unknown:#?}");
    }
    app.stop().await;
}

async fn policies_apply_per_channel_over_the_app_default(backend: Backend) {
    let app = spawn(backend).await;
    let release = ("2.0.0", "beta", "macos");
    send_usage(&app, release, "session", 500).await;
    send_reports(&app, release, "crash", 2).await;
    let beta = query("2.0.0", "beta", None);
    let verdict = |app: &TestApp| {
        let (db, app_id, beta) = (app.db.clone(), app.app_id, beta.clone());
        async move {
            gate::release_gate(&db, app_id, &beta)
                .await
                .unwrap()
                .verdict
        }
    };

    let (default, source) = policy::effective(&app.db, app.app_id, Some("beta"))
        .await
        .unwrap();
    assert_eq!(
        (default, source),
        (GatePolicy::default(), PolicySource::Default)
    );
    // 500 sessions are under the default's minimum of 1000.
    assert_eq!(verdict(&app).await, Verdict::InsufficientData);

    let account_id = app
        .scalar(&format!(
            "SELECT account_id FROM apps WHERE id = {}",
            app.app_id
        ))
        .await;
    let actor = Actor {
        account_id,
        name: "cli",
    };
    let mut app_wide = GatePolicy::default();
    app_wide.crash_rate.min_sample = 400;
    policy::save(&app.db, app.app_id, None, &app_wide, &actor)
        .await
        .unwrap();
    assert_eq!(verdict(&app).await, Verdict::Pass);

    let mut beta_only = app_wide;
    beta_only.crash_rate.max_rate = Some(0.001);
    beta_only.confidence = 0.9;
    policy::save(&app.db, app.app_id, Some("beta"), &beta_only, &actor)
        .await
        .unwrap();
    // 2 crashes in 500 sessions: 0.4 %, credibly above 0.1 % at 90 %.
    assert_eq!(verdict(&app).await, Verdict::Fail);
    assert_eq!(
        policy::effective(&app.db, app.app_id, Some("beta"))
            .await
            .unwrap(),
        (beta_only, PolicySource::Channel)
    );
    assert_eq!(
        policy::effective(&app.db, app.app_id, Some("stable"))
            .await
            .unwrap(),
        (app_wide, PolicySource::App)
    );

    // Saving again replaces the channel's policy rather than adding a second one.
    policy::save(&app.db, app.app_id, Some("beta"), &app_wide, &actor)
        .await
        .unwrap();
    assert_eq!(verdict(&app).await, Verdict::Pass);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM gate_policies").await, 2);
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'set_gate_policy'")
            .await,
        3
    );

    let mut invalid = app_wide;
    invalid.confidence = 1.5;
    assert!(
        policy::save(&app.db, app.app_id, None, &invalid, &actor)
            .await
            .is_err()
    );
    app.stop().await;
}
