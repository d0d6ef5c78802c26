//! Tenancy and identity, black-box over HTTP on both backends: tenant isolation, the
//! permission matrix, accounts (super admins), access tokens, users, login sessions and
//! the accepted forms of the `Authorization` header.

mod common;

use common::{App, Resp, Tenant, assert_forbidden, assert_invalid, assert_not_found, assert_status, assert_timestamp};
use reqwest::{Method, StatusCode};
use sauti_core::Permission;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Create a user through the API and return its id.
async fn create_user(app: &App, token: &str, body: Value) -> i64 {
    let r = app.post("/api/users", token, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.body["id"].as_i64().expect("user id")
}

/// Create an access token through the API and return `(id, secret)`.
async fn create_token(app: &App, token: &str, body: Value) -> (i64, String) {
    let r = app.post("/api/access_tokens", token, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    (
        r.body["id"].as_i64().expect("token id"),
        r.body["token"].as_str().expect("token secret").to_string(),
    )
}

/// Every permission name except `except`.
fn all_but(except: &str) -> Vec<&'static str> {
    Permission::ALL
        .iter()
        .map(|p| p.as_str())
        .filter(|p| *p != except)
        .collect()
}

/// Log in and return the session token.
async fn login(app: &App, email: &str, password: &str) -> String {
    let r = app
        .call(
            Method::POST,
            "/api/authenticate",
            None,
            Some(json!({"email": email, "password": password})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["access_token"].as_str().unwrap().to_string()
}

fn assert_unauthorized(r: &Resp, what: &str) {
    assert_status(r, StatusCode::UNAUTHORIZED, what);
    assert_eq!(r.error_code(), "unauthorized", "{what}");
    assert!(
        r.header("www-authenticate").is_some_and(|v| v.starts_with("Bearer")),
        "{what}: a 401 names the scheme in WWW-Authenticate: {:?}",
        r.headers
    );
}

/// No response ever carries a password or its hash.
fn assert_no_password(r: &Resp, password: &str) {
    assert!(!r.text.contains(password), "password leaked: {}", r.text);
    assert!(!r.text.contains("$argon2"), "password hash leaked: {}", r.text);
    for key in ["password", "password_hash", "encrypted_password"] {
        assert!(!r.text.contains(&format!("\"{key}\"")), "{key} leaked: {}", r.text);
    }
}

fn ids(r: &Resp) -> Vec<i64> {
    let mut v: Vec<i64> = r
        .body
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {}", r.text))
        .iter()
        .map(|x| x["id"].as_i64().unwrap())
        .collect();
    v.sort();
    v
}

// ---------------------------------------------------------------------------------------
// 1. Tenant isolation
// ---------------------------------------------------------------------------------------

both_backends!(another_tenants_rows_are_not_found_and_untouched, |app| async move {
    let a = app.tenant("Acme").await;
    let b = app.tenant("Beta").await;

    let (a_tok, _) = create_token(
        &app,
        &a.token,
        json!({"metadata": {"owner": "a"}, "permissions": ["contacts_read"]}),
    )
    .await;
    let a_user = create_user(
        &app,
        &a.token,
        json!({"email": "alice@acme.example", "password": "secret123", "metadata": {"owner": "a"}}),
    )
    .await;
    let b_user = create_user(
        &app,
        &b.token,
        json!({"email": "bob@beta.example", "password": "secret123"}),
    )
    .await;

    let before_tok = app.get(&format!("/api/access_tokens/{a_tok}"), &a.token).await;
    let before_user = app.get(&format!("/api/users/{a_user}"), &a.token).await;
    let before_root = app.get(&format!("/api/access_tokens/{}", a.token_id), &a.token).await;
    assert_status(&before_tok, StatusCode::OK, "A reads its token");
    assert_status(&before_user, StatusCode::OK, "A reads its user");
    assert_status(&before_root, StatusCode::OK, "A reads its bootstrap token");

    // A session token of tenant B (a person with every permission) is as blind as B's API token.
    let b_session = login(&app, "bob@beta.example", "secret123").await;

    let patch_token = json!({"metadata": {"owner": "b"}, "metadata_merge_mode": "replace", "permissions": []});
    let patch_user = json!({"metadata": {"owner": "b"}, "metadata_merge_mode": "replace", "locale": "km", "password": "takeover123"});
    let cases: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/api/access_tokens/{a_tok}"), None),
        (
            Method::PATCH,
            format!("/api/access_tokens/{a_tok}"),
            Some(patch_token.clone()),
        ),
        (Method::DELETE, format!("/api/access_tokens/{a_tok}"), None),
        (Method::GET, format!("/api/access_tokens/{}", a.token_id), None),
        (
            Method::PATCH,
            format!("/api/access_tokens/{}", a.token_id),
            Some(patch_token.clone()),
        ),
        (Method::DELETE, format!("/api/access_tokens/{}", a.token_id), None),
        (Method::GET, format!("/api/users/{a_user}"), None),
        (Method::PATCH, format!("/api/users/{a_user}"), Some(patch_user.clone())),
        (Method::DELETE, format!("/api/users/{a_user}"), None),
        (
            Method::POST,
            format!("/api/users/{a_user}/user_events"),
            Some(json!({"event": "invite"})),
        ),
        (
            Method::POST,
            format!("/api/users/{a_user}/user_events"),
            Some(json!({"event": "no_such_event"})),
        ),
    ];
    for token in [&b.token, &b_session] {
        for (method, path, body) in &cases {
            let r = app.call(method.clone(), path, Some(token), body.clone()).await;
            assert_not_found(&r, &format!("B: {method} {path}"));
        }
    }

    // A's rows are exactly as they were.
    let after_tok = app.get(&format!("/api/access_tokens/{a_tok}"), &a.token).await;
    assert_status(&after_tok, StatusCode::OK, "A's token survives");
    assert_eq!(after_tok.body, before_tok.body);
    assert_eq!(after_tok.body["metadata"], json!({"owner": "a"}));
    assert_eq!(after_tok.body["permissions"], json!(["contacts_read"]));
    let after_root = app.get(&format!("/api/access_tokens/{}", a.token_id), &a.token).await;
    assert_eq!(after_root.body, before_root.body);
    let after_user = app.get(&format!("/api/users/{a_user}"), &a.token).await;
    assert_status(&after_user, StatusCode::OK, "A's user survives");
    assert_eq!(after_user.body, before_user.body);
    assert_eq!(after_user.body["locale"], "en");
    assert_eq!(after_user.body["invited_at"], Value::Null);
    // The password was not changed: the user still logs in with the old one, not B's.
    login(&app, "alice@acme.example", "secret123").await;
    let r = app
        .call(
            Method::POST,
            "/api/authenticate",
            None,
            Some(json!({"email": "alice@acme.example", "password": "takeover123"})),
        )
        .await;
    assert_unauthorized(&r, "B's password did not stick");

    // Lists never show the other tenant's rows, filtered or not.
    let r = app.get("/api/access_tokens", &a.token).await;
    let a_session_ids = ids(&r);
    assert!(a_session_ids.contains(&a.token_id) && a_session_ids.contains(&a_tok));
    let r = app.get("/api/access_tokens", &b.token).await;
    assert_status(&r, StatusCode::OK, "B lists tokens");
    assert!(
        !ids(&r).contains(&a_tok) && !ids(&r).contains(&a.token_id),
        "{}",
        r.text
    );
    assert!(ids(&r).contains(&b.token_id));
    let r = app.get("/api/access_tokens?q[metadata][owner]=a", &b.token).await;
    assert_eq!(r.header("total"), Some("0"), "{}", r.text);
    assert_eq!(r.body, json!([]));

    let r = app.get("/api/users", &a.token).await;
    assert_eq!(ids(&r), vec![a_user]);
    assert_eq!(r.header("total"), Some("1"));
    assert!(
        r.body
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["account_id"] == a.account_id)
    );
    let r = app.get("/api/users", &b.token).await;
    assert_eq!(ids(&r), vec![b_user]);
    assert_eq!(r.header("total"), Some("1"));
    let r = app.get("/api/users?q[email]=alice@acme.example", &b.token).await;
    assert_eq!(r.header("total"), Some("0"), "{}", r.text);

    // /api/account is always the caller's own account; B's writes land on B.
    let r = app
        .patch(
            "/api/account",
            &b.token,
            json!({"metadata": {"owner": "b"}, "name": "Beta renamed"}),
        )
        .await;
    assert_status(&r, StatusCode::NO_CONTENT, "B updates its account");
    let r = app.get("/api/account", &a.token).await;
    assert_eq!(r.body["id"], a.account_id);
    assert_eq!(r.body["metadata"], json!({}));
    assert_eq!(r.body["name"], "Acme");
    let r = app.get("/api/account", &b.token).await;
    assert_eq!(r.body["id"], b.account_id);
    assert_eq!(r.body["metadata"], json!({"owner": "b"}));

    // Idempotency keys are per tenant: B reusing A's key gets its own answer, not A's.
    let mut created = Vec::new();
    for tenant in [&a, &b] {
        let r = Resp::from(
            app.client
                .post(app.url("/api/access_tokens"))
                .bearer_auth(&tenant.token)
                .header("idempotency-key", "shared-key-1")
                .json(&json!({"metadata": {"idem": true}}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_status(&r, StatusCode::CREATED, "create with a shared Idempotency-Key");
        assert!(r.header("idempotent-replayed").is_none(), "{:?}", r.headers);
        created.push((
            r.body["id"].as_i64().unwrap(),
            r.body["token"].as_str().unwrap().to_string(),
        ));
    }
    assert_ne!(created[0], created[1]);
    let r = app.get(&format!("/api/access_tokens/{}", created[1].0), &a.token).await;
    assert_not_found(&r, "B's idempotent token is not A's");

    // Ids that cannot name a row are 404 too, never 400 or 500.
    for bad in [
        "abc",
        "1.5",
        "-1",
        "0",
        "99999999",
        "1e3",
        "%20",
        "99999999999999999999",
    ] {
        for (method, path, body) in [
            (Method::GET, format!("/api/access_tokens/{bad}"), None),
            (
                Method::PATCH,
                format!("/api/access_tokens/{bad}"),
                Some(json!({"metadata": {}})),
            ),
            (Method::DELETE, format!("/api/access_tokens/{bad}"), None),
            (Method::GET, format!("/api/users/{bad}"), None),
            (
                Method::PATCH,
                format!("/api/users/{bad}"),
                Some(json!({"metadata": {}})),
            ),
            (Method::DELETE, format!("/api/users/{bad}"), None),
            (
                Method::POST,
                format!("/api/users/{bad}/user_events"),
                Some(json!({"event": "invite"})),
            ),
        ] {
            let r = app.call(method.clone(), &path, Some(&a.token), body).await;
            assert_not_found(&r, &format!("{method} {path}"));
        }
    }
    app.stop().await;
});

// ---------------------------------------------------------------------------------------
// 2. Permission matrix
// ---------------------------------------------------------------------------------------

both_backends!(each_route_needs_its_permission, |app| async move {
    let t = app.tenant("Acme").await;

    // Fixtures, made with the all-permission token.
    let (tok_target, _) = create_token(&app, &t.token, json!({"metadata": {"v": 1}})).await;
    let user_target = create_user(
        &app,
        &t.token,
        json!({"email": "target@acme.example", "password": "secret123", "metadata": {"v": 1}}),
    )
    .await;

    struct Case {
        method: Method,
        path: String,
        body: Option<Value>,
        need: &'static str,
        ok: StatusCode,
    }
    let case = |method: Method, path: String, body: Option<Value>, need: &'static str, ok: StatusCode| Case {
        method,
        path,
        body,
        need,
        ok,
    };
    // In the order the allowed calls can run one after another (deletes last).
    let cases = vec![
        case(
            Method::GET,
            "/api/access_tokens".into(),
            None,
            "access_tokens_read",
            StatusCode::OK,
        ),
        case(
            Method::POST,
            "/api/access_tokens".into(),
            Some(json!({"metadata": {"made": "by-matrix"}})),
            "access_tokens_write",
            StatusCode::CREATED,
        ),
        case(
            Method::GET,
            format!("/api/access_tokens/{tok_target}"),
            None,
            "access_tokens_read",
            StatusCode::OK,
        ),
        case(
            Method::PATCH,
            format!("/api/access_tokens/{tok_target}"),
            Some(json!({"metadata": {"v": 2}})),
            "access_tokens_write",
            StatusCode::NO_CONTENT,
        ),
        case(
            Method::DELETE,
            format!("/api/access_tokens/{tok_target}"),
            None,
            "access_tokens_write",
            StatusCode::NO_CONTENT,
        ),
        case(Method::GET, "/api/users".into(), None, "users_read", StatusCode::OK),
        case(
            Method::POST,
            "/api/users".into(),
            Some(json!({"email": "new@acme.example", "password": "secret123"})),
            "users_write",
            StatusCode::CREATED,
        ),
        case(
            Method::GET,
            format!("/api/users/{user_target}"),
            None,
            "users_read",
            StatusCode::OK,
        ),
        case(
            Method::PATCH,
            format!("/api/users/{user_target}"),
            Some(json!({"metadata": {"v": 2}})),
            "users_write",
            StatusCode::NO_CONTENT,
        ),
        case(
            Method::POST,
            format!("/api/users/{user_target}/user_events"),
            Some(json!({"event": "invite"})),
            "users_write",
            StatusCode::CREATED,
        ),
        case(
            Method::DELETE,
            format!("/api/users/{user_target}"),
            None,
            "users_write",
            StatusCode::NO_CONTENT,
        ),
        case(
            Method::GET,
            "/api/account".into(),
            None,
            "accounts_read",
            StatusCode::OK,
        ),
        case(
            Method::PATCH,
            "/api/account".into(),
            Some(json!({"metadata": {"v": 2}})),
            "accounts_write",
            StatusCode::NO_CONTENT,
        ),
    ];

    // No credential at all: 401 everywhere.
    for c in &cases {
        let r = app.call(c.method.clone(), &c.path, None, c.body.clone()).await;
        assert_unauthorized(&r, &format!("anonymous {} {}", c.method, c.path));
    }

    // A token of the same account without the permission: 403, whether it holds nothing or
    // everything else (including the other half of the same resource).
    let empty = app.token_with(&t, &[]).await;
    for c in &cases {
        let everything_else = app.token_with(&t, &all_but(c.need)).await;
        for (label, token) in [("no permissions", &empty), ("all but the needed one", &everything_else)] {
            let r = app.call(c.method.clone(), &c.path, Some(token), c.body.clone()).await;
            let what = format!("{label}: {} {}", c.method, c.path);
            assert_forbidden(&r, &what);
            let msg = r.body["errors"]["base"][0].as_str().unwrap_or_default();
            assert!(msg.contains(c.need), "{what}: the message names {}: {msg}", c.need);
        }
    }

    // Nothing the refused calls asked for happened.
    let r = app.get(&format!("/api/access_tokens/{tok_target}"), &t.token).await;
    assert_status(&r, StatusCode::OK, "token target survives refusals");
    assert_eq!(r.body["metadata"], json!({"v": 1}));
    let r = app
        .get("/api/access_tokens?q[metadata][made]=by-matrix", &t.token)
        .await;
    assert_eq!(r.header("total"), Some("0"), "{}", r.text);
    let r = app.get(&format!("/api/users/{user_target}"), &t.token).await;
    assert_status(&r, StatusCode::OK, "user target survives refusals");
    assert_eq!(r.body["metadata"], json!({"v": 1}));
    assert_eq!(r.body["invited_at"], Value::Null);
    let r = app.get("/api/users", &t.token).await;
    assert_eq!(r.header("total"), Some("1"), "{}", r.text);
    let r = app.get("/api/account", &t.token).await;
    assert_eq!(r.body["metadata"], json!({}));

    // Exactly the needed permission suffices.
    for c in &cases {
        let exact = app.token_with(&t, &[c.need]).await;
        let r = app.call(c.method.clone(), &c.path, Some(&exact), c.body.clone()).await;
        assert_status(&r, c.ok, &format!("only {}: {} {}", c.need, c.method, c.path));
    }

    // And the writes took effect.
    let r = app.get(&format!("/api/access_tokens/{tok_target}"), &t.token).await;
    assert_not_found(&r, "deleted token target");
    let r = app
        .get("/api/access_tokens?q[metadata][made]=by-matrix", &t.token)
        .await;
    assert_eq!(r.header("total"), Some("1"), "{}", r.text);
    let r = app.get(&format!("/api/users/{user_target}"), &t.token).await;
    assert_not_found(&r, "deleted user target");
    let r = app.get("/api/users", &t.token).await;
    assert_eq!(r.header("total"), Some("1"), "{}", r.text);
    assert_eq!(r.body[0]["email"], "new@acme.example");
    let r = app.get("/api/account", &t.token).await;
    assert_eq!(r.body["metadata"], json!({"v": 2}));

    // /api/accounts is for super admins only: a tenant's all-permission token is refused.
    let other = app.tenant("Other").await;
    for (method, path, body) in [
        (Method::GET, "/api/accounts".to_string(), None),
        (
            Method::POST,
            "/api/accounts".to_string(),
            Some(json!({"name": "Sneaky"})),
        ),
        (Method::GET, format!("/api/accounts/{}", t.account_id), None),
        (Method::GET, format!("/api/accounts/{}", other.account_id), None),
        (
            Method::PATCH,
            format!("/api/accounts/{}", other.account_id),
            Some(json!({"name": "Pwned"})),
        ),
        (Method::DELETE, format!("/api/accounts/{}", other.account_id), None),
        (Method::DELETE, format!("/api/accounts/{}", t.account_id), None),
    ] {
        let r = app.call(method.clone(), &path, Some(&t.token), body).await;
        assert_forbidden(&r, &format!("tenant on {method} {path}"));
    }
    let r = app.get("/api/account", &other.token).await;
    assert_status(&r, StatusCode::OK, "the other account survives");
    assert_eq!(r.body["name"], "Other");
    app.stop().await;
});

both_backends!(user_management_cannot_escalate, |app| async move {
    let t = app.tenant("Acme").await;
    // An administrator holding every permission, and a token that may only manage users.
    let admin = create_user(
        &app,
        &t.token,
        json!({"email": "admin@acme.example", "password": "secret123"}),
    )
    .await;
    let manager = app.token_with(&t, &["users_read", "users_write"]).await;

    // It cannot give anyone permissions it lacks ...
    let r = app
        .post(
            "/api/users",
            &manager,
            json!({"email": "crony@acme.example", "password": "secret123", "permissions": ["access_tokens_write"]}),
        )
        .await;
    assert_invalid(&r, "permissions", "creating a user with more permissions");
    let r = app
        .patch(
            &format!("/api/users/{admin}"),
            &manager,
            json!({"permissions": ["users_read", "access_tokens_write"]}),
        )
        .await;
    assert_invalid(&r, "permissions", "raising a user's permissions");
    // ... a user it makes holds at most its own ...
    let r = app
        .post(
            "/api/users",
            &manager,
            json!({"email": "crony@acme.example", "password": "secret123"}),
        )
        .await;
    assert_status(&r, StatusCode::CREATED, "creating a user");
    let mut perms: Vec<String> = serde_json::from_value(r.body["permissions"].clone()).unwrap();
    perms.sort();
    assert_eq!(perms, vec!["users_read", "users_write"]);
    let crony = r.body["id"].as_i64().unwrap();
    // ... and it cannot take over a more powerful user by setting their password.
    let r = app
        .patch(
            &format!("/api/users/{admin}"),
            &manager,
            json!({"password": "takeover123"}),
        )
        .await;
    assert_forbidden(&r, "resetting the password of a more powerful user");
    let r = app
        .call(
            Method::POST,
            "/api/authenticate",
            None,
            Some(json!({"email": "admin@acme.example", "password": "takeover123"})),
        )
        .await;
    assert_unauthorized(&r, "the takeover password does not work");
    login(&app, "admin@acme.example", "secret123").await;
    // Users within its reach are fine, as are other changes to the administrator.
    let r = app
        .patch(
            &format!("/api/users/{crony}"),
            &manager,
            json!({"password": "another123"}),
        )
        .await;
    assert_status(&r, StatusCode::NO_CONTENT, "resetting a peer's password");
    login(&app, "crony@acme.example", "another123").await;
    let r = app
        .patch(
            &format!("/api/users/{admin}"),
            &manager,
            json!({"metadata": {"team": "ops"}}),
        )
        .await;
    assert_status(&r, StatusCode::NO_CONTENT, "other changes to a more powerful user");
    // The all-permission token may reset anyone's password.
    let r = app
        .patch(
            &format!("/api/users/{admin}"),
            &t.token,
            json!({"password": "rotated123"}),
        )
        .await;
    assert_status(&r, StatusCode::NO_CONTENT, "reset by a token holding everything");
    login(&app, "admin@acme.example", "rotated123").await;
    app.stop().await;
});

both_backends!(super_admins_manage_accounts, |app| async move {
    let sa = app.super_admin().await;
    let t = app.tenant("Acme").await;

    // Create: SCFM sends no body at all.
    let r = app.call(Method::POST, "/api/accounts", Some(&sa.token), None).await;
    assert_status(&r, StatusCode::CREATED, "create with an empty body");
    let bare = r.body["id"].as_i64().unwrap();
    assert_eq!(r.header("location"), Some(format!("/api/accounts/{bare}").as_str()));
    assert_eq!(r.body["metadata"], json!({}));
    assert_eq!(r.body["settings"]["phone_call_queue_limit"], 200);
    assert_eq!(r.body["settings"]["max_phone_calls_for_callout_participation"], 3);
    assert!(r.body["settings"].get("from_phone_number").is_some());
    for k in [
        "twilio_account_sid",
        "somleng_account_sid",
        "twilio_auth_token",
        "somleng_auth_token",
        "platform_provider_name",
        "somleng_api_host",
        "somleng_api_base_url",
    ] {
        assert_eq!(r.body[k], Value::Null, "{k}");
    }
    assert_eq!(r.body["permissions"], json!([]));
    assert_eq!(r.body["call_flow_logic"], "CallFlowLogic::HelloWorld");
    assert_eq!(r.body["phone_calls_count"], 0);
    assert_eq!(r.body["contacts_count"], 0);
    assert_timestamp(&r.body["created_at"], "created_at");
    assert_timestamp(&r.body["updated_at"], "updated_at");

    let r = app
        .post(
            "/api/accounts",
            &sa.token,
            json!({"name": "NewCo", "metadata": {"foo": "bar"}}),
        )
        .await;
    assert_status(&r, StatusCode::CREATED, "create with metadata");
    let newco = r.body["id"].as_i64().unwrap();
    assert_eq!(r.body["metadata"], json!({"foo": "bar"}));

    // List: every account, paginated, filterable.
    let r = app.get("/api/accounts", &sa.token).await;
    assert_status(&r, StatusCode::OK, "list accounts");
    assert_eq!(r.header("per-page"), Some("25"));
    assert_eq!(r.header("total"), Some("4"));
    assert_eq!(ids(&r), {
        let mut v = vec![sa.account_id, t.account_id, bare, newco];
        v.sort();
        v
    });
    let platform = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == sa.account_id)
        .unwrap();
    assert_eq!(platform["permissions"], json!(["super_admin"]));
    let r = app.get("/api/accounts?q[metadata][foo]=bar", &sa.token).await;
    assert_eq!(r.header("total"), Some("1"));
    assert_eq!(ids(&r), vec![newco]);

    // Show.
    let r = app.get(&format!("/api/accounts/{newco}"), &sa.token).await;
    assert_status(&r, StatusCode::OK, "show account");
    assert_eq!(r.body["id"], newco);
    assert_eq!(r.body["name"], "NewCo");
    let r = app
        .get(&format!("/api/accounts/{t}", t = t.account_id), &sa.token)
        .await;
    assert_status(&r, StatusCode::OK, "a super admin sees any tenant");
    assert_not_found(&app.get("/api/accounts/99999999", &sa.token).await, "missing account");
    assert_not_found(&app.get("/api/accounts/abc", &sa.token).await, "non-numeric account id");

    // Update, with SCFM's example body; secrets are write-only.
    let r = app
        .patch(
            &format!("/api/accounts/{newco}"),
            &sa.token,
            json!({
                "metadata": {"baz": "qux"},
                "metadata_merge_mode": "replace",
                "twilio_account_sid": "AC8",
                "somleng_account_sid": "fa855a55-4a3b-472a-b765-1454b621c69e",
                "twilio_auth_token": "b60502a9-ac82-4a81-8eb4-ec38824aab50",
                "somleng_auth_token": "aac67fe0-8b81-4991-9fc6-8300c1992bd9",
                "call_flow_logic": "CallFlowLogic::HelloWorld",
                "platform_provider_name": "somleng",
                "settings": {
                    "batch_operation_phone_call_queue_parameters": {"limit": "30"}
                }
            }),
        )
        .await;
    assert_status(&r, StatusCode::NO_CONTENT, "patch account");
    assert_eq!(r.header("location"), Some(format!("/api/accounts/{newco}").as_str()));
    let r = app.get(&format!("/api/accounts/{newco}"), &sa.token).await;
    assert_eq!(r.body["metadata"], json!({"baz": "qux"}));
    assert_eq!(r.body["twilio_account_sid"], "AC8");
    assert_eq!(r.body["somleng_account_sid"], "fa855a55-4a3b-472a-b765-1454b621c69e");
    assert_eq!(r.body["twilio_auth_token"], "[FILTERED]");
    assert_eq!(r.body["somleng_auth_token"], "[FILTERED]");
    assert!(!r.text.contains("b60502a9"), "secret leaked: {}", r.text);
    assert_eq!(r.body["platform_provider_name"], "somleng");
    assert_eq!(r.body["settings"]["phone_call_queue_limit"], 200);
    assert_eq!(
        r.body["settings"]["batch_operation_phone_call_queue_parameters"],
        json!({"limit": "30"})
    );
    let r = app
        .patch(
            &format!("/api/accounts/{newco}"),
            &sa.token,
            json!({"platform_provider_name": "carrier-pigeon"}),
        )
        .await;
    assert_invalid(&r, "platform_provider_name", "unknown provider");
    assert_not_found(
        &app.patch("/api/accounts/99999999", &sa.token, json!({"name": "x"}))
            .await,
        "patch missing account",
    );

    // A super admin's narrower tokens follow the permission matrix too.
    let read_only = app.token_with(&sa, &["accounts_read"]).await;
    assert_status(
        &app.get("/api/accounts", &read_only).await,
        StatusCode::OK,
        "accounts_read lists",
    );
    assert_status(
        &app.get(&format!("/api/accounts/{newco}"), &read_only).await,
        StatusCode::OK,
        "accounts_read shows",
    );
    assert_forbidden(
        &app.post("/api/accounts", &read_only, json!({})).await,
        "accounts_read creates",
    );
    assert_forbidden(
        &app.patch(&format!("/api/accounts/{newco}"), &read_only, json!({"name": "x"}))
            .await,
        "accounts_read patches",
    );
    assert_forbidden(
        &app.delete(&format!("/api/accounts/{newco}"), &read_only).await,
        "accounts_read deletes",
    );
    let no_read = app.token_with(&sa, &all_but("accounts_read")).await;
    assert_forbidden(&app.get("/api/accounts", &no_read).await, "list without accounts_read");
    assert_forbidden(
        &app.get(&format!("/api/accounts/{newco}"), &no_read).await,
        "show without accounts_read",
    );
    let no_write = app.token_with(&sa, &all_but("accounts_write")).await;
    assert_forbidden(
        &app.post("/api/accounts", &no_write, json!({})).await,
        "create without accounts_write",
    );
    let write_only = app.token_with(&sa, &["accounts_write"]).await;
    let r = app
        .post("/api/accounts", &write_only, json!({"name": "ByWriter"}))
        .await;
    assert_status(&r, StatusCode::CREATED, "accounts_write creates");
    let by_writer = r.body["id"].as_i64().unwrap();
    assert_status(
        &app.patch(
            &format!("/api/accounts/{by_writer}"),
            &write_only,
            json!({"name": "Renamed"}),
        )
        .await,
        StatusCode::NO_CONTENT,
        "accounts_write patches",
    );
    assert_status(
        &app.delete(&format!("/api/accounts/{by_writer}"), &write_only).await,
        StatusCode::NO_CONTENT,
        "accounts_write deletes",
    );

    // A super admin cannot delete its own account.
    let r = app.delete(&format!("/api/accounts/{}", sa.account_id), &sa.token).await;
    assert_invalid(&r, "base", "deleting one's own account");
    assert_status(&app.get("/api/account", &sa.token).await, StatusCode::OK, "still there");

    // Delete: the account is gone, and so is everything it owned.
    let r = app.delete(&format!("/api/accounts/{newco}"), &sa.token).await;
    assert_status(&r, StatusCode::NO_CONTENT, "delete account");
    assert_eq!(r.header("location"), Some("/api/accounts"));
    assert_not_found(
        &app.get(&format!("/api/accounts/{newco}"), &sa.token).await,
        "deleted account",
    );
    assert_not_found(
        &app.delete(&format!("/api/accounts/{newco}"), &sa.token).await,
        "deleted twice",
    );

    create_user(
        &app,
        &t.token,
        json!({"email": "person@acme.example", "password": "secret123"}),
    )
    .await;
    let session = login(&app, "person@acme.example", "secret123").await;
    let r = app.delete(&format!("/api/accounts/{}", t.account_id), &sa.token).await;
    assert_status(&r, StatusCode::NO_CONTENT, "delete a tenant");
    assert_unauthorized(&app.get("/api/account", &t.token).await, "deleted tenant's API token");
    assert_unauthorized(&app.get("/api/user", &session).await, "deleted tenant's session");
    let r = app
        .call(
            Method::POST,
            "/api/authenticate",
            None,
            Some(json!({"email": "person@acme.example", "password": "secret123"})),
        )
        .await;
    assert_unauthorized(&r, "deleted tenant's user logs in");
    app.stop().await;
});

// ---------------------------------------------------------------------------------------
// 3. Access tokens
// ---------------------------------------------------------------------------------------

both_backends!(access_token_rules, |app| async move {
    let t = app.tenant("Acme").await;
    let u = app.tenant("Umoja").await;
    let sa = app.super_admin().await;

    // A token cannot grant what it lacks, on create or on update.
    let limited = app
        .token_with(&t, &["access_tokens_read", "access_tokens_write", "contacts_read"])
        .await;
    let r = app
        .post(
            "/api/access_tokens",
            &limited,
            json!({"permissions": ["contacts_read", "users_write"]}),
        )
        .await;
    let msgs = assert_invalid(&r, "permissions", "granting more than one holds");
    assert!(msgs[0].as_str().unwrap().contains("users_write"), "{}", r.text);
    let r = app.get("/api/access_tokens", &t.token).await;
    let count_before = r.header("total").unwrap().to_string();
    let (sub, _) = create_token(&app, &limited, json!({"permissions": ["contacts_read"]})).await;
    let r = app
        .patch(
            &format!("/api/access_tokens/{sub}"),
            &limited,
            json!({"permissions": ["contacts_read", "accounts_write"]}),
        )
        .await;
    assert_invalid(&r, "permissions", "escalating by update");
    let r = app.get(&format!("/api/access_tokens/{sub}"), &t.token).await;
    assert_eq!(r.body["permissions"], json!(["contacts_read"]));
    let r = app.get("/api/access_tokens", &t.token).await;
    assert_eq!(
        r.header("total").unwrap().parse::<u64>().unwrap(),
        count_before.parse::<u64>().unwrap() + 1,
        "only the allowed token was made"
    );

    // Unknown permission names.
    let r = app
        .post(
            "/api/access_tokens",
            &t.token,
            json!({"permissions": ["launch_missiles"]}),
        )
        .await;
    let msgs = assert_invalid(&r, "permissions", "unknown permission");
    assert!(msgs[0].as_str().unwrap().contains("launch_missiles"), "{}", r.text);
    let r = app
        .post("/api/access_tokens", &t.token, json!({"permissions": "users_read"}))
        .await;
    assert_invalid(&r, "permissions", "permissions not a list");

    // Expiry must be a time in the future.
    let r = app
        .post(
            "/api/access_tokens",
            &t.token,
            json!({"expires_at": "2000-01-01T00:00:00Z"}),
        )
        .await;
    assert_invalid(&r, "expires_at", "expiry in the past");
    let r = app
        .post("/api/access_tokens", &t.token, json!({"expires_at": "next tuesday"}))
        .await;
    assert_invalid(&r, "expires_at", "expiry not a time");
    let r = app
        .post(
            "/api/access_tokens",
            &t.token,
            json!({"expires_at": "2999-01-01T00:00:00Z", "permissions": ["accounts_read"]}),
        )
        .await;
    assert_status(&r, StatusCode::CREATED, "expiry in the future");
    assert_eq!(r.body["expires_at"], "2999-01-01T00:00:00.000Z");
    let future = r.body["token"].as_str().unwrap().to_string();
    let future_id = r.body["id"].as_i64().unwrap();
    assert_status(
        &app.get("/api/account", &future).await,
        StatusCode::OK,
        "unexpired token",
    );
    let r = app
        .patch(
            &format!("/api/access_tokens/{future_id}"),
            &t.token,
            json!({"expires_at": "2001-01-01T00:00:00Z"}),
        )
        .await;
    assert_invalid(&r, "expires_at", "moving expiry into the past");
    let r = app
        .patch(
            &format!("/api/access_tokens/{future_id}"),
            &t.token,
            json!({"expires_at": null}),
        )
        .await;
    assert_status(&r, StatusCode::NO_CONTENT, "clearing the expiry");
    let r = app.get(&format!("/api/access_tokens/{future_id}"), &t.token).await;
    assert_eq!(r.body["expires_at"], Value::Null);

    // Only a super admin can make a token for another account.
    let r = app
        .post(
            "/api/access_tokens",
            &t.token,
            json!({"account_id": u.account_id, "permissions": ["users_read"]}),
        )
        .await;
    assert_invalid(&r, "account_id", "a tenant making a token for another tenant");
    let r = app.get("/api/access_tokens", &u.token).await;
    assert_eq!(r.header("total"), Some("1"), "nothing was made in U: {}", r.text);
    let r = app
        .post(
            "/api/access_tokens",
            &t.token,
            json!({"account_id": t.account_id, "permissions": ["users_read"]}),
        )
        .await;
    assert_status(&r, StatusCode::CREATED, "own account_id is fine");

    let r = app
        .post(
            "/api/access_tokens",
            &sa.token,
            json!({"account_id": u.account_id, "permissions": ["accounts_read", "users_read"]}),
        )
        .await;
    assert_status(&r, StatusCode::CREATED, "a super admin makes a token for U");
    let for_u = r.body["token"].as_str().unwrap().to_string();
    let for_u_id = r.body["id"].as_i64().unwrap();
    let r = app.get("/api/account", &for_u).await;
    assert_eq!(r.body["id"], u.account_id, "the token acts as U");
    assert_forbidden(
        &app.get("/api/accounts", &for_u).await,
        "a token made by a super admin for U is not a super admin's",
    );
    let r = app.get("/api/access_tokens", &u.token).await;
    assert!(ids(&r).contains(&for_u_id), "U sees the token: {}", r.text);
    let r = app.get("/api/access_tokens", &sa.token).await;
    assert!(!ids(&r).contains(&for_u_id), "it is not the super admin's: {}", r.text);
    let r = app
        .post("/api/access_tokens", &sa.token, json!({"account_id": 99999999}))
        .await;
    assert_invalid(&r, "account_id", "a token for a missing account");

    // A deleted token answers 401 from then on — also when it deletes itself.
    let (victim_id, victim) = create_token(&app, &t.token, json!({"permissions": ["accounts_read"]})).await;
    assert_status(&app.get("/api/account", &victim).await, StatusCode::OK, "before delete");
    let r = app.delete(&format!("/api/access_tokens/{victim_id}"), &t.token).await;
    assert_status(&r, StatusCode::NO_CONTENT, "delete token");
    assert_eq!(r.header("location"), Some("/api/access_tokens"));
    assert_unauthorized(&app.get("/api/account", &victim).await, "deleted token");
    let (self_id, selfish) = create_token(
        &app,
        &t.token,
        json!({"permissions": ["access_tokens_write", "accounts_read"]}),
    )
    .await;
    let r = app.delete(&format!("/api/access_tokens/{self_id}"), &selfish).await;
    assert_status(&r, StatusCode::NO_CONTENT, "a token deletes itself");
    assert_unauthorized(&app.get("/api/account", &selfish).await, "self-deleted token");

    // An expired token is refused with a message that says so.
    let secret = sauti_core::secret::generate_token();
    app.store
        .create_access_token(
            t.account_id,
            &sauti_store::NewAccessToken {
                digest: sauti_core::secret::token_digest(&secret),
                user_id: None,
                kind: sauti_store::TokenKind::Api,
                permissions: vec!["accounts_read".into()],
                metadata: Default::default(),
                expires_at: Some(chrono::Utc::now() - chrono::Duration::seconds(5)),
            },
        )
        .await
        .unwrap();
    let r = app.get("/api/account", &secret).await;
    assert_unauthorized(&r, "expired token");
    let msg = r.body["errors"]["base"][0].as_str().unwrap();
    assert!(msg.to_lowercase().contains("expired"), "{msg}");
    // An unknown token's message differs from the expired one.
    let r = app.get("/api/account", &sauti_core::secret::generate_token()).await;
    assert_unauthorized(&r, "unknown token");
    assert!(!r.body["errors"]["base"][0].as_str().unwrap().contains("expired"));
    app.stop().await;
});

// ---------------------------------------------------------------------------------------
// 4. Users
// ---------------------------------------------------------------------------------------

both_backends!(user_lifecycle, |app| async move {
    let t = app.tenant("Acme").await;
    let other = app.tenant("Other").await;

    let r = app
        .post(
            "/api/users",
            &t.token,
            json!({"email": "user22@example.com", "password": "secret123", "metadata": {"foo": "bar"}}),
        )
        .await;
    assert_status(&r, StatusCode::CREATED, "create user");
    assert_no_password(&r, "secret123");
    let id = r.body["id"].as_i64().unwrap();
    assert_eq!(r.header("location"), Some(format!("/api/users/{id}").as_str()));
    assert_eq!(r.body["account_id"], t.account_id);
    assert_eq!(r.body["metadata"], json!({"foo": "bar"}));
    assert_eq!(r.body["email"], "user22@example.com");
    assert_eq!(r.body["locale"], "en");
    assert_timestamp(&r.body["created_at"], "created_at");
    assert_timestamp(&r.body["updated_at"], "updated_at");

    // Show and list carry the same fields, and never the password.
    let r = app.get(&format!("/api/users/{id}"), &t.token).await;
    assert_status(&r, StatusCode::OK, "show user");
    assert_no_password(&r, "secret123");
    for k in [
        "id",
        "account_id",
        "metadata",
        "email",
        "created_at",
        "updated_at",
        "locale",
    ] {
        assert!(r.body.get(k).is_some(), "{k} missing: {}", r.text);
    }
    let r = app.get("/api/users?q[metadata][foo]=bar", &t.token).await;
    assert_status(&r, StatusCode::OK, "list users");
    assert_no_password(&r, "secret123");
    assert_eq!(r.header("per-page"), Some("25"));
    assert_eq!(r.header("total"), Some("1"));
    assert_eq!(r.body[0]["id"], id);

    // Validation.
    for (email, what) in [
        ("user22@example.com", "duplicate"),
        ("USER22@Example.COM", "duplicate in another case"),
    ] {
        let r = app
            .post("/api/users", &t.token, json!({"email": email, "password": "secret123"}))
            .await;
        assert_status(&r, StatusCode::UNPROCESSABLE_ENTITY, what);
        assert_eq!(r.body["errors"], json!({"email": ["has already been taken"]}), "{what}");
        assert_eq!(r.error_code(), "validation_failed");
    }
    let r = app
        .post(
            "/api/users",
            &other.token,
            json!({"email": "user22@example.com", "password": "secret123"}),
        )
        .await;
    assert_eq!(
        r.body["errors"],
        json!({"email": ["has already been taken"]}),
        "e-mails are unique platform-wide (they are the login)"
    );
    for bad in ["not-an-email", "a@b", "two words@example.com", ""] {
        let r = app
            .post("/api/users", &t.token, json!({"email": bad, "password": "secret123"}))
            .await;
        assert_invalid(&r, "email", &format!("email {bad:?}"));
    }
    let r = app
        .post(
            "/api/users",
            &t.token,
            json!({"email": "short@example.com", "password": "short"}),
        )
        .await;
    assert_invalid(&r, "password", "short password");
    let r = app.post("/api/users", &t.token, json!({"password": "secret123"})).await;
    assert_invalid(&r, "email", "missing email");
    let r = app
        .post("/api/users", &t.token, json!({"email": "nopass@example.com"}))
        .await;
    assert_invalid(&r, "password", "missing password");
    let r = app
        .post(
            "/api/users",
            &t.token,
            json!({"email": "meta@example.com", "password": "secret123", "metadata": "nope"}),
        )
        .await;
    assert_invalid(&r, "metadata", "metadata not an object");
    let r = app.get("/api/users", &t.token).await;
    assert_eq!(r.header("total"), Some("1"), "no invalid user was made: {}", r.text);

    // Update: 204 with Location, visible on GET.
    let r = app
        .patch(
            &format!("/api/users/{id}"),
            &t.token,
            json!({"metadata": {"bar": "foo"}, "metadata_merge_mode": "replace"}),
        )
        .await;
    assert_status(&r, StatusCode::NO_CONTENT, "patch user");
    assert_eq!(r.header("location"), Some(format!("/api/users/{id}").as_str()));
    assert!(r.text.is_empty());
    let r = app.get(&format!("/api/users/{id}"), &t.token).await;
    assert_eq!(r.body["metadata"], json!({"bar": "foo"}));

    let r = app
        .patch(
            &format!("/api/users/{id}"),
            &t.token,
            json!({"email": "renamed@example.com", "locale": "km"}),
        )
        .await;
    assert_status(&r, StatusCode::NO_CONTENT, "rename user");
    let r = app.get(&format!("/api/users/{id}"), &t.token).await;
    assert_eq!(r.body["email"], "renamed@example.com");
    assert_eq!(r.body["locale"], "km");
    let second = create_user(
        &app,
        &t.token,
        json!({"email": "second@example.com", "password": "secret123"}),
    )
    .await;
    let r = app
        .patch(
            &format!("/api/users/{second}"),
            &t.token,
            json!({"email": "renamed@example.com"}),
        )
        .await;
    assert_status(&r, StatusCode::UNPROCESSABLE_ENTITY, "taking another user's email");
    assert_eq!(r.body["errors"], json!({"email": ["has already been taken"]}));
    let r = app
        .patch(&format!("/api/users/{second}"), &t.token, json!({"email": "nope"}))
        .await;
    assert_invalid(&r, "email", "patch with an invalid email");
    let r = app
        .patch(&format!("/api/users/{second}"), &t.token, json!({"password": "short"}))
        .await;
    assert_invalid(&r, "password", "patch with a short password");
    let r = app.get(&format!("/api/users/{second}"), &t.token).await;
    assert_eq!(r.body["email"], "second@example.com");

    // Metadata merge modes.
    let path = format!("/api/users/{id}");
    let r = app
        .patch(
            &path,
            &t.token,
            json!({"metadata": {"a": {"x": 1, "y": 2}, "b": 1}, "metadata_merge_mode": "replace"}),
        )
        .await;
    assert_status(&r, StatusCode::NO_CONTENT, "replace");
    assert_eq!(
        app.get(&path, &t.token).await.body["metadata"],
        json!({"a": {"x": 1, "y": 2}, "b": 1})
    );
    let r = app.patch(&path, &t.token, json!({"metadata": {"a": {"z": 3}}})).await;
    assert_status(&r, StatusCode::NO_CONTENT, "merge is the default");
    assert_eq!(
        app.get(&path, &t.token).await.body["metadata"],
        json!({"a": {"z": 3}, "b": 1}),
        "merge replaces top-level keys"
    );
    let r = app
        .patch(
            &path,
            &t.token,
            json!({"metadata": {"c": 2}, "metadata_merge_mode": "merge"}),
        )
        .await;
    assert_status(&r, StatusCode::NO_CONTENT, "merge");
    assert_eq!(
        app.get(&path, &t.token).await.body["metadata"],
        json!({"a": {"z": 3}, "b": 1, "c": 2})
    );
    let r = app
        .patch(
            &path,
            &t.token,
            json!({"metadata": {"a": {"x": 9}}, "metadata_merge_mode": "deep_merge"}),
        )
        .await;
    assert_status(&r, StatusCode::NO_CONTENT, "deep_merge");
    assert_eq!(
        app.get(&path, &t.token).await.body["metadata"],
        json!({"a": {"z": 3, "x": 9}, "b": 1, "c": 2}),
        "deep_merge merges nested objects"
    );
    let r = app
        .patch(
            &path,
            &t.token,
            json!({"metadata": {"q": 1}, "metadata_merge_mode": "sideways"}),
        )
        .await;
    assert_invalid(&r, "metadata_merge_mode", "unknown merge mode");
    let r = app
        .patch(
            &path,
            &t.token,
            json!({"metadata": {"k": 1}, "metadata_merge_mode": "replace"}),
        )
        .await;
    assert_status(&r, StatusCode::NO_CONTENT, "replace again");
    assert_eq!(app.get(&path, &t.token).await.body["metadata"], json!({"k": 1}));

    // Events: invite is the only one.
    let r = app
        .post(
            &format!("/api/users/{id}/user_events"),
            &t.token,
            json!({"event": "invite"}),
        )
        .await;
    assert_status(&r, StatusCode::CREATED, "invite");
    assert_no_password(&r, "secret123");
    assert_eq!(r.header("location"), Some(format!("/api/users/{id}").as_str()));
    assert_eq!(r.body["id"], id);
    assert_eq!(r.body["account_id"], t.account_id);
    assert_eq!(r.body["email"], "renamed@example.com");
    assert_eq!(r.body["metadata"], json!({"k": 1}));
    assert_eq!(r.body["locale"], "km");
    assert_timestamp(&r.body["updated_at"], "updated_at");
    let r = app
        .post(
            &format!("/api/users/{id}/user_events"),
            &t.token,
            json!({"event": "promote"}),
        )
        .await;
    assert_invalid(&r, "event", "unknown event");
    let r = app
        .post(&format!("/api/users/{id}/user_events"), &t.token, json!({}))
        .await;
    assert_invalid(&r, "event", "missing event");
    let r = app
        .post("/api/users/99999999/user_events", &t.token, json!({"event": "invite"}))
        .await;
    assert_not_found(&r, "invite a missing user");

    // Delete: 204, then 404.
    let r = app.delete(&path, &t.token).await;
    assert_status(&r, StatusCode::NO_CONTENT, "delete user");
    assert_eq!(r.header("location"), Some("/api/users"));
    assert_not_found(&app.get(&path, &t.token).await, "deleted user");
    assert_not_found(&app.delete(&path, &t.token).await, "deleted twice");
    assert_not_found(
        &app.patch(&path, &t.token, json!({"metadata": {}})).await,
        "patch deleted user",
    );
    // The address is free again.
    create_user(
        &app,
        &t.token,
        json!({"email": "renamed@example.com", "password": "secret123"}),
    )
    .await;
    app.stop().await;
});

// ---------------------------------------------------------------------------------------
// 5. Login, logout, expiry
// ---------------------------------------------------------------------------------------

both_backends!(login_logout_and_sessions, |app| async move {
    let t = app.tenant("Acme").await;
    let uid = create_user(
        &app,
        &t.token,
        json!({"email": "reader@acme.example", "password": "secret123", "permissions": ["users_read"]}),
    )
    .await;

    let r = app
        .call(
            Method::POST,
            "/api/authenticate",
            None,
            Some(json!({"email": "reader@acme.example", "password": "secret123"})),
        )
        .await;
    assert_status(&r, StatusCode::OK, "login");
    assert_eq!(r.body["token_type"], "Bearer");
    let session = r.body["access_token"].as_str().unwrap().to_string();
    assert!(session.len() >= 43, "≥ 256 bits: {session}");
    assert_timestamp(&r.body["expires_at"], "expires_at");
    let expires: chrono::DateTime<chrono::Utc> = r.body["expires_at"].as_str().unwrap().parse().unwrap();
    assert!(expires > chrono::Utc::now() + chrono::Duration::hours(23), "{expires}");
    assert!(expires < chrono::Utc::now() + chrono::Duration::hours(25), "{expires}");
    assert_no_password(&r, "secret123");

    // `username` is an alias of `email`, and the address is case-insensitive.
    let r = app
        .call(
            Method::POST,
            "/api/authenticate",
            None,
            Some(json!({"username": "Reader@ACME.example", "password": "secret123"})),
        )
        .await;
    assert_status(&r, StatusCode::OK, "login with username");
    let second_session = r.body["access_token"].as_str().unwrap().to_string();
    assert_ne!(second_session, session);

    // Wrong password and unknown e-mail look the same.
    let wrong = app
        .call(
            Method::POST,
            "/api/authenticate",
            None,
            Some(json!({"email": "reader@acme.example", "password": "secret124"})),
        )
        .await;
    assert_unauthorized(&wrong, "wrong password");
    let unknown = app
        .call(
            Method::POST,
            "/api/authenticate",
            None,
            Some(json!({"email": "nobody@acme.example", "password": "secret123"})),
        )
        .await;
    assert_unauthorized(&unknown, "unknown email");
    assert_eq!(wrong.body, unknown.body, "no hint which part was wrong");

    let r = app
        .call(
            Method::POST,
            "/api/authenticate",
            None,
            Some(json!({"email": "reader@acme.example"})),
        )
        .await;
    assert_invalid(&r, "password", "missing password");
    let r = app
        .call(
            Method::POST,
            "/api/authenticate",
            None,
            Some(json!({"email": "reader@acme.example", "password": ""})),
        )
        .await;
    assert_invalid(&r, "password", "empty password");
    let r = app.call(Method::POST, "/api/authenticate", None, Some(json!({}))).await;
    assert_invalid(&r, "email", "nothing at all");
    assert_invalid(&r, "password", "nothing at all");

    // The session is the user: GET /api/user, with the user's permissions and no more.
    let r = app.get("/api/user", &session).await;
    assert_status(&r, StatusCode::OK, "current user");
    assert_no_password(&r, "secret123");
    assert_eq!(r.body["id"], uid);
    assert_eq!(r.body["email"], "reader@acme.example");
    assert_eq!(r.body["account_id"], t.account_id);
    assert_status(&app.get("/api/users", &session).await, StatusCode::OK, "users_read");
    assert_status(
        &app.get(&format!("/api/users/{uid}"), &session).await,
        StatusCode::OK,
        "users_read show",
    );
    assert_forbidden(
        &app.post(
            "/api/users",
            &session,
            json!({"email": "x@acme.example", "password": "secret123"}),
        )
        .await,
        "no users_write",
    );
    assert_forbidden(&app.get("/api/access_tokens", &session).await, "no access_tokens_read");
    assert_forbidden(&app.get("/api/account", &session).await, "no accounts_read");

    // The tenant sees the sessions among its tokens.
    let r = app.get("/api/access_tokens", &t.token).await;
    let sessions: Vec<&Value> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["kind"] == "session")
        .collect();
    assert_eq!(sessions.len(), 2, "{}", r.text);
    assert!(
        sessions
            .iter()
            .all(|s| s["user_id"] == uid && s["permissions"] == json!(["users_read"]))
    );
    assert!(sessions.iter().all(|s| s.get("token").is_none()));

    // Logout ends the session in use, and only it.
    let r = app.call(Method::POST, "/api/logout", Some(&session), None).await;
    assert_status(&r, StatusCode::NO_CONTENT, "logout");
    assert_unauthorized(&app.get("/api/user", &session).await, "after logout");
    assert_unauthorized(
        &app.call(Method::POST, "/api/logout", Some(&session), None).await,
        "logout twice",
    );
    assert_status(
        &app.get("/api/user", &second_session).await,
        StatusCode::OK,
        "other session lives",
    );
    assert_unauthorized(
        &app.call(Method::POST, "/api/logout", None, None).await,
        "anonymous logout",
    );

    // An API token is not a user.
    assert_not_found(&app.get("/api/user", &t.token).await, "GET /api/user with an API token");
    // Logout with an API token revokes that token.
    let throwaway = app.token_with(&t, &["accounts_read"]).await;
    let r = app.call(Method::POST, "/api/logout", Some(&throwaway), None).await;
    assert_status(&r, StatusCode::NO_CONTENT, "logout an API token");
    assert_unauthorized(&app.get("/api/account", &throwaway).await, "revoked API token");
    assert_status(
        &app.get("/api/account", &t.token).await,
        StatusCode::OK,
        "the others live",
    );

    // Changing the password ends every session of the user; the new password works.
    let third = login(&app, "reader@acme.example", "secret123").await;
    let r = app
        .patch(
            &format!("/api/users/{uid}"),
            &t.token,
            json!({"password": "new-secret-456"}),
        )
        .await;
    assert_status(&r, StatusCode::NO_CONTENT, "password change");
    assert_unauthorized(
        &app.get("/api/user", &second_session).await,
        "session after password change",
    );
    assert_unauthorized(&app.get("/api/user", &third).await, "session after password change");
    let r = app
        .call(
            Method::POST,
            "/api/authenticate",
            None,
            Some(json!({"email": "reader@acme.example", "password": "secret123"})),
        )
        .await;
    assert_unauthorized(&r, "old password");
    let fresh = login(&app, "reader@acme.example", "new-secret-456").await;
    assert_status(&app.get("/api/user", &fresh).await, StatusCode::OK, "new password");

    // Changing permissions ends sessions too (they carry the old permissions).
    let r = app
        .patch(
            &format!("/api/users/{uid}"),
            &t.token,
            json!({"permissions": ["accounts_read"]}),
        )
        .await;
    assert_status(&r, StatusCode::NO_CONTENT, "permission change");
    assert_unauthorized(&app.get("/api/user", &fresh).await, "session after permission change");
    let fresh = login(&app, "reader@acme.example", "new-secret-456").await;
    assert_status(&app.get("/api/account", &fresh).await, StatusCode::OK, "new permission");
    assert_forbidden(&app.get("/api/users", &fresh).await, "old permission gone");

    // Other changes leave sessions alone; deleting the user ends them.
    let r = app
        .patch(&format!("/api/users/{uid}"), &t.token, json!({"metadata": {"x": 1}}))
        .await;
    assert_status(&r, StatusCode::NO_CONTENT, "metadata change");
    assert_status(
        &app.get("/api/user", &fresh).await,
        StatusCode::OK,
        "session survives metadata",
    );
    let r = app.delete(&format!("/api/users/{uid}"), &t.token).await;
    assert_status(&r, StatusCode::NO_CONTENT, "delete user");
    assert_unauthorized(&app.get("/api/user", &fresh).await, "session of a deleted user");
    let r = app
        .call(
            Method::POST,
            "/api/authenticate",
            None,
            Some(json!({"email": "reader@acme.example", "password": "new-secret-456"})),
        )
        .await;
    assert_unauthorized(&r, "deleted user logs in");

    // A stored session past its expiry is refused as expired.
    let admin = create_user(
        &app,
        &t.token,
        json!({"email": "admin@acme.example", "password": "secret123"}),
    )
    .await;
    let secret = sauti_core::secret::generate_token();
    app.store
        .create_access_token(
            t.account_id,
            &sauti_store::NewAccessToken {
                digest: sauti_core::secret::token_digest(&secret),
                user_id: Some(admin),
                kind: sauti_store::TokenKind::Session,
                permissions: vec!["users_read".into()],
                metadata: Default::default(),
                expires_at: Some(chrono::Utc::now() - chrono::Duration::seconds(5)),
            },
        )
        .await
        .unwrap();
    let r = app.get("/api/user", &secret).await;
    assert_unauthorized(&r, "expired session");
    assert!(
        r.body["errors"]["base"][0]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("expired"),
        "{}",
        r.text
    );
    assert_unauthorized(
        &app.call(Method::POST, "/api/logout", Some(&secret), None).await,
        "logout with an expired session",
    );
    app.stop().await;
});

/// With a zero session lifetime a fresh session is already over: expiry is enforced on
/// real login sessions, without waiting.
mod session_ttl {
    use super::*;
    use sauti_api::ApiConfig;
    use sauti_store::testing::Backend;
    use std::time::Duration;

    fn config() -> ApiConfig {
        ApiConfig {
            session_ttl: Duration::ZERO,
            ..Default::default()
        }
    }

    async fn scenario(app: App) {
        let t: Tenant = app.tenant("Acme").await;
        create_user(
            &app,
            &t.token,
            json!({"email": "brief@acme.example", "password": "secret123"}),
        )
        .await;
        let r = app
            .call(
                Method::POST,
                "/api/authenticate",
                None,
                Some(json!({"email": "brief@acme.example", "password": "secret123"})),
            )
            .await;
        assert_status(&r, StatusCode::OK, "login");
        let expires: chrono::DateTime<chrono::Utc> = r.body["expires_at"].as_str().unwrap().parse().unwrap();
        assert!(expires <= chrono::Utc::now(), "{expires}");
        let session = r.body["access_token"].as_str().unwrap();
        let r = app.get("/api/user", session).await;
        assert_unauthorized(&r, "session past its lifetime");
        assert!(
            r.body["errors"]["base"][0]
                .as_str()
                .unwrap()
                .to_lowercase()
                .contains("expired"),
            "{}",
            r.text
        );
        app.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let app = App::start_with(Backend::Sqlite, config()).await.unwrap();
        scenario(app).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Some(app) = App::start_with(Backend::Postgres, config()).await {
            scenario(app).await;
        }
    }
}

// ---------------------------------------------------------------------------------------
// 6. Authorization header forms
// ---------------------------------------------------------------------------------------

both_backends!(authorization_header_forms, |app| async move {
    let t = app.tenant("Acme").await;
    let send = |auth: Option<String>| {
        let mut req = app.client.get(app.url("/api/account"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        async move { Resp::from(req.send().await.expect("request")).await }
    };

    for form in [
        format!("Bearer {}", t.token),
        format!("bearer {}", t.token),
        format!("Key {}", t.token),
        format!("Bearer   {}  ", t.token),
    ] {
        let r = send(Some(form.clone())).await;
        assert_status(&r, StatusCode::OK, &form);
        assert_eq!(r.body["id"], t.account_id);
    }
    // HTTP Basic with the token as user name (any password is ignored).
    for password in [None, Some("ignored")] {
        let r = Resp::from(
            app.client
                .get(app.url("/api/account"))
                .basic_auth(&t.token, password)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_status(&r, StatusCode::OK, &format!("basic, password {password:?}"));
        assert_eq!(r.body["id"], t.account_id);
    }

    // Everything else is 401 with WWW-Authenticate.
    let r = send(None).await;
    assert_unauthorized(&r, "missing");
    assert!(
        r.body["errors"]["base"][0]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("missing")
    );
    for bad in [
        format!("Digest {}", t.token),
        format!("Garbage {}", t.token),
        t.token.clone(),
        "Bearer".to_string(),
        "Bearer ".to_string(),
        "Bearer not-a-real-token".to_string(),
        format!("Bearer {}x", t.token),
        "Key ".to_string(),
        "Basic !!!not-base64!!!".to_string(),
        "Basic Og==".to_string(), // ":" — an empty user name
    ] {
        let r = send(Some(bad.clone())).await;
        assert_unauthorized(&r, &format!("Authorization: {bad}"));
    }
    let r = Resp::from(
        app.client
            .get(app.url("/api/account"))
            .basic_auth("not-a-real-token", Some("x"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_unauthorized(&r, "basic with an unknown token");
    app.stop().await;
});
