//! A real S3 protocol server in-process: s3s-fs over a temporary folder.

use std::net::SocketAddr;
use std::path::PathBuf;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tempfile::TempDir;

pub const ACCESS_KEY: &str = "rollwatch-test-access";
pub const SECRET_KEY: &str = "rollwatch-test-secret-key";
pub const BUCKET: &str = "rollwatch-private";

pub struct S3Server {
    pub addr: SocketAddr,
    pub root: TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl S3Server {
    pub async fn start() -> S3Server {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join(BUCKET)).unwrap();
        let fs = s3s_fs::FileSystem::new(root.path()).unwrap();
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let http = ConnBuilder::new(TokioExecutor::new());
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let connection = http
                    .serve_connection(TokioIo::new(socket), service.clone())
                    .into_owned();
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
        });
        S3Server { addr, root, task }
    }

    /// The variables that point `rollwatch serve` at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("STORAGE_DRIVER", "s3".to_owned()),
            ("S3_ENDPOINT", format!("http://{}", self.addr)),
            ("S3_REGION", "us-east-1".to_owned()),
            ("S3_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
            ("S3_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
            ("S3_BUCKET_NAME_PRIVATE", BUCKET.to_owned()),
            ("S3_FORCE_PATH_STYLE", "true".to_owned()),
        ]
    }

    /// Where s3s-fs keeps the object of `key`.
    pub fn object_path(&self, key: &str) -> PathBuf {
        self.root.path().join(BUCKET).join(key)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}
