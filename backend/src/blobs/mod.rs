//! Private blob storage for report details (DESIGN §7): a local folder or an S3 bucket.

mod links;
mod local;
mod s3;

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};

pub use links::LinkSigner;
pub use local::LocalBlobs;
pub use s3::S3Blobs;

use crate::config::StorageConfig;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob folder: {0}")]
    Io(#[from] std::io::Error),
    #[error("S3: {0}")]
    S3(String),
}

pub enum BlobStore {
    Local(LocalBlobs),
    S3(S3Blobs),
}

impl BlobStore {
    pub fn from_config(storage: &StorageConfig) -> Result<Self, BlobError> {
        Ok(match storage {
            StorageConfig::Local { dir } => BlobStore::Local(LocalBlobs::new(dir.clone())?),
            StorageConfig::S3(s3) => BlobStore::S3(S3Blobs::new(s3)),
        })
    }

    pub async fn put(&self, key: &str, body: Bytes) -> Result<(), BlobError> {
        match self {
            BlobStore::Local(local) => local.put(key, body).await,
            BlobStore::S3(s3) => s3.put(key, body).await,
        }
    }

    /// Deletes the object; an object that is already gone is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        match self {
            BlobStore::Local(local) => local.delete(key).await,
            BlobStore::S3(s3) => s3.delete(key).await,
        }
    }
}

/// A download URL and when it stops working.
pub struct BlobLink {
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

impl BlobStore {
    /// A time-limited download URL for the blob: presigned by S3, or signed by this backend
    /// for its `/blobs/…` route under `local_base` (scheme and host, as the client reached us).
    pub async fn download_link(
        &self,
        blob_id: &str,
        storage_key: &str,
        ttl: Duration,
        signer: &LinkSigner,
        local_base: &str,
    ) -> Result<BlobLink, BlobError> {
        // Rounded up to whole seconds, as links carry it: a link lives at least `ttl`.
        let expires_at =
            DateTime::from_timestamp(Utc::now().timestamp() + 1, 0).unwrap_or_default() + ttl;
        let url = match self {
            BlobStore::Local(_) => format!("{local_base}{}", signer.path(blob_id, expires_at)),
            BlobStore::S3(s3) => s3.presign_get(storage_key, ttl).await?,
        };
        Ok(BlobLink { url, expires_at })
    }
}

/// `{prefix}/{app_id}/{group_hash}/{blob_id}.gz`
pub fn storage_key(prefix: &str, app_id: i64, group_hash: &str, blob_id: &str) -> String {
    format!("{prefix}/{app_id}/{group_hash}/{blob_id}.gz")
}
