//! `/api/groups` (ICTCore contact groups): CRUD, members, and bulk adds.

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use chrono::{DateTime, Utc};
use sauti_core::ValidationErrors;
use sauti_core::filter::{FieldKind, FieldSpec, ResourceSpec};
use sauti_store::{ContactScope, Group, JsonMap, NewGroup};
use serde::{Deserialize, Serialize};

use super::contacts::{contacts_page, contacts_query};
use super::{MetadataPatch, created, no_content};
use crate::AppState;
use crate::auth::{Authed, ContactsRead, GroupsRead, GroupsWrite};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Id, IdPair, JsonBody, RawQuery, filter_params_to_pairs};
use crate::pagination::list_response;
use crate::wire::{double_option, ts};

pub const SPEC: ResourceSpec = ResourceSpec {
    sortable: &["id", "created_at", "updated_at", "name", "contacts_count"],
    fields: &[FieldSpec {
        name: "name",
        column: "name",
        kind: FieldKind::Text,
    }],
    has_metadata: true,
};

/// A group of contacts.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GroupBody {
    pub id: i64,
    pub name: String,
    pub description: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: JsonMap,
    /// How many contacts are in the group.
    pub contacts_count: i64,
    #[serde(serialize_with = "ts::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "ts::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
    pub account_id: i64,
}

impl From<Group> for GroupBody {
    fn from(g: Group) -> Self {
        GroupBody {
            id: g.id,
            name: g.name,
            description: g.description,
            metadata: g.metadata.0,
            contacts_count: g.contacts_count,
            created_at: g.created_at,
            updated_at: g.updated_at,
            account_id: g.account_id,
        }
    }
}

/// Body of `POST /api/groups`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct GroupCreate {
    /// Unique within the account.
    pub name: String,
    pub description: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<JsonMap>,
}

/// Body of `PATCH /api/groups/{id}`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct GroupUpdate {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    #[serde(flatten)]
    pub metadata: MetadataPatch,
}

/// Body of `POST /api/groups/{id}/contacts`: add contacts by id, or every contact matching
/// a filter (the `q` of `GET /api/contacts` as JSON, as SCFM's `contact_filter_params`).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct GroupMembersAdd {
    pub contact_ids: Option<Vec<i64>>,
    /// For example `{"metadata": {"gender": "f"}, "opted_out": false}`.
    #[schema(value_type = Option<Object>)]
    pub contact_filter_params: Option<JsonMap>,
}

/// The outcome of a bulk add.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GroupMembersAdded {
    /// Memberships created by this request (contacts already in the group are not counted).
    pub added: u64,
    /// Members after the request.
    pub contacts_count: i64,
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

fn location(id: i64) -> String {
    format!("/api/groups/{id}")
}

/// List groups.
#[utoipa::path(get, path = "/api/groups", operation_id = "groups_index", tag = "groups", security(("bearer" = [])), params(crate::openapi::ListParams), responses(
    (status = 200, body = Vec<GroupBody>, headers(("Per-Page" = u32), ("Total" = u64), ("Link" = String))),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn index(
    auth: Authed<GroupsRead>,
    State(st): State<AppState>,
    uri: Uri,
    raw: RawQuery,
) -> ApiResult<Response> {
    let q = raw.list_query(&SPEC)?;
    let page = st.store.list_groups(auth.account_id, &q).await?;
    Ok(list_response(&uri, &raw.0, &q, page.map(GroupBody::from)))
}

/// Create a group.
#[utoipa::path(post, path = "/api/groups", operation_id = "groups_create", tag = "groups", security(("bearer" = [])), request_body = GroupCreate, responses(
    (status = 201, body = GroupBody, headers(("Location" = String))),
    (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 409, body = crate::ErrorBody), (status = 415, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn create(
    auth: Authed<GroupsWrite>,
    State(st): State<AppState>,
    JsonBody(body): JsonBody<GroupCreate>,
) -> ApiResult<Response> {
    let mut errors = ValidationErrors::new();
    let name = check_name(&body.name, &mut errors);
    errors.into_result()?;
    let new = NewGroup {
        name,
        description: body.description,
        metadata: body.metadata.unwrap_or_default(),
    };
    let g = st.store.create_group(auth.account_id, &new).await?;
    Ok(created(location(g.id), GroupBody::from(g)))
}

/// Retrieve a group.
#[utoipa::path(get, path = "/api/groups/{id}", operation_id = "groups_show", tag = "groups", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 200, body = GroupBody),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn show(
    auth: Authed<GroupsRead>,
    State(st): State<AppState>,
    Id(id): Id,
) -> ApiResult<axum::Json<GroupBody>> {
    let g = st
        .store
        .get_group(auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(axum::Json(g.into()))
}

/// Update a group.
#[utoipa::path(patch, path = "/api/groups/{id}", operation_id = "groups_update", tag = "groups", security(("bearer" = [])), params(("id" = i64, Path)), request_body = GroupUpdate, responses(
    (status = 204, description = "Updated"),
    (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 404, body = crate::ErrorBody), (status = 415, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn update(
    auth: Authed<GroupsWrite>,
    State(st): State<AppState>,
    Id(id): Id,
    JsonBody(body): JsonBody<GroupUpdate>,
) -> ApiResult<Response> {
    let mut errors = ValidationErrors::new();
    let name = body.name.as_deref().map(|n| check_name(n, &mut errors));
    let metadata = body.metadata.validate(&mut errors);
    errors.into_result()?;
    st.store
        .update_group(auth.account_id, id, |g| {
            if let Some(n) = &name {
                g.name = n.clone();
            }
            if let Some(d) = &body.description {
                g.description = d.clone();
            }
            metadata.apply(&mut g.metadata.0);
        })
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(no_content(location(id)))
}

/// Delete a group; its contacts stay.
#[utoipa::path(delete, path = "/api/groups/{id}", operation_id = "groups_destroy", tag = "groups", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 204, description = "Deleted"),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn destroy(auth: Authed<GroupsWrite>, State(st): State<AppState>, Id(id): Id) -> ApiResult<Response> {
    if !st.store.delete_group(auth.account_id, id).await? {
        return Err(ApiError::NotFound);
    }
    Ok(no_content("/api/groups".into()))
}

/// List the contacts of a group (the same filters as `GET /api/contacts`). Needs
/// `groups_read` and `contacts_read`.
#[utoipa::path(get, path = "/api/groups/{id}/contacts", operation_id = "groups_contacts", tag = "groups", security(("bearer" = [])), params(("id" = i64, Path), crate::openapi::ListParams), responses(
    (status = 200, body = Vec<super::contacts::ContactBody>, headers(("Per-Page" = u32), ("Total" = u64), ("Link" = String))),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 404, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn contacts(
    auth: Authed<GroupsRead>,
    _contacts: Authed<ContactsRead>,
    State(st): State<AppState>,
    Id(id): Id,
    uri: Uri,
    raw: RawQuery,
) -> ApiResult<Response> {
    st.store
        .get_group(auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let q = contacts_query(&st, auth.account_id, &raw).await?;
    let page = st
        .store
        .list_contacts_in(auth.account_id, ContactScope::Group(id), &q)
        .await?;
    Ok(contacts_page(&uri, &raw, &q, page))
}

/// Add contacts to a group by id or by filter.
#[utoipa::path(post, path = "/api/groups/{id}/contacts", operation_id = "groups_add_contacts", tag = "groups", security(("bearer" = [])), params(("id" = i64, Path)), request_body = GroupMembersAdd, responses(
    (status = 200, body = GroupMembersAdded),
    (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 404, body = crate::ErrorBody), (status = 409, body = crate::ErrorBody), (status = 415, body = crate::ErrorBody),
    (status = 422, body = crate::ErrorBody),
))]
pub async fn add_contacts(
    auth: Authed<GroupsWrite>,
    State(st): State<AppState>,
    Id(id): Id,
    JsonBody(body): JsonBody<GroupMembersAdd>,
) -> ApiResult<axum::Json<GroupMembersAdded>> {
    let added = match (body.contact_ids, body.contact_filter_params) {
        (Some(ids), None) => {
            if ids.len() > 10_000 {
                return Err(ApiError::validation(
                    "contact_ids",
                    "at most 10000 ids per request; use contact_filter_params",
                ));
            }
            st.store.add_group_contacts(auth.account_id, id, &ids).await?
        }
        (None, Some(params)) => {
            // The same parsing as `GET /api/contacts`, `msisdn` normalisation included.
            let pairs = RawQuery(filter_params_to_pairs(&params));
            let q = contacts_query(&st, auth.account_id, &pairs)
                .await
                .map_err(|e| match e {
                    ApiError::Validation(e) => ApiError::Validation(ValidationErrors(
                        e.0.into_iter()
                            .map(|(k, v)| (if k == "q" { "contact_filter_params".into() } else { k }, v))
                            .collect(),
                    )),
                    other => other,
                })?;
            st.store.add_group_contacts_matching(auth.account_id, id, &q).await?
        }
        _ => {
            return Err(ApiError::validation(
                "base",
                "give exactly one of contact_ids or contact_filter_params",
            ));
        }
    };
    let added = added.ok_or(ApiError::NotFound)?;
    let g = st
        .store
        .get_group(auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(axum::Json(GroupMembersAdded {
        added,
        contacts_count: g.contacts_count,
    }))
}

/// Put one contact in a group (ICTCore's contact–group link). Idempotent.
#[utoipa::path(put, path = "/api/groups/{id}/contacts/{contact_id}", operation_id = "groups_link_contact", tag = "groups", security(("bearer" = [])), params(("id" = i64, Path), ("contact_id" = i64, Path)), responses(
    (status = 204, description = "The contact is in the group"),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn link_contact(
    auth: Authed<GroupsWrite>,
    State(st): State<AppState>,
    IdPair(id, contact_id): IdPair,
) -> ApiResult<StatusCode> {
    if !st.store.add_group_contact(auth.account_id, id, contact_id).await? {
        return Err(ApiError::NotFound);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Take one contact out of a group; the contact stays.
#[utoipa::path(delete, path = "/api/groups/{id}/contacts/{contact_id}", operation_id = "groups_unlink_contact", tag = "groups", security(("bearer" = [])), params(("id" = i64, Path), ("contact_id" = i64, Path)), responses(
    (status = 204, description = "The contact is no longer in the group"),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 404, description = "No such group, or the contact is not in it", body = crate::ErrorBody),
))]
pub async fn unlink_contact(
    auth: Authed<GroupsWrite>,
    State(st): State<AppState>,
    IdPair(id, contact_id): IdPair,
) -> ApiResult<StatusCode> {
    if !st.store.remove_group_contact(auth.account_id, id, contact_id).await? {
        return Err(ApiError::NotFound);
    }
    Ok(StatusCode::NO_CONTENT)
}
