//! Files an email template carries (`/api/templates/{id}/attachments`): upload as a form
//! or as the body, list, download, remove, the limits, and emails sent from the template
//! through the SMTP adapter to aiosmtpd (Python), read back with Python's `email` parser.

mod common;

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use common::*;
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

const PDF: &[u8] = b"%PDF-1.4\n\x00\x01\x02 binary \xff\xfe invoice";

async fn template(app: &App, token: &str) -> i64 {
    let r = app
        .post(
            "/api/templates",
            token,
            json!({"name": "invoice", "subject": "Invoice for {{first_name}}", "body": "<p>Hi {{first_name}}</p>", "body_alt": "Hi {{first_name}}"}),
        )
        .await;
    assert_status(&r, StatusCode::CREATED, "template");
    r.body["id"].as_i64().unwrap()
}

/// Upload `bytes` as the `file` part of a form.
async fn attach_form(app: &App, token: &str, template: i64, file_name: &str, mime: &str, bytes: &[u8]) -> Resp {
    let form = Form::new().part(
        "file",
        Part::bytes(bytes.to_vec())
            .file_name(file_name.to_string())
            .mime_str(mime)
            .unwrap(),
    );
    Resp::from(
        app.client
            .post(app.url(&format!("/api/templates/{template}/attachments")))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// Upload `bytes` as the request body, `query` naming it.
async fn attach_raw(app: &App, token: &str, template: i64, query: &str, mime: &str, bytes: Vec<u8>) -> Resp {
    let path = format!("/api/templates/{template}/attachments{query}");
    post_body(app, token, &path, &[("Content-Type", mime)], bytes).await
}

/// POST `body` with `headers` as it is.
async fn post_body(
    app: &App,
    token: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<reqwest::Body>,
) -> Resp {
    let mut req = app.client.post(app.url(path)).bearer_auth(token);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    Resp::from(req.body(body).send().await.unwrap()).await
}

async fn download(app: &App, token: &str, path: &str) -> reqwest::Response {
    app.client.get(app.url(path)).bearer_auth(token).send().await.unwrap()
}

both_backends_with!(
    upload_list_download_and_remove,
    common::test_api_config(),
    |app, data_dir| async move {
        let t = app.tenant("Acme").await;
        let tpl = template(&app, &t.token).await;
        assert_eq!(
            app.get(&format!("/api/templates/{tpl}"), &t.token).await.body["attachments"],
            json!([])
        );

        // A form upload keeps the file's name and declared type.
        let r = attach_form(
            &app,
            &t.token,
            tpl,
            "C:\\Users\\amina\\invoice-42.pdf",
            "application/pdf",
            PDF,
        )
        .await;
        assert_status(&r, StatusCode::CREATED, "form upload");
        let pdf = r.body["id"].as_i64().unwrap();
        assert_eq!(
            r.body["file_name"], "invoice-42.pdf",
            "the folder a browser sent is dropped"
        );
        assert_eq!(r.body["content_type"], "application/pdf");
        assert_eq!(r.body["size_bytes"], PDF.len());
        assert_eq!(r.body["template_id"], tpl);
        assert_timestamp(&r.body["created_at"], "created_at");
        let location = format!("/api/templates/{tpl}/attachments/{pdf}");
        assert_eq!(r.header("location"), Some(location.as_str()));
        assert_eq!(r.body["content_url"], format!("{location}/content"));

        // A raw body named by the query; its type guessed from the name when it came as
        // octet-stream.
        let csv = "id;amount\n42;1200\n".as_bytes().to_vec();
        let r = attach_raw(
            &app,
            &t.token,
            tpl,
            "?file_name=lines.csv",
            "application/octet-stream",
            csv.clone(),
        )
        .await;
        assert_status(&r, StatusCode::CREATED, "raw upload");
        let lines = r.body["id"].as_i64().unwrap();
        assert_eq!(r.body["content_type"], "text/csv");
        // Named by Content-Disposition instead.
        let r = post_body(
            &app,
            &t.token,
            &format!("/api/templates/{tpl}/attachments"),
            &[
                ("Content-Type", "text/plain"),
                ("Content-Disposition", "attachment; filename=\"terms.txt\""),
            ],
            "Terms",
        )
        .await;
        assert_status(&r, StatusCode::CREATED, "named by Content-Disposition");
        assert_eq!(r.body["file_name"], "terms.txt");
        let terms = r.body["id"].as_i64().unwrap();

        let r = app.get(&format!("/api/templates/{tpl}/attachments"), &t.token).await;
        assert_status(&r, StatusCode::OK, "list");
        let ids: Vec<i64> = r
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids, [pdf, lines, terms], "in upload order");
        let shown = app.get(&format!("/api/templates/{tpl}"), &t.token).await;
        assert_eq!(shown.body["attachments"], r.body, "the template shows what it carries");
        let listed = app.get("/api/templates", &t.token).await;
        assert_eq!(listed.body[0]["attachments"], r.body, "and so does the list");
        assert_eq!(
            app.get(&location, &t.token).await.body,
            r.body[0],
            "one attachment described"
        );

        let resp = download(&app, &t.token, &format!("{location}/content")).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "application/pdf");
        assert_eq!(
            resp.headers()["content-disposition"],
            "attachment; filename=\"invoice-42.pdf\""
        );
        assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
        assert_eq!(resp.bytes().await.unwrap().as_ref(), PDF, "the bytes uploaded");
        let blobs = data_dir.join("blobs").join(t.account_id.to_string());
        assert_eq!(files_under(&blobs).len(), 3, "one file per attachment");

        // Removing one removes its file; deleting the template removes the rest.
        let r = app
            .delete(&format!("/api/templates/{tpl}/attachments/{lines}"), &t.token)
            .await;
        assert_status(&r, StatusCode::NO_CONTENT, "remove");
        assert_not_found(
            &app.delete(&format!("/api/templates/{tpl}/attachments/{lines}"), &t.token)
                .await,
            "removed twice",
        );
        assert_not_found(
            &app.get(&format!("/api/templates/{tpl}/attachments/{lines}/content"), &t.token)
                .await,
            "gone",
        );
        assert_eq!(files_under(&blobs).len(), 2);
        let r = app.delete(&format!("/api/templates/{tpl}"), &t.token).await;
        assert_status(&r, StatusCode::NO_CONTENT, "delete template");
        assert!(files_under(&blobs).is_empty(), "{:?}", files_under(&blobs));
        assert_not_found(
            &app.get(&location, &t.token).await,
            "the template's attachments went with it",
        );
        app.stop().await;
    }
);

both_backends_with!(
    refuses_what_it_cannot_carry,
    sauti_api::ApiConfig {
        attachment_limit_bytes: 1000,
        ..common::test_api_config()
    },
    |app, data_dir| async move {
        let t = app.tenant("Acme").await;
        let tpl = template(&app, &t.token).await;
        let base = format!("/api/templates/{tpl}/attachments");

        assert_invalid(
            &attach_raw(&app, &t.token, tpl, "?file_name=a.txt", "text/plain", vec![]).await,
            "file",
            "empty body",
        );
        assert_invalid(
            &attach_raw(&app, &t.token, tpl, "", "text/plain", b"x".to_vec()).await,
            "file_name",
            "no name",
        );
        assert_invalid(
            &attach_raw(&app, &t.token, tpl, "?file_name=%2F", "text/plain", b"x".to_vec()).await,
            "file_name",
            "only a folder",
        );
        let r = attach_form(&app, &t.token, tpl, "big.bin", "application/octet-stream", &[7; 1001]).await;
        assert_status(&r, StatusCode::PAYLOAD_TOO_LARGE, "past the limit, as a form");
        let r = attach_raw(
            &app,
            &t.token,
            tpl,
            "?file_name=big.bin",
            "application/octet-stream",
            vec![7; 1001],
        )
        .await;
        assert_status(&r, StatusCode::PAYLOAD_TOO_LARGE, "past the limit, raw");
        assert_not_found(
            &attach_raw(
                &app,
                &t.token,
                tpl + 1000,
                "?file_name=a.txt",
                "text/plain",
                b"x".to_vec(),
            )
            .await,
            "no such template",
        );
        let broken_form = [("Content-Type", "multipart/form-data; boundary=x")];
        let r = post_body(&app, &t.token, &base, &broken_form, "--x\r\nbroken").await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "a broken form: {}", r.text);

        // The limit is for all the template's files together.
        let r = attach_raw(
            &app,
            &t.token,
            tpl,
            "?file_name=a.bin",
            "application/octet-stream",
            vec![1; 600],
        )
        .await;
        assert_status(&r, StatusCode::CREATED, "600 bytes");
        let e = attach_raw(
            &app,
            &t.token,
            tpl,
            "?file_name=b.bin",
            "application/octet-stream",
            vec![1; 600],
        )
        .await;
        assert_invalid(&e, "file", "past the template's total");
        // At most ten files.
        for i in 1..10 {
            let r = attach_raw(
                &app,
                &t.token,
                tpl,
                &format!("?file_name={i}.txt"),
                "text/plain",
                b"x".to_vec(),
            )
            .await;
            assert_status(&r, StatusCode::CREATED, "small file");
        }
        assert_invalid(
            &attach_raw(&app, &t.token, tpl, "?file_name=11.txt", "text/plain", b"x".to_vec()).await,
            "file",
            "an eleventh",
        );
        let r = app.get(&base, &t.token).await;
        assert_eq!(r.body.as_array().unwrap().len(), 10);
        let blobs = data_dir.join("blobs").join(t.account_id.to_string());
        assert_eq!(files_under(&blobs).len(), 10, "nothing refused was left on disk");

        // Tenants and permissions.
        let other = app.tenant("Other").await;
        let first = r.body[0]["id"].as_i64().unwrap();
        for path in [
            base.clone(),
            format!("{base}/{first}"),
            format!("{base}/{first}/content"),
        ] {
            assert_not_found(&app.get(&path, &other.token).await, &path);
        }
        assert_not_found(
            &app.delete(&format!("{base}/{first}"), &other.token).await,
            "delete theirs",
        );
        assert_not_found(
            &attach_raw(&app, &other.token, tpl, "?file_name=a.txt", "text/plain", b"x".to_vec()).await,
            "attach to theirs",
        );
        let reader = app.token_with(&t, &["templates_read"]).await;
        let writer = app.token_with(&t, &["templates_write"]).await;
        assert_status(&app.get(&base, &reader).await, StatusCode::OK, "reader lists");
        assert_forbidden(&app.get(&base, &writer).await, "writer lists");
        assert_forbidden(
            &attach_raw(&app, &reader, tpl, "?file_name=a.txt", "text/plain", b"x".to_vec()).await,
            "reader uploads",
        );
        assert_forbidden(&app.delete(&format!("{base}/{first}"), &reader).await, "reader removes");
        assert_eq!(app.get(&base, &t.token).await.body.as_array().unwrap().len(), 10);
        app.stop().await;
    }
);

/// aiosmtpd on a free port, delivering into `maildir`.
async fn aiosmtpd(maildir: &Path) -> (tokio::process::Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = tokio::process::Command::new(peer_python())
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(maildir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start aiosmtpd");
    eventually(15, "aiosmtpd listening", || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    (child, port)
}

/// The leaf parts of a stored message, parsed by Python's `email` package.
async fn parts_of(file: &Path) -> Vec<Value> {
    let script = r#"
import json, sys, base64
from email import policy
from email.parser import BytesParser
with open(sys.argv[1], "rb") as f:
    m = BytesParser(policy=policy.default).parse(f)
print(json.dumps({"subject": str(m["Subject"]), "parts": [
    {"type": p.get_content_type(), "filename": p.get_filename(),
     "base64": base64.b64encode(p.get_payload(decode=True)).decode()}
    for p in m.walk() if not p.is_multipart()]}))
"#;
    let out = tokio::process::Command::new(peer_python())
        .arg("-c")
        .arg(script)
        .arg(file)
        .output()
        .await
        .expect("run python");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut parts = v["parts"].as_array().unwrap().clone();
    parts.push(json!({"subject": v["subject"]}));
    parts
}

both_backends_with_engine_and!(
    emails_from_the_template_carry_its_files,
    common::test_api_config(),
    |app, data_dir| async move {
        let maildir = data_dir.join("Maildir");
        let (_smtp, port) = aiosmtpd(&maildir).await;
        let t = app.tenant("Acme").await;
        let r = app
            .post(
                "/api/providers",
                &t.token,
                json!({"name": "mail", "kind": "smtp", "channels": ["email"],
                       "settings": {"host": "127.0.0.1", "port": port, "tls": "none", "from": "noreply@sauti.test"}}),
            )
            .await;
        assert_status(&r, StatusCode::CREATED, "smtp provider");
        let tpl = template(&app, &t.token).await;
        let r = attach_form(&app, &t.token, tpl, "invoice-42.pdf", "application/pdf", PDF).await;
        assert_status(&r, StatusCode::CREATED, "attach");
        let c = app
            .post(
                "/api/contacts",
                &t.token,
                json!({"msisdn": "+254712345678", "first_name": "Amina", "email": "amina@example.org"}),
            )
            .await;
        let contact = c.body["id"].as_i64().unwrap();
        let s = app
            .post(
                "/api/transmissions",
                &t.token,
                json!({"contact_id": contact, "template_id": tpl}),
            )
            .await;
        assert_status(&s, StatusCode::CREATED, "email");
        let id = s.body["id"].as_i64().unwrap();
        eventually(20, "the email sent", || {
            let app = &app;
            let token = t.token.clone();
            async move {
                let r = app.get(&format!("/api/transmissions/{id}"), &token).await;
                (r.body["status"] == "sent" || r.body["status"] == "delivered").then_some(())
            }
        })
        .await;
        let file = eventually(10, "the message in the Maildir", || {
            let dir = maildir.join("new");
            async move { std::fs::read_dir(dir).ok()?.flatten().next().map(|e| e.path()) }
        })
        .await;
        let parts = parts_of(&file).await;
        assert_eq!(parts.last().unwrap()["subject"], "Invoice for Amina");
        let pdf = parts
            .iter()
            .find(|p| p["filename"] == "invoice-42.pdf")
            .unwrap_or_else(|| panic!("no attachment in {parts:?}"));
        assert_eq!(pdf["type"], "application/pdf");
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(pdf["base64"].as_str().unwrap())
                .unwrap(),
            PDF
        );

        // A file gone from the blob store fails the email instead of sending it without.
        let r = attach_form(&app, &t.token, tpl, "later.txt", "text/plain", b"later").await;
        assert_status(&r, StatusCode::CREATED, "attach another");
        for f in files_under(&data_dir.join("blobs")) {
            std::fs::remove_file(f).unwrap();
        }
        let s = app
            .post(
                "/api/transmissions",
                &t.token,
                json!({"contact_id": contact, "template_id": tpl}),
            )
            .await;
        let id = s.body["id"].as_i64().unwrap();
        let failed = eventually(20, "the email failed", || {
            let app = &app;
            let token = t.token.clone();
            async move {
                let r = app.get(&format!("/api/transmissions/{id}/attempts"), &token).await;
                let a = r.body.as_array()?.first()?.clone();
                (a["status"] == "failed").then_some(a)
            }
        })
        .await;
        assert_eq!(failed["error_code"], "attachment_missing", "{failed}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            std::fs::read_dir(maildir.join("new")).unwrap().count(),
            1,
            "nothing more was sent"
        );
        app.stop().await;
    }
);
