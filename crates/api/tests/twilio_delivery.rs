//! End to end through a Twilio-compatible provider: the engine posts Messages.json to
//! `peers/fake_twilio.py`, which signs its status callbacks with the official `twilio`
//! package's `RequestValidator`; sauti checks those signatures and applies the receipts.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

both_backends_with_engine!(sms_through_a_twilio_compatible_provider, |app| async move {
    let (_peer, base_url) = fake_twilio("tok3n", "0.05").await;
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
