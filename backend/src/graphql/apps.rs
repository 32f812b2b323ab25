//! Apps and their report keys. The rules live in `crate::apps` and `crate::keys`.

use async_graphql::{Context, ID, Object};

use super::error::GqlResult;
use super::types::{App, NewReportKey, app_objects, parse_id};
use super::{actor, state};
use crate::auth::{self, Permission};
use crate::{apps, keys};

#[derive(Default)]
pub struct AppsQuery;

#[Object]
impl AppsQuery {
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
}

#[derive(Default)]
pub struct AppsMutation;

#[Object]
impl AppsMutation {
    /// Creates an app with reports enabled; its first report key is in `newReportKey`, once.
    async fn create_app(&self, ctx: &Context<'_>, name: String) -> GqlResult<App> {
        let db = &state(ctx).db;
        let (app, key) = apps::create(db, actor(ctx)?, &name).await?;
        let mut object = app_objects(db, vec![app]).await?.remove(0);
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
        let state = state(ctx);
        let id = parse_id(&id, "id")?;
        let app =
            apps::update(&state.db, actor(ctx)?, id, name.as_deref(), reports_enabled).await?;
        // Ingestion sees the new name and switch at once, not after its cache expires.
        state.keys.forget_app(app.id);
        Ok(app_objects(&state.db, vec![app]).await?.remove(0))
    }

    /// Deletes an app with its keys, groups, counts and blobs.
    async fn delete_app(&self, ctx: &Context<'_>, id: ID) -> GqlResult<bool> {
        let state = state(ctx);
        let id = parse_id(&id, "id")?;
        apps::delete(&state.db, &state.blobs, actor(ctx)?, id).await?;
        state.keys.forget_app(id);
        Ok(true)
    }

    /// Issues a new report key and revokes the old one; the key is shown this once.
    async fn rotate_report_key(&self, ctx: &Context<'_>, app_id: ID) -> GqlResult<NewReportKey> {
        let state = state(ctx);
        let app_id = parse_id(&app_id, "appId")?;
        let key = keys::rotate(&state.db, actor(ctx)?, app_id).await?;
        state.keys.forget_app(app_id);
        Ok(key.into())
    }

    /// Revokes the app's report key; false when it had none. Reports with it are refused.
    async fn revoke_report_key(&self, ctx: &Context<'_>, app_id: ID) -> GqlResult<bool> {
        let state = state(ctx);
        let app_id = parse_id(&app_id, "appId")?;
        let revoked = keys::revoke(&state.db, actor(ctx)?, app_id).await?;
        state.keys.forget_app(app_id);
        Ok(revoked)
    }
}
