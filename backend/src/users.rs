//! The users of an account and what they may see: added, given apps, made admin or member,
//! disabled, and their own password changes. Admins of the account (or the operator) only,
//! but for the password; each change writes its audit row in its transaction, and an account
//! always keeps an enabled admin.

use entity::{app_access, users};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, Set,
};

use crate::accounts;
use crate::audit::{self, Change};
use crate::auth::{self, Actor, Permission};
use crate::db::Store;
use crate::error::ServiceError;
use crate::model::{FieldError, Role};

/// Adds a user to the actor's account; a member sees the apps of `app_ids`.
pub async fn create(
    db: &Store,
    actor: &Actor,
    email: &str,
    password: &str,
    role: Role,
    app_ids: &[i64],
) -> Result<users::Model, ServiceError> {
    let account_id = actor.admin_of()?;
    // Hashed before the transaction: argon2 is slow, and other writers wait for this one.
    let new_user = accounts::NewUser::prepare(email, Some(password), role)?;
    let txn = db.begin_write().await?;
    check_apps(&txn, actor, app_ids).await?;
    let user = accounts::create_user(&txn, account_id, new_user)
        .await?
        .user;
    grant(&txn, user.id, app_ids).await?;
    audit::record(
        &txn,
        actor,
        Change::new("create_user", "user", user.id)
            .detail(format!("{} as {}", user.email, user.role)),
    )
    .await?;
    txn.commit().await?;
    Ok(user)
}

/// Replaces the apps a member may see.
pub async fn set_access(
    db: &Store,
    actor: &Actor,
    user_id: i64,
    app_ids: &[i64],
) -> Result<users::Model, ServiceError> {
    let txn = db.begin_write().await?;
    let user = user_of_account(&txn, actor, user_id).await?;
    check_apps(&txn, actor, app_ids).await?;
    app_access::Entity::delete_many()
        .filter(app_access::Column::UserId.eq(user.id))
        .exec(&txn)
        .await?;
    grant(&txn, user.id, app_ids).await?;
    let listed: Vec<String> = app_ids.iter().map(i64::to_string).collect();
    audit::record(
        &txn,
        actor,
        Change::new("set_user_access", "user", user.id)
            .detail(format!("apps [{}]", listed.join(","))),
    )
    .await?;
    txn.commit().await?;
    Ok(user)
}

/// Makes a user an admin or a member.
pub async fn set_role(
    db: &Store,
    actor: &Actor,
    user_id: i64,
    role: Role,
) -> Result<users::Model, ServiceError> {
    let txn = db.begin_write().await?;
    let mut update: users::ActiveModel = user_of_account(&txn, actor, user_id).await?.into();
    update.role = Set(role.as_str().to_owned());
    let user = update.update(&txn).await?;
    keep_an_admin(&txn, user.account_id).await?;
    audit::record(
        &txn,
        actor,
        Change::new("set_user_role", "user", user.id).detail(user.role.clone()),
    )
    .await?;
    txn.commit().await?;
    Ok(user)
}

/// Disables (or re-enables) a user; either ends every session of the user at once.
pub async fn set_disabled(
    db: &Store,
    actor: &Actor,
    user_id: i64,
    disabled: bool,
) -> Result<users::Model, ServiceError> {
    let txn = db.begin_write().await?;
    let user = user_of_account(&txn, actor, user_id).await?;
    let token_version = user.token_version + 1;
    let mut update: users::ActiveModel = user.into();
    update.disabled = Set(disabled);
    update.token_version = Set(token_version);
    let user = update.update(&txn).await?;
    keep_an_admin(&txn, user.account_id).await?;
    let action = if disabled {
        "disable_user"
    } else {
        "enable_user"
    };
    audit::record(&txn, actor, Change::new(action, "user", user.id)).await?;
    txn.commit().await?;
    Ok(user)
}

/// Changes the signed-in user's password and ends every session of the user; the caller
/// issues the new one.
pub async fn change_password(
    db: &Store,
    actor: &Actor,
    current_password: &str,
    new_password: &str,
) -> Result<users::Model, ServiceError> {
    let user = actor.user()?.clone();
    accounts::check_password(new_password)?;
    let (current, new, hash) = (
        current_password.to_owned(),
        new_password.to_owned(),
        user.password_hash.clone(),
    );
    // argon2 is deliberately slow: keep it off the async workers.
    let new_hash = tokio::task::spawn_blocking(move || {
        accounts::verify_password(&current, &hash).then(|| accounts::hash_password(&new))
    })
    .await
    .map_err(|e| ServiceError::Hashing(e.to_string()))?
    .ok_or_else(|| {
        ServiceError::Invalid(FieldError::new(
            "currentPassword",
            "the current password is wrong",
        ))
    })??;
    let txn = db.begin_write().await?;
    let token_version = user.token_version + 1;
    let mut update: users::ActiveModel = user.into();
    update.password_hash = Set(new_hash);
    update.token_version = Set(token_version);
    let user = update.update(&txn).await?;
    audit::record(&txn, actor, Change::new("change_password", "user", user.id)).await?;
    txn.commit().await?;
    Ok(user)
}

/// Each app must be one the actor may manage: an app of another account is `Forbidden`.
async fn check_apps(
    db: &impl ConnectionTrait,
    actor: &Actor,
    app_ids: &[i64],
) -> Result<(), ServiceError> {
    for &app_id in app_ids {
        auth::authorize_app(db, actor, Permission::Manage, app_id).await?;
    }
    Ok(())
}

async fn grant(
    db: &impl ConnectionTrait,
    user_id: i64,
    app_ids: &[i64],
) -> Result<(), ServiceError> {
    if app_ids.is_empty() {
        return Ok(());
    }
    app_access::Entity::insert_many(app_ids.iter().map(|&app_id| app_access::ActiveModel {
        user_id: Set(user_id),
        app_id: Set(app_id),
    }))
    .exec(db)
    .await?;
    Ok(())
}

/// A user of the actor's account, when the actor may change it; a user of another account,
/// or none, is `Forbidden`.
async fn user_of_account(
    db: &impl ConnectionTrait,
    actor: &Actor,
    user_id: i64,
) -> Result<users::Model, ServiceError> {
    let account_id = actor.admin_of()?;
    users::Entity::find_by_id(user_id)
        .filter(users::Column::AccountId.eq(account_id))
        .one(db)
        .await?
        .ok_or(ServiceError::Forbidden)
}

/// Refuses a change that would leave the account without an enabled admin.
async fn keep_an_admin(db: &impl ConnectionTrait, account_id: i64) -> Result<(), ServiceError> {
    let admins = users::Entity::find()
        .filter(users::Column::AccountId.eq(account_id))
        .filter(users::Column::Role.eq(Role::Admin.as_str()))
        .filter(users::Column::Disabled.eq(false))
        .count(db)
        .await?;
    if admins == 0 {
        return Err(ServiceError::Invalid(FieldError::new(
            "userId",
            "the account must keep at least one enabled admin",
        )));
    }
    Ok(())
}
