//! Point reads on SQLite, run on the calling thread.
//!
//! sqlx runs each SQLite connection on a thread of its own and hands every statement, and
//! every row, across a channel to it and back. For a primary-key read that SQLite answers
//! in a few microseconds, those hand-offs are most of the cost: in the token GET benchmark
//! a third of the samples were futex waits and wake-ups between the runtime's workers and
//! sqlx's connection threads. The hottest point reads therefore run here instead, through
//! rusqlite on connections of their own, directly on the task's thread. They are WAL
//! readers beside sqlx's connections, which keep every write and every other read
//! (decision 0018).
//!
//! A read blocks its runtime worker for as long as SQLite takes, so only lookups by a
//! unique key belong here, never a scan. The statements are the same text as their sqlx
//! twins (which PostgreSQL runs); bind their `$N` parameters by name, since SQLite numbers
//! them in order of appearance, not by N.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rusqlite::types::Type;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Params, Row};
use serde::de::DeserializeOwned;

/// Idle connections kept for reuse; more may be open while reads run side by side.
const MAX_IDLE: usize = 8;

pub(crate) struct InlineReads {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for InlineReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InlineReads")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl InlineReads {
    /// Readers of the database file that sqlx has already created at `path`.
    pub(crate) fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The one row `sql` selects, if any, mapped by `map`; the statement stays prepared
    /// on the connection.
    pub(crate) fn row<T>(
        &self,
        sql: &str,
        params: impl Params,
        map: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<Option<T>> {
        self.run(|c| c.prepare_cached(sql)?.query_row(params, map).optional())
    }

    /// Run `read` on an idle connection (opening one if none is idle). The lock is held
    /// only to take the connection and to put it back, never during the read.
    fn run<T>(&self, read: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> rusqlite::Result<T> {
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.open()?,
        };
        let out = read(&conn);
        // A failed statement leaves no transaction open, so the connection stays usable.
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
        out
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        // Not SQLITE_OPEN_READ_ONLY: a read-only connection cannot create the WAL's shared
        // memory file when it is missing. `query_only` refuses writes just the same.
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // A WAL reader waits only while another connection recovers or resets the WAL,
        // which takes milliseconds; a second is a generous bound for a blocked worker.
        conn.busy_timeout(Duration::from_secs(1))?;
        conn.pragma_update(None, "query_only", true)?;
        Ok(conn)
    }
}

/// A JSON text column, decoded.
pub(crate) fn json<T: DeserializeOwned>(row: &Row<'_>, idx: usize) -> rusqlite::Result<T> {
    let text: String = row.get(idx)?;
    serde_json::from_str(&text).map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e)))
}
