//! `/api/access_tokens`: API keys of an account. The secret is shown once, at creation.

use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use chrono::{DateTime, Utc};
use sauti_core::filter::{FieldKind, FieldSpec, ResourceSpec, parse_time};
use sauti_core::{ValidationErrors, clock, secret};
use sauti_store::{AccessToken, JsonMap, NewAccessToken, TokenKind};
use serde::{Deserialize, Serialize};

use super::{MetadataPatch, created, granted_permissions, no_content};
use crate::AppState;
use crate::auth::{AccessTokensRead, AccessTokensWrite, Authed};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Id, JsonBody, RawQuery};
use crate::pagination::list_response;
use crate::wire::{double_option, ts};

pub const SPEC: ResourceSpec = ResourceSpec {
    sortable: &["id", "created_at", "updated_at", "expires_at"],
    fields: &[
        FieldSpec {
            name: "kind",
            column: "kind",
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

/// An access token. `token` (the secret) appears only in the response that created it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AccessTokenBody {
    pub id: i64,
    /// The secret to send as `Authorization: Bearer <token>`; shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(serialize_with = "ts::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "ts::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
    #[schema(value_type = Object)]
    pub metadata: JsonMap,
    pub permissions: Vec<String>,
    /// `api` (made here) or `session` (made by logging in).
    pub kind: String,
    /// The user a session belongs to.
    pub user_id: Option<i64>,
    #[serde(serialize_with = "ts::option::serialize")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<DateTime<Utc>>,
}

impl AccessTokenBody {
    fn new(t: AccessToken, secret: Option<String>) -> Self {
        AccessTokenBody {
            id: t.id,
            token: secret,
            created_at: t.created_at,
            updated_at: t.updated_at,
            metadata: t.metadata.0,
            permissions: t.permissions.0,
            kind: t.kind,
            user_id: t.user_id,
            expires_at: t.expires_at,
        }
    }
}

/// Body of `POST /api/access_tokens`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct AccessTokenCreate {
    /// Permissions for the token; at most those of the token making it.
    #[schema(example = json!(["contacts_write"]))]
    #[serde(default)]
    pub permissions: Vec<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<JsonMap>,
    /// Optional expiry (ISO 8601, in the future).
    pub expires_at: Option<String>,
    /// Super admins only: make the token for another account.
    pub account_id: Option<i64>,
}

/// Body of `PATCH /api/access_tokens/{id}`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct AccessTokenUpdate {
    #[serde(flatten)]
    pub metadata: MetadataPatch,
    pub permissions: Option<Vec<String>>,
    /// ISO 8601 time in the future, or `null` for no expiry.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub expires_at: Option<Option<String>>,
}

fn parse_expiry(v: &str, errors: &mut ValidationErrors) -> Option<DateTime<Utc>> {
    match parse_time(v) {
        Some(t) if t > clock::now() => Some(t),
        Some(_) => {
            errors.add("expires_at", "must be in the future");
            None
        }
        None => {
            errors.add("expires_at", "must be an ISO 8601 time");
            None
        }
    }
}

fn location(id: i64) -> String {
    format!("/api/access_tokens/{id}")
}

/// List the account's access tokens.
#[utoipa::path(get, operation_id = "access_tokens_index", path = "/api/access_tokens", tag = "access_tokens", security(("bearer" = [])), params(crate::openapi::ListParams), responses(
    (status = 200, body = Vec<AccessTokenBody>, headers(("Per-Page" = u32), ("Total" = u64), ("Link" = String))),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn index(
    auth: Authed<AccessTokensRead>,
    State(st): State<AppState>,
    uri: Uri,
    raw: RawQuery,
) -> ApiResult<Response> {
    let q = raw.list_query(&SPEC)?;
    let page = st.store.list_access_tokens(auth.account_id, &q).await?;
    Ok(list_response(
        &uri,
        &raw.0,
        &q,
        page.map(|t| AccessTokenBody::new(t, None)),
    ))
}

/// Create an access token.
#[utoipa::path(post, operation_id = "access_tokens_create", path = "/api/access_tokens", tag = "access_tokens", security(("bearer" = [])), request_body = AccessTokenCreate, responses(
    (status = 201, body = AccessTokenBody, headers(("Location" = String))),
    (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 409, body = crate::ErrorBody), (status = 415, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn create(
    auth: Authed<AccessTokensWrite>,
    State(st): State<AppState>,
    JsonBody(body): JsonBody<AccessTokenCreate>,
) -> ApiResult<Response> {
    let mut errors = ValidationErrors::new();
    let permissions = granted_permissions(&body.permissions, &auth.caller, &mut errors);
    let expires_at = body.expires_at.as_deref().and_then(|v| parse_expiry(v, &mut errors));
    let account_id = match body.account_id {
        None => auth.account_id,
        Some(id) if id == auth.account_id => id,
        Some(_) if !auth.super_admin => {
            errors.add("account_id", "only super admins can make tokens for another account");
            auth.account_id
        }
        Some(id) => {
            if st.store.get_account(id).await?.is_none() {
                errors.add("account_id", "does not exist");
            }
            id
        }
    };
    errors.into_result()?;
    let token = secret::generate_token();
    let new = NewAccessToken {
        digest: secret::token_digest(&token),
        user_id: None,
        kind: TokenKind::Api,
        permissions,
        metadata: body.metadata.unwrap_or_default(),
        expires_at,
    };
    let row = st.store.create_access_token(account_id, &new).await?;
    Ok(created(location(row.id), AccessTokenBody::new(row, Some(token))))
}

/// Retrieve an access token (without its secret).
#[utoipa::path(get, operation_id = "access_tokens_show", path = "/api/access_tokens/{id}", tag = "access_tokens", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 200, body = AccessTokenBody),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn show(
    auth: Authed<AccessTokensRead>,
    State(st): State<AppState>,
    Id(id): Id,
) -> ApiResult<axum::Json<AccessTokenBody>> {
    let t = st
        .store
        .get_access_token(auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(axum::Json(AccessTokenBody::new(t, None)))
}

/// Update an access token's metadata, permissions or expiry.
#[utoipa::path(patch, operation_id = "access_tokens_update", path = "/api/access_tokens/{id}", tag = "access_tokens", security(("bearer" = [])), params(("id" = i64, Path)), request_body = AccessTokenUpdate, responses(
    (status = 204, description = "Updated"),
    (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 404, body = crate::ErrorBody), (status = 415, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn update(
    auth: Authed<AccessTokensWrite>,
    State(st): State<AppState>,
    Id(id): Id,
    JsonBody(body): JsonBody<AccessTokenUpdate>,
) -> ApiResult<Response> {
    let mut errors = ValidationErrors::new();
    let permissions = body
        .permissions
        .as_ref()
        .map(|p| granted_permissions(p, &auth.caller, &mut errors));
    let expires_at = body
        .expires_at
        .as_ref()
        .map(|e| e.as_deref().and_then(|v| parse_expiry(v, &mut errors)));
    let metadata = body.metadata.validate(&mut errors);
    errors.into_result()?;
    st.store
        .update_access_token(auth.account_id, id, |t| {
            if let Some(p) = &permissions {
                t.permissions.0 = p.clone();
            }
            if let Some(e) = expires_at {
                t.expires_at = e;
            }
            metadata.apply(&mut t.metadata.0);
        })
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(no_content(location(id)))
}

/// Delete (revoke) an access token.
#[utoipa::path(delete, operation_id = "access_tokens_destroy", path = "/api/access_tokens/{id}", tag = "access_tokens", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 204, description = "Deleted"),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn destroy(auth: Authed<AccessTokensWrite>, State(st): State<AppState>, Id(id): Id) -> ApiResult<Response> {
    if !st.store.delete_access_token(auth.account_id, id).await? {
        return Err(ApiError::NotFound);
    }
    Ok(no_content("/api/access_tokens".into()))
}
