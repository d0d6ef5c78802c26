//! Transmissions (one interaction with one contact), their attempts (ICTCore spools) and
//! results. The transmissions table is the delivery queue: the engine claims due rows with
//! a lease, writes an attempt before each send and completes it after.

use chrono::{DateTime, Utc};
use sauti_core::clock;
use sauti_core::filter::ListQuery;
use serde_json::{Value, json};

use crate::list::account_scope;
use crate::sql::{Q, args};
use crate::webhooks::WebhookEvent;
use crate::{Json, JsonMap, Page, Store, StoreResult, on_pool, on_writer};

/// Transmission statuses (core vocabulary, DESIGN.md "Status vocabularies").
pub mod status {
    /// A campaign participation waiting for its callout's pacer to release it.
    pub const PENDING: &str = "pending";
    pub const QUEUED: &str = "queued";
    pub const SENDING: &str = "sending";
    pub const SENT: &str = "sent";
    pub const DELIVERED: &str = "delivered";
    pub const UNDELIVERED: &str = "undelivered";
    pub const FAILED: &str = "failed";
    pub const INVALID: &str = "invalid";
    pub const CANCELED: &str = "canceled";
    /// Inbound messages.
    pub const RECEIVED: &str = "received";

    /// Statuses after which nothing more happens to a transmission.
    pub const FINAL: &[&str] = &[DELIVERED, UNDELIVERED, FAILED, INVALID, CANCELED, RECEIVED];
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Transmission {
    pub id: i64,
    pub account_id: i64,
    pub direction: String,
    pub channel: String,
    pub origin: String,
    pub priority: i64,
    pub contact_id: Option<i64>,
    pub to_address: String,
    pub from_address: Option<String>,
    pub body: String,
    pub subject: Option<String>,
    pub html: Option<String>,
    pub text_id: Option<i64>,
    pub template_id: Option<i64>,
    pub encoding: Option<String>,
    pub segments: i64,
    pub status: String,
    pub max_attempts: i64,
    pub attempts: i64,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub leased_until: Option<DateTime<Utc>>,
    pub lease_owner: Option<String>,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub validity_period: Option<i64>,
    pub provider_id: Option<i64>,
    pub avoid_provider_id: Option<i64>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub metadata: Json<JsonMap>,
    /// The campaign this transmission is a participation of.
    pub callout_id: Option<i64>,
    /// The population that created it (SCFM `callout_population_id`).
    pub batch_operation_id: Option<i64>,
    /// A participation's own call flow, over its callout's.
    pub call_flow_logic: Option<String>,
    /// What a `PlayMessage` voice message plays when it has no callout (a callout's
    /// calls play the callout's audio).
    pub audio_url: Option<String>,
    pub recording_id: Option<i64>,
    pub sent_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The `origin` of the message that carries a verification's code.
pub const VERIFICATION_ORIGIN: &str = "verification";
/// The metadata key naming that verification (written by the store).
pub(crate) const VERIFICATION_KEY: &str = "verification_id";

impl Transmission {
    /// The verification whose code this message carries, if it is such a message.
    pub fn verification_id(&self) -> Option<i64> {
        (self.origin == VERIFICATION_ORIGIN)
            .then(|| self.metadata.0.get(VERIFICATION_KEY).and_then(Value::as_i64))
            .flatten()
    }
}

/// Timestamps as the API writes them (UTC, milliseconds).
pub fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn ts_opt(t: &Option<DateTime<Utc>>) -> Value {
    t.as_ref().map(|t| Value::String(ts(t))).unwrap_or(Value::Null)
}

impl Transmission {
    pub fn is_final(&self) -> bool {
        status::FINAL.contains(&self.status.as_str())
    }

    /// The transmission as the API and webhooks show it. One rendering for both, so a
    /// webhook payload is exactly what `GET /api/transmissions/{id}` answers.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "direction": self.direction,
            "channel": self.channel,
            "origin": self.origin,
            "status": self.status,
            "contact_id": self.contact_id,
            "to": self.to_address,
            "from": self.from_address,
            "body": self.body,
            "subject": self.subject,
            "html": self.html,
            "text_id": self.text_id,
            "template_id": self.template_id,
            "encoding": self.encoding,
            "segments": self.segments,
            "max_attempts": self.max_attempts,
            "attempts": self.attempts,
            "next_attempt_at": ts_opt(&self.next_attempt_at),
            "scheduled_at": ts_opt(&self.scheduled_at),
            "expires_at": ts_opt(&self.expires_at),
            "validity_period": self.validity_period,
            "provider_id": self.provider_id,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "metadata": self.metadata.0,
            "callout_id": self.callout_id,
            "call_flow_logic": self.call_flow_logic,
            "audio_url": self.audio_url,
            "recording_id": self.recording_id,
            "sent_at": ts_opt(&self.sent_at),
            "delivered_at": ts_opt(&self.delivered_at),
            "completed_at": ts_opt(&self.completed_at),
            "created_at": ts(&self.created_at),
            "updated_at": ts(&self.updated_at),
            "account_id": self.account_id,
        })
    }

    /// The webhook event this row's current status announces, if any: every change a
    /// user acts on (not the queued ⇄ sending churn of retries).
    pub(crate) fn status_event(&self) -> Option<WebhookEvent> {
        let kind = match self.status.as_str() {
            status::RECEIVED => "transmission.inbound",
            status::SENT
            | status::DELIVERED
            | status::UNDELIVERED
            | status::FAILED
            | status::INVALID
            | status::CANCELED => "transmission.status_changed",
            _ => return None,
        };
        Some(WebhookEvent {
            account_id: self.account_id,
            event_type: kind.to_string(),
            data: self.to_json(),
        })
    }
}

/// What the API (or a face, or inbound traffic) creates.
#[derive(Debug, Clone, Default)]
pub struct NewTransmission {
    pub account_id: i64,
    pub direction: String,
    pub channel: String,
    pub origin: String,
    pub priority: i64,
    pub contact_id: Option<i64>,
    pub to_address: String,
    pub from_address: Option<String>,
    pub body: String,
    pub subject: Option<String>,
    pub html: Option<String>,
    pub text_id: Option<i64>,
    pub template_id: Option<i64>,
    pub encoding: Option<String>,
    pub segments: i64,
    pub status: String,
    pub max_attempts: i64,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub validity_period: Option<i64>,
    pub provider_id: Option<i64>,
    pub metadata: JsonMap,
    pub callout_id: Option<i64>,
    pub batch_operation_id: Option<i64>,
    pub call_flow_logic: Option<String>,
    pub audio_url: Option<String>,
    pub recording_id: Option<i64>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Attempt {
    pub id: i64,
    pub account_id: i64,
    pub transmission_id: i64,
    pub number: i64,
    pub provider_id: Option<i64>,
    pub provider_kind: String,
    pub status: String,
    pub remote_id: Option<String>,
    pub raw_status: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub segments: i64,
    pub response: Json<Value>,
    pub queued_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Voice: how long the answered call lasted, as the provider reported it.
    pub duration_seconds: Option<i64>,
    pub metadata: Json<JsonMap>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Attempt {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "transmission_id": self.transmission_id,
            "number": self.number,
            "provider_id": self.provider_id,
            "provider_kind": self.provider_kind,
            "status": self.status,
            "remote_id": self.remote_id,
            "raw_status": self.raw_status,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "segments": self.segments,
            "response": self.response.0,
            "queued_at": ts(&self.queued_at),
            "started_at": ts_opt(&self.started_at),
            "ended_at": ts_opt(&self.ended_at),
            "duration_seconds": self.duration_seconds,
            "created_at": ts(&self.created_at),
            "updated_at": ts(&self.updated_at),
        })
    }
}

/// A fact an attempt produced (delivery receipt, DTMF digits, …).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ResultRow {
    pub id: i64,
    pub account_id: i64,
    pub transmission_id: i64,
    pub attempt_id: Option<i64>,
    pub r#type: String,
    pub name: String,
    pub data: String,
    pub created_at: DateTime<Utc>,
}

impl ResultRow {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "transmission_id": self.transmission_id,
            "attempt_id": self.attempt_id,
            "type": self.r#type,
            "name": self.name,
            "data": self.data,
            "created_at": ts(&self.created_at),
        })
    }
}

/// What became of an event on a transmission.
#[derive(Debug, Clone)]
pub enum Transition {
    Done(Box<Transmission>),
    NotFound,
    /// The transmission is in a status the event does not apply to.
    Refused(String),
}

impl Store {
    /// Insert transmissions in one statement, queued ones due at `scheduled_at` or now.
    pub async fn create_transmissions(&self, rows: &[NewTransmission]) -> StoreResult<Vec<Transmission>> {
        if rows.is_empty() {
            return Ok(vec![]);
        }
        let now = clock::now();
        let mut events_of_inbound = Vec::new();
        let q = insert_query(self.dialect(), rows, now);
        let subs = self.subscriptions().await?;
        let created: Vec<Transmission> = on_writer!(self, p => {
            let mut tx = p.begin().await?;
            let mut created: Vec<Transmission> = sqlx::query_as_with(q.sql(), args(p, &q)).persistent(false).fetch_all(&mut *tx).await?;
            created.sort_by_key(|t| t.id);
            for t in &created {
                if let Some(e) = t.status_event() {
                    events_of_inbound.push(e);
                }
            }
            for w in subs.deliveries(self.dialect(), &events_of_inbound, now) {
                sqlx::query_with(w.sql(), args(p, &w)).persistent(false).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            created
        });
        Ok(created)
    }

    pub async fn get_transmission(&self, account_id: i64, id: i64) -> StoreResult<Option<Transmission>> {
        let sql = "SELECT * FROM transmissions WHERE account_id = $1 AND id = $2";
        Ok(on_pool!(self, p => sqlx::query_as(sql).bind(account_id).bind(id).fetch_optional(p).await)?)
    }

    pub async fn list_transmissions(&self, account_id: i64, query: &ListQuery) -> StoreResult<Page<Transmission>> {
        self.list_rows("transmissions", account_scope(account_id), query).await
    }

    pub async fn list_attempts(
        &self,
        account_id: i64,
        transmission_id: i64,
        query: &ListQuery,
    ) -> StoreResult<Page<Attempt>> {
        let mut scope = account_scope(account_id);
        let ph = scope.bind(sauti_core::filter::SqlValue::Int(transmission_id));
        scope.text.push_str(&format!(" AND transmission_id = {ph}"));
        self.list_rows("attempts", scope, query).await
    }

    pub async fn list_results(
        &self,
        account_id: i64,
        transmission_id: i64,
        query: &ListQuery,
    ) -> StoreResult<Page<ResultRow>> {
        let mut scope = account_scope(account_id);
        let ph = scope.bind(sauti_core::filter::SqlValue::Int(transmission_id));
        scope.text.push_str(&format!(" AND transmission_id = {ph}"));
        self.list_rows("results", scope, query).await
    }

    /// Attempts of a transmission in order (for tests and the CLI).
    pub async fn attempts_of(&self, transmission_id: i64) -> StoreResult<Vec<Attempt>> {
        let sql = "SELECT * FROM attempts WHERE transmission_id = $1 ORDER BY number, id";
        Ok(on_pool!(self, p => sqlx::query_as(sql).bind(transmission_id).fetch_all(p).await)?)
    }

    /// Delete a transmission that is not being sent right now (with its attempts and
    /// results).
    pub async fn delete_transmission(&self, account_id: i64, id: i64) -> StoreResult<Transition> {
        let sql = "DELETE FROM transmissions WHERE account_id = $1 AND id = $2 AND status <> 'sending' RETURNING *";
        let row: Option<Transmission> =
            on_pool!(self, p => sqlx::query_as(sql).bind(account_id).bind(id).fetch_optional(p).await)?;
        self.transition_result(
            account_id,
            id,
            row,
            "a transmission being sent cannot be deleted; cancel it or wait",
        )
        .await
    }

    /// `cancel`: a queued (or scheduled) transmission will not be sent.
    pub async fn cancel_transmission(&self, account_id: i64, id: i64) -> StoreResult<Transition> {
        let now = clock::now();
        let mut q = Q::new(self.dialect());
        q.push("UPDATE transmissions SET status = 'canceled', next_attempt_at = NULL, completed_at = ")
            .ts(now)
            .push(", updated_at = ")
            .ts(now)
            .push(" WHERE account_id = ")
            .int(account_id)
            .push(" AND id = ")
            .int(id)
            .push(" AND status = 'queued' RETURNING *");
        let row = self.update_one_with_events(&q, now).await?;
        self.transition_result(account_id, id, row, "only a queued transmission can be canceled")
            .await
    }

    /// `retry`: a failed or undelivered transmission gets one more attempt, now.
    pub async fn retry_transmission(&self, account_id: i64, id: i64) -> StoreResult<Transition> {
        let now = clock::now();
        let mut q = Q::new(self.dialect());
        q.push(
            "UPDATE transmissions SET status = 'queued', max_attempts = attempts + 1, error_code = NULL, \
             error_message = NULL, completed_at = NULL, next_attempt_at = ",
        )
        .ts(now)
        .push(", updated_at = ")
        .ts(now)
        .push(" WHERE account_id = ")
        .int(account_id)
        .push(" AND id = ")
        .int(id)
        .push(" AND status IN ('failed', 'undelivered') AND direction = 'outbound' RETURNING *");
        let row = self.update_one_with_events(&q, now).await?;
        self.transition_result(
            account_id,
            id,
            row,
            "only a failed or undelivered transmission can be retried",
        )
        .await
    }

    async fn transition_result(
        &self,
        account_id: i64,
        id: i64,
        row: Option<Transmission>,
        refusal: &str,
    ) -> StoreResult<Transition> {
        if let Some(t) = row {
            return Ok(Transition::Done(Box::new(t)));
        }
        Ok(match self.get_transmission(account_id, id).await? {
            None => Transition::NotFound,
            Some(t) => Transition::Refused(format!("{refusal} (it is {})", t.status)),
        })
    }

    /// Run an `UPDATE … RETURNING *` of at most one transmission, announcing its new status.
    async fn update_one_with_events(&self, q: &Q, now: DateTime<Utc>) -> StoreResult<Option<Transmission>> {
        let subs = self.subscriptions().await?;
        Ok(on_pool!(self, p => {
            let mut tx = p.begin().await?;
            let row: Option<Transmission> = sqlx::query_as_with(q.sql(), args(p, q)).persistent(false).fetch_optional(&mut *tx).await?;
            let events: Vec<WebhookEvent> = row.iter().filter_map(Transmission::status_event).collect();
            for w in subs.deliveries(self.dialect(), &events, now) {
                sqlx::query_with(w.sql(), args(p, &w)).persistent(false).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            row
        }))
    }

    /// Claim up to `limit` due transmissions for `owner` until `lease_until` (only
    /// transactional ones, priority 0, unless `bulk`), and write an
    /// attempt for each one `route` finds a provider for, in one transaction. Transmissions
    /// with no route come back in the second list, still leased, for
    /// [`Store::apply_outcomes`] to settle.
    pub async fn claim_due(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
        bulk: bool,
        mut route: impl FnMut(&Transmission) -> Option<(Option<i64>, String)>,
    ) -> StoreResult<(Vec<(Transmission, Attempt)>, Vec<Transmission>)> {
        let mut claim = Q::new(self.dialect());
        claim
            .push("UPDATE transmissions SET status = 'sending', attempts = attempts + 1, leased_until = ")
            .ts(lease_until)
            .push(", lease_owner = ")
            .text(owner)
            .push(", updated_at = ")
            .ts(now)
            .push(" WHERE id IN (SELECT id FROM transmissions WHERE status = 'queued' AND next_attempt_at <= ")
            .ts(now)
            .push(if bulk { "" } else { " AND priority = 0" })
            .push(" ORDER BY priority, next_attempt_at LIMIT ")
            .int(i64::from(limit));
        if self.dialect() == crate::Dialect::Postgres {
            // Several nodes claim at once; each skips the rows another is taking.
            claim.push(" FOR UPDATE SKIP LOCKED");
        }
        claim.push(") RETURNING *");
        Ok(on_writer!(self, p => {
            let mut tx = p.begin().await?;
            let mut claimed: Vec<Transmission> = sqlx::query_as_with(claim.sql(), args(p, &claim)).persistent(false).fetch_all(&mut *tx).await?;
            claimed.sort_by_key(|t| (t.priority, t.next_attempt_at, t.id));
            let mut routed = Vec::with_capacity(claimed.len());
            let mut unrouted = Vec::new();
            for t in claimed {
                match route(&t) {
                    Some(r) => routed.push((t, r)),
                    None => unrouted.push(t),
                }
            }
            let mut pairs = Vec::with_capacity(routed.len());
            if !routed.is_empty() {
                let mut ins = Q::new(self.dialect());
                ins.push(
                    "INSERT INTO attempts (account_id, transmission_id, number, provider_id, provider_kind, status, segments, \
                     queued_at, started_at, created_at, updated_at) VALUES ",
                );
                for (i, (t, (provider_id, kind))) in routed.iter().enumerate() {
                    if i > 0 {
                        ins.push(", ");
                    }
                    ins.push("(").int(t.account_id).push(", ").int(t.id).push(", ").int(t.attempts);
                    ins.push(", ").opt_int(*provider_id).push(", ").text(kind).push(", 'sending', ").int(t.segments);
                    ins.push(", ").ts(t.next_attempt_at.unwrap_or(now)).push(", ").ts(now).push(", ").ts(now).push(", ").ts(now).push(")");
                }
                // Only the ids come back: every other column is what was just written,
                // and reading back (and parsing) 20 columns of each new row was a good
                // part of a claim's cost.
                ins.push(" RETURNING transmission_id, id");
                let ids: Vec<(i64, i64)> = sqlx::query_as_with(ins.sql(), args(p, &ins)).persistent(false).fetch_all(&mut *tx).await?;
                let mut by_tx: std::collections::HashMap<i64, i64> = ids.into_iter().collect();
                for (t, (provider_id, kind)) in routed {
                    if let Some(id) = by_tx.remove(&t.id) {
                        let a = Attempt {
                            id,
                            account_id: t.account_id,
                            transmission_id: t.id,
                            number: t.attempts,
                            provider_id,
                            provider_kind: kind,
                            status: "sending".into(),
                            remote_id: None,
                            raw_status: None,
                            error_code: None,
                            error_message: None,
                            segments: t.segments,
                            response: Json(Value::Object(Default::default())),
                            queued_at: t.next_attempt_at.unwrap_or(now),
                            started_at: Some(now),
                            ended_at: None,
                            duration_seconds: None,
                            metadata: Json(Default::default()),
                            created_at: now,
                            updated_at: now,
                        };
                        pairs.push((t, a));
                    }
                }
            }
            tx.commit().await?;
            (pairs, unrouted)
        }))
    }

    /// Extend the leases `owner` holds on transmissions still being sent.
    pub async fn renew_leases(&self, owner: &str, lease_until: DateTime<Utc>) -> StoreResult<u64> {
        let sql = "UPDATE transmissions SET leased_until = $1 WHERE status = 'sending' AND lease_owner = $2";
        Ok(
            on_writer!(self, p => sqlx::query(sql).bind(lease_until).bind(owner).execute(p).await.map(|r| r.rows_affected()))?,
        )
    }

    /// Transmissions whose lease ran out (their worker died; never `except_owner`'s own):
    /// their open attempts become
    /// `ambiguous` — the bytes may or may not have left — and the transmissions are settled
    /// by `policy` through [`Store::apply_outcomes`]. Returns what was reclaimed.
    pub async fn expired_leases(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        except_owner: &str,
    ) -> StoreResult<Vec<(Transmission, Option<Attempt>)>> {
        // A worker never takes over its own leases: their work is still in its hands (a
        // renewal that came late under load is not a death), and it settles them itself.
        let sql = "SELECT * FROM transmissions WHERE status = 'sending' AND leased_until < $1 \
                   AND (lease_owner IS NULL OR lease_owner <> $3) ORDER BY leased_until LIMIT $2";
        let rows: Vec<Transmission> = on_pool!(self, p => sqlx::query_as(sql)
            .bind(now)
            .bind(i64::from(limit))
            .bind(except_owner)
            .fetch_all(p)
            .await)?;
        let mut out = Vec::with_capacity(rows.len());
        for t in rows {
            let sql = "SELECT * FROM attempts WHERE transmission_id = $1 AND number = $2 ORDER BY id DESC LIMIT 1";
            let a: Option<Attempt> =
                on_pool!(self, p => sqlx::query_as(sql).bind(t.id).bind(t.attempts).fetch_optional(p).await)?;
            out.push((t, a));
        }
        Ok(out)
    }

    /// Queued transmissions whose validity ran out before they could be sent: failed.
    pub async fn expire_unsent(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let mut q = Q::new(self.dialect());
        q.push(
            "UPDATE transmissions SET status = 'failed', error_code = 'expired', \
             error_message = 'the validity period ended before the message could be sent', next_attempt_at = NULL, completed_at = ",
        )
        .ts(now)
        .push(", updated_at = ")
        .ts(now)
        .push(" WHERE status = 'queued' AND expires_at IS NOT NULL AND expires_at < ")
        .ts(now)
        .push(" RETURNING *");
        let subs = self.subscriptions().await?;
        Ok(on_writer!(self, p => {
            let mut tx = p.begin().await?;
            let rows: Vec<Transmission> = sqlx::query_as_with(q.sql(), args(p, &q)).persistent(false).fetch_all(&mut *tx).await?;
            let events: Vec<WebhookEvent> = rows.iter().filter_map(Transmission::status_event).collect();
            for w in subs.deliveries(self.dialect(), &events, now) {
                sqlx::query_with(w.sql(), args(p, &w)).persistent(false).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            rows.len() as u64
        }))
    }

    /// Counts by status of an account's transmissions (for tests, the CLI and benchmarks).
    pub async fn transmission_status_counts(&self, account_id: Option<i64>) -> StoreResult<Vec<(String, i64)>> {
        let sql = "SELECT status, COUNT(*) FROM transmissions WHERE ($1 IS NULL OR account_id = $1) GROUP BY status ORDER BY status";
        Ok(on_pool!(self, p => sqlx::query_as(sql).bind(account_id).fetch_all(p).await)?)
    }
}

/// The multi-row insert of `rows` at `now`, returning the new rows.
pub(crate) fn insert_query(dialect: crate::Dialect, rows: &[NewTransmission], now: DateTime<Utc>) -> Q {
    let mut q = Q::new(dialect);
    q.push(
        "INSERT INTO transmissions (account_id, direction, channel, origin, priority, contact_id, to_address, \
         from_address, body, subject, html, text_id, template_id, encoding, segments, status, max_attempts, \
         next_attempt_at, scheduled_at, expires_at, validity_period, provider_id, metadata, callout_id, batch_operation_id, \
         call_flow_logic, audio_url, recording_id, completed_at, created_at, updated_at) VALUES ",
    );
    for (i, r) in rows.iter().enumerate() {
        if i > 0 {
            q.push(", ");
        }
        let queued = r.status == status::QUEUED;
        let due = queued.then(|| r.scheduled_at.unwrap_or(now).max(now));
        let completed = status::FINAL.contains(&r.status.as_str()).then_some(now);
        q.push("(")
            .int(r.account_id)
            .push(", ")
            .text(&r.direction)
            .push(", ")
            .text(&r.channel);
        q.push(", ")
            .text(&r.origin)
            .push(", ")
            .int(r.priority)
            .push(", ")
            .opt_int(r.contact_id);
        q.push(", ")
            .text(&r.to_address)
            .push(", ")
            .opt_text(r.from_address.as_deref());
        q.push(", ")
            .text(&r.body)
            .push(", ")
            .opt_text(r.subject.as_deref())
            .push(", ")
            .opt_text(r.html.as_deref());
        q.push(", ").opt_int(r.text_id).push(", ").opt_int(r.template_id);
        q.push(", ")
            .opt_text(r.encoding.as_deref())
            .push(", ")
            .int(r.segments)
            .push(", ")
            .text(&r.status);
        q.push(", ")
            .int(r.max_attempts)
            .push(", ")
            .opt_ts(due)
            .push(", ")
            .opt_ts(r.scheduled_at);
        q.push(", ")
            .opt_ts(r.expires_at)
            .push(", ")
            .opt_int(r.validity_period)
            .push(", ")
            .opt_int(r.provider_id);
        q.push(", ")
            .json(&Value::Object(r.metadata.clone()))
            .push(", ")
            .opt_int(r.callout_id)
            .push(", ")
            .opt_int(r.batch_operation_id)
            .push(", ")
            .opt_text(r.call_flow_logic.as_deref())
            .push(", ")
            .opt_text(r.audio_url.as_deref())
            .push(", ")
            .opt_int(r.recording_id)
            .push(", ")
            .opt_ts(completed);
        q.push(", ").ts(now).push(", ").ts(now).push(")");
    }
    if rows.iter().any(|r| r.callout_id.is_some()) {
        // A contact already in the callout is skipped, not an error: populations are
        // re-run after a crash, and a filter may overlap manual participations.
        q.push(" ON CONFLICT DO NOTHING");
    }
    q.push(" RETURNING *");
    q
}
