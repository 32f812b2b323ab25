//! Sentry-compatible ingestion (DESIGN §5.1, issue 14): a stock Sentry SDK whose DSN is
//! `http(s)://<rpk_ key>@<host>/<app id>` posts envelopes (and, from old SDKs, single events)
//! here. Events become reports and sessions become usage through the same judging, writer and
//! details path as `/reports/*`; every other item type is accepted and dropped, so SDKs do not
//! retry it. The mapping is docs/sentry.md.

pub mod auth;
pub mod body;
pub mod dimensions;
pub mod envelope;
pub mod event;
pub mod scrub;
pub mod session;

use std::io::Write as _;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::Utc;
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};

use super::details::Details;
use super::idempotency::IdempotencyKey;
use super::payload::Usage;
use super::request::admit;
use super::writer::Write;
use super::{Counted, commit};
use crate::config::ReportsConfig;
use crate::error::ApiError;
use crate::keys::KeyOwner;
use crate::model::UsageKind;
use crate::state::AppState;
use crate::throttled::Traffic;
use envelope::EnvelopeError;
use session::{MAX_SESSIONS, SessionAggregates, SessionUpdate, Sessions};

pub const ENVELOPE: &str = "/api/{app_id}/envelope";
pub const ENVELOPE_SLASH: &str = "/api/{app_id}/envelope/";
pub const STORE: &str = "/api/{app_id}/store";
pub const STORE_SLASH: &str = "/api/{app_id}/store/";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(ENVELOPE_SLASH, post(envelope))
        .route(ENVELOPE, post(envelope))
        .route(STORE_SLASH, post(store))
        .route(STORE, post(store))
        .layer(axum::middleware::from_fn(crate::cors::any_origin))
}

/// An ingestion error as a Sentry SDK reads it: the same status and JSON, and with a 429 the
/// `X-Sentry-Rate-Limits` header that makes the SDK hold back the categories it names.
pub struct SentryError(ApiError);

impl From<ApiError> for SentryError {
    fn from(err: ApiError) -> Self {
        SentryError(err)
    }
}

impl From<EnvelopeError> for SentryError {
    fn from(err: EnvelopeError) -> Self {
        SentryError(ApiError::Malformed(err.to_string()))
    }
}

impl IntoResponse for SentryError {
    fn into_response(self) -> Response {
        let limited = match self.0 {
            ApiError::RateLimited { retry_after_secs } => Some(retry_after_secs),
            _ => None,
        };
        let mut response = self.0.into_response();
        if let Some(secs) = limited {
            // Every category this endpoint counts, for this key.
            if let Ok(value) = HeaderValue::from_str(&format!("{secs}:error;session;default:key")) {
                response.headers_mut().insert("X-Sentry-Rate-Limits", value);
            }
        }
        response
    }
}

/// Who sent the request and how, as far as the request itself says before its body.
struct Sender<'r> {
    key: Option<&'r str>,
    browser: bool,
}

impl<'r> Sender<'r> {
    fn of(headers: &'r HeaderMap, uri: &'r Uri) -> Self {
        let auth = headers
            .get("X-Sentry-Auth")
            .and_then(|value| value.to_str().ok());
        let query = uri.query().unwrap_or_default();
        let field = |name| {
            auth.and_then(|auth| auth::auth_header_field(auth, name))
                .or_else(|| auth::query_field(query, name))
        };
        Sender {
            key: field("sentry_key"),
            browser: field("sentry_client").is_some_and(dimensions::is_browser_sdk),
        }
    }
}

/// The app behind `key`, which must be the app of the path.
async fn owner(state: &AppState, key: &str, app_id: &str) -> Result<KeyOwner, ApiError> {
    let app_id = app_id.parse::<i64>().map_err(|_| ApiError::InvalidKey)?;
    super::request::owner_of(state, key, Some(app_id)).await
}

/// The body as sent, within `REPORTS_MAX_BODY_BYTES`, and decoded within the decompressed
/// details cap (an envelope is the details of its event).
async fn decoded_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Vec<u8>, ApiError> {
    let limits = &state.config.reports;
    let raw = super::request::capped_body(headers, body, limits.max_body_bytes).await?;
    body::decode(headers, &raw, limits.max_details_decompressed_bytes)
}

async fn envelope(
    State(state): State<AppState>,
    Path(app_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, SentryError> {
    let sender = Sender::of(&headers, &uri);
    let early = match sender.key {
        Some(key) => Some(owner(&state, key, &app_id).await?),
        None => None,
    };
    let bytes = decoded_body(&state, &headers, body).await?;
    let envelope = envelope::parse(&bytes)?;
    let owner = match early {
        Some(owner) => owner,
        None => {
            let dsn = envelope
                .header
                .dsn
                .as_deref()
                .ok_or(ApiError::MissingSentryKey)?;
            let (key, _) = auth::key_and_app_from_dsn(dsn).ok_or(ApiError::InvalidKey)?;
            owner(&state, key, &app_id).await?
        }
    };
    let browser = sender.browser
        || envelope
            .header
            .sdk
            .as_ref()
            .and_then(|sdk| sdk.name.as_deref())
            .is_some_and(dimensions::is_browser_sdk);
    let mut contents = Contents::new(&owner, &state.config.reports, browser);
    for item in &envelope.items {
        match item.header.kind.as_str() {
            "event" => contents.event(parse_item(item.payload, "event")?),
            "session" => contents.session(&parse_item(item.payload, "session")?)?,
            "sessions" => contents.aggregates(&parse_item(item.payload, "sessions")?)?,
            // transaction, attachment, client_report, replay, check_in, log, profile, …
            _ => {}
        }
    }
    let event_id = envelope
        .header
        .event_id
        .clone()
        .or(contents.event_id.clone());
    contents.commit(&state, event_id).await
}

/// The legacy endpoint: the body is one event.
async fn store(
    State(state): State<AppState>,
    Path(app_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, SentryError> {
    let sender = Sender::of(&headers, &uri);
    let key = sender.key.ok_or(ApiError::MissingSentryKey)?;
    let owner = owner(&state, key, &app_id).await?;
    let bytes = decoded_body(&state, &headers, body).await?;
    let mut contents = Contents::new(&owner, &state.config.reports, sender.browser);
    contents.event(parse_item(&bytes, "event")?);
    let event_id = contents.event_id.clone();
    contents.commit(&state, event_id).await
}

fn parse_item<T: serde::de::DeserializeOwned>(payload: &[u8], kind: &str) -> Result<T, ApiError> {
    serde_json::from_slice(payload)
        .map_err(|e| ApiError::Malformed(format!("a {kind} item is not valid: {e}")))
}

/// What one request brings: its events' groups (with their details) and its new sessions.
struct Contents<'o> {
    owner: &'o KeyOwner,
    limits: &'o ReportsConfig,
    browser: bool,
    reports: Vec<(Write, Counted)>,
    sessions: Sessions,
    session_items: usize,
    /// The first session's device id, the request's rate-limit key as `X-Device-ID` would be.
    device: Option<String>,
    event_id: Option<String>,
}

impl<'o> Contents<'o> {
    fn new(owner: &'o KeyOwner, limits: &'o ReportsConfig, browser: bool) -> Self {
        Contents {
            owner,
            limits,
            browser,
            reports: Vec::new(),
            sessions: Sessions::default(),
            session_items: 0,
            device: None,
            event_id: None,
        }
    }

    fn event(&mut self, mut event: Value) {
        if self.event_id.is_none() {
            self.event_id = event
                .get("event_id")
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
        let key = match event::group_key(&event, &self.owner.app_name, self.browser) {
            Ok(key) => key,
            Err(why) => {
                tracing::debug!(?why, "Sentry event accepted, not counted");
                return;
            }
        };
        scrub::event(&mut event);
        let hash = key.hash();
        let write = Write::Report {
            app_id: self.owner.app_id,
            key,
            hash: hash.clone(),
            at: Utc::now(),
        };
        let counted = Counted {
            app_id: self.owner.app_id,
            hash,
            details: details_of(&event, self.limits),
        };
        self.reports.push((write, counted));
    }

    fn count_sessions(&mut self, n: usize) -> Result<(), ApiError> {
        self.session_items += n;
        if self.session_items > MAX_SESSIONS {
            return Err(ApiError::TooManySessions { max: MAX_SESSIONS });
        }
        Ok(())
    }

    fn session(&mut self, update: &SessionUpdate) -> Result<(), ApiError> {
        self.count_sessions(1)?;
        if self.device.is_none() {
            self.device = update.did.clone();
        }
        self.sessions
            .add_update(update, &self.owner.app_name, self.browser);
        Ok(())
    }

    fn aggregates(&mut self, item: &SessionAggregates) -> Result<(), ApiError> {
        self.count_sessions(item.buckets())?;
        self.sessions
            .add_aggregates(item, &self.owner.app_name, self.browser);
        Ok(())
    }

    /// Counts it all in one commit (at most once per event id), then keeps the details.
    async fn commit(
        self,
        state: &AppState,
        event_id: Option<String>,
    ) -> Result<Response, SentryError> {
        let owner = self.owner;
        // An envelope with an event is a report; one with sessions alone is usage.
        let (traffic, items) = match self.reports.len() {
            0 => (Traffic::Usage, self.session_items),
            reports => (Traffic::Reports, reports),
        };
        let items = u64::try_from(items).unwrap_or(u64::MAX);
        admit(state, owner, self.device.as_deref(), traffic, items).await?;
        let answer = json!({ "id": event_id });
        let (mut writes, counted): (Vec<Write>, Vec<Counted>) = self.reports.into_iter().unzip();
        let now = Utc::now();
        for (release, started) in self.sessions.into_counts() {
            writes.push(Write::Usage {
                app_id: owner.app_id,
                usage: Usage {
                    release,
                    kind: UsageKind::Session,
                    count: i64::try_from(started).unwrap_or(i64::MAX),
                },
                at: now,
            });
        }
        if writes.is_empty() {
            return Ok((StatusCode::OK, axum::Json(answer)).into_response());
        }
        // An SDK resends an envelope under the same event id: counted once.
        let key = IdempotencyKey(
            event_id
                .filter(|id| {
                    !id.is_empty()
                        && id.len() <= 64
                        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                })
                .map(|id| format!("sentry:{id}")),
        );
        if let Some(mut first) = commit(state, owner.app_id, key, writes, &answer).await? {
            *first.status_mut() = StatusCode::OK;
            return Ok(first);
        }
        for counted in counted {
            counted.finish(state).await;
        }
        Ok((StatusCode::OK, axum::Json(answer)).into_response())
    }
}

/// The scrubbed event as report details, gzip'd, when it fits the details caps; a count is
/// never refused for its details.
fn details_of(event: &Value, limits: &ReportsConfig) -> Option<Details> {
    let json = serde_json::to_vec(event).ok()?;
    if json.len() as u64 > limits.max_details_decompressed_bytes {
        return None;
    }
    let mut gzip = GzEncoder::new(Vec::new(), Compression::default());
    gzip.write_all(&json).ok()?;
    let gzip = gzip.finish().ok()?;
    (gzip.len() <= limits.max_details_compressed_bytes).then_some(Details {
        gzip,
        decompressed_len: json.len() as u64,
    })
}
