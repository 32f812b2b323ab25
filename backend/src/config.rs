//! Configuration: read from the environment and validated once, at start-up (DESIGN §3).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

pub use secrecy::{ExposeSecret, SecretString};

/// A bad configuration value; start-up stops with this one line.
#[derive(Debug, thiserror::Error)]
#[error("invalid {var}: {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

/// The whole configuration, read section by section: each section's constructor reads its own
/// variables, so a variable's default, range and message live in one place.
///
/// `Debug` is safe to log: the secrets are [`SecretString`]s, which print no value.
#[derive(Clone, Debug)]
pub struct Config {
    pub bind_addr: SocketAddr,
    pub data_dir: PathBuf,
    /// A secret: a PostgreSQL URL may carry a password.
    pub database_url: SecretString,
    pub auth: AuthConfig,
    pub reports: ReportsConfig,
    pub storage: StorageConfig,
    pub blob_url_ttl: Duration,
    pub http: HttpConfig,
    pub alerts: AlertsConfig,
    /// `ROLLWATCH_WEB_DIR`: the built web app (`index.html` and its assets) in a folder. Unset,
    /// the web app built into the binary is served, or `./dist` by a build without one.
    pub web_dir: Option<PathBuf>,
    pub metrics: MetricsConfig,
    /// `LOG_FORMAT`.
    pub log_format: LogFormat,
    /// `PUBLIC_URL`: where clients reach this server; the base of the DSNs the operator
    /// commands print (DESIGN §5.1).
    pub public_url: Option<reqwest::Url>,
}

/// How long a connection may take over each step, and how many may be open at once.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// From a request's first byte to the end of its headers.
    pub header_read_timeout: Duration,
    /// From the end of a request's headers to the end of its body.
    pub request_body_timeout: Duration,
    /// A connection with no request in flight and no byte moving is closed after this.
    pub idle_timeout: Duration,
    /// Connections open at once; beyond it new ones wait in the listen backlog.
    pub max_connections: usize,
}

impl HttpConfig {
    fn from_vars(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let seconds = |var: &'static str, default: u64, max: u64| {
            vars.bounded(var, default, 1, max).map(Duration::from_secs)
        };
        Ok(HttpConfig {
            header_read_timeout: seconds("HTTP_HEADER_READ_TIMEOUT_SECONDS", 10, 300)?,
            request_body_timeout: seconds("HTTP_REQUEST_BODY_TIMEOUT_SECONDS", 60, 3600)?,
            idle_timeout: seconds("HTTP_IDLE_TIMEOUT_SECONDS", 75, 3600)?,
            max_connections: vars.bounded("HTTP_MAX_CONNECTIONS", 4096, 1, 1_000_000)?,
        })
    }
}

/// Where `/metrics` is served, and who may read it.
#[derive(Clone, Debug, Default)]
pub struct MetricsConfig {
    /// `METRICS_ADDR`: a listener of its own for `/metrics` (then not served on `BIND_ADDR`),
    /// so it can stay on a private interface while the API is public.
    pub addr: Option<SocketAddr>,
    /// `METRICS_TOKEN`: when set, `/metrics` answers only `Authorization: Bearer <token>`.
    pub token: Option<SecretString>,
}

/// Shortest `METRICS_TOKEN` accepted: it guards a public port, so it must not be guessable.
pub const MIN_METRICS_TOKEN_CHARS: usize = 16;

impl MetricsConfig {
    fn from_vars(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let addr = vars
            .raw("METRICS_ADDR")
            .map(|text| {
                text.parse::<SocketAddr>().map_err(|e| ConfigError {
                    var: "METRICS_ADDR",
                    message: format!("{text:?}: {e}"),
                })
            })
            .transpose()?;
        let token = vars.secret("METRICS_TOKEN");
        if let Some(token) = &token {
            let token = token.expose_secret();
            // It travels in a header: visible ASCII only, so it compares as sent.
            if token.chars().count() < MIN_METRICS_TOKEN_CHARS
                || !token.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(ConfigError {
                    var: "METRICS_TOKEN",
                    message: format!(
                        "must be at least {MIN_METRICS_TOKEN_CHARS} visible ASCII characters"
                    ),
                });
            }
        }
        Ok(MetricsConfig { addr, token })
    }
}

/// How log lines are written to stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// For a person at a terminal or `journalctl`.
    #[default]
    Text,
    /// One JSON object per line, for a log collector.
    Json,
}

/// `LOG_FORMAT`: `text` (default) or `json`.
fn log_format(vars: &Vars<'_>) -> Result<LogFormat, ConfigError> {
    match vars
        .raw("LOG_FORMAT")
        .map(|v| v.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("text") => Ok(LogFormat::Text),
        Some("json") => Ok(LogFormat::Json),
        Some(other) => Err(ConfigError {
            var: "LOG_FORMAT",
            message: format!("{other:?} is not one of text, json"),
        }),
    }
}

/// The background evaluation of watched releases and the delivery of alerts (issue 17).
#[derive(Clone, Debug)]
pub struct AlertsConfig {
    /// How often every watched release is evaluated.
    pub evaluate_every: Duration,
    /// A release is watched while it had reports or usage within this many hours.
    pub watch_hours: u32,
    /// The first retry of a failed delivery waits this long; each next one twice as long.
    pub retry_first: Duration,
    /// A delivery not through after this long is given up.
    pub retry_for: Duration,
    /// One delivery attempt, connection to answer.
    pub delivery_timeout: Duration,
    /// Deliver to loopback, private and link-local addresses (receivers on this host or
    /// network); off, a destination resolving to one is refused.
    pub allow_private_destinations: bool,
}

impl AlertsConfig {
    fn from_vars(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let seconds = |var: &'static str, default: u64, max: u64| {
            vars.bounded(var, default, 1, max).map(Duration::from_secs)
        };
        Ok(AlertsConfig {
            evaluate_every: seconds("ALERTS_EVALUATE_EVERY_SECONDS", 300, 86_400)?,
            watch_hours: vars.bounded("ALERTS_WATCH_HOURS", 24, 1, 24 * 90)?,
            retry_first: seconds("ALERTS_RETRY_FIRST_SECONDS", 30, 3600)?,
            retry_for: seconds("ALERTS_RETRY_FOR_SECONDS", 86_400, 7 * 86_400)?,
            delivery_timeout: seconds("ALERTS_DELIVERY_TIMEOUT_SECONDS", 10, 120)?,
            allow_private_destinations: vars.bool("ALERTS_ALLOW_PRIVATE_DESTINATIONS", false)?,
        })
    }
}

/// User sessions and the first admin.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// `None`: a key is generated once and kept in the data dir.
    pub jwt_secret: Option<SecretString>,
    pub admin_email: Option<String>,
    pub admin_password: Option<SecretString>,
}

#[derive(Clone, Debug)]
pub struct ReportsConfig {
    pub enabled: bool,
    pub max_body_bytes: usize,
    pub max_details_compressed_bytes: usize,
    pub max_details_decompressed_bytes: u64,
    pub blob_retention_days: u32,
    /// Hourly counts older than this many days are folded into days by the daily task.
    pub hourly_counts_days: u32,
    pub max_blobs_per_group: u32,
    pub storage_prefix: String,
    pub rate_limit_per_key_per_minute: u32,
    pub rate_limit_per_device_per_minute: u32,
    /// Usage messages have their own, higher allowance: losing denominators inflates rates.
    pub usage_rate_limit_per_key_per_minute: u32,
    pub usage_rate_limit_per_device_per_minute: u32,
    /// `REDIS_URL`: where the rate limits are shared across replicas (a secret: it may carry
    /// a password). Without it each replica limits on its own.
    pub redis_url: Option<SecretString>,
    /// How long a looked-up report key is trusted before the database is asked again,
    /// which bounds how long a revoked key keeps working.
    pub key_cache_ttl: Duration,
    /// `ROLLWATCH_BENCH_ENDPOINTS`: registers `POST /bench/noop`, the do-nothing endpoint
    /// `cargo xtask bench` compares ingestion with. Off unless asked for.
    pub bench_endpoints: bool,
}

#[derive(Clone, Debug)]
pub enum StorageConfig {
    Local { dir: PathBuf },
    S3(S3Config),
}

#[derive(Clone, Debug)]
pub struct S3Config {
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub bucket: String,
    pub force_path_style: bool,
}

/// Reads variables through a lookup, so tests need not touch the process environment.
struct Vars<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Vars<'_> {
    fn raw(&self, var: &'static str) -> Option<String> {
        (self.0)(var)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// A secret: never part of an error message, and held only as a [`SecretString`].
    fn secret(&self, var: &'static str) -> Option<SecretString> {
        self.raw(var).map(SecretString::from)
    }

    fn parse<T: FromStr>(&self, var: &'static str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.raw(var) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|e| ConfigError {
                var,
                message: format!("{v:?}: {e}"),
            }),
        }
    }

    fn bool(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.raw(var).map(|v| v.to_ascii_lowercase()).as_deref() {
            None => Ok(default),
            Some("true" | "1" | "yes" | "on") => Ok(true),
            Some("false" | "0" | "no" | "off") => Ok(false),
            Some(other) => Err(ConfigError {
                var,
                message: format!("{other:?} is not a boolean (true or false)"),
            }),
        }
    }

    /// A whole number in `min..=max`.
    fn bounded<T>(&self, var: &'static str, default: T, min: T, max: T) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + std::fmt::Display + Copy,
        T::Err: std::fmt::Display,
    {
        let value = self.parse(var, default)?;
        if value < min || value > max {
            return Err(ConfigError {
                var,
                message: format!("{value} is outside {min}..={max}"),
            });
        }
        Ok(value)
    }

    fn required(&self, var: &'static str, why: &str) -> Result<String, ConfigError> {
        self.raw(var).ok_or_else(|| ConfigError {
            var,
            message: format!("must be set {why}"),
        })
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|var| std::env::var(var).ok())
    }

    /// Reads the sections in a fixed order and stops at the first bad value.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars(&get);
        let bind_addr = bind_addr(&vars)?;
        let data_dir = data_dir(&vars);
        let database_url = database_url(&vars, &data_dir)?;
        let auth = AuthConfig::from_vars(&vars)?;
        let reports = ReportsConfig::from_vars(&vars)?;
        let storage = StorageConfig::from_vars(&vars, &data_dir)?;
        let blob_url_ttl = blob_url_ttl(&vars)?;
        let http = HttpConfig::from_vars(&vars)?;
        let alerts = AlertsConfig::from_vars(&vars)?;
        let web_dir = web_dir(&vars);
        let public_url = public_url(&vars)?;
        let metrics = MetricsConfig::from_vars(&vars)?;
        let log_format = log_format(&vars)?;
        Ok(Config {
            bind_addr,
            data_dir,
            database_url,
            auth,
            reports,
            storage,
            blob_url_ttl,
            http,
            alerts,
            web_dir,
            public_url,
            metrics,
            log_format,
        })
    }
}

/// `REDIS_URL`: `redis://[user:password@]host[:port][/db]`. TLS (`rediss://`) is not built
/// in; a TLS tunnel serves.
fn redis_url(vars: &Vars<'_>) -> Result<Option<SecretString>, ConfigError> {
    let Some(url) = vars.secret("REDIS_URL") else {
        return Ok(None);
    };
    let text = url.expose_secret();
    if !text.starts_with("redis://") || text.len() <= "redis://".len() {
        return Err(ConfigError {
            var: "REDIS_URL",
            message:
                "must be a redis://host[:port] URL (rediss:// is not supported: use a TLS tunnel)"
                    .to_owned(),
        });
    }
    if redis::Client::open(text).is_err() {
        return Err(ConfigError {
            var: "REDIS_URL",
            message: "is not a Redis URL redis://[user:password@]host[:port][/db]".to_owned(),
        });
    }
    Ok(Some(url))
}

/// `PUBLIC_URL`, checked as a DSN's base.
fn public_url(vars: &Vars<'_>) -> Result<Option<reqwest::Url>, ConfigError> {
    vars.raw("PUBLIC_URL")
        .map(|text| {
            crate::dsn::parse_public_url(&text).map_err(|message| ConfigError {
                var: "PUBLIC_URL",
                message,
            })
        })
        .transpose()
}

/// `BIND_ADDR`.
fn bind_addr(vars: &Vars<'_>) -> Result<SocketAddr, ConfigError> {
    vars.parse("BIND_ADDR", SocketAddr::from(([127, 0, 0, 1], 8080)))
}

/// `ROLLWATCH_WEB_DIR`: the built web app, when it is served from a folder.
fn web_dir(vars: &Vars<'_>) -> Option<PathBuf> {
    vars.raw("ROLLWATCH_WEB_DIR").map(PathBuf::from)
}

/// `ROLLWATCH_DATA_DIR`.
fn data_dir(vars: &Vars<'_>) -> PathBuf {
    PathBuf::from(
        vars.raw("ROLLWATCH_DATA_DIR")
            .unwrap_or_else(|| "./data".to_owned()),
    )
}

/// `DATABASE_URL`, by default the SQLite file in the data dir.
fn database_url(vars: &Vars<'_>, data_dir: &Path) -> Result<SecretString, ConfigError> {
    let database_url = match vars.raw("DATABASE_URL") {
        Some(url) => url,
        None => format!("sqlite://{}/rollwatch.db?mode=rwc", data_dir.display()),
    };
    if !["sqlite:", "postgres://", "postgresql://"]
        .iter()
        .any(|scheme| database_url.starts_with(scheme))
    {
        return Err(ConfigError {
            var: "DATABASE_URL",
            message: "must start with sqlite:, postgres:// or postgresql://".to_owned(),
        });
    }
    Ok(database_url.into())
}

/// `BLOB_URL_TTL_SECONDS`.
fn blob_url_ttl(vars: &Vars<'_>) -> Result<Duration, ConfigError> {
    Ok(Duration::from_secs(vars.bounded(
        "BLOB_URL_TTL_SECONDS",
        300,
        1,
        7 * 24 * 3600,
    )?))
}

impl AuthConfig {
    /// `JWT_SECRET`, `ROLLWATCH_ADMIN_EMAIL`, `ROLLWATCH_ADMIN_PASSWORD`.
    fn from_vars(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let jwt_secret = vars.secret("JWT_SECRET");
        if jwt_secret
            .as_ref()
            .is_some_and(|s| s.expose_secret().len() < 32)
        {
            return Err(ConfigError {
                var: "JWT_SECRET",
                message: "must be at least 32 characters".to_owned(),
            });
        }
        let admin_email = vars.raw("ROLLWATCH_ADMIN_EMAIL");
        if admin_email.as_ref().is_some_and(|e| !e.contains('@')) {
            return Err(ConfigError {
                var: "ROLLWATCH_ADMIN_EMAIL",
                message: "is not an email address".to_owned(),
            });
        }
        let admin_password = vars.secret("ROLLWATCH_ADMIN_PASSWORD");
        if admin_password.as_ref().is_some_and(|p| {
            p.expose_secret().chars().count() < crate::accounts::MIN_PASSWORD_CHARS
        }) {
            return Err(ConfigError {
                var: "ROLLWATCH_ADMIN_PASSWORD",
                message: format!(
                    "must be at least {} characters",
                    crate::accounts::MIN_PASSWORD_CHARS
                ),
            });
        }
        Ok(AuthConfig {
            jwt_secret,
            admin_email,
            admin_password,
        })
    }
}

impl ReportsConfig {
    /// The `REPORTS_*` limits, and `ROLLWATCH_BENCH_ENDPOINTS`.
    fn from_vars(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let max_details_compressed_bytes =
            vars.bounded("REPORTS_MAX_DETAILS_COMPRESSED_BYTES", 131_072, 1, 16 << 20)?;
        Ok(ReportsConfig {
            enabled: vars.bool("REPORTS_ENABLED", true)?,
            max_body_bytes: vars.bounded("REPORTS_MAX_BODY_BYTES", 262_144, 1024, 64 << 20)?,
            max_details_compressed_bytes,
            max_details_decompressed_bytes: vars.bounded(
                "REPORTS_MAX_DETAILS_DECOMPRESSED_BYTES",
                1_048_576,
                max_details_compressed_bytes as u64,
                1 << 30,
            )?,
            blob_retention_days: vars.bounded("REPORTS_BLOB_RETENTION_DAYS", 30, 1, 3650)?,
            // At least a week: the gate's windows are read by the hour.
            hourly_counts_days: vars.bounded("REPORTS_HOURLY_COUNTS_DAYS", 30, 7, 3650)?,
            max_blobs_per_group: vars.bounded("REPORTS_MAX_BLOBS_PER_GROUP", 10, 0, 10_000)?,
            storage_prefix: storage_prefix(vars)?,
            rate_limit_per_key_per_minute: vars.bounded(
                "REPORTS_RATE_LIMIT_PER_KEY_PER_MINUTE",
                100,
                1,
                10_000_000,
            )?,
            rate_limit_per_device_per_minute: vars.bounded(
                "REPORTS_RATE_LIMIT_PER_DEVICE_PER_MINUTE",
                20,
                1,
                10_000_000,
            )?,
            usage_rate_limit_per_key_per_minute: vars.bounded(
                "USAGE_RATE_LIMIT_PER_KEY_PER_MINUTE",
                1000,
                1,
                10_000_000,
            )?,
            usage_rate_limit_per_device_per_minute: vars.bounded(
                "USAGE_RATE_LIMIT_PER_DEVICE_PER_MINUTE",
                60,
                1,
                10_000_000,
            )?,
            redis_url: redis_url(vars)?,
            key_cache_ttl: Duration::from_secs(5),
            bench_endpoints: vars.bool("ROLLWATCH_BENCH_ENDPOINTS", false)?,
        })
    }
}

/// `REPORTS_STORAGE_PREFIX`: relative path segments, so a key never leaves the blob folder.
fn storage_prefix(vars: &Vars<'_>) -> Result<String, ConfigError> {
    let prefix = vars
        .raw("REPORTS_STORAGE_PREFIX")
        .unwrap_or_else(|| "reports".to_owned());
    let valid = prefix
        .split('/')
        .all(|part| !part.is_empty() && part != ".." && part != ".")
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
    if !valid {
        return Err(ConfigError {
            var: "REPORTS_STORAGE_PREFIX",
            message: format!(
                "{prefix:?} must be path segments of letters, digits, '-', '_' and '.', without leading or trailing '/'"
            ),
        });
    }
    Ok(prefix)
}

impl StorageConfig {
    /// `STORAGE_DRIVER`: the blob folder in the data dir, or the `S3_*` bucket.
    fn from_vars(vars: &Vars<'_>, data_dir: &Path) -> Result<Self, ConfigError> {
        match vars
            .raw("STORAGE_DRIVER")
            .unwrap_or_else(|| "local".to_owned())
            .as_str()
        {
            "local" => Ok(StorageConfig::Local {
                dir: data_dir.join("blobs"),
            }),
            "s3" => Ok(StorageConfig::S3(S3Config::from_vars(vars)?)),
            other => Err(ConfigError {
                var: "STORAGE_DRIVER",
                message: format!("{other:?} is not one of local, s3"),
            }),
        }
    }
}

impl S3Config {
    /// The `S3_*` settings of the private bucket, read when `STORAGE_DRIVER=s3`.
    fn from_vars(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let why = "when STORAGE_DRIVER=s3";
        Ok(S3Config {
            endpoint: vars.raw("S3_ENDPOINT"),
            region: vars
                .raw("S3_REGION")
                .unwrap_or_else(|| "us-east-1".to_owned()),
            access_key_id: vars.required("S3_ACCESS_KEY_ID", why)?,
            secret_access_key: vars.required("S3_SECRET_ACCESS_KEY", why)?.into(),
            bucket: vars.required("S3_BUCKET_NAME_PRIVATE", why)?,
            force_path_style: vars.bool("S3_FORCE_PATH_STYLE", false)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_the_embedded_setup() {
        let c = config(&[]).expect("defaults are valid");
        assert_eq!(c.bind_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(
            c.database_url.expose_secret(),
            "sqlite://./data/rollwatch.db?mode=rwc"
        );
        assert!(
            matches!(c.storage, StorageConfig::Local { ref dir } if dir == &PathBuf::from("./data/blobs"))
        );
        assert_eq!(c.reports.max_body_bytes, 262_144);
        assert_eq!(c.reports.max_details_compressed_bytes, 131_072);
        assert_eq!(c.reports.max_details_decompressed_bytes, 1_048_576);
        assert_eq!(c.reports.rate_limit_per_key_per_minute, 100);
        assert_eq!(c.reports.max_blobs_per_group, 10);
        assert_eq!(c.blob_url_ttl, Duration::from_secs(300));
        assert!(c.reports.enabled);
        assert!(!c.reports.bench_endpoints);
        assert_eq!(c.http.header_read_timeout, Duration::from_secs(10));
        assert_eq!(c.http.request_body_timeout, Duration::from_secs(60));
        assert_eq!(c.http.idle_timeout, Duration::from_secs(75));
        assert_eq!(c.http.max_connections, 4096);
        assert_eq!(c.public_url, None);
        assert_eq!(c.web_dir, None);
        assert_eq!(c.log_format, LogFormat::Text);
        assert!(c.metrics.addr.is_none() && c.metrics.token.is_none());
    }

    #[test]
    fn log_format_and_metrics_are_read() {
        let c = config(&[
            ("LOG_FORMAT", "JSON"),
            ("METRICS_ADDR", "127.0.0.1:9090"),
            ("METRICS_TOKEN", "scrape-token-0123456789"),
        ])
        .expect("valid");
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.metrics.addr.map(|a| a.port()), Some(9090));
        assert_eq!(
            c.metrics.token.as_ref().map(|t| t.expose_secret()),
            Some("scrape-token-0123456789")
        );
        let err = config(&[("LOG_FORMAT", "yaml")]).expect_err("unknown format");
        assert_eq!(
            err.to_string(),
            "invalid LOG_FORMAT: \"yaml\" is not one of text, json"
        );
    }

    #[test]
    fn each_bad_value_names_its_variable() {
        let cases: &[(&str, &str)] = &[
            ("BIND_ADDR", "localhost"),
            ("DATABASE_URL", "mysql://x"),
            ("REPORTS_ENABLED", "maybe"),
            ("ROLLWATCH_BENCH_ENDPOINTS", "sometimes"),
            ("REPORTS_MAX_BODY_BYTES", "-1"),
            ("REPORTS_MAX_BODY_BYTES", "12"),
            ("REPORTS_MAX_DETAILS_DECOMPRESSED_BYTES", "10"),
            ("REPORTS_RATE_LIMIT_PER_KEY_PER_MINUTE", "0"),
            ("REPORTS_STORAGE_PREFIX", "/abs"),
            ("REPORTS_STORAGE_PREFIX", "a/../b"),
            ("STORAGE_DRIVER", "ftp"),
            ("PUBLIC_URL", "ftp://rollwatch.example.com"),
            ("PUBLIC_URL", "https://rollwatch.example.com/?x=1"),
            ("BLOB_URL_TTL_SECONDS", "soon"),
            ("JWT_SECRET", "short"),
            ("ROLLWATCH_ADMIN_PASSWORD", "hunter2"),
            ("HTTP_HEADER_READ_TIMEOUT_SECONDS", "0"),
            ("HTTP_REQUEST_BODY_TIMEOUT_SECONDS", "3601"),
            ("HTTP_IDLE_TIMEOUT_SECONDS", "forever"),
            ("HTTP_MAX_CONNECTIONS", "0"),
            ("LOG_FORMAT", "pretty"),
            ("METRICS_ADDR", "9090"),
            ("METRICS_TOKEN", "short"),
            ("METRICS_TOKEN", "a token with spaces in it"),
        ];
        for (var, value) in cases {
            let err = config(&[(var, value)]).expect_err(var);
            assert_eq!(err.var, *var, "{var}={value} blamed {}", err.var);
            assert!(err.to_string().starts_with(&format!("invalid {var}: ")));
        }
    }

    #[test]
    fn s3_needs_its_credentials_and_bucket() {
        let err = config(&[("STORAGE_DRIVER", "s3")]).expect_err("incomplete s3");
        assert_eq!(err.var, "S3_ACCESS_KEY_ID");
        let c = config(&[
            ("STORAGE_DRIVER", "s3"),
            ("S3_ACCESS_KEY_ID", "ak"),
            ("S3_SECRET_ACCESS_KEY", "sk"),
            ("S3_BUCKET_NAME_PRIVATE", "private"),
            ("S3_FORCE_PATH_STYLE", "true"),
        ])
        .expect("complete s3");
        let StorageConfig::S3(s3) = c.storage else {
            panic!("expected s3 storage");
        };
        assert_eq!(s3.bucket, "private");
        assert!(s3.force_path_style);
        assert_eq!(s3.secret_access_key.expose_secret(), "sk");
    }

    #[test]
    fn debug_output_holds_none_of_the_secrets() {
        const JWT: &str = "jwt-secret-7f3a9c1e5b2d8f4a6c0e9b7d";
        const PASSWORD: &str = "admin-password-Quokka-4821";
        const S3_SECRET: &str = "s3-secret-key-Wombat-9035";
        const DB_PASSWORD: &str = "db-password-Numbat-2718";
        const METRICS_TOKEN: &str = "metrics-token-Quoll-6180";
        let database_url = format!("postgres://rollwatch:{DB_PASSWORD}@db.internal/rollwatch");
        let c = config(&[
            ("DATABASE_URL", &database_url),
            ("JWT_SECRET", JWT),
            ("ROLLWATCH_ADMIN_EMAIL", "ops@example.test"),
            ("ROLLWATCH_ADMIN_PASSWORD", PASSWORD),
            ("STORAGE_DRIVER", "s3"),
            ("S3_ACCESS_KEY_ID", "ak"),
            ("S3_SECRET_ACCESS_KEY", S3_SECRET),
            ("S3_BUCKET_NAME_PRIVATE", "private"),
            ("METRICS_TOKEN", METRICS_TOKEN),
        ])
        .expect("valid config");
        let StorageConfig::S3(s3) = &c.storage else {
            panic!("expected s3 storage");
        };
        // The values are all there, for whoever asks for them by name.
        assert_eq!(
            c.auth.jwt_secret.as_ref().map(|s| s.expose_secret()),
            Some(JWT)
        );
        assert_eq!(
            c.auth.admin_password.as_ref().map(|s| s.expose_secret()),
            Some(PASSWORD)
        );
        assert_eq!(s3.secret_access_key.expose_secret(), S3_SECRET);
        assert_eq!(c.database_url.expose_secret(), database_url);

        for printed in [format!("{c:?}"), format!("{c:#?}")] {
            for secret in [JWT, PASSWORD, S3_SECRET, DB_PASSWORD, METRICS_TOKEN] {
                assert!(!printed.contains(secret), "{secret} in {printed}");
            }
            // Not a blanket redaction: the rest of the configuration still shows.
            assert!(printed.contains("ops@example.test"), "{printed}");
            assert!(printed.contains("private"), "{printed}");
        }
    }
}
