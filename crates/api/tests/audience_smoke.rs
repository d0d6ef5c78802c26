//! Contacts, groups and clients: the main path, on both backends.

mod common;

use reqwest::StatusCode;
use serde_json::json;

both_backends!(contacts_groups_clients, |app| async move {
    let t = app.tenant("Acme").await;
    let r = app
        .post(
            "/api/contacts",
            &t.token,
            json!({"msisdn": "252662345999", "metadata": {"gender": "f", "name": "Kate"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["msisdn"], "+252662345999");
    let kate = r.body["id"].as_i64().unwrap();

    let r = app
        .post("/api/contacts", &t.token, json!({"msisdn": "+252 66 234 5999"}))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["errors"]["msisdn"], json!(["has already been taken"]));

    let r = app
        .post(
            "/api/contact_data",
            &t.token,
            json!({"msisdn": "+252662345999", "first_name": "Kate", "metadata": {"age": 30}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["id"], kate);
    assert_eq!(r.body["metadata"], json!({"gender": "f", "name": "Kate", "age": 30}));

    let r = app
        .patch("/api/account", &t.token, json!({"settings": {"default_country": "KE"}}))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = app
        .post(
            "/api/contacts",
            &t.token,
            json!({"msisdn": "0712345678", "metadata": {"registered_districts": ["1401"]}}),
        )
        .await;
    assert_eq!(r.body["msisdn"], "+254712345678", "{}", r.text);
    let ke = r.body["id"].as_i64().unwrap();

    let r = app
        .get(
            "/api/contacts?q[metadata][registered_districts.any][]=1402&q[metadata][registered_districts.any][]=1401",
            &t.token,
        )
        .await;
    assert_eq!(r.header("total"), Some("1"), "{}", r.text);
    let r = app.get("/api/contacts?q[msisdn]=0712345678", &t.token).await;
    assert_eq!(r.body[0]["id"], ke, "{}", r.text);

    let r = app.post("/api/groups", &t.token, json!({"name": "Women"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let g = r.body["id"].as_i64().unwrap();
    let r = app
        .post(
            &format!("/api/groups/{g}/contacts"),
            &t.token,
            json!({"contact_filter_params": {"metadata": {"gender": "f"}}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body, json!({"added": 1, "contacts_count": 1}));
    let r = app
        .call(
            reqwest::Method::PUT,
            &format!("/api/groups/{g}/contacts/{ke}"),
            Some(&t.token),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = app
        .get(&format!("/api/contacts?q[group_id]={g}&sort=-id"), &t.token)
        .await;
    assert_eq!(r.header("total"), Some("2"), "{}", r.text);
    let r = app.get(&format!("/api/groups/{g}"), &t.token).await;
    assert_eq!(r.body["contacts_count"], 2);
    let r = app.delete(&format!("/api/groups/{g}"), &t.token).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app.get("/api/account", &t.token).await;
    assert_eq!(r.body["contacts_count"], 2, "deleting a group keeps its contacts");

    let r = app.post("/api/clients", &t.token, json!({"external_client_id": 42, "company_name": "New Company", "website_url": "https://www.newcompany.com", "email": "contact@newcompany.com"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["external_client_id"], "42");
    let client = r.body["id"].as_i64().unwrap();
    let r = app
        .patch(
            &format!("/api/contacts/{kate}"),
            &t.token,
            json!({"client_id": client, "opted_out": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = app.get(&format!("/api/clients/{client}/contacts"), &t.token).await;
    assert_eq!(r.header("total"), Some("1"), "{}", r.text);
    assert!(r.body[0]["opted_out_at"].is_string());
    let r = app.get("/api/contacts?q[opted_out]=false", &t.token).await;
    assert_eq!(r.body[0]["id"], ke, "{}", r.text);
    app.stop().await;
});
