//! `/api/providers`: an account's routes to the outside. Settings are checked against
//! the adapter of the provider's kind; secrets in them (`password`, `auth_token`,
//! `api_key`, `secret`, at any depth) are write-only and answer `"[FILTERED]"`.

use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use sauti_core::ValidationErrors;
use sauti_core::filter::{FieldKind, FieldSpec, ResourceSpec};
use sauti_store::{Json, JsonMap, Provider};
use serde::Deserialize;
use serde_json::{Value, json};

use std::sync::atomic::AtomicBool;

use super::{MetadataPatch, changed_concurrently, created, no_content, patch_fresh};
use crate::AppState;
use crate::auth::{Authed, ProvidersRead, ProvidersWrite};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Id, JsonBody, RawQuery};
use crate::pagination::list_response;

pub const SPEC: ResourceSpec = ResourceSpec {
    sortable: &["id", "created_at", "updated_at", "name", "kind", "weight"],
    fields: &[
        FieldSpec {
            name: "name",
            column: "name",
            kind: FieldKind::Text,
        },
        FieldSpec {
            name: "kind",
            column: "kind",
            kind: FieldKind::Text,
        },
        FieldSpec {
            name: "active",
            column: "active",
            kind: FieldKind::Bool,
        },
    ],
    has_metadata: true,
};

/// Keys whose values are credentials.
const SECRET_KEYS: &[&str] = &["password", "auth_token", "api_key", "secret"];
const FILTERED: &str = "[FILTERED]";

/// `settings` with every secret replaced by `"[FILTERED]"`.
fn redacted(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let v = if SECRET_KEYS.contains(&k.as_str()) && !v.is_null() {
                        Value::String(FILTERED.into())
                    } else {
                        redacted(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(redacted).collect()),
        other => other.clone(),
    }
}

/// Merge `update` into `current` settings; a secret sent back as `"[FILTERED]"` (a
/// client echoing what it read) keeps the stored value.
fn merge_settings(current: &mut JsonMap, update: &JsonMap) {
    for (k, v) in update {
        if v.as_str() == Some(FILTERED) {
            continue;
        }
        match (current.get_mut(k), v) {
            (Some(Value::Object(cur)), Value::Object(up)) => merge_settings(cur, up),
            _ => {
                current.insert(k.clone(), v.clone());
            }
        }
    }
}

pub(crate) fn body(st: &AppState, p: &Provider) -> Value {
    let mut v = json!({
        "id": p.id,
        "name": p.name,
        "kind": p.kind,
        "channels": p.channels.0,
        "settings": redacted(&Value::Object(p.settings.0.clone())),
        "prefix": p.prefix,
        "weight": p.weight,
        "throughput_per_second": p.throughput_per_second,
        "active": p.active,
        "metadata": p.metadata.0,
        "created_at": sauti_store::transmissions::ts(&p.created_at),
        "updated_at": sauti_store::transmissions::ts(&p.updated_at),
        "account_id": p.account_id,
    });
    if p.kind == "kannel" {
        // What the operator puts in Kannel's `sms-service` (`get-url`) for MO messages;
        // the token in it is the credential of this provider's callbacks.
        v["mo_url"] = Value::String(sauti_channels::kannel::mo_url(
            &st.config.public_url,
            &st.config.secret_key,
            p.id,
        ));
    }
    v
}

/// Body of `POST /api/providers` and `PATCH /api/providers/{id}`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct ProviderInput {
    pub name: Option<String>,
    /// `sandbox`, `smpp`, `twilio` (Twilio-compatible: Twilio, Somleng), `kannel`, `smtp`.
    /// Fixed once created.
    pub kind: Option<String>,
    /// Channels served (`sms`, `email`); defaults to every channel the kind can serve.
    pub channels: Option<Vec<String>>,
    /// Kind-specific settings (see docs/providers.md); secrets are write-only. On update
    /// the given keys are merged into the stored settings.
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Value>,
    /// Destination prefix (E.164 digits, e.g. `254`): the longest matching prefix wins.
    pub prefix: Option<String>,
    /// Share of traffic among providers with the same prefix (higher gets more).
    pub weight: Option<i64>,
    /// Limit in SMS segments per second; `null` for none.
    #[serde(default, deserialize_with = "crate::wire::double_option")]
    #[schema(value_type = Option<i64>)]
    pub throughput_per_second: Option<Option<i64>>,
    pub active: Option<bool>,
    #[serde(flatten)]
    pub metadata: MetadataPatch,
}

impl ProviderInput {
    /// Apply to `p` (a new provider with defaults, or the stored one) and check the result.
    fn apply(self, p: &mut Provider, creating: bool) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if let Some(n) = self.name {
            p.name = n.trim().to_string();
        }
        if p.name.is_empty() {
            errors.add("name", "can't be blank");
        }
        match (self.kind, creating) {
            (Some(k), true) => p.kind = k,
            (None, true) => errors.add("kind", "can't be blank"),
            (Some(k), false) if k != p.kind => errors.add("kind", "cannot be changed; create another provider"),
            _ => {}
        }
        let allowed = sauti_channels::kind_channels(&p.kind);
        if !p.kind.is_empty() && allowed.is_empty() {
            errors.add("kind", format!("must be one of: {}", sauti_channels::KINDS.join(", ")));
        }
        match self.channels {
            Some(c) => {
                if c.is_empty() {
                    errors.add("channels", "can't be empty");
                }
                for ch in &c {
                    if !allowed.contains(&ch.as_str()) {
                        errors.add("channels", format!("{ch} is not served by {} providers", p.kind));
                    }
                }
                p.channels = Json(c);
            }
            None if creating => p.channels = Json(allowed.iter().map(|s| s.to_string()).collect()),
            None => {}
        }
        match self.settings {
            Some(Value::Object(m)) => merge_settings(&mut p.settings.0, &m),
            Some(Value::Null) | None => {}
            Some(_) => errors.add("settings", "must be an object"),
        }
        if errors.is_empty()
            && let Err(sauti_channels::ConfigError::Invalid { field, message }) =
                sauti_channels::validate(&p.kind, &Value::Object(p.settings.0.clone()))
        {
            errors.add(field, message);
        }
        if let Some(prefix) = self.prefix {
            let prefix = prefix.trim().trim_start_matches('+').to_string();
            if !prefix.chars().all(|c| c.is_ascii_digit()) || prefix.len() > 15 {
                errors.add("prefix", "must be the leading digits of E.164 numbers, e.g. 254");
            }
            p.prefix = prefix;
        }
        if let Some(w) = self.weight {
            if !(1..=1_000_000).contains(&w) {
                errors.add("weight", "must be between 1 and 1000000");
            }
            p.weight = w;
        }
        if let Some(t) = self.throughput_per_second {
            if t.is_some_and(|t| !(1..=1_000_000).contains(&t)) {
                errors.add("throughput_per_second", "must be between 1 and 1000000, or null");
            }
            p.throughput_per_second = t;
        }
        if let Some(a) = self.active {
            p.active = a;
        }
        let change = self.metadata.validate(&mut errors);
        change.apply(&mut p.metadata.0);
        errors.into_result()
    }
}

fn location(id: i64) -> String {
    format!("/api/providers/{id}")
}

/// List providers.
#[utoipa::path(get, path = "/api/providers", operation_id = "providers_index", tag = "providers", security(("bearer" = [])), params(crate::openapi::ListParams), responses(
    (status = 200, body = Vec<Object>, headers(("Per-Page" = u32), ("Total" = u64), ("Link" = String))),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn index(
    auth: Authed<ProvidersRead>,
    State(st): State<AppState>,
    uri: Uri,
    raw: RawQuery,
) -> ApiResult<Response> {
    let q = raw.list_query(&SPEC)?;
    let page = st.store.list_providers(auth.account_id, &q).await?;
    Ok(list_response(&uri, &raw.0, &q, page.map(|p| body(&st, &p))))
}

/// Create a provider.
#[utoipa::path(post, path = "/api/providers", operation_id = "providers_create", tag = "providers", security(("bearer" = [])), request_body = ProviderInput, responses(
    (status = 201, body = Object, headers(("Location" = String))),
    (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 415, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn create(
    auth: Authed<ProvidersWrite>,
    State(st): State<AppState>,
    JsonBody(input): JsonBody<ProviderInput>,
) -> ApiResult<Response> {
    let now = sauti_core::clock::now();
    let mut p = Provider {
        id: 0,
        account_id: auth.account_id,
        name: String::new(),
        kind: String::new(),
        channels: Json(vec![]),
        settings: Json(JsonMap::new()),
        prefix: String::new(),
        weight: 1,
        throughput_per_second: None,
        active: true,
        metadata: Json(JsonMap::new()),
        created_at: now,
        updated_at: now,
    };
    input.apply(&mut p, true)?;
    let p = st.store.create_provider(&p).await?;
    Ok(created(location(p.id), body(&st, &p)))
}

/// Retrieve a provider.
#[utoipa::path(get, path = "/api/providers/{id}", operation_id = "providers_show", tag = "providers", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 200, body = Object), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn show(auth: Authed<ProvidersRead>, State(st): State<AppState>, Id(id): Id) -> ApiResult<axum::Json<Value>> {
    let p = st
        .store
        .get_provider(auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(axum::Json(body(&st, &p)))
}

/// Update a provider; `settings` keys are merged into the stored ones.
#[utoipa::path(patch, path = "/api/providers/{id}", operation_id = "providers_update", tag = "providers", security(("bearer" = [])), params(("id" = i64, Path)), request_body = ProviderInput, responses(
    (status = 204, description = "Updated"),
    (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 404, body = crate::ErrorBody), (status = 409, body = crate::ErrorBody), (status = 415, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn update(
    auth: Authed<ProvidersWrite>,
    State(st): State<AppState>,
    Id(id): Id,
    JsonBody(input): JsonBody<ProviderInput>,
) -> ApiResult<Response> {
    let mut first = st
        .store
        .get_provider(auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    input.clone().apply(&mut first, false)?;
    let invalid = AtomicBool::new(false);
    st.store
        .update_provider(auth.account_id, id, |p| {
            patch_fresh(p, &invalid, |p| input.clone().apply(p, false))
        })
        .await?
        .ok_or(ApiError::NotFound)?;
    changed_concurrently(&invalid)?;
    Ok(no_content(location(id)))
}

/// Delete a provider. Attempts it made keep their history.
#[utoipa::path(delete, path = "/api/providers/{id}", operation_id = "providers_destroy", tag = "providers", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 204, description = "Deleted"), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn destroy(auth: Authed<ProvidersWrite>, State(st): State<AppState>, Id(id): Id) -> ApiResult<Response> {
    if !st.store.delete_provider(auth.account_id, id).await? {
        return Err(ApiError::NotFound);
    }
    Ok(no_content("/api/providers".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_filtered_at_any_depth_and_kept_when_echoed() {
        let v = json!({"host": "h", "password": "pw", "nested": {"auth_token": "t", "api_key": null}, "list": [{"secret": "s"}]});
        assert_eq!(
            redacted(&v),
            json!({"host": "h", "password": "[FILTERED]", "nested": {"auth_token": "[FILTERED]", "api_key": null}, "list": [{"secret": "[FILTERED]"}]})
        );
        let mut cur = v.as_object().unwrap().clone();
        merge_settings(
            &mut cur,
            json!({"password": "[FILTERED]", "host": "h2"}).as_object().unwrap(),
        );
        assert_eq!(cur["password"], "pw");
        assert_eq!(cur["host"], "h2");
    }
}
