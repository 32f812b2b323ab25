//! The account's audit log (admins only).

use async_graphql::{Context, ID, Object};
use entity::audit_log;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::error::{GqlError, GqlResult};
use super::types::{AuditEntry, parse_id};
use super::{actor, state};

const DEFAULT_AUDIT_PAGE: u64 = 50;
const MAX_AUDIT_PAGE: u64 = 500;

#[derive(Default)]
pub struct AuditQuery;

#[Object]
impl AuditQuery {
    /// The account's audit log, newest first; `before` pages back by entry id (admins only).
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        before: Option<ID>,
    ) -> GqlResult<Vec<AuditEntry>> {
        let account_id = actor(ctx)?.admin_of()?;
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
            .filter(audit_log::Column::AccountId.eq(account_id))
            .order_by_desc(audit_log::Column::Id)
            .limit(first);
        if let Some(before) = before {
            query = query.filter(audit_log::Column::Id.lt(parse_id(&before, "before")?));
        }
        let entries = query.all(&state(ctx).db).await?;
        Ok(entries.into_iter().map(AuditEntry::from).collect())
    }
}
