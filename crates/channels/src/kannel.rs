//! Kannel adapter: smsbox's HTTP `sendsms` interface out, `dlr-url` receipts and
//! `sms-service` MO calls in.
//!
//! `sendsms` answers without a message id, so the `dlr-url` Kannel calls back carries our
//! attempt id: receipts name the attempt directly ([`parse_dlr`]) and `remote_id` is that id
//! too. MO messages reach sauti's API through an `sms-service` whose `get-url` is
//! `…?from=%p&to=%P&text=%a&smsc=%i` ([`parse_mo`]).

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use sauti_core::secret::ServerKey;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::twilio::http::{self, Field, FieldKind, SendCore};
use crate::twilio::{param, params_json};
use crate::{Channel, ConfigError, Context, EventSink, Health, Inbound, Outbound, Receipt, ReceiptStatus};
use crate::{SendOutcome, limit::Throughput};

fn default_dlr_mask() -> u32 {
    31
}

fn yes() -> bool {
    true
}

/// A Kannel provider's settings (`providers.settings`).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KannelSettings {
    /// smsbox's sendsms URL, e.g. `http://127.0.0.1:13013/cgi-bin/sendsms`.
    pub url: String,
    pub username: String,
    /// Secret: never printed (see the `Debug` impl).
    pub password: String,
    /// Default sender; without one Kannel uses its `global-sender`.
    #[serde(default)]
    pub from: Option<String>,
    /// Kannel `smsc-id` to route through.
    #[serde(default)]
    pub smsc: Option<String>,
    /// Which delivery reports to ask for (1 delivered, 2 undelivered, 4 buffered, 8 SMSC
    /// accepted, 16 SMSC rejected).
    #[serde(default = "default_dlr_mask")]
    pub dlr_mask: u32,
    /// Send `to` as digits only (`254700000001`), which is what most SMSCs behind Kannel
    /// expect; `false` keeps the E.164 `+`.
    #[serde(default = "yes")]
    pub strip_plus: bool,
}

impl fmt::Debug for KannelSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KannelSettings")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .field("from", &self.from)
            .field("smsc", &self.smsc)
            .field("dlr_mask", &self.dlr_mask)
            .field("strip_plus", &self.strip_plus)
            .finish()
    }
}

const FIELDS: &[Field] = &[
    Field::new("url", FieldKind::Required),
    Field::new("username", FieldKind::Required),
    Field::new("password", FieldKind::Required),
    Field::new("from", FieldKind::Optional),
    Field::new("smsc", FieldKind::Optional),
    // Kannel's mask has five report kinds plus 32 (SMSC intermediate) in later versions.
    Field::new("dlr_mask", FieldKind::Integer(63)),
    Field::new("strip_plus", FieldKind::Bool),
];

/// Check a provider's settings as the API received them; errors name the field
/// (`settings.url`) for a 422.
pub fn validate_settings(settings: &serde_json::Value) -> Result<KannelSettings, ConfigError> {
    let settings = http::check_fields(settings, FIELDS)?;
    let s: KannelSettings = http::deserialize(settings)?;
    http::check_http_url("url", &s.url)?;
    if s.dlr_mask == 0 {
        return Err(http::invalid("dlr_mask", "is invalid"));
    }
    Ok(s)
}

/// The token that makes a Kannel callback URL of provider `provider_id` a credential.
/// Kannel cannot sign what it sends, so its DLR and MO URLs carry this (128 bits,
/// derived from the installation's key: nothing to store, the same on every node); a
/// callback without it is refused.
pub fn callback_token(key: &ServerKey, provider_id: i64) -> String {
    let mac = key.mac(&[b"sauti kannel callbacks v1", provider_id.to_string().as_bytes()]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&mac[..16])
}

/// Whether `given` is provider `provider_id`'s callback token (in constant time).
pub fn token_matches(key: &ServerKey, provider_id: i64, given: Option<&str>) -> bool {
    let expected = callback_token(key, provider_id);
    given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(expected.as_bytes())))
}

/// The `get-url` to put in Kannel's `sms-service` for MO messages to reach provider
/// `provider_id`: the token, and the `%` escapes Kannel fills ([`parse_mo`] reads them).
pub fn mo_url(public_url: &str, key: &ServerKey, provider_id: i64) -> String {
    format!(
        "{}/callbacks/kannel/{provider_id}/mo?token={}&from=%p&to=%P&text=%a&smsc=%i",
        public_url.trim_end_matches('/'),
        callback_token(key, provider_id)
    )
}

/// The adapter for one Kannel smsbox.
pub struct KannelChannel {
    settings: KannelSettings,
    /// `None` when `settings.url` does not parse.
    url: Option<url::Url>,
    /// `{public_url}/callbacks/kannel/{provider_id}/dlr?token=…`; the rest of the query is
    /// added per message.
    dlr_base: String,
    client: reqwest::Client,
    core: SendCore,
}

impl KannelChannel {
    pub fn new(
        provider_id: i64,
        settings: KannelSettings,
        throughput_per_second: Option<u32>,
        ctx: &Context,
        sink: EventSink,
    ) -> Arc<KannelChannel> {
        // Settings come through `validate_settings`, which checked the URL; a bad one from
        // elsewhere fails each send as a provider fault (see `send`) rather than panicking.
        let url = url::Url::parse(&settings.url).ok();
        let dlr_base = format!(
            "{}/callbacks/kannel/{provider_id}/dlr?token={}",
            ctx.public_url.trim_end_matches('/'),
            callback_token(&ctx.secret_key, provider_id)
        );
        Arc::new(KannelChannel {
            settings,
            url,
            dlr_base,
            client: http::client(),
            core: SendCore::new(Throughput::new(throughput_per_second), sink),
        })
    }

    /// The `dlr-url` for one attempt; Kannel expands the `%` escapes when it calls it.
    pub fn dlr_url(&self, attempt_id: i64) -> String {
        format!(
            "{}&attempt_id={attempt_id}&type=%d&smsc_reply=%A&smsc_id=%i&ts=%T&to=%p",
            self.dlr_base
        )
    }

    fn request_url(&self, msg: &Outbound, ucs2: bool) -> Option<url::Url> {
        let s = &self.settings;
        let mut url = self.url.clone()?;
        {
            // `append_pair` encodes each value whole, so the dlr-url (with its own `?`, `&`
            // and `%`) travels as one parameter and Kannel decodes it back intact.
            let mut q = url.query_pairs_mut();
            q.append_pair("username", &s.username);
            q.append_pair("password", &s.password);
            if let Some(from) = msg.from.as_ref().or(s.from.as_ref()) {
                q.append_pair("from", from);
            }
            let to = match s.strip_plus {
                true => msg.to.strip_prefix('+').unwrap_or(&msg.to),
                false => &msg.to,
            };
            q.append_pair("to", to);
            q.append_pair("text", &msg.body);
            // The text is always sent as UTF-8; Kannel converts it to the SMS alphabet.
            q.append_pair("charset", "UTF-8");
            if ucs2 {
                q.append_pair("coding", "2");
            }
            if let Some(smsc) = &s.smsc {
                q.append_pair("smsc", smsc);
            }
            if let Some(v) = msg.validity {
                // Kannel's `validity` is in minutes; round up so a short one is not zero.
                q.append_pair("validity", &v.as_secs().div_ceil(60).max(1).to_string());
            }
            if msg.want_receipt {
                q.append_pair("dlr-mask", &s.dlr_mask.to_string());
                q.append_pair("dlr-url", &self.dlr_url(msg.attempt_id));
            }
        }
        Some(url)
    }
}

#[async_trait::async_trait]
impl Channel for KannelChannel {
    async fn send(&self, msg: Outbound) {
        let analysis = sauti_core::sms::analyze(&msg.body);
        let Some(slot) = self.core.slot(msg.attempt_id, analysis.segments).await else {
            return;
        };
        let Some(url) = self.request_url(&msg, analysis.encoding == sauti_core::sms::Encoding::Ucs2) else {
            let failure = crate::Failure {
                permanent: false,
                provider_fault: true,
                code: None,
                message: format!("settings.url {:?} is not a URL", self.settings.url),
                raw_status: None,
            };
            return slot.report(SendOutcome::Failed(failure)).await;
        };
        let request = self.client.get(url);
        let remote_id = msg.attempt_id.to_string();
        tokio::spawn(async move {
            let outcome = match request.send().await {
                Err(e) => http::transport_outcome(e),
                Ok(resp) => {
                    let status = resp.status();
                    let retry_after = http::retry_after(resp.headers());
                    let text = resp.text().await;
                    match text {
                        // Kannel answers 202 "0: Accepted for delivery" or "3: Queued for later
                        // delivery"; either way it has the message, and the body is all it says.
                        Ok(text) if status.is_success() => SendOutcome::Accepted {
                            remote_id: remote_id.clone(),
                            part_ids: vec![remote_id],
                            segments: analysis.segments,
                            raw_status: Some(text.trim().to_string()),
                            response: serde_json::json!({"status": status.as_u16(), "body": text}),
                        },
                        Err(e) if status.is_success() => SendOutcome::Ambiguous {
                            reason: format!("HTTP {status}, body unreadable: {}", http::chain(&e.without_url())),
                        },
                        // smsbox says 503 when it cannot queue the message (bearerbox down or
                        // its queue full): slow down and retry rather than fail it.
                        _ if status == reqwest::StatusCode::SERVICE_UNAVAILABLE => SendOutcome::Throttled {
                            retry_after,
                            raw_status: Some(status.as_u16().to_string()),
                        },
                        text => {
                            let message = http::snippet(&text.unwrap_or_default());
                            http::status_outcome(status, retry_after, Some(status.as_u16().to_string()), message)
                        }
                    }
                }
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

/// A `dlr-url` call (`attempt_id`, `type`, `smsc_reply`, `ts`) as a receipt. `None` when it
/// names no attempt or has a type that is not a report.
pub fn parse_dlr(params: &[(String, String)]) -> Option<Receipt> {
    let attempt_id: i64 = param(params, &["attempt_id"])?.trim().parse().ok()?;
    let raw_status = param(params, &["type"])?.trim();
    let status = match raw_status.parse::<u32>().ok()? {
        1 => ReceiptStatus::Delivered,
        // 2: the SMSC reports it undelivered; 16: the SMSC rejected it.
        2 | 16 => ReceiptStatus::Undelivered,
        // 4: buffered in the network; 8: accepted by the SMSC; 32: an intermediate report.
        4 | 8 | 32 => ReceiptStatus::Intermediate,
        _ => return None,
    };
    // For an SMPP SMSC, `%A` is the receipt text (`id:… stat:UNDELIV err:001 …`); its
    // error code is the one worth keeping.
    let error_code = param(params, &["smsc_reply"]).and_then(|reply| {
        reply
            .split_whitespace()
            .find_map(|w| w.strip_prefix("err:"))
            .filter(|e| !e.is_empty() && e.bytes().any(|b| b != b'0'))
            .map(str::to_string)
    });
    let done_at = param(params, &["ts"])
        .and_then(|t| t.trim().parse::<i64>().ok())
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0));
    Some(Receipt {
        remote_id: attempt_id.to_string(),
        attempt_id: Some(attempt_id),
        status,
        raw_status: raw_status.to_string(),
        error_code,
        done_at,
        raw: params_json(params),
    })
}

/// An MO call from Kannel's `sms-service` (`from=%p&to=%P&text=%a&smsc=%i`).
pub fn parse_mo(params: &[(String, String)]) -> Option<Inbound> {
    Some(Inbound {
        from: param(params, &["from"])?.to_string(),
        to: param(params, &["to"])?.to_string(),
        body: params
            .iter()
            .find(|(k, _)| k == "text")
            .map(|(_, v)| v.clone())
            .unwrap_or_default(),
        // Kannel gives MO messages no id of its own.
        remote_id: None,
        raw: params_json(params),
    })
}
