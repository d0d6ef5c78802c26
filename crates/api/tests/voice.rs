//! Voice callouts end to end through a Twilio-compatible provider: the engine places
//! calls with Calls.json at `peers/fake_twilio.py`, which plays the callee — it fetches
//! each call's TwiML from sauti, presses keys in a `<Gather>`, and reports the call's
//! progress — signing every request with the official `twilio` package's
//! `RequestValidator`. sauti checks the signatures, stores the digits as results, and
//! shows the calls and the provider's requests as SCFM phone calls and remote phone call
//! events.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const TOKEN: &str = "v01ce-t0ken";
const BUSY: &str = "+15005550003";
const NO_ANSWER: &str = "+15005550004";

async fn contact(app: &App, token: &str, msisdn: &str, first_name: &str) -> i64 {
    let r = app
        .post(
            "/api/contacts",
            token,
            json!({"msisdn": msisdn, "first_name": first_name}),
        )
        .await;
    assert_status(&r, StatusCode::CREATED, "contact");
    r.body["id"].as_i64().unwrap()
}

async fn group_of(app: &App, token: &str, ids: &[i64]) -> i64 {
    let r = app
        .post("/api/groups", token, json!({"name": format!("callees {ids:?}")}))
        .await;
    assert_status(&r, StatusCode::CREATED, "group");
    let g = r.body["id"].as_i64().unwrap();
    let r = app
        .post(&format!("/api/groups/{g}/contacts"), token, json!({"contact_ids": ids}))
        .await;
    assert_status(&r, StatusCode::OK, "fill the group");
    g
}

async fn start(app: &App, token: &str, callout: i64) {
    let r = app
        .post(
            &format!("/api/callouts/{callout}/callout_events"),
            token,
            json!({"event": "start"}),
        )
        .await;
    assert_status(&r, StatusCode::CREATED, "start");
}

async fn completed(app: &App, token: &str, callout: i64) -> Value {
    eventually(60, "callout completed", || async {
        let s = app
            .get(&format!("/api/callouts/{callout}/statistics"), token)
            .await
            .body;
        (s["status"] == "completed").then_some(s)
    })
    .await
}

/// What the fake's callees did so far.
async fn calls_of(app: &App, base_url: &str) -> Value {
    app.client
        .get(format!("{base_url}/_calls"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Upload `audio` as a WAV recording named `name`; its id.
async fn upload_recording(app: &App, token: &str, name: &str, audio: &[u8]) -> i64 {
    let upload = reqwest::multipart::Form::new().text("name", name.to_string()).part(
        "file",
        reqwest::multipart::Part::bytes(audio.to_vec())
            .mime_str("audio/wav")
            .unwrap()
            .file_name(format!("{name}.wav")),
    );
    let r = Resp::from(
        app.client
            .post(app.url("/api/recordings"))
            .bearer_auth(token)
            .multipart(upload)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_status(&r, StatusCode::CREATED, "recording");
    r.body["id"].as_i64().unwrap()
}

/// The URL of the first `<Play>` in `twiml`.
fn play_url(twiml: &str) -> String {
    twiml
        .split("<Play>")
        .nth(1)
        .and_then(|t| t.split("</Play>").next())
        .unwrap_or_else(|| panic!("no <Play> in {twiml}"))
        .to_string()
}

/// What the fake's callees did, once `n` calls have ended (it writes a call down after
/// its last callback).
async fn fake_calls(app: &App, base_url: &str, n: usize) -> Value {
    eventually(20, "the fake's calls", || async {
        let calls = calls_of(app, base_url).await;
        (calls.as_array().unwrap().len() >= n).then_some(calls)
    })
    .await
}

/// A PCM WAV (8 kHz, 16-bit mono) of `samples` samples.
fn wav(samples: usize) -> Vec<u8> {
    let data = samples * 2;
    let mut v = Vec::with_capacity(44 + data);
    v.extend(b"RIFF");
    v.extend(((36 + data) as u32).to_le_bytes());
    v.extend(b"WAVEfmt ");
    v.extend(16u32.to_le_bytes());
    v.extend(1u16.to_le_bytes());
    v.extend(1u16.to_le_bytes());
    v.extend(8000u32.to_le_bytes());
    v.extend(16000u32.to_le_bytes());
    v.extend(2u16.to_le_bytes());
    v.extend(16u16.to_le_bytes());
    v.extend(b"data");
    v.extend((data as u32).to_le_bytes());
    for i in 0..samples {
        v.extend((i as i16).wrapping_mul(97).to_le_bytes());
    }
    v
}

/// Post a form to sauti as a provider would, with `signature` as X-Twilio-Signature.
async fn provider_post(app: &App, path: &str, form: &[(&str, &str)], signature: &str) -> StatusCode {
    app.client
        .post(app.url(path))
        .header("X-Twilio-Signature", signature)
        .form(form)
        .send()
        .await
        .unwrap()
        .status()
}

both_backends_with_engine!(
    voice_callouts_call_through_a_twilio_compatible_provider,
    |app| async move {
        let (_peer, base_url) = fake_twilio(TOKEN, "0.3").await;
        let t = app.tenant("Acme").await;
        let tok = &t.token;
        let r = app
            .post(
                "/api/providers",
                tok,
                json!({"name": "somleng", "kind": "twilio", "channels": ["voice"], "settings": {
                "account_sid": "AC0123", "auth_token": TOKEN, "base_url": base_url, "from": "+15005550006"}}),
            )
            .await;
        assert_status(&r, StatusCode::CREATED, "twilio voice provider");
        let provider_id = r.body["id"].as_i64().unwrap();

        // What a voice call flow needs is checked when the callout is written.
        let r = app
            .post(
                "/api/callouts",
                tok,
                json!({"call_flow_logic": "CallFlowLogic::PlayMessage"}),
            )
            .await;
        assert_invalid(&r, "audio_url", "PlayMessage without audio");
        let r = app
            .post("/api/callouts", tok, json!({"call_flow_logic": "CallFlowLogic::Say"}))
            .await;
        assert_invalid(&r, "body", "Say without text");
        let r = app
            .post(
                "/api/callouts",
                tok,
                json!({"call_flow_logic": "CallFlowLogic::PlayMessage", "recording_id": 999_999}),
            )
            .await;
        assert_invalid(&r, "recording_id", "someone else's or no recording");
        let r = app
            .post(
                "/api/callouts",
                tok,
                json!({"call_flow_logic": "CallFlowLogic::Gather", "body": "x", "settings": {"num_digits": 0}}),
            )
            .await;
        assert_invalid(&r, "settings", "Gather of no digits");

        let ann = contact(&app, tok, "+254712000001", "Ann").await;
        let bob = contact(&app, tok, "+254712000042", "Bob").await;
        let busy = contact(&app, tok, BUSY, "Busy").await;
        let quiet = contact(&app, tok, NO_ANSWER, "Quiet").await;
        // Refused by the provider (21211): never placed, so SCFM's `errored`.
        let refused = contact(&app, tok, "+15005550001", "Refused").await;
        let g = group_of(&app, tok, &[ann, bob, busy, quiet, refused]).await;
        // A busy line is tried again (`retry_on` has busy), an unanswered one is not.
        let r = app
            .post(
                "/api/callouts",
                tok,
                json!({"call_flow_logic": "CallFlowLogic::Gather", "body": "Hi {{first_name}}, press two keys <now>",
                   "settings": {"num_digits": 2, "language": "en-GB"}, "group_id": g,
                   "max_attempts": 2, "retry_delay": 0, "retry_on": ["busy"]}),
            )
            .await;
        assert_status(&r, StatusCode::CREATED, "gather callout");
        let callout = r.body["id"].as_i64().unwrap();
        start(&app, tok, callout).await;
        let s = completed(&app, tok, callout).await;
        assert_eq!(s["answered"], 2, "{s}");
        assert_eq!(s["attempts"], 6, "Ann, Bob, Busy twice, Quiet and Refused once: {s}");
        assert_eq!(s["by_status"]["failed"], 1, "{s}");
        assert_eq!(s["by_status"]["delivered"], 2, "{s}");
        assert_eq!(s["by_status"]["undelivered"], 2, "{s}");

        // Participations: answered, and the keys pressed as results.
        let parts = app
            .get(&format!("/api/callouts/{callout}/callout_participations"), tok)
            .await
            .body;
        let part = |contact: i64| -> Value {
            parts
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["contact_id"] == contact)
                .cloned()
                .unwrap()
        };
        assert_eq!(part(ann)["answered"], true);
        assert_eq!(part(busy)["answered"], false);
        assert_eq!(part(busy)["phone_calls_count"], 2);
        assert_eq!(part(quiet)["phone_calls_count"], 1);
        assert_eq!(part(quiet)["error_code"], "not_answered");
        assert_eq!(
            (&part(refused)["status"], &part(refused)["error_code"]),
            (&json!("failed"), &json!("21211"))
        );
        let ann_part = part(ann)["id"].as_i64().unwrap();
        let results = app
            .get(&format!("/api/transmissions/{ann_part}/results"), tok)
            .await
            .body;
        let dtmf: Vec<&Value> = results
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["type"] == "dtmf")
            .collect();
        assert_eq!(dtmf.len(), 1, "{results}");
        assert_eq!((&dtmf[0]["name"], &dtmf[0]["data"]), (&json!("digits"), &json!("01")));
        let bob_part = part(bob)["id"].as_i64().unwrap();
        let results = app
            .get(&format!("/api/transmissions/{bob_part}/results"), tok)
            .await
            .body;
        assert!(
            results
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["type"] == "dtmf" && r["data"] == "42"),
            "{results}"
        );

        // What the callee heard: the personalised prompt, escaped, in the callout's language.
        let calls = fake_calls(&app, &base_url, 5).await;
        let ann_call = calls
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["to"] == "+254712000001")
            .unwrap();
        assert_eq!(ann_call["twiml_status"], 200, "{ann_call}");
        let twiml = ann_call["twiml"].as_str().unwrap();
        assert!(twiml.contains("<Gather numDigits=\"2\""), "{twiml}");
        assert!(
            twiml.contains("<Say language=\"en-GB\">Hi Ann, press two keys &lt;now&gt;</Say>"),
            "{twiml}"
        );
        assert!(
            ann_call["gather_answer"].as_str().unwrap().contains("<Hangup/>"),
            "{ann_call}"
        );
        let requests: Value = app
            .client
            .get(format!("{base_url}/_requests"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let placed = requests
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["path"].as_str().unwrap().ends_with("/Calls.json"))
            .unwrap();
        let events: Vec<&str> = placed["pairs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p[0] == "StatusCallbackEvent")
            .map(|p| p[1].as_str().unwrap())
            .collect();
        assert_eq!(events, ["initiated", "ringing", "answered", "completed"]);
        assert_eq!(
            placed["form"]["StatusCallback"],
            format!("{}/callbacks/twilio/{provider_id}/calls", app.base)
        );

        // Phone calls, as SCFM shows them.
        let r = app.get(&format!("/api/callouts/{callout}/phone_calls"), tok).await;
        assert_status(&r, StatusCode::OK, "phone calls of the callout");
        assert_eq!(r.header("total"), Some("6"));
        assert_eq!(r.header("per-page"), Some("25"));
        let mut statuses: Vec<&str> = r
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["status"].as_str().unwrap())
            .collect();
        statuses.sort();
        assert_eq!(
            statuses,
            ["busy", "busy", "completed", "completed", "errored", "not_answered"]
        );
        let r = app
            .get(&format!("/api/callout_participations/{ann_part}/phone_calls"), tok)
            .await;
        assert_eq!(r.header("total"), Some("1"));
        let call_id = r.body[0]["id"].as_i64().unwrap();
        let call = app.get(&format!("/api/phone_calls/{call_id}"), tok).await;
        assert_status(&call, StatusCode::OK, "phone call");
        let c = &call.body;
        assert_eq!(c["status"], "completed");
        assert_eq!(c["callout_participation_id"], ann_part);
        assert_eq!(c["callout_id"], callout);
        assert_eq!(c["contact_id"], ann);
        assert_eq!(c["msisdn"], "+254712000001");
        assert_eq!(c["call_flow_logic"], "CallFlowLogic::Gather");
        assert_eq!(c["duration"], 7);
        assert_eq!(c["remote_status"], "completed");
        assert!(c["remote_call_id"].as_str().unwrap().starts_with("CA"), "{c}");
        assert_eq!(c["remote_queue_response"]["status"], "queued");
        let r = app.get("/api/phone_calls?q[msisdn]=%2B15005550003", tok).await;
        assert_eq!(r.header("total"), Some("2"), "{}", r.body);
        assert_eq!(app.get("/api/phone_calls", tok).await.header("total"), Some("6"));

        // The provider's requests about Ann's call, as remote phone call events.
        let r = app
            .get(
                &format!("/api/remote_phone_call_events?q[phone_call_id]={call_id}"),
                tok,
            )
            .await;
        assert_status(&r, StatusCode::OK, "events of a call");
        let events = r.body.as_array().unwrap().clone();
        let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert!(kinds.contains(&"twiml") && kinds.contains(&"gather"), "{kinds:?}");
        let done = events
            .iter()
            .find(|e| e["details"]["CallStatus"] == "completed")
            .unwrap();
        assert_eq!(done["phone_call_id"], call_id);
        assert_eq!(done["remote_direction"], "outbound-api");
        assert_eq!(done["call_flow_logic"], "CallFlowLogic::Gather");
        assert_eq!(done["call_duration"], 7);
        let event_id = done["id"].as_i64().unwrap();
        let r = app
            .patch(
                &format!("/api/remote_phone_call_events/{event_id}"),
                tok,
                json!({"metadata": {"foo": "bar"}}),
            )
            .await;
        assert_status(&r, StatusCode::NO_CONTENT, "patch event");
        let r = app
            .patch(
                &format!("/api/remote_phone_call_events/{event_id}"),
                tok,
                json!({"metadata": {"baz": 1}, "metadata_merge_mode": "merge"}),
            )
            .await;
        assert_status(&r, StatusCode::NO_CONTENT, "merge into event");
        let e = app
            .get(&format!("/api/remote_phone_call_events/{event_id}"), tok)
            .await
            .body;
        assert_eq!(e["metadata"], json!({"foo": "bar", "baz": 1}));
        assert_eq!(
            e["details"]["CallStatus"], "completed",
            "the provider's words stay as they were"
        );
        let r = app.get("/api/remote_phone_call_events?q[metadata][foo]=bar", tok).await;
        assert_eq!(r.header("total"), Some("1"));
        let r = app
            .patch(
                &format!("/api/remote_phone_call_events/{event_id}"),
                tok,
                json!({"metadata": 5}),
            )
            .await;
        assert_invalid(&r, "metadata", "metadata not an object");
        let all_events = app
            .get("/api/remote_phone_call_events", tok)
            .await
            .header("total")
            .unwrap()
            .to_string();

        // Forged requests are refused and change nothing.
        let sid = c["remote_call_id"].as_str().unwrap();
        let forged = [("CallSid", sid), ("CallStatus", "busy"), ("AccountSid", "AC0123")];
        let path = format!("/callbacks/twilio/{provider_id}/calls");
        assert_eq!(
            provider_post(&app, &path, &forged, "bm90IGEgc2lnbmF0dXJl").await,
            StatusCode::FORBIDDEN
        );
        assert_eq!(provider_post(&app, &path, &forged, "").await, StatusCode::FORBIDDEN);
        let path = format!("/twiml/calls/{call_id}");
        assert_eq!(
            provider_post(&app, &path, &forged, "bm90IGEgc2lnbmF0dXJl").await,
            StatusCode::FORBIDDEN
        );
        let digits = [("CallSid", sid), ("Digits", "99")];
        let path = format!("/twiml/calls/{call_id}/gather");
        assert_eq!(
            provider_post(&app, &path, &digits, "bm90IGEgc2lnbmF0dXJl").await,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            app.get(&format!("/api/phone_calls/{call_id}"), tok).await.body["status"],
            "completed"
        );
        assert_eq!(
            app.get("/api/remote_phone_call_events", tok).await.header("total"),
            Some(all_events.as_str())
        );
        let results = app
            .get(&format!("/api/transmissions/{ann_part}/results"), tok)
            .await
            .body;
        assert_eq!(
            results
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["type"] == "dtmf")
                .count(),
            1
        );
        // A correctly signed callback about an unknown call is kept, answered 204.
        let unknown = vec![
            ("CallSid".to_string(), "CA-unknown".to_string()),
            ("CallStatus".to_string(), "completed".to_string()),
        ];
        let url = format!("{}/callbacks/twilio/{provider_id}/calls", app.base);
        let sig = sauti_channels::twilio::signature(TOKEN, &url, &unknown);
        let form: Vec<(&str, &str)> = unknown.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            provider_post(&app, &format!("/callbacks/twilio/{provider_id}/calls"), &form, &sig).await,
            StatusCode::NO_CONTENT
        );
        // TwiML of a call that does not exist.
        assert_eq!(
            provider_post(&app, "/twiml/calls/999999", &forged, &sig).await,
            StatusCode::NOT_FOUND
        );

        // A PlayMessage callout plays its audio.
        let solo = group_of(&app, tok, &[ann]).await;
        let r = app
        .post(
            "/api/callouts",
            tok,
            json!({"call_flow_logic": "CallFlowLogic::PlayMessage", "audio_url": "https://example.com/a.mp3?x=1&y=2",
                   "group_id": solo}),
        )
        .await;
        assert_status(&r, StatusCode::CREATED, "play callout");
        let play = r.body["id"].as_i64().unwrap();
        // A participation's own call flow wins over its callout's.
        let r = app
            .post(
                &format!("/api/callouts/{play}/callout_participations"),
                tok,
                json!({"contact_id": bob, "call_flow_logic": "CallFlowLogic::HelloWorld"}),
            )
            .await;
        assert_status(&r, StatusCode::CREATED, "participation with its own flow");
        start(&app, tok, play).await;
        let s = completed(&app, tok, play).await;
        assert_eq!(s["answered"], 2, "{s}");
        let calls = fake_calls(&app, &base_url, 7).await;
        let twiml_to = |to: &str| -> String {
            calls.as_array().unwrap()[5..7].iter().find(|c| c["to"] == to).unwrap()["twiml"]
                .as_str()
                .unwrap()
                .to_string()
        };
        assert!(twiml_to("+254712000042").contains("<Say>Hello World!</Say>"));
        let twiml = twiml_to("+254712000001");
        assert!(
            twiml.contains("<Play>https://example.com/a.mp3?x=1&amp;y=2</Play>"),
            "{twiml}"
        );

        // …or an uploaded recording, which sauti serves to the provider at an unguessable URL.
        let audio = wav(800);
        let recording = upload_recording(&app, tok, "greeting", &audio).await;
        let r = app
            .post(
                "/api/callouts",
                tok,
                json!({"call_flow_logic": "CallFlowLogic::PlayMessage", "recording_id": recording, "group_id": solo}),
            )
            .await;
        assert_status(&r, StatusCode::CREATED, "recording callout");
        let recorded = r.body["id"].as_i64().unwrap();
        start(&app, tok, recorded).await;
        completed(&app, tok, recorded).await;
        let calls = fake_calls(&app, &base_url, 8).await;
        let twiml = calls.as_array().unwrap()[7]["twiml"].as_str().unwrap().to_string();
        let play = play_url(&twiml);
        assert!(
            play.starts_with(&format!("{}/twiml/calls/", app.base)) && play.contains("token="),
            "{twiml}"
        );
        let got = app.client.get(&play).send().await.unwrap();
        assert_eq!(got.status(), StatusCode::OK);
        assert_eq!(got.headers()["content-type"], "audio/wav");
        assert_eq!(got.bytes().await.unwrap().to_vec(), audio);
        let forged = format!("{}x", play.trim_end_matches(|c: char| c != '='));
        assert_eq!(
            app.client.get(&forged).send().await.unwrap().status(),
            StatusCode::NOT_FOUND
        );

        // Another tenant sees none of it, and cannot use the recording.
        let other = app.tenant("Other").await;
        assert_not_found(
            &app.get(&format!("/api/phone_calls/{call_id}"), &other.token).await,
            "other's call",
        );
        assert_eq!(
            app.get("/api/phone_calls", &other.token).await.header("total"),
            Some("0")
        );
        assert_not_found(
            &app.get(&format!("/api/callouts/{callout}/phone_calls"), &other.token)
                .await,
            "other's callout",
        );
        assert_not_found(
            &app.get(
                &format!("/api/callout_participations/{ann_part}/phone_calls"),
                &other.token,
            )
            .await,
            "other's participation",
        );
        assert_not_found(
            &app.get(&format!("/api/remote_phone_call_events/{event_id}"), &other.token)
                .await,
            "other's event",
        );
        assert_not_found(
            &app.patch(
                &format!("/api/remote_phone_call_events/{event_id}"),
                &other.token,
                json!({"metadata": {}}),
            )
            .await,
            "patch other's event",
        );
        assert_eq!(
            app.get("/api/remote_phone_call_events", &other.token)
                .await
                .header("total"),
            Some("0")
        );

        // Permissions.
        let callouts_only = app.token_with(&t, &["callouts_read"]).await;
        assert_forbidden(
            &app.get("/api/phone_calls", &callouts_only).await,
            "phone calls without phone_calls_read",
        );
        assert_forbidden(
            &app.get("/api/remote_phone_call_events", &callouts_only).await,
            "events without permission",
        );
        let readers = app
            .token_with(&t, &["phone_calls_read", "remote_phone_call_events_read"])
            .await;
        assert_status(
            &app.get(&format!("/api/phone_calls/{call_id}"), &readers).await,
            StatusCode::OK,
            "reader",
        );
        assert_forbidden(
            &app.patch(
                &format!("/api/remote_phone_call_events/{event_id}"),
                &readers,
                json!({"metadata": {}}),
            )
            .await,
            "patch without remote_phone_call_events_write",
        );
        app.stop().await;
    }
);

/// The TwiML the fake's callee got on its call to `to`.
async fn twiml_heard(app: &App, base_url: &str, to: &str) -> String {
    eventually(30, "the call's TwiML", || async {
        let calls = calls_of(app, base_url).await;
        calls
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["to"] == to)
            .and_then(|c| c["twiml"].as_str().map(String::from))
    })
    .await
}

async fn final_status(app: &App, token: &str, id: i64) -> Value {
    eventually(30, "the message final", || async {
        let t = app.get(&format!("/api/transmissions/{id}"), token).await.body;
        (t["completed_at"].is_string()).then_some(t)
    })
    .await
}

both_backends_with_engine!(single_voice_messages_and_voice_codes_are_calls, |app| async move {
    let (_peer, base_url) = fake_twilio(TOKEN, "0.1").await;
    let t = app.tenant("Acme").await;
    let tok = &t.token;
    let r = app
        .post(
            "/api/providers",
            tok,
            json!({"name": "somleng", "kind": "twilio", "channels": ["voice"], "settings": {
                "account_sid": "AC0123", "auth_token": TOKEN, "base_url": base_url, "from": "+15005550006"}}),
        )
        .await;
    assert_status(&r, StatusCode::CREATED, "twilio voice provider");

    // One call that says its text (the default call flow of a message of its own).
    let r = app
        .post(
            "/api/transmissions",
            tok,
            json!({"to": "+254712000007", "channel": "voice", "body": "The river is rising <fast>"}),
        )
        .await;
    assert_status(&r, StatusCode::CREATED, "voice message");
    assert_eq!(r.body["channel"], "voice");
    assert_eq!(r.body["call_flow_logic"], "CallFlowLogic::Say");
    let say_id = r.body["id"].as_i64().unwrap();
    let twiml = twiml_heard(&app, &base_url, "+254712000007").await;
    assert!(twiml.contains("<Say>The river is rising &lt;fast&gt;</Say>"), "{twiml}");
    let m = final_status(&app, tok, say_id).await;
    assert_eq!(m["status"], "delivered", "{m}");
    let r = app.get(&format!("/api/transmissions/{say_id}/attempts"), tok).await;
    assert_eq!(r.body[0]["provider_kind"], "twilio", "{}", r.text);

    // A question: the channel follows from the call flow, the key pressed is a result.
    let r = app
        .post(
            "/api/transmissions",
            tok,
            json!({"to": "+254712000042", "call_flow_logic": "CallFlowLogic::Gather", "body": "Press 2 if safe"}),
        )
        .await;
    assert_status(&r, StatusCode::CREATED, "gather message");
    assert_eq!(r.body["channel"], "voice");
    let asked = r.body["id"].as_i64().unwrap();
    let twiml = twiml_heard(&app, &base_url, "+254712000042").await;
    assert!(twiml.contains("<Gather numDigits=\"1\""), "{twiml}");
    final_status(&app, tok, asked).await;
    let results = eventually(20, "the digits", || async {
        let r = app.get(&format!("/api/transmissions/{asked}/results"), tok).await.body;
        r.as_array()
            .unwrap()
            .iter()
            .find(|r| r["type"] == "dtmf")
            .map(|r| r["data"].clone())
    })
    .await;
    assert_eq!(results, "2");

    // Audio at a URL; a copy of the message plays it too.
    let r = app
        .post(
            "/api/transmissions",
            tok,
            json!({"to": "+254712000051", "audio_url": "https://example.com/warning.mp3"}),
        )
        .await;
    assert_status(&r, StatusCode::CREATED, "play message");
    assert_eq!(r.body["call_flow_logic"], "CallFlowLogic::PlayMessage");
    let played = r.body["id"].as_i64().unwrap();
    let twiml = twiml_heard(&app, &base_url, "+254712000051").await;
    assert!(
        twiml.contains("<Play>https://example.com/warning.mp3</Play>"),
        "{twiml}"
    );
    final_status(&app, tok, played).await;
    let r = app
        .post(&format!("/api/transmissions/{played}/clone"), tok, json!({}))
        .await;
    assert_status(&r, StatusCode::CREATED, "clone");
    assert_eq!(
        (&r.body["call_flow_logic"], &r.body["audio_url"]),
        (
            &json!("CallFlowLogic::PlayMessage"),
            &json!("https://example.com/warning.mp3")
        )
    );

    // An uploaded recording, served to the provider at the call's own URL; another
    // tenant cannot send it.
    let audio = wav(400);
    let recording = upload_recording(&app, tok, "siren", &audio).await;
    let stranger = app.tenant("Stranger").await;
    let r = app
        .post(
            "/api/transmissions",
            &stranger.token,
            json!({"to": "+254712000061", "recording_id": recording}),
        )
        .await;
    assert_invalid(&r, "recording_id", "another tenant's recording");
    let r = app
        .post(
            "/api/transmissions",
            tok,
            json!({"to": "+254712000061", "recording_id": recording}),
        )
        .await;
    assert_status(&r, StatusCode::CREATED, "recording message");
    let twiml = twiml_heard(&app, &base_url, "+254712000061").await;
    let play = play_url(&twiml);
    let got = app.client.get(&play).send().await.unwrap();
    assert_eq!(got.status(), StatusCode::OK, "{play}");
    assert_eq!(got.bytes().await.unwrap().to_vec(), audio);

    // A code by voice: the call reads it digit by digit, twice, and it verifies.
    let r = app
        .post(
            "/api/verifications",
            tok,
            json!({"to": "+254712000099", "channel": "voice", "code_length": 4}),
        )
        .await;
    assert_status(&r, StatusCode::CREATED, "voice verification");
    assert_eq!(r.body["channel"], "voice");
    let verification = r.body["id"].as_i64().unwrap();
    let twiml = twiml_heard(&app, &base_url, "+254712000099").await;
    let said: Vec<&str> = twiml
        .split("<Say>")
        .skip(1)
        .map(|s| s.split("</Say>").next().unwrap())
        .collect();
    assert_eq!(said.len(), 2, "{twiml}");
    assert_eq!(said[0], said[1], "{twiml}");
    let spoken = said[0].rsplit(": ").next().unwrap();
    assert_eq!(spoken.len(), "1, 2, 3, 4".len(), "digit by digit: {twiml}");
    let code: String = spoken.chars().filter(char::is_ascii_digit).collect();
    assert!(!twiml.contains("{{code}}"), "{twiml}");
    let r = app
        .post(
            &format!("/api/verifications/{verification}/verification_checks"),
            tok,
            json!({"code": code}),
        )
        .await;
    assert_status(&r, StatusCode::OK, "the code heard");
    assert_eq!(r.body["status"], "approved", "{}", r.text);
    // Its message is the verification's own; it cannot be sent again as a copy.
    let msgs = app.get("/api/transmissions?per_page=100", tok).await.body;
    let msg_id = msgs
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["to"] == "+254712000099")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let r = app
        .post(&format!("/api/transmissions/{msg_id}/clone"), tok, json!({}))
        .await;
    assert_invalid(&r, "base", "clone of a code");

    // The call of a message is the message's account's: another tenant's token gets
    // nothing, and the provider's signature is still required.
    let other = app.tenant("Other").await;
    assert_not_found(
        &app.get(&format!("/api/transmissions/{say_id}"), &other.token).await,
        "other's message",
    );
    app.stop().await;
});
