//! Accounts side of the schema: the caller, apps and their report keys, users and their
//! access, CI tokens, the audit log, and sign-in. Changes need an admin of the account
//! (`Actor::admin` or `Permission::Manage`), and each writes an audit row in its transaction.

use std::collections::{HashMap, HashSet};

use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};
use entity::{
    api_token_apps, api_tokens, app_access, apps, audit_log, report_blobs, report_keys, users,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, TransactionTrait,
};

use super::error::{GqlError, GqlResult};
use super::types::{
    ApiToken, App, AuditEntry, NewApiToken, NewReportKey, Role, Session, User, parse_id, parse_ids,
};
use super::{actor, request_info, state};
use crate::accounts::{self, ROLE_ADMIN};
use crate::auth::tokens::{self, TokenSpec};
use crate::auth::{self, Actor, AppScope, Permission};
use crate::{apps as app_ops, audit, keys};

const DEFAULT_AUDIT_PAGE: u64 = 50;
const MAX_AUDIT_PAGE: u64 = 500;

#[derive(Default)]
pub struct AccountQuery;

#[Object]
impl AccountQuery {
    /// The signed-in user (a CI token is not one: FORBIDDEN).
    async fn me(&self, ctx: &Context<'_>) -> GqlResult<User> {
        let user = actor(ctx)?.user()?;
        Ok(user_objects(&state(ctx).db, std::slice::from_ref(user))
            .await?
            .remove(0))
    }

    /// The apps the caller may read.
    async fn apps(&self, ctx: &Context<'_>) -> GqlResult<Vec<App>> {
        let db = &state(ctx).db;
        app_objects(db, auth::readable_apps(db, actor(ctx)?).await?).await
    }

    async fn app(&self, ctx: &Context<'_>, id: ID) -> GqlResult<App> {
        let db = &state(ctx).db;
        let app = auth::authorize_app(db, actor(ctx)?, Permission::Download, parse_id(&id, "id")?)
            .await?;
        Ok(app_objects(db, vec![app]).await?.remove(0))
    }

    /// The users of the account (admins only).
    async fn users(&self, ctx: &Context<'_>) -> GqlResult<Vec<User>> {
        let admin = actor(ctx)?.admin()?;
        let db = &state(ctx).db;
        let all = users::Entity::find()
            .filter(users::Column::AccountId.eq(admin.account_id))
            .order_by_asc(users::Column::Email)
            .all(db)
            .await?;
        user_objects(db, &all).await
    }

    /// The CI tokens of the account, revoked ones included (admins only).
    async fn api_tokens(&self, ctx: &Context<'_>) -> GqlResult<Vec<ApiToken>> {
        let admin = actor(ctx)?.admin()?;
        let db = &state(ctx).db;
        let all = api_tokens::Entity::find()
            .filter(api_tokens::Column::AccountId.eq(admin.account_id))
            .order_by_desc(api_tokens::Column::Id)
            .all(db)
            .await?;
        let mut scoped: HashMap<i64, HashSet<i64>> = HashMap::new();
        let rows: Vec<(i64, i64)> = api_token_apps::Entity::find()
            .select_only()
            .column(api_token_apps::Column::TokenId)
            .column(api_token_apps::Column::AppId)
            .filter(api_token_apps::Column::TokenId.is_in(all.iter().map(|t| t.id)))
            .into_tuple()
            .all(db)
            .await?;
        for (token_id, app_id) in rows {
            scoped.entry(token_id).or_default().insert(app_id);
        }
        Ok(all
            .iter()
            .map(|token| {
                let scope = if token.all_apps {
                    AppScope::All
                } else {
                    AppScope::Only(scoped.remove(&token.id).unwrap_or_default())
                };
                ApiToken::new(token, &scope)
            })
            .collect())
    }

    /// The account's audit log, newest first; `before` pages back by entry id (admins only).
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        before: Option<ID>,
    ) -> GqlResult<Vec<AuditEntry>> {
        let admin = actor(ctx)?.admin()?;
        let first = match first {
            None => DEFAULT_AUDIT_PAGE,
            Some(n) if (1..=MAX_AUDIT_PAGE as i32).contains(&n) => n as u64,
            Some(_) => {
                return Err(GqlError::bad_input(
                    "first",
                    format!("first must be 1 to {MAX_AUDIT_PAGE}"),
                ));
            }
        };
        let mut query = audit_log::Entity::find()
            .filter(audit_log::Column::AccountId.eq(admin.account_id))
            .order_by_desc(audit_log::Column::Id)
            .limit(first);
        if let Some(before) = before {
            query = query.filter(audit_log::Column::Id.lt(parse_id(&before, "before")?));
        }
        let entries = query.all(&state(ctx).db).await?;
        Ok(entries.into_iter().map(AuditEntry::from).collect())
    }
}

#[derive(Default)]
pub struct AccountMutation;

#[Object]
impl AccountMutation {
    /// Signs in. A wrong email and a wrong password get the same answer, in the same time.
    async fn login(
        &self,
        ctx: &Context<'_>,
        email: String,
        password: String,
    ) -> GqlResult<Session> {
        let state = state(ctx);
        let user = state
            .logins
            .verify(&state.db, &email, &password, request_info(ctx).client)
            .await?;
        let session = state.sessions.issue(&user)?;
        audit::record(
            &state.db,
            entry(&Actor::User(user.clone()), "login", "user", user.id, None),
        )
        .await?;
        Ok(Session {
            token: session.token,
            expires_at: session.expires_at,
            user: user_objects(&state.db, std::slice::from_ref(&user))
                .await?
                .remove(0),
        })
    }

    /// Creates an app with reports enabled; its first report key is in `newReportKey`, once.
    async fn create_app(&self, ctx: &Context<'_>, name: String) -> GqlResult<App> {
        let actor = actor(ctx)?;
        let admin = actor.admin()?;
        let txn = state(ctx).db.begin().await?;
        let (app, key) = app_ops::create(&txn, admin.account_id, &name).await?;
        audit::record(
            &txn,
            entry(actor, "create_app", "app", app.id, Some(app.name.clone())),
        )
        .await?;
        txn.commit().await?;
        let mut object = app_objects(&state(ctx).db, vec![app]).await?.remove(0);
        object.new_report_key = Some(key.into());
        Ok(object)
    }

    /// Renames an app and/or switches its reports on or off.
    async fn update_app(
        &self,
        ctx: &Context<'_>,
        id: ID,
        name: Option<String>,
        reports_enabled: Option<bool>,
    ) -> GqlResult<App> {
        let (state, actor) = (state(ctx), actor(ctx)?);
        let txn = state.db.begin().await?;
        let app =
            auth::authorize_app(&txn, actor, Permission::Manage, parse_id(&id, "id")?).await?;
        let mut changes = Vec::new();
        let mut update: apps::ActiveModel = app.clone().into();
        if let Some(name) = name {
            let name = app_ops::check_name(&name)?;
            if name != app.name {
                let taken = apps::Entity::find()
                    .filter(apps::Column::AccountId.eq(app.account_id))
                    .filter(apps::Column::Name.eq(name.as_str()))
                    .count(&txn)
                    .await?
                    > 0;
                if taken {
                    return Err(GqlError::bad_input(
                        "name",
                        format!("an app named {name:?} already exists in this account"),
                    ));
                }
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
            entry(actor, "update_app", "app", app.id, Some(changes.join(", "))),
        )
        .await?;
        txn.commit().await?;
        // Ingestion sees the new name and switch at once, not after its cache expires.
        state.keys.forget_app(app.id);
        Ok(app_objects(&state.db, vec![app]).await?.remove(0))
    }

    /// Deletes an app with its keys, groups, counts and blobs.
    async fn delete_app(&self, ctx: &Context<'_>, id: ID) -> GqlResult<bool> {
        let (state, actor) = (state(ctx), actor(ctx)?);
        let app =
            auth::authorize_app(&state.db, actor, Permission::Manage, parse_id(&id, "id")?).await?;
        // Objects first: a row without its object is harmless, an object without a row is lost.
        let keys: Vec<String> = report_blobs::Entity::find()
            .select_only()
            .column(report_blobs::Column::StorageKey)
            .filter(report_blobs::Column::AppId.eq(app.id))
            .into_tuple()
            .all(&state.db)
            .await?;
        for key in &keys {
            state.blobs.delete(key).await?;
        }
        let txn = state.db.begin().await?;
        apps::Entity::delete_by_id(app.id).exec(&txn).await?;
        audit::record(
            &txn,
            entry(actor, "delete_app", "app", app.id, Some(app.name.clone())),
        )
        .await?;
        txn.commit().await?;
        state.keys.forget_app(app.id);
        Ok(true)
    }

    /// Issues a new report key and revokes the old one; the key is shown this once.
    async fn rotate_report_key(&self, ctx: &Context<'_>, app_id: ID) -> GqlResult<NewReportKey> {
        let (state, actor) = (state(ctx), actor(ctx)?);
        let txn = state.db.begin().await?;
        let app = auth::authorize_app(&txn, actor, Permission::Manage, parse_id(&app_id, "appId")?)
            .await?;
        let key = keys::rotate(&txn, app.id).await?;
        audit::record(
            &txn,
            entry(
                actor,
                "rotate_report_key",
                "app",
                app.id,
                Some(key.prefix.clone()),
            ),
        )
        .await?;
        txn.commit().await?;
        state.keys.forget_app(app.id);
        Ok(key.into())
    }

    /// Revokes the app's report key; false when it had none. Reports with it are refused.
    async fn revoke_report_key(&self, ctx: &Context<'_>, app_id: ID) -> GqlResult<bool> {
        let (state, actor) = (state(ctx), actor(ctx)?);
        let txn = state.db.begin().await?;
        let app = auth::authorize_app(&txn, actor, Permission::Manage, parse_id(&app_id, "appId")?)
            .await?;
        let revoked = keys::revoke(&txn, app.id).await?;
        audit::record(&txn, entry(actor, "revoke_report_key", "app", app.id, None)).await?;
        txn.commit().await?;
        state.keys.forget_app(app.id);
        Ok(revoked)
    }

    /// Adds a user to the account; a member sees the apps of `appIds`.
    async fn create_user(
        &self,
        ctx: &Context<'_>,
        email: String,
        password: String,
        role: Role,
        app_ids: Option<Vec<ID>>,
    ) -> GqlResult<User> {
        let (state, actor) = (state(ctx), actor(ctx)?);
        let admin = actor.admin()?;
        let app_ids = parse_ids(&app_ids.unwrap_or_default(), "appIds")?;
        let txn = state.db.begin().await?;
        check_apps(&txn, actor, &app_ids).await?;
        let created = accounts::create_user(
            &txn,
            admin.account_id,
            &email,
            Some(&password),
            role.as_str(),
        )
        .await?;
        let user = created.user;
        grant(&txn, user.id, &app_ids).await?;
        audit::record(
            &txn,
            entry(
                actor,
                "create_user",
                "user",
                user.id,
                Some(format!("{} as {}", user.email, user.role)),
            ),
        )
        .await?;
        txn.commit().await?;
        Ok(User::new(&user, app_ids))
    }

    /// Replaces the apps a member may see.
    async fn set_user_access(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        app_ids: Vec<ID>,
    ) -> GqlResult<User> {
        let (state, actor) = (state(ctx), actor(ctx)?);
        let app_ids = parse_ids(&app_ids, "appIds")?;
        let txn = state.db.begin().await?;
        let user = user_of_account(&txn, actor, &user_id).await?;
        check_apps(&txn, actor, &app_ids).await?;
        app_access::Entity::delete_many()
            .filter(app_access::Column::UserId.eq(user.id))
            .exec(&txn)
            .await?;
        grant(&txn, user.id, &app_ids).await?;
        let listed = app_ids
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        audit::record(
            &txn,
            entry(
                actor,
                "set_user_access",
                "user",
                user.id,
                Some(format!("apps [{listed}]")),
            ),
        )
        .await?;
        txn.commit().await?;
        Ok(User::new(&user, app_ids))
    }

    /// Makes a user an admin or a member; the account keeps at least one enabled admin.
    async fn set_user_role(&self, ctx: &Context<'_>, user_id: ID, role: Role) -> GqlResult<User> {
        let (state, actor) = (state(ctx), actor(ctx)?);
        let txn = state.db.begin().await?;
        let user = user_of_account(&txn, actor, &user_id).await?;
        let mut update: users::ActiveModel = user.into();
        update.role = Set(role.as_str().to_owned());
        let user = update.update(&txn).await?;
        keep_an_admin(&txn, user.account_id).await?;
        audit::record(
            &txn,
            entry(
                actor,
                "set_user_role",
                "user",
                user.id,
                Some(user.role.clone()),
            ),
        )
        .await?;
        txn.commit().await?;
        Ok(user_objects(&state.db, &[user]).await?.remove(0))
    }

    /// Disables (or re-enables) a user; disabling ends every session of the user at once.
    async fn set_user_disabled(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        disabled: bool,
    ) -> GqlResult<User> {
        let (state, actor) = (state(ctx), actor(ctx)?);
        let txn = state.db.begin().await?;
        let user = user_of_account(&txn, actor, &user_id).await?;
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
        audit::record(&txn, entry(actor, action, "user", user.id, None)).await?;
        txn.commit().await?;
        Ok(user_objects(&state.db, &[user]).await?.remove(0))
    }

    /// Changes the caller's password, ends every other session, and returns a new one.
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        current_password: String,
        new_password: String,
    ) -> GqlResult<Session> {
        let (state, actor) = (state(ctx), actor(ctx)?);
        let user = actor.user()?.clone();
        accounts::check_password(&new_password)?;
        let hash = user.password_hash.clone();
        let (matches, new_hash) = tokio::task::spawn_blocking(move || {
            let matches = accounts::verify_password(&current_password, &hash);
            (
                matches,
                matches.then(|| accounts::hash_password(&new_password)),
            )
        })
        .await
        .map_err(|e| GqlError::internal(&e))?;
        if !matches {
            return Err(GqlError::bad_input(
                "currentPassword",
                "the current password is wrong",
            ));
        }
        let new_hash = new_hash.ok_or(GqlError::Internal)??;
        let txn = state.db.begin().await?;
        let token_version = user.token_version + 1;
        let mut update: users::ActiveModel = user.into();
        update.password_hash = Set(new_hash);
        update.token_version = Set(token_version);
        let user = update.update(&txn).await?;
        audit::record(&txn, entry(actor, "change_password", "user", user.id, None)).await?;
        txn.commit().await?;
        let session = state.sessions.issue(&user)?;
        Ok(Session {
            token: session.token,
            expires_at: session.expires_at,
            user: user_objects(&state.db, &[user]).await?.remove(0),
        })
    }

    /// A read-only CI token for the apps of `appIds`, or every app when left out; the token
    /// is shown this once.
    async fn create_api_token(
        &self,
        ctx: &Context<'_>,
        name: String,
        app_ids: Option<Vec<ID>>,
        expires_at: Option<DateTime<Utc>>,
    ) -> GqlResult<NewApiToken> {
        let (state, actor) = (state(ctx), actor(ctx)?);
        let admin = actor.admin()?;
        let txn = state.db.begin().await?;
        let scope = match app_ids {
            None => AppScope::All,
            Some(ids) => {
                let ids = parse_ids(&ids, "appIds")?;
                check_apps(&txn, actor, &ids).await?;
                AppScope::Only(ids.into_iter().collect())
            }
        };
        let created = tokens::create(
            &txn,
            TokenSpec {
                account_id: admin.account_id,
                name: &name,
                scope,
                expires_at,
                created_by: Some(admin.id),
            },
        )
        .await?;
        audit::record(
            &txn,
            entry(
                actor,
                "create_api_token",
                "api_token",
                created.model.id,
                Some(created.model.name.clone()),
            ),
        )
        .await?;
        txn.commit().await?;
        Ok(NewApiToken {
            api_token: ApiToken::new(&created.model, &created.scope),
            token: created.token,
        })
    }

    /// Revokes a CI token of the account at once; false when it was already revoked.
    async fn revoke_api_token(&self, ctx: &Context<'_>, id: ID) -> GqlResult<bool> {
        let (state, actor) = (state(ctx), actor(ctx)?);
        let admin = actor.admin()?;
        let token_id = parse_id(&id, "id")?;
        let txn = state.db.begin().await?;
        let exists = api_tokens::Entity::find_by_id(token_id)
            .filter(api_tokens::Column::AccountId.eq(admin.account_id))
            .count(&txn)
            .await?
            > 0;
        if !exists {
            return Err(GqlError::Forbidden);
        }
        let revoked = tokens::revoke(&txn, admin.account_id, token_id).await?;
        audit::record(
            &txn,
            entry(actor, "revoke_api_token", "api_token", token_id, None),
        )
        .await?;
        txn.commit().await?;
        Ok(revoked)
    }
}

fn entry(
    actor: &Actor,
    action: &'static str,
    target_type: &'static str,
    target_id: i64,
    detail: Option<String>,
) -> audit::Entry {
    audit::Entry {
        account_id: actor.account_id(),
        actor: actor.label(),
        action,
        target_type,
        target_id: Some(target_id),
        detail,
    }
}

/// Each app must be one the admin may manage: an app of another account is `FORBIDDEN`.
async fn check_apps(db: &impl ConnectionTrait, actor: &Actor, app_ids: &[i64]) -> GqlResult<()> {
    for &app_id in app_ids {
        auth::authorize_app(db, actor, Permission::Manage, app_id).await?;
    }
    Ok(())
}

async fn grant(db: &impl ConnectionTrait, user_id: i64, app_ids: &[i64]) -> GqlResult<()> {
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

/// A user of the admin's account; a user of another account, or none, is `FORBIDDEN`.
async fn user_of_account(
    db: &impl ConnectionTrait,
    actor: &Actor,
    user_id: &ID,
) -> GqlResult<users::Model> {
    let admin = actor.admin()?;
    users::Entity::find_by_id(parse_id(user_id, "userId")?)
        .filter(users::Column::AccountId.eq(admin.account_id))
        .one(db)
        .await?
        .ok_or(GqlError::Forbidden)
}

/// Refuses a change that would leave the account without an enabled admin.
async fn keep_an_admin(db: &impl ConnectionTrait, account_id: i64) -> GqlResult<()> {
    let admins = users::Entity::find()
        .filter(users::Column::AccountId.eq(account_id))
        .filter(users::Column::Role.eq(ROLE_ADMIN))
        .filter(users::Column::Disabled.eq(false))
        .count(db)
        .await?;
    if admins == 0 {
        return Err(GqlError::bad_input(
            "userId",
            "the account must keep at least one enabled admin",
        ));
    }
    Ok(())
}

/// Users with their app access, in one query for all of them.
async fn user_objects(db: &impl ConnectionTrait, all: &[users::Model]) -> GqlResult<Vec<User>> {
    let rows: Vec<(i64, i64)> = app_access::Entity::find()
        .select_only()
        .column(app_access::Column::UserId)
        .column(app_access::Column::AppId)
        .filter(app_access::Column::UserId.is_in(all.iter().map(|u| u.id)))
        .into_tuple()
        .all(db)
        .await?;
    let mut access: HashMap<i64, Vec<i64>> = HashMap::new();
    for (user_id, app_id) in rows {
        access.entry(user_id).or_default().push(app_id);
    }
    Ok(all
        .iter()
        .map(|user| User::new(user, access.remove(&user.id).unwrap_or_default()))
        .collect())
}

/// Apps with their active report key, in one query for all of them.
async fn app_objects(db: &impl ConnectionTrait, all: Vec<apps::Model>) -> GqlResult<Vec<App>> {
    let active: HashMap<i64, report_keys::Model> = report_keys::Entity::find()
        .filter(report_keys::Column::AppId.is_in(all.iter().map(|a| a.id)))
        .filter(report_keys::Column::RevokedAt.is_null())
        .all(db)
        .await?
        .into_iter()
        .map(|key| (key.app_id, key))
        .collect();
    Ok(all
        .iter()
        .map(|app| App::new(app, active.get(&app.id)))
        .collect())
}

impl From<keys::NewKey> for NewReportKey {
    fn from(key: keys::NewKey) -> Self {
        NewReportKey {
            key: key.key,
            prefix: key.prefix,
            created_at: key.created_at,
        }
    }
}
