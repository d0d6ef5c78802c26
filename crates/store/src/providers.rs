//! Providers: an account's routes to the outside (SMPP binds, Twilio-compatible accounts,
//! Kannel boxes, SMTP relays). Settings hold credentials and are never returned by the API.

use chrono::{DateTime, Utc};
use sauti_core::clock;
use sauti_core::filter::ListQuery;

use crate::list::account_scope;
use crate::users::CAS_TRIES;
use crate::{Json, JsonMap, Page, Store, StoreError, StoreResult, on_pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Provider {
    pub id: i64,
    pub account_id: i64,
    pub name: String,
    pub kind: String,
    pub channels: Json<Vec<String>>,
    pub settings: Json<JsonMap>,
    pub prefix: String,
    pub weight: i64,
    pub throughput_per_second: Option<i64>,
    pub active: bool,
    pub metadata: Json<JsonMap>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Store {
    /// Insert `p` (id and timestamps ignored).
    pub async fn create_provider(&self, p: &Provider) -> StoreResult<Provider> {
        let now = clock::now();
        let sql = "INSERT INTO providers (account_id, name, kind, channels, settings, prefix, weight, throughput_per_second, \
                   active, metadata, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) RETURNING *";
        Ok(on_pool!(self, pool => sqlx::query_as(sql)
            .bind(p.account_id)
            .bind(&p.name)
            .bind(&p.kind)
            .bind(&p.channels)
            .bind(&p.settings)
            .bind(&p.prefix)
            .bind(p.weight)
            .bind(p.throughput_per_second)
            .bind(p.active)
            .bind(&p.metadata)
            .bind(now)
            .fetch_one(pool)
            .await)?)
    }

    pub async fn get_provider(&self, account_id: i64, id: i64) -> StoreResult<Option<Provider>> {
        let sql = "SELECT * FROM providers WHERE account_id = $1 AND id = $2";
        Ok(on_pool!(self, p => sqlx::query_as(sql).bind(account_id).bind(id).fetch_optional(p).await)?)
    }

    /// A provider by id alone, for callbacks that name it in their URL.
    pub async fn find_provider(&self, id: i64) -> StoreResult<Option<Provider>> {
        let sql = "SELECT * FROM providers WHERE id = $1";
        Ok(on_pool!(self, p => sqlx::query_as(sql).bind(id).fetch_optional(p).await)?)
    }

    pub async fn list_providers(&self, account_id: i64, query: &ListQuery) -> StoreResult<Page<Provider>> {
        self.list_rows("providers", account_scope(account_id), query).await
    }

    /// Every provider of every account, for the engine's routing table.
    pub async fn all_providers(&self) -> StoreResult<Vec<Provider>> {
        let sql = "SELECT * FROM providers ORDER BY id";
        Ok(on_pool!(self, p => sqlx::query_as(sql).fetch_all(p).await)?)
    }

    /// A cheap fingerprint of the providers table (count and newest change), so the engine
    /// reloads its routing table only when something changed.
    pub async fn providers_version(&self) -> StoreResult<(i64, Option<String>)> {
        // As text: SQLite's MAX over a text column does not decode as a timestamp.
        let sql = "SELECT COUNT(*), CAST(MAX(updated_at) AS TEXT) FROM providers";
        Ok(on_pool!(self, p => sqlx::query_as(sql).fetch_one(p).await)?)
    }

    pub async fn update_provider(
        &self,
        account_id: i64,
        id: i64,
        change: impl Fn(&mut Provider),
    ) -> StoreResult<Option<Provider>> {
        for _ in 0..CAS_TRIES {
            let Some(old) = self.get_provider(account_id, id).await? else {
                return Ok(None);
            };
            let mut p = old.clone();
            change(&mut p);
            p.updated_at = clock::now().max(old.updated_at + chrono::Duration::microseconds(1));
            let sql = "UPDATE providers SET name = $3, channels = $4, settings = $5, prefix = $6, weight = $7, \
                       throughput_per_second = $8, active = $9, metadata = $10, updated_at = $11 \
                       WHERE account_id = $1 AND id = $2 AND updated_at = $12";
            let n = on_pool!(self, pool => sqlx::query(sql)
                .bind(account_id)
                .bind(id)
                .bind(&p.name)
                .bind(&p.channels)
                .bind(&p.settings)
                .bind(&p.prefix)
                .bind(p.weight)
                .bind(p.throughput_per_second)
                .bind(p.active)
                .bind(&p.metadata)
                .bind(p.updated_at)
                .bind(old.updated_at)
                .execute(pool)
                .await
                .map(|r| r.rows_affected()))?;
            if n == 1 {
                return Ok(Some(p));
            }
        }
        Err(StoreError::Contended)
    }

    pub async fn delete_provider(&self, account_id: i64, id: i64) -> StoreResult<bool> {
        let sql = "DELETE FROM providers WHERE account_id = $1 AND id = $2";
        let n = on_pool!(self, p => sqlx::query(sql).bind(account_id).bind(id).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }
}
