//! Voice calls: a phone call (SCFM) is a voice attempt, and what the provider tells sauti
//! about it — the TwiML requests of the call, the keys pressed, the status callbacks — are
//! provider events, shown as SCFM's remote phone call events. Call statuses are
//! translated by the one table in `sauti_core::calls`.

use chrono::{DateTime, Utc};
use sauti_core::calls::{CallEnd, CallStatus, FINAL_ATTEMPT_STATUSES};
use sauti_core::clock;
use sauti_core::filter::{ListQuery, Sql, SqlValue};
use serde_json::{Value, json};

use crate::delivery::callout_retries;
use crate::list::{Page, account_scope};
use crate::transmissions::{Attempt, Transmission, ts};
use crate::users::CAS_TRIES;
use crate::webhooks::WebhookEvent;
use crate::{Json, JsonMap, Store, StoreResult, on_pool};

/// Provider event kinds that are about a call (the rest are SMS receipts, inbound
/// messages, …).
pub mod call_event_kind {
    /// A call-status callback.
    pub const STATUS: &str = "twilio.call_status";
    /// The provider fetched the call's TwiML.
    pub const TWIML: &str = "twilio.twiml";
    /// The provider posted the keys pressed in a `<Gather>`.
    pub const GATHER: &str = "twilio.gather";
}

/// A voice attempt with what SCFM shows of its transmission.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PhoneCall {
    #[sqlx(flatten)]
    pub attempt: Attempt,
    pub callout_id: Option<i64>,
    pub contact_id: Option<i64>,
    pub batch_operation_id: Option<i64>,
    pub msisdn: String,
    pub call_flow_logic: Option<String>,
}

impl PhoneCall {
    /// The phone call as SCFM shows it.
    pub fn to_json(&self) -> Value {
        let a = &self.attempt;
        json!({
            "id": a.id,
            "callout_participation_id": self.callout_id.map(|_| a.transmission_id),
            "transmission_id": a.transmission_id,
            "callout_id": self.callout_id,
            "contact_id": self.contact_id,
            "create_batch_operation_id": self.batch_operation_id,
            "status": sauti_core::calls::scfm_status(&a.status, a.remote_id.is_some()),
            "msisdn": self.msisdn,
            "remote_call_id": a.remote_id,
            "remote_status": a.raw_status,
            "remote_direction": a.remote_id.as_ref().map(|_| "outbound-api"),
            "remote_error_message": a.error_message,
            "remote_queue_response": a.response.0,
            "call_flow_logic": self.call_flow_logic,
            "remotely_queued_at": a.remote_id.as_ref().map(|_| ts(&a.queued_at)),
            "duration": a.duration_seconds.unwrap_or(0),
            "metadata": a.metadata.0,
            "provider_id": a.provider_id,
            "account_id": a.account_id,
            "created_at": ts(&a.created_at),
            "updated_at": ts(&a.updated_at),
        })
    }
}

/// The columns of a phone call: the attempt's, and its transmission's that SCFM shows.
const PHONE_CALLS: &str = "(SELECT a.*, t.callout_id, t.contact_id, t.batch_operation_id, t.to_address AS msisdn, \
     COALESCE(t.call_flow_logic, c.call_flow_logic) AS call_flow_logic \
     FROM attempts a JOIN transmissions t ON t.id = a.transmission_id \
     LEFT JOIN callouts c ON c.id = t.callout_id WHERE t.channel = 'voice') AS phone_calls";

/// A provider event about a call (SCFM remote phone call event).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CallEvent {
    pub id: i64,
    pub account_id: Option<i64>,
    pub provider_id: Option<i64>,
    pub kind: String,
    pub attempt_id: Option<i64>,
    pub remote_id: Option<String>,
    pub outcome: String,
    pub payload: Json<Value>,
    pub metadata: Json<JsonMap>,
    pub call_flow_logic: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl CallEvent {
    /// The event as SCFM shows a remote phone call event.
    pub fn to_json(&self) -> Value {
        let details = &self.payload.0;
        let text = |k: &str| details.get(k).and_then(Value::as_str).map(str::to_string);
        json!({
            "id": self.id,
            "phone_call_id": self.attempt_id,
            "type": self.kind.trim_start_matches("twilio."),
            "details": details,
            "metadata": self.metadata.0,
            "remote_call_id": self.remote_id.clone().or_else(|| text("CallSid")),
            "remote_direction": text("Direction"),
            "call_flow_logic": self.call_flow_logic,
            "call_duration": text("CallDuration").and_then(|d| d.parse::<i64>().ok()).unwrap_or(0),
            "outcome": self.outcome,
            "provider_id": self.provider_id,
            "created_at": ts(&self.created_at),
            "updated_at": ts(self.updated_at.as_ref().unwrap_or(&self.created_at)),
        })
    }
}

/// Call events as users see them: not the ones refused for a bad signature (kept for
/// the operator, but nobody vouches for what they say).
const CALL_EVENTS: &str = "(SELECT e.*, COALESCE(t.call_flow_logic, c.call_flow_logic) AS call_flow_logic \
     FROM provider_events e LEFT JOIN attempts a ON a.id = e.attempt_id \
     LEFT JOIN transmissions t ON t.id = a.transmission_id LEFT JOIN callouts c ON c.id = t.callout_id \
     WHERE e.kind IN ('twilio.call_status', 'twilio.twiml', 'twilio.gather') \
     AND e.outcome <> 'invalid_signature') AS remote_phone_call_events";

/// A call-status callback to apply.
#[derive(Debug, Clone)]
pub struct CallStatusIn {
    pub account_id: i64,
    pub provider_id: i64,
    /// The provider's call id (`CallSid`).
    pub remote_id: String,
    pub status: CallStatus,
    /// As the provider wrote it.
    pub raw_status: String,
    pub duration_seconds: Option<i64>,
    pub error_code: Option<String>,
    pub raw: Value,
}

/// Scope a list to one account, and optionally one column to one value.
fn scope(account_id: i64, column: Option<(&str, i64)>) -> Sql {
    let mut s = account_scope(account_id);
    if let Some((column, id)) = column {
        let ph = s.bind(SqlValue::Int(id));
        s.text.push_str(&format!(" AND {column} = {ph}"));
    }
    s
}

impl Store {
    /// The account's phone calls, optionally those of one participation or callout.
    pub async fn list_phone_calls(
        &self,
        account_id: i64,
        of: Option<(&'static str, i64)>,
        query: &ListQuery,
    ) -> StoreResult<Page<PhoneCall>> {
        self.list_rows(PHONE_CALLS, scope(account_id, of), query).await
    }

    pub async fn get_phone_call(&self, account_id: i64, id: i64) -> StoreResult<Option<PhoneCall>> {
        let sql = format!("SELECT * FROM {PHONE_CALLS} WHERE account_id = $1 AND id = $2");
        Ok(
            on_pool!(self, p => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(account_id).bind(id).fetch_optional(p).await)?,
        )
    }

    /// An attempt by id, whatever its account: the TwiML of a call is asked for by the
    /// provider, which the handler checks (signature, account) before using it.
    pub async fn find_attempt(&self, id: i64) -> StoreResult<Option<Attempt>> {
        let sql = "SELECT * FROM attempts WHERE id = $1";
        Ok(on_pool!(self, p => sqlx::query_as(sql).bind(id).fetch_optional(p).await)?)
    }

    pub async fn list_call_events(&self, account_id: i64, query: &ListQuery) -> StoreResult<Page<CallEvent>> {
        self.list_rows(CALL_EVENTS, account_scope(account_id), query).await
    }

    pub async fn get_call_event(&self, account_id: i64, id: i64) -> StoreResult<Option<CallEvent>> {
        let sql = format!("SELECT * FROM {CALL_EVENTS} WHERE account_id = $1 AND id = $2");
        Ok(
            on_pool!(self, p => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(account_id).bind(id).fetch_optional(p).await)?,
        )
    }

    /// Change a call event's metadata. `None` when the account has no such event.
    pub async fn update_call_event_metadata(
        &self,
        account_id: i64,
        id: i64,
        change: &(dyn Fn(&mut JsonMap) + Send + Sync),
    ) -> StoreResult<Option<CallEvent>> {
        // Compare-and-set on the metadata read, so two concurrent merges do not lose one.
        for _ in 0..CAS_TRIES {
            let Some(event) = self.get_call_event(account_id, id).await? else {
                return Ok(None);
            };
            let mut metadata = event.metadata.0.clone();
            change(&mut metadata);
            let now = clock::now();
            let sql = "UPDATE provider_events SET metadata = $3, updated_at = $4 WHERE account_id = $1 AND id = $2 \
                       AND metadata = $5";
            let done = on_pool!(self, p => sqlx::query(sql).bind(account_id).bind(id).bind(Json(&metadata))
                .bind(now).bind(&event.metadata).execute(p).await.map(|r| r.rows_affected()))?;
            if done == 1 {
                return Ok(Some(CallEvent {
                    metadata: Json(metadata),
                    updated_at: Some(now),
                    ..event
                }));
            }
        }
        Err(crate::StoreError::Contended)
    }

    /// Store a provider request about one call (a TwiML fetch, keys pressed) as a call
    /// event; with `result`, also the fact it produced (`type`, `name`, `data`) on the
    /// attempt, in the same transaction.
    pub async fn record_call_request(
        &self,
        attempt: &Attempt,
        kind: &str,
        payload: &Value,
        result: Option<(&str, &str, &str)>,
    ) -> StoreResult<i64> {
        let now = clock::now();
        Ok(on_pool!(self, p => {
            let mut tx = p.begin().await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO provider_events (account_id, provider_id, kind, attempt_id, remote_id, outcome, payload, created_at) \
                 VALUES ($1, $2, $3, $4, $5, 'applied', $6, $7) RETURNING id",
            )
            .bind(attempt.account_id)
            .bind(attempt.provider_id)
            .bind(kind)
            .bind(attempt.id)
            .bind(payload.get("CallSid").and_then(Value::as_str).or(attempt.remote_id.as_deref()))
            .bind(Json(payload))
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            if let Some((r#type, name, data)) = result {
                sqlx::query(
                    "INSERT INTO results (account_id, transmission_id, attempt_id, type, name, data, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(attempt.account_id)
                .bind(attempt.transmission_id)
                .bind(attempt.id)
                .bind(r#type)
                .bind(name)
                .bind(data)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            id
        }))
    }

    /// Apply a call-status callback: stored raw as a call event first, then matched to
    /// the provider's attempt with that call id. An intermediate status moves the attempt
    /// on (never back); a final one ends it and settles the transmission — delivered when
    /// the call was answered, else tried again when its callout's `retry_on` has the
    /// outcome and attempts remain, else `undelivered` (the attempt keeps the call's own
    /// status). Returns the event's id and the attempt it matched.
    pub async fn apply_call_status(&self, c: &CallStatusIn) -> StoreResult<(i64, Option<Attempt>)> {
        let now = clock::now();
        let subs = self.subscriptions().await?;
        let d = self.dialect();
        let ended = c.status.end != CallEnd::Ongoing;
        let finals = FINAL_ATTEMPT_STATUSES
            .iter()
            .map(|s| format!("'{s}'"))
            .collect::<Vec<_>>()
            .join(", ");
        // A final status ends any open call; an intermediate one only moves a call forward
        // (callbacks may arrive out of order: `ringing` after `in-progress`).
        let attempt_sql = format!(
            "UPDATE attempts SET status = $2, raw_status = $3, duration_seconds = COALESCE($4, duration_seconds), \
             error_code = COALESCE($5, error_code), \
             started_at = CASE WHEN $2 = 'in_progress' THEN COALESCE(started_at, $6) ELSE started_at END, \
             ended_at = {ended_at}, updated_at = $6 \
             WHERE id = $1 AND status NOT IN ({finals}) {forward}",
            ended_at = if ended { "$6" } else { "ended_at" },
            forward = if ended {
                ""
            } else {
                "AND (status IN ('sending', 'sent') OR (status = 'in_progress' AND $2 = 'in_progress'))"
            },
        );
        let transmission_sql = match c.status.end {
            CallEnd::Ongoing => None,
            CallEnd::Answered => Some(
                "UPDATE transmissions SET status = 'delivered', next_attempt_at = NULL, leased_until = NULL, \
                 lease_owner = NULL, error_code = NULL, error_message = NULL, delivered_at = $2, completed_at = $2, \
                 updated_at = $2 WHERE id = $1 AND status NOT IN ('delivered', 'canceled') RETURNING *"
                    .to_string(),
            ),
            CallEnd::NotAnswered(outcome) => {
                let again = outcome.map(callout_retries).unwrap_or_else(|| "(1 = 0)".into());
                Some(format!(
                    "UPDATE transmissions SET status = CASE WHEN {again} THEN 'pending' ELSE 'undelivered' END, \
                     next_attempt_at = CASE WHEN {again} THEN $2 ELSE NULL END, leased_until = NULL, lease_owner = NULL, \
                     error_code = $3, error_message = $4, \
                     completed_at = CASE WHEN {again} THEN NULL ELSE $2 END, updated_at = $2 \
                     WHERE id = $1 AND attempts = $5 AND status IN ('sent', 'sending') RETURNING *"
                ))
            }
        };
        let message = format!("the call ended without an answer ({})", c.raw_status);
        Ok(on_pool!(self, p => {
            let mut tx = p.begin().await?;
            // The event is written first, finding its attempt as it is: a transaction that
            // begins with a write takes SQLite's write lock at once (one that reads first
            // fails with "database is locked" when another writer commits in between).
            let (event_id, attempt_id): (i64, Option<i64>) = sqlx::query_as(
                "INSERT INTO provider_events (account_id, provider_id, kind, attempt_id, remote_id, outcome, payload, created_at) \
                 SELECT $1, $2, $3, m.id, $4, CASE WHEN m.id IS NULL THEN 'unmatched' ELSE 'applied' END, $5, $6 \
                 FROM (SELECT (SELECT id FROM attempts WHERE account_id = $1 AND provider_id = $2 AND remote_id = $4 \
                 ORDER BY id DESC LIMIT 1) AS id) AS m RETURNING id, attempt_id",
            )
            .bind(c.account_id)
            .bind(c.provider_id)
            .bind(call_event_kind::STATUS)
            .bind(&c.remote_id)
            .bind(Json(&c.raw))
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            let attempt: Option<Attempt> = match attempt_id {
                Some(id) => sqlx::query_as("SELECT * FROM attempts WHERE id = $1").bind(id).fetch_optional(&mut *tx).await?,
                None => None,
            };
            let mut changed: Vec<Transmission> = Vec::new();
            if let Some(a) = &attempt {
                let moved = sqlx::query(sqlx::AssertSqlSafe(attempt_sql.clone()))
                    .bind(a.id)
                    .bind(c.status.attempt)
                    .bind(&c.raw_status)
                    .bind(c.duration_seconds)
                    .bind(c.error_code.as_deref())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if let (1, Some(sql)) = (moved, &transmission_sql) {
                    let q = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(a.transmission_id).bind(now);
                    // A delivered call clears the error; an unanswered one names why.
                    let q = match c.status.end {
                        CallEnd::Answered => q,
                        _ => q.bind(c.status.attempt).bind(&message).bind(a.number),
                    };
                    let row: Option<Transmission> = q.fetch_optional(&mut *tx).await?;
                    changed.extend(row);
                }
            }
            let events: Vec<WebhookEvent> = changed.iter().filter_map(Transmission::status_event).collect();
            for w in subs.deliveries(d, &events, now) {
                sqlx::query_with(w.sql(), crate::sql::args(p, &w)).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            (event_id, attempt)
        }))
    }
}
