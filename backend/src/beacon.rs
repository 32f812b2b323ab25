//! Ingestion by `navigator.sendBeacon`, which can set no header and sends a string as
//! `text/plain`. A request that has no `Authorization` header and a `text/plain` body, and names
//! its key in the query (`?key=rpk_…&idempotency_key=…&device_id=…`), has those lifted into the
//! headers the ingest extractors read, its body taken as the JSON it is, and its query removed
//! so nothing after this layer can see (or log) the key. Every other request passes untouched:
//! a JSON request still needs `Authorization`, and a `text/plain` body with a header key is
//! still a 415.

use axum::extract::{Query, Request};
use axum::http::uri::PathAndQuery;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::error::ApiError;

#[derive(Deserialize)]
struct BeaconQuery {
    key: Option<String>,
    idempotency_key: Option<String>,
    device_id: Option<String>,
}

pub async fn query_credentials(mut request: Request, next: Next) -> Response {
    if is_beacon(request.headers())
        && let Err(err) = lift(&mut request)
    {
        return err.into_response();
    }
    next.run(request).await
}

fn is_beacon(headers: &HeaderMap) -> bool {
    !headers.contains_key(header::AUTHORIZATION)
        && headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("text/plain"))
}

fn lift(request: &mut Request) -> Result<(), ApiError> {
    let Ok(Query(query)) = Query::<BeaconQuery>::try_from_uri(request.uri()) else {
        return Ok(());
    };
    let Some(key) = query.key else { return Ok(()) };
    let authorization =
        HeaderValue::try_from(format!("Bearer {key}")).map_err(|_| ApiError::InvalidKey)?;
    let mut lifted = vec![(header::AUTHORIZATION, authorization)];
    let optional = [
        (
            "idempotency_key",
            HeaderName::from_static("idempotency-key"),
            query.idempotency_key,
        ),
        (
            "device_id",
            HeaderName::from_static("x-device-id"),
            query.device_id,
        ),
    ];
    for (field, name, text) in optional {
        if let Some(text) = text {
            let value = HeaderValue::try_from(text)
                .map_err(|_| ApiError::invalid(field, format!("{field} must be visible ASCII")))?;
            lifted.push((name, value));
        }
    }
    let headers = request.headers_mut();
    for (name, value) in lifted {
        headers.insert(name, value);
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    *request.uri_mut() = without_query(request.uri());
    Ok(())
}

fn without_query(uri: &Uri) -> Uri {
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = parts
        .path_and_query
        .and_then(|pq| PathAndQuery::try_from(pq.path()).ok());
    Uri::from_parts(parts).unwrap_or_else(|_| uri.clone())
}
