//! `/api/texts` (SMS bodies) and `/api/templates` (email: subject, HTML, plain
//! alternative, attachments in `template_attachments.rs`), ICTCore's Message section in
//! the native style.

use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use sauti_core::ValidationErrors;
use sauti_core::filter::{FieldKind, FieldSpec, ResourceSpec};
use sauti_store::transmissions::ts;
use sauti_store::{Json, JsonMap, Template, TemplateAttachment, Text};
use serde::Deserialize;
use serde_json::{Value, json};

use std::sync::atomic::AtomicBool;

use super::clients::discard_blob;
use super::template_attachments::AttachmentBody;
use super::{MetadataPatch, changed_concurrently, created, no_content, patch_fresh};
use crate::AppState;
use crate::auth::{Authed, TemplatesRead, TemplatesWrite, TextsRead, TextsWrite};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Id, JsonBody, RawQuery};
use crate::pagination::list_response;
use crate::wire::double_option;

pub const SPEC: ResourceSpec = ResourceSpec {
    sortable: &["id", "created_at", "updated_at", "name"],
    fields: &[FieldSpec {
        name: "name",
        column: "name",
        kind: FieldKind::Text,
    }],
    has_metadata: true,
};

fn text_body(t: &Text) -> Value {
    let a = sauti_core::sms::analyze(&t.data);
    json!({
        "id": t.id,
        "name": t.name,
        "data": t.data,
        "type": t.r#type,
        "encoding": a.encoding.as_str(),
        "segments": a.segments,
        "description": t.description,
        "metadata": t.metadata.0,
        "created_at": ts(&t.created_at),
        "updated_at": ts(&t.updated_at),
        "account_id": t.account_id,
    })
}

/// A template as the API shows it, with the files it carries (`attachments` holds every
/// row of `attachments` that belongs to it).
fn template_body(t: &Template, attachments: &[TemplateAttachment]) -> Value {
    let mine: Vec<AttachmentBody> = attachments
        .iter()
        .filter(|a| a.template_id == t.id)
        .map(AttachmentBody::from)
        .collect();
    json!({
        "id": t.id,
        "name": t.name,
        "description": t.description,
        "subject": t.subject,
        "body": t.body,
        "body_alt": t.body_alt,
        "attachments": mine,
        "metadata": t.metadata.0,
        "created_at": ts(&t.created_at),
        "updated_at": ts(&t.updated_at),
        "account_id": t.account_id,
    })
}

/// Body of `POST /api/texts` and `PATCH /api/texts/{id}`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct TextInput {
    pub name: Option<String>,
    /// The SMS text; `{{first_name}}`, `{{metadata.key}}` are filled per contact.
    pub data: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    #[serde(flatten)]
    pub metadata: MetadataPatch,
}

/// Body of `POST /api/templates` and `PATCH /api/templates/{id}`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct TemplateInput {
    pub name: Option<String>,
    pub subject: Option<String>,
    /// The HTML message.
    pub body: Option<String>,
    /// The plain-text alternative.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub body_alt: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    #[serde(flatten)]
    pub metadata: MetadataPatch,
}

fn required(errors: &mut ValidationErrors, field: &str, v: &str) {
    if v.trim().is_empty() {
        errors.add(field, "can't be blank");
    }
}

impl TextInput {
    fn apply(self, t: &mut Text) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if let Some(n) = self.name {
            t.name = n.trim().to_string();
        }
        if let Some(d) = self.data {
            t.data = d;
        }
        if let Some(d) = self.description {
            t.description = d;
        }
        required(&mut errors, "name", &t.name);
        required(&mut errors, "data", &t.data);
        if t.data.chars().count() > 1600 {
            errors.add("data", "is too long (at most 1600 characters)");
        }
        t.r#type = match sauti_core::sms::encoding_of(&t.data) {
            sauti_core::sms::Encoding::Gsm7 => "plain",
            sauti_core::sms::Encoding::Ucs2 => "unicode",
        }
        .into();
        self.metadata.validate(&mut errors).apply(&mut t.metadata.0);
        errors.into_result()
    }
}

impl TemplateInput {
    fn apply(self, t: &mut Template) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if let Some(n) = self.name {
            t.name = n.trim().to_string();
        }
        if let Some(s) = self.subject {
            t.subject = s;
        }
        if let Some(b) = self.body {
            t.body = b;
        }
        if let Some(b) = self.body_alt {
            t.body_alt = b;
        }
        if let Some(d) = self.description {
            t.description = d;
        }
        required(&mut errors, "name", &t.name);
        required(&mut errors, "subject", &t.subject);
        required(&mut errors, "body", &t.body);
        self.metadata.validate(&mut errors).apply(&mut t.metadata.0);
        errors.into_result()
    }
}

fn new_text(account_id: i64) -> Text {
    let now = sauti_core::clock::now();
    Text {
        id: 0,
        account_id,
        name: String::new(),
        data: String::new(),
        r#type: "plain".into(),
        description: None,
        metadata: Json(JsonMap::new()),
        created_at: now,
        updated_at: now,
    }
}

fn new_template(account_id: i64) -> Template {
    let now = sauti_core::clock::now();
    Template {
        id: 0,
        account_id,
        name: String::new(),
        description: None,
        subject: String::new(),
        body: String::new(),
        body_alt: None,
        metadata: Json(JsonMap::new()),
        created_at: now,
        updated_at: now,
    }
}

/// List SMS texts.
#[utoipa::path(get, path = "/api/texts", operation_id = "texts_index", tag = "content", security(("bearer" = [])), params(crate::openapi::ListParams), responses(
    (status = 200, body = Vec<Object>, headers(("Per-Page" = u32), ("Total" = u64), ("Link" = String))),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn texts_index(
    auth: Authed<TextsRead>,
    State(st): State<AppState>,
    uri: Uri,
    raw: RawQuery,
) -> ApiResult<Response> {
    let q = raw.list_query(&SPEC)?;
    let page = st.store.list_texts(auth.account_id, &q).await?;
    Ok(list_response(&uri, &raw.0, &q, page.map(|t| text_body(&t))))
}

/// Create an SMS text.
#[utoipa::path(post, path = "/api/texts", operation_id = "texts_create", tag = "content", security(("bearer" = [])), request_body = TextInput, responses(
    (status = 201, body = Object, headers(("Location" = String))),
    (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 415, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn texts_create(
    auth: Authed<TextsWrite>,
    State(st): State<AppState>,
    JsonBody(input): JsonBody<TextInput>,
) -> ApiResult<Response> {
    let mut t = new_text(auth.account_id);
    input.apply(&mut t)?;
    let t = st.store.create_text(&t).await?;
    Ok(created(format!("/api/texts/{}", t.id), text_body(&t)))
}

/// Retrieve an SMS text.
#[utoipa::path(get, path = "/api/texts/{id}", operation_id = "texts_show", tag = "content", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 200, body = Object), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn texts_show(
    auth: Authed<TextsRead>,
    State(st): State<AppState>,
    Id(id): Id,
) -> ApiResult<axum::Json<Value>> {
    let t = st
        .store
        .get_text(auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(axum::Json(text_body(&t)))
}

/// Update an SMS text.
#[utoipa::path(patch, path = "/api/texts/{id}", operation_id = "texts_update", tag = "content", security(("bearer" = [])), params(("id" = i64, Path)), request_body = TextInput, responses(
    (status = 204, description = "Updated"), (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody),
    (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody), (status = 409, body = crate::ErrorBody),
    (status = 415, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn texts_update(
    auth: Authed<TextsWrite>,
    State(st): State<AppState>,
    Id(id): Id,
    JsonBody(input): JsonBody<TextInput>,
) -> ApiResult<Response> {
    let mut first = st
        .store
        .get_text(auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    input.clone().apply(&mut first)?;
    let invalid = AtomicBool::new(false);
    st.store
        .update_text(auth.account_id, id, |t| {
            patch_fresh(t, &invalid, |t| input.clone().apply(t))
        })
        .await?
        .ok_or(ApiError::NotFound)?;
    changed_concurrently(&invalid)?;
    Ok(no_content(format!("/api/texts/{id}")))
}

/// Delete an SMS text (transmissions sent with it keep their body).
#[utoipa::path(delete, path = "/api/texts/{id}", operation_id = "texts_destroy", tag = "content", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 204, description = "Deleted"), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn texts_destroy(auth: Authed<TextsWrite>, State(st): State<AppState>, Id(id): Id) -> ApiResult<Response> {
    if !st.store.delete_text(auth.account_id, id).await? {
        return Err(ApiError::NotFound);
    }
    Ok(no_content("/api/texts".into()))
}

/// List email templates.
#[utoipa::path(get, path = "/api/templates", operation_id = "templates_index", tag = "content", security(("bearer" = [])), params(crate::openapi::ListParams), responses(
    (status = 200, body = Vec<Object>, headers(("Per-Page" = u32), ("Total" = u64), ("Link" = String))),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn templates_index(
    auth: Authed<TemplatesRead>,
    State(st): State<AppState>,
    uri: Uri,
    raw: RawQuery,
) -> ApiResult<Response> {
    let q = raw.list_query(&SPEC)?;
    let page = st.store.list_templates(auth.account_id, &q).await?;
    let ids: Vec<i64> = page.items.iter().map(|t| t.id).collect();
    let attachments = st.store.template_attachments(Some(auth.account_id), &ids).await?;
    Ok(list_response(
        &uri,
        &raw.0,
        &q,
        page.map(|t| template_body(&t, &attachments)),
    ))
}

/// Create an email template.
#[utoipa::path(post, path = "/api/templates", operation_id = "templates_create", tag = "content", security(("bearer" = [])), request_body = TemplateInput, responses(
    (status = 201, body = Object, headers(("Location" = String))),
    (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 415, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn templates_create(
    auth: Authed<TemplatesWrite>,
    State(st): State<AppState>,
    JsonBody(input): JsonBody<TemplateInput>,
) -> ApiResult<Response> {
    let mut t = new_template(auth.account_id);
    input.apply(&mut t)?;
    let t = st.store.create_template(&t).await?;
    Ok(created(format!("/api/templates/{}", t.id), template_body(&t, &[])))
}

/// Retrieve an email template.
#[utoipa::path(get, path = "/api/templates/{id}", operation_id = "templates_show", tag = "content", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 200, body = Object), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn templates_show(
    auth: Authed<TemplatesRead>,
    State(st): State<AppState>,
    Id(id): Id,
) -> ApiResult<axum::Json<Value>> {
    let t = st
        .store
        .get_template(auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let attachments = st.store.template_attachments(Some(auth.account_id), &[id]).await?;
    Ok(axum::Json(template_body(&t, &attachments)))
}

/// Update an email template.
#[utoipa::path(patch, path = "/api/templates/{id}", operation_id = "templates_update", tag = "content", security(("bearer" = [])), params(("id" = i64, Path)), request_body = TemplateInput, responses(
    (status = 204, description = "Updated"), (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody),
    (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody), (status = 409, body = crate::ErrorBody),
    (status = 415, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn templates_update(
    auth: Authed<TemplatesWrite>,
    State(st): State<AppState>,
    Id(id): Id,
    JsonBody(input): JsonBody<TemplateInput>,
) -> ApiResult<Response> {
    let mut first = st
        .store
        .get_template(auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    input.clone().apply(&mut first)?;
    let invalid = AtomicBool::new(false);
    st.store
        .update_template(auth.account_id, id, |t| {
            patch_fresh(t, &invalid, |t| input.clone().apply(t))
        })
        .await?
        .ok_or(ApiError::NotFound)?;
    changed_concurrently(&invalid)?;
    Ok(no_content(format!("/api/templates/{id}")))
}

/// Delete an email template and its attachments (emails already sent keep what they
/// carried; emails not yet sent leave without them).
#[utoipa::path(delete, path = "/api/templates/{id}", operation_id = "templates_destroy", tag = "content", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 204, description = "Deleted"), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn templates_destroy(
    auth: Authed<TemplatesWrite>,
    State(st): State<AppState>,
    Id(id): Id,
) -> ApiResult<Response> {
    let blobs = st
        .store
        .delete_template(auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    for blob in blobs {
        discard_blob(&st, auth.account_id, &blob).await;
    }
    Ok(no_content("/api/templates".into()))
}
