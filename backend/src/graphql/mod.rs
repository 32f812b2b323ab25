//! The read API (DESIGN §6): `POST /graphql`, for the web app (session JWTs) and CI
//! (`rwt_` tokens). Every resolver finds its caller here and checks it through
//! `auth::authorize_app` or `Actor::admin`; errors are mapped to codes in `error`.

mod apps;
mod audit;
mod error;
mod gate;
mod reports;
mod session;
mod tokens;
mod types;
mod users;

use std::net::{IpAddr, SocketAddr};

use async_graphql::{Context, EmptySubscription, MergedObject, Schema};
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};

use crate::auth::{self, Actor};
use crate::error::ApiError;
use crate::state::AppState;
pub use error::{GqlError, GqlResult};
pub use reports::{ReportFilter, ReportsQuery};

/// Queries are small; anything larger is refused before parsing.
const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// Deep enough for the standard introspection query, far below anything abusive.
const MAX_DEPTH: usize = 16;
/// A full 100-row page of groups with every field fits; list fields multiply by their size.
const MAX_COMPLEXITY: usize = 2500;

#[derive(MergedObject, Default)]
pub struct Query(
    session::SessionQuery,
    apps::AppsQuery,
    users::UsersQuery,
    tokens::TokensQuery,
    audit::AuditQuery,
    ReportsQuery,
    gate::GateQueries,
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    session::SessionMutation,
    apps::AppsMutation,
    users::UsersMutation,
    tokens::TokensMutation,
    gate::GateMutations,
);

pub type ApiSchema = Schema<Query, Mutation, EmptySubscription>;

pub fn build_schema() -> ApiSchema {
    Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .finish()
}

/// The SDL that `rollwatch schema` prints and `backend/schema.graphql` holds.
pub fn sdl() -> String {
    build_schema().sdl()
}

/// `POST /graphql`, with the schema built once for these routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/graphql",
            post(graphql).layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES)),
        )
        .layer(Extension(build_schema()))
}

/// What resolvers know about the HTTP request they serve.
pub struct RequestInfo {
    caller: Result<Actor, GqlError>,
    client: Option<IpAddr>,
    /// `scheme://host` as the client reached this server; Local blob links start with it.
    base_url: String,
}

async fn graphql(
    State(state): State<AppState>,
    Extension(schema): Extension<ApiSchema>,
    connect_info: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    query: Result<Json<async_graphql::Request>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(query) = query.map_err(|rejection| match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge {
            what: "the GraphQL request",
            limit: MAX_REQUEST_BYTES as u64,
            field: None,
        },
        other => ApiError::MalformedJson(other.body_text()),
    })?;
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let caller = auth::authenticate(&state.db, &state.sessions, authorization)
        .await
        .map_err(GqlError::from);
    let info = RequestInfo {
        caller,
        client: connect_info.map(|Extension(ConnectInfo(addr))| addr.ip()),
        base_url: base_url(&headers, state.config.bind_addr),
    };
    let response = schema.execute(query.data(state.clone()).data(info)).await;
    Ok(async_graphql_axum::GraphQLResponse::from(response).into_response())
}

/// `scheme://host` from `Host` (and `X-Forwarded-Proto` behind a TLS-terminating proxy); a
/// host with anything but host characters is replaced by the listen address.
fn base_url(headers: &HeaderMap, bind_addr: SocketAddr) -> String {
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .map_or_else(|| bind_addr.to_string(), str::to_owned);
    format!("{}://{host}", if https { "https" } else { "http" })
}

fn state<'a>(ctx: &Context<'a>) -> &'a AppState {
    ctx.data_unchecked::<AppState>()
}

fn request_info<'a>(ctx: &Context<'a>) -> &'a RequestInfo {
    ctx.data_unchecked::<RequestInfo>()
}

/// The authenticated caller, or why there is none.
fn actor<'a>(ctx: &Context<'a>) -> GqlResult<&'a Actor> {
    request_info(ctx).caller.as_ref().map_err(Clone::clone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_url_comes_from_a_sane_host_header_only() {
        let bind = SocketAddr::from(([127, 0, 0, 1], 8080));
        let mut headers = HeaderMap::new();
        assert_eq!(base_url(&headers, bind), "http://127.0.0.1:8080");
        headers.insert(
            header::HOST,
            "rollwatch.example:443".parse().expect("header"),
        );
        headers.insert("x-forwarded-proto", "https".parse().expect("header"));
        assert_eq!(base_url(&headers, bind), "https://rollwatch.example:443");
        headers.insert(header::HOST, "evil.example/path?".parse().expect("header"));
        assert_eq!(base_url(&headers, bind), "https://127.0.0.1:8080");
    }
}
