//! Hand-written encoding and decoding of the PDUs on the hot path.
//!
//! rusmpp's owned types allocate a buffer per string field, which is several allocations per
//! submit_sm; at the rates the simulator has to sustain that would make it the bottleneck of
//! the benchmarks it serves. The PDUs that come and go per message (submit_sm and its resp,
//! deliver_sm and its resp, enquire_link) are therefore read as borrowed slices and written
//! straight into the session's output buffer. Everything rare (binds) goes through rusmpp.

use bytes::BufMut;

pub const HEADER_LEN: usize = 16;
/// Longer PDUs are refused: SMPP 3.4 PDUs are far smaller, and a garbage length would
/// otherwise make us buffer without bound.
pub const MAX_PDU_LEN: usize = 64 * 1024;

pub const RESP_BIT: u32 = 0x8000_0000;
pub const GENERIC_NACK: u32 = 0x8000_0000;
pub const BIND_RECEIVER: u32 = 0x0000_0001;
pub const BIND_TRANSMITTER: u32 = 0x0000_0002;
pub const SUBMIT_SM: u32 = 0x0000_0004;
pub const SUBMIT_SM_RESP: u32 = 0x8000_0004;
pub const DELIVER_SM: u32 = 0x0000_0005;
pub const DELIVER_SM_RESP: u32 = 0x8000_0005;
pub const UNBIND: u32 = 0x0000_0006;
pub const UNBIND_RESP: u32 = 0x8000_0006;
pub const BIND_TRANSCEIVER: u32 = 0x0000_0009;
pub const ENQUIRE_LINK: u32 = 0x0000_0015;
pub const ENQUIRE_LINK_RESP: u32 = 0x8000_0015;

pub const ESME_ROK: u32 = 0x00;
pub const ESME_RINVCMDLEN: u32 = 0x02;
pub const ESME_RINVCMDID: u32 = 0x03;
pub const ESME_RINVBNDSTS: u32 = 0x04;
pub const ESME_RALYBND: u32 = 0x05;
pub const ESME_RBINDFAIL: u32 = 0x0D;
pub const ESME_RTHROTTLED: u32 = 0x58;

pub const TLV_RECEIPTED_MESSAGE_ID: u16 = 0x001E;
pub const TLV_MESSAGE_PAYLOAD: u16 = 0x0424;
pub const TLV_MESSAGE_STATE: u16 = 0x0427;

#[derive(Clone, Copy, Debug)]
pub struct Header {
    pub length: usize,
    pub id: u32,
    pub status: u32,
    pub seq: u32,
}

pub fn peek_header(buf: &[u8]) -> Option<Header> {
    let word = |i: usize| u32::from_be_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
    (buf.len() >= HEADER_LEN).then(|| Header {
        length: word(0) as usize,
        id: word(4),
        status: word(8),
        seq: word(12),
    })
}

pub fn put_header(dst: &mut impl BufMut, body_len: usize, id: u32, status: u32, seq: u32) {
    dst.put_u32((HEADER_LEN + body_len) as u32);
    dst.put_u32(id);
    dst.put_u32(status);
    dst.put_u32(seq);
}

/// A PDU without a body: enquire_link_resp, unbind_resp, generic_nack.
pub fn put_empty(dst: &mut impl BufMut, id: u32, status: u32, seq: u32) {
    put_header(dst, 0, id, status, seq);
}

/// SMPP 3.4 §4.4.2: the body (message_id) is only present when the status is ESME_ROK.
pub fn put_submit_sm_resp(dst: &mut impl BufMut, seq: u32, status: u32, message_id: Option<&[u8]>) {
    match message_id {
        Some(id) if status == ESME_ROK => {
            put_header(dst, id.len() + 1, SUBMIT_SM_RESP, status, seq);
            dst.put_slice(id);
            dst.put_u8(0);
        }
        _ => put_empty(dst, SUBMIT_SM_RESP, status, seq),
    }
}

/// Appends a PDU whose body `put_body` writes, patching the command_length afterwards.
pub fn put_pdu(dst: &mut Vec<u8>, id: u32, status: u32, seq: u32, put_body: impl FnOnce(&mut Vec<u8>)) {
    let start = dst.len();
    put_header(dst, 0, id, status, seq);
    put_body(dst);
    let length = (dst.len() - start) as u32;
    dst[start..start + 4].copy_from_slice(&length.to_be_bytes());
}

pub fn put_tlv(dst: &mut impl BufMut, tag: u16, value: &[u8]) {
    dst.put_u16(tag);
    dst.put_u16(value.len() as u16);
    dst.put_slice(value);
}

fn put_cstr(dst: &mut impl BufMut, value: &[u8]) {
    dst.put_slice(value);
    dst.put_u8(0);
}

/// An address with its type of number and numbering plan.
#[derive(Clone, Copy, Debug, Default)]
pub struct Addr<'a> {
    pub ton: u8,
    pub npi: u8,
    pub digits: &'a [u8],
}

/// The mandatory part of a deliver_sm body; TLVs follow with [`put_tlv`]. A short message
/// longer than 254 octets must be sent as a message_payload TLV with an empty `short_message`.
pub fn put_deliver_sm_body(
    dst: &mut impl BufMut,
    source: Addr,
    destination: Addr,
    esm_class: u8,
    data_coding: u8,
    short_message: &[u8],
) {
    put_cstr(dst, b""); // service_type
    dst.put_u8(source.ton);
    dst.put_u8(source.npi);
    put_cstr(dst, source.digits);
    dst.put_u8(destination.ton);
    dst.put_u8(destination.npi);
    put_cstr(dst, destination.digits);
    dst.put_u8(esm_class);
    dst.put_u8(0); // protocol_id
    dst.put_u8(0); // priority_flag
    put_cstr(dst, b""); // schedule_delivery_time
    put_cstr(dst, b""); // validity_period
    dst.put_u8(0); // registered_delivery
    dst.put_u8(0); // replace_if_present_flag
    dst.put_u8(data_coding);
    dst.put_u8(0); // sm_default_msg_id
    dst.put_u8(short_message.len() as u8);
    dst.put_slice(short_message);
}

/// A submit_sm body borrowed from the read buffer.
#[derive(Debug)]
pub struct SubmitView<'a> {
    pub source: Addr<'a>,
    pub destination: Addr<'a>,
    pub esm_class: u8,
    pub registered_delivery: u8,
    pub data_coding: u8,
    pub short_message: &'a [u8],
    pub message_payload: Option<&'a [u8]>,
}

impl<'a> SubmitView<'a> {
    /// The user data: short_message, or the message_payload TLV when short_message is empty.
    pub fn payload(&self) -> &'a [u8] {
        match self.message_payload {
            Some(payload) if self.short_message.is_empty() => payload,
            _ => self.short_message,
        }
    }
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn u8(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }

    fn u16(&mut self) -> Option<u16> {
        let bytes = self.bytes(2)?;
        Some(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn bytes(&mut self, len: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(len)?;
        self.0 = rest;
        Some(head)
    }

    /// A C-octet string without its NUL; `max` counts the NUL like the SMPP field sizes do.
    fn cstr(&mut self, max: usize) -> Option<&'a [u8]> {
        let nul = self.0.iter().take(max).position(|&b| b == 0)?;
        let value = &self.0[..nul];
        self.0 = &self.0[nul + 1..];
        Some(value)
    }

    fn addr(&mut self) -> Option<Addr<'a>> {
        Some(Addr {
            ton: self.u8()?,
            npi: self.u8()?,
            digits: self.cstr(21)?,
        })
    }
}

/// Parses a submit_sm body (after the header); `None` if it is malformed.
pub fn parse_submit_sm(body: &[u8]) -> Option<SubmitView<'_>> {
    let mut cur = Cursor(body);
    cur.cstr(6)?; // service_type
    let source = cur.addr()?;
    let destination = cur.addr()?;
    let esm_class = cur.u8()?;
    cur.bytes(2)?; // protocol_id, priority_flag
    cur.cstr(17)?; // schedule_delivery_time
    cur.cstr(17)?; // validity_period
    let registered_delivery = cur.u8()?;
    cur.u8()?; // replace_if_present_flag
    let data_coding = cur.u8()?;
    cur.u8()?; // sm_default_msg_id
    let sm_length = cur.u8()? as usize;
    let short_message = cur.bytes(sm_length)?;
    let mut message_payload = None;
    while !cur.0.is_empty() {
        let tag = cur.u16()?;
        let len = cur.u16()? as usize;
        let value = cur.bytes(len)?;
        if tag == TLV_MESSAGE_PAYLOAD {
            message_payload = Some(value);
        }
    }
    Some(SubmitView {
        source,
        destination,
        esm_class,
        registered_delivery,
        data_coding,
        short_message,
        message_payload,
    })
}

/// Message ids are 16 lowercase hex digits, written without allocating.
pub fn hex16(id: u64) -> [u8; 16] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 16];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = DIGITS[((id >> (60 - 4 * i)) & 0xF) as usize];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submit_sm_round_trips_through_the_parser() {
        let mut body = Vec::new();
        put_cstr(&mut body, b"");
        body.extend_from_slice(&[1, 1]);
        put_cstr(&mut body, b"254700000001");
        body.extend_from_slice(&[1, 1]);
        put_cstr(&mut body, b"254700000002");
        body.extend_from_slice(&[0x40, 0, 0, 0, 0, 1, 0, 8, 0, 3]);
        body.extend_from_slice(b"abc");
        put_tlv(&mut body, TLV_MESSAGE_PAYLOAD, b"ignored");
        let view = parse_submit_sm(&body).expect("parses");
        assert_eq!(view.source.digits, b"254700000001");
        assert_eq!(view.destination.digits, b"254700000002");
        assert_eq!(
            (view.esm_class, view.registered_delivery, view.data_coding),
            (0x40, 1, 8)
        );
        assert_eq!(view.payload(), b"abc");
        assert_eq!(view.message_payload, Some(&b"ignored"[..]));
        assert!(parse_submit_sm(&body[..body.len() - 10]).is_none());
    }

    #[test]
    fn hex16_is_zero_padded() {
        assert_eq!(&hex16(0xab), b"00000000000000ab");
        assert_eq!(&hex16(u64::MAX), b"ffffffffffffffff");
    }
}
