//! The delivery workers alive, for limits shared between nodes (a provider's
//! `throughput_per_second` is split among the workers sending through it).

use chrono::{DateTime, Utc};

use crate::{Store, StoreResult, on_pool, on_writer};

impl Store {
    /// Stamp worker `owner` as alive at `now` and return how many workers were seen since
    /// `now - alive_within` (itself included). Rows of workers gone for ten times that
    /// are removed.
    pub async fn worker_heartbeat(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        alive_within: std::time::Duration,
    ) -> StoreResult<u32> {
        let window = chrono::Duration::from_std(alive_within).unwrap_or(chrono::Duration::seconds(30));
        let upsert = "INSERT INTO workers (owner, seen_at) VALUES ($1, $2) \
                      ON CONFLICT (owner) DO UPDATE SET seen_at = excluded.seen_at";
        let sweep = "DELETE FROM workers WHERE seen_at < $1";
        on_writer!(self, p => {
            sqlx::query(upsert).bind(owner).bind(now).execute(p).await?;
            sqlx::query(sweep).bind(now - window * 10).execute(p).await?;
        });
        let count = "SELECT COUNT(*) FROM workers WHERE seen_at >= $1";
        let n: i64 = on_pool!(self, p => sqlx::query_scalar(count).bind(now - window).fetch_one(p).await)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX).max(1))
    }

    /// Worker `owner` stopped: the others stop counting it at once.
    pub async fn worker_stopped(&self, owner: &str) -> StoreResult<()> {
        let sql = "DELETE FROM workers WHERE owner = $1";
        on_writer!(self, p => sqlx::query(sql).bind(owner).execute(p).await.map(|_| ()))?;
        Ok(())
    }
}
