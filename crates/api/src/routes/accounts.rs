//! `/api/account` (the caller's own account) and `/api/accounts` (super admins only).

use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use sauti_core::ValidationErrors;
use sauti_core::filter::{FieldKind, FieldSpec, ResourceSpec};
use sauti_store::{Account, JsonMap, NewAccount};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{MetadataChange, MetadataPatch, created, no_content};
use crate::AppState;
use crate::auth::{AccountRead, AccountWrite, AccountsAdminRead, AccountsAdminWrite, Authed};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Id, JsonBody, RawQuery};
use crate::pagination::list_response;
use crate::wire::{double_option, ts};

pub const SPEC: ResourceSpec = ResourceSpec {
    sortable: &["id", "created_at", "updated_at", "name"],
    fields: &[FieldSpec {
        name: "name",
        column: "name",
        kind: FieldKind::Text,
    }],
    has_metadata: true,
};

const CALL_FLOW_LOGICS: &[&str] = &["CallFlowLogic::HelloWorld", "CallFlowLogic::PlayMessage"];
const PLATFORM_PROVIDERS: &[&str] = &["twilio", "somleng"];
/// What a write-only secret reads as once set.
const FILTERED: &str = "[FILTERED]";

/// Settings every new account starts with (SCFM's, plus sauti's default country).
pub fn default_settings() -> JsonMap {
    let Value::Object(m) = json!({
        "from_phone_number": null,
        "phone_call_queue_limit": 200,
        "max_phone_calls_for_callout_participation": 3,
        "default_country": null,
    }) else {
        unreachable!("a JSON object literal")
    };
    m
}

/// An account (tenant).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AccountBody {
    pub id: i64,
    pub name: String,
    #[schema(value_type = Object)]
    pub metadata: JsonMap,
    /// Account settings: `from_phone_number`, `phone_call_queue_limit`,
    /// `max_phone_calls_for_callout_participation`, `default_country` (ISO 3166 alpha-2),
    /// and any other keys the account stores.
    #[schema(value_type = Object)]
    pub settings: JsonMap,
    pub twilio_account_sid: Option<String>,
    pub somleng_account_sid: Option<String>,
    /// Write-only: `[FILTERED]` once set, `null` otherwise.
    pub twilio_auth_token: Option<String>,
    /// Write-only: `[FILTERED]` once set, `null` otherwise.
    pub somleng_auth_token: Option<String>,
    /// `["super_admin"]` for platform administrators' accounts.
    pub permissions: Vec<String>,
    #[serde(serialize_with = "ts::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: chrono::DateTime<chrono::Utc>,
    #[serde(serialize_with = "ts::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: chrono::DateTime<chrono::Utc>,
    pub call_flow_logic: String,
    pub platform_provider_name: Option<String>,
    pub somleng_api_host: Option<String>,
    pub somleng_api_base_url: Option<String>,
    pub phone_calls_count: i64,
    pub contacts_count: i64,
}

impl From<Account> for AccountBody {
    fn from(a: Account) -> Self {
        let mask = |s: Option<String>| s.map(|_| FILTERED.to_string());
        AccountBody {
            id: a.id,
            name: a.name,
            metadata: a.metadata.0,
            settings: a.settings.0,
            twilio_account_sid: a.twilio_account_sid,
            somleng_account_sid: a.somleng_account_sid,
            twilio_auth_token: mask(a.twilio_auth_token),
            somleng_auth_token: mask(a.somleng_auth_token),
            permissions: if a.super_admin {
                vec!["super_admin".into()]
            } else {
                vec![]
            },
            created_at: a.created_at,
            updated_at: a.updated_at,
            call_flow_logic: a.call_flow_logic,
            platform_provider_name: a.platform_provider_name,
            somleng_api_host: a.somleng_api_host,
            somleng_api_base_url: a.somleng_api_base_url,
            // Phone calls arrive with campaigns (issue 5); none exist before them.
            phone_calls_count: 0,
            contacts_count: 0,
        }
    }
}

/// Body of `POST /api/accounts`; every field is optional.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct AccountCreate {
    pub name: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<JsonMap>,
    #[schema(value_type = Option<Object>)]
    pub settings: Option<JsonMap>,
}

/// Body of `PATCH /api/account` and `PATCH /api/accounts/{id}`. Absent fields are left as
/// they are; `null` clears a nullable field. `settings` keys are merged into the current
/// settings.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct AccountUpdate {
    pub name: Option<String>,
    #[serde(flatten)]
    pub metadata: MetadataPatch,
    #[schema(value_type = Option<Object>)]
    pub settings: Option<JsonMap>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub twilio_account_sid: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub somleng_account_sid: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub twilio_auth_token: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub somleng_auth_token: Option<Option<String>>,
    /// `CallFlowLogic::HelloWorld` or `CallFlowLogic::PlayMessage`.
    pub call_flow_logic: Option<String>,
    /// `twilio` or `somleng`.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub platform_provider_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub somleng_api_host: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub somleng_api_base_url: Option<Option<String>>,
}

/// A validated account update.
struct AccountChange {
    body: AccountUpdate,
    metadata: MetadataChange,
}

impl AccountUpdate {
    fn validate(mut self) -> Result<AccountChange, ApiError> {
        let mut errors = ValidationErrors::new();
        let metadata = std::mem::take(&mut self.metadata).validate(&mut errors);
        if let Some(s) = &self.settings {
            validate_settings(s, &mut errors);
        }
        if let Some(c) = &self.call_flow_logic
            && !CALL_FLOW_LOGICS.contains(&c.as_str())
        {
            errors.add(
                "call_flow_logic",
                format!("must be one of: {}", CALL_FLOW_LOGICS.join(", ")),
            );
        }
        if let Some(Some(p)) = &self.platform_provider_name
            && !PLATFORM_PROVIDERS.contains(&p.as_str())
        {
            errors.add("platform_provider_name", "must be twilio or somleng");
        }
        if let Some(Some(u)) = &self.somleng_api_base_url
            && !url::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
        {
            errors.add("somleng_api_base_url", "must be an http(s) URL");
        }
        errors.into_result()?;
        Ok(AccountChange { body: self, metadata })
    }
}

impl AccountChange {
    fn apply(&self, a: &mut Account) {
        let b = &self.body;
        if let Some(n) = &b.name {
            a.name = n.clone();
        }
        self.metadata.apply(&mut a.metadata.0);
        if let Some(s) = &b.settings {
            a.settings.0.extend(s.clone());
        }
        let set = |field: &mut Option<String>, v: &Option<Option<String>>| {
            if let Some(v) = v {
                *field = v.clone();
            }
        };
        set(&mut a.twilio_account_sid, &b.twilio_account_sid);
        set(&mut a.somleng_account_sid, &b.somleng_account_sid);
        set(&mut a.twilio_auth_token, &b.twilio_auth_token);
        set(&mut a.somleng_auth_token, &b.somleng_auth_token);
        set(&mut a.platform_provider_name, &b.platform_provider_name);
        set(&mut a.somleng_api_host, &b.somleng_api_host);
        set(&mut a.somleng_api_base_url, &b.somleng_api_base_url);
        if let Some(c) = &b.call_flow_logic {
            a.call_flow_logic = c.clone();
        }
    }
}

/// Type-check the settings sauti reads; other keys are the account's own business.
fn validate_settings(s: &JsonMap, errors: &mut ValidationErrors) {
    let int_in = |key: &str, lo: i64, hi: i64, errors: &mut ValidationErrors| {
        if let Some(v) = s.get(key)
            && !v.as_i64().is_some_and(|n| (lo..=hi).contains(&n))
        {
            errors.add(
                format!("settings.{key}"),
                format!("must be a whole number from {lo} to {hi}"),
            );
        }
    };
    int_in("phone_call_queue_limit", 1, 1_000_000, errors);
    int_in("max_phone_calls_for_callout_participation", 1, 100, errors);
    for (key, _, lo, hi) in super::verifications::SETTINGS {
        int_in(key, *lo, *hi, errors);
    }
    if let Some(v) = s.get("from_phone_number")
        && !(v.is_null() || v.as_str().is_some_and(|f| !f.trim().is_empty() && f.len() <= 32))
    {
        errors.add(
            "settings.from_phone_number",
            "must be a sender id or phone number of at most 32 characters",
        );
    }
    if let Some(v) = s.get("default_country")
        && !(v.is_null()
            || v.as_str()
                .is_some_and(|c| c.len() == 2 && c.chars().all(|ch| ch.is_ascii_uppercase())))
    {
        errors.add(
            "settings.default_country",
            "must be an ISO 3166 alpha-2 code such as KE",
        );
    }
}

fn location(id: i64) -> String {
    format!("/api/accounts/{id}")
}

/// The account as the API shows it, with its counts.
async fn body(st: &AppState, a: Account) -> ApiResult<AccountBody> {
    let contacts_count = st.store.count_contacts(a.id).await?;
    Ok(AccountBody {
        contacts_count,
        ..a.into()
    })
}

/// Retrieve the caller's account.
#[utoipa::path(get, operation_id = "accounts_show_current", path = "/api/account", tag = "accounts", security(("bearer" = [])), responses(
    (status = 200, body = AccountBody),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
))]
pub async fn show_current(auth: Authed<AccountRead>, State(st): State<AppState>) -> ApiResult<axum::Json<AccountBody>> {
    let a = st.store.get_account(auth.account_id).await?.ok_or(ApiError::NotFound)?;
    Ok(axum::Json(body(&st, a).await?))
}

/// Update the caller's account.
#[utoipa::path(patch, operation_id = "accounts_update_current", path = "/api/account", tag = "accounts", security(("bearer" = [])), request_body = AccountUpdate, responses(
    (status = 204, description = "Updated"),
    (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 415, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn update_current(
    auth: Authed<AccountWrite>,
    State(st): State<AppState>,
    JsonBody(body): JsonBody<AccountUpdate>,
) -> ApiResult<Response> {
    let change = body.validate()?;
    st.store
        .update_account(auth.account_id, |a| change.apply(a))
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(no_content(location(auth.account_id)))
}

/// List all accounts (super admins).
#[utoipa::path(get, operation_id = "accounts_index", path = "/api/accounts", tag = "accounts", security(("bearer" = [])), params(crate::openapi::ListParams), responses(
    (status = 200, body = Vec<AccountBody>, headers(("Per-Page" = u32), ("Total" = u64), ("Link" = String))),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn index(
    _auth: Authed<AccountsAdminRead>,
    State(st): State<AppState>,
    uri: Uri,
    raw: RawQuery,
) -> ApiResult<Response> {
    let q = raw.list_query(&SPEC)?;
    let page = st.store.list_accounts(&q).await?;
    let mut items = Vec::with_capacity(page.items.len());
    for a in page.items {
        items.push(body(&st, a).await?);
    }
    let page = sauti_store::Page {
        items,
        total: page.total,
    };
    Ok(list_response(&uri, &raw.0, &q, page))
}

/// Create an account (super admins).
#[utoipa::path(post, operation_id = "accounts_create", path = "/api/accounts", tag = "accounts", security(("bearer" = [])), request_body = AccountCreate, responses(
    (status = 201, body = AccountBody, headers(("Location" = String))),
    (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 409, body = crate::ErrorBody), (status = 415, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn create(
    _auth: Authed<AccountsAdminWrite>,
    State(st): State<AppState>,
    JsonBody(body): JsonBody<AccountCreate>,
) -> ApiResult<Response> {
    let mut errors = ValidationErrors::new();
    let mut settings = default_settings();
    if let Some(s) = body.settings {
        validate_settings(&s, &mut errors);
        settings.extend(s);
    }
    errors.into_result()?;
    let new = NewAccount {
        name: body.name.unwrap_or_default(),
        super_admin: false,
        metadata: body.metadata.unwrap_or_default(),
        settings,
    };
    let a = st.store.create_account(&new).await?;
    Ok(created(location(a.id), AccountBody::from(a)))
}

/// Retrieve an account (super admins).
#[utoipa::path(get, operation_id = "accounts_show", path = "/api/accounts/{id}", tag = "accounts", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 200, body = AccountBody),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn show(
    _auth: Authed<AccountsAdminRead>,
    State(st): State<AppState>,
    Id(id): Id,
) -> ApiResult<axum::Json<AccountBody>> {
    let a = st.store.get_account(id).await?.ok_or(ApiError::NotFound)?;
    Ok(axum::Json(body(&st, a).await?))
}

/// Update an account (super admins).
#[utoipa::path(patch, operation_id = "accounts_update", path = "/api/accounts/{id}", tag = "accounts", security(("bearer" = [])), params(("id" = i64, Path)), request_body = AccountUpdate, responses(
    (status = 204, description = "Updated"),
    (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 404, body = crate::ErrorBody), (status = 415, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn update(
    _auth: Authed<AccountsAdminWrite>,
    State(st): State<AppState>,
    Id(id): Id,
    JsonBody(body): JsonBody<AccountUpdate>,
) -> ApiResult<Response> {
    let change = body.validate()?;
    st.store
        .update_account(id, |a| change.apply(a))
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(no_content(location(id)))
}

/// Delete an account and everything it owns (super admins). The caller's own account
/// cannot be deleted this way.
#[utoipa::path(delete, operation_id = "accounts_destroy", path = "/api/accounts/{id}", tag = "accounts", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 204, description = "Deleted"),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 404, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn destroy(auth: Authed<AccountsAdminWrite>, State(st): State<AppState>, Id(id): Id) -> ApiResult<Response> {
    if id == auth.account_id {
        return Err(ApiError::validation(
            "base",
            "cannot delete the account of the access token in use",
        ));
    }
    if !st.store.delete_account(id).await? {
        return Err(ApiError::NotFound);
    }
    // Its rows are gone with it; its uploaded files (client logos) go too. Best effort:
    // nothing can reach them any more, so a failure only leaves litter for the operator.
    if let Err(e) = sauti_store::blobs::Blobs::new(&st.config.data_dir)
        .delete_account(id)
        .await
    {
        tracing::warn!(error = %e, account = id, "removing a deleted account's files");
    }
    Ok(no_content("/api/accounts".into()))
}
