//! The daily blob clean-up (DESIGN §7): blobs past retention, and blobs beyond a group's cap,
//! are deleted — the object first, then its row, so no row ever points at nothing.

use chrono::{Duration, Utc};
use entity::{report_blobs, report_groups};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::blobs::BlobStore;
use crate::config::ReportsConfig;
use crate::db::Store;
use crate::error::ServiceError;

const PAGE: u64 = 500;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sweep {
    pub expired: u64,
    pub over_cap: u64,
    pub failed: u64,
}

pub async fn sweep(
    db: &Store,
    blobs: &BlobStore,
    reports: &ReportsConfig,
) -> Result<Sweep, ServiceError> {
    let mut result = Sweep::default();
    let cutoff = Utc::now() - Duration::days(i64::from(reports.blob_retention_days));
    loop {
        let expired = report_blobs::Entity::find()
            .filter(report_blobs::Column::CreatedAt.lt(cutoff))
            .order_by_asc(report_blobs::Column::CreatedAt)
            .limit(PAGE)
            .all(db)
            .await?;
        let page_len = expired.len() as u64;
        let deleted = remove(db, blobs, expired, &mut result.failed).await?;
        result.expired += deleted;
        if page_len < PAGE || deleted == 0 {
            break;
        }
    }

    let cap = u64::from(reports.max_blobs_per_group);
    let crowded: Vec<(i64, String)> = report_blobs::Entity::find()
        .select_only()
        .column(report_blobs::Column::AppId)
        .column(report_blobs::Column::GroupHash)
        .group_by(report_blobs::Column::AppId)
        .group_by(report_blobs::Column::GroupHash)
        .having(report_blobs::Column::Id.count().gt(cap))
        .into_tuple()
        .all(db)
        .await?;
    for (app_id, group_hash) in crowded {
        // Keep the newest `cap`; a crowded group holds few more than that.
        let surplus = report_blobs::Entity::find()
            .filter(report_blobs::Column::AppId.eq(app_id))
            .filter(report_blobs::Column::GroupHash.eq(group_hash.as_str()))
            .order_by_desc(report_blobs::Column::CreatedAt)
            .all(db)
            .await?
            .into_iter()
            .skip(cap as usize)
            .collect();
        result.over_cap += remove(db, blobs, surplus, &mut result.failed).await?;
    }
    Ok(result)
}

/// Deletes each blob's object, then its row and its place in the group's count.
async fn remove(
    db: &Store,
    blobs: &BlobStore,
    rows: Vec<report_blobs::Model>,
    failed: &mut u64,
) -> Result<u64, ServiceError> {
    let mut deleted = 0;
    for blob in rows {
        if let Err(e) = blobs.delete(&blob.storage_key).await {
            tracing::warn!(error = %e, key = blob.storage_key, "blob object not deleted; kept for the next sweep");
            *failed += 1;
            continue;
        }
        let txn = db.begin_write().await?;
        report_blobs::Entity::delete_by_id(blob.id.clone())
            .exec(&txn)
            .await?;
        report_groups::Entity::update_many()
            .col_expr(
                report_groups::Column::BlobCount,
                Expr::col(report_groups::Column::BlobCount).sub(1),
            )
            .filter(report_groups::Column::AppId.eq(blob.app_id))
            .filter(report_groups::Column::GroupHash.eq(blob.group_hash.as_str()))
            .filter(report_groups::Column::BlobCount.gt(0))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        deleted += 1;
    }
    Ok(deleted)
}
