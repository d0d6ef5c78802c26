//! Contact imports: the job rows behind `POST /api/contact_imports`, and the batched
//! upsert that makes a million-row CSV fast.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, ToSql};
use sauti_core::clock;
use sauti_core::filter::{ListQuery, Sql, SqlValue};
use serde::{Deserialize, Serialize};

use crate::list::{account_scope, pg_args};
use crate::{ContactFields, Json, Page, Pool, Store, StoreError, StoreResult, on_pool};

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

/// Rows per PostgreSQL upsert statement (13 parameters each, under PostgreSQL's 65,535).
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

    /// Create or update many contacts by msisdn in one transaction, and add them to
    /// `group`. Non-empty fields of a row overwrite the stored ones, empty ones leave
    /// them, and metadata is merged. `rows` must not repeat a msisdn. Returns how many
    /// were created.
    pub async fn upsert_contacts_batch(
        &self,
        account_id: i64,
        rows: Vec<ContactFields>,
        group_id: Option<i64>,
    ) -> StoreResult<u64> {
        if rows.is_empty() {
            return Ok(0);
        }
        let now = clock::now();
        let returned: Vec<(i64, DateTime<Utc>)> = match &self.pool {
            Pool::Sqlite(_, writer) => {
                // Decision 0019: the rows go through rusqlite on the writer's own handle,
                // on a blocking thread (see `sqlite_upsert`).
                let mut conn = writer.acquire().await?;
                let (conn, created) = tokio::task::spawn_blocking(move || {
                    let result = futures::executor::block_on(conn.lock_handle())
                        .map_err(StoreError::from)
                        .and_then(|mut handle| {
                            // SAFETY: the handle stays locked (no sqlx statement runs on
                            // it) until `handle` drops, after the rusqlite `Connection`,
                            // which does not own the handle and never closes it.
                            #[allow(unsafe_code)]
                            let db = unsafe { rusqlite::Connection::from_handle(handle.as_raw_handle().as_ptr()) }?;
                            sqlite_upsert(&db, account_id, &rows, group_id, now)
                        });
                    (conn, result)
                })
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "the contact import's writer thread stopped");
                    StoreError::Database(sqlx::Error::WorkerCrashed)
                })?;
                drop(conn);
                return created;
            }
            Pool::Postgres(p) => {
                let mut returned = Vec::with_capacity(rows.len());
                // One commit for the whole batch: a commit per statement costs more than
                // the rows.
                let mut tx = p.begin().await?;
                for chunk in rows.chunks(UPSERT_ROWS) {
                    let q = self.upsert_sql(account_id, chunk, now);
                    let text = sqlx::AssertSqlSafe(q.text);
                    returned.extend(
                        sqlx::query_as_with::<_, (i64, DateTime<Utc>), _>(text, pg_args(&q.params))
                            .fetch_all(&mut *tx)
                            .await?,
                    );
                }
                tx.commit().await?;
                returned
            }
        };
        // A row whose created_at is this batch's timestamp was inserted by it.
        let created = returned.iter().filter(|(_, c)| *c == now).count() as u64;
        if let Some(g) = group_id {
            let ids: Vec<i64> = returned.iter().map(|(id, _)| *id).collect();
            self.add_own_contacts_to_group(account_id, g, &ids).await?;
        }
        Ok(created)
    }

    /// One PostgreSQL upsert statement of many rows. Every value is bound, absent ones as
    /// NULL, so statements of the same row count share one text and one prepared
    /// statement.
    fn upsert_sql(&self, account_id: i64, rows: &[ContactFields], now: DateTime<Utc>) -> Sql {
        let mut q = Sql::default();
        let mut values = Vec::with_capacity(rows.len());
        for r in rows {
            let a = q.bind(SqlValue::Int(account_id));
            let msisdn = q.bind(SqlValue::Text(r.msisdn.clone()));
            let cols = r
                .import_texts()
                .map(|v| q.bind(v.clone().map(SqlValue::Text).unwrap_or(SqlValue::NullText)));
            let meta = q.bind(SqlValue::Text(metadata_text(r)));
            let created = q.bind(SqlValue::Timestamp(now));
            let updated = q.bind(SqlValue::Timestamp(now));
            values.push(format!(
                "({a}, {msisdn}, {}, CAST({meta} AS jsonb), {created}, {updated})",
                cols.join(", ")
            ));
        }
        q.text = format!(
            "INSERT INTO contacts (account_id, msisdn, email, first_name, last_name, address, custom1, custom2, custom3, \
             description, metadata, created_at, updated_at) VALUES {} {}",
            values.join(", "),
            upsert_tail("contacts.metadata || excluded.metadata"),
        );
        q
    }
}

fn metadata_text(r: &ContactFields) -> String {
    serde_json::to_string(&r.metadata).unwrap_or_else(|_| "{}".into())
}

/// What follows the VALUES of a contact upsert, with `merge` the metadata merge.
fn upsert_tail(merge: &str) -> String {
    format!(
        "ON CONFLICT (account_id, msisdn) DO UPDATE SET \
         email = COALESCE(excluded.email, contacts.email), first_name = COALESCE(excluded.first_name, contacts.first_name), \
         last_name = COALESCE(excluded.last_name, contacts.last_name), address = COALESCE(excluded.address, contacts.address), \
         custom1 = COALESCE(excluded.custom1, contacts.custom1), custom2 = COALESCE(excluded.custom2, contacts.custom2), \
         custom3 = COALESCE(excluded.custom3, contacts.custom3), \
         description = COALESCE(excluded.description, contacts.description), \
         metadata = {merge}, updated_at = excluded.updated_at \
         RETURNING id, created_at"
    )
}

/// The SQLite side of [`Store::upsert_contacts_batch`], on the writer's connection: one
/// transaction, and for each row a lookup by msisdn and then a plain single-row INSERT
/// or UPDATE from prepared statements.
///
/// Not the upsert PostgreSQL runs: SQLite implements `RETURNING` with a trigger, which
/// makes every statement keep a statement journal, a copy of each page it touches; that
/// was a quarter of an import's time. A lone INSERT or an UPDATE by id needs none. The
/// lookup is exact: this transaction holds the write lock, and it sees its own earlier
/// rows. Timestamps are bound as the text sqlx writes, so sqlx
/// reads these rows back like its own.
fn sqlite_upsert(
    db: &rusqlite::Connection,
    account_id: i64,
    rows: &[ContactFields],
    group_id: Option<i64>,
    now: DateTime<Utc>,
) -> StoreResult<u64> {
    let now_text = now.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false);
    let tx = rusqlite::Transaction::new_unchecked(db, rusqlite::TransactionBehavior::Immediate)?;
    let group = match group_id {
        Some(g) => {
            let sql = "SELECT COUNT(*) FROM groups WHERE account_id = ?1 AND id = ?2";
            let n: i64 = tx.query_row(sql, (account_id, g), |r| r.get(0))?;
            (n == 1).then_some(g)
        }
        None => None,
    };
    let mut find = tx.prepare("SELECT id FROM contacts WHERE account_id = ?1 AND msisdn = ?2")?;
    let mut insert = tx.prepare(
        "INSERT INTO contacts (account_id, msisdn, email, first_name, last_name, address, custom1, custom2, custom3, \
         description, metadata, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12)",
    )?;
    let mut update = tx.prepare(
        "UPDATE contacts SET email = COALESCE(?3, email), first_name = COALESCE(?4, first_name), \
         last_name = COALESCE(?5, last_name), address = COALESCE(?6, address), custom1 = COALESCE(?7, custom1), \
         custom2 = COALESCE(?8, custom2), custom3 = COALESCE(?9, custom3), description = COALESCE(?10, description), \
         metadata = json_patch(metadata, ?11), updated_at = ?12 WHERE id = ?13 AND account_id = ?1 AND msisdn = ?2",
    )?;
    let mut member = match group {
        Some(_) => Some(tx.prepare(
            "INSERT INTO group_contacts (group_id, contact_id, created_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        )?),
        None => None,
    };
    let mut created = 0;
    for r in rows {
        let meta = metadata_text(r);
        let existing: Option<i64> = find.query_row((account_id, &r.msisdn), |row| row.get(0)).optional()?;
        // The INSERT's parameters; the UPDATE takes the same and the id.
        let texts = r.import_texts();
        let fields = || {
            [&account_id as &dyn ToSql, &r.msisdn]
                .into_iter()
                .chain(texts.iter().map(|t| *t as &dyn ToSql))
                .chain([&meta as &dyn ToSql, &now_text])
        };
        let id = match existing {
            Some(id) => {
                update.execute(rusqlite::params_from_iter(fields().chain([&id as &dyn ToSql])))?;
                id
            }
            None => {
                insert.execute(rusqlite::params_from_iter(fields()))?;
                created += 1;
                tx.last_insert_rowid()
            }
        };
        if let (Some(stmt), Some(g)) = (member.as_mut(), group) {
            stmt.execute((g, id, &now_text))?;
        }
    }
    drop((find, insert, update, member));
    tx.commit()?;
    Ok(created)
}
