//! `POST /bench/noop`: the do-nothing endpoint `cargo xtask bench` measures ingestion against.
//! It reads and parses the body exactly as `POST /reports/ingest` does, then answers 202
//! without authorising, validating or writing anything. Registered only with
//! `ROLLWATCH_BENCH_ENDPOINTS=true`, so production never exposes it.

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

use super::payload::{self, RawReport};
use crate::error::ApiError;
use crate::server::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/bench/noop", post(noop))
}

async fn noop(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let bytes = super::json_body(&headers, body, state.config.reports.max_body_bytes).await?;
    payload::parse::<RawReport>(&bytes)?;
    Ok(StatusCode::ACCEPTED)
}
