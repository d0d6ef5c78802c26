//! Accounts (tenants).

use chrono::{DateTime, Utc};
use sauti_core::clock;
use sauti_core::filter::ListQuery;

use crate::list::everything;
use crate::{Json, JsonMap, Page, Store, StoreResult, on_pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Account {
    pub id: i64,
    pub name: String,
    pub super_admin: bool,
    pub metadata: Json<JsonMap>,
    pub settings: Json<JsonMap>,
    pub twilio_account_sid: Option<String>,
    pub somleng_account_sid: Option<String>,
    pub twilio_auth_token: Option<String>,
    pub somleng_auth_token: Option<String>,
    pub call_flow_logic: String,
    pub platform_provider_name: Option<String>,
    pub somleng_api_host: Option<String>,
    pub somleng_api_base_url: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct NewAccount {
    pub name: String,
    pub super_admin: bool,
    pub metadata: JsonMap,
    pub settings: JsonMap,
}

impl Account {
    /// The region national phone numbers are read in: the `default_country` setting.
    pub fn default_region(&self) -> Option<sauti_core::msisdn::Region> {
        self.settings
            .0
            .get("default_country")
            .and_then(|v| v.as_str())
            .and_then(sauti_core::msisdn::Region::parse)
    }
}

/// The writable columns of an account, applied by [`Store::update_account`].
pub type AccountChanges = Account;

impl Store {
    pub async fn create_account(&self, new: &NewAccount) -> StoreResult<Account> {
        let now = clock::now();
        let sql = "INSERT INTO accounts (name, super_admin, metadata, settings, created_at, updated_at) \
                   VALUES ($1, $2, $3, $4, $5, $5) RETURNING *";
        Ok(on_pool!(self, p => sqlx::query_as(sql)
            .bind(&new.name)
            .bind(new.super_admin)
            .bind(Json(&new.metadata))
            .bind(Json(&new.settings))
            .bind(now)
            .fetch_one(p)
            .await)?)
    }

    pub async fn get_account(&self, id: i64) -> StoreResult<Option<Account>> {
        Ok(
            on_pool!(self, p => sqlx::query_as("SELECT * FROM accounts WHERE id = $1").bind(id).fetch_optional(p).await)?,
        )
    }

    pub async fn list_accounts(&self, query: &ListQuery) -> StoreResult<Page<Account>> {
        self.list_rows("accounts", everything(), query).await
    }

    /// Apply `change` to the current row and write it, retrying if another writer got there
    /// first (optimistic: the write is conditional on `updated_at`). `None` if absent.
    pub async fn update_account(&self, id: i64, change: impl Fn(&mut Account)) -> StoreResult<Option<Account>> {
        for _ in 0..crate::users::CAS_TRIES {
            let Some(old) = self.get_account(id).await? else {
                return Ok(None);
            };
            let mut new = old.clone();
            change(&mut new);
            new.updated_at = clock::now().max(old.updated_at + chrono::Duration::microseconds(1));
            let sql = "UPDATE accounts SET name = $2, metadata = $3, settings = $4, twilio_account_sid = $5, \
                       somleng_account_sid = $6, twilio_auth_token = $7, somleng_auth_token = $8, call_flow_logic = $9, \
                       platform_provider_name = $10, somleng_api_host = $11, somleng_api_base_url = $12, updated_at = $13 \
                       WHERE id = $1 AND updated_at = $14";
            let done = on_pool!(self, p => sqlx::query(sql)
                .bind(id)
                .bind(&new.name)
                .bind(&new.metadata)
                .bind(&new.settings)
                .bind(&new.twilio_account_sid)
                .bind(&new.somleng_account_sid)
                .bind(&new.twilio_auth_token)
                .bind(&new.somleng_auth_token)
                .bind(&new.call_flow_logic)
                .bind(&new.platform_provider_name)
                .bind(&new.somleng_api_host)
                .bind(&new.somleng_api_base_url)
                .bind(new.updated_at)
                .bind(old.updated_at)
                .execute(p)
                .await
                .map(|r| r.rows_affected()))?;
            if done == 1 {
                return Ok(Some(new));
            }
        }
        Err(crate::StoreError::Contended)
    }

    /// Delete an account and, by cascade, everything it owns.
    pub async fn delete_account(&self, id: i64) -> StoreResult<bool> {
        let n = on_pool!(self, p => sqlx::query("DELETE FROM accounts WHERE id = $1").bind(id).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }
}
