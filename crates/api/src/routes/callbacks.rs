//! Provider callbacks: Twilio-compatible status callbacks and inbound messages, Kannel
//! delivery reports and MO messages. Each is stored raw as a provider event before it is
//! applied; one about an attempt sauti does not know is kept and answered 200 (the
//! provider must not retry it forever). Twilio callbacks must carry a valid
//! `X-Twilio-Signature` (403 otherwise). Call-status callbacks of voice calls are here too;
//! the TwiML a call runs is served by `routes::twiml`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use sauti_store::calls::call_event_kind;
use sauti_store::{CallStatusIn, Provider};
use serde_json::Value;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::Id;

/// Parameters from the query string and, for a form POST, the body.
pub(crate) fn params(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> ApiResult<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = serde_urlencoded::from_str(uri.query().unwrap_or(""))
        .map_err(|e| ApiError::BadRequest(format!("malformed query string: {e}")))?;
    if method == Method::POST && !body.is_empty() {
        let form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|ct| ct.starts_with("application/x-www-form-urlencoded"));
        if !form {
            return Err(ApiError::WrongMediaType(
                "callbacks are form-encoded (application/x-www-form-urlencoded)",
            ));
        }
        let body: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|e| ApiError::BadRequest(format!("malformed form body: {e}")))?;
        out.extend(body);
    }
    Ok(out)
}

pub(crate) fn as_json(params: &[(String, String)]) -> Value {
    let mut m = serde_json::Map::new();
    for (k, v) in params {
        m.insert(k.clone(), Value::String(v.clone()));
    }
    Value::Object(m)
}

pub(crate) async fn provider(st: &AppState, id: i64, kind: &str) -> ApiResult<Provider> {
    match st.store.find_provider(id).await? {
        Some(p) if p.kind == kind => Ok(p),
        _ => Err(ApiError::NotFound),
    }
}

/// The URL Twilio signed: sauti's public URL, this path and the query string.
fn signed_url(st: &AppState, uri: &Uri) -> String {
    let base = st.config.public_url.trim_end_matches('/');
    match uri.query() {
        Some(q) => format!("{base}{}?{q}", uri.path()),
        None => format!("{base}{}", uri.path()),
    }
}

/// Check the signature and store the raw callback; `Err(403)` for a bad signature.
pub(crate) async fn twilio_verified(
    st: &AppState,
    p: &Provider,
    uri: &Uri,
    headers: &HeaderMap,
    form: &[(String, String)],
    kind: &str,
) -> ApiResult<()> {
    let token = p.settings.0.get("auth_token").and_then(Value::as_str).unwrap_or("");
    let signature = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // Twilio signs the POST body parameters, not the query string (which is in the URL).
    if !sauti_channels::twilio::validate_signature(token, &signed_url(st, uri), form, signature) {
        st.store
            .record_provider_event(
                Some(p.account_id),
                Some(p.id),
                kind,
                "invalid_signature",
                &as_json(form),
            )
            .await?;
        return Err(ApiError::Forbidden(
            "X-Twilio-Signature does not match this request".into(),
        ));
    }
    Ok(())
}

fn without_token(params: &[(String, String)]) -> Vec<(String, String)> {
    params.iter().filter(|(k, _)| k != "token").cloned().collect()
}

/// Check the provider's token in a Kannel callback URL (Kannel cannot sign requests; the
/// URL sauti gave it is the credential); `Err(403)` without it, the call stored as
/// `invalid_token`.
async fn kannel_verified(st: &AppState, p: &Provider, kind: &str, params: &[(String, String)]) -> ApiResult<()> {
    let given = params.iter().find(|(k, _)| k == "token").map(|(_, v)| v.as_str());
    if sauti_channels::kannel::token_matches(&st.config.secret_key, p.id, given) {
        return Ok(());
    }
    st.store
        .record_provider_event(
            Some(p.account_id),
            Some(p.id),
            kind,
            "invalid_token",
            &as_json(&without_token(params)),
        )
        .await?;
    Err(ApiError::Forbidden(
        "the callback URL's token does not match this provider".into(),
    ))
}

/// Apply a receipt (stored raw as it is applied), or keep a callback that could not be
/// read as one.
async fn receipt_or_keep(
    st: &AppState,
    p: &Provider,
    kind: &str,
    receipt: Option<sauti_channels::Receipt>,
    params: &[(String, String)],
) -> ApiResult<()> {
    match receipt {
        Some(r) => {
            st.store
                .apply_receipts(&[sauti_engine::receipt_in(kind, Some(p.id), r)])
                .await?;
        }
        None => {
            let event = format!("{kind}.receipt");
            st.store
                .record_provider_event(Some(p.account_id), Some(p.id), &event, "unreadable", &as_json(params))
                .await?;
        }
    }
    Ok(())
}

/// Store an inbound message, or keep a callback that could not be read as one.
async fn inbound_or_keep(
    st: &AppState,
    p: &Provider,
    kind: &str,
    message: Option<sauti_channels::Inbound>,
    params: &[(String, String)],
) -> ApiResult<()> {
    match message {
        Some(m) => {
            st.store
                .record_inbound(p.account_id, Some(p.id), kind, &m.from, &m.to, &m.body, &m.raw)
                .await?;
        }
        None => {
            let event = format!("{kind}.inbound");
            st.store
                .record_provider_event(Some(p.account_id), Some(p.id), &event, "unreadable", &as_json(params))
                .await?;
        }
    }
    Ok(())
}

pub(crate) fn form_only(headers: &HeaderMap, body: &Bytes) -> ApiResult<Vec<(String, String)>> {
    params(&Method::POST, &Uri::from_static("/"), headers, body)
}

/// Twilio-compatible status callback (`StatusCallback` of Messages.json).
pub async fn twilio_status(
    State(st): State<AppState>,
    Id(id): Id,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let p = provider(&st, id, "twilio").await?;
    let form = form_only(&headers, &body)?;
    twilio_verified(&st, &p, &uri, &headers, &form, "twilio.status").await?;
    let receipt = sauti_channels::twilio::parse_status_callback(&form);
    receipt_or_keep(&st, &p, "twilio", receipt, &form).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Twilio-compatible call-status callback (`StatusCallback` of Calls.json): the call's
/// progress, and at its end its outcome, which settles the attempt and its transmission.
pub async fn twilio_call_status(
    State(st): State<AppState>,
    Id(id): Id,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let p = provider(&st, id, "twilio").await?;
    let form = form_only(&headers, &body)?;
    twilio_verified(&st, &p, &uri, &headers, &form, call_event_kind::STATUS).await?;
    match sauti_channels::twilio::parse_call_status(&form) {
        Some(r) => {
            let event = CallStatusIn {
                account_id: p.account_id,
                provider_id: p.id,
                remote_id: r.call_sid,
                status: r.status,
                raw_status: r.raw_status,
                duration_seconds: r.duration_seconds,
                error_code: r.error_code,
                raw: r.raw,
            };
            st.store.apply_call_status(&event).await?;
        }
        None => {
            st.store
                .record_provider_event(
                    Some(p.account_id),
                    Some(p.id),
                    call_event_kind::STATUS,
                    "unreadable",
                    &as_json(&form),
                )
                .await?;
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Twilio-compatible incoming message webhook; answers empty TwiML (no reply).
pub async fn twilio_inbound(
    State(st): State<AppState>,
    Id(id): Id,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let p = provider(&st, id, "twilio").await?;
    let form = form_only(&headers, &body)?;
    twilio_verified(&st, &p, &uri, &headers, &form, "twilio.inbound").await?;
    let message = sauti_channels::twilio::parse_inbound(&form);
    inbound_or_keep(&st, &p, "twilio", message, &form).await?;
    Ok((
        [(header::CONTENT_TYPE, "text/xml")],
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>",
    )
        .into_response())
}

/// Kannel delivery report (`dlr-url`), GET or POST.
pub async fn kannel_dlr(
    State(st): State<AppState>,
    Id(id): Id,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let p = provider(&st, id, "kannel").await?;
    let params = params(&method, &uri, &headers, &body)?;
    kannel_verified(&st, &p, "kannel.dlr", &params).await?;
    // The token is a credential: it is not kept with the stored callback.
    let params = without_token(&params);
    let receipt = sauti_channels::kannel::parse_dlr(&params);
    receipt_or_keep(&st, &p, "kannel", receipt, &params).await?;
    Ok(StatusCode::OK.into_response())
}

/// Kannel MO message (an `sms-service` `get-url`), GET or POST. Answers an empty body:
/// sauti sends no automatic reply.
pub async fn kannel_mo(
    State(st): State<AppState>,
    Id(id): Id,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let p = provider(&st, id, "kannel").await?;
    let params = params(&method, &uri, &headers, &body)?;
    kannel_verified(&st, &p, "kannel.mo", &params).await?;
    // The token is a credential: it is not kept with the stored callback.
    let params = without_token(&params);
    let message = sauti_channels::kannel::parse_mo(&params);
    inbound_or_keep(&st, &p, "kannel", message, &params).await?;
    Ok(StatusCode::OK.into_response())
}
