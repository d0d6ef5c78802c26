//! `/api/phone_calls` and `/api/remote_phone_call_events` (SCFM). A phone call is one
//! attempt of a voice transmission (a callout participation, or a voice message sent on
//! its own); its `status` is the SCFM word for the attempt's (`sauti_core::calls`). A
//! remote phone call event is one request the provider made about a call — a TwiML fetch,
//! the keys pressed, a status callback — stored as it arrived; only its metadata can be
//! changed.

use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use sauti_core::ValidationErrors;
use sauti_core::filter::{FieldKind, FieldSpec, ResourceSpec};
use serde::Deserialize;
use serde_json::Value;

use super::{MetadataPatch, no_content};
use crate::AppState;
use crate::auth::{Authed, PhoneCallsRead, RemotePhoneCallEventsRead, RemotePhoneCallEventsWrite};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Id, JsonBody, RawQuery};
use crate::pagination::list_response;

pub const PHONE_CALLS_SPEC: ResourceSpec = ResourceSpec {
    sortable: &["id", "created_at", "updated_at"],
    fields: &[
        FieldSpec {
            name: "callout_participation_id",
            column: "transmission_id",
            kind: FieldKind::Int,
        },
        FieldSpec {
            name: "callout_id",
            column: "callout_id",
            kind: FieldKind::Int,
        },
        FieldSpec {
            name: "contact_id",
            column: "contact_id",
            kind: FieldKind::Int,
        },
        FieldSpec {
            name: "msisdn",
            column: "msisdn",
            kind: FieldKind::Text,
        },
        FieldSpec {
            name: "remote_call_id",
            column: "remote_id",
            kind: FieldKind::Text,
        },
        FieldSpec {
            name: "remote_status",
            column: "raw_status",
            kind: FieldKind::Text,
        },
        FieldSpec {
            name: "call_flow_logic",
            column: "call_flow_logic",
            kind: FieldKind::Text,
        },
    ],
    has_metadata: true,
};

pub const EVENTS_SPEC: ResourceSpec = ResourceSpec {
    sortable: &["id", "created_at"],
    fields: &[
        FieldSpec {
            name: "phone_call_id",
            column: "attempt_id",
            kind: FieldKind::Int,
        },
        FieldSpec {
            name: "remote_call_id",
            column: "remote_id",
            kind: FieldKind::Text,
        },
        FieldSpec {
            name: "call_flow_logic",
            column: "call_flow_logic",
            kind: FieldKind::Text,
        },
    ],
    has_metadata: true,
};

/// Body of `PATCH /api/remote_phone_call_events/{id}`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemotePhoneCallEventInput {
    #[serde(flatten)]
    pub metadata: MetadataPatch,
}

async fn list_calls(
    st: &AppState,
    account_id: i64,
    of: Option<(&'static str, i64)>,
    uri: &Uri,
    raw: &RawQuery,
) -> ApiResult<Response> {
    let q = raw.list_query(&PHONE_CALLS_SPEC)?;
    let page = st.store.list_phone_calls(account_id, of, &q).await?;
    Ok(list_response(uri, &raw.0, &q, page.map(|c| c.to_json())))
}

/// List the account's phone calls (voice attempts).
#[utoipa::path(get, path = "/api/phone_calls", operation_id = "phone_calls_index", tag = "callouts", security(("bearer" = [])), params(crate::openapi::ListParams), responses(
    (status = 200, body = Vec<Object>, headers(("Per-Page" = u32), ("Total" = u64), ("Link" = String))),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn index(
    auth: Authed<PhoneCallsRead>,
    State(st): State<AppState>,
    uri: Uri,
    raw: RawQuery,
) -> ApiResult<Response> {
    list_calls(&st, auth.account_id, None, &uri, &raw).await
}

/// List the phone calls of one participation.
#[utoipa::path(get, path = "/api/callout_participations/{id}/phone_calls", operation_id = "phone_calls_of_participation", tag = "callouts", security(("bearer" = [])), params(("id" = i64, Path), crate::openapi::ListParams), responses(
    (status = 200, body = Vec<Object>, headers(("Per-Page" = u32), ("Total" = u64), ("Link" = String))),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 404, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn of_participation(
    auth: Authed<PhoneCallsRead>,
    State(st): State<AppState>,
    Id(id): Id,
    uri: Uri,
    raw: RawQuery,
) -> ApiResult<Response> {
    st.store
        .get_participation(auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    list_calls(&st, auth.account_id, Some(("transmission_id", id)), &uri, &raw).await
}

/// List the phone calls of one callout.
#[utoipa::path(get, path = "/api/callouts/{id}/phone_calls", operation_id = "phone_calls_of_callout", tag = "callouts", security(("bearer" = [])), params(("id" = i64, Path), crate::openapi::ListParams), responses(
    (status = 200, body = Vec<Object>, headers(("Per-Page" = u32), ("Total" = u64), ("Link" = String))),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 404, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn of_callout(
    auth: Authed<PhoneCallsRead>,
    State(st): State<AppState>,
    Id(id): Id,
    uri: Uri,
    raw: RawQuery,
) -> ApiResult<Response> {
    super::callouts::find(&st, auth.account_id, id).await?;
    list_calls(&st, auth.account_id, Some(("callout_id", id)), &uri, &raw).await
}

/// Retrieve a phone call.
#[utoipa::path(get, path = "/api/phone_calls/{id}", operation_id = "phone_calls_show", tag = "callouts", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 200, body = Object),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn show(
    auth: Authed<PhoneCallsRead>,
    State(st): State<AppState>,
    Id(id): Id,
) -> ApiResult<axum::Json<Value>> {
    let call = st
        .store
        .get_phone_call(auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(axum::Json(call.to_json()))
}

/// List the requests providers made about the account's calls (SCFM remote phone call
/// events): TwiML fetches, keys pressed, status callbacks.
#[utoipa::path(get, path = "/api/remote_phone_call_events", operation_id = "remote_phone_call_events_index", tag = "callouts", security(("bearer" = [])), params(crate::openapi::ListParams), responses(
    (status = 200, body = Vec<Object>, headers(("Per-Page" = u32), ("Total" = u64), ("Link" = String))),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn events_index(
    auth: Authed<RemotePhoneCallEventsRead>,
    State(st): State<AppState>,
    uri: Uri,
    raw: RawQuery,
) -> ApiResult<Response> {
    let q = raw.list_query(&EVENTS_SPEC)?;
    let page = st.store.list_call_events(auth.account_id, &q).await?;
    Ok(list_response(&uri, &raw.0, &q, page.map(|e| e.to_json())))
}

/// Retrieve a remote phone call event.
#[utoipa::path(get, path = "/api/remote_phone_call_events/{id}", operation_id = "remote_phone_call_events_show", tag = "callouts", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 200, body = Object),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn events_show(
    auth: Authed<RemotePhoneCallEventsRead>,
    State(st): State<AppState>,
    Id(id): Id,
) -> ApiResult<axum::Json<Value>> {
    let event = st
        .store
        .get_call_event(auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(axum::Json(event.to_json()))
}

/// Update a remote phone call event's metadata (what the provider sent stays as it was).
#[utoipa::path(patch, path = "/api/remote_phone_call_events/{id}", operation_id = "remote_phone_call_events_update", tag = "callouts", security(("bearer" = [])), params(("id" = i64, Path)), request_body = RemotePhoneCallEventInput, responses(
    (status = 204, description = "Updated"),
    (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 404, body = crate::ErrorBody), (status = 409, body = crate::ErrorBody), (status = 415, body = crate::ErrorBody),
    (status = 422, body = crate::ErrorBody),
))]
pub async fn events_update(
    auth: Authed<RemotePhoneCallEventsWrite>,
    State(st): State<AppState>,
    Id(id): Id,
    JsonBody(input): JsonBody<RemotePhoneCallEventInput>,
) -> ApiResult<Response> {
    let mut errors = ValidationErrors::new();
    let metadata = input.metadata.validate(&mut errors);
    errors.into_result()?;
    st.store
        .update_call_event_metadata(auth.account_id, id, &move |m| metadata.apply(m))
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(no_content(format!("/api/remote_phone_call_events/{id}")))
}
