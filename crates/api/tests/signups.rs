//! Phone-verified sign-up, the Nunua journey on the native API: a code to the phone, the
//! check, the customer's photo and ID, registration, log in, profile, log out.

mod common;

use common::*;
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

/// A real 1×1 PNG, padded with `tag` so each upload is distinct.
fn png(tag: u8) -> Vec<u8> {
    let mut v = vec![
        0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00,
        0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4, 0x89, 0x00, 0x00, 0x00,
        0x0A, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x00, 0x01, 0x00, 0x00, 0x05, 0x00, 0x01, 0x0D, 0x0A, 0x2D,
        0xB4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
    ];
    v.resize(200, tag);
    v
}

fn jpeg() -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00, 0x01];
    v.extend(std::iter::repeat_n(0x42, 100));
    v.extend([0xFF, 0xD9]);
    v
}

async fn upload(app: &App, token: &str, id: i64, parts: Vec<(&'static str, Vec<u8>)>) -> Resp {
    upload_with(&app.client, app, token, id, parts).await
}

async fn upload_with(
    client: &reqwest::Client,
    app: &App,
    token: &str,
    id: i64,
    parts: Vec<(&'static str, Vec<u8>)>,
) -> Resp {
    let mut form = Form::new();
    for (name, bytes) in parts {
        // Names and declared types say nothing: the content decides.
        form = form.part(
            name,
            Part::bytes(bytes)
                .file_name("upload.bin")
                .mime_str("image/png")
                .unwrap(),
        );
    }
    let req = client
        .put(app.url(&format!("/api/signups/{id}/documents")))
        .bearer_auth(token)
        .multipart(form);
    Resp::from(req.send().await.unwrap()).await
}

async fn signup_code(app: &App, account_id: i64, signup: &Value) -> String {
    app.verification_code(account_id, signup["verification_id"].as_i64().unwrap())
        .await
}

fn registration() -> Value {
    json!({"email": "JohnDoe@Gmail.com", "password": "correct horse", "name": "John Doe",
           "id_number": "11122234", "dob": "1990-01-01"})
}

// A small image limit, so the refused upload fits in the socket buffers: with a body of
// megabytes the server's 413 races the client still writing (a broken pipe instead).
both_backends_with!(
    the_whole_nunua_journey,
    sauti_api::ApiConfig {
        logo_limit_bytes: 4096,
        ..common::test_api_config()
    },
    |app, _data_dir| async move {
        let t = app.tenant("Nunua").await;
        let app_token = app.token_with(&t, &["signups_read", "signups_write"]).await;

        let r = app
            .post("/api/signups", &app_token, json!({"phone": "+254712333444"}))
            .await;
        assert_status(&r, StatusCode::CREATED, "send OTP");
        let s = r.body.clone();
        let id = s["id"].as_i64().unwrap();
        assert_eq!(r.header("location"), Some(format!("/api/signups/{id}").as_str()));
        assert_eq!(s["status"], "pending_verification");
        assert_eq!(s["phone"], "+254712333444");
        assert_eq!(s["phone_verified_at"], Value::Null);

        // Nothing before the phone is verified.
        let r = app
            .post(&format!("/api/signups/{id}/registration"), &app_token, registration())
            .await;
        assert_invalid(&r, "phone", "register before verifying");
        let r = upload(
            &app,
            &app_token,
            id,
            vec![("photo", png(1)), ("id_front", png(2)), ("id_back", png(3))],
        )
        .await;
        assert_invalid(&r, "phone", "documents before verifying");

        let code = signup_code(&app, t.account_id, &s).await;
        let wrong = if code == "000000" { "000001" } else { "000000" };
        let check = async |code: &str| {
            app.post(
                &format!("/api/signups/{id}/verification_checks"),
                &app_token,
                json!({ "code": code }),
            )
            .await
        };
        let r = check(wrong).await;
        assert_invalid(&r, "code", "a wrong OTP");
        let r = check(&code).await;
        assert_status(&r, StatusCode::OK, "verify OTP");
        assert_eq!(r.body["status"], "verified");
        assert_timestamp(&r.body["phone_verified_at"], "phone_verified_at");
        let r = check(&code).await;
        assert_invalid(&r, "phone", "verify twice");

        // Documents: all three, images by content.
        let r = upload(&app, &app_token, id, vec![("photo", png(1)), ("id_front", png(2))]).await;
        assert_invalid(&r, "id_back", "a missing document");
        let r = upload(
            &app,
            &app_token,
            id,
            vec![
                ("photo", png(1)),
                ("id_front", png(2)),
                ("id_back", b"%PDF-1.4 not an image".to_vec()),
            ],
        )
        .await;
        assert_invalid(&r, "id_back", "not an image");
        let r = upload(
            &app,
            &app_token,
            id,
            vec![("photo", png(1)), ("id_front", png(2)), ("id_back", jpeg())],
        )
        .await;
        assert_status(&r, StatusCode::OK, "upload photos");
        assert_eq!(r.body["photo"], format!("/api/signups/{id}/documents/photo"));
        assert_eq!(r.body["id_back"], format!("/api/signups/{id}/documents/id_back"));
        let big = vec![0x89u8; 4097];
        // On its own connection: the server closes it after refusing the body.
        let r = upload_with(
            &reqwest::Client::new(),
            &app,
            &app_token,
            id,
            vec![("photo", big), ("id_front", png(2)), ("id_back", jpeg())],
        )
        .await;
        assert_status(&r, StatusCode::PAYLOAD_TOO_LARGE, "a photo over the limit");
        let doc = app
            .client
            .get(app.url(&format!("/api/signups/{id}/documents/id_back")))
            .bearer_auth(&app_token)
            .send()
            .await
            .unwrap();
        assert_eq!(doc.headers()["content-type"], "image/jpeg");
        assert_eq!(doc.bytes().await.unwrap().to_vec(), jpeg());

        // Registration, with its validation.
        let mut bad = registration();
        bad["dob"] = json!("2999-01-01");
        bad["email"] = json!("not-an-email");
        bad["id_number"] = json!("");
        let r = app
            .post(&format!("/api/signups/{id}/registration"), &app_token, bad)
            .await;
        for field in ["dob", "email", "id_number"] {
            assert_invalid(&r, field, "bad registration");
        }
        let mut bad = registration();
        bad["dob"] = json!("01/01/1990");
        let r = app
            .post(&format!("/api/signups/{id}/registration"), &app_token, bad)
            .await;
        assert_invalid(&r, "dob", "a date in another format");
        let r = app
            .post(&format!("/api/signups/{id}/registration"), &app_token, registration())
            .await;
        assert_status(&r, StatusCode::CREATED, "create account");
        let user = r.body.clone();
        assert_eq!(user["email"], "johndoe@gmail.com");
        assert_eq!(user["phone"], "+254712333444");
        assert_eq!(user["customer"]["name"], "John Doe");
        assert_eq!(user["customer"]["id_number"], "11122234");
        assert_eq!(user["customer"]["dob"], "1990-01-01");
        assert_eq!(user["permissions"], json!([]));
        assert!(user.get("password").is_none() && user.get("password_hash").is_none());
        let r = app
            .post(&format!("/api/signups/{id}/registration"), &app_token, registration())
            .await;
        assert_status(&r, StatusCode::CONFLICT, "register twice");

        // A second registration of the same phone, or the same e-mail, is a conflict.
        let r = app
            .post("/api/signups", &app_token, json!({"phone": "+254712333444"}))
            .await;
        assert_status(&r, StatusCode::CONFLICT, "the same phone again");
        assert_eq!(r.error_code(), "conflict");
        let r = app
            .post("/api/signups", &app_token, json!({"phone": "+254712333445"}))
            .await;
        let other = r.body.clone();
        let oid = other["id"].as_i64().unwrap();
        let code = signup_code(&app, t.account_id, &other).await;
        app.post(
            &format!("/api/signups/{oid}/verification_checks"),
            &app_token,
            json!({"code": code}),
        )
        .await;
        upload(
            &app,
            &app_token,
            oid,
            vec![("photo", png(4)), ("id_front", png(5)), ("id_back", png(6))],
        )
        .await;
        let r = app
            .post(&format!("/api/signups/{oid}/registration"), &app_token, registration())
            .await;
        assert_status(&r, StatusCode::CONFLICT, "the same e-mail again");
        let r = app.get(&format!("/api/signups/{oid}"), &app_token).await;
        assert_eq!(r.body["status"], "verified", "the refused registration wrote nothing");

        // Log in, profile, own documents, log out.
        let r = app
            .call(
                reqwest::Method::POST,
                "/api/authenticate",
                None,
                Some(json!({"email": "johndoe@gmail.com", "password": "correct horse"})),
            )
            .await;
        assert_status(&r, StatusCode::OK, "log in");
        assert_eq!(r.body["token_type"], "Bearer");
        let session = r.body["access_token"].as_str().unwrap().to_string();
        let r = app.get("/api/user", &session).await;
        assert_status(&r, StatusCode::OK, "user details");
        assert_eq!(r.body["id"], user["id"]);
        assert_eq!(r.body["phone"], "+254712333444");
        assert_timestamp(&r.body["phone_verified_at"], "phone_verified_at");
        assert_eq!(r.body["customer"]["name"], "John Doe");
        assert_eq!(r.body["customer"]["photo"], "/api/user/documents/photo");
        let photo = app
            .client
            .get(app.url("/api/user/documents/photo"))
            .bearer_auth(&session)
            .send()
            .await
            .unwrap();
        assert_eq!(photo.status(), StatusCode::OK);
        assert_eq!(photo.bytes().await.unwrap().to_vec(), png(1));
        // The customer holds no API permission: not even their own sign-up record.
        assert_forbidden(&app.get(&format!("/api/signups/{id}"), &session).await, "a customer");
        assert_forbidden(&app.get("/api/contacts", &session).await, "a customer");
        let r = app
            .call(reqwest::Method::POST, "/api/logout", Some(&session), None)
            .await;
        assert_status(&r, StatusCode::NO_CONTENT, "log out");
        let r = app.get("/api/user", &session).await;
        assert_status(&r, StatusCode::UNAUTHORIZED, "after log out");
        app.stop().await;
    }
);

both_backends!(signups_are_private_to_their_tenant, |app| async move {
    let a = app.tenant("A").await;
    let b = app.tenant("B").await;
    let r = app
        .post("/api/signups", &a.token, json!({"phone": "+254712333444"}))
        .await;
    let s = r.body.clone();
    let id = s["id"].as_i64().unwrap();
    let code = signup_code(&app, a.account_id, &s).await;
    assert_not_found(&app.get(&format!("/api/signups/{id}"), &b.token).await, "B reads A's");
    let r = app
        .post(
            &format!("/api/signups/{id}/verification_checks"),
            &b.token,
            json!({"code": code}),
        )
        .await;
    assert_not_found(&r, "B checks A's");
    let r = upload(
        &app,
        &b.token,
        id,
        vec![("photo", png(1)), ("id_front", png(2)), ("id_back", png(3))],
    )
    .await;
    assert_not_found(&r, "B uploads to A's");
    assert_not_found(
        &app.get(&format!("/api/signups/{id}/documents/photo"), &b.token).await,
        "B reads A's documents",
    );
    // The same phone signs up with another tenant independently.
    let r = app
        .post("/api/signups", &b.token, json!({"phone": "+254712333444"}))
        .await;
    assert_status(&r, StatusCode::CREATED, "another tenant");

    let reader = app.token_with(&a, &["signups_read"]).await;
    assert_forbidden(
        &app.post("/api/signups", &reader, json!({"phone": "+254712333445"}))
            .await,
        "start without write",
    );
    assert_status(
        &app.get("/api/signups", &reader).await,
        StatusCode::OK,
        "list with read",
    );
    let r = app.post("/api/signups", &a.token, json!({"phone": "nope"})).await;
    assert_invalid(&r, "phone", "a bad phone");
    let r = app.post("/api/signups", &a.token, json!({})).await;
    assert_invalid(&r, "phone", "no phone");
    let r = app
        .client
        .put(app.url(&format!("/api/signups/{id}/documents")))
        .bearer_auth(&a.token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(
        matches!(
            r.status(),
            StatusCode::UNPROCESSABLE_ENTITY | StatusCode::UNSUPPORTED_MEDIA_TYPE
        ),
        "{}",
        r.status()
    );
    app.stop().await;
});
