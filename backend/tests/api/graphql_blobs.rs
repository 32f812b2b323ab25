//! Blob downloads through `groupBlobs` URLs, fetched for real over HTTP: the Local store's
//! signed `/blobs/…` route and S3 presigned GETs against an in-process S3 server (DESIGN §7).

use std::time::Duration;

use crate::common;
use crate::common::s3::S3Server;
use crate::common::{ADMIN_EMAIL, ADMIN_PASSWORD, Backend, TestApp, data, graphql, login, report};
use base64::Engine;
use serde_json::{Value, json};

on_both_databases!(
    local_links_download_then_expire,
    s3_links_download_then_expire
);

/// TTLs are whole seconds and S3 counts from the second of signing, so 2 s leaves room.
const TTL_SECONDS: &str = "2";

async fn local_links_download_then_expire(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("BLOB_URL_TTL_SECONDS", TTL_SECONDS)]).await;
    downloads_then_expire(&app).await;
    app.stop().await;
}

async fn s3_links_download_then_expire(backend: Backend) {
    let s3 = S3Server::start().await;
    let mut vars: Vec<(&str, String)> = s3.env();
    vars.push(("BLOB_URL_TTL_SECONDS", TTL_SECONDS.to_owned()));
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = TestApp::spawn_with(backend, &vars).await;
    let url = downloads_then_expire(&app).await;
    assert!(url.starts_with(&format!("http://{}/", s3.addr)), "{url}");
    assert!(url.contains("X-Amz-Signature="), "{url}");
    app.stop().await;
}

/// Sends details, downloads them through `groupBlobs`, then checks that an altered link and
/// an expired one are refused. Returns the URL.
async fn downloads_then_expire(app: &TestApp) -> String {
    let details = br#"{"stack": ["main", "render", "crash"]}"#;
    let sent = common::gzip_base64(details);
    let mut body = report("3.0.0", "stable", "windows", "EXCEPTION_ACCESS_VIOLATION");
    body["details"] = json!({ "encoding": "gzip", "data": sent });
    let (status, answer) = common::json(app.report(&body).await).await;
    assert_eq!(
        (status, &answer["details_stored"]),
        (202, &json!(true)),
        "{answer}"
    );
    let hash = answer["group"].as_str().unwrap();

    let admin = login(app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let blobs = graphql(
        app,
        Some(&admin),
        "query($a: ID!, $h: String!) { groupBlobs(appId: $a, groupHash: $h) { id url expiresAt sizeCompressed createdAt } }",
        json!({ "a": app.app_id.to_string(), "h": hash }),
    )
    .await;
    let blob: Value = data(&blobs)["groupBlobs"][0].clone();
    let url = blob["url"].as_str().unwrap().to_owned();
    let expires_at =
        chrono::DateTime::parse_from_rfc3339(blob["expiresAt"].as_str().unwrap()).unwrap();
    let ttl = expires_at.timestamp() - chrono::Utc::now().timestamp();
    assert!((1..=3).contains(&ttl), "expires in {ttl} s");

    let stored = base64::engine::general_purpose::STANDARD
        .decode(&sent)
        .unwrap();
    let fetched = reqwest::get(&url).await.unwrap();
    assert_eq!(fetched.status(), 200);
    let bytes = fetched.bytes().await.unwrap();
    assert_eq!(
        bytes.as_ref(),
        stored.as_slice(),
        "the download is the gzip as sent"
    );
    assert_eq!(blob["sizeCompressed"], json!(stored.len()));

    // One character changed in the signature (the last parameter, both stores): refused.
    assert!(
        url.rsplit('&')
            .next()
            .unwrap()
            .to_lowercase()
            .contains("sig"),
        "{url}"
    );
    let mut altered = url.clone();
    let last = altered.pop().unwrap();
    altered.push(if last == '0' { '1' } else { '0' });
    assert_eq!(reqwest::get(&altered).await.unwrap().status(), 403);

    // A member without access to the app may not even get a link.
    let member = graphql(
        app,
        Some(&admin),
        "mutation { createUser(email: \"outsider@example.com\", password: \"outsider-password\", role: MEMBER) { id } }",
        json!({}),
    )
    .await;
    data(&member);
    let outsider = login(app, "outsider@example.com", "outsider-password").await;
    let denied = graphql(
        app,
        Some(&outsider),
        "query($a: ID!, $h: String!) { groupBlobs(appId: $a, groupHash: $h) { url } }",
        json!({ "a": app.app_id.to_string(), "h": hash }),
    )
    .await;
    assert_eq!(common::error_code(&denied), Some("FORBIDDEN"));

    tokio::time::sleep(Duration::from_secs(ttl as u64 + 1)).await;
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 403, "expired");
    url
}

#[tokio::test]
async fn a_local_link_with_another_expiry_or_id_is_refused_as_json() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut body = report("3.0.0", "stable", "linux", "SIGSEGV");
    body["details"] = json!({ "encoding": "gzip", "data": common::gzip_base64(b"x") });
    let hash = common::json(app.report(&body).await).await.1["group"]
        .as_str()
        .unwrap()
        .to_owned();
    let admin = login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let blobs = graphql(
        &app,
        Some(&admin),
        "query($a: ID!, $h: String!) { groupBlobs(appId: $a, groupHash: $h) { url } }",
        json!({ "a": app.app_id.to_string(), "h": hash }),
    )
    .await;
    let url = data(&blobs)["groupBlobs"][0]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        url.starts_with(&format!("http://{}/blobs/", app.addr)),
        "{url}"
    );
    let later = url.replacen("expires=", "expires=9", 1);
    let other_id = url.replacen("/blobs/", "/blobs/0", 1);
    for bad in [later, other_id, url.split('?').next().unwrap().to_owned()] {
        let (status, answer) = common::json(reqwest::get(&bad).await.unwrap()).await;
        assert_eq!(status, 403, "{bad}");
        assert_eq!(answer["error"]["code"], json!("forbidden"));
    }
    app.stop().await;
}
