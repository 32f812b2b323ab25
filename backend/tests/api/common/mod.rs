//! Test harness: the real server on a random port, against a fresh SQLite file or a fresh
//! PostgreSQL database, in the manner of zero2prod's `spawn_app`.
#![allow(dead_code)]

pub mod redis;
pub mod s3;

use std::collections::HashMap;
use std::net::SocketAddr;

use rollwatch::auth::Actor;
use rollwatch::config::Config;
use rollwatch::db::Store;
use rollwatch::server::Server;
use rollwatch::{accounts, apps};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs an async test body once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::$name($crate::common::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                super::$name($crate::common::Backend::Postgres).await
            }
        }
    )*};
}

/// The PostgreSQL server the tests create their databases on.
pub fn postgres_server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn with_database(server_url: &str, database: &str) -> String {
    let (base, _) = server_url.rsplit_once('/').unwrap();
    format!("{base}/{database}")
}

/// A database of its own for one test: a new SQLite file, or a new PostgreSQL database that
/// is dropped when this is, so also when the test panics.
pub struct TestDatabase {
    pub url: String,
    /// The PostgreSQL database to drop.
    postgres_name: Option<String>,
}

impl TestDatabase {
    pub async fn create(backend: Backend, dir: &std::path::Path) -> TestDatabase {
        match backend {
            Backend::Sqlite => TestDatabase {
                url: format!("sqlite://{}/rollwatch.db?mode=rwc", dir.display()),
                postgres_name: None,
            },
            Backend::Postgres => {
                let name = format!("rollwatch_test_{}", hex::encode(rand::random::<[u8; 8]>()));
                let admin = sea_orm::Database::connect(postgres_server_url())
                    .await
                    .expect("the PostgreSQL server of TEST_DATABASE_URL is reachable");
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .unwrap();
                admin.close().await.unwrap();
                TestDatabase {
                    url: with_database(&postgres_server_url(), &name),
                    postgres_name: Some(name),
                }
            }
        }
    }

    /// The name of the PostgreSQL database, `None` on SQLite.
    pub fn postgres_name(&self) -> Option<&str> {
        self.postgres_name.as_deref()
    }
}

impl Drop for TestDatabase {
    /// Drops the PostgreSQL database, closing the connections still open to it. `drop` may run
    /// inside the test's runtime, even a single-threaded one, or while a panic unwinds, so the
    /// work is done on a thread of its own with its own runtime, and waited for here. Failures
    /// are ignored: a second panic while unwinding would abort the whole test binary.
    fn drop(&mut self) {
        let Some(name) = self.postgres_name.take() else {
            return;
        };
        let dropping = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok(admin) = sea_orm::Database::connect(postgres_server_url()).await {
                    let _ = admin
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                    let _ = admin.close().await;
                }
            });
        });
        let _ = dropping.join();
    }
}

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "a-long-test-password";

pub struct TestApp {
    pub backend: Backend,
    pub addr: SocketAddr,
    pub db: Store,
    pub database: TestDatabase,
    pub data_dir: TempDir,
    pub account_id: i64,
    pub app_id: i64,
    pub app_name: String,
    pub key: String,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, &[]).await
    }

    /// Starts the server with extra environment variables (as `rollwatch serve` reads them).
    pub async fn spawn_with(backend: Backend, vars: &[(&str, &str)]) -> TestApp {
        let data_dir = tempfile::tempdir().unwrap();
        let database = TestDatabase::create(backend, data_dir.path()).await;
        Self::spawn_on(backend, data_dir, database, None, vars).await
    }

    /// Starts the server against `database`, reaching it through `database_url` when given.
    pub async fn spawn_on(
        backend: Backend,
        data_dir: TempDir,
        database: TestDatabase,
        database_url: Option<String>,
        vars: &[(&str, &str)],
    ) -> TestApp {
        let url = database_url.unwrap_or_else(|| database.url.clone());
        let (addr, shutdown, task) = start_server(&data_dir, &url, vars).await;

        let db = rollwatch::db::connect(&database.url).await.unwrap();
        let account = accounts::find_account(&db, None).await.unwrap();
        let operator = Actor::Operator {
            account_id: account.id,
        };
        let (app, key) = apps::create(&db, &operator, "editor").await.unwrap();
        TestApp {
            backend,
            addr,
            db,
            database,
            data_dir,
            account_id: account.id,
            app_id: app.id,
            app_name: app.name,
            key: key.key,
            client: reqwest::Client::new(),
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    /// Another server on this one's database, with its own data dir: a replica.
    pub async fn replica(&self, vars: &[(&str, &str)]) -> Replica {
        let data_dir = tempfile::tempdir().unwrap();
        let (addr, shutdown, task) = start_server(&data_dir, &self.database.url, vars).await;
        Replica {
            addr,
            _data_dir: data_dir,
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    /// The operator's shell on the test app's account.
    pub fn operator(&self) -> Actor {
        Actor::Operator {
            account_id: self.account_id,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// POSTs JSON with a bearer key.
    pub async fn post(&self, path: &str, key: Option<&str>, body: &Value) -> reqwest::Response {
        let mut request = self.client.post(self.url(path)).json(body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.send().await.unwrap()
    }

    pub async fn report(&self, body: &Value) -> reqwest::Response {
        self.post("/reports/ingest", Some(&self.key), body).await
    }

    /// `count` of the group, 0 when it does not exist.
    pub async fn group_count(&self, hash: &str) -> i64 {
        self.scalar(&format!(
            "SELECT COALESCE(SUM(count), 0) FROM report_groups WHERE app_id = {} AND group_hash = '{hash}'",
            self.app_id
        ))
        .await
    }

    /// Sum of the hourly `report_counts` rows of the group.
    pub async fn hourly_total(&self, hash: &str) -> i64 {
        self.scalar(&format!(
            "SELECT COALESCE(SUM(count), 0) FROM report_counts WHERE app_id = {} AND group_hash = '{hash}'",
            self.app_id
        ))
        .await
    }

    /// One integer from a query (as i64 on both back ends).
    pub async fn scalar(&self, sql: &str) -> i64 {
        let sql = format!("SELECT CAST(({sql}) AS BIGINT) AS v");
        let row = self
            .db
            .query_one_raw(sea_orm::Statement::from_string(
                self.db.get_database_backend(),
                sql,
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get::<i64>("", "v").unwrap()
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        self.shutdown_server().await;
        let _ = self.db.clone().close().await;
        // Dropping `self` drops the test's database.
    }

    pub async fn shutdown_server(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

/// A second server on a `TestApp`'s database.
pub struct Replica {
    pub addr: SocketAddr,
    _data_dir: TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Replica {
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

/// `rollwatch serve` in this process with the test's environment over `database_url`.
pub async fn start_server(
    data_dir: &TempDir,
    database_url: &str,
    vars: &[(&str, &str)],
) -> (
    SocketAddr,
    oneshot::Sender<()>,
    JoinHandle<std::io::Result<()>>,
) {
    let mut env: HashMap<String, String> = [
        ("BIND_ADDR", "127.0.0.1:0".to_owned()),
        ("ROLLWATCH_DATA_DIR", data_dir.path().display().to_string()),
        ("DATABASE_URL", database_url.to_owned()),
        ("ROLLWATCH_ADMIN_EMAIL", ADMIN_EMAIL.to_owned()),
        ("ROLLWATCH_ADMIN_PASSWORD", ADMIN_PASSWORD.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (k, v) in vars {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    let config = Config::from_lookup(|k| env.get(k).cloned()).expect("valid test config");
    let server = Server::build(config).await.expect("server starts");
    let addr = server.local_addr().unwrap();
    let (shutdown, stop) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = stop.await;
    }));
    (addr, shutdown, task)
}

/// POSTs each body to `/reports/ingest` with the app's key, from `senders` concurrent tasks
/// each sending its share one after another; the statuses, in no particular order.
pub async fn send_concurrently(app: &TestApp, senders: usize, bodies: Vec<Value>) -> Vec<u16> {
    let queue = std::sync::Arc::new(std::sync::Mutex::new(bodies));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..senders {
        let (client, url, key, queue) = (
            app.client.clone(),
            app.url("/reports/ingest"),
            app.key.clone(),
            queue.clone(),
        );
        tasks.spawn(async move {
            let mut statuses = Vec::new();
            loop {
                // Taken in its own statement so the lock is not held across the request.
                let next = queue.lock().unwrap().pop();
                let Some(body) = next else { break };
                let response = client.post(&url).bearer_auth(&key).json(&body).send();
                statuses.push(response.await.unwrap().status().as_u16());
            }
            statuses
        });
    }
    let mut statuses = Vec::new();
    while let Some(sent) = tasks.join_next().await {
        statuses.extend(sent.unwrap());
    }
    statuses
}

/// A valid report of the test app.
pub fn report(version: &str, channel: &str, platform: &str, reason: &str) -> Value {
    json!({
        "application": { "name": "editor", "version": version, "channel": channel },
        "system": { "platform": platform, "arch": "x86_64", "os_version": "10.0.22631" },
        "event": { "type": "crash", "reason": reason },
    })
}

/// The group hash of `report(version, channel, platform, reason)`.
pub fn report_hash(version: &str, channel: &str, platform: &str, reason: &str) -> String {
    expected_hash([
        "editor", version, channel, platform, "x86_64", "crash", reason,
    ])
}

/// `report` with `details` attached as the contract wants them: gzip, then base64.
pub fn with_details(mut report: Value, details: &[u8]) -> Value {
    report["details"] = serde_json::json!({ "encoding": "gzip", "data": gzip_base64(details) });
    report
}

/// base64 of the gzip of `bytes`.
pub fn gzip_base64(bytes: &[u8]) -> String {
    use base64::Engine;
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    base64::engine::general_purpose::STANDARD.encode(encoder.finish().unwrap())
}

/// The group hash as DESIGN §5 defines it, computed here independently of the server.
pub fn expected_hash(fields: [&str; 7]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(fields.join("|").as_bytes()))
}

pub async fn json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

/// Posts a GraphQL request with an optional bearer (session JWT or `rwt_` token); the whole
/// answer, `data` and `errors`.
pub async fn graphql(app: &TestApp, bearer: Option<&str>, query: &str, variables: Value) -> Value {
    let (status, body) = json(
        app.post(
            "/graphql",
            bearer,
            &json!({ "query": query, "variables": variables }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The `extensions.code` of the first error, if any.
pub fn error_code(answer: &Value) -> Option<&str> {
    answer["errors"][0]["extensions"]["code"].as_str()
}

/// `data`, once sure there is no error.
pub fn data(answer: &Value) -> &Value {
    assert!(
        answer.get("errors").is_none(),
        "unexpected errors: {answer}"
    );
    &answer["data"]
}

/// One `login` mutation; the whole answer.
pub async fn login_attempt(app: &TestApp, email: &str, password: &str) -> Value {
    graphql(
        app,
        None,
        "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }",
        json!({ "e": email, "p": password }),
    )
    .await
}

/// Signs in and returns the session token.
pub async fn login(app: &TestApp, email: &str, password: &str) -> String {
    let answer = login_attempt(app, email, password).await;
    data(&answer)["login"]["token"].as_str().unwrap().to_owned()
}

/// A `rollwatch serve` process of the built binary, so it can be killed with SIGKILL.
pub struct ServeProcess {
    pub child: std::process::Child,
    pub addr: std::net::SocketAddr,
    _data_dir: tempfile::TempDir,
}

/// A test that panics still stops its server: a stray one would hold its port and CPU.
impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn spawn_serve(database_url: &str, vars: &[(&str, String)]) -> ServeProcess {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let data_dir = tempfile::tempdir().unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_rollwatch"))
        .arg("serve")
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("ROLLWATCH_DATA_DIR", data_dir.path())
        .env("DATABASE_URL", database_url)
        .env(
            "JWT_SECRET",
            "a shared secret of the three replicas, long enough",
        )
        .env("ROLLWATCH_ADMIN_PASSWORD", crate::common::ADMIN_PASSWORD)
        .env("REPORTS_RATE_LIMIT_PER_KEY_PER_MINUTE", "10000000")
        .env("ROLLWATCH_WEB_DIR", data_dir.path())
        .envs(vars.iter().map(|(name, value)| (name, value)))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    ServeProcess {
        child,
        addr: ([127, 0, 0, 1], port).into(),
        _data_dir: data_dir,
    }
}

pub async fn wait_ready(client: &reqwest::Client, addr: std::net::SocketAddr) {
    for _ in 0..600 {
        if let Ok(response) = client.get(format!("http://{addr}/readyz")).send().await
            && response.status() == 200
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{addr} never became ready");
}
