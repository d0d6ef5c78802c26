//! End to end through a Twilio-compatible provider: the engine posts Messages.json to
//! `peers/fake_twilio.py`, which signs its status callbacks with the official `twilio`
//! package's `RequestValidator`; sauti checks those signatures and applies the receipts.

mod common;

use std::path::PathBuf;
use std::process::Stdio;

use common::*;
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Start the fake provider; its address once it listens.
async fn fake_twilio(token: &str) -> (tokio::process::Child, String) {
    let python = repo().join(".peers/venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/install-test-peers",
        python.display()
    );
    let mut child = tokio::process::Command::new(python)
        .arg(repo().join("peers/fake_twilio.py"))
        .args(["--port", "0", "--account-sid", "AC0123", "--auth-token", token])
        .env("FAKE_TWILIO_CALLBACK_DELAY", "0.05")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start fake_twilio.py");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(a) = line.split("listening on ").nth(1) {
                return a.trim().to_string();
            }
        }
        panic!("fake_twilio.py exited before listening");
    })
    .await
    .expect("fake_twilio.py listens");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, format!("http://{addr}"))
}

both_backends_with_engine!(sms_through_a_twilio_compatible_provider, |app| async move {
    let (_peer, base_url) = fake_twilio("tok3n").await;
    let t = app.tenant("Acme").await;
    let r = app
        .post(
            "/api/providers",
            &t.token,
            json!({"name": "twilio", "kind": "twilio", "settings": {
                "account_sid": "AC0123", "auth_token": "tok3n", "base_url": base_url, "from": "+15005550006"}}),
        )
        .await;
    assert_status(&r, StatusCode::CREATED, "twilio provider");
    assert_eq!(r.body["settings"]["auth_token"], "[FILTERED]");
    let r = app
        .post(
            "/api/transmissions",
            &t.token,
            json!({"to": "+254712345678", "body": "hi"}),
        )
        .await;
    let id = r.body["id"].as_i64().unwrap();
    let done = eventually(20, "delivered through Twilio", || async {
        let t = app.get(&format!("/api/transmissions/{id}"), &t.token).await.body;
        (t["status"] == "delivered").then_some(t)
    })
    .await;
    assert!(done["delivered_at"].is_string());
    let a = app
        .get(&format!("/api/transmissions/{id}/attempts"), &t.token)
        .await
        .body;
    assert!(a[0]["remote_id"].as_str().unwrap().starts_with("SM"), "{a}");
    assert_eq!(a[0]["provider_kind"], "twilio");
    assert!(
        a[0]["response"].get("body").is_none() && a[0]["response"]["sid"].is_string(),
        "Twilio's echo of the text is not kept (for a one-time code it is the code): {a}"
    );
    // The provider's own refusal is permanent: 21211, one attempt.
    let r = app
        .post(
            "/api/transmissions",
            &t.token,
            json!({"to": "+15005550001", "body": "x"}),
        )
        .await;
    let id = r.body["id"].as_i64().unwrap();
    let failed = eventually(20, "refused by Twilio", || async {
        let t = app.get(&format!("/api/transmissions/{id}"), &t.token).await.body;
        (t["status"] == "failed").then_some(t)
    })
    .await;
    assert_eq!(
        (failed["error_code"].as_str(), failed["attempts"].as_i64()),
        (Some("21211"), Some(1))
    );
    app.stop().await;
});
