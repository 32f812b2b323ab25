//! `Idempotency-Key` (DESIGN §5): a repeat of an ingestion request gets the first answer and
//! counts nothing. The key is claimed by the writer in the transaction of the counts it
//! produced (`writer::Claim`), one row per request; this module reads the header and the
//! stored answers.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{Duration, Utc};
use entity::{idempotency_keys, ingest_flushes};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

use crate::error::ApiError;

const MAX_KEY_CHARS: usize = 128;
/// Keys are remembered at least this long (DESIGN §5); the daily sweep forgets older ones.
pub const REMEMBERED_FOR: Duration = Duration::hours(24);
/// Said on a replayed answer, so a client can tell.
const REPLAYED: &str = "idempotency-replayed";

/// The request's optional `Idempotency-Key`: 1 to 128 visible ASCII characters.
pub struct IdempotencyKey(pub Option<String>);

impl<S: Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let key = super::request::token_header(&parts.headers, "Idempotency-Key", MAX_KEY_CHARS)?;
        Ok(IdempotencyKey(key.map(str::to_owned)))
    }
}

/// The first answer to `key` of the app, if a request with it was counted.
pub async fn stored(
    db: &impl ConnectionTrait,
    app_id: i64,
    key: &str,
) -> Result<Option<String>, DbErr> {
    Ok(idempotency_keys::Entity::find()
        .filter(idempotency_keys::Column::AppId.eq(app_id))
        .filter(idempotency_keys::Column::Key.eq(key))
        .one(db)
        .await?
        .map(|row| row.answer))
}

/// The stored answer as a response: 202, its body, and `Idempotency-Replayed: true`.
pub fn replay(answer: String) -> Response {
    let mut response = (
        StatusCode::ACCEPTED,
        [(header::CONTENT_TYPE, "application/json")],
        answer,
    )
        .into_response();
    response
        .headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    response
}

/// Forgets keys past `REMEMBERED_FOR` (a day more, as the sweep is daily) and the ids of
/// flushes older than a day, whose outcome nobody can still be asking about.
pub async fn forget_old(db: &impl ConnectionTrait) -> Result<u64, DbErr> {
    let now = Utc::now();
    let keys = idempotency_keys::Entity::delete_many()
        .filter(idempotency_keys::Column::CreatedAt.lt((now - REMEMBERED_FOR * 2).timestamp()))
        .exec(db)
        .await?;
    let flushes = ingest_flushes::Entity::delete_many()
        .filter(ingest_flushes::Column::CreatedAt.lt((now - Duration::days(1)).timestamp()))
        .exec(db)
        .await?;
    Ok(keys.rows_affected + flushes.rows_affected)
}
