//! Private blob storage for report details (DESIGN §7): a local folder or an S3 bucket.

mod local;
mod s3;

use bytes::Bytes;

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

/// `{prefix}/{app_id}/{group_hash}/{blob_id}.gz`
pub fn storage_key(prefix: &str, app_id: i64, group_hash: &str, blob_id: &str) -> String {
    format!("{prefix}/{app_id}/{group_hash}/{blob_id}.gz")
}
