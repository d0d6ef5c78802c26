//! One-time codes (verifications).
//!
//! A code is never stored. Each verification keeps a random salt, and its code is
//! HMAC-SHA256(server key, salt) reduced to `length` decimal digits: the code is a keyed
//! hash of stored data, so a copy of the database without the key reveals no code, while
//! a resend within validity sends the same code and the delivery engine can write it
//! into the message at the moment it leaves (decision 0011).

use rand::TryRngCore;
use subtle::ConstantTimeEq;

use crate::secret::ServerKey;

pub const MIN_LENGTH: u8 = 4;
pub const MAX_LENGTH: u8 = 10;
pub const DEFAULT_LENGTH: u8 = 6;

/// Where a message template takes the code. The store keeps the template with this
/// placeholder; the engine replaces it when it sends.
pub const PLACEHOLDER: &str = "{{code}}";

/// A fresh salt: 16 bytes from the OS CSPRNG, hex.
pub fn new_salt() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .expect("the OS random source failed");
    hex::encode(bytes)
}

/// The code of the verification with `salt`.
///
/// 64 bits of the MAC modulo 10^length: the bias is below 10^10 / 2^64 ≈ 5·10^-10.
pub fn code(key: &ServerKey, salt: &str, length: u8) -> String {
    let length = length.clamp(MIN_LENGTH, MAX_LENGTH);
    let mac = key.mac(&[b"sauti verification code v1", salt.as_bytes()]);
    let n = u64::from_be_bytes(mac[..8].try_into().expect("8 bytes"));
    let m = n % 10u64.pow(u32::from(length));
    format!("{m:0width$}", width = usize::from(length))
}

/// Whether `candidate` is the code, compared in constant time (the length of a code is
/// not a secret; its digits are).
pub fn matches(key: &ServerKey, salt: &str, length: u8, candidate: &str) -> bool {
    let expected = code(key, salt, length);
    let candidate = candidate.trim().as_bytes();
    candidate.len() == expected.len() && bool::from(candidate.ct_eq(expected.as_bytes()))
}

/// The code as a voice reads it: digit by digit, with pauses.
pub fn spoken(code: &str) -> String {
    code.chars().map(String::from).collect::<Vec<_>>().join(", ")
}

/// Locales with a built-in message.
pub const LOCALES: &[&str] = &["en", "fr", "es", "pt", "de", "sw", "it", "nl"];

/// The built-in SMS/e-mail text for `locale`, naming the sender `name`, with
/// [`PLACEHOLDER`] where the code goes.
pub fn message(locale: &str, name: &str) -> Option<String> {
    let lang = locale.split(['-', '_']).next().unwrap_or("").to_ascii_lowercase();
    let text = match lang.as_str() {
        "en" => format!("Your {name} verification code is: {PLACEHOLDER}"),
        "fr" => format!("Votre code de vérification {name} est : {PLACEHOLDER}"),
        "es" => format!("Tu código de verificación de {name} es: {PLACEHOLDER}"),
        "pt" => format!("O seu código de verificação {name} é: {PLACEHOLDER}"),
        "de" => format!("Ihr {name} Bestätigungscode lautet: {PLACEHOLDER}"),
        "sw" => format!("Nambari yako ya uthibitisho ya {name} ni: {PLACEHOLDER}"),
        "it" => format!("Il tuo codice di verifica {name} è: {PLACEHOLDER}"),
        "nl" => format!("Uw {name} verificatiecode is: {PLACEHOLDER}"),
        _ => return None,
    };
    Some(text)
}

/// The e-mail subject for `locale`.
pub fn subject(locale: &str, name: &str) -> String {
    let lang = locale.split(['-', '_']).next().unwrap_or("").to_ascii_lowercase();
    match lang.as_str() {
        "fr" => format!("Votre code de vérification {name}"),
        "es" => format!("Tu código de verificación de {name}"),
        "pt" => format!("O seu código de verificação {name}"),
        "de" => format!("Ihr {name} Bestätigungscode"),
        "sw" => format!("Nambari yako ya uthibitisho ya {name}"),
        "it" => format!("Il tuo codice di verifica {name}"),
        "nl" => format!("Uw {name} verificatiecode"),
        _ => format!("Your {name} verification code"),
    }
}

/// Whether `locale` names a language sauti has a message for (`en`, `pt-BR`, …).
pub fn is_supported_locale(locale: &str) -> bool {
    message(locale, "").is_some()
        && locale.len() <= 16
        && locale
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_salt_gives_the_same_code_and_others_differ() {
        let key = ServerKey::from_bytes([7; 32]);
        let c = code(&key, "abc", 6);
        assert_eq!(c.len(), 6);
        assert!(c.chars().all(|d| d.is_ascii_digit()));
        assert_eq!(c, code(&key, "abc", 6));
        assert_ne!(code(&ServerKey::from_bytes([8; 32]), "abc", 6), c, "another key");
        let distinct: std::collections::HashSet<String> = (0..200).map(|i| code(&key, &i.to_string(), 6)).collect();
        assert!(distinct.len() > 190, "codes spread over the space");
        assert_eq!(code(&key, "abc", 10).len(), 10);
        assert_eq!(code(&key, "abc", 4).len(), 4);
    }

    #[test]
    fn matching_needs_every_digit_and_the_length() {
        let key = ServerKey::from_bytes([1; 32]);
        let salt = new_salt();
        let c = code(&key, &salt, 6);
        assert!(matches(&key, &salt, 6, &c));
        assert!(matches(&key, &salt, 6, &format!(" {c} ")));
        assert!(!matches(&key, &salt, 6, &c[..5]));
        assert!(!matches(&key, &salt, 6, &format!("{c}0")));
        let mut wrong = c.clone().into_bytes();
        wrong[5] = if wrong[5] == b'9' { b'0' } else { wrong[5] + 1 };
        assert!(!matches(&key, &salt, 6, std::str::from_utf8(&wrong).unwrap()));
        assert!(!matches(&key, &salt, 6, ""));
        assert!(!matches(&key, &salt, 6, "ééé"));
    }

    #[test]
    fn messages_exist_for_every_listed_locale() {
        for l in LOCALES {
            assert!(message(l, "Acme").unwrap().contains(PLACEHOLDER), "{l}");
            assert!(is_supported_locale(l));
        }
        assert!(is_supported_locale("pt-BR"));
        assert!(!is_supported_locale("xx"));
        assert!(!is_supported_locale("en/../x"));
        assert_eq!(spoken("4071"), "4, 0, 7, 1");
    }
}
