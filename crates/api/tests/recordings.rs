//! Voice recordings, black-box over HTTP on both backends: WAV and MP3 uploads recognised
//! by content whatever the name or declared type, downloads byte for byte, replacing the
//! audio, the size limit, lists with filters and pages, updates, deletion with the file
//! in the blob store following every change, tenant isolation and permissions.

mod common;

use std::path::PathBuf;

use common::{
    App, Resp, assert_forbidden, assert_invalid, assert_not_found, assert_status, assert_timestamp, files_under,
};
use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use sauti_api::ApiConfig;
use serde_json::{Value, json};

fn config() -> ApiConfig {
    common::test_api_config()
}

// ---------------------------------------------------------------------------------------
// Audio to upload
// ---------------------------------------------------------------------------------------

/// A real PCM WAV: the 44-byte header (RIFF, `fmt ` for 8 kHz 16-bit mono, `data`), then
/// `samples` samples (two bytes each, 16000 bytes a second), a ramp that starts at `tag`.
fn wav(tag: u8, samples: usize) -> Vec<u8> {
    let data = samples * 2;
    let mut v = Vec::with_capacity(44 + data);
    v.extend(b"RIFF");
    v.extend(((36 + data) as u32).to_le_bytes());
    v.extend(b"WAVE");
    v.extend(b"fmt ");
    v.extend(16u32.to_le_bytes());
    v.extend(1u16.to_le_bytes()); // PCM
    v.extend(1u16.to_le_bytes()); // mono
    v.extend(8000u32.to_le_bytes()); // samples a second
    v.extend(16000u32.to_le_bytes()); // bytes a second
    v.extend(2u16.to_le_bytes()); // bytes a sample
    v.extend(16u16.to_le_bytes()); // bits a sample
    v.extend(b"data");
    v.extend((data as u32).to_le_bytes());
    for i in 0..samples {
        v.extend((i as i16).wrapping_mul(97).wrapping_add(i16::from(tag)).to_le_bytes());
    }
    assert_eq!(v.len(), 44 + data);
    v
}

/// A WAV of exactly `len` bytes (at least 44, even).
fn wav_of_len(tag: u8, len: usize) -> Vec<u8> {
    wav(tag, (len - 44) / 2)
}

/// An MP3: an ID3v2.4 tag (a title frame), then `frames` MPEG-1 Layer III frames at
/// 128 kbit/s, 44.1 kHz (417 bytes and 1152 samples each).
fn mp3(tag: u8, frames: usize) -> Vec<u8> {
    let title = b"TIT2\x00\x00\x00\x06\x00\x00\x03Hello";
    let mut v = b"ID3\x04\x00\x00".to_vec();
    v.extend([0, 0, 0, title.len() as u8]); // syncsafe size of what follows the header
    v.extend(title);
    for n in 0..frames {
        v.extend([0xFF, 0xFB, 0x90, 0x64]);
        v.extend((0..413).map(|i| (i as u8) ^ tag ^ (n as u8)));
    }
    v
}

/// A real 1×1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4, 0x89, 0x00, 0x00, 0x00, 0x0A, 0x49,
    0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x00, 0x01, 0x00, 0x00, 0x05, 0x00, 0x01, 0x0D, 0x0A, 0x2D, 0xB4, 0x00, 0x00,
    0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
];

const NOT_AUDIO: &str = "must be a WAV or MP3 audio file";

// ---------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------

/// A file part of a form: its bytes, the file name (none when `None`) and declared type.
struct File<'a> {
    bytes: Vec<u8>,
    name: Option<&'a str>,
    mime: &'a str,
}

fn file<'a>(bytes: Vec<u8>, name: &'a str, mime: &'a str) -> File<'a> {
    File {
        bytes,
        name: Some(name),
        mime,
    }
}

fn form(file_part: Option<File<'_>>, texts: &[(&str, &str)]) -> Form {
    let mut form = Form::new();
    for (k, v) in texts {
        form = form.text(k.to_string(), v.to_string());
    }
    if let Some(f) = file_part {
        let mut part = Part::bytes(f.bytes).mime_str(f.mime).unwrap();
        if let Some(n) = f.name {
            part = part.file_name(n.to_string());
        }
        form = form.part("file", part);
    }
    form
}

/// `POST /api/recordings` with a multipart form, on `client`.
async fn upload_with(client: &reqwest::Client, app: &App, token: &str, form: Form) -> Resp {
    let resp = client
        .post(app.url("/api/recordings"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .expect("request");
    Resp::from(resp).await
}

async fn upload(app: &App, token: &str, file_part: Option<File<'_>>, texts: &[(&str, &str)]) -> Resp {
    upload_with(&app.client, app, token, form(file_part, texts)).await
}

/// Upload and return the new recording's id, checking the 201 and its `Location`.
async fn create(app: &App, token: &str, file_part: File<'_>, texts: &[(&str, &str)]) -> i64 {
    let r = upload(app, token, Some(file_part), texts).await;
    assert_status(&r, StatusCode::CREATED, "upload a recording");
    let id = r.body["id"].as_i64().expect("recording id");
    assert_eq!(r.header("location"), Some(path(id).as_str()));
    id
}

fn path(id: i64) -> String {
    format!("/api/recordings/{id}")
}

fn media_path(id: i64) -> String {
    format!("/api/recordings/{id}/media")
}

/// `PUT …/media` with a multipart form, on `client`.
async fn put_form_with(client: &reqwest::Client, app: &App, id: i64, token: &str, form: Form) -> Resp {
    let resp = client
        .put(app.url(&media_path(id)))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .expect("request");
    Resp::from(resp).await
}

async fn put_form(app: &App, id: i64, token: &str, file_part: File<'_>) -> Resp {
    put_form_with(&app.client, app, id, token, form(Some(file_part), &[])).await
}

/// `PUT …/media` with the audio as the body itself, with `content_type` (none when `None`).
async fn put_raw_with(
    client: &reqwest::Client,
    app: &App,
    id: i64,
    token: &str,
    content_type: Option<&str>,
    bytes: Vec<u8>,
) -> Resp {
    let mut req = client.put(app.url(&media_path(id))).bearer_auth(token).body(bytes);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    Resp::from(req.send().await.expect("request")).await
}

async fn put_raw(app: &App, id: i64, token: &str, content_type: Option<&str>, bytes: Vec<u8>) -> Resp {
    put_raw_with(&app.client, app, id, token, content_type, bytes).await
}

/// A replaced audio: 204 with the media URL as `Location`.
fn assert_replaced(r: &Resp, id: i64, what: &str) {
    assert_status(r, StatusCode::NO_CONTENT, what);
    assert_eq!(r.header("location"), Some(media_path(id).as_str()), "{what}");
}

/// `GET …/media`: status, headers and the body as bytes.
async fn get_media(app: &App, id: i64, token: &str) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let resp = app
        .client
        .get(app.url(&media_path(id)))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.expect("body").to_vec();
    (status, headers, bytes)
}

/// The audio is served as `mime`, exactly `bytes`, with their length.
async fn assert_serves(app: &App, id: i64, token: &str, mime: &str, bytes: &[u8], what: &str) {
    let (status, headers, body) = get_media(app, id, token).await;
    assert_eq!(status, StatusCode::OK, "{what}: {}", String::from_utf8_lossy(&body));
    assert_eq!(headers["content-type"], mime, "{what}");
    assert_eq!(headers["content-length"], bytes.len().to_string().as_str(), "{what}");
    assert_eq!(headers["x-content-type-options"], "nosniff", "{what}");
    assert!(
        body == bytes,
        "{what}: not the bytes uploaded ({} bytes served)",
        body.len()
    );
}

async fn show(app: &App, id: i64, token: &str) -> Value {
    let r = app.get(&path(id), token).await;
    assert_status(&r, StatusCode::OK, "read the recording");
    r.body
}

fn ids(r: &Resp) -> Vec<i64> {
    r.body
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {}", r.text))
        .iter()
        .map(|v| v["id"].as_i64().unwrap())
        .collect()
}

// ---------------------------------------------------------------------------------------
// Upload, download, replace
// ---------------------------------------------------------------------------------------

both_backends!(upload_download_and_replace, |app| async move {
    let t = app.tenant("Acme").await;

    // A WAV, named after its file; half a second of audio.
    let greeting = wav(1, 4000);
    let r = upload(
        &app,
        &t.token,
        Some(file(greeting.clone(), "greeting.wav", "audio/wav")),
        &[],
    )
    .await;
    assert_status(&r, StatusCode::CREATED, "upload a WAV");
    let id = r.body["id"].as_i64().unwrap();
    assert_eq!(r.header("location"), Some(path(id).as_str()));
    let body = &r.body;
    assert_eq!(body["name"], "greeting.wav");
    assert_eq!(body["description"], Value::Null);
    assert_eq!(body["content_type"], "audio/wav");
    assert_eq!(body["size_bytes"], greeting.len());
    assert_eq!(body["duration_ms"], 500);
    assert_eq!(body["media_url"], media_path(id));
    assert_eq!(body["metadata"], json!({}));
    assert_eq!(body["account_id"], t.account_id);
    assert_timestamp(&body["created_at"], "created_at");
    assert_timestamp(&body["updated_at"], "updated_at");
    assert!(
        body.get("media_blob").is_none(),
        "the file's name on the server is not shown"
    );
    assert_eq!(&show(&app, id, &t.token).await, body, "GET shows what POST answered");
    assert_serves(&app, id, &t.token, "audio/wav", &greeting, "the WAV").await;

    // An MP3 with a name, a description and metadata.
    let song = mp3(2, 10);
    let r = upload(
        &app,
        &t.token,
        Some(file(song.clone(), "ignored.mp3", "audio/mpeg")),
        &[
            ("name", "  Polio campaign, Swahili "),
            ("description", "Read by Amina"),
            ("metadata", r#"{"lang": "sw", "campaign": {"name": "polio"}}"#),
        ],
    )
    .await;
    assert_status(&r, StatusCode::CREATED, "upload an MP3");
    let mp3_id = r.body["id"].as_i64().unwrap();
    assert_eq!(r.body["name"], "Polio campaign, Swahili");
    assert_eq!(r.body["description"], "Read by Amina");
    assert_eq!(r.body["content_type"], "audio/mpeg");
    assert_eq!(r.body["size_bytes"], song.len());
    assert_eq!(r.body["duration_ms"], 10 * 1152 * 1000 / 44100);
    assert_eq!(r.body["metadata"], json!({"lang": "sw", "campaign": {"name": "polio"}}));
    assert_serves(&app, mp3_id, &t.token, "audio/mpeg", &song, "the MP3").await;

    // The content decides, not the name or the declared type.
    let disguised = wav(3, 800);
    let r = upload(
        &app,
        &t.token,
        Some(file(disguised.clone(), "song.mp3", "audio/mpeg")),
        &[("name", "disguised")],
    )
    .await;
    assert_status(&r, StatusCode::CREATED, "a WAV named .mp3");
    assert_eq!(r.body["content_type"], "audio/wav");
    let disguised_id = r.body["id"].as_i64().unwrap();
    assert_serves(
        &app,
        disguised_id,
        &t.token,
        "audio/wav",
        &disguised,
        "a WAV named .mp3",
    )
    .await;
    let r = upload(
        &app,
        &t.token,
        Some(file(mp3(4, 2), "x.bin", "application/octet-stream")),
        &[],
    )
    .await;
    assert_status(&r, StatusCode::CREATED, "an MP3 as octet-stream");
    assert_eq!(r.body["content_type"], "audio/mpeg");

    // Without a file name the recording is called "recording"; a browser's folder is not
    // part of the name; a blank name is no name.
    let r = upload(
        &app,
        &t.token,
        Some(File {
            bytes: wav(5, 100),
            name: None,
            mime: "audio/wav",
        }),
        &[],
    )
    .await;
    assert_status(&r, StatusCode::CREATED, "no file name");
    assert_eq!(r.body["name"], "recording");
    let r = upload(
        &app,
        &t.token,
        Some(file(wav(6, 100), "C:\\fakepath\\hello.wav", "audio/wav")),
        &[("name", "   "), ("description", " ")],
    )
    .await;
    assert_status(&r, StatusCode::CREATED, "a path as the file name");
    assert_eq!(r.body["name"], "hello.wav");
    assert_eq!(r.body["description"], Value::Null);

    // Replacing the audio (ICTCore's "Add Recording File"): a form, then the body itself.
    let before = show(&app, id, &t.token).await;
    let replacement = mp3(7, 3);
    assert_replaced(
        &put_form(&app, id, &t.token, file(replacement.clone(), "new.wav", "audio/wav")).await,
        id,
        "PUT a form",
    );
    assert_serves(&app, id, &t.token, "audio/mpeg", &replacement, "after PUT a form").await;
    let after = show(&app, id, &t.token).await;
    assert_eq!(after["content_type"], "audio/mpeg");
    assert_eq!(after["size_bytes"], replacement.len());
    assert_eq!(after["duration_ms"], 3 * 1152 * 1000 / 44100);
    assert_eq!(after["name"], before["name"], "the name stays");
    assert_eq!(after["created_at"], before["created_at"]);
    assert_ne!(after["updated_at"], before["updated_at"]);

    let raw = wav(8, 16000);
    assert_replaced(
        &put_raw(&app, id, &t.token, Some("audio/wav"), raw.clone()).await,
        id,
        "PUT audio/wav",
    );
    assert_serves(&app, id, &t.token, "audio/wav", &raw, "after PUT audio/wav").await;
    assert_eq!(show(&app, id, &t.token).await["duration_ms"], 2000);
    let raw = mp3(9, 4);
    assert_replaced(
        &put_raw(&app, id, &t.token, Some("application/octet-stream"), raw.clone()).await,
        id,
        "PUT octet-stream",
    );
    assert_serves(&app, id, &t.token, "audio/mpeg", &raw, "after PUT octet-stream").await;
    let raw = wav(10, 50);
    assert_replaced(
        &put_raw(&app, id, &t.token, Some("audio/mpeg"), raw.clone()).await,
        id,
        "a WAV sent as audio/mpeg",
    );
    assert_serves(&app, id, &t.token, "audio/wav", &raw, "a WAV sent as audio/mpeg").await;

    // The other recordings were not touched.
    assert_serves(&app, mp3_id, &t.token, "audio/mpeg", &song, "the MP3 afterwards").await;

    // The store hands a call flow what it needs to play a recording.
    let media = app
        .store
        .get_recording_media(t.account_id, mp3_id)
        .await
        .unwrap()
        .expect("the recording's media");
    assert_eq!(media.content_type, "audio/mpeg");
    assert_eq!(media.size_bytes, song.len() as i64);
    assert!(media.media_blob.ends_with(".mp3"), "{}", media.media_blob);
    let other = app.tenant("Other").await;
    assert_eq!(
        app.store.get_recording_media(other.account_id, mp3_id).await.unwrap(),
        None,
        "another account's recording"
    );
    app.stop().await;
});

// ---------------------------------------------------------------------------------------
// What is refused
// ---------------------------------------------------------------------------------------

both_backends_with!(refuses_what_is_not_audio, config(), |app, data_dir| async move {
    let t = app.tenant("Acme").await;
    let blobs = data_dir.join("blobs").join(t.account_id.to_string());

    // Not audio, whatever the name and declared type say.
    let text = b"just some text, honestly\n".to_vec();
    let mut fake_sync = vec![0xFF, 0xFB, 0x90, 0x64];
    fake_sync.extend(vec![b'x'; 1000]);
    for (what, bytes, name, mime) in [
        ("a PNG named .wav", PNG.to_vec(), "greeting.wav", "audio/wav"),
        ("a text file named .wav", text.clone(), "greeting.wav", "audio/wav"),
        ("a text file named .mp3", text.clone(), "song.mp3", "audio/mpeg"),
        (
            "a RIFF that is an image",
            b"RIFF\x1a\0\0\0WEBPVP8L\x0d\0\0\0".to_vec(),
            "a.wav",
            "audio/wav",
        ),
        (
            "a RIFF/WAVE header alone",
            b"RIFF\x04\0\0\0WAVE".to_vec(),
            "a.wav",
            "audio/wav",
        ),
        (
            "a WAV header cut short",
            wav(1, 10)[..30].to_vec(),
            "a.wav",
            "audio/wav",
        ),
        (
            "an ID3 tag and no audio",
            b"ID3\x04\0\0\0\0\0\0".to_vec(),
            "a.mp3",
            "audio/mpeg",
        ),
        ("a frame sync and no frames", fake_sync, "a.mp3", "audio/mpeg"),
        (
            "HTML",
            b"<html><script>alert(1)</script></html>".to_vec(),
            "a.wav",
            "audio/wav",
        ),
    ] {
        let r = upload(&app, &t.token, Some(file(bytes, name, mime)), &[]).await;
        assert_eq!(assert_invalid(&r, "file", what), &vec![json!(NOT_AUDIO)], "{what}");
    }

    // Nothing to store.
    let r = upload(&app, &t.token, Some(file(vec![], "empty.wav", "audio/wav")), &[]).await;
    assert_eq!(
        assert_invalid(&r, "file", "an empty file"),
        &vec![json!("can't be blank")]
    );
    let r = upload(&app, &t.token, None, &[("name", "no file")]).await;
    assert_eq!(
        assert_invalid(&r, "file", "a form without a file"),
        &vec![json!("can't be blank")]
    );
    let r = upload_with(
        &app.client,
        &app,
        &t.token,
        Form::new().part("audio", Part::bytes(wav(1, 10)).file_name("a.wav")),
    )
    .await;
    assert_invalid(&r, "file", "the audio in a part not named `file`");

    // The form's other fields.
    for (what, field, texts) in [
        ("metadata that is not JSON", "metadata", vec![("metadata", "{lang: sw")]),
        ("metadata that is a list", "metadata", vec![("metadata", "[1, 2]")]),
        ("metadata that is a string", "metadata", vec![("metadata", "\"sw\"")]),
        (
            "metadata with a NUL",
            "metadata",
            vec![("metadata", r#"{"a": "b\u0000c"}"#)],
        ),
        ("a name with a NUL", "name", vec![("name", "a\0b")]),
    ] {
        let r = upload(&app, &t.token, Some(file(wav(1, 10), "a.wav", "audio/wav")), &texts).await;
        assert_invalid(&r, field, what);
    }
    let long = "n".repeat(256);
    let r = upload(
        &app,
        &t.token,
        Some(file(wav(1, 10), "a.wav", "audio/wav")),
        &[("name", &long)],
    )
    .await;
    assert_invalid(&r, "name", "a name too long");
    // Every mistake at once is reported at once.
    let r = upload(
        &app,
        &t.token,
        Some(file(PNG.to_vec(), "a.wav", "audio/wav")),
        &[("metadata", "[]")],
    )
    .await;
    assert_invalid(&r, "file", "two mistakes");
    assert_invalid(&r, "metadata", "two mistakes");

    // Bodies that are not a form.
    let r = app.post("/api/recordings", &t.token, json!({"name": "json"})).await;
    assert_status(&r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "JSON");
    assert_eq!(r.error_code(), "unsupported_media_type");
    let r = Resp::from(
        app.client
            .post(app.url("/api/recordings"))
            .bearer_auth(&t.token)
            .header("content-type", "audio/wav")
            .body(wav(1, 10))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_status(&r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "raw audio to POST");
    let r = Resp::from(
        app.client
            .post(app.url("/api/recordings"))
            .bearer_auth(&t.token)
            .header("content-type", "multipart/form-data")
            .body("no boundary")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_status(&r, StatusCode::BAD_REQUEST, "multipart without a boundary");
    assert_eq!(r.error_code(), "bad_request");

    // None of it made a recording or left a file.
    let r = app.get("/api/recordings", &t.token).await;
    assert_eq!(r.header("total"), Some("0"), "{}", r.text);
    assert_eq!(
        files_under(&blobs),
        Vec::<PathBuf>::new(),
        "refused uploads store nothing"
    );

    // Replacing the audio takes the same checks and keeps what was there.
    let kept = wav(2, 300);
    let id = create(&app, &t.token, file(kept.clone(), "kept.wav", "audio/wav"), &[]).await;
    for (what, r) in [
        (
            "a PNG in a form",
            put_form(&app, id, &t.token, file(PNG.to_vec(), "a.wav", "audio/wav")).await,
        ),
        (
            "text as audio/wav",
            put_raw(&app, id, &t.token, Some("audio/wav"), text.clone()).await,
        ),
        (
            "a PNG as octet-stream",
            put_raw(&app, id, &t.token, Some("application/octet-stream"), PNG.to_vec()).await,
        ),
    ] {
        assert_eq!(assert_invalid(&r, "file", what), &vec![json!(NOT_AUDIO)], "{what}");
    }
    let r = put_raw(&app, id, &t.token, Some("audio/wav"), vec![]).await;
    assert_eq!(assert_invalid(&r, "file", "empty"), &vec![json!("can't be blank")]);
    let r = put_form_with(&app.client, &app, id, &t.token, Form::new().text("name", "x")).await;
    assert_invalid(&r, "file", "a form without a file");
    for ct in [Some("application/json"), Some("text/plain"), Some("image/png"), None] {
        let r = put_raw(&app, id, &t.token, ct, wav(3, 10)).await;
        assert_status(&r, StatusCode::UNSUPPORTED_MEDIA_TYPE, &format!("{ct:?}"));
        assert_eq!(r.error_code(), "unsupported_media_type");
    }
    assert_serves(&app, id, &t.token, "audio/wav", &kept, "after the refusals").await;
    assert_eq!(files_under(&blobs).len(), 1, "one file: the recording's");
    app.stop().await;
});

both_backends_with!(
    size_limit,
    ApiConfig {
        recording_limit_bytes: 4096,
        ..config()
    },
    |app, data_dir| async move {
        let t = app.tenant("Acme").await;
        let blobs = data_dir.join("blobs").join(t.account_id.to_string());

        // Exactly the limit is taken, by every route.
        let at_limit = wav_of_len(1, 4096);
        let id = create(
            &app,
            &t.token,
            file(at_limit.clone(), "a.wav", "audio/wav"),
            &[("name", "at the limit")],
        )
        .await;
        assert_serves(&app, id, &t.token, "audio/wav", &at_limit, "POST at the limit").await;
        let at_limit = wav_of_len(2, 4096);
        assert_replaced(
            &put_form(&app, id, &t.token, file(at_limit.clone(), "a.wav", "audio/wav")).await,
            id,
            "PUT a form at the limit",
        );
        let at_limit = wav_of_len(3, 4096);
        assert_replaced(
            &put_raw(&app, id, &t.token, Some("audio/wav"), at_limit.clone()).await,
            id,
            "PUT raw at the limit",
        );

        // A little more is 413 in the house shape, whichever way it comes. Each on its own
        // connection: the server may close it after refusing the body.
        let over = wav_of_len(4, 4098);
        let too_large = |r: &Resp, what: &str| {
            assert_status(r, StatusCode::PAYLOAD_TOO_LARGE, what);
            assert_eq!(r.error_code(), "payload_too_large", "{what}");
        };
        let fresh = reqwest::Client::new;
        too_large(
            &upload_with(
                &fresh(),
                &app,
                &t.token,
                form(Some(file(over.clone(), "a.wav", "audio/wav")), &[]),
            )
            .await,
            "POST over the limit",
        );
        too_large(
            &put_form_with(
                &fresh(),
                &app,
                id,
                &t.token,
                form(Some(file(over.clone(), "a.wav", "audio/wav")), &[]),
            )
            .await,
            "PUT a form over the limit",
        );
        too_large(
            &put_raw_with(&fresh(), &app, id, &t.token, Some("audio/wav"), over.clone()).await,
            "PUT raw over the limit",
        );
        // Too big is too big whatever it is.
        too_large(
            &put_raw_with(&fresh(), &app, id, &t.token, Some("audio/wav"), vec![b'x'; 64 * 1024]).await,
            "a big non-audio body",
        );
        // A text part is held to its own limit.
        let big_metadata = format!(r#"{{"a": "{}"}}"#, "x".repeat(20 * 1024));
        too_large(
            &upload_with(
                &fresh(),
                &app,
                &t.token,
                form(
                    Some(file(wav(5, 10), "a.wav", "audio/wav")),
                    &[("metadata", &big_metadata)],
                ),
            )
            .await,
            "metadata over the text limit",
        );

        assert_serves(&app, id, &t.token, "audio/wav", &at_limit, "after the refusals").await;
        let r = app.get("/api/recordings", &t.token).await;
        assert_eq!(r.header("total"), Some("1"), "{}", r.text);
        assert_eq!(files_under(&blobs).len(), 1, "refused uploads store nothing");
        app.stop().await;
    }
);

// ---------------------------------------------------------------------------------------
// Lists
// ---------------------------------------------------------------------------------------

both_backends!(list_filter_and_paginate, |app| async move {
    let t = app.tenant("Acme").await;
    let mut made = Vec::new();
    for (name, lang, audio) in [
        ("Welcome", "en", wav(1, 100)),
        ("Karibu", "sw", wav(2, 200)),
        ("Reminder", "en", mp3(3, 2)),
        ("Kumbusho", "sw", mp3(4, 3)),
        ("Goodbye", "en", wav(5, 300)),
    ] {
        let metadata = json!({"lang": lang, "n": made.len()}).to_string();
        let id = create(
            &app,
            &t.token,
            file(audio, "x.bin", "application/octet-stream"),
            &[("name", name), ("metadata", &metadata)],
        )
        .await;
        made.push(id);
    }

    let r = app.get("/api/recordings", &t.token).await;
    assert_status(&r, StatusCode::OK, "list");
    assert_eq!(r.header("total"), Some("5"));
    assert_eq!(r.header("per-page"), Some("25"));
    assert_eq!(ids(&r), made, "oldest first by default");
    assert_eq!(r.body[0]["media_url"], media_path(made[0]));
    assert_eq!(r.body[2]["content_type"], "audio/mpeg");

    let r = app.get("/api/recordings?q[name]=Karibu", &t.token).await;
    assert_eq!(ids(&r), vec![made[1]]);
    assert_eq!(r.header("total"), Some("1"));
    let r = app.get("/api/recordings?q[metadata][lang]=sw", &t.token).await;
    assert_eq!(ids(&r), vec![made[1], made[3]]);
    let r = app.get("/api/recordings?q[content_type]=audio/mpeg", &t.token).await;
    assert_eq!(ids(&r), vec![made[2], made[3]]);
    let r = app
        .get(
            "/api/recordings?q[metadata][n.numeric.gteq]=3&q[metadata][lang]=en",
            &t.token,
        )
        .await;
    assert_eq!(ids(&r), vec![made[4]]);
    let r = app
        .get("/api/recordings?q[created_at_before]=2000-01-01", &t.token)
        .await;
    assert_eq!(ids(&r), Vec::<i64>::new());

    let r = app.get("/api/recordings?sort=-id", &t.token).await;
    assert_eq!(ids(&r), made.iter().rev().copied().collect::<Vec<_>>());
    let r = app.get("/api/recordings?sort=name", &t.token).await;
    assert_eq!(ids(&r), vec![made[4], made[1], made[3], made[2], made[0]]);
    let r = app.get("/api/recordings?sort=-size_bytes", &t.token).await;
    assert_eq!(ids(&r)[0], made[3], "the largest: three MP3 frames");

    let r = app.get("/api/recordings?per_page=2&page=2", &t.token).await;
    assert_eq!(ids(&r), vec![made[2], made[3]]);
    assert_eq!(r.header("per-page"), Some("2"));
    assert_eq!(r.header("total"), Some("5"));
    let link = r.header("link").expect("Link header");
    assert!(link.contains("rel=\"next\"") && link.contains("rel=\"prev\""), "{link}");
    let r = app.get("/api/recordings?per_page=2&page=3", &t.token).await;
    assert_eq!(ids(&r), vec![made[4]]);

    for bad in ["/api/recordings?q[nope]=1", "/api/recordings?sort=media_blob"] {
        let r = app.get(bad, &t.token).await;
        assert_status(&r, StatusCode::UNPROCESSABLE_ENTITY, bad);
        assert_eq!(r.error_code(), "validation_failed");
    }
    app.stop().await;
});

// ---------------------------------------------------------------------------------------
// Update and delete
// ---------------------------------------------------------------------------------------

both_backends_with!(update_and_delete, config(), |app, data_dir| async move {
    let t = app.tenant("Acme").await;
    let blobs = data_dir.join("blobs").join(t.account_id.to_string());
    let audio = wav(1, 1000);
    let id = create(
        &app,
        &t.token,
        file(audio.clone(), "a.wav", "audio/wav"),
        &[
            ("name", "Welcome"),
            ("description", "First take"),
            ("metadata", r#"{"lang": "en", "take": 1, "tags": {"a": 1}}"#),
        ],
    )
    .await;

    let r = app
        .patch(
            &path(id),
            &t.token,
            json!({"name": " Welcome (final) ", "metadata": {"take": 2, "tags": {"b": 2}}}),
        )
        .await;
    assert_status(&r, StatusCode::NO_CONTENT, "PATCH");
    assert_eq!(r.header("location"), Some(path(id).as_str()));
    let now = show(&app, id, &t.token).await;
    assert_eq!(now["name"], "Welcome (final)");
    assert_eq!(now["description"], "First take", "absent fields stay");
    assert_eq!(now["metadata"], json!({"lang": "en", "take": 2, "tags": {"b": 2}}));

    let r = app
        .patch(
            &path(id),
            &t.token,
            json!({"description": null, "metadata": {"tags": {"c": 3}}, "metadata_merge_mode": "deep_merge"}),
        )
        .await;
    assert_status(&r, StatusCode::NO_CONTENT, "PATCH deep_merge");
    let now = show(&app, id, &t.token).await;
    assert_eq!(now["description"], Value::Null, "null clears");
    assert_eq!(
        now["metadata"],
        json!({"lang": "en", "take": 2, "tags": {"b": 2, "c": 3}})
    );
    let r = app
        .patch(
            &path(id),
            &t.token,
            json!({"metadata": {"only": true}, "metadata_merge_mode": "replace"}),
        )
        .await;
    assert_status(&r, StatusCode::NO_CONTENT, "PATCH replace");
    assert_eq!(show(&app, id, &t.token).await["metadata"], json!({"only": true}));
    assert_serves(&app, id, &t.token, "audio/wav", &audio, "PATCH leaves the audio").await;

    for (what, field, body) in [
        ("a blank name", "name", json!({"name": "  "})),
        ("a name too long", "name", json!({"name": "n".repeat(256)})),
        ("metadata not an object", "metadata", json!({"metadata": [1]})),
        (
            "an unknown merge mode",
            "metadata_merge_mode",
            json!({"metadata": {}, "metadata_merge_mode": "x"}),
        ),
        ("a name that is a number", "name", json!({"name": 5})),
    ] {
        assert_invalid(&app.patch(&path(id), &t.token, body).await, field, what);
    }
    assert_eq!(show(&app, id, &t.token).await["name"], "Welcome (final)");
    assert_not_found(
        &app.patch(&path(id + 1000), &t.token, json!({"name": "x"})).await,
        "PATCH a missing recording",
    );

    // Delete: gone, its audio too, and the file.
    let other = create(&app, &t.token, file(mp3(2, 2), "b.mp3", "audio/mpeg"), &[]).await;
    assert_eq!(files_under(&blobs).len(), 2, "one file per recording");
    let r = app.delete(&path(id), &t.token).await;
    assert_status(&r, StatusCode::NO_CONTENT, "DELETE");
    assert_eq!(r.header("location"), Some("/api/recordings"));
    assert_not_found(&app.get(&path(id), &t.token).await, "GET after DELETE");
    assert_not_found(&app.get(&media_path(id), &t.token).await, "GET media after DELETE");
    assert_not_found(&app.delete(&path(id), &t.token).await, "DELETE twice");
    assert_not_found(
        &put_raw(&app, id, &t.token, Some("audio/wav"), wav(3, 10)).await,
        "PUT media after DELETE",
    );
    let left = files_under(&blobs);
    assert_eq!(left.len(), 1, "DELETE removes the file: {left:?}");
    assert!(left[0].to_string_lossy().ends_with(".mp3"), "{left:?}");
    assert_eq!(ids(&app.get("/api/recordings", &t.token).await), vec![other]);

    // Replacing the audio removes the old file.
    assert_replaced(
        &put_raw(&app, other, &t.token, Some("audio/wav"), wav(4, 10)).await,
        other,
        "replace",
    );
    let left = files_under(&blobs);
    assert_eq!(left.len(), 1, "replacing removes the old file: {left:?}");
    assert!(left[0].to_string_lossy().ends_with(".wav"), "{left:?}");
    assert_eq!(std::fs::read(&left[0]).unwrap(), wav(4, 10));

    // Deleting the account removes its folder, recordings and all.
    let sa = app.super_admin().await;
    assert_status(
        &app.delete(&format!("/api/accounts/{}", t.account_id), &sa.token).await,
        StatusCode::NO_CONTENT,
        "delete the account",
    );
    assert!(!blobs.exists(), "the account's blob folder is gone");
    app.stop().await;
});

// ---------------------------------------------------------------------------------------
// Tenants and permissions
// ---------------------------------------------------------------------------------------

both_backends!(tenants_and_permissions, |app| async move {
    let a = app.tenant("Acme").await;
    let b = app.tenant("Beta").await;
    let mine = wav(1, 500);
    let id = create(
        &app,
        &a.token,
        file(mine.clone(), "a.wav", "audio/wav"),
        &[("name", "Acme's")],
    )
    .await;
    let theirs = create(
        &app,
        &b.token,
        file(mp3(2, 2), "b.mp3", "audio/mpeg"),
        &[("name", "Beta's")],
    )
    .await;

    // Another account's recording is not found, by any route, and stays as it is.
    assert_not_found(&app.get(&path(id), &b.token).await, "other tenant GET");
    assert_not_found(&app.get(&media_path(id), &b.token).await, "other tenant GET media");
    assert_not_found(
        &app.patch(&path(id), &b.token, json!({"name": "taken"})).await,
        "other tenant PATCH",
    );
    assert_not_found(
        &put_raw(&app, id, &b.token, Some("audio/wav"), wav(3, 10)).await,
        "other tenant PUT media",
    );
    assert_not_found(&app.delete(&path(id), &b.token).await, "other tenant DELETE");
    assert_eq!(ids(&app.get("/api/recordings", &b.token).await), vec![theirs]);
    assert_eq!(
        ids(&app.get("/api/recordings?q[name]=Acme's", &b.token).await),
        Vec::<i64>::new()
    );
    assert_eq!(show(&app, id, &a.token).await["name"], "Acme's");
    assert_serves(&app, id, &a.token, "audio/wav", &mine, "untouched by the other tenant").await;
    assert_not_found(&app.get(&path(theirs), &a.token).await, "the other way round");

    // Missing and malformed ids.
    for p in ["/api/recordings/999999", "/api/recordings/abc", "/api/recordings/0"] {
        assert_not_found(&app.get(p, &a.token).await, p);
        assert_not_found(&app.get(&format!("{p}/media"), &a.token).await, p);
        assert_not_found(&app.delete(p, &a.token).await, p);
    }

    // recordings_read may look but not change; recordings_write may change but not look.
    let reader = app.token_with(&a, &["recordings_read"]).await;
    assert_eq!(ids(&app.get("/api/recordings", &reader).await), vec![id]);
    assert_eq!(show(&app, id, &reader).await["id"], id);
    assert_serves(&app, id, &reader, "audio/wav", &mine, "recordings_read GET media").await;
    let writer = app.token_with(&a, &["recordings_write"]).await;
    let unrelated = app
        .token_with(&a, &["clients_read", "clients_write", "signups_read"])
        .await;
    for token in [&writer, &unrelated] {
        assert_forbidden(&app.get("/api/recordings", token).await, "list without recordings_read");
        assert_forbidden(&app.get(&path(id), token).await, "GET without recordings_read");
        assert_forbidden(
            &app.get(&media_path(id), token).await,
            "GET media without recordings_read",
        );
    }
    for token in [&reader, &unrelated] {
        assert_forbidden(
            &upload(&app, token, Some(file(wav(4, 10), "a.wav", "audio/wav")), &[]).await,
            "POST without recordings_write",
        );
        assert_forbidden(
            &app.patch(&path(id), token, json!({"name": "x"})).await,
            "PATCH without recordings_write",
        );
        assert_forbidden(
            &put_raw(&app, id, token, Some("audio/wav"), wav(5, 10)).await,
            "PUT media without recordings_write",
        );
        assert_forbidden(
            &put_form(&app, id, token, file(wav(6, 10), "a.wav", "audio/wav")).await,
            "PUT a media form without recordings_write",
        );
        assert_forbidden(&app.delete(&path(id), token).await, "DELETE without recordings_write");
    }
    let made = create(&app, &writer, file(wav(7, 10), "w.wav", "audio/wav"), &[]).await;
    assert_status(
        &app.patch(&path(made), &writer, json!({"name": "by the writer"})).await,
        StatusCode::NO_CONTENT,
        "recordings_write PATCH",
    );
    assert_replaced(
        &put_raw(&app, made, &writer, Some("audio/wav"), wav(8, 10)).await,
        made,
        "recordings_write PUT media",
    );
    assert_status(
        &app.delete(&path(made), &writer).await,
        StatusCode::NO_CONTENT,
        "recordings_write DELETE",
    );

    // No credential at all.
    let unauthorized = |r: &Resp, what: &str| {
        assert_status(r, StatusCode::UNAUTHORIZED, what);
        assert_eq!(r.error_code(), "unauthorized", "{what}");
    };
    for (method, p) in [
        (Method::GET, "/api/recordings".to_string()),
        (Method::GET, path(id)),
        (Method::GET, media_path(id)),
        (Method::DELETE, path(id)),
    ] {
        unauthorized(
            &app.call(method.clone(), &p, None, None).await,
            &format!("anonymous {method} {p}"),
        );
    }
    unauthorized(
        &app.call(Method::PATCH, &path(id), None, Some(json!({"name": "x"})))
            .await,
        "anonymous PATCH",
    );
    let r = app
        .client
        .post(app.url("/api/recordings"))
        .multipart(form(Some(file(wav(9, 10), "a.wav", "audio/wav")), &[]))
        .send()
        .await
        .unwrap();
    unauthorized(&Resp::from(r).await, "anonymous POST");
    let r = app
        .client
        .put(app.url(&media_path(id)))
        .header("content-type", "audio/wav")
        .body(wav(9, 10))
        .send()
        .await
        .unwrap();
    unauthorized(&Resp::from(r).await, "anonymous PUT media");
    assert_serves(&app, id, &a.token, "audio/wav", &mine, "after all that").await;
    assert_eq!(ids(&app.get("/api/recordings", &a.token).await), vec![id]);
    app.stop().await;
});
