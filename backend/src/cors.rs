//! CORS for the ingestion routes (DESIGN §5): any origin, no credentials, so browser clients
//! and Sentry's browser SDK can report from any page.

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The request headers an ingestion client sends.
const ALLOWED_HEADERS: &str =
    "Authorization, Content-Type, Content-Encoding, X-Device-ID, Idempotency-Key, X-Sentry-Auth";
/// Browsers cap it lower (Chromium at 2 h); asking for a day costs nothing.
const PREFLIGHT_MAX_AGE_SECS: &str = "86400";

/// Answers a preflight (`OPTIONS`) with 204 and the allowed methods and headers; lets any
/// other request through and marks its answer readable by any origin.
pub async fn any_origin(request: Request, next: Next) -> Response {
    if request.method() == Method::OPTIONS {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOWED_HEADERS),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static(PREFLIGHT_MAX_AGE_SECS),
        );
        return response;
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    // A rate-limited browser client must be able to read when to retry (Sentry's browser
    // SDK reads its own header).
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Retry-After, X-Sentry-Rate-Limits"),
    );
    response
}
