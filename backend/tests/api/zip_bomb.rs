//! A gzip bomb is refused without being inflated: the server's memory stays bounded.
//! The measurement runs alone in a process of its own (this test binary started again for
//! this one test) so no other test moves the process's peak memory.

use std::io::Write;

use crate::common;
use crate::common::{Backend, TestApp, json, report};
use base64::Engine;
use serde_json::json;

/// Peak resident memory of this process (the server runs in it), in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Set in the process the test starts again for itself.
const ALONE: &str = "ROLLWATCH_TEST_ZIP_BOMB_ALONE";

#[test]
fn a_gzip_bomb_is_refused_without_inflating_it() {
    if std::env::var_os(ALONE).is_some() {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(refused_without_inflating_it());
        return;
    }
    // This binary's name of the test: its module path without the crate.
    let (_, module) = module_path!().split_once("::").unwrap();
    let name = format!("{module}::a_gzip_bomb_is_refused_without_inflating_it");
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name.as_str(), "--exact", "--test-threads=1", "--nocapture"])
        .env(ALONE, "1")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(
        output.status.success() && stdout.contains("test result: ok. 1 passed"),
        "the test alone in its own process failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
}

async fn refused_without_inflating_it() {
    // 120 MiB of zeros, compressed a chunk at a time so the test itself never holds them.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..120 {
        encoder.write_all(&chunk).unwrap();
    }
    let bomb = encoder.finish().unwrap();
    assert!(
        bomb.len() < 131_072,
        "fits the default compressed cap: {}",
        bomb.len()
    );
    let data = base64::engine::general_purpose::STANDARD.encode(&bomb);

    let app = TestApp::spawn(Backend::Sqlite).await;
    // Warm up the request path with small details, then measure.
    let mut body = report("1.0", "stable", "linux", "OOM");
    body["details"] = json!({ "encoding": "gzip", "data": common::gzip_base64(b"{}") });
    assert_eq!(app.report(&body).await.status(), 202);
    body["details"]["data"] = json!(data);
    let before = peak_rss_kib();
    for _ in 0..5 {
        let (status, answer) = json(app.report(&body).await).await;
        assert_eq!(status, 413, "{answer}");
        assert_eq!(answer["error"]["field"], json!("details.data"));
    }
    let grown_mib = (peak_rss_kib() - before) / 1024;
    assert!(
        grown_mib < 32,
        "peak memory grew by {grown_mib} MiB for a 120 MiB bomb"
    );
    assert_eq!(
        app.scalar("SELECT SUM(count) FROM report_groups").await,
        1,
        "only the warm-up counted"
    );
    app.stop().await;
}
