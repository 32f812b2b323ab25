//! Details kept as private blobs: the local folder and a real S3 server, the per-group cap,
//! storage failures that keep the count, and the retention sweep (DESIGN §5, §7).

use crate::common;
use crate::common::s3::S3Server;
use crate::common::{Backend, TestApp, json, report};
use base64::Engine;
use rollwatch::blobs::BlobStore;
use rollwatch::config::Config;
use serde_json::{Value, json};

on_both_databases!(
    local_details_are_stored_under_the_documented_key_up_to_the_cap,
    s3_details_are_stored_under_the_documented_key_up_to_the_cap,
);

fn with_details(text: &str) -> (Value, Vec<u8>) {
    let body = common::with_details(
        report("5.0.0", "nightly", "linux", "SIGABRT"),
        text.as_bytes(),
    );
    let gzip = base64::engine::general_purpose::STANDARD
        .decode(body["details"]["data"].as_str().unwrap())
        .unwrap();
    (body, gzip)
}

/// Sends three reports with details to a group capped at two blobs; returns the group hash,
/// the stored keys and the gzip bytes of the first two.
async fn send_three(app: &TestApp) -> (String, Vec<String>, Vec<Vec<u8>>) {
    let mut sent = Vec::new();
    let mut hash = String::new();
    for i in 0..3 {
        let (body, gzip) = with_details(&format!("{{\"stack\": [\"frame {i}\"]}}"));
        let (status, answer) = json(app.report(&body).await).await;
        assert_eq!(status, 202, "{answer}");
        assert_eq!(
            answer["details_stored"],
            json!(i < 2),
            "report {i}: {answer}"
        );
        hash = answer["group"].as_str().unwrap().to_owned();
        sent.push(gzip);
    }
    assert_eq!(app.group_count(&hash).await, 3, "every report is counted");
    assert_eq!(
        app.scalar(&format!(
            "SELECT blob_count FROM report_groups WHERE group_hash = '{hash}'"
        ))
        .await,
        2
    );
    let rows = app
        .db
        .query_all_raw(sea_orm::Statement::from_string(
            app.db.get_database_backend(),
            format!("SELECT id, storage_key FROM report_blobs WHERE group_hash = '{hash}' ORDER BY created_at"),
        ))
        .await
        .unwrap();
    let keys: Vec<String> = rows
        .iter()
        .map(|row| {
            let id: String = row.try_get("", "id").unwrap();
            let key: String = row.try_get("", "storage_key").unwrap();
            assert_eq!(key, format!("reports/{}/{hash}/{id}.gz", app.app_id));
            key
        })
        .collect();
    assert_eq!(keys.len(), 2);
    sent.truncate(2);
    (hash, keys, sent)
}

use sea_orm::ConnectionTrait;

async fn local_details_are_stored_under_the_documented_key_up_to_the_cap(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("REPORTS_MAX_BLOBS_PER_GROUP", "2")]).await;
    let (_, keys, sent) = send_three(&app).await;
    for (key, gzip) in keys.iter().zip(&sent) {
        let stored = std::fs::read(app.data_dir.path().join("blobs").join(key)).unwrap();
        assert_eq!(&stored, gzip, "the blob is the details as sent");
    }
    app.stop().await;
}

async fn s3_details_are_stored_under_the_documented_key_up_to_the_cap(backend: Backend) {
    let s3 = S3Server::start().await;
    let mut vars: Vec<(&str, String)> = s3.env();
    vars.push(("REPORTS_MAX_BLOBS_PER_GROUP", "2".to_owned()));
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = TestApp::spawn_with(backend, &vars).await;
    let (_, keys, sent) = send_three(&app).await;
    for (key, gzip) in keys.iter().zip(&sent) {
        let stored = std::fs::read(s3.object_path(key)).unwrap();
        assert_eq!(&stored, gzip, "the S3 object is the details as sent");
    }
    assert!(
        !app.data_dir.path().join("blobs").exists(),
        "nothing is written to the local folder with the S3 driver"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_outage_keeps_the_count() {
    // An S3 endpoint where nothing listens.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            ("STORAGE_DRIVER", "s3"),
            ("S3_ENDPOINT", &endpoint),
            ("S3_ACCESS_KEY_ID", "ak"),
            ("S3_SECRET_ACCESS_KEY", "sk"),
            ("S3_BUCKET_NAME_PRIVATE", "private"),
            ("S3_FORCE_PATH_STYLE", "true"),
        ],
    )
    .await;
    let (body, _) = with_details("{\"stack\": []}");
    let (status, answer) = json(app.report(&body).await).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["details_stored"], json!(false));
    let hash = answer["group"].as_str().unwrap();
    assert_eq!(app.group_count(hash).await, 1);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM report_blobs").await, 0);
    assert_eq!(
        app.scalar(&format!(
            "SELECT blob_count FROM report_groups WHERE group_hash = '{hash}'"
        ))
        .await,
        0,
        "the reserved slot is given back"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_removes_expired_and_surplus_blobs_object_and_row() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[("REPORTS_MAX_BLOBS_PER_GROUP", "2")]).await;
    let (hash, keys, _) = send_three(&app).await;
    let blob_dir = app.data_dir.path().join("blobs");
    let config = Config::from_lookup(|var| match var {
        "ROLLWATCH_DATA_DIR" => Some(app.data_dir.path().display().to_string()),
        "REPORTS_BLOB_RETENTION_DAYS" => Some("30".to_owned()),
        "REPORTS_MAX_BLOBS_PER_GROUP" => Some("2".to_owned()),
        _ => None,
    })
    .unwrap();
    let store =
        BlobStore::from_config(&config.storage, rollwatch::telemetry::Metrics::new()).unwrap();

    // Nothing is old yet and the group is within its cap.
    let sweep = rollwatch::retention::sweep(&app.db, &store, &config.reports)
        .await
        .unwrap();
    assert_eq!((sweep.expired, sweep.over_cap), (0, 0));

    // The first blob is 31 days old.
    let old = (chrono::Utc::now() - chrono::Duration::days(31)).to_rfc3339();
    app.db
        .execute_unprepared(&format!(
            "UPDATE report_blobs SET created_at = '{old}' WHERE storage_key = '{}'",
            keys[0]
        ))
        .await
        .unwrap();
    let sweep = rollwatch::retention::sweep(&app.db, &store, &config.reports)
        .await
        .unwrap();
    assert_eq!((sweep.expired, sweep.over_cap, sweep.failed), (1, 0, 0));
    assert!(
        !blob_dir.join(&keys[0]).exists(),
        "the expired object is gone"
    );
    assert!(blob_dir.join(&keys[1]).exists(), "the young object stays");
    assert_eq!(app.scalar("SELECT COUNT(*) FROM report_blobs").await, 1);
    assert_eq!(
        app.scalar(&format!(
            "SELECT blob_count FROM report_groups WHERE group_hash = '{hash}'"
        ))
        .await,
        1
    );

    // A lowered cap: the group keeps only its newest blob.
    let (body, _) = with_details("{\"stack\": [\"newest\"]}");
    assert_eq!(
        json(app.report(&body).await).await.1["details_stored"],
        json!(true)
    );
    let tighter = rollwatch::config::ReportsConfig {
        max_blobs_per_group: 1,
        ..config.reports.clone()
    };
    let sweep = rollwatch::retention::sweep(&app.db, &store, &tighter)
        .await
        .unwrap();
    assert_eq!((sweep.expired, sweep.over_cap), (0, 1));
    assert!(
        !blob_dir.join(&keys[1]).exists(),
        "the older blob went over the cap"
    );
    assert_eq!(app.scalar("SELECT COUNT(*) FROM report_blobs").await, 1);
    assert_eq!(
        app.scalar(&format!(
            "SELECT blob_count FROM report_groups WHERE group_hash = '{hash}'"
        ))
        .await,
        1
    );
    app.stop().await;
}
