//! Apps of an account: created with reports enabled and a first report key.

use chrono::Utc;
use entity::apps;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, Set,
    TransactionSession, TransactionTrait,
};

use crate::error::ServiceError;
use crate::ingest::payload;
use crate::keys::{self, NewKey};

pub fn check_name(name: &str) -> Result<String, ServiceError> {
    payload::app_name(name).map_err(|e| ServiceError::Invalid {
        field: "name",
        message: e.to_string().replace("application.name", "an app name"),
    })
}

/// Creates the app with reports enabled and returns its first key, shown once.
pub async fn create(
    db: &impl TransactionTrait,
    account_id: i64,
    name: &str,
) -> Result<(apps::Model, NewKey), ServiceError> {
    let name = check_name(name)?;
    let txn = db.begin().await?;
    if apps::Entity::find()
        .filter(apps::Column::AccountId.eq(account_id))
        .filter(apps::Column::Name.eq(name.as_str()))
        .count(&txn)
        .await?
        > 0
    {
        return Err(ServiceError::Conflict(format!(
            "an app named {name:?} already exists in this account"
        )));
    }
    let app = apps::ActiveModel {
        account_id: Set(account_id),
        name: Set(name),
        reports_enabled: Set(true),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    let key = keys::rotate(&txn, app.id).await?;
    txn.commit().await?;
    Ok((app, key))
}

/// The app of `account_id` named `name`.
pub async fn find_by_name(
    db: &impl sea_orm::ConnectionTrait,
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
