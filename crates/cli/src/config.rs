//! Configuration of the `sauti` binary: built-in defaults, then an optional TOML file, then
//! `SAUTI_*` environment variables — each layer overriding only what it sets.
//!
//! The environment is read through a lookup function rather than `std::env` directly, so
//! the layering is unit-tested without mutating the process environment (which is shared
//! by every test thread).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./sauti-data";
pub const DEFAULT_LOG: &str = "info";
const DEFAULT_SESSION_TTL_SECONDS: u64 = 24 * 3600;
const DEFAULT_BODY_LIMIT_BYTES: usize = 1024 * 1024;

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl LogFormat {
    fn parse(value: &str) -> Result<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => bail!("unknown log format {other:?} (expected \"text\" or \"json\")"),
        }
    }
}

/// The resolved configuration every command works from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `host:port` the HTTP API listens on; port 0 picks a free port (logged at start).
    pub bind: String,
    /// Where sauti keeps its files: the default SQLite database, CSV uploads waiting to be
    /// imported, uploaded images (`blobs/`).
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`. May hold a password: log it only via `redact_url`.
    pub database_url: String,
    /// A `tracing` EnvFilter directive, e.g. `info` or `info,sauti_api=debug`.
    pub log: String,
    pub log_format: LogFormat,
    pub session_ttl: Duration,
    pub body_limit_bytes: usize,
    /// sauti's base URL as providers reach it (status callbacks, DLR URLs); defaults to
    /// `http://<bind>`.
    pub public_url: String,
    /// How long a worker's claim on a transmission lasts before another may take it.
    pub lease: Duration,
    /// Requests per access token (per client address without one), per node; `None` is
    /// `off`.
    pub rate_limit: Option<sauti_api::RateLimit>,
}

/// The TOML file: every key optional, unknown keys rejected so a typo is not silently
/// ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    bind: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    log: Option<String>,
    log_format: Option<String>,
    session_ttl_seconds: Option<u64>,
    body_limit_bytes: Option<usize>,
    public_url: Option<String>,
    lease_seconds: Option<u64>,
    rate_limit: Option<String>,
}

/// One layer's worth of settings, before defaults fill the gaps.
#[derive(Debug, Default)]
struct Layer {
    bind: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    log: Option<String>,
    log_format: Option<LogFormat>,
    session_ttl_seconds: Option<u64>,
    body_limit_bytes: Option<usize>,
    public_url: Option<String>,
    lease_seconds: Option<u64>,
    rate_limit: Option<String>,
}

impl Layer {
    /// Fields set in `over` win.
    fn overlay(self, over: Layer) -> Layer {
        Layer {
            bind: over.bind.or(self.bind),
            data_dir: over.data_dir.or(self.data_dir),
            database_url: over.database_url.or(self.database_url),
            log: over.log.or(self.log),
            log_format: over.log_format.or(self.log_format),
            session_ttl_seconds: over.session_ttl_seconds.or(self.session_ttl_seconds),
            body_limit_bytes: over.body_limit_bytes.or(self.body_limit_bytes),
            public_url: over.public_url.or(self.public_url),
            lease_seconds: over.lease_seconds.or(self.lease_seconds),
            rate_limit: over.rate_limit.or(self.rate_limit),
        }
    }
}

impl Config {
    /// Resolve the configuration from an optional TOML file and an environment lookup
    /// (`|name| std::env::var(name).ok()` in the binary).
    pub fn load(file: Option<&Path>, env: impl Fn(&str) -> Option<String>) -> Result<Config> {
        let file_layer = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read configuration file {}", path.display()))?;
                from_toml(&text).with_context(|| format!("invalid configuration file {}", path.display()))?
            }
            None => Layer::default(),
        };
        let env_layer = from_env(&env)?;
        resolve(file_layer.overlay(env_layer))
    }

    /// Settings for the HTTP layer.
    pub fn api_config(&self) -> sauti_api::ApiConfig {
        sauti_api::ApiConfig {
            session_ttl: self.session_ttl,
            body_limit_bytes: self.body_limit_bytes,
            data_dir: self.data_dir.clone(),
            public_url: self.public_url.clone(),
            rate_limit: self.rate_limit,
            ..Default::default()
        }
    }

    /// Settings of the delivery engine.
    pub fn engine_config(&self) -> sauti_engine::EngineConfig {
        sauti_engine::EngineConfig {
            lease: self.lease,
            public_url: self.public_url.clone(),
            data_dir: self.data_dir.clone(),
            ..Default::default()
        }
    }

    /// The SQLite database file this configuration points at, if it is one on disk.
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        sqlite_file(&self.database_url)
    }
}

fn from_toml(text: &str) -> Result<Layer> {
    let file: FileConfig = toml::from_str(text)?;
    Ok(Layer {
        bind: file.bind,
        data_dir: file.data_dir,
        database_url: file.database_url,
        log: file.log,
        log_format: file
            .log_format
            .as_deref()
            .map(LogFormat::parse)
            .transpose()
            .context("log_format")?,
        session_ttl_seconds: file.session_ttl_seconds,
        body_limit_bytes: file.body_limit_bytes,
        public_url: file.public_url,
        lease_seconds: file.lease_seconds,
        rate_limit: file.rate_limit,
    })
}

fn from_env(env: &impl Fn(&str) -> Option<String>) -> Result<Layer> {
    // An empty variable counts as unset: `SAUTI_DATABASE_URL= sauti serve` should mean
    // "the default", not "an empty URL".
    let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let number = |name: &str| -> Result<Option<u64>> {
        var(name)
            .map(|v| {
                v.trim()
                    .parse::<u64>()
                    .with_context(|| format!("{name}: expected a whole number, got {v:?}"))
            })
            .transpose()
    };
    Ok(Layer {
        bind: var("SAUTI_BIND"),
        data_dir: var("SAUTI_DATA_DIR").map(PathBuf::from),
        database_url: var("SAUTI_DATABASE_URL"),
        log: var("SAUTI_LOG"),
        log_format: var("SAUTI_LOG_FORMAT")
            .as_deref()
            .map(LogFormat::parse)
            .transpose()
            .context("SAUTI_LOG_FORMAT")?,
        session_ttl_seconds: number("SAUTI_SESSION_TTL_SECONDS")?,
        body_limit_bytes: number("SAUTI_BODY_LIMIT_BYTES")?
            .map(usize::try_from)
            .transpose()
            .context("SAUTI_BODY_LIMIT_BYTES is too large")?,
        public_url: var("SAUTI_PUBLIC_URL"),
        lease_seconds: number("SAUTI_LEASE_SECONDS")?,
        rate_limit: var("SAUTI_RATE_LIMIT"),
    })
}

fn resolve(layer: Layer) -> Result<Config> {
    let bind = layer.bind.unwrap_or_else(|| DEFAULT_BIND.to_string());
    validate_bind(&bind)?;
    let data_dir = layer.data_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    // The default database follows the data directory, so moving one moves both.
    let database_url = layer.database_url.unwrap_or_else(|| default_database_url(&data_dir));
    if !(database_url.starts_with("sqlite:")
        || database_url.starts_with("postgres://")
        || database_url.starts_with("postgresql://"))
    {
        bail!(
            "database URL must start with sqlite:// or postgres://, got {}",
            sauti_store::redact_url(&database_url)
        );
    }
    let log = layer.log.unwrap_or_else(|| DEFAULT_LOG.to_string());
    // Checked here so a typo fails at start with the offending text, not as silence.
    tracing_subscriber::EnvFilter::builder()
        .parse(&log)
        .with_context(|| format!("invalid log filter {log:?}"))?;
    let session_ttl_seconds = layer.session_ttl_seconds.unwrap_or(DEFAULT_SESSION_TTL_SECONDS);
    if session_ttl_seconds == 0 {
        bail!("session_ttl_seconds must be positive");
    }
    let body_limit_bytes = layer.body_limit_bytes.unwrap_or(DEFAULT_BODY_LIMIT_BYTES);
    if body_limit_bytes == 0 {
        bail!("body_limit_bytes must be positive");
    }
    let public_url = layer
        .public_url
        .unwrap_or_else(|| format!("http://{bind}"))
        .trim_end_matches('/')
        .to_string();
    if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
        bail!("public_url must be an http:// or https:// URL, got {public_url:?}");
    }
    let lease_seconds = layer.lease_seconds.unwrap_or(30);
    if lease_seconds == 0 {
        bail!("lease_seconds must be positive");
    }
    let rate_limit = match layer.rate_limit {
        None => Some(sauti_api::RateLimit::default()),
        Some(text) => sauti_api::RateLimit::parse(&text)
            .map_err(|why| anyhow::anyhow!("invalid rate limit (SAUTI_RATE_LIMIT / rate_limit): {why}"))?,
    };
    Ok(Config {
        rate_limit,
        public_url,
        lease: Duration::from_secs(lease_seconds),
        bind,
        data_dir,
        database_url,
        log,
        log_format: layer.log_format.unwrap_or(LogFormat::Text),
        session_ttl: Duration::from_secs(session_ttl_seconds),
        body_limit_bytes,
    })
}

/// `host:port` with a numeric port; the host is resolved when binding.
fn validate_bind(bind: &str) -> Result<()> {
    let Some((host, port)) = bind.rsplit_once(':') else {
        bail!("bind address must be host:port, got {bind:?}");
    };
    if host.is_empty() || port.parse::<u16>().is_err() {
        bail!("bind address must be host:port with a port from 0 to 65535, got {bind:?}");
    }
    Ok(())
}

/// `sqlite://<data_dir>/sauti.db`. sqlx percent-decodes the path and cuts it at `?`, so
/// those characters are escaped.
fn default_database_url(data_dir: &Path) -> String {
    let path = data_dir.join("sauti.db");
    let mut url = String::from("sqlite://");
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => url.push_str("%25"),
            '?' => url.push_str("%3F"),
            '#' => url.push_str("%23"),
            c => url.push(c),
        }
    }
    url
}

/// The file behind an SQLite URL (undoing the escaping sqlx undoes), or `None` for
/// PostgreSQL and in-memory databases.
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    Some(PathBuf::from(percent_decode(path)))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = s.get(i + 1..i + 3).and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::io::Write;

    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    fn no_env() -> impl Fn(&str) -> Option<String> {
        env_of(&[])
    }

    fn file_with(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file
    }

    #[test]
    fn defaults_need_no_configuration() {
        let config = Config::load(None, no_env()).unwrap();
        assert_eq!(config.bind, "127.0.0.1:8080");
        assert_eq!(config.data_dir, PathBuf::from("./sauti-data"));
        assert_eq!(config.database_url, "sqlite://./sauti-data/sauti.db");
        assert_eq!(config.sqlite_file(), Some(PathBuf::from("./sauti-data/sauti.db")));
        assert_eq!(config.log, "info");
        assert_eq!(config.log_format, LogFormat::Text);
        assert_eq!(config.session_ttl, Duration::from_secs(86400));
        assert_eq!(config.body_limit_bytes, 1024 * 1024);
        assert_eq!(
            config.rate_limit,
            Some(sauti_api::RateLimit {
                per_second: 200,
                burst: 400
            })
        );
        assert_eq!(config.api_config().rate_limit, config.rate_limit);
    }

    #[test]
    fn rate_limit_from_file_and_env() {
        let limit = |per_second, burst| Some(sauti_api::RateLimit { per_second, burst });
        let file = file_with("rate_limit = \"50/s,burst=60\"\n");
        let config = Config::load(Some(file.path()), no_env()).unwrap();
        assert_eq!(config.rate_limit, limit(50, 60));
        let config = Config::load(Some(file.path()), env_of(&[("SAUTI_RATE_LIMIT", "10/s")])).unwrap();
        assert_eq!(config.rate_limit, limit(10, 20), "the burst defaults to twice the rate");
        assert_eq!(config.api_config().rate_limit, limit(10, 20));
        let config = Config::load(Some(file.path()), env_of(&[("SAUTI_RATE_LIMIT", "off")])).unwrap();
        assert_eq!(config.rate_limit, None);
        assert_eq!(config.api_config().rate_limit, None);

        for bad in ["200", "200/min", "0/s", "10/s,burst=0", "10/s,burst"] {
            let e = format!(
                "{:#}",
                Config::load(None, env_of(&[("SAUTI_RATE_LIMIT", bad)])).unwrap_err()
            );
            assert!(e.contains("SAUTI_RATE_LIMIT") && e.contains(bad), "{e}");
        }
    }

    #[test]
    fn file_overrides_defaults() {
        let file = file_with(
            r#"
            bind = "0.0.0.0:9000"
            data_dir = "/var/lib/sauti"
            log = "debug"
            log_format = "json"
            session_ttl_seconds = 60
            body_limit_bytes = 2048
            "#,
        );
        let config = Config::load(Some(file.path()), no_env()).unwrap();
        assert_eq!(config.bind, "0.0.0.0:9000");
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/sauti"));
        assert_eq!(config.database_url, "sqlite:///var/lib/sauti/sauti.db");
        assert_eq!(config.log, "debug");
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.session_ttl, Duration::from_secs(60));
        assert_eq!(config.body_limit_bytes, 2048);
    }

    #[test]
    fn env_overrides_file_and_only_what_it_sets() {
        let file = file_with(
            r#"
            bind = "0.0.0.0:9000"
            data_dir = "/var/lib/sauti"
            database_url = "postgres://file@db/sauti"
            log = "debug"
            "#,
        );
        let env = env_of(&[
            ("SAUTI_BIND", "127.0.0.1:0"),
            ("SAUTI_DATABASE_URL", "postgres://env:pw@db/sauti"),
            ("SAUTI_LOG_FORMAT", "JSON"),
            ("SAUTI_SESSION_TTL_SECONDS", "30"),
            // Empty means unset, so the file's value stays.
            ("SAUTI_LOG", ""),
        ]);
        let config = Config::load(Some(file.path()), env).unwrap();
        assert_eq!(config.bind, "127.0.0.1:0");
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/sauti"));
        assert_eq!(config.database_url, "postgres://env:pw@db/sauti");
        assert_eq!(config.sqlite_file(), None);
        assert_eq!(config.log, "debug");
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.session_ttl, Duration::from_secs(30));
    }

    #[test]
    fn env_data_dir_moves_the_default_database() {
        let file = file_with(r#"data_dir = "/from/file""#);
        let config = Config::load(Some(file.path()), env_of(&[("SAUTI_DATA_DIR", "/tmp/odd?dir")])).unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/tmp/odd?dir"));
        assert_eq!(config.database_url, "sqlite:///tmp/odd%3Fdir/sauti.db");
        assert_eq!(config.sqlite_file(), Some(PathBuf::from("/tmp/odd?dir/sauti.db")));
    }

    #[test]
    fn rejects_bad_values_with_their_source() {
        let err = |r: Result<Config>| format!("{:#}", r.unwrap_err());

        let e = err(Config::load(None, env_of(&[("SAUTI_LOG_FORMAT", "xml")])));
        assert!(e.contains("SAUTI_LOG_FORMAT") && e.contains("xml"), "{e}");
        let e = err(Config::load(None, env_of(&[("SAUTI_BIND", "8080")])));
        assert!(e.contains("host:port"), "{e}");
        let e = err(Config::load(None, env_of(&[("SAUTI_BIND", "localhost:99999")])));
        assert!(e.contains("host:port"), "{e}");
        let e = err(Config::load(
            None,
            env_of(&[("SAUTI_DATABASE_URL", "mysql://u:secret@h/db")]),
        ));
        assert!(e.contains("sqlite://") && !e.contains("secret"), "{e}");
        let e = err(Config::load(None, env_of(&[("SAUTI_SESSION_TTL_SECONDS", "soon")])));
        assert!(e.contains("SAUTI_SESSION_TTL_SECONDS"), "{e}");
        let e = err(Config::load(None, env_of(&[("SAUTI_LOG", "info,[[")])));
        assert!(e.contains("log filter"), "{e}");

        let file = file_with("bnid = \"127.0.0.1:1\"\n");
        let e = err(Config::load(Some(file.path()), no_env()));
        assert!(e.contains("bnid"), "{e}");
        let e = err(Config::load(Some(Path::new("/nonexistent/sauti.toml")), no_env()));
        assert!(e.contains("/nonexistent/sauti.toml"), "{e}");
    }

    #[test]
    fn sqlite_file_handles_url_forms() {
        assert_eq!(sqlite_file("sqlite:data.db"), Some(PathBuf::from("data.db")));
        assert_eq!(
            sqlite_file("sqlite://a%20b/x.db?mode=rwc"),
            Some(PathBuf::from("a b/x.db"))
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://h/db"), None);
    }
}
