//! The Store API: every read and write sauti makes, over SQLite or PostgreSQL.
//!
//! One [`Store`] wraps either pool. Queries are written once with `$N` placeholders, which
//! both drivers accept, and run on whichever pool is configured ([`on_pool!`]); where the
//! dialects differ (JSON paths, upserts) the SQL is chosen per [`Dialect`].
//! Every tenant-owned query takes the account id and filters by it.
#![deny(unsafe_code)]

mod accounts;
pub mod blobs;
pub mod callouts;
pub mod calls;
mod clients;
pub mod contacts;
mod content;
mod delivery;
mod error;
mod groups;
mod idempotency;
mod imports;
mod inline;
mod list;
mod providers;
mod recordings;
pub mod signups;
mod sql;
pub mod testing;
mod tokens;
pub mod transmissions;
mod users;
pub mod verifications;
pub mod webhooks;
mod workers;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

pub use accounts::{Account, AccountChanges, NewAccount};
pub use callouts::{
    BatchOperation, Callout, CalloutContent, CalloutEvent, CalloutStatistics, CalloutTransition, PaceLimits, Paced,
    ParticipationChange, Progress,
};
pub use calls::{CallEvent, CallStatusIn, PhoneCall};
pub use clients::Client;
pub use contacts::{Contact, ContactFields, ContactScope};
pub use content::{AttachOutcome, AttachmentLimits, Template, TemplateAttachment, Text};
pub use delivery::{Outcome, ReceiptIn, ReceiptMatch, Settle};
pub use error::{StoreError, StoreResult};
pub use groups::{Group, NewGroup};
pub use idempotency::{IdempotencyBegin, IdempotencyRecord};
pub use imports::{ContactImport, ImportProgress, RejectedRow};
pub use list::Page;
pub use providers::Provider;
pub use recordings::{Recording, RecordingMedia};
pub use sauti_core::filter::Dialect;
pub use signups::{Registered, Registration, Signup};
pub use tokens::{AccessToken, NewAccessToken, Principal, TokenKind};
pub use transmissions::{Attempt, NewTransmission, ResultRow, Transition, Transmission, VERIFICATION_ORIGIN};
pub use users::{NewUser, User, UserChanges};
pub use verifications::{
    Canceled, CheckTarget, Checked, Limit, SendLimits, StartVerification, Started, Verification, VerificationSend,
    Window,
};
pub use webhooks::{WebhookDelivery, WebhookDeliveryAttempt, WebhookEndpoint, WebhookEvent};

/// JSON columns: JSONB on PostgreSQL, text on SQLite.
pub use sqlx::types::Json;
pub type JsonMap = serde_json::Map<String, serde_json::Value>;

#[derive(Clone, Debug)]
enum Pool {
    /// The connections for reads (and the occasional write), and the one connection the
    /// hot writes take in turn (see [`on_writer!`]).
    Sqlite(SqlitePool, SqlitePool),
    Postgres(PgPool),
}

/// Run `$body` with `$pool` bound to whichever pool the store holds. The body is compiled
/// once per backend, so one query text serves both.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            $crate::Pool::Sqlite($pool, _) => $body,
            $crate::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// `on_pool!` for the hot writes: claims, outcomes, receipts, pacing, populations and the
/// API's inserts of messages. On SQLite they queue for one writer connection. SQLite
/// lets one connection write at a time anyway; a connection that finds the lock taken
/// sleeps in SQLite's busy handler (1, 2, 5, 10 … 100 ms) although the lock is usually
/// free again within a millisecond, so with several connections writing the engine spent
/// its time asleep. Queued on the pool's semaphore instead, the next writer starts the
/// moment the last one commits. On PostgreSQL, which has row locks, it is `on_pool!`.
macro_rules! on_writer {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            $crate::Pool::Sqlite(_, $pool) => $body,
            $crate::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_writer;

/// Rows sqlx's SQLite connection thread may hand over before the reader takes them.
const ROW_BUFFER: usize = 2048;

/// Connection settings beyond the URL.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub max_connections: u32,
    /// On SQLite, a filtered count over a table whose ids span at least this many is
    /// split across cores (see `list::sqlite_count`).
    pub split_count_min_span: i64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            split_count_min_span: 100_000,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
    /// On a SQLite file: the point reads that skip sqlx's connection threads.
    inline: Option<std::sync::Arc<inline::InlineReads>>,
    subs: std::sync::Arc<webhooks::SubscriptionCache>,
    split_count_min_span: i64,
}

impl Store {
    /// Connect to `sqlite://path` (the file is created) or `postgres://…`.
    pub async fn connect(url: &str, options: &StoreOptions) -> StoreResult<Store> {
        let mut inline = None;
        let pool = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(options.max_connections)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await?;
            Pool::Postgres(pool)
        } else if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                // WAL lets readers run beside the one writer; NORMAL sync is durable across
                // process crashes (the WAL is fsynced at checkpoints), which is what we need.
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
                // A 16 MiB page cache per connection (SQLite's default is 2 MiB) keeps the
                // hot pages of the contacts indexes in memory during bulk imports, and
                // checkpointing every 16 MiB of WAL instead of every 4 MiB means fewer
                // fsyncs. Both were visible in profiles of the 1M-contact import.
                .pragma("cache_size", "-16384")
                .pragma("wal_autocheckpoint", "4096")
                // sqlx's connection thread hands rows over through a channel of 50 (its
                // default): a statement returning more (a claim, a page, a RETURNING of a
                // batch) stopped every 50 rows until the async side woke up and drained
                // them, and in the single writer's case everything waited meanwhile.
                // Every read here collects its rows anyway (none streams an unbounded
                // result), so the larger channel holds no more than the result.
                .row_buffer_size(ROW_BUFFER);
            // No ping before each acquire (sqlx's default): a local file's connection does
            // not drop like a socket, and the ping is one more hand-off to the connection's
            // thread in front of every statement or transaction.
            let pool = SqlitePoolOptions::new()
                .max_connections(options.max_connections.clamp(1, 8))
                .test_before_acquire(false)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(opts.clone())
                .await?;
            let writer = SqlitePoolOptions::new()
                .max_connections(1)
                .test_before_acquire(false)
                // Writers wait their turn here rather than in the busy handler; under a
                // burst of sends the queue may be a few seconds long.
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(opts.clone())
                .await?;
            // An in-memory database lives inside sqlx's connections; only a file can be
            // shared with the inline readers.
            if !url.contains(":memory:") && !url.contains("mode=memory") {
                inline = Some(std::sync::Arc::new(inline::InlineReads::new(opts.get_filename())));
            }
            Pool::Sqlite(pool, writer)
        } else {
            return Err(StoreError::Config(format!(
                "unsupported database URL (expected sqlite:// or postgres://): {}",
                redact_url(url)
            )));
        };
        Ok(Store {
            pool,
            inline,
            subs: std::sync::Arc::new(webhooks::SubscriptionCache::new()),
            split_count_min_span: options.split_count_min_span,
        })
    }

    pub fn dialect(&self) -> Dialect {
        match self.pool {
            Pool::Sqlite(..) => Dialect::Sqlite,
            Pool::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Apply pending migrations. On PostgreSQL sqlx takes an advisory lock, so several
    /// nodes starting at once do not race.
    pub async fn migrate(&self) -> StoreResult<()> {
        match &self.pool {
            Pool::Sqlite(p, _) => sqlx::migrate!("./migrations/sqlite").run(p).await?,
            Pool::Postgres(p) => sqlx::migrate!("./migrations/postgres").run(p).await?,
        }
        Ok(())
    }

    /// A round trip to the database, for readiness checks.
    pub async fn ping(&self) -> StoreResult<()> {
        on_pool!(self, p => sqlx::query("SELECT 1").execute(p).await.map(|_| ()))?;
        Ok(())
    }

    pub async fn close(&self) {
        if let Pool::Sqlite(_, writer) = &self.pool {
            writer.close().await;
        }
        on_pool!(self, p => p.close().await)
    }
}

/// A database URL with any password replaced, fit for logs and error messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let creds = &url[scheme_end + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(super::redact_url("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(super::redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(super::redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}
