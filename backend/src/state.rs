//! What every request handler shares: configuration, the database and the per-process
//! services built once at start-up. Below the handlers: nothing here imports them.

use std::ops::Deref;
use std::sync::Arc;

use crate::alerts::signing::DestinationSecrets;
use crate::auth::jwt::SessionKeys;
use crate::auth::login::Logins;
use crate::blobs::{BlobStore, LinkSigner};
use crate::config::Config;
use crate::db::Store;
use crate::ingest::writer::Writer;
use crate::keys::KeyCache;
use crate::ratelimit::RateLimits;
use crate::telemetry::Metrics;
use crate::throttled::ThrottledTally;

pub struct Shared {
    pub config: Config,
    /// Reads go straight to the pool; every write begins with `db.begin_write()`, which
    /// queues it behind this process's other SQLite writes (see `db::Store`).
    pub db: Store,
    pub keys: KeyCache,
    pub limits: RateLimits,
    /// What the limits refused, per app and hour, until it is flushed to the database.
    pub throttled: ThrottledTally,
    pub writer: Writer,
    pub blobs: BlobStore,
    pub sessions: SessionKeys,
    pub logins: Logins,
    /// Signs and checks the Local store's download links.
    pub blob_links: LinkSigner,
    /// The signing secrets of alert destinations.
    pub destination_secrets: DestinationSecrets,
    /// This server's Prometheus metrics (`/metrics`).
    pub metrics: Metrics,
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
