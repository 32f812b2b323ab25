//! The web app (frontend/, built by Trunk into `dist/`): its files, `index.html` for every
//! page path so the app's own router handles deep links and reloads, year-long caching of
//! content-hashed assets, and gzip.
//!
//! The files come from a folder (`ROLLWATCH_WEB_DIR`, or `./dist` by a build without the web
//! app in it), or from the binary itself: a build with the `embedded-web` feature
//! (`cargo xtask dist`) carries the built app (build.rs), so it serves it from any working
//! directory. Both are served by the same rules.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use sha2::Digest;
use tower::ServiceExt;
use tower_http::compression::CompressionLayer;
use tower_http::services::{ServeDir, ServeFile};

use crate::error::ApiError;

pub const WEB_DIR_VAR: &str = "ROLLWATCH_WEB_DIR";
/// Where a build without the web app in it looks, relative to the working directory.
const DEFAULT_WEB_DIR: &str = "dist";
/// The first path segments of the APIs: whatever the method or `Accept`, a path under them
/// that no route serves is a JSON 404, never the web app.
const API_SEGMENTS: &[&str] = &["reports", "graphql", "api", "blobs", "sdk", "metrics"];
/// Trunk names assets `name-<hash>.ext` (or `name-<hash>_bg.wasm`), the hash a 64-bit number
/// in hex without leading zeros: their content never changes under that name.
const TRUNK_HASH_DIGITS: std::ops::RangeInclusive<usize> = 10..=16;
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `index.html` names the current assets, so browsers must revalidate it every time.
const REVALIDATE: &str = "no-cache";
const INDEX: &str = "index.html";

/// One file of the web app built into the binary; `path` is relative, with `/` separators.
#[derive(Debug)]
pub struct EmbeddedFile {
    pub path: &'static str,
    pub bytes: &'static [u8],
}

#[cfg(feature = "embedded-web")]
mod built_in {
    // Written by build.rs (src/web_embed_gen.rs): `pub static FILES: &[EmbeddedFile]`.
    include!(concat!(env!("OUT_DIR"), "/embedded_web.rs"));
}

/// The web app built into this binary, if it was built with the `embedded-web` feature.
pub fn embedded_files() -> Option<&'static [EmbeddedFile]> {
    #[cfg(feature = "embedded-web")]
    {
        Some(built_in::FILES)
    }
    #[cfg(not(feature = "embedded-web"))]
    {
        None
    }
}

/// The web app's routes, or `None` (logged) when there is none to serve: the folder named
/// by `ROLLWATCH_WEB_DIR` when it is set, else the app built into the binary, else `./dist`.
pub fn built_app(web_dir: Option<&Path>) -> Option<Router> {
    let dir = match (web_dir, embedded_files()) {
        (Some(dir), _) => dir,
        (None, Some(files)) => {
            tracing::info!(
                files = files.len(),
                "serving the web app built into the binary"
            );
            return Some(serve(Assets::Embedded(Arc::new(Embedded::new(files)))));
        }
        (None, None) => Path::new(DEFAULT_WEB_DIR),
    };
    if !dir.join(INDEX).is_file() {
        tracing::warn!(
            dir = %dir.display(),
            "no web app there (build it with `cargo xtask serve`, or set {WEB_DIR_VAR}); serving the APIs only"
        );
        return None;
    }
    tracing::info!(dir = %dir.display(), "serving the web app");
    Some(serve(Assets::folder(dir)))
}

/// Where the files come from.
#[derive(Clone)]
enum Assets {
    Folder {
        index: PathBuf,
        files: Arc<ServeDir<axum::routing::MethodRouter>>,
    },
    Embedded(Arc<Embedded>),
}

impl Assets {
    fn folder(dir: &Path) -> Assets {
        // Any method but GET and HEAD gets the JSON 404 too, not ServeDir's bare 405.
        let files = ServeDir::new(dir)
            .call_fallback_on_method_not_allowed(true)
            .fallback(axum::routing::any(not_found));
        Assets::Folder {
            index: dir.join(INDEX),
            files: Arc::new(files),
        }
    }

    async fn index(&self, request: Request) -> Response {
        match self {
            Assets::Folder { index, .. } => match ServeFile::new(index).oneshot(request).await {
                Ok(response) => response.into_response(),
                Err(infallible) => match infallible {},
            },
            Assets::Embedded(embedded) => embedded.answer(&request, INDEX),
        }
    }

    async fn file(&self, request: Request) -> Response {
        match self {
            Assets::Folder { files, .. } => match (**files).clone().oneshot(request).await {
                Ok(response) => response.into_response(),
                Err(infallible) => match infallible {},
            },
            Assets::Embedded(embedded) => {
                if !matches!(*request.method(), Method::GET | Method::HEAD) {
                    return ApiError::NotFound.into_response();
                }
                // `/` is the index, as ServeDir has it.
                let path = match request.uri().path().trim_start_matches('/') {
                    "" => INDEX,
                    path => path,
                };
                embedded.answer(&request, path)
            }
        }
    }
}

/// The built-in files by path, each with its type and validator worked out once.
struct Embedded {
    files: HashMap<&'static str, EmbeddedAsset>,
}

struct EmbeddedAsset {
    bytes: &'static [u8],
    content_type: HeaderValue,
    /// A strong validator from the content, so a revalidated `index.html` costs a 304.
    etag: HeaderValue,
}

impl Embedded {
    fn new(files: &'static [EmbeddedFile]) -> Embedded {
        let files = files
            .iter()
            .map(|file| {
                // As ServeDir types a file: by its extension.
                let content_type = mime_guess::from_path(file.path).first_raw().map_or_else(
                    || HeaderValue::from_static("application/octet-stream"),
                    HeaderValue::from_static,
                );
                let digest = sha2::Sha256::digest(file.bytes);
                let etag = HeaderValue::from_str(&format!("\"{}\"", hex::encode(&digest[..16])))
                    .unwrap_or_else(|_| HeaderValue::from_static("\"\""));
                let asset = EmbeddedAsset {
                    bytes: file.bytes,
                    content_type,
                    etag,
                };
                (file.path, asset)
            })
            .collect();
        Embedded { files }
    }

    fn answer(&self, request: &Request, path: &str) -> Response {
        let Some(asset) = self.files.get(path) else {
            return ApiError::NotFound.into_response();
        };
        let revalidated = request
            .headers()
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|tags| {
                tags.split(',')
                    .any(|tag| tag.trim() == "*" || tag.trim().as_bytes() == asset.etag.as_bytes())
            });
        let (status, body) = if revalidated {
            (StatusCode::NOT_MODIFIED, Body::empty())
        } else {
            (StatusCode::OK, Body::from(asset.bytes))
        };
        let mut response = Response::new(body);
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(header::ETAG, asset.etag.clone());
        if status == StatusCode::OK {
            headers.insert(header::CONTENT_TYPE, asset.content_type.clone());
        }
        response
    }
}

fn serve(assets: Assets) -> Router {
    Router::new()
        .fallback(move |request: Request| {
            let assets = assets.clone();
            async move {
                if is_api_path(request.uri().path()) {
                    ApiError::NotFound.into_response()
                } else if is_page_request(&request) {
                    assets.index(request).await
                } else {
                    assets.file(request).await
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

/// The code build.rs writes for the `embedded-web` feature; compiled here too for its tests.
#[cfg(test)]
#[path = "web_embed_gen.rs"]
mod embed_gen;

#[cfg(test)]
mod tests {
    use super::*;
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

    /// A built web app in a folder: an index and one hashed asset.
    fn built_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        let index = "<!doctype html><title>Rollwatch</title>".repeat(40);
        std::fs::write(dir.path().join("index.html"), &index).expect("index");
        let wasm = "wasm".repeat(200);
        std::fs::write(dir.path().join("frontend-9f86d081884c7d65_bg.wasm"), &wasm).expect("asset");
        std::fs::create_dir(dir.path().join("icons")).expect("sub dir");
        std::fs::write(dir.path().join("icons/app.svg"), "<svg/>").expect("icon");
        dir
    }

    /// The folder's files as build.rs would embed them: the same listing, read into memory.
    fn embedded_from(dir: &Path) -> &'static [EmbeddedFile] {
        let listed = embed_gen::list(dir).expect("a web app to embed");
        let files: Vec<EmbeddedFile> = listed
            .into_iter()
            .map(|(path, file)| EmbeddedFile {
                path: Box::leak(path.into_boxed_str()),
                bytes: Box::leak(std::fs::read(file).expect("file").into_boxed_slice()),
            })
            .collect();
        Box::leak(files.into_boxed_slice())
    }

    /// The routes over the folder's files built in.
    fn built_in_app(dir: &Path) -> Router {
        serve(Assets::Embedded(Arc::new(Embedded::new(embedded_from(
            dir,
        )))))
    }

    #[tokio::test]
    async fn pages_get_the_index_files_get_cached_and_the_rest_is_a_json_404() {
        let dir = built_dir();
        let from_folder = serve(Assets::folder(dir.path()));
        check_serving(from_folder).await;
        check_serving(built_in_app(dir.path())).await;
    }

    #[tokio::test]
    async fn built_in_files_are_typed_and_revalidated_with_their_etag() {
        let dir = built_dir();
        let app = built_in_app(dir.path());
        let get = |path: &str, accept: &str| app.clone().oneshot(request(path, accept));
        let icon = get("/icons/app.svg", "*/*").await.expect("icon");
        assert_eq!(icon.status(), StatusCode::OK);
        assert_eq!(icon.headers()[header::CONTENT_TYPE], "image/svg+xml");
        let page = get("/", "text/html").await.expect("root");
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(page.headers()[header::CONTENT_TYPE], "text/html");
        let etag = page.headers()[header::ETAG].clone();
        let mut again = request("/apps/3", "text/html");
        again
            .headers_mut()
            .insert(header::IF_NONE_MATCH, etag.clone());
        let again = app.clone().oneshot(again).await.expect("revalidation");
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(again.headers()[header::ETAG], etag);
        let body = again.into_body().collect().await.expect("body").to_bytes();
        assert!(body.is_empty());
    }

    #[test]
    fn the_embedding_needs_an_index_and_lists_every_file() {
        let dir = built_dir();
        let code = embed_gen::generate(dir.path()).expect("code");
        for path in [
            "index.html",
            "frontend-9f86d081884c7d65_bg.wasm",
            "icons/app.svg",
        ] {
            assert!(code.contains(&format!("path: {path:?}")), "{path}: {code}");
        }
        let index = dir.path().canonicalize().expect("dir").join("index.html");
        assert!(code.contains(&format!(
            "include_bytes!({:?})",
            index.display().to_string()
        )));
        let empty = tempfile::tempdir().expect("temp dir");
        let err = embed_gen::generate(empty.path()).expect_err("no index.html");
        assert!(err.to_string().contains("index.html"), "{err}");
    }

    async fn check_serving(app: Router) {
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
        assert_eq!(asset.headers()[header::CONTENT_TYPE], "application/wasm");

        for path in [
            "/reports/ingest",
            "/api/3/envelope/",
            "/blobs/x",
            "/graphql/x",
            "/metrics",
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
