//! `Idempotency-Key` on POST: the first answer is stored and replayed for retries with the
//! same key and body; the same key with another body is 409.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sauti_core::secret::sha256_hex;
use sauti_store::IdempotencyBegin;

use crate::AppState;
use crate::auth::account_of;
use crate::error::ApiError;

const HEADER: &str = "idempotency-key";

pub(crate) async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match guarded(state, req, next).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn guarded(state: AppState, req: Request, next: Next) -> Result<Response, ApiError> {
    let key = match req.headers().get(HEADER) {
        Some(k) if req.method() == Method::POST => k
            .to_str()
            .ok()
            .map(str::to_owned)
            .filter(|k| !k.is_empty() && k.len() <= 255 && k.chars().all(|c| c.is_ascii_graphic() || c == ' ')),
        _ => return Ok(next.run(req).await),
    };
    let Some(key) = key else {
        return Err(ApiError::BadRequest(
            "Idempotency-Key must be 1 to 255 printable ASCII characters".into(),
        ));
    };
    // Without a valid token there is no tenant to scope the key to; the handler answers 401.
    let Some((account_id, token_id)) = account_of(&req) else {
        return Ok(next.run(req).await);
    };
    // Only JSON requests are fingerprinted: an upload (CSV, multipart) streams to disk and
    // may be far larger than anything worth buffering here.
    let json_or_empty = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(crate::extract::is_json);
    if !json_or_empty {
        return Ok(next.run(req).await);
    }

    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, state.config.body_limit_bytes)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)?;
    // Keys are scoped to the account, but a request is the same only if the same token
    // made it: otherwise another token of the account that learnt the key (one without the
    // permission, say) would be handed the first answer, secrets and all.
    let mut fingerprint = format!("{token_id} {} {}\n", parts.method, parts.uri).into_bytes();
    fingerprint.extend_from_slice(&bytes);
    let digest = sha256_hex(&fingerprint);

    match state.store.idempotency_begin(account_id, &key, &digest).await? {
        IdempotencyBegin::Replay(rec) => {
            let status = StatusCode::from_u16(rec.status.unwrap_or(200) as u16).unwrap_or(StatusCode::OK);
            let mut resp = (status, rec.body.unwrap_or_default()).into_response();
            let h = resp.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            h.insert("idempotent-replayed", HeaderValue::from_static("true"));
            if let Some(loc) = rec.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
                h.insert(header::LOCATION, loc);
            }
            Ok(resp)
        }
        IdempotencyBegin::Mismatch => Err(ApiError::Conflict(
            "this Idempotency-Key was already used with a different request".into(),
        )),
        IdempotencyBegin::InProgress => Err(ApiError::Conflict(
            "a request with this Idempotency-Key is still in progress".into(),
        )),
        IdempotencyBegin::Fresh => {
            let resp = next.run(Request::from_parts(parts, Body::from(bytes))).await;
            let status = resp.status();
            // Answers that depend on something other than the request itself (auth, rate
            // limits, our own failures) are not remembered: a retry must run again.
            let remember = !(status.is_server_error() || matches!(status.as_u16(), 401 | 403 | 429));
            if !remember {
                state.store.idempotency_abandon(account_id, &key).await?;
                return Ok(resp);
            }
            let (rparts, rbody) = resp.into_parts();
            let body = axum::body::to_bytes(rbody, usize::MAX)
                .await
                .map_err(|e| ApiError::Internal(format!("buffering a response: {e}")))?;
            let location = rparts.headers.get(header::LOCATION).and_then(|v| v.to_str().ok());
            state
                .store
                .idempotency_complete(account_id, &key, status.as_u16(), location, &body)
                .await?;
            Ok(Response::from_parts(rparts, Body::from(body)))
        }
    }
}
