//! Provider adapters behind one trait.
//!
//! The engine hands an adapter one [`Outbound`] message at a time with [`Channel::send`];
//! everything the outside world answers comes back, tagged with the attempt it belongs to,
//! on the [`EventSink`] the adapter was built with: the outcome of each send, delivery
//! receipts, inbound (MO) messages. Adapters never touch the database: the engine writes
//! the attempt before calling `send` and applies events after, so an adapter's only job is
//! the wire.
#![forbid(unsafe_code)]

pub mod kannel;
pub mod limit;
pub mod sandbox;
pub mod smpp;
pub mod smtp;
pub mod twilio;

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

/// One message to send: one attempt of one transmission.
#[derive(Debug, Clone)]
pub struct Outbound {
    /// The attempt row written before this send; every event about it carries this id.
    pub attempt_id: i64,
    pub transmission_id: i64,
    pub account_id: i64,
    pub channel: ChannelKind,
    /// E.164 (`+254…`) for SMS and voice, an email address for email.
    pub to: String,
    /// Sender id, number or email address; `None` uses the provider's default.
    pub from: Option<String>,
    /// SMS text or plain-text email body.
    pub body: String,
    /// Email only.
    pub subject: Option<String>,
    /// Email only: the HTML part.
    pub html: Option<String>,
    /// Email only: files to attach.
    pub attachments: Vec<Attachment>,
    /// How long the network may keep trying (SMPP `validity_period`, Twilio `ValidityPeriod`).
    pub validity: Option<Duration>,
    /// Whether to ask the network for a delivery receipt.
    pub want_receipt: bool,
}

#[derive(Debug, Clone)]
pub struct Attachment {
    pub file_name: String,
    pub content_type: String,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    Sms,
    Email,
    Voice,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Sms => "sms",
            ChannelKind::Email => "email",
            ChannelKind::Voice => "voice",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sms" => Some(ChannelKind::Sms),
            "email" => Some(ChannelKind::Email),
            "voice" => Some(ChannelKind::Voice),
            _ => None,
        }
    }
}

/// What became of one send.
#[derive(Debug, Clone)]
pub enum SendOutcome {
    /// The provider took the message. `remote_id` is what its receipts will name (for a
    /// message sent in several SMPP parts: the id of the first part; `part_ids` has all).
    Accepted {
        remote_id: String,
        part_ids: Vec<String>,
        segments: u32,
        /// The provider's own status word (`queued`, `0: Accepted for delivery`, …).
        raw_status: Option<String>,
        response: serde_json::Value,
    },
    /// The provider asked us to slow down (HTTP 429, SMPP `ESME_RTHROTTLED` or
    /// `ESME_RMSGQFUL`). Not the message's fault: retried without spending an attempt.
    Throttled {
        retry_after: Option<Duration>,
        raw_status: Option<String>,
    },
    /// The provider refused or could not take the message.
    Failed(Failure),
    /// It cannot be known whether the provider got the message (connection lost after
    /// the bytes left, response timed out). Recorded as ambiguous; see the engine's policy.
    Ambiguous { reason: String },
    /// The message never left (the adapter was stopped or its session is down before the
    /// bytes were written). Requeued without spending an attempt.
    NotSent { reason: String },
}

#[derive(Debug, Clone)]
pub struct Failure {
    /// `true`: retrying the same message cannot succeed (bad number, rejected content).
    /// `false`: a retry may (timeouts, 5xx, temporary SMSC errors).
    pub permanent: bool,
    /// `true` when the fault lies with the provider (bind refused, 5xx, connection
    /// refused) rather than the message: the next attempt should prefer another provider.
    pub provider_fault: bool,
    /// The provider's code (`0x0000000B`, `21211`, `16`), kept raw.
    pub code: Option<String>,
    pub message: String,
    pub raw_status: Option<String>,
}

/// A delivery receipt, as the provider reported it.
#[derive(Debug, Clone)]
pub struct Receipt {
    /// The provider's message id the receipt is about.
    pub remote_id: String,
    /// When the adapter knows it directly (Kannel's `dlr-url` carries our attempt id).
    pub attempt_id: Option<i64>,
    pub status: ReceiptStatus,
    /// The provider's own word (`DELIVRD`, `undelivered`, `1`).
    pub raw_status: String,
    pub error_code: Option<String>,
    pub done_at: Option<DateTime<Utc>>,
    /// The receipt as received (the SMPP receipt text, the callback's parameters).
    pub raw: serde_json::Value,
}

/// Receipt statuses, normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptStatus {
    /// Final: the handset has it.
    Delivered,
    /// Final: the network gave up (expired, rejected, deleted, undeliverable).
    Undelivered,
    /// Not final: buffered, accepted by the SMSC, en route.
    Intermediate,
}

/// A message someone sent to one of the provider's numbers (SMS MO, inbound email).
#[derive(Debug, Clone)]
pub struct Inbound {
    pub from: String,
    pub to: String,
    pub body: String,
    pub remote_id: Option<String>,
    pub raw: serde_json::Value,
}

/// Confirms an event was made durable. SMPP answers `deliver_sm` only after the engine
/// fires this, so a receipt the process did not store is redelivered by the SMSC.
pub type Ack = oneshot::Sender<()>;

/// What an adapter reports.
#[derive(Debug)]
pub enum Event {
    Outcome {
        attempt_id: i64,
        outcome: SendOutcome,
    },
    Receipt {
        provider_id: i64,
        receipt: Receipt,
        ack: Option<Ack>,
    },
    Inbound {
        provider_id: i64,
        message: Inbound,
        ack: Option<Ack>,
    },
}

/// Where adapters send their events. Bounded: a slow database slows the adapters down
/// rather than filling memory.
pub type EventSink = mpsc::Sender<Event>;

/// Whether an adapter can take messages now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Connected / reachable as far as the adapter knows.
    Up,
    /// Not connected (SMPP bind down, retrying); sends would wait or come back `NotSent`.
    Down,
}

/// One provider's adapter.
#[async_trait::async_trait]
pub trait Channel: Send + Sync {
    /// Hand over one message. Returns once the adapter has taken it (it waits while the
    /// adapter's window is full); the outcome arrives later as [`Event::Outcome`]. Every
    /// message handed over gets exactly one outcome.
    async fn send(&self, message: Outbound);

    /// Current health, for routing.
    fn health(&self) -> Health;

    /// Stop: messages not yet written come back as `NotSent`; in-flight ones get their
    /// outcome or `Ambiguous`. Returns when every outcome has been reported.
    async fn shutdown(&self);
}

/// What every adapter may need from the service around it.
#[derive(Debug, Clone)]
pub struct Context {
    /// sauti's own base URL as providers reach it (`SAUTI_PUBLIC_URL`), without a
    /// trailing slash: status callbacks and DLR URLs are built on it.
    pub public_url: String,
    /// The installation's secret: callback URLs that cannot be signed by the provider
    /// (Kannel's) carry a token derived from it.
    pub secret_key: std::sync::Arc<sauti_core::secret::ServerKey>,
}

/// Errors building an adapter from its settings.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{field} {message}")]
    Invalid { field: String, message: String },
}

/// Provider kinds sauti has adapters for.
pub const KINDS: &[&str] = &["sandbox", "smpp", "twilio", "kannel", "smtp"];

/// The channels a kind can serve.
pub fn kind_channels(kind: &str) -> &'static [&'static str] {
    match kind {
        "sandbox" => &["sms", "email"],
        "smpp" | "kannel" => &["sms"],
        "twilio" => &["sms", "voice"],
        "smtp" => &["email"],
        _ => &[],
    }
}

/// Check a provider's settings for its kind (the API answers 422 with the error).
pub fn validate(kind: &str, settings: &serde_json::Value) -> Result<(), ConfigError> {
    match kind {
        "sandbox" => sandbox::validate_settings(settings).map(|_| ()),
        "smpp" => smpp::validate_settings(settings).map(|_| ()),
        "twilio" => twilio::validate_settings(settings).map(|_| ()),
        "kannel" => kannel::validate_settings(settings).map(|_| ()),
        "smtp" => smtp::validate_settings(settings).map(|_| ()),
        other => Err(ConfigError::Invalid {
            field: "kind".into(),
            message: format!("{other} is not a provider kind (expected one of: {})", KINDS.join(", ")),
        }),
    }
}

/// Build the adapter of one provider.
pub fn build(
    kind: &str,
    provider_id: i64,
    settings: &serde_json::Value,
    throughput_per_second: Option<u32>,
    ctx: &Context,
    sink: EventSink,
) -> Result<std::sync::Arc<dyn Channel>, ConfigError> {
    let tps = throughput_per_second;
    Ok(match kind {
        "sandbox" => sandbox::SandboxChannel::new(provider_id, sandbox::validate_settings(settings)?, sink),
        "smpp" => smpp::SmppChannel::start(provider_id, smpp::validate_settings(settings)?, tps, sink),
        "twilio" => twilio::TwilioChannel::new(provider_id, twilio::validate_settings(settings)?, tps, ctx, sink),
        "kannel" => kannel::KannelChannel::new(provider_id, kannel::validate_settings(settings)?, tps, ctx, sink),
        "smtp" => smtp::SmtpChannel::new(provider_id, smtp::validate_settings(settings)?, tps, ctx, sink),
        other => {
            return Err(ConfigError::Invalid {
                field: "kind".into(),
                message: format!("{other} is not a provider kind"),
            });
        }
    })
}
