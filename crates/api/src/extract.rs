//! Extractors that reject in the house error shape.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use sauti_core::filter::{ListQuery, ResourceSpec, parse_list_query};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON request body. An empty body reads as `{}` (SCFM's examples send `-d ''`); a body
/// with a non-JSON content type is 415, malformed JSON 400, JSON of the wrong shape 422.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest(e.body_text())
            }
        })?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        if bytes != b"{}" && !content_type.as_deref().is_none_or(is_json) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
        if !value.is_object() {
            return Err(ApiError::validation("base", "the body must be a JSON object"));
        }
        serde_path_to_error(value).map(JsonBody)
    }
}

fn is_json(ct: &str) -> bool {
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Deserialize, naming the offending field in the 422 (`{"errors": {"metadata": […]}}`).
fn serde_path_to_error<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if let Some(missing) = inner.strip_prefix("missing field `").and_then(|r| r.split('`').next()) {
            return ApiError::validation(missing, "can't be blank");
        }
        let field = if path.is_empty() || path == "." {
            "base".to_string()
        } else {
            path
        };
        ApiError::validation(&field, inner)
    })
}

/// A numeric path id. Anything else cannot name a row, so it is 404 like any missing row.
pub struct Id(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw) = axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::NotFound)?;
        raw.parse::<i64>()
            .ok()
            .filter(|id| *id > 0)
            .map(Id)
            .ok_or(ApiError::NotFound)
    }
}

/// The decoded query string as ordered pairs (bracketed keys kept verbatim).
pub struct RawQuery(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for RawQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        let pairs = serde_urlencoded::from_str::<Vec<(String, String)>>(q)
            .map_err(|e| ApiError::BadRequest(format!("malformed query string: {e}")))?;
        Ok(RawQuery(pairs))
    }
}

impl RawQuery {
    pub fn list_query(&self, spec: &ResourceSpec) -> Result<ListQuery, ApiError> {
        parse_list_query(&self.0, spec).map_err(ApiError::Validation)
    }
}
