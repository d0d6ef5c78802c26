//! `/api/clients`: organisations the account works with (Happyoffer's clients), and
//! their contacts.

use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use chrono::{DateTime, Utc};
use sauti_core::filter::{FieldKind, FieldSpec, ResourceSpec};
use sauti_core::{ValidationErrors, clock, email};
use sauti_store::{Client, ContactScope, JsonMap};
use serde::{Deserialize, Serialize};

use super::contacts::{contacts_page, contacts_query};
use super::{MetadataPatch, created, no_content};
use crate::AppState;
use crate::auth::{Authed, ClientsRead, ClientsWrite, ContactsRead};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Id, JsonBody, RawQuery};
use crate::pagination::list_response;
use crate::wire::{double_option, ts};

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
    /// URL of the client's logo.
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
    /// An http(s) URL of the logo image.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub logo: Option<Option<String>>,
    #[serde(flatten)]
    pub metadata: MetadataPatch,
}

fn is_http_url(u: &str) -> bool {
    url::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

/// Overwrite `field` when the input carried a value for it.
fn set<T: Clone>(field: &mut T, value: &Option<T>) {
    if let Some(v) = value {
        *field = v.clone();
    }
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
    let items = page.items.into_iter().map(ClientBody::from).collect();
    Ok(list_response(
        &uri,
        &raw.0,
        &q,
        sauti_store::Page {
            items,
            total: page.total,
        },
    ))
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
    JsonBody(body): JsonBody<ClientInput>,
) -> ApiResult<Response> {
    let change = body.validate(&st, auth.account_id, false).await?;
    st.store
        .update_client(auth.account_id, id, |c| change.apply(c))
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(no_content(location(id)))
}

/// Delete a client; its contacts stay, without a client.
#[utoipa::path(delete, path = "/api/clients/{id}", operation_id = "clients_destroy", tag = "clients", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 204, description = "Deleted"),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn destroy(auth: Authed<ClientsWrite>, State(st): State<AppState>, Id(id): Id) -> ApiResult<Response> {
    if !st.store.delete_client(auth.account_id, id).await? {
        return Err(ApiError::NotFound);
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
