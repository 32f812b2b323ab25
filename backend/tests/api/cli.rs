//! The `rollwatch` binary as an operator uses it: first start, operator commands, bad
//! configuration, and SIGTERM in the middle of a burst.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::common;
use crate::common::{expected_hash, report};

const BIN: &str = env!("CARGO_BIN_EXE_rollwatch");

fn rollwatch(data_dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ROLLWATCH_DATA_DIR", data_dir)
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "warn");
    command
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A running `rollwatch serve`, killed when dropped so a failed test leaves no server behind.
struct Serving {
    child: Child,
    base: String,
    /// What it printed up to its address.
    printed: Vec<String>,
}

impl Serving {
    fn start(data_dir: &Path, vars: &[(&str, &str)]) -> Serving {
        Self::start_logging(data_dir, vars, Stdio::null())
    }

    /// Starts it with its log (stderr) going to `stderr`.
    fn start_logging(data_dir: &Path, vars: &[(&str, &str)], stderr: Stdio) -> Serving {
        let child = rollwatch(data_dir)
            .arg("serve")
            .envs(vars.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut serving = Serving {
            child,
            base: String::new(),
            printed: Vec::new(),
        };
        let mut lines = BufReader::new(serving.child.stdout.take().unwrap()).lines();
        while serving.base.is_empty() {
            let line = lines.next().expect("serve printed its address").unwrap();
            if let Some(addr) = line.strip_prefix("Rollwatch listening on ") {
                serving.base = addr.to_owned();
            }
            serving.printed.push(line);
        }
        serving
    }

    /// Sends SIGTERM and waits: true when the server exited cleanly.
    fn terminate(&mut self) -> bool {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        self.child.wait().unwrap().success()
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_fresh_install_is_usable_from_a_shell() {
    let dir = tempfile::tempdir().unwrap();

    // First start: an admin with a generated password, printed once.
    let mut server = Serving::start(dir.path(), &[]);
    let base = server.base.clone();
    let printed = server.printed.join("\n");
    assert!(printed.contains("admin@localhost"), "{printed}");
    let password_line = printed
        .lines()
        .find(|l| l.contains("password:"))
        .expect(&printed);
    let password = password_line.split_whitespace().nth(1).unwrap();
    assert!(password.len() >= 20, "{password_line}");

    // Operator commands work on the same database while the server runs.
    let created = rollwatch(dir.path())
        .args(["apps", "create", "editor"])
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let key = stdout(&created);
    let key = key.strip_suffix('\n').unwrap();
    assert!(
        rollwatch::secrets::has_secret_format(key, "rpk_"),
        "stdout is the key alone: {key:?}"
    );
    let duplicate = rollwatch(dir.path())
        .args(["apps", "create", "editor"])
        .output()
        .unwrap();
    assert!(!duplicate.status.success());

    let client = reqwest::Client::new();
    let body = report("1.0.0", "stable", "linux", "SIGSEGV");
    let ingest = format!("{base}/reports/ingest");
    let send = |key: &str| client.post(&ingest).bearer_auth(key).json(&body).send();
    let send = |key| async move { send(key).await.unwrap() };
    let response = send(key).await;
    assert_eq!(response.status(), 202);

    // Rotation: a new key works, the old one is refused within seconds.
    let rotated = rollwatch(dir.path())
        .args(["keys", "rotate", "editor"])
        .output()
        .unwrap();
    assert!(rotated.status.success(), "{rotated:?}");
    let new_key = stdout(&rotated).trim().to_owned();
    assert_ne!(new_key, key);
    let response = send(&new_key).await;
    assert_eq!(response.status(), 202);
    let mut refused = false;
    for _ in 0..40 {
        let response = send(key).await;
        if response.status() == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(refused, "the rotated-out key still works");

    assert!(server.terminate(), "SIGTERM is a clean shutdown");

    // A second account, and a second start that prints no password.
    let account = rollwatch(dir.path())
        .args([
            "accounts",
            "create",
            "acme",
            "--admin-email",
            "ops@acme.test",
        ])
        .output()
        .unwrap();
    assert!(account.status.success(), "{account:?}");
    assert!(stdout(&account).contains("ops@acme.test"));
    assert!(stdout(&account).contains("password:"));
    let ambiguous = rollwatch(dir.path())
        .args(["apps", "create", "cli"])
        .output()
        .unwrap();
    assert!(
        !ambiguous.status.success(),
        "two accounts: --account is required"
    );
    let in_acme = rollwatch(dir.path())
        .args(["apps", "create", "editor", "--account", "acme"])
        .output()
        .unwrap();
    assert!(
        in_acme.status.success(),
        "same app name in another account: {in_acme:?}"
    );

    let mut server = Serving::start(dir.path(), &[]);
    assert!(
        !server.printed.join("\n").contains("password"),
        "{:?}",
        server.printed
    );
    assert!(server.terminate());
}

#[test]
fn a_bad_value_stops_start_up_with_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value) in [
        ("REPORTS_MAX_BODY_BYTES", "lots"),
        ("STORAGE_DRIVER", "floppy"),
        ("BIND_ADDR", "nowhere"),
        ("LOG_FORMAT", "xml"),
    ] {
        let output = rollwatch(dir.path())
            .arg("serve")
            .env(var, value)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{var}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(var), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_in_the_middle_of_a_burst_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let vars = [
        ("ROLLWATCH_ADMIN_EMAIL", common::ADMIN_EMAIL),
        ("ROLLWATCH_ADMIN_PASSWORD", common::ADMIN_PASSWORD),
        ("REPORTS_RATE_LIMIT_PER_KEY_PER_MINUTE", "1000000"),
    ];
    let mut server = Serving::start(dir.path(), &vars);
    let base = server.base.clone();
    let created = rollwatch(dir.path())
        .args(["apps", "create", "editor"])
        .output()
        .unwrap();
    let key = stdout(&created).trim().to_owned();

    let acknowledged = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
    let client = reqwest::Client::new();
    let body = report("9.9.9", "stable", "windows", "BURST");
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let (client, key, body, acknowledged) = (
            client.clone(),
            key.clone(),
            body.clone(),
            acknowledged.clone(),
        );
        let url = format!("{base}/reports/ingest");
        senders.spawn(async move {
            for _ in 0..200 {
                match client.post(&url).bearer_auth(&key).json(&body).send().await {
                    Ok(response) if response.status() == 202 => {
                        acknowledged.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    Ok(response) => assert_eq!(response.status(), 503, "only 202 or 503"),
                    Err(_) => return, // the server has stopped listening
                }
            }
        });
    }
    while acknowledged.load(std::sync::atomic::Ordering::SeqCst) < 300 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let clean_exit = server.terminate();
    while senders.join_next().await.is_some() {}
    assert!(clean_exit);

    let acknowledged = acknowledged.load(std::sync::atomic::Ordering::SeqCst);
    let url = format!("sqlite://{}/rollwatch.db?mode=rwc", dir.path().display());
    let db = rollwatch::db::connect(&url).await.unwrap();
    let hash = expected_hash([
        "editor", "9.9.9", "stable", "windows", "x86_64", "crash", "BURST",
    ]);
    use sea_orm::ConnectionTrait;
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            format!("SELECT count FROM report_groups WHERE group_hash = '{hash}'"),
        ))
        .await
        .unwrap()
        .unwrap();
    let stored: i64 = row.try_get("", "count").unwrap();
    assert!(
        stored >= acknowledged,
        "{stored} stored, {acknowledged} acknowledged: a 202 was lost"
    );
    // At most one request per sender can have been committed without its answer arriving.
    assert!(
        stored <= acknowledged + 32,
        "{stored} stored, {acknowledged} acknowledged"
    );
    assert!(acknowledged >= 300);
}

/// The secrets given to `rollwatch serve` never reach its output, even with debug logging on
/// while it signs a session with the JWT secret, checks the admin password and signs an S3
/// upload with the secret access key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_prints_none_of_its_secrets_even_at_debug_level() {
    const JWT_SECRET: &str = "jwt-Narwhal-5c1e0a97d3b4-never-printed";
    const ADMIN_EMAIL: &str = "ops@secrets.test";
    const ADMIN_PASSWORD: &str = "admin-Pangolin-8e2f41-never-printed";
    let s3 = common::s3::S3Server::start().await;
    let secrets = [JWT_SECRET, ADMIN_PASSWORD, common::s3::SECRET_KEY];
    let dir = tempfile::tempdir().unwrap();
    let mut vars = s3.env();
    vars.extend([
        ("JWT_SECRET", JWT_SECRET.to_owned()),
        ("ROLLWATCH_ADMIN_EMAIL", ADMIN_EMAIL.to_owned()),
        ("ROLLWATCH_ADMIN_PASSWORD", ADMIN_PASSWORD.to_owned()),
    ]);

    let child = rollwatch(dir.path())
        .arg("serve")
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Killed when dropped, should an assertion fail before it is stopped.
    let mut server = Serving {
        child,
        base: String::new(),
        printed: Vec::new(),
    };
    // Read both pipes to the end on their own threads, so a chatty log never blocks the server.
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let stdout_pipe = server.child.stdout.take().unwrap();
    let stdout_reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        for line in BufReader::new(stdout_pipe).lines() {
            let line = line.unwrap();
            let _ = lines_tx.send(line.clone());
            all.push(line);
        }
        all.join("\n")
    });
    let mut stderr_pipe = server.child.stderr.take().unwrap();
    let stderr_reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        std::io::Read::read_to_end(&mut stderr_pipe, &mut all).unwrap();
        String::from_utf8_lossy(&all).into_owned()
    });
    while server.base.is_empty() {
        let line = lines_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("serve printed its address");
        if let Some(addr) = line.strip_prefix("Rollwatch listening on ") {
            server.base = addr.to_owned();
        }
    }
    let base = server.base.clone();

    // The admin password signs in, and the session is signed with JWT_SECRET.
    let client = reqwest::Client::new();
    let answer: serde_json::Value = client
        .post(format!("{base}/graphql"))
        .json(&serde_json::json!({
            "query": "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }",
            "variables": { "e": ADMIN_EMAIL, "p": ADMIN_PASSWORD },
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let Some(token) = answer["data"]["login"]["token"].as_str() else {
        panic!("no session: {answer}");
    };
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_aud = false;
    jsonwebtoken::decode::<serde_json::Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(JWT_SECRET.as_bytes()),
        &validation,
    )
    .expect("the session is signed with JWT_SECRET");

    // A report with details: an upload signed with the S3 secret access key.
    let created = rollwatch(dir.path())
        .args(["apps", "create", "editor"])
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let key = stdout(&created).trim().to_owned();
    let body = common::with_details(
        report("1.0.0", "stable", "linux", "SIGSEGV"),
        b"{\"stack\": [\"main\"]}",
    );
    let answer: serde_json::Value = client
        .post(format!("{base}/reports/ingest"))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        answer["details_stored"],
        serde_json::json!(true),
        "{answer}"
    );

    // A beacon (crate::beacon) names the report key in its query, which no log line shows.
    let beacon = client
        .post(format!("{base}/reports/usage?key={key}&device_id=d1"))
        .header("Content-Type", "text/plain;charset=UTF-8")
        .body(crate::sdk_script::web_usage(1).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(beacon.status(), 202);

    let clean_exit = server.terminate();
    let printed = stdout_reader.join().unwrap();
    let logged = stderr_reader.join().unwrap();
    assert!(clean_exit, "{printed}\n{logged}");
    assert!(logged.contains("DEBUG"), "debug logging was on: {logged}");
    assert!(
        logged.contains("/reports/usage"),
        "requests are logged by path: {logged}"
    );
    let line = logged.lines().find(|line| line.contains(&key));
    assert!(line.is_none(), "stderr holds the report key: {line:?}");
    assert!(!printed.contains(&key), "stdout holds the report key");
    for secret in secrets {
        assert!(
            !printed.contains(secret),
            "stdout holds {secret}: {printed}"
        );
        let line = logged.lines().find(|line| line.contains(secret));
        assert!(line.is_none(), "stderr holds {secret}: {line:?}");
    }
}

/// POSTs a one-event Sentry envelope (an unhandled panic) to where `dsn` points, the key in
/// `X-Sentry-Auth` as the SDKs send it; the status.
async fn send_to_dsn(dsn: &str) -> u16 {
    let (scheme, rest) = dsn.split_once("://").unwrap();
    let (key, rest) = rest.split_once('@').unwrap();
    let (host, app_id) = rest.rsplit_once('/').unwrap();
    let event = serde_json::json!({
        "level": "fatal", "release": "shop@2.0.1", "environment": "beta",
        "exception": { "values": [{ "type": "panic", "mechanism": { "type": "panic", "handled": false } }] },
        "contexts": { "os": { "name": "Linux" }, "device": { "arch": "x86_64" } },
    });
    let body = format!("{{}}\n{{\"type\":\"event\"}}\n{event}\n");
    reqwest::Client::new()
        .post(format!("{scheme}://{host}/api/{app_id}/envelope/"))
        .header(
            "X-Sentry-Auth",
            format!("Sentry sentry_key={key}, sentry_version=7, sentry_client=sentry.rust/0.49.5"),
        )
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn the_operator_commands_print_a_sentry_dsn_an_sdk_can_use() {
    let dir = tempfile::tempdir().unwrap();
    let server = Serving::start(dir.path(), &[]);
    let base = server.base.clone();

    // BIND_ADDR is 127.0.0.1:0 here, no address an SDK could send to: refused, nothing made.
    let unreachable = rollwatch(dir.path())
        .args(["apps", "create", "shop", "--dsn"])
        .output()
        .unwrap();
    assert!(!unreachable.status.success());
    let stderr = String::from_utf8_lossy(&unreachable.stderr);
    assert!(stderr.contains("PUBLIC_URL"), "{stderr}");
    let bad = rollwatch(dir.path())
        .env("PUBLIC_URL", "ftp://rollwatch.example.com")
        .args(["apps", "create", "shop", "--dsn"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("invalid PUBLIC_URL"), "{stderr}");

    let created = rollwatch(dir.path())
        .args(["apps", "create", "shop", "--dsn", "--public-url", &base])
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let dsn = stdout(&created);
    let dsn = dsn.strip_suffix('\n').unwrap();
    let host = base.strip_prefix("http://").unwrap();
    let (key, app_id) = dsn
        .strip_prefix("http://")
        .and_then(|rest| rest.split_once(&format!("@{host}/")))
        .unwrap_or_else(|| panic!("stdout is the DSN alone: {dsn:?}"));
    assert!(rollwatch::secrets::has_secret_format(key, "rpk_"), "{dsn}");
    assert!(app_id.parse::<i64>().is_ok(), "{dsn}");
    assert_eq!(
        send_to_dsn(dsn).await,
        200,
        "the DSN printed is one an SDK can use"
    );

    // A rotated key's DSN, its base from PUBLIC_URL: same app, new key, the old one refused.
    let rotated = rollwatch(dir.path())
        .env("PUBLIC_URL", format!("{base}/"))
        .args(["keys", "rotate", "shop", "--dsn"])
        .output()
        .unwrap();
    assert!(rotated.status.success(), "{rotated:?}");
    let new_dsn = stdout(&rotated);
    let new_dsn = new_dsn.strip_suffix('\n').unwrap();
    assert_ne!(new_dsn, dsn);
    assert!(new_dsn.ends_with(&format!("@{host}/{app_id}")), "{new_dsn}");
    assert_eq!(send_to_dsn(new_dsn).await, 200);
    // Revocation is honoured within seconds (the key cache, DESIGN §9).
    let revoked_at = std::time::Instant::now();
    while send_to_dsn(dsn).await != 401 {
        assert!(
            revoked_at.elapsed() < Duration::from_secs(10),
            "the old key is still taken"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[test]
fn log_format_json_writes_one_json_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Serving::start_logging(
        dir.path(),
        &[("LOG_FORMAT", "json"), ("RUST_LOG", "info")],
        Stdio::piped(),
    );
    let mut stderr_pipe = server.child.stderr.take().unwrap();
    assert!(server.terminate());
    let mut logged = String::new();
    std::io::Read::read_to_string(&mut stderr_pipe, &mut logged).unwrap();
    let mut messages = Vec::new();
    for line in logged.lines() {
        let object: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(object["timestamp"].is_string(), "{line}");
        assert!(object["level"].is_string(), "{line}");
        messages.push(object["message"].as_str().unwrap_or_default().to_owned());
    }
    assert!(
        messages.iter().any(|m| m.starts_with("shutting down")),
        "{logged}"
    );
}

/// `rollwatch backup` while reports keep arriving: the copy opens, holds at least every
/// count acknowledged before it started and no more than were sent; a second backup to the
/// same file is refused and leaves the first intact; PostgreSQL is pointed to pg_dump.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backup_copies_the_live_database_consistently() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    let app = common::TestApp::spawn_with(
        common::Backend::Sqlite,
        &[("REPORTS_RATE_LIMIT_PER_KEY_PER_MINUTE", "10000000")],
    )
    .await;
    let acknowledged = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = tokio::task::JoinSet::new();
    for sender in 0..4 {
        let (client, url, key) = (
            app.client.clone(),
            app.url("/reports/ingest"),
            app.key.clone(),
        );
        let (acknowledged, sent, stop) = (acknowledged.clone(), sent.clone(), stop.clone());
        senders.spawn(async move {
            // Bounded: the test stops them long before this.
            for n in 0..20_000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let body = report("1.0.0", "stable", "linux", &format!("E_{sender}_{}", n % 7));
                sent.fetch_add(1, Ordering::SeqCst);
                let answer = client.post(&url).bearer_auth(&key).json(&body).send().await;
                if answer.is_ok_and(|answer| answer.status() == 202) {
                    acknowledged.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
    }
    for _ in 0..1500 {
        if acknowledged.load(Ordering::SeqCst) >= 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        acknowledged.load(Ordering::SeqCst) >= 200,
        "reports are being taken"
    );

    let copy = app.data_dir.path().join("backup.db");
    let backup = |path: std::path::PathBuf, url: String| {
        let data_dir = app.data_dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            rollwatch(&data_dir)
                .arg("backup")
                .arg(path)
                .env("DATABASE_URL", url)
                .output()
                .unwrap()
        })
    };
    let before = acknowledged.load(Ordering::SeqCst);
    let output = backup(copy.clone(), app.database.url.clone())
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let acknowledged_after = acknowledged.load(Ordering::SeqCst);
    assert!(
        acknowledged_after > before,
        "reports kept arriving during the backup"
    );
    stop.store(true, Ordering::SeqCst);
    while senders.join_next().await.is_some() {}

    let copied = rollwatch::db::connect(&format!("sqlite://{}?mode=rw", copy.display()))
        .await
        .unwrap();
    let count = |sql: &'static str| {
        let copied = copied.clone();
        async move {
            use sea_orm::ConnectionTrait;
            let row = copied
                .query_one_raw(sea_orm::Statement::from_string(
                    sea_orm::DatabaseBackend::Sqlite,
                    sql,
                ))
                .await
                .unwrap()
                .unwrap();
            row.try_get::<i64>("", "n").unwrap() as u64
        }
    };
    let in_copy =
        count("SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) AS n FROM report_groups").await;
    assert!(
        in_copy >= before && in_copy <= sent.load(Ordering::SeqCst),
        "copy {in_copy}, acknowledged before {before}, sent {}",
        sent.load(Ordering::SeqCst)
    );
    // The copy is consistent in itself: the hourly rows add up to the groups' counts.
    let hourly =
        count("SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) AS n FROM report_counts").await;
    assert_eq!(hourly, in_copy);
    copied.close().await.unwrap();

    let size = std::fs::metadata(&copy).unwrap().len();
    let again = backup(copy.clone(), app.database.url.clone())
        .await
        .unwrap();
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("already exists"), "{stderr}");
    assert_eq!(std::fs::metadata(&copy).unwrap().len(), size);

    let postgres = backup(
        app.data_dir.path().join("pg.db"),
        "postgres://postgres@127.0.0.1:5432/postgres".to_owned(),
    )
    .await
    .unwrap();
    assert!(!postgres.status.success());
    let stderr = String::from_utf8_lossy(&postgres.stderr);
    assert!(stderr.contains("pg_dump"), "{stderr}");
    app.stop().await;
}
