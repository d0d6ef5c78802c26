//! End to end over SMPP: the API accepts messages, the engine submits them through the
//! SMPP adapter to the in-repo SMSC simulator, the simulator's receipts mark them
//! delivered, and a signed webhook announces it.

mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use sauti_smsc_sim::{SimConfig, Simulator};
use serde_json::{Value, json};

async fn smpp_provider(app: &App, token: &str, sim: &Simulator, extra: Value) -> i64 {
    let mut settings = json!({
        "host": "127.0.0.1", "port": sim.addr().port(), "system_id": "test", "password": "secret",
        "reconnect_min_ms": 50, "reconnect_max_ms": 200
    });
    for (k, v) in extra.as_object().unwrap() {
        settings[k] = v.clone();
    }
    let r = app
        .post(
            "/api/providers",
            token,
            json!({"name": "smsc", "kind": "smpp", "settings": settings}),
        )
        .await;
    assert_status(&r, StatusCode::CREATED, "smpp provider");
    r.body["id"].as_i64().unwrap()
}

async fn count(app: &App, token: &str, status: &str) -> u64 {
    let r = app
        .get(&format!("/api/transmissions?q[status]={status}&per_page=1"), token)
        .await;
    r.header("total").unwrap().parse().unwrap()
}

both_backends_with_engine!(sms_over_smpp_is_submitted_receipted_and_announced, |app| async move {
    let sim = Simulator::start(SimConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    })
    .await
    .unwrap();
    let t = app.tenant("Acme").await;
    let hook = receiver().await;
    let r = app
        .post(
            "/api/webhook_endpoints",
            &t.token,
            json!({"url": hook.url, "events": ["transmission.status_changed"]}),
        )
        .await;
    let secret = r.body["secret"].as_str().unwrap().to_string();
    let provider_id = smpp_provider(&app, &t.token, &sim, json!({})).await;
    // Let the engine load the provider and bind.
    eventually(20, "the bind", || async { (sim.stats().binds >= 1).then_some(()) }).await;

    let n = 300;
    let mut ids = Vec::new();
    for i in 0..n {
        let r = app
            .post(
                "/api/transmissions",
                &t.token,
                json!({"to": format!("+2547{:08}", i), "body": format!("msg {i}"), "from": "SAUTI"}),
            )
            .await;
        assert_status(&r, StatusCode::CREATED, "send");
        ids.push(r.body["id"].as_i64().unwrap());
    }
    let long = app
        .post(
            "/api/transmissions",
            &t.token,
            json!({"to": "+254799999999", "body": "ж".repeat(150)}),
        )
        .await;
    assert_eq!(long.body["segments"], 3);
    eventually(30, "every message delivered", || async {
        (count(&app, &t.token, "delivered").await == n + 1).then_some(())
    })
    .await;
    let submits = sim.submits();
    assert_eq!(submits.len(), n as usize + 3, "one submit per part, no duplicates");
    let first = submits.iter().find(|s| s.destination_addr == "254700000000").unwrap();
    assert_eq!(
        (first.text.as_str(), first.data_coding, first.esm_class),
        ("msg 0", 0, 0)
    );
    let parts: Vec<_> = submits
        .iter()
        .filter(|s| s.destination_addr == "254799999999")
        .collect();
    assert_eq!(parts.len(), 3);
    assert!(
        parts
            .iter()
            .all(|p| p.data_coding == 8 && p.esm_class & 0x40 != 0 && p.udh.is_some())
    );
    let joined: String = {
        let mut p = parts.clone();
        p.sort_by_key(|s| s.udh.unwrap().2);
        p.iter().map(|s| s.text.clone()).collect()
    };
    assert_eq!(joined, "ж".repeat(150));

    // The attempt records the provider, its message id and the receipt.
    let r = app
        .get(&format!("/api/transmissions/{}/attempts", ids[0]), &t.token)
        .await;
    let a = &r.body[0];
    assert_eq!(a["provider_id"], provider_id);
    assert_eq!(a["provider_kind"], "smpp");
    assert_eq!(a["status"], "delivered");
    assert_eq!(a["raw_status"], "DELIVRD");
    assert_eq!(a["remote_id"].as_str(), first.message_id.as_deref());
    let r = app
        .get(&format!("/api/transmissions/{}/results", ids[0]), &t.token)
        .await;
    assert!(
        r.body[0]["data"].as_str().unwrap().contains("stat:DELIVRD"),
        "{}",
        r.text
    );

    // The receipt reached a webhook, signed.
    let (headers, body) = eventually(20, "the delivered webhook of the first message", || async {
        hook.got
            .lock()
            .unwrap()
            .iter()
            .find(|(_, b)| {
                let v: Value = serde_json::from_str(b).unwrap();
                v["data"]["id"] == ids[0] && v["data"]["status"] == "delivered"
            })
            .cloned()
    })
    .await;
    assert!(verify(&secret, &headers, &body), "the webhook signature verifies");
    sim.shutdown().await;
    app.stop().await;
});

both_backends_with_engine!(smpp_errors_throttling_and_undelivered_receipts, |app| async move {
    let sim = Simulator::start(SimConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        throttle_rate: 1.0,
        ..Default::default()
    })
    .await
    .unwrap();
    let t = app.tenant("Acme").await;
    smpp_provider(&app, &t.token, &sim, json!({})).await;
    eventually(20, "the bind", || async { (sim.stats().binds >= 1).then_some(()) }).await;
    let r = app
        .post(
            "/api/transmissions",
            &t.token,
            json!({"to": "+254711111111", "body": "throttled", "max_attempts": 1}),
        )
        .await;
    let id = r.body["id"].as_i64().unwrap();
    // While the SMSC throttles, the message waits without spending its one attempt.
    eventually(20, "throttled answers", || async {
        (sim.stats().throttled >= 2).then_some(())
    })
    .await;
    let t1 = app.get(&format!("/api/transmissions/{id}"), &t.token).await.body;
    assert!(t1["status"] == "queued" || t1["status"] == "sending", "{t1}");
    sim.set_throttle_rate(0.0);
    eventually(20, "delivered after throttling", || async {
        let t = app.get(&format!("/api/transmissions/{id}"), &t.token).await.body;
        (t["status"] == "delivered").then_some(())
    })
    .await;
    let r = app.get(&format!("/api/transmissions/{id}/attempts"), &t.token).await;
    let statuses: Vec<&str> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_str().unwrap())
        .collect();
    assert!(
        statuses.len() >= 3 && statuses.last() == Some(&"delivered"),
        "{statuses:?}"
    );
    assert!(
        statuses[..statuses.len() - 1].iter().all(|s| *s == "throttled"),
        "{statuses:?}"
    );

    sim.set_error_rate(1.0);
    let r = app
        .post(
            "/api/transmissions",
            &t.token,
            json!({"to": "+254711111112", "body": "fails", "max_attempts": 2}),
        )
        .await;
    let id = r.body["id"].as_i64().unwrap();
    eventually(20, "failed after retries", || async {
        let t = app.get(&format!("/api/transmissions/{id}"), &t.token).await.body;
        (t["status"] == "failed").then_some(t)
    })
    .await;
    let r = app.get(&format!("/api/transmissions/{id}/attempts"), &t.token).await;
    assert_eq!(r.body.as_array().unwrap().len(), 2);
    assert_eq!(r.body[0]["error_code"], "0x00000045");
    sim.shutdown().await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    app.stop().await;
});

both_backends_with_engine!(mo_messages_become_inbound_transmissions, |app| async move {
    let sim = Simulator::start(SimConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    })
    .await
    .unwrap();
    let t = app.tenant("Acme").await;
    let c = app
        .post(
            "/api/contacts",
            &t.token,
            json!({"msisdn": "+254722000111", "first_name": "Asha"}),
        )
        .await;
    let hook = receiver().await;
    app.post(
        "/api/webhook_endpoints",
        &t.token,
        json!({"url": hook.url, "events": ["transmission.inbound"]}),
    )
    .await;
    let provider_id = smpp_provider(&app, &t.token, &sim, json!({})).await;
    eventually(20, "the bind", || async { (sim.stats().binds >= 1).then_some(()) }).await;
    assert!(sim.send_mo("254722000111", "20880", "STOP please, Habari ж").await);
    let inbound = eventually(20, "the inbound message", || async {
        let r = app.get("/api/transmissions?q[direction]=inbound", &t.token).await;
        r.body.as_array().and_then(|a| a.first().cloned())
    })
    .await;
    assert_eq!(inbound["status"], "received");
    assert_eq!(inbound["body"], "STOP please, Habari ж");
    assert_eq!(inbound["from"], "+254722000111");
    assert_eq!(inbound["contact_id"], c.body["id"]);
    assert_eq!(inbound["provider_id"], provider_id);
    eventually(20, "the inbound webhook", || async {
        hook.got
            .lock()
            .unwrap()
            .iter()
            .any(|(_, b)| b.contains("transmission.inbound"))
            .then_some(())
    })
    .await;
    sim.shutdown().await;
    app.stop().await;
});

both_backends_with_engine!(an_otp_reaches_the_smsc_with_the_code_that_approves, |app| async move {
    let sim = Simulator::start(SimConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    })
    .await
    .unwrap();
    let t = app.tenant("Acme").await;
    smpp_provider(&app, &t.token, &sim, json!({})).await;
    eventually(20, "the bind", || async { (sim.stats().binds >= 1).then_some(()) }).await;
    let r = app
        .post(
            "/api/verifications",
            &t.token,
            json!({"to": "+254712345678", "code_length": 7}),
        )
        .await;
    assert_status(&r, StatusCode::CREATED, "start");
    let id = r.body["id"].as_i64().unwrap();
    assert!(
        sim.wait_for_submits(1, Duration::from_secs(20)).await,
        "the code reaches the SMSC"
    );
    let submit = sim.submits().remove(0);
    assert_eq!(submit.destination_addr, "254712345678");
    // Read the code off the wire, as the phone would show it.
    let text = submit.text.clone();
    let code = text
        .strip_prefix("Your Acme verification code is: ")
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(code.len(), 7, "{text}");
    assert!(code.chars().all(|c| c.is_ascii_digit()), "{text}");
    let r = app
        .post(
            &format!("/api/verifications/{id}/verification_checks"),
            &t.token,
            json!({"code": code}),
        )
        .await;
    assert_status(&r, StatusCode::OK, "the code from the SMSC");
    assert_eq!(r.body["status"], "approved");
    sim.shutdown().await;
    app.stop().await;
});
