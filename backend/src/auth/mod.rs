//! Who is calling and what they may do (DESIGN §6): user sessions (JWT), CI tokens (`rwt_…`),
//! rate-limited sign-in, and the one permission check every resolver goes through.

pub mod jwt;
pub mod login;
pub mod tokens;

use std::collections::HashSet;

use entity::{api_tokens, app_access, apps, users};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter};

use crate::db::Store;
use crate::error::ServiceError;
use crate::model::Role;
use jwt::SessionKeys;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("sign in first: send Authorization: Bearer <session token or rwt_ token>")]
    Missing,
    #[error("the session or token is invalid, revoked or expired; sign in again")]
    Invalid,
    #[error("not allowed")]
    Forbidden,
    #[error("invalid email or password")]
    BadCredentials,
    #[error("too many sign-in attempts; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<DbErr> for AuthError {
    fn from(err: DbErr) -> Self {
        AuthError::Service(ServiceError::Database(err))
    }
}

/// Operations that check permissions answer in their own terms: any refusal is `Forbidden`.
impl From<AuthError> for ServiceError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Service(err) => err,
            _ => ServiceError::Forbidden,
        }
    }
}

/// The apps a CI token may read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppScope {
    All,
    Only(HashSet<i64>),
}

impl AppScope {
    pub fn contains(&self, app_id: i64) -> bool {
        match self {
            AppScope::All => true,
            AppScope::Only(ids) => ids.contains(&app_id),
        }
    }
}

/// The audit log's name for the operator's shell.
pub const OPERATOR: &str = "operator";

/// Who is doing something: an authenticated caller of the API, or the operator at a shell.
#[derive(Clone, Debug)]
pub enum Actor {
    User(users::Model),
    Token {
        token: api_tokens::Model,
        scope: AppScope,
    },
    /// `rollwatch apps create …` and the other operator commands: whoever can run the binary
    /// against the database administers every account it names.
    Operator {
        account_id: i64,
    },
}

/// What a caller wants to do with an app.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// Read its reports, groups, health and blobs.
    Download,
    /// Change it, its key or who may see it: admins of its account only.
    Manage,
}

impl Actor {
    pub fn account_id(&self) -> i64 {
        match self {
            Actor::User(user) => user.account_id,
            Actor::Token { token, .. } => token.account_id,
            Actor::Operator { account_id } => *account_id,
        }
    }

    /// Who did it, as the audit log names it.
    pub fn label(&self) -> String {
        match self {
            Actor::User(user) => format!("user:{}", user.id),
            Actor::Token { token, .. } => format!("token:{}", token.id),
            Actor::Operator { .. } => OPERATOR.to_owned(),
        }
    }

    /// The signed-in user; a CI token or the operator is not one.
    pub fn user(&self) -> Result<&users::Model, AuthError> {
        match self {
            Actor::User(user) => Ok(user),
            Actor::Token { .. } | Actor::Operator { .. } => Err(AuthError::Forbidden),
        }
    }

    /// The account, when the actor may change it: an admin of it, or the operator.
    pub fn admin_of(&self) -> Result<i64, AuthError> {
        match self {
            Actor::User(user) if is_admin(user) => Ok(user.account_id),
            Actor::Operator { account_id } => Ok(*account_id),
            _ => Err(AuthError::Forbidden),
        }
    }

    /// The user behind the action, if a user did it.
    pub fn user_id(&self) -> Option<i64> {
        match self {
            Actor::User(user) => Some(user.id),
            _ => None,
        }
    }
}

pub fn is_admin(user: &users::Model) -> bool {
    user.role == Role::Admin.as_str()
}

/// The credentials of an `Authorization: Bearer …` value, on every endpoint: the scheme is
/// case-insensitive (RFC 9110 §11.1) and separated from them by spaces or tabs.
pub fn bearer_credentials(authorization: &str) -> Option<&str> {
    let (scheme, credentials) = authorization.trim_start().split_once([' ', '\t'])?;
    let credentials = credentials.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !credentials.is_empty()).then_some(credentials)
}

/// Resolves `Authorization: Bearer …` (a session JWT or an `rwt_` token) to its caller.
pub async fn authenticate(
    db: &Store,
    sessions: &SessionKeys,
    authorization: Option<&str>,
) -> Result<Actor, AuthError> {
    let credential =
        bearer_credentials(authorization.ok_or(AuthError::Missing)?).ok_or(AuthError::Invalid)?;
    if credential.starts_with(tokens::TOKEN_PREFIX) {
        let (token, scope) = tokens::resolve(db, credential)
            .await?
            .ok_or(AuthError::Invalid)?;
        return Ok(Actor::Token { token, scope });
    }
    let claims = sessions.verify(credential).ok_or(AuthError::Invalid)?;
    let user = users::Entity::find_by_id(claims.user_id().ok_or(AuthError::Invalid)?)
        .one(db)
        .await?
        .filter(|user| {
            // A bumped token_version (disabled user, changed password) ends older sessions.
            !user.disabled && user.token_version == claims.ver && user.account_id == claims.acc
        })
        .ok_or(AuthError::Invalid)?;
    Ok(Actor::User(user))
}

/// The one permission check: the app when `actor` may do `permission` on it — admin of the
/// app's account, a member with the app in `app_access`, or a token scoped to it (to read
/// only). An app of another account and an app that does not exist are both `Forbidden`,
/// so ids cannot be probed.
pub async fn authorize_app(
    db: &impl ConnectionTrait,
    actor: &Actor,
    permission: Permission,
    app_id: i64,
) -> Result<apps::Model, AuthError> {
    let app = apps::Entity::find_by_id(app_id)
        .one(db)
        .await?
        .filter(|app| app.account_id == actor.account_id())
        .ok_or(AuthError::Forbidden)?;
    let allowed = match (actor, permission) {
        (Actor::User(user), _) if is_admin(user) => true,
        (Actor::User(user), Permission::Download) => {
            app_access::Entity::find()
                .filter(app_access::Column::UserId.eq(user.id))
                .filter(app_access::Column::AppId.eq(app.id))
                .count(db)
                .await?
                > 0
        }
        (Actor::Token { scope, .. }, Permission::Download) => scope.contains(app.id),
        (Actor::Operator { .. }, _) => true,
        (_, Permission::Manage) => false,
    };
    if allowed {
        Ok(app)
    } else {
        Err(AuthError::Forbidden)
    }
}

/// The apps `actor` may read, in name order.
pub async fn readable_apps(
    db: &impl ConnectionTrait,
    actor: &Actor,
) -> Result<Vec<apps::Model>, AuthError> {
    use sea_orm::QueryOrder;
    let mut query = apps::Entity::find()
        .filter(apps::Column::AccountId.eq(actor.account_id()))
        .order_by_asc(apps::Column::Name);
    match actor {
        Actor::User(user) if is_admin(user) => {}
        Actor::User(user) => {
            let allowed = sea_orm::sea_query::Query::select()
                .column(app_access::Column::AppId)
                .from(app_access::Entity)
                .and_where(app_access::Column::UserId.eq(user.id))
                .to_owned();
            query = query.filter(apps::Column::Id.in_subquery(allowed));
        }
        Actor::Token {
            scope: AppScope::All,
            ..
        }
        | Actor::Operator { .. } => {}
        Actor::Token {
            scope: AppScope::Only(ids),
            ..
        } => query = query.filter(apps::Column::Id.is_in(ids.iter().copied())),
    }
    Ok(query.all(db).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for value in ["Bearer abc", "bearer abc", "BEARER  abc ", "BeArEr\tabc"] {
            assert_eq!(bearer_credentials(value), Some("abc"), "{value:?}");
        }
        for value in ["Bearer", "Bearer ", "Basic abc", "Bearerabc", "abc"] {
            assert_eq!(bearer_credentials(value), None, "{value:?}");
        }
    }
}
