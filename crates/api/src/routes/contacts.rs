//! `/api/contacts` and `/api/contact_data` (SCFM), with ICTCore's contact fields.

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use sauti_core::filter::{ListQuery, ResourceSpec, parse_time};
use sauti_core::msisdn::{Msisdn, Region};
use sauti_core::{ValidationErrors, clock, email};
use sauti_store::{Contact, ContactFields, JsonMap};
use serde::{Deserialize, Serialize};

use super::{MetadataChange, MetadataPatch, created, no_content, set};
use crate::AppState;
use crate::auth::{Authed, ContactsRead, ContactsWrite};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Id, JsonBody, RawQuery};
use crate::pagination::list_response;
use crate::wire::{double_option, ts};

/// What `GET /api/contacts` filters on (the store's, shared with campaign audiences).
pub const SPEC: ResourceSpec = sauti_store::contacts::FILTER;

/// A contact.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ContactBody {
    pub id: i64,
    /// E.164.
    #[schema(example = "+252662345999")]
    pub msisdn: String,
    #[schema(value_type = Object)]
    pub metadata: JsonMap,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub address: Option<String>,
    pub custom1: Option<String>,
    pub custom2: Option<String>,
    pub custom3: Option<String>,
    pub description: Option<String>,
    pub client_id: Option<i64>,
    /// When the contact opted out; an opted-out contact is never messaged.
    #[serde(serialize_with = "ts::option::serialize")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub opted_out_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "ts::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "ts::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
    pub account_id: i64,
}

impl From<Contact> for ContactBody {
    fn from(c: Contact) -> Self {
        ContactBody {
            id: c.id,
            msisdn: c.msisdn,
            metadata: c.metadata.0,
            email: c.email,
            first_name: c.first_name,
            last_name: c.last_name,
            address: c.address,
            custom1: c.custom1,
            custom2: c.custom2,
            custom3: c.custom3,
            description: c.description,
            client_id: c.client_id,
            opted_out_at: c.opted_out_at,
            created_at: c.created_at,
            updated_at: c.updated_at,
            account_id: c.account_id,
        }
    }
}

/// Body of `POST /api/contacts`, `POST /api/contact_data` and `PATCH /api/contacts/{id}`.
/// On create `msisdn` is required; on update absent fields are left as they are and `null`
/// clears one.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct ContactInput {
    /// A phone number: E.164, international digits, or national in the account's
    /// `default_country`.
    #[schema(example = "252662345999")]
    pub msisdn: Option<String>,
    #[serde(flatten)]
    pub metadata: MetadataPatch,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub first_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub last_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub address: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub custom1: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub custom2: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub custom3: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub client_id: Option<Option<i64>>,
    /// `true` opts the contact out (now), `false` opts it back in.
    pub opted_out: Option<bool>,
    /// An explicit opt-out time (ISO 8601), or `null` to opt back in.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub opted_out_at: Option<Option<String>>,
}

/// A validated contact input, applied to a new or existing row.
struct ContactChange {
    msisdn: Option<String>,
    email: Option<Option<String>>,
    first_name: Option<Option<String>>,
    last_name: Option<Option<String>>,
    address: Option<Option<String>>,
    custom1: Option<Option<String>>,
    custom2: Option<Option<String>>,
    custom3: Option<Option<String>>,
    description: Option<Option<String>>,
    client_id: Option<Option<i64>>,
    opted_out_at: Option<Option<DateTime<Utc>>>,
    metadata: MetadataChange,
}

impl ContactChange {
    fn apply(&self, c: &mut Contact) {
        set(&mut c.msisdn, &self.msisdn);
        set(&mut c.email, &self.email);
        set(&mut c.first_name, &self.first_name);
        set(&mut c.last_name, &self.last_name);
        set(&mut c.address, &self.address);
        set(&mut c.custom1, &self.custom1);
        set(&mut c.custom2, &self.custom2);
        set(&mut c.custom3, &self.custom3);
        set(&mut c.description, &self.description);
        set(&mut c.client_id, &self.client_id);
        set(&mut c.opted_out_at, &self.opted_out_at);
        self.metadata.apply(&mut c.metadata.0);
    }

    /// The fields of a new contact (validation made sure a msisdn is present).
    fn new_fields(&self) -> ContactFields {
        let mut f = ContactFields {
            msisdn: self.msisdn.clone().unwrap_or_default(),
            ..Default::default()
        };
        set(&mut f.email, &self.email);
        set(&mut f.first_name, &self.first_name);
        set(&mut f.last_name, &self.last_name);
        set(&mut f.address, &self.address);
        set(&mut f.custom1, &self.custom1);
        set(&mut f.custom2, &self.custom2);
        set(&mut f.custom3, &self.custom3);
        set(&mut f.description, &self.description);
        set(&mut f.client_id, &self.client_id);
        set(&mut f.opted_out_at, &self.opted_out_at);
        self.metadata.apply(&mut f.metadata);
        f
    }
}

/// The account's `default_country` setting, for national numbers.
pub(crate) async fn default_region(st: &AppState, account_id: i64) -> ApiResult<Option<Region>> {
    let account = st.account(account_id).await?;
    Ok(account.default_region())
}

impl ContactInput {
    /// Validate against the account (default country, client ownership).
    async fn validate(self, st: &AppState, account_id: i64, creating: bool) -> ApiResult<ContactChange> {
        let mut errors = ValidationErrors::new();
        let region = default_region(st, account_id).await?;
        let msisdn = match self.msisdn.as_deref() {
            Some(m) => match Msisdn::parse(m, region) {
                Ok(m) => Some(m.into_string()),
                Err(e) => {
                    errors.add("msisdn", e.to_string());
                    None
                }
            },
            None if creating => {
                errors.add("msisdn", "can't be blank");
                None
            }
            None => None,
        };
        let trim = |v: Option<Option<String>>| v.map(|o| o.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()));
        let email = trim(self.email);
        if let Some(Some(e)) = &email
            && !email::is_valid(e)
        {
            errors.add("email", "is invalid");
        }
        for (name, v) in [
            ("first_name", &self.first_name),
            ("last_name", &self.last_name),
            ("address", &self.address),
            ("custom1", &self.custom1),
            ("custom2", &self.custom2),
            ("custom3", &self.custom3),
            ("description", &self.description),
        ] {
            if let Some(Some(s)) = v
                && s.chars().count() > 1024
            {
                errors.add(name, "is too long (at most 1024 characters)");
            }
        }
        if let Some(Some(client_id)) = self.client_id
            && st.store.get_client(account_id, client_id).await?.is_none()
        {
            errors.add("client_id", "does not exist");
        }
        let opted_out_at = match (self.opted_out_at, self.opted_out) {
            (Some(Some(t)), _) => match parse_time(&t) {
                Some(t) => Some(Some(t)),
                None => {
                    errors.add("opted_out_at", "must be an ISO 8601 time");
                    None
                }
            },
            (Some(None), _) | (None, Some(false)) => Some(None),
            (None, Some(true)) => Some(Some(clock::now())),
            (None, None) => None,
        };
        let metadata = self.metadata.validate(&mut errors);
        errors.into_result()?;
        Ok(ContactChange {
            msisdn,
            email: email.map(|o| o.map(|e| e.to_lowercase())),
            first_name: trim(self.first_name),
            last_name: trim(self.last_name),
            address: trim(self.address),
            custom1: trim(self.custom1),
            custom2: trim(self.custom2),
            custom3: trim(self.custom3),
            description: trim(self.description),
            client_id: self.client_id,
            opted_out_at,
            metadata,
        })
    }
}

fn location(id: i64) -> String {
    format!("/api/contacts/{id}")
}

/// Parse a contacts list query, normalising `q[msisdn]` to E.164 first.
pub(crate) async fn contacts_query(st: &AppState, account_id: i64, raw: &RawQuery) -> ApiResult<ListQuery> {
    let mut pairs = raw.0.clone();
    if pairs.iter().any(|(k, _)| k == "q[msisdn]") {
        let region = default_region(st, account_id).await?;
        for (_, v) in pairs.iter_mut().filter(|(k, _)| k == "q[msisdn]") {
            *v = Msisdn::parse(v, region)
                .map_err(|e| ApiError::validation("q", format!("msisdn {e}")))?
                .into_string();
        }
    }
    RawQuery(pairs).list_query(&SPEC)
}

pub(crate) fn contacts_page(uri: &Uri, raw: &RawQuery, q: &ListQuery, page: sauti_store::Page<Contact>) -> Response {
    list_response(uri, &raw.0, q, page.map(ContactBody::from))
}

/// List contacts.
#[utoipa::path(get, path = "/api/contacts", operation_id = "contacts_index", tag = "contacts", security(("bearer" = [])), params(crate::openapi::ListParams), responses(
    (status = 200, body = Vec<ContactBody>, headers(("Per-Page" = u32), ("Total" = u64), ("Link" = String))),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn index(
    auth: Authed<ContactsRead>,
    State(st): State<AppState>,
    uri: Uri,
    raw: RawQuery,
) -> ApiResult<Response> {
    let q = contacts_query(&st, auth.account_id, &raw).await?;
    let page = st.store.list_contacts(auth.account_id, &q).await?;
    Ok(contacts_page(&uri, &raw, &q, page))
}

/// Create a contact.
#[utoipa::path(post, path = "/api/contacts", operation_id = "contacts_create", tag = "contacts", security(("bearer" = [])), request_body = ContactInput, responses(
    (status = 201, body = ContactBody, headers(("Location" = String))),
    (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 409, body = crate::ErrorBody), (status = 415, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn create(
    auth: Authed<ContactsWrite>,
    State(st): State<AppState>,
    JsonBody(body): JsonBody<ContactInput>,
) -> ApiResult<Response> {
    let change = body.validate(&st, auth.account_id, true).await?;
    let c = st.store.create_contact(auth.account_id, &change.new_fields()).await?;
    Ok(created(location(c.id), ContactBody::from(c)))
}

/// Create or update the contact with this msisdn: 201 when created, 200 when updated.
#[utoipa::path(post, path = "/api/contact_data", operation_id = "contacts_upsert", tag = "contacts", security(("bearer" = [])), request_body = ContactInput, responses(
    (status = 200, body = ContactBody, headers(("Location" = String))),
    (status = 201, body = ContactBody, headers(("Location" = String))),
    (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 409, body = crate::ErrorBody), (status = 415, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn upsert(
    auth: Authed<ContactsWrite>,
    State(st): State<AppState>,
    JsonBody(body): JsonBody<ContactInput>,
) -> ApiResult<Response> {
    let change = body.validate(&st, auth.account_id, true).await?;
    let (c, was_created) = st
        .store
        .upsert_contact(auth.account_id, &change.new_fields(), |c| change.apply(c))
        .await?;
    let loc = location(c.id);
    if was_created {
        return Ok(created(loc, ContactBody::from(c)));
    }
    let mut resp = (StatusCode::OK, axum::Json(ContactBody::from(c))).into_response();
    if let Ok(v) = loc.parse() {
        resp.headers_mut().insert(axum::http::header::LOCATION, v);
    }
    Ok(resp)
}

/// Retrieve a contact.
#[utoipa::path(get, path = "/api/contacts/{id}", operation_id = "contacts_show", tag = "contacts", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 200, body = ContactBody),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn show(
    auth: Authed<ContactsRead>,
    State(st): State<AppState>,
    Id(id): Id,
) -> ApiResult<axum::Json<ContactBody>> {
    let c = st
        .store
        .get_contact(auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(axum::Json(c.into()))
}

/// Update a contact.
#[utoipa::path(patch, path = "/api/contacts/{id}", operation_id = "contacts_update", tag = "contacts", security(("bearer" = [])), params(("id" = i64, Path)), request_body = ContactInput, responses(
    (status = 204, description = "Updated"),
    (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 404, body = crate::ErrorBody), (status = 415, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn update(
    auth: Authed<ContactsWrite>,
    State(st): State<AppState>,
    Id(id): Id,
    JsonBody(body): JsonBody<ContactInput>,
) -> ApiResult<Response> {
    let change = body.validate(&st, auth.account_id, false).await?;
    st.store
        .update_contact(auth.account_id, id, |c| change.apply(c))
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(no_content(location(id)))
}

/// Delete a contact.
#[utoipa::path(delete, path = "/api/contacts/{id}", operation_id = "contacts_destroy", tag = "contacts", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 204, description = "Deleted"),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn destroy(auth: Authed<ContactsWrite>, State(st): State<AppState>, Id(id): Id) -> ApiResult<Response> {
    if !st.store.delete_contact(auth.account_id, id).await? {
        return Err(ApiError::NotFound);
    }
    Ok(no_content("/api/contacts".into()))
}
