//! Groups: named lists of contacts (many-to-many). Deleting a group keeps its contacts.

use chrono::{DateTime, Utc};
use sauti_core::clock;
use sauti_core::filter::{ListQuery, SqlValue};

use crate::list::{account_scope, pg_args, sqlite_args};
use crate::users::CAS_TRIES;
use crate::{Json, JsonMap, Page, Pool, Store, StoreError, StoreResult, on_pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Group {
    pub id: i64,
    pub account_id: i64,
    pub name: String,
    pub description: Option<String>,
    pub metadata: Json<JsonMap>,
    pub contacts_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct NewGroup {
    pub name: String,
    pub description: Option<String>,
    pub metadata: JsonMap,
}

/// Groups with their member count, usable wherever a table name is.
const GROUPS: &str = "(SELECT g.*, (SELECT COUNT(*) FROM group_contacts gc WHERE gc.group_id = g.id) AS contacts_count \
                      FROM groups g) AS groups_with_counts";

impl Store {
    pub async fn create_group(&self, account_id: i64, new: &NewGroup) -> StoreResult<Group> {
        let now = clock::now();
        let sql = "INSERT INTO groups (account_id, name, description, metadata, created_at, updated_at) \
                   VALUES ($1, $2, $3, $4, $5, $5) RETURNING id";
        let id: i64 = on_pool!(self, p => sqlx::query_scalar(sql)
            .bind(account_id)
            .bind(&new.name)
            .bind(&new.description)
            .bind(Json(&new.metadata))
            .bind(now)
            .fetch_one(p)
            .await)?;
        self.get_group(account_id, id).await?.ok_or(StoreError::Contended)
    }

    pub async fn get_group(&self, account_id: i64, id: i64) -> StoreResult<Option<Group>> {
        let sql = format!("SELECT * FROM {GROUPS} WHERE account_id = $1 AND id = $2");
        Ok(
            on_pool!(self, p => sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(account_id).bind(id).fetch_optional(p).await)?,
        )
    }

    pub async fn find_group_by_name(&self, account_id: i64, name: &str) -> StoreResult<Option<Group>> {
        let sql = format!("SELECT * FROM {GROUPS} WHERE account_id = $1 AND name = $2");
        Ok(
            on_pool!(self, p => sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(account_id).bind(name).fetch_optional(p).await)?,
        )
    }

    pub async fn list_groups(&self, account_id: i64, query: &ListQuery) -> StoreResult<Page<Group>> {
        self.list_rows(GROUPS, account_scope(account_id), query).await
    }

    pub async fn update_group(
        &self,
        account_id: i64,
        id: i64,
        change: impl Fn(&mut Group),
    ) -> StoreResult<Option<Group>> {
        for _ in 0..CAS_TRIES {
            let Some(old) = self.get_group(account_id, id).await? else {
                return Ok(None);
            };
            let mut new = old.clone();
            change(&mut new);
            new.updated_at = clock::now().max(old.updated_at + chrono::Duration::microseconds(1));
            let sql = "UPDATE groups SET name = $3, description = $4, metadata = $5, updated_at = $6 \
                       WHERE account_id = $1 AND id = $2 AND updated_at = $7";
            let n = on_pool!(self, p => sqlx::query(sql)
                .bind(account_id)
                .bind(id)
                .bind(&new.name)
                .bind(&new.description)
                .bind(&new.metadata)
                .bind(new.updated_at)
                .bind(old.updated_at)
                .execute(p)
                .await
                .map(|r| r.rows_affected()))?;
            if n == 1 {
                return Ok(Some(new));
            }
        }
        Err(StoreError::Contended)
    }

    pub async fn delete_group(&self, account_id: i64, id: i64) -> StoreResult<bool> {
        let sql = "DELETE FROM groups WHERE account_id = $1 AND id = $2";
        let n = on_pool!(self, p => sqlx::query(sql).bind(account_id).bind(id).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Add one contact of the account to one of its groups (already a member is fine).
    /// `false` if the account has no such group or contact.
    pub async fn add_group_contact(&self, account_id: i64, group_id: i64, contact_id: i64) -> StoreResult<bool> {
        if self.get_contact(account_id, contact_id).await?.is_none() {
            return Ok(false);
        }
        Ok(self
            .add_group_contacts(account_id, group_id, &[contact_id])
            .await?
            .is_some())
    }

    /// Add the account's contacts with these ids to the group; ids of other accounts or of
    /// no contact are skipped. Returns how many memberships were new, or `None` if the
    /// account has no such group.
    pub async fn add_group_contacts(
        &self,
        account_id: i64,
        group_id: i64,
        contact_ids: &[i64],
    ) -> StoreResult<Option<u64>> {
        if !self.group_exists(account_id, group_id).await? {
            return Ok(None);
        }
        let mut total = 0;
        // Bounded batches keep the parameter count far under SQLite's limit.
        for chunk in contact_ids.chunks(500) {
            let mut q = account_scope(account_id);
            let ids: Vec<String> = chunk.iter().map(|id| q.bind(SqlValue::Int(*id))).collect();
            q.text.push_str(&format!(" AND id IN ({})", ids.join(", ")));
            total += self.insert_members(group_id, q).await?;
        }
        Ok(Some(total))
    }

    /// Add every contact of the account matching `query`'s filter to the group; `None` if
    /// the account has no such group.
    pub async fn add_group_contacts_matching(
        &self,
        account_id: i64,
        group_id: i64,
        query: &ListQuery,
    ) -> StoreResult<Option<u64>> {
        if !self.group_exists(account_id, group_id).await? {
            return Ok(None);
        }
        let mut cond = account_scope(account_id);
        query.filter.compile_into(self.dialect(), &mut cond);
        self.insert_members(group_id, cond).await.map(Some)
    }

    /// Add contacts the account's own upsert just returned to a group of the account: the
    /// ids need no check against `contacts`, so they go in as values. (Checked through a
    /// `SELECT … WHERE account_id = … AND id IN (…)`, a fresh PostgreSQL database without
    /// statistics planned it as a scan of the account's contacts per chunk: an import
    /// into a group slowed to 600 rows/s by a few hundred thousand rows.)
    pub(crate) async fn add_own_contacts_to_group(
        &self,
        account_id: i64,
        group_id: i64,
        contact_ids: &[i64],
    ) -> StoreResult<()> {
        if contact_ids.is_empty() || !self.group_exists(account_id, group_id).await? {
            return Ok(());
        }
        let now = clock::now();
        for chunk in contact_ids.chunks(1000) {
            let mut q = crate::sql::Q::new(self.dialect());
            q.push("INSERT INTO group_contacts (group_id, contact_id, created_at) VALUES ");
            for (i, id) in chunk.iter().enumerate() {
                if i > 0 {
                    q.push(", ");
                }
                q.push("(")
                    .int(group_id)
                    .push(", ")
                    .int(*id)
                    .push(", ")
                    .ts(now)
                    .push(")");
            }
            q.push(" ON CONFLICT DO NOTHING");
            on_pool!(self, p => sqlx::query_with(q.sql(), crate::sql::args(p, &q)).persistent(false).execute(p).await.map(|_| ()))?;
        }
        Ok(())
    }

    /// `INSERT … SELECT` the contacts matching `cond` (a condition over `contacts` alone,
    /// so filter columns stay unambiguous) into the group.
    async fn insert_members(&self, group_id: i64, mut cond: sauti_core::filter::Sql) -> StoreResult<u64> {
        let g = cond.bind(SqlValue::Int(group_id));
        let now = cond.bind(SqlValue::Timestamp(clock::now()));
        cond.text = format!(
            "INSERT INTO group_contacts (group_id, contact_id, created_at) SELECT {g}, id, {now} FROM contacts \
             WHERE {} ON CONFLICT DO NOTHING",
            cond.text
        );
        self.execute_sql(&cond).await
    }

    async fn group_exists(&self, account_id: i64, group_id: i64) -> StoreResult<bool> {
        let sql = "SELECT COUNT(*) FROM groups WHERE account_id = $1 AND id = $2";
        let n: i64 = on_pool!(self, p => sqlx::query_scalar(sql).bind(account_id).bind(group_id).fetch_one(p).await)?;
        Ok(n == 1)
    }

    /// Remove a contact from a group of the account. `false` if it was not a member.
    pub async fn remove_group_contact(&self, account_id: i64, group_id: i64, contact_id: i64) -> StoreResult<bool> {
        let sql = "DELETE FROM group_contacts WHERE group_id = $2 AND contact_id = $3 \
                   AND group_id IN (SELECT id FROM groups WHERE account_id = $1)";
        let n = on_pool!(self, p => sqlx::query(sql).bind(account_id).bind(group_id).bind(contact_id).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    pub(crate) async fn execute_sql(&self, q: &sauti_core::filter::Sql) -> StoreResult<u64> {
        let text = sqlx::AssertSqlSafe(q.text.clone());
        let n = match &self.pool {
            Pool::Sqlite(p, _) => sqlx::query_with(text, sqlite_args(&q.params))
                .execute(p)
                .await?
                .rows_affected(),
            Pool::Postgres(p) => sqlx::query_with(text, pg_args(&q.params))
                .execute(p)
                .await?
                .rows_affected(),
        };
        Ok(n)
    }
}
