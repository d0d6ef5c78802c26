//! Campaigns over HTTP on both backends: callouts and their state machine, participations,
//! population batch operations, and paced fan-out through the delivery engine. Pacing and
//! windows run on a clock the test moves (no sleeps).

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Contacts `+2547000000NN` for `n` in `range`, with `first_name` `Name{n}` and
/// metadata `{"gender": "f"|"m"}` (even n: f). Returns their ids.
async fn contacts(app: &App, token: &str, range: std::ops::Range<u32>) -> Vec<i64> {
    let mut ids = Vec::new();
    for n in range {
        let r = app
            .post(
                "/api/contacts",
                token,
                json!({
                    "msisdn": format!("+2547{n:08}"),
                    "first_name": format!("Name{n}"),
                    "email": format!("c{n}@example.com"),
                    "metadata": {"gender": if n % 2 == 0 { "f" } else { "m" }},
                }),
            )
            .await;
        assert_status(&r, StatusCode::CREATED, "create a contact");
        ids.push(r.body["id"].as_i64().unwrap());
    }
    ids
}

async fn group_of(app: &App, token: &str, ids: &[i64]) -> i64 {
    let g = app.post("/api/groups", token, json!({"name": "audience"})).await;
    assert_status(&g, StatusCode::CREATED, "create a group");
    let id = g.body["id"].as_i64().unwrap();
    let r = app
        .post(
            &format!("/api/groups/{id}/contacts"),
            token,
            json!({"contact_ids": ids}),
        )
        .await;
    assert_status(&r, StatusCode::OK, "fill the group");
    id
}

async fn callout(app: &App, token: &str, body: Value) -> Value {
    let r = app.post("/api/callouts", token, body).await;
    assert_status(&r, StatusCode::CREATED, "create a callout");
    r.body
}

async fn event(app: &App, token: &str, id: i64, event: &str) -> Resp {
    app.post(
        &format!("/api/callouts/{id}/callout_events"),
        token,
        json!({ "event": event }),
    )
    .await
}

async fn stats(app: &App, token: &str, id: i64) -> Value {
    let r = app.get(&format!("/api/callouts/{id}/statistics"), token).await;
    assert_status(&r, StatusCode::OK, "statistics");
    r.body
}

/// Wait until the callout's statistics satisfy `ok`.
async fn until_stats(app: &App, token: &str, id: i64, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    eventually(20, what, || async {
        let s = stats(app, token, id).await;
        ok(&s).then_some(s)
    })
    .await
}

async fn participations(app: &App, token: &str, id: i64) -> Vec<Value> {
    let r = app
        .get(
            &format!("/api/callouts/{id}/callout_participations?per_page=100"),
            token,
        )
        .await;
    assert_status(&r, StatusCode::OK, "list participations");
    r.body.as_array().unwrap().clone()
}

both_backends!(
    callouts_are_created_validated_listed_updated_and_deleted,
    |app| async move {
        let t = app.tenant("Acme").await;
        let tok = &t.token;
        // SCFM's own example: a voice callout with a call flow and audio.
        let r = app
            .post(
                "/api/callouts",
                tok,
                json!({
                    "call_flow_logic": "CallFlowLogic::HelloWorld",
                    "audio_url": "https://www.example.com/sample.mp3",
                    "metadata": {"foo": "bar"},
                    "settings": {"external_service_1": {"foo": "bar"}},
                }),
            )
            .await;
        assert_status(&r, StatusCode::CREATED, "voice callout");
        let id = r.body["id"].as_i64().unwrap();
        assert_eq!(r.header("location"), Some(format!("/api/callouts/{id}").as_str()));
        assert_eq!(r.body["status"], "initialized");
        assert_eq!(r.body["channel"], "voice");
        assert_eq!(r.body["settings"]["external_service_1"]["foo"], "bar");
        assert_eq!(r.body["max_attempts"], 3);
        assert_timestamp(&r.body["created_at"], "created_at");

        let g = group_of(&app, tok, &contacts(&app, tok, 0..2).await).await;
        let sms = callout(
            &app,
            tok,
            json!({
                "channel": "sms", "body": "Hello {{first_name}}", "group_id": g, "rate_per_minute": 600,
                "max_attempts": 2, "retry_delay": 30, "retry_on": ["undelivered"],
                "window": {"start": "08:00", "end": "20:00", "time_zone": "Africa/Nairobi"},
                "contact_filter_params": {"metadata": {"gender": "f"}},
                "metadata": {"foo": "baz"},
            }),
        )
        .await;
        assert_eq!(sms["rate_per_minute"], 600);
        assert_eq!(sms["retry_on"], json!(["undelivered"]));
        assert_eq!(
            sms["window"],
            json!({"start": "08:00", "end": "20:00", "time_zone": "Africa/Nairobi"})
        );
        assert_eq!(sms["contact_filter_params"], json!({"metadata": {"gender": "f"}}));

        // Every mistake is a 422 on its field, and nothing is created.
        for (body, field) in [
            (json!({"channel": "fax"}), "channel"),
            (json!({"channel": "sms"}), "body"),
            (
                json!({"channel": "sms", "body": "x", "rate_per_minute": 0}),
                "rate_per_minute",
            ),
            (
                json!({"channel": "sms", "body": "x", "max_attempts": 11}),
                "max_attempts",
            ),
            (
                json!({"channel": "sms", "body": "x", "retry_on": ["later"]}),
                "retry_on",
            ),
            (json!({"channel": "sms", "body": "x", "group_id": 999_999}), "group_id"),
            (json!({"channel": "sms", "text_id": 999_999}), "text_id"),
            (
                json!({"channel": "sms", "body": "x", "window": {"start": "8am", "end": "20:00"}}),
                "window",
            ),
            (
                json!({"channel": "sms", "body": "x", "window": {"start": "08:00", "end": "20:00", "time_zone": "Mars/Base"}}),
                "window",
            ),
            (
                json!({"channel": "sms", "body": "x", "start_at": "2027-01-02T00:00:00Z", "stop_at": "2027-01-01T00:00:00Z"}),
                "stop_at",
            ),
            (
                json!({"channel": "sms", "body": "x", "contact_filter_params": {"metadata": {"age.numeric.gt": "old"}}}),
                "contact_filter_params",
            ),
            (json!({"channel": "email", "body": "x"}), "subject"),
            (json!({"call_flow_logic": "CallFlowLogic::Dance"}), "call_flow_logic"),
            (json!({"audio_url": "ftp://example.com/a.mp3"}), "audio_url"),
        ] {
            let r = app.post("/api/callouts", tok, body.clone()).await;
            assert_invalid(&r, field, &format!("{body}"));
        }
        let r = app.post("/api/callouts", tok, json!({"nonsense": 1})).await;
        assert_eq!(r.status.as_u16(), 422, "unknown field: {:?}", r.body);

        // List, filter, show.
        let r = app.get("/api/callouts?q[metadata][foo]=bar", tok).await;
        assert_status(&r, StatusCode::OK, "filtered list");
        assert_eq!(r.header("total"), Some("1"));
        assert_eq!(r.body[0]["id"], id);
        let r = app.get("/api/callouts?q[channel]=sms", tok).await;
        assert_eq!(r.body.as_array().unwrap().len(), 1);

        // PATCH: 204, and the change reads back; an invalid change leaves the row.
        let r = app
            .patch(
                &format!("/api/callouts/{id}"),
                tok,
                json!({"metadata": {"bar": "foo"}, "metadata_merge_mode": "replace", "rate_per_minute": 120}),
            )
            .await;
        assert_status(&r, StatusCode::NO_CONTENT, "patch");
        let r = app.get(&format!("/api/callouts/{id}"), tok).await;
        assert_eq!(r.body["metadata"], json!({"bar": "foo"}));
        assert_eq!(r.body["rate_per_minute"], 120);
        let r = app
            .patch(&format!("/api/callouts/{id}"), tok, json!({"max_attempts": 0}))
            .await;
        assert_invalid(&r, "max_attempts", "bad patch");
        assert_eq!(
            app.get(&format!("/api/callouts/{id}"), tok).await.body["max_attempts"],
            3
        );

        // Tenancy: another account sees nothing and can change nothing.
        let other = app.tenant("Other").await;
        assert_not_found(
            &app.get(&format!("/api/callouts/{id}"), &other.token).await,
            "other's callout",
        );
        assert_not_found(
            &app.patch(&format!("/api/callouts/{id}"), &other.token, json!({"metadata": {}}))
                .await,
            "other's patch",
        );
        assert_not_found(&event(&app, &other.token, id, "start").await, "other's event");
        assert_not_found(
            &app.delete(&format!("/api/callouts/{id}"), &other.token).await,
            "other's delete",
        );
        assert_eq!(app.get("/api/callouts", &other.token).await.header("total"), Some("0"));
        let r = app
            .post(
                "/api/callouts",
                &other.token,
                json!({"channel": "sms", "body": "x", "group_id": g}),
            )
            .await;
        assert_invalid(&r, "group_id", "another account's group");

        // Permissions.
        let read = app.token_with(&t, &["callouts_read"]).await;
        assert_status(&app.get("/api/callouts", &read).await, StatusCode::OK, "read");
        assert_forbidden(&app.post("/api/callouts", &read, json!({})).await, "write with read");
        let none = app.token_with(&t, &["contacts_read"]).await;
        assert_forbidden(&app.get("/api/callouts", &none).await, "read without permission");
        assert_eq!(
            app.call(reqwest::Method::GET, "/api/callouts", None, None).await.status,
            StatusCode::UNAUTHORIZED
        );

        // Delete: 204, then gone.
        let r = app.delete(&format!("/api/callouts/{id}"), tok).await;
        assert_status(&r, StatusCode::NO_CONTENT, "delete");
        assert_not_found(&app.get(&format!("/api/callouts/{id}"), tok).await, "deleted");
        app.stop().await;
    }
);

both_backends!(callout_events_follow_the_state_machine, |app| async move {
    let t = app.tenant("Acme").await;
    let tok = &t.token;
    let id = callout(&app, tok, json!({"channel": "sms", "body": "Hi"})).await["id"]
        .as_i64()
        .unwrap();
    for e in ["pause", "resume", "stop"] {
        let r = event(&app, tok, id, e).await;
        assert_invalid(&r, "event", &format!("{e} from initialized"));
    }
    assert_invalid(&event(&app, tok, id, "explode").await, "event", "unknown event");
    let r = event(&app, tok, id, "start").await;
    assert_status(&r, StatusCode::CREATED, "start");
    assert_eq!(r.body["status"], "running");
    assert_eq!(r.header("location"), Some(format!("/api/callouts/{id}").as_str()));
    assert_invalid(&event(&app, tok, id, "start").await, "event", "start twice");
    assert_invalid(&event(&app, tok, id, "resume").await, "event", "resume while running");
    // A running callout cannot be deleted.
    assert_invalid(
        &app.delete(&format!("/api/callouts/{id}"), tok).await,
        "base",
        "delete running",
    );
    for (e, to) in [
        ("pause", "paused"),
        ("resume", "running"),
        ("stop", "stopped"),
        ("resume", "running"),
        ("pause", "paused"),
        ("stop", "stopped"),
    ] {
        let r = event(&app, tok, id, e).await;
        assert_status(&r, StatusCode::CREATED, e);
        assert_eq!(r.body["status"], to, "{e}");
    }
    assert_invalid(&event(&app, tok, id, "pause").await, "event", "pause while stopped");
    assert_invalid(&event(&app, tok, id, "start").await, "event", "start while stopped");
    // A voice callout runs as the others do (its calls are tested in voice.rs).
    let v = callout(&app, tok, json!({"call_flow_logic": "CallFlowLogic::HelloWorld"})).await["id"]
        .as_i64()
        .unwrap();
    let r = event(&app, tok, v, "start").await;
    assert_status(&r, StatusCode::CREATED, "voice start");
    assert_eq!(r.body["status"], "running");
    app.stop().await;
});

both_backends!(participations_are_managed_as_in_scfm, |app| async move {
    let t = app.tenant("Acme").await;
    let tok = &t.token;
    let ids = contacts(&app, tok, 0..3).await;
    let id = callout(&app, tok, json!({"channel": "sms", "body": "Hi {{first_name}}"})).await["id"]
        .as_i64()
        .unwrap();
    let path = format!("/api/callouts/{id}/callout_participations");
    let r = app
        .post(
            &path,
            tok,
            json!({"contact_id": ids[0], "msisdn": "+254700000009", "metadata": {"foo": "bar"}}),
        )
        .await;
    assert_status(&r, StatusCode::CREATED, "create a participation");
    let p = r.body["id"].as_i64().unwrap();
    assert_eq!(
        r.header("location"),
        Some(format!("/api/callout_participations/{p}").as_str())
    );
    assert_eq!(r.body["callout_id"], id);
    assert_eq!(r.body["contact_id"], ids[0]);
    assert_eq!(r.body["msisdn"], "+254700000009");
    assert_eq!(r.body["callout_population_id"], Value::Null);
    assert_eq!(r.body["status"], "pending");
    assert_eq!(r.body["answered"], false);
    assert_eq!(r.body["phone_calls_count"], 0);
    assert_eq!(r.body["metadata"], json!({"foo": "bar"}));
    // The participation is a transmission: its content was personalised.
    let tr = app.get(&format!("/api/transmissions/{p}"), tok).await;
    assert_eq!(tr.body["body"], "Hi Name0");
    assert_eq!(tr.body["callout_id"], id);

    // SCFM's invalid-data answer, a duplicate, an opted-out contact.
    let r = app.post(&path, tok, json!({})).await;
    assert_invalid(&r, "contact", "no contact");
    assert_invalid(
        &app.post(&path, tok, json!({"contact_id": ids[0]})).await,
        "contact_id",
        "duplicate",
    );
    assert_invalid(
        &app.post(&path, tok, json!({"contact_id": ids[1], "msisdn": "12"}))
            .await,
        "msisdn",
        "bad number",
    );
    let r = app
        .patch(
            &format!("/api/contacts/{}", ids[2]),
            tok,
            json!({"opted_out_at": "2026-01-01T00:00:00Z"}),
        )
        .await;
    assert_status(&r, StatusCode::NO_CONTENT, "opt out");
    assert_invalid(
        &app.post(&path, tok, json!({"contact_id": ids[2]})).await,
        "contact",
        "opted out",
    );
    let r = app.post(&path, tok, json!({"contact_id": ids[1]})).await;
    assert_status(&r, StatusCode::CREATED, "second participation");
    let p2 = r.body["id"].as_i64().unwrap();
    assert_eq!(r.body["msisdn"], "+254700000001");

    // Lists: of the callout, of the account, filtered.
    assert_eq!(participations(&app, tok, id).await.len(), 2);
    let r = app.get("/api/callout_participations?q[metadata][foo]=bar", tok).await;
    assert_eq!(r.header("total"), Some("1"));
    assert_eq!(r.body[0]["id"], p);
    let r = app
        .get(&format!("/api/callout_participations?q[callout_id]={id}&sort=-id"), tok)
        .await;
    assert_eq!(r.body[0]["id"], p2);
    // A plain transmission is not a participation.
    let plain = app
        .post("/api/transmissions", tok, json!({"to": "+254700000001", "body": "x"}))
        .await;
    assert_status(&plain, StatusCode::CREATED, "plain send");
    let plain = plain.body["id"].as_i64().unwrap();
    assert_not_found(
        &app.get(&format!("/api/callout_participations/{plain}"), tok).await,
        "not a participation",
    );

    // PATCH: metadata and contact while untried.
    let r = app
        .patch(
            &format!("/api/callout_participations/{p}"),
            tok,
            json!({"metadata": {"bar": "foo"}, "metadata_merge_mode": "replace", "call_flow_logic": "CallFlowLogic::HelloWorld"}),
        )
        .await;
    assert_status(&r, StatusCode::NO_CONTENT, "patch");
    let r = app.get(&format!("/api/callout_participations/{p}"), tok).await;
    assert_eq!(r.body["metadata"], json!({"bar": "foo"}));
    assert_eq!(r.body["call_flow_logic"], "CallFlowLogic::HelloWorld");
    let r = app
        .patch(
            &format!("/api/callout_participations/{p2}"),
            tok,
            json!({"contact_id": ids[0]}),
        )
        .await;
    assert_invalid(&r, "contact_id", "moving onto a contact already in the callout");
    let r = app
        .patch(
            &format!("/api/callout_participations/{p}"),
            tok,
            json!({"contact_id": 999_999}),
        )
        .await;
    assert_invalid(&r, "contact", "no such contact");

    // Isolation and permissions.
    let other = app.tenant("Other").await;
    assert_not_found(
        &app.get(&format!("/api/callout_participations/{p}"), &other.token).await,
        "other's",
    );
    assert_not_found(&app.get(&path, &other.token).await, "other's callout list");
    assert_not_found(
        &app.post(&path, &other.token, json!({"contact_id": ids[0]})).await,
        "other's create",
    );
    assert_not_found(
        &app.delete(&format!("/api/callout_participations/{p}"), &other.token)
            .await,
        "other's delete",
    );
    let read = app
        .token_with(&t, &["callout_participations_read", "callouts_read"])
        .await;
    assert_status(&app.get(&path, &read).await, StatusCode::OK, "read");
    assert_forbidden(
        &app.post(&path, &read, json!({"contact_id": ids[0]})).await,
        "write with read",
    );

    // Delete an untried one.
    assert_status(
        &app.delete(&format!("/api/callout_participations/{p2}"), tok).await,
        StatusCode::NO_CONTENT,
        "delete",
    );
    assert_not_found(
        &app.get(&format!("/api/callout_participations/{p2}"), tok).await,
        "deleted",
    );
    app.stop().await;
});

both_backends_with_engine!(a_population_previews_then_adds_its_audience, |app| async move {
    let t = app.tenant("Acme").await;
    let tok = &t.token;
    let ids = contacts(&app, tok, 0..10).await;
    // One woman opts out: she is never included.
    app.patch(
        &format!("/api/contacts/{}", ids[4]),
        tok,
        json!({"opted_out_at": "2026-01-01T00:00:00Z"}),
    )
    .await;
    let id = callout(&app, tok, json!({"channel": "sms", "body": "Hi {{first_name}}"})).await["id"]
        .as_i64()
        .unwrap();
    // One is already in the callout by hand: the population skips her.
    app.post(
        &format!("/api/callouts/{id}/callout_participations"),
        tok,
        json!({"contact_id": ids[0]}),
    )
    .await;

    let r = app
        .post(
            "/api/batch_operations",
            tok,
            json!({
                "type": "BatchOperation::CalloutPopulation", "callout_id": id,
                "parameters": {"contact_filter_params": {"metadata": {"gender": "m"}}},
                "metadata": {"foo": "bar"},
            }),
        )
        .await;
    assert_status(&r, StatusCode::CREATED, "create a population");
    let b = r.body["id"].as_i64().unwrap();
    assert_eq!(
        r.header("location"),
        Some(format!("/api/batch_operations/{b}").as_str())
    );
    assert_eq!(r.body["status"], "preview");
    assert_eq!(r.body["type"], "BatchOperation::CalloutPopulation");
    assert_eq!(r.body["preview"]["contacts_count"], 5);
    // A preview writes nothing.
    assert_eq!(participations(&app, tok, id).await.len(), 1);

    // Its parameters change while it is a preview.
    let r = app
        .patch(
            &format!("/api/batch_operations/{b}"),
            tok,
            json!({"parameters": {"contact_filter_params": {"metadata": {"gender": "f"}}}, "metadata": {"x": 1}}),
        )
        .await;
    assert_status(&r, StatusCode::NO_CONTENT, "patch the preview");
    let r = app.get(&format!("/api/batch_operations/{b}"), tok).await;
    assert_eq!(r.body["preview"]["contacts_count"], 4, "five women, one opted out");
    assert_eq!(r.body["metadata"], json!({"foo": "bar", "x": 1}));

    let r = app.get(&format!("/api/batch_operations?q[callout_id]={id}"), tok).await;
    assert_eq!(r.header("total"), Some("1"));

    let r = app
        .post(
            &format!("/api/batch_operations/{b}/batch_operation_events"),
            tok,
            json!({"event": "queue"}),
        )
        .await;
    assert_status(&r, StatusCode::CREATED, "queue");
    assert_eq!(r.body["status"], "queued");
    let done = eventually(20, "population finished", || async {
        let r = app.get(&format!("/api/batch_operations/{b}"), tok).await;
        (r.body["status"] == "finished").then_some(r.body)
    })
    .await;
    assert_eq!(done["participations_created"], 3, "four women, one already in by hand");
    let ps = participations(&app, tok, id).await;
    let mut who: Vec<i64> = ps.iter().map(|p| p["contact_id"].as_i64().unwrap()).collect();
    who.sort();
    assert_eq!(who, vec![ids[0], ids[2], ids[6], ids[8]]);
    assert!(
        ps.iter()
            .filter(|p| p["contact_id"] != ids[0])
            .all(|p| p["callout_population_id"] == b)
    );
    assert!(
        ps.iter().all(|p| p["status"] == "pending"),
        "nothing is sent before the callout starts"
    );

    // After queueing, parameters are fixed; queueing again is refused; bad input is a 422.
    let r = app
        .patch(&format!("/api/batch_operations/{b}"), tok, json!({"parameters": {}}))
        .await;
    assert_invalid(&r, "parameters", "parameters after queueing");
    let r = app
        .post(
            &format!("/api/batch_operations/{b}/batch_operation_events"),
            tok,
            json!({"event": "queue"}),
        )
        .await;
    assert_invalid(&r, "event", "queue twice");
    for (body, field) in [
        (json!({"callout_id": id}), "type"),
        (json!({"type": "BatchOperation::Nope", "callout_id": id}), "type"),
        (json!({"type": "BatchOperation::CalloutPopulation"}), "callout"),
        (
            json!({"type": "BatchOperation::CalloutPopulation", "callout_id": id, "parameters": {"group_id": 999_999}}),
            "group_id",
        ),
        (
            json!({"type": "BatchOperation::CalloutPopulation", "callout_id": id, "parameters": {"colour": "red"}}),
            "parameters",
        ),
    ] {
        assert_invalid(
            &app.post("/api/batch_operations", tok, body.clone()).await,
            field,
            &format!("{body}"),
        );
    }
    // Isolation, permissions, delete.
    let other = app.tenant("Other").await;
    assert_not_found(
        &app.get(&format!("/api/batch_operations/{b}"), &other.token).await,
        "other's",
    );
    let r = app
        .post(
            "/api/batch_operations",
            &other.token,
            json!({"type": "BatchOperation::CalloutPopulation", "callout_id": id}),
        )
        .await;
    assert_invalid(&r, "callout", "another account's callout");
    let read = app.token_with(&t, &["batch_operations_read"]).await;
    assert_forbidden(
        &app.delete(&format!("/api/batch_operations/{b}"), &read).await,
        "delete with read",
    );
    assert_status(
        &app.delete(&format!("/api/batch_operations/{b}"), tok).await,
        StatusCode::NO_CONTENT,
        "delete",
    );
    assert_not_found(&app.get(&format!("/api/batch_operations/{b}"), tok).await, "deleted");
    assert_eq!(participations(&app, tok, id).await.len(), 4, "its participations stay");
    app.stop().await;
});

both_backends_with_engine!(
    an_sms_callout_reaches_its_audience_once_and_completes,
    |app| async move {
        let t = app.tenant("Acme").await;
        let tok = &t.token;
        let ids = contacts(&app, tok, 0..12).await;
        app.patch(
            &format!("/api/contacts/{}", ids[3]),
            tok,
            json!({"opted_out_at": "2026-01-01T00:00:00Z"}),
        )
        .await;
        let g = group_of(&app, tok, &ids).await;
        let id = callout(
            &app,
            tok,
            json!({"channel": "sms", "body": "Hello {{first_name}}", "group_id": g}),
        )
        .await["id"]
            .as_i64()
            .unwrap();
        // A contact added by hand who opts out before her turn is not messaged.
        let r = app
            .post(
                &format!("/api/callouts/{id}/callout_participations"),
                tok,
                json!({"contact_id": ids[5]}),
            )
            .await;
        let late = r.body["id"].as_i64().unwrap();
        app.patch(
            &format!("/api/contacts/{}", ids[5]),
            tok,
            json!({"opted_out_at": "2026-01-01T00:00:00Z"}),
        )
        .await;
        let r = event(&app, tok, id, "start").await;
        assert_status(&r, StatusCode::CREATED, "start");
        let s = until_stats(&app, tok, id, "callout completed", |s| s["status"] == "completed").await;
        assert_eq!(s["total"], 11, "twelve in the group, one opted out before it started");
        assert_eq!(s["sent"], 10, "and one after she was added");
        assert_eq!(s["pending"], 0);
        assert_eq!(s["attempts"], 10, "each contact once");
        let r = app.get(&format!("/api/callout_participations/{late}"), tok).await;
        assert_eq!(r.body["status"], "invalid");
        assert_eq!(r.body["error_code"], "opted_out");
        let c = app.get(&format!("/api/callouts/{id}"), tok).await;
        assert_timestamp(&c.body["completed_at"], "completed_at");
        // Every one delivered, personalised, and exactly one attempt each.
        let s = until_stats(&app, tok, id, "all delivered", |s| s["delivered"] == 10).await;
        assert_eq!(s["failed"], 1, "the opted-out one counts as not reached");
        for p in participations(&app, tok, id)
            .await
            .into_iter()
            .filter(|p| p["id"] != late)
        {
            let tr = app.get(&format!("/api/transmissions/{}", p["id"]), tok).await;
            let n = tr.body["to"].as_str().unwrap()[5..].parse::<u32>().unwrap();
            assert_eq!(tr.body["body"], format!("Hello Name{n}"));
            assert_eq!(tr.body["origin"], "campaign");
            let a = app.get(&format!("/api/transmissions/{}/attempts", p["id"]), tok).await;
            assert_eq!(a.body.as_array().unwrap().len(), 1);
        }
        // A completed callout takes no more participations.
        let r = app
            .post(
                &format!("/api/callouts/{id}/callout_participations"),
                tok,
                json!({"contact_id": ids[0]}),
            )
            .await;
        assert_invalid(&r, "callout", "completed");
        app.stop().await;
    }
);

both_backends_with_engine!(
    undelivered_participations_are_retried_after_the_delay,
    |app| async move {
        let t = app.tenant("Acme").await;
        let tok = &t.token;
        let ok = contacts(&app, tok, 0..1).await[0];
        let r = app
            .post(
                "/api/contacts",
                tok,
                json!({"msisdn": sauti_channels::sandbox::numbers::UNDELIVERED}),
            )
            .await;
        let bad = r.body["id"].as_i64().unwrap();
        let g = group_of(&app, tok, &[ok, bad]).await;
        let id = callout(
        &app,
        tok,
        json!({"channel": "sms", "body": "Hi", "group_id": g, "max_attempts": 3, "retry_delay": 0, "retry_on": ["undelivered"]}),
    )
    .await["id"]
        .as_i64()
        .unwrap();
        event(&app, tok, id, "start").await;
        let s = until_stats(&app, tok, id, "callout completed", |s| s["status"] == "completed").await;
        assert_eq!(
            s["attempts"], 4,
            "one for the good number, three for the undelivered one"
        );
        assert_eq!(s["by_status"]["undelivered"], 1);
        assert_eq!(s["by_status"]["delivered"], 1);
        // Without `undelivered` in retry_on, one attempt is all.
        let id2 = callout(
            &app,
            tok,
            json!({"channel": "sms", "body": "Hi", "group_id": g, "retry_delay": 0, "retry_on": ["busy"]}),
        )
        .await["id"]
            .as_i64()
            .unwrap();
        event(&app, tok, id2, "start").await;
        let s = until_stats(&app, tok, id2, "second callout completed", |s| {
            s["status"] == "completed" && s["by_status"]["undelivered"] == 1
        })
        .await;
        assert_eq!(s["attempts"], 2);
        app.stop().await;
    }
);

/// The send times (the slots the pacer stamped) of a callout's attempts, in order.
async fn slots(app: &App, tok: &str, id: i64) -> Vec<chrono::DateTime<chrono::Utc>> {
    let mut out = Vec::new();
    for p in participations(app, tok, id).await {
        let a = app.get(&format!("/api/transmissions/{}/attempts", p["id"]), tok).await;
        for a in a.body.as_array().unwrap() {
            out.push(
                chrono::DateTime::parse_from_rfc3339(a["queued_at"].as_str().unwrap())
                    .unwrap()
                    .with_timezone(&chrono::Utc),
            );
        }
    }
    out.sort();
    out
}

/// Wait until `n` participations were sent, then check no more were.
async fn sent_is(app: &App, tok: &str, id: i64, n: i64, what: &str) {
    until_stats(app, tok, id, what, |s| s["sent"].as_i64() >= Some(n)).await;
    assert_eq!(stats(app, tok, id).await["sent"], n, "{what}: no more than {n}");
}

both_backends_started_by!(
    with_engine_and_clock,
    a_callout_sends_at_its_rate_per_minute,
    |app| async move {
        let t = app.tenant("Acme").await;
        let tok = &t.token;
        let g = group_of(&app, tok, &contacts(&app, tok, 0..30).await).await;
        let id = callout(
            &app,
            tok,
            json!({"channel": "sms", "body": "Hi", "group_id": g, "rate_per_minute": 60}),
        )
        .await["id"]
            .as_i64()
            .unwrap();
        event(&app, tok, id, "start").await;
        // One a second: the first at once, then one per second the clock moves.
        sent_is(&app, tok, id, 1, "at the start").await;
        for k in 1..=8 {
            app.advance(1);
            sent_is(&app, tok, id, k + 1, &format!("after {k} s")).await;
        }
        let s = slots(&app, tok, id).await;
        assert_eq!(s.len(), 9);
        for w in s.windows(2) {
            assert_eq!(
                w[1] - w[0],
                chrono::Duration::seconds(1),
                "slots one second apart: {s:?}"
            );
        }
        // Time that passes while nothing ticks is not made up in a burst: what was stamped
        // ahead (the two slots of the 2 s horizon) goes, then one slot from now.
        app.advance(30);
        until_stats(&app, tok, id, "after a jump", |s| s["sent"].as_i64() >= Some(12)).await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(stats(&app, tok, id).await["sent"], 12, "not the 30 the jump skipped");

        // Pause: nothing more goes out, however long; resume goes on from now.
        let r = event(&app, tok, id, "pause").await;
        assert_status(&r, StatusCode::CREATED, "pause");
        let before = stats(&app, tok, id).await;
        assert_eq!(
            before["by_status"]["queued"],
            Value::Null,
            "released work is taken back on pause"
        );
        for _ in 0..5 {
            app.advance(10);
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(stats(&app, tok, id).await["sent"], before["sent"], "paused");
        event(&app, tok, id, "resume").await;
        let n = before["sent"].as_i64().unwrap();
        sent_is(&app, tok, id, n + 1, "resumed").await;
        app.advance(1);
        sent_is(&app, tok, id, n + 2, "resumed, a second later").await;

        // Stop: what was not sent is canceled; resume from stopped sends it after all.
        event(&app, tok, id, "stop").await;
        let s = stats(&app, tok, id).await;
        assert_eq!(s["by_status"]["canceled"], 30 - n - 2);
        let p = participations(&app, tok, id).await;
        assert!(
            p.iter()
                .filter(|p| p["status"] == "canceled")
                .all(|p| p["error_code"] == "callout_stopped")
        );
        app.advance(5);
        event(&app, tok, id, "resume").await;
        sent_is(&app, tok, id, n + 3, "resumed from stopped").await;
        app.stop().await;
    }
);

impl App {
    /// The server and engine on a clock standing at 19:59:58 in Nairobi (16:59:58 UTC).
    async fn evening_in_nairobi(backend: sauti_store::testing::Backend) -> Option<App> {
        let today = chrono::Utc::now().date_naive();
        let at = today.and_hms_opt(16, 59, 58).unwrap().and_utc();
        App::with_engine_at(backend, at).await
    }
}

both_backends_started_by!(
    evening_in_nairobi,
    a_callout_sends_only_inside_its_daily_window,
    |app| async move {
        let t = app.tenant("Acme").await;
        let tok = &t.token;
        let g = group_of(&app, tok, &contacts(&app, tok, 0..10).await).await;
        let id = callout(
            &app,
            tok,
            json!({
                "channel": "sms", "body": "Hi", "group_id": g, "rate_per_minute": 60,
                "window": {"start": "08:00", "end": "20:00", "time_zone": "Africa/Nairobi"},
            }),
        )
        .await["id"]
            .as_i64()
            .unwrap();
        // The clock stands at 19:59:58 in Nairobi.
        event(&app, tok, id, "start").await;
        sent_is(&app, tok, id, 1, "19:59:58").await;
        app.advance(1);
        sent_is(&app, tok, id, 2, "19:59:59").await;
        // 20:00: the window shuts; nothing goes out all night.
        for _ in 0..6 {
            app.advance(2 * 3600);
            tokio::time::sleep(std::time::Duration::from_millis(60)).await;
            let s = stats(&app, tok, id).await;
            assert_eq!(s["sent"], 2, "closed at night");
            assert_eq!(
                s["by_status"]["queued"],
                Value::Null,
                "nothing waits in the queue overnight"
            );
        }
        // 08:00:00 the next morning (19:59:59 + 12 h + 1 s), it goes on at its rate.
        app.advance(1);
        sent_is(&app, tok, id, 3, "08:00:00").await;
        app.advance(1);
        sent_is(&app, tok, id, 4, "08:00:01").await;
        let s = slots(&app, tok, id).await;
        let nairobi =
            |t: &chrono::DateTime<chrono::Utc>| (*t + chrono::Duration::hours(3)).format("%H:%M:%S").to_string();
        let local: Vec<String> = s.iter().map(nairobi).collect();
        assert_eq!(local, vec!["19:59:58", "19:59:59", "08:00:00", "08:00:01"]);
        app.stop().await;
    }
);
