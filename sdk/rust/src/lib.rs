//! The Rollwatch client: records crashes, failed and succeeded updates and installs, and
//! sessions into a durable on-disk queue; a background thread sends them.
//!
//! It mirrors the Python client (`sdk/python`): the same queue layout, scrubbing, batching,
//! backoff and idempotency. Every method returns at once and never panics.

mod http;
mod platform;
mod queue;
mod scrub;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

pub use platform::{detect_arch, detect_platform, normalise_arch, normalise_platform};
use queue::{Batch, Queue};
pub use scrub::Scrubber;

const MAX_REPORTS_PER_BATCH: usize = 100;
const MAX_REASON_CHARS: usize = 256;
const MAX_DETAILS_DECOMPRESSED: usize = 1_048_576;
const TRUNCATED: &str = "\n…[truncated by rollwatch]";

/// How the client is set up. `Config::new` fills the defaults; change fields before
/// `Client::new`.
#[derive(Clone, Debug)]
pub struct Config {
    /// `http://host[:port][/base]`, or `https://…` (the default `tls` feature).
    pub endpoint: String,
    /// PEM certificates (a private CA) trusted for an `https://` endpoint besides the
    /// Mozilla roots.
    pub root_certificates: Vec<Vec<u8>>,
    /// The app's report key (`rollwatch apps create <app>`).
    pub key: String,
    pub app: String,
    pub version: String,
    pub channel: String,
    /// One of `windows macos linux android ios web other`; detected at compile time.
    pub platform: String,
    /// One of `x86_64 aarch64 x86 armv7 universal wasm32 other`; detected at compile time.
    pub arch: String,
    pub os_version: Option<String>,
    /// Defaults to `<platform cache dir>/rollwatch/<app>`.
    pub queue_dir: Option<PathBuf>,
    /// Send `X-Device-ID`, a random install id kept in the queue folder.
    pub device_id: bool,
    /// Strings (case-insensitive) replaced by `<redacted>` in reasons and details.
    pub deny_list: Vec<String>,
    pub max_queue_files: usize,
    pub max_queue_bytes: u64,
    /// The server's cap on `details.data` (after base64).
    pub max_details_bytes: usize,
    pub max_body_bytes: u64,
    /// `false`: only queue (another process or the next start sends).
    pub send: bool,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub request_timeout: Duration,
    /// How often the queue is looked at for reports other processes left.
    pub poll_interval: Duration,
    /// How long the panic hook waits for the crash to be sent (it is on disk before).
    pub crash_flush_timeout: Duration,
}

impl Config {
    pub fn new(
        endpoint: impl Into<String>,
        key: impl Into<String>,
        app: impl Into<String>,
        version: impl Into<String>,
        channel: impl Into<String>,
    ) -> Config {
        Config {
            endpoint: endpoint.into(),
            root_certificates: Vec::new(),
            key: key.into(),
            app: app.into(),
            version: version.into(),
            channel: channel.into(),
            platform: detect_platform().to_owned(),
            arch: detect_arch().to_owned(),
            os_version: None,
            queue_dir: None,
            device_id: true,
            deny_list: Vec::new(),
            max_queue_files: 1000,
            max_queue_bytes: 10 * 1024 * 1024,
            max_details_bytes: 131_072,
            max_body_bytes: 240_000,
            send: true,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            request_timeout: Duration::from_secs(10),
            poll_interval: Duration::from_secs(60),
            crash_flush_timeout: Duration::from_secs(1),
        }
    }
}

/// `<platform cache dir>/rollwatch/<app>`, as the Python client's `default_queue_dir`.
pub fn default_queue_dir(app: &str) -> PathBuf {
    let safe: String = app
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let safe = safe.trim_matches('.');
    let safe = if safe.is_empty() { "app" } else { safe };
    let home = || {
        std::env::var_os("HOME")
            .or_else(|| std::env::var_os("USERPROFILE"))
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir)
    };
    let base = if cfg!(windows) {
        std::env::var_os("LOCALAPPDATA")
            .map(PathBuf::from)
            .unwrap_or_else(|| home().join("AppData").join("Local"))
    } else if cfg!(target_os = "macos") {
        home().join("Library").join("Caches")
    } else {
        std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .unwrap_or_else(|| home().join(".cache"))
    };
    base.join("rollwatch").join(safe)
}

fn text(value: &str, limit: usize) -> String {
    let cleaned: String = value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    cleaned.trim().chars().take(limit).collect()
}

fn retryable(status: u16) -> bool {
    matches!(status, 408 | 425 | 429)
        || status >= 500
        || !(200..300).contains(&status) && status < 400
}

/// Why a batch is kept for later: after `Some(seconds)` (Retry-After) or the backoff.
struct Retry(Option<f64>);

#[derive(Default)]
struct State {
    attempt: u32,
    next_attempt: Option<Instant>,
    wake: bool,
    stop: bool,
}

struct Inner {
    config: Config,
    endpoint: Option<http::Endpoint>,
    application: Value,
    system: Value,
    scrubber: Scrubber,
    queue: Option<Queue>,
    device_id: Option<String>,
    state: Mutex<State>,
    signal: Condvar,
}

/// Records reports durably and sends them in the background. Dropping it flushes for at
/// most one second; what is unsent stays on disk for the next start.
pub struct Client {
    inner: Arc<Inner>,
    sender: Option<JoinHandle<()>>,
}

impl Client {
    pub fn new(config: Config) -> Client {
        let endpoint = http::Endpoint::parse(&config.endpoint, &config.root_certificates);
        if endpoint.is_none() {
            log::error!(
                "rollwatch: {}: {:?}; reports stay queued",
                http::SUPPORTED,
                config.endpoint
            );
        }
        let mut system = json!({
            "platform": normalise_platform(&config.platform),
            "arch": normalise_arch(&config.arch),
        });
        if let Some(os) = config.os_version.as_deref().map(|v| text(v, 64))
            && !os.is_empty()
        {
            system["os_version"] = Value::String(os);
        }
        let folder = config
            .queue_dir
            .clone()
            .unwrap_or_else(|| default_queue_dir(&config.app));
        let queue = open_queue(&folder, config.max_queue_files, config.max_queue_bytes);
        let device_id = match (&queue, config.device_id) {
            (Some(q), true) => Some(load_device_id(&q.folder)),
            _ => None,
        };
        let inner = Arc::new(Inner {
            application: json!({
                "name": text(&config.app, 64),
                "version": text(&config.version, 64),
                "channel": text(&config.channel, 32),
            }),
            system,
            scrubber: Scrubber::new(&config.deny_list),
            endpoint,
            queue,
            device_id,
            state: Mutex::new(State::default()),
            signal: Condvar::new(),
            config,
        });
        let sender = (inner.config.send && inner.queue.is_some())
            .then(|| {
                let worker = Arc::clone(&inner);
                std::thread::Builder::new()
                    .name("rollwatch-sender".into())
                    .spawn(move || worker.run())
                    .map_err(|e| log::error!("rollwatch: cannot start the sender: {e}"))
                    .ok()
            })
            .flatten();
        Client { inner, sender }
    }

    pub fn crash(&self, reason: &str, details: Option<&str>) {
        self.inner.report("crash", reason, details);
    }

    pub fn update_failed(&self, reason: &str, details: Option<&str>) {
        self.inner.report("update_failed", reason, details);
    }

    pub fn install_failed(&self, reason: &str, details: Option<&str>) {
        self.inner.report("install_failed", reason, details);
    }

    pub fn update_succeeded(&self) {
        self.inner.usage("update_succeeded");
    }

    pub fn install_succeeded(&self) {
        self.inner.usage("install_succeeded");
    }

    pub fn session_started(&self) {
        self.inner.usage("session");
    }

    /// The random install id sent as `X-Device-ID`, when enabled.
    pub fn device_id(&self) -> Option<&str> {
        self.inner.device_id.as_deref()
    }

    pub fn queue_dir(&self) -> Option<&Path> {
        self.inner.queue.as_ref().map(|q| q.folder.as_path())
    }

    /// How many reports and counts wait in the queue (this app's folder, all processes).
    pub fn pending(&self) -> usize {
        self.inner.queue.as_ref().map_or(0, Queue::count)
    }

    /// Waits up to `timeout` for the queue to empty; `true` when it did. Returns early
    /// (`false`) when the next attempt is due only after the deadline (server down,
    /// `Retry-After`).
    pub fn flush(&self, timeout: Duration) -> bool {
        let alive = self.sender.as_ref().is_some_and(|s| !s.is_finished());
        self.inner.flush(timeout, alive)
    }

    /// Records panics as crashes: reason = the panic message (first line), details = the
    /// message, location and backtrace. The report is on disk before the previous hook runs;
    /// the hook then waits up to `crash_flush_timeout` for it to be sent — otherwise the
    /// next start sends it.
    pub fn install_panic_hook(&self) {
        let inner = Arc::clone(&self.inner);
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "Box<dyn Any>".to_owned());
            let location = info
                .location()
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
                .unwrap_or_default();
            let thread = std::thread::current();
            let details = format!(
                "thread '{}' panicked at {location}:\n{message}\n\nstack backtrace:\n{}",
                thread.name().unwrap_or("<unnamed>"),
                std::backtrace::Backtrace::force_capture()
            );
            let reason = message.lines().next().unwrap_or("panic");
            inner.report("crash", reason, Some(&details));
            inner.flush(inner.config.crash_flush_timeout, true);
            previous(info);
        }));
    }

    /// Flushes for at most `timeout`, then stops the sender. Unsent reports stay on disk.
    pub fn close(mut self, timeout: Duration) -> bool {
        self.shutdown(timeout)
    }

    fn shutdown(&mut self, timeout: Duration) -> bool {
        let start = Instant::now();
        let done = self.flush(timeout);
        self.inner.lock().stop = true;
        self.inner.signal.notify_all();
        if let Some(sender) = self.sender.take() {
            // Bounded: a request in flight is left to finish on its own.
            while !sender.is_finished() && start.elapsed() < timeout {
                std::thread::sleep(Duration::from_millis(10));
            }
            if sender.is_finished() {
                let _ = sender.join();
            }
        }
        done
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if self.sender.is_some() {
            self.shutdown(Duration::from_secs(1));
        }
    }
}

fn open_queue(folder: &Path, max_files: usize, max_bytes: u64) -> Option<Queue> {
    let name = folder.file_name().unwrap_or_default();
    let fallback = std::env::temp_dir().join("rollwatch").join(name);
    for candidate in [folder.to_path_buf(), fallback] {
        match Queue::open(&candidate, max_files, max_bytes) {
            Ok(q) => return Some(q),
            Err(e) => log::warn!(
                "rollwatch: cannot use the queue folder {}: {e}",
                candidate.display()
            ),
        }
    }
    log::error!("rollwatch: no queue folder; reports are dropped");
    None
}

/// A random install id kept in the queue folder; never a hardware or account id.
fn load_device_id(folder: &Path) -> String {
    let path = folder.join("device_id");
    for _ in 0..2 {
        if let Ok(value) = std::fs::read_to_string(&path) {
            let value = value.trim();
            if !value.is_empty()
                && value.len() <= 128
                && value.bytes().all(|b| (33..=126).contains(&b))
            {
                return value.to_owned();
            }
            if !value.is_empty() {
                let _ = std::fs::remove_file(&path);
            }
        }
        let value = queue::random_hex(16);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                let _ = f.write_all(value.as_bytes());
                return value;
            }
            // Another process is writing it: read theirs.
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    queue::random_hex(16)
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn wake(&self) {
        self.lock().wake = true;
        self.signal.notify_all();
    }

    fn report(&self, event_type: &str, reason: &str, details: Option<&str>) {
        let Some(queue) = &self.queue else { return };
        let mut reason = text(&self.scrubber.scrub(reason), MAX_REASON_CHARS);
        if reason.is_empty() {
            reason = "unknown".to_owned();
        }
        let mut report = json!({
            "application": self.application,
            "system": self.system,
            "event": {"type": event_type, "reason": reason},
        });
        if let Some(packed) = details.and_then(|d| self.pack_details(d)) {
            report["details"] = packed;
        }
        match queue.put(false, &report) {
            Ok(()) => self.wake(),
            Err(e) => log::error!("rollwatch: could not record a {event_type} report: {e}"),
        }
    }

    fn usage(&self, kind: &str) {
        let Some(queue) = &self.queue else { return };
        let count = json!({
            "application": self.application,
            "system": self.system,
            "kind": kind,
            "count": 1,
        });
        match queue.put(true, &count) {
            Ok(()) => self.wake(),
            Err(e) => log::error!("rollwatch: could not record a {kind} count: {e}"),
        }
    }

    /// Scrubbed, gzip-compressed, base64; truncated to fit the cap, or left out.
    fn pack_details(&self, details: &str) -> Option<Value> {
        let mut raw = truncate(details, MAX_DETAILS_DECOMPRESSED).to_owned();
        raw = self.scrubber.scrub(&raw);
        if raw.len() > MAX_DETAILS_DECOMPRESSED {
            raw = format!(
                "{}{TRUNCATED}",
                truncate(&raw, MAX_DETAILS_DECOMPRESSED - 64)
            );
        }
        let cap = self.config.max_details_bytes;
        for _ in 0..8 {
            let data = base64::engine::general_purpose::STANDARD.encode(gzip(raw.as_bytes())?);
            if data.len() <= cap {
                return Some(json!({"encoding": "gzip", "data": data}));
            }
            let keep = (raw.len() as f64 * cap as f64 / data.len() as f64 * 0.9) as usize;
            if keep <= 64 {
                break;
            }
            raw = format!("{}{TRUNCATED}", truncate(&raw, keep - 64));
        }
        log::warn!("rollwatch: details over {cap} bytes compressed; sent without them");
        None
    }

    fn flush(&self, timeout: Duration, sender_alive: bool) -> bool {
        let Some(queue) = &self.queue else {
            return true;
        };
        let deadline = Instant::now() + timeout;
        self.wake();
        loop {
            if queue.is_empty() {
                return true;
            }
            if !sender_alive {
                return false;
            }
            let now = Instant::now();
            let later = self.lock().next_attempt.is_some_and(|at| at > deadline);
            if now >= deadline || later {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20).min(deadline - now));
        }
    }

    // --- the sender thread ----------------------------------------------------------

    fn run(&self) {
        loop {
            let state = self.lock();
            if state.stop {
                return;
            }
            if let Some(at) = state.next_attempt {
                let now = Instant::now();
                if at > now {
                    self.sleep(state, (at - now).min(self.config.poll_interval));
                    continue;
                }
            }
            drop(state);
            let delay = self.cycle();
            let mut state = self.lock();
            match delay {
                None => {
                    state.attempt = 0;
                    state.next_attempt = None;
                    self.sleep(state, self.config.poll_interval);
                }
                Some(delay) => state.next_attempt = Some(Instant::now() + delay),
            }
        }
    }

    /// Waits up to `wait`, or until woken (a new report, a flush) or stopped.
    fn sleep(&self, state: MutexGuard<'_, State>, wait: Duration) {
        let (mut state, _) = self
            .signal
            .wait_timeout_while(state, wait, |s| !s.wake && !s.stop)
            .unwrap_or_else(|p| p.into_inner());
        state.wake = false;
    }

    fn backoff(&self) -> Duration {
        let mut state = self.lock();
        let factor = 2f64.powi(state.attempt.min(30) as i32);
        state.attempt = state.attempt.saturating_add(1);
        let delay = (self.config.backoff_initial.as_secs_f64() * factor)
            .min(self.config.backoff_max.as_secs_f64());
        // Full jitter over the upper half: processes that failed together spread out.
        Duration::from_secs_f64(delay * (0.5 + 0.5 * unit_random()))
    }

    /// Sends everything queued; `None` when done, else how long to wait.
    fn cycle(&self) -> Option<Duration> {
        let queue = self.queue.as_ref()?;
        if !queue.try_lock() {
            // Another process of the app is sending.
            return Some(self.config.poll_interval.min(Duration::from_millis(500)));
        }
        queue.recover();
        let result = (|| {
            for _ in 0..1000 {
                queue.form_batches(MAX_REPORTS_PER_BATCH, self.config.max_body_bytes);
                let batches = queue.batches();
                if batches.is_empty() {
                    return None;
                }
                for mut batch in batches {
                    if self.lock().stop {
                        return None;
                    }
                    let sent = if batch.kind == "usage" {
                        self.send_usage(&batch)
                    } else {
                        self.send_reports(&mut batch)
                    };
                    if let Err(Retry(after)) = sent {
                        return Some(match after {
                            Some(s) => {
                                Duration::from_secs_f64(s + unit_random() * (0.1 * s).min(1.0))
                            }
                            None => self.backoff(),
                        });
                    }
                }
                self.lock().attempt = 0;
            }
            None
        })();
        queue.unlock();
        result
    }

    fn post(&self, path: &str, body: &Value, key: &str) -> Result<http::Answer, Retry> {
        let auth = format!("Bearer {}", self.config.key);
        let mut headers = vec![
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
            ("Idempotency-Key", key),
            (
                "User-Agent",
                concat!("rollwatch-rust/", env!("CARGO_PKG_VERSION")),
            ),
        ];
        if let Some(id) = &self.device_id {
            headers.push(("X-Device-ID", id));
        }
        http::post(
            self.endpoint.as_ref(),
            path,
            &headers,
            body.to_string().as_bytes(),
            self.config.request_timeout,
        )
        .map_err(|e| {
            // Refused, reset, timed out: the answer may be lost, so the key is kept.
            log::info!(
                "rollwatch: {} unreachable ({e}); will retry",
                self.config.endpoint
            );
            Retry(None)
        })
    }

    fn send_reports(&self, batch: &mut Batch) -> Result<(), Retry> {
        let members = batch.members();
        if members.is_empty() {
            batch.delete();
            return Ok(());
        }
        let sent: Vec<String> = members.iter().map(|(n, _)| n.clone()).collect();
        let reports: Vec<&Value> = members.iter().map(|(_, p)| p).collect();
        let answer = self.post(
            "/reports/ingest/batch",
            &json!({"reports": reports}),
            &batch.key,
        )?;
        if !(200..300).contains(&answer.status) {
            return self.whole_request_failed(batch, &answer, sent.len());
        }
        let results: Vec<Value> = serde_json::from_slice::<Value>(&answer.body)
            .ok()
            .and_then(|v| v.get("results")?.as_array().cloned())
            .unwrap_or_default();
        let names = if results.len() == sent.len() {
            sent.clone()
        } else if results.len() == batch.files.len() {
            batch.files.clone() // the first answer, repeated for a retried key
        } else {
            log::warn!("rollwatch: batch answer without per-report results; counted as sent");
            Vec::new()
        };
        let mut keep = Vec::new();
        for (name, result) in names.iter().zip(&results) {
            let status = result["status"].as_u64().unwrap_or(202) as u16;
            if (200..300).contains(&status) {
                continue;
            }
            if retryable(status) {
                if sent.contains(name) {
                    keep.push(name.clone());
                }
            } else {
                log::warn!(
                    "rollwatch: a report was refused ({status}): {}",
                    describe(result)
                );
            }
        }
        if keep.is_empty() {
            batch.delete();
            return Ok(());
        }
        // A new key: the rest is a new request.
        if let Err(e) = batch.keep_only(&keep) {
            log::warn!("rollwatch: cannot rewrite a batch: {e}");
        }
        Err(Retry(answer.retry_after))
    }

    fn send_usage(&self, batch: &Batch) -> Result<(), Retry> {
        let members = batch.members();
        let Some((_, first)) = members.first() else {
            batch.delete();
            return Ok(());
        };
        let total: u64 = members
            .iter()
            .map(|(_, p)| p["count"].as_u64().unwrap_or(1).max(1))
            .sum();
        let body = json!({
            "application": first["application"],
            "system": first["system"],
            "kind": first["kind"],
            "count": total.min(1_000_000),
        });
        let answer = self.post("/reports/usage", &body, &batch.key)?;
        if (200..300).contains(&answer.status) {
            batch.delete();
            return Ok(());
        }
        self.whole_request_failed(batch, &answer, members.len())
    }

    fn whole_request_failed(
        &self,
        batch: &Batch,
        answer: &http::Answer,
        n: usize,
    ) -> Result<(), Retry> {
        if retryable(answer.status) {
            log::info!("rollwatch: server answered {}; will retry", answer.status);
            return Err(Retry(answer.retry_after));
        }
        let detail = serde_json::from_slice::<Value>(&answer.body)
            .map(|v| describe(&v))
            .unwrap_or_else(|_| {
                String::from_utf8_lossy(&answer.body)
                    .chars()
                    .take(200)
                    .collect()
            });
        log::warn!(
            "rollwatch: server refused {n} report(s) with {}, dropped: {detail}",
            answer.status
        );
        batch.delete();
        Ok(())
    }
}

fn describe(answer: &Value) -> String {
    match answer.get("error") {
        Some(err) => format!(
            "{}: {}{}",
            err["code"].as_str().unwrap_or_default(),
            err["message"].as_str().unwrap_or_default(),
            err["field"]
                .as_str()
                .map(|f| format!(" ({f})"))
                .unwrap_or_default()
        ),
        None => answer.to_string().chars().take(200).collect(),
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn gzip(data: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    encoder.write_all(data).ok()?;
    encoder.finish().ok()
}

/// A uniform number in [0, 1) for jitter.
fn unit_random() -> f64 {
    let mut buf = [0u8; 8];
    let _ = getrandom::fill(&mut buf);
    (u64::from_le_bytes(buf) >> 11) as f64 / (1u64 << 53) as f64
}
