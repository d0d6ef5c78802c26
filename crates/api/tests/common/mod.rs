//! Test harness: the real server on 127.0.0.1:0 over a fresh database, driven over HTTP.
//!
//! `both_backends!(name, |app| async move { … })` defines `name::sqlite` and
//! `name::postgres`; the PostgreSQL one prints a line and passes when
//! `SAUTI_TEST_DATABASE_URL` is unset (CI always sets it).
#![allow(dead_code)]

use base64::Engine as _;
use hmac::Mac as _;
use reqwest::{Method, StatusCode};
use sauti_api::{ApiConfig, AppState};
use sauti_store::testing::{Backend, TestDatabase};
use sauti_store::{Store, StoreOptions};
use serde_json::Value;

pub struct App {
    pub base: String,
    pub store: Store,
    pub client: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    engine: Option<(tokio_util::sync::CancellationToken, sauti_engine::Engine)>,
    /// The server's key, so a test can work out a verification's code as the engine does.
    pub secret_key: std::sync::Arc<sauti_core::secret::ServerKey>,
    /// Set by [`App::start_with_clock`]: the server's time, moved by the test.
    pub clock: Option<std::sync::Arc<sauti_core::clock::ManualClock>>,
    _db: TestDatabase,
}

/// Engine settings for tests: quick polls, quick retries, a sandbox that answers at once.
pub fn test_engine_config(public_url: &str) -> sauti_engine::EngineConfig {
    sauti_engine::EngineConfig {
        poll_interval: std::time::Duration::from_millis(20),
        retry_base: std::time::Duration::from_millis(50),
        retry_max: std::time::Duration::from_millis(200),
        lease: std::time::Duration::from_secs(5),
        sandbox: sauti_channels::sandbox::SandboxSettings { delivery_delay_ms: 20 },
        public_url: public_url.to_string(),
        ..Default::default()
    }
}

/// A tenant made the way an operator makes one (`sauti accounts create`).
pub struct Tenant {
    pub account_id: i64,
    pub token: String,
    pub token_id: i64,
}

/// The server's settings for tests: the defaults without the rate limit, since many
/// tests fire hundreds of requests with one token (`rate_limit.rs` sets its own).
pub fn test_api_config() -> ApiConfig {
    ApiConfig {
        rate_limit: None,
        ..Default::default()
    }
}

impl App {
    pub async fn start(backend: Backend) -> Option<App> {
        Self::start_with(backend, test_api_config()).await
    }

    /// The server and the delivery engine, as `sauti serve` runs them.
    pub async fn with_engine(backend: Backend) -> Option<App> {
        Self::start_full(backend, test_api_config(), Some(|base: &str| test_engine_config(base))).await
    }

    /// The server on a clock that moves only when the test calls [`App::advance`].
    pub async fn start_with_clock(backend: Backend) -> Option<App> {
        let clock = sauti_core::clock::ManualClock::new();
        let config = ApiConfig {
            clock: clock.clone(),
            ..test_api_config()
        };
        let mut app = Self::start_with(backend, config).await?;
        app.clock = Some(clock);
        Some(app)
    }

    /// The server and the engine on one clock that moves only when the test calls
    /// [`App::advance`], standing at the current time.
    pub async fn with_engine_and_clock(backend: Backend) -> Option<App> {
        Self::with_engine_at(backend, sauti_core::clock::now()).await
    }

    /// As [`App::with_engine_and_clock`], the clock standing at `at`.
    pub async fn with_engine_at(backend: Backend, at: chrono::DateTime<chrono::Utc>) -> Option<App> {
        let clock = sauti_core::clock::ManualClock::at(at);
        let config = ApiConfig {
            clock: clock.clone(),
            ..test_api_config()
        };
        let engine_clock: sauti_core::clock::SharedClock = clock.clone();
        let mut app = Self::start_full(
            backend,
            config,
            Some(move |base: &str| sauti_engine::EngineConfig {
                clock: engine_clock,
                ..test_engine_config(base)
            }),
        )
        .await?;
        app.clock = Some(clock);
        Some(app)
    }

    /// Move the server's clock on (see [`App::start_with_clock`]).
    pub fn advance(&self, secs: u64) {
        self.clock
            .as_ref()
            .expect("started with start_with_clock")
            .advance(std::time::Duration::from_secs(secs));
    }

    /// The code of verification `id`, worked out from the server key the way the engine
    /// does when it sends it.
    pub async fn verification_code(&self, account_id: i64, id: i64) -> String {
        let v = self
            .store
            .get_verification(account_id, id)
            .await
            .unwrap()
            .expect("verification");
        sauti_core::otp::code(&self.secret_key, &v.code_salt, v.code_length as u8)
    }

    pub async fn start_with(backend: Backend, config: ApiConfig) -> Option<App> {
        Self::start_full(backend, config, None::<fn(&str) -> sauti_engine::EngineConfig>).await
    }

    pub async fn start_full(
        backend: Backend,
        mut config: ApiConfig,
        engine: Option<impl FnOnce(&str) -> sauti_engine::EngineConfig>,
    ) -> Option<App> {
        let db = TestDatabase::create(backend).await?;
        if config.data_dir == ApiConfig::default().data_dir {
            config.data_dir = db.scratch_dir().to_path_buf();
        }
        let store = Store::connect(
            &db.url,
            &StoreOptions {
                max_connections: 4,
                // Every filtered count on SQLite takes the split path (ranges counted side
                // by side), so the suite's `Total` checks cover it on a few rows.
                split_count_min_span: 2,
            },
        )
        .await
        .expect("connect");
        store.migrate().await.expect("migrate");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().unwrap());
        config.public_url = base.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let secret_key = config.secret_key.clone();
        let data_dir = config.data_dir.clone();
        let state = AppState::new(store.clone(), config);
        let engine = engine.map(|make| {
            let stop = tokio_util::sync::CancellationToken::new();
            // One installation, one key: the engine writes the codes the API checks.
            // One installation, one data directory: the engine reads the files the API keeps.
            let engine_config = sauti_engine::EngineConfig {
                secret_key: secret_key.clone(),
                data_dir: data_dir.clone(),
                ..make(&base)
            };
            let e = sauti_engine::Engine::start(store.clone(), engine_config, state.wake.clone(), stop.clone());
            (stop, e)
        });
        let server = tokio::spawn(sauti_api::run(state, listener, async move {
            let _ = rx.await;
        }));
        Some(App {
            base,
            store,
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            server: Some(server),
            engine,
            secret_key,
            clock: None,
            _db: db,
        })
    }

    pub async fn tenant(&self, name: &str) -> Tenant {
        let b = sauti_api::admin::create_account(&self.store, name, false)
            .await
            .expect("create account");
        Tenant {
            account_id: b.account.id,
            token: b.access_token,
            token_id: b.access_token_id,
        }
    }

    pub async fn super_admin(&self) -> Tenant {
        let b = sauti_api::admin::create_account(&self.store, "Platform", true)
            .await
            .expect("create account");
        Tenant {
            account_id: b.account.id,
            token: b.access_token,
            token_id: b.access_token_id,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request with a bearer token and an optional JSON body.
    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Resp {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        Resp::from(req.send().await.expect("request")).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.call(Method::GET, path, Some(token), None).await
    }
    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }
    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::PATCH, path, Some(token), Some(body)).await
    }
    pub async fn delete(&self, path: &str, token: &str) -> Resp {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// A token of `tenant`'s account holding exactly `permissions`.
    pub async fn token_with(&self, tenant: &Tenant, permissions: &[&str]) -> String {
        let r = self
            .post(
                "/api/access_tokens",
                &tenant.token,
                serde_json::json!({"permissions": permissions}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body["token"].as_str().unwrap().to_string()
    }

    pub async fn stop(mut self) {
        if let Some((stop, engine)) = self.engine.take() {
            stop.cancel();
            engine.join().await;
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(s) = self.server.take() {
            s.await.expect("server task").expect("server");
        }
        self.store.close().await;
    }
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Resp {
    pub async fn from(r: reqwest::Response) -> Resp {
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            text,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Assert the house error shape and return its machine code.
    pub fn error_code(&self) -> &str {
        assert!(
            self.body["errors"].is_object(),
            "not the house error shape: {} {}",
            self.status,
            self.text
        );
        self.body["code"].as_str().expect("error code")
    }
}

/// Like `both_backends!`, with the delivery engine running beside the server.
#[macro_export]
macro_rules! both_backends_with_engine {
    ($name:ident, |$app:ident| $body:expr) => {
        $crate::both_backends_started_by!(with_engine, $name, |$app| $body);
    };
}

/// Poll `f` every 20 ms until it returns `Some`, for at most `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A fresh directory for an app's `data_dir`, so a test can look at the blob files.
pub fn scratch_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sauti-test-data-{}", sauti_core::secret::generate_token()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Files under `dir`, recursively.
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Like `both_backends!`, for scenarios that need their own `ApiConfig`; each run gets a
/// fresh `data_dir`, handed to the scenario so it can look at the files.
#[macro_export]
macro_rules! both_backends_with {
    ($name:ident, $config:expr, |$app:ident, $dir:ident| $body:expr) => {
        $crate::both_backends_in_dir!(
            None::<fn(&str) -> sauti_engine::EngineConfig>,
            $name,
            $config,
            |$app, $dir| $body
        );
    };
}

/// `both_backends_with!` with the delivery engine running beside the server.
#[macro_export]
macro_rules! both_backends_with_engine_and {
    ($name:ident, $config:expr, |$app:ident, $dir:ident| $body:expr) => {
        $crate::both_backends_in_dir!(
            Some($crate::common::test_engine_config),
            $name,
            $config,
            |$app, $dir| $body
        );
    };
}

#[macro_export]
macro_rules! both_backends_in_dir {
    ($engine:expr, $name:ident, $config:expr, |$app:ident, $dir:ident| $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn scenario($app: $crate::common::App, $dir: std::path::PathBuf) {
                $body.await
            }

            async fn run(backend: sauti_store::testing::Backend) {
                let dir = $crate::common::scratch_dir();
                let config = sauti_api::ApiConfig {
                    data_dir: dir.clone(),
                    ..$config
                };
                if let Some(app) = $crate::common::App::start_full(backend, config, $engine).await {
                    scenario(app, dir.clone()).await;
                }
                let _ = std::fs::remove_dir_all(&dir);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                run(sauti_store::testing::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                run(sauti_store::testing::Backend::Postgres).await;
            }
        }
    };
}

#[macro_export]
macro_rules! both_backends {
    ($name:ident, |$app:ident| $body:expr) => {
        $crate::both_backends_started_by!(start, $name, |$app| $body);
    };
}

/// The two tests of a scenario, the app made by `App::$start`.
#[macro_export]
macro_rules! both_backends_started_by {
    ($start:ident, $name:ident, |$app:ident| $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn scenario($app: $crate::common::App) {
                $body.await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = $crate::common::App::$start(sauti_store::testing::Backend::Sqlite)
                    .await
                    .unwrap();
                scenario(app).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(app) = $crate::common::App::$start(sauti_store::testing::Backend::Postgres).await {
                    scenario(app).await;
                }
            }
        }
    };
}

// Assertions shared by the test files: each states one thing a user sees.

pub fn assert_status(r: &Resp, status: StatusCode, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.text);
}

pub fn assert_not_found(r: &Resp, what: &str) {
    assert_status(r, StatusCode::NOT_FOUND, what);
    assert_eq!(r.error_code(), "not_found", "{what}");
}

pub fn assert_forbidden(r: &Resp, what: &str) {
    assert_status(r, StatusCode::FORBIDDEN, what);
    assert_eq!(r.error_code(), "forbidden", "{what}");
}

/// A 422 in the house shape with an error on `field`; returns that field's messages.
pub fn assert_invalid<'a>(r: &'a Resp, field: &str, what: &str) -> &'a Vec<Value> {
    assert_status(r, StatusCode::UNPROCESSABLE_ENTITY, what);
    assert_eq!(r.error_code(), "validation_failed", "{what}");
    let msgs = r.body["errors"][field]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: no error on `{field}`: {}", r.text));
    assert!(!msgs.is_empty(), "{what}: {}", r.text);
    msgs
}

/// SCFM timestamps: UTC with milliseconds, `2023-09-18T06:34:48.708Z`.
pub fn assert_timestamp(v: &Value, what: &str) {
    let s = v.as_str().unwrap_or_else(|| panic!("{what}: not a string: {v}"));
    assert_eq!(s.len(), 24, "{what}: {s}");
    assert!(s.ends_with('Z'), "{what}: {s}");
    chrono::DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{what}: {s}: {e}"));
}

/// A webhook receiver on loopback that records every request and answers `status`.
pub struct Receiver {
    pub url: String,
    pub got: std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, String)>>>,
    pub status: std::sync::Arc<std::sync::Mutex<u16>>,
}

pub async fn receiver() -> Receiver {
    let got: std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, String)>>> = Default::default();
    let status = std::sync::Arc::new(std::sync::Mutex::new(200u16));
    let (g, s) = (got.clone(), status.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let (g, s) = (g.clone(), s.clone());
            async move {
                g.lock().unwrap().push((headers, body));
                axum::http::StatusCode::from_u16(*s.lock().unwrap()).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver { url, got, status }
}

/// Verify a Standard Webhooks signature the way a receiver would, from the spec (not
/// with sauti's signing code).
pub fn verify(secret: &str, headers: &axum::http::HeaderMap, body: &str) -> bool {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.{}", h("webhook-id"), h("webhook-timestamp"), body).as_bytes());
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    h("webhook-signature").split(' ').any(|s| s == expected)
}

fn repo() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The test peers' Python (a venv with aiosmtpd and twilio, made by
/// `scripts/install-test-peers`).
pub fn peer_python() -> std::path::PathBuf {
    let python = repo().join(".peers/venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/install-test-peers",
        python.display()
    );
    python
}

/// Start `peers/fake_twilio.py` (a Twilio-compatible provider that signs what it sends
/// with the official `twilio` package) with auth token `token`; its base URL once it
/// listens. `callback_delay` (seconds) is how long it waits before each callback: long
/// enough for the engine to have written the remote id it names, as with the real
/// provider.
pub async fn fake_twilio(token: &str, callback_delay: &str) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(peer_python())
        .arg(repo().join("peers/fake_twilio.py"))
        .args(["--port", "0", "--account-sid", "AC0123", "--auth-token", token])
        .env("FAKE_TWILIO_CALLBACK_DELAY", callback_delay)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start fake_twilio.py");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(a) = line.split("listening on ").nth(1) {
                return a.trim().to_string();
            }
        }
        panic!("fake_twilio.py exited before listening");
    })
    .await
    .expect("fake_twilio.py listens");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, format!("http://{addr}"))
}
