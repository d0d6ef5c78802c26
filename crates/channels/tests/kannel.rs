//! The Kannel adapter against Debian's Kannel 1.4.5: bearerbox, smsbox and Kannel's own
//! `fakesmsc` test SMSC, all on loopback with free ports, configured from
//! `peers/kannel/kannel.conf.template`.

mod peers;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use peers::{Hit, get, next_event, next_hit, sms};
use sauti_channels::kannel::{self, KannelChannel};
use sauti_channels::{Channel, Context, Event, Failure, ReceiptStatus, SendOutcome};
use serde_json::json;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(15);
const BEARERBOX: &str = "/usr/sbin/bearerbox";
const SMSBOX: &str = "/usr/sbin/smsbox";
const FAKESMSC: &str = "/usr/lib/kannel/test/fakesmsc";
/// Kannel's `global-sender` in the template: MO messages to it are unambiguous.
const SHORTCODE: &str = "12345";

struct Kannel {
    // Declared first so the boxes are killed before their directory is removed.
    _children: Vec<Child>,
    dir: tempfile::TempDir,
    sendsms_url: String,
}

impl Kannel {
    /// What fakesmsc printed: the MT messages it received.
    fn fakesmsc_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("fakesmsc.out")).unwrap_or_default()
    }

    fn logs(&self) -> String {
        ["bearerbox.log", "smsbox.log", "fakesmsc.out"]
            .iter()
            .map(|f| {
                let text = std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(30).collect();
                format!(
                    "--- {f} (tail)\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn log_file(dir: &std::path::Path, name: &str) -> Stdio {
    Stdio::from(std::fs::File::create(dir.join(name)).expect("create log file"))
}

/// bearerbox, then fakesmsc (which injects `mo` once connected), then smsbox; returns once
/// smsbox's sendsms port answers.
async fn start_kannel(mo_url: &str, mo: &str) -> Kannel {
    for bin in [BEARERBOX, SMSBOX, FAKESMSC] {
        peers::require(bin);
    }
    let template = peers::require(peers::repo_root().join("peers/kannel/kannel.conf.template"));
    let dir = tempfile::tempdir().expect("temp dir");
    let run: PathBuf = dir.path().to_path_buf();
    let (admin, smsbox_port, fake, sendsms) = (
        peers::free_port(),
        peers::free_port(),
        peers::free_port(),
        peers::free_port(),
    );
    let conf = std::fs::read_to_string(template)
        .unwrap()
        .replace("@ADMIN_PORT@", &admin.to_string())
        .replace("@SMSBOX_PORT@", &smsbox_port.to_string())
        .replace("@FAKE_PORT@", &fake.to_string())
        .replace("@SENDSMS_PORT@", &sendsms.to_string())
        .replace("@RUN@", run.to_str().unwrap())
        .replace("@MO_URL@", mo_url);
    let conf_path = run.join("kannel.conf");
    std::fs::write(&conf_path, conf).unwrap();

    let mut children = vec![peers::spawn(
        Command::new(BEARERBOX)
            .arg(&conf_path)
            .current_dir(&run)
            .stdout(log_file(&run, "bearerbox.out"))
            .stderr(log_file(&run, "bearerbox.err")),
    )];
    // The fake SMSC's port opens once bearerbox has read its configuration.
    peers::wait_for_port(fake, WAIT).await;
    children.push(peers::spawn(
        Command::new(FAKESMSC)
            .args(["-H", "127.0.0.1", "-r", &fake.to_string(), "-i", "0.2", "-m", "1", mo])
            .current_dir(&run)
            // fakesmsc logs what it receives on stderr.
            .stdout(Stdio::null())
            .stderr(log_file(&run, "fakesmsc.out")),
    ));
    children.push(peers::spawn(
        Command::new(SMSBOX)
            .arg(&conf_path)
            .current_dir(&run)
            .stdout(log_file(&run, "smsbox.out"))
            .stderr(log_file(&run, "smsbox.err")),
    ));
    peers::wait_for_port(sendsms, WAIT).await;
    Kannel {
        _children: children,
        dir,
        sendsms_url: format!("http://127.0.0.1:{sendsms}/cgi-bin/sendsms"),
    }
}

fn channel(kannel: &Kannel, password: &str, public_url: &str) -> (Arc<KannelChannel>, mpsc::Receiver<Event>) {
    let settings = kannel::validate_settings(&json!({
        "url": kannel.sendsms_url,
        "username": "tester",
        "password": password,
        "from": "SAUTI",
    }))
    .unwrap();
    let (tx, rx) = mpsc::channel(64);
    let ctx = Context {
        public_url: public_url.to_string(),
        secret_key: std::sync::Arc::new(key()),
    };
    (KannelChannel::new(3, settings, None, &ctx, tx), rx)
}

/// The installation key of these tests: the DLR URLs carry a token made from it.
fn key() -> sauti_core::secret::ServerKey {
    sauti_core::secret::ServerKey::from_bytes([7; 32])
}

async fn outcome(events: &mut mpsc::Receiver<Event>) -> (i64, SendOutcome) {
    match next_event(events, WAIT).await {
        Event::Outcome { attempt_id, outcome } => (attempt_id, outcome),
        other => panic!("expected an outcome, got {other:?}"),
    }
}

#[tokio::test]
async fn sends_through_kannel_and_reads_dlrs_and_mo() {
    let (public_url, mut hits) = peers::callback_server().await;
    let kannel = start_kannel(
        &format!("{public_url}/mo"),
        "254700000009 12345 text Habari from the handset",
    )
    .await;
    let (ch, mut events) = channel(&kannel, "secret", &public_url);

    ch.send(sms(101, "+254700000001", None, "Hello from sauti")).await;
    ch.send(sms(102, "+254700000002", None, "Привет ✓ ñ")).await;
    let mut accepted = HashMap::new();
    for _ in 0..2 {
        let (attempt, outcome) = outcome(&mut events).await;
        match outcome {
            SendOutcome::Accepted {
                remote_id,
                part_ids,
                segments,
                raw_status,
                ..
            } => {
                assert_eq!(remote_id, attempt.to_string());
                assert_eq!(part_ids, vec![remote_id]);
                assert_eq!(segments, 1);
                // "3: Queued for later delivery" when fakesmsc has not connected yet.
                let raw = raw_status.unwrap_or_default();
                assert!(
                    ["0: Accepted for delivery", "3: Queued for later delivery"].contains(&raw.as_str()),
                    "{raw}"
                );
                accepted.insert(attempt, ());
            }
            other => panic!("attempt {attempt}: expected Accepted, got {other:?}\n{}", kannel.logs()),
        }
    }
    assert!(accepted.contains_key(&101) && accepted.contains_key(&102));

    // Two reports per message (8: SMSC accepted, then 1: delivered) and the MO. fakesmsc
    // sends 8 then 1, but smsbox calls dlr-urls concurrently and now and then the 1 arrives
    // first, so only the set per message is checked (the engine must let a final status
    // stand over a late intermediate one).
    let mut dlrs: HashMap<i64, Vec<(String, ReceiptStatus)>> = HashMap::new();
    let mut mo: Option<Hit> = None;
    let deadline = tokio::time::Instant::now() + WAIT;
    while dlrs.values().map(Vec::len).sum::<usize>() < 4 || mo.is_none() {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let hit = tokio::time::timeout(left, next_hit(&mut hits, WAIT))
            .await
            .unwrap_or_else(|_| panic!("missing callbacks: dlrs {dlrs:?}, mo {mo:?}\n{}", kannel.logs()));
        match hit.path.as_str() {
            "/callbacks/kannel/3/dlr" => {
                let receipt = kannel::parse_dlr(&hit.params).unwrap_or_else(|| panic!("not a DLR: {hit:?}"));
                let attempt = receipt.attempt_id.expect("attempt id");
                assert_eq!(receipt.remote_id, attempt.to_string());
                assert!(receipt.done_at.is_some(), "%T gives the time: {hit:?}");
                assert_eq!(get(&hit.params, "smsc_id"), Some("FAKE"));
                assert!(
                    kannel::token_matches(&key(), 3, get(&hit.params, "token")),
                    "the DLR carries the provider's token: {hit:?}"
                );
                let to = if attempt == 101 { "254700000001" } else { "254700000002" };
                assert_eq!(get(&hit.params, "to"), Some(to), "{hit:?}");
                dlrs.entry(attempt)
                    .or_default()
                    .push((receipt.raw_status, receipt.status));
            }
            "/mo" => mo = Some(hit),
            other => panic!("unexpected call to {other}: {hit:?}"),
        }
    }
    for attempt in [101, 102] {
        let mut got = dlrs[&attempt].clone();
        got.sort_by(|a, b| b.0.cmp(&a.0));
        assert_eq!(
            got,
            [
                ("8".to_string(), ReceiptStatus::Intermediate),
                ("1".to_string(), ReceiptStatus::Delivered)
            ],
            "attempt {attempt}"
        );
    }
    let mo = kannel::parse_mo(&mo.unwrap().params).expect("an MO");
    assert_eq!(mo.from, "254700000009");
    assert_eq!(mo.to, SHORTCODE);
    assert_eq!(mo.body, "Habari from the handset");
    assert_eq!(mo.raw["smsc"], "FAKE");

    // What reached the SMSC: digits without '+', our sender, the GSM text as text and the
    // other one as UCS-2.
    let log = kannel.fakesmsc_log();
    assert!(log.contains("<SAUTI 254700000001 text Hello from sauti>"), "{log}");
    // UCS-2 big-endian, URL-encoded: П (U+041F) р (U+0440)…
    assert!(log.contains("<SAUTI 254700000002 ucs-2 %04%1F%04%40"), "{log}");

    // A request Kannel refuses as malformed is the message's fault.
    ch.send(sms(103, "+", None, "no receiver")).await;
    match outcome(&mut events).await {
        (
            103,
            SendOutcome::Failed(Failure {
                permanent: true,
                provider_fault: false,
                message,
                ..
            }),
        ) => assert!(!message.is_empty()),
        other => panic!("expected a permanent failure, got {other:?}"),
    }
    ch.shutdown().await;

    let (bad, mut events) = channel(&kannel, "wrong", &public_url);
    bad.send(sms(104, "+254700000001", None, "x")).await;
    match outcome(&mut events).await {
        (
            104,
            SendOutcome::Failed(Failure {
                permanent: false,
                provider_fault: true,
                raw_status,
                message,
                ..
            }),
        ) => {
            assert_eq!(raw_status.as_deref(), Some("403"));
            assert!(message.contains("Authorization failed"), "{message}");
        }
        other => panic!("expected a provider fault, got {other:?}"),
    }
    bad.shutdown().await;

    // Nobody listening: nothing was sent, and the password (in the URL) is not in the message.
    let mut gone = kannel::validate_settings(&json!({
        "url": format!("http://127.0.0.1:{}/cgi-bin/sendsms", peers::free_port()),
        "username": "tester",
        "password": "secret",
    }))
    .unwrap();
    gone.from = None;
    let (tx, mut events) = mpsc::channel(4);
    let ctx = Context {
        public_url: public_url.clone(),
        secret_key: std::sync::Arc::new(sauti_core::secret::ServerKey::random()),
    };
    let gone = KannelChannel::new(3, gone, None, &ctx, tx);
    gone.send(sms(105, "+254700000001", None, "x")).await;
    match outcome(&mut events).await {
        (
            105,
            SendOutcome::Failed(Failure {
                permanent: false,
                provider_fault: true,
                message,
                ..
            }),
        ) => assert!(!message.contains("secret"), "{message}"),
        other => panic!("expected a provider fault, got {other:?}"),
    }
    drop(kannel);
}

#[test]
fn parses_dlrs_and_mo() {
    let p = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    };
    for (ty, status) in [
        ("1", ReceiptStatus::Delivered),
        ("2", ReceiptStatus::Undelivered),
        ("16", ReceiptStatus::Undelivered),
        ("4", ReceiptStatus::Intermediate),
        ("8", ReceiptStatus::Intermediate),
    ] {
        let r = kannel::parse_dlr(&p(&[("attempt_id", "42"), ("type", ty), ("ts", "1700000000")])).unwrap();
        assert_eq!((r.attempt_id, r.status, r.raw_status.as_str()), (Some(42), status, ty));
        assert_eq!(r.remote_id, "42");
        assert_eq!(r.done_at.unwrap().timestamp(), 1_700_000_000);
    }
    let r = kannel::parse_dlr(&p(&[
        ("attempt_id", "7"),
        ("type", "2"),
        (
            "smsc_reply",
            "id:abc sub:001 dlvrd:000 submit date:2401011200 stat:UNDELIV err:034 text:",
        ),
    ]))
    .unwrap();
    assert_eq!(r.error_code.as_deref(), Some("034"));
    assert!(kannel::parse_dlr(&p(&[("type", "1")])).is_none());
    assert!(kannel::parse_dlr(&p(&[("attempt_id", "x"), ("type", "1")])).is_none());
    assert!(kannel::parse_dlr(&p(&[("attempt_id", "1"), ("type", "%d")])).is_none());

    let m = kannel::parse_mo(&p(&[
        ("from", "254700000009"),
        ("to", "12345"),
        ("text", ""),
        ("smsc", "X"),
    ]))
    .unwrap();
    assert_eq!(
        (m.from.as_str(), m.to.as_str(), m.body.as_str()),
        ("254700000009", "12345", "")
    );
    assert!(kannel::parse_mo(&p(&[("to", "12345")])).is_none());
}

#[test]
fn settings_validation() {
    let s = kannel::validate_settings(
        &json!({"url": "http://127.0.0.1:13013/cgi-bin/sendsms", "username": "u", "password": "hunter2"}),
    )
    .unwrap();
    assert_eq!((s.dlr_mask, s.strip_plus, s.from.as_deref()), (31, true, None));
    assert!(
        !format!("{s:?}").contains("hunter2"),
        "password must not appear in Debug"
    );
    let err = |v: serde_json::Value| match kannel::validate_settings(&v) {
        Err(sauti_channels::ConfigError::Invalid { field, message }) => format!("{field} {message}"),
        Ok(s) => panic!("accepted {s:?}"),
    };
    let base = json!({"url": "http://k/cgi-bin/sendsms", "username": "u", "password": "p"});
    let with = |k: &str, v: serde_json::Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    assert_eq!(
        err(json!({"url": "http://k", "password": "p"})),
        "settings.username can't be blank"
    );
    assert_eq!(err(with("url", json!("not a url"))), "settings.url is invalid");
    assert_eq!(err(with("dlr_mask", json!(-1))), "settings.dlr_mask is invalid");
    assert_eq!(err(with("dlr_mask", json!(0))), "settings.dlr_mask is invalid");
    assert_eq!(err(with("strip_plus", json!("yes"))), "settings.strip_plus is invalid");
    assert_eq!(err(with("smsc_id", json!("x"))), "settings.smsc_id is invalid");
}
