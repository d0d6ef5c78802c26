//! The session task: connect, bind, run the window, reconnect.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use rusmpp::{
    Command, CommandId, CommandStatus, Pdu,
    pdus::{BindTransceiver, DeliverSm, DeliverSmResp},
    tlvs::TlvValue,
    tokio_codec::CommandCodec,
    types::COctetString,
    values::{InterfaceVersion, Npi, Ton},
};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, timeout};
use tokio_util::codec::Decoder;
use tracing::{debug, info, warn};

use super::wire::{self, ESME_RMSGQFUL, ESME_ROK, ESME_RTHROTTLED, ESME_RX_T_APPN};
use super::{Job, Shared};
use crate::{Event, Failure, Inbound, Receipt, SendOutcome};

/// How long a message waits for a bind while the session is down before it comes back
/// `NotSent` (the engine can route it elsewhere meanwhile).
const HOLD: Duration = Duration::from_secs(5);
/// Housekeeping tick: response timeouts, enquire_link, throttling pauses, held messages.
const TICK: Duration = Duration::from_millis(100);
/// The most `deliver_sm` read but not yet answered; beyond it the session stops reading
/// until the engine catches up (back-pressure rather than unbounded memory).
const MAX_UNACKED: usize = 50_000;
/// Largest PDU accepted from the SMSC (a deliver_sm with a long message_payload fits).
const MAX_PDU: usize = 64 * 1024;
/// Queued PDUs encoded per wake-up at most, so one write stays a sensible size.
const MAX_WBUF: usize = 4 * 1024 * 1024;
/// Concatenated MO parts wait this long for their siblings, then go up as they are.
const MO_TIMEOUT: Duration = Duration::from_secs(30);
const MO_MAX_PENDING: usize = 10_000;
/// Ids of parts 2..n of multi-part messages, kept to map their receipts to the first part.
const ALIASES_MAX: usize = 1_000_000;
const ALIASES_AGE: Duration = Duration::from_secs(48 * 3600);
const THROTTLE_MIN: Duration = Duration::from_millis(200);
const THROTTLE_MAX: Duration = Duration::from_secs(2);
/// Shutdown waits at most this long for in-flight responses, then for unbind_resp.
const DRAIN_MAX: Duration = Duration::from_secs(5);
const UNBIND_WAIT: Duration = Duration::from_secs(1);

/// The `deliver_sm` sequence numbers one ack answers, and whether it was stored.
type Answer = (Vec<u32>, bool);

/// Later-part message ids → the first part's id, bounded by count and age.
#[derive(Default)]
struct Aliases {
    map: HashMap<String, String>,
    order: VecDeque<(Instant, String)>,
}

impl Aliases {
    fn insert(&mut self, part_id: String, first: String) {
        self.order.push_back((Instant::now(), part_id.clone()));
        self.map.insert(part_id, first);
        self.evict();
    }

    fn evict(&mut self) {
        while let Some((at, _)) = self.order.front() {
            if self.order.len() <= ALIASES_MAX && at.elapsed() < ALIASES_AGE {
                break;
            }
            if let Some((_, id)) = self.order.pop_front() {
                self.map.remove(&id);
            }
        }
    }

    fn resolve(&self, id: String) -> String {
        self.map.get(&id).cloned().unwrap_or(id)
    }
}

/// The session task's state that outlives one connection.
struct Outer {
    shared: Arc<Shared>,
    jobs: mpsc::UnboundedReceiver<Job>,
    stop: watch::Receiver<bool>,
    held: VecDeque<Job>,
    aliases: Aliases,
    /// Sequence numbers continue across connections; any value 1..=0x7FFFFFFF is valid.
    seq: u32,
}

impl Outer {
    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Messages that waited longer than `HOLD` for a bind come back `NotSent`.
    async fn expire_held(&mut self, reason: &str) {
        while self.held.front().is_some_and(|j| j.queued_at.elapsed() >= HOLD) {
            if let Some(job) = self.held.pop_front() {
                let outcome = SendOutcome::NotSent { reason: reason.into() };
                self.shared.outcome(job.attempt_id, outcome).await;
            }
        }
    }

    /// Wait out `until` (or forever with `None`) while still taking messages into the
    /// hold queue and expiring them; `false` when shutdown was asked for.
    async fn wait_down<F: Future>(&mut self, fut: F, reason: &str) -> Option<F::Output> {
        let mut fut = std::pin::pin!(fut);
        let mut tick = tokio::time::interval(TICK);
        loop {
            if self.stopping() {
                return None;
            }
            tokio::select! {
                out = &mut fut => return Some(out),
                job = self.jobs.recv() => match job {
                    Some(job) => self.held.push_back(job),
                    // Every sender gone: nobody will ever send again; treat as shutdown.
                    None => return None,
                },
                _ = tick.tick() => self.expire_held(reason).await,
                changed = self.stop.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
            }
        }
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = if self.seq >= 0x7FFF_FFFF { 1 } else { self.seq + 1 };
        self.seq
    }
}

pub(super) async fn run(
    shared: Arc<Shared>,
    jobs: mpsc::UnboundedReceiver<Job>,
    stop: watch::Receiver<bool>,
    done: watch::Sender<bool>,
) {
    let mut outer = Outer {
        shared: shared.clone(),
        jobs,
        stop,
        held: VecDeque::new(),
        aliases: Aliases::default(),
        seq: 0,
    };
    let s = &shared.settings;
    let (min, max) = (
        s.reconnect_min_ms.max(1),
        s.reconnect_max_ms.max(s.reconnect_min_ms.max(1)),
    );
    let mut backoff = min;
    loop {
        if outer.stopping() {
            break;
        }
        let reason = match outer
            .wait_down(connect_and_bind(&shared), "SMPP session is not bound")
            .await
        {
            None => break,
            Some(Err(reason)) => reason,
            Some(Ok((stream, early))) => {
                backoff = min;
                shared.bound.store(true, Ordering::Release);
                info!(provider_id = shared.provider_id, host = %s.host, port = s.port, system_id = %s.system_id, "SMPP bound as transceiver");
                let mut session = Session::new(stream, early, &mut outer);
                let end = session.run().await;
                shared.bound.store(false, Ordering::Release);
                let reason = match &end {
                    Ok(()) => "SMPP session unbound".to_string(),
                    Err(e) => format!("SMPP connection lost: {e}"),
                };
                session.resolve_all(&reason).await;
                if end.is_ok() && session.outer.stopping() {
                    info!(provider_id = shared.provider_id, "SMPP session unbound for shutdown");
                    break;
                }
                reason
            }
        };
        // Jitter (50–100 % of the step) keeps many sessions from reconnecting in step.
        let wait = Duration::from_millis(rand::random_range(backoff / 2..=backoff));
        warn!(provider_id = shared.provider_id, host = %s.host, port = s.port, reason = %reason, retry_in_ms = wait.as_millis() as u64, "SMPP session down; reconnecting");
        backoff = (backoff * 2).min(max);
        if outer
            .wait_down(tokio::time::sleep(wait), "SMPP session is not bound")
            .await
            .is_none()
        {
            break;
        }
    }
    shared.bound.store(false, Ordering::Release);
    // No more messages: close the queue first so a racing `send` gets its job back and
    // reports it itself, then hand back everything that never left.
    outer.jobs.close();
    while let Some(job) = outer.held.pop_front() {
        let outcome = SendOutcome::NotSent {
            reason: "SMPP channel shut down".into(),
        };
        shared.outcome(job.attempt_id, outcome).await;
    }
    while let Some(job) = outer.jobs.recv().await {
        let outcome = SendOutcome::NotSent {
            reason: "SMPP channel shut down".into(),
        };
        shared.outcome(job.attempt_id, outcome).await;
    }
    let _ = done.send(true);
}

/// Connect and bind as transceiver; the stream is returned bound, or why it is not.
async fn connect_and_bind(shared: &Shared) -> Result<(TcpStream, BytesMut), String> {
    let s = &shared.settings;
    let limit = Duration::from_secs(s.response_timeout_secs.max(1));
    let mut stream = timeout(limit, TcpStream::connect((s.host.as_str(), s.port)))
        .await
        .map_err(|_| format!("connect to {}:{} timed out", s.host, s.port))?
        .map_err(|e| format!("connect to {}:{}: {e}", s.host, s.port))?;
    let _ = stream.set_nodelay(true);
    let field =
        |name: &str, v: &str| format!("{name} {v:?} does not fit SMPP ({name} is checked by validate_settings)");
    let bind = BindTransceiver::builder()
        .system_id(COctetString::from_string(s.system_id.clone()).map_err(|_| field("system_id", &s.system_id))?)
        // The password's value never appears in an error or a log.
        .password(COctetString::from_string(s.password.clone()).map_err(|_| "password does not fit SMPP".to_string())?)
        .system_type(
            COctetString::from_string(s.system_type.clone()).map_err(|_| field("system_type", &s.system_type))?,
        )
        .interface_version(InterfaceVersion::Smpp3_4)
        .addr_ton(Ton::from(0))
        .addr_npi(Npi::from(0))
        .address_range(COctetString::empty())
        .build();
    let mut out = BytesMut::new();
    wire::encode_command(
        &Command::new(CommandStatus::EsmeRok, 1, Pdu::BindTransceiver(bind)),
        &mut out,
    );
    stream.write_all(&out).await.map_err(|e| format!("writing bind: {e}"))?;

    let mut codec = CommandCodec::new().with_max_length(MAX_PDU);
    let mut buf = BytesMut::with_capacity(1024);
    let read = async {
        loop {
            if let Some(cmd) = codec
                .decode(&mut buf)
                .map_err(|e| format!("decoding bind response: {e}"))?
            {
                if cmd.id() == CommandId::BindTransceiverResp || cmd.id() == CommandId::GenericNack {
                    let status = u32::from(cmd.status());
                    if status == ESME_ROK && cmd.id() == CommandId::BindTransceiverResp {
                        return Ok(());
                    }
                    return Err(format!("bind refused: {} (0x{status:08X})", wire::status_name(status)));
                }
                continue;
            }
            if stream
                .read_buf(&mut buf)
                .await
                .map_err(|e| format!("reading bind response: {e}"))?
                == 0
            {
                return Err("connection closed during bind".to_string());
            }
        }
    };
    timeout(limit, read)
        .await
        .map_err(|_| "no bind response in time".to_string())??;
    // Whatever followed the bind response (an SMSC may deliver at once) is the session's.
    Ok((stream, buf))
}

/// A message being sent on this connection.
struct Msg {
    attempt_id: i64,
    ids: Vec<String>,
    /// Parts go out under consecutive sequence numbers from `first_seq`.
    first_seq: u32,
    answered: usize,
    problem: Option<SendOutcome>,
    /// Stream offset at which the first part's bytes end: the message left once
    /// this many bytes were written.
    first_end: u64,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Msg {
    fn seqs(&self) -> impl Iterator<Item = u32> + use<> {
        let first = self.first_seq;
        (0..self.ids.len() as u32).map(move |i| seq_after(first, i))
    }
}

/// The `i`-th sequence number after `first`, wrapping as `Outer::next_seq` does.
fn seq_after(first: u32, i: u32) -> u32 {
    (first - 1 + i) % 0x7FFF_FFFF + 1
}

struct InFlight {
    /// Slot in `Session::msgs`.
    msg: usize,
    part: usize,
}

/// Sequence numbers are spread evenly already: a multiplicative hash is enough, and
/// the window is looked up twice per submit, where SipHash shows in a profile.
#[derive(Default, Clone, Copy)]
struct SeqHasher(u64);

impl std::hash::Hasher for SeqHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type SeqMap<V> = HashMap<u32, V, std::hash::BuildHasherDefault<SeqHasher>>;

struct MoParts {
    first_at: Instant,
    total: u8,
    data_coding: u8,
    parts: Vec<Option<Vec<u8>>>,
    seqs: Vec<u32>,
    from: String,
    to: String,
}

struct Session<'a> {
    outer: &'a mut Outer,
    stream: TcpStream,
    codec: CommandCodec,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// Bytes ever appended to / written from `wbuf` on this connection.
    encoded: u64,
    written: u64,
    window: SeqMap<InFlight>,
    /// Messages on this connection, in slots reused through `free` (no hashing).
    msgs: Vec<Option<Msg>>,
    free: Vec<usize>,
    /// (deadline, seq) in write order; uniform timeouts keep it sorted.
    deadlines: VecDeque<(Instant, u32)>,
    response_timeout: Duration,
    enquire_interval: Duration,
    last_rx: Instant,
    enquire: Option<(u32, Instant)>,
    paused_until: Option<Instant>,
    throttle_pause: Duration,
    /// Acks come back here, from one small task per ack that waits on it: a channel
    /// the loop drains in batches (a FuturesUnordered of the receivers profiled
    /// several times slower at tens of thousands of receipts a second).
    answers_tx: mpsc::UnboundedSender<Answer>,
    answers: mpsc::UnboundedReceiver<Answer>,
    answer_batch: Vec<Answer>,
    /// `deliver_sm` read and not yet answered.
    unacked: usize,
    mo: HashMap<(String, String, u16, u8), MoParts>,
    draining: Option<Instant>,
    unbind_sent: Option<Instant>,
    batch: Vec<Job>,
}

impl<'a> Session<'a> {
    fn new(stream: TcpStream, early: BytesMut, outer: &'a mut Outer) -> Self {
        let s = &outer.shared.settings;
        let response_timeout = Duration::from_secs(s.response_timeout_secs.max(1));
        let enquire_interval = Duration::from_secs(s.enquire_link_interval_secs.max(1));
        let window = s.window as usize;
        let (answers_tx, answers) = mpsc::unbounded_channel();
        Session {
            outer,
            stream,
            codec: CommandCodec::new().without_max_length(),
            rbuf: early,
            wbuf: BytesMut::with_capacity(256 * 1024),
            encoded: 0,
            written: 0,
            window: SeqMap::with_capacity_and_hasher(window, Default::default()),
            msgs: Vec::with_capacity(window),
            free: Vec::new(),
            deadlines: VecDeque::new(),
            response_timeout,
            enquire_interval,
            last_rx: Instant::now(),
            enquire: None,
            paused_until: None,
            throttle_pause: THROTTLE_MIN,
            answers_tx,
            answers,
            answer_batch: Vec::with_capacity(1024),
            unacked: 0,
            mo: HashMap::new(),
            draining: None,
            unbind_sent: None,
            batch: Vec::with_capacity(1024),
        }
    }

    fn push(&mut self, command: &Command) {
        let before = self.wbuf.len();
        wire::encode_command(command, &mut self.wbuf);
        self.encoded += (self.wbuf.len() - before) as u64;
    }

    fn respond(&mut self, status: u32, seq: u32, pdu: Pdu) {
        self.push(&Command::new(CommandStatus::from(status), seq, pdu));
    }

    fn may_take(&self) -> bool {
        self.draining.is_none() && self.paused_until.is_none() && self.wbuf.len() < MAX_WBUF
    }

    fn release(&mut self, slot: usize) -> Option<Msg> {
        let msg = self.msgs.get_mut(slot)?.take()?;
        self.free.push(slot);
        Some(msg)
    }

    /// Move a message's parts into the write buffer and the window.
    fn take(&mut self, job: Job) {
        let key = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.msgs.push(None);
                self.msgs.len() - 1
            }
        };
        let now = Instant::now();
        let mut first_seq = 0;
        let mut first_end = 0;
        for (part, bytes) in job.parts.iter().enumerate() {
            let seq = self.outer.next_seq();
            if part == 0 {
                first_seq = seq;
            }
            let start = self.wbuf.len();
            self.wbuf.extend_from_slice(bytes);
            self.wbuf[start + 12..start + 16].copy_from_slice(&seq.to_be_bytes());
            self.encoded += bytes.len() as u64;
            if part == 0 {
                first_end = self.encoded;
            }
            self.window.insert(seq, InFlight { msg: key, part });
            self.deadlines.push_back((now + self.response_timeout, seq));
        }
        self.msgs[key] = Some(Msg {
            attempt_id: job.attempt_id,
            ids: vec![String::new(); job.parts.len()],
            first_seq,
            answered: 0,
            problem: None,
            first_end,
            _permit: job._permit,
        });
    }

    /// Take queued messages: the held ones first (they waited for this bind), then
    /// whatever is queued now, without waiting.
    fn take_ready(&mut self) {
        while self.may_take() {
            let Some(job) = self.outer.held.pop_front() else { break };
            self.take(job);
        }
        while self.may_take() {
            match self.outer.jobs.try_recv() {
                Ok(job) => self.take(job),
                Err(_) => break,
            }
        }
    }

    /// One write of everything buffered (or as much as the socket takes).
    fn flush(&mut self) -> Result<(), String> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        match self.stream.try_write(&self.wbuf) {
            Ok(n) => {
                self.wbuf.advance(n);
                self.written += n as u64;
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(format!("write: {e}")),
        }
    }

    async fn run(&mut self) -> Result<(), String> {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.take_ready();
        if self.frames().await? {
            return Ok(());
        }
        self.flush()?;
        loop {
            let read = self.unacked < MAX_UNACKED;
            let interest = match (read, !self.wbuf.is_empty()) {
                (true, true) => Some(Interest::READABLE | Interest::WRITABLE),
                (true, false) => Some(Interest::READABLE),
                (false, true) => Some(Interest::WRITABLE),
                (false, false) => None,
            };
            let may_take = self.may_take();
            let stop_seen = self.draining.is_some();
            tokio::select! {
                ready = async { self.stream.ready(interest.unwrap_or(Interest::READABLE)).await }, if interest.is_some() => {
                    let ready = ready.map_err(|e| format!("socket: {e}"))?;
                    if ready.is_readable() && read && self.read().await? {
                        // Peer unbound or (while draining) answered our unbind.
                        self.flush()?;
                        return Ok(());
                    }
                }
                n = self.outer.jobs.recv_many(&mut self.batch, 1024), if may_take => {
                    if n == 0 {
                        // Every sender gone: nothing more will come; drain as for shutdown.
                        self.draining.get_or_insert_with(Instant::now);
                    }
                    let batch = std::mem::take(&mut self.batch);
                    for job in batch.into_iter() {
                        self.take(job);
                    }
                }
                _ = self.answers.recv_many(&mut self.answer_batch, 1024), if self.unacked > 0 => {
                    for (seqs, stored) in std::mem::take(&mut self.answer_batch) {
                        self.answer_deliver(&seqs, stored);
                    }
                }
                _ = tick.tick() => {
                    if self.housekeeping().await? {
                        self.flush()?;
                        return Ok(());
                    }
                }
                changed = self.outer.stop.changed(), if !stop_seen => {
                    if changed.is_err() {
                        // The channel was dropped without shutdown: wind down all the same.
                        self.draining.get_or_insert_with(Instant::now);
                    }
                }
            }
            if self.draining.is_none() && self.outer.stopping() {
                info!(
                    provider_id = self.outer.shared.provider_id,
                    in_flight = self.window.len(),
                    "SMPP shutdown: waiting for in-flight responses"
                );
                self.draining = Some(Instant::now());
            }
            // Everything else already ready goes out in the same write.
            while let Ok((seqs, stored)) = self.answers.try_recv() {
                self.answer_deliver(&seqs, stored);
            }
            self.take_ready();
            if let Some(started) = self.draining
                && self.unbind_sent.is_none()
                && ((self.window.is_empty() && self.unacked == 0)
                    || started.elapsed() >= DRAIN_MAX.min(self.response_timeout))
            {
                let seq = self.outer.next_seq();
                self.push(&Command::new(CommandStatus::EsmeRok, seq, Pdu::Unbind));
                self.unbind_sent = Some(Instant::now());
            }
            self.flush()?;
        }
    }

    /// Read once and handle every whole PDU buffered. `true`: the session is over.
    async fn read(&mut self) -> Result<bool, String> {
        self.rbuf.reserve(64 * 1024);
        match self.stream.try_read_buf(&mut self.rbuf) {
            Ok(0) => return Err("connection closed by the SMSC".into()),
            Ok(_) => self.last_rx = Instant::now(),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(format!("read: {e}")),
        }
        self.frames().await
    }

    /// Handle every whole PDU in the read buffer. `true`: the session is over.
    async fn frames(&mut self) -> Result<bool, String> {
        while self.rbuf.len() >= 16 {
            let len = u32::from_be_bytes([self.rbuf[0], self.rbuf[1], self.rbuf[2], self.rbuf[3]]) as usize;
            if !(16..=MAX_PDU).contains(&len) {
                return Err(format!("bad command_length {len} from the SMSC"));
            }
            if self.rbuf.len() < len {
                break;
            }
            if u32::from_be_bytes([self.rbuf[4], self.rbuf[5], self.rbuf[6], self.rbuf[7]]) == 0x8000_0004 {
                // submit_sm_resp, the bulk of what an SMSC sends: its body is one
                // C-string, read in place rather than through rusmpp's owned types, which
                // allocate per field.
                let header =
                    |i: usize| u32::from_be_bytes([self.rbuf[i], self.rbuf[i + 1], self.rbuf[i + 2], self.rbuf[i + 3]]);
                let (status, seq) = (header(8), header(12));
                let body = &self.rbuf[16..len];
                let id = body.split(|&b| b == 0).next().unwrap_or_default();
                let id = String::from_utf8_lossy(id).into_owned();
                self.rbuf.advance(len);
                self.submit_resp(seq, status, Some(id)).await;
                continue;
            }
            // Framed here so one PDU rusmpp cannot decode costs that PDU, not the session.
            let mut frame = self.rbuf.split_to(len);
            let header = |i: usize| u32::from_be_bytes([frame[i], frame[i + 1], frame[i + 2], frame[i + 3]]);
            let (id, status, seq) = (header(4), header(8), header(12));
            match self.codec.decode(&mut frame) {
                Ok(Some(cmd)) => {
                    if self.handle(cmd).await? {
                        return Ok(true);
                    }
                }
                Ok(None) | Err(_) => {
                    warn!(
                        provider_id = self.outer.shared.provider_id,
                        command_id = format_args!("0x{id:08X}"),
                        seq,
                        "undecodable PDU from the SMSC"
                    );
                    self.codec = CommandCodec::new().without_max_length();
                    if id == 0x8000_0004 {
                        // A submit_sm_resp we cannot read: accepted or not is unknown.
                        let outcome = (status != ESME_ROK).then_some(status);
                        self.submit_resp(seq, outcome.unwrap_or(ESME_ROK), None).await;
                    } else if id & 0x8000_0000 == 0 {
                        self.respond(0x08, seq, Pdu::GenericNack);
                    }
                }
            }
        }
        Ok(false)
    }

    /// One PDU from the SMSC. `true`: the session is over.
    async fn handle(&mut self, cmd: Command) -> Result<bool, String> {
        let seq = cmd.sequence_number();
        let status = u32::from(cmd.status());
        match cmd.id() {
            CommandId::SubmitSmResp => {
                let id = match cmd.pdu() {
                    Some(Pdu::SubmitSmResp(r)) => r.message_id().as_str().to_string(),
                    _ => String::new(),
                };
                self.submit_resp(seq, status, Some(id)).await;
            }
            CommandId::GenericNack => {
                if self.window.contains_key(&seq) {
                    self.submit_resp(seq, status, Some(String::new())).await;
                } else {
                    warn!(
                        provider_id = self.outer.shared.provider_id,
                        seq,
                        status = wire::status_name(status),
                        "generic_nack from the SMSC"
                    );
                }
            }
            CommandId::DeliverSm => match cmd.pdu() {
                Some(Pdu::DeliverSm(d)) => self.deliver(seq, d).await,
                _ => self.respond(0x08, seq, Pdu::GenericNack),
            },
            CommandId::EnquireLink => self.respond(ESME_ROK, seq, Pdu::EnquireLinkResp),
            CommandId::EnquireLinkResp if self.enquire.is_some_and(|(s, _)| s == seq) => self.enquire = None,
            CommandId::Unbind => {
                self.respond(ESME_ROK, seq, Pdu::UnbindResp);
                // Out before the connection is dropped, so the SMSC sees a clean unbind.
                self.flush()?;
                if self.draining.is_none() {
                    return Err("the SMSC unbound".into());
                }
                return Ok(true);
            }
            CommandId::UnbindResp => return Ok(self.unbind_sent.is_some()),
            id if u32::from(id) & 0x8000_0000 == 0 => {
                // A request we do not serve (data_sm, alert_notification, …).
                self.respond(0x03, seq, Pdu::GenericNack);
            }
            _ => {}
        }
        Ok(false)
    }

    async fn submit_resp(&mut self, seq: u32, status: u32, id: Option<String>) {
        let Some(inflight) = self.window.remove(&seq) else {
            debug!(seq, "submit_sm_resp for no submit in flight (late after a timeout?)");
            return;
        };
        let Some(Some(msg)) = self.msgs.get_mut(inflight.msg) else {
            return;
        };
        msg.answered += 1;
        let status_name = wire::status_name(status);
        let problem = match (status, id) {
            (ESME_ROK, Some(id)) => {
                // Aliases go in as soon as both ids are known, not when the message is
                // complete: a part's receipt can beat the last part's submit_sm_resp.
                let aliases = &mut self.outer.aliases;
                if inflight.part == 0 {
                    for later in msg.ids.iter().skip(1).filter(|s| !s.is_empty()) {
                        aliases.insert(later.clone(), id.clone());
                    }
                } else if !msg.ids[0].is_empty() {
                    aliases.insert(id.clone(), msg.ids[0].clone());
                }
                msg.ids[inflight.part] = id;
                None
            }
            (ESME_ROK, None) => Some(SendOutcome::Ambiguous {
                reason: "submit_sm_resp could not be decoded".into(),
            }),
            (ESME_RTHROTTLED | ESME_RMSGQFUL, _) => Some(SendOutcome::Throttled {
                retry_after: Some(self.throttle_pause),
                raw_status: Some(status_name.into()),
            }),
            (status, _) => Some(SendOutcome::Failed(Failure {
                permanent: wire::is_permanent(status),
                provider_fault: false,
                code: Some(format!("0x{status:08X}")),
                message: status_name.into(),
                raw_status: Some(status_name.into()),
            })),
        };
        if let Some(p) = problem {
            // The first problem wins, except a permanent failure, which says the most.
            let permanent = matches!(&p, SendOutcome::Failed(f) if f.permanent);
            if msg.problem.is_none() || permanent {
                msg.problem = Some(p);
            }
        }
        let complete = msg.answered >= msg.ids.len();
        if status == ESME_RTHROTTLED || status == ESME_RMSGQFUL {
            self.throttled(status_name);
        } else if status == ESME_ROK && self.paused_until.is_none() {
            self.throttle_pause = THROTTLE_MIN;
        }
        if !complete {
            return;
        }
        let Some(msg) = self.release(inflight.msg) else {
            return;
        };
        let outcome = match msg.problem {
            // Some parts may have been accepted: still the failure is reported, and the
            // engine resends the whole message (the handset may then see those parts
            // twice; concatenation with a new reference keeps them apart).
            Some(problem) => problem,
            None => {
                let segments = msg.ids.len() as u32;
                let first = msg.ids[0].clone();
                let response = if segments == 1 {
                    json!({ "message_id": &first })
                } else {
                    json!({ "message_ids": &msg.ids })
                };
                SendOutcome::Accepted {
                    remote_id: first,
                    response,
                    part_ids: msg.ids,
                    segments,
                    raw_status: Some("ESME_ROK".into()),
                }
            }
        };
        self.outer.shared.outcome(msg.attempt_id, outcome).await;
    }

    fn throttled(&mut self, status_name: &str) {
        if self.paused_until.is_none() {
            info!(
                provider_id = self.outer.shared.provider_id,
                status = status_name,
                pause_ms = self.throttle_pause.as_millis() as u64,
                "SMPP throttled by the SMSC; pausing submits"
            );
            self.paused_until = Some(Instant::now() + self.throttle_pause);
            self.throttle_pause = (self.throttle_pause * 2).min(THROTTLE_MAX);
        }
    }

    async fn deliver(&mut self, seq: u32, d: &DeliverSm) {
        let esm = u8::from(d.esm_class);
        let dcs = u8::from(d.data_coding);
        let mut sm = d.short_message().as_ref().to_vec();
        let mut receipted_id = None;
        let mut state = None;
        let mut sar = (None, None, None);
        for tlv in d.tlvs() {
            match tlv.value() {
                Some(TlvValue::ReceiptedMessageId(id)) => receipted_id = Some(id.as_str().to_string()),
                Some(TlvValue::MessageState(s)) => state = Some(u8::from(*s)),
                Some(TlvValue::MessagePayload(p)) if sm.is_empty() => sm = p.value.as_ref().to_vec(),
                Some(TlvValue::SarMsgRefNum(r)) => sar.0 = Some(*r),
                Some(TlvValue::SarTotalSegments(t)) => sar.1 = Some(*t),
                Some(TlvValue::SarSegmentSeqnum(n)) => sar.2 = Some(*n),
                _ => {}
            }
        }
        let provider_id = self.outer.shared.provider_id;
        // 0x04: SMSC delivery receipt; 0x20: intermediate delivery notification.
        if esm & 0x3C == 0x04 || esm & 0x3C == 0x20 {
            let text = String::from_utf8_lossy(&sm).into_owned();
            let parsed = wire::parse_receipt_text(&text);
            let Some(id) = receipted_id.clone().or(parsed.id.clone()) else {
                warn!(
                    provider_id,
                    "delivery receipt without a message id; acknowledged and dropped"
                );
                self.respond(ESME_ROK, seq, Pdu::DeliverSmResp(DeliverSmResp::default()));
                return;
            };
            let (status, raw_status) = match (&parsed.stat, state) {
                (Some(stat), _) => (wire::stat_status(stat), stat.clone()),
                (None, Some(s)) => {
                    let (status, word) = wire::message_state_status(s);
                    (status, word.to_string())
                }
                (None, None) => (wire::stat_status("UNKNOWN"), "UNKNOWN".to_string()),
            };
            // The TLV is the SMSC's structured word: it wins over the text when both exist.
            let status = state.map(|s| wire::message_state_status(s).0).unwrap_or(status);
            let receipt = Receipt {
                remote_id: self.outer.aliases.resolve(id.clone()),
                attempt_id: None,
                status,
                raw_status,
                error_code: parsed.err.clone(),
                done_at: parsed.done,
                // Lean on purpose: at tens of thousands of receipts a second every field
                // here is allocations; the text carries id, stat, err and dates already.
                raw: match (receipted_id, state) {
                    (None, None) => json!({ "text": text }),
                    (tlv_id, tlv_state) => json!({
                        "text": text,
                        "receipted_message_id": tlv_id,
                        "message_state": tlv_state,
                    }),
                },
            };
            let ack = self.await_ack(vec![seq]);
            let event = Event::Receipt {
                provider_id,
                receipt,
                ack: Some(ack),
            };
            let _ = self.outer.shared.sink.send(event).await;
            return;
        }

        let from = address(d.source_addr.as_str(), u8::from(d.source_addr_ton));
        let to = address(d.destination_addr.as_str(), u8::from(d.dest_addr_ton));
        let (concat, payload) = if esm & 0x40 != 0 {
            wire::split_udh(&sm)
        } else {
            match sar {
                (Some(r), Some(t), Some(n)) => (Some((r, t, n)), &sm[..]),
                _ => (None, &sm[..]),
            }
        };
        match concat {
            Some((reference, total, n)) if total > 1 && n >= 1 && n <= total => {
                let key = (from.clone(), to.clone(), reference, total);
                if !self.mo.contains_key(&key) && self.mo.len() >= MO_MAX_PENDING {
                    self.flush_oldest_mo().await;
                }
                let entry = self.mo.entry(key.clone()).or_insert_with(|| MoParts {
                    first_at: Instant::now(),
                    total,
                    data_coding: dcs,
                    parts: vec![None; usize::from(total)],
                    seqs: Vec::new(),
                    from,
                    to,
                });
                entry.parts[usize::from(n - 1)] = Some(payload.to_vec());
                entry.seqs.push(seq);
                if entry.parts.iter().all(Option::is_some)
                    && let Some(parts) = self.mo.remove(&key)
                {
                    self.report_mo(parts, true).await;
                }
            }
            _ => {
                let parts = MoParts {
                    first_at: Instant::now(),
                    total: 1,
                    data_coding: dcs,
                    parts: vec![Some(payload.to_vec())],
                    seqs: vec![seq],
                    from,
                    to,
                };
                self.report_mo(parts, true).await;
            }
        }
    }

    async fn flush_oldest_mo(&mut self) {
        let oldest = self.mo.iter().min_by_key(|(_, p)| p.first_at).map(|(k, _)| k.clone());
        if let Some(parts) = oldest.and_then(|k| self.mo.remove(&k)) {
            self.report_mo(parts, false).await;
        }
    }

    /// Report one MO message (joined from its parts before decoding, so a character
    /// split across parts survives).
    async fn report_mo(&mut self, parts: MoParts, complete: bool) {
        let bytes: Vec<u8> = parts.parts.iter().flatten().flatten().copied().collect();
        let body = wire::decode_text(parts.data_coding, &bytes);
        let message = Inbound {
            from: parts.from,
            to: parts.to,
            body,
            remote_id: None,
            raw: json!({
                "data_coding": parts.data_coding,
                "parts": parts.total,
                "parts_received": parts.parts.iter().filter(|p| p.is_some()).count(),
                "complete": complete,
                "hex": hex::encode(&bytes),
            }),
        };
        let ack = self.await_ack(parts.seqs);
        let provider_id = self.outer.shared.provider_id;
        let _ = self
            .outer
            .shared
            .sink
            .send(Event::Inbound {
                provider_id,
                message,
                ack: Some(ack),
            })
            .await;
    }

    /// An ack for the engine; when it fires (or is dropped) `seqs` are answered.
    fn await_ack(&mut self, seqs: Vec<u32>) -> oneshot::Sender<()> {
        let (ack, stored) = oneshot::channel();
        self.unacked += seqs.len();
        let answers = self.answers_tx.clone();
        tokio::spawn(async move {
            let stored = stored.await.is_ok();
            // The session may be gone (connection lost): the SMSC redelivers then.
            let _ = answers.send((seqs, stored));
        });
        ack
    }

    /// Answer `deliver_sm` once the engine stored (or failed to store) what it carried:
    /// a dropped ack answers ESME_RX_T_APPN, so the SMSC delivers it again later.
    fn answer_deliver(&mut self, seqs: &[u32], stored: bool) {
        let status = if stored { ESME_ROK } else { ESME_RX_T_APPN };
        self.unacked = self.unacked.saturating_sub(seqs.len());
        for &seq in seqs {
            self.respond(status, seq, Pdu::DeliverSmResp(DeliverSmResp::default()));
        }
    }

    /// Timers. `true`: the session is over (unbind answered or waited out).
    async fn housekeeping(&mut self) -> Result<bool, String> {
        let now = Instant::now();
        if self.paused_until.is_some_and(|t| t <= now) {
            self.paused_until = None;
        }
        let mut timed_out = 0u32;
        // Answered submits leave their deadline behind; drop those from the front too.
        while let Some(&(deadline, seq)) = self.deadlines.front() {
            if !self.window.contains_key(&seq) {
                self.deadlines.pop_front();
                continue;
            }
            if deadline > now {
                break;
            }
            self.deadlines.pop_front();
            if let Some(inflight) = self.window.remove(&seq)
                && let Some(msg) = self.release(inflight.msg)
            {
                for s in msg.seqs() {
                    self.window.remove(&s);
                }
                let reason = format!("no submit_sm_resp within {} s", self.response_timeout.as_secs());
                timed_out += 1;
                self.outer
                    .shared
                    .outcome(msg.attempt_id, SendOutcome::Ambiguous { reason })
                    .await;
            }
        }
        if timed_out > 0 {
            // One line per tick, not per message: a stalled SMSC times out a whole window.
            warn!(
                provider_id = self.outer.shared.provider_id,
                timed_out,
                timeout_secs = self.response_timeout.as_secs(),
                "SMPP submits without a response in time; reported ambiguous"
            );
        }
        match self.enquire {
            Some((_, sent)) if sent.elapsed() >= self.response_timeout => {
                return Err(format!(
                    "no enquire_link_resp within {} s",
                    self.response_timeout.as_secs()
                ));
            }
            None if self.last_rx.elapsed() >= self.enquire_interval && self.draining.is_none() => {
                let seq = self.outer.next_seq();
                self.push(&Command::new(CommandStatus::EsmeRok, seq, Pdu::EnquireLink));
                self.enquire = Some((seq, now));
            }
            _ => {}
        }
        let expired: Vec<_> = self
            .mo
            .iter()
            .filter(|(_, p)| p.first_at.elapsed() >= MO_TIMEOUT)
            .map(|(k, _)| k.clone())
            .collect();
        for key in expired {
            if let Some(parts) = self.mo.remove(&key) {
                self.report_mo(parts, false).await;
            }
        }
        self.outer.aliases.evict();
        if self.draining.is_none() {
            self.outer.expire_held("SMPP session is not bound").await;
        }
        Ok(self.unbind_sent.is_some_and(|t| t.elapsed() >= UNBIND_WAIT))
    }

    /// The connection is over: whatever is still in flight gets its outcome.
    async fn resolve_all(&mut self, reason: &str) {
        let written = self.written;
        self.free.clear();
        for msg in self.msgs.drain(..).flatten() {
            let outcome = if msg.first_end <= written {
                SendOutcome::Ambiguous { reason: reason.into() }
            } else {
                SendOutcome::NotSent { reason: reason.into() }
            };
            self.outer.shared.outcome(msg.attempt_id, outcome).await;
        }
        self.window.clear();
        self.deadlines.clear();
    }
}

/// An address as the engine writes it: international numbers as E.164 with `+`.
fn address(addr: &str, ton: u8) -> String {
    if ton == 1 && !addr.is_empty() && addr.bytes().all(|b| b.is_ascii_digit()) {
        format!("+{addr}")
    } else {
        addr.to_string()
    }
}
