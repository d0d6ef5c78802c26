//! `/api/recordings`: voice recordings (ICTCore's Voice Recordings), audio an account
//! uploads to play during calls. The audio, WAV or MP3 recognised by its content, is kept
//! in the blob store; the recording's row says what it is. Uploads follow the client
//! logo's (`clients.rs`): multipart, content-checked, size-capped.

use std::sync::Mutex;

use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{Uri, header};
use axum::response::Response;
use chrono::{DateTime, Utc};
use sauti_core::ValidationErrors;
use sauti_core::filter::{FieldKind, FieldSpec, ResourceSpec};
use sauti_store::{Json, JsonMap, Recording};
use serde::{Deserialize, Serialize};

use super::clients::{MULTIPART_SLACK, discard_blob, into_inner, lock, multipart_error, read_capped, serve_blob};
use super::{MetadataPatch, created, metadata_object, no_content};
use crate::audio::{Audio, AudioType};
use crate::auth::{Authed, RecordingsRead, RecordingsWrite};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Id, JsonBody, NUL_MESSAGE, RawQuery, has_nul};
use crate::pagination::list_response;
use crate::wire::{double_option, ts};
use crate::{ApiConfig, AppState};
use sauti_store::blobs::Blobs;

pub const SPEC: ResourceSpec = ResourceSpec {
    sortable: &["id", "created_at", "updated_at", "name", "size_bytes", "duration_ms"],
    fields: &[
        FieldSpec {
            name: "name",
            column: "name",
            kind: FieldKind::Text,
        },
        FieldSpec {
            name: "content_type",
            column: "content_type",
            kind: FieldKind::Text,
        },
    ],
    has_metadata: true,
};

pub(crate) const NOT_AUDIO: &str = "must be a WAV or MP3 audio file";

/// The most a text part of an upload form (`name`, `description`, `metadata`) may hold:
/// the three together stay inside the multipart framing the route allows on top of the
/// audio ([`MULTIPART_SLACK`]).
const TEXT_PART_LIMIT: u64 = 16 * 1024;

/// The body limit of the recording upload routes: the audio limit plus multipart framing
/// and the form's text parts. A raw audio body is held to the audio limit itself as it is
/// read.
pub(crate) fn recording_body_limit(config: &ApiConfig) -> usize {
    usize::try_from(config.recording_limit_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(MULTIPART_SLACK)
}

/// A voice recording.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecordingBody {
    pub id: i64,
    pub name: String,
    pub description: Option<String>,
    /// `audio/wav` or `audio/mpeg`: what the uploaded bytes are, whatever they were called.
    pub content_type: String,
    /// Size of the audio file.
    pub size_bytes: i64,
    /// How long the audio plays, when the file says (a WAV's header, an MP3's frames).
    pub duration_ms: Option<i64>,
    /// Where the audio is served: `/api/recordings/{id}/media`.
    pub media_url: String,
    #[schema(value_type = Object)]
    pub metadata: JsonMap,
    #[serde(serialize_with = "ts::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "ts::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
    pub account_id: i64,
}

impl From<Recording> for RecordingBody {
    fn from(r: Recording) -> Self {
        RecordingBody {
            media_url: media_url(r.id),
            id: r.id,
            name: r.name,
            description: r.description,
            content_type: r.content_type,
            size_bytes: r.size_bytes,
            duration_ms: r.duration_ms,
            metadata: r.metadata.0,
            created_at: r.created_at,
            updated_at: r.updated_at,
            account_id: r.account_id,
        }
    }
}

/// The `multipart/form-data` body of `POST /api/recordings`. Each text part holds at most
/// 16 KiB; other parts are ignored.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documents the form; the handler reads it with `Multipart`
pub struct RecordingForm {
    /// The audio: WAV or MP3, recognised by its content whatever its name or declared
    /// type says.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// Defaults to the uploaded file's name, or `recording`.
    name: Option<String>,
    description: Option<String>,
    /// A JSON object, as text: `{"campaign": "polio"}`.
    metadata: Option<String>,
}

/// The `multipart/form-data` body of `PUT /api/recordings/{id}/media`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documents the form; the handler reads it with `Multipart`
pub struct MediaForm {
    /// The audio: WAV or MP3, recognised by its content.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// Body of `PATCH /api/recordings/{id}` (the audio itself is replaced with
/// `PUT /api/recordings/{id}/media`).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct RecordingUpdate {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    #[serde(flatten)]
    pub metadata: MetadataPatch,
}

fn location(id: i64) -> String {
    format!("/api/recordings/{id}")
}

/// Where a recording's audio is served. Relative, so it stays right behind any proxy or
/// host name.
fn media_url(id: i64) -> String {
    format!("/api/recordings/{id}/media")
}

fn check_name(name: &str, errors: &mut ValidationErrors) -> String {
    let name = name.trim().to_string();
    if name.is_empty() {
        errors.add("name", "can't be blank");
    } else if name.chars().count() > 255 {
        errors.add("name", "is too long (at most 255 characters)");
    }
    name
}

/// The name a recording gets when none is given: the uploaded file's (without any folder
/// a browser put in front, at most 255 characters), or `recording`.
fn default_name(file_name: Option<&str>) -> String {
    let base = file_name
        .map(|f| f.rsplit(['/', '\\']).next().unwrap_or(f))
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(255)
        .collect::<String>();
    let base = base.trim();
    if base.is_empty() {
        "recording".into()
    } else {
        base.to_string()
    }
}

/// The audio of an upload, or the reason it is refused (an error on `file`).
fn check_audio(bytes: Option<Vec<u8>>, errors: &mut ValidationErrors) -> Option<(Audio, Vec<u8>)> {
    match bytes {
        None => errors.add("file", "can't be blank"),
        Some(b) if b.is_empty() => errors.add("file", "can't be blank"),
        Some(b) => match AudioType::sniff(&b) {
            Some(audio) => return Some((audio, b)),
            None => errors.add("file", NOT_AUDIO),
        },
    }
    None
}

/// A form's `metadata` part: a JSON object as text. Absent or blank is `None`.
fn form_metadata(text: Option<String>, errors: &mut ValidationErrors) -> Option<JsonMap> {
    let text = text.filter(|t| !t.trim().is_empty())?;
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) if has_nul(&v) => {
            errors.add("metadata", NUL_MESSAGE);
            None
        }
        Ok(v @ serde_json::Value::Object(_)) => metadata_object(Some(v), errors),
        _ => {
            errors.add("metadata", "must be a JSON object");
            None
        }
    }
}

pub(crate) fn content_type_essence(req: &Request) -> String {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// What sauti reads of an upload form.
#[derive(Default)]
struct Upload {
    /// The `file` part's bytes and the file name it was sent with.
    file: Option<(Vec<u8>, Option<String>)>,
    name: Option<String>,
    description: Option<String>,
    metadata: Option<String>,
}

/// Read a whole `multipart/form-data` upload: the `file` part held to the recording limit,
/// the text parts to [`TEXT_PART_LIMIT`], other parts skipped. Text that is not UTF-8 or
/// holds a NUL is an error on its field.
async fn read_form(st: &AppState, req: Request, errors: &mut ValidationErrors) -> ApiResult<Upload> {
    let mut multipart = Multipart::from_request(req, st)
        .await
        .map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let mut upload = Upload::default();
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        let part = field.name().unwrap_or("").to_string();
        if part == "file" {
            let file_name = field.file_name().map(str::to_string);
            let bytes = read_capped(field, st.config.recording_limit_bytes, multipart_error).await?;
            upload.file = Some((bytes, file_name));
            continue;
        }
        let slot = match part.as_str() {
            "name" => &mut upload.name,
            "description" => &mut upload.description,
            "metadata" => &mut upload.metadata,
            _ => continue,
        };
        let bytes = read_capped(field, TEXT_PART_LIMIT, multipart_error).await?;
        match String::from_utf8(bytes) {
            Ok(s) if s.contains('\0') => errors.add(&part, NUL_MESSAGE),
            Ok(s) => *slot = Some(s),
            Err(_) => errors.add(&part, "must be UTF-8 text"),
        }
    }
    Ok(upload)
}

/// The audio of `PUT …/media`: the `file` part of a multipart form, or the whole body when
/// it is sent with an audio (or `application/octet-stream`) content type, as ICTCore's
/// "Add Recording File" sends it.
async fn read_media(st: &AppState, req: Request) -> ApiResult<Option<Vec<u8>>> {
    let essence = content_type_essence(&req);
    if essence == "multipart/form-data" {
        let mut errors = ValidationErrors::new();
        let upload = read_form(st, req, &mut errors).await?;
        Ok(upload.file.map(|(bytes, _)| bytes))
    } else if essence.starts_with("audio/") || essence == "application/octet-stream" {
        // The declared type only says "this body is the file"; what it is, is sniffed.
        let bytes = read_capped(
            req.into_body().into_data_stream(),
            st.config.recording_limit_bytes,
            |e| ApiError::BadRequest(format!("reading the upload: {e}")),
        )
        .await?;
        Ok(Some(bytes))
    } else {
        Err(ApiError::WrongMediaType(
            "Content-Type must be multipart/form-data (with a `file` part) or an audio type",
        ))
    }
}

/// Keep the audio as a new blob of the account; returns its name.
async fn store_audio(st: &AppState, account_id: i64, kind: AudioType, bytes: &[u8]) -> ApiResult<String> {
    Blobs::new(&st.config.data_dir)
        .write(account_id, kind.ext(), bytes)
        .await
        .map_err(|e| ApiError::Internal(format!("storing a recording: {e}")))
}

/// List recordings.
#[utoipa::path(get, path = "/api/recordings", operation_id = "recordings_index", tag = "recordings", security(("bearer" = [])), params(crate::openapi::ListParams), responses(
    (status = 200, body = Vec<RecordingBody>, headers(("Per-Page" = u32), ("Total" = u64), ("Link" = String))),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn index(
    auth: Authed<RecordingsRead>,
    State(st): State<AppState>,
    uri: Uri,
    raw: RawQuery,
) -> ApiResult<Response> {
    let q = raw.list_query(&SPEC)?;
    let page = st.store.list_recordings(auth.account_id, &q).await?;
    Ok(list_response(&uri, &raw.0, &q, page.map(RecordingBody::from)))
}

/// Upload a recording.
///
/// A multipart form with the audio in `file` — WAV or MP3, recognised by its content
/// whatever its name or declared type says; at most 20 MiB by default — and optional
/// `name` (default: the file's name), `description` and `metadata` (a JSON object as
/// text).
#[utoipa::path(post, path = "/api/recordings", operation_id = "recordings_create", tag = "recordings", security(("bearer" = [])),
    request_body(content = RecordingForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, body = RecordingBody, headers(("Location" = String))),
        (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
        (status = 413, body = crate::ErrorBody), (status = 415, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
    ))]
pub async fn create(auth: Authed<RecordingsWrite>, State(st): State<AppState>, req: Request) -> ApiResult<Response> {
    if content_type_essence(&req) != "multipart/form-data" {
        return Err(ApiError::WrongMediaType(
            "Content-Type must be multipart/form-data with a `file` part",
        ));
    }
    let mut errors = ValidationErrors::new();
    let upload = read_form(&st, req, &mut errors).await?;
    let (bytes, file_name) = upload.file.unzip();
    let audio = check_audio(bytes, &mut errors);
    let name = match upload.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        Some(n) => check_name(n, &mut errors),
        None => default_name(file_name.flatten().as_deref()),
    };
    let description = upload
        .description
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty());
    let metadata = form_metadata(upload.metadata, &mut errors).unwrap_or_default();
    errors.into_result()?;
    let (audio, bytes) = audio.ok_or_else(|| ApiError::validation("file", "can't be blank"))?;

    let blob = store_audio(&st, auth.account_id, audio.kind, &bytes).await?;
    let now = sauti_core::clock::now();
    let row = Recording {
        id: 0,
        account_id: auth.account_id,
        name,
        description,
        content_type: audio.kind.mime().into(),
        size_bytes: bytes.len() as i64,
        duration_ms: audio.duration_ms,
        media_blob: blob.clone(),
        metadata: Json(metadata),
        created_at: now,
        updated_at: now,
    };
    match st.store.create_recording(&row).await {
        Ok(r) => Ok(created(location(r.id), RecordingBody::from(r))),
        Err(e) => {
            // Nothing points at the new file.
            discard_blob(&st, auth.account_id, &blob).await;
            Err(e.into())
        }
    }
}

/// Retrieve a recording.
#[utoipa::path(get, path = "/api/recordings/{id}", operation_id = "recordings_show", tag = "recordings", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 200, body = RecordingBody),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn show(
    auth: Authed<RecordingsRead>,
    State(st): State<AppState>,
    Id(id): Id,
) -> ApiResult<axum::Json<RecordingBody>> {
    let r = st
        .store
        .get_recording(auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(axum::Json(r.into()))
}

/// Update a recording's name, description or metadata.
#[utoipa::path(patch, path = "/api/recordings/{id}", operation_id = "recordings_update", tag = "recordings", security(("bearer" = [])), params(("id" = i64, Path)), request_body = RecordingUpdate, responses(
    (status = 204, description = "Updated"),
    (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 404, body = crate::ErrorBody), (status = 415, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn update(
    auth: Authed<RecordingsWrite>,
    State(st): State<AppState>,
    Id(id): Id,
    JsonBody(body): JsonBody<RecordingUpdate>,
) -> ApiResult<Response> {
    let mut errors = ValidationErrors::new();
    let name = body.name.as_deref().map(|n| check_name(n, &mut errors));
    let metadata = body.metadata.validate(&mut errors);
    errors.into_result()?;
    st.store
        .update_recording(auth.account_id, id, |r| {
            if let Some(n) = &name {
                r.name = n.clone();
            }
            if let Some(d) = &body.description {
                r.description = d.clone();
            }
            metadata.apply(&mut r.metadata.0);
        })
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(no_content(location(id)))
}

/// Delete a recording and its audio.
#[utoipa::path(delete, path = "/api/recordings/{id}", operation_id = "recordings_destroy", tag = "recordings", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 204, description = "Deleted"),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn destroy(auth: Authed<RecordingsWrite>, State(st): State<AppState>, Id(id): Id) -> ApiResult<Response> {
    let r = st
        .store
        .delete_recording(auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    discard_blob(&st, auth.account_id, &r.media_blob).await;
    Ok(no_content("/api/recordings".into()))
}

/// Download a recording's audio.
///
/// The bytes uploaded, with their type (`audio/wav` or `audio/mpeg`) and length.
#[utoipa::path(get, path = "/api/recordings/{id}/media", operation_id = "recordings_show_media", tag = "recordings", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 200, description = "The audio", content(("audio/wav"), ("audio/mpeg")), headers(("Content-Length" = u64))),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn show_media(auth: Authed<RecordingsRead>, State(st): State<AppState>, Id(id): Id) -> ApiResult<Response> {
    let media = st
        .store
        .get_recording_media(auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let kind = AudioType::from_mime(&media.content_type)
        .ok_or_else(|| ApiError::Internal(format!("unknown recording type {:?}", media.content_type)))?;
    serve_blob(&st, auth.account_id, &media.media_blob, kind.mime()).await
}

/// Replace a recording's audio (ICTCore's "Add Recording File").
///
/// Send a multipart form with a `file` part, or the audio itself as the body
/// (`Content-Type: audio/…` or `application/octet-stream`). The same checks as the upload:
/// WAV or MP3 by content, at most 20 MiB by default. The audio uploaded before is removed.
#[utoipa::path(put, path = "/api/recordings/{id}/media", operation_id = "recordings_put_media", tag = "recordings", security(("bearer" = [])), params(("id" = i64, Path)),
    request_body(description = "The audio, as a multipart form or as the body itself", content(
        (inline(MediaForm) = "multipart/form-data"),
        ("audio/wav"), ("audio/mpeg"), ("application/octet-stream"),
    )),
    responses(
        (status = 204, description = "Stored", headers(("Location" = String, description = "Where the audio is served"))),
        (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
        (status = 404, body = crate::ErrorBody), (status = 413, body = crate::ErrorBody), (status = 415, body = crate::ErrorBody),
        (status = 422, body = crate::ErrorBody),
    ))]
pub async fn put_media(
    auth: Authed<RecordingsWrite>,
    State(st): State<AppState>,
    Id(id): Id,
    req: Request,
) -> ApiResult<Response> {
    // The body is read before the recording is looked at: answering while the client is
    // still uploading makes many clients fail on a broken pipe instead of reading the
    // answer. The route's body limit bounds what this costs.
    let bytes = read_media(&st, req).await?;
    let mut errors = ValidationErrors::new();
    let audio = check_audio(bytes, &mut errors);
    st.store
        .get_recording(auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    errors.into_result()?;
    let (audio, bytes) = audio.ok_or_else(|| ApiError::validation("file", "can't be blank"))?;

    let name = store_audio(&st, auth.account_id, audio.kind, &bytes).await?;
    // `update_recording` may run the change more than once (compare-and-swap); the file
    // replaced is the one the written run saw.
    let replaced = Mutex::new(None);
    let updated = st
        .store
        .update_recording(auth.account_id, id, |r| {
            *lock(&replaced) = Some(std::mem::replace(&mut r.media_blob, name.clone()));
            r.content_type = audio.kind.mime().into();
            r.size_bytes = bytes.len() as i64;
            r.duration_ms = audio.duration_ms;
        })
        .await;
    let written = match updated {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(ApiError::NotFound),
        Err(e) => Err(ApiError::from(e)),
    };
    if let Err(e) = written {
        // The recording went away meanwhile, or the write failed: nothing points at the
        // new file.
        discard_blob(&st, auth.account_id, &name).await;
        return Err(e);
    }
    if let Some(old) = into_inner(replaced) {
        discard_blob(&st, auth.account_id, &old).await;
    }
    Ok(no_content(media_url(id)))
}
