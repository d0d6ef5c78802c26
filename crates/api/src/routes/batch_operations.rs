//! `/api/batch_operations` (SCFM): callout populations. A population is created as a
//! `preview` (its audience counted, nothing written), then `queue`d; the workers turn the
//! audience into participations a chunk at a time (`running` → `finished`).

use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use sauti_core::ValidationErrors;
use sauti_core::filter::{FieldKind, FieldSpec, ResourceSpec, filter_params_to_pairs, parse_list_query};
use sauti_store::callouts::{CALLOUT_POPULATION, batch_status};
use sauti_store::{BatchOperation, JsonMap};
use serde::Deserialize;
use serde_json::Value;

use super::{MetadataPatch, created, no_content};
use crate::AppState;
use crate::auth::{Authed, BatchOperationsRead, BatchOperationsWrite};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Id, JsonBody, RawQuery};
use crate::pagination::list_response;

pub const SPEC: ResourceSpec = ResourceSpec {
    sortable: &["id", "created_at", "updated_at", "status"],
    fields: &[
        FieldSpec {
            name: "callout_id",
            column: "callout_id",
            kind: FieldKind::Int,
        },
        FieldSpec {
            name: "status",
            column: "status",
            kind: FieldKind::Text,
        },
        FieldSpec {
            name: "type",
            column: "type",
            kind: FieldKind::Text,
        },
    ],
    has_metadata: true,
};

/// Body of `POST /api/batch_operations`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchOperationInput {
    /// Must be `BatchOperation::CalloutPopulation`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The callout to populate.
    pub callout_id: Option<i64>,
    /// `{"contact_filter_params": {…}, "group_id": 1}`: which contacts participate
    /// (all of the account's when neither is given). Opted-out contacts never do.
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

/// Body of `PATCH /api/batch_operations/{id}`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchOperationUpdate {
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Value>,
    #[serde(flatten)]
    pub metadata: MetadataPatch,
}

/// Body of `POST /api/batch_operations/{id}/batch_operation_events`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct BatchOperationEvent {
    /// `queue`.
    pub event: String,
}

fn location(id: i64) -> String {
    format!("/api/batch_operations/{id}")
}

/// Validate a population's parameters for the account; the stored form has numbers in
/// E.164.
async fn check_parameters(st: &AppState, account_id: i64, value: Value, errors: &mut ValidationErrors) -> JsonMap {
    let mut params = match value {
        Value::Object(m) => m,
        Value::Null => JsonMap::new(),
        _ => {
            errors.add("parameters", "must be an object");
            return JsonMap::new();
        }
    };
    for key in params.keys() {
        if key != "contact_filter_params" && key != "group_id" {
            errors.add(
                "parameters",
                format!("unknown parameter {key:?} (use contact_filter_params, group_id)"),
            );
        }
    }
    match params.get("contact_filter_params") {
        None | Some(Value::Null) => {}
        Some(Value::Object(f)) => match super::callouts::audience_filter(st, account_id, f).await {
            Ok(normalised) => {
                params.insert("contact_filter_params".into(), Value::Object(normalised));
            }
            Err(e) => errors.add("contact_filter_params", e),
        },
        Some(_) => errors.add("contact_filter_params", "must be an object"),
    }
    match params.get("group_id") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) if n.as_i64().is_some() => {
            let id = n.as_i64().unwrap_or_default();
            match st.store.get_group(account_id, id).await {
                Ok(Some(_)) => {}
                _ => errors.add("group_id", "does not exist"),
            }
        }
        Some(_) => errors.add("group_id", "must be an integer"),
    }
    params
}

/// A batch operation as SCFM shows it; a preview also counts the contacts it would add.
async fn render(st: &AppState, b: &BatchOperation) -> ApiResult<Value> {
    let mut v = b.to_json();
    if b.status == batch_status::PREVIEW {
        let pairs = b.contact_filter().map(filter_params_to_pairs).unwrap_or_default();
        let q = parse_list_query(&pairs, &sauti_store::contacts::FILTER).map_err(ApiError::Validation)?;
        let n = st.store.count_audience(b.account_id, b.group_id(), &q).await?;
        v["preview"] = serde_json::json!({ "contacts_count": n });
    }
    Ok(v)
}

async fn find(st: &AppState, account_id: i64, id: i64) -> ApiResult<BatchOperation> {
    st.store
        .get_batch_operation(account_id, id)
        .await?
        .ok_or(ApiError::NotFound)
}

/// List batch operations.
#[utoipa::path(get, path = "/api/batch_operations", operation_id = "batch_operations_index", tag = "callouts", security(("bearer" = [])), params(crate::openapi::ListParams), responses(
    (status = 200, body = Vec<Object>, headers(("Per-Page" = u32), ("Total" = u64), ("Link" = String))),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn index(
    auth: Authed<BatchOperationsRead>,
    State(st): State<AppState>,
    uri: Uri,
    raw: RawQuery,
) -> ApiResult<Response> {
    let q = raw.list_query(&SPEC)?;
    let page = st.store.list_batch_operations(auth.account_id, &q).await?;
    Ok(list_response(&uri, &raw.0, &q, page.map(|b| b.to_json())))
}

/// Create a callout population (a `preview`).
#[utoipa::path(post, path = "/api/batch_operations", operation_id = "batch_operations_create", tag = "callouts", security(("bearer" = [])), request_body = BatchOperationInput, responses(
    (status = 201, body = Object, headers(("Location" = String))),
    (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 415, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn create(
    auth: Authed<BatchOperationsWrite>,
    State(st): State<AppState>,
    JsonBody(input): JsonBody<BatchOperationInput>,
) -> ApiResult<Response> {
    let mut errors = ValidationErrors::new();
    match input.kind.as_deref() {
        Some(CALLOUT_POPULATION) => {}
        Some(_) => errors.add("type", format!("must be: {CALLOUT_POPULATION}")),
        None => errors.add("type", "can't be blank"),
    }
    match input.callout_id {
        None => errors.add("callout", "must exist"),
        Some(id) => {
            if st.store.get_callout(auth.account_id, id).await?.is_none() {
                errors.add("callout", "must exist");
            }
        }
    }
    let params = check_parameters(
        &st,
        auth.account_id,
        input.parameters.unwrap_or(Value::Null),
        &mut errors,
    )
    .await;
    let metadata = super::metadata_object(input.metadata, &mut errors).unwrap_or_default();
    errors.into_result()?;
    let b = st
        .store
        .create_batch_operation(
            auth.account_id,
            input.callout_id.unwrap_or_default(),
            &params,
            &metadata,
        )
        .await?;
    Ok(created(location(b.id), render(&st, &b).await?))
}

/// Retrieve a batch operation.
#[utoipa::path(get, path = "/api/batch_operations/{id}", operation_id = "batch_operations_show", tag = "callouts", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 200, body = Object),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn show(
    auth: Authed<BatchOperationsRead>,
    State(st): State<AppState>,
    Id(id): Id,
) -> ApiResult<axum::Json<Value>> {
    let b = find(&st, auth.account_id, id).await?;
    Ok(axum::Json(render(&st, &b).await?))
}

/// Update a batch operation: its parameters while a preview, its metadata at any time.
#[utoipa::path(patch, path = "/api/batch_operations/{id}", operation_id = "batch_operations_update", tag = "callouts", security(("bearer" = [])), params(("id" = i64, Path)), request_body = BatchOperationUpdate, responses(
    (status = 204, description = "Updated"),
    (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 404, body = crate::ErrorBody), (status = 409, body = crate::ErrorBody), (status = 415, body = crate::ErrorBody),
    (status = 422, body = crate::ErrorBody),
))]
pub async fn update(
    auth: Authed<BatchOperationsWrite>,
    State(st): State<AppState>,
    Id(id): Id,
    JsonBody(input): JsonBody<BatchOperationUpdate>,
) -> ApiResult<Response> {
    find(&st, auth.account_id, id).await?;
    let mut errors = ValidationErrors::new();
    let params = match input.parameters {
        Some(v) => Some(check_parameters(&st, auth.account_id, v, &mut errors).await),
        None => None,
    };
    let metadata = input.metadata.validate(&mut errors);
    errors.into_result()?;
    match st
        .store
        .update_batch_operation(auth.account_id, id, params.as_ref(), |m| metadata.apply(m))
        .await?
    {
        None => Err(ApiError::NotFound),
        Some(Err(why)) => Err(ApiError::validation("parameters", why)),
        Some(Ok(_)) => Ok(no_content(location(id))),
    }
}

/// Delete a batch operation that is not running; the participations it made stay.
#[utoipa::path(delete, path = "/api/batch_operations/{id}", operation_id = "batch_operations_destroy", tag = "callouts", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 204, description = "Deleted"),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
    (status = 422, body = crate::ErrorBody),
))]
pub async fn destroy(
    auth: Authed<BatchOperationsWrite>,
    State(st): State<AppState>,
    Id(id): Id,
) -> ApiResult<Response> {
    match st.store.delete_batch_operation(auth.account_id, id).await? {
        None => Err(ApiError::NotFound),
        Some(Err(why)) => Err(ApiError::validation("base", why)),
        Some(Ok(())) => Ok(no_content("/api/batch_operations".into())),
    }
}

/// `queue` a preview: the workers populate the callout.
#[utoipa::path(post, path = "/api/batch_operations/{id}/batch_operation_events", operation_id = "batch_operations_event", tag = "callouts", security(("bearer" = [])), params(("id" = i64, Path)), request_body = BatchOperationEvent, responses(
    (status = 201, body = Object, headers(("Location" = String))),
    (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 404, body = crate::ErrorBody), (status = 415, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn create_event(
    auth: Authed<BatchOperationsWrite>,
    State(st): State<AppState>,
    Id(id): Id,
    JsonBody(input): JsonBody<BatchOperationEvent>,
) -> ApiResult<Response> {
    if input.event != "queue" {
        return Err(ApiError::validation("event", "must be: queue"));
    }
    match st.store.queue_batch_operation(auth.account_id, id).await? {
        None => Err(ApiError::NotFound),
        Some(Err(why)) => Err(ApiError::validation("event", why)),
        Some(Ok(b)) => Ok(created(location(id), b.to_json())),
    }
}
