//! Access-token secrets and password hashes.
//!
//! Tokens carry 256 random bits, so a single SHA-256 is enough to store them: there is
//! nothing to brute-force. Passwords are chosen by people and get Argon2id.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use rand::TryRngCore;
use sha2::{Digest, Sha256};

/// A fresh access-token secret: 32 bytes from the OS CSPRNG, URL-safe base64 (43 chars),
/// the same alphabet SCFM's tokens use.
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .expect("the OS random source failed");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// What the store keeps for a token: hex SHA-256 of the secret.
pub fn token_digest(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        use std::fmt::Write;
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn argon2() -> argon2::Argon2<'static> {
    argon2::Argon2::default() // Argon2id v19, m=19 MiB, t=2, p=1 (OWASP's baseline)
}

/// Argon2id PHC string for a password.
pub fn hash_password(password: &str) -> String {
    let mut salt_bytes = [0u8; 16];
    rand::rngs::OsRng
        .try_fill_bytes(&mut salt_bytes)
        .expect("the OS random source failed");
    let salt = SaltString::encode_b64(&salt_bytes).expect("16 bytes is a valid salt length");
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters cannot fail")
        .to_string()
}

/// Constant-time verification; a malformed stored hash never verifies.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

/// A hash to verify against when the user does not exist, so that a login for an unknown
/// e-mail costs as much time as one with a wrong password.
pub fn dummy_password_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password("sauti-dummy-password"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_unique_and_url_safe() {
        let a = generate_token();
        let b = generate_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_eq!(token_digest(&a).len(), 64);
        assert_ne!(token_digest(&a), token_digest(&b));
    }

    #[test]
    fn passwords_round_trip_with_argon2id() {
        let h = hash_password("secret123");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("secret123", &h));
        assert!(!verify_password("secret124", &h));
        assert!(!verify_password("secret123", "not-a-hash"));
    }
}

/// The installation's own 256-bit secret. One-time codes are derived from it (see
/// [`crate::otp`]), so a copy of the database alone reveals none of them.
#[derive(Clone)]
pub struct ServerKey([u8; 32]);

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerKey([FILTERED])")
    }
}

impl ServerKey {
    /// A fresh key from the OS CSPRNG.
    pub fn random() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng
            .try_fill_bytes(&mut bytes)
            .expect("the OS random source failed");
        ServerKey(bytes)
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        ServerKey(bytes)
    }

    /// A key written as 64 hex digits (what [`ServerKey::to_hex`] writes).
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = hex::decode(text.trim()).ok()?;
        Some(ServerKey(bytes.try_into().ok()?))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// HMAC-SHA256 under this key of `parts`, each prefixed by its length so that no two
    /// different part lists give the same input.
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        use hmac::Mac;
        let mut m = hmac::Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        for p in parts {
            m.update(&(p.len() as u64).to_be_bytes());
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }
}
