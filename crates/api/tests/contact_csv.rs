//! CSV import and export of contacts, end to end over HTTP on both backends.

mod common;

use common::{App, Resp};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Upload `body` as `text/csv`.
async fn upload(app: &App, token: &str, query: &str, body: impl Into<reqwest::Body>) -> Resp {
    let req = app
        .client
        .post(app.url(&format!("/api/contact_imports{query}")))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(body);
    Resp::from(req.send().await.unwrap()).await
}

/// Wait until the background import ends (bounded; it is a handful of rows).
async fn finished(app: &App, token: &str, id: i64) -> Value {
    for _ in 0..500 {
        let r = app.get(&format!("/api/contact_imports/{id}"), token).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        if matches!(r.body["status"].as_str(), Some("completed" | "failed")) {
            return r.body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("import {id} did not finish");
}

both_backends!(mixed_rows_give_an_exact_report, |app| async move {
    let t = app.tenant("Acme").await;
    app.patch("/api/account", &t.token, json!({"settings": {"default_country": "KE"}}))
        .await;
    let existing = app
        .post(
            "/api/contacts",
            &t.token,
            json!({"msisdn": "+254712345001", "first_name": "Old", "metadata": {"keep": "yes"}}),
        )
        .await;
    assert_eq!(existing.status, StatusCode::CREATED);
    let csv = "\u{feff}Phone,First Name,email,district,notes\r\n\
               0712345001,Amina,amina@example.com,Kibra,\r\n\
               not-a-number,Bob,,Kibra,\r\n\
               +254712345002,Chen,chen@@example,Kibra,\r\n\
               \r\n\
               254712345003,\"Doe, Jane\",,\"Mathare\",\"said \"\"hi\"\"\"\r\n\
               ,NoPhone,,,\r\n\
               +254712345003,Jane,,,late\r\n";
    let r = upload(&app, &t.token, "", csv).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["status"], "queued");
    let id = r.body["id"].as_i64().unwrap();
    assert_eq!(
        r.header("location"),
        Some(format!("/api/contact_imports/{id}").as_str())
    );

    let report = finished(&app, &t.token, id).await;
    assert_eq!(report["status"], "completed", "{report}");
    assert_eq!(report["rows_read"], 6);
    assert_eq!(report["created"], 1, "{report}");
    assert_eq!(
        report["updated"], 2,
        "the existing contact, and the repeat of +254712345003: {report}"
    );
    assert_eq!(report["rejected"], 3);
    assert_eq!(
        report["rejected_rows"],
        json!([
            {"line": 3, "reason": "msisdn \"not-a-number\" is not a valid phone number"},
            {"line": 4, "reason": "email \"chen@@example\" is invalid"},
            {"line": 7, "reason": "msisdn can't be blank"},
        ])
    );

    let r = app.get("/api/contacts?q[msisdn]=+254712345001", &t.token).await;
    assert_eq!(r.body[0]["first_name"], "Amina");
    assert_eq!(r.body[0]["email"], "amina@example.com");
    assert_eq!(
        r.body[0]["metadata"],
        json!({"keep": "yes", "district": "Kibra"}),
        "metadata merges"
    );
    let r = app.get("/api/contacts?q[msisdn]=+254712345003", &t.token).await;
    assert_eq!(r.body[0]["first_name"], "Jane", "the later row wins");
    assert_eq!(r.body[0]["metadata"], json!({"district": "Mathare", "notes": "late"}));
    app.stop().await;
});

both_backends!(layouts_groups_and_bad_files, |app| async move {
    let t = app.tenant("Acme").await;
    let g = app.post("/api/groups", &t.token, json!({"name": "Field"})).await.body["id"]
        .as_i64()
        .unwrap();

    // ICTCore's headerless layout, `;`-separated, into a group.
    let r = upload(
        &app,
        &t.token,
        &format!("?group_id={g}"),
        "+254712345010;Amina;Otieno;a@example.com;Nairobi;c1;c2;c3;desc\n",
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let report = finished(&app, &t.token, r.body["id"].as_i64().unwrap()).await;
    assert_eq!(
        (report["created"].as_i64(), report["rejected"].as_i64()),
        (Some(1), Some(0)),
        "{report}"
    );
    let r = app.get(&format!("/api/groups/{g}/contacts"), &t.token).await;
    assert_eq!(r.body[0]["last_name"], "Otieno");
    assert_eq!(r.body[0]["custom3"], "c3");
    assert_eq!(r.body[0]["description"], "desc");

    // Phone-only, multipart with the group as a field.
    let form = reqwest::multipart::Form::new().text("group_id", g.to_string()).part(
        "file",
        reqwest::multipart::Part::bytes(b"+254712345011\n+254712345012\n".to_vec()).file_name("phones.csv"),
    );
    let resp = app
        .client
        .post(app.url("/api/contact_imports"))
        .bearer_auth(&t.token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let r = Resp::from(resp).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["file_name"], "phones.csv");
    let report = finished(&app, &t.token, r.body["id"].as_i64().unwrap()).await;
    assert_eq!(report["created"], 2, "{report}");
    assert_eq!(
        app.get(&format!("/api/groups/{g}"), &t.token).await.body["contacts_count"],
        3
    );

    // Files that are not contact CSVs never start an import.
    for (body, why) in [
        (b"\x00\x01\x02\x03PNG".to_vec(), "binary"),
        (b"name,age\nbob,3\n".to_vec(), "no phone column"),
        (Vec::new(), "empty"),
        (b"\xff\xfe\x00garbage".to_vec(), "binary"),
    ] {
        let r = upload(&app, &t.token, "", body).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{why}: {}", r.text);
        assert!(
            r.body["errors"]["file"][0].as_str().unwrap().contains(why),
            "{}",
            r.text
        );
    }
    let r = upload(&app, &t.token, "?group_id=999999", "+254712345013\n").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body["errors"]["group_id"].is_array());
    let r = app
        .client
        .post(app.url("/api/contact_imports"))
        .bearer_auth(&t.token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = app.get("/api/contact_imports", &t.token).await;
    assert_eq!(r.header("total"), Some("2"), "refused files leave no import behind");

    // Imports are the tenant's own.
    let other = app.tenant("Other").await;
    let first = app.get("/api/contact_imports?sort=id", &t.token).await.body[0]["id"]
        .as_i64()
        .unwrap();
    assert_eq!(
        app.get(&format!("/api/contact_imports/{first}"), &other.token)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let read_only = app.token_with(&t, &["contact_imports_read"]).await;
    assert_eq!(
        upload(&app, &read_only, "", "+254712345014\n").await.status,
        StatusCode::FORBIDDEN
    );
    app.stop().await;
});

both_backends!(export_is_quoted_filtered_and_reimportable, |app| async move {
    let t = app.tenant("Acme").await;
    for (m, name, meta) in [
        (
            "+254712345020",
            "Doe, \"JJ\"",
            json!({"gender": "f", "tags": ["a", "b"]}),
        ),
        ("+254712345021", "Plain", json!({"gender": "m"})),
    ] {
        let r = app
            .post(
                "/api/contacts",
                &t.token,
                json!({"msisdn": m, "first_name": name, "metadata": meta}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let resp = app
        .client
        .get(app.url("/api/contacts.csv?q[metadata][gender]=f"))
        .bearer_auth(&t.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = resp.text().await.unwrap();
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[0].starts_with("id,msisdn,first_name,"));
    assert!(lines[1].contains("\"Doe, \"\"JJ\"\"\""), "RFC 4180 quoting: {csv}");

    // Into another account, unchanged.
    let other = app.tenant("Other").await;
    let r = upload(&app, &other.token, "", csv.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let report = finished(&app, &other.token, r.body["id"].as_i64().unwrap()).await;
    assert_eq!(
        (report["created"].as_i64(), report["rejected"].as_i64()),
        (Some(1), Some(0)),
        "{report}"
    );
    let r = app.get("/api/contacts", &other.token).await;
    assert_eq!(r.body[0]["first_name"], "Doe, \"JJ\"");
    assert_eq!(r.body[0]["metadata"], json!({"gender": "f", "tags": ["a", "b"]}));

    let resp = app
        .client
        .get(app.url("/api/groups/sample.csv"))
        .bearer_auth(&t.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let sample = resp.text().await.unwrap();
    let r = upload(&app, &t.token, "", sample).await;
    let report = finished(&app, &t.token, r.body["id"].as_i64().unwrap()).await;
    assert_eq!(report["rejected"], 0, "the sample imports cleanly: {report}");
    app.stop().await;
});

// A group's export pages (a thousand rows a read) through the group's members only, in
// id order, with the filter applied: members and non-members interleave in id, and every
// other member is filtered out, so each page reads past rows it does not return.
both_backends!(group_export_pages_through_members_only, |app| async move {
    let t = app.tenant("Acme").await;
    let g = app.post("/api/groups", &t.token, json!({"name": "Field"})).await.body["id"]
        .as_i64()
        .unwrap();
    let rows = |from: usize, n: usize| {
        let mut csv = String::from("msisdn,first_name\n");
        for i in from..from + n {
            let name = if i % 2 == 0 { "keep" } else { "drop" };
            csv.push_str(&format!("+2547120{i:05},{name}\n"));
        }
        csv
    };
    for (query, from, n) in [
        (format!("?group_id={g}"), 0, 1300),
        (String::new(), 1300, 600),
        (format!("?group_id={g}"), 1900, 1300),
    ] {
        let r = upload(&app, &t.token, &query, rows(from, n)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let report = finished(&app, &t.token, r.body["id"].as_i64().unwrap()).await;
        assert_eq!(report["created"].as_i64(), Some(n as i64), "{report}");
    }
    let resp = app
        .client
        .get(app.url(&format!("/api/groups/{g}/contacts.csv?q[first_name]=keep")))
        .bearer_auth(&t.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let csv = resp.text().await.unwrap();
    let numbers: Vec<String> = csv
        .split("\r\n")
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').nth(1).unwrap().to_string())
        .collect();
    let expected: Vec<String> = (0..1300)
        .chain(1900..3200)
        .filter(|i| i % 2 == 0)
        .map(|i| format!("+2547120{i:05}"))
        .collect();
    assert_eq!(numbers.len(), 1300);
    assert_eq!(numbers, expected, "members kept by the filter, in id order, each once");
    app.stop().await;
});
