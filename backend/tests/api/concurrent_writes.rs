//! Issue 12 item 7: writes that arrive at the same moment take turns. A dozen admins setting
//! gate policies at once, beside app, key, user and token changes, sign-ins, reports with
//! details and the operator's shell (`rollwatch apps create`, a process of its own on the same
//! database), all succeed: none answers `INTERNAL` because another wrote at the same time, and
//! the database holds every change afterwards.

use std::process::{Command, Output};

use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::common::{self, ADMIN_EMAIL, ADMIN_PASSWORD, Backend, TestApp, gzip_base64, report};

on_both_databases!(concurrent_writes_of_every_kind_all_succeed);

const POLICIES: usize = 12;
const APPS: usize = 4;
const ROTATIONS: usize = 4;
const USERS: usize = 3;
const TOKENS: usize = 3;
const LOGINS: usize = 3;
const CLI_APPS: usize = 3;
const REPORTS: usize = 8;

/// `rollwatch apps create NAME` run against the test server's database.
fn cli_create_app(app: &TestApp, name: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rollwatch"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ROLLWATCH_DATA_DIR", app.data_dir.path())
        .env("DATABASE_URL", &app.database.url)
        .env("RUST_LOG", "warn")
        .args(["apps", "create", name])
        .output()
        .unwrap()
}

/// The mutation and its variables for the `i`-th write of `kind`.
fn mutation(kind: &str, i: usize, app_id: i64) -> (String, Value) {
    match kind {
        "policy" => (
            "mutation($a: ID!, $c: String!, $p: GatePolicyInput!) { setGatePolicy(appId: $a, channel: $c, policy: $p) { confidence } }".to_owned(),
            json!({ "a": app_id.to_string(), "c": format!("ch{i}"), "p": { "confidence": 0.9 + i as f64 / 1000.0 } }),
        ),
        "app" => (
            "mutation($n: String!) { createApp(name: $n) { id newReportKey { key } } }".to_owned(),
            json!({ "n": format!("gql-app-{i}") }),
        ),
        "rotate" => (
            "mutation($a: ID!) { rotateReportKey(appId: $a) { key } }".to_owned(),
            json!({ "a": app_id.to_string() }),
        ),
        "user" => (
            "mutation($e: String!, $p: String!) { createUser(email: $e, password: $p, role: MEMBER) { id } }".to_owned(),
            json!({ "e": format!("member{i}@example.com"), "p": "a-long-member-password" }),
        ),
        "token" => (
            "mutation($n: String!) { createApiToken(name: $n) { token } }".to_owned(),
            json!({ "n": format!("pipeline {i}") }),
        ),
        "login" => (
            "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }"
                .to_owned(),
            json!({ "e": ADMIN_EMAIL, "p": ADMIN_PASSWORD }),
        ),
        other => unreachable!("{other}"),
    }
}

async fn concurrent_writes_of_every_kind_all_succeed(backend: Backend) {
    let app = std::sync::Arc::new(TestApp::spawn(backend).await);
    let admin = common::login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;

    let kinds = [
        ("policy", POLICIES),
        ("app", APPS),
        ("rotate", ROTATIONS),
        ("user", USERS),
        ("token", TOKENS),
        ("login", LOGINS),
    ];
    let mut writes = JoinSet::new();
    for (kind, n) in kinds {
        for i in 0..n {
            let (app, admin) = (app.clone(), admin.clone());
            writes.spawn(async move {
                let (query, variables) = mutation(kind, i, app.app_id);
                let answer = common::graphql(&app, Some(&admin), &query, variables).await;
                format!(
                    "{kind} {i}: {}",
                    answer
                        .get("errors")
                        .map_or_else(String::new, Value::to_string)
                )
            });
        }
    }
    for i in 0..REPORTS {
        let app = app.clone();
        writes.spawn(async move {
            // Reports with details write a blob row beside the group commit.
            let mut body = report("1.0.0", "stable", "linux", &format!("SIGSEGV-{i}"));
            body["details"] = json!({ "encoding": "gzip", "data": gzip_base64(b"stack trace") });
            let status = app.report(&body).await.status().as_u16();
            let error = if status == 202 || status == 401 {
                // 401: a concurrent rotation revoked the key first; that is not a write failure.
                String::new()
            } else {
                format!("status {status}")
            };
            format!("report {i}: {error}")
        });
    }
    let mut shell = Vec::new();
    for i in 0..CLI_APPS {
        let app = app.clone();
        shell.push(tokio::task::spawn_blocking(move || {
            cli_create_app(&app, &format!("cli-app-{i}"))
        }));
    }

    let mut failures = Vec::new();
    while let Some(outcome) = writes.join_next().await {
        let outcome = outcome.unwrap();
        if !outcome.ends_with(": ") {
            failures.push(outcome);
        }
    }
    for (i, created) in shell.into_iter().enumerate() {
        let created = created.await.unwrap();
        if !created.status.success() {
            failures.push(format!(
                "cli {i}: {}",
                String::from_utf8_lossy(&created.stderr).trim()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of the concurrent writes failed:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // Every change is there, with its audit row.
    let count = |sql: String| {
        let app = app.clone();
        async move { app.scalar(&sql).await }
    };
    let audited = |action: &str| {
        count(format!(
            "SELECT COUNT(*) FROM audit_log WHERE action = '{action}'"
        ))
    };
    assert_eq!(
        count(format!(
            "SELECT COUNT(*) FROM gate_policies WHERE app_id = {}",
            app.app_id
        ))
        .await,
        POLICIES as i64
    );
    for i in 0..POLICIES {
        let stored = count(format!(
            "SELECT COUNT(*) FROM gate_policies WHERE app_id = {} AND channel = 'ch{i}' AND policy LIKE '%\"confidence\":{}%'",
            app.app_id,
            0.9 + i as f64 / 1000.0
        ))
        .await;
        assert_eq!(stored, 1, "the policy of ch{i}");
    }
    assert_eq!(audited("set_gate_policy").await, POLICIES as i64);
    // The test's own app, the GraphQL ones and the shell's.
    assert_eq!(
        count("SELECT COUNT(*) FROM apps".to_owned()).await,
        (1 + APPS + CLI_APPS) as i64
    );
    for i in 0..APPS {
        let name = format!("gql-app-{i}");
        assert_eq!(
            count(format!("SELECT COUNT(*) FROM apps WHERE name = '{name}'")).await,
            1,
            "{name}"
        );
    }
    for i in 0..CLI_APPS {
        let name = format!("cli-app-{i}");
        assert_eq!(
            count(format!("SELECT COUNT(*) FROM apps WHERE name = '{name}'")).await,
            1,
            "{name}"
        );
    }
    assert_eq!(audited("create_app").await, (1 + APPS + CLI_APPS) as i64);
    // Each rotation made a key and revoked the one before: one active key remains.
    let keys_of_app = |extra: &str| {
        count(format!(
            "SELECT COUNT(*) FROM report_keys WHERE app_id = {}{extra}",
            app.app_id
        ))
    };
    assert_eq!(keys_of_app("").await, (1 + ROTATIONS) as i64);
    assert_eq!(keys_of_app(" AND revoked_at IS NULL").await, 1);
    assert_eq!(audited("rotate_report_key").await, ROTATIONS as i64);
    assert_eq!(
        count("SELECT COUNT(*) FROM users".to_owned()).await,
        (1 + USERS) as i64
    );
    assert_eq!(audited("create_user").await, USERS as i64);
    assert_eq!(
        count("SELECT COUNT(*) FROM api_tokens".to_owned()).await,
        TOKENS as i64
    );
    assert_eq!(audited("create_api_token").await, TOKENS as i64);
    // The sign-in of the test itself, and the concurrent ones.
    assert_eq!(audited("login").await, (1 + LOGINS) as i64);
}
