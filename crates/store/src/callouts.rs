//! Campaigns: SCFM callouts, their participations (transmissions with a callout) and the
//! batch operations that populate them, and the pacer that releases participations to
//! the delivery queue at the callout's rate.
//!
//! Pacing is data. A participation waits as `pending`; each tick of the pacer (any node)
//! locks the callout row, releases the next slots — `queued` with `next_attempt_at`
//! stamped `rate_per_minute` apart, a few seconds ahead at most — and moves the callout's
//! `pace_next_at` on. Pausing, a closed window or a stop take back what was released and
//! not yet claimed. So the rate holds across restarts and nodes, and a million-contact
//! callout is never read into memory: it is walked by id, a chunk at a time.

use chrono::{DateTime, Duration, Utc};
use sauti_core::clock;
use sauti_core::filter::{ListQuery, SqlValue};
use sauti_core::schedule::{DailyWindow, parse_time_of_day, parse_time_zone, slot_interval};
use serde_json::{Value, json};

use crate::contacts::{Contact, ContactScope};
use crate::list::account_scope;
use crate::sql::{Q, args};
use crate::transmissions::{NewTransmission, Transmission, insert_query, status, ts};
use crate::users::CAS_TRIES;
use crate::webhooks::WebhookEvent;
use crate::{Json, JsonMap, Page, Store, StoreError, StoreResult, on_pool, on_writer};

/// Callout statuses (SCFM).
pub mod callout_status {
    pub const INITIALIZED: &str = "initialized";
    pub const RUNNING: &str = "running";
    pub const PAUSED: &str = "paused";
    pub const STOPPED: &str = "stopped";
    pub const COMPLETED: &str = "completed";
}

/// The population batch operation's type name (SCFM).
pub const CALLOUT_POPULATION: &str = "BatchOperation::CalloutPopulation";

/// The error code of participations a stop canceled (a resume from `stopped` sends them).
pub const STOPPED_CODE: &str = "callout_stopped";

/// Outcomes a callout may try again (`retry_on`).
pub const RETRYABLE: &[&str] = &["busy", "not_answered", "failed", "undelivered"];

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Callout {
    pub id: i64,
    pub account_id: i64,
    pub status: String,
    pub channel: String,
    pub call_flow_logic: Option<String>,
    pub audio_url: Option<String>,
    pub recording_id: Option<i64>,
    pub body: Option<String>,
    pub subject: Option<String>,
    pub html: Option<String>,
    pub text_id: Option<i64>,
    pub template_id: Option<i64>,
    pub from_address: Option<String>,
    pub group_id: Option<i64>,
    pub contact_filter: Option<Json<JsonMap>>,
    pub rate_per_minute: Option<i64>,
    pub max_attempts: i64,
    pub retry_delay_seconds: i64,
    pub retry_on: String,
    pub start_at: Option<DateTime<Utc>>,
    pub stop_at: Option<DateTime<Utc>>,
    pub window_start: Option<String>,
    pub window_end: Option<String>,
    pub time_zone: Option<String>,
    pub settings: Json<JsonMap>,
    pub metadata: Json<JsonMap>,
    pub created_by_id: Option<i64>,
    pub pace_next_at: Option<DateTime<Utc>>,
    pub populated_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Callout {
    /// A callout as the API's create fills it before the row exists.
    pub fn new(account_id: i64, channel: &str) -> Callout {
        let now = clock::now();
        Callout {
            id: 0,
            account_id,
            status: callout_status::INITIALIZED.into(),
            channel: channel.into(),
            call_flow_logic: None,
            audio_url: None,
            recording_id: None,
            body: None,
            subject: None,
            html: None,
            text_id: None,
            template_id: None,
            from_address: None,
            group_id: None,
            contact_filter: None,
            rate_per_minute: None,
            max_attempts: 3,
            retry_delay_seconds: 600,
            retry_on: RETRYABLE.join(","),
            start_at: None,
            stop_at: None,
            window_start: None,
            window_end: None,
            time_zone: None,
            settings: Json(JsonMap::new()),
            metadata: Json(JsonMap::new()),
            created_by_id: None,
            pace_next_at: None,
            populated_at: None,
            started_at: None,
            completed_at: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// The daily sending window, when the callout has one (validated on write).
    pub fn window(&self) -> Option<DailyWindow> {
        Some(DailyWindow {
            start: parse_time_of_day(self.window_start.as_deref()?)?,
            end: parse_time_of_day(self.window_end.as_deref()?)?,
            tz: parse_time_zone(self.time_zone.as_deref().unwrap_or("UTC"))?,
        })
    }

    pub fn retries(&self, outcome: &str) -> bool {
        self.retry_on.split(',').any(|o| o == outcome)
    }

    /// Does the callout name its own audience (rather than only manual participations)?
    pub fn has_audience(&self) -> bool {
        self.group_id.is_some() || self.contact_filter.is_some()
    }

    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "status": self.status,
            "channel": self.channel,
            "call_flow_logic": self.call_flow_logic,
            "audio_url": self.audio_url,
            "recording_id": self.recording_id,
            "body": self.body,
            "subject": self.subject,
            "html": self.html,
            "text_id": self.text_id,
            "template_id": self.template_id,
            "from": self.from_address,
            "group_id": self.group_id,
            "contact_filter_params": self.contact_filter.as_ref().map(|f| Value::Object(f.0.clone())),
            "rate_per_minute": self.rate_per_minute,
            "max_attempts": self.max_attempts,
            "retry_delay": self.retry_delay_seconds,
            "retry_on": self.retry_on.split(',').filter(|s| !s.is_empty()).collect::<Vec<_>>(),
            "start_at": self.start_at.as_ref().map(ts),
            "stop_at": self.stop_at.as_ref().map(ts),
            "window": self.window_start.as_ref().map(|start| json!({
                "start": start,
                "end": self.window_end,
                "time_zone": self.time_zone.as_deref().unwrap_or("UTC"),
            })),
            "settings": self.settings.0,
            "metadata": self.metadata.0,
            "created_by_id": self.created_by_id,
            "started_at": self.started_at.as_ref().map(ts),
            "completed_at": self.completed_at.as_ref().map(ts),
            "created_at": ts(&self.created_at),
            "updated_at": ts(&self.updated_at),
            "account_id": self.account_id,
        })
    }

    fn status_event(&self) -> WebhookEvent {
        WebhookEvent {
            account_id: self.account_id,
            event_type: "callout.status_changed".into(),
            data: self.to_json(),
        }
    }
}

/// `POST /api/callouts/:id/callout_events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalloutEvent {
    Start,
    Pause,
    Resume,
    Stop,
}

impl CalloutEvent {
    pub fn parse(s: &str) -> Option<CalloutEvent> {
        Some(match s {
            "start" => CalloutEvent::Start,
            "pause" => CalloutEvent::Pause,
            "resume" => CalloutEvent::Resume,
            "stop" => CalloutEvent::Stop,
            _ => return None,
        })
    }

    /// The statuses the event applies to, and where it leads (SCFM's state machine).
    fn transition(self) -> (&'static [&'static str], &'static str) {
        use callout_status::*;
        match self {
            CalloutEvent::Start => (&[INITIALIZED], RUNNING),
            CalloutEvent::Pause => (&[RUNNING], PAUSED),
            CalloutEvent::Resume => (&[PAUSED, STOPPED], RUNNING),
            CalloutEvent::Stop => (&[RUNNING, PAUSED], STOPPED),
        }
    }

    fn name(self) -> &'static str {
        match self {
            CalloutEvent::Start => "start",
            CalloutEvent::Pause => "pause",
            CalloutEvent::Resume => "resume",
            CalloutEvent::Stop => "stop",
        }
    }
}

/// What an event on a callout did.
#[derive(Debug, Clone)]
pub enum CalloutTransition {
    Done(Box<Callout>),
    NotFound,
    /// Not allowed from the callout's status (422).
    Refused(String),
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BatchOperation {
    pub id: i64,
    pub account_id: i64,
    pub callout_id: Option<i64>,
    pub r#type: String,
    pub status: String,
    pub parameters: Json<JsonMap>,
    pub metadata: Json<JsonMap>,
    pub contact_cursor: i64,
    pub participations_created: i64,
    pub leased_until: Option<DateTime<Utc>>,
    pub lease_owner: Option<String>,
    pub error_message: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Batch operation statuses (SCFM's, with `failed` for a population that cannot run).
pub mod batch_status {
    pub const PREVIEW: &str = "preview";
    pub const QUEUED: &str = "queued";
    pub const RUNNING: &str = "running";
    pub const FINISHED: &str = "finished";
    pub const FAILED: &str = "failed";
}

impl BatchOperation {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "callout_id": self.callout_id,
            "parameters": self.parameters.0,
            "metadata": self.metadata.0,
            "status": self.status,
            "participations_created": self.participations_created,
            "error_message": self.error_message,
            "started_at": self.started_at.as_ref().map(ts),
            "finished_at": self.finished_at.as_ref().map(ts),
            "created_at": ts(&self.created_at),
            "updated_at": ts(&self.updated_at),
            "account_id": self.account_id,
            "type": self.r#type,
        })
    }

    /// The audience filter of a population: `parameters.contact_filter_params`.
    pub fn contact_filter(&self) -> Option<&JsonMap> {
        self.parameters
            .0
            .get("contact_filter_params")
            .and_then(Value::as_object)
    }

    /// The group of a population: `parameters.group_id`.
    pub fn group_id(&self) -> Option<i64> {
        self.parameters.0.get("group_id").and_then(Value::as_i64)
    }
}

/// A callout's numbers (`GET /api/callouts/:id/statistics`).
#[derive(Debug, Clone, Default)]
pub struct CalloutStatistics {
    pub by_status: Vec<(String, i64)>,
    pub total: i64,
    pub attempts: i64,
    /// Participations a provider took (sent, and everything a receipt said after).
    pub sent: i64,
}

/// What a callout's numbers say about its progress.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Progress {
    /// Not yet sent (pending, queued or being sent).
    pub pending: i64,
    pub delivered: i64,
    /// Failed, undelivered or invalid.
    pub failed: i64,
    /// Sent per minute, averaged since the callout started: cheap to read at any size,
    /// and what an operator compares with the rate asked for.
    pub rate_per_minute: Option<f64>,
    /// Seconds until nothing is pending at that rate.
    pub eta_seconds: Option<i64>,
}

impl CalloutStatistics {
    pub fn count(&self, statuses: &[&str]) -> i64 {
        self.by_status
            .iter()
            .filter(|(k, _)| statuses.contains(&k.as_str()))
            .map(|(_, n)| n)
            .sum()
    }

    pub fn progress(&self, c: &Callout, now: DateTime<Utc>) -> Progress {
        let pending = self.count(&[status::PENDING, status::QUEUED, status::SENDING]);
        let minutes = c
            .started_at
            .map(|t| (c.completed_at.unwrap_or(now) - t).num_milliseconds() as f64 / 60_000.0)
            .filter(|m| *m > 0.0);
        let rate = minutes.map(|m| self.sent as f64 / m);
        let eta_seconds = match rate {
            _ if pending == 0 => Some(0),
            Some(r) if r > 0.0 => Some((pending as f64 / r * 60.0).ceil() as i64),
            _ => None,
        };
        Progress {
            pending,
            delivered: self.count(&[status::DELIVERED]),
            failed: self.count(&[status::FAILED, status::UNDELIVERED, status::INVALID]),
            rate_per_minute: rate,
            eta_seconds,
        }
    }
}

/// What one pacer tick did to a callout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Paced {
    pub released: u64,
    /// Taken back from the queue (the window closed).
    pub withdrawn: u64,
    /// The callout is now `completed` or `stopped` (its `stop_at` passed).
    pub finished: bool,
}

/// Settings of the pacer.
#[derive(Debug, Clone, Copy)]
pub struct PaceLimits {
    /// How far ahead slots are stamped.
    pub horizon: Duration,
    /// Most participations released by one tick.
    pub max_release: u32,
}

impl Default for PaceLimits {
    fn default() -> Self {
        PaceLimits {
            horizon: Duration::seconds(2),
            max_release: 5000,
        }
    }
}

const ACTIVE: &str = "('pending', 'queued', 'sending')";

impl Store {
    pub async fn create_callout(&self, c: &Callout) -> StoreResult<Callout> {
        let now = clock::now();
        let mut q = Q::new(self.dialect());
        q.push(
            "INSERT INTO callouts (account_id, status, channel, call_flow_logic, audio_url, recording_id, body, subject, html, \
             text_id, template_id, from_address, group_id, contact_filter, rate_per_minute, max_attempts, retry_delay_seconds, \
             retry_on, start_at, stop_at, window_start, window_end, time_zone, settings, metadata, created_by_id, created_at, \
             updated_at) VALUES (",
        );
        q.int(c.account_id).push(", 'initialized', ").text(&c.channel);
        push_fields(&mut q, c);
        q.push(", ")
            .opt_int(c.created_by_id)
            .push(", ")
            .ts(now)
            .push(", ")
            .ts(now)
            .push(") RETURNING *");
        Ok(on_pool!(self, p => sqlx::query_as_with(q.sql(), args(p, &q)).persistent(false).fetch_one(p).await)?)
    }

    pub async fn get_callout(&self, account_id: i64, id: i64) -> StoreResult<Option<Callout>> {
        let sql = "SELECT * FROM callouts WHERE account_id = $1 AND id = $2";
        Ok(on_pool!(self, p => sqlx::query_as(sql).bind(account_id).bind(id).fetch_optional(p).await)?)
    }

    pub async fn list_callouts(&self, account_id: i64, query: &ListQuery) -> StoreResult<Page<Callout>> {
        self.list_rows("callouts", account_scope(account_id), query).await
    }

    /// Conditional read-modify-write of a callout's settings (as [`Store::update_group`]).
    pub async fn update_callout(
        &self,
        account_id: i64,
        id: i64,
        change: impl Fn(&mut Callout),
    ) -> StoreResult<Option<Callout>> {
        for _ in 0..CAS_TRIES {
            let Some(old) = self.get_callout(account_id, id).await? else {
                return Ok(None);
            };
            let mut new = old.clone();
            change(&mut new);
            new.updated_at = clock::now().max(old.updated_at + Duration::microseconds(1));
            let mut q = Q::new(self.dialect());
            q.push("UPDATE callouts SET (channel, call_flow_logic, audio_url, recording_id, body, subject, html, text_id, \
                    template_id, from_address, group_id, contact_filter, rate_per_minute, max_attempts, retry_delay_seconds, \
                    retry_on, start_at, stop_at, window_start, window_end, time_zone, settings, metadata) = (")
                .text(&new.channel);
            push_fields(&mut q, &new);
            q.push("), updated_at = ").ts(new.updated_at);
            // A new rate or window takes effect from now, not from slots already stamped.
            q.push(", pace_next_at = NULL WHERE account_id = ").int(account_id);
            q.push(" AND id = ")
                .int(id)
                .push(" AND updated_at = ")
                .ts(old.updated_at);
            let n = on_pool!(self, p => sqlx::query_with(q.sql(), args(p, &q)).persistent(false).execute(p).await.map(|r| r.rows_affected()))?;
            if n == 1 {
                return Ok(Some(new));
            }
        }
        Err(StoreError::Contended)
    }

    /// Delete a callout that is not running, with its participations and populations.
    pub async fn delete_callout(&self, account_id: i64, id: i64) -> StoreResult<CalloutTransition> {
        let sql = "DELETE FROM callouts WHERE account_id = $1 AND id = $2 AND status <> 'running' RETURNING *";
        let row: Option<Callout> =
            on_pool!(self, p => sqlx::query_as(sql).bind(account_id).bind(id).fetch_optional(p).await)?;
        Ok(match row {
            Some(c) => CalloutTransition::Done(Box::new(c)),
            None => match self.get_callout(account_id, id).await? {
                None => CalloutTransition::NotFound,
                Some(_) => CalloutTransition::Refused("a running callout cannot be deleted; stop it first".into()),
            },
        })
    }

    /// Apply `event` (SCFM's callout state machine) at `now`. In the same transaction:
    /// `start` queues the population of the callout's audience (once); `pause` takes back
    /// released, unclaimed participations; `stop` cancels everything not yet sent;
    /// `resume` from `stopped` gives back what the stop canceled.
    pub async fn callout_event(
        &self,
        account_id: i64,
        id: i64,
        event: CalloutEvent,
        now: DateTime<Utc>,
    ) -> StoreResult<CalloutTransition> {
        let (from, to) = event.transition();
        let d = self.dialect();
        let mut lock = Q::new(d);
        lock.push("UPDATE callouts SET status = ").text(to);
        lock.push(", updated_at = ")
            .ts(now)
            .push(", pace_next_at = NULL, completed_at = NULL");
        if event == CalloutEvent::Start {
            lock.push(", started_at = ").ts(now);
        }
        lock.push(" WHERE account_id = ")
            .int(account_id)
            .push(" AND id = ")
            .int(id);
        lock.push(" AND status IN (");
        for (i, s) in from.iter().enumerate() {
            if i > 0 {
                lock.push(", ");
            }
            lock.text(s);
        }
        lock.push(") RETURNING *");
        let subs = self.subscriptions().await?;
        let done: Option<Callout> = on_pool!(self, p => {
            let mut tx = p.begin().await?;
            let row: Option<Callout> = sqlx::query_as_with(lock.sql(), args(p, &lock)).persistent(false).fetch_optional(&mut *tx).await?;
            if let Some(c) = &row {
                let mut follow = Vec::new();
                match event {
                    CalloutEvent::Start if c.has_audience() && c.populated_at.is_none() => {
                        let mut params = JsonMap::new();
                        if let Some(f) = &c.contact_filter {
                            params.insert("contact_filter_params".into(), Value::Object(f.0.clone()));
                        }
                        if let Some(g) = c.group_id {
                            params.insert("group_id".into(), g.into());
                        }
                        let mut q = Q::new(d);
                        q.push("INSERT INTO batch_operations (account_id, callout_id, type, status, parameters, metadata, created_at, updated_at) VALUES (")
                            .int(account_id).push(", ").int(id).push(", ").text(CALLOUT_POPULATION).push(", 'queued', ")
                            .json(&Value::Object(params)).push(", ").json(&json!({})).push(", ").ts(now).push(", ").ts(now).push(")");
                        follow.push(q);
                        let mut q = Q::new(d);
                        q.push("UPDATE callouts SET populated_at = ").ts(now).push(" WHERE id = ").int(id);
                        follow.push(q);
                    }
                    CalloutEvent::Pause => follow.push(withdraw_sql(d, id)),
                    CalloutEvent::Stop => {
                        let mut q = Q::new(d);
                        q.push("UPDATE transmissions SET status = 'canceled', next_attempt_at = NULL, error_code = ").text(STOPPED_CODE);
                        q.push(", error_message = 'the callout was stopped', completed_at = ").ts(now).push(", updated_at = ").ts(now);
                        q.push(" WHERE callout_id = ").int(id).push(" AND status IN ('pending', 'queued')");
                        follow.push(q);
                    }
                    _ => {}
                }
                if event == CalloutEvent::Resume {
                    // Only rows a stop canceled: a participation canceled one by one stays so.
                    let mut q = Q::new(d);
                    q.push("UPDATE transmissions SET status = 'pending', next_attempt_at = NULL, error_code = NULL, \
                            error_message = NULL, completed_at = NULL, updated_at = ").ts(now);
                    q.push(" WHERE callout_id = ").int(id).push(" AND status = 'canceled' AND error_code = ").text(STOPPED_CODE);
                    follow.push(q);
                }
                for q in &follow {
                    sqlx::query_with(q.sql(), args(p, q)).persistent(false).execute(&mut *tx).await?;
                }
                for w in subs.deliveries(d, &[c.status_event()], now) {
                    sqlx::query_with(w.sql(), args(p, &w)).persistent(false).execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
            row
        });
        Ok(match done {
            Some(c) => CalloutTransition::Done(Box::new(c)),
            None => match self.get_callout(account_id, id).await? {
                None => CalloutTransition::NotFound,
                Some(c) => CalloutTransition::Refused(format!(
                    "cannot {} a callout that is {} (allowed from: {})",
                    event.name(),
                    c.status,
                    from.join(", ")
                )),
            },
        })
    }

    /// Ids of the running callouts (every account): the pacer's work list.
    pub async fn running_callouts(&self) -> StoreResult<Vec<i64>> {
        let sql = "SELECT id FROM callouts WHERE status = 'running' ORDER BY id";
        Ok(on_pool!(self, p => sqlx::query_scalar(sql).fetch_all(p).await)?)
    }

    /// One pacer tick for callout `id` at `now` (see the module documentation). Safe to
    /// run on several nodes at once: the callout row is locked for the tick.
    pub async fn pace_callout(&self, id: i64, now: DateTime<Utc>, limits: PaceLimits) -> StoreResult<Paced> {
        let d = self.dialect();
        let subs = self.subscriptions().await?;
        // Taking the row lock first (a no-op write) serialises ticks of one callout across
        // nodes, and with its events.
        let lock = "UPDATE callouts SET pace_next_at = pace_next_at WHERE id = $1 AND status = 'running' RETURNING *";
        Ok(on_writer!(self, p => {
            let mut tx = p.begin().await?;
            let Some(c): Option<Callout> = sqlx::query_as(lock).bind(id).fetch_optional(&mut *tx).await? else {
                return Ok(Paced::default());
            };
            let mut paced = Paced::default();
            let window = c.window();
            let open = c.start_at.is_none_or(|s| now >= s) && window.is_none_or(|w| w.is_open(now));
            if c.stop_at.is_some_and(|s| now >= s) {
                // The schedule ended: as a stop.
                let mut q = Q::new(d);
                q.push("UPDATE transmissions SET status = 'canceled', next_attempt_at = NULL, error_code = ").text(STOPPED_CODE);
                q.push(", error_message = 'the callout reached its stop_at', completed_at = ").ts(now).push(", updated_at = ").ts(now);
                q.push(" WHERE callout_id = ").int(id).push(" AND status IN ('pending', 'queued')");
                sqlx::query_with(q.sql(), args(p, &q)).persistent(false).execute(&mut *tx).await?;
                let mut q = Q::new(d);
                q.push("UPDATE callouts SET status = 'stopped', pace_next_at = NULL, updated_at = ").ts(now);
                q.push(" WHERE id = ").int(id).push(" RETURNING *");
                let stopped: Callout = sqlx::query_as_with(q.sql(), args(p, &q)).persistent(false).fetch_one(&mut *tx).await?;
                for w in subs.deliveries(d, &[stopped.status_event()], now) {
                    sqlx::query_with(w.sql(), args(p, &w)).persistent(false).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                paced.finished = true;
                return Ok(paced);
            }
            if !open {
                let q = withdraw_sql(d, id);
                paced.withdrawn = sqlx::query_with(q.sql(), args(p, &q)).persistent(false).execute(&mut *tx).await?.rows_affected();
                let mut q = Q::new(d);
                q.push("UPDATE callouts SET pace_next_at = NULL WHERE id = ").int(id);
                sqlx::query_with(q.sql(), args(p, &q)).persistent(false).execute(&mut *tx).await?;
                tx.commit().await?;
                return Ok(paced);
            }
            // Each status on its own: one `OR` made SQLite walk the callout's finished
            // rows in id order, a million of them a tick, inside the write transaction.
            let mut q = Q::new(d);
            q.push("SELECT COUNT(*) FROM (SELECT 1 FROM transmissions WHERE callout_id = ").int(id);
            q.push(" AND status IN ").push(ACTIVE).push(" LIMIT 1) AS a");
            let mut active: i64 = sqlx::query_scalar_with(q.sql(), args(p, &q)).persistent(false).fetch_one(&mut *tx).await?;
            // A placed call is not done until the provider says how it ended (answered,
            // busy, not answered), which is the callout's outcome: it is waited for as long
            // as Twilio lets a call last (4 hours). A sent message may still come back
            // undelivered and be tried again: its receipt is waited for an hour.
            let wait_for_sent = if c.channel == "voice" {
                Some(Duration::hours(4))
            } else {
                c.retries("undelivered").then(|| Duration::hours(1))
            };
            if let (0, Some(wait)) = (active, wait_for_sent) {
                let mut q = Q::new(d);
                q.push("SELECT COUNT(*) FROM (SELECT 1 FROM transmissions WHERE callout_id = ").int(id);
                q.push(" AND status = 'sent' AND sent_at > ").ts(now - wait).push(" LIMIT 1) AS a");
                active = sqlx::query_scalar_with(q.sql(), args(p, &q)).persistent(false).fetch_one(&mut *tx).await?;
            }
            let mut q = Q::new(d);
            q.push("SELECT COUNT(*) FROM batch_operations WHERE callout_id = ").int(id);
            q.push(" AND status IN ('queued', 'running')");
            let populating: i64 = sqlx::query_scalar_with(q.sql(), args(p, &q)).persistent(false).fetch_one(&mut *tx).await?;
            if active == 0 && populating == 0 {
                let mut q = Q::new(d);
                q.push("UPDATE callouts SET status = 'completed', pace_next_at = NULL, completed_at = ").ts(now);
                q.push(", updated_at = ").ts(now).push(" WHERE id = ").int(id).push(" RETURNING *");
                let done: Callout = sqlx::query_as_with(q.sql(), args(p, &q)).persistent(false).fetch_one(&mut *tx).await?;
                for w in subs.deliveries(d, &[done.status_event()], now) {
                    sqlx::query_with(w.sql(), args(p, &w)).persistent(false).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                paced.finished = true;
                return Ok(paced);
            }
            // What was released and is due but not yet claimed: the providers are behind,
            // and releasing more would only grow the queue (and burst when they catch up).
            let cap = i64::from(limits.max_release);
            let mut q = Q::new(d);
            q.push("SELECT COUNT(*) FROM (SELECT 1 FROM transmissions WHERE callout_id = ").int(id);
            q.push(" AND status = 'queued' AND next_attempt_at <= ").ts(now).push(" LIMIT ").int(cap).push(") AS b");
            let backlog: i64 = sqlx::query_scalar_with(q.sql(), args(p, &q)).persistent(false).fetch_one(&mut *tx).await?;
            let (want, slots): (i64, Option<(DateTime<Utc>, Duration)>) = match c.rate_per_minute {
                Some(rate) if rate > 0 => {
                    let every = slot_interval(rate);
                    let from = c.pace_next_at.unwrap_or(now).max(now);
                    let mut until = now + limits.horizon;
                    if let Some(close) = window.and_then(|w| w.closes_after(now)) {
                        until = until.min(close - Duration::microseconds(1));
                    }
                    if let Some(stop) = c.stop_at {
                        until = until.min(stop - Duration::microseconds(1));
                    }
                    let n = if from > until { 0 } else { (until - from).num_microseconds().unwrap_or(0) / every.num_microseconds().unwrap_or(1).max(1) + 1 };
                    // Never more than a horizon's worth waiting.
                    let room = (n.max(1) * 2 - backlog).max(0);
                    (n.min(cap).min(room), Some((from, every)))
                }
                _ => ((cap - backlog).max(0), None),
            };
            if want > 0 {
                let retry_cutoff = now - Duration::seconds(c.retry_delay_seconds);
                let mut q = Q::new(d);
                // With whether the contact opted out since the participation was made: a
                // campaign runs for hours or days, and an opt-out holds from the moment
                // it is recorded.
                q.push("SELECT t.id, CASE WHEN c.opted_out_at IS NULL THEN 0 ELSE 1 END FROM transmissions t \
                        LEFT JOIN contacts c ON c.id = t.contact_id WHERE t.callout_id = ").int(id);
                q.push(" AND t.status = 'pending' AND (t.next_attempt_at IS NULL OR t.next_attempt_at <= ").ts(retry_cutoff);
                q.push(") ORDER BY t.id LIMIT ").int(want);
                let picked: Vec<(i64, i32)> = sqlx::query_as_with(q.sql(), args(p, &q)).persistent(false).fetch_all(&mut *tx).await?;
                let (ids, opted_out): (Vec<i64>, Vec<i64>) = {
                    let (keep, out): (Vec<_>, Vec<_>) = picked.into_iter().partition(|(_, o)| *o == 0);
                    (keep.into_iter().map(|(i, _)| i).collect(), out.into_iter().map(|(i, _)| i).collect())
                };
                for chunk in opted_out.chunks(1000) {
                    let mut q = Q::new(d);
                    q.push("UPDATE transmissions SET status = 'invalid', error_code = 'opted_out', \
                            error_message = 'the contact opted out', next_attempt_at = NULL, completed_at = ").ts(now);
                    q.push(", updated_at = ").ts(now).push(" WHERE status = 'pending' AND id IN (");
                    for (i, t) in chunk.iter().enumerate() {
                        if i > 0 {
                            q.push(", ");
                        }
                        q.int(*t);
                    }
                    q.push(")");
                    sqlx::query_with(q.sql(), args(p, &q)).persistent(false).execute(&mut *tx).await?;
                }
                for chunk in ids.chunks(1000) {
                    let q = release_sql(d, chunk, slots, now);
                    paced.released += sqlx::query_with(q.sql(), args(p, &q)).persistent(false).execute(&mut *tx).await?.rows_affected();
                }
                if let Some((from, every)) = slots {
                    let next = from + every * i32::try_from(ids.len()).unwrap_or(i32::MAX);
                    let mut q = Q::new(d);
                    q.push("UPDATE callouts SET pace_next_at = ").ts(next).push(" WHERE id = ").int(id);
                    sqlx::query_with(q.sql(), args(p, &q)).persistent(false).execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
            paced
        }))
    }

    /// A callout's counts (one grouped read of its participations).
    pub async fn callout_statistics(&self, callout_id: i64) -> StoreResult<CalloutStatistics> {
        let sql = "SELECT status, COUNT(*), CAST(COALESCE(SUM(attempts), 0) AS BIGINT), \
                   CAST(COALESCE(SUM(CASE WHEN sent_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT) \
                   FROM transmissions WHERE callout_id = $1 GROUP BY status ORDER BY status";
        let rows: Vec<(String, i64, i64, i64)> =
            on_pool!(self, p => sqlx::query_as(sql).bind(callout_id).fetch_all(p).await)?;
        let mut s = CalloutStatistics::default();
        for (status, n, attempts, sent) in rows {
            s.total += n;
            s.attempts += attempts;
            s.sent += sent;
            s.by_status.push((status, n));
        }
        Ok(s)
    }

    // ----- participations -----

    /// Add one participation (`pending`; the pacer sends it while the callout runs).
    /// `None` when the contact is already in the callout.
    pub async fn create_participation(&self, row: &NewTransmission) -> StoreResult<Option<Transmission>> {
        Ok(self
            .create_transmissions(std::slice::from_ref(row))
            .await?
            .into_iter()
            .next())
    }

    pub async fn get_participation(&self, account_id: i64, id: i64) -> StoreResult<Option<Transmission>> {
        let sql = "SELECT * FROM transmissions WHERE account_id = $1 AND id = $2 AND callout_id IS NOT NULL";
        Ok(on_pool!(self, p => sqlx::query_as(sql).bind(account_id).bind(id).fetch_optional(p).await)?)
    }

    /// Participations of the account, or of one of its callouts.
    pub async fn list_participations(
        &self,
        account_id: i64,
        callout_id: Option<i64>,
        query: &ListQuery,
    ) -> StoreResult<Page<Transmission>> {
        let mut scope = account_scope(account_id);
        match callout_id {
            Some(id) => {
                let ph = scope.bind(SqlValue::Int(id));
                scope.text.push_str(&format!(" AND callout_id = {ph}"));
            }
            None => scope.text.push_str(" AND callout_id IS NOT NULL"),
        }
        self.list_rows("transmissions", scope, query).await
    }

    /// Change a participation that has not been tried yet: its contact (and number),
    /// call flow and metadata. `Err` when it has been tried (or is being sent).
    pub async fn update_participation(
        &self,
        account_id: i64,
        id: i64,
        change: &ParticipationChange,
    ) -> StoreResult<Option<Result<Transmission, String>>> {
        for _ in 0..CAS_TRIES {
            let Some(old) = self.get_participation(account_id, id).await? else {
                return Ok(None);
            };
            let mut metadata = old.metadata.0.clone();
            if let Some(apply) = &change.metadata {
                apply(&mut metadata);
            }
            let readdress = change.contact_id.is_some() || change.to_address.is_some();
            if readdress && (old.attempts > 0 || old.status != status::PENDING) {
                return Ok(Some(Err(format!(
                    "the contact of a participation that was tried cannot change (it is {}, {} attempts)",
                    old.status, old.attempts
                ))));
            }
            let now = clock::now().max(old.updated_at + Duration::microseconds(1));
            let mut q = Q::new(self.dialect());
            q.push("UPDATE transmissions SET contact_id = ")
                .opt_int(change.contact_id.or(old.contact_id));
            q.push(", to_address = ")
                .text(change.to_address.as_deref().unwrap_or(&old.to_address));
            q.push(", call_flow_logic = ");
            match &change.call_flow_logic {
                Some(v) => q.opt_text(v.as_deref()),
                None => q.opt_text(old.call_flow_logic.as_deref()),
            };
            q.push(", metadata = ")
                .json(&Value::Object(metadata))
                .push(", updated_at = ")
                .ts(now);
            q.push(" WHERE account_id = ")
                .int(account_id)
                .push(" AND id = ")
                .int(id);
            q.push(" AND updated_at = ").ts(old.updated_at).push(" RETURNING *");
            // A contact already in the callout is a `Conflict` on `contact_id`.
            let row: Option<Transmission> = on_pool!(self, p => sqlx::query_as_with(q.sql(), args(p, &q)).persistent(false).fetch_optional(p).await)?;
            if let Some(t) = row {
                return Ok(Some(Ok(t)));
            }
        }
        Err(StoreError::Contended)
    }

    /// Delete a participation that was never tried (SCFM refuses once phone calls exist).
    pub async fn delete_participation(&self, account_id: i64, id: i64) -> StoreResult<Option<Result<(), String>>> {
        let sql = "DELETE FROM transmissions WHERE account_id = $1 AND id = $2 AND callout_id IS NOT NULL \
                   AND attempts = 0 AND status IN ('pending', 'queued', 'canceled') \
                   AND NOT EXISTS (SELECT 1 FROM attempts WHERE attempts.transmission_id = transmissions.id)";
        let n = on_pool!(self, p => sqlx::query(sql).bind(account_id).bind(id).execute(p).await.map(|r| r.rows_affected()))?;
        if n == 1 {
            return Ok(Some(Ok(())));
        }
        Ok(self
            .get_participation(account_id, id)
            .await?
            .map(|_| Err("Cannot delete record because dependent phone calls exist".to_string())))
    }

    // ----- batch operations -----

    pub async fn create_batch_operation(
        &self,
        account_id: i64,
        callout_id: i64,
        parameters: &JsonMap,
        metadata: &JsonMap,
    ) -> StoreResult<BatchOperation> {
        let now = clock::now();
        let mut q = Q::new(self.dialect());
        q.push("INSERT INTO batch_operations (account_id, callout_id, type, status, parameters, metadata, created_at, updated_at) VALUES (")
            .int(account_id)
            .push(", ")
            .int(callout_id)
            .push(", ")
            .text(CALLOUT_POPULATION)
            .push(", 'preview', ")
            .json(&Value::Object(parameters.clone()))
            .push(", ")
            .json(&Value::Object(metadata.clone()))
            .push(", ")
            .ts(now)
            .push(", ")
            .ts(now)
            .push(") RETURNING *");
        Ok(on_pool!(self, p => sqlx::query_as_with(q.sql(), args(p, &q)).persistent(false).fetch_one(p).await)?)
    }

    pub async fn get_batch_operation(&self, account_id: i64, id: i64) -> StoreResult<Option<BatchOperation>> {
        let sql = "SELECT * FROM batch_operations WHERE account_id = $1 AND id = $2";
        Ok(on_pool!(self, p => sqlx::query_as(sql).bind(account_id).bind(id).fetch_optional(p).await)?)
    }

    pub async fn list_batch_operations(&self, account_id: i64, query: &ListQuery) -> StoreResult<Page<BatchOperation>> {
        self.list_rows("batch_operations", account_scope(account_id), query)
            .await
    }

    /// Change a batch operation's parameters and metadata while it is a preview (its
    /// metadata at any time). `Err` when the parameters of a queued one would change.
    pub async fn update_batch_operation(
        &self,
        account_id: i64,
        id: i64,
        parameters: Option<&JsonMap>,
        metadata: impl Fn(&mut JsonMap),
    ) -> StoreResult<Option<Result<BatchOperation, String>>> {
        for _ in 0..CAS_TRIES {
            let Some(old) = self.get_batch_operation(account_id, id).await? else {
                return Ok(None);
            };
            if parameters.is_some() && old.status != batch_status::PREVIEW {
                return Ok(Some(Err(format!(
                    "the parameters of a batch operation cannot change once it is {}",
                    old.status
                ))));
            }
            let mut m = old.metadata.0.clone();
            metadata(&mut m);
            let now = clock::now().max(old.updated_at + Duration::microseconds(1));
            let mut q = Q::new(self.dialect());
            q.push("UPDATE batch_operations SET parameters = ")
                .json(&Value::Object(parameters.cloned().unwrap_or(old.parameters.0.clone())));
            q.push(", metadata = ")
                .json(&Value::Object(m))
                .push(", updated_at = ")
                .ts(now);
            q.push(" WHERE account_id = ")
                .int(account_id)
                .push(" AND id = ")
                .int(id);
            q.push(" AND updated_at = ").ts(old.updated_at).push(" RETURNING *");
            let row: Option<BatchOperation> = on_pool!(self, p => sqlx::query_as_with(q.sql(), args(p, &q)).persistent(false).fetch_optional(p).await)?;
            if let Some(b) = row {
                return Ok(Some(Ok(b)));
            }
        }
        Err(StoreError::Contended)
    }

    /// Delete a batch operation that is not running (its participations stay).
    pub async fn delete_batch_operation(&self, account_id: i64, id: i64) -> StoreResult<Option<Result<(), String>>> {
        let sql = "DELETE FROM batch_operations WHERE account_id = $1 AND id = $2 AND status <> 'running'";
        let n = on_pool!(self, p => sqlx::query(sql).bind(account_id).bind(id).execute(p).await.map(|r| r.rows_affected()))?;
        if n == 1 {
            return Ok(Some(Ok(())));
        }
        Ok(self
            .get_batch_operation(account_id, id)
            .await?
            .map(|b| Err(format!("a batch operation that is {} cannot be deleted", b.status))))
    }

    /// `queue`: a preview is handed to the workers.
    pub async fn queue_batch_operation(
        &self,
        account_id: i64,
        id: i64,
    ) -> StoreResult<Option<Result<BatchOperation, String>>> {
        let sql = "UPDATE batch_operations SET status = 'queued', updated_at = $3 \
                   WHERE account_id = $1 AND id = $2 AND status = 'preview' RETURNING *";
        let row: Option<BatchOperation> = on_pool!(self, p => sqlx::query_as(sql)
            .bind(account_id)
            .bind(id)
            .bind(clock::now())
            .fetch_optional(p)
            .await)?;
        if let Some(b) = row {
            return Ok(Some(Ok(b)));
        }
        Ok(self
            .get_batch_operation(account_id, id)
            .await?
            .map(|b| Err(format!("only a preview can be queued (it is {})", b.status))))
    }

    /// How many contacts the population would add now (opted-out ones excluded).
    pub async fn count_audience(&self, account_id: i64, group_id: Option<i64>, query: &ListQuery) -> StoreResult<i64> {
        let mut base = crate::contacts::scoped(account_id, group_id.map(ContactScope::Group));
        query.filter.compile_into(self.dialect(), &mut base);
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM contacts WHERE {} AND opted_out_at IS NULL",
            base.text
        ));
        Ok(match &self.pool {
            crate::Pool::Sqlite(p, _) => {
                sqlx::query_scalar_with(sql, crate::list::sqlite_args(&base.params))
                    .fetch_one(p)
                    .await?
            }
            crate::Pool::Postgres(p) => {
                sqlx::query_scalar_with(sql, crate::list::pg_args(&base.params))
                    .fetch_one(p)
                    .await?
            }
        })
    }

    /// Take a queued (or abandoned running) population for `owner` until `lease_until`.
    pub async fn claim_batch_operation(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<Option<BatchOperation>> {
        let mut q = Q::new(self.dialect());
        q.push("UPDATE batch_operations SET status = 'running', lease_owner = ")
            .text(owner);
        q.push(", leased_until = ")
            .ts(lease_until)
            .push(", started_at = COALESCE(started_at, ")
            .ts(now);
        q.push("), updated_at = ").ts(now);
        q.push(
            " WHERE id = (SELECT id FROM batch_operations WHERE status IN ('queued', 'running') \
                AND (leased_until IS NULL OR leased_until < ",
        )
        .ts(now)
        .push(" OR lease_owner = ")
        .text(owner);
        q.push(") ORDER BY id LIMIT 1");
        if self.dialect() == crate::Dialect::Postgres {
            q.push(" FOR UPDATE SKIP LOCKED");
        }
        q.push(") RETURNING *");
        Ok(on_writer!(self, p => sqlx::query_as_with(q.sql(), args(p, &q)).persistent(false).fetch_optional(p).await)?)
    }

    /// Contacts of a population after its cursor (the next chunk to add).
    pub async fn population_chunk(
        &self,
        op: &BatchOperation,
        query: &ListQuery,
        limit: u32,
    ) -> StoreResult<Vec<Contact>> {
        self.contacts_after(
            op.account_id,
            op.group_id().map(ContactScope::Group),
            query,
            op.contact_cursor,
            limit,
        )
        .await
    }

    /// Insert one chunk of participations and move the population's cursor to `cursor`,
    /// in one transaction, while `owner` still holds it; `finished` ends it. `false` when
    /// the lease was lost (another worker took it over; nothing is written).
    pub async fn advance_population(
        &self,
        op: &BatchOperation,
        owner: &str,
        rows: &[NewTransmission],
        cursor: i64,
        finished: bool,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let now = clock::now();
        let d = self.dialect();
        let inserts: Vec<Q> = rows.chunks(500).map(|c| insert_query(d, c, now)).collect();
        let progress = |created: i64| {
            let mut q = Q::new(d);
            q.push("UPDATE batch_operations SET contact_cursor = ").int(cursor);
            q.push(", participations_created = participations_created + ")
                .int(created);
            q.push(", updated_at = ").ts(now);
            if finished {
                q.push(", status = 'finished', lease_owner = NULL, leased_until = NULL, finished_at = ")
                    .ts(now);
            } else {
                q.push(", leased_until = ").ts(lease_until);
            }
            q.push(" WHERE id = ")
                .int(op.id)
                .push(" AND status = 'running' AND lease_owner = ")
                .text(owner);
            q
        };
        Ok(on_writer!(self, p => {
            let mut tx = p.begin().await?;
            let mut created = 0i64;
            for ins in &inserts {
                created += sqlx::query_with(ins.sql(), args(p, ins)).persistent(false).fetch_all(&mut *tx).await?.len() as i64;
            }
            let q = progress(created);
            let n = sqlx::query_with(q.sql(), args(p, &q)).persistent(false).execute(&mut *tx).await?.rows_affected();
            if n == 1 {
                tx.commit().await?;
                true
            } else {
                tx.rollback().await?;
                false
            }
        }))
    }

    /// End a population that cannot run (its callout's content is gone, its filter no
    /// longer parses).
    pub async fn fail_batch_operation(&self, id: i64, message: &str) -> StoreResult<()> {
        let sql = "UPDATE batch_operations SET status = 'failed', error_message = $2, lease_owner = NULL, \
                   leased_until = NULL, finished_at = $3, updated_at = $3 WHERE id = $1";
        on_pool!(self, p => sqlx::query(sql).bind(id).bind(message).bind(clock::now()).execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// The callout of a batch operation, whatever its account (for the workers).
    pub async fn callout_by_id(&self, id: i64) -> StoreResult<Option<Callout>> {
        let sql = "SELECT * FROM callouts WHERE id = $1";
        Ok(on_pool!(self, p => sqlx::query_as(sql).bind(id).fetch_optional(p).await)?)
    }
}

/// A validated change to a participation.
pub struct ParticipationChange {
    pub contact_id: Option<i64>,
    pub to_address: Option<String>,
    pub call_flow_logic: Option<Option<String>>,
    #[allow(clippy::type_complexity)]
    pub metadata: Option<Box<dyn Fn(&mut JsonMap) + Send + Sync>>,
}

/// The content a callout's participations carry, resolved once per population from the
/// callout (its text or template when it names one).
#[derive(Debug, Clone)]
pub struct CalloutContent {
    pub body: String,
    pub subject: Option<String>,
    pub html: Option<String>,
}

impl Store {
    /// Resolve a callout's content. `Err` names what is missing.
    pub async fn callout_content(&self, c: &Callout) -> StoreResult<Result<CalloutContent, String>> {
        let mut body = c.body.clone();
        let mut subject = c.subject.clone();
        let mut html = c.html.clone();
        if let Some(id) = c.text_id {
            match self.get_text(c.account_id, id).await? {
                Some(t) => body = Some(t.data),
                None => return Ok(Err(format!("text {id} no longer exists"))),
            }
        }
        if let Some(id) = c.template_id {
            match self.get_template(c.account_id, id).await? {
                Some(t) => {
                    subject = subject.or(Some(t.subject));
                    html = html.or(Some(t.body));
                    body = body.or(t.body_alt);
                }
                None => return Ok(Err(format!("template {id} no longer exists"))),
            }
        }
        Ok(Ok(CalloutContent {
            body: body.unwrap_or_default(),
            subject,
            html,
        }))
    }
}

/// The participation of `contact` in callout `c`, personalised; `None` when the contact
/// cannot be reached on the callout's channel (opted out, or no email address).
pub fn participation_row(
    c: &Callout,
    content: &CalloutContent,
    contact: &Contact,
    batch_operation_id: Option<i64>,
    metadata: JsonMap,
) -> Option<NewTransmission> {
    if contact.opted_out_at.is_some() {
        return None;
    }
    let to = match c.channel.as_str() {
        "email" => contact.email.clone()?,
        _ => contact.msisdn.clone(),
    };
    let body = contact.personalise(&content.body, false);
    let (encoding, segments) = if c.channel == "sms" {
        let a = sauti_core::sms::analyze(&body);
        (Some(a.encoding.as_str().to_string()), i64::from(a.segments))
    } else {
        (None, 1)
    };
    Some(NewTransmission {
        account_id: c.account_id,
        direction: "outbound".into(),
        channel: c.channel.clone(),
        origin: "campaign".into(),
        // Bulk: transactional sends and codes are claimed first.
        priority: 1,
        contact_id: Some(contact.id),
        to_address: to,
        from_address: c.from_address.clone(),
        body,
        subject: content.subject.as_ref().map(|s| contact.personalise(s, false)),
        html: content.html.as_ref().map(|h| contact.personalise(h, true)),
        text_id: c.text_id,
        template_id: c.template_id,
        encoding,
        segments,
        status: status::PENDING.into(),
        max_attempts: c.max_attempts,
        metadata,
        callout_id: Some(c.id),
        batch_operation_id,
        ..Default::default()
    })
}

/// The settable columns of a callout, after `channel`, as `, v1, v2, …`.
fn push_fields(q: &mut Q, c: &Callout) {
    q.push(", ").opt_text(c.call_flow_logic.as_deref());
    q.push(", ").opt_text(c.audio_url.as_deref());
    q.push(", ").opt_int(c.recording_id);
    q.push(", ").opt_text(c.body.as_deref());
    q.push(", ").opt_text(c.subject.as_deref());
    q.push(", ").opt_text(c.html.as_deref());
    q.push(", ").opt_int(c.text_id);
    q.push(", ").opt_int(c.template_id);
    q.push(", ").opt_text(c.from_address.as_deref());
    q.push(", ").opt_int(c.group_id);
    q.push(", ");
    match &c.contact_filter {
        Some(f) => q.json(&Value::Object(f.0.clone())),
        None => q.push("NULL"),
    };
    q.push(", ").opt_int(c.rate_per_minute);
    q.push(", ").int(c.max_attempts);
    q.push(", ").int(c.retry_delay_seconds);
    q.push(", ").text(&c.retry_on);
    q.push(", ").opt_ts(c.start_at);
    q.push(", ").opt_ts(c.stop_at);
    q.push(", ").opt_text(c.window_start.as_deref());
    q.push(", ").opt_text(c.window_end.as_deref());
    q.push(", ").opt_text(c.time_zone.as_deref());
    q.push(", ").json(&Value::Object(c.settings.0.clone()));
    q.push(", ").json(&Value::Object(c.metadata.0.clone()));
}

/// Take back a callout's released, unclaimed participations.
fn withdraw_sql(d: crate::Dialect, callout_id: i64) -> Q {
    let mut q = Q::new(d);
    q.push("UPDATE transmissions SET status = 'pending', next_attempt_at = NULL WHERE callout_id = ")
        .int(callout_id)
        .push(" AND status = 'queued'");
    q
}

/// Release `ids`: each at its slot (`from + i × every`) when paced, all now otherwise.
fn release_sql(d: crate::Dialect, ids: &[i64], slots: Option<(DateTime<Utc>, Duration)>, now: DateTime<Utc>) -> Q {
    let mut q = Q::new(d);
    match slots {
        None => {
            q.push("UPDATE transmissions SET status = 'queued', next_attempt_at = ")
                .ts(now);
            q.push(", updated_at = ")
                .ts(now)
                .push(" WHERE status = 'pending' AND id IN (");
            for (i, id) in ids.iter().enumerate() {
                if i > 0 {
                    q.push(", ");
                }
                q.int(*id);
            }
            q.push(")");
        }
        Some((from, every)) => {
            q.push("UPDATE transmissions SET status = 'queued', next_attempt_at = v.column2, updated_at = ")
                .ts(now);
            q.push(" FROM (VALUES ");
            for (i, id) in ids.iter().enumerate() {
                if i > 0 {
                    q.push(", ");
                }
                let at = from + every * i32::try_from(i).unwrap_or(i32::MAX);
                q.push("(").int(*id).push(", ").ts(at).push(")");
            }
            q.push(") AS v WHERE transmissions.id = v.column1 AND transmissions.status = 'pending'");
        }
    }
    q
}
