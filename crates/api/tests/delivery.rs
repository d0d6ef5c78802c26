//! The delivery engine through the API: transmissions sent through the sandbox and
//! provider rows, receipts, retries and back-off, throttling, failover, routing, signed
//! webhooks, content, and the errors, isolation and permissions around them.

mod common;

use base64::Engine;
use common::*;
use reqwest::StatusCode;
use sauti_channels::sandbox::numbers;
use serde_json::{Value, json};

async fn transmission(app: &App, token: &str, id: i64) -> Value {
    let r = app.get(&format!("/api/transmissions/{id}"), token).await;
    assert_status(&r, StatusCode::OK, "get transmission");
    r.body
}

/// Wait until the transmission reaches `status`, and return it.
async fn until_status(app: &App, token: &str, id: i64, status: &str) -> Value {
    eventually(20, &format!("transmission {id} {status}"), || async {
        let t = transmission(app, token, id).await;
        (t["status"] == status).then_some(t)
    })
    .await
}

async fn send(app: &App, token: &str, body: Value) -> Value {
    let r = app.post("/api/transmissions", token, body).await;
    assert_status(&r, StatusCode::CREATED, "create transmission");
    let id = r.body["id"].as_i64().unwrap();
    assert_eq!(r.header("location"), Some(format!("/api/transmissions/{id}").as_str()));
    r.body
}

async fn attempts(app: &App, token: &str, id: i64) -> Vec<Value> {
    let r = app.get(&format!("/api/transmissions/{id}/attempts"), token).await;
    assert_status(&r, StatusCode::OK, "attempts");
    r.body.as_array().unwrap().clone()
}

both_backends_with_engine!(
    sms_through_the_sandbox_is_delivered_with_its_receipt,
    |app| async move {
        let t = app.tenant("Acme").await;
        let c = app
            .post(
                "/api/contacts",
                &t.token,
                json!({"msisdn": "+254712345678", "first_name": "Kate", "metadata": {"city": "Nairobi"}}),
            )
            .await;
        let contact_id = c.body["id"].as_i64().unwrap();
        let created = send(
        &app,
        &t.token,
        json!({"contact_id": contact_id, "body": "Hi {{first_name}} of {{metadata.city}} {{metadata.nope}}!", "metadata": {"ref": "x1"}}),
    )
    .await;
        assert_eq!(created["status"], "queued");
        assert_eq!(created["channel"], "sms");
        assert_eq!(created["to"], "+254712345678");
        assert_eq!(created["body"], "Hi Kate of Nairobi !");
        assert_eq!(created["encoding"], "GSM-7");
        assert_eq!(created["segments"], 1);
        assert_eq!(created["max_attempts"], 3);
        assert_timestamp(&created["created_at"], "created_at");
        let id = created["id"].as_i64().unwrap();
        let done = until_status(&app, &t.token, id, "delivered").await;
        assert_eq!(done["attempts"], 1);
        assert_timestamp(&done["sent_at"], "sent_at");
        assert_timestamp(&done["delivered_at"], "delivered_at");
        let a = attempts(&app, &t.token, id).await;
        assert_eq!(a.len(), 1);
        assert_eq!(a[0]["status"], "delivered");
        assert_eq!(a[0]["provider_kind"], "sandbox");
        assert_eq!(a[0]["number"], 1);
        assert!(a[0]["remote_id"].as_str().unwrap().starts_with("SB"));
        let r = app.get(&format!("/api/transmissions/{id}/results"), &t.token).await;
        assert_eq!(r.body[0]["type"], "receipt");
        assert_eq!(r.body[0]["name"], "delivered");

        // Long and unicode bodies are analysed as the network will count them.
        let long = send(&app, &t.token, json!({"to": "+254712345678", "body": "€".repeat(81)})).await;
        assert_eq!(
            (long["encoding"].as_str(), long["segments"].as_i64()),
            (Some("GSM-7"), Some(2))
        );
        let r = app
            .patch("/api/account", &t.token, json!({"settings": {"default_country": "KE"}}))
            .await;
        assert_status(&r, StatusCode::NO_CONTENT, "default country");
        let uni = send(&app, &t.token, json!({"to": "0712345678", "body": "Habari 🙂"})).await;
        assert_eq!(
            uni["to"], "+254712345678",
            "national numbers read in the default country"
        );
        assert_eq!(uni["encoding"], "UCS-2");
        // A raw number that is a contact's is that contact.
        let raw = send(
            &app,
            &t.token,
            json!({"to": "+254712345678", "body": "hello {{first_name}}"}),
        )
        .await;
        assert_eq!(raw["contact_id"], contact_id);
        assert_eq!(raw["body"], "hello Kate");

        let r = app
            .get("/api/transmissions?q[status]=delivered&q[metadata][ref]=x1", &t.token)
            .await;
        assert_eq!(r.header("total"), Some("1"), "{}", r.text);
        let r = app
            .get(&format!("/api/transmissions?q[contact_id]={contact_id}"), &t.token)
            .await;
        assert_eq!(r.header("total"), Some("4"), "{}", r.text);
        app.stop().await;
    }
);

// Sends to raw numbers that arrive together are looked up together: each still gets its
// own account's contact, or none.
both_backends!(
    concurrent_sends_to_raw_numbers_find_their_own_contacts,
    |app| async move {
        let a = app.tenant("Acme").await;
        let b = app.tenant("Other").await;
        let number = |i: usize| format!("+2547110{i:05}");
        for i in (0..60).step_by(2) {
            let r = app
                .post(
                    "/api/contacts",
                    &a.token,
                    json!({"msisdn": number(i), "first_name": format!("A{i}")}),
                )
                .await;
            assert_status(&r, StatusCode::CREATED, "contact of a");
        }
        for i in (0..60).step_by(3) {
            let r = app
                .post(
                    "/api/contacts",
                    &b.token,
                    json!({"msisdn": number(i), "first_name": format!("B{i}"), "opted_out": i % 2 == 1}),
                )
                .await;
            assert_status(&r, StatusCode::CREATED, "contact of b");
        }
        let sends = (0..60).flat_map(|i| [(i, &a), (i, &b)]).map(|(i, t)| {
            let app = &app;
            async move {
                let r = app
                    .post(
                        "/api/transmissions",
                        &t.token,
                        json!({"to": number(i), "body": "Hi {{first_name}}"}),
                    )
                    .await;
                (i, t.account_id, r)
            }
        });
        for (i, account, r) in futures::future::join_all(sends).await {
            let (expected, opted_out) = if account == a.account_id {
                (
                    if i % 2 == 0 {
                        format!("Hi A{i}")
                    } else {
                        "Hi ".to_string()
                    },
                    false,
                )
            } else {
                (
                    if i % 3 == 0 {
                        format!("Hi B{i}")
                    } else {
                        "Hi ".to_string()
                    },
                    i % 3 == 0 && i % 2 == 1,
                )
            };
            if opted_out {
                assert_invalid(&r, "to", "opted out in b");
                continue;
            }
            assert_status(&r, StatusCode::CREATED, "send");
            assert_eq!(r.body["body"], expected.as_str(), "number {i} in account {account}");
            assert_eq!(
                r.body["contact_id"].is_null(),
                expected == "Hi ",
                "number {i} in account {account}"
            );
        }
        app.stop().await;
    }
);

both_backends_with_engine!(mistakes_are_refused_before_anything_is_queued, |app| async move {
    let t = app.tenant("Acme").await;
    let other = app.tenant("Other").await;
    let theirs = app
        .post("/api/contacts", &other.token, json!({"msisdn": "+254700000001"}))
        .await;
    let opted = app
        .post(
            "/api/contacts",
            &t.token,
            json!({"msisdn": "+254700000002", "opted_out": true}),
        )
        .await;
    let cases = [
        (json!({"body": "x"}), "to"),
        (json!({"to": "12", "body": "x"}), "to"),
        (json!({"to": "+254700000009"}), "body"),
        (json!({"to": "+254700000009", "body": "   "}), "body"),
        (json!({"to": "+254700000009", "body": "x".repeat(1601)}), "body"),
        (json!({"to": "+254700000009", "body": "x", "channel": "fax"}), "channel"),
        (
            json!({"to": "+254700000009", "body": "x", "max_attempts": 0}),
            "max_attempts",
        ),
        (
            json!({"to": "+254700000009", "body": "x", "validity_period": 700000}),
            "validity_period",
        ),
        (
            json!({"to": "+254700000009", "body": "x", "scheduled_at": "soon"}),
            "scheduled_at",
        ),
        (json!({"to": "+254700000009", "body": "x", "metadata": [1]}), "metadata"),
        (json!({"to": "+254700000009", "contact_id": 1, "body": "x"}), "to"),
        (json!({"contact_id": theirs.body["id"], "body": "x"}), "contact_id"),
        (json!({"contact_id": opted.body["id"], "body": "x"}), "contact_id"),
        (json!({"to": "+254700000002", "body": "x"}), "to"),
        (
            json!({"to": "a@b", "channel": "email", "subject": "s", "body": "x"}),
            "to",
        ),
        (json!({"to": "a@example.com", "body": "x"}), "subject"),
        (json!({"to": "+254700000009", "body": "x", "text_id": 999}), "text_id"),
        (json!({"to": "+254700000009", "body": "x", "bogus": 1}), "bogus"),
        // A call goes to a phone, and says or plays something.
        (json!({"to": "a@example.com", "body": "x", "channel": "voice"}), "to"),
        (json!({"to": "+254700000009", "channel": "voice"}), "body"),
        (
            json!({"to": "+254700000009", "call_flow_logic": "CallFlowLogic::PlayMessage"}),
            "audio_url",
        ),
        (
            json!({"to": "+254700000009", "channel": "voice", "body": "x", "call_flow_logic": "Dance"}),
            "call_flow_logic",
        ),
        (
            json!({"to": "+254700000009", "audio_url": "ftp://example.com/a.wav"}),
            "audio_url",
        ),
        (json!({"to": "+254700000009", "recording_id": 999_999}), "recording_id"),
        (
            json!({"to": "+254700000009", "channel": "voice", "body": "x", "subject": "Hi"}),
            "subject",
        ),
        (
            json!({"to": "+254700000009", "channel": "voice", "body": "x".repeat(4097)}),
            "body",
        ),
        (
            json!({"to": "+254700000009", "channel": "sms", "body": "x", "call_flow_logic": "CallFlowLogic::Say"}),
            "call_flow_logic",
        ),
    ];
    for (body, field) in cases {
        let r = app.post("/api/transmissions", &t.token, body.clone()).await;
        assert_invalid(&r, field, &format!("{body}"));
    }
    let r = app.get("/api/transmissions", &t.token).await;
    assert_eq!(r.header("total"), Some("0"), "nothing was queued: {}", r.text);
    app.stop().await;
});

both_backends_with_engine!(scheduled_sends_wait_and_can_be_canceled, |app| async move {
    let t = app.tenant("Acme").await;
    let at = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let s = send(
        &app,
        &t.token,
        json!({"to": "+254712345678", "body": "later", "scheduled_at": at}),
    )
    .await;
    let id = s["id"].as_i64().unwrap();
    assert_eq!(s["status"], "queued");
    assert_eq!(s["next_attempt_at"], s["scheduled_at"]);
    let path = format!("/api/transmissions/{id}/transmission_events");
    let r = app.post(&path, &t.token, json!({"event": "retry"})).await;
    assert_invalid(&r, "status", "retry of a queued transmission");
    let r = app.post(&path, &t.token, json!({"event": "cancel"})).await;
    assert_status(&r, StatusCode::CREATED, "cancel");
    assert_eq!(r.body["status"], "canceled");
    let r = app.post(&path, &t.token, json!({"event": "cancel"})).await;
    assert_invalid(&r, "status", "cancel twice");
    let r = app.post(&path, &t.token, json!({"event": "explode"})).await;
    assert_invalid(&r, "event", "unknown event");
    assert!(
        attempts(&app, &t.token, id).await.is_empty(),
        "a canceled send made no attempt"
    );
    // Clone sends the same message again, now.
    let r = app
        .post(&format!("/api/transmissions/{id}/clone"), &t.token, json!({}))
        .await;
    assert_status(&r, StatusCode::CREATED, "clone");
    let copy = r.body["id"].as_i64().unwrap();
    assert_eq!(r.body["body"], "later");
    until_status(&app, &t.token, copy, "delivered").await;
    let r = app.delete(&format!("/api/transmissions/{id}"), &t.token).await;
    assert_status(&r, StatusCode::NO_CONTENT, "delete");
    assert_not_found(&app.get(&format!("/api/transmissions/{id}"), &t.token).await, "deleted");
    app.stop().await;
});

both_backends_with_engine!(retries_back_off_and_throttling_spends_no_attempt, |app| async move {
    let t = app.tenant("Acme").await;
    // Throttled once, then accepted: one attempt spent, the throttled try recorded.
    let s = send(&app, &t.token, json!({"to": numbers::THROTTLED_ONCE, "body": "x"})).await;
    let id = s["id"].as_i64().unwrap();
    let done = until_status(&app, &t.token, id, "delivered").await;
    assert_eq!(done["attempts"], 1, "{done}");
    let a = attempts(&app, &t.token, id).await;
    let statuses: Vec<&str> = a.iter().map(|a| a["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["throttled", "delivered"]);

    // A temporary failure is retried until attempts run out.
    let s = send(
        &app,
        &t.token,
        json!({"to": numbers::TEMPORARY_FAILURE, "body": "x", "max_attempts": 2}),
    )
    .await;
    let id = s["id"].as_i64().unwrap();
    let failed = until_status(&app, &t.token, id, "failed").await;
    assert_eq!(failed["attempts"], 2);
    assert_eq!(failed["error_code"], "30001");
    let a = attempts(&app, &t.token, id).await;
    assert_eq!(a.len(), 2);
    assert!(a.iter().all(|a| a["status"] == "failed"));
    // The second attempt waited for the back-off after the first.
    let ended = chrono::DateTime::parse_from_rfc3339(a[0]["ended_at"].as_str().unwrap()).unwrap();
    let queued = chrono::DateTime::parse_from_rfc3339(a[1]["queued_at"].as_str().unwrap()).unwrap();
    assert!(queued - ended >= chrono::Duration::milliseconds(20), "{ended} {queued}");
    // `retry` grants one more attempt.
    let r = app
        .post(
            &format!("/api/transmissions/{id}/transmission_events"),
            &t.token,
            json!({"event": "retry"}),
        )
        .await;
    assert_status(&r, StatusCode::CREATED, "retry");
    assert_eq!(r.body["status"], "queued");
    eventually(20, "third attempt", || async {
        let t = transmission(&app, &t.token, id).await;
        (t["status"] == "failed" && t["attempts"] == 3).then_some(())
    })
    .await;

    // A permanent failure is not retried; a negative receipt is final.
    let s = send(&app, &t.token, json!({"to": numbers::INVALID, "body": "x"})).await;
    let failed = until_status(&app, &t.token, s["id"].as_i64().unwrap(), "failed").await;
    assert_eq!(
        (failed["attempts"].as_i64(), failed["error_code"].as_str()),
        (Some(1), Some("21211"))
    );
    let s = send(&app, &t.token, json!({"to": numbers::UNDELIVERED, "body": "x"})).await;
    let und = until_status(&app, &t.token, s["id"].as_i64().unwrap(), "undelivered").await;
    assert_eq!(und["error_code"], "30003");
    app.stop().await;
});

async fn provider(app: &App, token: &str, body: Value) -> i64 {
    let r = app.post("/api/providers", token, body).await;
    assert_status(&r, StatusCode::CREATED, "create provider");
    r.body["id"].as_i64().unwrap()
}

both_backends_with_engine!(routing_by_prefix_and_failover_on_provider_faults, |app| async move {
    let t = app.tenant("Acme").await;
    let fast = json!({"delivery_delay_ms": 10});
    let kenya = provider(
        &app,
        &t.token,
        json!({"name": "ke", "kind": "sandbox", "prefix": "254", "settings": fast}),
    )
    .await;
    let safaricom = provider(
        &app,
        &t.token,
        json!({"name": "saf", "kind": "sandbox", "prefix": "+25471", "settings": fast}),
    )
    .await;
    let us_a = provider(
        &app,
        &t.token,
        json!({"name": "us-a", "kind": "sandbox", "prefix": "1", "settings": fast}),
    )
    .await;
    let us_b = provider(
        &app,
        &t.token,
        json!({"name": "us-b", "kind": "sandbox", "prefix": "1", "settings": fast}),
    )
    .await;
    let route = |to: &'static str| {
        let (app, token) = (&app, t.token.clone());
        async move {
            let s = send(app, &token, json!({"to": to, "body": "x"})).await;
            let id = s["id"].as_i64().unwrap();
            let done = until_status(app, &token, id, "delivered").await;
            done["provider_id"].as_i64().unwrap()
        }
    };
    assert_eq!(route("+254712345678").await, safaricom, "longest prefix wins");
    assert_eq!(route("+254112345678").await, kenya);
    // No provider serves +44: the account has SMS providers, so no sandbox fallback.
    let s = send(&app, &t.token, json!({"to": "+447911123456", "body": "x"})).await;
    let f = until_status(&app, &t.token, s["id"].as_i64().unwrap(), "failed").await;
    assert_eq!(
        (f["error_code"].as_str(), f["attempts"].as_i64()),
        (Some("no_route"), Some(0))
    );
    // A provider fault moves the next attempt to the other provider of the prefix.
    let s = send(
        &app,
        &t.token,
        json!({"to": numbers::PROVIDER_FAULT, "body": "x", "max_attempts": 2}),
    )
    .await;
    let id = s["id"].as_i64().unwrap();
    until_status(&app, &t.token, id, "failed").await;
    let a = attempts(&app, &t.token, id).await;
    let used: Vec<i64> = a.iter().map(|a| a["provider_id"].as_i64().unwrap()).collect();
    assert_eq!(used.len(), 2);
    assert_ne!(used[0], used[1], "failover to the other provider: {used:?}");
    assert!(used.iter().all(|p| *p == us_a || *p == us_b));
    app.stop().await;
});

both_backends!(providers_check_settings_and_hide_secrets, |app| async move {
    let t = app.tenant("Acme").await;
    let smpp = json!({"name": "SMSC", "kind": "smpp", "prefix": "254", "throughput_per_second": 50,
        "settings": {"host": "127.0.0.1", "port": 2775, "system_id": "test", "password": "s3cret"}});
    let r = app.post("/api/providers", &t.token, smpp).await;
    assert_status(&r, StatusCode::CREATED, "smpp provider");
    let id = r.body["id"].as_i64().unwrap();
    assert_eq!(r.body["settings"]["password"], "[FILTERED]");
    assert_eq!(r.body["channels"], json!(["sms"]));
    assert!(!r.text.contains("s3cret"));
    let path = format!("/api/providers/{id}");
    let r = app
        .patch(
            &path,
            &t.token,
            json!({"settings": {"password": "[FILTERED]", "port": 2776}, "weight": 5}),
        )
        .await;
    assert_status(&r, StatusCode::NO_CONTENT, "patch");
    let p = app.store.get_provider(t.account_id, id).await.unwrap().unwrap();
    assert_eq!(
        p.settings.0["password"], "s3cret",
        "an echoed [FILTERED] keeps the secret"
    );
    assert_eq!(p.settings.0["port"], 2776);
    let r = app.get(&path, &t.token).await;
    assert_eq!(r.body["weight"], 5);
    assert!(!r.text.contains("s3cret"));
    for (body, field) in [
        (json!({"kind": "sandbox"}), "name"),
        (json!({"name": "x"}), "kind"),
        (json!({"name": "x", "kind": "pigeon"}), "kind"),
        (json!({"name": "x", "kind": "sandbox", "channels": ["fax"]}), "channels"),
        (
            json!({"name": "x", "kind": "smpp", "channels": ["email"], "settings": {}}),
            "channels",
        ),
        (json!({"name": "x", "kind": "sandbox", "prefix": "abc"}), "prefix"),
        (json!({"name": "x", "kind": "sandbox", "weight": 0}), "weight"),
        (
            json!({"name": "x", "kind": "sandbox", "throughput_per_second": -1}),
            "throughput_per_second",
        ),
        (json!({"name": "x", "kind": "sandbox", "settings": "no"}), "settings"),
        (
            json!({"name": "x", "kind": "sandbox", "settings": {"unknown": 1}}),
            "settings",
        ),
    ] {
        let r = app.post("/api/providers", &t.token, body.clone()).await;
        assert_invalid(&r, field, &body.to_string());
    }
    let r = app
        .post(
            "/api/providers",
            &t.token,
            json!({"name": "x", "kind": "smpp", "settings": {"port": 1}}),
        )
        .await;
    assert_status(&r, StatusCode::UNPROCESSABLE_ENTITY, "smpp settings checked");
    assert!(r.text.contains("settings"), "{}", r.text);
    let r = app.patch(&path, &t.token, json!({"kind": "sandbox"})).await;
    assert_invalid(&r, "kind", "kind is fixed");
    let r = app.get("/api/providers?q[kind]=smpp", &t.token).await;
    assert_eq!(r.header("total"), Some("1"));
    let r = app.delete(&path, &t.token).await;
    assert_status(&r, StatusCode::NO_CONTENT, "delete");
    assert_not_found(&app.get(&path, &t.token).await, "deleted provider");
    app.stop().await;
});

both_backends_with_engine!(texts_and_templates_are_content_for_transmissions, |app| async move {
    let t = app.tenant("Acme").await;
    let r = app
        .post(
            "/api/texts",
            &t.token,
            json!({"name": "greeting", "data": "Jambo {{first_name}}"}),
        )
        .await;
    assert_status(&r, StatusCode::CREATED, "text");
    assert_eq!(
        (r.body["type"].as_str(), r.body["segments"].as_i64()),
        (Some("plain"), Some(1))
    );
    let text_id = r.body["id"].as_i64().unwrap();
    let r = app
        .patch(
            &format!("/api/texts/{text_id}"),
            &t.token,
            json!({"data": "Karibu {{first_name}} ж"}),
        )
        .await;
    assert_status(&r, StatusCode::NO_CONTENT, "update text");
    let r = app.get(&format!("/api/texts/{text_id}"), &t.token).await;
    assert_eq!(r.body["type"], "unicode");
    assert_invalid(
        &app.post("/api/texts", &t.token, json!({"name": "x"})).await,
        "data",
        "text without data",
    );
    let c = app
        .post(
            "/api/contacts",
            &t.token,
            json!({"msisdn": "+254712345678", "first_name": "Ali", "email": "ali@example.com"}),
        )
        .await;
    let cid = c.body["id"].as_i64().unwrap();
    let s = send(&app, &t.token, json!({"contact_id": cid, "text_id": text_id})).await;
    assert_eq!(s["body"], "Karibu Ali ж");
    assert_eq!(s["text_id"], text_id);

    let r = app
        .post(
            "/api/templates",
            &t.token,
            json!({"name": "welcome", "subject": "Welcome {{first_name}}", "body": "<p>Hi {{first_name}}</p>", "body_alt": "Hi {{first_name}}"}),
        )
        .await;
    assert_status(&r, StatusCode::CREATED, "template");
    let template_id = r.body["id"].as_i64().unwrap();
    assert_invalid(
        &app.post("/api/templates", &t.token, json!({"name": "x", "body": "b"}))
            .await,
        "subject",
        "no subject",
    );
    let s = send(&app, &t.token, json!({"contact_id": cid, "template_id": template_id})).await;
    assert_eq!(s["channel"], "email");
    assert_eq!(s["to"], "ali@example.com");
    assert_eq!(s["subject"], "Welcome Ali");
    assert_eq!(s["html"], "<p>Hi Ali</p>");
    assert_eq!(s["body"], "Hi Ali");
    until_status(&app, &t.token, s["id"].as_i64().unwrap(), "delivered").await;
    let s = send(
        &app,
        &t.token,
        json!({"to": "x@bounce.sandbox.sauti", "subject": "s", "body": "b"}),
    )
    .await;
    until_status(&app, &t.token, s["id"].as_i64().unwrap(), "undelivered").await;
    let r = app.delete(&format!("/api/templates/{template_id}"), &t.token).await;
    assert_status(&r, StatusCode::NO_CONTENT, "delete template");
    let r = app.delete(&format!("/api/texts/{text_id}"), &t.token).await;
    assert_status(&r, StatusCode::NO_CONTENT, "delete text");
    app.stop().await;
});

both_backends_with_engine!(receipts_reach_signed_webhooks, |app| async move {
    let t = app.tenant("Acme").await;
    let hook = receiver().await;
    let r = app
        .post(
            "/api/webhook_endpoints",
            &t.token,
            json!({"url": hook.url, "events": ["transmission.status_changed"]}),
        )
        .await;
    assert_status(&r, StatusCode::CREATED, "endpoint");
    let secret = r.body["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    let raw = base64::engine::general_purpose::STANDARD.decode(&secret[6..]).unwrap();
    assert!(raw.len() >= 24);
    let endpoint = r.body["id"].as_i64().unwrap();
    let r = app.get(&format!("/api/webhook_endpoints/{endpoint}"), &t.token).await;
    assert!(r.body.get("secret").is_none(), "the secret is shown once");

    let s = send(&app, &t.token, json!({"to": "+254712345678", "body": "x"})).await;
    let id = s["id"].as_i64().unwrap();
    until_status(&app, &t.token, id, "delivered").await;
    let events = eventually(20, "the delivered webhook", || async {
        let got = hook.got.lock().unwrap().clone();
        got.iter()
            .any(|(_, b)| serde_json::from_str::<Value>(b).unwrap()["data"]["status"] == "delivered")
            .then_some(got)
    })
    .await;
    for (headers, body) in &events {
        assert!(verify(&secret, headers, body), "signature verifies: {headers:?}");
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["type"], "transmission.status_changed");
        assert_eq!(v["data"]["id"], id);
        assert!(headers.get("webhook-id").unwrap().to_str().unwrap().starts_with("msg_"));
    }
    let statuses: Vec<String> = events
        .iter()
        .map(|(_, b)| {
            serde_json::from_str::<Value>(b).unwrap()["data"]["status"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        statuses.contains(&"sent".to_string()) && statuses.contains(&"delivered".to_string()),
        "{statuses:?}"
    );

    // Deliveries and their tries are listed; a replay sends the same message again.
    let r = app
        .get(&format!("/api/webhook_endpoints/{endpoint}/deliveries"), &t.token)
        .await;
    assert_status(&r, StatusCode::OK, "deliveries");
    let d = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["status"] == "succeeded")
        .unwrap()
        .clone();
    let did = d["id"].as_i64().unwrap();
    let r = app
        .get(&format!("/api/webhook_deliveries/{did}/attempts"), &t.token)
        .await;
    assert_eq!(r.body[0]["status_code"], 200);
    let before = hook.got.lock().unwrap().len();
    let r = app
        .post(&format!("/api/webhook_deliveries/{did}/replay"), &t.token, json!({}))
        .await;
    assert_status(&r, StatusCode::CREATED, "replay");
    eventually(20, "the replay", || async {
        (hook.got.lock().unwrap().len() > before).then_some(())
    })
    .await;
    let again = hook.got.lock().unwrap().last().unwrap().0.get("webhook-id").cloned();
    assert_eq!(again.unwrap().to_str().unwrap(), d["message_id"].as_str().unwrap());

    // A failing endpoint is retried with back-off; 410 disables it.
    *hook.status.lock().unwrap() = 410;
    let s = send(&app, &t.token, json!({"to": "+254712345679", "body": "y"})).await;
    until_status(&app, &t.token, s["id"].as_i64().unwrap(), "delivered").await;
    eventually(20, "the endpoint disabled", || async {
        let r = app.get(&format!("/api/webhook_endpoints/{endpoint}"), &t.token).await;
        (r.body["active"] == false).then_some(())
    })
    .await;
    let r = app.get(&format!("/api/webhook_endpoints/{endpoint}"), &t.token).await;
    assert!(r.body["disabled_reason"].as_str().unwrap().contains("410"));
    for (body, field) in [
        (json!({"events": ["transmission.status_changed"]}), "url"),
        (
            json!({"url": "ftp://x", "events": ["transmission.status_changed"]}),
            "url",
        ),
        (json!({"url": "http://x.test/h"}), "events"),
        (json!({"url": "http://x.test/h", "events": ["nope"]}), "events"),
    ] {
        assert_invalid(
            &app.post("/api/webhook_endpoints", &t.token, body.clone()).await,
            field,
            &body.to_string(),
        );
    }
    app.stop().await;
});

both_backends!(callbacks_are_stored_and_checked, |app| async move {
    let t = app.tenant("Acme").await;
    let form = [("MessageSid", "SM1"), ("MessageStatus", "delivered")];
    let r = app
        .client
        .post(app.url("/callbacks/twilio/999"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "unknown provider");
    let id = provider(
        &app,
        &t.token,
        json!({"name": "tw", "kind": "twilio", "settings": {"account_sid": "AC1", "auth_token": "tok", "from": "+15005550006"}}),
    )
    .await;
    let r = app
        .client
        .post(app.url(&format!("/callbacks/twilio/{id}")))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "no signature");
    let url = app.url(&format!("/callbacks/twilio/{id}"));
    let params: Vec<(String, String)> = form.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let sig = sauti_channels::twilio::signature("tok", &url, &params);
    let r = app
        .client
        .post(&url)
        .header("x-twilio-signature", sig)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "a signed callback for an unknown message is kept: {}",
        r.status()
    );
    let k = provider(&app, &t.token, json!({"name": "k", "kind": "kannel", "settings": {"url": "http://127.0.0.1:1/cgi-bin/sendsms", "username": "u", "password": "p"}})).await;
    let token = sauti_channels::kannel::callback_token(&app.secret_key, k);
    let dlr = |query: String| {
        let url = app.url(&format!(
            "/callbacks/kannel/{k}/dlr?{query}attempt_id=424242&type=1&smsc_reply=ok"
        ));
        let client = app.client.clone();
        async move { client.get(url).send().await.unwrap().status() }
    };
    assert_eq!(
        dlr(format!("token={token}&")).await,
        StatusCode::OK,
        "an unknown attempt is answered 200"
    );
    // Kannel cannot sign; the token in the URL sauti gave it is the credential.
    assert_eq!(dlr(String::new()).await, StatusCode::FORBIDDEN, "no token");
    assert_eq!(
        dlr("token=forged&".into()).await,
        StatusCode::FORBIDDEN,
        "a wrong token"
    );
    let other_k = provider(&app, &t.token, json!({"name": "k2", "kind": "kannel", "settings": {"url": "http://127.0.0.1:1/cgi-bin/sendsms", "username": "u", "password": "p"}})).await;
    let theirs = sauti_channels::kannel::callback_token(&app.secret_key, other_k);
    assert_eq!(
        dlr(format!("token={theirs}&")).await,
        StatusCode::FORBIDDEN,
        "another provider's token"
    );
    let counts = app.store.transmission_status_counts(Some(t.account_id)).await.unwrap();
    assert!(counts.is_empty(), "nothing applied: {counts:?}");

    // The provider shows the MO URL to configure in Kannel, token included; an MO through
    // it is stored as an inbound message, one without the token is not.
    let shown = app.get(&format!("/api/providers/{k}"), &t.token).await;
    let mo_url = shown.body["mo_url"]
        .as_str()
        .unwrap_or_else(|| panic!("no mo_url: {}", shown.text))
        .to_string();
    assert!(
        mo_url.starts_with(&format!("{}/callbacks/kannel/{k}/mo?token={token}&", app.base)),
        "{mo_url}"
    );
    let filled = mo_url
        .replace("%p", "254700000009")
        .replace("%P", "12345")
        .replace("%a", "Habari")
        .replace("%i", "FAKE");
    let r = app.client.get(&filled).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "an MO through the shown URL");
    let forged = filled.replace(&token, "forged");
    assert_eq!(
        app.client.get(&forged).send().await.unwrap().status(),
        StatusCode::FORBIDDEN,
        "a forged MO"
    );
    let inbound = app.get("/api/transmissions?q[direction]=inbound", &t.token).await;
    let list = inbound.body.as_array().unwrap();
    assert_eq!(list.len(), 1, "one inbound message: {}", inbound.text);
    assert_eq!(list[0]["body"], "Habari");
    assert_eq!(list[0]["from"], "+254700000009");
    app.stop().await;
});

both_backends!(delivery_resources_are_isolated_and_permissioned, |app| async move {
    let t = app.tenant("Acme").await;
    let other = app.tenant("Other").await;
    let s = send(
        &app,
        &t.token,
        json!({"to": "+254712345678", "body": "x", "scheduled_at": "2999-01-01T00:00:00Z"}),
    )
    .await;
    let id = s["id"].as_i64().unwrap();
    let p = provider(&app, &t.token, json!({"name": "p", "kind": "sandbox"})).await;
    let text = app
        .post("/api/texts", &t.token, json!({"name": "n", "data": "d"}))
        .await
        .body["id"]
        .as_i64()
        .unwrap();
    let tpl = app
        .post(
            "/api/templates",
            &t.token,
            json!({"name": "n", "subject": "s", "body": "b"}),
        )
        .await
        .body["id"]
        .as_i64()
        .unwrap();
    let hook = app
        .post(
            "/api/webhook_endpoints",
            &t.token,
            json!({"url": "http://127.0.0.1:9/h", "events": ["transmission.inbound"]}),
        )
        .await
        .body["id"]
        .as_i64()
        .unwrap();
    for path in [
        format!("/api/transmissions/{id}"),
        format!("/api/transmissions/{id}/attempts"),
        format!("/api/transmissions/{id}/results"),
        format!("/api/providers/{p}"),
        format!("/api/texts/{text}"),
        format!("/api/templates/{tpl}"),
        format!("/api/webhook_endpoints/{hook}"),
        format!("/api/webhook_endpoints/{hook}/deliveries"),
    ] {
        assert_not_found(&app.get(&path, &other.token).await, &path);
    }
    let r = app
        .post(
            &format!("/api/transmissions/{id}/transmission_events"),
            &other.token,
            json!({"event": "cancel"}),
        )
        .await;
    assert_not_found(&r, "cancel another tenant's transmission");
    assert_not_found(
        &app.delete(&format!("/api/providers/{p}"), &other.token).await,
        "delete theirs",
    );
    for (read, write, list) in [
        ("transmissions_read", "transmissions_write", "/api/transmissions"),
        ("providers_read", "providers_write", "/api/providers"),
        ("texts_read", "texts_write", "/api/texts"),
        ("templates_read", "templates_write", "/api/templates"),
        (
            "webhook_endpoints_read",
            "webhook_endpoints_write",
            "/api/webhook_endpoints",
        ),
    ] {
        let reader = app.token_with(&t, &[read]).await;
        let writer = app.token_with(&t, &[write]).await;
        assert_status(&app.get(list, &reader).await, StatusCode::OK, list);
        assert_forbidden(&app.get(list, &writer).await, list);
        assert_forbidden(&app.post(list, &reader, json!({})).await, list);
    }
    app.stop().await;
});

both_backends!(concurrent_sends_each_get_their_own_transmission, |app| async move {
    // Requests that arrive together share one insert (group commit); each must still be
    // answered with its own row.
    let t = app.tenant("Acme").await;
    let answers = futures::future::join_all((0..200).map(|i| {
        let (app, token) = (&app, t.token.clone());
        async move {
            let to = format!("+2547{i:08}");
            let r = app
                .post(
                    "/api/transmissions",
                    &token,
                    json!({"to": to, "body": format!("message {i}")}),
                )
                .await;
            (to, i, r)
        }
    }))
    .await;
    let mut ids = std::collections::HashSet::new();
    for (to, i, r) in answers {
        assert_status(&r, StatusCode::CREATED, "send");
        assert_eq!(r.body["to"], to.as_str());
        assert_eq!(r.body["body"], format!("message {i}"));
        let id = r.body["id"].as_i64().unwrap();
        assert!(ids.insert(id), "id {id} answered twice");
        let shown = app.get(&format!("/api/transmissions/{id}"), &t.token).await;
        assert_eq!(shown.body["to"], to.as_str(), "the row behind the id");
    }
    let r = app.get("/api/transmissions?per_page=1", &t.token).await;
    assert_eq!(r.header("total"), Some("200"));
    app.stop().await;
});
