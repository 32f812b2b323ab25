//! The `rollwatch` binary: the server and the operator commands (DESIGN §2).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rollwatch::auth::tokens::{self, TokenSpec};
use rollwatch::auth::{Actor, AppScope};
use rollwatch::config::{Config, ExposeSecret, LogFormat};
use rollwatch::gate::client::{self as gate_client, GateArgs};
use rollwatch::server::Server;
use rollwatch::{accounts, apps, backup, db, dsn, graphql, keys};

#[derive(Parser)]
#[command(name = "rollwatch", version, about = "Self-hosted rollout health")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (REST ingestion, API, web app).
    Serve,
    /// Release gating for CI: prints the verdict and exits 0 PASS, 1 FAIL,
    /// 2 INSUFFICIENT_DATA, 3 on any error.
    Gate(Box<GateArgs>),
    /// Manage accounts.
    Accounts {
        #[command(subcommand)]
        command: AccountsCommand,
    },
    /// Manage apps.
    Apps {
        #[command(subcommand)]
        command: AppsCommand,
    },
    /// Manage an app's report key.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage read-only CI tokens.
    Tokens {
        #[command(subcommand)]
        command: TokensCommand,
    },
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Copy the embedded SQLite database to PATH while the server runs (a consistent
    /// snapshot); PATH must not exist yet. For PostgreSQL use pg_dump.
    Backup {
        /// Where the copy goes: a new file.
        path: std::path::PathBuf,
    },
}

#[derive(Subcommand)]
enum TokensCommand {
    /// Create a CI token; prints it alone on stdout, once.
    Create {
        /// What the token is for, e.g. "release pipeline".
        name: String,
        #[arg(long)]
        account: Option<String>,
        /// An app the token may read; repeat for several. Without any: every app.
        #[arg(long = "app")]
        apps: Vec<String>,
        /// The token stops working after this many days.
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
}

#[derive(Subcommand)]
enum AccountsCommand {
    /// Create an account and its admin; prints the admin's generated password once.
    Create {
        name: String,
        #[arg(long)]
        admin_email: String,
    },
}

#[derive(Subcommand)]
enum AppsCommand {
    /// Create an app with reports enabled; prints its new report key alone on stdout.
    Create {
        name: String,
        /// The account's name; may be left out while there is only one account.
        #[arg(long)]
        account: Option<String>,
        #[command(flatten)]
        dsn: DsnArgs,
    },
}

/// Print a Sentry DSN instead of the bare key.
#[derive(clap::Args)]
struct DsnArgs {
    /// Print the Sentry SDK DSN (`http(s)://<key>@<host>/<app id>`) alone on stdout instead
    /// of the bare key.
    #[arg(long)]
    dsn: bool,
    /// Where clients reach Rollwatch, the DSN's base; by default PUBLIC_URL, else
    /// http://BIND_ADDR.
    #[arg(long, value_name = "URL", requires = "dsn")]
    public_url: Option<String>,
}

impl DsnArgs {
    /// The DSN's base when a DSN is asked for, checked before anything is created.
    fn base(&self, config: &Config) -> Result<Option<reqwest::Url>, AnyError> {
        if !self.dsn {
            return Ok(None);
        }
        let given = match &self.public_url {
            Some(text) => Some(
                dsn::parse_public_url(text).map_err(|e| format!("--public-url {text:?}: {e}"))?,
            ),
            None => config.public_url.clone(),
        };
        Ok(Some(dsn::public_base(given.as_ref(), config.bind_addr)?))
    }
}

/// What an operator command prints for a new key: the key, or the DSN around it; and what
/// it is called.
fn shown_key(
    base: Option<&reqwest::Url>,
    key: &str,
    app_id: i64,
) -> Result<(String, &'static str), AnyError> {
    Ok(match base {
        Some(base) => (dsn::dsn(base, key, app_id)?, "Sentry DSN"),
        None => (key.to_owned(), "report key"),
    })
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Issue a new report key for the app and revoke the old one; prints the new key.
    Rotate {
        app: String,
        #[arg(long)]
        account: Option<String>,
        #[command(flatten)]
        dsn: DsnArgs,
    },
    /// Revoke the app's report key; reports with it are refused within seconds.
    Revoke {
        app: String,
        #[arg(long)]
        account: Option<String>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    if let Command::Gate(args) = &cli.command {
        // A client of a server elsewhere: it needs none of the server's configuration.
        return gate_client::run(args).await;
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("rollwatch: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_format);
    match run(cli.command, config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rollwatch: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Log lines to stderr, filtered by `RUST_LOG`, as text or (`LOG_FORMAT=json`) one JSON
/// object per line with the event's fields at the top level.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx=warn,sea_orm=warn".into());
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
}

/// Prints clap's message. A mistyped `rollwatch gate` exits 3 like its other errors: clap's
/// usual 2 would read as INSUFFICIENT_DATA in a CI step.
fn usage_error(e: &clap::Error) -> ExitCode {
    let _ = e.print();
    if !e.use_stderr() {
        return ExitCode::SUCCESS; // --help, --version
    }
    let gate = std::env::args()
        .nth(1)
        .is_some_and(|command| command == "gate");
    ExitCode::from(if gate {
        gate_client::EXIT_ERROR
    } else {
        u8::try_from(e.exit_code()).unwrap_or(2)
    })
}

type AnyError = Box<dyn std::error::Error>;

async fn run(command: Command, config: Config) -> Result<(), AnyError> {
    match command {
        Command::Serve => serve(config).await,
        Command::Gate(_) => unreachable!("handled before the configuration is read"),
        Command::Accounts {
            command: AccountsCommand::Create { name, admin_email },
        } => {
            let db = operator_db(&config).await?;
            let (account, admin) = accounts::create_account(&db, &name, &admin_email, None).await?;
            println!("account {:?} created (id {})", account.name, account.id);
            println!("admin:    {}", admin.user.email);
            if let Some(password) = admin.generated_password {
                println!("password: {password}   (shown once)");
            }
            Ok(())
        }
        Command::Apps {
            command: AppsCommand::Create { name, account, dsn },
        } => {
            let base = dsn.base(&config)?;
            let db = operator_db(&config).await?;
            let operator = operator_of(&db, account.as_deref()).await?;
            let (app, key) = apps::create(&db, &operator, &name).await?;
            let (shown, what) = shown_key(base.as_ref(), &key.key, app.id)?;
            eprintln!("app {:?} created (id {}); its {what}:", app.name, app.id);
            println!("{shown}");
            Ok(())
        }
        Command::Schema => {
            print!("{}", graphql::sdl());
            Ok(())
        }
        Command::Backup { path } => {
            let copy = backup::sqlite_copy(config.database_url.expose_secret(), &path).await?;
            eprintln!(
                "backed up to {} ({} bytes)",
                copy.path.display(),
                copy.bytes
            );
            Ok(())
        }
        Command::Tokens {
            command:
                TokensCommand::Create {
                    name,
                    account,
                    apps: app_names,
                    expires_in_days,
                },
        } => {
            let db = operator_db(&config).await?;
            let operator = operator_of(&db, account.as_deref()).await?;
            let scope = if app_names.is_empty() {
                AppScope::All
            } else {
                let mut ids = std::collections::HashSet::new();
                for name in &app_names {
                    ids.insert(
                        apps::find_by_name(&db, operator.account_id(), name)
                            .await?
                            .id,
                    );
                }
                AppScope::Only(ids)
            };
            let expires_at = expires_in_days
                .map(|days| chrono::Utc::now() + chrono::Duration::days(i64::from(days)));
            let spec = TokenSpec {
                name: &name,
                scope,
                expires_at,
            };
            let created = tokens::create(&db, &operator, spec).await?;
            eprintln!(
                "CI token {:?} created (id {}); it is shown once:",
                created.model.name, created.model.id
            );
            println!("{}", created.token);
            Ok(())
        }
        Command::Keys { command } => {
            let db = operator_db(&config).await?;
            let (app, account, rotate) = match command {
                KeysCommand::Rotate { app, account, dsn } => {
                    (app, account, Some(dsn.base(&config)?))
                }
                KeysCommand::Revoke { app, account } => (app, account, None),
            };
            let operator = operator_of(&db, account.as_deref()).await?;
            let app = apps::find_by_name(&db, operator.account_id(), &app).await?;
            if let Some(base) = rotate {
                let key = keys::rotate(&db, &operator, app.id).await?;
                let (shown, what) = shown_key(base.as_ref(), &key.key, app.id)?;
                eprintln!("new {what} for {:?}; the old key is revoked:", app.name);
                println!("{shown}");
            } else if keys::revoke(&db, &operator, app.id).await? {
                eprintln!("the report key of {:?} is revoked", app.name);
            } else {
                eprintln!("{:?} had no active report key", app.name);
            }
            Ok(())
        }
    }
}

/// The operator's shell, acting on the account named (or the only one).
async fn operator_of(db: &db::Store, account: Option<&str>) -> Result<Actor, AnyError> {
    let account = accounts::find_account(db, account).await?;
    Ok(Actor::Operator {
        account_id: account.id,
    })
}

async fn operator_db(config: &Config) -> Result<db::Store, AnyError> {
    std::fs::create_dir_all(&config.data_dir)?;
    Ok(db::connect(config.database_url.expose_secret()).await?)
}

async fn serve(config: Config) -> Result<(), AnyError> {
    let server = Server::build(config).await?;
    let shutdown = shutdown_signal()?;
    if let Some(admin) = &server.first_admin {
        println!("First start: created the admin {}", admin.email);
        if let Some(password) = &admin.generated_password {
            println!("  password: {password}   (shown once; keep it safe)");
        }
    }
    println!("Rollwatch listening on http://{}", server.local_addr()?);
    server.run(shutdown).await?;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed here, before the server says it
/// is listening, so a signal sent right after that is never missed.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {},
                _ = terminate.recv() => {},
            }
            tracing::info!("shutting down: finishing requests in flight");
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutting down: finishing requests in flight");
        })
    }
}
