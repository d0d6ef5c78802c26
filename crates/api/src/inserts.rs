//! Group commit of new transmissions. Concurrent `POST /api/transmissions` requests hand
//! their row to a small pool of writers, which insert whatever has gathered in one
//! multi-row statement and one commit. On SQLite, where every commit is a serial write
//! (and an fsync), this turns N commits into one; on PostgreSQL it saves round trips.
//! A request still answers only after its own row is committed.

use sauti_store::{NewTransmission, Store, StoreResult, Transmission};
use tokio::sync::oneshot;

use crate::batch::Batcher;

/// Most rows in one statement (well inside both backends' parameter limits).
const MAX_BATCH: usize = 256;

struct Job {
    row: NewTransmission,
    reply: oneshot::Sender<StoreResult<Transmission>>,
}

pub(crate) struct Inserts {
    store: Store,
    batcher: Batcher<Job>,
}

impl Inserts {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            batcher: Batcher::new(MAX_BATCH),
        }
    }

    /// Insert one transmission, committed (with others that came at the same moment)
    /// before this returns.
    pub async fn insert(&self, row: NewTransmission) -> StoreResult<Transmission> {
        let (reply, answer) = oneshot::channel();
        // SQLite has one writer whatever we do; PostgreSQL takes a few at once.
        let writers = match self.store.dialect() {
            sauti_store::Dialect::Sqlite => 1,
            sauti_store::Dialect::Postgres => 4,
        };
        let store = self.store.clone();
        let write = move |jobs| write_batch(store.clone(), jobs);
        if let Err(job) = self.batcher.submit(Job { row, reply }, writers, write).await {
            // The writers are gone (the runtime is shutting down): write it here.
            return insert_one(&self.store, job.row).await;
        }
        match answer.await {
            Ok(result) => result,
            Err(_) => Err(sauti_store::StoreError::Config(
                "the transmission writer stopped".into(),
            )),
        }
    }
}

async fn write_batch(store: Store, jobs: Vec<Job>) {
    let (rows, replies): (Vec<NewTransmission>, Vec<_>) = jobs.into_iter().map(|j| (j.row, j.reply)).unzip();
    let result = store.create_transmissions(&rows).await;
    match result {
        // Rows come back in id order, which is the order they were listed in.
        Ok(created) if created.len() == rows.len() => {
            for (reply, t) in replies.into_iter().zip(created) {
                let _ = reply.send(Ok(t));
            }
        }
        Ok(created) => {
            // Cannot happen (RETURNING gives every row); never insert those rows again.
            let why = format!("the insert of {} rows returned {}", rows.len(), created.len());
            for reply in replies {
                let _ = reply.send(Err(sauti_store::StoreError::Config(why.clone())));
            }
        }
        Err(e) if rows.len() == 1 => {
            if let Some(reply) = replies.into_iter().next() {
                let _ = reply.send(Err(e));
            }
        }
        // One row must not fail its neighbours: each alone, for its own answer.
        Err(_) => {
            for (row, reply) in rows.into_iter().zip(replies) {
                let _ = reply.send(insert_one(&store, row).await);
            }
        }
    }
}

async fn insert_one(store: &Store, row: NewTransmission) -> StoreResult<Transmission> {
    store
        .create_transmissions(std::slice::from_ref(&row))
        .await?
        .pop()
        .ok_or_else(|| sauti_store::StoreError::Config("the insert returned no row".into()))
}
