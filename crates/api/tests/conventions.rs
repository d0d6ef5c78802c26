//! The native API's conventions, as a client meets them: the house error shape for every
//! failure, metadata merge modes, `Idempotency-Key`, and the operations endpoints.

mod common;

use common::{App, Resp};
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A raw request: `body` is sent verbatim, with `content_type` if given.
async fn raw(
    app: &App,
    method: Method,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Option<Vec<u8>>,
    idempotency_key: Option<&str>,
) -> Resp {
    let mut req = app.client.request(method, app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(ct) = content_type {
        req = req.header(CONTENT_TYPE, ct);
    }
    if let Some(k) = idempotency_key {
        req = req.header("idempotency-key", k);
    }
    if let Some(b) = body {
        req = req.body(b);
    }
    Resp::from(req.send().await.expect("request")).await
}

/// POST JSON with an `Idempotency-Key`.
async fn post_idem(app: &App, token: &str, key: &str, body: Value) -> Resp {
    raw(
        app,
        Method::POST,
        "/api/access_tokens",
        Some(token),
        Some("application/json"),
        Some(serde_json::to_vec(&body).unwrap()),
        Some(key),
    )
    .await
}

async fn total(app: &App, token: &str) -> String {
    let r = app.get("/api/access_tokens", token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.header("total").expect("Total header").to_string()
}

/// Every error answer is JSON in the house shape, with the given status and code.
fn assert_error(r: &Resp, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.error_code(), code, "{}", r.text);
    let ct = r.header("content-type").unwrap_or_default();
    assert!(ct.starts_with("application/json"), "content-type {ct:?} for {}", r.text);
    let errors = r.body["errors"].as_object().unwrap();
    assert!(!errors.is_empty(), "errors must say something: {}", r.text);
    for (field, msgs) in errors {
        let msgs = msgs
            .as_array()
            .unwrap_or_else(|| panic!("{field}: not a list: {}", r.text));
        assert!(!msgs.is_empty() && msgs.iter().all(|m| m.as_str().is_some_and(|s| !s.is_empty())));
    }
}

/// A 422 whose errors name `field` (or a part of it, as `permissions[0]`).
fn assert_invalid(r: &Resp, field: &str) {
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let names = |k: &String| k == field || k.starts_with(&format!("{field}[")) || k.starts_with(&format!("{field}."));
    assert!(
        r.body["errors"].as_object().unwrap().keys().any(names),
        "expected an error about {field:?}: {}",
        r.text
    );
}

both_backends!(malformed_bodies_answer_in_the_house_shape, |app| async move {
    let t = app.tenant("Acme").await;
    let post = |ct: Option<&'static str>, body: &'static [u8]| {
        let app = &app;
        let token = t.token.clone();
        async move {
            raw(
                app,
                Method::POST,
                "/api/access_tokens",
                Some(&token),
                ct,
                Some(body.to_vec()),
                None,
            )
            .await
        }
    };

    // Malformed JSON: 400.
    for body in [
        &b"{\"permissions\": ["[..],
        b"{permissions: []}",
        b"{\"a\": 1,}",
        b"nul",
        b"{\"a\": 1} trailing",
        b"\xff\xfe{}",
    ] {
        let r = post(Some("application/json"), body).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    }

    // A JSON body under another media type: 415.
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "text/json",
        "application/xml",
    ] {
        let r = raw(
            &app,
            Method::POST,
            "/api/access_tokens",
            Some(&t.token),
            Some(ct),
            Some(br#"{"permissions": []}"#.to_vec()),
            None,
        )
        .await;
        assert_error(&r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    }
    // ... on PATCH too.
    let r = raw(
        &app,
        Method::PATCH,
        &format!("/api/access_tokens/{}", t.token_id),
        Some(&t.token),
        Some("text/plain"),
        Some(br#"{"metadata": {"a": 1}}"#.to_vec()),
        None,
    )
    .await;
    assert_error(&r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");

    // JSON with parameters or a +json suffix is JSON.
    for ct in [
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/vnd.api+json",
    ] {
        let r = raw(
            &app,
            Method::POST,
            "/api/access_tokens",
            Some(&t.token),
            Some(ct),
            Some(br#"{"permissions": []}"#.to_vec()),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{ct}: {}", r.text);
    }

    // JSON of the wrong shape: 422 naming the field.
    for (body, field) in [
        (json!({"metadata": "x"}), "metadata"),
        (json!({"metadata": [1, 2]}), "metadata"),
        (json!({"permissions": 5}), "permissions"),
        (json!({"permissions": "access_tokens_read"}), "permissions"),
        (json!({"permissions": [1]}), "permissions"),
        (json!({"expires_at": 12}), "expires_at"),
        (json!({"permissions": ["no_such_permission"]}), "permissions"),
        (json!({"expires_at": "next tuesday"}), "expires_at"),
        (json!({"expires_at": "2001-01-01T00:00:00Z"}), "expires_at"),
        // PostgreSQL cannot store a NUL character in text or JSONB: refused on every backend.
        (json!({"metadata": {"nul": "a\u{0}b"}}), "metadata"),
        (json!({"metadata": {"k\u{0}": 1}}), "metadata"),
        (json!({"metadata": {"deep": [{"x": "\u{0}"}]}}), "metadata"),
    ] {
        let r = app.post("/api/access_tokens", &t.token, body.clone()).await;
        assert_invalid(&r, field);
    }
    let r = app
        .patch(
            &format!("/api/access_tokens/{}", t.token_id),
            &t.token,
            json!({"metadata": 7}),
        )
        .await;
    assert_invalid(&r, "metadata");

    // A body that is JSON but not an object: 422.
    for body in [
        &b"[]"[..],
        b"[{\"permissions\": []}]",
        b"\"x\"",
        b"42",
        b"null",
        b"true",
    ] {
        let r = post(Some("application/json"), body).await;
        assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }

    // Nothing above created a token beyond the three JSON-typed ones.
    assert_eq!(total(&app, &t.token).await, "4");
    app.stop().await;
});

both_backends!(an_empty_body_reads_as_an_empty_object, |app| async move {
    let t = app.tenant("Acme").await;
    // SCFM's examples send `-d ''` (curl then says application/x-www-form-urlencoded).
    for (ct, body) in [
        (None, Some(Vec::new())),
        (None, None),
        (Some("application/x-www-form-urlencoded"), Some(Vec::new())),
        (Some("application/json"), Some(Vec::new())),
        (Some("application/json"), Some(b"  \n".to_vec())),
    ] {
        let r = raw(&app, Method::POST, "/api/access_tokens", Some(&t.token), ct, body, None).await;
        assert_eq!(r.status, StatusCode::CREATED, "{ct:?}: {}", r.text);
        assert_eq!(r.body["permissions"], json!([]));
        assert_eq!(r.body["metadata"], json!({}));
        assert!(r.body["token"].is_string());
    }
    // An empty PATCH changes nothing and succeeds.
    let r = raw(
        &app,
        Method::PATCH,
        &format!("/api/access_tokens/{}", t.token_id),
        Some(&t.token),
        None,
        None,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(total(&app, &t.token).await, "6");
    app.stop().await;
});

both_backends!(unknown_routes_and_methods_answer_in_the_house_shape, |app| async move {
    let t = app.tenant("Acme").await;
    for (method, path) in [
        (Method::GET, "/api/nope"),
        (Method::POST, "/api/nope"),
        (Method::GET, "/nope"),
        (Method::GET, "/api/access_tokens/1/nope"),
        (Method::DELETE, "/api"),
        (Method::GET, "/api/access_tokens/abc"),
        (Method::GET, "/api/access_tokens/-1"),
        (Method::GET, "/api/access_tokens/0"),
        (Method::GET, "/api/access_tokens/99999999999999999999999"),
        (Method::GET, "/api/access_tokens/999999"),
    ] {
        for token in [Some(t.token.as_str()), None] {
            let r = app.call(method.clone(), path, token, None).await;
            let existing_route = path.starts_with("/api/access_tokens/") && path.matches('/').count() == 3;
            if token.is_none() && existing_route {
                // A route that exists asks for credentials first.
                assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
            } else {
                assert_error(&r, StatusCode::NOT_FOUND, "not_found");
            }
        }
    }

    for (method, path) in [
        (Method::PUT, "/api/access_tokens"),
        (Method::DELETE, "/api/access_tokens"),
        (Method::PATCH, "/api/access_tokens"),
        (Method::POST, "/api/access_tokens/1"),
        (Method::PUT, "/api/access_tokens/1"),
        (Method::POST, "/healthz"),
        (Method::DELETE, "/metrics"),
    ] {
        for token in [Some(t.token.as_str()), None] {
            let r = app.call(method.clone(), path, token, Some(json!({}))).await;
            assert_error(&r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
        }
    }
    let r = app.call(Method::PUT, "/api/access_tokens", Some(&t.token), None).await;
    let allow = r.header("allow").unwrap_or_default().to_ascii_uppercase();
    assert!(
        allow.contains("GET") && allow.contains("POST"),
        "405 should say what is allowed: {allow:?}"
    );
    app.stop().await;
});

both_backends!(no_client_mistake_is_a_server_error, |app| async move {
    let t = app.tenant("Acme").await;
    let id = t.token_id;
    type Case = (Method, String, Option<&'static str>, Option<Vec<u8>>);
    let cases: Vec<Case> = vec![
        (
            Method::POST,
            "/api/access_tokens".into(),
            Some("application/json"),
            Some(vec![0, 1, 2]),
        ),
        (
            Method::POST,
            "/api/access_tokens".into(),
            Some("application/json"),
            Some(br#"{"metadata": {"a": 1}, "metadata": {"b": 2}}"#.to_vec()),
        ),
        (
            Method::POST,
            "/api/access_tokens".into(),
            Some("application/json"),
            Some(br#"{"permissions": [], "account_id": "x"}"#.to_vec()),
        ),
        (
            Method::POST,
            "/api/access_tokens".into(),
            Some("application/json"),
            Some(br#"{"permissions": [], "account_id": 99999999}"#.to_vec()),
        ),
        (
            Method::POST,
            "/api/access_tokens".into(),
            Some("application/json"),
            Some(br#"{"metadata": {"deep": [[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]}}"#.to_vec()),
        ),
        (
            Method::POST,
            "/api/access_tokens".into(),
            Some("application/json"),
            Some(br#"{"metadata": {"nul": "a\u0000b"}}"#.to_vec()),
        ),
        (
            Method::PATCH,
            format!("/api/access_tokens/{id}"),
            Some("application/json"),
            Some(br#"{"expires_at": "9999-99-99"}"#.to_vec()),
        ),
        (
            Method::PATCH,
            format!("/api/access_tokens/{id}"),
            Some("application/json"),
            Some(br#"{"permissions": null, "metadata": null}"#.to_vec()),
        ),
        (
            Method::PATCH,
            format!("/api/access_tokens/{id}"),
            Some("application/json"),
            Some(br#"{"metadata_merge_mode": 5}"#.to_vec()),
        ),
        (Method::GET, "/api/access_tokens?page=99999999999".into(), None, None),
        (Method::GET, "/api/access_tokens?page=4294967295".into(), None, None),
        (Method::GET, "/api/access_tokens?per_page=-1".into(), None, None),
        (Method::GET, "/api/access_tokens?q[metadata][a]=%FF".into(), None, None),
        (Method::GET, "/api/access_tokens?q=%%%".into(), None, None),
        (Method::GET, "/api/access_tokens?sort=".into(), None, None),
        (Method::GET, "/api/access_tokens?sort=-".into(), None, None),
        (
            Method::GET,
            "/api/access_tokens?q[metadata][a.numeric.gt]=1e400".into(),
            None,
            None,
        ),
        (
            Method::GET,
            "/api/access_tokens?q[metadata][a.numeric.gt]=NaN".into(),
            None,
            None,
        ),
        (
            Method::GET,
            "/api/access_tokens?q[metadata][a.date.gt]=99999-01-01".into(),
            None,
            None,
        ),
        (
            Method::GET,
            "/api/access_tokens?q[created_at_after]=0000-01-01".into(),
            None,
            None,
        ),
        (
            Method::GET,
            "/api/access_tokens?q[user_id]=99999999999999999999".into(),
            None,
            None,
        ),
        (
            Method::GET,
            "/api/access_tokens?q[metadata][a][b][c][d][e][f]=1".into(),
            None,
            None,
        ),
        (
            Method::DELETE,
            "/api/access_tokens/9223372036854775807".into(),
            None,
            None,
        ),
    ];
    for (method, path, ct, body) in cases {
        let r = raw(&app, method.clone(), &path, Some(&t.token), ct, body, None).await;
        assert!(
            r.status.is_success() || r.status.is_client_error(),
            "{method} {path}: {} {}",
            r.status,
            r.text
        );
        if !r.status.is_success() {
            r.error_code();
        }
    }
    // A bad Idempotency-Key is a client mistake too.
    let r = post_idem(&app, &t.token, &"k".repeat(300), json!({})).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    let mut req = app
        .client
        .post(app.url("/api/access_tokens"))
        .bearer_auth(&t.token)
        .json(&json!({}));
    req = req.header("idempotency-key", HeaderValue::from_bytes(b"caf\xe9").unwrap());
    let r = Resp::from(req.send().await.unwrap()).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    // A mangled Authorization header is 401, not 400 or 500.
    for auth in ["Bearer", "Bearer ", "Basic !!!", "Digest abc", "Bearer a b c"] {
        let r = Resp::from(
            app.client
                .get(app.url("/api/access_tokens"))
                .header("authorization", auth)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    }
    app.stop().await;
});

mod body_limit {
    use super::*;
    use sauti_store::testing::Backend;

    async fn scenario(app: App) {
        let t = app.tenant("Acme").await;
        let big = json!({"permissions": [], "metadata": {"blob": "x".repeat(2000)}});
        let r = app.post("/api/access_tokens", &t.token, big.clone()).await;
        assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
        // With an Idempotency-Key the body is read earlier: still 413.
        let r = post_idem(&app, &t.token, "big-1", big.clone()).await;
        assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
        // On PATCH too.
        let r = app
            .patch(&format!("/api/access_tokens/{}", t.token_id), &t.token, big)
            .await;
        assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
        // Just under the limit is fine.
        let small = json!({"permissions": [], "metadata": {"blob": "x".repeat(900)}});
        assert!(serde_json::to_vec(&small).unwrap().len() < 1024);
        let r = app.post("/api/access_tokens", &t.token, small).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert_eq!(total(&app, &t.token).await, "2");
        app.stop().await;
    }

    fn config() -> sauti_api::ApiConfig {
        sauti_api::ApiConfig {
            body_limit_bytes: 1024,
            ..Default::default()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        scenario(App::start_with(Backend::Sqlite, config()).await.unwrap()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Some(app) = App::start_with(Backend::Postgres, config()).await {
            scenario(app).await;
        }
    }
}

both_backends!(metadata_merge_modes, |app| async move {
    let t = app.tenant("Acme").await;
    let r = app
        .post(
            "/api/access_tokens",
            &t.token,
            json!({"permissions": [], "metadata": {"a": 1, "n": {"x": 1, "y": 2}}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let path = format!("/api/access_tokens/{}", r.body["id"]);
    let reset = || async {
        let r = app
            .patch(
                &path,
                &t.token,
                json!({"metadata": {"a": 1, "n": {"x": 1, "y": 2}}, "metadata_merge_mode": "replace"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    };
    let metadata = || async { app.get(&path, &t.token).await.body["metadata"].clone() };
    let update = json!({"b": 2, "n": {"y": 3}});

    // An unknown mode is refused and changes nothing.
    for mode in [json!("shallow"), json!(""), json!("MERGE")] {
        let r = app
            .patch(
                &path,
                &t.token,
                json!({"metadata": update, "metadata_merge_mode": mode}),
            )
            .await;
        assert_invalid(&r, "metadata_merge_mode");
    }
    let r = app
        .patch(&path, &t.token, json!({"metadata": update, "metadata_merge_mode": 1}))
        .await;
    assert_invalid(&r, "metadata_merge_mode");
    assert_eq!(metadata().await, json!({"a": 1, "n": {"x": 1, "y": 2}}));

    // merge is the default: top-level keys replace their namesakes.
    let r = app.patch(&path, &t.token, json!({"metadata": update})).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(r.header("location"), Some(path.as_str()));
    assert_eq!(metadata().await, json!({"a": 1, "b": 2, "n": {"y": 3}}));

    reset().await;
    let r = app
        .patch(
            &path,
            &t.token,
            json!({"metadata": update, "metadata_merge_mode": "merge"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(metadata().await, json!({"a": 1, "b": 2, "n": {"y": 3}}));

    reset().await;
    let r = app
        .patch(
            &path,
            &t.token,
            json!({"metadata": update, "metadata_merge_mode": "deep_merge"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(metadata().await, json!({"a": 1, "b": 2, "n": {"x": 1, "y": 3}}));

    reset().await;
    let r = app
        .patch(
            &path,
            &t.token,
            json!({"metadata": update, "metadata_merge_mode": "replace"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(metadata().await, json!({"b": 2, "n": {"y": 3}}));

    // replace with an empty object clears it; a mode alone changes nothing.
    let r = app
        .patch(&path, &t.token, json!({"metadata_merge_mode": "replace"}))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(metadata().await, json!({"b": 2, "n": {"y": 3}}));
    let r = app
        .patch(
            &path,
            &t.token,
            json!({"metadata": {}, "metadata_merge_mode": "replace"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(metadata().await, json!({}));
    app.stop().await;
});

both_backends!(idempotency_key_replays_the_first_answer, |app| async move {
    let t = app.tenant("Acme").await;
    let body = json!({"permissions": ["access_tokens_read"], "metadata": {"n": 1}});

    let first = post_idem(&app, &t.token, "key-1", body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    assert_eq!(first.header("idempotent-replayed"), None);
    let id = first.body["id"].as_i64().unwrap();
    let location = format!("/api/access_tokens/{id}");
    assert_eq!(first.header("location"), Some(location.as_str()));
    assert_eq!(total(&app, &t.token).await, "2");

    for _ in 0..2 {
        let again = post_idem(&app, &t.token, "key-1", body.clone()).await;
        assert_eq!(again.status, StatusCode::CREATED, "{}", again.text);
        assert_eq!(again.body, first.body);
        assert_eq!(again.body["token"], first.body["token"]);
        assert_eq!(again.header("location"), Some(location.as_str()));
        assert_eq!(again.header("idempotent-replayed"), Some("true"));
        assert!(again.header("content-type").unwrap().starts_with("application/json"));
    }
    assert_eq!(total(&app, &t.token).await, "2", "a replay creates nothing");
    // The replayed secret is the real one.
    let r = app.get(&location, first.body["token"].as_str().unwrap()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // Same key, another body: 409, and nothing is made.
    let other = post_idem(
        &app,
        &t.token,
        "key-1",
        json!({"permissions": [], "metadata": {"n": 2}}),
    )
    .await;
    assert_error(&other, StatusCode::CONFLICT, "conflict");
    // Same key, another route: 409 too.
    let r = raw(
        &app,
        Method::POST,
        "/api/users",
        Some(&t.token),
        Some("application/json"),
        Some(serde_json::to_vec(&body).unwrap()),
        Some("key-1"),
    )
    .await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");
    assert_eq!(total(&app, &t.token).await, "2");

    // Keys belong to an account: another tenant's same key is its own request.
    let u = app.tenant("Umbrella").await;
    let theirs = post_idem(&app, &u.token, "key-1", body.clone()).await;
    assert_eq!(theirs.status, StatusCode::CREATED, "{}", theirs.text);
    assert_eq!(theirs.header("idempotent-replayed"), None);
    assert_ne!(theirs.body["id"], first.body["id"]);
    assert_ne!(theirs.body["token"], first.body["token"]);
    assert_eq!(total(&app, &u.token).await, "2");
    assert_eq!(total(&app, &t.token).await, "2");

    // A different key is a different request.
    let fresh = post_idem(&app, &t.token, "key-2", body.clone()).await;
    assert_eq!(fresh.status, StatusCode::CREATED, "{}", fresh.text);
    assert_ne!(fresh.body["id"], first.body["id"]);
    assert_eq!(total(&app, &t.token).await, "3");

    // A refused request is remembered as refused, for the same body.
    let bad = json!({"permissions": ["no_such_permission"]});
    let r1 = post_idem(&app, &t.token, "key-3", bad.clone()).await;
    assert_invalid(&r1, "permissions");
    let r2 = post_idem(&app, &t.token, "key-3", bad.clone()).await;
    assert_invalid(&r2, "permissions");
    assert_eq!(r2.body, r1.body);
    assert_eq!(r2.header("idempotent-replayed"), Some("true"));
    // ... and the key stays bound to that body.
    let r3 = post_idem(&app, &t.token, "key-3", json!({"permissions": []})).await;
    assert_error(&r3, StatusCode::CONFLICT, "conflict");
    assert_eq!(total(&app, &t.token).await, "3");

    // Without a key every POST makes a new token.
    for _ in 0..2 {
        let r = app.post("/api/access_tokens", &t.token, body.clone()).await;
        assert_eq!(r.status, StatusCode::CREATED);
        assert_eq!(r.header("idempotent-replayed"), None);
    }
    assert_eq!(total(&app, &t.token).await, "5");
    app.stop().await;
});

both_backends!(idempotency_replays_respect_permissions, |app| async move {
    let t = app.tenant("Acme").await;
    let body = json!({"permissions": ["access_tokens_read", "access_tokens_write"]});
    let first = post_idem(&app, &t.token, "shared-key", body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);

    // A token of the same account that may not create tokens must not receive the secret
    // the first request made, however it learnt the key.
    let weak = app.token_with(&t, &["access_tokens_read"]).await;
    let r = post_idem(&app, &weak, "shared-key", body.clone()).await;
    assert!(
        r.status == StatusCode::FORBIDDEN || r.status == StatusCode::CONFLICT,
        "{} {}",
        r.status,
        r.text
    );
    r.error_code();
    assert!(!r.text.contains(first.body["token"].as_str().unwrap()));
    // Nor may an unauthenticated caller.
    let r = raw(
        &app,
        Method::POST,
        "/api/access_tokens",
        None,
        Some("application/json"),
        Some(serde_json::to_vec(&body).unwrap()),
        Some("shared-key"),
    )
    .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");

    // A 403 is not remembered: once allowed, the same key runs.
    let r = post_idem(&app, &weak, "weak-key", json!({})).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = post_idem(&app, &t.token, "weak-key", json!({})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    app.stop().await;
});

both_backends!(operations_endpoints, |app| async move {
    let r = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let t = app.tenant("Acme").await;
    let r = app.get("/api/access_tokens", &t.token).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app.get("/api/access_tokens/999999", &t.token).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let r = app.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let lines: Vec<&str> = r.text.lines().collect();
    let counter = |route: &str, status: &str| {
        lines.iter().any(|l| {
            l.starts_with("sauti_http_requests_total{")
                && l.contains(&format!("route=\"{route}\""))
                && l.contains(&format!("status=\"{status}\""))
                && l.contains("method=\"GET\"")
        })
    };
    assert!(counter("/api/access_tokens", "200"), "{}", r.text);
    assert!(counter("/api/access_tokens/{id}", "404"), "{}", r.text);
    assert!(r.text.contains("sauti_http_request_duration_seconds"), "{}", r.text);
    assert!(
        r.text.contains("# TYPE sauti_http_requests_total counter"),
        "{}",
        r.text
    );
    // Unknown paths do not each become a label (no unbounded cardinality).
    app.call(Method::GET, "/some/random/path/12345", None, None).await;
    let r = app.call(Method::GET, "/metrics", None, None).await;
    assert!(!r.text.contains("/some/random/path/12345"), "{}", r.text);

    let r = app.call(Method::GET, "/api/openapi.json", None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.header("content-type").unwrap().starts_with("application/json"));
    assert!(
        r.body["openapi"].as_str().unwrap().starts_with('3'),
        "{}",
        r.body["openapi"]
    );
    let paths = r.body["paths"].as_object().unwrap();
    for p in [
        "/api/access_tokens",
        "/api/access_tokens/{id}",
        "/api/users",
        "/healthz",
    ] {
        assert!(paths.contains_key(p), "{p} missing from the OpenAPI paths");
    }

    for path in ["/api/docs", "/api/docs/"] {
        let r = app.call(Method::GET, path, None, None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
        assert!(r.header("content-type").unwrap().starts_with("text/html"), "{path}");
        assert!(r.text.to_lowercase().contains("swagger"), "{path}: {}", r.text);
    }
    app.stop().await;
});
