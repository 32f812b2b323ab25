//! Release gating against the real server, on SQLite and PostgreSQL (DESIGN §8): reports and
//! usage go in over REST, verdicts come out of the gate.

use std::collections::HashSet;

use crate::common::{
    ADMIN_EMAIL, ADMIN_PASSWORD, Backend, TestApp, data, error_code, graphql, json, login,
};
use entity::app_access;
use rollwatch::accounts;
use rollwatch::apps;
use rollwatch::auth::AppScope;
use rollwatch::auth::tokens::{self, TokenSpec};
use rollwatch::gate::evaluate::{MetricStatus, Verdict};
use rollwatch::gate::policy::{self, GatePolicy};
use rollwatch::gate::{self, GateQuery};
use rollwatch::model::Role;
use sea_orm::{ActiveModelTrait, Set};
use serde_json::{Value, json};

on_both_databases!(
    the_gate_measures_releases_from_ingested_reports_and_usage,
    policies_apply_per_channel_over_the_app_default,
    the_gate_command_exits_with_each_verdict,
    only_readers_of_the_app_get_a_gate_and_only_admins_set_policies,
);

/// The test server with a rate limit that lets a test send a few hundred reports at once.
async fn spawn(backend: Backend) -> TestApp {
    TestApp::spawn_with(
        backend,
        &[("REPORTS_RATE_LIMIT_PER_KEY_PER_MINUTE", "100000")],
    )
    .await
}

pub(crate) async fn send_usage(app: &TestApp, release: (&str, &str, &str), kind: &str, count: u64) {
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
pub(crate) async fn send_reports(
    app: &TestApp,
    release: (&str, &str, &str),
    event_type: &str,
    count: u64,
) {
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
    send_usage(&app, previous, "session", 100_000).await;
    send_reports(&app, previous, "crash", 200).await;
    send_usage(&app, release, "session", 100_000).await;
    send_reports(&app, release, "crash", 600).await;
    send_usage(&app, release, "update_succeeded", 2990).await;
    send_reports(&app, release, "update_failed", 10).await;
    send_usage(&app, ("1.5.0", "stable", "windows"), "session", 5000).await;
    // Other channels and platforms must not leak into the numbers.
    send_usage(&app, ("1.5.0", "beta", "linux"), "session", 7).await;
    send_reports(&app, ("1.5.0", "beta", "linux"), "crash", 7).await;

    // 0.6 % against 0.2 % in 1.4.0 over 100 000 sessions each: a tripled crash rate fails as a regression.
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
    assert_eq!((crash.current.events, crash.current.trials), (600, 100_000));
    let baseline = crash.baseline.unwrap();
    assert_eq!((baseline.events, baseline.trials), (200, 100_000));
    assert_eq!(crash.status, MetricStatus::Fail);
    assert!(crash.ratio_lower.unwrap() > 1.2, "{crash:?}");
    let updates = &linux.metrics[1];
    assert_eq!((updates.current.events, updates.current.trials), (10, 3000));
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
        (600, 105_000)
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

    let effective = |channel: Option<&'static str>| {
        let (db, app_id) = (app.db.clone(), app.app_id);
        async move { policy::effective(&db, app_id, channel).await.unwrap() }
    };
    assert_eq!(effective(Some("beta")).await, GatePolicy::default());
    // 500 sessions are under the default's minimum of 1000.
    assert_eq!(verdict(&app).await, Verdict::InsufficientData);

    let mut app_wide = GatePolicy::default();
    app_wide.crash_rate.min_sample = 400;
    policy::set(&app.db, &app.operator(), app.app_id, None, |_| app_wide)
        .await
        .unwrap();
    assert_eq!(verdict(&app).await, Verdict::Pass);

    let mut beta_only = app_wide;
    beta_only.crash_rate.min_sample = 5000;
    beta_only.confidence = 0.9;
    policy::set(&app.db, &app.operator(), app.app_id, Some("beta"), |_| {
        beta_only
    })
    .await
    .unwrap();
    // No crash in 500 sessions is credibly under 2 %, but beta asks for 5000 sessions.
    assert_eq!(verdict(&app).await, Verdict::InsufficientData);
    assert_eq!(effective(Some("beta")).await, beta_only);
    assert_eq!(effective(Some("stable")).await, app_wide);
    assert_eq!(effective(None).await, app_wide);

    // Saving again replaces the channel's policy rather than adding a second one.
    policy::set(&app.db, &app.operator(), app.app_id, Some("beta"), |_| {
        app_wide
    })
    .await
    .unwrap();
    assert_eq!(verdict(&app).await, Verdict::Pass);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM gate_policies").await, 2);

    let mut invalid = app_wide;
    invalid.confidence = 1.5;
    assert!(
        policy::set(&app.db, &app.operator(), app.app_id, None, |_| invalid)
            .await
            .is_err()
    );
    app.stop().await;
}

/// A read-only CI token of the test app's account, for `app_id` only.
pub(crate) async fn ci_token(app: &TestApp, app_id: i64) -> String {
    let spec = TokenSpec {
        name: "release pipeline",
        scope: AppScope::Only(HashSet::from([app_id])),
        expires_at: None,
    };
    tokens::create(&app.db, &app.operator(), spec)
        .await
        .unwrap()
        .token
}

/// A second app in the test app's account.
pub(crate) async fn other_app(app: &TestApp) -> i64 {
    apps::create(&app.db, &app.operator(), "other")
        .await
        .unwrap()
        .0
        .id
}

/// A signed-in member of the test app's account, with access to `app_id` when given.
pub(crate) async fn member(app: &TestApp, email: &str, app_id: Option<i64>) -> String {
    const PASSWORD: &str = "member-password-123";
    let account = accounts::find_account(&app.db, None).await.unwrap();
    let new_user = accounts::NewUser::prepare(email, Some(PASSWORD), Role::Member).unwrap();
    let created = accounts::create_user(&app.db, account.id, new_user)
        .await
        .unwrap();
    if let Some(app_id) = app_id {
        app_access::ActiveModel {
            user_id: Set(created.user.id),
            app_id: Set(app_id),
        }
        .insert(&app.db)
        .await
        .unwrap();
    }
    login(app, email, PASSWORD).await
}

/// What a run of the `rollwatch` binary left.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// `rollwatch gate` run as a process against the test server, as the README's CI example runs
/// it: the server and the token in ROLLWATCH_URL and ROLLWATCH_TOKEN.
async fn rollwatch_gate(app: &TestApp, token: &str, args: &[&str]) -> Run {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_rollwatch"))
        .arg("gate")
        .args(args)
        .env("ROLLWATCH_URL", app.url(""))
        .env("ROLLWATCH_TOKEN", token)
        .output()
        .await
        .unwrap();
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

const SET_POLICY: &str = "mutation($app: ID!, $channel: String, $policy: GatePolicyInput!) {
  setGatePolicy(appId: $app, channel: $channel, policy: $policy) {
    confidence windowHours crashRate { maxRate maxRegression minSample required }
  }
}";

async fn the_gate_command_exits_with_each_verdict(backend: Backend) {
    let app = spawn(backend).await;
    let token = ci_token(&app, app.app_id).await;
    // 1.5.0 crashes far less than 1.4.0 (credibly within +20 % of it); 1.6.0 thirty times as
    // often as 1.5.0; 1.7.0 is new.
    for (version, crashes) in [("1.4.0", 100), ("1.5.0", 4), ("1.6.0", 120)] {
        let release = (version, "stable", "linux");
        send_usage(&app, release, "session", 20_000).await;
        send_reports(&app, release, "crash", crashes).await;
    }
    send_usage(&app, ("1.7.0", "stable", "linux"), "session", 300).await;
    let release = |version: &'static str| {
        [
            "--app",
            "editor",
            "--version",
            version,
            "--channel",
            "stable",
        ]
    };

    let pass = rollwatch_gate(&app, &token, &release("1.5.0")).await;
    assert_eq!(pass.code, Some(0), "{pass:?}");
    assert!(pass.stdout.contains("baseline 1.4.0"), "{}", pass.stdout);
    assert!(pass.stdout.contains("\nVerdict: PASS\n"), "{}", pass.stdout);

    let fail = rollwatch_gate(&app, &token, &release("1.6.0")).await;
    assert_eq!(fail.code, Some(1), "{fail:?}");
    let crash_row = fail
        .stdout
        .lines()
        .find(|l| l.starts_with("crash rate"))
        .unwrap();
    assert!(
        crash_row.contains("120/20000") && crash_row.contains("+2900%"),
        "{}",
        fail.stdout
    );
    assert!(fail.stdout.contains("\nVerdict: FAIL\n"), "{}", fail.stdout);

    let thin = rollwatch_gate(&app, &token, &release("1.7.0")).await;
    assert_eq!(thin.code, Some(2), "{thin:?}");
    assert!(thin.stdout.contains("only 300 sessions"), "{}", thin.stdout);

    // The app by id, and the answer as JSON.
    let id = app.app_id.to_string();
    let json_run = rollwatch_gate(
        &app,
        &token,
        &[
            "--app",
            &id,
            "--version",
            "1.6.0",
            "--channel",
            "stable",
            "--json",
        ],
    )
    .await;
    assert_eq!(json_run.code, Some(1), "{json_run:?}");
    let answer: Value = serde_json::from_str(&json_run.stdout).unwrap();
    assert_eq!(answer["verdict"], "FAIL");
    assert_eq!(answer["baselineVersion"], "1.5.0");
    assert_eq!(answer["metrics"][0]["current"]["events"], 120);

    // Whatever goes wrong is 3, never a verdict.
    let other_token = ci_token(&app, other_app(&app).await).await;
    let missing_channel = ["--app", "editor", "--version", "1.5.0"];
    for (what, token, args) in [
        (
            "a token of another app",
            other_token.as_str(),
            &release("1.5.0")[..],
        ),
        (
            "a revoked or made-up token",
            "rwt_0000",
            &release("1.5.0")[..],
        ),
        (
            "an unknown app",
            token.as_str(),
            &["--app", "nope", "--version", "1", "--channel", "stable"][..],
        ),
        ("a missing option", token.as_str(), &missing_channel[..]),
    ] {
        let run = rollwatch_gate(&app, token, args).await;
        assert_eq!(run.code, Some(3), "{what}: {run:?}");
        assert!(!run.stderr.is_empty(), "{what}: says why");
    }

    // An admin lowers the channel's minimum through GraphQL: the next run passes 1.7.0.
    let admin = login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let answer = graphql(
        &app,
        Some(&admin),
        SET_POLICY,
        json!({ "app": id, "channel": "stable", "policy": { "crashRate": { "minSample": 200 } } }),
    )
    .await;
    assert_eq!(
        data(&answer)["setGatePolicy"]["crashRate"]["minSample"],
        200
    );
    // Past the minimum now, but 300 sessions cannot rule out a +20 % regression: no PASS, and
    // the reasons say how much more data would decide.
    let past_minimum = rollwatch_gate(&app, &token, &release("1.7.0")).await;
    assert_eq!(past_minimum.code, Some(2), "{past_minimum:?}");
    assert!(
        !past_minimum.stdout.contains("only 300 sessions"),
        "{}",
        past_minimum.stdout
    );
    assert!(
        past_minimum.stdout.contains("more sessions"),
        "{}",
        past_minimum.stdout
    );
    app.stop().await;
}

async fn only_readers_of_the_app_get_a_gate_and_only_admins_set_policies(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.app_id.to_string();
    let other = other_app(&app).await;
    let admin = login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let reader = member(&app, "reader@example.com", Some(app.app_id)).await;
    let outsider = member(&app, "outsider@example.com", Some(other)).await;
    let in_scope = ci_token(&app, app.app_id).await;
    let out_of_scope = ci_token(&app, other).await;

    let read = |bearer: Option<String>, app_id: String| {
        let app = &app;
        async move {
            graphql(
                app,
                bearer.as_deref(),
                "query($app: ID!) {
                   releaseGate(appId: $app, version: \"1.0.0\", channel: \"stable\") { verdict }
                   gatePolicy(appId: $app) { confidence }
                 }",
                json!({ "app": app_id }),
            )
            .await
        }
    };
    for (who, bearer, allowed) in [
        ("the admin", &admin, true),
        ("a member with access", &reader, true),
        ("a token scoped to the app", &in_scope, true),
        ("a member without access", &outsider, false),
        ("a token scoped to another app", &out_of_scope, false),
    ] {
        let answer = read(Some(bearer.clone()), id.clone()).await;
        if allowed {
            assert_eq!(
                data(&answer)["releaseGate"]["verdict"],
                "INSUFFICIENT_DATA",
                "{who}"
            );
            assert_eq!(data(&answer)["gatePolicy"]["confidence"], 0.95, "{who}");
        } else {
            assert_eq!(error_code(&answer), Some("FORBIDDEN"), "{who}: {answer}");
            assert_eq!(answer["data"], Value::Null, "{who} learns nothing");
        }
    }
    // An app that does not exist is as forbidden as one the caller may not read.
    let unknown = read(Some(admin.clone()), "999999".to_owned()).await;
    assert_eq!(error_code(&unknown), Some("FORBIDDEN"));
    assert_eq!(
        error_code(&read(None, id.clone()).await),
        Some("UNAUTHENTICATED")
    );

    let set = |bearer: &str, channel: Value, policy: Value| {
        let (app, bearer, id) = (&app, bearer.to_owned(), id.clone());
        async move {
            graphql(
                app,
                Some(&bearer),
                SET_POLICY,
                json!({ "app": id, "channel": channel, "policy": policy }),
            )
            .await
        }
    };
    let change = json!({ "confidence": 0.99, "crashRate": { "maxRate": null, "minSample": 50 } });
    for (who, bearer) in [("a member with access", &reader), ("a token", &in_scope)] {
        let answer = set(bearer, json!("beta"), change.clone()).await;
        assert_eq!(error_code(&answer), Some("FORBIDDEN"), "{who}: {answer}");
    }
    let answer = set(&admin, json!("beta"), change).await;
    let beta = &data(&answer)["setGatePolicy"];
    assert_eq!(beta["confidence"], 0.99);
    assert_eq!(
        beta["crashRate"],
        json!({ "maxRate": null, "maxRegression": 0.2, "minSample": 50, "required": true })
    );
    // Left out means kept.
    let answer = set(&admin, json!("beta"), json!({ "windowHours": 24 })).await;
    let beta = &data(&answer)["setGatePolicy"];
    assert_eq!(
        (beta["confidence"].clone(), beta["windowHours"].clone()),
        (json!(0.99), json!(24))
    );
    assert_eq!(beta["crashRate"]["minSample"], 50);

    let invalid = set(&admin, Value::Null, json!({ "confidence": 2.0 })).await;
    assert_eq!(error_code(&invalid), Some("BAD_USER_INPUT"), "{invalid}");
    assert_eq!(invalid["errors"][0]["extensions"]["field"], "confidence");

    let policy_of = |channel: Value| {
        let (app, admin, id) = (&app, admin.clone(), id.clone());
        async move {
            let answer = graphql(
                app,
                Some(&admin),
                "query($app: ID!, $channel: String) { gatePolicy(appId: $app, channel: $channel) { confidence windowHours } }",
                json!({ "app": id, "channel": channel }),
            )
            .await;
            data(&answer)["gatePolicy"].clone()
        }
    };
    assert_eq!(
        policy_of(json!("beta")).await,
        json!({ "confidence": 0.99, "windowHours": 24 })
    );
    assert_eq!(
        policy_of(json!("stable")).await,
        json!({ "confidence": 0.95, "windowHours": 168 })
    );
    assert_eq!(
        policy_of(Value::Null).await,
        json!({ "confidence": 0.95, "windowHours": 168 })
    );

    let admin_id = app
        .scalar(&format!(
            "SELECT id FROM users WHERE email = '{ADMIN_EMAIL}'"
        ))
        .await;
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'set_gate_policy' AND actor = 'user:{admin_id}' AND target_id = '{id}'"
        ))
        .await,
        2
    );
    app.stop().await;
}
