use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    /// A unique constraint refused the write; names the API field it guards.
    #[error("{field} has already been taken")]
    Conflict { field: String },
    /// A row was changed by someone else between our read and our write, too often.
    #[error("the record is being changed concurrently; try again")]
    Contended,
    #[error("configuration: {0}")]
    Config(String),
    #[error("database: {0}")]
    Database(sqlx::Error),
    /// From the inline SQLite reads (`inline.rs`).
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e
            && db.is_unique_violation()
            && let Some(field) = unique_field(db.constraint(), db.message())
        {
            return StoreError::Conflict { field };
        }
        StoreError::Database(e)
    }
}

/// Map a unique violation to the API field it protects. PostgreSQL names the index
/// (`users_email_key`); SQLite names the columns (`UNIQUE constraint failed: users.email`).
fn unique_field(constraint: Option<&str>, message: &str) -> Option<String> {
    if let Some(c) = constraint {
        let field = c.strip_suffix("_key")?;
        // `<table>_<field>`: tables are single words here, fields may contain underscores.
        return field.split_once('_').map(|(_, f)| f.to_string());
    }
    let cols = message.strip_prefix("UNIQUE constraint failed: ")?;
    let last = cols.split(", ").last()?;
    last.split_once('.').map(|(_, f)| f.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_the_field_on_both_backends() {
        assert_eq!(
            super::unique_field(Some("users_email_key"), "").as_deref(),
            Some("email")
        );
        assert_eq!(
            super::unique_field(None, "UNIQUE constraint failed: users.email").as_deref(),
            Some("email")
        );
        assert_eq!(
            super::unique_field(None, "UNIQUE constraint failed: contacts.account_id, contacts.msisdn").as_deref(),
            Some("msisdn")
        );
    }
}
