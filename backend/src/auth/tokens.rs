//! CI tokens (`rwt_…`): read-only, stored as SHA-256 hashes, shown once, optionally
//! expiring, and scoped to some apps of their account or to all of them.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use entity::{api_token_apps, api_tokens};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QuerySelect, Set,
};

use super::{Actor, AppScope, Permission};
use crate::audit::{self, Change};
use crate::db::Store;
use crate::error::ServiceError;
use crate::secrets;

pub const TOKEN_PREFIX: &str = "rwt_";
/// `last_used_at` is refreshed at most this often, so CI polling costs no write per request.
const LAST_USED_PRECISION: Duration = Duration::minutes(1);

/// A token as shown once, at creation.
pub struct NewToken {
    pub token: String,
    pub model: api_tokens::Model,
    pub scope: AppScope,
}

pub struct TokenSpec<'a> {
    pub name: &'a str,
    /// `All` for every app of the account, present and future.
    pub scope: AppScope,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Creates a read-only token of the actor's account (admins and the operator only), scoped
/// to apps of that account; the token is shown this once.
pub async fn create(
    db: &Store,
    actor: &Actor,
    spec: TokenSpec<'_>,
) -> Result<NewToken, ServiceError> {
    let account_id = actor.admin_of()?;
    let name = spec.name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ServiceError::invalid(
            "name",
            "a token name has 1 to 64 printable characters".to_owned(),
        ));
    }
    if spec.expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(ServiceError::invalid(
            "expiresAt",
            "the expiry must be in the future".to_owned(),
        ));
    }
    let txn = db.begin_write().await?;
    if let AppScope::Only(ids) = &spec.scope {
        for &app_id in ids {
            super::authorize_app(&txn, actor, Permission::Manage, app_id).await?;
        }
    }
    let token = secrets::new_secret(TOKEN_PREFIX)?;
    let model = api_tokens::ActiveModel {
        account_id: Set(account_id),
        name: Set(name.to_owned()),
        token_hash: Set(secrets::sha256_hex(&token)),
        token_prefix: Set(secrets::display_prefix(&token)),
        all_apps: Set(spec.scope == AppScope::All),
        created_by: Set(actor.user_id()),
        created_at: Set(Utc::now()),
        last_used_at: Set(None),
        expires_at: Set(spec.expires_at),
        revoked_at: Set(None),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    if let AppScope::Only(ids) = &spec.scope
        && !ids.is_empty()
    {
        api_token_apps::Entity::insert_many(ids.iter().map(|&app_id| {
            api_token_apps::ActiveModel {
                token_id: Set(model.id),
                app_id: Set(app_id),
            }
        }))
        .exec(&txn)
        .await?;
    }
    audit::record(
        &txn,
        actor,
        Change::new("create_api_token", "api_token", model.id).detail(model.name.clone()),
    )
    .await?;
    txn.commit().await?;
    Ok(NewToken {
        token,
        model,
        scope: spec.scope,
    })
}

/// Revokes a token of the actor's account at once; false when it was already revoked. A
/// token of another account, or none, is `Forbidden`.
pub async fn revoke(db: &Store, actor: &Actor, token_id: i64) -> Result<bool, ServiceError> {
    let account_id = actor.admin_of()?;
    let txn = db.begin_write().await?;
    let exists = api_tokens::Entity::find_by_id(token_id)
        .filter(api_tokens::Column::AccountId.eq(account_id))
        .count(&txn)
        .await?
        > 0;
    if !exists {
        return Err(ServiceError::Forbidden);
    }
    let result = api_tokens::Entity::update_many()
        .col_expr(api_tokens::Column::RevokedAt, Expr::value(Utc::now()))
        .filter(api_tokens::Column::Id.eq(token_id))
        .filter(api_tokens::Column::AccountId.eq(account_id))
        .filter(api_tokens::Column::RevokedAt.is_null())
        .exec(&txn)
        .await?;
    audit::record(
        &txn,
        actor,
        Change::new("revoke_api_token", "api_token", token_id),
    )
    .await?;
    txn.commit().await?;
    Ok(result.rows_affected > 0)
}

/// The live token behind `presented` and its scope; `None` for unknown, revoked or expired.
pub async fn resolve(
    db: &Store,
    presented: &str,
) -> Result<Option<(api_tokens::Model, AppScope)>, DbErr> {
    if !secrets::has_secret_format(presented, TOKEN_PREFIX) {
        return Ok(None);
    }
    let now = Utc::now();
    let Some(token) = api_tokens::Entity::find()
        .filter(api_tokens::Column::TokenHash.eq(secrets::sha256_hex(presented)))
        .one(db)
        .await?
        .filter(|t| t.revoked_at.is_none() && t.expires_at.is_none_or(|at| at > now))
    else {
        return Ok(None);
    };
    let scope = scope_of(db, &token).await?;
    if token
        .last_used_at
        .is_none_or(|at| now - at >= LAST_USED_PRECISION)
    {
        let txn = db.begin_write().await?;
        api_tokens::Entity::update_many()
            .col_expr(api_tokens::Column::LastUsedAt, Expr::value(now))
            .filter(api_tokens::Column::Id.eq(token.id))
            .exec(&txn)
            .await?;
        txn.commit().await?;
    }
    Ok(Some((token, scope)))
}

pub async fn scope_of(
    db: &impl ConnectionTrait,
    token: &api_tokens::Model,
) -> Result<AppScope, DbErr> {
    if token.all_apps {
        return Ok(AppScope::All);
    }
    let ids: Vec<i64> = api_token_apps::Entity::find()
        .select_only()
        .column(api_token_apps::Column::AppId)
        .filter(api_token_apps::Column::TokenId.eq(token.id))
        .into_tuple()
        .all(db)
        .await?;
    Ok(AppScope::Only(ids.into_iter().collect::<HashSet<_>>()))
}
