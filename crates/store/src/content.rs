//! Message content (ICTCore's Message section): SMS texts and email templates.

use chrono::{DateTime, Utc};
use sauti_core::clock;
use sauti_core::filter::ListQuery;

use crate::list::account_scope;
use crate::users::CAS_TRIES;
use crate::{Json, JsonMap, Page, Store, StoreError, StoreResult, on_pool};

/// An SMS body kept for reuse.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Text {
    pub id: i64,
    pub account_id: i64,
    pub name: String,
    pub data: String,
    /// `plain` or `unicode`, as ICTCore has it; derived from `data`.
    pub r#type: String,
    pub description: Option<String>,
    pub metadata: Json<JsonMap>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An email: subject, HTML body and a plain alternative.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Template {
    pub id: i64,
    pub account_id: i64,
    pub name: String,
    pub description: Option<String>,
    pub subject: String,
    pub body: String,
    pub body_alt: Option<String>,
    pub metadata: Json<JsonMap>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Store {
    pub async fn create_text(&self, t: &Text) -> StoreResult<Text> {
        let sql = "INSERT INTO texts (account_id, name, data, type, description, metadata, created_at, updated_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING *";
        Ok(on_pool!(self, p => sqlx::query_as(sql)
            .bind(t.account_id)
            .bind(&t.name)
            .bind(&t.data)
            .bind(&t.r#type)
            .bind(&t.description)
            .bind(&t.metadata)
            .bind(clock::now())
            .fetch_one(p)
            .await)?)
    }

    pub async fn get_text(&self, account_id: i64, id: i64) -> StoreResult<Option<Text>> {
        let sql = "SELECT * FROM texts WHERE account_id = $1 AND id = $2";
        Ok(on_pool!(self, p => sqlx::query_as(sql).bind(account_id).bind(id).fetch_optional(p).await)?)
    }

    pub async fn list_texts(&self, account_id: i64, query: &ListQuery) -> StoreResult<Page<Text>> {
        self.list_rows("texts", account_scope(account_id), query).await
    }

    pub async fn update_text(&self, account_id: i64, id: i64, change: impl Fn(&mut Text)) -> StoreResult<Option<Text>> {
        for _ in 0..CAS_TRIES {
            let Some(old) = self.get_text(account_id, id).await? else {
                return Ok(None);
            };
            let mut t = old.clone();
            change(&mut t);
            t.updated_at = clock::now().max(old.updated_at + chrono::Duration::microseconds(1));
            let sql = "UPDATE texts SET name = $3, data = $4, type = $5, description = $6, metadata = $7, updated_at = $8 \
                       WHERE account_id = $1 AND id = $2 AND updated_at = $9";
            let n = on_pool!(self, p => sqlx::query(sql)
                .bind(account_id)
                .bind(id)
                .bind(&t.name)
                .bind(&t.data)
                .bind(&t.r#type)
                .bind(&t.description)
                .bind(&t.metadata)
                .bind(t.updated_at)
                .bind(old.updated_at)
                .execute(p)
                .await
                .map(|r| r.rows_affected()))?;
            if n == 1 {
                return Ok(Some(t));
            }
        }
        Err(StoreError::Contended)
    }

    pub async fn delete_text(&self, account_id: i64, id: i64) -> StoreResult<bool> {
        let sql = "DELETE FROM texts WHERE account_id = $1 AND id = $2";
        let n = on_pool!(self, p => sqlx::query(sql).bind(account_id).bind(id).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    pub async fn create_template(&self, t: &Template) -> StoreResult<Template> {
        let sql = "INSERT INTO templates (account_id, name, description, subject, body, body_alt, metadata, created_at, updated_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING *";
        Ok(on_pool!(self, p => sqlx::query_as(sql)
            .bind(t.account_id)
            .bind(&t.name)
            .bind(&t.description)
            .bind(&t.subject)
            .bind(&t.body)
            .bind(&t.body_alt)
            .bind(&t.metadata)
            .bind(clock::now())
            .fetch_one(p)
            .await)?)
    }

    pub async fn get_template(&self, account_id: i64, id: i64) -> StoreResult<Option<Template>> {
        let sql = "SELECT * FROM templates WHERE account_id = $1 AND id = $2";
        Ok(on_pool!(self, p => sqlx::query_as(sql).bind(account_id).bind(id).fetch_optional(p).await)?)
    }

    pub async fn list_templates(&self, account_id: i64, query: &ListQuery) -> StoreResult<Page<Template>> {
        self.list_rows("templates", account_scope(account_id), query).await
    }

    pub async fn update_template(
        &self,
        account_id: i64,
        id: i64,
        change: impl Fn(&mut Template),
    ) -> StoreResult<Option<Template>> {
        for _ in 0..CAS_TRIES {
            let Some(old) = self.get_template(account_id, id).await? else {
                return Ok(None);
            };
            let mut t = old.clone();
            change(&mut t);
            t.updated_at = clock::now().max(old.updated_at + chrono::Duration::microseconds(1));
            let sql = "UPDATE templates SET name = $3, description = $4, subject = $5, body = $6, body_alt = $7, metadata = $8, \
                       updated_at = $9 WHERE account_id = $1 AND id = $2 AND updated_at = $10";
            let n = on_pool!(self, p => sqlx::query(sql)
                .bind(account_id)
                .bind(id)
                .bind(&t.name)
                .bind(&t.description)
                .bind(&t.subject)
                .bind(&t.body)
                .bind(&t.body_alt)
                .bind(&t.metadata)
                .bind(t.updated_at)
                .bind(old.updated_at)
                .execute(p)
                .await
                .map(|r| r.rows_affected()))?;
            if n == 1 {
                return Ok(Some(t));
            }
        }
        Err(StoreError::Contended)
    }

    pub async fn delete_template(&self, account_id: i64, id: i64) -> StoreResult<bool> {
        let sql = "DELETE FROM templates WHERE account_id = $1 AND id = $2";
        let n = on_pool!(self, p => sqlx::query(sql).bind(account_id).bind(id).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }
}
