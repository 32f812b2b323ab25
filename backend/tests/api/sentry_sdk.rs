//! The Rust `sentry` crate, unchanged, reporting to the real server (issue 14): a child
//! process that is an app using the crate as README's "Use your Sentry SDK" shows it captures
//! a handled error, then either exits or panics. Release health is on (an application session
//! per run), so the crash rate the API reports must be crashes / sessions sent.

use std::process::Stdio;

use serde_json::{Value, json};

use crate::common::{ADMIN_EMAIL, ADMIN_PASSWORD, Backend, TestApp, data, graphql, login};

const CHILD_DSN: &str = "ROLLWATCH_TEST_SENTRY_DSN";
const CHILD_PANICS: &str = "ROLLWATCH_TEST_SENTRY_PANICS";

#[derive(Debug)]
struct ConfigMissing;

impl std::fmt::Display for ConfigMissing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("config file missing")
    }
}

impl std::error::Error for ConfigMissing {}

/// The app: run by `a_rust_app_using_the_sentry_crate_…` in a child process only, where it is
/// the whole program. Between the markers: README's snippet, word for word.
#[test]
fn sentry_child_app() {
    let Ok(dsn) = std::env::var(CHILD_DSN) else {
        return;
    };
    // README: rust snippet begins
    let mut options = sentry::ClientOptions::default();
    options.release = Some("editor@1.4.2+linux.x86_64".into());
    options.environment = Some("beta".into());
    options.auto_session_tracking = true;
    options.session_mode = sentry::SessionMode::Application;
    let _sentry = sentry::init((dsn.as_str(), options));
    // README: rust snippet ends

    // A handled error: accepted, never a rollout failure.
    sentry::capture_error(&ConfigMissing);
    if std::env::var_os(CHILD_PANICS).is_some() {
        let empty: Vec<u32> = Vec::new();
        let index = empty.len() + 3;
        // The panic unwinds through `_sentry`, which ends the session as crashed and flushes.
        println!("{}", empty[index]);
    }
}

/// Runs the child app once against `dsn`; whether it exited cleanly.
async fn run_child(dsn: &str, panics: bool) -> bool {
    let mut command = tokio::process::Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "sentry_sdk::sentry_child_app",
            "--test-threads=1",
        ])
        .env(CHILD_DSN, dsn)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if panics {
        command.env(CHILD_PANICS, "1");
    }
    command.status().await.unwrap().success()
}

async fn a_rust_app_using_the_sentry_crate_reports_its_panic_and_sessions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let dsn = format!("http://{}@{}/{}", app.key, app.addr, app.app_id);

    // One run that exits, one that panics: two sessions, one crash, two handled errors.
    assert!(run_child(&dsn, false).await, "the clean run exits 0");
    assert!(!run_child(&dsn, true).await, "the panicking run fails");

    let admin = login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let groups = graphql(
        &app,
        Some(&admin),
        "query($a: ID!) { reportGroups(appId: $a) { edges { node {
            appName version channel platform arch eventType reason count blobCount } } } }",
        json!({ "a": app.app_id.to_string() }),
    )
    .await;
    let nodes: Vec<Value> = data(&groups)["reportGroups"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|edge| edge["node"].clone())
        .collect();
    // The panic only: the two `capture_error` events are handled, so not counted.
    assert_eq!(
        nodes,
        vec![json!({
            "appName": "editor", "version": "1.4.2", "channel": "beta",
            "platform": "linux", "arch": "x86_64", "eventType": "CRASH",
            "reason": "panic", "count": 1, "blobCount": 1,
        })],
        "{groups}"
    );

    let sessions = app
        .scalar(&format!(
            "SELECT COALESCE(SUM(count), 0) FROM usage_counts WHERE app_id = {} AND kind = 'session'",
            app.app_id
        ))
        .await;
    assert_eq!(sessions, 2, "one session per run, whatever its updates");

    // The release names its platform and arch in its build metadata, so the sessions are
    // sliced like the crash: the rate holds in the platform × arch cell too.
    let health = graphql(
        &app,
        Some(&admin),
        "query($a: ID!) { rolloutHealth(appId: $a, groupBy: [VERSION, CHANNEL, PLATFORM, ARCH]) {
            version channel platform arch crashes sessions crashRate } }",
        json!({ "a": app.app_id.to_string() }),
    )
    .await;
    assert_eq!(
        data(&health)["rolloutHealth"],
        json!([{
            "version": "1.4.2", "channel": "beta", "platform": "linux", "arch": "x86_64",
            "crashes": 1, "sessions": 2, "crashRate": 0.5,
        }]),
        "{health}"
    );
    app.stop().await;
}

on_both_databases!(a_rust_app_using_the_sentry_crate_reports_its_panic_and_sessions);

/// README's "Use your Sentry SDK" shows the very code the SDK tests run: each snippet between
/// its markers, indentation aside, is in README word for word.
#[test]
fn readme_shows_the_snippets_the_tests_run() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let read = |path: &str| std::fs::read_to_string(root.join(path)).unwrap();
    let readme = read("README.md");
    for (path, name) in [
        ("backend/tests/api/sentry_sdk.rs", "rust"),
        ("backend/tests/sentry_python/app.py", "python"),
        ("e2e/sentry/node-app.cjs", "node"),
        ("e2e/sentry/shop.html", "browser"),
    ] {
        let text = read(path);
        let (_, after) = text
            .split_once(&format!("README: {name} snippet begins\n"))
            .unwrap();
        let (snippet, _) = after
            .split_once(&format!("README: {name} snippet ends"))
            .unwrap();
        let (snippet, _) = snippet.rsplit_once('\n').unwrap();
        let indent = snippet
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.len() - l.trim_start().len())
            .min()
            .unwrap_or(0);
        let snippet: Vec<&str> = snippet
            .lines()
            .map(|l| l.get(indent..).unwrap_or(""))
            .collect();
        let snippet = snippet.join("\n");
        assert!(
            readme.contains(&snippet),
            "README lacks the {name} snippet of {path}:\n{snippet}"
        );
    }
}
