//! Blobs as files under the data dir; downloads go through the backend's signed route.

use std::path::PathBuf;

use bytes::Bytes;

use super::BlobError;

pub struct LocalBlobs {
    root: PathBuf,
}

impl LocalBlobs {
    pub fn new(root: PathBuf) -> Result<Self, BlobError> {
        std::fs::create_dir_all(&root)?;
        Ok(LocalBlobs { root })
    }

    /// Keys are built by `storage_key` from validated parts only, never from client text.
    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    pub async fn put(&self, key: &str, body: Bytes) -> Result<(), BlobError> {
        let path = self.path(key);
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        // Write then rename, so a reader never sees half a file.
        let partial = path.with_extension("gz.partial");
        tokio::fs::write(&partial, &body).await?;
        tokio::fs::rename(&partial, &path).await?;
        Ok(())
    }

    /// The object's bytes; `None` when it is gone (deleted by retention).
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, BlobError> {
        match tokio::fs::read(self.path(key)).await {
            Ok(bytes) => Ok(Some(Bytes::from(bytes))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        match tokio::fs::remove_file(self.path(key)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}
