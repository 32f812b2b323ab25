//! The HTTP server: start-up, routes, background tasks and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower_http::compression::CompressionLayer;
use tower_http::trace::TraceLayer;

use crate::accounts::{self, FirstAdmin};
use crate::alerts::signing::DestinationSecrets;
use crate::auth::jwt::{self, SessionKeys};
use crate::auth::login::Logins;
use crate::blobs::{BlobError, BlobStore, LinkSigner};
use crate::config::{Config, ExposeSecret};
use crate::error::{ApiError, ServiceError};
use crate::graphql;
use crate::ingest::writer::Writer;
use crate::keys::KeyCache;
use crate::ratelimit::shared::SharedLimits;
use crate::ratelimit::{Allowance, RateLimits};
use crate::state::{AppState, Shared};
use crate::telemetry::Metrics;
use crate::throttled::ThrottledTally;
use crate::{
    alerts, db, downloads, export, folding, ingest, listen, retention, scrape, sdk_script, web,
};

/// Requests waiting for the writer beyond this are shed with 503 instead of queueing in memory.
const WRITE_QUEUE_CAPACITY: usize = 8192;
const RETENTION_EVERY: Duration = Duration::from_secs(24 * 3600);
/// How often each replica asks whether the day's sweep is still to be done.
const RETENTION_LOOK_EVERY: Duration = Duration::from_secs(3600);
/// The lease that makes the sweep run once a day across replicas.
const RETENTION_LEASE: &str = "retention";
const FORGET_IDLE_LIMITS_EVERY: Duration = Duration::from_secs(60);
/// How long refusals may pile up in memory before they are counted in the database.
const COUNT_THROTTLED_EVERY: Duration = Duration::from_secs(5);
/// How often recorded histogram samples are folded into their buckets when nobody scrapes.
const METRICS_UPKEEP_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("database {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("blob storage: {0}")]
    Blobs(#[from] BlobError),
    #[error("start-up: {0}")]
    Service(#[from] ServiceError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("data dir {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("REDIS_URL: {0}")]
    Redis(String),
}

pub struct Server {
    listener: TcpListener,
    /// `METRICS_ADDR`'s listener, when `/metrics` has one of its own.
    metrics_listener: Option<TcpListener>,
    state: AppState,
    writer_task: JoinHandle<()>,
    /// Set on the first start of an install; its password must be shown to the operator once.
    pub first_admin: Option<FirstAdmin>,
}

impl Server {
    /// Connects, migrates, creates the first admin when there is no user, and binds.
    pub async fn build(config: Config) -> Result<Server, StartError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
            path: config.data_dir.display().to_string(),
            source,
        })?;
        let url = config.database_url.expose_secret();
        let db = db::connect(url).await?;
        // Two replicas starting on an empty database must not both create a first admin.
        let lock = db::StartupLock::acquire(url).await?;
        let first_admin = accounts::ensure_first_admin(&db, &config).await;
        if let Some(lock) = lock {
            lock.release().await?;
        }
        let first_admin = first_admin?;
        let metrics = Metrics::new();
        let blobs = BlobStore::from_config(&config.storage, metrics.clone())?;
        let secret = jwt::load_or_create_secret(&config)?;
        let listener = bind(config.bind_addr).await?;
        let metrics_listener = match config.metrics.addr {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let (writer, writer_task) = Writer::spawn(
            db.conn().clone(),
            db.gate().clone(),
            WRITE_QUEUE_CAPACITY,
            metrics.clone(),
        );
        let shared_limits = config
            .reports
            .redis_url
            .as_ref()
            .map(|url| SharedLimits::new(url.expose_secret(), &secret))
            .transpose()
            .map_err(|e| StartError::Redis(e.to_string()))?;
        let state = AppState::new(Shared {
            keys: KeyCache::new(config.reports.key_cache_ttl),
            limits: RateLimits::new(
                Allowance {
                    per_key: config.reports.rate_limit_per_key_per_minute,
                    per_device: config.reports.rate_limit_per_device_per_minute,
                },
                Allowance {
                    per_key: config.reports.usage_rate_limit_per_key_per_minute,
                    per_device: config.reports.usage_rate_limit_per_device_per_minute,
                },
                shared_limits,
            ),
            throttled: ThrottledTally::default(),
            config,
            db,
            writer,
            blobs,
            sessions: SessionKeys::new(&secret),
            logins: Logins::new()?,
            blob_links: LinkSigner::new(&secret),
            destination_secrets: DestinationSecrets::new(&secret),
            metrics,
        });
        Ok(Server {
            listener,
            metrics_listener,
            state,
            writer_task,
            first_admin,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Where `/metrics` is served when `METRICS_ADDR` gives it a listener of its own.
    pub fn metrics_addr(&self) -> Option<std::io::Result<SocketAddr>> {
        self.metrics_listener.as_ref().map(TcpListener::local_addr)
    }

    /// Serves until `shutdown` resolves, then lets requests in flight finish: each of them is
    /// answered only after its counts are committed, so nothing acknowledged is lost.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Server {
            listener,
            metrics_listener,
            state,
            writer_task,
            ..
        } = self;
        let background = [
            tokio::spawn(daily_upkeep(state.clone())),
            tokio::spawn(forget_idle_limits(state.clone())),
            tokio::spawn(count_throttled_forever(state.clone())),
            tokio::spawn(alerts::evaluate_forever(state.clone())),
            tokio::spawn(alerts::deliver_forever(state.clone())),
            tokio::spawn(metrics_upkeep(state.clone())),
        ];
        // Each request carries its client's address (`ConnectInfo`): it keys the sign-in rate
        // limit.
        let limits = state.config.http.clone();
        // The metrics listener stops with the main one.
        let (stop_metrics, metrics_stopped) = tokio::sync::watch::channel(false);
        let shutdown = async move {
            shutdown.await;
            let _ = stop_metrics.send(true);
        };
        let metrics_served = metrics_listener.map(|listener| {
            let mut stopped = metrics_stopped;
            tokio::spawn(listen::serve(
                listener,
                scrape::routes().with_state(state.clone()),
                limits.clone(),
                async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                },
            ))
        });
        let served = listen::serve(listener, router(state.clone()), limits, shutdown).await;
        if let Some(metrics_served) = metrics_served {
            match metrics_served.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "the metrics listener failed"),
                Err(e) => tracing::warn!(error = %e, "the metrics listener's task failed"),
            }
        }
        for task in background {
            task.abort();
            let _ = task.await;
        }
        flush_throttled(&state).await;
        let db = state.db.clone();
        // The last handle to the writer goes with the state; the writer then drains and ends.
        drop(state);
        if let Err(e) = writer_task.await {
            tracing::error!(error = %e, "writer task failed");
        }
        if let Err(e) = db.close().await {
            tracing::warn!(error = %e, "closing the database");
        }
        served
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { addr, source })
}

pub fn router(state: AppState) -> Router {
    let mut app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        // Rollout pages ask for tens of kilobytes of JSON: worth compressing.
        .merge(graphql::routes().layer(CompressionLayer::new()));
    if state.config.metrics.addr.is_none() {
        app = app.merge(scrape::routes());
    }
    if state.config.reports.enabled {
        app = app
            .merge(ingest::routes())
            .merge(ingest::sentry::routes())
            .merge(downloads::routes())
            .merge(export::routes())
            .merge(sdk_script::routes());
        if state.config.reports.bench_endpoints {
            app = app.merge(ingest::bench::routes());
        }
    }
    // Everything else is the web app, or a JSON 404 when it has not been built.
    let app = match web::built_app(state.config.web_dir.as_deref()) {
        Some(web_app) => app.fallback_service(web_app),
        None => app.fallback(not_found),
    };
    // Outside every route, so the fallback's answers are counted too.
    let app = app.layer(scrape::TrackRequestsLayer(state.metrics.clone()));
    // The span names the path, never the query: beacons carry their report key there
    // (crate::beacon), Sentry SDKs their `sentry_key`, and download links their signature.
    let trace = TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
        tracing::debug_span!(
            "request",
            method = %request.method(),
            path = %request.uri().path(),
            version = ?request.version(),
        )
    });
    app.layer(trace).with_state(state)
}

async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.db.conn().ping().await {
        Ok(()) => axum::Json(serde_json::json!({
            "status": "ready",
            "rate_limits": state.limits.holder(),
        }))
        .into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, axum::Json(ApiError::NotFound.body())).into_response()
}

/// The daily upkeep, run once a day across replicas (every replica looks each hour, and the
/// one that claims the day's lease does it): the blob retention sweep, old idempotency keys,
/// and folding old hourly counts into days.
async fn daily_upkeep(state: AppState) {
    let mut every = tokio::time::interval(RETENTION_LOOK_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match crate::lease::claim(
            &state.db,
            RETENTION_LEASE,
            RETENTION_EVERY,
            chrono::Utc::now(),
        )
        .await
        {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "retention: cannot claim today's sweep");
                continue;
            }
        }
        match retention::sweep(&state.db, &state.blobs, &state.config.reports).await {
            Ok(sweep) => tracing::info!(?sweep, "blob retention sweep"),
            Err(e) => tracing::warn!(error = %e, "blob retention sweep failed"),
        }
        let forgotten = {
            let _turn = state.db.gate().enter().await;
            ingest::idempotency::forget_old(state.db.conn()).await
        };
        match forgotten {
            Ok(rows) => tracing::info!(rows, "old idempotency keys and flush ids forgotten"),
            Err(e) => tracing::warn!(error = %e, "forgetting old idempotency keys failed"),
        }
        let cutoff = folding::cutoff(chrono::Utc::now(), state.config.reports.hourly_counts_days);
        match folding::fold_hours_before(&state.db, cutoff, folding::GROUPS_PER_BATCH).await {
            Ok(folded) => tracing::info!(?folded, "old hourly counts folded into days"),
            Err(e) => {
                tracing::warn!(error = %e, "folding old hourly counts failed; the next day's run resumes it")
            }
        }
    }
}

/// Adds the refusals counted in memory to `throttled_counts`, every few seconds.
async fn count_throttled_forever(state: AppState) {
    let mut every = tokio::time::interval(COUNT_THROTTLED_EVERY);
    loop {
        every.tick().await;
        flush_throttled(&state).await;
    }
}

async fn flush_throttled(state: &AppState) {
    if let Err(e) = state.throttled.flush(&state.db).await {
        tracing::warn!(error = %e, "counting throttled requests failed; kept for the next try");
    }
}

async fn metrics_upkeep(state: AppState) {
    let mut every = tokio::time::interval(METRICS_UPKEEP_EVERY);
    loop {
        every.tick().await;
        state.metrics.run_upkeep();
    }
}

async fn forget_idle_limits(state: AppState) {
    let mut every = tokio::time::interval(FORGET_IDLE_LIMITS_EVERY);
    loop {
        every.tick().await;
        state.limits.forget_idle();
        state.logins.forget_idle();
    }
}
