//! `/api/callouts` (SCFM callouts: campaigns), their events and statistics.

use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use sauti_core::ValidationErrors;
use sauti_core::filter::{FieldKind, FieldSpec, ResourceSpec, parse_time};
use sauti_core::schedule::{parse_time_of_day, parse_time_zone};
use sauti_store::callouts::{RETRYABLE, callout_status};
use sauti_store::{Callout, CalloutEvent, CalloutTransition, Json, JsonMap};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{MetadataPatch, created, no_content};
use crate::AppState;
use crate::auth::{Authed, CalloutsRead, CalloutsWrite};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Id, JsonBody, RawQuery, filter_params_to_pairs};
use crate::pagination::list_response;
use crate::wire::double_option;

pub const SPEC: ResourceSpec = ResourceSpec {
    sortable: &["id", "created_at", "updated_at", "status"],
    fields: &[
        FieldSpec {
            name: "status",
            column: "status",
            kind: FieldKind::Text,
        },
        FieldSpec {
            name: "channel",
            column: "channel",
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

/// The call flows sauti runs (SCFM's names).
pub const CALL_FLOWS: &[&str] = &[
    "CallFlowLogic::HelloWorld",
    "CallFlowLogic::PlayMessage",
    "CallFlowLogic::Say",
    "CallFlowLogic::Gather",
];

/// Most sends a callout may ask for per minute.
const MAX_RATE: i64 = 1_000_000;

/// A daily sending window.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowInput {
    /// Local time `HH:MM` from which sending is allowed.
    pub start: String,
    /// Local time `HH:MM` at which sending stops (before `start`: the window spans midnight).
    pub end: String,
    /// IANA time zone (default `UTC`), e.g. `Africa/Nairobi`.
    pub time_zone: Option<String>,
}

/// Body of `POST /api/callouts` and `PATCH /api/callouts/{id}`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CalloutInput {
    /// `voice` (default, as SCFM), `sms` or `email`. Fixed once the callout has started.
    pub channel: Option<String>,
    /// Voice: `CallFlowLogic::HelloWorld`, `PlayMessage`, `Say` or `Gather`.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub call_flow_logic: Option<Option<String>>,
    /// Voice: the audio `PlayMessage` plays (an http(s) URL the provider fetches)…
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub audio_url: Option<Option<String>>,
    /// …or an uploaded recording (`/api/recordings`) of the account, served to the
    /// provider by sauti; it wins over `audio_url`.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub recording_id: Option<Option<i64>>,
    /// SMS text, the plain body of an email, or what `Say` speaks. `{{first_name}}`,
    /// `{{metadata.key}}`, … are filled per contact.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub body: Option<Option<String>>,
    /// Email subject.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub subject: Option<Option<String>>,
    /// Email HTML.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub html: Option<Option<String>>,
    /// A stored text (`/api/texts`) instead of `body`.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub text_id: Option<Option<i64>>,
    /// A stored email template (`/api/templates`).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub template_id: Option<Option<i64>>,
    /// Sender id or number.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub from: Option<Option<String>>,
    /// The audience: a group's contacts…
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub group_id: Option<Option<i64>>,
    /// …and/or the contacts matching a filter (the `q` of `GET /api/contacts` as JSON).
    /// The audience becomes participations when the callout starts; opted-out contacts
    /// are never included.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Object>)]
    pub contact_filter_params: Option<Option<JsonMap>>,
    /// Sends per minute (ICTCore `cpm`); `null`: as fast as the providers take them.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub rate_per_minute: Option<Option<i64>>,
    /// Attempts per contact, 1–10 (default 3).
    pub max_attempts: Option<i64>,
    /// Seconds between a failed attempt and the next (default 600).
    pub retry_delay: Option<i64>,
    /// Outcomes tried again: any of `busy`, `not_answered`, `failed`, `undelivered`
    /// (default all).
    pub retry_on: Option<Vec<String>>,
    /// Nothing is sent before this time.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub start_at: Option<Option<String>>,
    /// At this time the callout stops; what was not sent is canceled.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub stop_at: Option<Option<String>>,
    /// A daily window outside which nothing is sent.
    #[serde(default, deserialize_with = "double_option")]
    pub window: Option<Option<WindowInput>>,
    /// Settings for the call flow (SCFM). sauti reads `voice` and `language` (of `<Say>`),
    /// and for `Gather`: `num_digits` (1–20, default 1), `finish_on_key` (one of `0-9*#`,
    /// or empty; default `#`), `timeout` (seconds, 1–60, default 5), `no_input_message`,
    /// `thank_you_message`.
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Value>,
    #[serde(flatten)]
    pub metadata: MetadataPatch,
}

/// Body of `POST /api/callouts/{id}/callout_events`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CalloutEventInput {
    /// `start`, `pause`, `resume` or `stop`.
    pub event: String,
}

fn location(id: i64) -> String {
    format!("/api/callouts/{id}")
}

/// Apply `input` to `c`, checking every field against the account's data.
async fn apply(
    st: &AppState,
    account_id: i64,
    c: &mut Callout,
    input: CalloutInput,
) -> ApiResult<super::MetadataChange> {
    let mut errors = ValidationErrors::new();
    if let Some(ch) = &input.channel {
        if !["voice", "sms", "email"].contains(&ch.as_str()) {
            errors.add("channel", "must be one of: voice, sms, email");
        } else if *ch != c.channel && c.status != callout_status::INITIALIZED {
            errors.add("channel", "cannot change once the callout has started");
        } else {
            c.channel = ch.clone();
        }
    }
    super::set(&mut c.call_flow_logic, &input.call_flow_logic);
    super::set(&mut c.audio_url, &input.audio_url);
    super::set(&mut c.recording_id, &input.recording_id);
    super::set(&mut c.body, &input.body);
    super::set(&mut c.subject, &input.subject);
    super::set(&mut c.html, &input.html);
    super::set(&mut c.text_id, &input.text_id);
    super::set(&mut c.template_id, &input.template_id);
    super::set(&mut c.group_id, &input.group_id);
    super::set(&mut c.rate_per_minute, &input.rate_per_minute);
    if let Some(f) = &input.from {
        c.from_address = f.as_ref().map(|f| f.trim().to_string());
    }
    if let Some(f) = &input.contact_filter_params {
        c.contact_filter = f.clone().map(Json);
    }
    if let Some(n) = input.max_attempts {
        c.max_attempts = n;
    }
    if let Some(n) = input.retry_delay {
        c.retry_delay_seconds = n;
    }
    if let Some(list) = &input.retry_on {
        let bad: Vec<&str> = list
            .iter()
            .map(String::as_str)
            .filter(|o| !RETRYABLE.contains(o))
            .collect();
        if !bad.is_empty() {
            errors.add(
                "retry_on",
                format!(
                    "unknown outcomes {}: use any of {}",
                    bad.join(", "),
                    RETRYABLE.join(", ")
                ),
            );
        }
        c.retry_on = list.join(",");
    }
    for (field, value, slot) in [
        ("start_at", &input.start_at, &mut c.start_at),
        ("stop_at", &input.stop_at, &mut c.stop_at),
    ] {
        if let Some(v) = value {
            *slot = match v {
                None => None,
                Some(s) => parse_time(s).or_else(|| {
                    errors.add(field, "must be an ISO 8601 time");
                    None
                }),
            };
        }
    }
    if let Some(w) = &input.window {
        match w {
            None => {
                c.window_start = None;
                c.window_end = None;
                c.time_zone = None;
            }
            Some(w) => {
                let start = parse_time_of_day(&w.start);
                let end = parse_time_of_day(&w.end);
                if start.is_none() {
                    errors.add("window", "start must be a time of day, HH:MM");
                }
                if end.is_none() {
                    errors.add("window", "end must be a time of day, HH:MM");
                }
                if start.is_some() && start == end {
                    errors.add("window", "start and end must differ");
                }
                let tz = w.time_zone.clone().unwrap_or_else(|| "UTC".into());
                if parse_time_zone(&tz).is_none() {
                    errors.add(
                        "window",
                        format!("unknown time zone {tz:?} (use an IANA name such as Africa/Nairobi)"),
                    );
                }
                c.window_start = start.map(|t| t.format("%H:%M").to_string());
                c.window_end = end.map(|t| t.format("%H:%M").to_string());
                c.time_zone = Some(tz);
            }
        }
    }
    if let Some(s) = input.settings {
        match s {
            Value::Object(m) => c.settings = Json(m),
            Value::Null => c.settings = Json(JsonMap::new()),
            _ => errors.add("settings", "must be an object"),
        }
    }
    let metadata = input.metadata.validate(&mut errors);

    // The whole callout, as it would be.
    if !(1..=10).contains(&c.max_attempts) {
        errors.add("max_attempts", "must be between 1 and 10");
    }
    if !(0..=7 * 86_400).contains(&c.retry_delay_seconds) {
        errors.add("retry_delay", "must be between 0 and 604800 seconds");
    }
    if let Some(r) = c.rate_per_minute
        && !(1..=MAX_RATE).contains(&r)
    {
        errors.add("rate_per_minute", format!("must be between 1 and {MAX_RATE}, or null"));
    }
    if let (Some(a), Some(b)) = (c.start_at, c.stop_at)
        && b <= a
    {
        errors.add("stop_at", "must be after start_at");
    }
    check_call_audio(
        st,
        account_id,
        c.call_flow_logic.as_deref(),
        c.audio_url.as_deref(),
        c.recording_id,
        &mut errors,
    )
    .await?;
    if c.text_id.is_some() && c.body.is_some() {
        errors.add("body", "give either body or text_id, not both");
    }
    if let Some(id) = c.text_id
        && st.store.get_text(account_id, id).await?.is_none()
    {
        errors.add("text_id", "does not exist");
    }
    if let Some(id) = c.template_id
        && st.store.get_template(account_id, id).await?.is_none()
    {
        errors.add("template_id", "does not exist");
    }
    if let Some(id) = c.group_id
        && st.store.get_group(account_id, id).await?.is_none()
    {
        errors.add("group_id", "does not exist");
    }
    if let Some(f) = &c.contact_filter {
        match audience_filter(st, account_id, &f.0).await {
            Ok(normalised) => c.contact_filter = Some(Json(normalised)),
            Err(e) => errors.add("contact_filter_params", e),
        }
    }
    if let Some(f) = &c.from_address
        && (f.is_empty() || f.chars().count() > 64)
    {
        errors.add("from", "must be 1 to 64 characters");
    }
    let has_text = c.body.as_deref().is_some_and(|b| !b.trim().is_empty()) || c.text_id.is_some();
    match c.channel.as_str() {
        "sms" if !has_text => errors.add("body", "can't be blank (give body or text_id)"),
        "sms" if c.body.as_deref().is_some_and(|b| b.chars().count() > 1600) => {
            errors.add("body", "is too long (at most 1600 characters)")
        }
        "voice" => check_voice(c, has_text, &mut errors),
        "email" if c.template_id.is_none() => {
            if c.subject.as_deref().is_none_or(|s| s.trim().is_empty()) {
                errors.add("subject", "can't be blank (give subject or template_id)");
            }
            if !has_text && c.html.as_deref().is_none_or(|h| h.trim().is_empty()) {
                errors.add("body", "can't be blank (give body, html or template_id)");
            }
        }
        _ => {}
    }
    errors.into_result()?;
    Ok(metadata)
}

/// The call flow and audio of a call (a callout's, or a voice message's own): a flow
/// sauti runs, audio a provider can fetch, a recording of the account.
pub(crate) async fn check_call_audio(
    st: &AppState,
    account_id: i64,
    flow: Option<&str>,
    audio_url: Option<&str>,
    recording_id: Option<i64>,
    errors: &mut ValidationErrors,
) -> ApiResult<()> {
    if let Some(f) = flow
        && !CALL_FLOWS.contains(&f)
    {
        errors.add("call_flow_logic", format!("must be one of: {}", CALL_FLOWS.join(", ")));
    }
    if let Some(u) = audio_url
        && !url::Url::parse(u).is_ok_and(|u| ["http", "https"].contains(&u.scheme()))
    {
        errors.add("audio_url", "must be an http(s) URL");
    }
    if let Some(id) = recording_id
        && st.store.get_recording(account_id, id).await?.is_none()
    {
        errors.add("recording_id", "does not exist");
    }
    Ok(())
}

/// What a call flow needs to run: audio to play (`PlayMessage`), text to say (`Say`,
/// `Gather`).
pub(crate) fn check_call_content(flow: Option<&str>, has_audio: bool, has_text: bool, errors: &mut ValidationErrors) {
    match flow {
        Some("CallFlowLogic::PlayMessage") if !has_audio => errors.add(
            "audio_url",
            "can't be blank for PlayMessage (give audio_url or recording_id)",
        ),
        Some("CallFlowLogic::Say" | "CallFlowLogic::Gather") if !has_text => {
            errors.add("body", "can't be blank for Say and Gather (give body or text_id)")
        }
        _ => {}
    }
}

/// What a voice callout's call flow needs: audio to play, text to say, sane `Gather`
/// settings (the provider would reject the TwiML, or wait forever, otherwise).
fn check_voice(c: &Callout, has_text: bool, errors: &mut ValidationErrors) {
    check_call_content(
        c.call_flow_logic.as_deref(),
        c.audio_url.is_some() || c.recording_id.is_some(),
        has_text,
        errors,
    );
    if c.call_flow_logic.as_deref() != Some("CallFlowLogic::Gather") {
        return;
    }
    let s = &c.settings.0;
    for (key, range) in [("num_digits", 1..=20), ("timeout", 1..=60)] {
        if let Some(v) = s.get(key)
            && v.as_i64().is_none_or(|n| !range.contains(&n))
        {
            errors.add(
                "settings",
                format!("{key} must be a whole number from {} to {}", range.start(), range.end()),
            );
        }
    }
    if let Some(v) = s.get("finish_on_key")
        && v.as_str()
            .is_none_or(|k| k.chars().count() > 1 || !k.chars().all(|ch| "0123456789*#".contains(ch)))
    {
        errors.add("settings", "finish_on_key must be one of 0-9, * or #, or empty");
    }
    for key in ["no_input_message", "thank_you_message", "voice", "language"] {
        if s.get(key).is_some_and(|v| !v.is_string()) {
            errors.add("settings", format!("{key} must be a string"));
        }
    }
}

/// Validate a `contact_filter_params` object as `GET /api/contacts` would its `q`, and
/// store numbers in E.164 so the workers need not know the account's country.
pub(crate) async fn audience_filter(st: &AppState, account_id: i64, params: &JsonMap) -> Result<JsonMap, String> {
    let pairs = RawQuery(filter_params_to_pairs(params));
    super::contacts::contacts_query(st, account_id, &pairs)
        .await
        .map_err(|e| match e {
            ApiError::Validation(v) => v.0.into_values().flatten().collect::<Vec<_>>().join("; "),
            other => other.to_string(),
        })?;
    let mut out = params.clone();
    if let Some(Value::String(m)) = params.get("msisdn") {
        let region = super::contacts::default_region(st, account_id)
            .await
            .map_err(|e| e.to_string())?;
        if let Ok(n) = sauti_core::msisdn::Msisdn::parse(m, region) {
            out.insert("msisdn".into(), Value::String(n.into_string()));
        }
    }
    Ok(out)
}

/// List callouts.
#[utoipa::path(get, path = "/api/callouts", operation_id = "callouts_index", tag = "callouts", security(("bearer" = [])), params(crate::openapi::ListParams), responses(
    (status = 200, body = Vec<Object>, headers(("Per-Page" = u32), ("Total" = u64), ("Link" = String))),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn index(
    auth: Authed<CalloutsRead>,
    State(st): State<AppState>,
    uri: Uri,
    raw: RawQuery,
) -> ApiResult<Response> {
    let q = raw.list_query(&SPEC)?;
    let page = st.store.list_callouts(auth.account_id, &q).await?;
    Ok(list_response(&uri, &raw.0, &q, page.map(|c| c.to_json())))
}

/// Create a callout (`initialized`).
#[utoipa::path(post, path = "/api/callouts", operation_id = "callouts_create", tag = "callouts", security(("bearer" = [])), request_body = CalloutInput, responses(
    (status = 201, body = Object, headers(("Location" = String))),
    (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 415, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn create(
    auth: Authed<CalloutsWrite>,
    State(st): State<AppState>,
    JsonBody(input): JsonBody<CalloutInput>,
) -> ApiResult<Response> {
    let channel = input.channel.clone().unwrap_or_else(|| "voice".into());
    let mut c = Callout::new(auth.account_id, &channel);
    c.created_by_id = auth.user_id;
    let metadata = apply(&st, auth.account_id, &mut c, input).await?;
    metadata.apply(&mut c.metadata.0);
    let c = st.store.create_callout(&c).await?;
    Ok(created(location(c.id), c.to_json()))
}

pub(crate) async fn find(st: &AppState, account_id: i64, id: i64) -> ApiResult<Callout> {
    st.store.get_callout(account_id, id).await?.ok_or(ApiError::NotFound)
}

/// Retrieve a callout.
#[utoipa::path(get, path = "/api/callouts/{id}", operation_id = "callouts_show", tag = "callouts", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 200, body = Object),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn show(auth: Authed<CalloutsRead>, State(st): State<AppState>, Id(id): Id) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(find(&st, auth.account_id, id).await?.to_json()))
}

/// Update a callout. A change of rate or window applies from now; content changes apply
/// to participations added afterwards.
#[utoipa::path(patch, path = "/api/callouts/{id}", operation_id = "callouts_update", tag = "callouts", security(("bearer" = [])), params(("id" = i64, Path)), request_body = CalloutInput, responses(
    (status = 204, description = "Updated"),
    (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 404, body = crate::ErrorBody), (status = 409, body = crate::ErrorBody), (status = 415, body = crate::ErrorBody),
    (status = 422, body = crate::ErrorBody),
))]
pub async fn update(
    auth: Authed<CalloutsWrite>,
    State(st): State<AppState>,
    Id(id): Id,
    JsonBody(input): JsonBody<CalloutInput>,
) -> ApiResult<Response> {
    let mut c = find(&st, auth.account_id, id).await?;
    let channel_changes = input.channel.is_some();
    let metadata = apply(&st, auth.account_id, &mut c, input).await?;
    let wanted = c.clone();
    let invalid = std::sync::atomic::AtomicBool::new(false);
    st.store
        .update_callout(auth.account_id, id, |row| {
            super::patch_fresh(row, &invalid, |row| {
                if channel_changes && row.channel != wanted.channel && row.status != callout_status::INITIALIZED {
                    let mut e = ValidationErrors::new();
                    e.add("channel", "cannot change once the callout has started");
                    return Err(e);
                }
                let (status, meta) = (row.status.clone(), row.metadata.clone());
                *row = Callout {
                    status,
                    metadata: meta,
                    ..wanted.clone()
                };
                metadata.apply(&mut row.metadata.0);
                Ok(())
            })
        })
        .await?
        .ok_or(ApiError::NotFound)?;
    super::changed_concurrently(&invalid)?;
    Ok(no_content(location(id)))
}

/// Delete a callout that is not running, with its participations.
#[utoipa::path(delete, path = "/api/callouts/{id}", operation_id = "callouts_destroy", tag = "callouts", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 204, description = "Deleted"),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
    (status = 422, body = crate::ErrorBody),
))]
pub async fn destroy(auth: Authed<CalloutsWrite>, State(st): State<AppState>, Id(id): Id) -> ApiResult<Response> {
    match st.store.delete_callout(auth.account_id, id).await? {
        CalloutTransition::Done(_) => Ok(no_content("/api/callouts".into())),
        CalloutTransition::NotFound => Err(ApiError::NotFound),
        CalloutTransition::Refused(m) => Err(ApiError::validation("base", m)),
    }
}

/// `start`, `pause`, `resume` or `stop` a callout (SCFM's state machine: initialized →
/// running ⇄ paused → stopped, resume from stopped; `completed` when every participation
/// is done).
#[utoipa::path(post, path = "/api/callouts/{id}/callout_events", operation_id = "callouts_event", tag = "callouts", security(("bearer" = [])), params(("id" = i64, Path)), request_body = CalloutEventInput, responses(
    (status = 201, body = Object, headers(("Location" = String))),
    (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 404, body = crate::ErrorBody), (status = 415, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn create_event(
    auth: Authed<CalloutsWrite>,
    State(st): State<AppState>,
    Id(id): Id,
    JsonBody(input): JsonBody<CalloutEventInput>,
) -> ApiResult<Response> {
    let event = CalloutEvent::parse(&input.event)
        .ok_or_else(|| ApiError::validation("event", "must be one of: start, pause, resume, stop"))?;
    find(&st, auth.account_id, id).await?;
    match st
        .store
        .callout_event(auth.account_id, id, event, st.config.clock.now())
        .await?
    {
        CalloutTransition::Done(c) => {
            st.wake.notify_one();
            Ok(created(location(id), c.to_json()))
        }
        CalloutTransition::NotFound => Err(ApiError::NotFound),
        CalloutTransition::Refused(m) => Err(ApiError::validation("event", m)),
    }
}

/// A callout's progress: participations by status, attempts, rate and ETA.
#[utoipa::path(get, path = "/api/callouts/{id}/statistics", operation_id = "callouts_statistics", tag = "callouts", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 200, body = Object),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn statistics(
    auth: Authed<CalloutsRead>,
    State(st): State<AppState>,
    Id(id): Id,
) -> ApiResult<axum::Json<Value>> {
    let c = find(&st, auth.account_id, id).await?;
    let s = st.store.callout_statistics(id).await?;
    let p = s.progress(&c, st.config.clock.now());
    let by_status: serde_json::Map<String, Value> = s.by_status.iter().map(|(k, n)| (k.clone(), json!(n))).collect();
    Ok(axum::Json(json!({
        "callout_id": id,
        "status": c.status,
        "total": s.total,
        "by_status": by_status,
        "attempts": s.attempts,
        "sent": s.sent,
        "delivered": p.delivered,
        "answered": if c.channel == "voice" { p.delivered } else { 0 },
        "failed": p.failed,
        "pending": p.pending,
        "rate_per_minute": c.rate_per_minute,
        "achieved_rate_per_minute": p.rate_per_minute.map(|r| (r * 10.0).round() / 10.0),
        "eta_seconds": p.eta_seconds,
    })))
}
