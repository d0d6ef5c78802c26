//! The sandbox provider: accepts every message and reports it delivered after a delay,
//! without sending anything anywhere. It is what an account without providers uses, so
//! `sauti serve` works with zero set-up, and its documented numbers fail deterministically
//! for tests (`docs/decisions/0010-delivery-engine.md` lists them).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;

use crate::{Channel, ConfigError, Event, EventSink, Failure, Health, Outbound, Receipt, ReceiptStatus, SendOutcome};

/// Numbers with a fixed fate in the sandbox: Twilio's test range (+1 500 555 xxxx), valid
/// numbers that reach no one.
pub mod numbers {
    /// Refused at once as an invalid number (permanent, code 21211).
    pub const INVALID: &str = "+15005550001";
    /// Accepted, then a receipt says undelivered.
    pub const UNDELIVERED: &str = "+15005550002";
    /// Throttled on the first try of every attempt, accepted on the next.
    pub const THROTTLED_ONCE: &str = "+15005550003";
    /// Every attempt fails temporarily (so retries run out).
    pub const TEMPORARY_FAILURE: &str = "+15005550004";
    /// Every attempt fails with a provider fault (the next attempt prefers another
    /// provider).
    pub const PROVIDER_FAULT: &str = "+15005550005";
    /// Accepted, and no receipt ever comes.
    pub const NO_RECEIPT: &str = "+15005550006";
    /// Email addresses at this domain bounce (receipt undelivered).
    pub const BOUNCE_DOMAIN: &str = "@bounce.sandbox.sauti";
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxSettings {
    /// How long after accepting a message its delivery receipt comes.
    #[serde(default = "default_delay")]
    pub delivery_delay_ms: u64,
}

fn default_delay() -> u64 {
    500
}

impl Default for SandboxSettings {
    fn default() -> Self {
        Self {
            delivery_delay_ms: default_delay(),
        }
    }
}

pub fn validate_settings(settings: &serde_json::Value) -> Result<SandboxSettings, ConfigError> {
    serde_json::from_value(settings.clone()).map_err(|e| ConfigError::Invalid {
        field: "settings".into(),
        message: e.to_string(),
    })
}

pub struct SandboxChannel {
    provider_id: i64,
    settings: SandboxSettings,
    sink: EventSink,
    next_id: AtomicU64,
    /// Transmissions already throttled once (for `THROTTLED_ONCE`).
    throttled: Mutex<HashMap<i64, ()>>,
}

impl SandboxChannel {
    /// `provider_id` 0 is the built-in default sandbox (no provider row).
    pub fn new(provider_id: i64, settings: SandboxSettings, sink: EventSink) -> std::sync::Arc<SandboxChannel> {
        std::sync::Arc::new(SandboxChannel {
            provider_id,
            settings,
            sink,
            next_id: AtomicU64::new(rand::random::<u32>() as u64),
            throttled: Mutex::new(HashMap::new()),
        })
    }

    fn outcome(&self, m: &Outbound) -> (SendOutcome, Option<ReceiptStatus>) {
        let fail = |permanent: bool, provider_fault: bool, code: &str, message: &str| {
            SendOutcome::Failed(Failure {
                permanent,
                provider_fault,
                code: Some(code.into()),
                message: message.into(),
                raw_status: Some("failed".into()),
            })
        };
        match m.to.as_str() {
            numbers::INVALID => return (fail(true, false, "21211", "invalid destination number"), None),
            numbers::TEMPORARY_FAILURE => return (fail(false, false, "30001", "queue overflow (sandbox)"), None),
            numbers::PROVIDER_FAULT => return (fail(false, true, "503", "provider unavailable (sandbox)"), None),
            numbers::THROTTLED_ONCE => {
                let mut t = self.throttled.lock().unwrap_or_else(|e| e.into_inner());
                if t.insert(m.transmission_id, ()).is_none() {
                    return (
                        SendOutcome::Throttled {
                            retry_after: Some(Duration::from_millis(50)),
                            raw_status: Some("throttled".into()),
                        },
                        None,
                    );
                }
                t.remove(&m.transmission_id);
            }
            _ => {}
        }
        let receipt = if m.to == numbers::NO_RECEIPT || !m.want_receipt {
            None
        } else if m.to == numbers::UNDELIVERED || m.to.ends_with(numbers::BOUNCE_DOMAIN) {
            Some(ReceiptStatus::Undelivered)
        } else {
            Some(ReceiptStatus::Delivered)
        };
        let id = format!("SB{:016x}", self.next_id.fetch_add(1, Ordering::Relaxed));
        let segments = match m.channel {
            crate::ChannelKind::Sms => sauti_core::sms::analyze(&m.body).segments,
            _ => 1,
        };
        (
            SendOutcome::Accepted {
                remote_id: id.clone(),
                part_ids: vec![id],
                segments,
                raw_status: Some("accepted".into()),
                response: serde_json::json!({"sandbox": true}),
            },
            receipt,
        )
    }
}

#[async_trait::async_trait]
impl Channel for SandboxChannel {
    async fn send(&self, message: Outbound) {
        let (outcome, receipt) = self.outcome(&message);
        let remote_id = match &outcome {
            SendOutcome::Accepted { remote_id, .. } => Some(remote_id.clone()),
            _ => None,
        };
        let _ = self
            .sink
            .send(Event::Outcome {
                attempt_id: message.attempt_id,
                outcome,
            })
            .await;
        if let (Some(status), Some(remote_id)) = (receipt, remote_id) {
            let sink = self.sink.clone();
            let delay = Duration::from_millis(self.settings.delivery_delay_ms);
            let provider_id = self.provider_id;
            let attempt_id = message.attempt_id;
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let raw_status = if status == ReceiptStatus::Delivered {
                    "delivered"
                } else {
                    "undelivered"
                };
                let receipt = Receipt {
                    remote_id,
                    attempt_id: Some(attempt_id),
                    status,
                    raw_status: raw_status.into(),
                    error_code: (status == ReceiptStatus::Undelivered).then(|| "30003".into()),
                    done_at: Some(chrono::Utc::now()),
                    raw: serde_json::json!({"sandbox": true, "status": raw_status}),
                };
                let _ = sink
                    .send(Event::Receipt {
                        provider_id,
                        receipt,
                        ack: None,
                    })
                    .await;
            });
        }
    }

    fn health(&self) -> Health {
        Health::Up
    }

    async fn shutdown(&self) {}
}

#[cfg(test)]
mod tests {
    use super::numbers::*;

    #[test]
    fn sandbox_numbers_are_valid_numbers() {
        for n in [
            INVALID,
            UNDELIVERED,
            THROTTLED_ONCE,
            TEMPORARY_FAILURE,
            PROVIDER_FAULT,
            NO_RECEIPT,
        ] {
            let m = sauti_core::msisdn::Msisdn::parse(n, None).unwrap_or_else(|e| panic!("{n}: {e}"));
            assert_eq!(m.as_str(), n);
        }
    }
}
