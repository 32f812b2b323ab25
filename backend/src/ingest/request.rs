//! What every ingestion request carries before its payload, as axum extractors (in the manner
//! of relay's `RequestMeta`): the report key and device id, the rate limit, and the JSON body
//! read once under its cap. Extractors run in argument order, the body last, so a handler's
//! signature is its order of checks: key (401/403) → device id (422) → rate limit (429) →
//! content type (415) → size (413).

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;

use crate::error::ApiError;
use crate::keys::KeyOwner;
use crate::ratelimit::Admission;
use crate::state::AppState;
use crate::throttled::Traffic;

const MAX_DEVICE_ID_CHARS: usize = 128;
/// A body somewhat over the cap is read and thrown away before the 413, so the client, still
/// sending, gets the answer instead of a reset connection; a far larger one is cut off.
const MAX_DRAINED_BYTES: usize = 1 << 20;

/// The app behind `Authorization: Bearer rpk_…`, with reports enabled, and the optional
/// `X-Device-ID` (for rate limiting only, never stored).
pub struct Reporter {
    pub owner: KeyOwner,
    pub device: Option<String>,
}

impl FromRequestParts<AppState> for Reporter {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let owner = authorize(state, &parts.headers).await?;
        let device = device_id(&parts.headers)?.map(str::to_owned);
        Ok(Reporter { owner, device })
    }
}

/// A `Reporter` whose request has been counted against the key's and the device's limits
/// for reports, for endpoints that take one report per request.
pub struct Metered(pub Reporter);

/// As `Metered`, against the limits for usage messages.
pub struct MeteredUsage(pub Reporter);

impl FromRequestParts<AppState> for Metered {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        metered(parts, state, Traffic::Reports).await.map(Metered)
    }
}

impl FromRequestParts<AppState> for MeteredUsage {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        metered(parts, state, Traffic::Usage)
            .await
            .map(MeteredUsage)
    }
}

async fn metered(
    parts: &mut Parts,
    state: &AppState,
    traffic: Traffic,
) -> Result<Reporter, ApiError> {
    let reporter = Reporter::from_request_parts(parts, state).await?;
    admit(
        state,
        &reporter.owner,
        reporter.device.as_deref(),
        traffic,
        1,
    )
    .await?;
    Ok(reporter)
}

/// Takes one request of `traffic` from the key's and the device's allowances. When refused,
/// its `items` (reports or usage messages) are counted as throttled for the app, unread, so
/// the gate knows its rates may be missing them.
pub async fn admit(
    state: &AppState,
    owner: &KeyOwner,
    device: Option<&str>,
    traffic: Traffic,
    items: u64,
) -> Result<(), ApiError> {
    let admission = state.limits.admit(traffic, owner.key_id, device, 1).await;
    if admission.admitted == 1 {
        return Ok(());
    }
    state.throttled.count(owner.app_id, traffic, items);
    Err(ApiError::RateLimited {
        retry_after_secs: admission.retry_after_secs,
    })
}

/// Takes up to `wanted` reports of a batch from the allowances, one check for them all; the
/// refused ones are counted as throttled.
pub async fn admit_reports(
    state: &AppState,
    owner: &KeyOwner,
    device: Option<&str>,
    wanted: u64,
) -> Admission {
    let admission = state
        .limits
        .admit(Traffic::Reports, owner.key_id, device, wanted)
        .await;
    let refused = wanted.saturating_sub(admission.admitted);
    if refused > 0 {
        state
            .throttled
            .count(owner.app_id, Traffic::Reports, refused);
    }
    admission
}

/// The body, once its content type is JSON and its size within `REPORTS_MAX_BODY_BYTES`.
pub struct JsonBody(pub Bytes);

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let (parts, body) = request.into_parts();
        let limit = state.config.reports.max_body_bytes;
        json_body(&parts.headers, body, limit).await.map(JsonBody)
    }
}

async fn authorize(state: &AppState, headers: &HeaderMap) -> Result<KeyOwner, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(ApiError::MissingKey)?;
    let key = value
        .to_str()
        .ok()
        .and_then(crate::auth::bearer_credentials)
        .ok_or(ApiError::InvalidKey)?;
    owner_of(state, key, None).await
}

/// The app of a report key, however the client sent it, with reports enabled. When the
/// request names its app (`app_id`), a key of another app is as invalid as no key, so ids of
/// other tenants' apps cannot be probed.
pub(crate) async fn owner_of(
    state: &AppState,
    key: &str,
    app_id: Option<i64>,
) -> Result<KeyOwner, ApiError> {
    let owner = state
        .keys
        .resolve(&state.db, key)
        .await?
        .filter(|owner| app_id.is_none_or(|id| id == owner.app_id))
        .ok_or(ApiError::InvalidKey)?;
    if !owner.reports_enabled {
        return Err(ApiError::ReportsDisabled);
    }
    Ok(owner)
}

fn device_id(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    token_header(headers, "X-Device-ID", MAX_DEVICE_ID_CHARS)
}

/// An optional header that must be 1 to `max` visible ASCII characters (after trimming).
pub(crate) fn token_header<'h>(
    headers: &'h HeaderMap,
    name: &'static str,
    max: usize,
) -> Result<Option<&'h str>, ApiError> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::invalid(
            name,
            format!("{name} must be 1 to {max} visible ASCII characters"),
        )
    };
    let token = value.to_str().map_err(|_| invalid())?.trim();
    if token.is_empty() || token.len() > max || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid());
    }
    Ok(Some(token))
}

async fn json_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    capped_body(headers, body, limit).await
}

/// The body, read once, when it is within `limit` bytes as sent (before any decoding).
pub(crate) async fn capped_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let too_large = ApiError::TooLarge {
        what: "the request body",
        limit: limit as u64,
        field: None,
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > (limit + MAX_DRAINED_BYTES) as u64) {
        return Err(too_large);
    }
    let mut body = body;
    let mut kept = BytesMut::new();
    let mut dropped = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(ApiError::unreadable_body)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if dropped == 0 && kept.len() + data.len() <= limit {
            kept.extend_from_slice(&data);
        } else {
            dropped += data.len();
            if dropped > MAX_DRAINED_BYTES {
                break;
            }
        }
    }
    if dropped > 0 {
        return Err(too_large);
    }
    Ok(kept.freeze())
}
