//! The read API (DESIGN §6): `POST /graphql`, for the web app (session JWTs) and CI
//! (`rwt_` tokens). Every resolver finds its caller here and checks it through
//! `auth::authorize_app` or `Actor::admin`; errors are mapped to codes in `error`.

mod alerts;
mod apps;
mod audit;
mod error;
mod gate;
pub mod limits;
mod reports;
mod session;
mod tokens;
mod types;
mod users;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_graphql::{Context, EmptySubscription, MergedObject, Schema, ServerError};
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
/// A field carries at most this many directives (`@include`, `@skip`).
const MAX_DIRECTIVES: usize = 4;
/// Every request is answered within this, with a `TIMEOUT` error if need be.
pub const EXECUTION_DEADLINE: Duration = Duration::from_secs(10);
/// Requests parsed, validated and executed at once, each on a thread of the blocking pool;
/// the others wait for a slot within their deadline.
const CONCURRENT_REQUESTS: usize = 32;

/// The slots of `CONCURRENT_REQUESTS`, kept in the schema's data.
struct Slots(Arc<tokio::sync::Semaphore>);

#[derive(MergedObject, Default)]
pub struct Query(
    session::SessionQuery,
    apps::AppsQuery,
    users::UsersQuery,
    tokens::TokensQuery,
    audit::AuditQuery,
    ReportsQuery,
    gate::GateQueries,
    alerts::AlertsQuery,
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    session::SessionMutation,
    apps::AppsMutation,
    users::UsersMutation,
    tokens::TokensMutation,
    gate::GateMutations,
    alerts::AlertsMutation,
);

pub type ApiSchema = Schema<Query, Mutation, EmptySubscription>;

pub fn build_schema() -> ApiSchema {
    Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .limit_directives(MAX_DIRECTIVES)
        .data(Slots(Arc::new(tokio::sync::Semaphore::new(
            CONCURRENT_REQUESTS,
        ))))
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
    let signed_in = caller.is_ok();
    let info = RequestInfo {
        caller,
        client: connect_info.map(|Extension(ConnectInfo(addr))| addr.ip()),
        base_url: base_url(&headers, state.config.bind_addr),
    };
    let request = query.data(state.clone()).data(info);
    let response = run(schema, request, signed_in).await;
    Ok(async_graphql_axum::GraphQLResponse::from(response).into_response())
}

/// Judges the document's cost, then validates and executes it, all on the blocking pool so
/// that no document, however costly, holds up the runtime serving ingestion and health
/// checks; answered within `EXECUTION_DEADLINE` whatever happens.
async fn run(
    schema: ApiSchema,
    request: async_graphql::Request,
    signed_in: bool,
) -> async_graphql::Response {
    let deadline = tokio::time::Instant::now() + EXECUTION_DEADLINE;
    let timed_out = || {
        refusal(GqlError::Timeout(format!(
            "the request did not complete within {} s",
            EXECUTION_DEADLINE.as_secs()
        )))
    };
    let slot = match schema.data::<Slots>() {
        Some(Slots(slots)) => {
            match tokio::time::timeout_at(deadline, slots.clone().acquire_owned()).await {
                Ok(Ok(permit)) => Some(permit),
                Ok(Err(closed)) => return refusal(GqlError::internal(&closed)),
                Err(_) => return timed_out(),
            }
        }
        None => None,
    };
    let runtime = tokio::runtime::Handle::current();
    let task = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let request = match judge(request, signed_in) {
            Ok(request) => request,
            Err(refused) => return async_graphql::Response::from_errors(vec![refused]),
        };
        runtime.block_on(async {
            tokio::time::timeout_at(deadline, schema.execute(request))
                .await
                .unwrap_or_else(|_| timed_out())
        })
    });
    match task.await {
        Ok(response) => response,
        Err(failed) => refusal(GqlError::internal(&failed)),
    }
}

/// The request with its document parsed, once within the limits of `limits`; introspection
/// is for signed-in callers only.
fn judge(
    mut request: async_graphql::Request,
    signed_in: bool,
) -> Result<async_graphql::Request, ServerError> {
    let too_costly = |err: limits::CostError| {
        server_error(GqlError::BadInput {
            field: None,
            message: err.to_string(),
        })
    };
    limits::check_text(&request.query).map_err(too_costly)?;
    let document = async_graphql::parser::parse_query(&request.query).map_err(ServerError::from)?;
    let cost = limits::check_document(&document, MAX_DEPTH).map_err(too_costly)?;
    if !signed_in {
        if cost.introspection {
            return Err(server_error(GqlError::Unauthenticated(
                "introspection (__schema, __type) needs a signed-in caller".to_owned(),
            )));
        }
        request = request.disable_introspection();
    }
    request.set_parsed_query(document);
    Ok(request)
}

/// An answer of one error, without execution.
fn refusal(err: GqlError) -> async_graphql::Response {
    async_graphql::Response::from_errors(vec![server_error(err)])
}

fn server_error(err: GqlError) -> ServerError {
    let err = async_graphql::Error::from(err);
    let mut server_error = ServerError::new(err.message, None);
    server_error.extensions = err.extensions;
    server_error
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
