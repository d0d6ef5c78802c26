//! One-time codes: `/api/verifications`, checks, cancel, the send and check limits and
//! the fraud guard, driven over HTTP on both backends. Limits run on a clock the test
//! moves (no sleeps).

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn start(app: &App, token: &str, body: Value) -> Resp {
    app.post("/api/verifications", token, body).await
}

async fn started(app: &App, token: &str, body: Value) -> Value {
    let r = start(app, token, body).await;
    assert_status(&r, StatusCode::CREATED, "start a verification");
    r.body
}

async fn check(app: &App, token: &str, id: i64, code: &str) -> Resp {
    app.post(
        &format!("/api/verifications/{id}/verification_checks"),
        token,
        json!({"code": code}),
    )
    .await
}

/// A code of the right length that is not `right`.
fn wrong(right: &str, n: u32) -> String {
    let mut n = n;
    loop {
        let c = format!("{n:06}");
        if c != right {
            return c;
        }
        n += 1;
    }
}

fn retry_after(r: &Resp) -> u64 {
    r.header("retry-after")
        .unwrap_or_else(|| panic!("Retry-After: {}", r.text))
        .parse()
        .unwrap()
}

/// `sauti_verifications_blocked_total{limit}` as `/metrics` shows it.
async fn blocked(app: &App, limit: &str) -> u64 {
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("sauti_verifications_blocked_total{{limit=\"{limit}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {limit} counter in {metrics}"))
        .parse()
        .unwrap()
}

both_backends_with_engine!(an_sms_code_is_sent_checked_approved_and_announced, |app| async move {
    let t = app.tenant("Acme").await;
    let hook = receiver().await;
    let r = app
        .post(
            "/api/webhook_endpoints",
            &t.token,
            json!({"url": hook.url, "events": ["verification.approved"]}),
        )
        .await;
    assert_status(&r, StatusCode::CREATED, "endpoint");
    let secret = r.body["secret"].as_str().unwrap().to_string();

    let r = start(&app, &t.token, json!({"to": "+254 712 345 678"})).await;
    assert_status(&r, StatusCode::CREATED, "start");
    let v = r.body.clone();
    let id = v["id"].as_i64().unwrap();
    assert_eq!(r.header("location"), Some(format!("/api/verifications/{id}").as_str()));
    assert_eq!(v["to"], "+254712345678");
    assert_eq!(v["channel"], "sms");
    assert_eq!(v["status"], "pending");
    assert_eq!(v["valid"], false);
    assert_eq!(v["code_length"], 6);
    assert_eq!(v["checks_remaining"], 5);
    assert_eq!(v["send_code_attempts"].as_array().unwrap().len(), 1);
    assert_timestamp(&v["expires_at"], "expires_at");
    let code = app.verification_code(t.account_id, id).await;
    assert!(!r.text.contains(&code), "the code is never shown: {}", r.text);
    assert!(v.get("code_salt").is_none() && v.get("code").is_none());

    // The message waits on the transactional lane with the code left out, and goes out.
    let tid = v["send_code_attempts"][0]["transmission_id"].as_i64().unwrap();
    let m = eventually(20, "the code delivered", || async {
        let m = app.get(&format!("/api/transmissions/{tid}"), &t.token).await.body;
        (m["status"] == "delivered").then_some(m)
    })
    .await;
    assert_eq!(m["origin"], "verification");
    assert_eq!(m["metadata"]["verification_id"], id);
    assert_eq!(m["body"], "Your Acme verification code is: {{code}}");
    assert!(!m.to_string().contains(&code), "the stored message holds no code");

    let r = check(&app, &t.token, id, &wrong(&code, 0)).await;
    let msgs = assert_invalid(&r, "code", "a wrong code");
    assert!(msgs[0].as_str().unwrap().contains("4 checks are left"), "{msgs:?}");
    let r = check(&app, &t.token, id, &code).await;
    assert_status(&r, StatusCode::OK, "the right code");
    assert_eq!(r.body["status"], "approved");
    assert_eq!(r.body["valid"], true);
    assert_timestamp(&r.body["approved_at"], "approved_at");
    assert_eq!(r.body["check_count"], 2);
    assert_not_found(&check(&app, &t.token, id, &code).await, "an approved verification");
    let r = app.get(&format!("/api/verifications/{id}"), &t.token).await;
    assert_eq!(r.body["status"], "approved");

    let (headers, body) = eventually(20, "the approved webhook", || async {
        hook.got.lock().unwrap().first().cloned()
    })
    .await;
    assert!(verify(&secret, &headers, &body), "signed");
    let event: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event["type"], "verification.approved");
    assert_eq!(event["data"]["id"], id);
    assert_eq!(event["data"]["status"], "approved");
    assert!(!body.contains(&code));
    app.stop().await;
});

both_backends!(a_resend_within_validity_sends_the_same_code, |app| async move {
    let t = app.tenant("Acme").await;
    let a = started(&app, &t.token, json!({"to": "+254712345678", "code_length": 8})).await;
    let id = a["id"].as_i64().unwrap();
    let code = app.verification_code(t.account_id, id).await;
    assert_eq!(code.len(), 8);
    let b = started(&app, &t.token, json!({"to": "+254712345678"})).await;
    assert_eq!(b["id"], id, "the pending verification is reused");
    assert_eq!(b["send_count"], 2);
    assert_eq!(b["code_length"], 8);
    assert_eq!(b["send_code_attempts"].as_array().unwrap().len(), 2);
    assert_eq!(app.verification_code(t.account_id, id).await, code, "the same code");
    let r = app.get("/api/transmissions?q[origin]=verification", &t.token).await;
    assert_eq!(r.body.as_array().unwrap().len(), 2, "two messages");
    // Another destination is another verification.
    let c = started(&app, &t.token, json!({"to": "+254712345679"})).await;
    assert_ne!(c["id"], id);
    let r = app.get("/api/verifications?q[to]=%2B254712345678", &t.token).await;
    assert_eq!(r.body.as_array().unwrap().len(), 1);
    // Checking by destination, as Twilio's VerificationCheck does; a national number
    // works once the account has a default country.
    let r = app
        .patch("/api/account", &t.token, json!({"settings": {"default_country": "KE"}}))
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    let r = app
        .post(
            "/api/verification_checks",
            &t.token,
            json!({"to": "0712345678", "code": code}),
        )
        .await;
    assert_status(&r, StatusCode::OK, "check by to");
    assert_eq!(r.body["id"], id);
    assert_eq!(r.body["status"], "approved");
    let r = app
        .post(
            "/api/verification_checks",
            &t.token,
            json!({"to": "0712345678", "code": code}),
        )
        .await;
    assert_not_found(&r, "nothing pending for that number any more");
    app.stop().await;
});

both_backends!(brute_force_is_stopped_after_five_checks, |app| async move {
    let t = app.tenant("Acme").await;
    let v = started(&app, &t.token, json!({"to": "+254712345678"})).await;
    let id = v["id"].as_i64().unwrap();
    let code = app.verification_code(t.account_id, id).await;
    let mut answers = Vec::new();
    for n in 0..1_000_000u32 {
        // Every code but the right one, in order, as an attacker would try them.
        let guess = format!("{n:06}");
        if guess == code {
            continue;
        }
        let r = check(&app, &t.token, id, &guess).await;
        answers.push(r.status);
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(r.error_code(), "too_many_requests");
            assert!(retry_after(&r) >= 1);
            break;
        }
        assert_invalid(&r, "code", "a wrong guess");
        assert!(answers.len() <= 5, "a sixth guess was evaluated");
    }
    assert_eq!(answers.len(), 6, "five wrong guesses, then refused: {answers:?}");
    // The right code no longer helps.
    let r = check(&app, &t.token, id, &code).await;
    assert_status(&r, StatusCode::TOO_MANY_REQUESTS, "the right code after five");
    let r = app.get(&format!("/api/verifications/{id}"), &t.token).await;
    assert_eq!(r.body["status"], "max_attempts_reached");
    assert_eq!(r.body["check_count"], 5);
    assert_eq!(r.body["checks_remaining"], 0);
    app.stop().await;
});

both_backends!(parallel_guesses_cannot_exceed_the_check_limit, |app| async move {
    let t = app.tenant("Acme").await;
    let v = started(&app, &t.token, json!({"to": "+254712345678"})).await;
    let id = v["id"].as_i64().unwrap();
    let code = app.verification_code(t.account_id, id).await;
    let guesses: Vec<String> = (0..40).map(|n| wrong(&code, n * 7)).collect();
    let answers = futures::future::join_all(guesses.iter().map(|g| check(&app, &t.token, id, g))).await;
    let evaluated = answers
        .iter()
        .filter(|r| r.status == StatusCode::UNPROCESSABLE_ENTITY)
        .count();
    let refused = answers
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((evaluated, refused), (5, 35));
    app.stop().await;
});

both_backends_started_by!(
    start_with_clock,
    sends_are_limited_per_destination_in_a_sliding_window,
    |app| async move {
        let t = app.tenant("Acme").await;
        let to = json!({"to": "+254712345678"});
        for _ in 0..5 {
            started(&app, &t.token, to.clone()).await;
            app.advance(60);
        }
        // Five sends in the last ten minutes (at 0, 60, …, 240 s; now 300 s).
        let r = start(&app, &t.token, to.clone()).await;
        assert_status(&r, StatusCode::TOO_MANY_REQUESTS, "a sixth send");
        assert_eq!(r.error_code(), "too_many_requests");
        assert_eq!(retry_after(&r), 300, "until the first send leaves the window");
        assert!(r.body["errors"]["base"][0].as_str().unwrap().contains("Too many codes"));
        // Nothing was written by the refusal.
        let r = app.get("/api/transmissions?q[origin]=verification", &t.token).await;
        assert_eq!(r.body.as_array().unwrap().len(), 5);
        // Other destinations are not affected.
        started(&app, &t.token, json!({"to": "+254712345679"})).await;
        app.advance(299);
        let r = start(&app, &t.token, to.clone()).await;
        assert_eq!(retry_after(&r), 1);
        app.advance(1);
        started(&app, &t.token, to.clone()).await;
        let r = start(&app, &t.token, to.clone()).await;
        assert_eq!(retry_after(&r), 60, "the next oldest send leaves a minute later");

        assert_eq!(blocked(&app, "destination").await, 3);
        app.stop().await;
    }
);

both_backends_started_by!(
    start_with_clock,
    codes_expire_and_the_validity_is_configurable,
    |app| async move {
        let t = app.tenant("Acme").await;
        let v = started(&app, &t.token, json!({"to": "+254712345678"})).await;
        let id = v["id"].as_i64().unwrap();
        let code = app.verification_code(t.account_id, id).await;
        app.advance(599);
        let r = app.get(&format!("/api/verifications/{id}"), &t.token).await;
        assert_eq!(r.body["status"], "pending");
        app.advance(1);
        let r = app.get(&format!("/api/verifications/{id}"), &t.token).await;
        assert_eq!(r.body["status"], "expired", "ten minutes by default");
        assert_not_found(&check(&app, &t.token, id, &code).await, "an expired code");
        // A new request after expiry is a new verification with a new code.
        let w = started(&app, &t.token, json!({"to": "+254712345678"})).await;
        assert_ne!(w["id"], id);

        let r = app
            .patch(
                "/api/account",
                &t.token,
                json!({"settings": {"verification_ttl_seconds": 120}}),
            )
            .await;
        assert!(r.status.is_success(), "{}", r.text);
        let v = started(&app, &t.token, json!({"to": "+254712345670"})).await;
        let id = v["id"].as_i64().unwrap();
        app.advance(121);
        let code = app.verification_code(t.account_id, id).await;
        assert_not_found(&check(&app, &t.token, id, &code).await, "expired after two minutes");
        let r = app
            .patch(
                "/api/account",
                &t.token,
                json!({"settings": {"verification_ttl_seconds": 5}}),
            )
            .await;
        assert_invalid(&r, "settings.verification_ttl_seconds", "too short a validity");
        app.stop().await;
    }
);

both_backends_started_by!(
    start_with_clock,
    the_fraud_guard_limits_ips_and_prefixes,
    |app| async move {
        let t = app.tenant("Acme").await;
        let r = app
            .patch(
                "/api/account",
                &t.token,
                json!({"settings": {"fraud_guard_ip_max": 3, "fraud_guard_ip_window_seconds": 3600}}),
            )
            .await;
        assert!(r.status.is_success(), "{}", r.text);
        for n in 0..3 {
            started(&app, &t.token, json!({"to": format!("+25471234560{n}")})).await;
        }
        let r = start(&app, &t.token, json!({"to": "+33612345678"})).await;
        assert_status(&r, StatusCode::TOO_MANY_REQUESTS, "a fourth request from one address");
        assert!(r.body["errors"]["base"][0].as_str().unwrap().contains("fraud guard"));
        assert_eq!(retry_after(&r), 3600);
        app.advance(3600);
        started(&app, &t.token, json!({"to": "+33612345678"})).await;

        // Per prefix: numbers sharing their first six digits (+254712…) are one range.
        let r = app
            .patch(
                "/api/account",
                &t.token,
                json!({"settings": {"fraud_guard_ip_max": 0, "fraud_guard_prefix_max": 2}}),
            )
            .await;
        assert!(r.status.is_success(), "{}", r.text);
        app.advance(3600);
        started(&app, &t.token, json!({"to": "+254712000001"})).await;
        started(&app, &t.token, json!({"to": "+254712000002"})).await;
        let r = start(&app, &t.token, json!({"to": "+254712000003"})).await;
        assert_status(&r, StatusCode::TOO_MANY_REQUESTS, "a third number in the range");
        started(&app, &t.token, json!({"to": "+254713000003"})).await;

        assert_eq!(blocked(&app, "ip").await, 1);
        assert_eq!(blocked(&app, "prefix").await, 1);
        // Limits are per account.
        let other = app.tenant("Other").await;
        started(&app, &other.token, json!({"to": "+254712000003"})).await;
        app.stop().await;
    }
);

both_backends!(cancel_ends_a_verification, |app| async move {
    let t = app.tenant("Acme").await;
    let v = started(&app, &t.token, json!({"to": "+254712345678"})).await;
    let id = v["id"].as_i64().unwrap();
    let code = app.verification_code(t.account_id, id).await;
    let ev = |e: &str| json!({"event": e});
    let r = app
        .post(
            &format!("/api/verifications/{id}/verification_events"),
            &t.token,
            ev("approve"),
        )
        .await;
    assert_invalid(&r, "event", "an unknown event");
    let r = app
        .post(
            &format!("/api/verifications/{id}/verification_events"),
            &t.token,
            ev("cancel"),
        )
        .await;
    assert_status(&r, StatusCode::CREATED, "cancel");
    assert_eq!(r.body["status"], "canceled");
    assert_not_found(&check(&app, &t.token, id, &code).await, "a canceled code");
    let r = app
        .post(
            &format!("/api/verifications/{id}/verification_events"),
            &t.token,
            ev("cancel"),
        )
        .await;
    assert_invalid(&r, "status", "cancel twice");
    let r = app
        .post("/api/verifications/999999/verification_events", &t.token, ev("cancel"))
        .await;
    assert_not_found(&r, "no such verification");
    app.stop().await;
});

both_backends!(email_codes_and_custom_messages, |app| async move {
    let t = app.tenant("Acme").await;
    let v = started(&app, &t.token, json!({"to": "Jane@Example.COM", "locale": "fr"})).await;
    assert_eq!(v["channel"], "email");
    assert_eq!(v["to"], "jane@example.com");
    let tid = v["send_code_attempts"][0]["transmission_id"].as_i64().unwrap();
    let m = app.get(&format!("/api/transmissions/{tid}"), &t.token).await.body;
    assert_eq!(m["channel"], "email");
    assert_eq!(m["subject"], "Votre code de vérification Acme");
    assert_eq!(m["body"], "Votre code de vérification Acme est : {{code}}");

    let text = app
        .post(
            "/api/texts",
            &t.token,
            json!({"name": "otp", "data": "{{code}} is your Acme code. Never share it."}),
        )
        .await;
    let text_id = text.body["id"].as_i64().unwrap();
    let v = started(
        &app,
        &t.token,
        json!({"to": "+254712345678", "text_id": text_id, "code_length": 4}),
    )
    .await;
    let tid = v["send_code_attempts"][0]["transmission_id"].as_i64().unwrap();
    let m = app.get(&format!("/api/transmissions/{tid}"), &t.token).await.body;
    assert_eq!(m["body"], "{{code}} is your Acme code. Never share it.");
    assert_eq!(m["encoding"], "GSM-7");
    assert_eq!(m["segments"], 1);

    // A text's other placeholders are the recipient's contact fields.
    let c = app
        .post(
            "/api/contacts",
            &t.token,
            json!({"msisdn": "+254712345679", "first_name": "Kate", "metadata": {"app": "Acme Pay"}}),
        )
        .await;
    assert_eq!(c.status, StatusCode::CREATED, "{}", c.text);
    let text = app
        .post(
            "/api/texts",
            &t.token,
            json!({"name": "personal", "data": "Hi {{first_name}}, your {{ metadata.app }} code is {{code}}.{{last_name}}"}),
        )
        .await;
    let text_id = text.body["id"].as_i64().unwrap();
    for (to, want) in [
        ("+254712345679", "Hi Kate, your Acme Pay code is {{code}}."),
        ("+254712345670", "Hi , your  code is {{code}}."),
    ] {
        let v = started(&app, &t.token, json!({"to": to, "text_id": text_id})).await;
        let tid = v["send_code_attempts"][0]["transmission_id"].as_i64().unwrap();
        let m = app.get(&format!("/api/transmissions/{tid}"), &t.token).await.body;
        assert_eq!(m["body"], want, "{to}");
    }
    app.stop().await;
});

both_backends!(bad_requests_are_clear_422s, |app| async move {
    let t = app.tenant("Acme").await;
    let no_code = app
        .post("/api/texts", &t.token, json!({"name": "plain", "data": "Hello"}))
        .await
        .body["id"]
        .as_i64()
        .unwrap();
    let cases = [
        (json!({}), "to"),
        (json!({"to": "not a number"}), "to"),
        (json!({"to": "x@", "channel": "email"}), "to"),
        (json!({"to": "+254712345678", "channel": "fax"}), "channel"),
        (json!({"to": "+254712345678", "code_length": 3}), "code_length"),
        (json!({"to": "+254712345678", "code_length": 11}), "code_length"),
        (json!({"to": "+254712345678", "locale": "xx"}), "locale"),
        (json!({"to": "+254712345678", "text_id": no_code}), "text_id"),
        (json!({"to": "+254712345678", "text_id": 999999}), "text_id"),
        (json!({"to": "+254712345678", "metadata": [1]}), "metadata"),
        (json!({"to": "+254712345678", "secret": "x"}), "secret"),
        // A voice code is a call: it goes to a phone.
        (json!({"to": "someone@example.com", "channel": "voice"}), "to"),
    ];
    for (body, field) in cases {
        let r = start(&app, &t.token, body.clone()).await;
        assert_invalid(&r, field, &body.to_string());
    }
    let r = app.get("/api/verifications", &t.token).await;
    assert_eq!(r.body.as_array().unwrap().len(), 0, "nothing was written");

    let v = started(&app, &t.token, json!({"to": "+254712345678"})).await;
    let id = v["id"].as_i64().unwrap();
    for body in [json!({}), json!({"code": ""}), json!({"code": true})] {
        let r = app
            .post(
                &format!("/api/verifications/{id}/verification_checks"),
                &t.token,
                body.clone(),
            )
            .await;
        assert_invalid(&r, "code", &body.to_string());
    }
    let r = app.get(&format!("/api/verifications/{id}"), &t.token).await;
    assert_eq!(r.body["check_count"], 0, "a blank code is not a check");
    let r = app
        .post("/api/verification_checks", &t.token, json!({"code": "123456"}))
        .await;
    assert_invalid(&r, "to", "a check without a destination");
    let r = app
        .post(
            &format!("/api/verifications/{id}/verification_checks"),
            &t.token,
            json!({"code": "123456", "to": "+1"}),
        )
        .await;
    assert_invalid(&r, "base", "the path names the verification");
    // A code sent as a JSON number keeps its leading zeros.
    let code = app.verification_code(t.account_id, id).await;
    let n: u64 = code.parse().unwrap();
    let r = app
        .post(
            &format!("/api/verifications/{id}/verification_checks"),
            &t.token,
            json!({"code": n}),
        )
        .await;
    assert_status(&r, StatusCode::OK, "a numeric code");
    app.stop().await;
});

both_backends!(tenants_and_permissions, |app| async move {
    let a = app.tenant("A").await;
    let b = app.tenant("B").await;
    let v = started(&app, &a.token, json!({"to": "+254712345678"})).await;
    let id = v["id"].as_i64().unwrap();
    let code = app.verification_code(a.account_id, id).await;
    assert_not_found(
        &app.get(&format!("/api/verifications/{id}"), &b.token).await,
        "B reads A's",
    );
    assert_not_found(&check(&app, &b.token, id, &code).await, "B checks A's");
    let r = app
        .post(
            "/api/verification_checks",
            &b.token,
            json!({"to": "+254712345678", "code": code}),
        )
        .await;
    assert_not_found(&r, "B checks A's destination");
    assert_eq!(
        app.get("/api/verifications", &b.token)
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        0
    );

    let reader = app.token_with(&a, &["verifications_read"]).await;
    assert_status(
        &app.get(&format!("/api/verifications/{id}"), &reader).await,
        StatusCode::OK,
        "read",
    );
    assert_forbidden(
        &start(&app, &reader, json!({"to": "+254712345679"})).await,
        "start without write",
    );
    assert_forbidden(&check(&app, &reader, id, &code).await, "check without write");
    let writer = app.token_with(&a, &["verifications_write"]).await;
    assert_forbidden(&app.get("/api/verifications", &writer).await, "list without read");
    assert_status(
        &check(&app, &writer, id, &code).await,
        StatusCode::OK,
        "check with write",
    );
    let r = app
        .call(reqwest::Method::POST, "/api/verifications", None, Some(json!({})))
        .await;
    assert_status(&r, StatusCode::UNAUTHORIZED, "no token");
    app.stop().await;
});
