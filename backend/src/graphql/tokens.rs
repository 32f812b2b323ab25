//! CI tokens. The rules live in `crate::auth::tokens`.

use std::collections::{HashMap, HashSet};

use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};
use entity::{api_token_apps, api_tokens};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::error::GqlResult;
use super::types::{ApiToken, NewApiToken, parse_id, parse_ids};
use super::{actor, state};
use crate::auth::AppScope;
use crate::auth::tokens::{self, TokenSpec};

#[derive(Default)]
pub struct TokensQuery;

#[Object]
impl TokensQuery {
    /// The CI tokens of the account, revoked ones included (admins only).
    async fn api_tokens(&self, ctx: &Context<'_>) -> GqlResult<Vec<ApiToken>> {
        let account_id = actor(ctx)?.admin_of()?;
        let db = &state(ctx).db;
        let all = api_tokens::Entity::find()
            .filter(api_tokens::Column::AccountId.eq(account_id))
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
}

#[derive(Default)]
pub struct TokensMutation;

#[Object]
impl TokensMutation {
    /// A read-only CI token for the apps of `appIds`, or every app when left out; the token
    /// is shown this once.
    async fn create_api_token(
        &self,
        ctx: &Context<'_>,
        name: String,
        app_ids: Option<Vec<ID>>,
        expires_at: Option<DateTime<Utc>>,
    ) -> GqlResult<NewApiToken> {
        let scope = match app_ids {
            None => AppScope::All,
            Some(ids) => AppScope::Only(parse_ids(&ids, "appIds")?.into_iter().collect()),
        };
        let spec = TokenSpec {
            name: &name,
            scope,
            expires_at,
        };
        let created = tokens::create(&state(ctx).db, actor(ctx)?, spec).await?;
        Ok(NewApiToken {
            api_token: ApiToken::new(&created.model, &created.scope),
            token: created.token,
        })
    }

    /// Revokes a CI token of the account at once; false when it was already revoked.
    async fn revoke_api_token(&self, ctx: &Context<'_>, id: ID) -> GqlResult<bool> {
        let token_id = parse_id(&id, "id")?;
        Ok(tokens::revoke(&state(ctx).db, actor(ctx)?, token_id).await?)
    }
}
