//! The TwiML of voice calls: what a Twilio-compatible provider (Twilio, Somleng) runs
//! when a call sauti placed is answered. Each call (attempt) has its own URL, given to the
//! provider in `Calls.json`; the provider's requests must carry a valid
//! `X-Twilio-Signature` under the auth token of the provider that placed the call, so
//! nobody else can read a call's personalised text or post digits into its results.
//!
//! The call flow is the participation's own, else its callout's (SCFM's names):
//! `HelloWorld` says "Hello World!", `PlayMessage` plays the callout's `audio_url` or its
//! uploaded recording, `Say` speaks the personalised body, `Gather` speaks the body as a
//! prompt and stores the keys pressed as a `dtmf` result of the attempt. A voice message
//! that is not part of a callout (`POST /api/transmissions`) has its own call flow and
//! audio, and speaks its body by default; a verification call reads its code digit by
//! digit, twice.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sauti_core::otp;
use sauti_store::calls::call_event_kind;
use sauti_store::{Attempt, Callout, JsonMap, Transmission};
use serde::Deserialize;
use serde_json::Value;

use super::callbacks::{as_json, form_only, provider, twilio_verified};
use crate::AppState;
use crate::audio::AudioType;
use crate::error::{ApiError, ApiResult};

/// What a `Gather` waits for unless the callout's settings say otherwise.
const DEFAULT_NUM_DIGITS: i64 = 1;
const DEFAULT_FINISH_ON_KEY: &str = "#";
const DEFAULT_GATHER_TIMEOUT: i64 = 5;

/// A call's attempt and what it belongs to.
struct Call {
    attempt: Attempt,
    transmission: Transmission,
    callout: Option<Callout>,
}

impl Call {
    fn flow(&self) -> &str {
        self.transmission
            .call_flow_logic
            .as_deref()
            .or(self.callout.as_ref().and_then(|c| c.call_flow_logic.as_deref()))
            .unwrap_or(match self.callout {
                // SCFM's default call flow.
                Some(_) => "CallFlowLogic::HelloWorld",
                None => "CallFlowLogic::Say",
            })
    }

    fn settings(&self) -> Option<&JsonMap> {
        self.callout.as_ref().map(|c| &c.settings.0)
    }

    /// What a `PlayMessage` call plays: the message's own audio, else its callout's.
    fn audio(&self) -> (Option<i64>, Option<&str>) {
        let t = &self.transmission;
        if t.recording_id.is_some() || t.audio_url.is_some() {
            return (t.recording_id, t.audio_url.as_deref());
        }
        let c = self.callout.as_ref();
        (c.and_then(|c| c.recording_id), c.and_then(|c| c.audio_url.as_deref()))
    }
}

/// What a verification call says: its message with the code read digit by digit, or
/// `None` when the verification no longer exists. The code is derived here from the
/// server key, as the engine derives it for SMS: the database never holds it.
async fn verification_text(st: &AppState, t: &Transmission) -> ApiResult<Option<String>> {
    let Some(id) = t.verification_id() else {
        return Ok(None);
    };
    let salts = st.store.verification_salts(&[id]).await?;
    // Only the message's own account's verification: metadata is not a capability.
    let Some((_, _, salt, len)) = salts.into_iter().find(|(_, account, ..)| *account == t.account_id) else {
        return Ok(None);
    };
    let code = otp::code(
        &st.config.secret_key,
        &salt,
        u8::try_from(len).unwrap_or(otp::DEFAULT_LENGTH),
    );
    Ok(Some(t.body.replace(otp::PLACEHOLDER, &otp::spoken(&code))))
}

/// Find the call of attempt `id` and check the request is its provider's. A call that
/// does not exist, is not a voice call placed through a Twilio-compatible provider, or
/// whose provider belongs to another account, is 404; a bad signature 403 (and kept as a
/// provider event marked `invalid_signature`, as callbacks are).
async fn verified_call(
    st: &AppState,
    id: i64,
    uri: &Uri,
    headers: &HeaderMap,
    form: &[(String, String)],
    kind: &str,
) -> ApiResult<Call> {
    let attempt = st.store.find_attempt(id).await?.ok_or(ApiError::NotFound)?;
    let provider_id = attempt.provider_id.ok_or(ApiError::NotFound)?;
    let p = provider(st, provider_id, "twilio").await?;
    if p.account_id != attempt.account_id {
        return Err(ApiError::NotFound);
    }
    twilio_verified(st, &p, uri, headers, form, kind).await?;
    let transmission = st
        .store
        .get_transmission(p.account_id, attempt.transmission_id)
        .await?
        .filter(|t| t.channel == "voice")
        .ok_or(ApiError::NotFound)?;
    // The provider may name the call; a request about another call is not this one's.
    if let (Some(sid), Some(ours)) = (
        form.iter().find(|(k, _)| k == "CallSid").map(|(_, v)| v),
        &attempt.remote_id,
    ) && sid != ours
    {
        return Err(ApiError::NotFound);
    }
    let callout = match transmission.callout_id {
        Some(cid) => st.store.get_callout(p.account_id, cid).await?,
        None => None,
    };
    Ok(Call {
        attempt,
        transmission,
        callout,
    })
}

/// The request's parameters that Twilio signs: the form body of a POST (a GET has none;
/// its parameters are in the signed URL).
fn signed_params(method: &Method, headers: &HeaderMap, body: &Bytes) -> ApiResult<Vec<(String, String)>> {
    if *method == Method::POST {
        form_only(headers, body)
    } else {
        Ok(vec![])
    }
}

fn twiml(body: String) -> Response {
    (
        [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>{body}</Response>"),
    )
        .into_response()
}

/// Text for an XML element or attribute.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// `<Say>` with the callout's `voice` and `language` settings, when it has them.
fn say(text: &str, settings: Option<&JsonMap>) -> String {
    let mut attrs = String::new();
    for key in ["voice", "language"] {
        if let Some(v) = settings.and_then(|s| s.get(key)).and_then(Value::as_str) {
            attrs.push_str(&format!(" {key}=\"{}\"", xml(v)));
        }
    }
    format!("<Say{attrs}>{}</Say>", xml(text))
}

fn setting_int(settings: Option<&JsonMap>, key: &str, default: i64) -> i64 {
    settings
        .and_then(|s| s.get(key))
        .and_then(Value::as_i64)
        .unwrap_or(default)
}

fn setting_text<'a>(settings: Option<&'a JsonMap>, key: &str, default: &'a str) -> &'a str {
    settings
        .and_then(|s| s.get(key))
        .and_then(Value::as_str)
        .unwrap_or(default)
}

/// The unguessable token of the URL a call plays its callout's recording from: the
/// provider fetches `<Play>` audio without signing the request, so the URL itself is the
/// credential, valid for that call and that recording only.
fn audio_token(st: &AppState, attempt_id: i64, recording_id: i64) -> String {
    let mac = st.config.secret_key.mac(&[
        b"call-audio",
        attempt_id.to_string().as_bytes(),
        recording_id.to_string().as_bytes(),
    ]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac)
}

fn public_url(st: &AppState) -> &str {
    st.config.public_url.trim_end_matches('/')
}

fn render(st: &AppState, call: &Call) -> String {
    let settings = call.settings();
    let body = call.transmission.body.as_str();
    match call.flow() {
        "CallFlowLogic::PlayMessage" => {
            match call.audio() {
                (Some(rid), _) => format!(
                    "<Play>{}/twiml/calls/{}/audio?token={}</Play>",
                    public_url(st),
                    call.attempt.id,
                    audio_token(st, call.attempt.id, rid)
                ),
                (None, Some(url)) => format!("<Play>{}</Play>", xml(url)),
                // Validation requires one of them on a voice PlayMessage callout; a
                // participation that switched to PlayMessage without audio gets its text.
                (None, None) => say(body, settings),
            }
        }
        "CallFlowLogic::Say" => say(body, settings),
        "CallFlowLogic::Gather" => {
            let action = format!("{}/twiml/calls/{}/gather", public_url(st), call.attempt.id);
            format!(
                "<Gather numDigits=\"{}\" finishOnKey=\"{}\" timeout=\"{}\" action=\"{}\" method=\"POST\">{}</Gather>{}<Hangup/>",
                setting_int(settings, "num_digits", DEFAULT_NUM_DIGITS),
                xml(setting_text(settings, "finish_on_key", DEFAULT_FINISH_ON_KEY)),
                setting_int(settings, "timeout", DEFAULT_GATHER_TIMEOUT),
                xml(&action),
                say(body, settings),
                say(
                    setting_text(settings, "no_input_message", "We did not receive your answer. Goodbye."),
                    settings
                ),
            )
        }
        // HelloWorld, and a flow this version does not know (validated on write).
        _ => say("Hello World!", settings),
    }
}

/// The TwiML of one call (`Url` of `Calls.json`). The request is kept as a call event.
pub async fn call(
    State(st): State<AppState>,
    Path(id): Path<i64>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let form = signed_params(&method, &headers, &body)?;
    let call = verified_call(&st, id, &uri, &headers, &form, call_event_kind::TWIML).await?;
    let params = super::callbacks::params(&method, &uri, &headers, &body)?;
    st.store
        .record_call_request(&call.attempt, call_event_kind::TWIML, &as_json(&params), None)
        .await?;
    if call.transmission.origin == sauti_store::VERIFICATION_ORIGIN {
        // Twice, so a callee who missed a digit hears it again.
        return Ok(twiml(match verification_text(&st, &call.transmission).await? {
            Some(text) => format!("{said}<Pause length=\"1\"/>{said}<Hangup/>", said = say(&text, None)),
            None => "<Hangup/>".into(),
        }));
    }
    Ok(twiml(render(&st, &call)))
}

/// The keys pressed in a call's `<Gather>` (its `action`): stored as a `dtmf` result
/// named `digits` on the attempt, then the call says thank you and hangs up.
pub async fn gather(
    State(st): State<AppState>,
    Path(id): Path<i64>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let form = form_only(&headers, &body)?;
    let call = verified_call(&st, id, &uri, &headers, &form, call_event_kind::GATHER).await?;
    let digits = form
        .iter()
        .find(|(k, _)| k == "Digits")
        .map(|(_, v)| v.trim())
        .unwrap_or("");
    let result = (!digits.is_empty()).then_some(("dtmf", "digits", digits));
    st.store
        .record_call_request(&call.attempt, call_event_kind::GATHER, &as_json(&form), result)
        .await?;
    let settings = call.settings();
    Ok(twiml(format!(
        "{}<Hangup/>",
        say(
            setting_text(settings, "thank_you_message", "Thank you. Goodbye."),
            settings
        )
    )))
}

#[derive(Debug, Deserialize)]
pub struct AudioQuery {
    token: String,
}

/// The uploaded recording of one call's `<Play>` (the message's, else its callout's); the URL's token is
/// the credential (see [`audio_token`]).
pub async fn audio(
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Query(q): Query<AudioQuery>,
) -> ApiResult<Response> {
    let attempt = st.store.find_attempt(id).await?.ok_or(ApiError::NotFound)?;
    let transmission = st
        .store
        .get_transmission(attempt.account_id, attempt.transmission_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let callout = match transmission.callout_id {
        Some(cid) => st.store.get_callout(attempt.account_id, cid).await?,
        None => None,
    };
    let call = Call {
        attempt,
        transmission,
        callout,
    };
    let rid = call.audio().0.ok_or(ApiError::NotFound)?;
    let attempt = call.attempt;
    let expected = audio_token(&st, attempt.id, rid);
    // Constant time: the token is a secret.
    let same = expected.len() == q.token.len()
        && expected
            .bytes()
            .zip(q.token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !same {
        return Err(ApiError::NotFound);
    }
    let media = st
        .store
        .get_recording_media(attempt.account_id, rid)
        .await?
        .ok_or(ApiError::NotFound)?;
    let kind = AudioType::from_mime(&media.content_type)
        .ok_or_else(|| ApiError::Internal(format!("unknown recording type {:?}", media.content_type)))?;
    super::clients::serve_blob(&st, attempt.account_id, &media.media_blob, kind.mime()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_xml() {
        assert_eq!(xml("a<b & \"c\"\u{1}"), "a&lt;b &amp; &quot;c&quot; ");
        assert_eq!(say("Hi <you>", None), "<Say>Hi &lt;you&gt;</Say>");
    }
}
