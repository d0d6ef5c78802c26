//! Email over SMTP (lettre): one SMTP session per message, plain text and HTML as
//! `multipart/alternative`, attachments in a `multipart/mixed` around it.
//!
//! SMTP has no delivery receipts this adapter could read; `remote_id` is the Message-ID
//! sauti generates, which is what bounces and replies refer to.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Attachment as MimeAttachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use rand::Rng as _;
use serde::Deserialize;

use crate::twilio::http::{self, Field, FieldKind, SendCore};
use crate::{Channel, ConfigError, Context, EventSink, Failure, Health, Outbound, SendOutcome};
use crate::{limit::Throughput, twilio::http::Slot};

fn default_port() -> u16 {
    587
}

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text (a relay on localhost or a trusted network).
    None,
    /// Plain connection upgraded with STARTTLS, which the server must offer (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
}

/// An SMTP provider's settings (`providers.settings`).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default)]
    pub username: Option<String>,
    /// Secret: never printed (see the `Debug` impl).
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub tls: SmtpTls,
    /// Default sender address; a message's own `from` wins.
    #[serde(default)]
    pub from: Option<String>,
    /// Display name for `from`.
    #[serde(default)]
    pub from_name: Option<String>,
}

impl fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("tls", &self.tls)
            .field("from", &self.from)
            .field("from_name", &self.from_name)
            .finish()
    }
}

const FIELDS: &[Field] = &[
    Field::new("host", FieldKind::Required),
    Field::new("port", FieldKind::Integer(65_535)),
    Field::new("username", FieldKind::Optional),
    Field::new("password", FieldKind::Optional),
    Field::new("tls", FieldKind::Optional),
    Field::new("from", FieldKind::Optional),
    Field::new("from_name", FieldKind::Optional),
];

/// Check a provider's settings as the API received them; errors name the field
/// (`settings.host`) for a 422.
pub fn validate_settings(settings: &serde_json::Value) -> Result<SmtpSettings, ConfigError> {
    let checked = http::check_fields(settings, FIELDS)?;
    if let Some(tls) = checked.get("tls").and_then(|t| t.as_str())
        && !matches!(tls, "none" | "starttls" | "tls")
    {
        return Err(http::invalid("tls", "is invalid"));
    }
    let s: SmtpSettings = http::deserialize(checked)?;
    if s.port == 0 {
        return Err(http::invalid("port", "is invalid"));
    }
    if s.host.contains(char::is_whitespace) || TlsParameters::new(s.host.clone()).is_err() {
        return Err(http::invalid("host", "is invalid"));
    }
    match (&s.username, &s.password) {
        (Some(_), None) => return Err(http::invalid("password", "can't be blank")),
        (None, Some(_)) => return Err(http::invalid("username", "can't be blank")),
        _ => {}
    }
    if let Some(from) = &s.from
        && from.parse::<Address>().is_err()
    {
        return Err(http::invalid("from", "is invalid"));
    }
    Ok(s)
}

/// The adapter for one SMTP server.
pub struct SmtpChannel {
    settings: SmtpSettings,
    /// `Err` (why) when TLS could not be set up for the host; every send then fails as the
    /// provider's fault.
    transport: Result<AsyncSmtpTransport<Tokio1Executor>, String>,
    core: SendCore,
}

impl SmtpChannel {
    pub fn new(
        _provider_id: i64,
        settings: SmtpSettings,
        throughput_per_second: Option<u32>,
        _ctx: &Context,
        sink: EventSink,
    ) -> Arc<SmtpChannel> {
        let transport = transport(&settings).map_err(|e| http::chain(&e));
        Arc::new(SmtpChannel {
            settings,
            transport,
            core: SendCore::new(Throughput::new(throughput_per_second), sink),
        })
    }

    fn message(&self, msg: &Outbound) -> Result<(Message, String), Failure> {
        let bad = |message: String| Failure {
            permanent: true,
            provider_fault: false,
            code: None,
            message,
            raw_status: None,
        };
        let from: Mailbox = match (&msg.from, &self.settings.from) {
            // The message's sender may carry its own display name (`Name <a@b>`).
            (Some(f), _) => f
                .parse()
                .map_err(|e| bad(format!("from {f:?} is not an email address: {e}")))?,
            (None, Some(f)) => {
                let address: Address = f
                    .parse()
                    .map_err(|e| bad(format!("from {f:?} is not an email address: {e}")))?;
                Mailbox::new(self.settings.from_name.clone(), address)
            }
            // A provider without a default sender: another one may have one, so this counts
            // against the provider rather than the message.
            (None, None) => {
                return Err(Failure {
                    permanent: false,
                    provider_fault: true,
                    code: None,
                    message: "no sender: neither the message nor the provider has a from".into(),
                    raw_status: None,
                });
            }
        };
        let to: Mailbox = msg
            .to
            .parse()
            .map_err(|e| bad(format!("to {:?} is not an email address: {e}", msg.to)))?;
        let subject = msg
            .subject
            .as_deref()
            .ok_or_else(|| bad("an email needs a subject".into()))?;
        let message_id = message_id(msg.attempt_id, from.email.domain());
        let builder = Message::builder()
            .from(from)
            .to(to)
            .subject(subject)
            .message_id(Some(message_id.clone()))
            .date_now();
        let text = match &msg.html {
            Some(html) => Body::Multi(MultiPart::alternative_plain_html(msg.body.clone(), html.clone())),
            None => Body::Single(SinglePart::plain(msg.body.clone())),
        };
        let built = if msg.attachments.is_empty() {
            match text {
                Body::Multi(m) => builder.multipart(m),
                Body::Single(s) => builder.singlepart(s),
            }
        } else {
            let mut mixed = match text {
                Body::Multi(m) => MultiPart::mixed().multipart(m),
                Body::Single(s) => MultiPart::mixed().singlepart(s),
            };
            for a in &msg.attachments {
                // An unparsable type still goes out, as opaque bytes.
                let ct = ContentType::parse(&a.content_type)
                    .unwrap_or_else(|_| ContentType::parse("application/octet-stream").expect("static type"));
                mixed = mixed.singlepart(MimeAttachment::new(a.file_name.clone()).body(a.data.clone(), ct));
            }
            builder.multipart(mixed)
        };
        let message = built.map_err(|e| bad(format!("cannot build the email: {e}")))?;
        Ok((message, message_id))
    }
}

enum Body {
    Single(SinglePart),
    Multi(MultiPart),
}

/// `<attempt.random@sender-domain>`: unique, and traceable to the attempt in a bounce.
fn message_id(attempt_id: i64, domain: &str) -> String {
    let random: u64 = rand::rng().random();
    format!("<{attempt_id}.{random:016x}@{domain}>")
}

fn transport(s: &SmtpSettings) -> Result<AsyncSmtpTransport<Tokio1Executor>, lettre::transport::smtp::Error> {
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.host.clone())
        .port(s.port)
        // Bounds each SMTP command's wait, so a silent server ends as a timeout.
        .timeout(Some(Duration::from_secs(30)));
    b = match s.tls {
        SmtpTls::None => b.tls(Tls::None),
        SmtpTls::Starttls => b.tls(Tls::Required(TlsParameters::new(s.host.clone())?)),
        SmtpTls::Tls => b.tls(Tls::Wrapper(TlsParameters::new(s.host.clone())?)),
    };
    if let (Some(user), Some(pass)) = (&s.username, &s.password) {
        b = b.credentials(Credentials::new(user.clone(), pass.clone()));
    }
    Ok(b.build())
}

/// What a failed SMTP session means for the message.
fn error_outcome(e: &lettre::transport::smtp::Error) -> SendOutcome {
    let code = e.status().map(|c| c.to_string());
    let message = http::chain(e);
    let failed = |permanent, provider_fault| {
        SendOutcome::Failed(Failure {
            permanent,
            provider_fault,
            code: code.clone(),
            message: message.clone(),
            raw_status: code.clone(),
        })
    };
    match code.as_deref() {
        // "Try again later": the server is busy or over a limit, not the message's fault.
        Some("421" | "451" | "452") => SendOutcome::Throttled {
            retry_after: None,
            raw_status: code.clone(),
        },
        // Authentication required / failed / mechanism too weak: this server's
        // credentials are wrong, another provider may work.
        Some("530" | "534" | "535" | "538") => failed(false, true),
        Some(_) if e.is_permanent() => failed(true, false),
        Some(_) => failed(false, false),
        // lettre exposes no predicate for its connection errors, only this wording: they
        // happen (refused, DNS, connect timeout) before anything is sent.
        None if message.starts_with("Connection error") || e.is_tls() || e.is_client() => failed(false, true),
        // A timeout or a broken connection mid-session: the server may have taken the
        // message before the answer was lost.
        None => SendOutcome::Ambiguous { reason: message },
    }
}

#[async_trait::async_trait]
impl Channel for SmtpChannel {
    async fn send(&self, msg: Outbound) {
        let Some(slot) = self.core.slot(msg.attempt_id, 1).await else {
            return;
        };
        let transport = match &self.transport {
            Ok(t) => t.clone(),
            Err(why) => return report_fault(slot, format!("cannot set up TLS for the server: {why}")).await,
        };
        let (message, message_id) = match self.message(&msg) {
            Ok(m) => m,
            Err(failure) => return slot.report(SendOutcome::Failed(failure)).await,
        };
        tokio::spawn(async move {
            let outcome = match transport.send(message).await {
                Ok(resp) => {
                    let code = resp.code().to_string();
                    let lines: Vec<&str> = resp.message().collect();
                    SendOutcome::Accepted {
                        remote_id: message_id.clone(),
                        part_ids: vec![message_id.clone()],
                        segments: 1,
                        raw_status: Some(format!("{code} {}", lines.join(" ")).trim().to_string()),
                        response: serde_json::json!({"code": code, "message": lines, "message_id": message_id}),
                    }
                }
                Err(e) => error_outcome(&e),
            };
            slot.report(outcome).await;
        });
    }

    fn health(&self) -> Health {
        self.core.health()
    }

    async fn shutdown(&self) {
        self.core.shutdown().await;
    }
}

async fn report_fault(slot: Slot, message: String) {
    slot.report(SendOutcome::Failed(Failure {
        permanent: false,
        provider_fault: true,
        code: None,
        message,
        raw_status: None,
    }))
    .await
}
