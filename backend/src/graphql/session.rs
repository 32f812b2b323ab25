//! Signing in and the signed-in user.

use async_graphql::{Context, Object};

use super::error::GqlResult;
use super::types::{Session, User, user_objects};
use super::{actor, request_info, state};
use crate::auth::AuthError;

#[derive(Default)]
pub struct SessionQuery;

#[Object]
impl SessionQuery {
    /// The signed-in user (a CI token is not one: FORBIDDEN).
    async fn me(&self, ctx: &Context<'_>) -> GqlResult<User> {
        let user = actor(ctx)?.user()?;
        Ok(user_objects(&state(ctx).db, std::slice::from_ref(user))
            .await?
            .remove(0))
    }
}

#[derive(Default)]
pub struct SessionMutation;

#[Object]
impl SessionMutation {
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
            .await
            .inspect_err(|e| match e {
                AuthError::BadCredentials => state.metrics.login_failed("bad_credentials"),
                AuthError::RateLimited { .. } => state.metrics.login_failed("rate_limited"),
                _ => {}
            })?;
        Session::issue(state, user).await
    }
}
