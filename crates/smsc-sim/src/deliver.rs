//! The deliver_sm the simulator sends: delivery receipts and mobile-originated messages.
//!
//! A receipt is kept as a small fixed-size value and only encoded when written, so queueing,
//! windowing and redelivering one never allocates.

use crate::text::{encode_gsm, encode_ucs2};
use crate::wire::{self, Addr};

const ESM_RECEIPT: u8 = 0x04;
const ESM_DEFAULT: u8 = 0x00;
const MESSAGE_STATE_DELIVERED: u8 = 2;
const MESSAGE_STATE_UNDELIVERABLE: u8 = 5;
/// How much of the submitted text a receipt quotes.
pub(crate) const RECEIPT_TEXT_CHARS: usize = 20;

#[derive(Debug)]
pub(crate) struct Deliver {
    payload: Payload,
    /// Times written so far; more than one means a redelivery.
    pub(crate) attempts: u32,
}

#[derive(Debug)]
enum Payload {
    Receipt(Receipt),
    /// A complete deliver_sm body.
    Mo(Box<[u8]>),
}

/// What a receipt says about one accepted submit.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Receipt {
    pub(crate) message_id: u64,
    /// The submit's destination: receipts come from the handset.
    pub(crate) source: ShortAddr,
    pub(crate) destination: ShortAddr,
    pub(crate) submit_date: [u8; 10],
    pub(crate) done_date: [u8; 10],
    pub(crate) text: [u8; RECEIPT_TEXT_CHARS],
    pub(crate) text_len: u8,
    pub(crate) undelivered: bool,
}

/// An SMPP address (at most 20 digits) held inline.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ShortAddr {
    ton: u8,
    npi: u8,
    len: u8,
    digits: [u8; 20],
}

impl ShortAddr {
    pub(crate) fn new(addr: Addr) -> Self {
        let len = addr.digits.len().min(20);
        let mut digits = [0u8; 20];
        digits[..len].copy_from_slice(&addr.digits[..len]);
        ShortAddr {
            ton: addr.ton,
            npi: addr.npi,
            len: len as u8,
            digits,
        }
    }

    fn addr(&self) -> Addr<'_> {
        Addr {
            ton: self.ton,
            npi: self.npi,
            digits: &self.digits[..self.len as usize],
        }
    }
}

impl Deliver {
    pub(crate) fn receipt(receipt: Receipt) -> Deliver {
        Deliver {
            payload: Payload::Receipt(receipt),
            attempts: 0,
        }
    }

    /// An MO in GSM 03.38 when the text allows, else UCS-2; long texts go in message_payload.
    pub(crate) fn mo(from: &str, to: &str, text: &str) -> Deliver {
        let (data_coding, user_data) = match encode_gsm(text) {
            Some(septets) => (0, septets),
            None => (8, encode_ucs2(text)),
        };
        let mut body = Vec::with_capacity(64 + user_data.len());
        let (source, destination) = (mo_addr(from), mo_addr(to));
        if user_data.len() <= 254 {
            wire::put_deliver_sm_body(&mut body, source, destination, ESM_DEFAULT, data_coding, &user_data);
        } else {
            wire::put_deliver_sm_body(&mut body, source, destination, ESM_DEFAULT, data_coding, &[]);
            wire::put_tlv(&mut body, wire::TLV_MESSAGE_PAYLOAD, &user_data);
        }
        Deliver {
            payload: Payload::Mo(body.into_boxed_slice()),
            attempts: 0,
        }
    }

    pub(crate) fn is_receipt(&self) -> bool {
        matches!(self.payload, Payload::Receipt(_))
    }

    /// Appends the whole deliver_sm PDU with sequence number `seq`.
    pub(crate) fn write(&self, seq: u32, dst: &mut Vec<u8>) {
        wire::put_pdu(dst, wire::DELIVER_SM, wire::ESME_ROK, seq, |dst| match &self.payload {
            Payload::Mo(body) => dst.extend_from_slice(body),
            Payload::Receipt(receipt) => receipt.write_body(dst),
        });
    }
}

impl Receipt {
    fn write_body(&self, dst: &mut Vec<u8>) {
        let id = wire::hex16(self.message_id);
        let (dlvrd, stat, err, state) = if self.undelivered {
            (b"000", b"UNDELIV", b"001", MESSAGE_STATE_UNDELIVERABLE)
        } else {
            (b"001", b"DELIVRD", b"000", MESSAGE_STATE_DELIVERED)
        };
        let parts: [&[u8]; 14] = [
            b"id:",
            &id,
            b" sub:001 dlvrd:",
            dlvrd,
            b" submit date:",
            &self.submit_date,
            b" done date:",
            &self.done_date,
            b" stat:",
            stat,
            b" err:",
            err,
            b" text:",
            &self.text[..self.text_len as usize],
        ];
        // At most 128 octets: the parts are fixed except the 20-character text.
        let mut text = [0u8; 160];
        let mut len = 0;
        for part in parts {
            text[len..len + part.len()].copy_from_slice(part);
            len += part.len();
        }
        let (source, destination) = (self.source.addr(), self.destination.addr());
        wire::put_deliver_sm_body(dst, source, destination, ESM_RECEIPT, 0, &text[..len]);
        let mut receipted_id = [0u8; 17]; // a C-octet string: the id and its NUL
        receipted_id[..16].copy_from_slice(&id);
        wire::put_tlv(dst, wire::TLV_RECEIPTED_MESSAGE_ID, &receipted_id);
        wire::put_tlv(dst, wire::TLV_MESSAGE_STATE, &[state]);
    }
}

/// Numbers (optionally with a leading '+') are international, anything else alphanumeric.
fn mo_addr(addr: &str) -> Addr<'_> {
    let digits = addr.strip_prefix('+').unwrap_or(addr);
    let numeric = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    let digits = &digits.as_bytes()[..digits.len().min(20)];
    if numeric {
        Addr { ton: 1, npi: 1, digits }
    } else {
        Addr { ton: 5, npi: 0, digits }
    }
}
