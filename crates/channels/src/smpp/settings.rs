//! A provider's SMPP settings and their validation (the API answers 422 with these errors).

use serde::Deserialize;
use serde_json::Value;

use crate::ConfigError;

/// How to reach and bind to one SMSC.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmppSettings {
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    pub system_id: String,
    /// A secret: never logged, redacted from `Debug`.
    pub password: String,
    #[serde(default)]
    pub system_type: String,
    /// Most `submit_sm` in flight (sent, response not yet received) at once.
    #[serde(default = "default_window")]
    pub window: u32,
    #[serde(default = "default_enquire_link")]
    pub enquire_link_interval_secs: u64,
    #[serde(default = "default_response_timeout")]
    pub response_timeout_secs: u64,
    #[serde(default = "default_reconnect_min")]
    pub reconnect_min_ms: u64,
    #[serde(default = "default_reconnect_max")]
    pub reconnect_max_ms: u64,
    #[serde(default = "default_true")]
    pub registered_delivery: bool,
    #[serde(default)]
    pub default_from: Option<String>,
    /// `None`: chosen per sender (alphanumeric → 5/0, digits → 1/1).
    #[serde(default)]
    pub source_ton: Option<u8>,
    #[serde(default)]
    pub source_npi: Option<u8>,
    #[serde(default = "default_one")]
    pub dest_ton: u8,
    #[serde(default = "default_one")]
    pub dest_npi: u8,
}

fn default_port() -> u16 {
    2775
}
fn default_window() -> u32 {
    100
}
fn default_enquire_link() -> u64 {
    30
}
fn default_response_timeout() -> u64 {
    30
}
fn default_reconnect_min() -> u64 {
    500
}
fn default_reconnect_max() -> u64 {
    30_000
}
fn default_true() -> bool {
    true
}
fn default_one() -> u8 {
    1
}

impl std::fmt::Debug for SmppSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmppSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("system_id", &self.system_id)
            .field("password", &"<redacted>")
            .field("system_type", &self.system_type)
            .field("window", &self.window)
            .field("enquire_link_interval_secs", &self.enquire_link_interval_secs)
            .field("response_timeout_secs", &self.response_timeout_secs)
            .field("reconnect_min_ms", &self.reconnect_min_ms)
            .field("reconnect_max_ms", &self.reconnect_max_ms)
            .field("registered_delivery", &self.registered_delivery)
            .field("default_from", &self.default_from)
            .field("source_ton", &self.source_ton)
            .field("source_npi", &self.source_npi)
            .field("dest_ton", &self.dest_ton)
            .field("dest_npi", &self.dest_npi)
            .finish()
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Str,
    OptStr,
    Bool,
    /// An integer in `min..=max`; `optional` also takes `null`.
    Int {
        min: u64,
        max: u64,
        optional: bool,
    },
}

const FIELDS: &[(&str, Kind)] = &[
    ("host", Kind::Str),
    (
        "port",
        Kind::Int {
            min: 1,
            max: 65_535,
            optional: false,
        },
    ),
    ("system_id", Kind::Str),
    ("password", Kind::Str),
    ("system_type", Kind::Str),
    (
        "window",
        Kind::Int {
            min: 1,
            max: 100_000,
            optional: false,
        },
    ),
    (
        "enquire_link_interval_secs",
        Kind::Int {
            min: 1,
            max: 3_600,
            optional: false,
        },
    ),
    (
        "response_timeout_secs",
        Kind::Int {
            min: 1,
            max: 600,
            optional: false,
        },
    ),
    (
        "reconnect_min_ms",
        Kind::Int {
            min: 1,
            max: 3_600_000,
            optional: false,
        },
    ),
    (
        "reconnect_max_ms",
        Kind::Int {
            min: 1,
            max: 3_600_000,
            optional: false,
        },
    ),
    ("registered_delivery", Kind::Bool),
    ("default_from", Kind::OptStr),
    (
        "source_ton",
        Kind::Int {
            min: 0,
            max: 6,
            optional: true,
        },
    ),
    (
        "source_npi",
        Kind::Int {
            min: 0,
            max: 18,
            optional: true,
        },
    ),
    (
        "dest_ton",
        Kind::Int {
            min: 0,
            max: 6,
            optional: false,
        },
    ),
    (
        "dest_npi",
        Kind::Int {
            min: 0,
            max: 18,
            optional: false,
        },
    ),
];

const REQUIRED: &[&str] = &["host", "system_id", "password"];

fn invalid(field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: format!("settings.{field}"),
        message: message.into(),
    }
}

/// Check a provider's `settings` object field by field, so the API can name the field
/// that is wrong rather than pass on serde's message.
pub fn validate_settings(settings: &Value) -> Result<SmppSettings, ConfigError> {
    let Some(object) = settings.as_object() else {
        return Err(ConfigError::Invalid {
            field: "settings".into(),
            message: "must be an object".into(),
        });
    };
    for key in object.keys() {
        if !FIELDS.iter().any(|(name, _)| name == key) {
            return Err(invalid(key, "is not a known SMPP setting"));
        }
    }
    for name in REQUIRED {
        if !object.contains_key(*name) {
            return Err(invalid(name, "can't be blank"));
        }
    }
    for (name, kind) in FIELDS {
        let Some(value) = object.get(*name) else { continue };
        match kind {
            Kind::Str if !value.is_string() => return Err(invalid(name, "must be a string")),
            Kind::OptStr if !(value.is_string() || value.is_null()) => {
                return Err(invalid(name, "must be a string or null"));
            }
            Kind::Bool if !value.is_boolean() => return Err(invalid(name, "must be true or false")),
            Kind::Int { min, max, optional } => {
                if *optional && value.is_null() {
                    continue;
                }
                match value.as_u64() {
                    Some(n) if (*min..=*max).contains(&n) => {}
                    _ => return Err(invalid(name, format!("must be a whole number from {min} to {max}"))),
                }
            }
            _ => {}
        }
    }
    // Every field was checked above; this only fails if the two lists disagree.
    let parsed: SmppSettings = serde_json::from_value(settings.clone()).map_err(|e| ConfigError::Invalid {
        field: "settings".into(),
        message: format!("are invalid: {e}"),
    })?;

    // SMPP 3.4 field sizes, counted without the terminating NUL.
    let text_limits: [(&str, &str, usize); 4] = [
        ("host", &parsed.host, 253),
        ("system_id", &parsed.system_id, 15),
        ("password", &parsed.password, 8),
        ("system_type", &parsed.system_type, 12),
    ];
    for (name, value, max) in text_limits {
        if name != "system_type" && name != "password" && value.trim().is_empty() {
            return Err(invalid(name, "can't be blank"));
        }
        if value.len() > max {
            return Err(invalid(name, format!("is too long (at most {max} characters)")));
        }
        if !value.is_ascii() || value.contains('\0') {
            return Err(invalid(name, "must be plain ASCII"));
        }
    }
    if let Some(from) = &parsed.default_from {
        let wire = from.strip_prefix('+').unwrap_or(from);
        if wire.is_empty() {
            return Err(invalid("default_from", "can't be blank (leave it out instead)"));
        }
        if wire.len() > 20 || !wire.is_ascii() {
            return Err(invalid("default_from", "must be at most 20 ASCII characters"));
        }
    }
    if parsed.reconnect_min_ms > parsed.reconnect_max_ms {
        return Err(invalid("reconnect_min_ms", "must not exceed reconnect_max_ms"));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn field_of(v: Value) -> (String, String) {
        match validate_settings(&v) {
            Err(ConfigError::Invalid { field, message }) => (field, message),
            Ok(s) => panic!("accepted {s:?}"),
        }
    }

    #[test]
    fn defaults_and_errors() {
        let s = validate_settings(&json!({"host": "smsc", "system_id": "test", "password": "secret"})).unwrap();
        assert_eq!((s.port, s.window, s.dest_ton, s.dest_npi), (2775, 100, 1, 1));
        assert!(s.registered_delivery && s.source_ton.is_none());
        assert!(!format!("{s:?}").contains("secret"));

        assert_eq!(
            field_of(json!({"host": " ", "system_id": "t", "password": "p"})),
            ("settings.host".into(), "can't be blank".into())
        );
        assert_eq!(field_of(json!({"system_id": "t", "password": "p"})).0, "settings.host");
        assert_eq!(
            field_of(json!({"host": "h", "system_id": "t", "password": "p", "nope": 1})).0,
            "settings.nope"
        );
        assert_eq!(
            field_of(json!({"host": "h", "system_id": "t", "password": "p", "port": 0})).0,
            "settings.port"
        );
        assert_eq!(
            field_of(json!({"host": "h", "system_id": "t", "password": "toolongpw"})).0,
            "settings.password"
        );
        assert_eq!(
            field_of(json!({"host": "h", "system_id": "t", "password": "p", "window": "x"})).0,
            "settings.window"
        );
        assert_eq!(field_of(json!([])).0, "settings");
    }
}
