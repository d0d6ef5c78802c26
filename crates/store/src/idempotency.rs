//! `Idempotency-Key` records: the first answer to a POST, replayed for retries.

use chrono::{DateTime, Utc};
use sauti_core::clock;

use crate::{Store, StoreResult, on_pool};

/// How long a key is remembered.
pub const IDEMPOTENCY_TTL_HOURS: i64 = 24;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IdempotencyRecord {
    pub request_digest: String,
    pub status: Option<i32>,
    pub location: Option<String>,
    pub body: Option<Vec<u8>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug)]
pub enum IdempotencyBegin {
    /// The key is new and now reserved: run the request, then complete or abandon it.
    Fresh,
    /// The same request was answered before: send this answer again.
    Replay(IdempotencyRecord),
    /// The key was used for a different request.
    Mismatch,
    /// The first request with this key has not finished yet.
    InProgress,
}

impl Store {
    pub async fn idempotency_begin(&self, account_id: i64, key: &str, digest: &str) -> StoreResult<IdempotencyBegin> {
        let now = clock::now();
        let stale = now - chrono::Duration::hours(IDEMPOTENCY_TTL_HOURS);
        on_pool!(self, p => sqlx::query("DELETE FROM idempotency_keys WHERE account_id = $1 AND key = $2 AND created_at < $3")
            .bind(account_id).bind(key).bind(stale).execute(p).await.map(|_| ()))?;
        let sql = "INSERT INTO idempotency_keys (account_id, key, request_digest, created_at) VALUES ($1, $2, $3, $4) \
                   ON CONFLICT (account_id, key) DO NOTHING";
        let inserted = on_pool!(self, p => sqlx::query(sql)
            .bind(account_id).bind(key).bind(digest).bind(now)
            .execute(p).await.map(|r| r.rows_affected()))?;
        if inserted == 1 {
            return Ok(IdempotencyBegin::Fresh);
        }
        let sql = "SELECT request_digest, status, location, body, created_at FROM idempotency_keys WHERE account_id = $1 AND key = $2";
        let rec: Option<IdempotencyRecord> =
            on_pool!(self, p => sqlx::query_as(sql).bind(account_id).bind(key).fetch_optional(p).await)?;
        Ok(match rec {
            // Deleted between our insert and select (abandoned): treat as in progress; the
            // client retries.
            None => IdempotencyBegin::InProgress,
            Some(r) if r.request_digest != digest => IdempotencyBegin::Mismatch,
            Some(r) if r.status.is_none() => IdempotencyBegin::InProgress,
            Some(r) => IdempotencyBegin::Replay(r),
        })
    }

    pub async fn idempotency_complete(
        &self,
        account_id: i64,
        key: &str,
        status: u16,
        location: Option<&str>,
        body: &[u8],
    ) -> StoreResult<()> {
        let sql =
            "UPDATE idempotency_keys SET status = $3, location = $4, body = $5 WHERE account_id = $1 AND key = $2";
        on_pool!(self, p => sqlx::query(sql)
            .bind(account_id).bind(key).bind(i32::from(status)).bind(location).bind(body)
            .execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// Forget a reservation whose request failed on our side, so a retry can run.
    pub async fn idempotency_abandon(&self, account_id: i64, key: &str) -> StoreResult<()> {
        on_pool!(self, p => sqlx::query("DELETE FROM idempotency_keys WHERE account_id = $1 AND key = $2")
            .bind(account_id).bind(key).execute(p).await.map(|_| ()))?;
        Ok(())
    }
}
