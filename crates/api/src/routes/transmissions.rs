//! `/api/transmissions`: one message to one contact or address (ICTCore transmissions,
//! Twilio messages), with its attempts (ICTCore spools), results, events and clone.

use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use chrono::{DateTime, Utc};
use sauti_core::filter::{FieldKind, FieldSpec, ResourceSpec, parse_time};
use sauti_core::msisdn::Msisdn;
use sauti_core::template::render;
use sauti_core::{ValidationErrors, clock, email, sms};
use sauti_store::{Contact, NewTransmission, Transition, Transmission};
use serde::Deserialize;
use serde_json::Value;

use super::created;
use crate::AppState;
use crate::auth::{Authed, TransmissionsRead, TransmissionsWrite};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Id, JsonBody, RawQuery};
use crate::pagination::list_response;

pub const SPEC: ResourceSpec = ResourceSpec {
    sortable: &[
        "id",
        "created_at",
        "updated_at",
        "status",
        "next_attempt_at",
        "sent_at",
        "delivered_at",
    ],
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
            name: "direction",
            column: "direction",
            kind: FieldKind::Text,
        },
        FieldSpec {
            name: "origin",
            column: "origin",
            kind: FieldKind::Text,
        },
        FieldSpec {
            name: "contact_id",
            column: "contact_id",
            kind: FieldKind::Int,
        },
        FieldSpec {
            name: "provider_id",
            column: "provider_id",
            kind: FieldKind::Int,
        },
        FieldSpec {
            name: "to",
            column: "to_address",
            kind: FieldKind::Text,
        },
    ],
    has_metadata: true,
};

/// Attempts and results are listed in order; only sorting and paging apply.
const SUB_SPEC: ResourceSpec = ResourceSpec {
    sortable: &["id", "created_at"],
    fields: &[],
    has_metadata: false,
};

/// Default attempts when neither the request nor the account's `max_attempts` setting
/// says.
const DEFAULT_MAX_ATTEMPTS: i64 = 3;
/// Longest validity period: a week, as SMSCs allow.
const MAX_VALIDITY_SECONDS: i64 = 7 * 24 * 3600;

/// Body of `POST /api/transmissions`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransmissionInput {
    /// `sms`, `email` or `voice` (a call through the account's Twilio-compatible
    /// provider); inferred from `to` (an address with `@` is email) or from a template
    /// when absent, else `sms`.
    pub channel: Option<String>,
    /// An msisdn (E.164, or national in the account's `default_country`) or an email
    /// address. Give `to` or `contact_id`.
    pub to: Option<String>,
    /// A contact of the account; its msisdn (or email) is the destination, and its fields
    /// fill `{{first_name}}`, `{{metadata.key}}`, … in the content.
    pub contact_id: Option<i64>,
    /// SMS text, or the plain-text body of an email.
    pub body: Option<String>,
    /// A stored SMS text (`/api/texts`) to send instead of `body`.
    pub text_id: Option<i64>,
    /// A stored email template (`/api/templates`): subject, HTML and plain alternative.
    pub template_id: Option<i64>,
    /// Email subject (when not from a template).
    pub subject: Option<String>,
    /// Email HTML part (when not from a template).
    pub html: Option<String>,
    /// Sender id, number or email address; the provider's default when absent.
    pub from: Option<String>,
    /// Send at this time (ISO 8601) instead of now.
    pub scheduled_at: Option<String>,
    /// Seconds the message may take to be sent and delivered (at most a week).
    pub validity_period: Option<i64>,
    /// Attempts before giving up (1–10).
    pub max_attempts: Option<i64>,
    /// Voice: what the call does when answered (SCFM's names): `CallFlowLogic::Say`
    /// (the default: speaks `body`), `PlayMessage` (plays `audio_url` or `recording_id`),
    /// `Gather` (speaks `body`, then stores the key pressed as a `dtmf` result) or
    /// `HelloWorld`.
    pub call_flow_logic: Option<String>,
    /// Voice `PlayMessage`: an http(s) URL of audio the provider fetches and plays.
    pub audio_url: Option<String>,
    /// Voice `PlayMessage`: an uploaded recording (`/api/recordings`), served to the
    /// provider by sauti; it wins over `audio_url`.
    pub recording_id: Option<i64>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

/// The longest text a call speaks (Twilio's limit for one `<Say>`).
const MAX_SPOKEN_CHARS: usize = 4096;

/// Body of `POST /api/transmissions/{id}/transmission_events`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct TransmissionEvent {
    /// `cancel` (a queued transmission) or `retry` (a failed or undelivered one: one more
    /// attempt, now).
    pub event: String,
}

fn personalise(text: &str, html: bool, contact: Option<&Contact>) -> String {
    render(text, html, |name| contact.and_then(|c| c.placeholder(name)))
}

impl TransmissionInput {
    async fn validate(self, st: &AppState, account_id: i64) -> ApiResult<NewTransmission> {
        let mut errors = ValidationErrors::new();
        let account = st.account(account_id).await?;
        let region = account.default_region();
        let template = match self.template_id {
            Some(id) => {
                let t = st.store.get_template(account_id, id).await?;
                if t.is_none() {
                    errors.add("template_id", "does not exist");
                }
                t
            }
            None => None,
        };
        let text = match self.text_id {
            Some(id) => {
                let t = st.store.get_text(account_id, id).await?;
                if t.is_none() {
                    errors.add("text_id", "does not exist");
                }
                t
            }
            None => None,
        };
        let channel = match self.channel.as_deref() {
            Some("sms") => "sms",
            Some("email") => "email",
            Some("voice") => "voice",
            Some(_) => {
                errors.add("channel", "must be one of: sms, email, voice");
                "sms"
            }
            None if self.call_flow_logic.is_some() || self.audio_url.is_some() || self.recording_id.is_some() => {
                "voice"
            }
            None if self.template_id.is_some() || self.to.as_deref().is_some_and(|t| t.contains('@')) => "email",
            None => "sms",
        };
        let contact = match self.contact_id {
            Some(id) => {
                let c = st.store.get_contact(account_id, id).await?;
                if c.is_none() {
                    errors.add("contact_id", "does not exist");
                }
                c
            }
            None => None,
        };
        if self.to.is_some() && self.contact_id.is_some() {
            errors.add("to", "give either to or contact_id, not both");
        }
        let (to, contact) = match (&self.to, contact) {
            (Some(_), Some(_)) => (String::new(), None),
            (None, None) => {
                if self.contact_id.is_none() {
                    errors.add("to", "can't be blank (give to or contact_id)");
                }
                (String::new(), None)
            }
            (None, Some(c)) => {
                let to = if channel == "email" {
                    c.email.clone().unwrap_or_else(|| {
                        errors.add("contact_id", "has no email address");
                        String::new()
                    })
                } else {
                    c.msisdn.clone()
                };
                (to, Some(c))
            }
            (Some(raw), None) if channel == "email" => {
                let e = raw.trim().to_lowercase();
                if !email::is_valid(&e) {
                    errors.add("to", "is not a valid email address");
                }
                (e, None)
            }
            (Some(raw), None) => match Msisdn::parse(raw, region) {
                Ok(m) => {
                    let m = m.into_string();
                    // A raw number that belongs to a contact is that contact: its opt-out
                    // and its fields apply.
                    let c = st.contacts_by_msisdn.find(account_id, m.clone()).await?;
                    (m, c)
                }
                Err(e) => {
                    errors.add("to", e.to_string());
                    (String::new(), None)
                }
            },
        };
        if let Some(c) = &contact
            && c.opted_out_at.is_some()
        {
            let field = if self.contact_id.is_some() { "contact_id" } else { "to" };
            errors.add(field, "has opted out and cannot be messaged");
        }
        let (mut body, mut subject, mut html) = (self.body.clone(), self.subject.clone(), self.html.clone());
        if let Some(t) = &text {
            if body.is_some() {
                errors.add("body", "give either body or text_id, not both");
            }
            body = Some(t.data.clone());
        }
        if let Some(t) = &template {
            subject = subject.or(Some(t.subject.clone()));
            html = html.or(Some(t.body.clone()));
            body = body.or(t.body_alt.clone());
        }
        let body = body.unwrap_or_default();
        let mut call_flow_logic = None;
        if channel != "voice" {
            refuse_given(
                &mut errors,
                &[
                    ("call_flow_logic", self.call_flow_logic.is_some()),
                    ("audio_url", self.audio_url.is_some()),
                    ("recording_id", self.recording_id.is_some()),
                ],
                "is for voice messages",
            );
        }
        match channel {
            "voice" => call_flow_logic = Some(self.check_voice(st, account_id, &body, &mut errors).await?),
            "sms" => {
                if body.trim().is_empty() {
                    errors.add("body", "can't be blank");
                }
                if body.chars().count() > 1600 {
                    errors.add("body", "is too long (at most 1600 characters, 10 to 24 SMS parts)");
                }
            }
            _ => {
                if subject.as_deref().is_none_or(|s| s.trim().is_empty()) {
                    errors.add("subject", "can't be blank");
                }
                if body.trim().is_empty() && html.as_deref().is_none_or(|h| h.trim().is_empty()) {
                    errors.add("body", "can't be blank (give body, html or template_id)");
                }
            }
        }
        if let Some(f) = &self.from
            && (f.trim().is_empty() || f.chars().count() > 64)
        {
            errors.add("from", "must be 1 to 64 characters");
        }
        let scheduled_at = match &self.scheduled_at {
            Some(s) => match parse_time(s) {
                Some(t) => Some(t),
                None => {
                    errors.add("scheduled_at", "must be an ISO 8601 time");
                    None
                }
            },
            None => None,
        };
        if let Some(v) = self.validity_period
            && !(1..=MAX_VALIDITY_SECONDS).contains(&v)
        {
            errors.add(
                "validity_period",
                format!("must be between 1 and {MAX_VALIDITY_SECONDS} seconds"),
            );
        }
        let default_attempts = account
            .settings
            .0
            .get("max_attempts")
            .and_then(Value::as_i64)
            .filter(|n| (1..=10).contains(n))
            .unwrap_or(DEFAULT_MAX_ATTEMPTS);
        let max_attempts = self.max_attempts.unwrap_or(default_attempts);
        if !(1..=10).contains(&max_attempts) {
            errors.add("max_attempts", "must be between 1 and 10");
        }
        let metadata = super::metadata_object(self.metadata, &mut errors).unwrap_or_default();
        errors.into_result()?;

        let body = personalise(&body, false, contact.as_ref());
        let subject = subject.map(|s| personalise(&s, false, contact.as_ref()));
        let html = html.map(|h| personalise(&h, true, contact.as_ref()));
        let (encoding, segments) = if channel == "sms" {
            let a = sms::analyze(&body);
            (Some(a.encoding.as_str().to_string()), i64::from(a.segments))
        } else {
            (None, 1)
        };
        let start: DateTime<Utc> = scheduled_at.unwrap_or_else(clock::now).max(clock::now());
        Ok(NewTransmission {
            account_id,
            direction: "outbound".into(),
            channel: channel.into(),
            origin: "api".into(),
            priority: 0,
            contact_id: contact.map(|c| c.id),
            to_address: to,
            from_address: self.from.map(|f| f.trim().to_string()),
            body,
            subject,
            html,
            text_id: self.text_id,
            template_id: self.template_id,
            encoding,
            segments,
            status: "queued".into(),
            max_attempts,
            scheduled_at,
            expires_at: self.validity_period.map(|v| start + chrono::Duration::seconds(v)),
            validity_period: self.validity_period,
            provider_id: None,
            metadata,
            call_flow_logic,
            audio_url: self.audio_url,
            recording_id: self.recording_id,
            ..Default::default()
        })
    }

    /// What a voice message needs: a call flow sauti runs, audio to play or text to say.
    /// Email content does not belong on a call. Returns the call flow.
    async fn check_voice(
        &self,
        st: &AppState,
        account_id: i64,
        body: &str,
        errors: &mut ValidationErrors,
    ) -> ApiResult<String> {
        refuse_given(
            errors,
            &[
                ("subject", self.subject.is_some()),
                ("html", self.html.is_some()),
                ("template_id", self.template_id.is_some()),
            ],
            "is for email, not voice",
        );
        let has_audio = self.audio_url.is_some() || self.recording_id.is_some();
        let flow = self.call_flow_logic.clone().unwrap_or_else(|| {
            if has_audio {
                "CallFlowLogic::PlayMessage".into()
            } else {
                "CallFlowLogic::Say".into()
            }
        });
        super::callouts::check_call_audio(
            st,
            account_id,
            Some(&flow),
            self.audio_url.as_deref(),
            self.recording_id,
            errors,
        )
        .await?;
        super::callouts::check_call_content(Some(&flow), has_audio, !body.trim().is_empty(), errors);
        if body.chars().count() > MAX_SPOKEN_CHARS {
            errors.add("body", format!("is too long (at most {MAX_SPOKEN_CHARS} characters)"));
        }
        Ok(flow)
    }
}

/// `message` on each field that was given although it does not apply.
fn refuse_given(errors: &mut ValidationErrors, fields: &[(&str, bool)], message: &str) {
    for (field, given) in fields {
        if *given {
            errors.add(*field, message);
        }
    }
}

fn location(id: i64) -> String {
    format!("/api/transmissions/{id}")
}

async fn find(st: &AppState, account_id: i64, id: i64) -> ApiResult<Transmission> {
    st.store
        .get_transmission(account_id, id)
        .await?
        .ok_or(ApiError::NotFound)
}

/// List transmissions.
#[utoipa::path(get, path = "/api/transmissions", operation_id = "transmissions_index", tag = "transmissions", security(("bearer" = [])), params(crate::openapi::ListParams), responses(
    (status = 200, body = Vec<Object>, headers(("Per-Page" = u32), ("Total" = u64), ("Link" = String))),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn index(
    auth: Authed<TransmissionsRead>,
    State(st): State<AppState>,
    uri: Uri,
    raw: RawQuery,
) -> ApiResult<Response> {
    let q = raw.list_query(&SPEC)?;
    let page = st.store.list_transmissions(auth.account_id, &q).await?;
    Ok(list_response(&uri, &raw.0, &q, page.map(|t| t.to_json())))
}

/// Send a message now or at `scheduled_at`.
#[utoipa::path(post, path = "/api/transmissions", operation_id = "transmissions_create", tag = "transmissions", security(("bearer" = [])), request_body = TransmissionInput, responses(
    (status = 201, body = Object, headers(("Location" = String))),
    (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 409, body = crate::ErrorBody), (status = 415, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn create(
    auth: Authed<TransmissionsWrite>,
    State(st): State<AppState>,
    JsonBody(input): JsonBody<TransmissionInput>,
) -> ApiResult<Response> {
    let row = input.validate(&st, auth.account_id).await?;
    let t = st.inserts.insert(row).await?;
    st.wake.notify_one();
    Ok(created(location(t.id), t.to_json()))
}

/// Retrieve a transmission.
#[utoipa::path(get, path = "/api/transmissions/{id}", operation_id = "transmissions_show", tag = "transmissions", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 200, body = Object), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn show(
    auth: Authed<TransmissionsRead>,
    State(st): State<AppState>,
    Id(id): Id,
) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(find(&st, auth.account_id, id).await?.to_json()))
}

/// Delete a transmission (not while it is being sent), with its attempts and results.
#[utoipa::path(delete, path = "/api/transmissions/{id}", operation_id = "transmissions_destroy", tag = "transmissions", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 204, description = "Deleted"), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 404, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn destroy(auth: Authed<TransmissionsWrite>, State(st): State<AppState>, Id(id): Id) -> ApiResult<Response> {
    transition(st.store.delete_transmission(auth.account_id, id).await?)?;
    Ok(super::no_content("/api/transmissions".into()))
}

fn transition(t: Transition) -> ApiResult<Transmission> {
    match t {
        Transition::Done(t) => Ok(*t),
        Transition::NotFound => Err(ApiError::NotFound),
        Transition::Refused(why) => Err(ApiError::validation("status", why)),
    }
}

/// `cancel` or `retry` a transmission; 201 with the transmission, 422 when its status
/// does not allow the event.
#[utoipa::path(post, path = "/api/transmissions/{id}/transmission_events", operation_id = "transmissions_event", tag = "transmissions", security(("bearer" = [])), params(("id" = i64, Path)), request_body = TransmissionEvent, responses(
    (status = 201, body = Object, headers(("Location" = String))),
    (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 404, body = crate::ErrorBody), (status = 415, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn create_event(
    auth: Authed<TransmissionsWrite>,
    State(st): State<AppState>,
    Id(id): Id,
    JsonBody(ev): JsonBody<TransmissionEvent>,
) -> ApiResult<Response> {
    let t = match ev.event.as_str() {
        "cancel" => transition(st.store.cancel_transmission(auth.account_id, id).await?)?,
        "retry" => {
            let t = transition(st.store.retry_transmission(auth.account_id, id).await?)?;
            st.wake.notify_one();
            t
        }
        _ => {
            find(&st, auth.account_id, id).await?;
            return Err(ApiError::validation("event", "must be one of: cancel, retry"));
        }
    };
    Ok(created(location(t.id), t.to_json()))
}

/// Send the same message again as a new transmission, now.
#[utoipa::path(post, path = "/api/transmissions/{id}/clone", operation_id = "transmissions_clone", tag = "transmissions", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 201, body = Object, headers(("Location" = String))),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn clone(auth: Authed<TransmissionsWrite>, State(st): State<AppState>, Id(id): Id) -> ApiResult<Response> {
    let t = find(&st, auth.account_id, id).await?;
    if t.direction != "outbound" {
        return Err(ApiError::validation("base", "an inbound message cannot be cloned"));
    }
    if t.origin == sauti_store::VERIFICATION_ORIGIN {
        // Its body holds the code's placeholder, filled only for the verification.
        return Err(ApiError::validation(
            "base",
            "a verification message cannot be cloned (start or resend the verification)",
        ));
    }
    if let Some(cid) = t.contact_id
        && let Some(c) = st.store.get_contact(auth.account_id, cid).await?
        && c.opted_out_at.is_some()
    {
        return Err(ApiError::validation(
            "contact_id",
            "has opted out and cannot be messaged",
        ));
    }
    // A call of a callout plays the callout's audio; its copy stands alone, so it takes
    // the call flow with it.
    let callout = match (t.channel.as_str(), t.callout_id) {
        ("voice", Some(cid)) => st.store.get_callout(auth.account_id, cid).await?,
        _ => None,
    };
    let (call_flow_logic, audio_url, recording_id) = match callout {
        Some(c) => (
            t.call_flow_logic
                .or(c.call_flow_logic)
                .or(Some("CallFlowLogic::HelloWorld".into())),
            c.audio_url,
            c.recording_id,
        ),
        None => (t.call_flow_logic, t.audio_url, t.recording_id),
    };
    let now = clock::now();
    let row = NewTransmission {
        account_id: t.account_id,
        direction: t.direction,
        channel: t.channel,
        origin: "api".into(),
        priority: t.priority,
        contact_id: t.contact_id,
        to_address: t.to_address,
        from_address: t.from_address,
        body: t.body,
        subject: t.subject,
        html: t.html,
        text_id: t.text_id,
        template_id: t.template_id,
        encoding: t.encoding,
        segments: t.segments,
        status: "queued".into(),
        max_attempts: t.max_attempts.max(1),
        scheduled_at: None,
        expires_at: t.validity_period.map(|v| now + chrono::Duration::seconds(v)),
        validity_period: t.validity_period,
        provider_id: None,
        metadata: t.metadata.0,
        call_flow_logic,
        audio_url,
        recording_id,
        ..Default::default()
    };
    let copy = st.store.create_transmissions(&[row]).await?.remove(0);
    st.wake.notify_one();
    Ok(created(location(copy.id), copy.to_json()))
}

/// The attempts (ICTCore spools) made to deliver a transmission, oldest first.
#[utoipa::path(get, path = "/api/transmissions/{id}/attempts", operation_id = "transmissions_attempts", tag = "transmissions", security(("bearer" = [])), params(("id" = i64, Path), crate::openapi::ListParams), responses(
    (status = 200, body = Vec<Object>, headers(("Per-Page" = u32), ("Total" = u64), ("Link" = String))),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn attempts(
    auth: Authed<TransmissionsRead>,
    State(st): State<AppState>,
    Id(id): Id,
    uri: Uri,
    raw: RawQuery,
) -> ApiResult<Response> {
    find(&st, auth.account_id, id).await?;
    let q = raw.list_query(&SUB_SPEC)?;
    let page = st.store.list_attempts(auth.account_id, id, &q).await?;
    Ok(list_response(&uri, &raw.0, &q, page.map(|a| a.to_json())))
}

/// What the attempts of a transmission produced: delivery receipts, digits, …
#[utoipa::path(get, path = "/api/transmissions/{id}/results", operation_id = "transmissions_results", tag = "transmissions", security(("bearer" = [])), params(("id" = i64, Path), crate::openapi::ListParams), responses(
    (status = 200, body = Vec<Object>, headers(("Per-Page" = u32), ("Total" = u64), ("Link" = String))),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn results(
    auth: Authed<TransmissionsRead>,
    State(st): State<AppState>,
    Id(id): Id,
    uri: Uri,
    raw: RawQuery,
) -> ApiResult<Response> {
    find(&st, auth.account_id, id).await?;
    let q = raw.list_query(&SUB_SPEC)?;
    let page = st.store.list_results(auth.account_id, id, &q).await?;
    Ok(list_response(&uri, &raw.0, &q, page.map(|r| r.to_json())))
}
