//! End to end through a Twilio-compatible provider: the engine posts Messages.json to
//! `peers/fake_twilio.py`, which signs its status callbacks with the official `twilio`
//! package's `RequestValidator`; sauti checks those signatures and applies the receipts.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A Twilio provider of `t` pointing at the fake at `base_url`, with `extra` fields.
async fn twilio_provider(app: &App, t: &Tenant, base_url: &str, extra: Value) -> Resp {
    let mut body = json!({"name": "twilio", "kind": "twilio", "settings": {
        "account_sid": "AC0123", "auth_token": "tok3n", "base_url": base_url, "from": "+15005550006"}});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let r = app.post("/api/providers", &t.token, body).await;
    assert_status(&r, StatusCode::CREATED, "twilio provider");
    r
}

both_backends_with_engine!(sms_through_a_twilio_compatible_provider, |app| async move {
    let (_peer, base_url) = fake_twilio("tok3n", "0.05").await;
    let t = app.tenant("Acme").await;
    let r = twilio_provider(&app, &t, &base_url, json!({})).await;
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

// A Twilio-compatible provider's `throughput_per_second` is the account's, whatever the
// number of nodes: with another worker alive, this one sends at half the rate. The other
// worker is its heartbeat (what the engine counts); a second running engine would make
// the test depend on which of the two claims how many messages.
both_backends_with_engine!(a_provider_throughput_is_shared_with_live_workers, |app| async move {
    let (_peer, base_url) = fake_twilio("tok3n", "0.05").await;
    let t = app.tenant("Acme").await;
    twilio_provider(&app, &t, &base_url, json!({"throughput_per_second": 10})).await;
    let store = app.store.clone();
    let other = tokio::spawn(async move {
        loop {
            let window = std::time::Duration::from_secs(5);
            store
                .worker_heartbeat("other-node", chrono::Utc::now(), window)
                .await
                .unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    });
    // The engine beats every lease / 3 (1.7 s here) and then sees two workers; two beats'
    // time, for a loaded machine.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;

    const N: usize = 20;
    let mut ids = Vec::with_capacity(N);
    for i in 0..N {
        let r = app
            .post(
                "/api/transmissions",
                &t.token,
                json!({"to": format!("+2547123450{i:02}"), "body": "hi"}),
            )
            .await;
        assert_status(&r, StatusCode::CREATED, "queue a message");
        ids.push(r.body["id"].as_i64().unwrap());
    }
    let mut sent = Vec::with_capacity(N);
    for id in ids {
        let at = eventually(30, "sent through Twilio", || async {
            let m = app.get(&format!("/api/transmissions/{id}"), &t.token).await.body;
            m["sent_at"]
                .as_str()
                .map(|s| chrono::DateTime::parse_from_rfc3339(s).unwrap())
        })
        .await;
        sent.push(at);
    }
    // 5/s with a burst of 5: the 20 take at least 3 s; at the whole 10/s, 1 s.
    let span = *sent.iter().max().unwrap() - *sent.iter().min().unwrap();
    assert!(
        span >= chrono::Duration::milliseconds(2500),
        "{N} messages at half of 10/s went out in {span}"
    );
    other.abort();
    app.stop().await;
});
