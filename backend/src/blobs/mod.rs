//! Private blob storage for report details (DESIGN §7): a local folder or an S3 bucket.

mod links;
mod local;
mod s3;

use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};

pub use links::LinkSigner;
pub use local::LocalBlobs;
pub use s3::S3Blobs;

use crate::config::StorageConfig;
use crate::telemetry::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob folder: {0}")]
    Io(#[from] std::io::Error),
    #[error("S3: {0}")]
    S3(String),
}

/// The configured store; every call through it is timed, and counted when it fails.
pub struct BlobStore {
    backend: Backend,
    metrics: Metrics,
}

pub enum Backend {
    Local(LocalBlobs),
    S3(S3Blobs),
}

impl BlobStore {
    pub fn from_config(storage: &StorageConfig, metrics: Metrics) -> Result<Self, BlobError> {
        let backend = match storage {
            StorageConfig::Local { dir } => Backend::Local(LocalBlobs::new(dir.clone())?),
            StorageConfig::S3(s3) => Backend::S3(S3Blobs::new(s3)),
        };
        Ok(BlobStore { backend, metrics })
    }

    /// The local folder, when blobs are kept in one (it alone serves downloads itself).
    pub fn local(&self) -> Option<&LocalBlobs> {
        match &self.backend {
            Backend::Local(local) => Some(local),
            Backend::S3(_) => None,
        }
    }

    /// Runs one store call, recording its duration and whether it failed.
    pub async fn timed<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, BlobError>>,
    ) -> Result<T, BlobError> {
        let started = Instant::now();
        let outcome = call.await;
        self.metrics
            .blob_operation(operation, started.elapsed(), outcome.is_ok());
        outcome
    }

    pub async fn put(&self, key: &str, body: Bytes) -> Result<(), BlobError> {
        match &self.backend {
            Backend::Local(local) => self.timed("put", local.put(key, body)).await,
            Backend::S3(s3) => self.timed("put", s3.put(key, body)).await,
        }
    }

    /// Deletes the object; an object that is already gone is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        match &self.backend {
            Backend::Local(local) => self.timed("delete", local.delete(key)).await,
            Backend::S3(s3) => self.timed("delete", s3.delete(key)).await,
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
        let url = match &self.backend {
            Backend::Local(_) => format!("{local_base}{}", signer.path(blob_id, expires_at)),
            Backend::S3(s3) => {
                self.timed("presign", s3.presign_get(storage_key, ttl))
                    .await?
            }
        };
        Ok(BlobLink { url, expires_at })
    }
}

/// `{prefix}/{app_id}/{group_hash}/{blob_id}.gz`
pub fn storage_key(prefix: &str, app_id: i64, group_hash: &str, blob_id: &str) -> String {
    format!("{prefix}/{app_id}/{group_hash}/{blob_id}.gz")
}
