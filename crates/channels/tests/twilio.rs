//! The Twilio adapter against `peers/fake_twilio.py`, which signs its callbacks with
//! Twilio's official helper library.

mod peers;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use peers::{get, next_event, next_hit, sms};
use sauti_channels::twilio::{self, TwilioChannel, TwilioSettings};
use sauti_channels::{Channel, Context, Event, Failure, Health, ReceiptStatus, SendOutcome};
use serde_json::json;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "s3cret-token";
const WAIT: Duration = Duration::from_secs(10);

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Twilio's `RequestValidator.compute_signature` for each (token, url, params) case.
async fn reference_signatures(cases: &serde_json::Value) -> Vec<String> {
    // A dict with `getall`, which the helper uses for repeated keys (as with Flask's MultiDict).
    let script = r#"
import json, sys
from twilio.request_validator import RequestValidator
class Multi(dict):
    def getall(self, k):
        return self[k]
out = []
for token, url, pairs in json.loads(sys.argv[1]):
    m = Multi()
    for k, v in pairs:
        m.setdefault(k, []).append(v)
    out.append(RequestValidator(token).compute_signature(url, m))
print(json.dumps(out))
"#;
    let out = tokio::time::timeout(
        WAIT,
        Command::new(peers::python())
            .arg("-c")
            .arg(script)
            .arg(cases.to_string())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("python in time")
    .expect("run python");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("signatures JSON")
}

/// Auth token, URL, parameters.
type Case = (&'static str, &'static str, Vec<(String, String)>);

#[tokio::test]
async fn signature_matches_twilio_helper() {
    let cases: Vec<Case> = vec![
        (
            "12345",
            "https://mycompany.com/myapp.php?foo=1&bar=2",
            pairs(&[
                ("CallSid", "CA1234567890ABCDE"),
                ("Caller", "+12349013030"),
                ("Digits", "1234"),
                ("From", "+12349013030"),
                ("To", "+18005551212"),
            ]),
        ),
        ("tok", "http://127.0.0.1:8080/callbacks/twilio/7", vec![]),
        (
            "tök€n",
            "https://sauti.example/callbacks/twilio/1",
            pairs(&[
                ("Body", "Habari yako? ✓ ünïcödé 😀"),
                ("From", "+254700000001"),
                ("MessageSid", "SM0123"),
            ]),
        ),
        // Repeated keys: each distinct value once, sorted; key order sorted by code point.
        (
            "tok",
            "https://sauti.example/cb",
            pairs(&[
                ("b", "2"),
                ("a", "z"),
                ("a", "y"),
                ("a", "z"),
                ("B", "upper"),
                ("é", "accent"),
                ("empty", ""),
            ]),
        ),
    ];
    let json_cases = serde_json::Value::Array(
        cases
            .iter()
            .map(|(t, u, p)| json!([t, u, p.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>()]))
            .collect(),
    );
    let expected = reference_signatures(&json_cases).await;
    for ((token, url, params), want) in cases.iter().zip(&expected) {
        assert_eq!(
            &twilio::signature(token, url, params),
            want,
            "signature of {url} {params:?}"
        );
        assert!(twilio::validate_signature(token, url, params, want));
    }

    let (token, url, params) = &cases[2];
    let sig = &expected[2];
    let mut tampered = params.clone();
    tampered[0].1.push('!');
    assert!(
        !twilio::validate_signature(token, url, &tampered, sig),
        "tampered param"
    );
    assert!(
        !twilio::validate_signature(token, "https://sauti.example/callbacks/twilio/2", params, sig),
        "other url"
    );
    assert!(!twilio::validate_signature("other", url, params, sig), "other token");
    assert!(!twilio::validate_signature(token, url, params, ""), "empty header");
    // Twilio may sign with the default port spelled out; the helper accepts both forms.
    let with_port = "https://sauti.example:443/callbacks/twilio/1";
    let sig_port = twilio::signature(token, with_port, params);
    assert!(twilio::validate_signature(token, url, params, &sig_port));
    assert!(twilio::validate_signature(token, with_port, params, sig));
}

#[test]
fn settings_validation_names_fields_and_hides_the_token() {
    let ok = twilio::validate_settings(&json!({"account_sid": SID, "auth_token": TOKEN, "from": ""})).unwrap();
    assert_eq!(ok.base_url, "https://api.twilio.com");
    assert_eq!(ok.from, None, "blank optional strings count as absent");
    assert!(
        !format!("{ok:?}").contains(TOKEN),
        "auth_token must not appear in Debug"
    );

    let err = |v: serde_json::Value| match twilio::validate_settings(&v) {
        Err(sauti_channels::ConfigError::Invalid { field, message }) => format!("{field} {message}"),
        Ok(s) => panic!("accepted {s:?}"),
    };
    assert_eq!(err(json!({"auth_token": TOKEN})), "settings.account_sid can't be blank");
    assert_eq!(
        err(json!({"account_sid": SID, "auth_token": " "})),
        "settings.auth_token can't be blank"
    );
    assert_eq!(
        err(json!({"account_sid": SID, "auth_token": TOKEN, "sender": "x"})),
        "settings.sender is invalid"
    );
    assert_eq!(
        err(json!({"account_sid": SID, "auth_token": TOKEN, "from": 5})),
        "settings.from is invalid"
    );
    assert_eq!(
        err(json!({"account_sid": SID, "auth_token": TOKEN, "base_url": "ftp://x"})),
        "settings.base_url is invalid"
    );
    assert_eq!(err(json!("x")), "settings is invalid");
}

#[test]
fn parses_status_callbacks_and_inbound() {
    let r = twilio::parse_status_callback(&pairs(&[
        ("SmsSid", "SM1"),
        ("SmsStatus", "undelivered"),
        ("ErrorCode", "30003"),
    ]))
    .unwrap();
    assert_eq!((r.remote_id.as_str(), r.status), ("SM1", ReceiptStatus::Undelivered));
    assert_eq!(r.error_code.as_deref(), Some("30003"));
    assert_eq!(r.raw["SmsStatus"], "undelivered");
    for (word, status) in [
        ("delivered", ReceiptStatus::Delivered),
        ("failed", ReceiptStatus::Undelivered),
        ("queued", ReceiptStatus::Intermediate),
        ("sent", ReceiptStatus::Intermediate),
        ("accepted", ReceiptStatus::Intermediate),
    ] {
        let r = twilio::parse_status_callback(&pairs(&[("MessageSid", "SM2"), ("MessageStatus", word)])).unwrap();
        assert_eq!(r.status, status, "{word}");
        assert_eq!(r.error_code, None);
    }
    assert!(twilio::parse_status_callback(&pairs(&[("MessageStatus", "sent")])).is_none());
    assert!(twilio::parse_status_callback(&pairs(&[("MessageSid", "SM3"), ("MessageStatus", "bogus")])).is_none());

    let m = twilio::parse_inbound(&pairs(&[
        ("MessageSid", "SM9"),
        ("From", "+254700000001"),
        ("To", "+15005550006"),
        ("Body", "Habari ✓"),
    ]))
    .unwrap();
    assert_eq!(
        (m.from.as_str(), m.to.as_str(), m.body.as_str()),
        ("+254700000001", "+15005550006", "Habari ✓")
    );
    assert_eq!(m.remote_id.as_deref(), Some("SM9"));
    assert!(twilio::parse_inbound(&pairs(&[("Body", "x")])).is_none());
}

struct Fake {
    _child: Child,
    base_url: String,
}

async fn fake_twilio() -> Fake {
    let script = peers::require(peers::repo_root().join("peers/fake_twilio.py"));
    let mut child = peers::spawn(
        Command::new(peers::python_with("twilio"))
            .arg(script)
            .args(["--port", "0", "--account-sid", SID, "--auth-token", TOKEN])
            .env("FAKE_TWILIO_CALLBACK_DELAY", "0.05")
            .stdout(Stdio::piped()),
    );
    let line = peers::wait_for_line(&mut child, "listening on", WAIT).await;
    let addr = line.rsplit(' ').next().unwrap().to_string();
    Fake {
        _child: child,
        base_url: format!("http://{addr}"),
    }
}

fn channel(base_url: &str, token: &str, public_url: &str) -> (Arc<TwilioChannel>, mpsc::Receiver<Event>) {
    let settings: TwilioSettings = twilio::validate_settings(&json!({
        "account_sid": SID,
        "auth_token": token,
        "base_url": base_url,
        "from": "+15005550006",
    }))
    .unwrap();
    let (tx, rx) = mpsc::channel(64);
    let ctx = Context {
        public_url: public_url.to_string(),
        secret_key: std::sync::Arc::new(sauti_core::secret::ServerKey::random()),
    };
    (TwilioChannel::new(7, settings, Some(10), &ctx, tx), rx)
}

async fn outcome(events: &mut mpsc::Receiver<Event>, attempt: i64) -> SendOutcome {
    match next_event(events, WAIT).await {
        Event::Outcome { attempt_id, outcome } => {
            assert_eq!(attempt_id, attempt);
            outcome
        }
        other => panic!("expected an outcome, got {other:?}"),
    }
}

#[tokio::test]
async fn sends_and_receives_signed_callbacks() {
    let fake = fake_twilio().await;
    let (public_url, mut hits) = peers::callback_server().await;
    let (ch, mut events) = channel(&fake.base_url, TOKEN, &public_url);

    let mut first = sms(1, "+254700000001", None, "Habari ✓");
    first.validity = Some(Duration::from_millis(3_600_500));
    ch.send(first).await;
    let sid = match outcome(&mut events, 1).await {
        SendOutcome::Accepted {
            remote_id,
            part_ids,
            segments,
            raw_status,
            response,
        } => {
            assert!(remote_id.starts_with("SM") && remote_id.len() == 34, "{remote_id}");
            assert_eq!(part_ids, vec![remote_id.clone()]);
            assert_eq!(segments, 1);
            assert_eq!(raw_status.as_deref(), Some("queued"));
            assert_eq!(response["sid"], remote_id.as_str());
            remote_id
        }
        other => panic!("expected Accepted, got {other:?}"),
    };

    // What the fake received.
    let log: serde_json::Value = reqwest::get(format!("{}/_requests", fake.base_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let form = &log[0]["form"];
    assert_eq!(log[0]["path"], format!("/2010-04-01/Accounts/{SID}/Messages.json"));
    assert_eq!(form["To"], "+254700000001");
    assert_eq!(form["From"], "+15005550006");
    assert_eq!(form["Body"], "Habari ✓");
    assert_eq!(form["StatusCallback"], format!("{public_url}/callbacks/twilio/7"));
    assert_eq!(form["ValidityPeriod"], "3601", "whole seconds, rounded up");

    for want in [ReceiptStatus::Intermediate, ReceiptStatus::Delivered] {
        let hit = next_hit(&mut hits, WAIT).await;
        assert_eq!(hit.path, "/callbacks/twilio/7");
        let header = hit.headers.get("x-twilio-signature").expect("signed").to_str().unwrap();
        assert!(
            twilio::validate_signature(TOKEN, &hit.url, &hit.params, header),
            "signature of {hit:?}"
        );
        assert!(!twilio::validate_signature("wrong", &hit.url, &hit.params, header));
        let receipt = twilio::parse_status_callback(&hit.params).expect("a receipt");
        assert_eq!(receipt.remote_id, sid);
        assert_eq!(receipt.status, want, "{receipt:?}");
        assert_eq!(receipt.error_code, None);
    }

    // The message's own sender wins over the default, and a long body's segments come
    // from Twilio's answer.
    ch.send(sms(2, "+15005550002", Some("SAUTI"), &"a".repeat(200))).await;
    let sid = match outcome(&mut events, 2).await {
        SendOutcome::Accepted {
            remote_id, segments, ..
        } => {
            assert_eq!(segments, 2);
            remote_id
        }
        other => panic!("expected Accepted, got {other:?}"),
    };
    let statuses: Vec<_> = [next_hit(&mut hits, WAIT).await, next_hit(&mut hits, WAIT).await]
        .iter()
        .map(|h| {
            let header = h.headers.get("x-twilio-signature").unwrap().to_str().unwrap();
            assert!(twilio::validate_signature(TOKEN, &h.url, &h.params, header));
            assert_eq!(get(&h.params, "From"), Some("SAUTI"));
            twilio::parse_status_callback(&h.params).unwrap()
        })
        .collect();
    assert!(statuses.iter().all(|r| r.remote_id == sid));
    assert_eq!(statuses[0].status, ReceiptStatus::Intermediate);
    assert_eq!(statuses[1].status, ReceiptStatus::Undelivered);
    assert_eq!(statuses[1].error_code.as_deref(), Some("30003"));
    ch.shutdown().await;
}

#[tokio::test]
async fn provider_errors_map_to_outcomes() {
    let fake = fake_twilio().await;
    let (public_url, _hits) = peers::callback_server().await;
    let (ch, mut events) = channel(&fake.base_url, TOKEN, &public_url);

    ch.send(sms(10, "+15005550001", None, "x")).await;
    match outcome(&mut events, 10).await {
        SendOutcome::Failed(Failure {
            permanent: true,
            provider_fault: false,
            code,
            message,
            ..
        }) => {
            assert_eq!(code.as_deref(), Some("21211"));
            assert!(message.contains("not a valid phone number"), "{message}");
        }
        other => panic!("expected a permanent failure, got {other:?}"),
    }

    ch.send(sms(11, "+15005550429", None, "x")).await;
    match outcome(&mut events, 11).await {
        SendOutcome::Throttled {
            retry_after,
            raw_status,
        } => {
            assert_eq!(retry_after, Some(Duration::from_secs(1)));
            assert_eq!(raw_status.as_deref(), Some("429"));
        }
        other => panic!("expected Throttled, got {other:?}"),
    }

    ch.send(sms(12, "+15005550500", None, "x")).await;
    match outcome(&mut events, 12).await {
        SendOutcome::Failed(Failure {
            permanent: false,
            provider_fault: true,
            raw_status,
            ..
        }) => assert_eq!(raw_status.as_deref(), Some("500")),
        other => panic!("expected a provider fault, got {other:?}"),
    }
    ch.shutdown().await;

    // Wrong credentials: the provider's fault as far as this message is concerned.
    let (bad, mut events) = channel(&fake.base_url, "not-the-token", &public_url);
    bad.send(sms(13, "+254700000001", None, "x")).await;
    match outcome(&mut events, 13).await {
        SendOutcome::Failed(Failure {
            permanent: false,
            provider_fault: true,
            raw_status,
            code,
            ..
        }) => {
            assert_eq!(raw_status.as_deref(), Some("401"));
            assert_eq!(code.as_deref(), Some("20003"));
        }
        other => panic!("expected a provider fault, got {other:?}"),
    }

    // Nobody listening: nothing was sent.
    let closed = format!("http://127.0.0.1:{}", peers::free_port());
    let (gone, mut events) = channel(&closed, TOKEN, &public_url);
    gone.send(sms(14, "+254700000001", None, "x")).await;
    match outcome(&mut events, 14).await {
        SendOutcome::Failed(Failure {
            permanent: false,
            provider_fault: true,
            raw_status: None,
            ..
        }) => {}
        other => panic!("expected a provider fault, got {other:?}"),
    }

    // Provider faults in a row take the adapter down for routing.
    assert_eq!(gone.health(), Health::Up);
    for attempt in 20..24 {
        gone.send(sms(attempt, "+254700000001", None, "x")).await;
        assert!(matches!(outcome(&mut events, attempt).await, SendOutcome::Failed(_)));
    }
    assert_eq!(gone.health(), Health::Down);

    // After shutdown nothing more is sent.
    gone.shutdown().await;
    gone.send(sms(15, "+254700000001", None, "x")).await;
    assert!(matches!(outcome(&mut events, 15).await, SendOutcome::NotSent { .. }));
}

/// A server that reads the request and hangs up without answering: the request was
/// sent, so whether the provider took the message cannot be known.
#[tokio::test]
async fn connection_lost_after_sending_is_ambiguous() {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = vec![0; 64 * 1024];
            // Read until the form body (it ends the request), then drop the connection.
            let mut got = Vec::new();
            while let Ok(n) = sock.read(&mut buf).await {
                got.extend_from_slice(&buf[..n]);
                if n == 0 || String::from_utf8_lossy(&got).contains("StatusCallback=") {
                    break;
                }
            }
        }
    });
    let (ch, mut events) = channel(&base, TOKEN, "http://127.0.0.1:1");
    ch.send(sms(30, "+254700000001", None, "x")).await;
    match outcome(&mut events, 30).await {
        SendOutcome::Ambiguous { reason } => assert!(!reason.contains(TOKEN), "{reason}"),
        other => panic!("expected Ambiguous, got {other:?}"),
    }
    ch.shutdown().await;
}
