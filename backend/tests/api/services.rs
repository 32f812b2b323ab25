//! One service per operation, one roll-up for every view: the operator's shell writes the same
//! audit rows as the API, and the dashboard and the gate count a release the same way.

use std::process::Command;

use crate::common::{ADMIN_EMAIL, ADMIN_PASSWORD, Backend, TestApp, data, graphql, json, login};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

on_both_databases!(
    operator_commands_are_audited_like_their_api_twins,
    the_dashboard_and_the_gate_count_a_release_alike,
);

fn rollwatch(app: &TestApp, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_rollwatch"))
        .args(args)
        .env("DATABASE_URL", &app.database.url)
        .env("ROLLWATCH_DATA_DIR", app.data_dir.path())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "rollwatch {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// `(actor, action, target_type)` of the account's audit rows of `actions`, oldest first.
async fn audit_rows(app: &TestApp, token: &str, actions: &[&str]) -> Vec<(String, String, String)> {
    let answer = graphql(
        app,
        Some(token),
        "{ auditLog(first: 500) { actor action targetType targetId } }",
        json!({}),
    )
    .await;
    let mut rows: Vec<(String, String, String)> = data(&answer)["auditLog"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| actions.contains(&row["action"].as_str().unwrap_or("")))
        .map(|row| {
            (
                row["actor"].as_str().unwrap().to_owned(),
                row["action"].as_str().unwrap().to_owned(),
                row["targetType"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    rows.reverse();
    rows
}

async fn operator_commands_are_audited_like_their_api_twins(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let actions = [
        "create_app",
        "rotate_report_key",
        "revoke_report_key",
        "create_api_token",
    ];

    // The test app itself was created from the shell.
    let before = audit_rows(&app, &admin, &actions).await.len();

    // Through the API, as the admin.
    let created = graphql(
        &app,
        Some(&admin),
        "mutation { createApp(name: \"via-api\") { id } }",
        json!({}),
    )
    .await;
    let api_app = data(&created)["createApp"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for mutation in [
        "mutation($id: ID!) { rotateReportKey(appId: $id) { prefix } }",
        "mutation($id: ID!) { revokeReportKey(appId: $id) }",
        "mutation($id: ID!) { createApiToken(name: \"pipeline\", appIds: [$id]) { token } }",
    ] {
        let answer = graphql(&app, Some(&admin), mutation, json!({ "id": api_app })).await;
        data(&answer);
    }
    let from_api = audit_rows(&app, &admin, &actions).await.split_off(before);

    // The same four operations from a shell.
    let key = rollwatch(&app, &["apps", "create", "via-shell"]);
    assert!(key.starts_with("rpk_"), "{key}");
    let rotated = rollwatch(&app, &["keys", "rotate", "via-shell"]);
    assert!(rotated.starts_with("rpk_") && rotated != key);
    rollwatch(&app, &["keys", "revoke", "via-shell"]);
    let token = rollwatch(
        &app,
        &["tokens", "create", "pipeline", "--app", "via-shell"],
    );
    assert!(token.starts_with("rwt_"), "{token}");
    let all = audit_rows(&app, &admin, &actions).await;
    let from_shell = &all[before + from_api.len()..];

    let admin_label = from_api[0].0.clone();
    assert!(admin_label.starts_with("user:"), "{admin_label}");
    let twin = |rows: &[(String, String, String)], who: &str| {
        rows.iter()
            .map(|(actor, action, target)| {
                assert_eq!(actor, who, "{action} by {actor}");
                (action.clone(), target.clone())
            })
            .collect::<Vec<_>>()
    };
    let expected: Vec<(String, String)> = [
        ("create_app", "app"),
        ("rotate_report_key", "app"),
        ("revoke_report_key", "app"),
        ("create_api_token", "api_token"),
    ]
    .iter()
    .map(|(a, t)| ((*a).to_owned(), (*t).to_owned()))
    .collect();
    assert_eq!(twin(&from_api, &admin_label), expected);
    assert_eq!(twin(from_shell, "operator"), expected);
    app.stop().await;
}

const VERSION: &str = "2.0.0";
const CHANNEL: &str = "stable";

async fn send(app: &TestApp, path: &str, body: Value) {
    let (status, answer) = json(app.post(path, Some(&app.key), &body).await).await;
    assert_eq!(status, 202, "{path}: {answer}");
}

async fn the_dashboard_and_the_gate_count_a_release_alike(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[("REPORTS_RATE_LIMIT_PER_KEY_PER_MINUTE", "100000")],
    )
    .await;
    let release = |platform: &str| {
        json!({
            "application": { "name": "editor", "version": VERSION, "channel": CHANNEL },
            "system": { "platform": platform, "arch": "x86_64" },
        })
    };
    for (platform, sessions, crashes) in [("linux", 700, 9), ("windows", 500, 4)] {
        let mut usage = release(platform);
        usage["kind"] = json!("session");
        usage["count"] = json!(sessions);
        send(&app, "/reports/usage", usage).await;
        let mut report = release(platform);
        report["event"] = json!({ "type": "crash", "reason": "SIGSEGV" });
        send(
            &app,
            "/reports/ingest/batch",
            json!({ "reports": vec![report; crashes] }),
        )
        .await;
    }
    // A report of another channel, and counts of the release 100 days ago: outside the
    // gate's window, inside the dashboard's whole range.
    let mut beta = release("linux");
    beta["application"]["channel"] = json!("beta");
    beta["event"] = json!({ "type": "crash", "reason": "SIGSEGV" });
    send(&app, "/reports/ingest", beta).await;
    let old_hour = (chrono::Utc::now().timestamp() / 3600 - 24 * 100) * 3600;
    app.db
        .execute_unprepared(&format!(
            "INSERT INTO usage_counts (app_id, version, channel, platform, arch, kind, hour, count) \
             VALUES ({}, '{VERSION}', '{CHANNEL}', 'linux', 'x86_64', 'session', {old_hour}, 5000)",
            app.app_id
        ))
        .await
        .unwrap();
    app.db
        .execute_unprepared(&format!(
            "INSERT INTO report_counts (app_id, group_hash, hour, count) \
             SELECT app_id, group_hash, {old_hour}, 50 FROM report_groups \
             WHERE app_id = {} AND version = '{VERSION}' AND channel = '{CHANNEL}' AND platform = 'linux'",
            app.app_id
        ))
        .await
        .unwrap();
    // The writer keeps the roll-ups with the counts, and the daily fold sums the days before
    // its horizon into weeks; rows written by hand need theirs too.
    let old_day = old_hour - old_hour % (24 * 3600);
    let old_week = rollwatch::rollup::start_of_week(old_day);
    for (table, kind, time, at, count) in [
        ("release_counts", "crash", "hour", old_hour, 50),
        ("release_day_counts", "crash", "day", old_day, 50),
        ("usage_day_counts", "session", "day", old_day, 5000),
        ("release_week_counts", "crash", "week", old_week, 50),
        ("usage_week_counts", "session", "week", old_week, 5000),
    ] {
        let kind_column = if kind == "crash" {
            "event_type"
        } else {
            "kind"
        };
        app.db
            .execute_unprepared(&format!(
                "INSERT INTO {table} (app_id, version, channel, platform, arch, {kind_column}, \
                 {time}, count) VALUES ({}, '{VERSION}', '{CHANNEL}', 'linux', 'x86_64', \
                 '{kind}', {at}, {count})",
                app.app_id
            ))
            .await
            .unwrap();
    }

    let admin = login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let gate = graphql(
        &app,
        Some(&admin),
        "query($app: ID!, $v: String!, $c: String!) { releaseGate(appId: $app, version: $v, channel: $c) {
            window { from to }
            metrics { metric current { events trials rate } } } }",
        json!({ "app": app.app_id.to_string(), "v": VERSION, "c": CHANNEL }),
    )
    .await;
    let gate = &data(&gate)["releaseGate"];
    let crash = gate["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == "CRASH_RATE")
        .unwrap()["current"]
        .clone();
    assert_eq!(crash["events"], json!(13));
    assert_eq!(crash["trials"], json!(1200));

    let health = |filter: Value| {
        let app = &app;
        let admin = admin.clone();
        async move {
            let answer = graphql(
                app,
                Some(&admin),
                "query($app: ID!, $f: ReportFilter) { rolloutHealth(appId: $app, groupBy: [VERSION, CHANNEL], filter: $f) {
                    version channel crashes sessions crashRate } }",
                json!({ "app": app.app_id.to_string(), "f": filter }),
            )
            .await;
            data(&answer)["rolloutHealth"]
                .as_array()
                .unwrap()
                .iter()
                .find(|cell| cell["version"] == VERSION && cell["channel"] == CHANNEL)
                .cloned()
                .unwrap()
        }
    };
    let window =
        health(json!({ "since": gate["window"]["from"], "until": gate["window"]["to"] })).await;
    assert_eq!(window["crashes"], crash["events"]);
    assert_eq!(window["sessions"], crash["trials"]);
    assert_eq!(window["crashRate"], crash["rate"]);

    let whole = health(json!(null)).await;
    assert_eq!(whole["crashes"], json!(13 + 50));
    assert_eq!(whole["sessions"], json!(1200 + 5000));
    app.stop().await;
}
