//! Outbound webhooks: endpoints, the deliveries owed to them and every try of each.
//!
//! Deliveries are written in the same transaction as the status change they announce, so
//! an event is never lost between the two. Which endpoints want which events is cached for
//! a moment ([`SUBSCRIPTIONS_TTL`]): the hot path of the engine changes thousands of
//! statuses a second, and asking the database each time whether anyone listens would cost
//! more than the change itself.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::Rng;
use sauti_core::clock;
use sauti_core::filter::{ListQuery, SqlValue};
use serde_json::{Value, json};

use crate::list::account_scope;
use crate::sql::{Q, args};
use crate::transmissions::ts;
use crate::users::CAS_TRIES;
use crate::{Dialect, Json, JsonMap, Page, Store, StoreError, StoreResult, on_pool, on_writer};

/// How long another node's endpoint change may take to be seen here. Changes through this
/// process are seen at once.
pub const SUBSCRIPTIONS_TTL: Duration = Duration::from_secs(2);

/// Event types endpoints may subscribe to.
pub const EVENT_TYPES: &[&str] = &[
    "transmission.status_changed",
    "transmission.inbound",
    "verification.approved",
    "callout.status_changed",
];

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WebhookEndpoint {
    pub id: i64,
    pub account_id: i64,
    pub url: String,
    pub description: Option<String>,
    pub events: Json<Vec<String>>,
    /// `whsec_…`; returned only when the endpoint is created.
    pub secret: String,
    pub active: bool,
    pub disabled_reason: Option<String>,
    pub metadata: Json<JsonMap>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WebhookDelivery {
    pub id: i64,
    pub account_id: i64,
    pub endpoint_id: i64,
    /// The Standard Webhooks `webhook-id`: the same on every try of this delivery.
    pub message_id: String,
    pub event_type: String,
    pub payload: String,
    /// `pending`, `succeeded`, `failed`.
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub leased_until: Option<DateTime<Utc>>,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl WebhookDelivery {
    pub fn to_json(&self) -> Value {
        let o = |t: &Option<DateTime<Utc>>| t.as_ref().map(|t| Value::String(ts(t))).unwrap_or(Value::Null);
        json!({
            "id": self.id,
            "endpoint_id": self.endpoint_id,
            "message_id": self.message_id,
            "event_type": self.event_type,
            "payload": serde_json::from_str::<Value>(&self.payload).unwrap_or(Value::Null),
            "status": self.status,
            "attempts": self.attempts,
            "next_attempt_at": o(&self.next_attempt_at),
            "last_status_code": self.last_status_code,
            "last_error": self.last_error,
            "delivered_at": o(&self.delivered_at),
            "created_at": ts(&self.created_at),
            "updated_at": ts(&self.updated_at),
        })
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WebhookDeliveryAttempt {
    pub id: i64,
    pub account_id: i64,
    pub delivery_id: i64,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub response_body: Option<String>,
    pub duration_ms: i64,
    pub created_at: DateTime<Utc>,
}

impl WebhookDeliveryAttempt {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "delivery_id": self.delivery_id,
            "status_code": self.status_code,
            "error": self.error,
            "response_body": self.response_body,
            "duration_ms": self.duration_ms,
            "created_at": ts(&self.created_at),
        })
    }
}

/// Something that happened that endpoints may want to hear of.
#[derive(Debug, Clone)]
pub struct WebhookEvent {
    pub account_id: i64,
    pub event_type: String,
    pub data: Value,
}

/// Active endpoints and their event types, as of a moment.
#[derive(Debug, Default)]
pub struct Subscriptions {
    endpoints: Vec<(i64, i64, Vec<String>)>,
}

#[derive(Debug)]
pub(crate) struct SubscriptionCache {
    current: RwLock<Option<(Instant, Arc<Subscriptions>)>>,
}

impl SubscriptionCache {
    pub(crate) fn new() -> Self {
        Self {
            current: RwLock::new(None),
        }
    }
}

/// A Standard Webhooks message id: `msg_` and 24 random alphanumerics.
fn message_id() -> String {
    let mut rng = rand::rng();
    let s: String = (0..24).map(|_| rng.sample(rand::distr::Alphanumeric) as char).collect();
    format!("msg_{s}")
}

impl Subscriptions {
    /// Whether any endpoint listens for `transmission.status_changed`.
    pub(crate) fn wants_status_changes(&self) -> bool {
        self.endpoints
            .iter()
            .any(|(_, _, types)| types.iter().any(|t| t == "transmission.status_changed"))
    }

    /// The inserts of one delivery per (event, subscribed endpoint), none when nobody
    /// listens. At most [`DELIVERY_ROWS`] rows a statement: a batch of a few thousand
    /// status changes with an endpoint or two would pass the bound-parameter limits
    /// (32,766 on SQLite, 65,535 on PostgreSQL) in one.
    pub(crate) fn deliveries(&self, dialect: Dialect, events: &[WebhookEvent], now: DateTime<Utc>) -> Vec<Q> {
        let mut statements = Vec::new();
        if self.endpoints.is_empty() || events.is_empty() {
            return statements;
        }
        let header = "INSERT INTO webhook_deliveries (account_id, endpoint_id, message_id, event_type, payload, status, \
                      attempts, next_attempt_at, created_at, updated_at) VALUES ";
        let mut q = Q::new(dialect);
        let mut n = 0;
        for e in events {
            let listeners: Vec<i64> = self
                .endpoints
                .iter()
                .filter(|(_, a, types)| *a == e.account_id && types.contains(&e.event_type))
                .map(|(id, _, _)| *id)
                .collect();
            if listeners.is_empty() {
                continue;
            }
            let payload = json!({"type": e.event_type, "timestamp": ts(&now), "data": e.data}).to_string();
            let msg = message_id();
            for endpoint in listeners {
                if n == DELIVERY_ROWS {
                    statements.push(std::mem::replace(&mut q, Q::new(dialect)));
                    n = 0;
                }
                q.push(if n == 0 { header } else { ", " });
                n += 1;
                q.push("(")
                    .int(e.account_id)
                    .push(", ")
                    .int(endpoint)
                    .push(", ")
                    .text(&msg);
                q.push(", ")
                    .text(&e.event_type)
                    .push(", ")
                    .text(&payload)
                    .push(", 'pending', 0, ");
                q.ts(now).push(", ").ts(now).push(", ").ts(now).push(")");
            }
        }
        if n > 0 {
            statements.push(q);
        }
        statements
    }
}

/// Rows per webhook-delivery insert (8 parameters each).
const DELIVERY_ROWS: usize = 1000;

impl Store {
    /// The current subscriptions, re-read when older than [`SUBSCRIPTIONS_TTL`].
    pub(crate) async fn subscriptions(&self) -> StoreResult<Arc<Subscriptions>> {
        if let Some((at, s)) = self.subs.current.read().unwrap_or_else(|e| e.into_inner()).as_ref()
            && at.elapsed() < SUBSCRIPTIONS_TTL
        {
            return Ok(s.clone());
        }
        let sql = "SELECT id, account_id, events FROM webhook_endpoints WHERE active";
        let rows: Vec<(i64, i64, Json<Vec<String>>)> = on_pool!(self, p => sqlx::query_as(sql).fetch_all(p).await)?;
        let s = Arc::new(Subscriptions {
            endpoints: rows.into_iter().map(|(id, a, e)| (id, a, e.0)).collect(),
        });
        *self.subs.current.write().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), s.clone()));
        Ok(s)
    }

    fn forget_subscriptions(&self) {
        *self.subs.current.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    pub async fn create_webhook_endpoint(&self, e: &WebhookEndpoint) -> StoreResult<WebhookEndpoint> {
        let sql = "INSERT INTO webhook_endpoints (account_id, url, description, events, secret, active, metadata, created_at, \
                   updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING *";
        let row = on_pool!(self, p => sqlx::query_as(sql)
            .bind(e.account_id)
            .bind(&e.url)
            .bind(&e.description)
            .bind(&e.events)
            .bind(&e.secret)
            .bind(e.active)
            .bind(&e.metadata)
            .bind(clock::now())
            .fetch_one(p)
            .await)?;
        self.forget_subscriptions();
        Ok(row)
    }

    pub async fn get_webhook_endpoint(&self, account_id: i64, id: i64) -> StoreResult<Option<WebhookEndpoint>> {
        let sql = "SELECT * FROM webhook_endpoints WHERE account_id = $1 AND id = $2";
        Ok(on_pool!(self, p => sqlx::query_as(sql).bind(account_id).bind(id).fetch_optional(p).await)?)
    }

    pub async fn list_webhook_endpoints(
        &self,
        account_id: i64,
        query: &ListQuery,
    ) -> StoreResult<Page<WebhookEndpoint>> {
        self.list_rows("webhook_endpoints", account_scope(account_id), query)
            .await
    }

    pub async fn update_webhook_endpoint(
        &self,
        account_id: i64,
        id: i64,
        change: impl Fn(&mut WebhookEndpoint),
    ) -> StoreResult<Option<WebhookEndpoint>> {
        for _ in 0..CAS_TRIES {
            let Some(old) = self.get_webhook_endpoint(account_id, id).await? else {
                return Ok(None);
            };
            let mut e = old.clone();
            change(&mut e);
            e.updated_at = clock::now().max(old.updated_at + chrono::Duration::microseconds(1));
            let sql = "UPDATE webhook_endpoints SET url = $3, description = $4, events = $5, active = $6, disabled_reason = $7, \
                       metadata = $8, updated_at = $9 WHERE account_id = $1 AND id = $2 AND updated_at = $10";
            let n = on_pool!(self, p => sqlx::query(sql)
                .bind(account_id)
                .bind(id)
                .bind(&e.url)
                .bind(&e.description)
                .bind(&e.events)
                .bind(e.active)
                .bind(&e.disabled_reason)
                .bind(&e.metadata)
                .bind(e.updated_at)
                .bind(old.updated_at)
                .execute(p)
                .await
                .map(|r| r.rows_affected()))?;
            if n == 1 {
                self.forget_subscriptions();
                return Ok(Some(e));
            }
        }
        Err(StoreError::Contended)
    }

    pub async fn delete_webhook_endpoint(&self, account_id: i64, id: i64) -> StoreResult<bool> {
        let sql = "DELETE FROM webhook_endpoints WHERE account_id = $1 AND id = $2";
        let n = on_pool!(self, p => sqlx::query(sql).bind(account_id).bind(id).execute(p).await.map(|r| r.rows_affected()))?;
        self.forget_subscriptions();
        Ok(n == 1)
    }

    /// Deliveries of one endpoint, or of all the account's endpoints.
    pub async fn list_webhook_deliveries(
        &self,
        account_id: i64,
        endpoint_id: Option<i64>,
        query: &ListQuery,
    ) -> StoreResult<Page<WebhookDelivery>> {
        let mut scope = account_scope(account_id);
        if let Some(e) = endpoint_id {
            let ph = scope.bind(SqlValue::Int(e));
            scope.text.push_str(&format!(" AND endpoint_id = {ph}"));
        }
        self.list_rows("webhook_deliveries", scope, query).await
    }

    pub async fn get_webhook_delivery(&self, account_id: i64, id: i64) -> StoreResult<Option<WebhookDelivery>> {
        let sql = "SELECT * FROM webhook_deliveries WHERE account_id = $1 AND id = $2";
        Ok(on_pool!(self, p => sqlx::query_as(sql).bind(account_id).bind(id).fetch_optional(p).await)?)
    }

    pub async fn list_webhook_delivery_attempts(
        &self,
        account_id: i64,
        delivery_id: i64,
        query: &ListQuery,
    ) -> StoreResult<Page<WebhookDeliveryAttempt>> {
        let mut scope = account_scope(account_id);
        let ph = scope.bind(SqlValue::Int(delivery_id));
        scope.text.push_str(&format!(" AND delivery_id = {ph}"));
        self.list_rows("webhook_delivery_attempts", scope, query).await
    }

    /// Send a delivery again: it becomes pending and due now, keeping its message id (so
    /// a receiver that deduplicates on `webhook-id` sees the same message).
    pub async fn replay_webhook_delivery(&self, account_id: i64, id: i64) -> StoreResult<Option<WebhookDelivery>> {
        let now = clock::now();
        let sql = "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $1, leased_until = NULL, updated_at = $1 \
                   WHERE account_id = $2 AND id = $3 RETURNING *";
        Ok(on_pool!(self, p => sqlx::query_as(sql).bind(now).bind(account_id).bind(id).fetch_optional(p).await)?)
    }

    /// Claim due deliveries of active endpoints until `lease_until`, with their endpoint.
    pub async fn claim_webhook_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<(WebhookDelivery, WebhookEndpoint)>> {
        let mut q = Q::new(self.dialect());
        q.push("UPDATE webhook_deliveries SET leased_until = ")
            .ts(lease_until)
            .push(
                " WHERE id IN (SELECT d.id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
                   WHERE d.status = 'pending' AND e.active AND d.next_attempt_at <= ",
            )
            .ts(now)
            .push(" AND (d.leased_until IS NULL OR d.leased_until < ")
            .ts(now)
            .push(") ORDER BY d.next_attempt_at LIMIT ")
            .int(i64::from(limit));
        if self.dialect() == Dialect::Postgres {
            q.push(" FOR UPDATE OF d SKIP LOCKED");
        }
        q.push(") RETURNING *");
        let rows: Vec<WebhookDelivery> =
            on_writer!(self, p => sqlx::query_as_with(q.sql(), args(p, &q)).persistent(false).fetch_all(p).await)?;
        if rows.is_empty() {
            return Ok(vec![]);
        }
        // The endpoints of the batch in one query, not one per delivery.
        let mut ids: Vec<i64> = rows.iter().map(|d| d.endpoint_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut e = Q::new(self.dialect());
        e.push("SELECT * FROM webhook_endpoints WHERE id IN (");
        for (i, id) in ids.iter().enumerate() {
            if i > 0 {
                e.push(", ");
            }
            e.int(*id);
        }
        e.push(")");
        let endpoints: Vec<WebhookEndpoint> =
            on_writer!(self, p => sqlx::query_as_with(e.sql(), args(p, &e)).persistent(false).fetch_all(p).await)?;
        let by_id: std::collections::HashMap<i64, WebhookEndpoint> = endpoints.into_iter().map(|e| (e.id, e)).collect();
        Ok(rows
            .into_iter()
            .filter_map(|d| by_id.get(&d.endpoint_id).cloned().map(|e| (d, e)))
            .collect())
    }

    /// Record one try of a delivery and what follows from it: `next_attempt_at` for a
    /// retry, `None` when it succeeded (`succeeded`) or gave up (`failed`).
    #[allow(clippy::too_many_arguments)]
    pub async fn record_webhook_try(
        &self,
        delivery: &WebhookDelivery,
        status_code: Option<i64>,
        error: Option<&str>,
        response_body: Option<&str>,
        duration_ms: i64,
        succeeded: bool,
        next_attempt_at: Option<DateTime<Utc>>,
        disable_endpoint: Option<&str>,
    ) -> StoreResult<()> {
        let now = clock::now();
        let status = if succeeded {
            "succeeded"
        } else if next_attempt_at.is_some() {
            "pending"
        } else {
            "failed"
        };
        on_pool!(self, p => {
            let mut tx = p.begin().await?;
            sqlx::query("INSERT INTO webhook_delivery_attempts (account_id, delivery_id, status_code, error, response_body, \
                         duration_ms, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                .bind(delivery.account_id).bind(delivery.id).bind(status_code).bind(error).bind(response_body)
                .bind(duration_ms).bind(now)
                .execute(&mut *tx).await?;
            sqlx::query("UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1, next_attempt_at = $2, leased_until = NULL, \
                         last_status_code = $3, last_error = $4, delivered_at = $5, updated_at = $6 WHERE id = $7")
                .bind(status).bind(next_attempt_at).bind(status_code).bind(error).bind(succeeded.then_some(now)).bind(now)
                .bind(delivery.id)
                .execute(&mut *tx).await?;
            if let Some(reason) = disable_endpoint {
                sqlx::query("UPDATE webhook_endpoints SET active = FALSE, disabled_reason = $1, updated_at = $2 WHERE id = $3")
                    .bind(reason).bind(now).bind(delivery.endpoint_id)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        if disable_endpoint.is_some() {
            self.forget_subscriptions();
        }
        Ok(())
    }
}
