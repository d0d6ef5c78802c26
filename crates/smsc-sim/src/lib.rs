//! An SMPP 3.4 SMSC simulator, the peer of sauti's SMPP tests and benchmarks.
//!
//! [`Simulator::start`] listens on [`SimConfig::bind`] and serves any number of ESME sessions
//! (bind_transceiver, bind_transmitter, bind_receiver). Every submit_sm gets a submit_sm_resp
//! with a fresh 16-hex-digit message id, and, when registered_delivery asks for it, a
//! deliver_sm delivery receipt on a receiving session of the same system_id.
//!
//! The knobs, all in [`SimConfig`]:
//!
//! - `system_id` / `password`: the only credentials accepted; others get ESME_RBINDFAIL.
//! - `submit_latency`: how long each submit_sm_resp is held back. Responses are queued with
//!   their due time, so any number of submits can be pending at once.
//! - `receipt_delay`: how long after the submit_sm_resp the receipt is sent.
//! - `throttle_rate`, then `error_rate`: the fraction of submits answered ESME_RTHROTTLED or
//!   `error_status` (both changeable at run time with [`Simulator::set_throttle_rate`] and
//!   [`Simulator::set_error_rate`]). Refused submits get no message id and no receipt.
//! - `undelivered_rate`: the fraction of receipts that report `stat:UNDELIV err:001`.
//! - `disconnect_every`: after that many PDUs received on a connection, the connection is
//!   closed without answering the last one (exercises the client's reconnect).
//! - `deliver_window`: the most deliver_sm a session may have unacknowledged; further ones wait.
//! - `record`: keep every submit for [`Simulator::submits`]; benchmarks turn it off.
//!
//! Like a real SMSC, the simulator does not lose receipts: a deliver_sm without a
//! deliver_sm_resp when its session closes goes to another bound receiving session of the same
//! system_id, or waits for the next one that binds; a deliver_sm_resp with a non-zero status
//! puts the deliver_sm back to be retried after a second.
//!
//! Built to outrun the ESME under test: each session is one task that owns its state, decodes
//! every PDU a read brought in, and answers with one write per wake-up; the per-message PDUs
//! are encoded by hand (see `wire`) and receipts are queued as fixed-size values, so with
//! `record` off the message path neither allocates nor takes a lock. `examples/load.rs`
//! measures it; the `sauti-smsc-sim` binary runs it standalone (`--help` lists the knobs).
#![forbid(unsafe_code)]

mod deliver;
mod session;
mod text;
mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::net::TcpListener;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use deliver::Deliver;

/// How the simulator behaves; see the crate documentation for what each knob does.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub bind: SocketAddr,
    pub system_id: String,
    pub password: String,
    pub submit_latency: Duration,
    pub receipt_delay: Duration,
    pub error_rate: f64,
    pub error_status: u32,
    pub throttle_rate: f64,
    pub undelivered_rate: f64,
    pub disconnect_every: u64,
    pub record: bool,
    pub deliver_window: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            system_id: "test".into(),
            password: "secret".into(),
            submit_latency: Duration::ZERO,
            receipt_delay: Duration::ZERO,
            error_rate: 0.0,
            error_status: 0x45,
            throttle_rate: 0.0,
            undelivered_rate: 0.0,
            disconnect_every: 0,
            record: true,
            deliver_window: 1000,
        }
    }
}

/// A snapshot of the simulator's counters.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Successful binds.
    pub binds: u64,
    /// Binds refused for wrong credentials.
    pub bind_failures: u64,
    /// submit_sm received on bound sessions, whatever they were answered.
    pub submits: u64,
    /// submit_sm answered with `error_status`.
    pub submit_errors: u64,
    /// submit_sm answered ESME_RTHROTTLED.
    pub throttled: u64,
    /// Receipt deliver_sm written, redeliveries included.
    pub receipts_sent: u64,
    /// Receipts acknowledged with a deliver_sm_resp of status 0 (each receipt once).
    pub receipts_acked: u64,
    /// Receipt deliver_sm written again after a lost session or a refusing deliver_sm_resp.
    pub receipts_redelivered: u64,
    /// MO deliver_sm written (first attempts only).
    pub mo_sent: u64,
    /// Connections closed by the simulator because of `disconnect_every`.
    pub disconnects: u64,
    /// enquire_link received.
    pub enquire_links: u64,
}

/// A submit_sm as the simulator received and answered it.
#[derive(Clone, Debug)]
pub struct Submit {
    pub system_id: String,
    pub source_addr: String,
    pub destination_addr: String,
    pub data_coding: u8,
    pub esm_class: u8,
    pub registered_delivery: u8,
    /// The concatenation IE (reference, total, sequence) when esm_class has UDHI (0x40).
    pub udh: Option<(u16, u8, u8)>,
    /// The user data without UDH: short_message, or message_payload when that is empty.
    pub short_message: Vec<u8>,
    /// `short_message` decoded per `data_coding` (GSM 03.38, UCS-2, Latin-1, else UTF-8).
    pub text: String,
    /// The id given in the submit_sm_resp; `None` when it was refused.
    pub message_id: Option<String>,
    /// The command_status answered.
    pub status: u32,
}

/// A running simulator; dropping it stops it too, [`Simulator::shutdown`] also waits.
pub struct Simulator {
    inner: Arc<Inner>,
    addr: SocketAddr,
    cancel: CancellationToken,
    accept_task: Option<JoinHandle<()>>,
}

impl Simulator {
    pub async fn start(config: SimConfig) -> std::io::Result<Simulator> {
        let listener = TcpListener::bind(config.bind).await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner::new(config));
        let cancel = CancellationToken::new();
        let accept_task = tokio::spawn(accept_loop(listener, inner.clone(), cancel.clone()));
        Ok(Simulator {
            inner,
            addr,
            cancel,
            accept_task: Some(accept_task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn stats(&self) -> Stats {
        self.inner.counters.snapshot()
    }

    pub fn submits(&self) -> Vec<Submit> {
        self.inner.recorded().clone()
    }

    /// Waits until `n` submit_sm have been received (and recorded, when recording).
    pub async fn wait_for_submits(&self, n: usize, timeout: Duration) -> bool {
        self.wait_until(timeout, || self.inner.counters.submits.load(Relaxed) >= n as u64)
            .await
    }

    pub async fn wait_for_receipts_acked(&self, n: u64, timeout: Duration) -> bool {
        self.wait_until(timeout, || self.inner.counters.receipts_acked.load(Relaxed) >= n)
            .await
    }

    /// Sends a mobile-originated deliver_sm (esm_class 0x00; GSM 03.38 when the text allows,
    /// else UCS-2) to a bound receiving session; `false` if there is none.
    pub async fn send_mo(&self, from: &str, to: &str, text: &str) -> bool {
        let deliver = Deliver::mo(from, to, text);
        self.inner.registry().send_mo(deliver)
    }

    pub fn set_throttle_rate(&self, rate: f64) {
        self.inner.throttle_rate.store(rate.to_bits(), Relaxed);
    }

    pub fn set_error_rate(&self, rate: f64) {
        self.inner.error_rate.store(rate.to_bits(), Relaxed);
    }

    /// Stops accepting, closes every session and waits for them to finish.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.accept_task.take() {
            let _ = task.await;
        }
    }

    async fn wait_until(&self, timeout: Duration, reached: impl Fn() -> bool) -> bool {
        // Polling keeps the hot path free of wake-up bookkeeping; sessions publish their
        // counters once per read batch anyway.
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if reached() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn accept_loop(listener: TcpListener, inner: Arc<Inner>, cancel: CancellationToken) {
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tracing::debug!(%peer, "SMPP connection");
                    let _ = stream.set_nodelay(true);
                    sessions.spawn(session::run(inner.clone(), stream, cancel.clone()));
                }
                Err(error) => {
                    // Usually EMFILE: back off instead of spinning on the listener.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
    while sessions.join_next().await.is_some() {}
}

/// State shared by the sessions of one simulator.
pub(crate) struct Inner {
    config: SimConfig,
    throttle_rate: AtomicU64,
    error_rate: AtomicU64,
    counters: Counters,
    submits: Mutex<Vec<Submit>>,
    registry: Mutex<Registry>,
}

impl Inner {
    fn new(config: SimConfig) -> Self {
        Self {
            throttle_rate: AtomicU64::new(config.throttle_rate.to_bits()),
            error_rate: AtomicU64::new(config.error_rate.to_bits()),
            config,
            counters: Counters::default(),
            submits: Mutex::new(Vec::new()),
            registry: Mutex::new(Registry::default()),
        }
    }

    fn throttle_rate(&self) -> f64 {
        f64::from_bits(self.throttle_rate.load(Relaxed))
    }

    fn error_rate(&self) -> f64 {
        f64::from_bits(self.error_rate.load(Relaxed))
    }

    fn recorded(&self) -> MutexGuard<'_, Vec<Submit>> {
        // A panicking test thread must not hide the submits from the others.
        self.submits.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Message ids are drawn from one process-wide counter that starts at the wall clock in
/// nanoseconds: unique across sessions and simulators in a process and, since no simulator
/// issues an id per nanosecond, across restarts of the binary too.
fn reserve_message_ids(count: u64) -> std::ops::Range<u64> {
    static NEXT: OnceLock<AtomicU64> = OnceLock::new();
    let next = NEXT.get_or_init(|| {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        AtomicU64::new(nanos as u64)
    });
    let start = next.fetch_add(count, Relaxed);
    start..start + count
}

#[derive(Default)]
struct Counters {
    binds: AtomicU64,
    bind_failures: AtomicU64,
    submits: AtomicU64,
    submit_errors: AtomicU64,
    throttled: AtomicU64,
    receipts_sent: AtomicU64,
    receipts_acked: AtomicU64,
    receipts_redelivered: AtomicU64,
    mo_sent: AtomicU64,
    disconnects: AtomicU64,
    enquire_links: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> Stats {
        Stats {
            binds: self.binds.load(Relaxed),
            bind_failures: self.bind_failures.load(Relaxed),
            submits: self.submits.load(Relaxed),
            submit_errors: self.submit_errors.load(Relaxed),
            throttled: self.throttled.load(Relaxed),
            receipts_sent: self.receipts_sent.load(Relaxed),
            receipts_acked: self.receipts_acked.load(Relaxed),
            receipts_redelivered: self.receipts_redelivered.load(Relaxed),
            mo_sent: self.mo_sent.load(Relaxed),
            disconnects: self.disconnects.load(Relaxed),
            enquire_links: self.enquire_links.load(Relaxed),
        }
    }

    /// Adds a session's batch of counts, touching only the counters that moved.
    fn add(&self, tally: &Stats) {
        let pairs = [
            (&self.binds, tally.binds),
            (&self.bind_failures, tally.bind_failures),
            (&self.submits, tally.submits),
            (&self.submit_errors, tally.submit_errors),
            (&self.throttled, tally.throttled),
            (&self.receipts_sent, tally.receipts_sent),
            (&self.receipts_acked, tally.receipts_acked),
            (&self.receipts_redelivered, tally.receipts_redelivered),
            (&self.mo_sent, tally.mo_sent),
            (&self.disconnects, tally.disconnects),
            (&self.enquire_links, tally.enquire_links),
        ];
        for (counter, value) in pairs {
            if value != 0 {
                counter.fetch_add(value, Relaxed);
            }
        }
    }
}

/// A deliver_sm waiting for a session, with the time it becomes due.
pub(crate) type Routed = (Instant, Deliver);

/// The bound sessions that take deliver_sm, and the deliver_sm no session has taken yet.
#[derive(Default)]
pub(crate) struct Registry {
    receivers: Vec<ReceiverSession>,
    orphans: HashMap<String, Vec<Routed>>,
    turn: usize,
}

struct ReceiverSession {
    session: u64,
    system_id: Arc<str>,
    tx: UnboundedSender<Routed>,
}

impl Registry {
    /// Registers a receiving session and hands it what earlier sessions of its system_id left.
    pub(crate) fn bind_receiver(
        &mut self,
        session: u64,
        system_id: Arc<str>,
        tx: UnboundedSender<Routed>,
    ) -> Vec<Routed> {
        let left = self.orphans.remove(&*system_id).unwrap_or_default();
        self.receivers.push(ReceiverSession { session, system_id, tx });
        left
    }

    pub(crate) fn unbind(&mut self, session: u64) {
        self.receivers.retain(|r| r.session != session);
    }

    /// Hands deliver_sm to a bound receiving session of `system_id` (taking turns), or keeps
    /// them for the next one that binds.
    pub(crate) fn route(&mut self, system_id: &str, items: Vec<Routed>) {
        if items.is_empty() {
            return;
        }
        let mut pending = items.into_iter();
        if let Some(receiver) = self.next_receiver(|r| &*r.system_id == system_id) {
            for item in pending.by_ref() {
                if let Err(refused) = receiver.tx.send(item) {
                    self.orphans.entry(system_id.to_owned()).or_default().push(refused.0);
                    break;
                }
            }
        }
        let rest: Vec<Routed> = pending.collect();
        if !rest.is_empty() {
            self.orphans.entry(system_id.to_owned()).or_default().extend(rest);
        }
    }

    fn send_mo(&mut self, deliver: Deliver) -> bool {
        match self.next_receiver(|_| true) {
            Some(receiver) => receiver.tx.send((Instant::now(), deliver)).is_ok(),
            None => false,
        }
    }

    fn next_receiver(&mut self, matches: impl Fn(&ReceiverSession) -> bool) -> Option<&ReceiverSession> {
        let count = self.receivers.len();
        let start = self.turn;
        self.turn = self.turn.wrapping_add(1);
        (0..count)
            .map(|offset| &self.receivers[(start + offset) % count])
            .find(|r| matches(r))
    }
}
