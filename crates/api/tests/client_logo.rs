//! Client logos, black-box over HTTP on both backends: upload as a multipart form or as
//! the body itself, the type recognised by content whatever the name or declared type,
//! the size limit, serving with the sniffed type, a URL logo redirecting, removal, the
//! files in the blob store following every change, tenant isolation and permissions.

mod common;

use common::{App, Resp, assert_status, files_under};
use reqwest::{Method, StatusCode};
use sauti_api::ApiConfig;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A real 1×1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4, 0x89, 0x00, 0x00, 0x00, 0x0A, 0x49,
    0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x00, 0x01, 0x00, 0x00, 0x05, 0x00, 0x01, 0x0D, 0x0A, 0x2D, 0xB4, 0x00, 0x00,
    0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
];

/// A PNG of exactly `len` bytes, distinct per `tag` (trailing bytes after IEND are
/// ignored by decoders; only the content check and the bytes served back matter here).
fn png(tag: u8, len: usize) -> Vec<u8> {
    let mut v = PNG.to_vec();
    v.resize(len.max(PNG.len()), tag);
    v
}

/// JPEG start-of-image and JFIF header, then filler, then end-of-image.
fn jpeg() -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00, 0x01];
    v.extend(std::iter::repeat_n(0x42, 100));
    v.extend([0xFF, 0xD9]);
    v
}

fn gif() -> Vec<u8> {
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;".to_vec()
}

/// A lossless 1×1 WebP.
fn webp() -> Vec<u8> {
    b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00\x2f\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00".to_vec()
}

fn assert_error(r: &Resp, status: StatusCode, code: &str, what: &str) {
    assert_status(r, status, what);
    assert_eq!(r.error_code(), code, "{what}");
}

fn assert_not_an_image(r: &Resp, what: &str) {
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", what);
    assert_eq!(
        r.body["errors"]["logo"],
        json!(["must be a PNG, JPEG, GIF or WebP image"]),
        "{what}"
    );
}

async fn create_client(app: &App, token: &str, external_id: &str) -> i64 {
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

fn logo_path(id: i64) -> String {
    format!("/api/clients/{id}/logo")
}

/// `PUT` a multipart form with one file part named `part`.
async fn put_form(app: &App, id: i64, token: &str, part: &str, file_name: &str, mime: &str, bytes: Vec<u8>) -> Resp {
    let part_body = reqwest::multipart::Part::bytes(bytes)
        .file_name(file_name.to_string())
        .mime_str(mime)
        .unwrap();
    let form = reqwest::multipart::Form::new()
        .text("note", "fields other than `logo` are ignored")
        .part(part.to_string(), part_body);
    let resp = app
        .client
        .put(app.url(&logo_path(id)))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .expect("request");
    Resp::from(resp).await
}

/// `PUT` the image as the body itself, with `content_type` (none when `None`).
async fn put_raw(app: &App, id: i64, token: &str, content_type: Option<&str>, bytes: Vec<u8>) -> Resp {
    let mut req = app.client.put(app.url(&logo_path(id))).bearer_auth(token).body(bytes);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    Resp::from(req.send().await.expect("request")).await
}

/// A successful upload: 204 with the logo's URL as `Location`.
fn assert_stored(r: &Resp, id: i64, what: &str) {
    assert_status(r, StatusCode::NO_CONTENT, what);
    assert_eq!(r.header("location"), Some(logo_path(id).as_str()), "{what}");
}

/// `GET` the logo without following redirects; the body kept as bytes.
async fn get_logo(app: &App, id: i64, token: &str) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = client
        .get(app.url(&logo_path(id)))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.expect("body").to_vec();
    (status, headers, bytes)
}

/// The logo is served with `mime` and exactly `bytes`.
async fn assert_serves(app: &App, id: i64, token: &str, mime: &str, bytes: &[u8], what: &str) {
    let (status, headers, body) = get_logo(app, id, token).await;
    assert_eq!(status, StatusCode::OK, "{what}: {}", String::from_utf8_lossy(&body));
    assert_eq!(headers["content-type"], mime, "{what}");
    assert_eq!(headers["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(body, bytes, "{what}: not the bytes uploaded");
}

/// The logo answers 404 in the house shape.
async fn assert_no_logo(app: &App, id: i64, token: &str, what: &str) {
    let r = app.get(&logo_path(id), token).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found", what);
}

async fn client_logo_field(app: &App, id: i64, token: &str) -> Value {
    let r = app.get(&format!("/api/clients/{id}"), token).await;
    assert_status(&r, StatusCode::OK, "read client");
    r.body["logo"].clone()
}

// ---------------------------------------------------------------------------------------
// Upload and serve
// ---------------------------------------------------------------------------------------

both_backends!(upload_serve_replace_and_remove, |app| async move {
    let t = app.tenant("Acme").await;
    let id = create_client(&app, &t.token, "C-1").await;
    assert_eq!(client_logo_field(&app, id, &t.token).await, Value::Null);
    assert_no_logo(&app, id, &t.token, "no logo yet").await;

    // Multipart, with a `logo` part.
    let first = png(1, 200);
    let r = put_form(&app, id, &t.token, "logo", "logo.png", "image/png", first.clone()).await;
    assert_stored(&r, id, "multipart upload");
    assert_eq!(client_logo_field(&app, id, &t.token).await, json!(logo_path(id)));
    assert_serves(&app, id, &t.token, "image/png", &first, "after the multipart upload").await;

    // The image as the body itself replaces it.
    let second = png(2, 300);
    let r = put_raw(&app, id, &t.token, Some("image/png"), second.clone()).await;
    assert_stored(&r, id, "raw upload");
    assert_serves(&app, id, &t.token, "image/png", &second, "after the raw upload").await;

    // The declared type is not what decides: JPEG bytes sent as image/png are a JPEG.
    let r = put_raw(&app, id, &t.token, Some("image/png"), jpeg()).await;
    assert_stored(&r, id, "JPEG declared as PNG");
    assert_serves(&app, id, &t.token, "image/jpeg", &jpeg(), "JPEG declared as PNG").await;
    let r = put_form(&app, id, &t.token, "logo", "logo.png", "image/png", gif()).await;
    assert_stored(&r, id, "GIF in a part named .png");
    assert_serves(&app, id, &t.token, "image/gif", &gif(), "GIF in a part named .png").await;
    let r = put_raw(&app, id, &t.token, Some("application/octet-stream"), webp()).await;
    assert_stored(&r, id, "WebP as octet-stream");
    assert_serves(&app, id, &t.token, "image/webp", &webp(), "WebP as octet-stream").await;

    // Replacing twice more: the newest bytes are served.
    for n in 3..=4u8 {
        let bytes = png(n, 100 + n as usize);
        assert_stored(
            &put_raw(&app, id, &t.token, Some("image/png; charset=binary"), bytes.clone()).await,
            id,
            "replace",
        );
        assert_serves(&app, id, &t.token, "image/png", &bytes, "after replacing").await;
    }

    // A client read and sent back whole keeps its uploaded logo.
    let mut whole = app.get(&format!("/api/clients/{id}"), &t.token).await.body;
    whole["company_name"] = json!("Renamed Company");
    assert_status(
        &app.patch(&format!("/api/clients/{id}"), &t.token, whole).await,
        StatusCode::NO_CONTENT,
        "PATCH with the logo's own URL",
    );
    assert_eq!(client_logo_field(&app, id, &t.token).await, json!(logo_path(id)));
    assert_serves(&app, id, &t.token, "image/png", &png(4, 104), "after the round trip").await;

    // A URL replaces the upload; the logo endpoint then redirects to it.
    let url = "https://cdn.example.com/logos/acme.png";
    assert_status(
        &app.patch(&format!("/api/clients/{id}"), &t.token, json!({"logo": url}))
            .await,
        StatusCode::NO_CONTENT,
        "PATCH a logo URL",
    );
    assert_eq!(client_logo_field(&app, id, &t.token).await, json!(url));
    let (status, headers, _) = get_logo(&app, id, &t.token).await;
    assert_eq!(status, StatusCode::FOUND, "a URL logo redirects");
    assert_eq!(headers["location"], url);

    // Upload again, then remove: the logo is gone, and removing again is still 204.
    assert_stored(
        &put_raw(&app, id, &t.token, Some("image/png"), png(5, 120)).await,
        id,
        "upload after a URL",
    );
    let r = app.delete(&logo_path(id), &t.token).await;
    assert_status(&r, StatusCode::NO_CONTENT, "DELETE logo");
    assert_eq!(r.header("location"), Some(format!("/api/clients/{id}").as_str()));
    assert_eq!(client_logo_field(&app, id, &t.token).await, Value::Null);
    assert_no_logo(&app, id, &t.token, "after DELETE").await;
    assert_status(
        &app.delete(&logo_path(id), &t.token).await,
        StatusCode::NO_CONTENT,
        "DELETE logo twice",
    );

    // DELETE also clears a URL logo.
    assert_status(
        &app.patch(&format!("/api/clients/{id}"), &t.token, json!({"logo": url}))
            .await,
        StatusCode::NO_CONTENT,
        "PATCH a logo URL again",
    );
    assert_status(
        &app.delete(&logo_path(id), &t.token).await,
        StatusCode::NO_CONTENT,
        "DELETE a URL logo",
    );
    assert_eq!(client_logo_field(&app, id, &t.token).await, Value::Null);
    assert_no_logo(&app, id, &t.token, "after deleting a URL logo").await;

    // A relative URL is still not something to set by hand.
    let r = app
        .patch(
            &format!("/api/clients/{id}"),
            &t.token,
            json!({"logo": logo_path(id + 1)}),
        )
        .await;
    assert_error(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        "relative logo URL",
    );
    assert!(r.body["errors"]["logo"].is_array(), "{}", r.text);
    app.stop().await;
});

// ---------------------------------------------------------------------------------------
// What is refused
// ---------------------------------------------------------------------------------------

both_backends!(refuses_what_is_not_an_image, |app| async move {
    let t = app.tenant("Acme").await;
    let id = create_client(&app, &t.token, "C-1").await;
    let kept = png(9, 150);
    assert_stored(
        &put_raw(&app, id, &t.token, Some("image/png"), kept.clone()).await,
        id,
        "the logo to keep",
    );

    // A text file renamed .png, as a form part and as a body.
    let text = b"just some text, honestly\n".to_vec();
    assert_not_an_image(
        &put_form(&app, id, &t.token, "logo", "logo.png", "image/png", text.clone()).await,
        "text file named .png",
    );
    assert_not_an_image(
        &put_raw(&app, id, &t.token, Some("image/png"), text.clone()).await,
        "text sent as image/png",
    );
    // Formats not taken, and near misses of the ones that are.
    for (what, bytes, ct) in [
        (
            "SVG",
            b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>".to_vec(),
            "image/svg+xml",
        ),
        ("PDF", b"%PDF-1.7\n".to_vec(), "application/octet-stream"),
        ("a truncated PNG signature", PNG[..7].to_vec(), "image/png"),
        ("a RIFF that is audio", b"RIFF\x24\0\0\0WAVEfmt ".to_vec(), "image/webp"),
        ("HTML", b"<html><script>alert(1)</script></html>".to_vec(), "image/gif"),
    ] {
        assert_not_an_image(&put_raw(&app, id, &t.token, Some(ct), bytes).await, what);
    }

    // Nothing to store.
    let r = put_raw(&app, id, &t.token, Some("image/png"), vec![]).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "empty body");
    assert_eq!(r.body["errors"]["logo"], json!(["can't be blank"]));
    let r = put_form(&app, id, &t.token, "file", "logo.png", "image/png", png(1, 80)).await;
    assert_error(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        "a form without a `logo` part",
    );
    assert_eq!(r.body["errors"]["logo"], json!(["can't be blank"]));

    // Bodies that are not an upload at all.
    for ct in [Some("application/json"), Some("text/plain"), None] {
        let r = put_raw(&app, id, &t.token, ct, PNG.to_vec()).await;
        assert_error(
            &r,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            &format!("{ct:?}"),
        );
    }
    let r = app
        .client
        .put(app.url(&logo_path(id)))
        .bearer_auth(&t.token)
        .header("content-type", "multipart/form-data")
        .body("no boundary")
        .send()
        .await
        .unwrap();
    let r = Resp::from(r).await;
    assert_error(
        &r,
        StatusCode::BAD_REQUEST,
        "bad_request",
        "multipart without a boundary",
    );

    // None of that touched the logo.
    assert_eq!(client_logo_field(&app, id, &t.token).await, json!(logo_path(id)));
    assert_serves(&app, id, &t.token, "image/png", &kept, "after the refusals").await;
    app.stop().await;
});

both_backends_with!(
    size_limit,
    ApiConfig {
        logo_limit_bytes: 1024,
        ..Default::default()
    },
    |app, _dir| async move {
        let t = app.tenant("Acme").await;
        let id = create_client(&app, &t.token, "C-1").await;

        // Exactly the limit is taken, both ways.
        let at_limit = png(1, 1024);
        assert_stored(
            &put_raw(&app, id, &t.token, Some("image/png"), at_limit.clone()).await,
            id,
            "raw at the limit",
        );
        assert_serves(&app, id, &t.token, "image/png", &at_limit, "raw at the limit").await;
        let at_limit = png(2, 1024);
        assert_stored(
            &put_form(&app, id, &t.token, "logo", "logo.png", "image/png", at_limit.clone()).await,
            id,
            "multipart at the limit",
        );

        // One byte more is 413 in the house shape, both ways; the logo stays.
        let r = put_raw(&app, id, &t.token, Some("image/png"), png(3, 1025)).await;
        assert_error(
            &r,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "raw over the limit",
        );
        let r = put_form(&app, id, &t.token, "logo", "logo.png", "image/png", png(4, 1025)).await;
        assert_error(
            &r,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "multipart over the limit",
        );
        // Too big is too big whatever it is.
        let r = put_raw(&app, id, &t.token, Some("image/png"), vec![b'x'; 4096]).await;
        assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "big non-image");
        assert_serves(&app, id, &t.token, "image/png", &at_limit, "after the refusals").await;
        app.stop().await;
    }
);

// ---------------------------------------------------------------------------------------
// Tenants and permissions
// ---------------------------------------------------------------------------------------

both_backends!(tenants_and_permissions, |app| async move {
    let a = app.tenant("Acme").await;
    let b = app.tenant("Beta").await;
    let id = create_client(&app, &a.token, "A-1").await;
    let mine = png(1, 90);
    assert_stored(
        &put_raw(&app, id, &a.token, Some("image/png"), mine.clone()).await,
        id,
        "owner uploads",
    );

    // Another tenant cannot see, replace or remove it: it does not exist for them.
    let theirs = create_client(&app, &b.token, "B-1").await;
    assert_no_logo(&app, id, &b.token, "other tenant GET").await;
    assert_error(
        &put_raw(&app, id, &b.token, Some("image/png"), png(2, 90)).await,
        StatusCode::NOT_FOUND,
        "not_found",
        "other tenant PUT raw",
    );
    assert_error(
        &put_form(&app, id, &b.token, "logo", "logo.png", "image/png", png(3, 90)).await,
        StatusCode::NOT_FOUND,
        "not_found",
        "other tenant PUT multipart",
    );
    assert_error(
        &app.delete(&logo_path(id), &b.token).await,
        StatusCode::NOT_FOUND,
        "not_found",
        "other tenant DELETE",
    );
    assert_serves(&app, id, &a.token, "image/png", &mine, "untouched by the other tenant").await;
    assert_no_logo(&app, theirs, &a.token, "the other way round").await;

    // Missing and malformed ids.
    for path in [
        "/api/clients/999999/logo",
        "/api/clients/abc/logo",
        "/api/clients/0/logo",
    ] {
        let r = app.get(path, &a.token).await;
        assert_error(&r, StatusCode::NOT_FOUND, "not_found", path);
        let r = app.delete(path, &a.token).await;
        assert_error(&r, StatusCode::NOT_FOUND, "not_found", path);
    }
    assert_error(
        &put_raw(&app, 999_999, &a.token, Some("image/png"), PNG.to_vec()).await,
        StatusCode::NOT_FOUND,
        "not_found",
        "PUT for a missing client",
    );

    // clients_read may look but not change; without it, not even look.
    let reader = app.token_with(&a, &["clients_read"]).await;
    assert_serves(&app, id, &reader, "image/png", &mine, "clients_read GET").await;
    assert_error(
        &put_raw(&app, id, &reader, Some("image/png"), png(4, 90)).await,
        StatusCode::FORBIDDEN,
        "forbidden",
        "PUT without clients_write",
    );
    assert_error(
        &put_form(&app, id, &reader, "logo", "logo.png", "image/png", png(5, 90)).await,
        StatusCode::FORBIDDEN,
        "forbidden",
        "multipart PUT without clients_write",
    );
    assert_error(
        &app.delete(&logo_path(id), &reader).await,
        StatusCode::FORBIDDEN,
        "forbidden",
        "DELETE without clients_write",
    );
    let writer = app.token_with(&a, &["clients_write"]).await;
    assert_error(
        &app.get(&logo_path(id), &writer).await,
        StatusCode::FORBIDDEN,
        "forbidden",
        "GET without clients_read",
    );
    assert_stored(
        &put_raw(&app, id, &writer, Some("image/png"), png(6, 90)).await,
        id,
        "clients_write uploads",
    );
    let unrelated = app.token_with(&a, &["contacts_read", "contacts_write"]).await;
    assert_error(
        &app.get(&logo_path(id), &unrelated).await,
        StatusCode::FORBIDDEN,
        "forbidden",
        "GET with contacts permissions only",
    );

    // No credential at all.
    let r = app.call(Method::GET, &logo_path(id), None, None).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized", "anonymous GET");
    let r = app.call(Method::DELETE, &logo_path(id), None, None).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized", "anonymous DELETE");
    let r = app
        .client
        .put(app.url(&logo_path(id)))
        .header("content-type", "image/png")
        .body(PNG.to_vec())
        .send()
        .await
        .unwrap();
    let r = Resp::from(r).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized", "anonymous PUT");
    assert_serves(&app, id, &a.token, "image/png", &png(6, 90), "after all that").await;
    app.stop().await;
});

// ---------------------------------------------------------------------------------------
// The files behind the logos
// ---------------------------------------------------------------------------------------

both_backends_with!(
    blob_files_follow_the_logo,
    ApiConfig::default(),
    |app, data_dir| async move {
        let t = app.tenant("Acme").await;
        let id = create_client(&app, &t.token, "C-1").await;
        assert_stored(
            &put_raw(&app, id, &t.token, Some("image/png"), png(1, 100)).await,
            id,
            "first upload",
        );
        let blobs = data_dir.join("blobs").join(t.account_id.to_string());
        let count = || files_under(&blobs).len();
        assert_eq!(count(), 1, "one file per logo");
        let name = files_under(&blobs)[0]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string();
        assert!(name.ends_with(".png"), "{name}");
        assert!(!name.contains("logo"), "names are not made from the upload: {name}");

        // Replacing twice keeps one file: the newest.
        for n in 2..=3u8 {
            assert_stored(
                &put_form(&app, id, &t.token, "logo", "mine.png", "image/png", png(n, 100)).await,
                id,
                "replace",
            );
            assert_eq!(count(), 1, "replacing removes the old file");
        }
        assert_eq!(std::fs::read(&files_under(&blobs)[0]).unwrap(), png(3, 100));
        assert_serves(&app, id, &t.token, "image/png", &png(3, 100), "newest").await;

        // Refused uploads leave nothing behind.
        assert_not_an_image(
            &put_raw(&app, id, &t.token, Some("image/png"), b"text".to_vec()).await,
            "not an image",
        );
        assert_eq!(count(), 1, "a refused upload stores nothing");

        // A URL in its place removes the file; so does DELETE; so does deleting the client.
        assert_status(
            &app.patch(
                &format!("/api/clients/{id}"),
                &t.token,
                json!({"logo": "https://cdn.example.com/a.png"}),
            )
            .await,
            StatusCode::NO_CONTENT,
            "PATCH a logo URL",
        );
        assert_eq!(count(), 0, "a URL replaces the upload");
        assert_stored(
            &put_raw(&app, id, &t.token, Some("image/jpeg"), jpeg()).await,
            id,
            "JPEG",
        );
        assert_eq!(count(), 1);
        assert!(files_under(&blobs)[0].to_string_lossy().ends_with(".jpg"));
        assert_status(
            &app.patch(&format!("/api/clients/{id}"), &t.token, json!({"logo": null}))
                .await,
            StatusCode::NO_CONTENT,
            "PATCH a null logo",
        );
        assert_eq!(count(), 0, "a null logo removes the upload");
        assert_stored(
            &put_raw(&app, id, &t.token, Some("image/png"), png(4, 100)).await,
            id,
            "PNG",
        );
        assert_status(
            &app.delete(&logo_path(id), &t.token).await,
            StatusCode::NO_CONTENT,
            "DELETE logo",
        );
        assert_eq!(count(), 0, "DELETE removes the file");
        assert_stored(
            &put_raw(&app, id, &t.token, Some("image/png"), png(5, 100)).await,
            id,
            "PNG",
        );
        let other = create_client(&app, &t.token, "C-2").await;
        assert_stored(
            &put_raw(&app, other, &t.token, Some("image/gif"), gif()).await,
            other,
            "GIF",
        );
        assert_eq!(count(), 2);
        assert_status(
            &app.delete(&format!("/api/clients/{id}"), &t.token).await,
            StatusCode::NO_CONTENT,
            "delete client",
        );
        assert_eq!(count(), 1, "deleting a client removes its logo file");
        assert_serves(&app, other, &t.token, "image/gif", &gif(), "the other client's").await;

        // Deleting the account removes its folder.
        let sa = app.super_admin().await;
        assert_status(
            &app.delete(&format!("/api/accounts/{}", t.account_id), &sa.token).await,
            StatusCode::NO_CONTENT,
            "delete account",
        );
        assert!(!blobs.exists(), "the account's blob folder is gone");
        app.stop().await;
    }
);
