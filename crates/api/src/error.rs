//! The API's one error type and the house error shape:
//! `{"errors": {"field": ["message"]}, "code": "validation_failed"}`, with messages that
//! are not about one field under `base`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sauti_core::ValidationErrors;
use sauti_store::StoreError;
use serde::Serialize;
use std::collections::BTreeMap;

/// The JSON body of every error response.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Messages by field; `base` holds those about the request as a whole.
    #[schema(example = json!({"email": ["is invalid"]}))]
    pub errors: BTreeMap<String, Vec<String>>,
    /// A stable machine-readable code, e.g. `validation_failed`, `not_found`, `unauthorized`.
    pub code: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("malformed request: {0}")]
    BadRequest(String),
    #[error("authentication required")]
    Unauthorized(&'static str),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// 415 for an endpoint that takes something other than JSON; the message says what.
    #[error("unsupported media type: {0}")]
    WrongMediaType(&'static str),
    #[error("validation failed: {0}")]
    Validation(ValidationErrors),
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// 429 with `Retry-After: retry_after` (seconds): a rate limit or a send limit was
    /// reached; the message says which and when to try again.
    #[error("too many requests: {message}")]
    TooManyRequests { message: String, retry_after: u64 },
    /// 501: something sauti does not do yet; the message says what.
    #[error("not implemented: {0}")]
    NotImplemented(&'static str),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        ApiError::Validation(ValidationErrors::one(field, message))
    }

    fn parts(&self) -> (StatusCode, &'static str, BTreeMap<String, Vec<String>>) {
        let base = |m: &str| BTreeMap::from([("base".to_string(), vec![m.to_string()])]);
        match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_request", base(m)),
            ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, "unauthorized", base(m)),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", base(m)),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found", base("Not found")),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                base("Method not allowed"),
            ),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, "conflict", base(m)),
            ApiError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                base("Request body is too large"),
            ),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                base("Content-Type must be application/json"),
            ),
            ApiError::WrongMediaType(m) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", base(m)),
            ApiError::Validation(v) => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", v.0.clone()),
            ApiError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", base(m)),
            ApiError::TooManyRequests { message, .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "too_many_requests", base(message))
            }
            ApiError::NotImplemented(m) => (StatusCode::NOT_IMPLEMENTED, "not_implemented", base(m)),
            ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                base("Something went wrong on our side"),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            // Logged with its detail, answered without it.
            tracing::error!(error = %detail, "internal error");
        }
        let (status, code, errors) = self.parts();
        let retry_after = match &self {
            ApiError::TooManyRequests { retry_after, .. } => Some(*retry_after),
            _ => None,
        };
        let mut resp = (
            status,
            axum::Json(ErrorBody {
                errors,
                code: code.to_string(),
            }),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"sauti\""),
            );
        }
        if let Some(secs) = retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { field } => ApiError::validation(&field, "has already been taken"),
            StoreError::Contended => ApiError::Conflict(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(e: ValidationErrors) -> Self {
        ApiError::Validation(e)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
