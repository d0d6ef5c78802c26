//! SMS body analysis: which alphabet a text needs and how many parts it is sent in.
//!
//! GSM 03.38's default alphabet takes 7 bits a character (160 in one SMS, 153 a part once
//! a concatenation header is needed); its extension table (`€ [ ] { } \ ^ ~ |` and form
//! feed) costs two septets, an escape and the character, and the pair is never split
//! across parts. Anything outside both tables needs UCS-2 (70 UTF-16 code units in one
//! SMS, 67 a part), where a surrogate pair is likewise never split. The SMPP adapter sends
//! exactly the parts [`split`] returns, so the `segments` stored on a transmission is what
//! the network is charged for.

use serde::{Deserialize, Serialize};

/// The alphabet a text is sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Encoding {
    #[serde(rename = "GSM-7")]
    Gsm7,
    #[serde(rename = "UCS-2")]
    Ucs2,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "GSM-7",
            Encoding::Ucs2 => "UCS-2",
        }
    }
}

/// GSM 03.38 default alphabet, by septet value.
const BASIC: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1b}', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// The extension table: character and the septet that follows the escape (0x1B).
const EXTENSION: [(char, u8); 10] = [
    ('\u{c}', 0x0A),
    ('^', 0x14),
    ('{', 0x28),
    ('}', 0x29),
    ('\\', 0x2F),
    ('[', 0x3C),
    ('~', 0x3D),
    (']', 0x3E),
    ('|', 0x40),
    ('€', 0x65),
];

/// The septets of one character in GSM-7: `Some([c])`, `Some([0x1B, c])`, or `None`.
fn gsm_septets(c: char) -> Option<(u8, Option<u8>)> {
    // The escape itself is not a character a text can carry.
    if c == '\u{1b}' {
        return None;
    }
    if let Some(i) = BASIC.iter().position(|&b| b == c) {
        return Some((i as u8, None));
    }
    EXTENSION
        .iter()
        .find(|(e, _)| *e == c)
        .map(|(_, code)| (0x1B, Some(*code)))
}

/// Septets a GSM-7 character costs (1 or 2), `None` outside GSM-7.
fn gsm_cost(c: char) -> Option<usize> {
    gsm_septets(c).map(|(_, ext)| if ext.is_some() { 2 } else { 1 })
}

/// Limits per alphabet: in one SMS, and per part of a concatenated one.
fn limits(encoding: Encoding) -> (usize, usize) {
    match encoding {
        Encoding::Gsm7 => (160, 153),
        Encoding::Ucs2 => (70, 67),
    }
}

/// What a text costs to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Analysis {
    pub encoding: Encoding,
    /// Number of SMS parts (at least 1).
    pub segments: u32,
    /// Septets (GSM-7) or UTF-16 code units (UCS-2) in the whole text.
    pub units: u32,
}

pub fn encoding_of(text: &str) -> Encoding {
    if text.chars().all(|c| gsm_cost(c).is_some()) {
        Encoding::Gsm7
    } else {
        Encoding::Ucs2
    }
}

/// Cost of one character in `encoding`'s units.
fn cost(encoding: Encoding, c: char) -> usize {
    match encoding {
        Encoding::Gsm7 => gsm_cost(c).unwrap_or(1),
        Encoding::Ucs2 => c.len_utf16(),
    }
}

pub fn analyze(text: &str) -> Analysis {
    let encoding = encoding_of(text);
    let units: usize = text.chars().map(|c| cost(encoding, c)).sum();
    let (single, _) = limits(encoding);
    let segments = if units <= single {
        1
    } else {
        split_with(text, encoding).len()
    };
    Analysis {
        encoding,
        segments: segments as u32,
        units: units as u32,
    }
}

/// The parts a text is sent in, with their alphabet. One part when it fits in one SMS.
pub fn split(text: &str) -> (Encoding, Vec<String>) {
    let encoding = encoding_of(text);
    let units: usize = text.chars().map(|c| cost(encoding, c)).sum();
    let (single, _) = limits(encoding);
    if units <= single {
        return (encoding, vec![text.to_string()]);
    }
    (encoding, split_with(text, encoding))
}

/// Greedy split at `encoding`'s per-part limit; a character (an escape pair, a surrogate
/// pair) is never cut in two because whole characters are placed.
fn split_with(text: &str, encoding: Encoding) -> Vec<String> {
    let (_, per_part) = limits(encoding);
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut used = 0;
    for c in text.chars() {
        let n = cost(encoding, c);
        if used + n > per_part {
            parts.push(std::mem::take(&mut current));
            used = 0;
        }
        current.push(c);
        used += n;
    }
    if !current.is_empty() || parts.is_empty() {
        parts.push(current);
    }
    parts
}

/// A GSM-7 text as unpacked septets, one per byte (SMPP `data_coding` 0 as SMSCs read
/// it); extension characters become `0x1B` and their code. `None` if a character is not
/// in GSM-7.
pub fn encode_gsm7(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        let (a, b) = gsm_septets(c)?;
        out.push(a);
        if let Some(b) = b {
            out.push(b);
        }
    }
    Some(out)
}

/// Unpacked GSM-7 septets back to text (receipts and MO messages with `data_coding` 0).
/// Unknown escapes and values above 0x7F map to `?`.
pub fn decode_gsm7(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut iter = bytes.iter().copied();
    while let Some(b) = iter.next() {
        if b == 0x1B {
            match iter.next().and_then(|n| EXTENSION.iter().find(|(_, code)| *code == n)) {
                Some((c, _)) => out.push(*c),
                None => out.push('?'),
            }
        } else {
            out.push(BASIC.get(usize::from(b)).copied().unwrap_or('?'));
        }
    }
    out
}

/// A text as UCS-2 (UTF-16 big-endian, SMPP `data_coding` 8).
pub fn encode_ucs2(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

/// UTF-16 big-endian back to text; unpaired surrogates become U+FFFD.
pub fn decode_ucs2(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
        .collect();
    String::from_utf16_lossy(&units)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_part_limits() {
        assert_eq!(analyze(&"a".repeat(160)).segments, 1);
        assert_eq!(analyze(&"a".repeat(161)).segments, 2);
        assert_eq!(analyze(&"a".repeat(306)).segments, 2);
        assert_eq!(analyze(&"a".repeat(307)).segments, 3);
        assert_eq!(analyze("").segments, 1);
        let a = analyze(&"ж".repeat(70));
        assert_eq!((a.encoding, a.segments), (Encoding::Ucs2, 1));
        assert_eq!(analyze(&"ж".repeat(71)).segments, 2);
        assert_eq!(analyze(&"ж".repeat(134)).segments, 2);
        assert_eq!(analyze(&"ж".repeat(135)).segments, 3);
    }

    #[test]
    fn extension_characters_count_double_and_stay_whole() {
        let a = analyze(&"€".repeat(80));
        assert_eq!((a.encoding, a.units, a.segments), (Encoding::Gsm7, 160, 1));
        assert_eq!(analyze(&"€".repeat(81)).segments, 2);
        // 152 plain septets then an escape pair: the pair would straddle the 153 boundary,
        // so it moves whole to the second part.
        let text = format!("{}€{}", "a".repeat(152), "b".repeat(10));
        let (enc, parts) = split(&text);
        assert_eq!(enc, Encoding::Gsm7);
        assert_eq!(parts, vec!["a".repeat(152), format!("€{}", "b".repeat(10))]);
        assert_eq!(analyze(&text).segments, 2);
    }

    #[test]
    fn surrogate_pairs_stay_whole() {
        let text = format!("{}😀", "ж".repeat(66));
        let (enc, parts) = split(&format!("{text}{}", "ж".repeat(10)));
        assert_eq!(enc, Encoding::Ucs2);
        assert_eq!(parts[0], "ж".repeat(66));
        assert!(parts[1].starts_with('😀'));
    }

    #[test]
    fn one_non_gsm_character_makes_it_ucs2() {
        assert_eq!(encoding_of("Hello ñ é @ £"), Encoding::Gsm7);
        assert_eq!(encoding_of("Hello ç"), Encoding::Ucs2); // only capital Ç is in GSM-7
        assert_eq!(encoding_of("Habari 🙂"), Encoding::Ucs2);
    }

    #[test]
    fn codecs_round_trip() {
        let t = "Hi {€} @home [x] ~ ^ | \\";
        assert_eq!(decode_gsm7(&encode_gsm7(t).unwrap()), t);
        assert_eq!(encode_gsm7("@A").unwrap(), vec![0x00, 0x41]);
        assert!(encode_gsm7("ж").is_none());
        let u = "Привет 😀";
        assert_eq!(decode_ucs2(&encode_ucs2(u)), u);
    }

    proptest::proptest! {
        #[test]
        fn parts_rejoin_and_fit(text in "\\PC{0,400}") {
            let (enc, parts) = split(&text);
            proptest::prop_assert_eq!(parts.concat(), text.clone());
            proptest::prop_assert_eq!(parts.len() as u32, analyze(&text).segments);
            let (single, per) = limits(enc);
            let limit = if parts.len() == 1 { single } else { per };
            for p in &parts {
                let n: usize = p.chars().map(|c| cost(enc, c)).sum();
                proptest::prop_assert!(n <= limit);
            }
        }
    }
}
