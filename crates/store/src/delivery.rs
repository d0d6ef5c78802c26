//! Settling attempts: the outcomes adapters report, delivery receipts, inbound messages.
//! Each batch is one transaction; every status change that a user sees is announced to
//! the account's webhook endpoints in that same transaction.

use chrono::{DateTime, Utc};
use sauti_core::clock;
use serde_json::Value;

use crate::sql::{Q, args};
use crate::transmissions::{Attempt, NewTransmission, Transmission, status};
use crate::webhooks::WebhookEvent;
use crate::{Store, StoreResult, on_pool};

/// How one attempt ends, as far as this report goes.
#[derive(Debug, Clone)]
pub enum Settle {
    /// The provider took it. The transmission is `sent` (and waits for a receipt).
    Sent {
        remote_id: String,
        segments: i64,
        raw_status: Option<String>,
        response: Value,
    },
    /// Give the attempt back without spending it (throttled, never sent); due again at
    /// `retry_at`. `attempt_status` is `throttled` or `not_sent`.
    Requeue {
        attempt_status: &'static str,
        raw_status: Option<String>,
        reason: String,
        retry_at: DateTime<Utc>,
    },
    /// The attempt failed (`failed`) or its fate is unknown (`ambiguous`). Retried at
    /// `retry_at` while attempts remain, unless `permanent`.
    Fail {
        attempt_status: &'static str,
        permanent: bool,
        avoid_provider: Option<i64>,
        code: Option<String>,
        message: String,
        raw_status: Option<String>,
        retry_at: DateTime<Utc>,
    },
    /// Nothing could be tried (no provider serves the destination): the transmission ends
    /// with `status` (`failed` or `invalid`); no attempt is spent.
    Reject {
        status: &'static str,
        code: String,
        message: String,
    },
}

/// One outcome to apply: which attempt (and transmission, by its attempt number) and the
/// lease it was sent under.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub transmission_id: i64,
    pub attempt_id: Option<i64>,
    /// The attempt number: the transmission is changed only while this is its current one.
    pub number: i64,
    /// The lease the work was done under; the transmission is changed only while it still
    /// holds it (a reclaimed lease belongs to someone else).
    pub lease_owner: Option<String>,
    pub settle: Settle,
}

/// A delivery receipt to apply.
#[derive(Debug, Clone)]
pub struct ReceiptIn {
    /// `smpp`, `twilio`, `kannel`, `sandbox`.
    pub kind: String,
    pub provider_id: Option<i64>,
    pub attempt_id: Option<i64>,
    pub remote_id: String,
    /// `delivered`, `undelivered` or `intermediate`.
    pub status: &'static str,
    pub raw_status: String,
    pub error_code: Option<String>,
    pub done_at: Option<DateTime<Utc>>,
    pub raw: Value,
}

/// What applying a receipt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptMatch {
    Applied,
    /// No attempt has that remote id (kept as a provider event, answered 200).
    Unmatched,
}

impl Store {
    /// Apply adapter outcomes in one transaction. Returns the transmissions that changed.
    pub async fn apply_outcomes(&self, outcomes: &[Outcome]) -> StoreResult<Vec<Transmission>> {
        if outcomes.is_empty() {
            return Ok(vec![]);
        }
        let now = clock::now();
        let subs = self.subscriptions().await?;
        let d = self.dialect();
        let statements: Vec<(Option<Q>, Q)> = outcomes.iter().map(|o| outcome_sql(d, o, now)).collect();
        Ok(on_pool!(self, p => {
            let mut tx = p.begin().await?;
            let mut changed = Vec::new();
            for (attempt, trans) in &statements {
                if let Some(a) = attempt {
                    sqlx::query_with(a.sql(), args(p, a)).execute(&mut *tx).await?;
                }
                let row: Option<Transmission> = sqlx::query_as_with(trans.sql(), args(p, trans)).fetch_optional(&mut *tx).await?;
                changed.extend(row);
            }
            let events: Vec<WebhookEvent> = changed.iter().filter_map(Transmission::status_event).collect();
            if let Some(w) = subs.deliveries(d, &events, now) {
                sqlx::query_with(w.sql(), args(p, &w)).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            changed
        }))
    }

    /// Apply delivery receipts in one transaction: each is stored raw as a provider
    /// event, then matched to its attempt (by attempt id when the provider echoes ours,
    /// else by the provider's message id) and applied.
    pub async fn apply_receipts(&self, receipts: &[ReceiptIn]) -> StoreResult<Vec<ReceiptMatch>> {
        if receipts.is_empty() {
            return Ok(vec![]);
        }
        let now = clock::now();
        let subs = self.subscriptions().await?;
        let d = self.dialect();
        Ok(on_pool!(self, p => {
            let mut tx = p.begin().await?;
            let mut matches = Vec::with_capacity(receipts.len());
            let mut changed: Vec<Transmission> = Vec::new();
            for r in receipts {
                let attempt: Option<Attempt> = match r.attempt_id {
                    Some(id) => sqlx::query_as("SELECT * FROM attempts WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?
                        .filter(|a: &Attempt| r.provider_id.is_none() || a.provider_id == r.provider_id),
                    None => match r.provider_id {
                        Some(pid) => sqlx::query_as("SELECT * FROM attempts WHERE remote_id = $1 AND provider_id = $2 ORDER BY id DESC LIMIT 1")
                            .bind(&r.remote_id)
                            .bind(pid)
                            .fetch_optional(&mut *tx)
                            .await?,
                        None => sqlx::query_as("SELECT * FROM attempts WHERE remote_id = $1 AND provider_id IS NULL ORDER BY id DESC LIMIT 1")
                            .bind(&r.remote_id)
                            .fetch_optional(&mut *tx)
                            .await?,
                    },
                };
                let mut ev = Q::new(d);
                ev.push("INSERT INTO provider_events (account_id, provider_id, kind, attempt_id, remote_id, outcome, payload, created_at) VALUES (")
                    .opt_int(attempt.as_ref().map(|a| a.account_id))
                    .push(", ").opt_int(r.provider_id)
                    .push(", ").text(&format!("{}.receipt", r.kind))
                    .push(", ").opt_int(attempt.as_ref().map(|a| a.id))
                    .push(", ").text(&r.remote_id)
                    .push(", ").text(if attempt.is_some() { "applied" } else { "unmatched" })
                    .push(", ").json(&r.raw)
                    .push(", ").ts(now).push(")");
                sqlx::query_with(ev.sql(), args(p, &ev)).execute(&mut *tx).await?;
                let Some(a) = attempt else {
                    matches.push(ReceiptMatch::Unmatched);
                    continue;
                };
                matches.push(ReceiptMatch::Applied);
                let mut res = Q::new(d);
                res.push("INSERT INTO results (account_id, transmission_id, attempt_id, type, name, data, created_at) VALUES (")
                    .int(a.account_id).push(", ").int(a.transmission_id).push(", ").int(a.id)
                    .push(", 'receipt', ").text(&r.raw_status)
                    .push(", ").text(&receipt_text(&r.raw))
                    .push(", ").ts(now).push(")");
                sqlx::query_with(res.sql(), args(p, &res)).execute(&mut *tx).await?;
                if r.status == "intermediate" {
                    // Providers may report out of order (Kannel makes its DLR calls
                    // concurrently): an intermediate report never overwrites a final one.
                    sqlx::query("UPDATE attempts SET raw_status = $1, updated_at = $2 WHERE id = $3 AND status IN ('sending', 'sent', 'ambiguous')")
                        .bind(&r.raw_status).bind(now).bind(a.id)
                        .execute(&mut *tx).await?;
                    continue;
                }
                let ended = r.done_at.unwrap_or(now);
                sqlx::query("UPDATE attempts SET status = $1, raw_status = $2, error_code = COALESCE($3, error_code), ended_at = $4, updated_at = $5 WHERE id = $6")
                    .bind(r.status).bind(&r.raw_status).bind(&r.error_code).bind(ended).bind(now).bind(a.id)
                    .execute(&mut *tx).await?;
                // A delivered receipt settles the transmission whatever came after (a
                // resend queued after an ambiguous attempt is dropped: the message arrived).
                // An undelivered one only settles it while this attempt is the latest.
                let row: Option<Transmission> = if r.status == status::DELIVERED {
                    sqlx::query_as(
                        "UPDATE transmissions SET status = 'delivered', delivered_at = $1, completed_at = $2, next_attempt_at = NULL, \
                         leased_until = NULL, lease_owner = NULL, error_code = NULL, error_message = NULL, updated_at = $2 \
                         WHERE id = $3 AND status NOT IN ('delivered', 'canceled') RETURNING *",
                    )
                    .bind(ended).bind(now).bind(a.transmission_id)
                    .fetch_optional(&mut *tx).await?
                } else {
                    sqlx::query_as(
                        "UPDATE transmissions SET status = 'undelivered', completed_at = $1, next_attempt_at = NULL, \
                         leased_until = NULL, lease_owner = NULL, error_code = $2, \
                         error_message = 'the network reported the message undelivered', updated_at = $1 \
                         WHERE id = $3 AND attempts = $4 AND status IN ('sent', 'sending') RETURNING *",
                    )
                    .bind(now).bind(r.error_code.clone().unwrap_or_else(|| r.raw_status.clone())).bind(a.transmission_id).bind(a.number)
                    .fetch_optional(&mut *tx).await?
                };
                changed.extend(row);
            }
            let events: Vec<WebhookEvent> = changed.iter().filter_map(Transmission::status_event).collect();
            if let Some(w) = subs.deliveries(d, &events, now) {
                sqlx::query_with(w.sql(), args(p, &w)).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            matches
        }))
    }

    /// Store a raw provider callback that is not a receipt (or could not be read as one).
    pub async fn record_provider_event(
        &self,
        account_id: Option<i64>,
        provider_id: Option<i64>,
        kind: &str,
        outcome: &str,
        payload: &Value,
    ) -> StoreResult<i64> {
        let mut q = Q::new(self.dialect());
        q.push("INSERT INTO provider_events (account_id, provider_id, kind, outcome, payload, created_at) VALUES (")
            .opt_int(account_id)
            .push(", ")
            .opt_int(provider_id)
            .push(", ")
            .text(kind)
            .push(", ")
            .text(outcome)
            .push(", ")
            .json(payload)
            .push(", ")
            .ts(clock::now())
            .push(") RETURNING id");
        Ok(on_pool!(self, p => sqlx::query_scalar_with(q.sql(), args(p, &q)).fetch_one(p).await)?)
    }

    /// An inbound message (SMS MO): stored as an inbound transmission of the provider's
    /// account, linked to the contact with that number if there is one.
    pub async fn record_inbound(
        &self,
        account_id: i64,
        provider_id: Option<i64>,
        kind: &str,
        from: &str,
        to: &str,
        body: &str,
        raw: &Value,
    ) -> StoreResult<Transmission> {
        self.record_provider_event(
            Some(account_id),
            provider_id,
            &format!("{kind}.inbound"),
            "applied",
            raw,
        )
        .await?;
        let contact = self.find_contact_by_msisdn(account_id, from).await?;
        let a = sauti_core::sms::analyze(body);
        let row = NewTransmission {
            account_id,
            direction: "inbound".into(),
            channel: "sms".into(),
            origin: "inbound".into(),
            contact_id: contact.map(|c| c.id),
            to_address: to.to_string(),
            from_address: Some(from.to_string()),
            body: body.to_string(),
            encoding: Some(a.encoding.as_str().to_string()),
            segments: i64::from(a.segments),
            status: status::RECEIVED.into(),
            max_attempts: 0,
            provider_id,
            ..Default::default()
        };
        let mut created = self.create_transmissions(&[row]).await?;
        Ok(created.remove(0))
    }
}

/// The text of a receipt for its result row: SMPP's receipt text when there is one,
/// else the raw callback as JSON.
fn receipt_text(raw: &Value) -> String {
    raw.get("text")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| raw.to_string())
}

/// The attempt update (if there is an attempt) and the transmission update of one outcome.
fn outcome_sql(d: crate::Dialect, o: &Outcome, now: DateTime<Utc>) -> (Option<Q>, Q) {
    let attempt = o.attempt_id.map(|id| {
        let mut q = Q::new(d);
        q.push("UPDATE attempts SET ");
        match &o.settle {
            Settle::Sent {
                remote_id,
                segments,
                raw_status,
                response,
            } => {
                q.push("status = 'sent', remote_id = ").text(remote_id);
                q.push(", segments = ").int(*segments);
                q.push(", raw_status = ").opt_text(raw_status.as_deref());
                q.push(", response = ").json(response);
            }
            Settle::Requeue {
                attempt_status,
                raw_status,
                reason,
                ..
            } => {
                q.push("status = ").text(attempt_status);
                q.push(", raw_status = ").opt_text(raw_status.as_deref());
                q.push(", error_message = ").text(reason);
                q.push(", ended_at = ").ts(now);
            }
            Settle::Fail {
                attempt_status,
                code,
                message,
                raw_status,
                ..
            } => {
                q.push("status = ").text(attempt_status);
                q.push(", raw_status = ").opt_text(raw_status.as_deref());
                q.push(", error_code = ").opt_text(code.as_deref());
                q.push(", error_message = ").text(message);
                q.push(", ended_at = ").ts(now);
            }
            Settle::Reject { code, message, .. } => {
                q.push("status = 'failed', error_code = ").text(code);
                q.push(", error_message = ").text(message);
                q.push(", ended_at = ").ts(now);
            }
        }
        // Only an open attempt is settled: a receipt may already have completed it.
        q.push(", updated_at = ").ts(now).push(" WHERE id = ").int(id);
        q.push(" AND status IN ('sending', 'ambiguous')");
        q
    });
    let mut t = Q::new(d);
    t.push("UPDATE transmissions SET leased_until = NULL, lease_owner = NULL, updated_at = ")
        .ts(now);
    match &o.settle {
        Settle::Sent { .. } => {
            t.push(", status = 'sent', next_attempt_at = NULL, error_code = NULL, error_message = NULL, sent_at = ")
                .ts(now);
            if let Some(a) = o.attempt_id {
                t.push(", provider_id = (SELECT provider_id FROM attempts WHERE id = ")
                    .int(a)
                    .push(")");
            }
        }
        Settle::Requeue { retry_at, .. } => {
            t.push(", status = 'queued', attempts = attempts - 1, next_attempt_at = ")
                .ts(*retry_at);
        }
        Settle::Fail {
            permanent: true,
            code,
            message,
            ..
        } => {
            t.push(", status = 'failed', next_attempt_at = NULL, completed_at = ")
                .ts(now);
            t.push(", error_code = ").opt_text(code.as_deref());
            t.push(", error_message = ").text(message);
        }
        Settle::Fail {
            permanent: false,
            avoid_provider,
            code,
            message,
            retry_at,
            ..
        } => {
            t.push(", status = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END");
            t.push(", next_attempt_at = CASE WHEN attempts >= max_attempts THEN NULL ELSE ")
                .ts(*retry_at)
                .push(" END");
            t.push(", completed_at = CASE WHEN attempts >= max_attempts THEN ")
                .ts(now)
                .push(" ELSE NULL END");
            t.push(", avoid_provider_id = ").opt_int(*avoid_provider);
            t.push(", error_code = ").opt_text(code.as_deref());
            t.push(", error_message = ").text(message);
        }
        Settle::Reject { status, code, message } => {
            t.push(", status = ").text(status);
            t.push(", attempts = attempts - 1, next_attempt_at = NULL, completed_at = ")
                .ts(now);
            t.push(", error_code = ").text(code);
            t.push(", error_message = ").text(message);
        }
    }
    t.push(" WHERE id = ").int(o.transmission_id);
    t.push(" AND status = 'sending' AND attempts = ").int(o.number);
    if let Some(owner) = &o.lease_owner {
        t.push(" AND lease_owner = ").text(owner);
    }
    t.push(" RETURNING *");
    (attempt, t)
}
