//! `rollwatch tokens create` (DESIGN §2): a CI token from a shell, printed once, that reads
//! the apps it names and nothing else.

use crate::common::{Backend, TestApp, data, error_code, graphql};
use serde_json::json;

on_both_databases!(a_cli_token_reads_its_apps_only);

async fn a_cli_token_reads_its_apps_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    rollwatch::apps::create(&app.db, &app.operator(), "other")
        .await
        .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rollwatch"))
        .args([
            "tokens",
            "create",
            "release pipeline",
            "--app",
            "editor",
            "--expires-in-days",
            "30",
        ])
        .env("DATABASE_URL", &app.database.url)
        .env("ROLLWATCH_DATA_DIR", app.data_dir.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert!(
        token.starts_with("rwt_") && token.len() == 68,
        "only the token on stdout: {token:?}"
    );

    let apps = graphql(&app, Some(&token), "{ apps { name } }", json!({})).await;
    assert_eq!(data(&apps)["apps"], json!([{ "name": "editor" }]));
    let write = graphql(
        &app,
        Some(&token),
        "mutation { createApp(name: \"x\") { id } }",
        json!({}),
    )
    .await;
    assert_eq!(error_code(&write), Some("FORBIDDEN"));
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM audit_log WHERE actor = 'operator' AND action = 'create_api_token'"
        )
        .await,
        1
    );
    app.stop().await;
}
