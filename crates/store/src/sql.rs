//! Statements assembled at run time (multi-row inserts, batched updates), bound the same
//! way on both backends.

use sauti_core::filter::SqlValue;
use sqlx::{Postgres, Sqlite};

use crate::Dialect;
use crate::list::{pg_args, sqlite_args};

/// A statement under construction. On SQLite placeholders are anonymous `?` bound in text
/// order: sqlx looks up the name of every `$N` with a linear scan, which makes a
/// statement of thousands of parameters quadratic (see `imports.rs`).
pub(crate) struct Q {
    pub text: String,
    pub params: Vec<SqlValue>,
    dialect: Dialect,
}

impl Q {
    pub fn new(dialect: Dialect) -> Self {
        Q {
            text: String::new(),
            params: Vec::new(),
            dialect,
        }
    }

    pub fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }

    /// Append a placeholder bound to `v`.
    pub fn bind(&mut self, v: SqlValue) -> &mut Self {
        self.params.push(v);
        match self.dialect {
            Dialect::Sqlite => self.text.push('?'),
            Dialect::Postgres => {
                self.text.push('$');
                self.text.push_str(&self.params.len().to_string());
            }
        }
        self
    }

    pub fn int(&mut self, v: i64) -> &mut Self {
        self.bind(SqlValue::Int(v))
    }

    pub fn opt_int(&mut self, v: Option<i64>) -> &mut Self {
        self.bind(v.map(SqlValue::Int).unwrap_or(SqlValue::NullInt))
    }

    pub fn text(&mut self, v: &str) -> &mut Self {
        self.bind(SqlValue::Text(v.to_string()))
    }

    pub fn opt_text(&mut self, v: Option<&str>) -> &mut Self {
        self.bind(v.map(|s| SqlValue::Text(s.to_string())).unwrap_or(SqlValue::NullText))
    }

    pub fn ts(&mut self, v: chrono::DateTime<chrono::Utc>) -> &mut Self {
        self.bind(SqlValue::Timestamp(v))
    }

    pub fn opt_ts(&mut self, v: Option<chrono::DateTime<chrono::Utc>>) -> &mut Self {
        self.bind(v.map(SqlValue::Timestamp).unwrap_or(SqlValue::NullTimestamp))
    }

    /// A JSON value for a JSON column (JSONB on PostgreSQL needs the cast from text).
    pub fn json(&mut self, v: &serde_json::Value) -> &mut Self {
        match self.dialect {
            Dialect::Sqlite => self.bind(SqlValue::Text(v.to_string())),
            Dialect::Postgres => {
                self.push("CAST(");
                self.bind(SqlValue::Text(v.to_string()));
                self.push(" AS jsonb)")
            }
        }
    }

    /// The statement's text. Run it with `.persistent(false)`: a built statement's text
    /// changes with its batch size, and sqlx's per-connection cache kept every shape
    /// prepared — a 1,000-row insert is a large program — which held hundreds of MB during
    /// a million-contact campaign.
    pub fn sql(&self) -> sqlx::AssertSqlSafe<String> {
        sqlx::AssertSqlSafe(self.text.clone())
    }
}

/// Arguments for a [`Q`] on the backend of the pool or transaction at hand, so one body
/// inside `on_pool!` serves both.
pub(crate) trait Binds: sqlx::Database {
    fn args(params: &[SqlValue]) -> <Self as sqlx::Database>::Arguments;
}

impl Binds for Sqlite {
    fn args(params: &[SqlValue]) -> <Self as sqlx::Database>::Arguments {
        sqlite_args(params)
    }
}

impl Binds for Postgres {
    fn args(params: &[SqlValue]) -> <Self as sqlx::Database>::Arguments {
        pg_args(params)
    }
}

/// The arguments of `q` for `pool`'s backend.
pub(crate) fn args<DB: Binds>(_pool: &sqlx::Pool<DB>, q: &Q) -> <DB as sqlx::Database>::Arguments {
    DB::args(&q.params)
}
