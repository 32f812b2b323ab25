//! Apps of an account: created with reports enabled and a first report key, renamed,
//! switched on or off, deleted. Admins of the account (or the operator) only; each change
//! writes its audit row in its transaction.

use chrono::Utc;
use entity::{apps, report_blobs};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QuerySelect, Set,
};

use crate::audit::{self, Change};
use crate::auth::{self, Actor, Permission};
use crate::blobs::BlobStore;
use crate::db::Store;
use crate::error::ServiceError;
use crate::keys::{self, NewKey};
use crate::model;

/// Creates the app with reports enabled and returns its first key, shown once.
pub async fn create(
    db: &Store,
    actor: &Actor,
    name: &str,
) -> Result<(apps::Model, NewKey), ServiceError> {
    let account_id = actor.admin_of()?;
    let name = model::app_name("name", name)?;
    let txn = db.begin_write().await?;
    refuse_taken_name(&txn, account_id, &name).await?;
    let app = apps::ActiveModel {
        account_id: Set(account_id),
        name: Set(name),
        reports_enabled: Set(true),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    let key = keys::issue(&txn, app.id).await?;
    audit::record(
        &txn,
        actor,
        Change::new("create_app", "app", app.id).detail(app.name.clone()),
    )
    .await?;
    txn.commit().await?;
    Ok((app, key))
}

/// Renames the app and/or switches its reports on or off. The caller forgets its cached
/// report keys of the app, so ingestion sees the change at once.
pub async fn update(
    db: &Store,
    actor: &Actor,
    app_id: i64,
    name: Option<&str>,
    reports_enabled: Option<bool>,
) -> Result<apps::Model, ServiceError> {
    let txn = db.begin_write().await?;
    let app = auth::authorize_app(&txn, actor, Permission::Manage, app_id).await?;
    let mut changes = Vec::new();
    let mut update: apps::ActiveModel = app.clone().into();
    if let Some(name) = name {
        let name = model::app_name("name", name)?;
        if name != app.name {
            refuse_taken_name(&txn, app.account_id, &name).await?;
            changes.push(format!("name {:?} -> {name:?}", app.name));
            update.name = Set(name);
        }
    }
    if let Some(enabled) = reports_enabled {
        changes.push(format!("reports_enabled -> {enabled}"));
        update.reports_enabled = Set(enabled);
    }
    let app = update.update(&txn).await?;
    audit::record(
        &txn,
        actor,
        Change::new("update_app", "app", app.id).detail(changes.join(", ")),
    )
    .await?;
    txn.commit().await?;
    Ok(app)
}

/// Deletes an app with its keys, groups, counts and blobs.
pub async fn delete(
    db: &Store,
    blobs: &BlobStore,
    actor: &Actor,
    app_id: i64,
) -> Result<(), ServiceError> {
    let app = auth::authorize_app(db, actor, Permission::Manage, app_id).await?;
    // Objects first: a row without its object is harmless, an object without a row is lost.
    let keys: Vec<String> = report_blobs::Entity::find()
        .select_only()
        .column(report_blobs::Column::StorageKey)
        .filter(report_blobs::Column::AppId.eq(app.id))
        .into_tuple()
        .all(db)
        .await?;
    for key in &keys {
        blobs.delete(key).await?;
    }
    let txn = db.begin_write().await?;
    apps::Entity::delete_by_id(app.id).exec(&txn).await?;
    audit::record(
        &txn,
        actor,
        Change::new("delete_app", "app", app.id).detail(app.name.clone()),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

async fn refuse_taken_name(
    db: &impl ConnectionTrait,
    account_id: i64,
    name: &str,
) -> Result<(), ServiceError> {
    let taken = apps::Entity::find()
        .filter(apps::Column::AccountId.eq(account_id))
        .filter(apps::Column::Name.eq(name))
        .count(db)
        .await?
        > 0;
    if taken {
        return Err(ServiceError::Conflict(format!(
            "an app named {name:?} already exists in this account"
        )));
    }
    Ok(())
}

/// The app of `account_id` named `name`.
pub async fn find_by_name(
    db: &impl ConnectionTrait,
    account_id: i64,
    name: &str,
) -> Result<apps::Model, ServiceError> {
    apps::Entity::find()
        .filter(apps::Column::AccountId.eq(account_id))
        .filter(apps::Column::Name.eq(name.trim()))
        .one(db)
        .await?
        .ok_or(ServiceError::NotFound("app"))
}
