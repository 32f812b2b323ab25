//! What every request handler shares: configuration, the database and the per-process
//! services built once at start-up. Below the handlers: nothing here imports them.

use std::ops::Deref;
use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::auth::jwt::SessionKeys;
use crate::auth::login::Logins;
use crate::blobs::{BlobStore, LinkSigner};
use crate::config::Config;
use crate::db::WriteGate;
use crate::ingest::writer::Writer;
use crate::keys::KeyCache;
use crate::ratelimit::RateLimits;

pub struct Shared {
    pub config: Config,
    pub db: DatabaseConnection,
    pub keys: KeyCache,
    pub limits: RateLimits,
    pub writer: Writer,
    /// Taken around every SQLite write outside the writer too (see `db::WriteGate`).
    pub write_gate: WriteGate,
    pub blobs: BlobStore,
    pub sessions: SessionKeys,
    pub logins: Logins,
    /// Signs and checks the Local store's download links.
    pub blob_links: LinkSigner,
}

#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}
