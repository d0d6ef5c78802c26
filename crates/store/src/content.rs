//! Message content (ICTCore's Message section): SMS texts and email templates.

use chrono::{DateTime, Utc};
use sauti_core::clock;
use sauti_core::filter::ListQuery;

use crate::list::account_scope;
use crate::sql::{Q, args};
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

    /// Delete a template and its attachments' rows; `None` if there was no such template,
    /// else the attachments' blobs, which are the caller's to remove.
    pub async fn delete_template(&self, account_id: i64, id: i64) -> StoreResult<Option<Vec<String>>> {
        let blobs_sql = "DELETE FROM template_attachments WHERE account_id = $1 AND template_id = $2 RETURNING blob";
        let sql = "DELETE FROM templates WHERE account_id = $1 AND id = $2";
        Ok(on_pool!(self, p => {
            let mut tx = p.begin().await?;
            let blobs: Vec<(String,)> = sqlx::query_as(blobs_sql).bind(account_id).bind(id).fetch_all(&mut *tx).await?;
            let n = sqlx::query(sql).bind(account_id).bind(id).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            (n == 1).then(|| blobs.into_iter().map(|(b,)| b).collect())
        }))
    }
}

/// A file an email template carries. Its bytes are a file in the blob store, named by
/// `blob`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TemplateAttachment {
    pub id: i64,
    pub account_id: i64,
    pub template_id: i64,
    /// The name the file has in the email.
    pub file_name: String,
    pub content_type: String,
    pub size_bytes: i64,
    /// Never shown to callers: it names a file on the server.
    pub blob: String,
    pub created_at: DateTime<Utc>,
}

/// Bounds on what one template carries, so an email stays one most mail servers accept.
#[derive(Debug, Clone, Copy)]
pub struct AttachmentLimits {
    pub max_count: i64,
    pub max_total_bytes: i64,
}

/// What came of adding an attachment.
#[derive(Debug)]
pub enum AttachOutcome {
    Added(TemplateAttachment),
    /// No such template in the account.
    NoTemplate,
    /// The template already carries `max_count` files, or this one would take it past
    /// `max_total_bytes`.
    Full,
}

impl Store {
    /// Add `a` to its template, unless that takes the template past `limits`; the check
    /// and the insert are one statement.
    pub async fn add_template_attachment(
        &self,
        a: &TemplateAttachment,
        limits: AttachmentLimits,
    ) -> StoreResult<AttachOutcome> {
        let sql = "INSERT INTO template_attachments (account_id, template_id, file_name, content_type, size_bytes, blob, created_at) \
                   SELECT $1, $2, $3, $4, $5, $6, $7 FROM templates t WHERE t.account_id = $1 AND t.id = $2 \
                   AND (SELECT COUNT(*) FROM template_attachments WHERE template_id = $2) < $8 \
                   AND (SELECT COALESCE(SUM(size_bytes), 0) FROM template_attachments WHERE template_id = $2) + $5 <= $9 \
                   RETURNING *";
        let row: Option<TemplateAttachment> = on_pool!(self, p => sqlx::query_as(sql)
            .bind(a.account_id)
            .bind(a.template_id)
            .bind(&a.file_name)
            .bind(&a.content_type)
            .bind(a.size_bytes)
            .bind(&a.blob)
            .bind(clock::now())
            .bind(limits.max_count)
            .bind(limits.max_total_bytes)
            .fetch_optional(p)
            .await)?;
        Ok(match row {
            Some(r) => AttachOutcome::Added(r),
            // Nothing inserted: no such template in the account, or it is full.
            None if self.get_template(a.account_id, a.template_id).await?.is_none() => AttachOutcome::NoTemplate,
            None => AttachOutcome::Full,
        })
    }

    /// The attachments of the templates `template_ids`, in upload order; only those of
    /// `account_id` when it is given (the engine asks across accounts and checks each one
    /// against its message's account).
    pub async fn template_attachments(
        &self,
        account_id: Option<i64>,
        template_ids: &[i64],
    ) -> StoreResult<Vec<TemplateAttachment>> {
        if template_ids.is_empty() {
            return Ok(vec![]);
        }
        let mut q = Q::new(self.dialect());
        q.push("SELECT * FROM template_attachments WHERE template_id IN (");
        for (i, id) in template_ids.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.int(*id);
        }
        q.push(")");
        if let Some(account_id) = account_id {
            q.push(" AND account_id = ").int(account_id);
        }
        q.push(" ORDER BY template_id, id");
        Ok(on_pool!(self, p => sqlx::query_as_with(q.sql(), args(p, &q)).persistent(false).fetch_all(p).await)?)
    }

    pub async fn get_template_attachment(
        &self,
        account_id: i64,
        template_id: i64,
        id: i64,
    ) -> StoreResult<Option<TemplateAttachment>> {
        let sql = "SELECT * FROM template_attachments WHERE account_id = $1 AND template_id = $2 AND id = $3";
        Ok(
            on_pool!(self, p => sqlx::query_as(sql).bind(account_id).bind(template_id).bind(id).fetch_optional(p).await)?,
        )
    }

    /// Remove one attachment; returns it (its blob is the caller's to remove).
    pub async fn delete_template_attachment(
        &self,
        account_id: i64,
        template_id: i64,
        id: i64,
    ) -> StoreResult<Option<TemplateAttachment>> {
        let sql = "DELETE FROM template_attachments WHERE account_id = $1 AND template_id = $2 AND id = $3 RETURNING *";
        Ok(
            on_pool!(self, p => sqlx::query_as(sql).bind(account_id).bind(template_id).bind(id).fetch_optional(p).await)?,
        )
    }
}
