//! One SMPP connection.
//!
//! A session is a single task that owns all of its state (pending responses, receipts, the
//! unacknowledged window), so the per-message path takes no lock. Each wake-up reads what the
//! socket has, handles every complete PDU in the buffer, and appends all answers to one output
//! buffer that goes out in a single write.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::io::ErrorKind;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Buf, BytesMut};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rusmpp::pdus::{BindReceiverResp, BindTransceiverResp, BindTransmitterResp};
use rusmpp::tokio_codec::CommandCodec;
use rusmpp::types::COctetString;
use rusmpp::{Command, Pdu};
use tokio::net::TcpStream;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio_util::codec::{Decoder, Encoder};
use tokio_util::sync::CancellationToken;

use crate::deliver::{Deliver, RECEIPT_TEXT_CHARS, Receipt, ShortAddr};
use crate::text::{DateCache, decode_text, split_udh};
use crate::wire::{self, Header, SubmitView};
use crate::{Inner, Routed, Stats, Submit};

/// Spare room kept in the read buffer, so one read can take many PDUs.
const READ_RESERVE: usize = 256 * 1024;
/// Past this much unsent output the session stops reading: the peer is not keeping up.
const WRITE_HIGH_WATER: usize = 4 * 1024 * 1024;
/// After a partial write, the written prefix is dropped once it is this large.
const WRITE_COMPACT: usize = 256 * 1024;
/// When a deliver_sm refused with a non-zero deliver_sm_resp is offered again.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Message ids are taken from the shared counter this many at a time.
const ID_BLOCK: u64 = 64;
const SMSC_SYSTEM_ID: &str = "sauti-smsc-sim";
const ESM_UDHI: u8 = 0x40;

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

struct Bound {
    system_id: Arc<str>,
    transmits: bool,
    receives: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flow {
    Open,
    /// After unbind: write what is queued, then close.
    CloseWhenFlushed,
    /// `disconnect_every` reached, or a PDU length we cannot frame: close now.
    Abort,
}

struct DelayedResp {
    seq: u32,
    status: u32,
    message_id: Option<u64>,
}

struct Session {
    inner: Arc<Inner>,
    id: u64,
    tx: UnboundedSender<Routed>,
    bound: Option<Bound>,
    flow: Flow,
    rbuf: BytesMut,
    /// Output not yet written; `wbuf[wpos..]` is what the socket has not taken.
    wbuf: Vec<u8>,
    wpos: usize,
    pdus_received: u64,
    next_seq: u32,
    /// submit_sm_resp held back by `submit_latency`, in due order.
    resps: VecDeque<(Instant, DelayedResp)>,
    /// deliver_sm not yet due (receipt delay, retries), in due order.
    scheduled: VecDeque<Routed>,
    /// Due deliver_sm waiting for room in the window.
    ready: VecDeque<Deliver>,
    /// Written deliver_sm by sequence number, until their deliver_sm_resp.
    inflight: HashMap<u32, Deliver, BuildHasherDefault<SeqHasher>>,
    /// Due deliver_sm this session cannot take (bound as transmitter), routed once per batch.
    outbound: Vec<Routed>,
    ids: Range<u64>,
    rng: SmallRng,
    /// Counts since the last publication to the shared counters.
    tally: Stats,
    recorded: Vec<Submit>,
    text_scratch: String,
    submit_dates: DateCache,
    done_dates: DateCache,
}

pub(crate) async fn run(inner: Arc<Inner>, stream: TcpStream, cancel: CancellationToken) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut session = Session::new(inner, tx);
    if let Err(error) = session.serve(&stream, &mut rx, cancel).await {
        tracing::debug!(%error, "SMPP session failed");
    }
    drop(stream);
    session.finish(rx);
}

impl Session {
    fn new(inner: Arc<Inner>, tx: UnboundedSender<Routed>) -> Self {
        Session {
            inner,
            id: NEXT_SESSION.fetch_add(1, Relaxed),
            tx,
            bound: None,
            flow: Flow::Open,
            rbuf: BytesMut::with_capacity(READ_RESERVE),
            wbuf: Vec::with_capacity(READ_RESERVE),
            wpos: 0,
            pdus_received: 0,
            next_seq: 0,
            resps: VecDeque::new(),
            scheduled: VecDeque::new(),
            ready: VecDeque::new(),
            inflight: HashMap::default(),
            outbound: Vec::new(),
            ids: 0..0,
            rng: SmallRng::from_os_rng(),
            tally: Stats::default(),
            recorded: Vec::new(),
            text_scratch: String::new(),
            submit_dates: DateCache::default(),
            done_dates: DateCache::default(),
        }
    }

    async fn serve(
        &mut self,
        stream: &TcpStream,
        rx: &mut UnboundedReceiver<Routed>,
        cancel: CancellationToken,
    ) -> std::io::Result<()> {
        let cancelled = cancel.cancelled_owned();
        tokio::pin!(cancelled);
        let timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(timer);
        let mut armed: Option<Instant> = None;
        loop {
            let deadline = self.next_deadline();
            if deadline != armed {
                if let Some(at) = deadline {
                    timer.as_mut().reset(at.into());
                }
                armed = deadline;
            }
            let unsent = self.wbuf.len() - self.wpos;
            let reading = self.flow == Flow::Open && unsent < WRITE_HIGH_WATER;
            tokio::select! {
                () = &mut cancelled => return Ok(()),
                readiness = stream.readable(), if reading => {
                    readiness?;
                    if self.rbuf.capacity() - self.rbuf.len() < wire::MAX_PDU_LEN {
                        self.rbuf.reserve(READ_RESERVE);
                    }
                    match stream.try_read_buf(&mut self.rbuf) {
                        Ok(0) => return Ok(()),
                        Ok(_) => self.on_input(),
                        Err(error) if error.kind() == ErrorKind::WouldBlock => {}
                        Err(error) => return Err(error),
                    }
                }
                readiness = stream.writable(), if unsent > 0 => readiness?,
                Some(item) = rx.recv() => {
                    let now = Instant::now();
                    self.schedule(item, now);
                    while let Ok(item) = rx.try_recv() {
                        self.schedule(item, now);
                    }
                }
                () = &mut timer, if armed.is_some() => self.fire_due(Instant::now()),
            }
            // A closing connection takes no new deliver_sm: they go to the next session.
            if self.flow == Flow::Open {
                self.pump();
            }
            self.route_outbound();
            self.inner.counters.add(&std::mem::take(&mut self.tally));
            if self.wpos < self.wbuf.len() {
                match stream.try_write(&self.wbuf[self.wpos..]) {
                    Ok(written) => self.wrote(written),
                    Err(error) if error.kind() == ErrorKind::WouldBlock => {}
                    Err(error) => return Err(error),
                }
            }
            match self.flow {
                Flow::Open => {}
                Flow::CloseWhenFlushed if self.wpos < self.wbuf.len() => {}
                Flow::CloseWhenFlushed | Flow::Abort => return Ok(()),
            }
        }
    }

    fn wrote(&mut self, written: usize) {
        self.wpos += written;
        if self.wpos == self.wbuf.len() {
            self.wbuf.clear();
            self.wpos = 0;
        } else if self.wpos >= WRITE_COMPACT {
            // A slow reader: drop what it took instead of growing the buffer forever.
            self.wbuf.drain(..self.wpos);
            self.wpos = 0;
        }
    }

    /// Handles every complete PDU in the read buffer.
    fn on_input(&mut self) {
        let now = Instant::now();
        let mut buf = std::mem::take(&mut self.rbuf);
        let mut offset = 0;
        while let Some(header) = wire::peek_header(&buf[offset..]) {
            if !(wire::HEADER_LEN..=wire::MAX_PDU_LEN).contains(&header.length) {
                // The stream cannot be resynchronised after a bogus length.
                self.flow = Flow::Abort;
                break;
            }
            let Some(frame) = buf.get(offset..offset + header.length) else {
                break;
            };
            offset += header.length;
            self.pdus_received += 1;
            if self.pdus_received == self.inner.config.disconnect_every {
                self.tally.disconnects += 1;
                self.flow = Flow::Abort;
                break;
            }
            self.on_pdu(header, frame, now);
            if self.flow != Flow::Open {
                break;
            }
        }
        buf.advance(offset);
        self.rbuf = buf;
        if !self.recorded.is_empty() {
            self.inner.recorded().append(&mut self.recorded);
        }
    }

    fn on_pdu(&mut self, header: Header, frame: &[u8], now: Instant) {
        let seq = header.seq;
        match header.id {
            wire::SUBMIT_SM => self.on_submit(seq, &frame[wire::HEADER_LEN..], now),
            wire::DELIVER_SM_RESP => self.on_deliver_resp(seq, header.status, now),
            wire::ENQUIRE_LINK => {
                self.tally.enquire_links += 1;
                wire::put_empty(&mut self.wbuf, wire::ENQUIRE_LINK_RESP, wire::ESME_ROK, seq);
            }
            wire::BIND_TRANSCEIVER | wire::BIND_TRANSMITTER | wire::BIND_RECEIVER => self.on_bind(header, frame, now),
            wire::UNBIND => {
                wire::put_empty(&mut self.wbuf, wire::UNBIND_RESP, wire::ESME_ROK, seq);
                self.flow = Flow::CloseWhenFlushed;
            }
            // A generic_nack for one of our deliver_sm means it was not taken.
            wire::GENERIC_NACK => self.on_deliver_resp(seq, header.status.max(wire::ESME_RINVCMDID), now),
            // Answers to requests we never send (enquire_link_resp, ...).
            id if id & wire::RESP_BIT != 0 => {}
            _ => wire::put_empty(&mut self.wbuf, wire::GENERIC_NACK, wire::ESME_RINVCMDID, seq),
        }
    }

    fn on_bind(&mut self, header: Header, frame: &[u8], now: Instant) {
        let command = CommandCodec::new().decode(&mut BytesMut::from(frame)).ok().flatten();
        let credentials = match command.as_ref().and_then(Command::pdu) {
            Some(Pdu::BindTransceiver(bind)) => Some((bind.system_id.as_str(), bind.password.as_str())),
            Some(Pdu::BindTransmitter(bind)) => Some((bind.system_id.as_str(), bind.password.as_str())),
            Some(Pdu::BindReceiver(bind)) => Some((bind.system_id.as_str(), bind.password.as_str())),
            _ => None,
        };
        let config = &self.inner.config;
        let status = if self.bound.is_some() {
            wire::ESME_RALYBND
        } else if credentials == Some((config.system_id.as_str(), config.password.as_str())) {
            wire::ESME_ROK
        } else {
            wire::ESME_RBINDFAIL
        };

        let system_id: COctetString<1, 16> = SMSC_SYSTEM_ID.parse().unwrap_or_default();
        let pdu: Pdu = match header.id {
            wire::BIND_TRANSMITTER => BindTransmitterResp::new(system_id, None).into(),
            wire::BIND_RECEIVER => BindReceiverResp::new(system_id, None).into(),
            _ => BindTransceiverResp::new(system_id, None).into(),
        };
        let resp = Command::new(status.into(), header.seq, pdu);
        let mut encoded = BytesMut::new();
        // Encoding into a BytesMut cannot fail; the codec only reports I/O errors.
        let _ = CommandCodec::new().encode(&resp, &mut encoded);
        self.wbuf.extend_from_slice(&encoded);

        match status {
            wire::ESME_ROK => {
                self.tally.binds += 1;
                let system_id: Arc<str> = config.system_id.as_str().into();
                let receives = header.id != wire::BIND_TRANSMITTER;
                let left = if receives {
                    let mut registry = self.inner.registry();
                    registry.bind_receiver(self.id, system_id.clone(), self.tx.clone())
                } else {
                    Vec::new()
                };
                self.bound = Some(Bound {
                    system_id,
                    transmits: header.id != wire::BIND_RECEIVER,
                    receives,
                });
                for item in left {
                    self.schedule(item, now);
                }
            }
            wire::ESME_RBINDFAIL => self.tally.bind_failures += 1,
            _ => {}
        }
    }

    fn on_submit(&mut self, seq: u32, body: &[u8], now: Instant) {
        if !self.bound.as_ref().is_some_and(|b| b.transmits) {
            wire::put_submit_sm_resp(&mut self.wbuf, seq, wire::ESME_RINVBNDSTS, None);
            return;
        }
        let Some(submit) = wire::parse_submit_sm(body) else {
            wire::put_submit_sm_resp(&mut self.wbuf, seq, wire::ESME_RINVCMDLEN, None);
            return;
        };
        self.tally.submits += 1;
        let config = &self.inner.config;
        let (latency, receipt_delay, undelivered_rate) =
            (config.submit_latency, config.receipt_delay, config.undelivered_rate);
        let (error_status, record) = (config.error_status, config.record);
        let (throttle_rate, error_rate) = (self.inner.throttle_rate(), self.inner.error_rate());
        let status = if roll(&mut self.rng, throttle_rate) {
            self.tally.throttled += 1;
            wire::ESME_RTHROTTLED
        } else if roll(&mut self.rng, error_rate) {
            self.tally.submit_errors += 1;
            error_status
        } else {
            wire::ESME_ROK
        };
        let message_id = (status == wire::ESME_ROK).then(|| self.next_message_id());

        let resp_due = now + latency;
        if latency.is_zero() {
            let hex = message_id.map(wire::hex16);
            wire::put_submit_sm_resp(&mut self.wbuf, seq, status, hex.as_ref().map(|h| &h[..]));
        } else {
            let resp = DelayedResp {
                seq,
                status,
                message_id,
            };
            self.resps.push_back((resp_due, resp));
        }

        let payload = submit.payload();
        let (udh, user_data) = if submit.esm_class & ESM_UDHI != 0 {
            split_udh(payload)
        } else {
            (None, payload)
        };
        if let Some(id) = message_id {
            let undelivered = roll(&mut self.rng, undelivered_rate);
            // registered_delivery bits 0-1: 1 = receipt always, 2 = only on failure.
            let wanted = match submit.registered_delivery & 0x03 {
                1 | 3 => true,
                2 => undelivered,
                _ => false,
            };
            if wanted {
                let receipt = self.receipt(&submit, user_data, id, undelivered, latency + receipt_delay);
                self.schedule((resp_due + receipt_delay, receipt), now);
            }
        }

        if record {
            let mut text = String::new();
            decode_text(submit.data_coding, user_data, usize::MAX, &mut text);
            let system_id = self
                .bound
                .as_ref()
                .map_or_else(String::new, |b| b.system_id.to_string());
            self.recorded.push(Submit {
                system_id,
                source_addr: String::from_utf8_lossy(submit.source.digits).into_owned(),
                destination_addr: String::from_utf8_lossy(submit.destination.digits).into_owned(),
                data_coding: submit.data_coding,
                esm_class: submit.esm_class,
                registered_delivery: submit.registered_delivery,
                udh,
                short_message: user_data.to_vec(),
                text,
                message_id: message_id.map(|id| format!("{id:016x}")),
                status,
            });
        }
    }

    /// A delivery receipt for an accepted submit, `done_after` it was received.
    fn receipt(
        &mut self,
        submit: &SubmitView,
        user_data: &[u8],
        message_id: u64,
        undelivered: bool,
        done_after: Duration,
    ) -> Deliver {
        self.text_scratch.clear();
        decode_text(
            submit.data_coding,
            user_data,
            RECEIPT_TEXT_CHARS,
            &mut self.text_scratch,
        );
        let mut text = [0u8; RECEIPT_TEXT_CHARS];
        let mut text_len = 0;
        // Receipts are read as ASCII by every client; anything else would be mangled anyway.
        for (slot, c) in text.iter_mut().zip(self.text_scratch.chars()) {
            *slot = if c.is_ascii() && !c.is_ascii_control() {
                c as u8
            } else {
                b'?'
            };
            text_len += 1;
        }
        let submitted_at = SystemTime::now();
        Deliver::receipt(Receipt {
            message_id,
            source: ShortAddr::new(submit.destination),
            destination: ShortAddr::new(submit.source),
            submit_date: self.submit_dates.get(submitted_at),
            done_date: self.done_dates.get(submitted_at + done_after),
            text,
            text_len,
            undelivered,
        })
    }

    fn on_deliver_resp(&mut self, seq: u32, status: u32, now: Instant) {
        let Some(deliver) = self.inflight.remove(&seq) else {
            return;
        };
        if status != wire::ESME_ROK {
            insert_by_due(&mut self.scheduled, (now + RETRY_AFTER, deliver));
        } else if deliver.is_receipt() {
            self.tally.receipts_acked += 1;
        }
    }

    fn schedule(&mut self, (due, deliver): Routed, now: Instant) {
        if due <= now {
            self.make_due(deliver, now);
        } else {
            insert_by_due(&mut self.scheduled, (due, deliver));
        }
    }

    fn make_due(&mut self, deliver: Deliver, now: Instant) {
        if self.bound.as_ref().is_some_and(|b| b.receives) {
            self.ready.push_back(deliver);
        } else {
            self.outbound.push((now, deliver));
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let resp = self.resps.front().map(|(due, _)| *due);
        let deliver = self.scheduled.front().map(|(due, _)| *due);
        resp.into_iter().chain(deliver).min()
    }

    fn fire_due(&mut self, now: Instant) {
        while let Some((due, _)) = self.resps.front()
            && *due <= now
        {
            let Some((_, resp)) = self.resps.pop_front() else { break };
            let hex = resp.message_id.map(wire::hex16);
            wire::put_submit_sm_resp(&mut self.wbuf, resp.seq, resp.status, hex.as_ref().map(|h| &h[..]));
        }
        while let Some((due, _)) = self.scheduled.front()
            && *due <= now
        {
            let Some((_, deliver)) = self.scheduled.pop_front() else {
                break;
            };
            self.make_due(deliver, now);
        }
    }

    /// Writes ready deliver_sm while the window has room.
    fn pump(&mut self) {
        let window = self.inner.config.deliver_window.max(1);
        while self.inflight.len() < window {
            let Some(mut deliver) = self.ready.pop_front() else {
                break;
            };
            self.next_seq = self.next_seq % 0x7FFF_FFFF + 1;
            let seq = self.next_seq;
            deliver.write(seq, &mut self.wbuf);
            if deliver.is_receipt() {
                self.tally.receipts_sent += 1;
                if deliver.attempts > 0 {
                    self.tally.receipts_redelivered += 1;
                }
            } else if deliver.attempts == 0 {
                self.tally.mo_sent += 1;
            }
            deliver.attempts += 1;
            self.inflight.insert(seq, deliver);
        }
    }

    fn route_outbound(&mut self) {
        if self.outbound.is_empty() {
            return;
        }
        if let Some(bound) = &self.bound {
            let outbound = std::mem::take(&mut self.outbound);
            self.inner.registry().route(&bound.system_id, outbound);
        }
    }

    fn next_message_id(&mut self) -> u64 {
        loop {
            if let Some(id) = self.ids.next() {
                return id;
            }
            self.ids = crate::reserve_message_ids(ID_BLOCK);
        }
    }

    /// Hands everything not acknowledged to the other sessions of the system_id.
    fn finish(mut self, mut rx: UnboundedReceiver<Routed>) {
        if !self.recorded.is_empty() {
            self.inner.recorded().append(&mut self.recorded);
        }
        self.inner.counters.add(&self.tally);
        let Some(bound) = self.bound.take() else {
            return;
        };
        let now = Instant::now();
        let mut inflight: Vec<(u32, Deliver)> = self.inflight.drain().collect();
        inflight.sort_unstable_by_key(|(seq, _)| *seq);
        let mut left: Vec<Routed> = inflight.into_iter().map(|(_, d)| (now, d)).collect();
        left.extend(self.ready.drain(..).map(|d| (now, d)));
        left.append(&mut self.outbound);
        left.extend(self.scheduled.drain(..));

        let mut registry = self.inner.registry();
        // Once unregistered (under the lock) nobody sends to us any more, so after the
        // drain below nothing can be left in the channel.
        registry.unbind(self.id);
        rx.close();
        while let Ok(item) = rx.try_recv() {
            left.push(item);
        }
        registry.route(&bound.system_id, left);
    }
}

fn roll(rng: &mut SmallRng, rate: f64) -> bool {
    rate > 0.0 && (rate >= 1.0 || rng.random::<f64>() < rate)
}

fn insert_by_due(queue: &mut VecDeque<Routed>, item: Routed) {
    let at = if queue.back().is_none_or(|(due, _)| *due <= item.0) {
        queue.len()
    } else {
        queue.partition_point(|(due, _)| *due <= item.0)
    };
    queue.insert(at, item);
}

/// Sequence numbers are distinct and dense, so a multiplicative hash spreads them well;
/// SipHash was most of the cost of a window lookup.
#[derive(Default)]
struct SeqHasher(u64);

impl Hasher for SeqHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}
