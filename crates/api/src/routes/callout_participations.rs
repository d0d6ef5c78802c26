//! `/api/callout_participations` and `/api/callouts/{id}/callout_participations` (SCFM).
//! A participation is the transmission of a callout to one contact; its id is the
//! transmission's, so `/api/transmissions/{id}` shows its attempts and results too.

use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use sauti_core::ValidationErrors;
use sauti_core::filter::{FieldKind, FieldSpec, ResourceSpec};
use sauti_core::msisdn::Msisdn;
use sauti_store::callouts::{callout_status, participation_row};
use sauti_store::{ParticipationChange, Transmission};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{MetadataPatch, created, no_content};
use crate::AppState;
use crate::auth::{Authed, CalloutParticipationsRead, CalloutParticipationsWrite};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Id, JsonBody, RawQuery};
use crate::pagination::list_response;
use crate::wire::double_option;

pub const SPEC: ResourceSpec = ResourceSpec {
    sortable: &["id", "created_at", "updated_at", "status", "next_attempt_at"],
    fields: &[
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
            name: "callout_population_id",
            column: "batch_operation_id",
            kind: FieldKind::Int,
        },
        FieldSpec {
            name: "status",
            column: "status",
            kind: FieldKind::Text,
        },
        FieldSpec {
            name: "msisdn",
            column: "to_address",
            kind: FieldKind::Text,
        },
    ],
    has_metadata: true,
};

/// A participation as SCFM shows it, with sauti's delivery fields.
pub(crate) fn participation_json(t: &Transmission) -> Value {
    json!({
        "id": t.id,
        "callout_id": t.callout_id,
        "contact_id": t.contact_id,
        "callout_population_id": t.batch_operation_id,
        "msisdn": t.to_address,
        "call_flow_logic": t.call_flow_logic,
        "channel": t.channel,
        "status": t.status,
        "answered": t.channel == "voice" && t.status == "delivered",
        "phone_calls_count": if t.channel == "voice" { t.attempts } else { 0 },
        "attempts": t.attempts,
        "max_attempts": t.max_attempts,
        "next_attempt_at": t.next_attempt_at.as_ref().map(sauti_store::transmissions::ts),
        "sent_at": t.sent_at.as_ref().map(sauti_store::transmissions::ts),
        "delivered_at": t.delivered_at.as_ref().map(sauti_store::transmissions::ts),
        "error_code": t.error_code,
        "error_message": t.error_message,
        "metadata": t.metadata.0,
        "created_at": sauti_store::transmissions::ts(&t.created_at),
        "updated_at": sauti_store::transmissions::ts(&t.updated_at),
        "account_id": t.account_id,
    })
}

/// Body of `POST /api/callouts/{id}/callout_participations` and of its `PATCH`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ParticipationInput {
    /// The contact (required on create).
    pub contact_id: Option<i64>,
    /// The number to call or text; the contact's own by default.
    pub msisdn: Option<String>,
    /// This participation's call flow, over the callout's.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub call_flow_logic: Option<Option<String>>,
    #[serde(flatten)]
    pub metadata: MetadataPatch,
}

fn location(id: i64) -> String {
    format!("/api/callout_participations/{id}")
}

fn check_flow(flow: &Option<Option<String>>, errors: &mut ValidationErrors) {
    if let Some(Some(f)) = flow
        && !super::callouts::CALL_FLOWS.contains(&f.as_str())
    {
        errors.add(
            "call_flow_logic",
            format!("must be one of: {}", super::callouts::CALL_FLOWS.join(", ")),
        );
    }
}

/// The destination a participation's `msisdn` names (E.164).
async fn number(st: &AppState, account_id: i64, raw: &str, errors: &mut ValidationErrors) -> Option<String> {
    let region = super::contacts::default_region(st, account_id).await.ok().flatten();
    match Msisdn::parse(raw, region) {
        Ok(m) => Some(m.into_string()),
        Err(e) => {
            errors.add("msisdn", e.to_string());
            None
        }
    }
}

/// List the participations of the account.
#[utoipa::path(get, path = "/api/callout_participations", operation_id = "callout_participations_index", tag = "callouts", security(("bearer" = [])), params(crate::openapi::ListParams), responses(
    (status = 200, body = Vec<Object>, headers(("Per-Page" = u32), ("Total" = u64), ("Link" = String))),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn index(
    auth: Authed<CalloutParticipationsRead>,
    State(st): State<AppState>,
    uri: Uri,
    raw: RawQuery,
) -> ApiResult<Response> {
    let q = raw.list_query(&SPEC)?;
    let page = st.store.list_participations(auth.account_id, None, &q).await?;
    Ok(list_response(&uri, &raw.0, &q, page.map(|t| participation_json(&t))))
}

/// List the participations of one callout.
#[utoipa::path(get, path = "/api/callouts/{id}/callout_participations", operation_id = "callout_participations_of_callout", tag = "callouts", security(("bearer" = [])), params(("id" = i64, Path), crate::openapi::ListParams), responses(
    (status = 200, body = Vec<Object>, headers(("Per-Page" = u32), ("Total" = u64), ("Link" = String))),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 404, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn of_callout(
    auth: Authed<CalloutParticipationsRead>,
    State(st): State<AppState>,
    Id(id): Id,
    uri: Uri,
    raw: RawQuery,
) -> ApiResult<Response> {
    super::callouts::find(&st, auth.account_id, id).await?;
    let q = raw.list_query(&SPEC)?;
    let page = st.store.list_participations(auth.account_id, Some(id), &q).await?;
    Ok(list_response(&uri, &raw.0, &q, page.map(|t| participation_json(&t))))
}

/// Add a contact to a callout. It is sent while the callout runs, at its pace.
#[utoipa::path(post, path = "/api/callouts/{id}/callout_participations", operation_id = "callout_participations_create", tag = "callouts", security(("bearer" = [])), params(("id" = i64, Path)), request_body = ParticipationInput, responses(
    (status = 201, body = Object, headers(("Location" = String))),
    (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 404, body = crate::ErrorBody), (status = 415, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn create(
    auth: Authed<CalloutParticipationsWrite>,
    State(st): State<AppState>,
    Id(id): Id,
    JsonBody(input): JsonBody<ParticipationInput>,
) -> ApiResult<Response> {
    let callout = super::callouts::find(&st, auth.account_id, id).await?;
    let mut errors = ValidationErrors::new();
    check_flow(&input.call_flow_logic, &mut errors);
    let contact = match input.contact_id {
        Some(cid) => st.store.get_contact(auth.account_id, cid).await?,
        None => None,
    };
    if contact.is_none() {
        errors.add("contact", "must exist");
    }
    let to = match &input.msisdn {
        Some(m) => number(&st, auth.account_id, m, &mut errors).await,
        None => None,
    };
    let metadata = input.metadata.validate(&mut errors);
    if callout.status == callout_status::COMPLETED {
        errors.add("callout", "is completed; create a new callout");
    }
    let content = match st.store.callout_content(&callout).await? {
        Ok(c) => Some(c),
        Err(why) => {
            errors.add("callout", why);
            None
        }
    };
    errors.into_result()?;
    let (contact, content) = (contact.expect("checked"), content.expect("checked"));
    let mut meta = sauti_store::JsonMap::new();
    metadata.apply(&mut meta);
    let Some(mut row) = participation_row(&callout, &content, &contact, None, meta) else {
        let why = if contact.opted_out_at.is_some() {
            "has opted out and cannot be messaged"
        } else {
            "has no email address"
        };
        return Err(ApiError::validation("contact", why));
    };
    if let Some(to) = to
        && callout.channel != "email"
    {
        row.to_address = to;
    }
    row.call_flow_logic = input.call_flow_logic.flatten();
    let t = st
        .store
        .create_participation(&row)
        .await?
        .ok_or_else(|| ApiError::validation("contact_id", "has already been taken"))?;
    Ok(created(location(t.id), participation_json(&t)))
}

async fn find(st: &AppState, account_id: i64, id: i64) -> ApiResult<Transmission> {
    st.store
        .get_participation(account_id, id)
        .await?
        .ok_or(ApiError::NotFound)
}

/// Retrieve a participation.
#[utoipa::path(get, path = "/api/callout_participations/{id}", operation_id = "callout_participations_show", tag = "callouts", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 200, body = Object),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn show(
    auth: Authed<CalloutParticipationsRead>,
    State(st): State<AppState>,
    Id(id): Id,
) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(participation_json(&find(&st, auth.account_id, id).await?)))
}

/// Update a participation: its contact and number only before it was tried.
#[utoipa::path(patch, path = "/api/callout_participations/{id}", operation_id = "callout_participations_update", tag = "callouts", security(("bearer" = [])), params(("id" = i64, Path)), request_body = ParticipationInput, responses(
    (status = 204, description = "Updated"),
    (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 404, body = crate::ErrorBody), (status = 409, body = crate::ErrorBody), (status = 415, body = crate::ErrorBody),
    (status = 422, body = crate::ErrorBody),
))]
pub async fn update(
    auth: Authed<CalloutParticipationsWrite>,
    State(st): State<AppState>,
    Id(id): Id,
    JsonBody(input): JsonBody<ParticipationInput>,
) -> ApiResult<Response> {
    let current = find(&st, auth.account_id, id).await?;
    let mut errors = ValidationErrors::new();
    check_flow(&input.call_flow_logic, &mut errors);
    let mut to = match &input.msisdn {
        Some(m) => number(&st, auth.account_id, m, &mut errors).await,
        None => None,
    };
    if let Some(cid) = input.contact_id {
        match st.store.get_contact(auth.account_id, cid).await? {
            None => errors.add("contact", "must exist"),
            Some(c) if c.opted_out_at.is_some() => errors.add("contact", "has opted out and cannot be messaged"),
            Some(c) => {
                if to.is_none() {
                    to = if current.channel == "email" {
                        c.email
                    } else {
                        Some(c.msisdn)
                    };
                    if to.is_none() {
                        errors.add("contact", "has no email address");
                    }
                }
            }
        }
    }
    let metadata = input.metadata.validate(&mut errors);
    errors.into_result()?;
    let change = ParticipationChange {
        contact_id: input.contact_id,
        to_address: to,
        call_flow_logic: input.call_flow_logic,
        metadata: Some(Box::new(move |m| metadata.apply(m))),
    };
    match st.store.update_participation(auth.account_id, id, &change).await? {
        None => Err(ApiError::NotFound),
        Some(Err(why)) => Err(ApiError::validation("base", why)),
        Some(Ok(_)) => Ok(no_content(location(id))),
    }
}

/// Delete a participation that was never tried.
#[utoipa::path(delete, path = "/api/callout_participations/{id}", operation_id = "callout_participations_destroy", tag = "callouts", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 204, description = "Deleted"),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
    (status = 422, body = crate::ErrorBody),
))]
pub async fn destroy(
    auth: Authed<CalloutParticipationsWrite>,
    State(st): State<AppState>,
    Id(id): Id,
) -> ApiResult<Response> {
    match st.store.delete_participation(auth.account_id, id).await? {
        None => Err(ApiError::NotFound),
        Some(Err(why)) => Err(ApiError::validation("base", why)),
        Some(Ok(())) => Ok(no_content("/api/callout_participations".into())),
    }
}
