//! Blobs as files under the data dir; downloads go through the backend's signed route.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

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

    /// Stores `body` under `key` durably: once this returns, the object survives a power cut,
    /// because the answer `details_stored: true` promises it as S3's 200 does.
    pub async fn put(&self, key: &str, body: Bytes) -> Result<(), BlobError> {
        let path = self.path(key);
        let root = self.root.clone();
        // One blocking task for the whole sequence instead of one per `tokio::fs` call.
        tokio::task::spawn_blocking(move || write_durably(&root, &path, &body))
            .await
            .map_err(std::io::Error::other)??;
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

/// Writes the file under a temporary name, syncs it, renames it into place (so a reader never
/// sees half a file), then syncs the directories whose entries changed: the file's, and those
/// of any directory created for it, up to `root`.
fn write_durably(root: &Path, path: &Path, body: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(root);
    let created_dir = !dir.exists();
    std::fs::create_dir_all(dir)?;
    let partial = path.with_extension("gz.partial");
    let mut file = File::create(&partial)?;
    file.write_all(body)?;
    file.sync_data()?;
    std::fs::rename(&partial, path)?;
    File::open(dir)?.sync_all()?;
    if created_dir {
        for ancestor in dir.ancestors().skip(1) {
            File::open(ancestor)?.sync_all()?;
            if ancestor == root {
                break;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_object_is_stored_whole_in_a_new_folder_and_can_be_deleted() {
        let dir = tempfile::tempdir().expect("temp dir");
        let blobs = LocalBlobs::new(dir.path().join("blobs")).expect("blob folder");
        let key = "details/7/abc/0001.gz";
        let body = Bytes::from(vec![7u8; 10_000]);
        blobs.put(key, body.clone()).await.expect("put");
        assert_eq!(blobs.get(key).await.expect("get"), Some(body));
        let folder = dir.path().join("blobs/details/7/abc");
        let names: Vec<_> = std::fs::read_dir(&folder)
            .expect("the group's folder")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["0001.gz"], "no partial file is left behind");
        blobs.delete(key).await.expect("delete");
        assert_eq!(blobs.get(key).await.expect("get"), None);
    }
}
