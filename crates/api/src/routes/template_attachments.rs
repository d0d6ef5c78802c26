//! `/api/templates/{id}/attachments`: the files an email template carries (ICTCore's
//! template media). Each is kept in the blob store; every email sent from the template
//! carries the attachments the template has when the email leaves.

use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use chrono::{DateTime, Utc};
use sauti_core::ValidationErrors;
use sauti_store::blobs::Blobs;
use sauti_store::{AttachOutcome, AttachmentLimits, TemplateAttachment};
use serde::{Deserialize, Serialize};

use super::clients::{MULTIPART_SLACK, discard_blob, multipart_error, read_capped, serve_blob};
use super::recordings::content_type_essence;
use super::{created, no_content};
use crate::auth::{Authed, TemplatesRead, TemplatesWrite};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Id, IdPair, RawQuery};
use crate::wire::ts;
use crate::{ApiConfig, AppState};

/// Most files one template carries.
pub const MAX_ATTACHMENTS: i64 = 10;

/// The body limit of the upload route: the attachment limit plus multipart framing.
pub(crate) fn attachment_body_limit(config: &ApiConfig) -> usize {
    usize::try_from(config.attachment_limit_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(MULTIPART_SLACK)
}

/// A file an email template carries.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AttachmentBody {
    pub id: i64,
    pub template_id: i64,
    /// The name the file has in the email.
    pub file_name: String,
    /// The MIME type the email gives it: the one uploaded with it, else guessed from the
    /// file name, else `application/octet-stream`.
    pub content_type: String,
    pub size_bytes: i64,
    /// Where the file is served: `/api/templates/{template_id}/attachments/{id}/content`.
    pub content_url: String,
    #[serde(serialize_with = "ts::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
}

impl From<&TemplateAttachment> for AttachmentBody {
    fn from(a: &TemplateAttachment) -> Self {
        AttachmentBody {
            id: a.id,
            template_id: a.template_id,
            file_name: a.file_name.clone(),
            content_type: a.content_type.clone(),
            size_bytes: a.size_bytes,
            content_url: format!("{}/content", location(a.template_id, a.id)),
            created_at: a.created_at,
        }
    }
}

/// The `multipart/form-data` body of `POST /api/templates/{id}/attachments`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documents the form; the handler reads it with `Multipart`
pub struct AttachmentForm {
    /// The file, any type.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// The name in the email; defaults to the uploaded file's name.
    file_name: Option<String>,
}

fn location(template_id: i64, id: i64) -> String {
    format!("/api/templates/{template_id}/attachments/{id}")
}

/// The name a file gets in the email: what follows the last folder separator a browser
/// may have put in front, without control characters, at most 255 characters.
fn clean_file_name(raw: &str, errors: &mut ValidationErrors) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or(raw);
    let name: String = base.chars().filter(|c| !c.is_control()).collect();
    let name = name.trim().to_string();
    if name.is_empty() {
        errors.add("file_name", "can't be blank");
    } else if name.chars().count() > 255 {
        errors.add("file_name", "is too long (at most 255 characters)");
    }
    name
}

/// The declared type when it is a real one (`application/octet-stream` only when the
/// file name says nothing better), else a guess from the file name.
fn content_type_for(declared: Option<&str>, file_name: &str) -> String {
    let guess = mime_guess::from_path(file_name).first();
    let declared = declared
        .and_then(|d| d.parse::<mime_guess::mime::Mime>().ok())
        .filter(|m| m.essence_str() != "application/octet-stream" || guess.is_none());
    declared.or(guess).map_or_else(
        || "application/octet-stream".to_string(),
        |m| m.essence_str().to_string(),
    )
}

/// The file name in `Content-Disposition: attachment; filename="…"`.
fn disposition_file_name(req: &Request) -> Option<String> {
    let value = req.headers().get(header::CONTENT_DISPOSITION)?.to_str().ok()?;
    value.split(';').map(str::trim).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("filename")
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// What an upload carried: bytes, the name given for them, the type declared.
struct Upload {
    bytes: Option<Vec<u8>>,
    file_name: Option<String>,
    content_type: Option<String>,
}

async fn read_upload(st: &AppState, req: Request, query: &RawQuery) -> ApiResult<Upload> {
    let limit = st.config.attachment_limit_bytes;
    if content_type_essence(&req) == "multipart/form-data" {
        let mut multipart = Multipart::from_request(req, st)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        let mut upload = Upload {
            bytes: None,
            file_name: None,
            content_type: None,
        };
        let mut named = None;
        while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
            match field.name().unwrap_or("") {
                "file" => {
                    upload.file_name = field.file_name().map(str::to_string);
                    upload.content_type = field.content_type().map(str::to_string);
                    upload.bytes = Some(read_capped(field, limit, multipart_error).await?);
                }
                "file_name" => {
                    let bytes = read_capped(field, 1024, multipart_error).await?;
                    named = Some(String::from_utf8_lossy(&bytes).into_owned());
                }
                _ => {}
            }
        }
        upload.file_name = named.or(upload.file_name);
        return Ok(upload);
    }
    let file_name = query
        .0
        .iter()
        .find(|(k, _)| k == "file_name")
        .map(|(_, v)| v.clone())
        .or_else(|| disposition_file_name(&req));
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = read_capped(req.into_body().into_data_stream(), limit, |e| {
        ApiError::BadRequest(format!("reading the upload: {e}"))
    })
    .await?;
    Ok(Upload {
        bytes: Some(bytes),
        file_name,
        content_type,
    })
}

/// List a template's attachments (at most ten, in upload order).
#[utoipa::path(get, path = "/api/templates/{id}/attachments", operation_id = "template_attachments_index", tag = "content", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 200, body = Vec<AttachmentBody>),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn index(
    auth: Authed<TemplatesRead>,
    State(st): State<AppState>,
    Id(id): Id,
) -> ApiResult<axum::Json<Vec<AttachmentBody>>> {
    st.store
        .get_template(auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let rows = st.store.template_attachments(Some(auth.account_id), &[id]).await?;
    Ok(axum::Json(rows.iter().map(AttachmentBody::from).collect()))
}

/// Attach a file to a template.
///
/// A multipart form with the file in `file` (and optionally `file_name`), or the file
/// itself as the body with its own `Content-Type` and the name in `?file_name=` or
/// `Content-Disposition: attachment; filename="…"`. Any type; a template carries at most
/// ten files and 15 MiB in all by default.
#[utoipa::path(post, path = "/api/templates/{id}/attachments", operation_id = "template_attachments_create", tag = "content", security(("bearer" = [])),
    params(("id" = i64, Path), ("file_name" = Option<String>, Query, description = "The file's name, for a raw upload")),
    request_body(description = "The file, as a multipart form or as the body itself", content(
        (inline(AttachmentForm) = "multipart/form-data"), ("application/octet-stream"),
    )),
    responses(
        (status = 201, body = AttachmentBody, headers(("Location" = String))),
        (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
        (status = 404, body = crate::ErrorBody), (status = 413, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
    ))]
pub async fn create(
    auth: Authed<TemplatesWrite>,
    State(st): State<AppState>,
    Id(template_id): Id,
    query: RawQuery,
    req: Request,
) -> ApiResult<Response> {
    // Read the body before answering about the template: a client still uploading when
    // the answer comes often sees a broken pipe instead of the answer.
    let upload = read_upload(&st, req, &query).await?;
    let mut errors = ValidationErrors::new();
    let bytes = upload.bytes.unwrap_or_default();
    if bytes.is_empty() {
        errors.add("file", "can't be blank");
    }
    let file_name = match upload.file_name.as_deref() {
        Some(raw) => clean_file_name(raw, &mut errors),
        None => {
            errors.add(
                "file_name",
                "can't be blank (give ?file_name= or a file name in the form)",
            );
            String::new()
        }
    };
    st.store
        .get_template(auth.account_id, template_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    errors.into_result()?;

    let content_type = content_type_for(upload.content_type.as_deref(), &file_name);
    let blob = Blobs::new(&st.config.data_dir)
        .write(auth.account_id, "bin", &bytes)
        .await
        .map_err(|e| ApiError::Internal(format!("storing an attachment: {e}")))?;
    let row = TemplateAttachment {
        id: 0,
        account_id: auth.account_id,
        template_id,
        file_name,
        content_type,
        size_bytes: bytes.len() as i64,
        blob: blob.clone(),
        created_at: Utc::now(),
    };
    let limits = AttachmentLimits {
        max_count: MAX_ATTACHMENTS,
        max_total_bytes: i64::try_from(st.config.attachment_limit_bytes).unwrap_or(i64::MAX),
    };
    let outcome = st.store.add_template_attachment(&row, limits).await;
    let refused = match outcome {
        Ok(AttachOutcome::Added(a)) => return Ok(created(location(template_id, a.id), AttachmentBody::from(&a))),
        Ok(AttachOutcome::NoTemplate) => ApiError::NotFound,
        Ok(AttachOutcome::Full) => ApiError::validation(
            "file",
            format!(
                "the template already carries {MAX_ATTACHMENTS} attachments, or this one would take them past {} bytes in all",
                limits.max_total_bytes
            ),
        ),
        Err(e) => e.into(),
    };
    // Nothing points at the new file.
    discard_blob(&st, auth.account_id, &blob).await;
    Err(refused)
}

async fn find(st: &AppState, account_id: i64, template_id: i64, id: i64) -> ApiResult<TemplateAttachment> {
    st.store
        .get_template_attachment(account_id, template_id, id)
        .await?
        .ok_or(ApiError::NotFound)
}

/// Describe one attachment.
#[utoipa::path(get, path = "/api/templates/{id}/attachments/{attachment_id}", operation_id = "template_attachments_show", tag = "content", security(("bearer" = [])),
    params(("id" = i64, Path), ("attachment_id" = i64, Path)), responses(
    (status = 200, body = AttachmentBody),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn show(
    auth: Authed<TemplatesRead>,
    State(st): State<AppState>,
    IdPair(template_id, id): IdPair,
) -> ApiResult<axum::Json<AttachmentBody>> {
    let a = find(&st, auth.account_id, template_id, id).await?;
    Ok(axum::Json(AttachmentBody::from(&a)))
}

/// Download one attachment: the bytes uploaded, with their type and file name.
#[utoipa::path(get, path = "/api/templates/{id}/attachments/{attachment_id}/content", operation_id = "template_attachments_content", tag = "content", security(("bearer" = [])),
    params(("id" = i64, Path), ("attachment_id" = i64, Path)), responses(
    (status = 200, description = "The file", content(("application/octet-stream")), headers(("Content-Disposition" = String))),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn content(
    auth: Authed<TemplatesRead>,
    State(st): State<AppState>,
    IdPair(template_id, id): IdPair,
) -> ApiResult<Response> {
    let a = find(&st, auth.account_id, template_id, id).await?;
    let mut resp = serve_blob(&st, auth.account_id, &a.blob, &a.content_type).await?;
    // Always a download, never rendered in the API's origin.
    let ascii: String = a
        .file_name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{ascii}\"")) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

/// Remove an attachment from its template.
#[utoipa::path(delete, path = "/api/templates/{id}/attachments/{attachment_id}", operation_id = "template_attachments_destroy", tag = "content", security(("bearer" = [])),
    params(("id" = i64, Path), ("attachment_id" = i64, Path)), responses(
    (status = 204, description = "Removed"),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn destroy(
    auth: Authed<TemplatesWrite>,
    State(st): State<AppState>,
    IdPair(template_id, id): IdPair,
) -> ApiResult<Response> {
    let a = st
        .store
        .delete_template_attachment(auth.account_id, template_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    discard_blob(&st, auth.account_id, &a.blob).await;
    Ok(no_content(format!("/api/templates/{template_id}/attachments")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_come_from_the_upload_else_the_name() {
        assert_eq!(content_type_for(Some("application/pdf"), "x.bin"), "application/pdf");
        assert_eq!(content_type_for(Some("text/csv; charset=utf-8"), "x"), "text/csv");
        assert_eq!(content_type_for(None, "report.pdf"), "application/pdf");
        assert_eq!(
            content_type_for(Some("application/octet-stream"), "report.pdf"),
            "application/pdf"
        );
        assert_eq!(
            content_type_for(Some("not a type"), "notes"),
            "application/octet-stream"
        );
        assert_eq!(content_type_for(None, "notes"), "application/octet-stream");
    }

    #[test]
    fn file_names_lose_folders_and_control_characters() {
        let mut errors = ValidationErrors::new();
        assert_eq!(clean_file_name("C:\\Users\\a\\report.pdf", &mut errors), "report.pdf");
        assert_eq!(clean_file_name("../../etc/passwd", &mut errors), "passwd");
        assert_eq!(clean_file_name("a\u{0}b\nc.txt", &mut errors), "abc.txt");
        assert!(errors.into_result().is_ok());
        let mut errors = ValidationErrors::new();
        clean_file_name("dir/", &mut errors);
        assert!(errors.into_result().is_err());
    }
}
