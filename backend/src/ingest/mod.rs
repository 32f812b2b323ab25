//! REST ingestion (DESIGN §5): `POST /reports/ingest`, `/reports/ingest/batch`, `/reports/usage`.
//!
//! The path is kept cheap: the key comes from a cache, the body is read once under its cap and
//! parsed once, the counts go through the group-commit writer, and only a report with details
//! touches blob storage, after its count is safe.

pub mod bench;
mod counts;
pub mod details;
pub mod idempotency;
pub mod payload;
pub mod request;
pub mod sentry;
pub mod writer;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use chrono::Utc;
use entity::{report_blobs, report_groups};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde_json::json;

use crate::blobs::storage_key;
use crate::error::ApiError;
use crate::keys::KeyOwner;
use crate::model::GroupKey;
use crate::state::AppState;
use details::Details;
use idempotency::IdempotencyKey;
use payload::{RawBatch, RawReport, RawUsage};
use request::{JsonBody, Metered, MeteredUsage, Reporter, admit_reports};
use writer::{Claim, Outcome, Write, WriteError};

pub const MAX_BATCH_REPORTS: usize = 100;

const INGEST: &str = "/reports/ingest";
const INGEST_BATCH: &str = "/reports/ingest/batch";

/// The routes that take reports: a refusal there (its key, rate limit, body, JSON, or the
/// store) is counted by its error code, whichever extractor or handler refused it
/// (`scrape::TrackRequests`). A batch's refused items are counted by the batch handler.
pub const REPORT_ROUTES: [&str; 6] = [
    INGEST,
    INGEST_BATCH,
    sentry::ENVELOPE,
    sentry::ENVELOPE_SLASH,
    sentry::STORE,
    sentry::STORE_SLASH,
];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(INGEST, post(ingest))
        .route(INGEST_BATCH, post(ingest_batch))
        .route("/reports/usage", post(usage))
        .layer(axum::middleware::from_fn(crate::beacon::query_credentials))
        .layer(axum::middleware::from_fn(crate::cors::any_origin))
}

impl From<WriteError> for ApiError {
    fn from(err: WriteError) -> Self {
        tracing::warn!(error = %err, "counts not committed");
        ApiError::StoreUnavailable
    }
}

/// Checks a parsed report against the key's app and the caps; nothing is written yet.
fn judge(state: &AppState, owner: &KeyOwner, raw: &RawReport) -> Result<Accepted, ApiError> {
    let key = raw.group_key()?;
    check_app_name(owner, &key.release.app_name)?;
    let limits = &state.config.reports;
    let details = raw
        .details
        .as_ref()
        .map(|d| {
            details::decode(
                &d.encoding,
                &d.data,
                limits.max_details_compressed_bytes,
                limits.max_details_decompressed_bytes,
            )
        })
        .transpose()?;
    Ok(Accepted {
        hash: key.hash(),
        key,
        details,
    })
}

fn check_app_name(owner: &KeyOwner, name: &str) -> Result<(), ApiError> {
    if name != owner.app_name {
        return Err(ApiError::invalid(
            "application.name",
            "application.name does not match the app of this report key",
        ));
    }
    Ok(())
}

struct Accepted {
    key: GroupKey,
    hash: String,
    details: Option<Details>,
}

impl Accepted {
    /// The count to commit, and what is left to do once it is committed.
    fn into_write(self, app_id: i64) -> (Write, Counted) {
        let write = Write::Report {
            app_id,
            key: self.key,
            hash: self.hash.clone(),
            at: Utc::now(),
        };
        let counted = Counted {
            app_id,
            hash: self.hash,
            details: self.details,
        };
        (write, counted)
    }
}

/// An accepted report whose count is committed.
struct Counted {
    app_id: i64,
    hash: String,
    details: Option<Details>,
}

/// What a client is told about one accepted report.
#[derive(serde::Serialize)]
struct ReportAnswer {
    group: String,
    details_stored: bool,
}

impl Counted {
    /// Stores the details, if any; the answer for the client.
    async fn finish(self, state: &AppState) -> ReportAnswer {
        let details_stored = match self.details {
            // Boxed: storing details awaits aws-sdk-s3 and a transaction, 20 KB of future that
            // inline would make every report handler's future as big, copied through each
            // layer on every request, details or not (docs/performance.md).
            Some(details) => Box::pin(keep_details(state, self.app_id, &self.hash, details)).await,
            None => false,
        };
        ReportAnswer {
            group: self.hash,
            details_stored,
        }
    }
}

/// The stored first answer when the request repeats a counted one.
async fn replayed(
    state: &AppState,
    app_id: i64,
    key: &IdempotencyKey,
) -> Result<Option<Response>, ApiError> {
    let Some(key) = &key.0 else { return Ok(None) };
    Ok(idempotency::stored(&state.db, app_id, key)
        .await?
        .map(idempotency::replay))
}

/// Hands `writes` to the writer with the request's claim, whose answer is `answer` (as it
/// reads before any details are stored); `None` when they were counted now, else the answer
/// of the request that counted them.
async fn commit(
    state: &AppState,
    app_id: i64,
    key: IdempotencyKey,
    writes: Vec<Write>,
    answer: &serde_json::Value,
) -> Result<Option<Response>, ApiError> {
    let claim = key.0.map(|key| Claim {
        app_id,
        key,
        answer: answer.to_string(),
    });
    let lookup = claim.as_ref().map(|claim| claim.key.clone());
    let reports = writes
        .iter()
        .filter(|write| matches!(write, Write::Report { .. }))
        .count();
    match (state.writer.submit(writes, claim).await?, lookup) {
        (Outcome::Counted, _) => {
            state.metrics.reports_accepted(reports as u64);
            Ok(None)
        }
        (Outcome::Claimed, Some(key)) => {
            let stored = idempotency::stored(&state.db, app_id, &key).await?;
            Ok(Some(idempotency::replay(
                stored.unwrap_or_else(|| answer.to_string()),
            )))
        }
        (Outcome::Claimed, None) => Ok(None),
    }
}

async fn ingest(
    State(state): State<AppState>,
    Metered(Reporter { owner, .. }): Metered,
    key: IdempotencyKey,
    JsonBody(bytes): JsonBody,
) -> Result<Response, ApiError> {
    if let Some(first) = replayed(&state, owner.app_id, &key).await? {
        return Ok(first);
    }
    let accepted = judge(&state, &owner, &payload::parse(&bytes)?)?;
    let (write, counted) = accepted.into_write(owner.app_id);
    let before_details = json!(ReportAnswer {
        group: counted.hash.clone(),
        details_stored: false,
    });
    if let Some(first) = commit(&state, owner.app_id, key, vec![write], &before_details).await? {
        return Ok(first);
    }
    let answer = counted.finish(&state).await;
    Ok((StatusCode::ACCEPTED, axum::Json(answer)).into_response())
}

/// Each report is judged alone; the accepted ones are counted in one transaction, so the
/// batch's counts land whole or not at all (503).
async fn ingest_batch(
    State(state): State<AppState>,
    Reporter { owner, device }: Reporter,
    key: IdempotencyKey,
    JsonBody(bytes): JsonBody,
) -> Result<Response, ApiError> {
    if let Some(first) = replayed(&state, owner.app_id, &key).await? {
        return Ok(first);
    }
    let batch: RawBatch = payload::parse(&bytes)?;
    if batch.reports.len() > MAX_BATCH_REPORTS {
        return Err(ApiError::BatchTooLarge {
            max: MAX_BATCH_REPORTS,
        });
    }
    let mut writes = Vec::with_capacity(batch.reports.len());
    let wanted = u64::try_from(batch.reports.len()).unwrap_or(u64::MAX);
    let admission = admit_reports(&state, &owner, device.as_deref(), wanted).await;
    let judged: Vec<Result<Counted, ApiError>> = batch
        .reports
        .into_iter()
        .enumerate()
        .map(|(index, value)| {
            if u64::try_from(index).unwrap_or(u64::MAX) >= admission.admitted {
                return Err(ApiError::RateLimited {
                    retry_after_secs: admission.retry_after_secs,
                });
            }
            let accepted = judge(&state, &owner, &payload::parse(value.get().as_bytes())?)?;
            let (write, counted) = accepted.into_write(owner.app_id);
            writes.push(write);
            Ok(counted)
        })
        .collect();
    let mut retry_after = None;
    let mut results: Vec<serde_json::Value> = judged
        .iter()
        .map(|item| match item {
            Ok(counted) => json!({
                "group": counted.hash,
                "details_stored": false,
                "status": StatusCode::ACCEPTED.as_u16(),
            }),
            Err(err) => {
                if let ApiError::RateLimited { retry_after_secs } = err {
                    retry_after = Some(*retry_after_secs);
                }
                state.metrics.report_rejected(err.code());
                let mut answer = err.body();
                answer["status"] = json!(err.status().as_u16());
                answer
            }
        })
        .collect();
    let accepted = judged.iter().filter(|item| item.is_ok()).count();
    let mut body = json!({
        "accepted": accepted,
        "rejected": results.len() - accepted,
        "results": results,
    });
    if !writes.is_empty() {
        if let Some(first) = commit(&state, owner.app_id, key, writes, &body).await? {
            return Ok(first);
        }
        for (result, item) in results.iter_mut().zip(judged) {
            if let Ok(counted) = item {
                result["details_stored"] = json!(counted.finish(&state).await.details_stored);
            }
        }
        body["results"] = json!(results);
    }
    let mut response = (StatusCode::ACCEPTED, axum::Json(body)).into_response();
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    Ok(response)
}

async fn usage(
    State(state): State<AppState>,
    MeteredUsage(Reporter { owner, .. }): MeteredUsage,
    key: IdempotencyKey,
    JsonBody(bytes): JsonBody,
) -> Result<Response, ApiError> {
    if let Some(first) = replayed(&state, owner.app_id, &key).await? {
        return Ok(first);
    }
    let usage = payload::parse::<RawUsage>(&bytes)?.validate()?;
    check_app_name(&owner, &usage.release.app_name)?;
    let answer = json!({ "counted": usage.count });
    let write = Write::Usage {
        app_id: owner.app_id,
        usage,
        at: Utc::now(),
    };
    if let Some(first) = commit(&state, owner.app_id, key, vec![write], &answer).await? {
        return Ok(first);
    }
    Ok((StatusCode::ACCEPTED, axum::Json(answer)).into_response())
}

/// Keeps the details as a blob when the group is under its cap. The count is already
/// committed, so any failure here only means `details_stored: false`.
///
/// The object is stored first and the slot is taken in the same transaction as the blob row,
/// one commit per blob; a full group is seen by a read and costs no write and no upload.
async fn keep_details(state: &AppState, app_id: i64, hash: &str, details: Details) -> bool {
    let cap = state.config.reports.max_blobs_per_group;
    let group = report_groups::Entity::find()
        .filter(report_groups::Column::AppId.eq(app_id))
        .filter(report_groups::Column::GroupHash.eq(hash))
        .one(&state.db)
        .await;
    match group {
        Ok(Some(group)) if i64::from(group.blob_count) < i64::from(cap) => {}
        Ok(_) => return false,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the group's blob count");
            return false;
        }
    }
    let blob_id = match crate::secrets::random_bytes::<16>() {
        Ok(bytes) => hex::encode(bytes),
        Err(e) => {
            tracing::error!(error = %e, "no blob id");
            return false;
        }
    };
    let key = storage_key(&state.config.reports.storage_prefix, app_id, hash, &blob_id);
    let row = report_blobs::ActiveModel {
        id: Set(blob_id),
        app_id: Set(app_id),
        group_hash: Set(hash.to_owned()),
        storage_key: Set(key.clone()),
        size_compressed: Set(details.gzip.len() as i64),
        size_decompressed: Set(details.decompressed_len as i64),
        created_at: Set(Utc::now()),
    };
    if let Err(e) = state.blobs.put(&key, Bytes::from(details.gzip)).await {
        tracing::warn!(error = %e, "details not stored");
        return false;
    }
    match record_blob(state, app_id, hash, cap, row).await {
        Ok(true) => return true,
        // Concurrent reports took the last slots between the read and the update.
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "blob row not written; removing the object"),
    }
    if let Err(e) = state.blobs.delete(&key).await {
        tracing::warn!(error = %e, key, "orphaned blob object");
    }
    false
}

/// Takes one of the group's blob slots and writes the blob's row, atomically; `false` when
/// the group is full. The conditional UPDATE keeps the cap under concurrency.
async fn record_blob(
    state: &AppState,
    app_id: i64,
    hash: &str,
    cap: u32,
    row: report_blobs::ActiveModel,
) -> Result<bool, sea_orm::DbErr> {
    let txn = state.db.begin_write().await?;
    let reserved = report_groups::Entity::update_many()
        .col_expr(
            report_groups::Column::BlobCount,
            Expr::col(report_groups::Column::BlobCount).add(1),
        )
        .filter(report_groups::Column::AppId.eq(app_id))
        .filter(report_groups::Column::GroupHash.eq(hash))
        .filter(report_groups::Column::BlobCount.lt(cap))
        .exec(&txn)
        .await?;
    if reserved.rows_affected != 1 {
        txn.rollback().await?;
        return Ok(false);
    }
    row.insert(&txn).await?;
    txn.commit().await?;
    Ok(true)
}
