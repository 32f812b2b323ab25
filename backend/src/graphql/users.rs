//! The users of an account and their access. The rules live in `crate::users`.

use async_graphql::{Context, ID, Object};
use entity::users;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::error::GqlResult;
use super::types::{Session, User, parse_id, parse_ids, user_objects};
use super::{actor, state};
use crate::model::Role;
use crate::users as user_ops;

#[derive(Default)]
pub struct UsersQuery;

#[Object]
impl UsersQuery {
    /// The users of the account (admins only).
    async fn users(&self, ctx: &Context<'_>) -> GqlResult<Vec<User>> {
        let account_id = actor(ctx)?.admin_of()?;
        let db = &state(ctx).db;
        let all = users::Entity::find()
            .filter(users::Column::AccountId.eq(account_id))
            .order_by_asc(users::Column::Email)
            .all(db)
            .await?;
        user_objects(db, &all).await
    }
}

#[derive(Default)]
pub struct UsersMutation;

#[Object]
impl UsersMutation {
    /// Adds a user to the account; a member sees the apps of `appIds`.
    async fn create_user(
        &self,
        ctx: &Context<'_>,
        email: String,
        password: String,
        role: Role,
        app_ids: Option<Vec<ID>>,
    ) -> GqlResult<User> {
        let app_ids = parse_ids(&app_ids.unwrap_or_default(), "appIds")?;
        let user = user_ops::create(
            &state(ctx).db,
            actor(ctx)?,
            &email,
            &password,
            role,
            &app_ids,
        )
        .await?;
        Ok(User::new(&user, app_ids))
    }

    /// Replaces the apps a member may see.
    async fn set_user_access(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        app_ids: Vec<ID>,
    ) -> GqlResult<User> {
        let app_ids = parse_ids(&app_ids, "appIds")?;
        let user_id = parse_id(&user_id, "userId")?;
        let user = user_ops::set_access(&state(ctx).db, actor(ctx)?, user_id, &app_ids).await?;
        Ok(User::new(&user, app_ids))
    }

    /// Makes a user an admin or a member; the account keeps at least one enabled admin.
    async fn set_user_role(&self, ctx: &Context<'_>, user_id: ID, role: Role) -> GqlResult<User> {
        let db = &state(ctx).db;
        let user_id = parse_id(&user_id, "userId")?;
        let user = user_ops::set_role(db, actor(ctx)?, user_id, role).await?;
        Ok(user_objects(db, &[user]).await?.remove(0))
    }

    /// Disables (or re-enables) a user; disabling ends every session of the user at once.
    async fn set_user_disabled(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        disabled: bool,
    ) -> GqlResult<User> {
        let db = &state(ctx).db;
        let user_id = parse_id(&user_id, "userId")?;
        let user = user_ops::set_disabled(db, actor(ctx)?, user_id, disabled).await?;
        Ok(user_objects(db, &[user]).await?.remove(0))
    }

    /// Changes the caller's password, ends every other session, and returns a new one.
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        current_password: String,
        new_password: String,
    ) -> GqlResult<Session> {
        let state = state(ctx);
        let user =
            user_ops::change_password(&state.db, actor(ctx)?, &current_password, &new_password)
                .await?;
        Session::issue(state, user).await
    }
}
