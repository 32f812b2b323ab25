//! `GET /sdk/rollwatch.js`: the browser client (sdk/browser), embedded in the binary so a page
//! needs one script tag pointing at its Rollwatch server. Readable from any origin (for
//! `crossorigin` tags and Subresource Integrity), gzip-compressed when the browser accepts it,
//! cached for an hour and revalidated by ETag.

use std::sync::LazyLock;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};
use tower_http::compression::CompressionLayer;

use crate::state::AppState;

pub const PATH: &str = "/sdk/rollwatch.js";
const SCRIPT: &str = include_str!("../../sdk/browser/rollwatch.js");
/// An hour: a fixed script reaches every page within that, without a versioned URL to change.
const CACHE_CONTROL: &str = "public, max-age=3600";

/// A weak ETag of the embedded script's bytes: weak because the gzip and the plain answer
/// share it (the same script, not the same bytes).
static ETAG: LazyLock<String> = LazyLock::new(|| {
    let digest = hex::encode(&Sha256::digest(SCRIPT.as_bytes())[..16]);
    format!("W/\"{digest}\"")
});

pub fn routes() -> Router<AppState> {
    Router::new().route(PATH, get(script).layer(CompressionLayer::new()))
}

async fn script(request_headers: HeaderMap) -> Response {
    let etag = ETAG.as_str();
    // Weak comparison (RFC 9110 §13.1.2): a validator matches with or without its `W/`.
    let opaque = etag.trim_start_matches("W/");
    let unchanged = request_headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag == opaque);
    let headers = [
        (header::ETAG, HeaderValue::from_static(etag)),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static(CACHE_CONTROL),
        ),
        (
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
    ];
    if unchanged {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (
        headers,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/javascript; charset=utf-8"),
        )],
        SCRIPT,
    )
        .into_response()
}
