//! SMPP 3.4 client (ESME) adapter: one transceiver session per provider, on rusmpp's codec.
//!
//! `send` encodes a message's `submit_sm` parts on the caller's task, waits for room in
//! the window (counted in parts) and for the provider's throughput budget, then queues
//! it. One session task owns the TCP connection: it reconnects and rebinds forever with
//! exponential back-off, batches every queued PDU into one buffer written with one
//! syscall per wake-up, decodes every PDU available per read, matches responses to the
//! window by sequence number, and answers `deliver_sm` only once the engine has stored
//! what it carried. See `session.rs` for the loop, `wire.rs` for what goes on the wire.

mod session;
mod settings;
mod wire;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{Semaphore, mpsc, watch};

pub use settings::{SmppSettings, validate_settings};

use crate::limit::Throughput;
use crate::{Channel, Event, EventSink, Health, Outbound, SendOutcome};

/// A message taken by `send`, waiting for (or in) the session.
struct Job {
    attempt_id: i64,
    /// One encoded `submit_sm` per part, sequence number still 0.
    parts: Vec<Bytes>,
    queued_at: Instant,
    /// Room in the window; freed when the outcome is reported.
    _permit: tokio::sync::OwnedSemaphorePermit,
}

/// What the channel and its session task share.
struct Shared {
    provider_id: i64,
    settings: SmppSettings,
    sink: EventSink,
    bound: AtomicBool,
}

impl Shared {
    async fn outcome(&self, attempt_id: i64, outcome: SendOutcome) {
        // The engine gone means the process is stopping; nobody is left to tell.
        let _ = self.sink.send(Event::Outcome { attempt_id, outcome }).await;
    }
}

/// One provider's SMPP session. Built with [`SmppChannel::start`].
pub struct SmppChannel {
    shared: Arc<Shared>,
    jobs: mpsc::UnboundedSender<Job>,
    window: Arc<Semaphore>,
    window_size: u32,
    throughput: Throughput,
    udh_ref: AtomicU8,
    closing: AtomicBool,
    stop: watch::Sender<bool>,
    done: watch::Receiver<bool>,
}

impl SmppChannel {
    /// Spawn the session task (connect, bind as transceiver, reconnect until shutdown)
    /// and return the channel that feeds it. Needs a Tokio runtime.
    pub fn start(
        provider_id: i64,
        settings: SmppSettings,
        throughput_per_second: Option<u32>,
        sink: EventSink,
    ) -> Arc<SmppChannel> {
        let window_size = settings.window.max(1);
        let shared = Arc::new(Shared {
            provider_id,
            settings,
            sink,
            bound: AtomicBool::new(false),
        });
        let (jobs, jobs_rx) = mpsc::unbounded_channel();
        let (stop, stop_rx) = watch::channel(false);
        let (done_tx, done) = watch::channel(false);
        tokio::spawn(session::run(shared.clone(), jobs_rx, stop_rx, done_tx));
        Arc::new(SmppChannel {
            shared,
            jobs,
            window: Arc::new(Semaphore::new(window_size as usize)),
            window_size,
            throughput: Throughput::new(throughput_per_second),
            udh_ref: AtomicU8::new(rand::random()),
            closing: AtomicBool::new(false),
            stop,
            done,
        })
    }

    async fn not_sent(&self, attempt_id: i64, reason: &str) {
        let outcome = SendOutcome::NotSent { reason: reason.into() };
        self.shared.outcome(attempt_id, outcome).await;
    }
}

#[async_trait::async_trait]
impl Channel for SmppChannel {
    async fn send(&self, message: Outbound) {
        let attempt_id = message.attempt_id;
        if self.closing.load(Ordering::Acquire) {
            return self.not_sent(attempt_id, "SMPP channel is shutting down").await;
        }
        let udh_ref = self.udh_ref.fetch_add(1, Ordering::Relaxed);
        let parts = match wire::encode_submits(&self.shared.settings, &message, udh_ref) {
            Ok(parts) => parts,
            Err(failure) => return self.shared.outcome(attempt_id, SendOutcome::Failed(failure)).await,
        };
        let n = parts.len() as u32;
        // A message longer than the whole window takes the whole window rather than
        // waiting forever.
        let permit = match self.window.clone().acquire_many_owned(n.min(self.window_size)).await {
            Ok(permit) => permit,
            // Closed by shutdown while we waited.
            Err(_) => return self.not_sent(attempt_id, "SMPP channel is shutting down").await,
        };
        // Spent before queueing, on the caller's task, so the session task never sleeps
        // on the budget while responses and receipts wait to be read.
        self.throughput.acquire(n).await;
        let job = Job {
            attempt_id,
            parts,
            queued_at: Instant::now(),
            _permit: permit,
        };
        if let Err(mpsc::error::SendError(job)) = self.jobs.send(job) {
            // The session task has finished (shutdown): the message never left.
            self.not_sent(job.attempt_id, "SMPP channel is shut down").await;
        }
    }

    fn health(&self) -> Health {
        if self.shared.bound.load(Ordering::Acquire) {
            Health::Up
        } else {
            Health::Down
        }
    }

    async fn shutdown(&self) {
        self.closing.store(true, Ordering::Release);
        self.window.close();
        let _ = self.stop.send(true);
        let mut done = self.done.clone();
        // Err: the task is gone (it sets `done` last, so every outcome was sent).
        let _ = done.wait_for(|d| *d).await;
    }
}
