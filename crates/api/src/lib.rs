//! sauti's HTTP API.
//!
//! [`build_router`] assembles every route over an [`AppState`]; [`run`] serves it on a
//! listener the caller bound (port 0 in tests) until `shutdown` resolves, then drains
//! in-flight requests.
#![forbid(unsafe_code)]

pub mod admin;
mod audio;
mod auth;
mod batch;
mod cache;
pub mod contact_csv;
mod error;
mod extract;
mod idempotency;
mod image;
mod inserts;
mod lookups;
mod metrics;
pub mod openapi;
mod pagination;
mod rate_limit;
mod routes;
mod wire;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use sauti_store::Store;

pub use error::{ApiError, ErrorBody};
pub use rate_limit::RateLimit;

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// How long a login session (`POST /api/authenticate`) lasts.
    pub session_ttl: Duration,
    /// Largest request body accepted; larger ones answer 413. CSV uploads have their own.
    pub body_limit_bytes: usize,
    /// Largest CSV upload (`POST /api/contact_imports`).
    pub import_limit_bytes: u64,
    /// Largest client logo image (`PUT /api/clients/{id}/logo`).
    pub logo_limit_bytes: u64,
    /// Largest voice recording (`POST /api/recordings`, `PUT /api/recordings/{id}/media`).
    pub recording_limit_bytes: u64,
    /// Most bytes of files one email template carries in all
    /// (`POST /api/templates/{id}/attachments`); also bounds one file.
    pub attachment_limit_bytes: u64,
    /// Where uploads wait to be processed (`<data_dir>/imports`) and uploaded images and
    /// recordings are kept (`<data_dir>/blobs`).
    pub data_dir: std::path::PathBuf,
    /// How long a resolved access token is trusted without asking the database again.
    /// Writes through this process clear it at once; this bounds how long a token revoked
    /// through another node keeps working here. Zero disables the cache.
    pub auth_cache_ttl: Duration,
    /// sauti's base URL as providers reach it: callback URLs are checked against it
    /// (Twilio signs the full URL).
    pub public_url: String,
    /// Where time-counting rules (OTP expiry, send and velocity limits, rate limits) read
    /// the time; tests substitute a clock they move by hand.
    pub clock: sauti_core::clock::SharedClock,
    /// The server's own secret: one-time codes are derived from it and never stored, and
    /// the URLs providers fetch a call's recording from are signed with it. Every node of one installation must share it (`SAUTI_SECRET_KEY`).
    pub secret_key: std::sync::Arc<sauti_core::secret::ServerKey>,
    /// Requests each access token may make (by client address for requests without a
    /// valid token), kept by each node for itself; past it the API answers 429 with
    /// `Retry-After`. Operations endpoints, the API docs, provider callbacks and call TwiML
    /// are not limited. `None` disables it (`SAUTI_RATE_LIMIT=off`). Default: 200/s,
    /// bursts of 400.
    pub rate_limit: Option<RateLimit>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            session_ttl: Duration::from_secs(24 * 3600),
            body_limit_bytes: 1024 * 1024,
            import_limit_bytes: 2 * 1024 * 1024 * 1024,
            logo_limit_bytes: 2 * 1024 * 1024,
            recording_limit_bytes: 20 * 1024 * 1024,
            // Base64 makes 15 MiB about 20 MB on the wire, under the 25 MB most mail
            // servers accept.
            attachment_limit_bytes: 15 * 1024 * 1024,
            data_dir: std::path::PathBuf::from("sauti-data"),
            auth_cache_ttl: Duration::from_secs(2),
            public_url: "http://127.0.0.1:8080".into(),
            clock: sauti_core::clock::system(),
            secret_key: std::sync::Arc::new(sauti_core::secret::ServerKey::random()),
            rate_limit: Some(RateLimit::default()),
        }
    }
}

/// Everything a request handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub config: Arc<ApiConfig>,
    metrics: Arc<metrics::HttpMetrics>,
    auth_cache: Arc<auth::AuthCache>,
    /// Accounts as the hot paths read them (default country, limits): cached like tokens.
    accounts: Arc<cache::TtlCache<i64, Arc<sauti_store::Account>>>,
    rate_limiter: Option<Arc<rate_limit::Limiter>>,
    /// Notified when new work may be due, so the engine in this process starts at once
    /// instead of at its next poll.
    pub wake: Arc<tokio::sync::Notify>,
    /// Group commit of `POST /api/transmissions`.
    inserts: Arc<inserts::Inserts>,
    /// Batched contact look-ups of sends to raw numbers.
    contacts_by_msisdn: Arc<lookups::ContactLookups>,
}

impl AppState {
    pub fn new(store: Store, config: ApiConfig) -> Self {
        Self {
            inserts: Arc::new(inserts::Inserts::new(store.clone())),
            contacts_by_msisdn: Arc::new(lookups::ContactLookups::new(store.clone())),
            store,
            auth_cache: Arc::new(auth::AuthCache::new(config.auth_cache_ttl)),
            accounts: Arc::new(cache::TtlCache::new(config.auth_cache_ttl)),
            rate_limiter: config
                .rate_limit
                .map(|limit| Arc::new(rate_limit::Limiter::new(limit, config.clock.clone()))),
            config: Arc::new(config),
            metrics: Arc::new(metrics::HttpMetrics::new()),
            wake: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// The caller's account for reading its settings, from the cache when it is fresh:
    /// nearly every send reads it. Not for read-modify-write (that reads the row).
    pub(crate) async fn account(&self, id: i64) -> error::ApiResult<Arc<sauti_store::Account>> {
        if let Some(a) = self.accounts.get(&id) {
            return Ok(a);
        }
        let a = Arc::new(self.store.get_account(id).await?.ok_or(error::ApiError::NotFound)?);
        self.accounts.put(id, a.clone());
        Ok(a)
    }
}

/// The whole application: native API, operations endpoints, OpenAPI and docs.
pub fn build_router(state: AppState) -> Router {
    routes::router(state)
}

/// Serve `build_router(state)` on `listener` until `shutdown` completes, then finish the
/// requests in flight.
pub async fn run(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    routes::contact_imports::resume_imports(&state).await;
    let app = build_router(state);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
