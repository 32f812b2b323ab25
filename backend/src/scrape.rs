//! `GET /metrics` (Prometheus text), and the layer that counts every request by its matched
//! route and status (and a report route's refusals by code). The instruments themselves live
//! in `telemetry`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};
use tower::{Layer, Service};

use crate::config::ExposeSecret;
use crate::error::{ApiError, ErrorCode};
use crate::ingest;
use crate::state::AppState;
use crate::telemetry::{Metrics, UNMATCHED_ROUTE};

/// The version of the text format Prometheus expects.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.config.metrics.token
        && !bearer_matches(&headers, token.expose_secret())
    {
        return ApiError::MetricsTokenRequired.into_response();
    }
    state.metrics.set_write_queue_depth(state.writer.queued());
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        state.metrics.render(),
    )
        .into_response()
}

/// Whether the request carries `Authorization: Bearer <token>`. The digests are compared, so
/// the time taken says nothing about how much of the token was right.
fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    let sent = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    sent.is_some_and(|sent| Sha256::digest(sent) == Sha256::digest(token))
}

/// Counts and times each request by method, matched route (the template, never the raw
/// path: `/api/{app_id}/store`) and status, and a report route's refusals by their JSON
/// code. A tower layer, not `from_fn`: that clones the boxed inner service and boxes a future
/// for every request, which showed on the ingestion benchmark.
#[derive(Clone)]
pub struct TrackRequestsLayer(pub Metrics);

impl<S> Layer<S> for TrackRequestsLayer {
    type Service = TrackRequests<S>;

    fn layer(&self, inner: S) -> TrackRequests<S> {
        TrackRequests {
            inner,
            metrics: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct TrackRequests<S> {
    inner: S,
    metrics: Metrics,
}

impl<S> Service<Request> for TrackRequests<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Tracked<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let route = request.extensions().get::<MatchedPath>().cloned();
        let method = method_label(request.method());
        Tracked {
            started: Instant::now(),
            inner: self.inner.call(request),
            metrics: self.metrics.clone(),
            route,
            method,
        }
    }
}

pin_project_lite::pin_project! {
    /// A request on its way: counted when its answer is ready.
    pub struct Tracked<F> {
        #[pin]
        inner: F,
        metrics: Metrics,
        route: Option<MatchedPath>,
        method: &'static str,
        started: Instant,
    }
}

impl<F, E> Future for Tracked<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let answer = std::task::ready!(this.inner.poll(cx));
        if let Ok(response) = &answer {
            let route = this
                .route
                .as_ref()
                .map_or(UNMATCHED_ROUTE, MatchedPath::as_str);
            this.metrics.http_request(
                this.method,
                route,
                response.status().as_u16(),
                this.started.elapsed(),
            );
            if ingest::REPORT_ROUTES.contains(&route)
                && let Some(ErrorCode(code)) = response.extensions().get::<ErrorCode>()
            {
                this.metrics.report_rejected(code);
            }
        }
        Poll::Ready(answer)
    }
}

/// Methods beyond the standard ones are one label value, so a client cannot grow the set.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_is_let_in() {
        let token = "scrape-token-0123456789";
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(value).expect("header"),
            );
            headers
        };
        assert!(bearer_matches(&with(&format!("Bearer {token}")), token));
        assert!(!bearer_matches(
            &with("Bearer scrape-token-012345678"),
            token
        ));
        assert!(!bearer_matches(&with(token), token));
        assert!(!bearer_matches(&HeaderMap::new(), token));
        assert_eq!(
            method_label(&Method::from_bytes(b"BREW").expect("method")),
            "other"
        );
    }
}
