//! The web app (frontend/, built by Trunk into `ROLLWATCH_WEB_DIR`, default `./dist`): its
//! files, `index.html` for every page path so the app's own router handles deep links and
//! reloads, year-long caching of content-hashed assets, and gzip.

use std::path::Path;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;
use tower_http::compression::CompressionLayer;
use tower_http::services::{ServeDir, ServeFile};

use crate::error::ApiError;

pub const WEB_DIR_VAR: &str = "ROLLWATCH_WEB_DIR";
/// The first path segments of the APIs: whatever the method or `Accept`, a path under them
/// that no route serves is a JSON 404, never the web app.
const API_SEGMENTS: &[&str] = &["reports", "graphql", "api", "blobs", "sdk"];
/// Trunk names assets `name-<hash>.ext` (or `name-<hash>_bg.wasm`), the hash a 64-bit number
/// in hex without leading zeros: their content never changes under that name.
const TRUNK_HASH_DIGITS: std::ops::RangeInclusive<usize> = 10..=16;
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `index.html` names the current assets, so browsers must revalidate it every time.
const REVALIDATE: &str = "no-cache";

/// The web app's routes, or `None` (logged) when it has not been built in `dir`.
pub fn built_app(dir: &Path) -> Option<Router> {
    if !dir.join("index.html").is_file() {
        tracing::warn!(
            dir = %dir.display(),
            "no web app there (build it with `cargo xtask serve`, or set {WEB_DIR_VAR}); serving the APIs only"
        );
        return None;
    }
    tracing::info!(dir = %dir.display(), "serving the web app");
    Some(files(dir))
}

fn files(dir: &Path) -> Router {
    let index = dir.join("index.html");
    // Any method but GET and HEAD gets the JSON 404 too, not ServeDir's bare 405.
    let assets = ServeDir::new(dir)
        .call_fallback_on_method_not_allowed(true)
        .fallback(axum::routing::any(not_found));
    Router::new()
        .fallback(move |request: Request| {
            let index = index.clone();
            let assets = assets.clone();
            async move {
                if is_api_path(request.uri().path()) {
                    return ApiError::NotFound.into_response();
                }
                let answer = if is_page_request(&request) {
                    ServeFile::new(index).oneshot(request).await
                } else {
                    assets.oneshot(request).await
                };
                match answer {
                    Ok(response) => response.into_response(),
                    Err(infallible) => match infallible {},
                }
            }
        })
        .layer(middleware::from_fn(cache_control))
        .layer(CompressionLayer::new())
}

/// A browser navigating to one of the app's pages (`/apps/3?range=7d`), as opposed to a file
/// (`/frontend-1f2e….wasm`) or an API client that mistyped a path: those get a JSON 404.
fn is_page_request(request: &Request) -> bool {
    let last_segment = request.uri().path().rsplit('/').next().unwrap_or_default();
    let wants_html = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    matches!(*request.method(), Method::GET | Method::HEAD)
        && !last_segment.contains('.')
        && wants_html
}

fn is_api_path(path: &str) -> bool {
    let first = path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default();
    API_SEGMENTS.contains(&first)
}

async fn not_found() -> Response {
    ApiError::NotFound.into_response()
}

async fn cache_control(request: Request, next: Next) -> Response {
    let immutable = is_content_hashed(request.uri().path());
    let mut response = next.run(request).await;
    if response.status() == StatusCode::OK {
        let policy = if immutable { IMMUTABLE } else { REVALIDATE };
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static(policy));
    }
    response
}

/// Whether the file name carries Trunk's content hash: `-` and its hex digits before the
/// extension or before `_bg`.
fn is_content_hashed(path: &str) -> bool {
    let file = path.rsplit('/').next().unwrap_or_default();
    let stem = file.split('.').next().unwrap_or_default();
    let stem = stem.strip_suffix("_bg").unwrap_or(stem);
    stem.rsplit_once('-').is_some_and(|(name, hash)| {
        !name.is_empty()
            && TRUNK_HASH_DIGITS.contains(&hash.len())
            && hash.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http_body_util::BodyExt;

    #[test]
    fn only_trunk_hashed_names_are_immutable() {
        assert!(is_content_hashed("/frontend-9f86d081884c7d65.js"));
        assert!(is_content_hashed("/frontend-9f86d081884c7d65_bg.wasm"));
        assert!(is_content_hashed("/style-0123456789abcdef.css"));
        assert!(is_content_hashed("/frontend-d525d5a216a4144_bg.wasm"));
        assert!(!is_content_hashed("/index.html"));
        assert!(!is_content_hashed("/"));
        assert!(!is_content_hashed("/apps/12"));
        assert!(!is_content_hashed("/my-app.js"));
        assert!(!is_content_hashed("/-0123456789abcdef.js"));
    }

    fn request(path: &str, accept: &str) -> Request {
        Request::builder()
            .uri(path)
            .header(header::ACCEPT, accept)
            .body(Body::empty())
            .expect("request")
    }

    #[tokio::test]
    async fn pages_get_the_index_files_get_cached_and_the_rest_is_a_json_404() {
        let dir = tempfile::tempdir().expect("temp dir");
        let index = "<!doctype html><title>Rollwatch</title>".repeat(40);
        std::fs::write(dir.path().join("index.html"), &index).expect("index");
        let wasm = "wasm".repeat(200);
        std::fs::write(dir.path().join("frontend-9f86d081884c7d65_bg.wasm"), &wasm).expect("asset");
        let app = files(dir.path());

        let mut page_request = request("/apps/3?range=7d", "text/html,*/*");
        page_request
            .headers_mut()
            .insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        let page = app.clone().oneshot(page_request).await.expect("page");
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(page.headers()[header::CACHE_CONTROL], REVALIDATE);
        assert_eq!(page.headers()[header::CONTENT_ENCODING], "gzip");

        let asset = app
            .clone()
            .oneshot(request("/frontend-9f86d081884c7d65_bg.wasm", "*/*"))
            .await
            .expect("asset");
        assert_eq!(asset.status(), StatusCode::OK);
        assert_eq!(asset.headers()[header::CACHE_CONTROL], IMMUTABLE);

        for path in [
            "/reports/ingest",
            "/api/3/envelope/",
            "/blobs/x",
            "/graphql/x",
        ] {
            let api = app
                .clone()
                .oneshot(request(path, "text/html"))
                .await
                .expect("api path");
            assert_eq!(api.status(), StatusCode::NOT_FOUND, "{path}");
        }
        let mut post = request("/apps/3", "text/html");
        *post.method_mut() = Method::POST;
        let post = app.clone().oneshot(post).await.expect("post");
        assert_eq!(post.status(), StatusCode::NOT_FOUND);

        for path in ["/frontend-0000000000000000.js", "/graphq"] {
            let missing = app
                .clone()
                .oneshot(request(path, "*/*"))
                .await
                .expect("missing");
            assert_eq!(missing.status(), StatusCode::NOT_FOUND, "{path}");
            assert!(missing.headers().get(header::CACHE_CONTROL).is_none());
            let body = missing
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            let body = String::from_utf8_lossy(&body);
            assert!(body.contains("not_found"), "{path}: {body}");
        }
    }
}
