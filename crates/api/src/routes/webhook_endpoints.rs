//! `/api/webhook_endpoints` and their deliveries. Events are signed per Standard
//! Webhooks with the endpoint's secret, which is shown once, when the endpoint is created.

use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use base64::Engine;
use sauti_core::ValidationErrors;
use sauti_core::filter::{FieldKind, FieldSpec, ResourceSpec};
use sauti_store::transmissions::ts;
use sauti_store::webhooks::EVENT_TYPES;
use sauti_store::{Json, JsonMap, WebhookEndpoint};
use serde::Deserialize;
use serde_json::{Value, json};

use std::sync::atomic::AtomicBool;

use super::{MetadataPatch, changed_concurrently, created, no_content, patch_fresh};
use crate::AppState;
use crate::auth::{Authed, WebhookEndpointsRead, WebhookEndpointsWrite};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Id, JsonBody, RawQuery};
use crate::pagination::list_response;
use crate::wire::double_option;

pub const SPEC: ResourceSpec = ResourceSpec {
    sortable: &["id", "created_at", "updated_at"],
    fields: &[FieldSpec {
        name: "active",
        column: "active",
        kind: FieldKind::Bool,
    }],
    has_metadata: true,
};

const DELIVERY_SPEC: ResourceSpec = ResourceSpec {
    sortable: &["id", "created_at", "updated_at", "next_attempt_at"],
    fields: &[
        FieldSpec {
            name: "status",
            column: "status",
            kind: FieldKind::Text,
        },
        FieldSpec {
            name: "event_type",
            column: "event_type",
            kind: FieldKind::Text,
        },
    ],
    has_metadata: false,
};

const ATTEMPT_SPEC: ResourceSpec = ResourceSpec {
    sortable: &["id", "created_at"],
    fields: &[],
    has_metadata: false,
};

fn body(e: &WebhookEndpoint) -> Value {
    json!({
        "id": e.id,
        "url": e.url,
        "description": e.description,
        "events": e.events.0,
        "active": e.active,
        "disabled_reason": e.disabled_reason,
        "metadata": e.metadata.0,
        "created_at": ts(&e.created_at),
        "updated_at": ts(&e.updated_at),
        "account_id": e.account_id,
    })
}

/// Body of `POST /api/webhook_endpoints` and `PATCH /api/webhook_endpoints/{id}`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct WebhookEndpointInput {
    /// Where events are POSTed (http or https).
    pub url: Option<String>,
    /// Event types: `transmission.status_changed`, `transmission.inbound`.
    pub events: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// `false` pauses deliveries; `true` re-enables an endpoint disabled by a 410.
    pub active: Option<bool>,
    #[serde(flatten)]
    pub metadata: MetadataPatch,
}

impl WebhookEndpointInput {
    fn apply(self, e: &mut WebhookEndpoint) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if let Some(u) = self.url {
            e.url = u.trim().to_string();
        }
        match url::Url::parse(&e.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ if e.url.is_empty() => errors.add("url", "can't be blank"),
            _ => errors.add("url", "must be an http or https URL"),
        }
        if let Some(ev) = self.events {
            for t in &ev {
                if !EVENT_TYPES.contains(&t.as_str()) {
                    errors.add(
                        "events",
                        format!("{t} is not an event type (expected: {})", EVENT_TYPES.join(", ")),
                    );
                }
            }
            let mut ev = ev;
            ev.sort();
            ev.dedup();
            e.events = Json(ev);
        }
        if e.events.0.is_empty() {
            errors.add("events", "can't be empty");
        }
        if let Some(d) = self.description {
            e.description = d;
        }
        if let Some(a) = self.active {
            e.active = a;
            if a {
                e.disabled_reason = None;
            }
        }
        self.metadata.validate(&mut errors).apply(&mut e.metadata.0);
        errors.into_result()
    }
}

/// `whsec_` and the base64 of 32 random bytes, as Standard Webhooks secrets look.
fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

async fn find(st: &AppState, account_id: i64, id: i64) -> ApiResult<WebhookEndpoint> {
    st.store
        .get_webhook_endpoint(account_id, id)
        .await?
        .ok_or(ApiError::NotFound)
}

/// List webhook endpoints.
#[utoipa::path(get, path = "/api/webhook_endpoints", operation_id = "webhook_endpoints_index", tag = "webhooks", security(("bearer" = [])), params(crate::openapi::ListParams), responses(
    (status = 200, body = Vec<Object>, headers(("Per-Page" = u32), ("Total" = u64), ("Link" = String))),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn index(
    auth: Authed<WebhookEndpointsRead>,
    State(st): State<AppState>,
    uri: Uri,
    raw: RawQuery,
) -> ApiResult<Response> {
    let q = raw.list_query(&SPEC)?;
    let page = st.store.list_webhook_endpoints(auth.account_id, &q).await?;
    Ok(list_response(&uri, &raw.0, &q, page.map(|e| body(&e))))
}

/// Create a webhook endpoint. The answer holds its signing `secret`, shown only here.
#[utoipa::path(post, path = "/api/webhook_endpoints", operation_id = "webhook_endpoints_create", tag = "webhooks", security(("bearer" = [])), request_body = WebhookEndpointInput, responses(
    (status = 201, body = Object, headers(("Location" = String))),
    (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 415, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn create(
    auth: Authed<WebhookEndpointsWrite>,
    State(st): State<AppState>,
    JsonBody(input): JsonBody<WebhookEndpointInput>,
) -> ApiResult<Response> {
    let now = sauti_core::clock::now();
    let mut e = WebhookEndpoint {
        id: 0,
        account_id: auth.account_id,
        url: String::new(),
        description: None,
        events: Json(vec![]),
        secret: new_secret(),
        active: true,
        disabled_reason: None,
        metadata: Json(JsonMap::new()),
        created_at: now,
        updated_at: now,
    };
    input.apply(&mut e)?;
    let e = st.store.create_webhook_endpoint(&e).await?;
    let mut b = body(&e);
    b["secret"] = Value::String(e.secret.clone());
    Ok(created(format!("/api/webhook_endpoints/{}", e.id), b))
}

/// Retrieve a webhook endpoint (without its secret).
#[utoipa::path(get, path = "/api/webhook_endpoints/{id}", operation_id = "webhook_endpoints_show", tag = "webhooks", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 200, body = Object), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn show(
    auth: Authed<WebhookEndpointsRead>,
    State(st): State<AppState>,
    Id(id): Id,
) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(body(&find(&st, auth.account_id, id).await?)))
}

/// Update a webhook endpoint.
#[utoipa::path(patch, path = "/api/webhook_endpoints/{id}", operation_id = "webhook_endpoints_update", tag = "webhooks", security(("bearer" = [])), params(("id" = i64, Path)), request_body = WebhookEndpointInput, responses(
    (status = 204, description = "Updated"), (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody),
    (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody), (status = 409, body = crate::ErrorBody),
    (status = 415, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn update(
    auth: Authed<WebhookEndpointsWrite>,
    State(st): State<AppState>,
    Id(id): Id,
    JsonBody(input): JsonBody<WebhookEndpointInput>,
) -> ApiResult<Response> {
    let mut first = find(&st, auth.account_id, id).await?;
    input.clone().apply(&mut first)?;
    let invalid = AtomicBool::new(false);
    st.store
        .update_webhook_endpoint(auth.account_id, id, |e| {
            patch_fresh(e, &invalid, |e| input.clone().apply(e))
        })
        .await?
        .ok_or(ApiError::NotFound)?;
    changed_concurrently(&invalid)?;
    Ok(no_content(format!("/api/webhook_endpoints/{id}")))
}

/// Delete a webhook endpoint and its deliveries.
#[utoipa::path(delete, path = "/api/webhook_endpoints/{id}", operation_id = "webhook_endpoints_destroy", tag = "webhooks", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 204, description = "Deleted"), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn destroy(
    auth: Authed<WebhookEndpointsWrite>,
    State(st): State<AppState>,
    Id(id): Id,
) -> ApiResult<Response> {
    if !st.store.delete_webhook_endpoint(auth.account_id, id).await? {
        return Err(ApiError::NotFound);
    }
    Ok(no_content("/api/webhook_endpoints".into()))
}

/// The deliveries owed to an endpoint, with their status and try count.
#[utoipa::path(get, path = "/api/webhook_endpoints/{id}/deliveries", operation_id = "webhook_endpoints_deliveries", tag = "webhooks", security(("bearer" = [])), params(("id" = i64, Path), crate::openapi::ListParams), responses(
    (status = 200, body = Vec<Object>, headers(("Per-Page" = u32), ("Total" = u64), ("Link" = String))),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn deliveries(
    auth: Authed<WebhookEndpointsRead>,
    State(st): State<AppState>,
    Id(id): Id,
    uri: Uri,
    raw: RawQuery,
) -> ApiResult<Response> {
    find(&st, auth.account_id, id).await?;
    let q = raw.list_query(&DELIVERY_SPEC)?;
    let page = st.store.list_webhook_deliveries(auth.account_id, Some(id), &q).await?;
    Ok(list_response(&uri, &raw.0, &q, page.map(|d| d.to_json())))
}

/// Retrieve a delivery.
#[utoipa::path(get, path = "/api/webhook_deliveries/{id}", operation_id = "webhook_deliveries_show", tag = "webhooks", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 200, body = Object), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn delivery(
    auth: Authed<WebhookEndpointsRead>,
    State(st): State<AppState>,
    Id(id): Id,
) -> ApiResult<axum::Json<Value>> {
    let d = st
        .store
        .get_webhook_delivery(auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(axum::Json(d.to_json()))
}

/// Every try of a delivery: status code, error, response excerpt, duration.
#[utoipa::path(get, path = "/api/webhook_deliveries/{id}/attempts", operation_id = "webhook_deliveries_attempts", tag = "webhooks", security(("bearer" = [])), params(("id" = i64, Path), crate::openapi::ListParams), responses(
    (status = 200, body = Vec<Object>, headers(("Per-Page" = u32), ("Total" = u64), ("Link" = String))),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn delivery_attempts(
    auth: Authed<WebhookEndpointsRead>,
    State(st): State<AppState>,
    Id(id): Id,
    uri: Uri,
    raw: RawQuery,
) -> ApiResult<Response> {
    st.store
        .get_webhook_delivery(auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let q = raw.list_query(&ATTEMPT_SPEC)?;
    let page = st.store.list_webhook_delivery_attempts(auth.account_id, id, &q).await?;
    Ok(list_response(&uri, &raw.0, &q, page.map(|a| a.to_json())))
}

/// Send a delivery again now (same `webhook-id`), whatever became of it before.
#[utoipa::path(post, path = "/api/webhook_deliveries/{id}/replay", operation_id = "webhook_deliveries_replay", tag = "webhooks", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 201, body = Object, headers(("Location" = String))),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn replay(
    auth: Authed<WebhookEndpointsWrite>,
    State(st): State<AppState>,
    Id(id): Id,
) -> ApiResult<Response> {
    let d = st
        .store
        .replay_webhook_delivery(auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(created(format!("/api/webhook_deliveries/{}", d.id), d.to_json()))
}
