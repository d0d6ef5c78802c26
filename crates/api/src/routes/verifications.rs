//! `/api/verifications`: one-time codes, as a Twilio Verify user knows them. A code goes
//! out on the transactional lane, is never stored (decision 0011) and is checked at most
//! `verification_max_checks` times; sends are limited per destination, and the fraud
//! guard limits them per client IP and per destination prefix.

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use sauti_core::filter::{FieldKind, FieldSpec, ResourceSpec};
use sauti_core::msisdn::Msisdn;
use sauti_core::{ValidationErrors, email, otp, sms, template};
use sauti_store::{
    Account, Canceled, CheckTarget, Checked, JsonMap, Limit, NewTransmission, SendLimits, StartVerification, Started,
    Verification, Window,
};
use serde::Deserialize;
use serde_json::Value;

use super::created;
use crate::AppState;
use crate::auth::{Authed, VerificationsRead, VerificationsWrite};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ClientIp, Id, JsonBody, RawQuery};
use crate::pagination::list_response;

pub const SPEC: ResourceSpec = ResourceSpec {
    sortable: &["id", "created_at", "updated_at", "status", "expires_at"],
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
            name: "to",
            column: "to_address",
            kind: FieldKind::Text,
        },
    ],
    has_metadata: true,
};

/// Attempts of one OTP message: it is worthless once the code expires, so few and soon.
const OTP_MAX_ATTEMPTS: i64 = 3;

/// An account's verification rules (account settings, with Twilio Verify's defaults).
#[derive(Debug, Clone, Copy)]
pub(crate) struct VerifySettings {
    pub ttl_seconds: i64,
    pub max_checks: i64,
    pub limits: SendLimits,
    pub prefix_digits: usize,
}

/// Settings keys, their defaults and allowed ranges (validated by `PATCH /api/account`).
pub(crate) const SETTINGS: &[(&str, i64, i64, i64)] = &[
    ("verification_ttl_seconds", 600, 60, 86_400),
    ("verification_max_checks", 5, 1, 20),
    ("verification_max_sends", 5, 1, 100),
    ("verification_send_window_seconds", 600, 60, 86_400),
    // Off by default: when a tenant's own server calls sauti, every request comes from
    // one address. Turn it on when apps call sauti directly.
    ("fraud_guard_ip_max", 0, 0, 1_000_000),
    ("fraud_guard_ip_window_seconds", 3600, 60, 86_400),
    ("fraud_guard_prefix_max", 500, 0, 1_000_000),
    ("fraud_guard_prefix_window_seconds", 3600, 60, 86_400),
    ("fraud_guard_prefix_digits", 6, 3, 12),
];

fn setting(settings: &JsonMap, key: &str) -> i64 {
    let (_, default, lo, hi) = SETTINGS
        .iter()
        .find(|(k, ..)| *k == key)
        .copied()
        .expect("a known verification setting");
    settings
        .get(key)
        .and_then(Value::as_i64)
        .filter(|n| (lo..=hi).contains(n))
        .unwrap_or(default)
}

pub(crate) fn verify_settings(settings: &JsonMap) -> VerifySettings {
    let s = |k| setting(settings, k);
    VerifySettings {
        ttl_seconds: s("verification_ttl_seconds"),
        max_checks: s("verification_max_checks"),
        limits: SendLimits {
            destination: Window {
                max: s("verification_max_sends"),
                seconds: s("verification_send_window_seconds"),
            },
            ip: Window {
                max: s("fraud_guard_ip_max"),
                seconds: s("fraud_guard_ip_window_seconds"),
            },
            prefix: Window {
                max: s("fraud_guard_prefix_max"),
                seconds: s("fraud_guard_prefix_window_seconds"),
            },
        },
        prefix_digits: s("fraud_guard_prefix_digits") as usize,
    }
}

/// Body of `POST /api/verifications`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerificationInput {
    /// A phone number (E.164, or national in the account's `default_country`) or, for
    /// `email`, an address.
    pub to: Option<String>,
    /// `sms` (default; `email` when `to` is an address), `email` or `voice` (a call
    /// that reads the code digit by digit, twice).
    pub channel: Option<String>,
    /// Digits in the code, 4–10 (default 6).
    pub code_length: Option<i64>,
    /// Language of the built-in message: en, fr, es, pt, de, sw, it, nl (default en).
    pub locale: Option<String>,
    /// A stored text (`/api/texts`) to send or say instead of the built-in message; it
    /// must contain `{{code}}`. Other placeholders (`{{first_name}}`, `{{metadata.key}}`)
    /// are the fields of the account's contact with this number, empty if there is none.
    pub text_id: Option<i64>,
    /// A stored email template (`/api/templates`) for `email`; it must contain `{{code}}`.
    /// Other placeholders render empty.
    pub template_id: Option<i64>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

/// Body of a verification check.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckInput {
    /// The code the user typed.
    #[schema(value_type = String)]
    pub code: Option<Value>,
    /// For `POST /api/verification_checks`: the destination of the pending verification…
    pub to: Option<String>,
    /// …or its id.
    pub verification_id: Option<i64>,
}

/// Body of `POST /api/verifications/{id}/verification_events`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct VerificationEvent {
    /// `cancel`.
    pub event: String,
}

/// A destination as verifications key it: E.164 for phones, a lower-cased address for
/// email.
/// Problems are reported on `field`.
pub(crate) fn normalize_to(
    channel: &str,
    raw: &str,
    account: &Account,
    field: &str,
    errors: &mut ValidationErrors,
) -> String {
    if channel == "email" {
        let e = raw.trim().to_lowercase();
        if !email::is_valid(&e) {
            errors.add(field, "is not a valid email address");
        }
        e
    } else {
        match Msisdn::parse(raw, account.default_region()) {
            Ok(m) => m.into_string(),
            Err(e) => {
                errors.add(field, e.to_string());
                String::new()
            }
        }
    }
}

/// What the per-prefix limit counts: `+` and the first digits of a number. The guard is
/// against pumping a number range; an address is its own range (a domain would put every
/// gmail.com user behind one limit).
fn prefix_of(to: &str, digits: usize) -> String {
    if to.contains('@') {
        to.to_string()
    } else {
        to.chars().take(digits + 1).collect()
    }
}

/// Start (or resend) a verification for `account_id`; the shared core of
/// `POST /api/verifications` and the sign-up flow.
pub(crate) async fn start(
    st: &AppState,
    account_id: i64,
    input: VerificationInput,
    ip: Option<std::net::IpAddr>,
) -> ApiResult<(Verification, bool)> {
    let account = st.account(account_id).await?;
    let rules = verify_settings(&account.settings.0);
    let mut errors = ValidationErrors::new();
    let channel = match input.channel.as_deref() {
        Some("sms") => "sms",
        Some("email") => "email",
        // A call through the account's Twilio-compatible provider that reads the code.
        Some("voice") => "voice",
        Some(_) => {
            errors.add("channel", "must be one of: sms, email, voice");
            "sms"
        }
        None if input.to.as_deref().is_some_and(|t| t.contains('@')) => "email",
        None => "sms",
    };
    let to = match input.to.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        Some(raw) => normalize_to(channel, raw, &account, "to", &mut errors),
        None => {
            errors.add("to", "can't be blank");
            String::new()
        }
    };
    let code_length = input.code_length.unwrap_or(i64::from(otp::DEFAULT_LENGTH));
    if !(i64::from(otp::MIN_LENGTH)..=i64::from(otp::MAX_LENGTH)).contains(&code_length) {
        errors.add(
            "code_length",
            format!("must be between {} and {}", otp::MIN_LENGTH, otp::MAX_LENGTH),
        );
    }
    let locale = input.locale.unwrap_or_else(|| "en".into());
    if !otp::is_supported_locale(&locale) {
        errors.add("locale", format!("must be one of: {}", otp::LOCALES.join(", ")));
    }
    let metadata = super::metadata_object(input.metadata, &mut errors).unwrap_or_default();
    let (mut body, mut subject, mut html) = (None, None, None);
    if let Some(id) = input.text_id {
        if channel == "email" {
            errors.add(
                "text_id",
                "is for sms and voice verifications (use template_id for email)",
            );
        }
        match st.store.get_text(account_id, id).await? {
            Some(t) if t.data.contains(otp::PLACEHOLDER) => body = Some(t.data),
            Some(_) => errors.add("text_id", "must contain {{code}}"),
            None => errors.add("text_id", "does not exist"),
        }
    }
    if let Some(id) = input.template_id {
        if channel != "email" {
            errors.add(
                "template_id",
                "is for email verifications (use text_id for sms and voice)",
            );
        }
        match st.store.get_template(account_id, id).await? {
            Some(t)
                if t.body.contains(otp::PLACEHOLDER)
                    || t.body_alt.as_deref().is_some_and(|b| b.contains(otp::PLACEHOLDER)) =>
            {
                subject = Some(t.subject);
                html = Some(t.body);
                body = t.body_alt;
            }
            Some(_) => errors.add("template_id", "must contain {{code}}"),
            None => errors.add("template_id", "does not exist"),
        }
    }
    errors.into_result()?;

    // A stored text or template may say more than the code: its other placeholders are
    // the recipient's contact fields, as in any message (empty when `to` is no contact of
    // the account; email addresses are not unique among contacts, so only phones are
    // looked up).
    let personal = |t: &Option<String>| {
        t.as_deref()
            .is_some_and(|t| template::has_placeholders(&t.replace(otp::PLACEHOLDER, "")))
    };
    if personal(&body) || personal(&subject) || personal(&html) {
        let contact = match channel {
            "email" => None,
            _ => st.store.find_contact_by_msisdn(account_id, &to).await?,
        };
        let fill = |t: Option<String>, html: bool| {
            t.map(|t| {
                template::render(&t, html, |name| match name {
                    "code" => Some(otp::PLACEHOLDER.to_string()),
                    _ => contact.as_ref().and_then(|c| c.placeholder(name)),
                })
            })
        };
        body = fill(body, false);
        subject = fill(subject, false);
        html = fill(html, true);
    }

    let body = body.unwrap_or_else(|| otp::message(&locale, &account.name).unwrap_or_default());
    if channel == "email" && subject.is_none() {
        subject = Some(otp::subject(&locale, &account.name));
    }
    let (encoding, segments) = if channel == "sms" {
        // The code's digits are in the GSM alphabet, so any code of this length counts the same.
        let sample = body.replace(otp::PLACEHOLDER, &"0".repeat(code_length as usize));
        let a = sms::analyze(&sample);
        (Some(a.encoding.as_str().to_string()), i64::from(a.segments))
    } else {
        (None, 1)
    };
    let now = st.config.clock.now();
    let expires_at = now + chrono::Duration::seconds(rules.ttl_seconds);
    let message = NewTransmission {
        account_id,
        direction: "outbound".into(),
        channel: channel.into(),
        origin: sauti_store::VERIFICATION_ORIGIN.into(),
        // The transactional lane, ahead of every campaign.
        priority: 0,
        contact_id: None,
        to_address: to.clone(),
        from_address: None,
        body,
        subject,
        html,
        text_id: input.text_id,
        template_id: input.template_id,
        encoding,
        segments,
        status: "queued".into(),
        max_attempts: OTP_MAX_ATTEMPTS,
        scheduled_at: None,
        // A code that arrives after it expired is no use to anyone.
        expires_at: Some(expires_at),
        validity_period: Some(rules.ttl_seconds),
        provider_id: None,
        metadata: JsonMap::new(),
        ..Default::default()
    };
    let request = StartVerification {
        account_id,
        channel: channel.into(),
        prefix: prefix_of(&to, rules.prefix_digits),
        to,
        ip: ip.map(|i| i.to_string()),
        code_length,
        salt: otp::new_salt(),
        locale,
        text_id: input.text_id,
        template_id: input.template_id,
        max_checks: rules.max_checks,
        ttl_seconds: rules.ttl_seconds,
        metadata,
        limits: rules.limits,
        message,
    };
    match st.store.start_verification(&request, now).await? {
        Started::Sent {
            verification, created, ..
        } => {
            st.wake.notify_one();
            Ok((*verification, created))
        }
        Started::Refused { limit, retry_at } => {
            crate::metrics::count_verification_blocked(st, limit.as_str());
            let message = match limit {
                Limit::Destination => "Too many codes were sent to this destination; try again later",
                Limit::Ip | Limit::Prefix => "Verification blocked by the fraud guard; try again later",
            };
            Err(ApiError::TooManyRequests {
                message: message.into(),
                retry_after: seconds_until(now, retry_at),
            })
        }
    }
}

fn seconds_until(now: DateTime<Utc>, at: DateTime<Utc>) -> u64 {
    let ms = (at - now).num_milliseconds().max(0);
    (ms as u64).div_ceil(1000).max(1)
}

/// The code as a string: JSON numbers lose leading zeros, so a number is padded to the
/// code's length.
fn candidate(code: &Value, length: i64) -> Option<String> {
    match code {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) if n.as_u64().is_some() => Some(format!(
            "{:0width$}",
            n.as_u64().unwrap_or(0),
            width = length.max(0) as usize
        )),
        _ => None,
    }
}

/// Check a code against a verification; the shared core of the check endpoints and the
/// sign-up flow.
pub(crate) async fn check(
    st: &AppState,
    account_id: i64,
    target: CheckTarget,
    code: Option<Value>,
) -> ApiResult<Verification> {
    let Some(code) = code.filter(|c| candidate(c, otp::DEFAULT_LENGTH.into()).is_some()) else {
        return Err(ApiError::validation("code", "can't be blank"));
    };
    let now = st.config.clock.now();
    let key = st.config.secret_key.clone();
    let checked = st
        .store
        .check_verification(account_id, &target, now, |v| {
            let len = u8::try_from(v.code_length).unwrap_or(otp::DEFAULT_LENGTH);
            candidate(&code, v.code_length).is_some_and(|c| otp::matches(&key, &v.code_salt, len, &c))
        })
        .await?;
    match checked {
        Checked::Approved(v) => Ok(v),
        Checked::Wrong(v) => {
            let left = (v.max_checks - v.check_count).max(0);
            Err(ApiError::validation(
                "code",
                match left {
                    0 => "is incorrect; no checks are left (start a new verification)".to_string(),
                    1 => "is incorrect; 1 check is left".to_string(),
                    n => format!("is incorrect; {n} checks are left"),
                },
            ))
        }
        Checked::TooMany(v) => Err(ApiError::TooManyRequests {
            message: "Max check attempts reached for this verification; start a new one".into(),
            retry_after: seconds_until(now, v.expires_at),
        }),
        Checked::Gone => Err(ApiError::NotFound),
    }
}

fn location(id: i64) -> String {
    format!("/api/verifications/{id}")
}

async fn show_json(st: &AppState, v: &Verification) -> ApiResult<Value> {
    let sends = st.store.list_verification_sends(v.id).await?;
    Ok(v.to_json(st.config.clock.now(), Some(&sends)))
}

/// List verifications.
#[utoipa::path(get, path = "/api/verifications", operation_id = "verifications_index", tag = "verifications", security(("bearer" = [])), params(crate::openapi::ListParams), responses(
    (status = 200, body = Vec<Object>, headers(("Per-Page" = u32), ("Total" = u64), ("Link" = String))),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn index(
    auth: Authed<VerificationsRead>,
    State(st): State<AppState>,
    uri: Uri,
    raw: RawQuery,
) -> ApiResult<Response> {
    let q = raw.list_query(&SPEC)?;
    let page = st.store.list_verifications(auth.account_id, &q).await?;
    let now = st.config.clock.now();
    Ok(list_response(&uri, &raw.0, &q, page.map(|v| v.to_json(now, None))))
}

/// Send a code. A pending verification of the same destination is reused: the same code
/// is sent again (through the channel asked for now).
#[utoipa::path(post, path = "/api/verifications", operation_id = "verifications_create", tag = "verifications", security(("bearer" = [])), request_body = VerificationInput, responses(
    (status = 201, body = Object, headers(("Location" = String))),
    (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 415, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
    (status = 429, description = "Too many sends to this destination, or blocked by the fraud guard", body = crate::ErrorBody, headers(("Retry-After" = u64))),
))]
pub async fn create(
    auth: Authed<VerificationsWrite>,
    State(st): State<AppState>,
    ClientIp(ip): ClientIp,
    JsonBody(input): JsonBody<VerificationInput>,
) -> ApiResult<Response> {
    let (v, _) = start(&st, auth.account_id, input, ip).await?;
    Ok(created(location(v.id), show_json(&st, &v).await?))
}

/// Retrieve a verification (never its code).
#[utoipa::path(get, path = "/api/verifications/{id}", operation_id = "verifications_show", tag = "verifications", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 200, body = Object), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn show(
    auth: Authed<VerificationsRead>,
    State(st): State<AppState>,
    Id(id): Id,
) -> ApiResult<axum::Json<Value>> {
    let v = st
        .store
        .get_verification(auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(axum::Json(show_json(&st, &v).await?))
}

fn checked_response(st: &AppState, v: &Verification) -> Response {
    (StatusCode::OK, axum::Json(v.to_json(st.config.clock.now(), None))).into_response()
}

/// Check a code: 200 `approved`; 422 when wrong (the message says how many checks are
/// left); 429 when no checks are left; 404 when the verification is approved, expired or
/// canceled.
#[utoipa::path(post, path = "/api/verifications/{id}/verification_checks", operation_id = "verifications_check", tag = "verifications", security(("bearer" = [])), params(("id" = i64, Path)), request_body = CheckInput, responses(
    (status = 200, body = Object),
    (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 404, body = crate::ErrorBody), (status = 415, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
    (status = 429, body = crate::ErrorBody, headers(("Retry-After" = u64))),
))]
pub async fn check_by_id(
    auth: Authed<VerificationsWrite>,
    State(st): State<AppState>,
    Id(id): Id,
    JsonBody(input): JsonBody<CheckInput>,
) -> ApiResult<Response> {
    if input.to.is_some() || input.verification_id.is_some() {
        return Err(ApiError::validation(
            "base",
            "the verification is named by the path; give only code",
        ));
    }
    let v = check(&st, auth.account_id, CheckTarget::Id(id), input.code).await?;
    Ok(checked_response(&st, &v))
}

/// Check a code for the pending verification of `to` (or of `verification_id`), as
/// Twilio's VerificationCheck does.
#[utoipa::path(post, path = "/api/verification_checks", operation_id = "verification_checks_create", tag = "verifications", security(("bearer" = [])), request_body = CheckInput, responses(
    (status = 200, body = Object),
    (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 404, body = crate::ErrorBody), (status = 415, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
    (status = 429, body = crate::ErrorBody, headers(("Retry-After" = u64))),
))]
pub async fn check_by_to(
    auth: Authed<VerificationsWrite>,
    State(st): State<AppState>,
    JsonBody(input): JsonBody<CheckInput>,
) -> ApiResult<Response> {
    let target = match (
        input.to.as_deref().map(str::trim).filter(|t| !t.is_empty()),
        input.verification_id,
    ) {
        (Some(_), Some(_)) => {
            return Err(ApiError::validation(
                "to",
                "give either to or verification_id, not both",
            ));
        }
        (None, None) => {
            return Err(ApiError::validation(
                "to",
                "can't be blank (give to or verification_id)",
            ));
        }
        (None, Some(id)) => CheckTarget::Id(id),
        (Some(raw), None) => {
            let account = st.account(auth.account_id).await?;
            let mut errors = ValidationErrors::new();
            let channel = if raw.contains('@') { "email" } else { "sms" };
            let to = normalize_to(channel, raw, &account, "to", &mut errors);
            errors.into_result()?;
            CheckTarget::To(to)
        }
    };
    let v = check(&st, auth.account_id, target, input.code).await?;
    Ok(checked_response(&st, &v))
}

/// `cancel` a pending verification: its code no longer works. 201 with the verification;
/// 422 when it is no longer pending.
#[utoipa::path(post, path = "/api/verifications/{id}/verification_events", operation_id = "verifications_event", tag = "verifications", security(("bearer" = [])), params(("id" = i64, Path)), request_body = VerificationEvent, responses(
    (status = 201, body = Object, headers(("Location" = String))),
    (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 404, body = crate::ErrorBody), (status = 415, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn create_event(
    auth: Authed<VerificationsWrite>,
    State(st): State<AppState>,
    Id(id): Id,
    JsonBody(ev): JsonBody<VerificationEvent>,
) -> ApiResult<Response> {
    if ev.event != "cancel" {
        st.store
            .get_verification(auth.account_id, id)
            .await?
            .ok_or(ApiError::NotFound)?;
        return Err(ApiError::validation("event", "must be: cancel"));
    }
    let now = st.config.clock.now();
    match st.store.cancel_verification(auth.account_id, id, now).await? {
        Canceled::Canceled(v) => Ok(created(location(v.id), show_json(&st, &v).await?)),
        Canceled::NotPending(v) => Err(ApiError::validation(
            "status",
            format!(
                "only a pending verification can be canceled (it is {})",
                v.status_at(now)
            ),
        )),
        Canceled::NotFound => Err(ApiError::NotFound),
    }
}
