//! Group commit (DESIGN §9, issue 6): many concurrent requests folded into few transactions
//! are all counted, exactly; a request whose transaction fails gets 503 and leaves nothing
//! behind. (SIGTERM in the middle of a burst is in cli.rs.)

use crate::common;
use crate::common::{Backend, TestApp, json, report, report_hash};
use sea_orm::ConnectionTrait;

on_both_databases!(
    concurrent_reports_to_a_few_groups_are_counted_exactly,
    concurrent_reports_to_many_groups_are_counted_exactly,
    a_batch_that_fails_to_commit_answers_503_and_writes_nothing,
);

const SENDERS: usize = 32;

/// A server whose per-key limit a burst of a few thousand reports stays far below.
async fn spawn_without_rate_limit(backend: Backend) -> TestApp {
    TestApp::spawn_with(
        backend,
        &[("REPORTS_RATE_LIMIT_PER_KEY_PER_MINUTE", "1000000")],
    )
    .await
}

async fn concurrent_reports_to_a_few_groups_are_counted_exactly(backend: Backend) {
    burst_across_groups(backend, 3, 1200).await;
}

async fn concurrent_reports_to_many_groups_are_counted_exactly(backend: Backend) {
    burst_across_groups(backend, 400, 1200).await;
}

fn reason(group: usize) -> String {
    format!("BURST_{group:04}")
}

/// `reports` reports spread round-robin over `groups` groups, from `SENDERS` concurrent
/// senders; every report is answered 202 and every group holds exactly its share.
async fn burst_across_groups(backend: Backend, groups: usize, reports: usize) {
    let app = spawn_without_rate_limit(backend).await;
    let statuses = common::send_concurrently(
        &app,
        SENDERS,
        (0..reports)
            .map(|n| report("5.0.0", "beta", "linux", &reason(n % groups)))
            .collect(),
    )
    .await;
    assert!(statuses.iter().all(|&s| s == 202), "{statuses:?}");

    for group in 0..groups {
        let hash = report_hash("5.0.0", "beta", "linux", &reason(group));
        let share = (reports / groups + usize::from(group < reports % groups)) as i64;
        assert_eq!(app.group_count(&hash).await, share, "group {group}");
        assert_eq!(app.hourly_total(&hash).await, share, "group {group}");
    }
    let stored_groups = app
        .scalar(&format!(
            "SELECT COUNT(*) FROM report_groups WHERE app_id = {}",
            app.app_id
        ))
        .await;
    assert_eq!(stored_groups, groups as i64);
    app.stop().await;
}

/// Makes every transaction that writes `report_counts` fail: on SQLite the statement
/// (after `report_groups` was already upserted in the same transaction), on PostgreSQL the
/// COMMIT itself, through a deferred constraint trigger.
async fn break_commits(app: &TestApp) {
    let statements: &[&str] = match app.backend {
        Backend::Sqlite => &["CREATE TRIGGER fail_hourly BEFORE INSERT ON report_counts \
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END"],
        Backend::Postgres => &[
            "CREATE FUNCTION fail_at_commit() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'injected commit failure'; END $$",
            "CREATE CONSTRAINT TRIGGER fail_hourly AFTER INSERT OR UPDATE ON report_counts \
             DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fail_at_commit()",
        ],
    };
    for statement in statements {
        app.db.execute_unprepared(statement).await.unwrap();
    }
}

async fn repair_commits(app: &TestApp) {
    let statement = match app.backend {
        Backend::Sqlite => "DROP TRIGGER fail_hourly",
        Backend::Postgres => "DROP TRIGGER fail_hourly ON report_counts",
    };
    app.db.execute_unprepared(statement).await.unwrap();
}

async fn a_batch_that_fails_to_commit_answers_503_and_writes_nothing(backend: Backend) {
    let app = spawn_without_rate_limit(backend).await;
    let body = report("6.0.0", "stable", "macos", "LOST_IF_ACKNOWLEDGED");
    let hash = report_hash("6.0.0", "stable", "macos", "LOST_IF_ACKNOWLEDGED");

    break_commits(&app).await;
    // Concurrent, so several requests share each failing transaction; long reasons across
    // many groups make a flush big enough to take several statements on PostgreSQL.
    let mut bodies = vec![body.clone(); 100];
    bodies.extend((0..100).map(|n| report("6.0.0", "stable", "macos", &format!("{n:>250}"))));
    let statuses = common::send_concurrently(&app, SENDERS, bodies).await;
    assert!(statuses.iter().all(|&s| s == 503), "{statuses:?}");
    let stored_groups = app
        .scalar(&format!(
            "SELECT COUNT(*) FROM report_groups WHERE app_id = {}",
            app.app_id
        ))
        .await;
    assert_eq!(stored_groups, 0, "no statement of a failed flush kept");
    let (status, answer) = json(app.report(&body).await).await;
    assert_eq!(status, 503);
    assert_eq!(answer["error"]["code"], "store_unavailable");
    assert_eq!(app.group_count(&hash).await, 0, "nothing half-written");
    assert_eq!(app.hourly_total(&hash).await, 0);

    repair_commits(&app).await;
    let statuses = common::send_concurrently(&app, SENDERS, vec![body; 100]).await;
    assert!(statuses.iter().all(|&s| s == 202), "{statuses:?}");
    assert_eq!(app.group_count(&hash).await, 100);
    assert_eq!(app.hourly_total(&hash).await, 100);
    app.stop().await;
}
