//! Prometheus metrics (issue 18): what the server counts and times, and the text `/metrics`
//! answers with.
//!
//! Each `Server` owns its own recorder instead of installing one process-wide: `metrics`
//! allows one global recorder per process, and the integration tests start many servers in
//! one process, each of which must count only its own traffic. The `metrics` macros are
//! pointed at this server's recorder for the duration of each call (`with_local_recorder`),
//! and the instruments without labels are registered once and kept; those of requests are
//! registered on a label set's first use and kept too, so a request costs two atomic updates
//! instead of a registry lookup with freshly allocated labels.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use metrics::{
    Counter, Gauge, Histogram, Unit, counter, describe_counter, describe_gauge, describe_histogram,
    gauge, histogram, with_local_recorder,
};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

pub const HTTP_REQUESTS: &str = "rollwatch_http_requests_total";
pub const HTTP_REQUEST_SECONDS: &str = "rollwatch_http_request_duration_seconds";
pub const REPORTS_ACCEPTED: &str = "rollwatch_reports_accepted_total";
pub const REPORTS_REJECTED: &str = "rollwatch_reports_rejected_total";
pub const REPORTS_THROTTLED: &str = "rollwatch_reports_throttled_total";
pub const WRITER_BATCH_JOBS: &str = "rollwatch_writer_batch_jobs";
pub const WRITER_COMMIT_SECONDS: &str = "rollwatch_writer_commit_duration_seconds";
pub const WRITE_QUEUE_DEPTH: &str = "rollwatch_write_queue_depth";
pub const BLOB_SECONDS: &str = "rollwatch_blob_operation_duration_seconds";
pub const BLOB_FAILURES: &str = "rollwatch_blob_failures_total";
pub const GATE_EVALUATIONS: &str = "rollwatch_gate_evaluations_total";
pub const LOGIN_FAILURES: &str = "rollwatch_login_failures_total";

/// The route label of a request no route matched (the web app, or a 404): one value, so
/// scanners' random paths cannot grow the label set.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Latency buckets in seconds: a millisecond to ten seconds, the span from a cached key
/// lookup to a slow S3 upload. Histograms rather than summaries so replicas add up.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Requests per flush, up to the writer's `MAX_JOBS_PER_FLUSH` of 2048.
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2048.0,
];

/// Where a gate verdict was asked for.
#[derive(Clone, Copy, Debug)]
pub enum GateCaller {
    /// The GraphQL `releaseGate` query (CI, `rollwatch gate`, the web app).
    Api,
    /// The background evaluation of watched releases.
    Alerts,
}

impl GateCaller {
    fn label(self) -> &'static str {
        match self {
            GateCaller::Api => "api",
            GateCaller::Alerts => "alerts",
        }
    }
}

/// This server's metrics; cheap to clone.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// By matched route: its label sets are bounded by the code (routes, methods, statuses).
    requests: RwLock<HashMap<String, RouteInstruments>>,
    reports_accepted: Counter,
    reports_throttled: Counter,
    writer_batch_jobs: Histogram,
    writer_commit_seconds: Histogram,
    write_queue_depth: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .and_then(|builder| {
                builder
                    .set_buckets_for_metric(Matcher::Full(WRITER_BATCH_JOBS.into()), BATCH_BUCKETS)
            })
            // Only an empty bucket list is refused, and these are constants.
            .unwrap_or_default()
            .build_recorder();
        let handle = recorder.handle();
        let (
            reports_accepted,
            reports_throttled,
            writer_batch_jobs,
            writer_commit_seconds,
            write_queue_depth,
        ) = with_local_recorder(&recorder, || {
            describe();
            (
                counter!(REPORTS_ACCEPTED),
                counter!(REPORTS_THROTTLED),
                histogram!(WRITER_BATCH_JOBS),
                histogram!(WRITER_COMMIT_SECONDS),
                gauge!(WRITE_QUEUE_DEPTH),
            )
        });
        Metrics(Arc::new(Inner {
            recorder,
            handle,
            requests: RwLock::default(),
            reports_accepted,
            reports_throttled,
            writer_batch_jobs,
            writer_commit_seconds,
            write_queue_depth,
        }))
    }

    /// Runs `record` against this server's recorder.
    fn with<T>(&self, record: impl FnOnce() -> T) -> T {
        with_local_recorder(&self.0.recorder, record)
    }

    /// One answered request: `route` is the matched route template (`/api/{app_id}/store`),
    /// never the raw path.
    pub fn http_request(&self, method: &'static str, route: &str, status: u16, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Ok(routes) = self.0.requests.read()
            && let Some(instruments) = routes.get(route)
            && let Some(requests) = instruments.requests(method, status)
        {
            requests.increment(1);
            instruments.seconds.record(seconds);
            return;
        }
        // A label set's first request (or a poisoned lock, which only a panic elsewhere
        // leaves: the instruments are then registered again, which the registry allows).
        let (requests, latency) = self.register_request(method, route, status);
        requests.increment(1);
        latency.record(seconds);
    }

    fn register_request(
        &self,
        method: &'static str,
        route: &str,
        status: u16,
    ) -> (Counter, Histogram) {
        let register = || {
            self.with(|| {
                let requests = counter!(HTTP_REQUESTS, "method" => method,
                    "route" => route.to_owned(), "status" => status.to_string());
                (
                    requests,
                    histogram!(HTTP_REQUEST_SECONDS, "route" => route.to_owned()),
                )
            })
        };
        let Ok(mut routes) = self.0.requests.write() else {
            return register();
        };
        if let Some(instruments) = routes.get(route)
            && let Some(requests) = instruments.requests(method, status)
        {
            return (requests.clone(), instruments.seconds.clone());
        }
        let (requests, seconds) = register();
        let instruments = routes
            .entry(route.to_owned())
            .or_insert_with(|| RouteInstruments {
                seconds,
                requests: Vec::new(),
            });
        instruments
            .requests
            .push((method, status, requests.clone()));
        (requests, instruments.seconds.clone())
    }

    /// Reports whose counts were committed now (not replays of an earlier request).
    pub fn reports_accepted(&self, reports: u64) {
        if reports > 0 {
            self.0.reports_accepted.increment(reports);
        }
    }

    /// A report, or a report request as a whole, refused with the JSON error `code`.
    pub fn report_rejected(&self, code: &'static str) {
        self.with(|| counter!(REPORTS_REJECTED, "code" => code).increment(1));
        if code == "rate_limited" {
            self.0.reports_throttled.increment(1);
        }
    }

    /// One flush of the group-commit writer: how many requests it took, and how long its
    /// transaction took from `BEGIN` to the commit's answer.
    pub fn writer_flush(&self, jobs: usize, commit: Duration) {
        self.0.writer_batch_jobs.record(jobs as f64);
        self.0.writer_commit_seconds.record(commit.as_secs_f64());
    }

    /// Requests waiting for the writer right now.
    pub fn set_write_queue_depth(&self, depth: usize) {
        self.0.write_queue_depth.set(depth as f64);
    }

    /// One blob store call (`put`, `get`, `delete`, `presign`).
    pub fn blob_operation(&self, operation: &'static str, elapsed: Duration, succeeded: bool) {
        self.with(|| {
            histogram!(BLOB_SECONDS, "operation" => operation).record(elapsed.as_secs_f64());
            if !succeeded {
                counter!(BLOB_FAILURES, "operation" => operation).increment(1);
            }
        });
    }

    /// One gate verdict (`PASS`, `FAIL`, `INSUFFICIENT_DATA`).
    pub fn gate_evaluated(&self, caller: GateCaller, verdict: &'static str) {
        self.with(|| {
            counter!(GATE_EVALUATIONS, "caller" => caller.label(), "verdict" => verdict)
                .increment(1);
        });
    }

    /// A refused sign-in: `bad_credentials` or `rate_limited`.
    pub fn login_failed(&self, reason: &'static str) {
        self.with(|| counter!(LOGIN_FAILURES, "reason" => reason).increment(1));
    }

    /// The Prometheus text exposition of everything recorded so far.
    pub fn render(&self) -> String {
        self.0.handle.render()
    }

    /// Moves recorded histogram samples into their buckets. Rendering does it too; this keeps
    /// memory bounded when nobody scrapes.
    pub fn run_upkeep(&self) {
        self.0.handle.run_upkeep();
    }
}

/// One route's request instruments.
struct RouteInstruments {
    seconds: Histogram,
    /// By method and status: a handful per route.
    requests: Vec<(&'static str, u16, Counter)>,
}

impl RouteInstruments {
    fn requests(&self, method: &str, status: u16) -> Option<&Counter> {
        self.requests
            .iter()
            .find(|(m, s, _)| *m == method && *s == status)
            .map(|(_, _, counter)| counter)
    }
}

/// The help lines of `/metrics`.
fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by method, matched route and status"
    );
    describe_histogram!(
        HTTP_REQUEST_SECONDS,
        Unit::Seconds,
        "Time from a request's headers to its answer's headers, by matched route"
    );
    describe_counter!(
        REPORTS_ACCEPTED,
        "Reports counted (REST, batch items and Sentry events); replays are not counted again"
    );
    describe_counter!(
        REPORTS_REJECTED,
        "Reports refused, by JSON error code: a whole request once, a batch's refused items each"
    );
    describe_counter!(
        REPORTS_THROTTLED,
        "Reports refused with 429 rate_limited (also in the rejected counter)"
    );
    describe_histogram!(
        WRITER_BATCH_JOBS,
        "Requests committed together by one flush of the group-commit writer"
    );
    describe_histogram!(
        WRITER_COMMIT_SECONDS,
        Unit::Seconds,
        "Duration of one group-commit transaction, BEGIN to the commit's answer"
    );
    describe_gauge!(
        WRITE_QUEUE_DEPTH,
        "Requests waiting for the group-commit writer, at scrape time"
    );
    describe_histogram!(
        BLOB_SECONDS,
        Unit::Seconds,
        "Duration of blob store calls, by operation"
    );
    describe_counter!(BLOB_FAILURES, "Failed blob store calls, by operation");
    describe_counter!(
        GATE_EVALUATIONS,
        "Release gate verdicts, by caller (api, alerts) and verdict"
    );
    describe_counter!(
        LOGIN_FAILURES,
        "Refused sign-ins, by reason (bad_credentials, rate_limited)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_server_counts_only_its_own() {
        let one = Metrics::new();
        let other = Metrics::new();
        one.report_rejected("rate_limited");
        one.report_rejected("invalid_field");
        one.reports_accepted(3);
        one.http_request("POST", "/reports/ingest", 202, Duration::from_millis(3));
        let text = one.render();
        assert!(
            text.contains("rollwatch_reports_accepted_total 3"),
            "{text}"
        );
        assert!(
            text.contains("rollwatch_reports_rejected_total{code=\"rate_limited\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("rollwatch_reports_throttled_total 1"),
            "{text}"
        );
        assert!(
            text.contains("# HELP rollwatch_reports_accepted_total Reports counted"),
            "{text}"
        );
        assert!(
            text.contains("rollwatch_http_request_duration_seconds_bucket{route=\"/reports/ingest\",le=\"0.005\"} 1"),
            "{text}"
        );
        let other_text = other.render();
        assert!(
            !other_text.contains("rollwatch_reports_accepted_total 3"),
            "{other_text}"
        );
    }
}
