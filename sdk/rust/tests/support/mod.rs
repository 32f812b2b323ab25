//! The real `rollwatch serve` on a free port with a temp data dir (as sdk/python/tests/support.py),
//! a one-connection-at-a-time TCP responder for the 429 case the server cannot produce
//! on demand, and a TLS-terminating relay in front of it (the server speaks plain HTTP
//! behind a load balancer).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database, DatabaseBackend, Statement};

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "correct-horse-battery-staple";

/// `ROLLWATCH_BIN`, or the `rollwatch` binary next to this test's target dir (cargo builds
/// it for the backend's tests under `cargo test --workspace`).
pub fn rollwatch_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("ROLLWATCH_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join(format!("rollwatch{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p rollwatch` or set ROLLWATCH_BIN",
        bin.display()
    );
    bin
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

pub struct Server {
    pub data_dir: tempfile::TempDir,
    pub url: String,
    port: u16,
    child: Option<Child>,
}

impl Server {
    pub fn start() -> Server {
        let mut server = Server {
            data_dir: tempfile::tempdir().expect("temp dir"),
            port: free_port(),
            url: String::new(),
            child: None,
        };
        server.url = format!("http://127.0.0.1:{}", server.port);
        server.restart();
        server
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(rollwatch_bin());
        for name in [
            "DATABASE_URL",
            "STORAGE_DRIVER",
            "REDIS_URL",
            "METRICS_ADDR",
            "JWT_SECRET",
        ] {
            cmd.env_remove(name);
        }
        cmd.env("ROLLWATCH_DATA_DIR", self.data_dir.path())
            .env("BIND_ADDR", format!("127.0.0.1:{}", self.port))
            .env("ROLLWATCH_ADMIN_EMAIL", ADMIN_EMAIL)
            .env("ROLLWATCH_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("REPORTS_RATE_LIMIT_PER_KEY_PER_MINUTE", "100000")
            .env("REPORTS_RATE_LIMIT_PER_DEVICE_PER_MINUTE", "100000")
            .env("RUST_LOG", "warn");
        cmd
    }

    /// Starts (again) on the same data dir and port, and waits until it answers.
    pub fn restart(&mut self) {
        let child = self
            .command()
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("rollwatch serve starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !healthy(self.port) {
            assert!(Instant::now() < deadline, "rollwatch serve did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A new app with reports enabled; its report key.
    pub fn create_app(&self, name: &str) -> String {
        let out = self
            .command()
            .args(["apps", "create", name])
            .output()
            .expect("rollwatch apps create runs");
        let key = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(key.starts_with("rpk_"), "{key}");
        key
    }

    fn query(&self, sql: &str, app: &str) -> Vec<(String, String, i64)> {
        let url = format!(
            "sqlite://{}?mode=ro",
            self.data_dir.path().join("rollwatch.db").display()
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let db = Database::connect(url).await.expect("database opens");
            let rows = db
                .query_all_raw(Statement::from_sql_and_values(
                    DatabaseBackend::Sqlite,
                    sql,
                    [app.into()],
                ))
                .await
                .expect("query runs");
            let out = rows
                .iter()
                .map(|r| {
                    (
                        r.try_get("", "a").expect("a"),
                        r.try_get("", "b").expect("b"),
                        r.try_get("", "n").expect("n"),
                    )
                })
                .collect();
            db.close().await.expect("close");
            out
        })
    }

    /// `(event_type, reason) -> count` of an app.
    pub fn groups(&self, app: &str) -> Vec<(String, String, i64)> {
        let mut rows = self.query(
            "SELECT g.event_type AS a, g.reason AS b, CAST(g.count AS INTEGER) AS n FROM report_groups g \
             JOIN apps ap ON ap.id = g.app_id WHERE ap.name = ? ORDER BY a, b",
            app,
        );
        rows.sort();
        rows
    }

    /// `kind -> summed count` of an app.
    pub fn usage(&self, app: &str) -> Vec<(String, String, i64)> {
        self.query(
            "SELECT u.kind AS a, '' AS b, CAST(SUM(u.count) AS INTEGER) AS n FROM usage_counts u \
             JOIN apps ap ON ap.id = u.app_id WHERE ap.name = ? GROUP BY u.kind ORDER BY u.kind",
            app,
        )
    }

    /// The gunzipped text of every details blob on disk.
    pub fn blobs(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![self.data_dir.path().join("blobs")];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "gz") {
                    let data = std::fs::read(&path).expect("blob reads");
                    let mut text = String::new();
                    flate2::read::GzDecoder::new(&data[..])
                        .read_to_string(&mut text)
                        .expect("blob is gzip text");
                    out.push(text);
                }
            }
        }
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn healthy(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

/// What the responder saw of one request.
pub struct Seen {
    pub head: String,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// Answers the first request itself with `first`, and relays every later one to `upstream`.
pub struct Responder {
    pub url: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Responder {
    pub fn start(upstream: &str, first: String) -> Responder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut client) = stream else { continue };
                let Some((head, request)) = read_request(&mut client) else {
                    continue;
                };
                let n = {
                    let mut log = log.lock().expect("log");
                    log.push(Seen { head });
                    log.len()
                };
                if n == 1 {
                    let _ = client.write_all(first.as_bytes());
                    continue;
                }
                let _ = client.write_all(&relay(&upstream, &request));
            }
        });
        Responder { url, seen }
    }

    pub fn requests(&self) -> usize {
        self.seen.lock().expect("log").len()
    }
}

/// `request` sent to `upstream` (host:port); its whole answer, or nothing.
fn relay(upstream: &str, request: &[u8]) -> Vec<u8> {
    let mut answer = Vec::new();
    if let Ok(mut server) = TcpStream::connect(upstream) {
        let _ = server.write_all(request);
        let _ = server.read_to_end(&mut answer);
    }
    answer
}

/// `https://127.0.0.1:port` in front of `upstream`, with the certificate of `tls/server.pem`
/// (for `localhost` and `127.0.0.1`, issued by the test CA `tls/ca.pem`).
pub struct TlsRelay {
    pub url: String,
    /// Connections whose handshake completed.
    pub handshakes: Arc<Mutex<usize>>,
}

pub const TEST_CA: &[u8] = include_bytes!("tls/ca.pem");

impl TlsRelay {
    pub fn start(upstream: &str) -> TlsRelay {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = CertificateDer::pem_slice_iter(include_bytes!("tls/server.pem"))
            .collect::<Result<Vec<_>, _>>()
            .expect("test certificate");
        let key =
            PrivateKeyDer::from_pem_slice(include_bytes!("tls/server.key")).expect("test key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("https://{}", listener.local_addr().expect("addr"));
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let handshakes = Arc::new(Mutex::new(0));
        let count = Arc::clone(&handshakes);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(tcp) = stream else { continue };
                let Ok(connection) = rustls::ServerConnection::new(Arc::clone(&config)) else {
                    continue;
                };
                let mut tls = rustls::StreamOwned::new(connection, tcp);
                // A client that refuses the certificate ends here, before any request.
                let Some((_, request)) = read_request(&mut tls) else {
                    continue;
                };
                *count.lock().expect("count") += 1;
                let _ = tls.write_all(&relay(&upstream, &request));
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        });
        TlsRelay { url, handshakes }
    }
}

/// One whole request (head and Content-Length body): the head as text and the raw bytes.
fn read_request(stream: &mut impl Read) -> Option<(String, Vec<u8>)> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(&buf[..n]);
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    n.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            while raw.len() < end + 4 + length {
                let n = stream.read(&mut buf).ok()?;
                if n == 0 {
                    return None;
                }
                raw.extend_from_slice(&buf[..n]);
            }
            return Some((head, raw));
        }
    }
}
