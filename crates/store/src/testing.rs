//! Fresh databases for tests: a temporary SQLite file, or a new PostgreSQL database on the
//! server named by `SAUTI_TEST_DATABASE_URL`.

use std::path::PathBuf;

use rand::Rng;

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database that exists for one test and is removed when dropped.
#[derive(Debug)]
pub struct TestDatabase {
    pub url: String,
    /// A private directory for the test's files, removed with the database.
    scratch: PathBuf,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    Dir(PathBuf),
    Postgres { admin_url: String, name: String },
}

fn suffix() -> String {
    let n: u64 = rand::rng().random();
    format!("{}_{n:016x}", std::process::id())
}

impl TestDatabase {
    pub fn scratch_dir(&self) -> &std::path::Path {
        &self.scratch
    }

    /// A new, empty database on `backend`; `None` (with one line on stderr) for PostgreSQL
    /// when `SAUTI_TEST_DATABASE_URL` is unset.
    pub async fn create(backend: Backend) -> Option<TestDatabase> {
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("sauti-test-{}", suffix()));
                std::fs::create_dir_all(&dir).expect("create a temporary directory");
                let url = format!("sqlite://{}", dir.join("sauti.db").display());
                Some(TestDatabase {
                    url,
                    scratch: dir.clone(),
                    cleanup: Cleanup::Dir(dir),
                })
            }
            Backend::Postgres => {
                let Ok(admin_url) = std::env::var("SAUTI_TEST_DATABASE_URL") else {
                    eprintln!("skipped on PostgreSQL: SAUTI_TEST_DATABASE_URL is not set");
                    return None;
                };
                let name = format!("sauti_test_{}", suffix());
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&admin_url)
                    .await
                    .unwrap_or_else(|e| panic!("connect to SAUTI_TEST_DATABASE_URL: {e}"));
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create a test database");
                let _ = conn.close().await;
                let url = replace_db_name(&admin_url, &name);
                let scratch = std::env::temp_dir().join(format!("sauti-test-{name}"));
                std::fs::create_dir_all(&scratch).expect("create a temporary directory");
                Some(TestDatabase {
                    url,
                    scratch,
                    cleanup: Cleanup::Postgres { admin_url, name },
                })
            }
        }
    }
}

/// Swap the database name in a PostgreSQL URL, keeping any query string.
fn replace_db_name(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[after_scheme..]
        .find('/')
        .map(|i| i + after_scheme)
        .unwrap_or(base.len());
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Dir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Postgres { admin_url, name } => {
                let _ = std::fs::remove_dir_all(&self.scratch);
                // Drop runs outside async context; a small blocking runtime does the work.
                let (admin_url, name) = (admin_url.clone(), name.clone());
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .ok()?;
                    rt.block_on(async move {
                        use sqlx::Connection;
                        let mut conn = sqlx::PgConnection::connect(&admin_url).await.ok()?;
                        sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .execute(&mut conn)
                        .await
                        .ok()
                    })
                })
                .join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn swaps_the_database_name() {
        assert_eq!(
            super::replace_db_name("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            super::replace_db_name("postgres://127.0.0.1", "x"),
            "postgres://127.0.0.1/x"
        );
        assert_eq!(
            super::replace_db_name("postgres://h/db?sslmode=disable", "x"),
            "postgres://h/x?sslmode=disable"
        );
    }
}
