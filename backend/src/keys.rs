//! Report keys (`rpk_…`): issued, rotated and revoked per app, and resolved on the ingestion
//! path through a short-lived cache so a hot key costs no query, while a revocation is
//! honoured within `key_cache_ttl`.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use entity::{apps, report_keys};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect,
    Set,
};

use crate::audit::{self, Change};
use crate::auth::{self, Actor, Permission};
use crate::db::Store;
use crate::error::ServiceError;
use crate::secrets;

pub const KEY_PREFIX: &str = "rpk_";
/// Bounds the cache under a flood of random keys; it is simply emptied when full.
const MAX_CACHED_KEYS: usize = 100_000;

/// A key as shown once, at creation.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub key: String,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
}

/// What ingestion needs to know about a valid key.
#[derive(Debug, Clone)]
pub struct KeyOwner {
    pub key_id: i64,
    pub app_id: i64,
    pub app_name: String,
    pub reports_enabled: bool,
}

/// Issues a new report key for the app and revokes the old one; the key is shown this once.
/// The caller forgets its cached keys of the app.
pub async fn rotate(db: &Store, actor: &Actor, app_id: i64) -> Result<NewKey, ServiceError> {
    let txn = db.begin_write().await?;
    let app = auth::authorize_app(&txn, actor, Permission::Manage, app_id).await?;
    let key = issue(&txn, app.id).await?;
    audit::record(
        &txn,
        actor,
        Change::new("rotate_report_key", "app", app.id).detail(key.prefix.clone()),
    )
    .await?;
    txn.commit().await?;
    Ok(key)
}

/// Revokes the app's report key; false when it had none. Reports with it are refused.
pub async fn revoke(db: &Store, actor: &Actor, app_id: i64) -> Result<bool, ServiceError> {
    let txn = db.begin_write().await?;
    let app = auth::authorize_app(&txn, actor, Permission::Manage, app_id).await?;
    let revoked = revoke_active(&txn, app.id, Utc::now()).await? > 0;
    audit::record(&txn, actor, Change::new("revoke_report_key", "app", app.id)).await?;
    txn.commit().await?;
    Ok(revoked)
}

/// Issues a new key for the app and revokes the active one, in the caller's write
/// transaction, so an app never has two active keys.
pub(crate) async fn issue(txn: &impl ConnectionTrait, app_id: i64) -> Result<NewKey, ServiceError> {
    let key = secrets::new_secret(KEY_PREFIX)?;
    let created_at = Utc::now();
    // Two rotations at once on PostgreSQL would each revoke the key they saw and each add
    // one: locking the app row first makes the second wait and then revoke the first's key.
    // (SQLite has no row locks; there the write transaction already holds the database.)
    apps::Entity::find_by_id(app_id)
        .lock_exclusive()
        .one(txn)
        .await?;
    revoke_active(txn, app_id, created_at).await?;
    let prefix = secrets::display_prefix(&key);
    report_keys::ActiveModel {
        app_id: Set(app_id),
        key_hash: Set(secrets::sha256_hex(&key)),
        key_prefix: Set(prefix.clone()),
        created_at: Set(created_at),
        revoked_at: Set(None),
        ..Default::default()
    }
    .insert(txn)
    .await?;
    Ok(NewKey {
        key,
        prefix,
        created_at,
    })
}

async fn revoke_active(
    db: &impl ConnectionTrait,
    app_id: i64,
    at: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let result = report_keys::Entity::update_many()
        .col_expr(
            report_keys::Column::RevokedAt,
            sea_orm::sea_query::Expr::value(at),
        )
        .filter(report_keys::Column::AppId.eq(app_id))
        .filter(report_keys::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// Resolves presented keys to their app, remembering answers (also "no such key") for a while.
pub struct KeyCache {
    ttl: Duration,
    entries: RwLock<HashMap<String, (Instant, Option<KeyOwner>)>>,
}

impl KeyCache {
    pub fn new(ttl: Duration) -> Self {
        KeyCache {
            ttl,
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// `Ok(None)` for a key that is malformed, unknown or revoked.
    pub async fn resolve(
        &self,
        db: &impl ConnectionTrait,
        key: &str,
    ) -> Result<Option<KeyOwner>, DbErr> {
        if !secrets::has_secret_format(key, KEY_PREFIX) {
            return Ok(None);
        }
        let hash = secrets::sha256_hex(key);
        if let Ok(entries) = self.entries.read()
            && let Some((at, owner)) = entries.get(&hash)
            && at.elapsed() < self.ttl
        {
            return Ok(owner.clone());
        }
        let owner = report_keys::Entity::find()
            .filter(report_keys::Column::KeyHash.eq(hash.as_str()))
            .filter(report_keys::Column::RevokedAt.is_null())
            .find_also_related(apps::Entity)
            .one(db)
            .await?
            .and_then(|(key, app)| {
                app.map(|app| KeyOwner {
                    key_id: key.id,
                    app_id: app.id,
                    app_name: app.name,
                    reports_enabled: app.reports_enabled,
                })
            });
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= MAX_CACHED_KEYS {
                entries.clear();
            }
            entries.insert(hash, (Instant::now(), owner.clone()));
        }
        Ok(owner)
    }

    /// Drops what is cached for an app, so changes made by this process apply at once.
    pub fn forget_app(&self, app_id: i64) {
        if let Ok(mut entries) = self.entries.write() {
            entries.retain(|_, (_, owner)| owner.as_ref().is_none_or(|o| o.app_id != app_id));
        }
    }
}
