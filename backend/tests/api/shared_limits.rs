//! Rate limits shared across replicas in Redis (issue 18): three servers on one database and
//! one real Redis (a `redis-server` of the machine's, started for the test on its own port,
//! so stopping it mid-test touches nothing else) let a key's limit through once, not three
//! times; with Redis gone, ingestion goes on with each replica's own limiter and says so.

use std::net::SocketAddr;

use serde_json::Value;

use crate::common::redis::RedisServer;
use crate::common::{Backend, TestApp, json, report};

on_both_databases!(a_key_limit_holds_across_replicas_and_outlives_redis);

/// The status, and `Retry-After` when there is one.
async fn ingest(app: &TestApp, addr: SocketAddr, body: &Value) -> (u16, Option<u64>) {
    let response = app
        .client
        .post(format!("http://{addr}/reports/ingest"))
        .bearer_auth(&app.key)
        .json(body)
        .send()
        .await
        .unwrap();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    (response.status().as_u16(), retry_after)
}

async fn holder(app: &TestApp, addr: SocketAddr) -> Value {
    let response = app
        .client
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .unwrap();
    json(response).await.1["rate_limits"].clone()
}

async fn a_key_limit_holds_across_replicas_and_outlives_redis(backend: Backend) {
    const LIMIT: usize = 30;
    let mut redis = RedisServer::start();
    let url = redis.url();
    let limit = LIMIT.to_string();
    let vars = [
        ("REPORTS_RATE_LIMIT_PER_KEY_PER_MINUTE", limit.as_str()),
        ("REDIS_URL", url.as_str()),
    ];
    let app = TestApp::spawn_with(backend, &vars).await;
    let replicas = [app.replica(&vars).await, app.replica(&vars).await];
    let addrs = [app.addr, replicas[0].addr, replicas[1].addr];
    for addr in addrs {
        assert_eq!(holder(&app, addr).await, "redis");
    }

    // Three times the limit, spread over the three replicas: the key gets its 30 once. The
    // limit refills one report every 2 s, so a slow run may see one or two more.
    let body = report("1.0.0", "stable", "linux", "SIGSEGV");
    let mut accepted = 0;
    for n in 0..3 * LIMIT {
        match ingest(&app, addrs[n % 3], &body).await {
            (202, _) => accepted += 1,
            // One report more is due within the 2 s interval of a 30-a-minute limit.
            (429, Some(retry_after)) => assert!((1..=2).contains(&retry_after), "{retry_after}"),
            other => panic!("{other:?}"),
        }
    }
    assert!(
        (LIMIT..=LIMIT + 2).contains(&accepted),
        "{accepted} accepted across three replicas"
    );
    assert_eq!(
        app.group_count(&crate::common::report_hash(
            "1.0.0", "stable", "linux", "SIGSEGV"
        ))
        .await,
        accepted as i64
    );

    // Redis goes away mid-traffic: every replica keeps taking reports on its own limiter,
    // and says so; nothing becomes a 5xx.
    redis.stop();
    for n in 0..6 {
        assert_eq!(ingest(&app, addrs[n % 3], &body).await.0, 202);
    }
    for addr in addrs {
        assert_eq!(holder(&app, addr).await, "in-process (Redis unreachable)");
    }
    for replica in replicas {
        replica.stop().await;
    }
    app.stop().await;
}
