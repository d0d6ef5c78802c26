//! Voice calls: the one table of call statuses. A call is a voice attempt; Twilio (and
//! Somleng, which speaks its API) reports it with a `CallStatus`, sauti keeps an attempt
//! status, and the native API shows an SCFM phone-call status. Every translation between
//! the three reads [`CALL_STATUSES`] (DESIGN.md, "Status vocabularies").

/// What a reported call status means for the transmission the call belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallEnd {
    /// Not over yet.
    Ongoing,
    /// Answered and ended: the transmission is delivered (SCFM "answered").
    Answered,
    /// Over without an answer; the word is the callout `retry_on` outcome that tries it
    /// again (`busy`, `not_answered`, `failed`), `None` when nothing retries it.
    NotAnswered(Option<&'static str>),
}

/// One reported call status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallStatus {
    /// Twilio's `CallStatus` word.
    pub twilio: &'static str,
    /// The attempt's status once reported.
    pub attempt: &'static str,
    /// The SCFM phone-call status of such an attempt.
    pub scfm: &'static str,
    pub end: CallEnd,
}

const fn row(twilio: &'static str, attempt: &'static str, scfm: &'static str, end: CallEnd) -> CallStatus {
    CallStatus {
        twilio,
        attempt,
        scfm,
        end,
    }
}

/// Twilio `CallStatus` → attempt status → SCFM phone-call status. `queued`, `initiated`
/// and `ringing` leave the attempt `sent` (the provider has the call: SCFM
/// `remotely_queued`).
pub const CALL_STATUSES: &[CallStatus] = &[
    row("queued", "sent", "remotely_queued", CallEnd::Ongoing),
    row("initiated", "sent", "remotely_queued", CallEnd::Ongoing),
    row("ringing", "sent", "remotely_queued", CallEnd::Ongoing),
    row("in-progress", "in_progress", "in_progress", CallEnd::Ongoing),
    row("completed", "completed", "completed", CallEnd::Answered),
    row("busy", "busy", "busy", CallEnd::NotAnswered(Some("busy"))),
    row(
        "no-answer",
        "not_answered",
        "not_answered",
        CallEnd::NotAnswered(Some("not_answered")),
    ),
    row("failed", "failed", "failed", CallEnd::NotAnswered(Some("failed"))),
    // Canceled by the provider (or its user) before it was answered: nobody asked for
    // it to be tried again.
    row("canceled", "canceled", "canceled", CallEnd::NotAnswered(None)),
];

/// Attempt statuses a call ends in: a later report never changes them.
pub const FINAL_ATTEMPT_STATUSES: &[&str] = &["completed", "busy", "not_answered", "failed", "canceled"];

impl CallStatus {
    /// Read Twilio's `CallStatus` (case-insensitive); `None` for a word it does not use.
    pub fn from_twilio(word: &str) -> Option<CallStatus> {
        let word = word.trim().to_ascii_lowercase();
        CALL_STATUSES.iter().copied().find(|s| s.twilio == word)
    }
}

/// The SCFM phone-call status of a voice attempt with `attempt_status`; `has_remote_id`:
/// whether the provider ever took the call (a `failed` attempt it never took is SCFM's
/// `errored`: the call could not be queued remotely).
pub fn scfm_status(attempt_status: &str, has_remote_id: bool) -> &'static str {
    match attempt_status {
        "sending" => "queued",
        "failed" if !has_remote_id => "errored",
        // Never placed (the provider throttled us, the adapter stopped), or placed with an
        // unknown outcome: the call as such went wrong.
        "ambiguous" | "throttled" | "not_sent" => "errored",
        "expired" => "expired",
        // The built-in sandbox settles a voice message as it does an SMS, with a receipt.
        "delivered" => "completed",
        "undelivered" => "failed",
        other => CALL_STATUSES
            .iter()
            .find(|s| s.attempt == other)
            .map(|s| s.scfm)
            .unwrap_or("errored"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_twilio_status_maps_once() {
        for s in CALL_STATUSES {
            assert_eq!(CallStatus::from_twilio(s.twilio), Some(*s));
            assert_eq!(scfm_status(s.attempt, true), s.scfm);
        }
        assert_eq!(CallStatus::from_twilio("No-Answer").unwrap().attempt, "not_answered");
        assert_eq!(CallStatus::from_twilio("answered"), None);
    }

    #[test]
    fn calls_the_provider_never_took_are_errored() {
        assert_eq!(scfm_status("failed", false), "errored");
        assert_eq!(scfm_status("failed", true), "failed");
        assert_eq!(scfm_status("sending", false), "queued");
        assert_eq!(scfm_status("delivered", true), "completed");
    }
}
