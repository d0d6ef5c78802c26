//! What each subcommand does.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use sauti_store::{Store, StoreOptions, redact_url};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cli::{CreateAccountArgs, Role, ServeArgs};
use crate::config::Config;

/// How long in-flight requests may take to finish after a shutdown signal. A client that
/// holds a request open longer must not keep the process alive past what an orchestrator
/// (which follows SIGTERM with SIGKILL, 30 s by default in Kubernetes) allows.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(25);

/// Connect and bring the schema up to date. Every command does this: on SQLite it is
/// what makes `sauti serve` work with zero set-up, and on PostgreSQL sqlx serialises
/// concurrent migrators with an advisory lock, so nodes starting together do not race.
pub(crate) async fn open_store(config: &Config) -> Result<Store> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    if let Some(parent) = config
        .sqlite_file()
        .as_deref()
        .and_then(|f| f.parent())
        .filter(|p| !p.as_os_str().is_empty())
    {
        // SQLite creates the file but not its directory.
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create database directory {}", parent.display()))?;
    }
    let shown_url = redact_url(&config.database_url);
    tracing::info!(database = %shown_url, "opening database");
    let store = Store::connect(&config.database_url, &StoreOptions::default())
        .await
        .with_context(|| format!("cannot open database {shown_url}"))?;
    store
        .migrate()
        .await
        .with_context(|| format!("cannot migrate database {shown_url}"))?;
    tracing::info!("database schema is up to date");
    Ok(store)
}

/// The installation's secret key (verification codes are derived from it): from
/// `SAUTI_SECRET_KEY` (64 hex digits), else `<data_dir>/secret.key`, made on first start.
/// Every node of one installation needs the same key, so on PostgreSQL set the variable.
fn load_secret_key(config: &Config) -> Result<std::sync::Arc<sauti_core::secret::ServerKey>> {
    use sauti_core::secret::ServerKey;
    if let Ok(text) = std::env::var("SAUTI_SECRET_KEY") {
        let key = ServerKey::parse(&text).context("SAUTI_SECRET_KEY must be 64 hex digits (32 bytes)")?;
        return Ok(std::sync::Arc::new(key));
    }
    let path = config.data_dir.join("secret.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let key = ServerKey::parse(&text).with_context(|| format!("{} must hold 64 hex digits", path.display()))?;
            Ok(std::sync::Arc::new(key))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = ServerKey::random();
            std::fs::create_dir_all(&config.data_dir)
                .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
            write_private(&path, &key.to_hex()).with_context(|| format!("cannot write {}", path.display()))?;
            tracing::info!(path = %path.display(), "made a new secret key");
            Ok(std::sync::Arc::new(key))
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Create `path` readable by its owner only, failing if it exists (two processes starting
/// at once must not write two keys).
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

pub async fn serve(config: &Config, args: &ServeArgs) -> Result<()> {
    let store = open_store(config).await?;
    // Handlers go in before the address is announced: whoever reads "listening on" may
    // signal at once, and a signal arriving before a handler exists would kill the process
    // with a non-zero status. (Before this point the default action is right: there is
    // nothing to drain, and Ctrl-C during a slow database connect should just stop.)
    let mut signals = Signals::install()?;
    let stop = CancellationToken::new();
    let wake = std::sync::Arc::new(tokio::sync::Notify::new());
    let secret_key = load_secret_key(config)?;
    let engine = matches!(args.role, Role::All | Role::Worker).then(|| {
        let engine_config = sauti_engine::EngineConfig {
            secret_key: secret_key.clone(),
            ..config.engine_config()
        };
        tracing::info!(owner = %engine_config.owner, "delivery workers started");
        sauti_engine::Engine::start(store.clone(), engine_config, wake.clone(), stop.clone())
    });
    let mut server = if args.role == Role::Worker {
        tracing::info!(role = args.role.name(), "running delivery workers only (no HTTP API)");
        None
    } else {
        let listener = TcpListener::bind(&config.bind)
            .await
            .with_context(|| format!("cannot listen on {}", config.bind))?;
        let addr = listener.local_addr().context("cannot read the bound address")?;
        tracing::info!(role = args.role.name(), "listening on http://{addr}");
        let api_config = sauti_api::ApiConfig {
            secret_key: secret_key.clone(),
            ..config.api_config()
        };
        let mut state = sauti_api::AppState::new(store.clone(), api_config);
        state.wake = wake.clone();
        Some(tokio::spawn(sauti_api::run(
            state,
            listener,
            stop.clone().cancelled_owned(),
        )))
    };

    let outcome = tokio::select! {
        joined = async { server.as_mut().expect("only polled with a server").await }, if server.is_some() => {
            // The server never returns on its own unless accepting failed.
            Err(anyhow::anyhow!("HTTP server stopped unexpectedly: {}", describe(joined)))
        }
        signal = signals.recv() => {
            tracing::info!(signal, "shutting down: finishing requests and sends in flight");
            stop.cancel();
            match server.as_mut() {
                None => Ok(()),
                Some(server) => tokio::select! {
                    joined = tokio::time::timeout(SHUTDOWN_GRACE, server) => match joined {
                        Ok(Ok(Ok(()))) => Ok(()),
                        Ok(joined) => Err(anyhow::anyhow!("HTTP server failed while draining: {}", describe(joined))),
                        Err(_) => {
                            tracing::warn!(
                                grace_seconds = SHUTDOWN_GRACE.as_secs(),
                                "requests still in flight after the grace period; stopping anyway"
                            );
                            Ok(())
                        }
                    },
                    // A second signal means the operator does not want to wait.
                    signal = signals.recv() => {
                        tracing::warn!(signal, "second signal: stopping without waiting for requests in flight");
                        Ok(())
                    }
                },
            }
        }
    };
    stop.cancel();
    if let Some(s) = server {
        s.abort();
    }
    if let Some(engine) = engine {
        // Unsent work keeps its lease and is taken over after it expires; waiting here
        // only lets in-flight sends report their outcome.
        if tokio::time::timeout(Duration::from_secs(10), engine.join())
            .await
            .is_err()
        {
            tracing::warn!("delivery workers still busy at exit; their leases will be reclaimed");
        }
    }
    // Requests abandoned after the grace period may still hold connections, and closing
    // the pool waits for them; do not let that hang the exit.
    if tokio::time::timeout(Duration::from_secs(5), store.close())
        .await
        .is_err()
    {
        tracing::warn!("database connections still busy at exit; closing them abruptly");
    }
    if outcome.is_ok() {
        tracing::info!("stopped");
    }
    outcome
}

fn describe(joined: Result<std::io::Result<()>, tokio::task::JoinError>) -> String {
    match joined {
        Ok(Ok(())) => "no error".to_string(),
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    }
}

/// SIGINT and SIGTERM, listened for from creation on.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
        })
    }

    /// The name of the next signal received.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

pub async fn migrate(config: &Config) -> Result<()> {
    let store = open_store(config).await?;
    store.close().await;
    Ok(())
}

pub async fn create_account(config: &Config, args: &CreateAccountArgs) -> Result<()> {
    let name = args.name.trim();
    if name.is_empty() {
        bail!("--name must not be blank");
    }
    let store = open_store(config).await?;
    let created = sauti_api::admin::create_account(&store, name, args.super_admin)
        .await
        .context("cannot create the account");
    store.close().await;
    let created = created?;
    tracing::info!(
        account_id = created.account.id,
        access_token_id = created.access_token_id,
        super_admin = args.super_admin,
        "account created"
    );
    // stdout carries exactly this one object, so scripts can parse it; the token appears
    // nowhere else.
    let output = CreatedAccountOutput {
        account_id: created.account.id,
        access_token: &created.access_token,
    };
    println!("{}", serde_json::to_string(&output)?);
    Ok(())
}

/// What `sauti accounts create` prints; a struct so the keys keep this order.
#[derive(serde::Serialize)]
struct CreatedAccountOutput<'a> {
    account_id: i64,
    access_token: &'a str,
}
