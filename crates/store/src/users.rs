//! Users of an account: people who log in.

use chrono::{DateTime, Utc};
use sauti_core::clock;
use sauti_core::filter::ListQuery;

use crate::list::account_scope;
use crate::{Json, JsonMap, Page, Store, StoreError, StoreResult, on_pool};

/// How often a conditional update is retried before giving up with [`StoreError::Contended`].
pub(crate) const CAS_TRIES: usize = 8;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    pub id: i64,
    pub account_id: i64,
    pub email: String,
    pub password_hash: String,
    pub locale: String,
    pub permissions: Json<Vec<String>>,
    pub metadata: Json<JsonMap>,
    pub invited_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    /// Already normalised (trimmed, lower-cased).
    pub email: String,
    pub password_hash: String,
    pub locale: String,
    pub permissions: Vec<String>,
    pub metadata: JsonMap,
}

pub type UserChanges = User;

impl Store {
    pub async fn create_user(&self, account_id: i64, new: &NewUser) -> StoreResult<User> {
        let now = clock::now();
        let sql = "INSERT INTO users (account_id, email, password_hash, locale, permissions, metadata, created_at, updated_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING *";
        Ok(on_pool!(self, p => sqlx::query_as(sql)
            .bind(account_id)
            .bind(&new.email)
            .bind(&new.password_hash)
            .bind(&new.locale)
            .bind(Json(&new.permissions))
            .bind(Json(&new.metadata))
            .bind(now)
            .fetch_one(p)
            .await)?)
    }

    pub async fn get_user(&self, account_id: i64, id: i64) -> StoreResult<Option<User>> {
        let sql = "SELECT * FROM users WHERE account_id = $1 AND id = $2";
        Ok(on_pool!(self, p => sqlx::query_as(sql).bind(account_id).bind(id).fetch_optional(p).await)?)
    }

    /// Look a user up by e-mail across all accounts (e-mails are unique platform-wide).
    pub async fn find_user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let sql = "SELECT * FROM users WHERE email = $1";
        Ok(on_pool!(self, p => sqlx::query_as(sql).bind(email).fetch_optional(p).await)?)
    }

    pub async fn list_users(&self, account_id: i64, query: &ListQuery) -> StoreResult<Page<User>> {
        self.list_rows("users", account_scope(account_id), query).await
    }

    /// Conditional read-modify-write, as [`Store::update_account`].
    pub async fn update_user(&self, account_id: i64, id: i64, change: impl Fn(&mut User)) -> StoreResult<Option<User>> {
        for _ in 0..CAS_TRIES {
            let Some(old) = self.get_user(account_id, id).await? else {
                return Ok(None);
            };
            let mut new = old.clone();
            change(&mut new);
            new.updated_at = clock::now().max(old.updated_at + chrono::Duration::microseconds(1));
            let sql = "UPDATE users SET email = $3, password_hash = $4, locale = $5, permissions = $6, metadata = $7, \
                       invited_at = $8, updated_at = $9 WHERE account_id = $1 AND id = $2 AND updated_at = $10";
            let done = on_pool!(self, p => sqlx::query(sql)
                .bind(account_id)
                .bind(id)
                .bind(&new.email)
                .bind(&new.password_hash)
                .bind(&new.locale)
                .bind(&new.permissions)
                .bind(&new.metadata)
                .bind(new.invited_at)
                .bind(new.updated_at)
                .bind(old.updated_at)
                .execute(p)
                .await
                .map(|r| r.rows_affected()))?;
            if done == 1 {
                return Ok(Some(new));
            }
        }
        Err(StoreError::Contended)
    }

    pub async fn delete_user(&self, account_id: i64, id: i64) -> StoreResult<bool> {
        let sql = "DELETE FROM users WHERE account_id = $1 AND id = $2";
        let n = on_pool!(self, p => sqlx::query(sql).bind(account_id).bind(id).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }
}
