//! Outbound webhooks, signed per Standard Webhooks: `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, keyed with the
//! base64-decoded part of the endpoint's `whsec_` secret.
//!
//! A delivery is retried on any answer but 2xx, with back-off and jitter over about a day
//! (the Standard Webhooks schedule); `Retry-After` is honoured when it asks for longer; a
//! `410 Gone` disables the endpoint. Every try is recorded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::Rng;
use sauti_core::clock;
use sauti_store::{Store, WebhookDelivery, WebhookEndpoint};
use sha2::Sha256;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Waits before each retry (after the first try): 5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
/// 10 h — about 28 hours in all, eight tries.
const SCHEDULE: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// The `webhook-signature` value for a message.
pub fn sign(secret: &str, message_id: &str, timestamp: i64, body: &str) -> String {
    let key = secret.strip_prefix("whsec_").unwrap_or(secret);
    let key = base64::engine::general_purpose::STANDARD
        .decode(key)
        .unwrap_or_else(|_| key.as_bytes().to_vec());
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes keys of any length");
    mac.update(format!("{message_id}.{timestamp}.{body}").as_bytes());
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

pub(crate) async fn deliver_loop(
    store: Store,
    concurrency: usize,
    timeout: Duration,
    poll: Duration,
    stop: CancellationToken,
) {
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a reqwest client builds");
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    loop {
        let now = clock::now();
        let lease = now + chrono::Duration::from_std(timeout * 2).unwrap_or(chrono::Duration::seconds(60));
        let due = match store.claim_webhook_deliveries(now, lease, concurrency as u32 * 2).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "claiming webhook deliveries failed");
                vec![]
            }
        };
        let busy = !due.is_empty();
        for (delivery, endpoint) in due {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let (store, client) = (store.clone(), client.clone());
            tokio::spawn(async move {
                deliver(&store, &client, &delivery, &endpoint).await;
                drop(permit);
            });
        }
        if !busy {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(poll) => {}
            }
        } else if stop.is_cancelled() {
            break;
        }
    }
}

async fn deliver(store: &Store, client: &reqwest::Client, d: &WebhookDelivery, e: &WebhookEndpoint) {
    let timestamp = chrono::Utc::now().timestamp();
    let signature = sign(&e.secret, &d.message_id, timestamp, &d.payload);
    let started = Instant::now();
    let result = client
        .post(&e.url)
        .header("content-type", "application/json")
        .header("user-agent", "sauti-webhooks/1")
        .header("webhook-id", &d.message_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(d.payload.clone())
        .send()
        .await;
    let (code, error, body, retry_after) = match result {
        Ok(resp) => {
            let code = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let mut text = resp.text().await.unwrap_or_default();
            text.truncate(1024);
            (Some(i64::from(code)), None, Some(text), retry_after)
        }
        Err(err) => (None, Some(err.without_url().to_string()), None, None),
    };
    let duration_ms = started.elapsed().as_millis() as i64;
    let ok = code.is_some_and(|c| (200..300).contains(&c));
    let gone = code == Some(410);
    let tries_done = d.attempts as usize + 1;
    let next = if ok || gone {
        None
    } else {
        SCHEDULE.get(tries_done - 1).map(|wait| {
            // ±20 % jitter, so endpoints coming back up are not hit by every retry at once.
            let jitter = rand::rng().random_range(0.8..1.2);
            let wait = wait.mul_f64(jitter).max(retry_after.unwrap_or_default());
            clock::now() + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(1))
        })
    };
    let error = error.or_else(|| (!ok).then(|| format!("HTTP {}", code.unwrap_or(0))));
    let disable = gone.then_some("the endpoint answered 410 Gone");
    if let Err(err) = store
        .record_webhook_try(
            d,
            code,
            error.as_deref(),
            body.as_deref(),
            duration_ms,
            ok,
            next,
            disable,
        )
        .await
    {
        tracing::warn!(error = %err, delivery_id = d.id, "recording a webhook try failed; it will be retried when its lease ends");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn signs_like_the_standard_webhooks_reference() {
        // The reference example of the Standard Webhooks specification.
        let sig = super::sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
