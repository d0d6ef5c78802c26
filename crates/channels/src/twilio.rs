//! Twilio-compatible REST adapter: Twilio itself and Somleng, which speaks the same API.
//!
//! An SMS is one `POST …/Messages.json`; delivery receipts come back as signed status
//! callbacks to sauti's API, which checks them with [`validate_signature`] and reads them
//! with [`parse_status_callback`]. Inbound messages arrive on the same kind of webhook and
//! are read with [`parse_inbound`].
//!
//! A voice message is one `POST …/Calls.json`: the provider calls the number, fetches what
//! to do from sauti's TwiML URL for that attempt ([`twiml_url`]) and reports the call's
//! progress to the provider's call-status callback, read with [`parse_call_status`].
//!
//! The plumbing the one-request-per-message adapters share (bounded concurrency,
//! throughput, health, classifying transport errors and HTTP statuses, settings
//! validation) lives in [`http`]; the Kannel and SMTP adapters use it too. It is here
//! rather than in a module of its own because this change may touch only the adapters'
//! files.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha1::Sha1;
use subtle::ConstantTimeEq;

use crate::{
    Channel, ChannelKind, ConfigError, Context, EventSink, Failure, Health, Inbound, Outbound, Receipt, ReceiptStatus,
};
use crate::{SendOutcome, limit::Throughput};

use http::{Field, FieldKind, SendCore};

fn default_base_url() -> String {
    "https://api.twilio.com".to_string()
}

/// A Twilio-compatible provider's settings (`providers.settings`).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioSettings {
    pub account_sid: String,
    /// Secret: never printed (see the `Debug` impl).
    pub auth_token: String,
    /// `https://api.twilio.com`, or a Somleng (or test) server.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// Default sender number or alphanumeric id.
    #[serde(default)]
    pub from: Option<String>,
    /// Used when neither the message nor `from` names a sender.
    #[serde(default)]
    pub messaging_service_sid: Option<String>,
}

impl fmt::Debug for TwilioSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioSettings")
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"[redacted]")
            .field("base_url", &self.base_url)
            .field("from", &self.from)
            .field("messaging_service_sid", &self.messaging_service_sid)
            .finish()
    }
}

const FIELDS: &[Field] = &[
    Field::new("account_sid", FieldKind::Required),
    Field::new("auth_token", FieldKind::Required),
    Field::new("base_url", FieldKind::Optional),
    Field::new("from", FieldKind::Optional),
    Field::new("messaging_service_sid", FieldKind::Optional),
];

/// Check a provider's settings as the API received them; errors name the field
/// (`settings.account_sid`) for a 422.
pub fn validate_settings(settings: &serde_json::Value) -> Result<TwilioSettings, ConfigError> {
    let settings = http::check_fields(settings, FIELDS)?;
    let s: TwilioSettings = http::deserialize(settings)?;
    http::check_http_url("base_url", &s.base_url)?;
    Ok(s)
}

/// The adapter for one Twilio-compatible provider.
pub struct TwilioChannel {
    provider_id: i64,
    settings: TwilioSettings,
    messages_url: String,
    calls_url: String,
    callback_url: String,
    call_callback_url: String,
    public_url: String,
    client: reqwest::Client,
    core: SendCore,
}

impl TwilioChannel {
    pub fn new(
        provider_id: i64,
        settings: TwilioSettings,
        throughput_per_second: Option<u32>,
        ctx: &Context,
        sink: EventSink,
    ) -> Arc<TwilioChannel> {
        let base = settings.base_url.trim_end_matches('/');
        let messages_url = format!("{base}/2010-04-01/Accounts/{}/Messages.json", settings.account_sid);
        let calls_url = format!("{base}/2010-04-01/Accounts/{}/Calls.json", settings.account_sid);
        let public_url = ctx.public_url.trim_end_matches('/').to_string();
        let callback_url = format!("{public_url}/callbacks/twilio/{provider_id}");
        let call_callback_url = call_status_callback_url(&public_url, provider_id);
        Arc::new(TwilioChannel {
            provider_id,
            settings,
            messages_url,
            calls_url,
            callback_url,
            call_callback_url,
            public_url,
            client: http::client(),
            core: SendCore::new(Throughput::new(throughput_per_second), sink),
        })
    }

    /// The URL status callbacks are sent to; the API validates signatures against it.
    pub fn status_callback_url(&self) -> &str {
        &self.callback_url
    }

    pub fn provider_id(&self) -> i64 {
        self.provider_id
    }

    /// The form of `Calls.json`: the provider fetches what to say from sauti's TwiML URL of
    /// this attempt and reports the call's progress to the call-status callback.
    fn call_form(&self, msg: &Outbound) -> Result<Vec<(&'static str, String)>, Failure> {
        // A call needs a number to call from; a messaging service is for messages only.
        let Some(from) = msg.from.as_ref().or(self.settings.from.as_ref()) else {
            return Err(Failure {
                permanent: false,
                provider_fault: true,
                code: None,
                message: "no caller id: the call has no from, the provider no from".to_string(),
                raw_status: None,
            });
        };
        let mut form = vec![
            ("To", msg.to.clone()),
            ("From", from.clone()),
            ("Url", twiml_url(&self.public_url, msg.attempt_id)),
            ("Method", "POST".to_string()),
            ("StatusCallback", self.call_callback_url.clone()),
            ("StatusCallbackMethod", "POST".to_string()),
        ];
        for event in ["initiated", "ringing", "answered", "completed"] {
            form.push(("StatusCallbackEvent", event.to_string()));
        }
        Ok(form)
    }

    fn form(&self, msg: &Outbound) -> Result<Vec<(&'static str, String)>, Failure> {
        let mut form = vec![("To", msg.to.clone())];
        match (
            msg.from.as_ref().or(self.settings.from.as_ref()),
            &self.settings.messaging_service_sid,
        ) {
            (Some(from), _) => form.push(("From", from.clone())),
            (None, Some(mss)) => form.push(("MessagingServiceSid", mss.clone())),
            (None, None) => {
                // This provider is configured without a default sender; another one may have
                // one, so it counts against the provider rather than the message.
                return Err(Failure {
                    permanent: false,
                    provider_fault: true,
                    code: None,
                    message: "no sender: the message has no from, the provider neither from nor \
                              messaging_service_sid"
                        .to_string(),
                    raw_status: None,
                });
            }
        }
        form.push(("Body", msg.body.clone()));
        form.push(("StatusCallback", self.callback_url.clone()));
        if let Some(v) = msg.validity {
            // Twilio takes whole seconds, 1..=36000 (10 h); round up so a short validity is
            // not turned into none at all.
            let secs = v.as_secs() + u64::from(v.subsec_nanos() > 0);
            form.push(("ValidityPeriod", secs.clamp(1, 36_000).to_string()));
        }
        Ok(form)
    }
}

/// What Twilio's answer to a successful create says.
fn accepted(body: &serde_json::Value, our_segments: u32) -> Option<SendOutcome> {
    let sid = body.get("sid")?.as_str()?.to_string();
    // `num_segments` is a string in Twilio's JSON; accept a number as well (Somleng).
    let segments = match body.get("num_segments") {
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        Some(serde_json::Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        _ => None,
    }
    .filter(|&n| n > 0)
    .unwrap_or(our_segments);
    Some(SendOutcome::Accepted {
        remote_id: sid.clone(),
        part_ids: vec![sid],
        segments,
        raw_status: body.get("status").and_then(|s| s.as_str()).map(str::to_string),
        // Twilio echoes the message text; the transmission has it already, and for a
        // one-time code it is the code itself, which nothing in sauti may keep.
        response: {
            let mut r = body.clone();
            if let Some(o) = r.as_object_mut() {
                o.remove("body");
            }
            r
        },
    })
}

/// Twilio's error JSON (`{"code": 21211, "message": "…", "status": 400}`): code and message.
fn error_details(body: &serde_json::Value, text: &str) -> (Option<String>, String) {
    let code = body.get("code").and_then(|c| match c {
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::String(s) => Some(s.clone()),
        _ => None,
    });
    let message = body
        .get("message")
        .and_then(|m| m.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| http::snippet(text));
    (code, message)
}

#[async_trait::async_trait]
impl Channel for TwilioChannel {
    async fn send(&self, msg: Outbound) {
        let voice = msg.channel == ChannelKind::Voice;
        // A call is one unit of throughput, whatever its text.
        let segments = if voice {
            1
        } else {
            sauti_core::sms::analyze(&msg.body).segments
        };
        let Some(slot) = self.core.slot(msg.attempt_id, segments).await else {
            return;
        };
        let form = match if voice { self.call_form(&msg) } else { self.form(&msg) } {
            Ok(f) => f,
            Err(failure) => return slot.report(SendOutcome::Failed(failure)).await,
        };
        let url = if voice { &self.calls_url } else { &self.messages_url };
        let request = self
            .client
            .post(url)
            .basic_auth(&self.settings.account_sid, Some(&self.settings.auth_token))
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form);
        tokio::spawn(async move {
            let outcome = match request.send().await {
                Err(e) => http::transport_outcome(e),
                Ok(resp) => {
                    let status = resp.status();
                    let retry_after = http::retry_after(resp.headers());
                    match resp.text().await {
                        // The status line arrived but the body did not: if it was a success the
                        // provider has the message but we cannot know its sid.
                        Err(e) if status.is_success() => SendOutcome::Ambiguous {
                            reason: format!("HTTP {status}, body unreadable: {}", http::chain(&e.without_url())),
                        },
                        Err(_) => http::status_outcome(status, retry_after, None, String::new()),
                        Ok(text) => {
                            let body: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                            if status.is_success() {
                                accepted(&body, segments).unwrap_or_else(|| SendOutcome::Ambiguous {
                                    reason: format!("HTTP {status} without a sid: {}", http::snippet(&text)),
                                })
                            } else {
                                let (code, message) = error_details(&body, &text);
                                http::status_outcome(status, retry_after, code, message)
                            }
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

/// Twilio's `X-Twilio-Signature`: base64(HMAC-SHA1(auth_token, url + key₁value₁ + …)) with
/// the parameters sorted by key. Like Twilio's own helper (`RequestValidator`), a key that
/// repeats contributes each distinct value once, values sorted.
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (k, v) in params {
        sorted.entry(k).or_default().insert(v);
    }
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(url.as_bytes());
    for (k, values) in sorted {
        for v in values {
            mac.update(k.as_bytes());
            mac.update(v.as_bytes());
        }
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `header` is the right signature for a callback to `url` with `params`.
/// Twilio signs sometimes with, sometimes without the default port, so (like its helper)
/// both forms of the URL are accepted. The comparison takes constant time.
pub fn validate_signature(auth_token: &str, url: &str, params: &[(String, String)], header: &str) -> bool {
    let mut candidates = vec![url.to_string()];
    if let Ok(parsed) = url::Url::parse(url) {
        // `Url` drops a default port on parsing, so `parsed` may already be the URL without it.
        let mut without = parsed.clone();
        let _ = without.set_port(None);
        candidates.push(without.to_string());
        if let (None, Some(p)) = (parsed.port(), parsed.port_or_known_default()) {
            // …and never keeps one, so the form with the default port is put together by hand.
            let (before, after) = (
                &parsed[..url::Position::BeforePort],
                &parsed[url::Position::AfterPort..],
            );
            candidates.push(format!("{before}:{p}{after}"));
        }
    }
    let header = header.trim().as_bytes();
    candidates.iter().fold(false, |ok, u| {
        ok | bool::from(signature(auth_token, u, params).as_bytes().ct_eq(header))
    })
}

/// The callback's parameters as a JSON object (a repeated key becomes an array).
pub(crate) fn params_json(params: &[(String, String)]) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for (k, v) in params {
        match map.get_mut(k) {
            None => {
                map.insert(k.clone(), serde_json::Value::String(v.clone()));
            }
            Some(serde_json::Value::Array(a)) => a.push(serde_json::Value::String(v.clone())),
            Some(existing) => {
                let first = existing.take();
                *existing = serde_json::Value::Array(vec![first, serde_json::Value::String(v.clone())]);
            }
        }
    }
    serde_json::Value::Object(map)
}

/// The first non-empty value of any of `keys`.
pub(crate) fn param<'a>(params: &'a [(String, String)], keys: &[&str]) -> Option<&'a str> {
    keys.iter().find_map(|k| {
        params
            .iter()
            .find(|(pk, v)| pk == k && !v.is_empty())
            .map(|(_, v)| v.as_str())
    })
}

/// A status callback (`MessageSid`, `MessageStatus`, `ErrorCode`) as a receipt. `None`
/// when it names no message or has a status we do not know.
pub fn parse_status_callback(params: &[(String, String)]) -> Option<Receipt> {
    let sid = param(params, &["MessageSid", "SmsSid"])?;
    let raw_status = param(params, &["MessageStatus", "SmsStatus"])?;
    let status = match raw_status.to_ascii_lowercase().as_str() {
        "delivered" => ReceiptStatus::Delivered,
        "undelivered" | "failed" => ReceiptStatus::Undelivered,
        "queued" | "accepted" | "scheduled" | "sending" | "sent" | "receiving" | "received" => {
            ReceiptStatus::Intermediate
        }
        _ => return None,
    };
    Some(Receipt {
        remote_id: sid.to_string(),
        attempt_id: None,
        status,
        raw_status: raw_status.to_string(),
        error_code: param(params, &["ErrorCode"]).map(str::to_string),
        done_at: None,
        raw: params_json(params),
    })
}

/// Twilio's incoming-message webhook (`From`, `To`, `Body`, `MessageSid`).
pub fn parse_inbound(params: &[(String, String)]) -> Option<Inbound> {
    Some(Inbound {
        from: param(params, &["From"])?.to_string(),
        to: param(params, &["To"])?.to_string(),
        // A message may have no text (MMS with media only).
        body: params
            .iter()
            .find(|(k, _)| k == "Body")
            .map(|(_, v)| v.clone())
            .unwrap_or_default(),
        remote_id: param(params, &["MessageSid", "SmsSid"]).map(str::to_string),
        raw: params_json(params),
    })
}

/// sauti's TwiML URL for one call (one attempt): the provider fetches it when the call is
/// answered. `public_url` without a trailing slash.
pub fn twiml_url(public_url: &str, attempt_id: i64) -> String {
    format!("{public_url}/twiml/calls/{attempt_id}")
}

/// Where a provider's call-status callbacks go.
pub fn call_status_callback_url(public_url: &str, provider_id: i64) -> String {
    format!("{public_url}/callbacks/twilio/{provider_id}/calls")
}

/// A call-status callback, read.
#[derive(Debug, Clone)]
pub struct CallReport {
    /// `CallSid`: the attempt's remote id.
    pub call_sid: String,
    pub status: sauti_core::calls::CallStatus,
    /// `CallStatus` as sent.
    pub raw_status: String,
    /// `CallDuration` (seconds), on the final callback.
    pub duration_seconds: Option<i64>,
    /// `Direction` (`outbound-api`, `inbound`).
    pub direction: Option<String>,
    pub error_code: Option<String>,
    /// The callback's parameters.
    pub raw: serde_json::Value,
}

/// A call-status callback (`CallSid`, `CallStatus`, `CallDuration`). `None` when it names
/// no call or has a status Twilio does not use.
pub fn parse_call_status(params: &[(String, String)]) -> Option<CallReport> {
    let call_sid = param(params, &["CallSid"])?;
    let raw_status = param(params, &["CallStatus"])?;
    let status = sauti_core::calls::CallStatus::from_twilio(raw_status)?;
    Some(CallReport {
        call_sid: call_sid.to_string(),
        status,
        raw_status: raw_status.to_string(),
        duration_seconds: param(params, &["CallDuration", "Duration"]).and_then(|d| d.trim().parse().ok()),
        direction: param(params, &["Direction"]).map(str::to_string),
        error_code: param(params, &["ErrorCode", "SipResponseCode"]).map(str::to_string),
        raw: params_json(params),
    })
}

/// What the one-request-per-message adapters (this one, Kannel, SMTP) share.
pub(crate) mod http {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use reqwest::StatusCode;
    use reqwest::header::HeaderMap;
    use serde::de::DeserializeOwned;
    use tokio::sync::{OwnedSemaphorePermit, Semaphore};

    use crate::limit::Throughput;
    use crate::{ConfigError, Event, EventSink, Failure, Health, SendOutcome};

    /// Requests in flight at once per provider; `send` waits for a free one.
    pub const MAX_IN_FLIGHT: u32 = 64;
    /// After this many provider faults in a row the adapter reports itself down…
    const FAULTS_BEFORE_DOWN: u32 = 5;
    /// …for this long, then up again so routing tries it once more.
    const DOWN_FOR: Duration = Duration::from_secs(30);
    /// reqwest's request timeout is 30 s, so every request ends within this.
    const SHUTDOWN_WAIT: Duration = Duration::from_secs(35);

    #[derive(Default)]
    struct Faults {
        in_a_row: u32,
        down_until: Option<Instant>,
    }

    /// Concurrency, throughput, health and outcome reporting for an adapter that sends
    /// one request per message (HTTP, and SMTP with a connection per message).
    pub struct SendCore {
        permits: std::sync::Arc<Semaphore>,
        throughput: Throughput,
        sink: EventSink,
        faults: std::sync::Arc<Mutex<Faults>>,
        stopping: AtomicBool,
    }

    /// One message's claim on a request slot; reporting the outcome frees it.
    pub struct Slot {
        attempt_id: i64,
        sink: EventSink,
        faults: std::sync::Arc<Mutex<Faults>>,
        _permit: OwnedSemaphorePermit,
    }

    impl Slot {
        pub async fn report(self, outcome: SendOutcome) {
            {
                let mut f = self.faults.lock().unwrap_or_else(|e| e.into_inner());
                match &outcome {
                    SendOutcome::Accepted { .. } => *f = Faults::default(),
                    SendOutcome::Failed(Failure {
                        provider_fault: true, ..
                    }) => {
                        f.in_a_row += 1;
                        if f.in_a_row >= FAULTS_BEFORE_DOWN {
                            f.down_until = Some(Instant::now() + DOWN_FOR);
                        }
                    }
                    _ => {}
                }
            }
            // A closed sink means the engine is gone; nobody is left to tell.
            let _ = self
                .sink
                .send(Event::Outcome {
                    attempt_id: self.attempt_id,
                    outcome,
                })
                .await;
        }
    }

    impl SendCore {
        pub fn new(throughput: Throughput, sink: EventSink) -> Self {
            SendCore {
                permits: std::sync::Arc::new(Semaphore::new(MAX_IN_FLIGHT as usize)),
                throughput,
                sink,
                faults: Default::default(),
                stopping: AtomicBool::new(false),
            }
        }

        /// Wait for a request slot and for `segments` of throughput. `None` when the adapter
        /// is stopping; the message's `NotSent` has then been reported.
        pub async fn slot(&self, attempt_id: i64, segments: u32) -> Option<Slot> {
            let permit = match self.stopping.load(Ordering::SeqCst) {
                true => None,
                false => self.permits.clone().acquire_owned().await.ok(),
            };
            // Checked again: shutdown may have begun while this send waited for the permit.
            let stopping = self.stopping.load(Ordering::SeqCst);
            match permit {
                Some(permit) if !stopping => {
                    self.throughput.acquire(segments).await;
                    Some(Slot {
                        attempt_id,
                        sink: self.sink.clone(),
                        faults: self.faults.clone(),
                        _permit: permit,
                    })
                }
                _ => {
                    let _ = self
                        .sink
                        .send(Event::Outcome {
                            attempt_id,
                            outcome: SendOutcome::NotSent {
                                reason: "the adapter is shutting down".to_string(),
                            },
                        })
                        .await;
                    None
                }
            }
        }

        pub fn health(&self) -> Health {
            let f = self.faults.lock().unwrap_or_else(|e| e.into_inner());
            match f.down_until {
                Some(t) if Instant::now() < t => Health::Down,
                _ => Health::Up,
            }
        }

        /// Refuse new sends and wait (bounded) until every request in flight has reported.
        pub async fn shutdown(&self) {
            self.stopping.store(true, Ordering::SeqCst);
            // Each in-flight request holds a permit; holding them all means none is left.
            if let Ok(Ok(all)) = tokio::time::timeout(SHUTDOWN_WAIT, self.permits.acquire_many(MAX_IN_FLIGHT)).await {
                drop(all);
            }
        }
    }

    /// The one client a channel uses: connect timeout 5 s, whole request 30 s.
    pub fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            // A provider API that redirects is misconfigured; following it would turn a POST
            // into a GET (and replay Kannel's credentials elsewhere).
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("sauti/", env!("CARGO_PKG_VERSION")))
            .build()
            // Only a broken TLS backend fails here, which no configuration can fix.
            .expect("the HTTP client builds")
    }

    /// A request that got no HTTP answer. The URL is left out of the message: Kannel's
    /// carries the password.
    pub fn transport_outcome(e: reqwest::Error) -> SendOutcome {
        let e = e.without_url();
        if e.is_connect() || e.is_builder() {
            // Refused, DNS, TLS handshake, connect timeout: nothing of the request was sent.
            SendOutcome::Failed(Failure {
                permanent: false,
                provider_fault: true,
                code: None,
                message: format!("could not reach the provider: {}", chain(&e)),
                raw_status: None,
            })
        } else {
            // Timed out or the connection dropped after the request went out: the provider
            // may or may not have taken it.
            SendOutcome::Ambiguous { reason: chain(&e) }
        }
    }

    /// The outcome of a non-success HTTP answer.
    pub fn status_outcome(
        status: StatusCode,
        retry_after: Option<Duration>,
        code: Option<String>,
        message: String,
    ) -> SendOutcome {
        let raw_status = Some(status.as_u16().to_string());
        if status == StatusCode::TOO_MANY_REQUESTS {
            return SendOutcome::Throttled {
                retry_after,
                raw_status,
            };
        }
        let provider_fault = status.is_server_error()
            || status == StatusCode::UNAUTHORIZED
            || status == StatusCode::FORBIDDEN
            || !status.is_client_error();
        SendOutcome::Failed(Failure {
            // Wrong credentials or a provider in trouble: another provider, or a later try,
            // may work. Any other 4xx is about this message.
            permanent: !provider_fault,
            provider_fault,
            code,
            message,
            raw_status,
        })
    }

    /// `Retry-After` in seconds or as an HTTP date.
    pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
        let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
        if let Ok(secs) = v.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
        (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().ok()
    }

    /// An error with its causes, which is where reqwest says what actually happened.
    pub fn chain(e: &dyn std::error::Error) -> String {
        let mut s = e.to_string();
        let mut source = e.source();
        while let Some(cause) = source {
            s.push_str(": ");
            s.push_str(&cause.to_string());
            source = cause.source();
        }
        s
    }

    /// The start of a response body, for error messages.
    pub fn snippet(text: &str) -> String {
        let t = text.trim();
        match t.char_indices().nth(200) {
            Some((i, _)) => format!("{}…", &t[..i]),
            None => t.to_string(),
        }
    }

    #[derive(Clone, Copy)]
    pub enum FieldKind {
        /// A non-blank string.
        Required,
        /// A string or null; blank counts as absent.
        Optional,
        /// A non-negative integer up to this.
        Integer(u64),
        /// A boolean.
        Bool,
    }

    pub struct Field {
        pub name: &'static str,
        pub kind: FieldKind,
    }

    impl Field {
        pub const fn new(name: &'static str, kind: FieldKind) -> Self {
            Field { name, kind }
        }
    }

    pub fn invalid(field: &str, message: &str) -> ConfigError {
        ConfigError::Invalid {
            field: format!("settings.{field}"),
            message: message.to_string(),
        }
    }

    /// Check names and types field by field, so an error can say which field is wrong
    /// (serde's own errors do not), and drop blank optional strings.
    pub fn check_fields(settings: &serde_json::Value, fields: &[Field]) -> Result<serde_json::Value, ConfigError> {
        let serde_json::Value::Object(map) = settings else {
            return Err(ConfigError::Invalid {
                field: "settings".to_string(),
                message: "is invalid".to_string(),
            });
        };
        if let Some(unknown) = map.keys().find(|k| !fields.iter().any(|f| f.name == k.as_str())) {
            return Err(invalid(unknown, "is invalid"));
        }
        let mut out = serde_json::Map::new();
        for f in fields {
            let v = map.get(f.name).unwrap_or(&serde_json::Value::Null);
            match (f.kind, v) {
                (FieldKind::Required, serde_json::Value::String(s)) if !s.trim().is_empty() => {}
                (FieldKind::Required, serde_json::Value::Null | serde_json::Value::String(_)) => {
                    return Err(invalid(f.name, "can't be blank"));
                }
                (FieldKind::Optional, serde_json::Value::String(s)) if s.trim().is_empty() => continue,
                (FieldKind::Optional | FieldKind::Integer(_) | FieldKind::Bool, serde_json::Value::Null) => continue,
                (FieldKind::Optional, serde_json::Value::String(_)) => {}
                (FieldKind::Integer(max), serde_json::Value::Number(n)) if n.as_u64().is_some_and(|n| n <= max) => {}
                (FieldKind::Bool, serde_json::Value::Bool(_)) => {}
                _ => return Err(invalid(f.name, "is invalid")),
            }
            out.insert(f.name.to_string(), v.clone());
        }
        Ok(serde_json::Value::Object(out))
    }

    /// Deserialise settings [`check_fields`] passed; what is left to fail is not about one
    /// field.
    pub fn deserialize<T: DeserializeOwned>(checked: serde_json::Value) -> Result<T, ConfigError> {
        serde_json::from_value(checked).map_err(|_| ConfigError::Invalid {
            field: "settings".to_string(),
            message: "is invalid".to_string(),
        })
    }

    /// An absolute http(s) URL.
    pub fn check_http_url(field: &str, value: &str) -> Result<url::Url, ConfigError> {
        match url::Url::parse(value) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(u),
            _ => Err(invalid(field, "is invalid")),
        }
    }
}
