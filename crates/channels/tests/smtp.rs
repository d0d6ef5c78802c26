//! The SMTP adapter against aiosmtpd (Python), which stores what it receives in a
//! Maildir; the stored message is read back with Python's `email` parser.

mod peers;

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use peers::next_event;
use sauti_channels::smtp::{self, SmtpChannel};
use sauti_channels::{Attachment, Channel, ChannelKind, Context, Event, Failure, Outbound, SendOutcome};
use serde_json::json;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(15);
/// aiosmtpd refuses messages larger than this (552), which gives a permanent failure.
const MAX_SIZE: usize = 200_000;

/// aiosmtpd on a free port, delivering into `maildir`.
async fn aiosmtpd(maildir: &Path) -> (Child, u16) {
    let port = peers::free_port();
    let child = peers::spawn(
        Command::new(peers::python_with("aiosmtpd"))
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-s", &MAX_SIZE.to_string(), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir)
            .stdout(Stdio::null()),
    );
    peers::wait_for_port(port, WAIT).await;
    (child, port)
}

fn channel(port: u16) -> (Arc<SmtpChannel>, mpsc::Receiver<Event>) {
    let settings = smtp::validate_settings(&json!({
        "host": "127.0.0.1",
        "port": port,
        "tls": "none",
        "from": "noreply@sauti.test",
        "from_name": "Sauti Alerts",
    }))
    .unwrap();
    let (tx, rx) = mpsc::channel(16);
    let ctx = Context {
        public_url: "http://127.0.0.1:1".to_string(),
        secret_key: std::sync::Arc::new(sauti_core::secret::ServerKey::random()),
    };
    (SmtpChannel::new(5, settings, None, &ctx, tx), rx)
}

fn email(attempt_id: i64, attachments: Vec<Attachment>) -> Outbound {
    Outbound {
        attempt_id,
        transmission_id: 1,
        account_id: 1,
        channel: ChannelKind::Email,
        to: "wanjiku@example.org".to_string(),
        from: None,
        body: "Habari Wanjiku,\nyour code is 4821. ✓".to_string(),
        subject: Some("Your code — 4821".to_string()),
        html: Some("<p>Habari Wanjiku,</p><p>your code is <b>4821</b>. ✓</p>".to_string()),
        attachments,
        validity: None,
        want_receipt: false,
    }
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

/// The stored message, parsed by Python's `email` package: headers and leaf parts.
async fn parse_with_python(file: &Path) -> serde_json::Value {
    let script = r#"
import json, sys, base64
from email import policy
from email.parser import BytesParser
with open(sys.argv[1], "rb") as f:
    m = BytesParser(policy=policy.default).parse(f)
parts = []
for p in m.walk():
    if p.is_multipart():
        parts.append({"multipart": p.get_content_type()})
        continue
    data = p.get_payload(decode=True)
    parts.append({
        "type": p.get_content_type(),
        "filename": p.get_filename(),
        "disposition": p.get_content_disposition(),
        "text": data.decode(p.get_content_charset() or "utf-8") if p.get_content_maintype() == "text" else None,
        "base64": base64.b64encode(data).decode(),
    })
print(json.dumps({
    "from": str(m["From"]), "to": str(m["To"]), "subject": str(m["Subject"]),
    "message_id": str(m["Message-ID"]), "parts": parts,
}))
"#;
    let out = tokio::time::timeout(
        WAIT,
        Command::new(peers::python())
            .arg("-c")
            .arg(script)
            .arg(file)
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
    serde_json::from_slice(&out.stdout).expect("parsed email JSON")
}

fn delivered(maildir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(maildir.join("new"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn sends_multipart_email_with_attachment() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Maildir");
    let (_server, port) = aiosmtpd(&maildir).await;
    let (ch, mut events) = channel(port);

    let pdf = b"%PDF-1.4\n\x00\x01\x02 binary \xff\xfe invoice".to_vec();
    ch.send(email(
        1,
        vec![Attachment {
            file_name: "invoice-42.pdf".to_string(),
            content_type: "application/pdf".to_string(),
            data: pdf.clone(),
        }],
    ))
    .await;
    let message_id = match outcome(&mut events, 1).await {
        SendOutcome::Accepted {
            remote_id,
            part_ids,
            segments,
            raw_status,
            ..
        } => {
            assert!(
                remote_id.starts_with("<1.") && remote_id.ends_with("@sauti.test>"),
                "{remote_id}"
            );
            assert_eq!(part_ids, vec![remote_id.clone()]);
            assert_eq!(segments, 1);
            assert!(raw_status.unwrap_or_default().starts_with("250"));
            remote_id
        }
        other => panic!("expected Accepted, got {other:?}"),
    };

    let files = delivered(&maildir);
    assert_eq!(files.len(), 1, "{files:?}");
    let m = parse_with_python(&files[0]).await;
    assert_eq!(m["from"], "Sauti Alerts <noreply@sauti.test>");
    assert_eq!(m["to"], "wanjiku@example.org");
    assert_eq!(m["subject"], "Your code — 4821");
    assert_eq!(m["message_id"], message_id.as_str());
    let parts = m["parts"].as_array().unwrap();
    let types: Vec<&str> = parts
        .iter()
        .map(|p| p["multipart"].as_str().or(p["type"].as_str()).unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "multipart/mixed",
            "multipart/alternative",
            "text/plain",
            "text/html",
            "application/pdf"
        ]
    );
    assert_eq!(
        parts[2]["text"].as_str().unwrap().trim_end(),
        "Habari Wanjiku,\nyour code is 4821. ✓"
    );
    assert_eq!(
        parts[3]["text"].as_str().unwrap().trim_end(),
        "<p>Habari Wanjiku,</p><p>your code is <b>4821</b>. ✓</p>"
    );
    assert_eq!(parts[4]["filename"], "invoice-42.pdf");
    assert_eq!(parts[4]["disposition"], "attachment");
    use base64::Engine as _;
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(parts[4]["base64"].as_str().unwrap())
            .unwrap(),
        pdf
    );

    // Plain text only, no attachments: a single text/plain part.
    let mut plain = email(2, vec![]);
    plain.html = None;
    ch.send(plain).await;
    assert!(matches!(outcome(&mut events, 2).await, SendOutcome::Accepted { .. }));

    // Too large for the server: 552, permanent.
    let big = Attachment {
        file_name: "big.bin".to_string(),
        content_type: "application/octet-stream".to_string(),
        data: vec![7; MAX_SIZE * 2],
    };
    ch.send(email(3, vec![big])).await;
    match outcome(&mut events, 3).await {
        SendOutcome::Failed(Failure {
            permanent: true,
            provider_fault: false,
            code,
            ..
        }) => assert_eq!(code.as_deref(), Some("552")),
        other => panic!("expected a permanent failure, got {other:?}"),
    }

    // A message without a subject never leaves.
    let mut no_subject = email(4, vec![]);
    no_subject.subject = None;
    ch.send(no_subject).await;
    assert!(matches!(
        outcome(&mut events, 4).await,
        SendOutcome::Failed(Failure { permanent: true, .. })
    ));

    ch.shutdown().await;
    let files = delivered(&maildir);
    assert_eq!(files.len(), 2, "{files:?}");
    let mut plain = None;
    for f in &files {
        let m = parse_with_python(f).await;
        if m["message_id"] != message_id.as_str() {
            plain = Some(m);
        }
    }
    let parts = plain.expect("the plain message")["parts"].clone();
    assert_eq!(parts.as_array().unwrap().len(), 1, "{parts}");
    assert_eq!(parts[0]["type"], "text/plain");
    assert_eq!(
        parts[0]["text"].as_str().unwrap().trim_end(),
        "Habari Wanjiku,\nyour code is 4821. ✓"
    );
}

#[tokio::test]
async fn closed_port_is_a_provider_fault() {
    let (ch, mut events) = channel(peers::free_port());
    ch.send(email(9, vec![])).await;
    match outcome(&mut events, 9).await {
        SendOutcome::Failed(Failure {
            permanent: false,
            provider_fault: true,
            code: None,
            ..
        }) => {}
        other => panic!("expected a provider fault, got {other:?}"),
    }
}

#[test]
fn settings_validation() {
    let s =
        smtp::validate_settings(&json!({"host": "smtp.example.org", "username": "u", "password": "hunter2"})).unwrap();
    assert_eq!((s.port, s.tls), (587, smtp::SmtpTls::Starttls));
    assert!(
        !format!("{s:?}").contains("hunter2"),
        "password must not appear in Debug"
    );
    let err = |v: serde_json::Value| match smtp::validate_settings(&v) {
        Err(sauti_channels::ConfigError::Invalid { field, message }) => format!("{field} {message}"),
        Ok(s) => panic!("accepted {s:?}"),
    };
    assert_eq!(err(json!({"port": 25})), "settings.host can't be blank");
    assert_eq!(err(json!({"host": "h", "port": 70000})), "settings.port is invalid");
    assert_eq!(err(json!({"host": "h", "tls": "ssl"})), "settings.tls is invalid");
    assert_eq!(
        err(json!({"host": "h", "from": "not an address"})),
        "settings.from is invalid"
    );
    assert_eq!(
        err(json!({"host": "h", "username": "u"})),
        "settings.password can't be blank"
    );
    assert_eq!(err(json!({"host": "h", "user": "u"})), "settings.user is invalid");
}
