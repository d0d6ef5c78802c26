//! Route table of the native API and the operations endpoints.

pub mod access_tokens;
pub mod accounts;
pub mod batch_operations;
pub mod callbacks;
pub mod callout_participations;
pub mod callouts;
pub mod clients;
pub mod contact_imports;
pub mod contacts;
pub mod content;
pub mod groups;
pub mod ops;
pub mod phone_calls;
pub mod providers;
pub mod recordings;
pub mod session;
pub mod signups;
pub mod template_attachments;
pub mod transmissions;
pub mod twiml;
pub mod users;
pub mod verifications;
pub mod webhook_endpoints;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use sauti_core::ValidationErrors;
use sauti_core::metadata::{self, MergeMode};
use sauti_store::JsonMap;
use serde::Deserialize;
use tower_http::trace::TraceLayer;

use crate::error::{ApiError, ApiResult};
use crate::{AppState, auth, idempotency, metrics, rate_limit};

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route(
            "/api/account",
            get(accounts::show_current).patch(accounts::update_current),
        )
        .route("/api/accounts", get(accounts::index).post(accounts::create))
        .route(
            "/api/accounts/{id}",
            get(accounts::show).patch(accounts::update).delete(accounts::destroy),
        )
        .route("/api/users", get(users::index).post(users::create))
        .route(
            "/api/users/{id}",
            get(users::show).patch(users::update).delete(users::destroy),
        )
        .route("/api/users/{id}/user_events", post(users::create_event))
        .route(
            "/api/access_tokens",
            get(access_tokens::index).post(access_tokens::create),
        )
        .route(
            "/api/access_tokens/{id}",
            get(access_tokens::show)
                .patch(access_tokens::update)
                .delete(access_tokens::destroy),
        )
        .route("/api/contacts", get(contacts::index).post(contacts::create))
        .route(
            "/api/contacts/{id}",
            get(contacts::show).patch(contacts::update).delete(contacts::destroy),
        )
        .route("/api/contact_data", post(contacts::upsert))
        .route("/api/contacts.csv", get(contact_imports::export_contacts))
        .route(
            "/api/contact_imports",
            get(contact_imports::index)
                // Uploads stream to disk under their own limit (`import_limit_bytes`).
                .post(contact_imports::create)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/api/contact_imports/{id}", get(contact_imports::show))
        .route("/api/groups/sample.csv", get(contact_imports::sample))
        .route("/api/groups/{id}/contacts.csv", get(contact_imports::export_group))
        .route("/api/groups", get(groups::index).post(groups::create))
        .route(
            "/api/groups/{id}",
            get(groups::show).patch(groups::update).delete(groups::destroy),
        )
        .route(
            "/api/groups/{id}/contacts",
            get(groups::contacts).post(groups::add_contacts),
        )
        .route(
            "/api/groups/{id}/contacts/{contact_id}",
            put(groups::link_contact).delete(groups::unlink_contact),
        )
        .route("/api/clients", get(clients::index).post(clients::create))
        .route(
            "/api/clients/{id}",
            get(clients::show).patch(clients::update).delete(clients::destroy),
        )
        .route("/api/clients/{id}/contacts", get(clients::contacts))
        .route(
            "/api/clients/{id}/logo",
            get(clients::show_logo)
                .put(clients::put_logo)
                .delete(clients::destroy_logo)
                // Images are held to `logo_limit_bytes` as they are read; this bounds the
                // multipart framing around them.
                .layer(DefaultBodyLimit::max(clients::logo_body_limit(&state.config))),
        )
        .route(
            "/api/recordings",
            get(recordings::index)
                .post(recordings::create)
                // Audio is held to `recording_limit_bytes` as it is read; this bounds the
                // multipart framing and the form's text parts around it.
                .layer(DefaultBodyLimit::max(recordings::recording_body_limit(&state.config))),
        )
        .route(
            "/api/recordings/{id}",
            get(recordings::show)
                .patch(recordings::update)
                .delete(recordings::destroy),
        )
        .route(
            "/api/recordings/{id}/media",
            get(recordings::show_media)
                .put(recordings::put_media)
                .layer(DefaultBodyLimit::max(recordings::recording_body_limit(&state.config))),
        )
        .route("/api/providers", get(providers::index).post(providers::create))
        .route(
            "/api/providers/{id}",
            get(providers::show).patch(providers::update).delete(providers::destroy),
        )
        .route("/api/texts", get(content::texts_index).post(content::texts_create))
        .route(
            "/api/texts/{id}",
            get(content::texts_show)
                .patch(content::texts_update)
                .delete(content::texts_destroy),
        )
        .route(
            "/api/templates",
            get(content::templates_index).post(content::templates_create),
        )
        .route(
            "/api/templates/{id}",
            get(content::templates_show)
                .patch(content::templates_update)
                .delete(content::templates_destroy),
        )
        .route(
            "/api/templates/{id}/attachments",
            get(template_attachments::index)
                .post(template_attachments::create)
                // Files are held to `attachment_limit_bytes` as they are read; this bounds
                // the multipart framing around them.
                .layer(DefaultBodyLimit::max(template_attachments::attachment_body_limit(
                    &state.config,
                ))),
        )
        .route(
            "/api/templates/{id}/attachments/{attachment_id}",
            get(template_attachments::show).delete(template_attachments::destroy),
        )
        .route(
            "/api/templates/{id}/attachments/{attachment_id}/content",
            get(template_attachments::content),
        )
        .route(
            "/api/transmissions",
            get(transmissions::index).post(transmissions::create),
        )
        .route(
            "/api/transmissions/{id}",
            get(transmissions::show).delete(transmissions::destroy),
        )
        .route("/api/transmissions/{id}/attempts", get(transmissions::attempts))
        .route("/api/transmissions/{id}/results", get(transmissions::results))
        .route(
            "/api/transmissions/{id}/transmission_events",
            post(transmissions::create_event),
        )
        .route("/api/transmissions/{id}/clone", post(transmissions::clone))
        .route(
            "/api/webhook_endpoints",
            get(webhook_endpoints::index).post(webhook_endpoints::create),
        )
        .route(
            "/api/webhook_endpoints/{id}",
            get(webhook_endpoints::show)
                .patch(webhook_endpoints::update)
                .delete(webhook_endpoints::destroy),
        )
        .route(
            "/api/webhook_endpoints/{id}/deliveries",
            get(webhook_endpoints::deliveries),
        )
        .route("/api/webhook_deliveries/{id}", get(webhook_endpoints::delivery))
        .route(
            "/api/webhook_deliveries/{id}/attempts",
            get(webhook_endpoints::delivery_attempts),
        )
        .route("/api/webhook_deliveries/{id}/replay", post(webhook_endpoints::replay))
        .route("/callbacks/twilio/{id}", post(callbacks::twilio_status))
        .route("/callbacks/twilio/{id}/inbound", post(callbacks::twilio_inbound))
        .route("/callbacks/twilio/{id}/calls", post(callbacks::twilio_call_status))
        .route("/twiml/calls/{id}", get(twiml::call).post(twiml::call))
        .route("/twiml/calls/{id}/gather", post(twiml::gather))
        .route("/twiml/calls/{id}/audio", get(twiml::audio))
        .route(
            "/callbacks/kannel/{id}/dlr",
            get(callbacks::kannel_dlr).post(callbacks::kannel_dlr),
        )
        .route(
            "/callbacks/kannel/{id}/mo",
            get(callbacks::kannel_mo).post(callbacks::kannel_mo),
        )
        .route(
            "/api/verifications",
            get(verifications::index).post(verifications::create),
        )
        .route("/api/verifications/{id}", get(verifications::show))
        .route(
            "/api/verifications/{id}/verification_checks",
            post(verifications::check_by_id),
        )
        .route(
            "/api/verifications/{id}/verification_events",
            post(verifications::create_event),
        )
        .route("/api/verification_checks", post(verifications::check_by_to))
        .route("/api/signups", get(signups::index).post(signups::create))
        .route("/api/signups/{id}", get(signups::show))
        .route("/api/signups/{id}/verification_checks", post(signups::check))
        .route(
            "/api/signups/{id}/documents",
            put(signups::put_documents).layer(DefaultBodyLimit::max(signups::documents_body_limit(&state.config))),
        )
        .route("/api/signups/{id}/documents/{kind}", get(signups::show_document))
        .route("/api/signups/{id}/registration", post(signups::register))
        .route("/api/user/documents/{kind}", get(signups::own_document))
        .route("/api/callouts", get(callouts::index).post(callouts::create))
        .route(
            "/api/callouts/{id}",
            get(callouts::show).patch(callouts::update).delete(callouts::destroy),
        )
        .route("/api/callouts/{id}/callout_events", post(callouts::create_event))
        .route("/api/callouts/{id}/statistics", get(callouts::statistics))
        .route(
            "/api/callouts/{id}/callout_participations",
            get(callout_participations::of_callout).post(callout_participations::create),
        )
        .route("/api/callout_participations", get(callout_participations::index))
        .route(
            "/api/callout_participations/{id}/phone_calls",
            get(phone_calls::of_participation),
        )
        .route("/api/callouts/{id}/phone_calls", get(phone_calls::of_callout))
        .route("/api/phone_calls", get(phone_calls::index))
        .route("/api/phone_calls/{id}", get(phone_calls::show))
        .route("/api/remote_phone_call_events", get(phone_calls::events_index))
        .route(
            "/api/remote_phone_call_events/{id}",
            get(phone_calls::events_show).patch(phone_calls::events_update),
        )
        .route(
            "/api/callout_participations/{id}",
            get(callout_participations::show)
                .patch(callout_participations::update)
                .delete(callout_participations::destroy),
        )
        .route(
            "/api/batch_operations",
            get(batch_operations::index).post(batch_operations::create),
        )
        .route(
            "/api/batch_operations/{id}",
            get(batch_operations::show)
                .patch(batch_operations::update)
                .delete(batch_operations::destroy),
        )
        .route(
            "/api/batch_operations/{id}/batch_operation_events",
            post(batch_operations::create_event),
        )
        .route("/api/authenticate", post(session::authenticate))
        .route("/api/logout", post(session::logout))
        .route("/api/user", get(session::current_user));

    let body_limit = state.config.body_limit_bytes;
    Router::new()
        .merge(api)
        .merge(ops::router())
        .merge(crate::openapi::router())
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        // Outermost last: trace → metrics → body limit → credential → rate limit →
        // idempotency → handler.
        .layer(axum::middleware::from_fn_with_state(state.clone(), idempotency::guard))
        .layer(axum::middleware::from_fn_with_state(state.clone(), rate_limit::limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::resolve))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// `201 Created` with `Location` and the resource.
pub(crate) fn created<T: serde::Serialize>(location: String, body: T) -> Response {
    let mut resp = (StatusCode::CREATED, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// `204 No Content` with `Location`, as SCFM answers updates and deletes.
pub(crate) fn no_content(location: String) -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// Overwrite `field` when the input carried a value for it (PATCH semantics: absent
/// leaves the field, `Some(None)` clears a nullable one).
pub(crate) fn set<T: Clone>(field: &mut T, value: &Option<T>) {
    if let Some(v) = value {
        *field = v.clone();
    }
}

/// Apply a PATCH inside the store's compare-and-swap, to whichever row is current when
/// the write happens (the closure may run more than once). The handler has already run
/// `apply` on the row it read, answering 422 when invalid; if a concurrent change makes
/// the same PATCH invalid on the fresh row, the row is left as it is and `invalid` is set,
/// for the handler to answer 409. Never writes a stale copy over someone else's change.
pub(crate) fn patch_fresh<T: Clone>(
    row: &mut T,
    invalid: &std::sync::atomic::AtomicBool,
    apply: impl FnOnce(&mut T) -> Result<(), ValidationErrors>,
) {
    let mut next = row.clone();
    let ok = apply(&mut next).is_ok();
    if ok {
        *row = next;
    }
    invalid.store(!ok, std::sync::atomic::Ordering::Relaxed);
}

/// The 409 of a PATCH that a concurrent change made invalid (see [`patch_fresh`]).
pub(crate) fn changed_concurrently(invalid: &std::sync::atomic::AtomicBool) -> ApiResult<()> {
    if invalid.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(ApiError::Conflict(
            "the record was changed concurrently and the update no longer applies; read it and try again".into(),
        ));
    }
    Ok(())
}

/// `metadata` and `metadata_merge_mode` of an update body.
// Both are read as any JSON and checked in `validate`: the struct is `#[serde(flatten)]`ed
// into update bodies, and a type error inside a flattened struct loses its field name, so
// a wrong type would otherwise be reported under `base` instead of the field.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct MetadataPatch {
    /// Key-value pairs to store on the object.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    /// `merge` (default): update top-level keys; `replace`: the update becomes the metadata;
    /// `deep_merge`: merge nested objects recursively.
    #[schema(value_type = Option<String>, example = "merge")]
    pub metadata_merge_mode: Option<serde_json::Value>,
}

/// A validated metadata change, applied to the current value at write time.
#[derive(Debug, Clone)]
pub(crate) struct MetadataChange(Option<(JsonMap, MergeMode)>);

impl MetadataPatch {
    pub(crate) fn validate(self, errors: &mut ValidationErrors) -> MetadataChange {
        use serde_json::Value;
        let mode = match self.metadata_merge_mode {
            None | Some(Value::Null) => MergeMode::Merge,
            Some(m) => m.as_str().and_then(MergeMode::parse).unwrap_or_else(|| {
                errors.add("metadata_merge_mode", "must be one of: merge, replace, deep_merge");
                MergeMode::Merge
            }),
        };
        MetadataChange(metadata_object(self.metadata, errors).map(|m| (m, mode)))
    }
}

impl MetadataChange {
    pub(crate) fn apply(&self, current: &mut JsonMap) {
        if let Some((update, mode)) = &self.0 {
            *current = metadata::apply(current, update.clone(), *mode);
        }
    }
}

/// Parse permission names, adding errors for unknown ones and for any the caller does not
/// hold itself (a token cannot grant more than it has).
pub(crate) fn granted_permissions(
    names: &[String],
    caller: &auth::Caller,
    errors: &mut ValidationErrors,
) -> Vec<String> {
    match sauti_core::permissions::parse_list(names) {
        Err(unknown) => {
            errors.add("permissions", format!("unknown permissions: {}", unknown.join(", ")));
            vec![]
        }
        Ok(perms) => {
            let missing: Vec<&str> = perms.iter().filter(|p| !caller.has(**p)).map(|p| p.as_str()).collect();
            if !missing.is_empty() {
                errors.add(
                    "permissions",
                    format!(
                        "cannot grant permissions the current token lacks: {}",
                        missing.join(", ")
                    ),
                );
            }
            perms.iter().map(|p| p.as_str().to_string()).collect()
        }
    }
}

/// A request's `metadata`: absent or `null` is `None`; anything but an object is a 422 on
/// `metadata`.
pub(crate) fn metadata_object(value: Option<serde_json::Value>, errors: &mut ValidationErrors) -> Option<JsonMap> {
    match value {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Object(m)) => Some(m),
        Some(_) => {
            errors.add("metadata", "must be an object");
            None
        }
    }
}
