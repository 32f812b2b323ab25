//! The load itself: keep-alive HTTP/1.1 connections over loopback, each sending one request
//! at a time, either as fast as the server answers (closed loop, to find the maximum) or on a
//! fixed schedule (open loop, for latency at a given load).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::BenchError;

/// How long a worker waits before reconnecting after its connection failed.
const RECONNECT_PAUSE: Duration = Duration::from_millis(10);

/// Where to send and with which key.
pub struct Target {
    pub addr: SocketAddr,
    pub path: &'static str,
    pub authorization: HeaderValue,
}

#[derive(Clone, Copy, Debug)]
pub enum Pace {
    /// Each connection sends its next request as soon as the previous one is answered.
    AsFastAsAnswered,
    /// Requests are due at this many per second in all, each taken by whichever connection is
    /// free, as requests from many devices would be; latency counts from when a request was
    /// due, so when every connection is busy the wait for one is counted too.
    PerSecond(f64),
}

#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub connections: usize,
    pub warmup: Duration,
    pub measured: Duration,
    pub pace: Pace,
}

/// What one run saw. Only answers completed inside the measured window count for rates and
/// latencies; every 202, warm-up included, counts for the stored-count check.
#[derive(Debug, Default)]
pub struct Outcome {
    pub accepted_in_window: u64,
    pub other_statuses_in_window: u64,
    /// Microseconds, sorted.
    pub latencies_us: Vec<u32>,
    pub accepted_total: u64,
    /// Connections that failed or answers that could not be read.
    pub transport_errors: u64,
    pub measured: Duration,
}

impl Outcome {
    pub fn accepted_per_second(&self) -> f64 {
        self.accepted_in_window as f64 / self.measured.as_secs_f64()
    }

    /// The latency at quantile `q` (0..=1) in milliseconds.
    pub fn latency_ms(&self, q: f64) -> f64 {
        quantile_ms(&self.latencies_us, q)
    }

    fn absorb(&mut self, other: Outcome) {
        self.accepted_in_window += other.accepted_in_window;
        self.other_statuses_in_window += other.other_statuses_in_window;
        self.latencies_us.extend(other.latencies_us);
        self.accepted_total += other.accepted_total;
        self.transport_errors += other.transport_errors;
    }
}

/// The value at quantile `q` (0..=1) of sorted microseconds, in milliseconds; NaN if empty.
pub fn quantile_ms(sorted_us: &[u32], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let rank = (q * (sorted_us.len() - 1) as f64).round() as usize;
    f64::from(sorted_us[rank]) / 1000.0
}

/// One keep-alive HTTP/1.1 connection to the server, Nagle off (every request is one write).
pub async fn open_connection(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, BenchError> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // The connection ends when its sender is dropped or the server closes it; a failure
        // shows up in the next request.
        let _ = connection.await;
    });
    Ok(sender)
}

/// Runs `plan` against `target`, cycling through `bodies`.
pub async fn run(target: Arc<Target>, bodies: Arc<Vec<Bytes>>, plan: Plan) -> Outcome {
    let start = Instant::now();
    let next_body = Arc::new(AtomicU64::new(0));
    let next_slot = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..plan.connections)
        .map(|_| {
            let worker = Worker {
                target: target.clone(),
                bodies: bodies.clone(),
                next_body: next_body.clone(),
                next_slot: next_slot.clone(),
                plan,
                start,
            };
            tokio::spawn(worker.run())
        })
        .collect();
    let mut outcome = Outcome {
        measured: plan.measured,
        ..Outcome::default()
    };
    for worker in workers {
        match worker.await {
            Ok(tally) => outcome.absorb(tally),
            Err(_) => outcome.transport_errors += 1,
        }
    }
    outcome.latencies_us.sort_unstable();
    outcome
}

struct Worker {
    target: Arc<Target>,
    bodies: Arc<Vec<Bytes>>,
    next_body: Arc<AtomicU64>,
    /// The next request of the paced schedule that no connection has taken yet.
    next_slot: Arc<AtomicU64>,
    plan: Plan,
    start: Instant,
}

impl Worker {
    async fn run(self) -> Outcome {
        let window_start = self.start + self.plan.warmup;
        let end = window_start + self.plan.measured;
        let mut tally = Outcome::default();
        'connections: while Instant::now() < end {
            let Some(mut connection) = self.connect().await else {
                tally.transport_errors += 1;
                tokio::time::sleep(RECONNECT_PAUSE).await;
                continue;
            };
            loop {
                let due = match self.plan.pace {
                    Pace::AsFastAsAnswered => Instant::now(),
                    Pace::PerSecond(rate) => {
                        let slot = self.next_slot.fetch_add(1, Ordering::Relaxed);
                        let due = self.start + Duration::from_secs_f64(slot as f64 / rate);
                        tokio::time::sleep_until(due).await;
                        due
                    }
                };
                if due >= end {
                    break 'connections;
                }
                let status = match self.send(&mut connection).await {
                    Ok(status) => status,
                    Err(_) => {
                        tally.transport_errors += 1;
                        continue 'connections;
                    }
                };
                let done = Instant::now();
                if status == StatusCode::ACCEPTED {
                    tally.accepted_total += 1;
                }
                if done >= window_start && done < end {
                    let latency = done.duration_since(due).as_micros();
                    tally
                        .latencies_us
                        .push(u32::try_from(latency).unwrap_or(u32::MAX));
                    if status == StatusCode::ACCEPTED {
                        tally.accepted_in_window += 1;
                    } else {
                        tally.other_statuses_in_window += 1;
                    }
                }
            }
        }
        tally
    }

    async fn connect(&self) -> Option<SendRequest<Full<Bytes>>> {
        open_connection(self.target.addr).await.ok()
    }

    /// Sends the next body and reads the whole answer, so the connection can be reused.
    async fn send(
        &self,
        connection: &mut SendRequest<Full<Bytes>>,
    ) -> Result<StatusCode, hyper::Error> {
        let n = self.next_body.fetch_add(1, Ordering::Relaxed);
        let body = self.bodies[(n % self.bodies.len() as u64) as usize].clone();
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = hyper::Method::POST;
        *request.uri_mut() = hyper::Uri::from_static(self.target.path);
        let headers = request.headers_mut();
        headers.insert(HOST, HeaderValue::from_static("localhost"));
        headers.insert(AUTHORIZATION, self.target.authorization.clone());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        connection.ready().await?;
        let response = connection.send_request(request).await?;
        let status = response.status();
        response.into_body().collect().await?;
        Ok(status)
    }
}
