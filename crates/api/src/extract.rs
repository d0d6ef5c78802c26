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
        let blank = bytes.iter().all(u8::is_ascii_whitespace);
        if !blank && !content_type.as_deref().is_none_or(is_json) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes: &[u8] = if blank { b"{}" } else { &bytes };
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
        if !value.is_object() {
            return Err(ApiError::validation("base", "the body must be a JSON object"));
        }
        if let Some(field) = nul_field(&value) {
            return Err(ApiError::validation(&field, NUL_MESSAGE));
        }
        serde_path_to_error(value).map(JsonBody)
    }
}

pub(crate) const NUL_MESSAGE: &str = "must not contain NUL characters";

/// Whether a NUL character is in any string or key of `v`.
pub(crate) fn has_nul(v: &serde_json::Value) -> bool {
    use serde_json::Value;
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(has_nul),
        Value::Object(m) => m.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// The top-level field of a body holding a NUL character in a string or key: PostgreSQL
/// stores neither in text nor in JSONB, so it is refused up front on every backend.
fn nul_field(body: &serde_json::Value) -> Option<String> {
    let (k, _) = body.as_object()?.iter().find(|(k, v)| k.contains('\0') || has_nul(v))?;
    Some(if k.contains('\0') { "base".into() } else { k.clone() })
}

/// `application/json` or any `application/…+json`, parameters ignored.
pub(crate) fn is_json(ct: &str) -> bool {
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

/// Two numeric path ids (`/groups/{id}/contacts/{contact_id}`); anything else is 404.
pub struct IdPair(pub i64, pub i64);

impl<S: Send + Sync> FromRequestParts<S> for IdPair {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path((a, b)) = axum::extract::Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::NotFound)?;
        match (a.parse::<i64>(), b.parse::<i64>()) {
            (Ok(a), Ok(b)) if a > 0 && b > 0 => Ok(IdPair(a, b)),
            _ => Err(ApiError::NotFound),
        }
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
        // Filter values are bound as text, which PostgreSQL refuses to hold a NUL.
        if let Some((k, _)) = self.0.iter().find(|(k, v)| k.contains('\0') || v.contains('\0')) {
            let field = k.split('[').next().filter(|f| !f.is_empty() && !f.contains('\0'));
            return Err(ApiError::validation(field.unwrap_or("base"), NUL_MESSAGE));
        }
        parse_list_query(&self.0, spec).map_err(ApiError::Validation)
    }
}

pub use sauti_core::filter::filter_params_to_pairs;

/// The address the request came from, when the server was started with connection info
/// (as [`crate::run`] does).
pub struct ClientIp(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn filter_params_become_q_pairs() {
        let v = serde_json::json!({"metadata": {"gender": "f", "age.numeric.gt": 5, "tags.any": ["a", "b"]}, "opted_out": false});
        let pairs = super::filter_params_to_pairs(v.as_object().unwrap());
        let s = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            pairs,
            vec![
                s("q[metadata][age.numeric.gt]", "5"),
                s("q[metadata][gender]", "f"),
                s("q[metadata][tags.any][]", "a"),
                s("q[metadata][tags.any][]", "b"),
                s("q[opted_out]", "false"),
            ]
        );
    }
}
