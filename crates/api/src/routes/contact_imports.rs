//! `/api/contact_imports`: CSV uploads processed in the background, with a report to
//! poll; and the CSV exports of contacts.

use std::path::{Path, PathBuf};

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use sauti_core::filter::{ListQuery, ResourceSpec};
use sauti_store::{ContactImport, ContactScope, ImportProgress, RejectedRow};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use super::contacts::{contacts_query, default_region};
use super::created;
use crate::AppState;
use crate::auth::{Authed, ContactImportsRead, ContactImportsWrite, ContactsRead, GroupsRead};
use crate::contact_csv::{self, SNIFF_BYTES};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Id, RawQuery};
use crate::pagination::list_response;
use crate::wire::ts;

pub const SPEC: ResourceSpec = ResourceSpec {
    sortable: &["id", "created_at", "updated_at"],
    fields: &[sauti_core::filter::FieldSpec {
        name: "status",
        column: "status",
        kind: sauti_core::filter::FieldKind::Text,
    }],
    has_metadata: false,
};

/// A contact import and its report.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ContactImportBody {
    pub id: i64,
    /// `queued`, `running`, `completed` or `failed`.
    pub status: String,
    /// The group every imported contact was added to.
    pub group_id: Option<i64>,
    pub file_name: Option<String>,
    /// Data rows read so far (blank lines and the header are not rows).
    pub rows_read: i64,
    pub created: i64,
    pub updated: i64,
    pub rejected: i64,
    /// The first 1,000 rejected rows: `{"line": 3, "reason": "…"}`.
    #[schema(value_type = Vec<Object>)]
    pub rejected_rows: Vec<RejectedRow>,
    /// Why a `failed` import stopped.
    pub failure_reason: Option<String>,
    #[serde(serialize_with = "ts::option::serialize")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "ts::option::serialize")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "ts::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "ts::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
}

impl From<ContactImport> for ContactImportBody {
    fn from(i: ContactImport) -> Self {
        ContactImportBody {
            id: i.id,
            status: i.status,
            group_id: i.group_id,
            file_name: i.file_name,
            rows_read: i.rows_read,
            created: i.created,
            updated: i.updated,
            rejected: i.rejected,
            rejected_rows: i.rejected_rows.0,
            failure_reason: i.failure_reason,
            started_at: i.started_at,
            finished_at: i.finished_at,
            created_at: i.created_at,
            updated_at: i.updated_at,
        }
    }
}

fn imports_dir(st: &AppState) -> PathBuf {
    st.config.data_dir.join("imports")
}

fn import_path(st: &AppState, id: i64) -> PathBuf {
    imports_dir(st).join(format!("{id}.csv"))
}

/// Removes a half-written upload unless it was kept.
struct TempUpload(Option<PathBuf>);

impl Drop for TempUpload {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Write a body stream to `path`, at most `limit` bytes; returns the first bytes for
/// sniffing and the size.
async fn save_stream<S, E>(mut stream: S, path: &Path, limit: u64) -> ApiResult<(Vec<u8>, u64)>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(|e| ApiError::Internal(format!("creating {path:?}: {e}")))?;
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("reading the upload: {e}")))?;
        size += chunk.len() as u64;
        if size > limit {
            return Err(ApiError::PayloadTooLarge);
        }
        if head.len() < SNIFF_BYTES {
            head.extend_from_slice(&chunk[..chunk.len().min(SNIFF_BYTES - head.len())]);
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| ApiError::Internal(format!("writing the upload: {e}")))?;
    }
    file.flush()
        .await
        .map_err(|e| ApiError::Internal(format!("writing the upload: {e}")))?;
    Ok((head, size))
}

fn is_csv_type(ct: &str) -> bool {
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    matches!(
        essence.as_str(),
        "text/csv" | "application/csv" | "text/plain" | "application/vnd.ms-excel"
    )
}

/// Start a CSV import: a `text/csv` body with `?group_id=`, or `multipart/form-data` with
/// a `file` part and an optional `group_id` field. Answers once the file is stored; the
/// rows are processed in the background.
#[utoipa::path(post, path = "/api/contact_imports", operation_id = "contact_imports_create", tag = "contacts", security(("bearer" = [])),
    params(("group_id" = Option<i64>, Query, description = "Add every imported contact to this group")),
    request_body(content = String, content_type = "text/csv", description = "The CSV file (or multipart/form-data with a `file` part)"),
    responses(
        (status = 201, body = ContactImportBody, headers(("Location" = String))),
        (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
        (status = 413, body = crate::ErrorBody), (status = 415, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
    ))]
pub async fn create(
    auth: Authed<ContactImportsWrite>,
    State(st): State<AppState>,
    raw: RawQuery,
    req: Request,
) -> ApiResult<Response> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let dir = imports_dir(&st);
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| ApiError::Internal(format!("creating {dir:?}: {e}")))?;
    let upload = dir.join(format!("upload-{}.csv", sauti_core::secret::generate_token()));
    let mut guard = TempUpload(Some(upload.clone()));
    let limit = st.config.import_limit_bytes;

    let mut group_id = raw.0.iter().find(|(k, _)| k == "group_id").map(|(_, v)| v.clone());
    let mut file_name = None;
    let (head, size) = if content_type.to_ascii_lowercase().starts_with("multipart/form-data") {
        let mut multipart = Multipart::from_request(req, &st)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        let mut saved = None;
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?
        {
            match field.name() {
                Some("file") if saved.is_none() => {
                    file_name = field.file_name().map(str::to_owned);
                    saved = Some(save_stream(field, &upload, limit).await?);
                }
                Some("group_id") => {
                    group_id = Some(field.text().await.map_err(|e| ApiError::BadRequest(e.body_text()))?)
                }
                _ => {}
            }
        }
        saved.ok_or_else(|| ApiError::validation("file", "can't be blank"))?
    } else if is_csv_type(&content_type) {
        save_stream(req.into_body().into_data_stream(), &upload, limit).await?
    } else {
        return Err(ApiError::WrongMediaType(
            "Content-Type must be text/csv or multipart/form-data",
        ));
    };

    let group_id = match group_id.as_deref().map(str::trim).filter(|g| !g.is_empty()) {
        None => None,
        Some(g) => {
            let id = g.parse::<i64>().ok().filter(|id| *id > 0);
            match id {
                Some(id) if st.store.get_group(auth.account_id, id).await?.is_some() => Some(id),
                _ => return Err(ApiError::validation("group_id", "does not exist")),
            }
        }
    };
    if size == 0 {
        return Err(ApiError::validation("file", "the file is empty"));
    }
    contact_csv::sniff(&head).map_err(|why| ApiError::validation("file", why))?;

    let import = st
        .store
        .create_contact_import(auth.account_id, group_id, file_name.as_deref())
        .await?;
    let path = import_path(&st, import.id);
    tokio::fs::rename(&upload, &path)
        .await
        .map_err(|e| ApiError::Internal(format!("storing the upload: {e}")))?;
    guard.0 = None;
    spawn_import(st.clone(), import.clone(), path);
    Ok(created(
        format!("/api/contact_imports/{}", import.id),
        ContactImportBody::from(import),
    ))
}

/// Run an import in the background and remove the upload when done.
pub(crate) fn spawn_import(st: AppState, import: ContactImport, path: PathBuf) {
    tokio::spawn(async move {
        let region = default_region(&st, import.account_id).await.ok().flatten();
        let mut sink = contact_csv::SaveProgress::new(st.store.clone(), import.id);
        let outcome =
            contact_csv::import_file(&st.store, import.account_id, import.group_id, region, &path, &mut sink).await;
        tracing::info!(import = import.id, status = %outcome.status, rows = outcome.rows_read, "contact import finished");
        let _ = tokio::fs::remove_file(&path).await;
    });
}

/// Restart imports a stopped process left unfinished (upserts make a rerun safe); fail
/// those whose upload is gone.
pub async fn resume_imports(st: &AppState) {
    let unfinished = match st.store.unfinished_contact_imports().await {
        Ok(u) => u,
        Err(e) => {
            tracing::error!(error = %e, "listing unfinished contact imports");
            return;
        }
    };
    for import in unfinished {
        let path = import_path(st, import.id);
        if path.exists() {
            tracing::info!(import = import.id, "resuming contact import");
            spawn_import(st.clone(), import, path);
        } else {
            let p = ImportProgress {
                status: "failed".into(),
                failure_reason: Some("the server stopped and the uploaded file is gone; upload it again".into()),
                finished_at: Some(sauti_core::clock::now()),
                ..Default::default()
            };
            let _ = st.store.save_import_progress(import.id, &p).await;
        }
    }
}

/// List contact imports.
#[utoipa::path(get, path = "/api/contact_imports", operation_id = "contact_imports_index", tag = "contacts", security(("bearer" = [])), params(crate::openapi::ListParams), responses(
    (status = 200, body = Vec<ContactImportBody>, headers(("Per-Page" = u32), ("Total" = u64), ("Link" = String))),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn index(
    auth: Authed<ContactImportsRead>,
    State(st): State<AppState>,
    uri: Uri,
    raw: RawQuery,
) -> ApiResult<Response> {
    let q = raw.list_query(&SPEC)?;
    let page = st.store.list_contact_imports(auth.account_id, &q).await?;
    Ok(list_response(&uri, &raw.0, &q, page.map(ContactImportBody::from)))
}

/// Retrieve a contact import and its report.
#[utoipa::path(get, path = "/api/contact_imports/{id}", operation_id = "contact_imports_show", tag = "contacts", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 200, body = ContactImportBody),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn show(
    auth: Authed<ContactImportsRead>,
    State(st): State<AppState>,
    Id(id): Id,
) -> ApiResult<axum::Json<ContactImportBody>> {
    let i = st
        .store
        .get_contact_import(auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(axum::Json(i.into()))
}

/// Stream the account's contacts (or a group's) as CSV, a thousand rows per database read.
fn csv_response(st: &AppState, account_id: i64, scope: Option<i64>, query: ListQuery, file_name: &str) -> Response {
    let store = st.store.clone();
    // State: the last id sent, whether the header is still due, whether we are done.
    let stream = futures::stream::unfold((0i64, true, false), move |(after, header, done)| {
        let store = store.clone();
        let query = query.clone();
        async move {
            if done {
                return None;
            }
            match store
                .contacts_after(account_id, scope.map(ContactScope::Group), &query, after, 1000)
                .await
            {
                Ok(rows) => {
                    let last = rows.last().map(|c| c.id).unwrap_or(after);
                    let done = rows.len() < 1000;
                    if rows.is_empty() && !header {
                        return None;
                    }
                    let bytes = Bytes::from(contact_csv::export_rows(&rows, header));
                    Some((Ok::<_, std::io::Error>(bytes), (last, false, done)))
                }
                Err(e) => {
                    tracing::error!(error = %e, "contact export");
                    Some((Err(std::io::Error::other("export failed")), (after, false, true)))
                }
            }
        }
    });
    let mut resp = Body::from_stream(stream).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

/// Export contacts as CSV (the same `q` filters as `GET /api/contacts`); re-importable.
#[utoipa::path(get, path = "/api/contacts.csv", operation_id = "contacts_export", tag = "contacts", security(("bearer" = [])), params(crate::openapi::ListParams), responses(
    (status = 200, description = "RFC 4180 CSV", content_type = "text/csv"),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn export_contacts(
    auth: Authed<ContactsRead>,
    State(st): State<AppState>,
    raw: RawQuery,
) -> ApiResult<Response> {
    let q = contacts_query(&st, auth.account_id, &raw).await?;
    Ok(csv_response(&st, auth.account_id, None, q, "contacts.csv"))
}

/// Export a group's contacts as CSV. Needs `groups_read` and `contacts_read`.
#[utoipa::path(get, path = "/api/groups/{id}/contacts.csv", operation_id = "groups_export", tag = "groups", security(("bearer" = [])), params(("id" = i64, Path), crate::openapi::ListParams), responses(
    (status = 200, description = "RFC 4180 CSV", content_type = "text/csv"),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 404, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn export_group(
    auth: Authed<GroupsRead>,
    _contacts: Authed<ContactsRead>,
    State(st): State<AppState>,
    Id(id): Id,
    raw: RawQuery,
) -> ApiResult<Response> {
    let group = st
        .store
        .get_group(auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let q = contacts_query(&st, auth.account_id, &raw).await?;
    Ok(csv_response(
        &st,
        auth.account_id,
        Some(group.id),
        q,
        &format!("group-{id}.csv"),
    ))
}

/// A sample CSV showing the columns an import understands.
#[utoipa::path(get, path = "/api/groups/sample.csv", operation_id = "groups_sample_csv", tag = "groups", security(("bearer" = [])), responses(
    (status = 200, description = "A sample CSV", content_type = "text/csv"),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
))]
pub async fn sample(_auth: Authed<GroupsRead>) -> Response {
    let mut resp = contact_csv::SAMPLE_CSV.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"sample.csv\""),
    );
    resp
}
