//! Filtered, sorted, paginated lists shared by every resource.

use sauti_core::filter::{ListQuery, Sql, SqlValue, order_by};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Arguments, AssertSqlSafe, FromRow};

use crate::{Pool, Store, StoreResult};

/// One page of a list, with the count of all matching rows.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
}

impl<T> Page<T> {
    /// The same page with every item converted (rows to response bodies).
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            total: self.total,
        }
    }
}

pub(crate) fn sqlite_args(params: &[SqlValue]) -> SqliteArguments {
    let mut args = SqliteArguments::default();
    for p in params {
        let r = match p {
            SqlValue::Text(s) => args.add(s.clone()),
            SqlValue::NullText => args.add(None::<String>),
            SqlValue::Int(i) => args.add(*i),
            SqlValue::NullInt => args.add(None::<i64>),
            SqlValue::NullTimestamp => args.add(None::<chrono::DateTime<chrono::Utc>>),
            SqlValue::Float(f) => args.add(*f),
            SqlValue::Bool(b) => args.add(*b),
            SqlValue::Timestamp(t) => args.add(*t),
            // SQLite has no arrays; the filter compiler never emits one for it.
            SqlValue::TextArray(a) => args.add(serde_json::to_string(a).unwrap_or_default()),
        };
        r.expect("encoding a plain value cannot fail");
    }
    args
}

pub(crate) fn pg_args(params: &[SqlValue]) -> PgArguments {
    let mut args = PgArguments::default();
    for p in params {
        let r = match p {
            SqlValue::Text(s) => args.add(s.clone()),
            SqlValue::NullText => args.add(None::<String>),
            SqlValue::Int(i) => args.add(*i),
            SqlValue::NullInt => args.add(None::<i64>),
            SqlValue::NullTimestamp => args.add(None::<chrono::DateTime<chrono::Utc>>),
            SqlValue::Float(f) => args.add(*f),
            SqlValue::Bool(b) => args.add(*b),
            SqlValue::Timestamp(t) => args.add(*t),
            SqlValue::TextArray(a) => args.add(a.clone()),
        };
        r.expect("encoding a plain value cannot fail");
    }
    args
}

impl Store {
    /// `SELECT * FROM table WHERE <scope> AND <filter> ORDER BY … LIMIT … OFFSET …` plus the
    /// total count. `scope` is a trusted condition over `$1…` already bound in `base`.
    pub(crate) async fn list_rows<T>(
        &self,
        table: &'static str,
        mut base: Sql,
        query: &ListQuery,
    ) -> StoreResult<Page<T>>
    where
        T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin,
    {
        query.filter.compile_into(self.dialect(), &mut base);
        let mut page = base.clone();
        let limit = page.bind(SqlValue::Int(i64::from(query.per_page)));
        let offset = page.bind(SqlValue::Int(query.offset() as i64));
        let rows_sql = format!(
            "SELECT * FROM {table} WHERE {}{} LIMIT {limit} OFFSET {offset}",
            page.text,
            order_by(&query.sort)
        );
        let (total, items) = match &self.pool {
            Pool::Sqlite(p, _) => {
                let total = sqlite_count(
                    p,
                    table,
                    &base,
                    self.split_count_min_span,
                    !query.filter.conditions.is_empty(),
                )
                .await?;
                let items = sqlx::query_as_with(AssertSqlSafe(rows_sql.clone()), sqlite_args(&page.params))
                    .fetch_all(p)
                    .await?;
                (total, items)
            }
            Pool::Postgres(p) => {
                let count_sql = format!("SELECT COUNT(*) FROM {table} WHERE {}", base.text);
                let total: i64 = sqlx::query_scalar_with(AssertSqlSafe(count_sql), pg_args(&base.params))
                    .fetch_one(p)
                    .await?;
                let items = sqlx::query_as_with(AssertSqlSafe(rows_sql.clone()), pg_args(&page.params))
                    .fetch_all(p)
                    .await?;
                (total, items)
            }
        };
        Ok(Page {
            items,
            total: total.max(0) as u64,
        })
    }
}

/// `COUNT(*)` of `table` under `cond`; when `filtered` and the ids span at least
/// `min_span` (below that the extra queries cost more than they save), over id ranges
/// counted side by side on the read pool's connections, one per core (at most 4).
///
/// A filter on metadata reads and tests every row in scope; SQLite runs one statement on
/// one core, so a count over a million contacts took twice what the machine allows.
/// PostgreSQL splits such scans itself (parallel workers). Each part is its own read
/// transaction, so under concurrent writes the sum is of slightly different moments, as
/// any count of a changing table is by the time it is read. Unfiltered counts are served
/// by an index and stay whole.
async fn sqlite_count(
    pool: &sqlx::SqlitePool,
    table: &str,
    cond: &Sql,
    min_span: i64,
    filtered: bool,
) -> StoreResult<i64> {
    // Asked once: on Linux the answer reads the cgroup files.
    static CORES: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let cores = *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()).min(4) as i64);
    // Only a plain table has an `id` whose bounds cost two index probes — as two
    // subqueries: SQLite reads `MIN(id), MAX(id)` together by scanning the table.
    let plain = table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let bounds: (Option<i64>, Option<i64>) = if filtered && plain && cores > 1 {
        let sql = format!("SELECT (SELECT MIN(id) FROM {table}), (SELECT MAX(id) FROM {table})");
        sqlx::query_as(AssertSqlSafe(sql)).fetch_one(pool).await?
    } else {
        (None, None)
    };
    let parts: Vec<Sql> = match bounds {
        (Some(lo), Some(hi)) if hi - lo >= min_span => {
            let step = (hi - lo) / cores + 1;
            (0..cores)
                .map(|i| {
                    let mut part = cond.clone();
                    let from = part.bind(SqlValue::Int(lo + i * step));
                    let to = part.bind(SqlValue::Int(lo + (i + 1) * step));
                    part.text = format!("{} AND id >= {from} AND id < {to}", part.text);
                    part
                })
                .collect()
        }
        _ => vec![cond.clone()],
    };
    let counts = futures::future::try_join_all(parts.into_iter().map(|part| async move {
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE {}", part.text);
        sqlx::query_scalar_with::<_, i64, _>(AssertSqlSafe(sql), sqlite_args(&part.params))
            .fetch_one(pool)
            .await
    }))
    .await?;
    Ok(counts.into_iter().sum())
}

/// The scope condition for a tenant's rows.
pub(crate) fn account_scope(account_id: i64) -> Sql {
    Sql {
        text: "account_id = $1".into(),
        params: vec![SqlValue::Int(account_id)],
    }
}

/// No scope (platform-wide lists, for super admins).
pub(crate) fn everything() -> Sql {
    Sql {
        text: "1 = 1".into(),
        params: vec![],
    }
}
