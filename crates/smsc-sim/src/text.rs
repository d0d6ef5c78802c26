//! Text handling: GSM 03.38 (unpacked, one septet per octet as SMPP carries it), UCS-2,
//! the concatenation UDH, and the timestamps of delivery receipts.

use std::time::{SystemTime, UNIX_EPOCH};

const ESCAPE: u8 = 0x1B;

/// The GSM 03.38 default alphabet; 0x1B is the escape to the extension table.
#[rustfmt::skip]
const GSM_BASIC: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å',
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{A0}', 'Æ', 'æ', 'ß', 'É',
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/',
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?',
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O',
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§',
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o',
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à',
];

/// The extension table: the septet following 0x1B, and the character it stands for.
const GSM_EXTENSION: [(u8, char); 10] = [
    (0x0A, '\u{0C}'),
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

/// Appends at most `max_chars` characters of `bytes` decoded per `data_coding` to `out`:
/// 0 → GSM 03.38 septets, 8 → UTF-16BE, 3 → Latin-1, anything else → lossy UTF-8.
pub fn decode_text(data_coding: u8, bytes: &[u8], max_chars: usize, out: &mut String) {
    match data_coding {
        0 => {
            let mut septets = bytes.iter().copied();
            let chars = std::iter::from_fn(|| {
                let septet = septets.next()?;
                Some(match septet {
                    // An unknown extension code shows as its default-table character
                    // (3GPP 23.038 §6.2.1.1).
                    ESCAPE => match septets.next() {
                        Some(code) => GSM_EXTENSION
                            .iter()
                            .find(|(ext, _)| *ext == code)
                            .map_or_else(|| basic_char(code), |(_, c)| *c),
                        None => ' ',
                    },
                    other => basic_char(other),
                })
            });
            out.extend(chars.take(max_chars));
        }
        8 => {
            let units = bytes.chunks_exact(2).map(|pair| u16::from_be_bytes([pair[0], pair[1]]));
            let chars = char::decode_utf16(units).map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER));
            out.extend(chars.take(max_chars));
        }
        3 => out.extend(bytes.iter().map(|&b| b as char).take(max_chars)),
        _ => out.extend(String::from_utf8_lossy(bytes).chars().take(max_chars)),
    }
}

fn basic_char(septet: u8) -> char {
    GSM_BASIC
        .get(septet as usize)
        .copied()
        .unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// GSM 03.38 unpacked septets for `text`, or `None` if a character is outside the alphabet.
pub fn encode_gsm(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        if let Some(septet) = GSM_BASIC.iter().position(|&b| b == c).filter(|&p| p != ESCAPE as usize) {
            out.push(septet as u8);
        } else {
            let (code, _) = GSM_EXTENSION.iter().find(|(_, ext)| *ext == c)?;
            out.extend_from_slice(&[ESCAPE, *code]);
        }
    }
    Some(out)
}

pub fn encode_ucs2(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

/// Splits the user data header off `user_data` and returns the concatenation IE it carries
/// (reference, total, sequence): IEI 0x00 has an 8-bit reference, IEI 0x08 a 16-bit one.
/// A header that runs past the data is treated as absent.
pub fn split_udh(user_data: &[u8]) -> (Option<(u16, u8, u8)>, &[u8]) {
    let Some((&udhl, rest)) = user_data.split_first() else {
        return (None, user_data);
    };
    let Some((mut header, text)) = rest.split_at_checked(udhl as usize) else {
        return (None, user_data);
    };
    let mut concatenation = None;
    while let [iei, len, tail @ ..] = header {
        let Some((data, next)) = tail.split_at_checked(*len as usize) else {
            break;
        };
        concatenation = match (*iei, data) {
            (0x00, &[reference, total, seq]) => Some((reference as u16, total, seq)),
            (0x08, &[hi, lo, total, seq]) => Some((u16::from_be_bytes([hi, lo]), total, seq)),
            _ => concatenation,
        };
        header = next;
    }
    (concatenation, text)
}

/// `YYMMDDhhmm` in UTC, the date format of delivery receipts.
pub fn receipt_date(time: SystemTime) -> [u8; 10] {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let minutes_of_day = secs % 86_400 / 60;
    let fields = [
        (year % 100) as u64,
        month as u64,
        day as u64,
        minutes_of_day / 60,
        minutes_of_day % 60,
    ];
    let mut out = [0u8; 10];
    for (pair, value) in out.chunks_exact_mut(2).zip(fields) {
        pair[0] = b'0' + (value / 10) as u8;
        pair[1] = b'0' + (value % 10) as u8;
    }
    out
}

/// [`receipt_date`] remembered for the current minute: receipts are stamped in bulk.
#[derive(Default)]
pub struct DateCache {
    minute: u64,
    text: [u8; 10],
}

impl DateCache {
    pub fn get(&mut self, time: SystemTime) -> [u8; 10] {
        let minute = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() / 60);
        if minute != self.minute || self.text[0] == 0 {
            self.minute = minute;
            self.text = receipt_date(time);
        }
        self.text
    }
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn decoded(data_coding: u8, bytes: &[u8]) -> String {
        let mut out = String::new();
        decode_text(data_coding, bytes, usize::MAX, &mut out);
        out
    }

    #[test]
    fn gsm_round_trips_including_the_extension_table() {
        let text = "Hello @ £5 {x} [y] ~ | \\ ^ € Δ";
        let septets = encode_gsm(text).expect("all in GSM 03.38");
        assert_eq!(&septets[..5], b"Hello");
        assert_eq!(decoded(0, &septets), text);
        assert!(encode_gsm("Привет").is_none());
    }

    #[test]
    fn decodes_ucs2_latin1_and_truncates() {
        assert_eq!(decoded(8, &encode_ucs2("Привет 😀")), "Привет 😀");
        assert_eq!(decoded(3, &[0x63, 0x61, 0x66, 0xE9]), "café");
        let mut out = String::new();
        decode_text(0, b"abcdef", 3, &mut out);
        assert_eq!(out, "abc");
    }

    #[test]
    fn splits_8_and_16_bit_concatenation_headers() {
        let udh8 = [0x05, 0x00, 0x03, 0x2A, 0x02, 0x01, b'h', b'i'];
        assert_eq!(split_udh(&udh8), (Some((0x2A, 2, 1)), &b"hi"[..]));
        let udh16 = [0x06, 0x08, 0x04, 0x12, 0x34, 0x03, 0x02, b'x'];
        assert_eq!(split_udh(&udh16), (Some((0x1234, 3, 2)), &b"x"[..]));
        assert_eq!(split_udh(&[0x09, 0x00]), (None, &[0x09, 0x00][..]));
    }

    #[test]
    fn receipt_dates_are_utc_yymmddhhmm() {
        // 2024-02-29 13:45:10 UTC
        let time = UNIX_EPOCH + Duration::from_secs(1_709_214_310);
        assert_eq!(&receipt_date(time), b"2402291345");
        assert_eq!(&receipt_date(UNIX_EPOCH), b"7001010000");
    }
}
