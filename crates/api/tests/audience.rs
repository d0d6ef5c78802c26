//! Contacts, groups and clients, black-box over HTTP on both backends: the SCFM contact
//! bodies and `contact_data` upsert, msisdn normalisation and uniqueness, the contact
//! filters, group membership and bulk adds, Happyoffer clients, tenant isolation and the
//! permission matrix.

mod common;

use common::{App, Resp, Tenant, assert_forbidden, assert_invalid, assert_not_found, assert_status, assert_timestamp};
use reqwest::{Method, StatusCode};
use sauti_core::Permission;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// The ids of a list response, in the order given.
fn ids_in_order(r: &Resp) -> Vec<i64> {
    r.body
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {} {}", r.status, r.text))
        .iter()
        .map(|x| x["id"].as_i64().unwrap())
        .collect()
}

/// The ids of a list response, sorted.
fn ids(r: &Resp) -> Vec<i64> {
    let mut v = ids_in_order(r);
    v.sort();
    v
}

fn sorted(mut v: Vec<i64>) -> Vec<i64> {
    v.sort();
    v
}

/// Percent-encode a query value (`+` would otherwise read as a space).
fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn put(app: &App, path: &str, token: &str) -> Resp {
    app.call(Method::PUT, path, Some(token), None).await
}

async fn create_contact(app: &App, token: &str, body: Value) -> i64 {
    let r = app.post("/api/contacts", token, body).await;
    assert_status(&r, StatusCode::CREATED, "create contact");
    r.body["id"].as_i64().expect("contact id")
}

async fn create_group(app: &App, token: &str, name: &str) -> i64 {
    let r = app.post("/api/groups", token, json!({"name": name})).await;
    assert_status(&r, StatusCode::CREATED, "create group");
    r.body["id"].as_i64().expect("group id")
}

async fn create_client(app: &App, token: &str, external_id: Value) -> i64 {
    let r = app
        .post(
            "/api/clients",
            token,
            json!({"external_client_id": external_id, "company_name": "Some Company"}),
        )
        .await;
    assert_status(&r, StatusCode::CREATED, "create client");
    r.body["id"].as_i64().expect("client id")
}

async fn contact(app: &App, token: &str, id: i64) -> Value {
    let r = app.get(&format!("/api/contacts/{id}"), token).await;
    assert_status(&r, StatusCode::OK, "read contact");
    r.body
}

async fn group(app: &App, token: &str, id: i64) -> Value {
    let r = app.get(&format!("/api/groups/{id}"), token).await;
    assert_status(&r, StatusCode::OK, "read group");
    r.body
}

async fn set_default_country(app: &App, t: &Tenant, country: &str) {
    let r = app
        .patch(
            "/api/account",
            &t.token,
            json!({"settings": {"default_country": country}}),
        )
        .await;
    assert_status(&r, StatusCode::NO_CONTENT, "set default_country");
}

async fn contacts_count(app: &App, t: &Tenant) -> i64 {
    let r = app.get("/api/account", &t.token).await;
    assert_status(&r, StatusCode::OK, "read account");
    r.body["contacts_count"].as_i64().expect("contacts_count")
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
    assert_status(&r, StatusCode::OK, "log in");
    r.body["access_token"].as_str().unwrap().to_string()
}

async fn create_user(app: &App, token: &str, email: &str) -> i64 {
    let r = app
        .post("/api/users", token, json!({"email": email, "password": "secret123"}))
        .await;
    assert_status(&r, StatusCode::CREATED, "create user");
    r.body["id"].as_i64().expect("user id")
}

/// The `Link` header's `rel`s.
fn link_rels(r: &Resp) -> Vec<String> {
    r.header("link")
        .unwrap_or("")
        .split(',')
        .filter_map(|part| part.split("rel=\"").nth(1))
        .map(|s| s.trim_end_matches('"').to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------
// 1. Contacts
// ---------------------------------------------------------------------------------------

both_backends!(contact_create_has_the_scfm_and_ictcore_shape, |app| async move {
    let t = app.tenant("Acme").await;
    let client = create_client(&app, &t.token, json!("C-1")).await;

    // SCFM's example exactly.
    let r = app
        .post(
            "/api/contacts",
            &t.token,
            json!({"msisdn": "252662345999", "metadata": {"gender": "f", "name": "Kate"}}),
        )
        .await;
    assert_status(&r, StatusCode::CREATED, "SCFM create");
    let id = r.body["id"].as_i64().expect("id");
    assert_eq!(r.header("location"), Some(format!("/api/contacts/{id}").as_str()));
    assert_eq!(r.body["msisdn"], "+252662345999");
    assert_eq!(r.body["metadata"], json!({"gender": "f", "name": "Kate"}));
    assert_eq!(r.body["account_id"], t.account_id);
    assert_timestamp(&r.body["created_at"], "created_at");
    assert_timestamp(&r.body["updated_at"], "updated_at");
    assert_eq!(r.body["created_at"], r.body["updated_at"]);
    for field in [
        "first_name",
        "last_name",
        "email",
        "address",
        "custom1",
        "custom2",
        "custom3",
        "description",
        "client_id",
        "opted_out_at",
    ] {
        assert!(
            r.body.as_object().unwrap().contains_key(field),
            "{field} is in the body: {}",
            r.text
        );
        assert_eq!(r.body[field], Value::Null, "{field}");
    }
    // What was created is what is read back.
    let shown = contact(&app, &t.token, id).await;
    assert_eq!(shown, r.body);

    // Every ICTCore field, trimmed; e-mail lower-cased.
    let r = app
        .post(
            "/api/contacts",
            &t.token,
            json!({
                "msisdn": "+254 712 345 678",
                "first_name": " Jane ",
                "last_name": "Doe",
                "email": " Jane.Doe@Example.COM ",
                "address": "1 Main St",
                "custom1": "a",
                "custom2": "b",
                "custom3": "c",
                "description": "Met at the conference.",
                "client_id": client,
            }),
        )
        .await;
    assert_status(&r, StatusCode::CREATED, "ICTCore create");
    assert_eq!(r.body["msisdn"], "+254712345678");
    assert_eq!(r.body["first_name"], "Jane");
    assert_eq!(r.body["last_name"], "Doe");
    assert_eq!(r.body["email"], "jane.doe@example.com");
    assert_eq!(r.body["address"], "1 Main St");
    assert_eq!(r.body["custom1"], "a");
    assert_eq!(r.body["custom2"], "b");
    assert_eq!(r.body["custom3"], "c");
    assert_eq!(r.body["description"], "Met at the conference.");
    assert_eq!(r.body["client_id"], client);
    assert_eq!(r.body["metadata"], json!({}));
    assert_eq!(r.body["opted_out_at"], Value::Null);
    let jane = r.body["id"].as_i64().unwrap();
    assert_eq!(contact(&app, &t.token, jane).await, r.body);

    // Blank optional strings are stored as null.
    let r = app
        .post(
            "/api/contacts",
            &t.token,
            json!({"msisdn": "+254722000111", "first_name": "  ", "email": ""}),
        )
        .await;
    assert_status(&r, StatusCode::CREATED, "blank optional fields");
    assert_eq!(r.body["first_name"], Value::Null);
    assert_eq!(r.body["email"], Value::Null);

    // Created opted out.
    let r = app
        .post(
            "/api/contacts",
            &t.token,
            json!({"msisdn": "+254722000222", "opted_out": true}),
        )
        .await;
    assert_status(&r, StatusCode::CREATED, "created opted out");
    assert_timestamp(&r.body["opted_out_at"], "opted_out_at");

    // An empty body (SCFM sends `-d ''`) is a 422 on msisdn, not a 400.
    let r = app.call(Method::POST, "/api/contacts", Some(&t.token), None).await;
    assert_invalid(&r, "msisdn", "empty body");

    // The list shows them all, SCFM headers included.
    let r = app.get("/api/contacts", &t.token).await;
    assert_status(&r, StatusCode::OK, "list");
    assert_eq!(r.header("total"), Some("4"));
    assert_eq!(r.header("per-page"), Some("25"));
    assert_eq!(contacts_count(&app, &t).await, 4);
    app.stop().await;
});

both_backends!(unparseable_msisdns_are_422_on_msisdn, |app| async move {
    let t = app.tenant("Acme").await;
    for (body, what) in [
        (json!({"msisdn": "abcdefghij"}), "letters"),
        (json!({"msisdn": "2547123abc"}), "digits and letters"),
        (json!({"msisdn": "12"}), "too short"),
        (json!({"msisdn": "+1"}), "a lone country code"),
        (json!({"msisdn": "+999123456789"}), "no such country code"),
        (json!({"msisdn": "+2547123456789999"}), "too long"),
        (json!({"msisdn": "0712345678"}), "national without a default country"),
        (json!({"msisdn": ""}), "empty"),
        (json!({"msisdn": "   "}), "blank"),
        (json!({"msisdn": null}), "null"),
        (json!({"metadata": {"name": "Kate"}}), "missing"),
        (json!({"msisdn": "+254712345678\u{0}"}), "NUL"),
    ] {
        for path in ["/api/contacts", "/api/contact_data"] {
            let r = app.post(path, &t.token, body.clone()).await;
            assert_invalid(&r, "msisdn", &format!("{path}: {what}"));
        }
    }
    let r = app.post("/api/contacts", &t.token, json!({"msisdn": ""})).await;
    assert_eq!(
        assert_invalid(&r, "msisdn", "blank message"),
        &vec![json!("can't be blank")]
    );
    let r = app.post("/api/contacts", &t.token, json!({"metadata": {}})).await;
    assert_eq!(
        assert_invalid(&r, "msisdn", "missing message"),
        &vec![json!("can't be blank")]
    );
    let r = app.post("/api/contacts", &t.token, json!({"msisdn": "abc"})).await;
    assert_eq!(
        assert_invalid(&r, "msisdn", "invalid message"),
        &vec![json!("is not a valid phone number")]
    );

    // Nothing was created; a PATCH with a bad msisdn leaves the contact alone.
    assert_eq!(contacts_count(&app, &t).await, 0);
    let id = create_contact(&app, &t.token, json!({"msisdn": "+254712345678"})).await;
    let before = contact(&app, &t.token, id).await;
    for bad in ["abc", "12", "+999123456789", "", "0712345678"] {
        let r = app
            .patch(&format!("/api/contacts/{id}"), &t.token, json!({"msisdn": bad}))
            .await;
        assert_invalid(&r, "msisdn", &format!("PATCH msisdn {bad:?}"));
    }
    assert_eq!(contact(&app, &t.token, id).await, before);
    app.stop().await;
});

both_backends!(
    national_numbers_use_the_default_country_and_duplicates_are_422,
    |app| async move {
        let t = app.tenant("Acme").await;
        let r = app
            .post("/api/contacts", &t.token, json!({"msisdn": "0712345678"}))
            .await;
        assert_invalid(&r, "msisdn", "national number, no default country");

        set_default_country(&app, &t, "KE").await;
        let r = app
            .post("/api/contacts", &t.token, json!({"msisdn": "0712345678"}))
            .await;
        assert_status(&r, StatusCode::CREATED, "national number with KE");
        assert_eq!(r.body["msisdn"], "+254712345678");
        let kenyan = r.body["id"].as_i64().unwrap();
        // International forms still work with a default country.
        let r = app
            .post("/api/contacts", &t.token, json!({"msisdn": "252662345999"}))
            .await;
        assert_status(&r, StatusCode::CREATED, "international digits with KE");
        assert_eq!(r.body["msisdn"], "+252662345999");
        let somali = r.body["id"].as_i64().unwrap();

        // The same number typed any way is a duplicate.
        for typed in [
            "+254712345678",
            "254712345678",
            "00254712345678",
            "+254 712 345 678",
            "(0712) 345-678",
            "0712345678",
        ] {
            let r = app.post("/api/contacts", &t.token, json!({"msisdn": typed})).await;
            assert_status(&r, StatusCode::UNPROCESSABLE_ENTITY, typed);
            assert_eq!(
                r.body,
                json!({"errors": {"msisdn": ["has already been taken"]}, "code": "validation_failed"}),
                "{typed}"
            );
        }
        // Changing another contact's number to a taken one is refused too, and changes nothing.
        let before = contact(&app, &t.token, somali).await;
        let r = app
            .patch(
                &format!("/api/contacts/{somali}"),
                &t.token,
                json!({"msisdn": "0712345678", "first_name": "X"}),
            )
            .await;
        assert_status(&r, StatusCode::UNPROCESSABLE_ENTITY, "PATCH to a taken msisdn");
        assert_eq!(r.body["errors"]["msisdn"], json!(["has already been taken"]));
        assert_eq!(contact(&app, &t.token, somali).await, before);
        // Re-saving a contact's own number (typed differently) is fine.
        let r = app
            .patch(
                &format!("/api/contacts/{kenyan}"),
                &t.token,
                json!({"msisdn": "+254 712 345 678"}),
            )
            .await;
        assert_status(&r, StatusCode::NO_CONTENT, "PATCH own msisdn");
        // A PATCH with a national number is normalised too.
        let r = app
            .patch(
                &format!("/api/contacts/{somali}"),
                &t.token,
                json!({"msisdn": "0722 000 111"}),
            )
            .await;
        assert_status(&r, StatusCode::NO_CONTENT, "PATCH national msisdn");
        assert_eq!(contact(&app, &t.token, somali).await["msisdn"], "+254722000111");
        assert_eq!(contacts_count(&app, &t).await, 2);

        // Uniqueness is per account: another tenant may hold the same number.
        let other = app.tenant("Beta").await;
        let r = app
            .post("/api/contacts", &other.token, json!({"msisdn": "+254712345678"}))
            .await;
        assert_status(&r, StatusCode::CREATED, "same number, another account");
        assert_eq!(r.body["account_id"], other.account_id);
        // …and Beta, without a default country, cannot use national numbers.
        let r = app
            .post("/api/contacts", &other.token, json!({"msisdn": "0722000333"}))
            .await;
        assert_invalid(&r, "msisdn", "Beta has no default country");
        app.stop().await;
    }
);

both_backends!(contact_fields_are_validated, |app| async move {
    let t = app.tenant("Acme").await;
    let other = app.tenant("Beta").await;
    let theirs = create_client(&app, &other.token, json!("B-1")).await;

    for (body, field, what) in [
        (json!({"email": "not-an-email"}), "email", "no @"),
        (json!({"email": "a@"}), "email", "no domain"),
        (json!({"email": "a b@example.com"}), "email", "space"),
        (json!({"client_id": theirs}), "client_id", "another tenant's client"),
        (json!({"client_id": 999_999}), "client_id", "no such client"),
        (json!({"opted_out_at": "yesterday"}), "opted_out_at", "not a time"),
        (json!({"metadata": "x"}), "metadata", "metadata not an object"),
        (json!({"metadata": [1]}), "metadata", "metadata an array"),
        (
            json!({"metadata": {}, "metadata_merge_mode": "sideways"}),
            "metadata_merge_mode",
            "unknown merge mode",
        ),
        (json!({"first_name": "x".repeat(1025)}), "first_name", "too long"),
        (json!({"description": "x".repeat(1025)}), "description", "too long"),
    ] {
        let mut create = body.clone();
        create["msisdn"] = json!("+254712345678");
        let r = app.post("/api/contacts", &t.token, create.clone()).await;
        assert_invalid(&r, field, &format!("create: {what}"));
        let r = app.post("/api/contact_data", &t.token, create).await;
        assert_invalid(&r, field, &format!("contact_data: {what}"));
    }
    assert_eq!(contacts_count(&app, &t).await, 0, "nothing was created");

    // The same checks on PATCH, which leaves the contact untouched.
    let id = create_contact(
        &app,
        &t.token,
        json!({"msisdn": "+254712345678", "email": "ok@example.com"}),
    )
    .await;
    let before = contact(&app, &t.token, id).await;
    for (body, field) in [
        (json!({"email": "nope"}), "email"),
        (json!({"client_id": theirs}), "client_id"),
        (json!({"opted_out_at": "soon"}), "opted_out_at"),
        (json!({"metadata": 5}), "metadata"),
        (json!({"metadata_merge_mode": "nope"}), "metadata_merge_mode"),
    ] {
        let r = app.patch(&format!("/api/contacts/{id}"), &t.token, body).await;
        assert_invalid(&r, field, &format!("PATCH {field}"));
    }
    assert_eq!(contact(&app, &t.token, id).await, before);

    // A 1024-character name is fine.
    let r = app
        .patch(
            &format!("/api/contacts/{id}"),
            &t.token,
            json!({"first_name": "y".repeat(1024)}),
        )
        .await;
    assert_status(&r, StatusCode::NO_CONTENT, "1024 characters");
    app.stop().await;
});

both_backends!(contact_data_creates_then_updates_the_same_contact, |app| async move {
    let t = app.tenant("Acme").await;
    let r = app
        .post(
            "/api/contact_data",
            &t.token,
            json!({"msisdn": "252662346003", "metadata": {"gender": "f", "name": "Kate"}, "first_name": "Kate", "email": "kate@example.com"}),
        )
        .await;
    assert_status(&r, StatusCode::CREATED, "contact_data creates");
    let id = r.body["id"].as_i64().unwrap();
    assert_eq!(r.header("location"), Some(format!("/api/contacts/{id}").as_str()));
    assert_eq!(r.body["msisdn"], "+252662346003");
    assert_eq!(r.body["metadata"], json!({"gender": "f", "name": "Kate"}));
    assert_eq!(r.body["account_id"], t.account_id);
    let created = r.body.clone();

    // Same number, typed differently: updated, metadata merged, other fields kept.
    let r = app
        .post(
            "/api/contact_data",
            &t.token,
            json!({"msisdn": "+252 66 234 6003", "metadata": {"age": 30, "name": "Katherine"}, "last_name": "Smith"}),
        )
        .await;
    assert_status(&r, StatusCode::OK, "contact_data updates");
    assert_eq!(r.header("location"), Some(format!("/api/contacts/{id}").as_str()));
    assert_eq!(r.body["id"], id);
    assert_eq!(r.body["msisdn"], "+252662346003");
    assert_eq!(
        r.body["metadata"],
        json!({"gender": "f", "name": "Katherine", "age": 30})
    );
    assert_eq!(r.body["first_name"], "Kate", "not sent, kept");
    assert_eq!(r.body["email"], "kate@example.com", "not sent, kept");
    assert_eq!(r.body["last_name"], "Smith");
    assert_eq!(r.body["created_at"], created["created_at"]);
    // The answer is the stored contact, timestamps included.
    let shown = contact(&app, &t.token, id).await;
    assert_eq!(r.body, shown, "the 200 body is what GET shows");
    assert!(
        shown["updated_at"].as_str().unwrap() >= created["updated_at"].as_str().unwrap(),
        "updated_at moves forward"
    );

    // A merge mode is honoured, and null clears a field.
    let r = app
        .post(
            "/api/contact_data",
            &t.token,
            json!({"msisdn": "+252662346003", "metadata": {"only": true}, "metadata_merge_mode": "replace", "email": null}),
        )
        .await;
    assert_status(&r, StatusCode::OK, "contact_data replace");
    assert_eq!(r.body["metadata"], json!({"only": true}));
    assert_eq!(r.body["email"], Value::Null);
    assert_eq!(r.body["first_name"], "Kate");

    // With a default country, the national form finds the same contact.
    set_default_country(&app, &t, "KE").await;
    let r = app
        .post("/api/contact_data", &t.token, json!({"msisdn": "0712345678"}))
        .await;
    assert_status(&r, StatusCode::CREATED, "national number creates");
    let ke = r.body["id"].as_i64().unwrap();
    let r = app
        .post(
            "/api/contact_data",
            &t.token,
            json!({"msisdn": "+254712345678", "opted_out": true}),
        )
        .await;
    assert_status(&r, StatusCode::OK, "E.164 updates the national one");
    assert_eq!(r.body["id"], ke);
    assert_timestamp(&r.body["opted_out_at"], "opted_out_at");

    let r = app.get("/api/contacts", &t.token).await;
    assert_eq!(r.header("total"), Some("2"), "{}", r.text);
    assert_eq!(sorted(ids(&r)), sorted(vec![id, ke]));
    app.stop().await;
});

both_backends!(contact_update_clears_merges_and_opts_out, |app| async move {
    let t = app.tenant("Acme").await;
    let client = create_client(&app, &t.token, json!(7)).await;
    let id = create_contact(
        &app,
        &t.token,
        json!({
            "msisdn": "+254712345678",
            "first_name": "Kate",
            "last_name": "Doe",
            "email": "kate@example.com",
            "custom1": "one",
            "client_id": client,
            "metadata": {"a": 1, "nested": {"x": 1, "y": 2}},
        }),
    )
    .await;
    let path = format!("/api/contacts/{id}");
    let created = contact(&app, &t.token, id).await;

    // null clears; absent keeps; SCFM's 204 with Location.
    let r = app
        .patch(
            &path,
            &t.token,
            json!({"first_name": null, "email": null, "client_id": null, "custom1": "uno"}),
        )
        .await;
    assert_status(&r, StatusCode::NO_CONTENT, "PATCH");
    assert_eq!(r.header("location"), Some(path.as_str()));
    assert!(r.text.is_empty(), "{}", r.text);
    let c = contact(&app, &t.token, id).await;
    assert_eq!(c["first_name"], Value::Null);
    assert_eq!(c["email"], Value::Null);
    assert_eq!(c["client_id"], Value::Null);
    assert_eq!(c["custom1"], "uno");
    assert_eq!(c["last_name"], "Doe");
    assert_eq!(c["msisdn"], "+254712345678");
    assert_eq!(c["metadata"], created["metadata"]);
    assert_eq!(c["created_at"], created["created_at"]);
    assert!(c["updated_at"].as_str().unwrap() >= created["updated_at"].as_str().unwrap());

    // An empty PATCH changes nothing visible.
    let r = app.patch(&path, &t.token, json!({})).await;
    assert_status(&r, StatusCode::NO_CONTENT, "empty PATCH");
    let after = contact(&app, &t.token, id).await;
    for k in ["msisdn", "metadata", "last_name", "custom1", "first_name"] {
        assert_eq!(after[k], c[k], "{k}");
    }

    // Metadata merge modes (SCFM): merge by default, replace, deep_merge.
    let r = app
        .patch(&path, &t.token, json!({"metadata": {"b": 2, "nested": {"z": 3}}}))
        .await;
    assert_status(&r, StatusCode::NO_CONTENT, "merge");
    assert_eq!(
        contact(&app, &t.token, id).await["metadata"],
        json!({"a": 1, "b": 2, "nested": {"z": 3}})
    );
    let r = app
        .patch(
            &path,
            &t.token,
            json!({"metadata": {"nested": {"w": 4}}, "metadata_merge_mode": "deep_merge"}),
        )
        .await;
    assert_status(&r, StatusCode::NO_CONTENT, "deep_merge");
    assert_eq!(
        contact(&app, &t.token, id).await["metadata"],
        json!({"a": 1, "b": 2, "nested": {"z": 3, "w": 4}})
    );
    let r = app
        .patch(
            &path,
            &t.token,
            json!({"metadata": {"bar": "foo"}, "metadata_merge_mode": "replace"}),
        )
        .await;
    assert_status(&r, StatusCode::NO_CONTENT, "replace (SCFM's example)");
    assert_eq!(contact(&app, &t.token, id).await["metadata"], json!({"bar": "foo"}));
    let r = app
        .patch(
            &path,
            &t.token,
            json!({"metadata": {}, "metadata_merge_mode": "replace"}),
        )
        .await;
    assert_status(&r, StatusCode::NO_CONTENT, "replace with empty");
    assert_eq!(contact(&app, &t.token, id).await["metadata"], json!({}));

    // Opting out and back in.
    let r = app.patch(&path, &t.token, json!({"opted_out": true})).await;
    assert_status(&r, StatusCode::NO_CONTENT, "opt out");
    let c = contact(&app, &t.token, id).await;
    assert_timestamp(&c["opted_out_at"], "opted_out_at");
    let r = app.patch(&path, &t.token, json!({"first_name": "K"})).await;
    assert_status(&r, StatusCode::NO_CONTENT, "unrelated PATCH");
    assert_eq!(
        contact(&app, &t.token, id).await["opted_out_at"],
        c["opted_out_at"],
        "an unrelated change keeps the opt-out"
    );
    let r = app.patch(&path, &t.token, json!({"opted_out": false})).await;
    assert_status(&r, StatusCode::NO_CONTENT, "opt in");
    assert_eq!(contact(&app, &t.token, id).await["opted_out_at"], Value::Null);
    let r = app
        .patch(&path, &t.token, json!({"opted_out_at": "2024-01-02T03:04:05Z"}))
        .await;
    assert_status(&r, StatusCode::NO_CONTENT, "explicit time");
    assert_eq!(
        contact(&app, &t.token, id).await["opted_out_at"],
        "2024-01-02T03:04:05.000Z"
    );
    let r = app
        .patch(&path, &t.token, json!({"opted_out_at": "2024-01-02T06:04:05+03:00"}))
        .await;
    assert_status(&r, StatusCode::NO_CONTENT, "explicit time with offset");
    assert_eq!(
        contact(&app, &t.token, id).await["opted_out_at"],
        "2024-01-02T03:04:05.000Z"
    );
    let r = app.patch(&path, &t.token, json!({"opted_out_at": null})).await;
    assert_status(&r, StatusCode::NO_CONTENT, "opted_out_at null");
    assert_eq!(contact(&app, &t.token, id).await["opted_out_at"], Value::Null);
    app.stop().await;
});

both_backends!(contact_delete_is_204_then_404, |app| async move {
    let t = app.tenant("Acme").await;
    let keep = create_contact(&app, &t.token, json!({"msisdn": "+254712345678"})).await;
    let id = create_contact(&app, &t.token, json!({"msisdn": "+254722000111"})).await;
    let path = format!("/api/contacts/{id}");
    let r = app.delete(&path, &t.token).await;
    assert_status(&r, StatusCode::NO_CONTENT, "delete");
    assert_eq!(r.header("location"), Some("/api/contacts"));
    assert_not_found(&app.get(&path, &t.token).await, "GET after delete");
    assert_not_found(&app.delete(&path, &t.token).await, "DELETE again");
    assert_not_found(
        &app.patch(&path, &t.token, json!({"first_name": "x"})).await,
        "PATCH after delete",
    );
    assert_eq!(ids(&app.get("/api/contacts", &t.token).await), vec![keep]);
    assert_eq!(contacts_count(&app, &t).await, 1);
    // The number is free again.
    let r = app
        .post("/api/contacts", &t.token, json!({"msisdn": "+254722000111"}))
        .await;
    assert_status(&r, StatusCode::CREATED, "re-create a deleted number");
    assert_ne!(r.body["id"], id);
    app.stop().await;
});

// ---------------------------------------------------------------------------------------
// 2. Contact filters
// ---------------------------------------------------------------------------------------

both_backends!(contact_filters, |app| async move {
    let t = app.tenant("Acme").await;
    let other = app.tenant("Beta").await;
    let client = create_client(&app, &t.token, json!("C-1")).await;
    let c1 = create_contact(
        &app,
        &t.token,
        json!({"msisdn": "+254712345678", "first_name": "Kate", "email": "kate@example.com", "client_id": client,
               "opted_out": true, "metadata": {"gender": "f", "age": 30, "registered_districts": ["1401"]}}),
    )
    .await;
    let c2 = create_contact(
        &app,
        &t.token,
        json!({"msisdn": "+254722000111", "first_name": "John", "last_name": "Doe", "email": "john@example.com",
               "metadata": {"gender": "m", "age": 25}}),
    )
    .await;
    let c3 = create_contact(
        &app,
        &t.token,
        json!({"msisdn": "+252662345999", "first_name": "Kate", "metadata": {"gender": "f", "age": 40, "registered_districts": ["1402"]}}),
    )
    .await;
    // Another tenant's look-alike never shows up.
    create_contact(
        &app,
        &other.token,
        json!({"msisdn": "+254712345678", "first_name": "Kate", "email": "kate@example.com", "metadata": {"gender": "f", "age": 30}}),
    )
    .await;
    let g = create_group(&app, &t.token, "Women").await;
    let r = app
        .post(
            &format!("/api/groups/{g}/contacts"),
            &t.token,
            json!({"contact_ids": [c1, c3]}),
        )
        .await;
    assert_status(&r, StatusCode::OK, "fill group");

    let q = |query: String| {
        let app = &app;
        let token = t.token.clone();
        async move {
            let r = app.get(&format!("/api/contacts?{query}"), &token).await;
            assert_status(&r, StatusCode::OK, &query);
            assert_eq!(
                r.header("total").and_then(|v| v.parse::<usize>().ok()),
                Some(r.body.as_array().unwrap().len()),
                "{query}"
            );
            ids(&r)
        }
    };
    let all = sorted(vec![c1, c2, c3]);
    for (query, want) in [
        ("".to_string(), all.clone()),
        ("q[metadata][gender]=f".into(), sorted(vec![c1, c3])),
        ("q[metadata][gender]=m".into(), vec![c2]),
        ("q[metadata][age.numeric.gt]=28".into(), sorted(vec![c1, c3])),
        ("q[metadata][age.numeric.lteq]=30".into(), sorted(vec![c1, c2])),
        ("q[metadata][gender]=f&q[metadata][age.numeric.lt]=35".into(), vec![c1]),
        ("q[metadata][gender.in]=m,x".into(), vec![c2]),
        (
            "q[metadata][registered_districts.any][]=1402&q[metadata][registered_districts.any][]=1401".into(),
            sorted(vec![c1, c3]),
        ),
        ("q[metadata][registered_districts.any][]=1401".into(), vec![c1]),
        ("q[metadata][registered_districts.exists]=false".into(), vec![c2]),
        ("q[created_at_after]=2000-01-01".into(), all.clone()),
        ("q[created_at_after]=2999-01-01".into(), vec![]),
        ("q[created_at_before]=2999-01-01".into(), all.clone()),
        ("q[updated_at_before]=2000-01-01".into(), vec![]),
        (format!("q[group_id]={g}"), sorted(vec![c1, c3])),
        (format!("q[group_id]={g}&q[first_name]=Kate"), sorted(vec![c1, c3])),
        (format!("q[client_id]={client}"), vec![c1]),
        ("q[client_id]=999999".into(), vec![]),
        ("q[opted_out]=true".into(), vec![c1]),
        ("q[opted_out]=false".into(), sorted(vec![c2, c3])),
        ("q[opted_out]=1".into(), vec![c1]),
        ("q[email]=kate@example.com".into(), vec![c1]),
        ("q[email]=nobody@example.com".into(), vec![]),
        ("q[first_name]=Kate".into(), sorted(vec![c1, c3])),
        ("q[first_name]=John&q[last_name]=Doe".into(), vec![c2]),
        ("q[first_name]=Kate&q[opted_out]=false".into(), vec![c3]),
        // msisdn: normalised before matching.
        (format!("q[msisdn]={}", enc("+254712345678")), vec![c1]),
        ("q[msisdn]=254712345678".into(), vec![c1]),
        (format!("q[msisdn]={}", enc("+254 712 345 678")), vec![c1]),
        ("q[msisdn]=00252662345999".into(), vec![c3]),
        (format!("q[msisdn]={}", enc("+254733999999")), vec![]),
    ] {
        assert_eq!(q(query.clone()).await, want, "{query}");
    }

    // A national number needs the default country…
    let r = app.get("/api/contacts?q[msisdn]=0712345678", &t.token).await;
    assert_invalid(&r, "q", "national msisdn without default country");
    set_default_country(&app, &t, "KE").await;
    assert_eq!(q("q[msisdn]=0712345678".into()).await, vec![c1]);
    assert_eq!(q(format!("q[msisdn]={}", enc("0722 000 111"))).await, vec![c2]);

    // Bad filters are 422 on `q`; a bad sort on `sort`.
    for bad in [
        "q[msisdn]=abc",
        "q[msisdn]=12",
        "q[msisdn]=",
        "q[group_id]=abc",
        "q[client_id]=x",
        "q[opted_out]=maybe",
        "q[created_at_after]=yesterday",
        "q[nope]=1",
        "q[metadata][age.numeric.gt]=old",
        "q[metadata][age.gte]=1",
    ] {
        let r = app.get(&format!("/api/contacts?{bad}"), &t.token).await;
        assert_invalid(&r, "q", bad);
    }
    let r = app.get("/api/contacts?sort=nope", &t.token).await;
    assert_invalid(&r, "sort", "unknown sort column");
    let r = app.get("/api/contacts?per_page=0", &t.token).await;
    assert_invalid(&r, "per_page", "per_page 0");

    // Sorting.
    let r = app.get("/api/contacts?sort=-id", &t.token).await;
    assert_eq!(ids_in_order(&r), vec![c3, c2, c1]);
    let r = app.get("/api/contacts?sort=msisdn", &t.token).await;
    assert_eq!(ids_in_order(&r), vec![c3, c1, c2], "{}", r.text);
    let r = app.get("/api/contacts?sort=first_name,-id", &t.token).await;
    assert_eq!(ids_in_order(&r), vec![c2, c3, c1], "{}", r.text);

    // Pagination headers.
    let r = app.get("/api/contacts?per_page=2&sort=id", &t.token).await;
    assert_status(&r, StatusCode::OK, "page 1");
    assert_eq!(r.header("per-page"), Some("2"));
    assert_eq!(r.header("total"), Some("3"));
    assert_eq!(ids_in_order(&r), vec![c1, c2]);
    assert_eq!(link_rels(&r), vec!["next", "last"], "{:?}", r.header("link"));
    assert!(
        r.header("link").unwrap().contains("/api/contacts?"),
        "{:?}",
        r.header("link")
    );
    let r = app.get("/api/contacts?per_page=2&sort=id&page=2", &t.token).await;
    assert_eq!(ids_in_order(&r), vec![c3]);
    assert_eq!(r.header("total"), Some("3"));
    assert_eq!(link_rels(&r), vec!["first", "prev"]);
    let r = app
        .get(
            "/api/contacts?per_page=1&page=2&q[metadata][gender]=f&sort=id",
            &t.token,
        )
        .await;
    assert_eq!(r.header("total"), Some("2"));
    assert_eq!(ids_in_order(&r), vec![c3]);
    app.stop().await;
});

// ---------------------------------------------------------------------------------------
// 3. Groups
// ---------------------------------------------------------------------------------------

both_backends!(group_crud, |app| async move {
    let t = app.tenant("Acme").await;
    let other = app.tenant("Beta").await;

    let r = app
        .post(
            "/api/groups",
            &t.token,
            json!({"name": "Women", "description": "All women", "metadata": {"k": "v"}}),
        )
        .await;
    assert_status(&r, StatusCode::CREATED, "create group");
    let g = r.body["id"].as_i64().unwrap();
    assert_eq!(r.header("location"), Some(format!("/api/groups/{g}").as_str()));
    assert_eq!(r.body["name"], "Women");
    assert_eq!(r.body["description"], "All women");
    assert_eq!(r.body["metadata"], json!({"k": "v"}));
    assert_eq!(r.body["contacts_count"], 0);
    assert_eq!(r.body["account_id"], t.account_id);
    assert_timestamp(&r.body["created_at"], "created_at");
    assert_timestamp(&r.body["updated_at"], "updated_at");
    assert_eq!(group(&app, &t.token, g).await, r.body);

    // name: required, not blank, at most 255 characters.
    for (body, what) in [
        (json!({}), "missing"),
        (json!({"name": null}), "null"),
        (json!({"name": ""}), "empty"),
        (json!({"name": "   "}), "blank"),
        (json!({"name": "x".repeat(256)}), "too long"),
        (json!({"name": 5}), "not a string"),
    ] {
        let r = app.post("/api/groups", &t.token, body).await;
        assert_invalid(&r, "name", what);
    }
    let r = app.post("/api/groups", &t.token, json!({})).await;
    assert_eq!(r.body["errors"]["name"], json!(["can't be blank"]));

    // Unique per account (after trimming); fine in another account.
    for name in ["Women", " Women "] {
        let r = app.post("/api/groups", &t.token, json!({"name": name})).await;
        assert_status(&r, StatusCode::UNPROCESSABLE_ENTITY, name);
        assert_eq!(
            r.body,
            json!({"errors": {"name": ["has already been taken"]}, "code": "validation_failed"})
        );
    }
    let r = app.post("/api/groups", &other.token, json!({"name": "Women"})).await;
    assert_status(&r, StatusCode::CREATED, "same name, another account");
    let theirs = r.body["id"].as_i64().unwrap();
    let men = create_group(&app, &t.token, "Men").await;

    // List, filter, sort.
    let r = app.get("/api/groups", &t.token).await;
    assert_status(&r, StatusCode::OK, "list");
    assert_eq!(r.header("total"), Some("2"));
    assert_eq!(ids(&r), sorted(vec![g, men]));
    assert!(!ids(&r).contains(&theirs));
    let r = app.get("/api/groups?q[name]=Men", &t.token).await;
    assert_eq!(ids(&r), vec![men]);
    let r = app.get("/api/groups?q[metadata][k]=v", &t.token).await;
    assert_eq!(ids(&r), vec![g]);
    let r = app.get("/api/groups?sort=name", &t.token).await;
    assert_eq!(ids_in_order(&r), vec![men, g]);
    let r = app.get("/api/groups?sort=nope", &t.token).await;
    assert_invalid(&r, "sort", "bad sort");

    // PATCH: 204 with Location; rename, clear description, merge metadata.
    let path = format!("/api/groups/{g}");
    let r = app
        .patch(
            &path,
            &t.token,
            json!({"name": " Ladies ", "description": null, "metadata": {"n": 1}}),
        )
        .await;
    assert_status(&r, StatusCode::NO_CONTENT, "PATCH group");
    assert_eq!(r.header("location"), Some(path.as_str()));
    let shown = group(&app, &t.token, g).await;
    assert_eq!(shown["name"], "Ladies");
    assert_eq!(shown["description"], Value::Null);
    assert_eq!(shown["metadata"], json!({"k": "v", "n": 1}));
    let r = app
        .patch(
            &path,
            &t.token,
            json!({"metadata": {"only": 1}, "metadata_merge_mode": "replace"}),
        )
        .await;
    assert_status(&r, StatusCode::NO_CONTENT, "PATCH replace metadata");
    assert_eq!(group(&app, &t.token, g).await["metadata"], json!({"only": 1}));
    // Renaming to a taken name, or to nothing, is refused and changes nothing.
    let before = group(&app, &t.token, g).await;
    let r = app.patch(&path, &t.token, json!({"name": "Men"})).await;
    assert_eq!(
        assert_invalid(&r, "name", "rename to a taken name"),
        &vec![json!("has already been taken")]
    );
    let r = app.patch(&path, &t.token, json!({"name": "  "})).await;
    assert_invalid(&r, "name", "rename to blank");
    let r = app.patch(&path, &t.token, json!({"metadata": 1})).await;
    assert_invalid(&r, "metadata", "metadata not an object");
    assert_eq!(group(&app, &t.token, g).await, before);
    // Renaming to its own name is fine.
    let r = app.patch(&path, &t.token, json!({"name": "Ladies"})).await;
    assert_status(&r, StatusCode::NO_CONTENT, "rename to own name");

    // DELETE: 204 then 404.
    let r = app.delete(&path, &t.token).await;
    assert_status(&r, StatusCode::NO_CONTENT, "delete group");
    assert_eq!(r.header("location"), Some("/api/groups"));
    assert_not_found(&app.get(&path, &t.token).await, "GET deleted group");
    assert_not_found(&app.delete(&path, &t.token).await, "DELETE again");
    assert_not_found(
        &app.patch(&path, &t.token, json!({"name": "x"})).await,
        "PATCH deleted group",
    );
    assert_not_found(
        &app.get(&format!("{path}/contacts"), &t.token).await,
        "contacts of a deleted group",
    );
    // Its name is free again.
    let r = app.post("/api/groups", &t.token, json!({"name": "Ladies"})).await;
    assert_status(&r, StatusCode::CREATED, "re-use a deleted group's name");
    app.stop().await;
});

both_backends!(group_membership, |app| async move {
    let t = app.tenant("Acme").await;
    let g = create_group(&app, &t.token, "Women").await;
    let kate = create_contact(
        &app,
        &t.token,
        json!({"msisdn": "+254712345678", "first_name": "Kate", "metadata": {"gender": "f"}}),
    )
    .await;
    let ann = create_contact(
        &app,
        &t.token,
        json!({"msisdn": "+254722000111", "first_name": "Ann", "metadata": {"gender": "f"}, "opted_out": true}),
    )
    .await;
    let john = create_contact(&app, &t.token, json!({"msisdn": "+254722000222", "first_name": "John"})).await;

    // PUT is idempotent.
    for _ in 0..2 {
        let r = put(&app, &format!("/api/groups/{g}/contacts/{kate}"), &t.token).await;
        assert_status(&r, StatusCode::NO_CONTENT, "PUT member");
    }
    assert_eq!(group(&app, &t.token, g).await["contacts_count"], 1);
    let r = put(&app, &format!("/api/groups/{g}/contacts/{ann}"), &t.token).await;
    assert_status(&r, StatusCode::NO_CONTENT, "PUT second member");
    assert_eq!(group(&app, &t.token, g).await["contacts_count"], 2);

    // No such contact / group → 404.
    assert_not_found(
        &put(&app, &format!("/api/groups/{g}/contacts/999999"), &t.token).await,
        "PUT unknown contact",
    );
    assert_not_found(
        &put(&app, &format!("/api/groups/999999/contacts/{kate}"), &t.token).await,
        "PUT into unknown group",
    );
    assert_not_found(
        &put(&app, &format!("/api/groups/{g}/contacts/abc"), &t.token).await,
        "PUT non-numeric contact id",
    );

    // GET /api/groups/:id/contacts, with the contact filters and pagination.
    let path = format!("/api/groups/{g}/contacts");
    let r = app.get(&path, &t.token).await;
    assert_status(&r, StatusCode::OK, "group contacts");
    assert_eq!(r.header("total"), Some("2"));
    assert_eq!(r.header("per-page"), Some("25"));
    assert_eq!(ids(&r), sorted(vec![kate, ann]));
    assert_eq!(r.body[0]["msisdn"].as_str().map(|s| s.starts_with('+')), Some(true));
    for (query, want) in [
        ("q[opted_out]=false".to_string(), vec![kate]),
        ("q[opted_out]=true".into(), vec![ann]),
        ("q[first_name]=Ann".into(), vec![ann]),
        ("q[metadata][gender]=f".into(), sorted(vec![kate, ann])),
        (format!("q[msisdn]={}", enc("+254712345678")), vec![kate]),
        ("q[first_name]=John".into(), vec![]),
    ] {
        let r = app.get(&format!("{path}?{query}"), &t.token).await;
        assert_status(&r, StatusCode::OK, &query);
        assert_eq!(ids(&r), want, "{query}");
    }
    let r = app.get(&format!("{path}?sort=-id"), &t.token).await;
    assert_eq!(ids_in_order(&r), vec![ann, kate]);
    let r = app.get(&format!("{path}?per_page=1&sort=id"), &t.token).await;
    assert_eq!(r.header("total"), Some("2"));
    assert_eq!(ids_in_order(&r), vec![kate]);
    assert_eq!(link_rels(&r), vec!["next", "last"]);
    assert!(
        r.header("link")
            .unwrap()
            .contains(&format!("/api/groups/{g}/contacts?")),
        "{:?}",
        r.header("link")
    );
    let r = app.get(&format!("{path}?q[nope]=1"), &t.token).await;
    assert_invalid(&r, "q", "bad filter on group contacts");
    let r = app.get(&format!("{path}?q[msisdn]=abc"), &t.token).await;
    assert_invalid(&r, "q", "bad msisdn on group contacts");

    // The group shows in the contacts' q[group_id] too.
    let r = app.get(&format!("/api/contacts?q[group_id]={g}"), &t.token).await;
    assert_eq!(ids(&r), sorted(vec![kate, ann]));

    // DELETE a member: 204, again 404; the contact stays.
    let member = format!("/api/groups/{g}/contacts/{ann}");
    let r = app.delete(&member, &t.token).await;
    assert_status(&r, StatusCode::NO_CONTENT, "remove member");
    assert_not_found(&app.delete(&member, &t.token).await, "remove again");
    assert_not_found(
        &app.delete(&format!("/api/groups/{g}/contacts/{john}"), &t.token).await,
        "remove a non-member",
    );
    assert_not_found(
        &app.delete(&format!("/api/groups/999999/contacts/{kate}"), &t.token)
            .await,
        "remove from unknown group",
    );
    assert_eq!(group(&app, &t.token, g).await["contacts_count"], 1);
    contact(&app, &t.token, ann).await;
    assert_eq!(ids(&app.get(&path, &t.token).await), vec![kate]);

    // Deleting a contact takes it out of its groups.
    let g2 = create_group(&app, &t.token, "Everyone").await;
    for c in [kate, ann, john] {
        let r = put(&app, &format!("/api/groups/{g2}/contacts/{c}"), &t.token).await;
        assert_status(&r, StatusCode::NO_CONTENT, "fill Everyone");
    }
    assert_eq!(group(&app, &t.token, g2).await["contacts_count"], 3);
    let r = app.delete(&format!("/api/contacts/{kate}"), &t.token).await;
    assert_status(&r, StatusCode::NO_CONTENT, "delete a member contact");
    assert_eq!(group(&app, &t.token, g).await["contacts_count"], 0);
    assert_eq!(group(&app, &t.token, g2).await["contacts_count"], 2);
    assert_eq!(ids(&app.get(&path, &t.token).await), Vec::<i64>::new());
    assert_eq!(
        ids(&app.get(&format!("/api/groups/{g2}/contacts"), &t.token).await),
        sorted(vec![ann, john])
    );
    let r = app.get("/api/groups?sort=-contacts_count", &t.token).await;
    assert_eq!(ids_in_order(&r), vec![g2, g]);
    assert_eq!(r.body[0]["contacts_count"], 2);

    // Deleting a group keeps its contacts.
    let r = app.delete(&format!("/api/groups/{g2}"), &t.token).await;
    assert_status(&r, StatusCode::NO_CONTENT, "delete group");
    assert_eq!(contacts_count(&app, &t).await, 2);
    contact(&app, &t.token, ann).await;
    contact(&app, &t.token, john).await;
    let r = app.get(&format!("/api/contacts?q[group_id]={g2}"), &t.token).await;
    assert_eq!(r.header("total"), Some("0"));
    app.stop().await;
});

both_backends!(group_bulk_add, |app| async move {
    let t = app.tenant("Acme").await;
    let other = app.tenant("Beta").await;
    set_default_country(&app, &t, "KE").await;
    let kate = create_contact(
        &app,
        &t.token,
        json!({"msisdn": "+254712345678", "metadata": {"gender": "f", "age": 30}}),
    )
    .await;
    let ann = create_contact(
        &app,
        &t.token,
        json!({"msisdn": "+254722000111", "metadata": {"gender": "f", "age": 50}, "opted_out": true}),
    )
    .await;
    let john = create_contact(
        &app,
        &t.token,
        json!({"msisdn": "+254722000222", "metadata": {"gender": "m", "age": 20}}),
    )
    .await;
    let theirs = create_contact(
        &app,
        &other.token,
        json!({"msisdn": "+254722000333", "metadata": {"gender": "f"}}),
    )
    .await;
    let g = create_group(&app, &t.token, "Bulk").await;
    let path = format!("/api/groups/{g}/contacts");

    // By ids: another tenant's and unknown ids are skipped; duplicates count once.
    let r = app
        .post(&path, &t.token, json!({"contact_ids": [kate, theirs, 999_999, kate]}))
        .await;
    assert_status(&r, StatusCode::OK, "bulk by ids");
    assert_eq!(r.body, json!({"added": 1, "contacts_count": 1}));
    let r = app.post(&path, &t.token, json!({"contact_ids": [kate, ann]})).await;
    assert_eq!(
        r.body,
        json!({"added": 1, "contacts_count": 2}),
        "already a member is not added"
    );
    let r = app.post(&path, &t.token, json!({"contact_ids": []})).await;
    assert_eq!(r.body, json!({"added": 0, "contacts_count": 2}), "no ids");
    assert_eq!(ids(&app.get(&path, &t.token).await), sorted(vec![kate, ann]));
    // The other tenant's contact is not in any of our groups, and theirs is untouched.
    let r = app.get(&format!("/api/contacts?q[group_id]={g}"), &other.token).await;
    assert_eq!(r.header("total"), Some("0"));

    // By filter (SCFM's contact_filter_params).
    let g2 = create_group(&app, &t.token, "Women").await;
    let path2 = format!("/api/groups/{g2}/contacts");
    let r = app
        .post(
            &path2,
            &t.token,
            json!({"contact_filter_params": {"metadata": {"gender": "f"}}}),
        )
        .await;
    assert_status(&r, StatusCode::OK, "bulk by metadata filter");
    assert_eq!(
        r.body,
        json!({"added": 2, "contacts_count": 2}),
        "never the other tenant's"
    );
    assert_eq!(ids(&app.get(&path2, &t.token).await), sorted(vec![kate, ann]));
    let r = app
        .post(&path2, &t.token, json!({"contact_filter_params": {"opted_out": false}}))
        .await;
    assert_eq!(r.body, json!({"added": 1, "contacts_count": 3}), "{}", r.text);

    for (i, (filter, want)) in [
        (json!({"metadata": {"gender": "f"}, "opted_out": false}), vec![kate]),
        (json!({"metadata": {"age.numeric.gteq": 50}}), vec![ann]),
        (json!({"metadata": {"gender.in": ["m", "x"]}}), vec![john]),
        (
            json!({"metadata": {"age.numeric.lt": 40}, "created_at_after": "2000-01-01"}),
            sorted(vec![kate, john]),
        ),
        (json!({"opted_out": true}), vec![ann]),
        (json!({"msisdn": "+254722000222"}), vec![john]),
    ]
    .into_iter()
    .enumerate()
    {
        let g3 = create_group(&app, &t.token, &format!("Filtered {i}")).await;
        let path3 = format!("/api/groups/{g3}/contacts");
        let r = app
            .post(&path3, &t.token, json!({"contact_filter_params": filter.clone()}))
            .await;
        assert_status(&r, StatusCode::OK, &filter.to_string());
        assert_eq!(
            r.body,
            json!({"added": want.len(), "contacts_count": want.len()}),
            "{filter}"
        );
        assert_eq!(ids(&app.get(&path3, &t.token).await), want, "{filter}");
    }

    // The msisdn filter is normalised as in `q[msisdn]`.
    let g4 = create_group(&app, &t.token, "By number").await;
    let r = app
        .post(
            &format!("/api/groups/{g4}/contacts"),
            &t.token,
            json!({"contact_filter_params": {"msisdn": "0712345678"}}),
        )
        .await;
    assert_status(&r, StatusCode::OK, "bulk by national msisdn");
    assert_eq!(r.body, json!({"added": 1, "contacts_count": 1}), "{}", r.text);
    let r = app
        .post(
            &format!("/api/groups/{g4}/contacts"),
            &t.token,
            json!({"contact_filter_params": {"msisdn": "not a number"}}),
        )
        .await;
    assert_invalid(&r, "contact_filter_params", "bulk by invalid msisdn");

    // Exactly one of the two; bad filters are 422 on contact_filter_params.
    let before = group(&app, &t.token, g).await;
    for (body, field, what) in [
        (
            json!({"contact_ids": [john], "contact_filter_params": {"opted_out": false}}),
            "base",
            "both",
        ),
        (json!({}), "base", "neither"),
        (
            json!({"contact_ids": null, "contact_filter_params": null}),
            "base",
            "both null",
        ),
        (
            json!({"contact_filter_params": {"nope": 1}}),
            "contact_filter_params",
            "unknown filter",
        ),
        (
            json!({"contact_filter_params": {"metadata": {"age.numeric.gt": "old"}}}),
            "contact_filter_params",
            "bad number",
        ),
        (
            json!({"contact_filter_params": {"opted_out": "maybe"}}),
            "contact_filter_params",
            "bad bool",
        ),
        (json!({"contact_ids": "1,2"}), "contact_ids", "ids not a list"),
        (json!({"contact_ids": ["a"]}), "contact_ids[0]", "ids not numbers"),
        (
            json!({"contact_filter_params": "gender=f"}),
            "contact_filter_params",
            "filter not an object",
        ),
    ] {
        let r = app.post(&path, &t.token, body).await;
        assert_invalid(&r, field, what);
    }
    assert_eq!(group(&app, &t.token, g).await, before, "nothing changed");

    // A group of another tenant, or none, is 404 either way.
    let theirs_g = create_group(&app, &other.token, "Theirs").await;
    for gid in [theirs_g, 999_999] {
        for body in [
            json!({"contact_ids": [john]}),
            json!({"contact_filter_params": {"opted_out": false}}),
        ] {
            let r = app.post(&format!("/api/groups/{gid}/contacts"), &t.token, body).await;
            assert_not_found(&r, "bulk into a group that is not ours");
        }
    }
    assert_eq!(group(&app, &other.token, theirs_g).await["contacts_count"], 0);
    app.stop().await;
});

// ---------------------------------------------------------------------------------------
// 4. Clients
// ---------------------------------------------------------------------------------------

both_backends!(client_crud_and_validation, |app| async move {
    let t = app.tenant("Acme").await;
    let other = app.tenant("Beta").await;

    let full = json!({
        "external_client_id": "EXT-1",
        "company_name": "New Company",
        "address": "456 New Street",
        "house_number": "34B",
        "zip_code": "67890",
        "country": "USA",
        "city": "New City",
        "phone_number": "+1-123-456-7890",
        "website_url": "https://www.newcompany.com",
        "chamber_of_commerce_number": "987654321",
        "email": "contact@newcompany.com",
        "logo": "https://storage.example.com/logos/newcompany.png",
        "metadata": {"tier": "gold"},
    });
    let r = app.post("/api/clients", &t.token, full.clone()).await;
    assert_status(&r, StatusCode::CREATED, "create client");
    let c = r.body["id"].as_i64().unwrap();
    assert_eq!(r.header("location"), Some(format!("/api/clients/{c}").as_str()));
    for (k, v) in full.as_object().unwrap() {
        assert_eq!(&r.body[k], v, "{k}");
    }
    assert_eq!(r.body["user_id"], Value::Null, "an API token has no user");
    assert_eq!(r.body["account_id"], t.account_id);
    assert_timestamp(&r.body["created_at"], "created_at");
    assert_timestamp(&r.body["updated_at"], "updated_at");
    let shown = app.get(&format!("/api/clients/{c}"), &t.token).await;
    assert_status(&shown, StatusCode::OK, "GET client");
    assert_eq!(shown.body, r.body);

    // external_client_id may be a number; it reads back as a string.
    let r = app
        .post(
            "/api/clients",
            &t.token,
            json!({"external_client_id": 42, "company_name": "Numbered"}),
        )
        .await;
    assert_status(&r, StatusCode::CREATED, "numeric external id");
    assert_eq!(r.body["external_client_id"], "42");
    let numbered = r.body["id"].as_i64().unwrap();
    for field in [
        "address",
        "house_number",
        "zip_code",
        "country",
        "city",
        "phone_number",
        "website_url",
        "chamber_of_commerce_number",
        "email",
        "logo",
    ] {
        assert_eq!(r.body[field], Value::Null, "{field}");
    }
    assert_eq!(r.body["metadata"], json!({}));

    // Stored as validated: trimmed, the e-mail lower-cased (as a contact's).
    let r = app
        .post(
            "/api/clients",
            &t.token,
            json!({"external_client_id": " T-1 ", "company_name": " Trimmed Co ", "email": " Info@Example.COM ",
                   "website_url": " https://trimmed.example/ ", "logo": " https://trimmed.example/logo.png "}),
        )
        .await;
    assert_status(&r, StatusCode::CREATED, "padded values");
    assert_eq!(r.body["external_client_id"], "T-1");
    assert_eq!(r.body["company_name"], "Trimmed Co");
    assert_eq!(r.body["email"], "info@example.com");
    assert_eq!(r.body["website_url"], "https://trimmed.example/");
    assert_eq!(r.body["logo"], "https://trimmed.example/logo.png");
    let trimmed = r.body["id"].as_i64().unwrap();
    let r = app
        .patch(
            &format!("/api/clients/{trimmed}"),
            &t.token,
            json!({"email": " Other@Example.com", "website_url": "http://other.example "}),
        )
        .await;
    assert_status(&r, StatusCode::NO_CONTENT, "padded PATCH");
    let r = app.get(&format!("/api/clients/{trimmed}"), &t.token).await;
    assert_eq!(r.body["email"], "other@example.com");
    assert_eq!(r.body["website_url"], "http://other.example");
    let r = app.delete(&format!("/api/clients/{trimmed}"), &t.token).await;
    assert_status(&r, StatusCode::NO_CONTENT, "delete padded client");

    // Required fields and formats.
    for (body, field, what) in [
        (
            json!({"external_client_id": "X"}),
            "company_name",
            "company_name missing",
        ),
        (
            json!({"external_client_id": "X", "company_name": ""}),
            "company_name",
            "company_name empty",
        ),
        (
            json!({"external_client_id": "X", "company_name": "   "}),
            "company_name",
            "company_name blank",
        ),
        (
            json!({"external_client_id": "X", "company_name": null}),
            "company_name",
            "company_name null",
        ),
        (
            json!({"company_name": "Co"}),
            "external_client_id",
            "external id missing",
        ),
        (
            json!({"company_name": "Co", "external_client_id": " "}),
            "external_client_id",
            "external id blank",
        ),
        (
            json!({"company_name": "Co", "external_client_id": "X", "website_url": "not a url"}),
            "website_url",
            "website not a URL",
        ),
        (
            json!({"company_name": "Co", "external_client_id": "X", "website_url": "www.example.com"}),
            "website_url",
            "website without a scheme",
        ),
        (
            json!({"company_name": "Co", "external_client_id": "X", "website_url": "javascript:alert(1)"}),
            "website_url",
            "website javascript:",
        ),
        (
            json!({"company_name": "Co", "external_client_id": "X", "email": "nope"}),
            "email",
            "email invalid",
        ),
        (
            json!({"company_name": "Co", "external_client_id": "X", "logo": "logo.png"}),
            "logo",
            "logo not a URL",
        ),
        (
            json!({"company_name": "Co", "external_client_id": "X", "metadata": "x"}),
            "metadata",
            "metadata not an object",
        ),
        (
            json!({"company_name": "x".repeat(256), "external_client_id": "X"}),
            "company_name",
            "company_name too long",
        ),
    ] {
        let r = app.post("/api/clients", &t.token, body).await;
        assert_invalid(&r, field, what);
    }
    let r = app.post("/api/clients", &t.token, json!({})).await;
    assert_invalid(&r, "company_name", "empty body");
    assert_invalid(&r, "external_client_id", "empty body");

    // external_client_id is unique per account, whether typed as a string or a number.
    for ext in [json!("EXT-1"), json!(42), json!("42"), json!(" EXT-1 ")] {
        let r = app
            .post(
                "/api/clients",
                &t.token,
                json!({"external_client_id": ext, "company_name": "Dup"}),
            )
            .await;
        assert_status(&r, StatusCode::UNPROCESSABLE_ENTITY, &ext.to_string());
        assert_eq!(
            r.body,
            json!({"errors": {"external_client_id": ["has already been taken"]}, "code": "validation_failed"}),
            "{ext}"
        );
    }
    let r = app
        .post(
            "/api/clients",
            &other.token,
            json!({"external_client_id": "EXT-1", "company_name": "Theirs"}),
        )
        .await;
    assert_status(&r, StatusCode::CREATED, "same external id, another account");

    // List and filters.
    let r = app.get("/api/clients", &t.token).await;
    assert_status(&r, StatusCode::OK, "list clients");
    assert_eq!(r.header("total"), Some("2"));
    assert_eq!(ids(&r), sorted(vec![c, numbered]));
    let r = app.get("/api/clients?q[external_client_id]=42", &t.token).await;
    assert_eq!(ids(&r), vec![numbered]);
    let r = app.get("/api/clients?q[company_name]=New%20Company", &t.token).await;
    assert_eq!(ids(&r), vec![c]);
    let r = app.get("/api/clients?q[metadata][tier]=gold", &t.token).await;
    assert_eq!(ids(&r), vec![c]);
    let r = app.get("/api/clients?sort=-company_name", &t.token).await;
    assert_eq!(ids_in_order(&r), vec![numbered, c]);

    // PATCH: 204; changes what is sent, null clears, the rest stays.
    let path = format!("/api/clients/{c}");
    let r = app
        .patch(
            &path,
            &t.token,
            json!({"company_name": "Updated Company", "website_url": null, "city": "Updated City", "metadata": {"n": 1}}),
        )
        .await;
    assert_status(&r, StatusCode::NO_CONTENT, "PATCH client");
    assert_eq!(r.header("location"), Some(path.as_str()));
    let after = app.get(&path, &t.token).await.body;
    assert_eq!(after["company_name"], "Updated Company");
    assert_eq!(after["website_url"], Value::Null);
    assert_eq!(after["city"], "Updated City");
    assert_eq!(after["email"], "contact@newcompany.com");
    assert_eq!(after["external_client_id"], "EXT-1");
    assert_eq!(after["metadata"], json!({"tier": "gold", "n": 1}));
    assert_eq!(after["created_at"], shown.body["created_at"]);
    let r = app.patch(&path, &t.token, json!({"external_client_id": 1001})).await;
    assert_status(&r, StatusCode::NO_CONTENT, "PATCH numeric external id");
    assert_eq!(app.get(&path, &t.token).await.body["external_client_id"], "1001");

    // Invalid PATCHes change nothing.
    let before = app.get(&path, &t.token).await.body;
    for (body, field) in [
        (json!({"external_client_id": "42"}), "external_client_id"),
        (json!({"external_client_id": ""}), "external_client_id"),
        (json!({"company_name": ""}), "company_name"),
        (json!({"email": "bad"}), "email"),
        (json!({"website_url": "nope"}), "website_url"),
        (json!({"logo": "ftp://example.com/x.png"}), "logo"),
        (json!({"user_id": 999_999}), "user_id"),
    ] {
        let r = app.patch(&path, &t.token, body).await;
        assert_invalid(&r, field, &format!("PATCH {field}"));
    }
    assert_eq!(app.get(&path, &t.token).await.body, before);

    // DELETE: 204 then 404.
    let r = app.delete(&path, &t.token).await;
    assert_status(&r, StatusCode::NO_CONTENT, "delete client");
    assert_eq!(r.header("location"), Some("/api/clients"));
    assert_not_found(&app.get(&path, &t.token).await, "GET deleted client");
    assert_not_found(&app.delete(&path, &t.token).await, "DELETE again");
    assert_not_found(
        &app.get(&format!("{path}/contacts"), &t.token).await,
        "contacts of a deleted client",
    );
    app.stop().await;
});

both_backends!(client_user_defaults_to_the_session_user, |app| async move {
    let t = app.tenant("Acme").await;
    let other = app.tenant("Beta").await;
    let alice = create_user(&app, &t.token, "alice@acme.example").await;
    let bob = create_user(&app, &t.token, "bob@acme.example").await;
    let mallory = create_user(&app, &other.token, "mallory@beta.example").await;
    let session = login(&app, "alice@acme.example", "secret123").await;

    // Made in Alice's session: hers.
    let r = app
        .post(
            "/api/clients",
            &session,
            json!({"external_client_id": "S-1", "company_name": "Session Co"}),
        )
        .await;
    assert_status(&r, StatusCode::CREATED, "create in a session");
    assert_eq!(r.body["user_id"], alice);
    // Made with an API token: no user.
    let r = app
        .post(
            "/api/clients",
            &t.token,
            json!({"external_client_id": "S-2", "company_name": "Token Co"}),
        )
        .await;
    assert_eq!(r.body["user_id"], Value::Null);
    let token_made = r.body["id"].as_i64().unwrap();
    // An explicit user of the account wins, in either case; null means none.
    let r = app
        .post(
            "/api/clients",
            &session,
            json!({"external_client_id": "S-3", "company_name": "For Bob", "user_id": bob}),
        )
        .await;
    assert_eq!(r.body["user_id"], bob, "{}", r.text);
    let r = app
        .post(
            "/api/clients",
            &session,
            json!({"external_client_id": "S-4", "company_name": "Nobody's", "user_id": null}),
        )
        .await;
    assert_eq!(r.body["user_id"], Value::Null, "{}", r.text);
    let r = app
        .post(
            "/api/clients",
            &t.token,
            json!({"external_client_id": "S-5", "company_name": "Alice's", "user_id": alice}),
        )
        .await;
    assert_eq!(r.body["user_id"], alice, "{}", r.text);

    // Another tenant's user, or none, is 422 on user_id.
    for uid in [mallory, 999_999] {
        let r = app
            .post(
                "/api/clients",
                &t.token,
                json!({"external_client_id": "S-6", "company_name": "X", "user_id": uid}),
            )
            .await;
        assert_invalid(&r, "user_id", "foreign user on create");
        let r = app
            .patch(&format!("/api/clients/{token_made}"), &t.token, json!({"user_id": uid}))
            .await;
        assert_invalid(&r, "user_id", "foreign user on update");
    }
    let r = app
        .patch(&format!("/api/clients/{token_made}"), &t.token, json!({"user_id": bob}))
        .await;
    assert_status(&r, StatusCode::NO_CONTENT, "assign a user");
    let r = app.get(&format!("/api/clients/{token_made}"), &t.token).await;
    assert_eq!(r.body["user_id"], bob);
    let r = app.get(&format!("/api/clients?q[user_id]={bob}"), &t.token).await;
    assert_eq!(r.header("total"), Some("2"), "{}", r.text);
    app.stop().await;
});

both_backends!(client_contacts_and_delete_keeps_contacts, |app| async move {
    let t = app.tenant("Acme").await;
    let c = create_client(&app, &t.token, json!("C-1")).await;
    let c2 = create_client(&app, &t.token, json!("C-2")).await;
    let kate = create_contact(
        &app,
        &t.token,
        json!({"msisdn": "+254712345678", "client_id": c, "first_name": "Kate", "metadata": {"gender": "f"}}),
    )
    .await;
    let john = create_contact(
        &app,
        &t.token,
        json!({"msisdn": "+254722000111", "client_id": c, "first_name": "John", "opted_out": true}),
    )
    .await;
    let elsewhere = create_contact(&app, &t.token, json!({"msisdn": "+254722000222", "client_id": c2})).await;
    create_contact(&app, &t.token, json!({"msisdn": "+254722000333"})).await;

    let path = format!("/api/clients/{c}/contacts");
    let r = app.get(&path, &t.token).await;
    assert_status(&r, StatusCode::OK, "client contacts");
    assert_eq!(r.header("total"), Some("2"));
    assert_eq!(r.header("per-page"), Some("25"));
    assert_eq!(ids(&r), sorted(vec![kate, john]));
    assert!(r.body.as_array().unwrap().iter().all(|x| x["client_id"] == c));
    for (query, want) in [
        ("q[first_name]=Kate", vec![kate]),
        ("q[opted_out]=true", vec![john]),
        ("q[metadata][gender]=f", vec![kate]),
        ("q[msisdn]=254722000222", vec![]),
    ] {
        let r = app.get(&format!("{path}?{query}"), &t.token).await;
        assert_status(&r, StatusCode::OK, query);
        assert_eq!(ids(&r), want, "{query}");
    }
    let r = app.get(&format!("{path}?sort=-id&per_page=1"), &t.token).await;
    assert_eq!(ids_in_order(&r), vec![john]);
    assert_eq!(r.header("total"), Some("2"));
    let r = app.get(&format!("{path}?q[nope]=1"), &t.token).await;
    assert_invalid(&r, "q", "bad filter");

    // Moving a contact to another client.
    let r = app
        .patch(&format!("/api/contacts/{john}"), &t.token, json!({"client_id": c2}))
        .await;
    assert_status(&r, StatusCode::NO_CONTENT, "move contact");
    assert_eq!(ids(&app.get(&path, &t.token).await), vec![kate]);
    assert_eq!(
        ids(&app.get(&format!("/api/clients/{c2}/contacts"), &t.token).await),
        sorted(vec![john, elsewhere])
    );

    // Deleting a client keeps its contacts, without a client.
    let r = app.delete(&format!("/api/clients/{c}"), &t.token).await;
    assert_status(&r, StatusCode::NO_CONTENT, "delete client");
    let k = contact(&app, &t.token, kate).await;
    assert_eq!(k["client_id"], Value::Null);
    assert_eq!(k["first_name"], "Kate");
    assert_eq!(contact(&app, &t.token, john).await["client_id"], c2);
    assert_eq!(contacts_count(&app, &t).await, 4);
    let r = app.get(&format!("/api/contacts?q[client_id]={c}"), &t.token).await;
    assert_eq!(r.header("total"), Some("0"));
    app.stop().await;
});

// ---------------------------------------------------------------------------------------
// 5. Tenant isolation
// ---------------------------------------------------------------------------------------

both_backends!(another_tenants_audience_is_not_found_and_untouched, |app| async move {
    let a = app.tenant("Acme").await;
    let b = app.tenant("Beta").await;
    create_user(&app, &b.token, "bob@beta.example").await;
    let b_session = login(&app, "bob@beta.example", "secret123").await;

    let xa = create_client(&app, &a.token, json!("A-1")).await;
    let ca = create_contact(
        &app,
        &a.token,
        json!({"msisdn": "+254712345678", "client_id": xa, "first_name": "Alice", "metadata": {"owner": "a"}}),
    )
    .await;
    let ca2 = create_contact(
        &app,
        &a.token,
        json!({"msisdn": "+254722000999", "metadata": {"owner": "a"}}),
    )
    .await;
    let ga = create_group(&app, &a.token, "A's group").await;
    let r = put(&app, &format!("/api/groups/{ga}/contacts/{ca}"), &a.token).await;
    assert_status(&r, StatusCode::NO_CONTENT, "A fills its group");

    let cb = create_contact(
        &app,
        &b.token,
        json!({"msisdn": "+254722000111", "metadata": {"owner": "b"}}),
    )
    .await;
    let gb = create_group(&app, &b.token, "B's group").await;

    let snapshot = |tok: String| {
        let app = &app;
        async move {
            let mut out = Vec::new();
            for p in [
                format!("/api/contacts/{ca}"),
                format!("/api/contacts/{ca2}"),
                format!("/api/groups/{ga}"),
                format!("/api/groups/{ga}/contacts"),
                format!("/api/clients/{xa}"),
                format!("/api/clients/{xa}/contacts"),
                "/api/contacts".to_string(),
            ] {
                let r = app.get(&p, &tok).await;
                assert_status(&r, StatusCode::OK, &p);
                out.push(r.body);
            }
            out
        }
    };
    let before = snapshot(a.token.clone()).await;
    let gb_before = group(&app, &b.token, gb).await;
    let cb_before = contact(&app, &b.token, cb).await;

    let patch_contact = json!({"first_name": "Mallory", "msisdn": "+254733000000", "opted_out": true,
                               "metadata": {"owner": "b"}, "metadata_merge_mode": "replace"});
    let cases: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/api/contacts/{ca}"), None),
        (
            Method::PATCH,
            format!("/api/contacts/{ca}"),
            Some(patch_contact.clone()),
        ),
        (Method::DELETE, format!("/api/contacts/{ca}"), None),
        (Method::GET, format!("/api/groups/{ga}"), None),
        (
            Method::PATCH,
            format!("/api/groups/{ga}"),
            Some(json!({"name": "pwned", "metadata": {"owner": "b"}})),
        ),
        (Method::DELETE, format!("/api/groups/{ga}"), None),
        (Method::GET, format!("/api/groups/{ga}/contacts"), None),
        (
            Method::GET,
            format!("/api/groups/{ga}/contacts?q[metadata][owner]=a"),
            None,
        ),
        (
            Method::POST,
            format!("/api/groups/{ga}/contacts"),
            Some(json!({"contact_ids": [cb, ca2]})),
        ),
        (
            Method::POST,
            format!("/api/groups/{ga}/contacts"),
            Some(json!({"contact_filter_params": {"opted_out": false}})),
        ),
        // Another tenant's group, with their contact or ours.
        (Method::PUT, format!("/api/groups/{ga}/contacts/{ca2}"), None),
        (Method::PUT, format!("/api/groups/{ga}/contacts/{cb}"), None),
        (Method::DELETE, format!("/api/groups/{ga}/contacts/{ca}"), None),
        (Method::DELETE, format!("/api/groups/{ga}/contacts/{cb}"), None),
        // Our group, another tenant's contact.
        (Method::PUT, format!("/api/groups/{gb}/contacts/{ca}"), None),
        (Method::PUT, format!("/api/groups/{gb}/contacts/{ca2}"), None),
        (Method::DELETE, format!("/api/groups/{gb}/contacts/{ca}"), None),
        (Method::GET, format!("/api/clients/{xa}"), None),
        (
            Method::PATCH,
            format!("/api/clients/{xa}"),
            Some(json!({"company_name": "pwned", "external_client_id": "B-1"})),
        ),
        (Method::DELETE, format!("/api/clients/{xa}"), None),
        (Method::GET, format!("/api/clients/{xa}/contacts"), None),
    ];
    for token in [&b.token, &b_session] {
        for (method, path, body) in &cases {
            let r = app.call(method.clone(), path, Some(token), body.clone()).await;
            assert_not_found(&r, &format!("B: {method} {path}"));
        }
    }

    // B cannot point its contacts at A's client, nor bulk-add A's contacts into its group.
    let r = app
        .patch(&format!("/api/contacts/{cb}"), &b.token, json!({"client_id": xa}))
        .await;
    assert_invalid(&r, "client_id", "B links A's client");
    let r = app
        .post(
            "/api/contacts",
            &b.token,
            json!({"msisdn": "+254722000444", "client_id": xa}),
        )
        .await;
    assert_invalid(&r, "client_id", "B creates with A's client");
    let r = app
        .post(
            &format!("/api/groups/{gb}/contacts"),
            &b.token,
            json!({"contact_ids": [ca, ca2]}),
        )
        .await;
    assert_status(&r, StatusCode::OK, "B bulk-adds A's ids");
    assert_eq!(r.body, json!({"added": 0, "contacts_count": 0}));
    let r = app
        .post(
            &format!("/api/groups/{gb}/contacts"),
            &b.token,
            json!({"contact_filter_params": {"metadata": {"owner": "a"}}}),
        )
        .await;
    assert_eq!(r.body, json!({"added": 0, "contacts_count": 0}));

    // B's lists never show A's rows, however filtered.
    let xb = create_client(&app, &b.token, json!("B-1")).await;
    for (p, want) in [
        ("/api/contacts".to_string(), vec![cb]),
        ("/api/contacts?q[metadata][owner]=a".to_string(), vec![]),
        (format!("/api/contacts?q[msisdn]={}", enc("+254712345678")), vec![]),
        (format!("/api/contacts?q[group_id]={ga}"), vec![]),
        (format!("/api/contacts?q[client_id]={xa}"), vec![]),
        ("/api/groups".to_string(), vec![gb]),
        ("/api/groups?q[name]=A's%20group".to_string(), vec![]),
        ("/api/clients".to_string(), vec![xb]),
        ("/api/clients?q[external_client_id]=A-1".to_string(), vec![]),
        (format!("/api/groups/{gb}/contacts"), vec![]),
    ] {
        let r = app.get(&p, &b.token).await;
        assert_status(&r, StatusCode::OK, &p);
        assert_eq!(ids(&r), want, "{p}");
        for row in r.body.as_array().unwrap() {
            assert_eq!(row["account_id"], b.account_id, "{p}");
        }
    }

    // A's rows are exactly as they were; B's are too.
    assert_eq!(snapshot(a.token.clone()).await, before);
    assert_eq!(group(&app, &b.token, gb).await, gb_before);
    assert_eq!(contact(&app, &b.token, cb).await, cb_before);

    // Ids that cannot name a row are 404 too.
    for bad in ["abc", "0", "-1", "1.5", "99999999999999999999"] {
        for (method, path) in [
            (Method::GET, format!("/api/contacts/{bad}")),
            (Method::DELETE, format!("/api/contacts/{bad}")),
            (Method::GET, format!("/api/groups/{bad}")),
            (Method::GET, format!("/api/groups/{bad}/contacts")),
            (Method::PUT, format!("/api/groups/{bad}/contacts/{ca}")),
            (Method::PUT, format!("/api/groups/{ga}/contacts/{bad}")),
            (Method::DELETE, format!("/api/groups/{ga}/contacts/{bad}")),
            (Method::GET, format!("/api/clients/{bad}")),
            (Method::GET, format!("/api/clients/{bad}/contacts")),
        ] {
            let r = app.call(method.clone(), &path, Some(&a.token), None).await;
            assert_not_found(&r, &format!("{method} {path}"));
        }
    }
    app.stop().await;
});

// ---------------------------------------------------------------------------------------
// 6. Permission matrix
// ---------------------------------------------------------------------------------------

both_backends!(each_audience_route_needs_its_permissions, |app| async move {
    let t = app.tenant("Acme").await;
    let client = create_client(&app, &t.token, json!("P-1")).await;
    let client_doomed = create_client(&app, &t.token, json!("P-2")).await;
    let target = create_contact(&app, &t.token, json!({"msisdn": "+254712345678", "client_id": client})).await;
    let doomed = create_contact(&app, &t.token, json!({"msisdn": "+254722000999"})).await;
    let g = create_group(&app, &t.token, "Matrix").await;
    let g_doomed = create_group(&app, &t.token, "Doomed").await;

    struct Case {
        method: Method,
        path: String,
        body: Option<Value>,
        need: &'static [&'static str],
        ok: StatusCode,
    }
    let case =
        |method: Method, path: String, body: Option<Value>, need: &'static [&'static str], ok: StatusCode| Case {
            method,
            path,
            body,
            need,
            ok,
        };
    const CR: &[&str] = &["contacts_read"];
    const CW: &[&str] = &["contacts_write"];
    const GR: &[&str] = &["groups_read"];
    const GW: &[&str] = &["groups_write"];
    const KR: &[&str] = &["clients_read"];
    const KW: &[&str] = &["clients_write"];
    // In the order the allowed calls can run one after another (deletes last).
    let cases = vec![
        case(Method::GET, "/api/contacts".into(), None, CR, StatusCode::OK),
        case(
            Method::POST,
            "/api/contacts".into(),
            Some(json!({"msisdn": "+254722000111"})),
            CW,
            StatusCode::CREATED,
        ),
        case(
            Method::POST,
            "/api/contact_data".into(),
            Some(json!({"msisdn": "+254722000222"})),
            CW,
            StatusCode::CREATED,
        ),
        case(Method::GET, format!("/api/contacts/{target}"), None, CR, StatusCode::OK),
        case(
            Method::PATCH,
            format!("/api/contacts/{target}"),
            Some(json!({"first_name": "Perm"})),
            CW,
            StatusCode::NO_CONTENT,
        ),
        case(Method::GET, "/api/groups".into(), None, GR, StatusCode::OK),
        case(
            Method::POST,
            "/api/groups".into(),
            Some(json!({"name": "Made by matrix"})),
            GW,
            StatusCode::CREATED,
        ),
        case(Method::GET, format!("/api/groups/{g}"), None, GR, StatusCode::OK),
        case(
            Method::PATCH,
            format!("/api/groups/{g}"),
            Some(json!({"description": "perm"})),
            GW,
            StatusCode::NO_CONTENT,
        ),
        case(
            Method::POST,
            format!("/api/groups/{g}/contacts"),
            Some(json!({"contact_ids": [target]})),
            GW,
            StatusCode::OK,
        ),
        case(
            Method::GET,
            format!("/api/groups/{g}/contacts"),
            None,
            &["groups_read", "contacts_read"],
            StatusCode::OK,
        ),
        case(
            Method::DELETE,
            format!("/api/groups/{g}/contacts/{target}"),
            None,
            GW,
            StatusCode::NO_CONTENT,
        ),
        case(
            Method::PUT,
            format!("/api/groups/{g}/contacts/{target}"),
            None,
            GW,
            StatusCode::NO_CONTENT,
        ),
        case(Method::GET, "/api/clients".into(), None, KR, StatusCode::OK),
        case(
            Method::POST,
            "/api/clients".into(),
            Some(json!({"external_client_id": "P-3", "company_name": "Matrix Co"})),
            KW,
            StatusCode::CREATED,
        ),
        case(Method::GET, format!("/api/clients/{client}"), None, KR, StatusCode::OK),
        case(
            Method::PATCH,
            format!("/api/clients/{client}"),
            Some(json!({"city": "Perm City"})),
            KW,
            StatusCode::NO_CONTENT,
        ),
        case(
            Method::GET,
            format!("/api/clients/{client}/contacts"),
            None,
            &["clients_read", "contacts_read"],
            StatusCode::OK,
        ),
        case(
            Method::DELETE,
            format!("/api/contacts/{doomed}"),
            None,
            CW,
            StatusCode::NO_CONTENT,
        ),
        case(
            Method::DELETE,
            format!("/api/groups/{g_doomed}"),
            None,
            GW,
            StatusCode::NO_CONTENT,
        ),
        case(
            Method::DELETE,
            format!("/api/clients/{client_doomed}"),
            None,
            KW,
            StatusCode::NO_CONTENT,
        ),
    ];

    let all: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
    for c in &cases {
        let what = format!("{} {}", c.method, c.path);
        // Without a token: 401.
        let r = app.call(c.method.clone(), &c.path, None, c.body.clone()).await;
        assert_status(&r, StatusCode::UNAUTHORIZED, &format!("{what} without a token"));
        // Lacking any one of the needed permissions: 403, whatever else the token holds.
        for missing in c.need {
            let perms: Vec<&str> = all.iter().copied().filter(|p| p != missing).collect();
            let tok = app.token_with(&t, &perms).await;
            let r = app.call(c.method.clone(), &c.path, Some(&tok), c.body.clone()).await;
            assert_forbidden(&r, &format!("{what} without {missing}"));
            assert!(r.text.contains(missing), "{what}: the 403 names {missing}: {}", r.text);
        }
        // A token holding only an unrelated permission: 403.
        let tok = app.token_with(&t, &["users_read"]).await;
        let r = app.call(c.method.clone(), &c.path, Some(&tok), c.body.clone()).await;
        assert_forbidden(&r, &format!("{what} with users_read only"));
        // Exactly the needed permissions: success.
        let tok = app.token_with(&t, c.need).await;
        let r = app.call(c.method.clone(), &c.path, Some(&tok), c.body.clone()).await;
        assert_status(&r, c.ok, &format!("{what} with exactly {:?}", c.need));
    }

    // The forbidden calls changed nothing; the allowed ones did exactly their work.
    let r = app.get("/api/contacts", &t.token).await;
    assert_eq!(r.header("total"), Some("3"), "{}", r.text);
    assert_eq!(contact(&app, &t.token, target).await["first_name"], "Perm");
    let r = app.get("/api/groups", &t.token).await;
    assert_eq!(r.header("total"), Some("2"), "{}", r.text);
    let shown = group(&app, &t.token, g).await;
    assert_eq!(shown["description"], "perm");
    assert_eq!(shown["contacts_count"], 1);
    let r = app.get("/api/clients", &t.token).await;
    assert_eq!(r.header("total"), Some("2"), "{}", r.text);
    let r = app.get(&format!("/api/clients/{client}"), &t.token).await;
    assert_eq!(r.body["city"], "Perm City");
    app.stop().await;
});
