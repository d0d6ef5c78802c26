//! `/api/clients`: organisations the account works with (Happyoffer's clients), their
//! contacts, and their logos (an http(s) URL, or an image uploaded to
//! `/api/clients/{id}/logo` and kept in the blob store).

use std::sync::Mutex;

use axum::body::Bytes;
use axum::extract::multipart::MultipartError;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use sauti_core::filter::{FieldKind, FieldSpec, ResourceSpec};
use sauti_core::{ValidationErrors, clock, email};
use sauti_store::{Client, ContactScope, JsonMap};
use serde::{Deserialize, Serialize};

use super::contacts::{contacts_page, contacts_query};
use super::{MetadataPatch, created, no_content, set};
use crate::auth::{Authed, ClientsRead, ClientsWrite, ContactsRead};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Id, JsonBody, RawQuery};
use crate::image::ImageType;
use crate::pagination::list_response;
use crate::wire::{double_option, ts};
use crate::{ApiConfig, AppState};
use sauti_store::blobs::Blobs;

pub const SPEC: ResourceSpec = ResourceSpec {
    sortable: &["id", "created_at", "updated_at", "company_name", "external_client_id"],
    fields: &[
        FieldSpec {
            name: "external_client_id",
            column: "external_client_id",
            kind: FieldKind::Text,
        },
        FieldSpec {
            name: "company_name",
            column: "company_name",
            kind: FieldKind::Text,
        },
        FieldSpec {
            name: "user_id",
            column: "user_id",
            kind: FieldKind::Int,
        },
    ],
    has_metadata: true,
};

/// A client organisation.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClientBody {
    pub id: i64,
    /// The user who owns the client relationship.
    pub user_id: Option<i64>,
    /// The client's id in your own system; unique within the account.
    pub external_client_id: String,
    pub company_name: String,
    pub address: Option<String>,
    pub house_number: Option<String>,
    pub zip_code: Option<String>,
    pub country: Option<String>,
    pub city: Option<String>,
    pub phone_number: Option<String>,
    pub website_url: Option<String>,
    pub chamber_of_commerce_number: Option<String>,
    pub email: Option<String>,
    /// URL of the client's logo: the http(s) URL it was given, or
    /// `/api/clients/{id}/logo` when an image was uploaded.
    pub logo: Option<String>,
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

impl From<Client> for ClientBody {
    fn from(c: Client) -> Self {
        ClientBody {
            id: c.id,
            user_id: c.user_id,
            external_client_id: c.external_client_id,
            company_name: c.company_name,
            address: c.address,
            house_number: c.house_number,
            zip_code: c.zip_code,
            country: c.country,
            city: c.city,
            phone_number: c.phone_number,
            website_url: c.website_url,
            chamber_of_commerce_number: c.chamber_of_commerce_number,
            email: c.email,
            logo: c.logo,
            metadata: c.metadata.0,
            created_at: c.created_at,
            updated_at: c.updated_at,
            account_id: c.account_id,
        }
    }
}

/// `external_client_id` may be sent as a string or a number (Happyoffer: `string|int`).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum ExternalId {
    Text(String),
    Number(i64),
}

impl ExternalId {
    fn into_string(self) -> String {
        match self {
            ExternalId::Text(s) => s.trim().to_string(),
            ExternalId::Number(n) => n.to_string(),
        }
    }
}

/// Body of `POST /api/clients` (`external_client_id` and `company_name` required) and
/// `PATCH /api/clients/{id}` (all optional; `null` clears).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct ClientInput {
    #[schema(value_type = Option<String>)]
    pub external_client_id: Option<ExternalId>,
    pub company_name: Option<String>,
    /// Defaults to the user of the session making the client.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub user_id: Option<Option<i64>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub address: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub house_number: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub zip_code: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub country: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub city: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub phone_number: Option<Option<String>>,
    /// Must be an http(s) URL.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub website_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub chamber_of_commerce_number: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    /// An http(s) URL of the logo image (to upload one instead, `PUT /api/clients/{id}/logo`).
    /// A URL or `null` replaces an uploaded image; sending back the uploaded image's own
    /// `/api/clients/{id}/logo` leaves it as it is.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub logo: Option<Option<String>>,
    #[serde(flatten)]
    pub metadata: MetadataPatch,
}

fn is_http_url(u: &str) -> bool {
    url::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

struct ClientChange {
    input: ClientInput,
    external_client_id: Option<String>,
    company_name: Option<String>,
    metadata: super::MetadataChange,
}

impl ClientChange {
    fn apply(&self, c: &mut Client) {
        let i = &self.input;
        set(&mut c.external_client_id, &self.external_client_id);
        set(&mut c.company_name, &self.company_name);
        set(&mut c.user_id, &i.user_id);
        set(&mut c.address, &i.address);
        set(&mut c.house_number, &i.house_number);
        set(&mut c.zip_code, &i.zip_code);
        set(&mut c.country, &i.country);
        set(&mut c.city, &i.city);
        set(&mut c.phone_number, &i.phone_number);
        set(&mut c.website_url, &i.website_url);
        set(&mut c.chamber_of_commerce_number, &i.chamber_of_commerce_number);
        set(&mut c.email, &i.email);
        set(&mut c.logo, &i.logo);
        if i.logo.is_some() {
            // A new URL (or none) replaces an uploaded image; the caller removes its file.
            c.logo_blob = None;
        }
        self.metadata.apply(&mut c.metadata.0);
    }
}

impl ClientInput {
    async fn validate(mut self, st: &AppState, account_id: i64, creating: bool) -> ApiResult<ClientChange> {
        let mut errors = ValidationErrors::new();
        // Stored as validated: trimmed, the e-mail lower-cased as a contact's or user's is.
        let trim = |v: &mut Option<Option<String>>| {
            if let Some(Some(s)) = v {
                *s = s.trim().to_string();
            }
        };
        trim(&mut self.email);
        trim(&mut self.website_url);
        trim(&mut self.logo);
        if let Some(Some(e)) = &mut self.email {
            *e = e.to_lowercase();
        }
        let external_client_id = self.external_client_id.take().map(ExternalId::into_string);
        let company_name = self.company_name.take().map(|s| s.trim().to_string());
        for (field, value) in [
            ("external_client_id", &external_client_id),
            ("company_name", &company_name),
        ] {
            match value {
                Some(v) if v.is_empty() => errors.add(field, "can't be blank"),
                Some(v) if v.chars().count() > 255 => errors.add(field, "is too long (at most 255 characters)"),
                None if creating => errors.add(field, "can't be blank"),
                _ => {}
            }
        }
        if let Some(Some(e)) = &self.email
            && !email::is_valid(e.trim())
        {
            errors.add("email", "is invalid");
        }
        for (field, value) in [("website_url", &self.website_url), ("logo", &self.logo)] {
            if let Some(Some(u)) = value
                && !is_http_url(u.trim())
            {
                errors.add(field, "must be an http(s) URL");
            }
        }
        if let Some(Some(user_id)) = self.user_id
            && st.store.get_user(account_id, user_id).await?.is_none()
        {
            errors.add("user_id", "does not exist");
        }
        let metadata = std::mem::take(&mut self.metadata).validate(&mut errors);
        errors.into_result()?;
        Ok(ClientChange {
            input: self,
            external_client_id,
            company_name,
            metadata,
        })
    }
}

fn location(id: i64) -> String {
    format!("/api/clients/{id}")
}

/// List clients.
#[utoipa::path(get, path = "/api/clients", operation_id = "clients_index", tag = "clients", security(("bearer" = [])), params(crate::openapi::ListParams), responses(
    (status = 200, body = Vec<ClientBody>, headers(("Per-Page" = u32), ("Total" = u64), ("Link" = String))),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn index(
    auth: Authed<ClientsRead>,
    State(st): State<AppState>,
    uri: Uri,
    raw: RawQuery,
) -> ApiResult<Response> {
    let q = raw.list_query(&SPEC)?;
    let page = st.store.list_clients(auth.account_id, &q).await?;
    Ok(list_response(&uri, &raw.0, &q, page.map(ClientBody::from)))
}

/// Create a client.
#[utoipa::path(post, path = "/api/clients", operation_id = "clients_create", tag = "clients", security(("bearer" = [])), request_body = ClientInput, responses(
    (status = 201, body = ClientBody, headers(("Location" = String))),
    (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 409, body = crate::ErrorBody), (status = 415, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn create(
    auth: Authed<ClientsWrite>,
    State(st): State<AppState>,
    JsonBody(body): JsonBody<ClientInput>,
) -> ApiResult<Response> {
    let change = body.validate(&st, auth.account_id, true).await?;
    let now = clock::now();
    let mut c = Client {
        id: 0,
        account_id: auth.account_id,
        user_id: auth.user_id,
        external_client_id: String::new(),
        company_name: String::new(),
        address: None,
        house_number: None,
        zip_code: None,
        country: None,
        city: None,
        phone_number: None,
        website_url: None,
        chamber_of_commerce_number: None,
        email: None,
        logo: None,
        logo_blob: None,
        metadata: Default::default(),
        created_at: now,
        updated_at: now,
    };
    change.apply(&mut c);
    let c = st.store.create_client(&c).await?;
    Ok(created(location(c.id), ClientBody::from(c)))
}

/// Retrieve a client.
#[utoipa::path(get, path = "/api/clients/{id}", operation_id = "clients_show", tag = "clients", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 200, body = ClientBody),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn show(
    auth: Authed<ClientsRead>,
    State(st): State<AppState>,
    Id(id): Id,
) -> ApiResult<axum::Json<ClientBody>> {
    let c = st
        .store
        .get_client(auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(axum::Json(c.into()))
}

/// Update a client.
#[utoipa::path(patch, path = "/api/clients/{id}", operation_id = "clients_update", tag = "clients", security(("bearer" = [])), params(("id" = i64, Path)), request_body = ClientInput, responses(
    (status = 204, description = "Updated"),
    (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 404, body = crate::ErrorBody), (status = 415, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn update(
    auth: Authed<ClientsWrite>,
    State(st): State<AppState>,
    Id(id): Id,
    JsonBody(mut body): JsonBody<ClientInput>,
) -> ApiResult<Response> {
    // A client read, edited and sent back whole carries its uploaded logo's own URL: that
    // means "unchanged", not a (relative, so invalid) URL to set.
    if matches!(&body.logo, Some(Some(l)) if l.trim() == logo_url(id)) {
        body.logo = None;
    }
    let change = body.validate(&st, auth.account_id, false).await?;
    // `update_client` may run the change more than once (compare-and-swap); the blob the
    // written run dropped is the one to remove.
    let dropped = Mutex::new(None);
    st.store
        .update_client(auth.account_id, id, |c| {
            let before = c.logo_blob.clone();
            change.apply(c);
            *lock(&dropped) = before.filter(|_| c.logo_blob.is_none());
        })
        .await?
        .ok_or(ApiError::NotFound)?;
    if let Some(name) = into_inner(dropped) {
        discard_blob(&st, auth.account_id, &name).await;
    }
    Ok(no_content(location(id)))
}

/// Delete a client (and its uploaded logo); its contacts stay, without a client.
#[utoipa::path(delete, path = "/api/clients/{id}", operation_id = "clients_destroy", tag = "clients", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 204, description = "Deleted"),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn destroy(auth: Authed<ClientsWrite>, State(st): State<AppState>, Id(id): Id) -> ApiResult<Response> {
    let client = st
        .store
        .delete_client(auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    if let Some(name) = client.logo_blob {
        discard_blob(&st, auth.account_id, &name).await;
    }
    Ok(no_content("/api/clients".into()))
}

/// List a client's contacts (the same filters as `GET /api/contacts`). Needs
/// `clients_read` and `contacts_read`.
#[utoipa::path(get, path = "/api/clients/{id}/contacts", operation_id = "clients_contacts", tag = "clients", security(("bearer" = [])), params(("id" = i64, Path), crate::openapi::ListParams), responses(
    (status = 200, body = Vec<super::contacts::ContactBody>, headers(("Per-Page" = u32), ("Total" = u64), ("Link" = String))),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 404, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn contacts(
    auth: Authed<ClientsRead>,
    _contacts: Authed<ContactsRead>,
    State(st): State<AppState>,
    Id(id): Id,
    uri: Uri,
    raw: RawQuery,
) -> ApiResult<Response> {
    st.store
        .get_client(auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let q = contacts_query(&st, auth.account_id, &raw).await?;
    let page = st
        .store
        .list_contacts_in(auth.account_id, ContactScope::Client(id), &q)
        .await?;
    Ok(contacts_page(&uri, &raw, &q, page))
}

// ---------------------------------------------------------------------------------------
// Logo upload
// ---------------------------------------------------------------------------------------

pub(crate) const NOT_AN_IMAGE: &str = "must be a PNG, JPEG, GIF or WebP image";

/// Room for a multipart body's boundaries and part headers on top of the image itself.
pub(crate) const MULTIPART_SLACK: usize = 64 * 1024;

/// The body limit of the logo route: the image limit plus multipart framing. A raw image
/// body is held to the image limit itself as it is read.
pub(crate) fn logo_body_limit(config: &ApiConfig) -> usize {
    usize::try_from(config.logo_limit_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(MULTIPART_SLACK)
}

/// Where an uploaded logo is served; also what the client's `logo` becomes. Relative, so
/// it stays right behind any proxy or host name.
fn logo_url(id: i64) -> String {
    format!("/api/clients/{id}/logo")
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn into_inner<T>(m: Mutex<T>) -> T {
    m.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// Remove a blob nothing points at any more. Best effort: the row no longer names it, so
/// a failure leaves an orphaned file, never a broken logo; it is logged for the operator.
pub(crate) async fn discard_blob(st: &AppState, account_id: i64, name: &str) {
    if let Err(e) = Blobs::new(&st.config.data_dir).delete(account_id, name).await {
        tracing::warn!(error = %e, account = account_id, blob = name, "removing an unused uploaded file");
    }
}

pub(crate) fn multipart_error(e: MultipartError) -> ApiError {
    // The multipart reader enforces the route's body limit: past it, the upload is too big.
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge
    } else {
        ApiError::BadRequest(e.body_text())
    }
}

/// Collect a body stream, refusing it with 413 as soon as it passes `limit` bytes.
pub(crate) async fn read_capped<S, E>(
    mut stream: S,
    limit: u64,
    read_error: impl Fn(E) -> ApiError,
) -> ApiResult<Vec<u8>>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(&read_error)?;
        if (bytes.len() + chunk.len()) as u64 > limit {
            return Err(ApiError::PayloadTooLarge);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// The uploaded image's bytes: the `logo` part of a multipart form, or the whole body when
/// it is sent with an image (or `application/octet-stream`) content type.
async fn read_logo(st: &AppState, req: Request) -> ApiResult<Vec<u8>> {
    let limit = st.config.logo_limit_bytes;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence == "multipart/form-data" {
        let mut multipart = Multipart::from_request(req, st)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
            if field.name() == Some("logo") {
                return read_capped(field, limit, multipart_error).await;
            }
        }
        Err(ApiError::validation("logo", "can't be blank"))
    } else if essence.starts_with("image/") || essence == "application/octet-stream" {
        // The declared type only says "this body is the file"; what it is, is sniffed.
        read_capped(req.into_body().into_data_stream(), limit, |e| {
            ApiError::BadRequest(format!("reading the upload: {e}"))
        })
        .await
    } else {
        Err(ApiError::WrongMediaType(
            "Content-Type must be multipart/form-data (with a `logo` part) or an image type",
        ))
    }
}

/// The `multipart/form-data` body of `PUT /api/clients/{id}/logo`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documents the form; the handler reads it with `Multipart`
pub struct LogoForm {
    /// The image: PNG, JPEG, GIF or WebP, recognised by its content whatever its name or
    /// declared type says.
    #[schema(value_type = String, format = Binary)]
    logo: Vec<u8>,
}

/// Upload the client's logo.
///
/// Send a multipart form with a `logo` part, or the image itself as the body
/// (`Content-Type: image/…` or `application/octet-stream`). Only PNG, JPEG, GIF and WebP
/// are taken, recognised by their content whatever the name or declared type; at most
/// 2 MiB by default. The client's `logo` becomes `/api/clients/{id}/logo`, and an image
/// uploaded before is removed.
#[utoipa::path(put, path = "/api/clients/{id}/logo", operation_id = "clients_put_logo", tag = "clients", security(("bearer" = [])), params(("id" = i64, Path)),
    request_body(description = "The image, as a multipart form or as the body itself", content(
        (inline(LogoForm) = "multipart/form-data"),
        ("image/png"), ("image/jpeg"), ("image/gif"), ("image/webp"), ("application/octet-stream"),
    )),
    responses(
        (status = 204, description = "Stored", headers(("Location" = String, description = "Where the logo is served"))),
        (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
        (status = 404, body = crate::ErrorBody), (status = 413, body = crate::ErrorBody), (status = 415, body = crate::ErrorBody),
        (status = 422, body = crate::ErrorBody),
    ))]
pub async fn put_logo(
    auth: Authed<ClientsWrite>,
    State(st): State<AppState>,
    Id(id): Id,
    req: Request,
) -> ApiResult<Response> {
    // Before reading the body: an upload for a client that is not there (or not this
    // account's) is not worth taking.
    st.store
        .get_client(auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let bytes = read_logo(&st, req).await?;
    if bytes.is_empty() {
        return Err(ApiError::validation("logo", "can't be blank"));
    }
    let kind = ImageType::sniff(&bytes).ok_or_else(|| ApiError::validation("logo", NOT_AN_IMAGE))?;

    let blobs = Blobs::new(&st.config.data_dir);
    let name = blobs
        .write(auth.account_id, kind.ext(), &bytes)
        .await
        .map_err(|e| ApiError::Internal(format!("storing a logo: {e}")))?;
    let url = logo_url(id);
    // As in `update`: the blob replaced is the one the written run of the change saw.
    let replaced = Mutex::new(None);
    let updated = st
        .store
        .update_client(auth.account_id, id, |c| {
            *lock(&replaced) = c.logo_blob.replace(name.clone());
            c.logo = Some(url.clone());
        })
        .await;
    let written = match updated {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(ApiError::NotFound),
        Err(e) => Err(ApiError::from(e)),
    };
    if let Err(e) = written {
        // The client went away meanwhile, or the write failed: nothing points at the new
        // file.
        discard_blob(&st, auth.account_id, &name).await;
        return Err(e);
    }
    if let Some(old) = into_inner(replaced) {
        discard_blob(&st, auth.account_id, &old).await;
    }
    Ok(no_content(url))
}

/// Fetch the client's logo.
///
/// The uploaded image, with its content type; or, when the logo is a URL, a `302`
/// redirect to it. `404` when the client has no logo.
#[utoipa::path(get, path = "/api/clients/{id}/logo", operation_id = "clients_show_logo", tag = "clients", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 200, description = "The uploaded image", content(
        ("image/png"), ("image/jpeg"), ("image/gif"), ("image/webp"),
    )),
    (status = 302, description = "The logo is a URL", headers(("Location" = String))),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn show_logo(auth: Authed<ClientsRead>, State(st): State<AppState>, Id(id): Id) -> ApiResult<Response> {
    let c = st
        .store
        .get_client(auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let Some(name) = c.logo_blob else {
        // Only an absolute http(s) URL is followed, so a stored value can never send the
        // caller round in a loop. Serialised by `url`, it is ASCII as a header must be.
        let target = c
            .logo
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok())
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .and_then(|u| HeaderValue::from_str(u.as_str()).ok())
            .ok_or(ApiError::NotFound)?;
        return Ok((StatusCode::FOUND, [(header::LOCATION, target)]).into_response());
    };
    blob_image(&st, auth.account_id, &name).await
}

/// Remove the client's logo.
///
/// Clears an uploaded image (and removes its file) or a URL; `204` also when there was
/// none.
#[utoipa::path(delete, path = "/api/clients/{id}/logo", operation_id = "clients_destroy_logo", tag = "clients", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 204, description = "Removed"),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn destroy_logo(auth: Authed<ClientsWrite>, State(st): State<AppState>, Id(id): Id) -> ApiResult<Response> {
    let removed = Mutex::new(None);
    st.store
        .update_client(auth.account_id, id, |c| {
            *lock(&removed) = c.logo_blob.take();
            c.logo = None;
        })
        .await?
        .ok_or(ApiError::NotFound)?;
    if let Some(name) = into_inner(removed) {
        discard_blob(&st, auth.account_id, &name).await;
    }
    Ok(no_content(location(id)))
}

/// An uploaded image of `account_id` as a response: its sniffed type, private, never
/// re-sniffed by a browser. 404 when its file is gone.
pub(crate) async fn blob_image(st: &AppState, account_id: i64, name: &str) -> ApiResult<Response> {
    let kind = name
        .rsplit_once('.')
        .and_then(|(_, ext)| ImageType::from_ext(ext))
        .ok_or_else(|| ApiError::Internal(format!("unknown image blob {name:?}")))?;
    serve_blob(st, account_id, name, kind.mime()).await
}

/// An uploaded file of `account_id` as a response with `mime`, the type sniffed when it
/// was uploaded: private, never re-sniffed by a browser. 404 when its file is gone.
pub(crate) async fn serve_blob(st: &AppState, account_id: i64, name: &str, mime: &str) -> ApiResult<Response> {
    let bytes = Blobs::new(&st.config.data_dir)
        .read(account_id, name)
        .await
        .map_err(|e| ApiError::Internal(format!("reading an uploaded file: {e}")))?
        .ok_or_else(|| {
            // The row points at a file that is gone (a data dir restored without its
            // blobs, say): there is nothing to give.
            tracing::warn!(account = account_id, blob = %name, "uploaded file missing");
            ApiError::NotFound
        })?;
    let mut resp = bytes.into_response();
    let h = resp.headers_mut();
    let mime = HeaderValue::from_str(mime).unwrap_or(HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_TYPE, mime);
    // Served behind a token, and the same URL serves the next upload too.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    // User-uploaded bytes: a browser must take them as the sniffed type, nothing else.
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    Ok(resp)
}
