//! Login sessions for people and apps: `POST /api/authenticate`, `POST /api/logout`,
//! `GET /api/user`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::Response;
use chrono::{DateTime, Utc};
use sauti_core::{ValidationErrors, clock, secret};
use sauti_store::{NewAccessToken, TokenKind};
use serde::{Deserialize, Serialize};

use super::users::{UserBody, normalize_email};
use crate::AppState;
use crate::auth::{AnyToken, Authed};
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::wire::ts;

/// Credentials: `email` (or its alias `username`) and `password`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Credentials {
    pub email: Option<String>,
    /// Same as `email`.
    pub username: Option<String>,
    pub password: Option<String>,
}

/// A new session token.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionBody {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    #[serde(serialize_with = "ts::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: DateTime<Utc>,
}

const BAD_LOGIN: &str = "Invalid email or password";

/// Log in with e-mail and password; the token carries the user's permissions and expires.
#[utoipa::path(post, operation_id = "session_authenticate", path = "/api/authenticate", tag = "session", request_body = Credentials, responses(
    (status = 200, body = SessionBody),
    (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody),
    (status = 415, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn authenticate(State(st): State<AppState>, JsonBody(body): JsonBody<Credentials>) -> ApiResult<Response> {
    let mut errors = ValidationErrors::new();
    let email = body
        .email
        .or(body.username)
        .map(|e| normalize_email(&e))
        .filter(|e| !e.is_empty());
    if email.is_none() {
        errors.add("email", "can't be blank");
    }
    let password = body.password.filter(|p| !p.is_empty());
    if password.is_none() {
        errors.add("password", "can't be blank");
    }
    errors.into_result()?;
    let (email, password) = (email.unwrap_or_default(), password.unwrap_or_default());

    let user = st.store.find_user_by_email(&email).await?;
    // Verify against a dummy hash when the user is unknown, so timing does not tell which
    // e-mails exist.
    let phc = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| secret::dummy_password_hash().to_string());
    let ok = tokio::task::spawn_blocking(move || secret::verify_password(&password, &phc))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let user = match user {
        Some(u) if ok => u,
        _ => return Err(ApiError::Unauthorized(BAD_LOGIN)),
    };

    let token = secret::generate_token();
    let ttl = chrono::Duration::from_std(st.config.session_ttl).unwrap_or(chrono::Duration::hours(24));
    let expires_at = clock::now() + ttl;
    let new = NewAccessToken {
        digest: secret::token_digest(&token),
        user_id: Some(user.id),
        kind: TokenKind::Session,
        permissions: user.permissions.0.clone(),
        metadata: Default::default(),
        expires_at: Some(expires_at),
    };
    st.store.create_access_token(user.account_id, &new).await?;
    Ok((
        StatusCode::OK,
        axum::Json(SessionBody {
            access_token: token,
            token_type: "Bearer".into(),
            expires_at,
        }),
    )
        .into_response())
}

/// End the session (or revoke the API token) used for this request.
#[utoipa::path(post, operation_id = "session_logout", path = "/api/logout", tag = "session", security(("bearer" = [])), responses(
    (status = 204, description = "The token no longer works"),
    (status = 401, body = crate::ErrorBody),
))]
pub async fn logout(auth: Authed<AnyToken>, State(st): State<AppState>) -> ApiResult<StatusCode> {
    st.store.delete_access_token(auth.account_id, auth.token_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The user the session belongs to.
#[utoipa::path(get, operation_id = "session_current_user", path = "/api/user", tag = "session", security(("bearer" = [])), responses(
    (status = 200, body = UserBody, description = "The user; a customer who signed up (`/api/signups`) also has `phone`, `phone_verified_at` and `customer`"),
    (status = 401, body = crate::ErrorBody),
    (status = 404, description = "The token is an API token, not a user's session", body = crate::ErrorBody),
))]
pub async fn current_user(
    auth: Authed<AnyToken>,
    State(st): State<AppState>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    let user_id = auth.user_id.ok_or(ApiError::NotFound)?;
    let user = st
        .store
        .get_user(auth.account_id, user_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    // A customer who signed up with a verified phone also sees that profile.
    let signup = st.store.signup_of_user(auth.account_id, user_id).await?;
    Ok(axum::Json(super::signups::user_json(user, signup.as_ref())?))
}
