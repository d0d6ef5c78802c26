//! Contact imports: the job rows behind `POST /api/contact_imports`, and the batched
//! upsert that makes a million-row CSV fast.

use chrono::{DateTime, Utc};
use sauti_core::clock;
use sauti_core::filter::{ListQuery, Sql, SqlValue};
use serde::{Deserialize, Serialize};

use crate::list::{account_scope, pg_args, sqlite_args};
use crate::{ContactFields, Dialect, Json, Page, Pool, Store, StoreResult, on_pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ContactImport {
    pub id: i64,
    pub account_id: i64,
    pub group_id: Option<i64>,
    pub status: String,
    pub file_name: Option<String>,
    pub rows_read: i64,
    pub created: i64,
    pub updated: i64,
    pub rejected: i64,
    pub rejected_rows: Json<Vec<RejectedRow>>,
    pub failure_reason: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One row the import refused, by its line number in the file (1-based, header included).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedRow {
    pub line: u64,
    pub reason: String,
}

/// Rows per upsert statement (15 parameters each, well under SQLite's 32,766).
const UPSERT_ROWS: usize = 1000;

/// Counters written back while an import runs.
#[derive(Debug, Clone, Default)]
pub struct ImportProgress {
    pub status: String,
    pub rows_read: i64,
    pub created: i64,
    pub updated: i64,
    pub rejected: i64,
    pub rejected_rows: Vec<RejectedRow>,
    pub failure_reason: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl Store {
    pub async fn create_contact_import(
        &self,
        account_id: i64,
        group_id: Option<i64>,
        file_name: Option<&str>,
    ) -> StoreResult<ContactImport> {
        let now = clock::now();
        let sql = "INSERT INTO contact_imports (account_id, group_id, file_name, created_at, updated_at) \
                   VALUES ($1, $2, $3, $4, $4) RETURNING *";
        Ok(
            on_pool!(self, p => sqlx::query_as(sql).bind(account_id).bind(group_id).bind(file_name).bind(now).fetch_one(p).await)?,
        )
    }

    pub async fn get_contact_import(&self, account_id: i64, id: i64) -> StoreResult<Option<ContactImport>> {
        let sql = "SELECT * FROM contact_imports WHERE account_id = $1 AND id = $2";
        Ok(on_pool!(self, p => sqlx::query_as(sql).bind(account_id).bind(id).fetch_optional(p).await)?)
    }

    pub async fn list_contact_imports(&self, account_id: i64, query: &ListQuery) -> StoreResult<Page<ContactImport>> {
        self.list_rows("contact_imports", account_scope(account_id), query)
            .await
    }

    /// Imports left `queued` or `running` by a stopped process, to resume at start-up.
    pub async fn unfinished_contact_imports(&self) -> StoreResult<Vec<ContactImport>> {
        let sql = "SELECT * FROM contact_imports WHERE status IN ('queued', 'running') ORDER BY id";
        Ok(on_pool!(self, p => sqlx::query_as(sql).fetch_all(p).await)?)
    }

    pub async fn save_import_progress(&self, id: i64, p: &ImportProgress) -> StoreResult<()> {
        let sql = "UPDATE contact_imports SET status = $2, rows_read = $3, created = $4, updated = $5, rejected = $6, \
                   rejected_rows = $7, failure_reason = $8, started_at = $9, finished_at = $10, updated_at = $11 WHERE id = $1";
        on_pool!(self, pool => sqlx::query(sql)
            .bind(id)
            .bind(&p.status)
            .bind(p.rows_read)
            .bind(p.created)
            .bind(p.updated)
            .bind(p.rejected)
            .bind(Json(&p.rejected_rows))
            .bind(&p.failure_reason)
            .bind(p.started_at)
            .bind(p.finished_at)
            .bind(clock::now())
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Fresh planner statistics for the contacts tables after a bulk load, on PostgreSQL:
    /// until autovacuum gets there (a minute or more), the planner takes a table of a
    /// million new contacts for an empty one, and a filtered count over it ran as a
    /// single-process bitmap scan at 1 s instead of a parallel scan at 0.2 s. SQLite's
    /// plans do not use statistics here.
    pub async fn refresh_contact_statistics(&self) -> StoreResult<()> {
        if let Pool::Postgres(p) = &self.pool {
            sqlx::raw_sql("ANALYZE contacts, group_contacts").execute(p).await?;
        }
        Ok(())
    }

    /// Create or update many contacts by msisdn in one transaction (1,000 rows a
    /// statement), and add them to `group`. Non-empty fields of a row overwrite the stored
    /// ones, empty ones leave them, and metadata is merged. `rows` must not repeat a
    /// msisdn. Returns how many were created.
    pub async fn upsert_contacts_batch(
        &self,
        account_id: i64,
        rows: &[ContactFields],
        group_id: Option<i64>,
    ) -> StoreResult<u64> {
        if rows.is_empty() {
            return Ok(0);
        }
        let now = clock::now();
        let statements: Vec<Sql> = rows
            .chunks(UPSERT_ROWS)
            .map(|chunk| self.upsert_sql(account_id, chunk, now))
            .collect();
        let mut returned: Vec<(i64, DateTime<Utc>)> = Vec::with_capacity(rows.len());
        // One commit for the whole batch: a commit per statement costs more than the rows.
        match &self.pool {
            Pool::Sqlite(p, _) => {
                let mut tx = p.begin().await?;
                for q in &statements {
                    let text = sqlx::AssertSqlSafe(q.text.clone());
                    returned.extend(
                        sqlx::query_as_with::<_, (i64, DateTime<Utc>), _>(text, sqlite_args(&q.params))
                            .fetch_all(&mut *tx)
                            .await?,
                    );
                }
                tx.commit().await?;
            }
            Pool::Postgres(p) => {
                let mut tx = p.begin().await?;
                for q in &statements {
                    let text = sqlx::AssertSqlSafe(q.text.clone());
                    returned.extend(
                        sqlx::query_as_with::<_, (i64, DateTime<Utc>), _>(text, pg_args(&q.params))
                            .fetch_all(&mut *tx)
                            .await?,
                    );
                }
                tx.commit().await?;
            }
        }
        // A row whose created_at is this batch's timestamp was inserted by it.
        let created = returned.iter().filter(|(_, c)| *c == now).count() as u64;
        if let Some(g) = group_id {
            let ids: Vec<i64> = returned.iter().map(|(id, _)| *id).collect();
            self.add_own_contacts_to_group(account_id, g, &ids).await?;
        }
        Ok(created)
    }

    /// One upsert statement. Every value is bound, absent ones as NULL, so statements of
    /// the same row count share one text and one prepared statement.
    ///
    /// On SQLite the placeholders are anonymous `?`: sqlx asks SQLite the name of every
    /// `$N` parameter, a linear scan each, which makes binding a statement of thousands of
    /// named parameters quadratic (measured: 9k rows/s, all of it in
    /// `sqlite3_bind_parameter_name`). Each `?` is bound once, in text order.
    fn upsert_sql(&self, account_id: i64, rows: &[ContactFields], now: DateTime<Utc>) -> Sql {
        let anonymous = self.dialect() == Dialect::Sqlite;
        let mut q = Sql::default();
        let bind = |q: &mut Sql, v: SqlValue| -> String {
            if anonymous {
                q.params.push(v);
                "?".to_string()
            } else {
                q.bind(v)
            }
        };
        let mut values = Vec::with_capacity(rows.len());
        for r in rows {
            let a = bind(&mut q, SqlValue::Int(account_id));
            let msisdn = bind(&mut q, SqlValue::Text(r.msisdn.clone()));
            let cols = [
                &r.email,
                &r.first_name,
                &r.last_name,
                &r.address,
                &r.custom1,
                &r.custom2,
                &r.custom3,
                &r.description,
            ]
            .map(|v| bind(&mut q, v.clone().map(SqlValue::Text).unwrap_or(SqlValue::NullText)));
            let meta = bind(
                &mut q,
                SqlValue::Text(serde_json::Value::Object(r.metadata.clone()).to_string()),
            );
            let meta = match self.dialect() {
                Dialect::Postgres => format!("CAST({meta} AS jsonb)"),
                Dialect::Sqlite => meta,
            };
            let created = bind(&mut q, SqlValue::Timestamp(now));
            let updated = bind(&mut q, SqlValue::Timestamp(now));
            values.push(format!(
                "({a}, {msisdn}, {}, {meta}, {created}, {updated})",
                cols.join(", ")
            ));
        }
        let merge = match self.dialect() {
            Dialect::Postgres => "contacts.metadata || excluded.metadata",
            Dialect::Sqlite => "json_patch(contacts.metadata, excluded.metadata)",
        };
        q.text = format!(
            "INSERT INTO contacts (account_id, msisdn, email, first_name, last_name, address, custom1, custom2, custom3, \
             description, metadata, created_at, updated_at) VALUES {} \
             ON CONFLICT (account_id, msisdn) DO UPDATE SET \
             email = COALESCE(excluded.email, contacts.email), first_name = COALESCE(excluded.first_name, contacts.first_name), \
             last_name = COALESCE(excluded.last_name, contacts.last_name), address = COALESCE(excluded.address, contacts.address), \
             custom1 = COALESCE(excluded.custom1, contacts.custom1), custom2 = COALESCE(excluded.custom2, contacts.custom2), \
             custom3 = COALESCE(excluded.custom3, contacts.custom3), \
             description = COALESCE(excluded.description, contacts.description), \
             metadata = {merge}, updated_at = excluded.updated_at \
             RETURNING id, created_at",
            values.join(", ")
        );
        q
    }
}
