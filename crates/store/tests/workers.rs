//! Worker heartbeats on both backends: who counts as alive, and who stops counting.

use std::time::Duration;

use chrono::Utc;
use sauti_store::testing::{Backend, TestDatabase};
use sauti_store::{Store, StoreOptions};

async fn store(backend: Backend) -> Option<(Store, TestDatabase)> {
    let db = TestDatabase::create(backend).await?;
    let store = Store::connect(
        &db.url,
        &StoreOptions {
            max_connections: 2,
            ..StoreOptions::default()
        },
    )
    .await
    .expect("connect");
    store.migrate().await.expect("migrate");
    Some((store, db))
}

async fn heartbeats(backend: Backend) {
    let Some((s, _db)) = store(backend).await else { return };
    let window = Duration::from_secs(30);
    let now = Utc::now();
    assert_eq!(s.worker_heartbeat("a", now, window).await.unwrap(), 1, "alone");
    assert_eq!(s.worker_heartbeat("b", now, window).await.unwrap(), 2, "a second node");
    assert_eq!(
        s.worker_heartbeat("a", now, window).await.unwrap(),
        2,
        "a beat again is still one"
    );
    // b goes quiet: a minute later only a is alive.
    let later = now + chrono::Duration::seconds(60);
    assert_eq!(
        s.worker_heartbeat("a", later, window).await.unwrap(),
        1,
        "b unseen for a minute"
    );
    assert_eq!(s.worker_heartbeat("b", later, window).await.unwrap(), 2, "b is back");
    s.worker_stopped("b").await.unwrap();
    assert_eq!(s.worker_heartbeat("a", later, window).await.unwrap(), 1, "b stopped");
}

#[tokio::test]
async fn heartbeats_on_sqlite() {
    heartbeats(Backend::Sqlite).await;
}

#[tokio::test]
async fn heartbeats_on_postgres() {
    heartbeats(Backend::Postgres).await;
}
