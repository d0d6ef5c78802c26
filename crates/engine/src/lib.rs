//! The delivery engine: claims due transmissions from the store, routes each to a
//! provider adapter, applies what the adapters report (outcomes, receipts, inbound
//! messages), reclaims the work of dead workers, and delivers outbound webhooks.
//!
//! The store is the queue: nothing is held only in memory that a crash could lose. A
//! claim leases rows for `lease`; the lease is renewed while the work is in this process,
//! and a lease that runs out (the process died) is reclaimed by any node: its open attempt
//! becomes `ambiguous` and the transmission is settled by [`AmbiguousPolicy`].
#![forbid(unsafe_code)]

mod attachments;
mod backoff;
mod campaigns;
mod registry;
mod webhooks;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::Utc;
use sauti_channels::sandbox::{SandboxChannel, SandboxSettings};
use sauti_channels::{ChannelKind, Context, Event, Outbound, ReceiptStatus, SendOutcome};
use sauti_core::clock;
use sauti_core::otp;
use sauti_core::secret::ServerKey;
use sauti_store::{Outcome, ReceiptIn, Settle, Store};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

pub use backoff::retry_delay;
pub use webhooks::sign as sign_webhook;

use crate::registry::{Choice, Registry};

/// What to do with a send whose fate is unknown (the worker died or the connection was
/// lost after the bytes left, before the provider answered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmbiguousPolicy {
    /// Send again (the attempt stays recorded as `ambiguous`, so a duplicate is
    /// accounted for). The default: a lost message is worse than a rare duplicate.
    Resend,
    /// Fail the transmission with error `ambiguous`.
    Fail,
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// This worker's name in leases; unique per process.
    pub owner: String,
    /// How long a claim is leased before another worker may take it over.
    pub lease: Duration,
    /// Most transmissions claimed in one statement.
    pub claim_batch: u32,
    /// Most transmissions claimed and not yet settled in this process.
    pub max_in_flight: usize,
    /// Most of those that may be bulk (campaign) traffic. Claimed work waits in the
    /// adapters' queues in order, so this bounds how long a one-time code claimed behind
    /// a campaign waits for its turn: a few SMPP windows keep the pipe full.
    pub max_bulk_in_flight: usize,
    /// How often to look for due work when nothing wakes the dispatcher.
    pub poll_interval: Duration,
    /// Back-off of retries after a failed attempt.
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub ambiguous: AmbiguousPolicy,
    /// The built-in sandbox used by accounts without providers.
    pub sandbox: SandboxSettings,
    pub public_url: String,
    /// Concurrent webhook requests.
    pub webhook_concurrency: usize,
    pub webhook_timeout: Duration,
    /// The installation's secret: verification codes are derived from it when their
    /// message leaves (they are never stored). The API must use the same key.
    pub secret_key: Arc<ServerKey>,
    /// Where due work and campaign pacing read the time (tests move it on by hand).
    /// Leases and retry back-off run on the real clock.
    pub clock: clock::SharedClock,
    /// The installation's data directory: emails read their templates' attachments from
    /// its blob store (`<data_dir>/blobs`), where the API keeps them.
    pub data_dir: std::path::PathBuf,
    /// How far ahead, and how much at once, the campaign pacer releases.
    pub pacing: sauti_store::PaceLimits,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            owner: format!("worker-{:016x}", rand::random::<u64>()),
            lease: Duration::from_secs(30),
            claim_batch: 500,
            max_in_flight: 5000,
            max_bulk_in_flight: 2000,
            poll_interval: Duration::from_millis(200),
            retry_base: Duration::from_secs(10),
            retry_max: Duration::from_secs(3600),
            ambiguous: AmbiguousPolicy::Resend,
            sandbox: SandboxSettings::default(),
            public_url: "http://127.0.0.1:8080".into(),
            webhook_concurrency: 16,
            webhook_timeout: Duration::from_secs(15),
            secret_key: Arc::new(ServerKey::random()),
            clock: clock::system(),
            data_dir: std::path::PathBuf::from("sauti-data"),
            pacing: sauti_store::PaceLimits::default(),
        }
    }
}

/// A transmission handed to an adapter whose outcome has not come back yet.
#[derive(Debug, Clone)]
struct Pending {
    transmission_id: i64,
    number: i64,
    provider_id: Option<i64>,
}

struct Inner {
    store: Store,
    config: EngineConfig,
    ctx: Context,
    registry: RwLock<Arc<Registry>>,
    pending: Mutex<HashMap<i64, Pending>>,
    in_flight: AtomicUsize,
    /// Woken when work may be due (a transmission was created, an outcome freed room).
    wake: Arc<Notify>,
    sink: mpsc::Sender<Event>,
    attachments: attachments::AttachmentCache,
    /// Delivery workers alive in the cluster (this one included), from the heartbeats.
    nodes: AtomicUsize,
}

/// A running engine. Dropping it does not stop it; cancel the token given to
/// [`Engine::start`] and await [`Engine::join`].
pub struct Engine {
    inner: Arc<Inner>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Engine {
    /// Start the dispatcher, the outcome writer, the reclaimer and the webhook sender.
    /// `wake` is notified by the API when it creates work.
    pub fn start(store: Store, config: EngineConfig, wake: Arc<Notify>, stop: CancellationToken) -> Engine {
        let (sink, events) = mpsc::channel(20_000);
        let ctx = Context {
            public_url: config.public_url.trim_end_matches('/').to_string(),
            secret_key: config.secret_key.clone(),
        };
        let sandbox = SandboxChannel::new(0, config.sandbox.clone(), sink.clone());
        let registry = Registry {
            by_account: HashMap::new(),
            by_provider: HashMap::new(),
            sandbox,
        };
        let inner = Arc::new(Inner {
            store,
            config,
            ctx,
            registry: RwLock::new(Arc::new(registry)),
            pending: Mutex::new(HashMap::new()),
            in_flight: AtomicUsize::new(0),
            wake,
            sink,
            attachments: Default::default(),
            nodes: AtomicUsize::new(1),
        });
        let tasks = vec![
            tokio::spawn(dispatch_loop(inner.clone(), stop.clone())),
            tokio::spawn(write_loop(inner.clone(), events, stop.clone())),
            tokio::spawn(reclaim_loop(inner.clone(), stop.clone())),
            tokio::spawn(campaigns::campaign_loop(inner.clone(), stop.clone())),
            tokio::spawn(webhooks::deliver_loop(
                inner.store.clone(),
                inner.config.webhook_concurrency,
                inner.config.webhook_timeout,
                inner.config.poll_interval,
                stop,
            )),
        ];
        Engine { inner, tasks }
    }

    /// Wait for every loop to finish after the stop token was cancelled. The adapters
    /// are shut down while the outcome writer still runs, so what they report on the way
    /// out (sends that never left, answers still in flight) is written, not left to the
    /// lease to expire.
    pub async fn join(self) {
        let mut tasks = self.tasks;
        let writer = tasks.remove(1);
        for t in tasks {
            let _ = t.await;
        }
        let registry = self.inner.registry.read().unwrap_or_else(|e| e.into_inner()).clone();
        for r in registry.by_provider.values() {
            r.adapter.shutdown().await;
        }
        let _ = writer.await;
    }
}

fn now_plus(d: Duration) -> chrono::DateTime<Utc> {
    clock::now() + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Reload the routing table when the providers table changed.
async fn refresh_registry(inner: &Inner, seen: &mut Option<((i64, Option<String>), u32)>) {
    let version = match inner.store.providers_version().await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read providers");
            return;
        }
    };
    // A node coming or going changes each node's share of the providers' limits.
    let nodes = u32::try_from(inner.nodes.load(Ordering::Acquire)).unwrap_or(1).max(1);
    if seen.as_ref().is_some_and(|(v, n)| *v == version && *n == nodes) {
        return;
    }
    let providers = match inner.store.all_providers().await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read providers");
            return;
        }
    };
    let previous = inner.registry.read().unwrap_or_else(|e| e.into_inner()).clone();
    let (next, retired) = registry::rebuild(&providers, &previous, nodes, &inner.ctx, &inner.sink);
    *inner.registry.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
    *seen = Some((version, nodes));
    for adapter in retired {
        tokio::spawn(async move { adapter.shutdown().await });
    }
}

/// Feeds one adapter, so `send`'s back-pressure (an SMPP window, a throughput budget)
/// holds the dispatcher only for that adapter. Two lanes: transactional messages
/// (priority 0: one-time codes, single sends) and campaign traffic. Whenever the adapter
/// takes the next message it takes a transactional one if any is waiting, so a code
/// claimed behind a campaign's backlog of up to `max_bulk_in_flight` messages goes
/// before that backlog instead of after it.
#[derive(Clone)]
struct Feeder {
    transactional: mpsc::Sender<Outbound>,
    bulk: mpsc::Sender<Outbound>,
}

impl Feeder {
    async fn send(&self, priority: i64, m: Outbound) -> Result<(), mpsc::error::SendError<Outbound>> {
        if priority <= 0 {
            self.transactional.send(m).await
        } else {
            self.bulk.send(m).await
        }
    }
}

fn feeder(adapter: Arc<dyn sauti_channels::Channel>) -> Feeder {
    let (transactional, mut first) = mpsc::channel::<Outbound>(10_000);
    let (bulk, mut then) = mpsc::channel::<Outbound>(10_000);
    tokio::spawn(async move {
        loop {
            let m = tokio::select! {
                biased;
                Some(m) = first.recv() => m,
                Some(m) = then.recv() => m,
                else => break,
            };
            adapter.send(m).await;
        }
    });
    Feeder { transactional, bulk }
}

async fn dispatch_loop(inner: Arc<Inner>, stop: CancellationToken) {
    let mut seen = None;
    // Feeders by provider id (0: the sandbox) and the adapter they feed.
    let mut feeders: HashMap<i64, (usize, Feeder)> = HashMap::new();
    loop {
        if stop.is_cancelled() {
            break;
        }
        // Before every claim: a provider created a moment ago must be used by the next
        // message, not the sandbox fallback (the check is one tiny query; the table is
        // re-read only when it changed).
        refresh_registry(&inner, &mut seen).await;
        let room = inner
            .config
            .max_in_flight
            .saturating_sub(inner.in_flight.load(Ordering::Acquire));
        let mut claimed = 0;
        if room > 0 {
            let registry = inner.registry.read().unwrap_or_else(|e| e.into_inner()).clone();
            let in_flight = inner.in_flight.load(Ordering::Acquire);
            let bulk_room = inner.config.max_bulk_in_flight.saturating_sub(in_flight);
            let bulk = bulk_room > 0;
            // With room for bulk, a claim may take bulk up to that room (transactional
            // rows come first in its order anyway); without, transactional rows only.
            let limit = (if bulk { room.min(bulk_room) } else { room } as u32).min(inner.config.claim_batch);
            let now = inner.config.clock.now();
            let mut choices: HashMap<i64, Choice> = HashMap::new();
            let result = inner
                .store
                .claim_due(
                    &inner.config.owner,
                    now,
                    now_plus(inner.config.lease),
                    limit,
                    bulk,
                    |t| {
                        let c = registry.choose(t)?;
                        let r = match &c {
                            Choice::Provider(r) => (Some(r.provider_id), r.kind.clone()),
                            Choice::Sandbox => (None, "sandbox".to_string()),
                        };
                        choices.insert(t.id, c);
                        Some(r)
                    },
                )
                .await;
            match result {
                Err(e) => {
                    tracing::warn!(error = %e, "claiming due transmissions failed; retrying");
                }
                Ok((pairs, unrouted)) => {
                    claimed = pairs.len() + unrouted.len();
                    let outcomes: Vec<Outcome> = unrouted
                        .iter()
                        .map(|t| {
                            let why = "no active provider of the account serves this destination";
                            fail_now(&inner, t, None, "no_route", why)
                        })
                        .collect();
                    apply_failures(&inner, &outcomes, "unroutable transmissions").await;
                    let (pairs, mut codes) = with_codes(&inner, pairs).await;
                    let (pairs, mut files) = attachments::with_attachments(&inner, pairs).await;
                    {
                        let mut pending = inner.pending.lock().unwrap_or_else(|e| e.into_inner());
                        for (t, a) in &pairs {
                            pending.insert(
                                a.id,
                                Pending {
                                    transmission_id: t.id,
                                    number: a.number,
                                    provider_id: a.provider_id,
                                },
                            );
                        }
                        inner.in_flight.fetch_add(pairs.len(), Ordering::AcqRel);
                    }
                    for (t, a) in pairs {
                        let (key, adapter) = match choices.remove(&t.id) {
                            Some(Choice::Provider(r)) => (r.provider_id, r.adapter.clone()),
                            _ => (0, registry.sandbox.clone()),
                        };
                        let identity = Arc::as_ptr(&adapter) as *const () as usize;
                        let entry = feeders
                            .entry(key)
                            .or_insert_with(|| (identity, feeder(adapter.clone())));
                        if entry.0 != identity {
                            *entry = (identity, feeder(adapter));
                        }
                        let mut message = outbound(&t, &a);
                        if let Some(code) = codes.remove(&t.id) {
                            fill_code(&mut message, &code);
                        }
                        if let Some(files) = files.remove(&t.id) {
                            message.attachments = files;
                        }
                        if entry.1.send(t.priority, message).await.is_err() {
                            tracing::error!(transmission_id = t.id, "adapter feeder stopped; the lease will expire");
                        }
                    }
                }
            }
        }
        if claimed as u32 >= inner.config.claim_batch.min(room.max(1) as u32) && claimed > 0 {
            // A full batch: there is probably more due right now.
            continue;
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = inner.wake.notified() => {}
            _ = tokio::time::sleep(inner.config.poll_interval) => {}
        }
    }
}

/// The codes of the verification messages among `pairs` (by transmission id), derived
/// now from the server key: the database never holds them. A message whose verification
/// is gone is failed; if the salts cannot be read, the verification messages are held
/// back (their leases expire and they are claimed again).
async fn with_codes(
    inner: &Inner,
    pairs: Vec<(sauti_store::Transmission, sauti_store::Attempt)>,
) -> (
    Vec<(sauti_store::Transmission, sauti_store::Attempt)>,
    HashMap<i64, String>,
) {
    let ids: Vec<i64> = pairs.iter().filter_map(|(t, _)| t.verification_id()).collect();
    let mut codes = HashMap::new();
    if ids.is_empty() && pairs.iter().all(|(t, _)| t.origin != sauti_store::VERIFICATION_ORIGIN) {
        return (pairs, codes);
    }
    let salts: HashMap<i64, (i64, String, i64)> = match inner.store.verification_salts(&ids).await {
        Ok(rows) => rows
            .into_iter()
            .map(|(id, account, salt, len)| (id, (account, salt, len)))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "reading verification salts failed; their messages wait for the lease to expire");
            let rest = pairs
                .into_iter()
                .filter(|(t, _)| t.origin != sauti_store::VERIFICATION_ORIGIN)
                .collect();
            return (rest, codes);
        }
    };
    let mut gone = Vec::new();
    let mut keep = Vec::with_capacity(pairs.len());
    for (t, a) in pairs {
        if t.origin != sauti_store::VERIFICATION_ORIGIN {
            keep.push((t, a));
            continue;
        }
        // Only the transmission's own account's verification: metadata is not a capability.
        match t
            .verification_id()
            .and_then(|v| salts.get(&v))
            .filter(|(account, ..)| *account == t.account_id)
        {
            Some((_, salt, len)) => {
                let len = u8::try_from(*len).unwrap_or(otp::DEFAULT_LENGTH);
                codes.insert(t.id, otp::code(&inner.config.secret_key, salt, len));
                keep.push((t, a));
            }
            None => {
                let why = "the verification this code belongs to no longer exists";
                gone.push(fail_now(inner, &t, Some(a.id), "verification_gone", why));
            }
        }
    }
    apply_failures(inner, &gone, "orphaned verification messages").await;
    (keep, codes)
}

/// The outcome that fails a claimed transmission now, without sending it.
pub(crate) fn fail_now(
    inner: &Inner,
    t: &sauti_store::Transmission,
    attempt_id: Option<i64>,
    code: &str,
    message: &str,
) -> Outcome {
    Outcome {
        transmission_id: t.id,
        attempt_id,
        // The claim numbered the attempt after the transmission's count.
        number: t.attempts,
        lease_owner: Some(inner.config.owner.clone()),
        settle: Settle::Reject {
            status: "failed",
            code: code.into(),
            message: message.into(),
        },
    }
}

/// Write `outcomes` from [`fail_now`]; if that fails, the leases expire and the
/// transmissions are claimed again.
pub(crate) async fn apply_failures(inner: &Inner, outcomes: &[Outcome], what: &str) {
    if !outcomes.is_empty()
        && let Err(e) = inner.store.apply_outcomes(outcomes).await
    {
        tracing::warn!(error = %e, "failing {what} failed; their leases will expire");
    }
}

/// Write the code into a verification message (a voice call reads it digit by digit).
fn fill_code(m: &mut Outbound, code: &str) {
    let spoken;
    let code = if m.channel == ChannelKind::Voice {
        spoken = otp::spoken(code);
        spoken.as_str()
    } else {
        code
    };
    m.body = m.body.replace(otp::PLACEHOLDER, code);
    if let Some(h) = &mut m.html {
        *h = h.replace(otp::PLACEHOLDER, code);
    }
    if let Some(s) = &mut m.subject {
        *s = s.replace(otp::PLACEHOLDER, code);
    }
}

fn outbound(t: &sauti_store::Transmission, a: &sauti_store::Attempt) -> Outbound {
    Outbound {
        attempt_id: a.id,
        transmission_id: t.id,
        account_id: t.account_id,
        channel: ChannelKind::parse(&t.channel).unwrap_or(ChannelKind::Sms),
        to: t.to_address.clone(),
        from: t.from_address.clone(),
        body: t.body.clone(),
        subject: t.subject.clone(),
        html: t.html.clone(),
        attachments: vec![],
        validity: t
            .validity_period
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs),
        want_receipt: true,
    }
}

/// Turn one adapter outcome into the store's settlement of it.
fn settle(inner: &Inner, p: &Pending, outcome: SendOutcome) -> Settle {
    let now = Utc::now();
    let later = |d: Duration| now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::zero());
    match outcome {
        SendOutcome::Accepted {
            remote_id,
            segments,
            raw_status,
            response,
            ..
        } => Settle::Sent {
            remote_id,
            segments: i64::from(segments),
            raw_status,
            response,
        },
        SendOutcome::Throttled {
            retry_after,
            raw_status,
        } => Settle::Requeue {
            attempt_status: "throttled",
            raw_status,
            reason: "the provider asked us to slow down".into(),
            retry_at: later(backoff::throttle_delay(retry_after)),
        },
        SendOutcome::NotSent { reason } => Settle::Requeue {
            attempt_status: "not_sent",
            raw_status: None,
            reason,
            retry_at: later(Duration::from_millis(500)),
        },
        SendOutcome::Failed(f) => Settle::Fail {
            attempt_status: "failed",
            permanent: f.permanent,
            avoid_provider: if f.provider_fault { p.provider_id } else { None },
            code: f.code,
            message: f.message,
            raw_status: f.raw_status,
            retry_at: later(retry_delay(p.number, inner.config.retry_base, inner.config.retry_max)),
        },
        SendOutcome::Ambiguous { reason } => ambiguous(inner, reason, now),
    }
}

/// An ambiguous send does not blame the provider: the next attempt may use the same one.
fn ambiguous(inner: &Inner, reason: String, now: chrono::DateTime<Utc>) -> Settle {
    Settle::Fail {
        attempt_status: "ambiguous",
        permanent: inner.config.ambiguous == AmbiguousPolicy::Fail,
        avoid_provider: None,
        code: Some("ambiguous".into()),
        message: format!("{reason}; the provider may or may not have the message"),
        raw_status: None,
        retry_at: now,
    }
}

/// A receipt as an adapter (or a provider callback) reported it, for the store.
pub fn receipt_in(kind: &str, provider_id: Option<i64>, receipt: sauti_channels::Receipt) -> ReceiptIn {
    ReceiptIn {
        kind: kind.to_string(),
        provider_id,
        attempt_id: receipt.attempt_id,
        remote_id: receipt.remote_id,
        status: receipt_status(receipt.status),
        raw_status: receipt.raw_status,
        error_code: receipt.error_code,
        done_at: receipt.done_at,
        raw: receipt.raw,
    }
}

fn receipt_status(s: ReceiptStatus) -> &'static str {
    match s {
        ReceiptStatus::Delivered => "delivered",
        ReceiptStatus::Undelivered => "undelivered",
        ReceiptStatus::Intermediate => "intermediate",
    }
}

/// Apply adapter events in batches, in arrival order: a batch's outcomes before its
/// receipts, so a receipt that follows its `submit_sm_resp` on the wire always finds the
/// remote id written. Receipts are acknowledged to the adapter only after their batch
/// committed.
async fn write_loop(inner: Arc<Inner>, mut events: mpsc::Receiver<Event>, stop: CancellationToken) {
    let mut buf = Vec::with_capacity(4096);
    loop {
        buf.clear();
        let n = tokio::select! {
            n = events.recv_many(&mut buf, 4096) => n,
            _ = stop.cancelled() => {
                // Keep writing what the adapters report while they shut down; stop after
                // a quiet moment.
                match tokio::time::timeout(Duration::from_millis(500), events.recv_many(&mut buf, 4096)).await {
                    Ok(n) if n > 0 => n,
                    _ => break,
                }
            }
        };
        if n == 0 {
            break;
        }
        let mut outcomes = Vec::new();
        let mut receipts = Vec::new();
        let mut acks = Vec::new();
        let mut inbound = Vec::new();
        {
            let mut pending = inner.pending.lock().unwrap_or_else(|e| e.into_inner());
            for e in buf.drain(..) {
                match e {
                    Event::Outcome { attempt_id, outcome } => {
                        let Some(p) = pending.remove(&attempt_id) else {
                            tracing::warn!(attempt_id, "outcome for an attempt this worker did not send; ignored");
                            continue;
                        };
                        let s = settle(&inner, &p, outcome);
                        outcomes.push(Outcome {
                            transmission_id: p.transmission_id,
                            attempt_id: Some(attempt_id),
                            number: p.number,
                            lease_owner: Some(inner.config.owner.clone()),
                            settle: s,
                        });
                    }
                    Event::Receipt {
                        provider_id,
                        receipt,
                        ack,
                    } => {
                        let kind = provider_kind(&inner, provider_id);
                        receipts.push(receipt_in(&kind, (provider_id != 0).then_some(provider_id), receipt));
                        acks.extend(ack);
                    }
                    Event::Inbound {
                        provider_id,
                        message,
                        ack,
                    } => inbound.push((provider_id, message, ack)),
                }
            }
        }
        let settled = outcomes.len();
        let mut delay = Duration::from_millis(100);
        // A failed write is retried, never dropped: these outcomes exist nowhere else.
        // Outcomes and receipts go in one transaction (one turn of SQLite's writer).
        loop {
            match inner.store.settle_batch(&outcomes, &receipts).await {
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "writing delivery outcomes failed; retrying");
                    if stop.is_cancelled() && delay > Duration::from_secs(2) {
                        break;
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        for a in acks {
            let _ = a.send(());
        }
        for (provider_id, m, ack) in inbound {
            let account = {
                let reg = inner.registry.read().unwrap_or_else(|e| e.into_inner());
                reg.by_provider
                    .get(&provider_id)
                    .and_then(|_| account_of(&reg, provider_id))
            };
            let Some(account_id) = account else {
                tracing::warn!(provider_id, "inbound message for an unknown provider; not acknowledged");
                continue;
            };
            let kind = provider_kind(&inner, provider_id);
            match inner
                .store
                .record_inbound(account_id, Some(provider_id), &kind, &m.from, &m.to, &m.body, &m.raw)
                .await
            {
                Ok(_) => {
                    if let Some(a) = ack {
                        let _ = a.send(());
                    }
                }
                Err(e) => tracing::warn!(error = %e, "storing an inbound message failed; not acknowledged"),
            }
        }
        if settled > 0 {
            inner.in_flight.fetch_sub(settled, Ordering::AcqRel);
            inner.wake.notify_one();
        }
    }
}

fn account_of(reg: &Registry, provider_id: i64) -> Option<i64> {
    reg.by_account
        .iter()
        .find(|(_, routes)| routes.iter().any(|r| r.provider_id == provider_id))
        .map(|(a, _)| *a)
}

fn provider_kind(inner: &Inner, provider_id: i64) -> String {
    if provider_id == 0 {
        return "sandbox".into();
    }
    inner
        .registry
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .by_provider
        .get(&provider_id)
        .map(|r| r.kind.clone())
        .unwrap_or_else(|| "provider".into())
}

/// Stamp this worker alive and learn how many are: the providers' limits are shared
/// among them. A worker unseen for three rounds is gone; until then it keeps its share.
async fn heartbeat(inner: &Inner, every: Duration) {
    match inner
        .store
        .worker_heartbeat(&inner.config.owner, Utc::now(), every * 3)
        .await
    {
        Ok(n) => {
            let before = inner.nodes.swap(n as usize, Ordering::AcqRel);
            if before != n as usize {
                tracing::info!(workers = n, "delivery workers alive changed");
            }
        }
        Err(e) => tracing::warn!(error = %e, "recording this worker's heartbeat failed"),
    }
}

/// Keep this worker's leases alive, and take over those of dead workers.
async fn reclaim_loop(inner: Arc<Inner>, stop: CancellationToken) {
    let every = (inner.config.lease / 3).max(Duration::from_millis(200));
    heartbeat(&inner, every).await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(every) => {}
        }
        if let Err(e) = inner
            .store
            .renew_leases(&inner.config.owner, now_plus(inner.config.lease))
            .await
        {
            tracing::warn!(error = %e, "renewing leases failed");
        }
        heartbeat(&inner, every).await;
        if let Err(e) = reclaim(&inner).await {
            tracing::warn!(error = %e, "reclaiming expired leases failed");
        }
        if let Err(e) = inner.store.expire_unsent(clock::now()).await {
            tracing::warn!(error = %e, "expiring unsent transmissions failed");
        }
    }
    // Stopping: the other workers take this one's share at their next heartbeat.
    if let Err(e) = inner.store.worker_stopped(&inner.config.owner).await {
        tracing::warn!(error = %e, "removing this worker's heartbeat failed");
    }
}

async fn reclaim(inner: &Inner) -> sauti_store::StoreResult<()> {
    loop {
        let expired = inner
            .store
            .expired_leases(clock::now(), 500, &inner.config.owner)
            .await?;
        if expired.is_empty() {
            return Ok(());
        }
        let now = Utc::now();
        let outcomes: Vec<Outcome> = expired
            .iter()
            .map(|(t, a)| Outcome {
                transmission_id: t.id,
                attempt_id: a.as_ref().filter(|a| a.status == "sending").map(|a| a.id),
                number: t.attempts,
                lease_owner: t.lease_owner.clone(),
                settle: ambiguous(inner, "the worker sending this stopped".into(), now),
            })
            .collect();
        tracing::info!(count = outcomes.len(), "reclaimed transmissions whose worker stopped");
        inner.store.apply_outcomes(&outcomes).await?;
        inner.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sauti_channels::{Channel, Health};
    use tokio::sync::Semaphore;

    /// An adapter that takes one message per permit, recording the order it took them.
    struct Gate {
        open: Semaphore,
        taken: Mutex<Vec<i64>>,
    }

    #[async_trait::async_trait]
    impl Channel for Gate {
        async fn send(&self, m: Outbound) {
            self.open.acquire().await.expect("open").forget();
            self.taken.lock().unwrap().push(m.transmission_id);
        }
        fn health(&self) -> Health {
            Health::Up
        }
        async fn shutdown(&self) {}
    }

    fn message(id: i64) -> Outbound {
        Outbound {
            attempt_id: id,
            transmission_id: id,
            account_id: 1,
            channel: ChannelKind::Sms,
            to: "+254712000000".into(),
            from: None,
            body: "x".into(),
            subject: None,
            html: None,
            attachments: vec![],
            validity: None,
            want_receipt: true,
        }
    }

    #[tokio::test]
    async fn a_code_overtakes_the_campaign_backlog_waiting_for_the_adapter() {
        let gate = Arc::new(Gate {
            open: Semaphore::new(0),
            taken: Mutex::new(vec![]),
        });
        let f = feeder(gate.clone());
        for id in 1..=50 {
            f.send(1, message(id)).await.unwrap();
        }
        f.send(0, message(1000)).await.unwrap();
        gate.open.add_permits(51);
        for _ in 0..1000 {
            if gate.taken.lock().unwrap().len() == 51 {
                break;
            }
            tokio::task::yield_now().await;
        }
        let taken = gate.taken.lock().unwrap().clone();
        assert_eq!(taken.len(), 51);
        // The adapter may already have been waiting with the first campaign message when
        // the code came; the code goes next, and the campaign keeps its order.
        let code_at = taken.iter().position(|&id| id == 1000).unwrap();
        assert!(code_at <= 1, "{taken:?}");
        let bulk: Vec<i64> = taken.into_iter().filter(|&id| id != 1000).collect();
        assert_eq!(bulk, (1..=50).collect::<Vec<_>>());
    }
}
