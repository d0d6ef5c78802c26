//! Batching of concurrent requests' database work (`inserts.rs`, `lookups.rs`): each
//! request hands its job to a queue, and a few workers each take whatever has gathered
//! (up to a batch) and do it in one statement. Each statement is a hop to a database
//! connection and back; under load this makes it one per batch instead of one per
//! request.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use tokio::sync::{Mutex, mpsc};

pub(crate) struct Batcher<J> {
    queue: OnceLock<mpsc::Sender<J>>,
    max_batch: usize,
}

impl<J: Send + 'static> Batcher<J> {
    pub fn new(max_batch: usize) -> Self {
        Self {
            queue: OnceLock::new(),
            max_batch,
        }
    }

    /// Queue `job`. On first use, inside the server's runtime, `workers` tasks start,
    /// each running `work` on every batch it takes. `Err(job)` when the workers are gone
    /// (the runtime is shutting down): the caller does the job itself.
    pub async fn submit<F, Fut>(&self, job: J, workers: usize, work: F) -> Result<(), J>
    where
        F: Fn(Vec<J>) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::channel::<J>(self.max_batch * 8);
            let rx = Arc::new(Mutex::new(rx));
            for _ in 0..workers {
                let (rx, work, max) = (rx.clone(), work.clone(), self.max_batch);
                tokio::spawn(async move {
                    while let Some(batch) = next_batch(&rx, max).await {
                        work(batch).await;
                    }
                });
            }
            tx
        });
        queue.send(job).await.map_err(|mpsc::error::SendError(job)| job)
    }
}

/// Wait for a job, then take whatever else is already queued, up to `max`. `None` once
/// every sender is gone. One worker gathers at a time; the others run their batches.
async fn next_batch<J>(rx: &Mutex<mpsc::Receiver<J>>, max: usize) -> Option<Vec<J>> {
    let mut rx = rx.lock().await;
    let first = rx.recv().await?;
    let mut jobs = vec![first];
    while jobs.len() < max {
        match rx.try_recv() {
            Ok(j) => jobs.push(j),
            Err(_) => break,
        }
    }
    Some(jobs)
}
