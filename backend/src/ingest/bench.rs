//! `POST /bench/noop`: the do-nothing endpoint `cargo xtask bench` measures ingestion against.
//! It reads and parses the body exactly as `POST /reports/ingest` does, then answers 202
//! without authorising, validating or writing anything. Registered only with
//! `ROLLWATCH_BENCH_ENDPOINTS=true`, so production never exposes it.

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;

use super::payload::{self, RawReport};
use super::request::JsonBody;
use crate::error::ApiError;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/bench/noop", post(noop))
}

async fn noop(JsonBody(bytes): JsonBody) -> Result<StatusCode, ApiError> {
    payload::parse::<RawReport>(&bytes)?;
    Ok(StatusCode::ACCEPTED)
}
