//! `GET /blobs/{id}?expires=…&sig=…`: downloads of Local-store blobs through links signed by
//! `groupBlobs` (DESIGN §7). A link that is expired or altered in any way is refused with 403
//! before anything is looked up, so it reveals nothing.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use entity::report_blobs;
use sea_orm::EntityTrait;
use serde::Deserialize;

use crate::error::ApiError;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/blobs/{id}", get(download))
}

/// Read as text so that any alteration, even one that makes a field unparsable, gets the
/// same 403.
#[derive(Deserialize)]
struct Signature {
    expires: Option<String>,
    sig: Option<String>,
}

async fn download(
    State(state): State<AppState>,
    Path(blob_id): Path<String>,
    Query(signature): Query<Signature>,
) -> Result<Response, ApiError> {
    let expires = signature.expires.and_then(|e| e.parse::<i64>().ok());
    let (Some(expires), Some(sig)) = (expires, signature.sig) else {
        return Err(ApiError::LinkRefused);
    };
    if !state.blob_links.verify(&blob_id, expires, &sig, Utc::now()) {
        return Err(ApiError::LinkRefused);
    }
    let Some(local) = state.blobs.local() else {
        // S3 blobs are downloaded from the bucket through presigned URLs, never from here.
        return Err(ApiError::NotFound);
    };
    let row = report_blobs::Entity::find_by_id(blob_id.clone())
        .one(&state.db)
        .await?
        .ok_or(ApiError::NotFound)?;
    let bytes = state
        .blobs
        .timed("get", local.get(&row.storage_key))
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, blob = blob_id, "blob unreadable");
            ApiError::StoreUnavailable
        })?
        .ok_or(ApiError::NotFound)?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/gzip".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{blob_id}.gz\""),
            ),
            (header::CACHE_CONTROL, "private, no-store".to_owned()),
        ],
        bytes,
    )
        .into_response())
}
