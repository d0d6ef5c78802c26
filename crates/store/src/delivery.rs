//! Settling attempts: the outcomes adapters report, delivery receipts, inbound messages.
//! Each batch is one transaction; every status change that a user sees is announced to
//! the account's webhook endpoints in that same transaction.

use chrono::{DateTime, Utc};
use sauti_core::clock;
use serde_json::Value;

use crate::sql::{Q, args};
use crate::transmissions::{NewTransmission, Transmission, status};
use crate::webhooks::WebhookEvent;
use crate::{Store, StoreResult, on_writer};

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
    /// Apply adapter outcomes in one transaction. Returns the transmissions that changed
    /// (those accepted by their provider only when a webhook endpoint listens for status
    /// changes).
    pub async fn apply_outcomes(&self, outcomes: &[Outcome]) -> StoreResult<Vec<Transmission>> {
        Ok(self.settle_batch(outcomes, &[]).await?.0)
    }

    /// Apply delivery receipts in one transaction: each is stored raw as a provider
    /// event, then matched to its attempt (by attempt id when the provider echoes ours,
    /// else by the provider's message id) and applied.
    pub async fn apply_receipts(&self, receipts: &[ReceiptIn]) -> StoreResult<Vec<ReceiptMatch>> {
        Ok(self.settle_batch(&[], receipts).await?.1)
    }

    /// Outcomes, then receipts, in one transaction: what the engine's outcome writer
    /// gathered since its last turn. One transaction is one turn of SQLite's single
    /// writer (decision 0015); with the two in separate turns, the claims and the
    /// population ran between them and the receipts (whose deliver_sm the SMSC holds in
    /// its window until they are written) waited twice as long. The outcomes go first: a
    /// receipt may name the message id that an outcome of the same batch records.
    ///
    /// A batch costs a handful of statements whatever its size: at thousands of receipts
    /// a second, a statement per receipt was the engine's bottleneck. Returns the
    /// transmissions the outcomes changed (as [`Store::apply_outcomes`]) and what each
    /// receipt matched.
    pub async fn settle_batch(
        &self,
        outcomes: &[Outcome],
        receipts: &[ReceiptIn],
    ) -> StoreResult<(Vec<Transmission>, Vec<ReceiptMatch>)> {
        if outcomes.is_empty() && receipts.is_empty() {
            return Ok((vec![], vec![]));
        }
        let now = clock::now();
        let subs = self.subscriptions().await?;
        let d = self.dialect();
        // The changed rows are read back only for the webhooks that want them: returning
        // every column of thousands of rows is much of a batch's cost.
        let listen = subs.wants_status_changes();
        // The common outcome — accepted by the provider — is applied in two statements
        // per chunk; the rest one by one.
        let (sent, rest): (Vec<&Outcome>, Vec<&Outcome>) = outcomes.iter().partition(|o| {
            matches!(o.settle, Settle::Sent { .. }) && o.attempt_id.is_some() && o.lease_owner.is_some()
        });
        let batched: Vec<(Q, Q)> = sent.chunks(CHUNK).map(|c| sent_sql(d, c, now, listen)).collect();
        let statements: Vec<(Option<Q>, Q)> = rest.iter().map(|o| outcome_sql(d, o, now)).collect();
        let by_id: Vec<i64> = receipts.iter().filter_map(|r| r.attempt_id).collect();
        let by_remote: Vec<&str> = receipts
            .iter()
            .filter(|r| r.attempt_id.is_none())
            .map(|r| r.remote_id.as_str())
            .collect();
        Ok(on_writer!(self, p => {
            let mut tx = p.begin().await?;
            let mut changed = Vec::new();
            for (attempts, trans) in &batched {
                sqlx::query_with(attempts.sql(), args(p, attempts)).persistent(false).execute(&mut *tx).await?;
                if listen {
                    changed.extend(sqlx::query_as_with::<_, Transmission, _>(trans.sql(), args(p, trans)).persistent(false).fetch_all(&mut *tx).await?);
                } else {
                    sqlx::query_with(trans.sql(), args(p, trans)).persistent(false).execute(&mut *tx).await?;
                }
            }
            for (attempt, trans) in &statements {
                if let Some(a) = attempt {
                    sqlx::query_with(a.sql(), args(p, a)).persistent(false).execute(&mut *tx).await?;
                }
                let row: Option<Transmission> = sqlx::query_as_with(trans.sql(), args(p, trans)).persistent(false).fetch_optional(&mut *tx).await?;
                changed.extend(row);
            }
            let outcome_changes = changed.len();
            let mut found: Vec<ReceiptTarget> = Vec::new();
            for chunk in by_id.chunks(CHUNK) {
                let mut q = Q::new(d);
                q.push(RECEIPT_TARGET).push(" WHERE id IN (");
                for (i, id) in chunk.iter().enumerate() {
                    if i > 0 { q.push(", "); }
                    q.int(*id);
                }
                q.push(")");
                found.extend(sqlx::query_as_with::<_, ReceiptTarget, _>(q.sql(), args(p, &q)).persistent(false).fetch_all(&mut *tx).await?);
            }
            for chunk in by_remote.chunks(CHUNK) {
                let mut q = Q::new(d);
                q.push(RECEIPT_TARGET).push(" WHERE remote_id IN (");
                for (i, r) in chunk.iter().enumerate() {
                    if i > 0 { q.push(", "); }
                    q.text(r);
                }
                q.push(")");
                found.extend(sqlx::query_as_with::<_, ReceiptTarget, _>(q.sql(), args(p, &q)).persistent(false).fetch_all(&mut *tx).await?);
            }
            let matched: Vec<Option<&ReceiptTarget>> = receipts.iter().map(|r| match_attempt(r, &found)).collect();

            // Every receipt, as received.
            for chunk in receipts.iter().zip(&matched).collect::<Vec<_>>().chunks(CHUNK) {
                let mut q = Q::new(d);
                q.push("INSERT INTO provider_events (account_id, provider_id, kind, attempt_id, remote_id, outcome, payload, created_at) VALUES ");
                for (i, (r, a)) in chunk.iter().enumerate() {
                    if i > 0 { q.push(", "); }
                    q.push("(").opt_int(a.map(|a| a.account_id)).push(", ").opt_int(r.provider_id);
                    q.push(", ").text(&format!("{}.receipt", r.kind)).push(", ").opt_int(a.map(|a| a.id));
                    q.push(", ").text(&r.remote_id).push(", ").text(if a.is_some() { "applied" } else { "unmatched" });
                    q.push(", ").json(&r.raw).push(", ").ts(now).push(")");
                }
                sqlx::query_with(q.sql(), args(p, &q)).persistent(false).execute(&mut *tx).await?;
            }
            let applied: Vec<(&ReceiptIn, &ReceiptTarget)> =
                receipts.iter().zip(&matched).filter_map(|(r, a)| a.map(|a| (r, a))).collect();
            for chunk in applied.chunks(CHUNK) {
                let mut q = Q::new(d);
                q.push("INSERT INTO results (account_id, transmission_id, attempt_id, type, name, data, created_at) VALUES ");
                for (i, (r, a)) in chunk.iter().enumerate() {
                    if i > 0 { q.push(", "); }
                    q.push("(").int(a.account_id).push(", ").int(a.transmission_id).push(", ").int(a.id);
                    q.push(", 'receipt', ").text(&r.raw_status).push(", ").text(&receipt_text(&r.raw));
                    q.push(", ").ts(now).push(")");
                }
                sqlx::query_with(q.sql(), args(p, &q)).persistent(false).execute(&mut *tx).await?;
            }
            // Attempts: a final receipt sets the status; an intermediate one only the raw
            // status, and never over a final one (providers may report out of order:
            // Kannel makes its DLR calls concurrently).
            for chunk in applied.chunks(CHUNK) {
                let mut q = Q::new(d);
                q.push("UPDATE attempts SET status = CASE WHEN v.column2 = 'intermediate' THEN attempts.status ELSE v.column2 END, \
                        raw_status = v.column3, error_code = COALESCE(v.column4, attempts.error_code), \
                        ended_at = CASE WHEN v.column2 = 'intermediate' THEN attempts.ended_at ELSE ");
                q.ts(now).push(" END, updated_at = ").ts(now).push(" FROM (VALUES ");
                for (i, (r, a)) in chunk.iter().enumerate() {
                    if i > 0 { q.push(", "); }
                    q.push("(").int(a.id).push(", ").text(r.status).push(", ").text(&r.raw_status);
                    q.push(", ").opt_text(r.error_code.as_deref()).push(")");
                }
                q.push(") AS v WHERE attempts.id = v.column1 AND (v.column2 <> 'intermediate' OR attempts.status IN ('sending', 'sent', 'ambiguous'))");
                sqlx::query_with(q.sql(), args(p, &q)).persistent(false).execute(&mut *tx).await?;
            }
            // A delivered receipt settles the transmission whatever came after (a resend
            // queued after an ambiguous attempt is dropped: the message arrived).
            let delivered: Vec<i64> = applied.iter().filter(|(r, _)| r.status == status::DELIVERED).map(|(_, a)| a.transmission_id).collect();
            for chunk in delivered.chunks(CHUNK) {
                let mut q = Q::new(d);
                q.push("UPDATE transmissions SET status = 'delivered', next_attempt_at = NULL, leased_until = NULL, lease_owner = NULL, \
                        error_code = NULL, error_message = NULL, delivered_at = ").ts(now);
                q.push(", completed_at = ").ts(now).push(", updated_at = ").ts(now);
                q.push(" WHERE status NOT IN ('delivered', 'canceled') AND id IN (");
                for (i, id) in chunk.iter().enumerate() {
                    if i > 0 { q.push(", "); }
                    q.int(*id);
                }
                q.push(")");
                if listen {
                    q.push(" RETURNING *");
                    changed.extend(sqlx::query_as_with::<_, Transmission, _>(q.sql(), args(p, &q)).persistent(false).fetch_all(&mut *tx).await?);
                } else {
                    sqlx::query_with(q.sql(), args(p, &q)).persistent(false).execute(&mut *tx).await?;
                }
            }
            // An undelivered one only while its attempt is the latest.
            let undelivered: Vec<&(&ReceiptIn, &ReceiptTarget)> = applied.iter().filter(|(r, _)| r.status == status::UNDELIVERED).collect();
            for chunk in undelivered.chunks(CHUNK) {
                let mut q = Q::new(d);
                let again = callout_retries("undelivered");
                q.push(&format!("UPDATE transmissions SET status = CASE WHEN {again} THEN 'pending' ELSE 'undelivered' END, \
                        next_attempt_at = CASE WHEN {again} THEN ")).ts(now);
                q.push(" ELSE NULL END, leased_until = NULL, lease_owner = NULL, \
                        error_code = v.column3, error_message = 'the network reported the message undelivered', ");
                q.push(&format!("completed_at = CASE WHEN {again} THEN NULL ELSE ")).ts(now);
                q.push(" END, updated_at = ").ts(now).push(" FROM (VALUES ");
                for (i, (r, a)) in chunk.iter().enumerate() {
                    if i > 0 { q.push(", "); }
                    q.push("(").int(a.transmission_id).push(", ").int(a.number);
                    q.push(", ").text(r.error_code.as_deref().unwrap_or(&r.raw_status)).push(")");
                }
                q.push(") AS v WHERE transmissions.id = v.column1 AND transmissions.attempts = v.column2 \
                        AND transmissions.status IN ('sent', 'sending')");
                if listen {
                    q.push(" RETURNING ").push(returning_transmissions(d));
                    changed.extend(sqlx::query_as_with::<_, Transmission, _>(q.sql(), args(p, &q)).persistent(false).fetch_all(&mut *tx).await?);
                } else {
                    sqlx::query_with(q.sql(), args(p, &q)).persistent(false).execute(&mut *tx).await?;
                }
            }
            let events: Vec<WebhookEvent> = changed.iter().filter_map(Transmission::status_event).collect();
            for w in subs.deliveries(d, &events, now) {
                sqlx::query_with(w.sql(), args(p, &w)).persistent(false).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            changed.truncate(outcome_changes);
            let matches = matched.iter().map(|a| if a.is_some() { ReceiptMatch::Applied } else { ReceiptMatch::Unmatched }).collect();
            (changed, matches)
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
        Ok(on_writer!(self, p => sqlx::query_scalar_with(q.sql(), args(p, &q)).persistent(false).fetch_one(p).await)?)
    }

    /// An inbound message (SMS MO): stored as an inbound transmission of the provider's
    /// account, linked to the contact with that number if there is one.
    #[allow(clippy::too_many_arguments)]
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
        // SMPP and Kannel give international numbers without the `+`; stored in E.164 when
        // it parses as a number, as given otherwise (short codes, alphanumeric senders).
        let parsed = sauti_core::msisdn::Msisdn::parse(from, None)
            .ok()
            .map(|m| m.into_string());
        let from = parsed.as_deref().unwrap_or(from);
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

/// Rows per multi-row statement: 1,000 rows of at most 8 values stay under SQLite's
/// 32,766 bound parameters.
const CHUNK: usize = 1000;

/// `RETURNING` the updated table's columns in an `UPDATE … FROM`: PostgreSQL would also
/// return the `FROM` list's, SQLite allows only the table's.
fn returning_transmissions(d: crate::Dialect) -> &'static str {
    match d {
        crate::Dialect::Postgres => "transmissions.*",
        crate::Dialect::Sqlite => "*",
    }
}

/// The attempt a receipt is about: ours by id when the provider echoes it, else the
/// newest attempt of that provider with that message id.
/// What a receipt needs of the attempt it is about: enough to match it and to write what
/// it says (reading whole attempts back was a good part of a batch's cost).
#[derive(Debug, sqlx::FromRow)]
struct ReceiptTarget {
    id: i64,
    account_id: i64,
    transmission_id: i64,
    number: i64,
    provider_id: Option<i64>,
    remote_id: Option<String>,
}

const RECEIPT_TARGET: &str = "SELECT id, account_id, transmission_id, number, provider_id, remote_id FROM attempts";

fn match_attempt<'a>(r: &ReceiptIn, found: &'a [ReceiptTarget]) -> Option<&'a ReceiptTarget> {
    let same_provider =
        |a: &&ReceiptTarget| a.provider_id == r.provider_id || (r.attempt_id.is_some() && r.provider_id.is_none());
    match r.attempt_id {
        Some(id) => found.iter().filter(same_provider).find(|a| a.id == id),
        None => found
            .iter()
            .filter(same_provider)
            .filter(|a| a.remote_id.as_deref() == Some(r.remote_id.as_str()))
            .max_by_key(|a| a.id),
    }
}

/// The condition (over `transmissions`) under which a participation whose attempt ended
/// in `outcome` is tried again: its callout retries that outcome and attempts remain.
pub(crate) fn callout_retries(outcome: &'static str) -> String {
    format!(
        "(transmissions.callout_id IS NOT NULL AND transmissions.attempts < transmissions.max_attempts \
         AND EXISTS (SELECT 1 FROM callouts WHERE callouts.id = transmissions.callout_id \
         AND ',' || callouts.retry_on || ',' LIKE '%,{outcome},%'))"
    )
}

/// The text of a receipt for its result row: SMPP's receipt text when there is one,
/// else the raw callback as JSON.
fn receipt_text(raw: &Value) -> String {
    raw.get("text")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| raw.to_string())
}

/// The attempt and transmission updates of a batch of `Settle::Sent` outcomes.
fn sent_sql(d: crate::Dialect, outcomes: &[&Outcome], now: DateTime<Utc>, returning: bool) -> (Q, Q) {
    let mut a = Q::new(d);
    a.push("UPDATE attempts SET status = 'sent', remote_id = v.column2, segments = v.column3, raw_status = v.column4, response = ");
    a.push(match d {
        crate::Dialect::Postgres => "CAST(v.column5 AS jsonb)",
        crate::Dialect::Sqlite => "v.column5",
    });
    a.push(", updated_at = ").ts(now).push(" FROM (VALUES ");
    let mut t = Q::new(d);
    t.push(
        "UPDATE transmissions SET status = 'sent', next_attempt_at = NULL, error_code = NULL, error_message = NULL, \
         leased_until = NULL, lease_owner = NULL, provider_id = (SELECT provider_id FROM attempts WHERE attempts.id = v.column3), sent_at = ",
    )
    .ts(now)
    .push(", updated_at = ")
    .ts(now)
    .push(" FROM (VALUES ");
    for (i, o) in outcomes.iter().enumerate() {
        let Settle::Sent {
            remote_id,
            segments,
            raw_status,
            response,
        } = &o.settle
        else {
            continue;
        };
        if i > 0 {
            a.push(", ");
            t.push(", ");
        }
        let attempt = o.attempt_id.unwrap_or_default();
        a.push("(")
            .int(attempt)
            .push(", ")
            .text(remote_id)
            .push(", ")
            .int(*segments);
        a.push(", ")
            .opt_text(raw_status.as_deref())
            .push(", ")
            .text(&response.to_string())
            .push(")");
        t.push("(")
            .int(o.transmission_id)
            .push(", ")
            .int(o.number)
            .push(", ")
            .int(attempt);
        t.push(", ").opt_text(o.lease_owner.as_deref()).push(")");
    }
    a.push(") AS v WHERE attempts.id = v.column1 AND attempts.status = 'sending'");
    t.push(
        ") AS v WHERE transmissions.id = v.column1 AND transmissions.attempts = v.column2 \
         AND transmissions.status = 'sending' AND transmissions.lease_owner = v.column4",
    );
    if returning {
        t.push(" RETURNING ").push(returning_transmissions(d));
    }
    (a, t)
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
        q.push(", updated_at = ").ts(now).push(" WHERE id = ").int(id);
        // Only an open attempt is settled. One already marked ambiguous (its lease was
        // taken over) stays so, whatever its worker reports late: a resend may be under
        // way, and the duplicate must stay accounted for.
        q.push(" AND status = 'sending'");
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
            // A campaign whose `retry_on` has `failed` tries a refused participation again.
            let again = callout_retries("failed");
            t.push(&format!(
                ", status = CASE WHEN {again} THEN 'pending' ELSE 'failed' END"
            ));
            t.push(&format!(", next_attempt_at = CASE WHEN {again} THEN "))
                .ts(now)
                .push(" ELSE NULL END");
            t.push(&format!(", completed_at = CASE WHEN {again} THEN NULL ELSE "))
                .ts(now)
                .push(" END");
            t.push(", error_code = ").opt_text(code.as_deref());
            t.push(", error_message = ").text(message);
        }
        Settle::Fail {
            attempt_status,
            permanent: false,
            avoid_provider,
            code,
            message,
            retry_at,
            ..
        } => {
            // A campaign's participation waits for its callout's pacer (stamped with the
            // time of the failure, released `retry_delay` later), so retries are paced
            // too. An ambiguous one is resent at once, as any transmission: it was
            // already paced once.
            let paced = if *attempt_status == "ambiguous" {
                "FALSE"
            } else {
                "callout_id IS NOT NULL"
            };
            t.push(&format!(
                ", status = CASE WHEN attempts >= max_attempts THEN 'failed' WHEN {paced} THEN 'pending' ELSE 'queued' END"
            ));
            t.push(&format!(
                ", next_attempt_at = CASE WHEN attempts >= max_attempts THEN NULL WHEN {paced} THEN "
            ))
            .ts(now)
            .push(" ELSE ")
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
