//! The accept loop (instead of `axum::serve`, which bounds nothing): each connection gets a
//! deadline for its request headers, for its request body and for sitting idle, and at most
//! `HTTP_MAX_CONNECTIONS` are open at once, so slow or silent clients cannot pile up.
//!
//! A connection is watched through its bytes: once it has no request in flight, the first
//! byte it sends starts the header clock, which stops when hyper hands the request over; with
//! no request in flight and no byte moving either way, the idle clock runs. A client reading
//! its answer too slowly stops the bytes moving, and is closed as idle.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Bytes, HttpBody};
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use crate::config::HttpConfig;

/// A failed `accept` (out of file descriptors, most likely) is retried after this.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// A request body that did not arrive within `HTTP_REQUEST_BODY_TIMEOUT_SECONDS`.
#[derive(Clone, Copy, Debug, thiserror::Error)]
#[error("the request body did not arrive within {0} s")]
pub struct BodyTimeout(pub u64);

/// Serves `app` on `listener` until `shutdown` resolves, then lets every connection finish
/// the requests it has in flight (idle ones are closed at once).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    // Dropping `stop` tells every connection to shut down; `done` is closed once all are gone.
    let (stop, stopped) = watch::channel(());
    let (done, running) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    loop {
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "accept failed; retrying");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            },
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        tokio::spawn(connection(
            stream,
            peer,
            app.clone(),
            limits.clone(),
            slot,
            stopped.clone(),
            running.clone(),
        ));
    }
    drop(listener);
    drop((stop, stopped, running));
    done.closed().await;
    Ok(())
}

/// Errors of one connection that `accept` reports; the listener itself is fine.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: HttpConfig,
    _slot: OwnedSemaphorePermit,
    mut stop: watch::Receiver<()>,
    _running: watch::Receiver<()>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let body_timeout = limits.request_body_timeout;
    let requests = activity.clone();
    let service = tower::service_fn(move |mut request: Request<hyper::body::Incoming>| {
        let in_flight = requests.request_started();
        request.extensions_mut().insert(ConnectInfo(peer));
        let request = request.map(|body| DeadlineBody::new(body, body_timeout));
        let app = app.clone();
        async move {
            let response = app.oneshot(request).await;
            drop(in_flight);
            response
        }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let mut conn = pin!(builder.serve_connection(io, TowerToHyperService::new(service)));
    let mut stopping = false;
    loop {
        let check_at = activity.next_check(&limits);
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                break;
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            () = tokio::time::sleep_until(check_at) => {
                if let Some(why) = activity.expired(&limits, Instant::now()) {
                    tracing::debug!(%peer, why, "closing the connection");
                    break;
                }
            }
        }
    }
}

/// What the watchdog knows of a connection.
struct Activity(Mutex<ActivityState>);

struct ActivityState {
    /// The last byte read or written, or the last answer handed over.
    last_io: Instant,
    /// The first byte of a request not yet handed over (none while one is in flight).
    request_since: Option<Instant>,
    in_flight: usize,
}

impl Activity {
    fn new() -> Self {
        Activity(Mutex::new(ActivityState {
            last_io: Instant::now(),
            request_since: None,
            in_flight: 0,
        }))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ActivityState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn read(&self) {
        let now = Instant::now();
        let mut state = self.state();
        state.last_io = now;
        if state.in_flight == 0 && state.request_since.is_none() {
            state.request_since = Some(now);
        }
    }

    fn wrote(&self) {
        self.state().last_io = Instant::now();
    }

    /// A request's headers are in; it is in flight until the guard is dropped.
    fn request_started(self: &Arc<Self>) -> InFlight {
        let mut state = self.state();
        state.in_flight += 1;
        state.request_since = None;
        InFlight(self.clone())
    }

    /// When to look again: no deadline can fall before it.
    fn next_check(&self, limits: &HttpConfig) -> Instant {
        let now = Instant::now();
        let state = self.state();
        let soonest = limits.header_read_timeout.min(limits.idle_timeout);
        if state.in_flight > 0 {
            return now + soonest;
        }
        match state.request_since {
            Some(since) => since + limits.header_read_timeout,
            // A byte arriving now would start the header clock.
            None => (state.last_io + limits.idle_timeout).min(now + limits.header_read_timeout),
        }
    }

    /// Why the connection must be closed now, if it must.
    fn expired(&self, limits: &HttpConfig, now: Instant) -> Option<&'static str> {
        let state = self.state();
        if state.in_flight > 0 {
            return None;
        }
        match state.request_since {
            Some(since) if now >= since + limits.header_read_timeout => {
                Some("request headers not received in time")
            }
            None if now >= state.last_io + limits.idle_timeout => Some("idle"),
            _ => None,
        }
    }
}

/// A request in flight on its connection.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.in_flight = state.in_flight.saturating_sub(1);
        state.last_io = Instant::now();
    }
}

/// The connection's socket, telling `Activity` of every byte that moves.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A request body that must end within its deadline, counted from the end of the headers
/// (a per-frame timeout would let a client send a byte just before each one expires).
struct DeadlineBody<B> {
    inner: B,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<B> DeadlineBody<B> {
    fn new(inner: B, timeout: Duration) -> Self {
        DeadlineBody {
            inner,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

impl<B> HttpBody for DeadlineBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::BoxError>>> {
        if self.deadline.as_mut().poll(cx).is_ready() {
            let secs = self.timeout.as_secs();
            return Poll::Ready(Some(Err(Box::new(BodyTimeout(secs)))));
        }
        Pin::new(&mut self.inner)
            .poll_frame(cx)
            .map(|frame| frame.map(|f| f.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The deadline a body failed by, if that is why it failed.
pub fn body_timeout<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a BodyTimeout> {
    std::iter::successors(Some(err), |e| e.source()).find_map(|e| e.downcast_ref::<BodyTimeout>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> HttpConfig {
        HttpConfig {
            header_read_timeout: Duration::from_secs(10),
            request_body_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(75),
            max_connections: 16,
        }
    }

    fn after(secs: u64) -> Instant {
        Instant::now() + Duration::from_secs(secs)
    }

    #[test]
    fn the_clocks_run_only_while_no_request_is_in_flight() {
        let limits = limits();
        let silent = Arc::new(Activity::new());
        assert_eq!(silent.expired(&limits, after(74)), None);
        assert_eq!(silent.expired(&limits, after(76)), Some("idle"));

        let slow = Arc::new(Activity::new());
        slow.read();
        assert_eq!(slow.expired(&limits, after(9)), None);
        // More bytes do not restart the header clock.
        slow.read();
        assert!(
            slow.expired(&limits, after(11))
                .is_some_and(|why| why.contains("headers"))
        );

        let busy = Arc::new(Activity::new());
        busy.read();
        let in_flight = busy.request_started();
        busy.read();
        assert_eq!(busy.expired(&limits, after(1000)), None);
        drop(in_flight);
        assert_eq!(busy.expired(&limits, after(74)), None);
        assert!(busy.next_check(&limits) <= after(11));
    }

    /// A body whose bytes never come.
    struct Silent;

    impl HttpBody for Silent {
        type Data = Bytes;
        type Error = io::Error;
        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, io::Error>>> {
            Poll::Pending
        }
    }

    #[tokio::test]
    async fn a_body_past_its_deadline_fails_with_a_timeout() {
        use http_body_util::BodyExt;
        let mut body = DeadlineBody::new(Silent, Duration::from_millis(20));
        let err = body.frame().await.expect("a frame").expect_err("timed out");
        assert!(body_timeout(&*err).is_some(), "{err}");
    }
}
