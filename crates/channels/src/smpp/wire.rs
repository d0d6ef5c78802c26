//! What goes on the wire: `submit_sm` encoding, command statuses, receipt texts, MO bodies.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, NaiveDate, Utc};
use rusmpp::{Command, tokio_codec::CommandCodec};
#[cfg(test)]
use rusmpp::{
    CommandStatus, Pdu,
    pdus::SubmitSm,
    types::{COctetString, EmptyOrFullCOctetString, OctetString},
    values::{DataCoding, EsmClass, Npi, RegisteredDelivery, ServiceType, Ton},
};
use sauti_core::sms::{Encoding, encode_gsm7, encode_ucs2, split};
use tokio_util::codec::Encoder;

use super::SmppSettings;
use crate::{Failure, Outbound, ReceiptStatus};

pub(super) const ESME_ROK: u32 = 0x00;
pub(super) const ESME_RMSGQFUL: u32 = 0x14;
pub(super) const ESME_RTHROTTLED: u32 = 0x58;
pub(super) const ESME_RX_T_APPN: u32 = 0x64;

/// SMPP 3.4 command status names (section 5.1.3), for outcomes and logs.
pub(super) fn status_name(status: u32) -> &'static str {
    match status {
        0x00 => "ESME_ROK",
        0x01 => "ESME_RINVMSGLEN",
        0x02 => "ESME_RINVCMDLEN",
        0x03 => "ESME_RINVCMDID",
        0x04 => "ESME_RINVBNDSTS",
        0x05 => "ESME_RALYBND",
        0x06 => "ESME_RINVPRTFLG",
        0x07 => "ESME_RINVREGDLVFLG",
        0x08 => "ESME_RSYSERR",
        0x0A => "ESME_RINVSRCADR",
        0x0B => "ESME_RINVDSTADR",
        0x0C => "ESME_RINVMSGID",
        0x0D => "ESME_RBINDFAIL",
        0x0E => "ESME_RINVPASWD",
        0x0F => "ESME_RINVSYSID",
        0x11 => "ESME_RCANCELFAIL",
        0x13 => "ESME_RREPLACEFAIL",
        0x14 => "ESME_RMSGQFUL",
        0x15 => "ESME_RINVSERTYP",
        0x33 => "ESME_RINVNUMDESTS",
        0x34 => "ESME_RINVDLNAME",
        0x40 => "ESME_RINVDESTFLAG",
        0x42 => "ESME_RINVSUBREP",
        0x43 => "ESME_RINVESMCLASS",
        0x44 => "ESME_RCNTSUBDL",
        0x45 => "ESME_RSUBMITFAIL",
        0x48 => "ESME_RINVSRCTON",
        0x49 => "ESME_RINVSRCNPI",
        0x50 => "ESME_RINVDSTTON",
        0x51 => "ESME_RINVDSTNPI",
        0x53 => "ESME_RINVSYSTYP",
        0x54 => "ESME_RINVREPFLAG",
        0x55 => "ESME_RINVNUMMSGS",
        0x58 => "ESME_RTHROTTLED",
        0x61 => "ESME_RINVSCHED",
        0x62 => "ESME_RINVEXPIRY",
        0x63 => "ESME_RINVDFTMSGID",
        0x64 => "ESME_RX_T_APPN",
        0x65 => "ESME_RX_P_APPN",
        0x66 => "ESME_RX_R_APPN",
        0x67 => "ESME_RQUERYFAIL",
        0xC0 => "ESME_RINVOPTPARSTREAM",
        0xC1 => "ESME_ROPTPARNOTALLWD",
        0xC2 => "ESME_RINVPARLEN",
        0xC3 => "ESME_RMISSINGOPTPARAM",
        0xC4 => "ESME_RINVOPTPARAMVAL",
        0xFE => "ESME_RDELIVERYFAILURE",
        0xFF => "ESME_RUNKNOWNERR",
        _ => "UNKNOWN_STATUS",
    }
}

/// Whether resending the very same message cannot succeed: the statuses that blame the
/// message itself (length, addresses, flags, parameters, the permanent-rejection
/// ESME_RX_P_APPN). Everything else is treated as temporary, in particular
/// ESME_RSYSERR (0x08) and ESME_RSUBMITFAIL (0x45), which SMSCs return for transient
/// internal trouble, and vendor-specific codes, whose meaning we cannot know.
pub(super) fn is_permanent(status: u32) -> bool {
    matches!(
        status,
        0x01 | 0x06
            | 0x07
            | 0x0A
            | 0x0B
            | 0x15
            | 0x33
            | 0x40
            | 0x42
            | 0x43
            | 0x48
            | 0x49
            | 0x50
            | 0x51
            | 0x55
            | 0x61
            | 0x62
            | 0x63
            | 0x65
            | 0xC0..=0xC4
    )
}

/// TON/NPI for a sender: alphanumeric names are TON 5 (alphanumeric) NPI 0, numbers
/// TON 1 (international) NPI 1 (E.164), no sender 0/0 (the SMSC fills it in).
pub(super) fn source_ton_npi(settings: &SmppSettings, wire_addr: &str) -> (u8, u8) {
    let (ton, npi) = if wire_addr.is_empty() {
        (0, 0)
    } else if wire_addr.bytes().all(|b| b.is_ascii_digit()) {
        (1, 1)
    } else {
        (5, 0)
    };
    (settings.source_ton.unwrap_or(ton), settings.source_npi.unwrap_or(npi))
}

/// SMPP relative validity ("YYMMDDhhmmss000R"), at most 99 years.
pub(super) fn relative_validity(d: Duration) -> String {
    let secs = d.as_secs().max(1);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (years, days) = ((days / 365).min(99), days % 365);
    let (months, days) = (days / 30, days % 30);
    format!(
        "{years:02}{months:02}{days:02}{:02}{:02}{:02}000R",
        rest / 3600,
        (rest % 3600) / 60,
        rest % 60
    )
}

fn permanent_failure(message: impl Into<String>) -> Failure {
    Failure {
        permanent: true,
        provider_fault: false,
        code: None,
        message: message.into(),
        raw_status: None,
    }
}

/// The message's `submit_sm` PDUs, one per part, encoded with sequence number 0: the
/// session patches the number in when it writes them. Encoding here, on the caller's
/// task, keeps the work off the single session task.
pub(super) fn encode_submits(settings: &SmppSettings, msg: &Outbound, udh_ref: u8) -> Result<Vec<Bytes>, Failure> {
    let to = msg.to.strip_prefix('+').unwrap_or(&msg.to);
    if to.is_empty() || to.len() > 20 || !to.is_ascii() || to.contains('\0') {
        return Err(permanent_failure(format!(
            "destination {:?} is not a valid SMPP address",
            msg.to
        )));
    }
    let from = msg.from.as_deref().or(settings.default_from.as_deref()).unwrap_or("");
    let from = from.strip_prefix('+').unwrap_or(from);
    if from.len() > 20 || !from.is_ascii() || from.contains('\0') {
        return Err(permanent_failure(format!(
            "sender {from:?} is not a valid SMPP address"
        )));
    }
    let (src_ton, src_npi) = source_ton_npi(settings, from);
    let validity = msg.validity.map(relative_validity).unwrap_or_default();
    let registered = u8::from(settings.registered_delivery && msg.want_receipt);

    let (encoding, texts) = match ascii_gsm7(&msg.body) {
        Some(_) => (Encoding::Gsm7, vec![msg.body.clone()]),
        None => split(&msg.body),
    };
    if texts.len() > 255 {
        return Err(permanent_failure(format!(
            "text needs {} parts; at most 255 fit",
            texts.len()
        )));
    }
    let total = texts.len() as u8;
    let data_coding = match encoding {
        Encoding::Gsm7 => 0x00,
        Encoding::Ucs2 => 0x08,
    };
    let mut buf = BytesMut::with_capacity(texts.len() * (64 + from.len() + to.len() + 160));
    let mut bounds = Vec::with_capacity(texts.len());
    let mut payload = Vec::with_capacity(160);
    for (i, text) in texts.iter().enumerate() {
        payload.clear();
        if total > 1 {
            payload.extend_from_slice(&[0x05, 0x00, 0x03, udh_ref, total, i as u8 + 1]);
        }
        match encoding {
            Encoding::Gsm7 => match ascii_gsm7(text) {
                Some(septets) => payload.extend(septets),
                // `split` chose GSM-7 because every character has a septet.
                None => payload.extend(encode_gsm7(text).unwrap_or_default()),
            },
            Encoding::Ucs2 => payload.extend(encode_ucs2(text)),
        }
        if payload.len() > 255 {
            return Err(permanent_failure("a part exceeds 255 octets"));
        }
        let submit = Submit {
            source_ton: src_ton,
            source_npi: src_npi,
            source_addr: from,
            dest_ton: settings.dest_ton,
            dest_npi: settings.dest_npi,
            destination_addr: to,
            // Always explicit (rusmpp's `EsmClass::default()` is not 0x00).
            esm_class: if total > 1 { 0x40 } else { 0x00 },
            validity_period: &validity,
            registered_delivery: registered,
            data_coding,
            short_message: &payload,
        };
        let start = buf.len();
        submit.put(&mut buf);
        bounds.push((start, buf.len()));
    }
    let all = buf.freeze();
    Ok(bounds.into_iter().map(|(a, b)| all.slice(a..b)).collect())
}

/// Septet of each ASCII character that is one septet in GSM-7 (0xFF: not one), built
/// from `sauti_core::sms` itself so it cannot disagree with `split` / `encode_gsm7`.
fn ascii_septets() -> &'static [u8; 128] {
    static TABLE: std::sync::OnceLock<[u8; 128]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = [0xFF; 128];
        for (c, slot) in table.iter_mut().enumerate() {
            if let Some(s) = encode_gsm7(&char::from(c as u8).to_string())
                && let [septet] = s[..]
            {
                *slot = septet;
            }
        }
        table
    })
}

/// Fast path for the common case, a short plain-ASCII text: what `split` and
/// `encode_gsm7` would give (one GSM-7 part), without their per-character table scans,
/// which dominate a profile at hundreds of thousands of messages a second.
fn ascii_gsm7(text: &str) -> Option<impl Iterator<Item = u8> + '_> {
    let table = ascii_septets();
    let fits = text.len() <= 160 && text.bytes().all(|b| b < 0x80 && table[usize::from(b)] != 0xFF);
    fits.then(|| text.bytes().map(|b| table[usize::from(b)]))
}

/// One `submit_sm`'s fields (the rest are always 0 / empty).
struct Submit<'a> {
    source_ton: u8,
    source_npi: u8,
    source_addr: &'a str,
    dest_ton: u8,
    dest_npi: u8,
    destination_addr: &'a str,
    esm_class: u8,
    validity_period: &'a str,
    registered_delivery: u8,
    data_coding: u8,
    short_message: &'a [u8],
}

impl Submit<'_> {
    /// The PDU, sequence number 0, written straight into `out`. Hand-written because
    /// this is the one PDU sent per message: rusmpp's owned types cost about ten
    /// allocations per submit_sm, the largest item in a profile of the send path. The
    /// test `hand_encoded_submit_sm_matches_rusmpp` checks it byte for byte against
    /// rusmpp's encoder, which encodes every other PDU.
    fn put(&self, out: &mut BytesMut) {
        use bytes::BufMut;
        let start = out.len();
        out.put_u32(0); // command_length, patched below
        out.put_u32(0x0000_0004);
        out.put_u32(0);
        out.put_u32(0);
        out.put_u8(0); // service_type: default
        let cstr = |out: &mut BytesMut, s: &str| {
            out.put_slice(s.as_bytes());
            out.put_u8(0);
        };
        out.put_u8(self.source_ton);
        out.put_u8(self.source_npi);
        cstr(out, self.source_addr);
        out.put_u8(self.dest_ton);
        out.put_u8(self.dest_npi);
        cstr(out, self.destination_addr);
        out.put_u8(self.esm_class);
        out.put_u8(0); // protocol_id
        out.put_u8(0); // priority_flag
        out.put_u8(0); // schedule_delivery_time: immediate
        cstr(out, self.validity_period);
        out.put_u8(self.registered_delivery);
        out.put_u8(0); // replace_if_present_flag
        out.put_u8(self.data_coding);
        out.put_u8(0); // sm_default_msg_id
        out.put_u8(self.short_message.len() as u8);
        out.put_slice(self.short_message);
        let len = (out.len() - start) as u32;
        out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    }

    /// The same PDU through rusmpp, the reference the hand-written encoder is held to.
    #[cfg(test)]
    fn rusmpp(&self) -> BytesMut {
        let submit = SubmitSm::builder()
            .service_type(ServiceType::default())
            .source_addr_ton(Ton::from(self.source_ton))
            .source_addr_npi(Npi::from(self.source_npi))
            .source_addr(COctetString::from_string(self.source_addr.to_string()).unwrap())
            .dest_addr_ton(Ton::from(self.dest_ton))
            .dest_addr_npi(Npi::from(self.dest_npi))
            .destination_addr(COctetString::from_string(self.destination_addr.to_string()).unwrap())
            .esm_class(EsmClass::from(self.esm_class))
            .protocol_id(0)
            .validity_period(EmptyOrFullCOctetString::from_string(self.validity_period.to_string()).unwrap())
            .registered_delivery(RegisteredDelivery::from(self.registered_delivery))
            .data_coding(DataCoding::from(self.data_coding))
            .sm_default_msg_id(0)
            .short_message(OctetString::from_vec(self.short_message.to_vec()).unwrap())
            .build();
        let mut out = BytesMut::new();
        encode_command(
            &Command::new(CommandStatus::EsmeRok, 0, Pdu::SubmitSm(submit)),
            &mut out,
        );
        out
    }
}

/// Encode a command the session sends itself (responses, enquire_link, bind, unbind).
pub(super) fn encode_command(command: &Command, out: &mut BytesMut) {
    let mut codec = CommandCodec::new().without_max_length();
    // Into a BytesMut: infallible in practice (the error type only carries I/O errors).
    let _ = codec.encode(command, out);
}

/// A receipt text's fields (`id:… sub:… dlvrd:… submit date:… done date:… stat:… err:…`).
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct ReceiptText {
    pub id: Option<String>,
    pub stat: Option<String>,
    pub err: Option<String>,
    pub done: Option<DateTime<Utc>>,
}

/// The value after `key` (matched at the start or after a space, any case), up to the
/// next space. The `text:` part is never searched: it is the message's own text.
fn field<'a>(text: &'a str, lower: &str, key: &str) -> Option<&'a str> {
    let mut from = 0;
    while let Some(i) = lower[from..].find(key) {
        let at = from + i;
        if at == 0 || lower.as_bytes()[at - 1] == b' ' {
            let rest = &text[at + key.len()..];
            let end = rest.find(' ').unwrap_or(rest.len());
            return Some(&rest[..end]);
        }
        from = at + key.len();
    }
    None
}

pub(super) fn parse_receipt_text(text: &str) -> ReceiptText {
    let lower_all = text.to_ascii_lowercase();
    let cut = lower_all.find(" text:").unwrap_or(text.len());
    let (text, lower) = (&text[..cut], &lower_all[..cut]);
    let done = field(text, lower, "done date:").and_then(parse_smpp_date);
    ReceiptText {
        id: field(text, lower, "id:").filter(|s| !s.is_empty()).map(str::to_string),
        stat: field(text, lower, "stat:")
            .filter(|s| !s.is_empty())
            .map(str::to_ascii_uppercase),
        err: field(text, lower, "err:").filter(|s| !s.is_empty()).map(str::to_string),
        done,
    }
}

/// `YYMMDDhhmm` or `YYMMDDhhmmss`, taken as UTC (receipts carry no zone).
fn parse_smpp_date(s: &str) -> Option<DateTime<Utc>> {
    if !(s.len() == 10 || s.len() == 12) || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |i: usize| s[i..i + 2].parse::<u32>().ok();
    let sec = if s.len() == 12 { n(10)? } else { 0 };
    NaiveDate::from_ymd_opt(2000 + n(0)? as i32, n(2)?, n(4)?)?
        .and_hms_opt(n(6)?, n(8)?, sec)
        .map(|t| t.and_utc())
}

pub(super) fn stat_status(stat: &str) -> ReceiptStatus {
    match stat {
        "DELIVRD" => ReceiptStatus::Delivered,
        "ACCEPTD" | "ENROUTE" | "SCHEDULED" | "BUFFRED" => ReceiptStatus::Intermediate,
        _ => ReceiptStatus::Undelivered,
    }
}

/// The message_state TLV (SMPP 3.4 5.2.28) as a status and its stat word.
pub(super) fn message_state_status(state: u8) -> (ReceiptStatus, &'static str) {
    match state {
        1 => (ReceiptStatus::Intermediate, "ENROUTE"),
        2 => (ReceiptStatus::Delivered, "DELIVRD"),
        3 => (ReceiptStatus::Undelivered, "EXPIRED"),
        4 => (ReceiptStatus::Undelivered, "DELETED"),
        5 => (ReceiptStatus::Undelivered, "UNDELIV"),
        6 => (ReceiptStatus::Intermediate, "ACCEPTD"),
        8 => (ReceiptStatus::Undelivered, "REJECTD"),
        0 => (ReceiptStatus::Intermediate, "SCHEDULED"),
        _ => (ReceiptStatus::Undelivered, "UNKNOWN"),
    }
}

/// MO text by data_coding: 0 GSM-7 (unpacked), 8 UCS-2, 1 and 3 ASCII/Latin-1; anything
/// else is read as UTF-8 leniently (binary bodies are also kept as hex in `raw`).
pub(super) fn decode_text(data_coding: u8, bytes: &[u8]) -> String {
    match data_coding {
        0 => sauti_core::sms::decode_gsm7(bytes),
        8 => sauti_core::sms::decode_ucs2(bytes),
        1 | 3 => bytes.iter().map(|&b| char::from(b)).collect(),
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// The concatenation header of a UDH (`ref`, `total`, `seq`), and the payload after it.
pub(super) fn split_udh(sm: &[u8]) -> (Option<(u16, u8, u8)>, &[u8]) {
    let Some(&udhl) = sm.first() else { return (None, sm) };
    let udhl = usize::from(udhl);
    if sm.len() < 1 + udhl {
        return (None, sm);
    }
    let (header, payload) = (&sm[1..1 + udhl], &sm[1 + udhl..]);
    let mut i = 0;
    let mut concat = None;
    while i + 2 <= header.len() {
        let (iei, len) = (header[i], usize::from(header[i + 1]));
        let ie = header.get(i + 2..i + 2 + len).unwrap_or(&[]);
        match (iei, ie) {
            (0x00, [r, t, s]) => concat = Some((u16::from(*r), *t, *s)),
            (0x08, [r1, r2, t, s]) => concat = Some((u16::from_be_bytes([*r1, *r2]), *t, *s)),
            _ => {}
        }
        i += 2 + len;
    }
    (concat, payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipt_text_fields() {
        let r = parse_receipt_text(
            "id:0A1B sub:001 dlvrd:001 submit date:2612011200 done date:2612011201 stat:DELIVRD err:000 text:id:x",
        );
        assert_eq!(r.id.as_deref(), Some("0A1B"));
        assert_eq!(r.stat.as_deref(), Some("DELIVRD"));
        assert_eq!(r.err.as_deref(), Some("000"));
        assert_eq!(r.done.unwrap().to_rfc3339(), "2026-12-01T12:01:00+00:00");
        assert_eq!(stat_status("UNDELIV"), ReceiptStatus::Undelivered);
        assert_eq!(stat_status("ENROUTE"), ReceiptStatus::Intermediate);
    }

    #[test]
    fn ascii_fast_path_agrees_with_core() {
        let all: String = (0u8..128).map(char::from).collect();
        for text in [
            all.as_str(),
            "Your code is 1234",
            "a@b_c$",
            "{x}",
            "€",
            &"a".repeat(160),
            &"a".repeat(161),
        ] {
            match ascii_gsm7(text) {
                Some(septets) => {
                    assert_eq!(split(text), (Encoding::Gsm7, vec![text.to_string()]));
                    assert_eq!(Some(septets.collect::<Vec<_>>()), encode_gsm7(text));
                }
                None => assert!(text.len() > 160 || !text.is_ascii() || text.contains(['{', '}', '\\', '`', '\u{1b}'])),
            }
        }
        assert!(ascii_gsm7("Your code is 1234").is_some());
    }

    #[test]
    fn hand_encoded_submit_sm_matches_rusmpp() {
        let validity = relative_validity(Duration::from_secs(3600));
        let udh = [5, 0, 3, 9, 2, 1, b'h', b'i'];
        for (from, validity, esm, sm) in [
            ("SAUTI", "", 0x00, &b"hello"[..]),
            ("254711000000", validity.as_str(), 0x40, &udh[..]),
            ("", "", 0x00, &[][..]),
        ] {
            let submit = Submit {
                source_ton: 5,
                source_npi: 0,
                source_addr: from,
                dest_ton: 1,
                dest_npi: 1,
                destination_addr: "254700000001",
                esm_class: esm,
                validity_period: validity,
                registered_delivery: 1,
                data_coding: 8,
                short_message: sm,
            };
            let mut hand = BytesMut::new();
            submit.put(&mut hand);
            assert_eq!(hand, submit.rusmpp());
        }
    }

    #[test]
    fn validity_and_udh() {
        assert_eq!(
            relative_validity(Duration::from_secs(3600 * 25 + 61)),
            "000001010101000R"
        );
        assert_eq!(relative_validity(Duration::from_secs(86_400 * 400)).len(), 16);
        let (c, p) = split_udh(&[5, 0, 3, 7, 3, 2, b'h', b'i']);
        assert_eq!((c, p), (Some((7, 3, 2)), &b"hi"[..]));
        assert!(is_permanent(0x0B) && !is_permanent(0x45) && !is_permanent(0x08));
    }
}
