//! `/api/users`: the people of an account.

use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use sauti_core::filter::{FieldKind, FieldSpec, ResourceSpec};
use sauti_core::{Permission, ValidationErrors, clock, email, secret};
use sauti_store::{JsonMap, NewUser, User};
use serde::{Deserialize, Serialize};

use super::{MetadataPatch, created, granted_permissions, no_content};
use crate::AppState;
use crate::auth::{Authed, UsersRead, UsersWrite};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Id, JsonBody, RawQuery};
use crate::pagination::list_response;
use crate::wire::ts;

pub const SPEC: ResourceSpec = ResourceSpec {
    sortable: &["id", "created_at", "updated_at", "email"],
    fields: &[FieldSpec {
        name: "email",
        column: "email",
        kind: FieldKind::Text,
    }],
    has_metadata: true,
};

const PASSWORD_LENGTH: std::ops::RangeInclusive<usize> = 8..=128;

/// A user of the account. The password is never returned.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserBody {
    pub id: i64,
    pub account_id: i64,
    #[schema(value_type = Object)]
    pub metadata: JsonMap,
    pub email: String,
    #[serde(serialize_with = "ts::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: chrono::DateTime<chrono::Utc>,
    #[serde(serialize_with = "ts::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: chrono::DateTime<chrono::Utc>,
    pub locale: String,
    /// What the user's login sessions may do.
    pub permissions: Vec<String>,
    /// When the last invitation was made, if any.
    #[serde(serialize_with = "ts::option::serialize")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub invited_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<User> for UserBody {
    fn from(u: User) -> Self {
        UserBody {
            id: u.id,
            account_id: u.account_id,
            metadata: u.metadata.0,
            email: u.email,
            created_at: u.created_at,
            updated_at: u.updated_at,
            locale: u.locale,
            permissions: u.permissions.0,
            invited_at: u.invited_at,
        }
    }
}

/// Body of `POST /api/users`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct UserCreate {
    #[schema(example = "user22@example.com")]
    pub email: String,
    /// The initial password (8 to 128 characters).
    #[schema(example = "secret123")]
    pub password: String,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<JsonMap>,
    /// Defaults to `en`.
    pub locale: Option<String>,
    /// Defaults to every permission the creating token holds.
    pub permissions: Option<Vec<String>>,
}

/// Body of `PATCH /api/users/{id}`. Changing the password or permissions ends the user's
/// login sessions.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct UserUpdate {
    pub email: Option<String>,
    pub password: Option<String>,
    #[serde(flatten)]
    pub metadata: MetadataPatch,
    pub locale: Option<String>,
    pub permissions: Option<Vec<String>>,
}

/// Body of `POST /api/users/{id}/user_events`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct UserEvent {
    /// Only `invite` is supported.
    #[schema(example = "invite")]
    pub event: String,
}

pub(crate) fn normalize_email(e: &str) -> String {
    e.trim().to_lowercase()
}

pub(crate) fn check_email(e: &str, errors: &mut ValidationErrors) {
    if !email::is_valid(e) {
        errors.add("email", "is invalid");
    }
}

pub(crate) fn check_password(p: &str, errors: &mut ValidationErrors) {
    if !PASSWORD_LENGTH.contains(&p.chars().count()) {
        errors.add("password", "must be 8 to 128 characters long");
    }
}

fn check_locale(l: &str, errors: &mut ValidationErrors) {
    // BCP 47-ish: `en`, `km`, `sw-KE`.
    let ok = l.len() <= 16
        && l.split('-').enumerate().all(|(i, part)| {
            (if i == 0 { 2..=3 } else { 2..=8 }).contains(&part.len())
                && part.chars().all(|c| c.is_ascii_alphanumeric())
        });
    if !ok {
        errors.add("locale", "is not a language tag such as en or sw-KE");
    }
}

fn location(id: i64) -> String {
    format!("/api/users/{id}")
}

/// List the account's users.
#[utoipa::path(get, operation_id = "users_index", path = "/api/users", tag = "users", security(("bearer" = [])), params(crate::openapi::ListParams), responses(
    (status = 200, body = Vec<UserBody>, headers(("Per-Page" = u32), ("Total" = u64), ("Link" = String))),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn index(
    auth: Authed<UsersRead>,
    State(st): State<AppState>,
    uri: Uri,
    raw: RawQuery,
) -> ApiResult<Response> {
    let q = raw.list_query(&SPEC)?;
    let page = st.store.list_users(auth.account_id, &q).await?;
    Ok(list_response(&uri, &raw.0, &q, page.map(UserBody::from)))
}

/// Create a user.
#[utoipa::path(post, operation_id = "users_create", path = "/api/users", tag = "users", security(("bearer" = [])), request_body = UserCreate, responses(
    (status = 201, body = UserBody, headers(("Location" = String))),
    (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 409, body = crate::ErrorBody), (status = 415, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn create(
    auth: Authed<UsersWrite>,
    State(st): State<AppState>,
    JsonBody(body): JsonBody<UserCreate>,
) -> ApiResult<Response> {
    let mut errors = ValidationErrors::new();
    let email = normalize_email(&body.email);
    check_email(&email, &mut errors);
    check_password(&body.password, &mut errors);
    let locale = body.locale.unwrap_or_else(|| "en".into());
    check_locale(&locale, &mut errors);
    let permissions = match &body.permissions {
        Some(p) => granted_permissions(p, &auth.caller, &mut errors),
        None => auth.permissions.iter().map(|p| p.as_str().to_string()).collect(),
    };
    errors.into_result()?;
    let password = body.password;
    let password_hash = tokio::task::spawn_blocking(move || secret::hash_password(&password))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let new = NewUser {
        email,
        password_hash,
        locale,
        permissions,
        metadata: body.metadata.unwrap_or_default(),
    };
    let user = st.store.create_user(auth.account_id, &new).await?;
    Ok(created(location(user.id), UserBody::from(user)))
}

/// Retrieve a user.
#[utoipa::path(get, operation_id = "users_show", path = "/api/users/{id}", tag = "users", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 200, body = UserBody),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn show(auth: Authed<UsersRead>, State(st): State<AppState>, Id(id): Id) -> ApiResult<axum::Json<UserBody>> {
    let u = st
        .store
        .get_user(auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(axum::Json(u.into()))
}

/// Update a user.
#[utoipa::path(patch, operation_id = "users_update", path = "/api/users/{id}", tag = "users", security(("bearer" = [])), params(("id" = i64, Path)), request_body = UserUpdate, responses(
    (status = 204, description = "Updated"),
    (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 404, body = crate::ErrorBody), (status = 415, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn update(
    auth: Authed<UsersWrite>,
    State(st): State<AppState>,
    Id(id): Id,
    JsonBody(body): JsonBody<UserUpdate>,
) -> ApiResult<Response> {
    let mut errors = ValidationErrors::new();
    let email = body.email.as_deref().map(normalize_email);
    if let Some(e) = &email {
        check_email(e, &mut errors);
    }
    if let Some(p) = &body.password {
        check_password(p, &mut errors);
    }
    if let Some(l) = &body.locale {
        check_locale(l, &mut errors);
    }
    let permissions = body
        .permissions
        .as_ref()
        .map(|p| granted_permissions(p, &auth.caller, &mut errors));
    let metadata = body.metadata.validate(&mut errors);
    errors.into_result()?;
    if body.password.is_some() {
        // Setting a password lets the caller log in as the user, so it must not reach a
        // user holding more than the caller: that would grant what the token lacks.
        let target = st
            .store
            .get_user(auth.account_id, id)
            .await?
            .ok_or(ApiError::NotFound)?;
        let beyond: Vec<&str> = target
            .permissions
            .0
            .iter()
            .filter_map(|p| Permission::parse(p))
            .filter(|p| !auth.has(*p))
            .map(Permission::as_str)
            .collect();
        if !beyond.is_empty() {
            return Err(ApiError::Forbidden(format!(
                "cannot set the password of a user who holds permissions this access token lacks: {}",
                beyond.join(", ")
            )));
        }
    }
    // Hash outside the write so a retried conditional update does not hash twice.
    let password_hash = match body.password {
        Some(p) => Some(
            tokio::task::spawn_blocking(move || secret::hash_password(&p))
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?,
        ),
        None => None,
    };
    let ends_sessions = password_hash.is_some() || permissions.is_some();
    st.store
        .update_user(auth.account_id, id, |u| {
            if let Some(e) = &email {
                u.email = e.clone();
            }
            if let Some(h) = &password_hash {
                u.password_hash = h.clone();
            }
            if let Some(l) = &body.locale {
                u.locale = l.clone();
            }
            if let Some(p) = &permissions {
                u.permissions.0 = p.clone();
            }
            metadata.apply(&mut u.metadata.0);
        })
        .await?
        .ok_or(ApiError::NotFound)?;
    if ends_sessions {
        st.store.delete_user_sessions(auth.account_id, id).await?;
    }
    Ok(no_content(location(id)))
}

/// Delete a user and end their sessions.
#[utoipa::path(delete, operation_id = "users_destroy", path = "/api/users/{id}", tag = "users", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 204, description = "Deleted"),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn destroy(auth: Authed<UsersWrite>, State(st): State<AppState>, Id(id): Id) -> ApiResult<Response> {
    // A customer's sign-up (and its ID images, personal data) goes with the user.
    let signup = st.store.signup_of_user(auth.account_id, id).await?;
    if !st.store.delete_user(auth.account_id, id).await? {
        return Err(ApiError::NotFound);
    }
    let documents: Vec<String> = signup
        .map(|s| [s.photo, s.id_front, s.id_back].into_iter().flatten().collect())
        .unwrap_or_default();
    for name in &documents {
        super::clients::discard_blob(&st, auth.account_id, name).await;
    }
    Ok(no_content("/api/users".into()))
}

/// Create a user event: `invite` records an invitation to the user.
#[utoipa::path(post, operation_id = "users_create_event", path = "/api/users/{id}/user_events", tag = "users", security(("bearer" = [])), params(("id" = i64, Path)), request_body = UserEvent, responses(
    (status = 201, body = UserBody, headers(("Location" = String))),
    (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 404, body = crate::ErrorBody), (status = 415, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn create_event(
    auth: Authed<UsersWrite>,
    State(st): State<AppState>,
    Id(id): Id,
    JsonBody(body): JsonBody<UserEvent>,
) -> ApiResult<Response> {
    if body.event != "invite" {
        // Existence first, so another tenant's id is 404 whatever the event.
        st.store
            .get_user(auth.account_id, id)
            .await?
            .ok_or(ApiError::NotFound)?;
        return Err(ApiError::validation(
            "event",
            "is not included in the list (only invite is supported)",
        ));
    }
    let now = clock::now();
    let user = st
        .store
        .update_user(auth.account_id, id, |u| u.invited_at = Some(now))
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(created(location(id), UserBody::from(user)))
}
