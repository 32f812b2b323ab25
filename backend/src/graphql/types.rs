//! The objects of the account side of the schema, built from entity rows.

use async_graphql::{ID, SimpleObject};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

use entity::{api_tokens, app_access, apps, audit_log, report_keys, users};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};

use super::error::{GqlError, GqlResult};
use crate::auth::AppScope;
use crate::keys;
use crate::model::Role;
use crate::state::AppState;

/// An id argument: our ids are integers, anything else is bad input (and names nothing).
pub fn parse_id(id: &ID, field: &'static str) -> GqlResult<i64> {
    id.parse::<i64>()
        .map_err(|_| GqlError::bad_input(field, format!("{field} is not an id")))
}

pub fn parse_ids(ids: &[ID], field: &'static str) -> GqlResult<Vec<i64>> {
    let mut parsed = ids
        .iter()
        .map(|id| parse_id(id, field))
        .collect::<GqlResult<Vec<_>>>()?;
    parsed.sort_unstable();
    parsed.dedup();
    Ok(parsed)
}

fn ids(ids: impl IntoIterator<Item = i64>) -> Vec<ID> {
    let mut ids: Vec<i64> = ids.into_iter().collect();
    ids.sort_unstable();
    ids.into_iter().map(ID::from).collect()
}

#[derive(SimpleObject)]
pub struct User {
    pub id: ID,
    pub email: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    /// The apps a member may see (`app_access`); admins see every app of the account.
    pub app_ids: Vec<ID>,
}

impl User {
    pub fn new(user: &users::Model, app_ids: impl IntoIterator<Item = i64>) -> Self {
        User {
            id: user.id.into(),
            email: user.email.clone(),
            role: Role::from_stored(&user.role).unwrap_or(Role::Member),
            disabled: user.disabled,
            created_at: user.created_at,
            app_ids: ids(app_ids),
        }
    }
}

/// What may be shown of an app's active report key after its creation.
#[derive(SimpleObject)]
pub struct ReportKeyInfo {
    pub prefix: String,
    pub created_at: DateTime<Utc>,
}

#[derive(SimpleObject)]
pub struct App {
    pub id: ID,
    pub name: String,
    pub reports_enabled: bool,
    pub created_at: DateTime<Utc>,
    /// The active report key, or null when it is revoked.
    pub report_key: Option<ReportKeyInfo>,
    /// The first report key, shown once: set only in the answer of `createApp`.
    pub new_report_key: Option<NewReportKey>,
}

impl App {
    pub fn new(app: &apps::Model, key: Option<&report_keys::Model>) -> Self {
        App {
            id: app.id.into(),
            name: app.name.clone(),
            reports_enabled: app.reports_enabled,
            created_at: app.created_at,
            report_key: key.map(|key| ReportKeyInfo {
                prefix: key.key_prefix.clone(),
                created_at: key.created_at,
            }),
            new_report_key: None,
        }
    }
}

/// A new report key: `key` is shown this once and stored only hashed.
#[derive(SimpleObject)]
pub struct NewReportKey {
    pub key: String,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
}

#[derive(SimpleObject)]
pub struct Session {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub user: User,
}

impl Session {
    /// A new session of `user`, who has just proven who they are.
    pub async fn issue(state: &AppState, user: users::Model) -> GqlResult<Session> {
        let session = state.sessions.issue(&user)?;
        Ok(Session {
            token: session.token,
            expires_at: session.expires_at,
            user: user_objects(&state.db, std::slice::from_ref(&user))
                .await?
                .remove(0),
        })
    }
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

/// Users with their app access, in one query for all of them.
pub async fn user_objects(db: &impl ConnectionTrait, all: &[users::Model]) -> GqlResult<Vec<User>> {
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
pub async fn app_objects(db: &impl ConnectionTrait, all: Vec<apps::Model>) -> GqlResult<Vec<App>> {
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

#[derive(SimpleObject)]
pub struct ApiToken {
    pub id: ID,
    pub name: String,
    pub prefix: String,
    /// True when the token reads every app of the account; otherwise those of `appIds`.
    pub all_apps: bool,
    pub app_ids: Vec<ID>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiToken {
    pub fn new(token: &api_tokens::Model, scope: &AppScope) -> Self {
        ApiToken {
            id: token.id.into(),
            name: token.name.clone(),
            prefix: token.token_prefix.clone(),
            all_apps: *scope == AppScope::All,
            app_ids: match scope {
                AppScope::All => Vec::new(),
                AppScope::Only(apps) => ids(apps.iter().copied()),
            },
            created_at: token.created_at,
            expires_at: token.expires_at,
            last_used_at: token.last_used_at,
            revoked_at: token.revoked_at,
        }
    }
}

/// A new CI token: `token` is shown this once and stored only hashed.
#[derive(SimpleObject)]
pub struct NewApiToken {
    pub token: String,
    pub api_token: ApiToken,
}

#[derive(SimpleObject)]
pub struct AuditEntry {
    pub id: ID,
    /// `user:<id>`, `token:<id>` or `operator` (the operator commands of a shell).
    pub actor: String,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    pub detail: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<audit_log::Model> for AuditEntry {
    fn from(entry: audit_log::Model) -> Self {
        AuditEntry {
            id: entry.id.into(),
            actor: entry.actor,
            action: entry.action,
            target_type: entry.target_type,
            target_id: entry.target_id,
            detail: entry.detail,
            created_at: entry.created_at,
        }
    }
}
