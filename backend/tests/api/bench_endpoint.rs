//! `POST /bench/noop`, the benchmark's do-nothing endpoint, exists only when opted in.

use crate::common::{Backend, TestApp, report};

#[tokio::test]
async fn the_noop_endpoint_exists_only_when_opted_in() {
    let body = report("1.0.0", "stable", "linux", "NOOP");

    let default = TestApp::spawn(Backend::Sqlite).await;
    let response = default.post("/bench/noop", None, &body).await;
    assert_eq!(response.status(), 404);
    default.stop().await;

    let opted_in =
        TestApp::spawn_with(Backend::Sqlite, &[("ROLLWATCH_BENCH_ENDPOINTS", "true")]).await;
    assert_eq!(
        opted_in.post("/bench/noop", None, &body).await.status(),
        202
    );
    // It parses like ingestion: a malformed body is still refused.
    let malformed = opted_in
        .client
        .post(opted_in.url("/bench/noop"))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    // And it writes nothing.
    assert_eq!(
        opted_in.scalar("SELECT COUNT(*) FROM report_groups").await,
        0
    );
    opted_in.stop().await;
}
