//! Access tokens: API keys and login sessions. Only a digest of the secret is stored.

use chrono::{DateTime, Utc};
use sauti_core::clock;
use sauti_core::filter::ListQuery;

use rusqlite::named_params;

use crate::inline;
use crate::list::account_scope;
use crate::users::CAS_TRIES;
use crate::{Json, JsonMap, Page, Store, StoreError, StoreResult, on_pool};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Made through `/api/access_tokens` or the CLI; lives until deleted or expired.
    Api,
    /// Made by `POST /api/authenticate`; expires, and logout deletes it.
    Session,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Api => "api",
            TokenKind::Session => "session",
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AccessToken {
    pub id: i64,
    pub account_id: i64,
    pub user_id: Option<i64>,
    pub kind: String,
    pub permissions: Json<Vec<String>>,
    pub metadata: Json<JsonMap>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewAccessToken {
    pub digest: String,
    pub user_id: Option<i64>,
    pub kind: TokenKind,
    pub permissions: Vec<String>,
    pub metadata: JsonMap,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Who is calling: the token presented, its tenant and what it may do.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Principal {
    pub token_id: i64,
    pub account_id: i64,
    pub user_id: Option<i64>,
    pub permissions: Json<Vec<String>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub super_admin: bool,
}

impl Store {
    pub async fn create_access_token(&self, account_id: i64, new: &NewAccessToken) -> StoreResult<AccessToken> {
        let now = clock::now();
        let sql = "INSERT INTO access_tokens (account_id, user_id, digest, kind, permissions, metadata, expires_at, created_at, updated_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING *";
        Ok(on_pool!(self, p => sqlx::query_as(sql)
            .bind(account_id)
            .bind(new.user_id)
            .bind(&new.digest)
            .bind(new.kind.as_str())
            .bind(Json(&new.permissions))
            .bind(Json(&new.metadata))
            .bind(new.expires_at)
            .bind(now)
            .fetch_one(p)
            .await)?)
    }

    /// The principal for a token digest, expired or not (the caller decides).
    pub async fn principal_for_digest(&self, digest: &str) -> StoreResult<Option<Principal>> {
        let sql = "SELECT t.id AS token_id, t.account_id, t.user_id, t.permissions, t.expires_at, a.super_admin \
                   FROM access_tokens t JOIN accounts a ON a.id = t.account_id WHERE t.digest = $1";
        if let Some(inline) = &self.inline {
            return Ok(inline.row(sql, named_params! {"$1": digest}, |r| {
                Ok(Principal {
                    token_id: r.get(0)?,
                    account_id: r.get(1)?,
                    user_id: r.get(2)?,
                    permissions: Json(inline::json(r, 3)?),
                    expires_at: r.get(4)?,
                    super_admin: r.get(5)?,
                })
            })?);
        }
        Ok(on_pool!(self, p => sqlx::query_as(sql).bind(digest).fetch_optional(p).await)?)
    }

    pub async fn get_access_token(&self, account_id: i64, id: i64) -> StoreResult<Option<AccessToken>> {
        let sql = "SELECT id, account_id, user_id, kind, permissions, metadata, expires_at, created_at, updated_at \
                   FROM access_tokens WHERE account_id = $1 AND id = $2";
        if let Some(inline) = &self.inline {
            return Ok(inline.row(sql, named_params! {"$1": account_id, "$2": id}, |r| {
                Ok(AccessToken {
                    id: r.get(0)?,
                    account_id: r.get(1)?,
                    user_id: r.get(2)?,
                    kind: r.get(3)?,
                    permissions: Json(inline::json(r, 4)?),
                    metadata: Json(inline::json(r, 5)?),
                    expires_at: r.get(6)?,
                    created_at: r.get(7)?,
                    updated_at: r.get(8)?,
                })
            })?);
        }
        Ok(on_pool!(self, p => sqlx::query_as(sql).bind(account_id).bind(id).fetch_optional(p).await)?)
    }

    pub async fn list_access_tokens(&self, account_id: i64, query: &ListQuery) -> StoreResult<Page<AccessToken>> {
        self.list_rows("access_tokens", account_scope(account_id), query).await
    }

    pub async fn update_access_token(
        &self,
        account_id: i64,
        id: i64,
        change: impl Fn(&mut AccessToken),
    ) -> StoreResult<Option<AccessToken>> {
        for _ in 0..CAS_TRIES {
            let Some(old) = self.get_access_token(account_id, id).await? else {
                return Ok(None);
            };
            let mut new = old.clone();
            change(&mut new);
            new.updated_at = clock::now().max(old.updated_at + chrono::Duration::microseconds(1));
            let sql = "UPDATE access_tokens SET permissions = $3, metadata = $4, expires_at = $5, updated_at = $6 \
                       WHERE account_id = $1 AND id = $2 AND updated_at = $7";
            let done = on_pool!(self, p => sqlx::query(sql)
                .bind(account_id)
                .bind(id)
                .bind(&new.permissions)
                .bind(&new.metadata)
                .bind(new.expires_at)
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

    /// Delete (revoke) a token; it answers 401 from then on.
    pub async fn delete_access_token(&self, account_id: i64, id: i64) -> StoreResult<bool> {
        let sql = "DELETE FROM access_tokens WHERE account_id = $1 AND id = $2";
        let n = on_pool!(self, p => sqlx::query(sql).bind(account_id).bind(id).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }
}

impl Store {
    /// End every login session of a user (after a password or permission change).
    pub async fn delete_user_sessions(&self, account_id: i64, user_id: i64) -> StoreResult<u64> {
        let sql = "DELETE FROM access_tokens WHERE account_id = $1 AND user_id = $2 AND kind = 'session'";
        Ok(
            on_pool!(self, p => sqlx::query(sql).bind(account_id).bind(user_id).execute(p).await.map(|r| r.rows_affected()))?,
        )
    }
}
