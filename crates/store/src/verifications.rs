//! Verifications (one-time codes) and the sends that carry them.
//!
//! No code is stored: a verification keeps a random salt and the code is derived from it
//! with the server key (`sauti_core::otp`). Every send is a row of `verification_sends`,
//! which the sliding-window limits count, so the limits hold across restarts and nodes.

use chrono::{DateTime, Utc};
use sauti_core::filter::ListQuery;
use serde_json::{Value, json};

use crate::list::account_scope;
use crate::sql::{Q, args};
use crate::transmissions::{NewTransmission, Transmission, insert_query, ts};
use crate::webhooks::WebhookEvent;
use crate::{Dialect, Json, JsonMap, Page, Store, StoreResult, on_pool, on_writer};

/// Verification statuses.
pub mod vstatus {
    pub const PENDING: &str = "pending";
    pub const APPROVED: &str = "approved";
    pub const CANCELED: &str = "canceled";
    pub const EXPIRED: &str = "expired";
    pub const MAX_ATTEMPTS_REACHED: &str = "max_attempts_reached";
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Verification {
    pub id: i64,
    pub account_id: i64,
    pub channel: String,
    pub to_address: String,
    pub status: String,
    pub code_length: i64,
    /// With the server key, determines the code. Never shown.
    pub code_salt: String,
    pub locale: String,
    pub text_id: Option<i64>,
    pub template_id: Option<i64>,
    pub send_count: i64,
    pub check_count: i64,
    pub max_checks: i64,
    pub expires_at: DateTime<Utc>,
    pub approved_at: Option<DateTime<Utc>>,
    pub metadata: Json<JsonMap>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VerificationSend {
    pub id: i64,
    pub verification_id: i64,
    pub channel: String,
    pub transmission_id: Option<i64>,
    pub sent_at: DateTime<Utc>,
}

impl Verification {
    /// The status as of `now`: a pending verification past its expiry is expired, whether
    /// or not the row says so yet.
    pub fn status_at(&self, now: DateTime<Utc>) -> &str {
        if self.status == vstatus::PENDING && self.expires_at <= now {
            vstatus::EXPIRED
        } else {
            &self.status
        }
    }

    /// The verification as the API and webhooks show it (never the salt). `sends` are its
    /// send attempts when the caller read them.
    pub fn to_json(&self, now: DateTime<Utc>, sends: Option<&[VerificationSend]>) -> Value {
        let status = self.status_at(now);
        let mut v = json!({
            "id": self.id,
            "to": self.to_address,
            "channel": self.channel,
            "status": status,
            "valid": status == vstatus::APPROVED,
            "code_length": self.code_length,
            "locale": self.locale,
            "text_id": self.text_id,
            "template_id": self.template_id,
            "send_count": self.send_count,
            "check_count": self.check_count,
            "checks_remaining": (self.max_checks - self.check_count).max(0),
            "expires_at": ts(&self.expires_at),
            "approved_at": self.approved_at.as_ref().map(ts),
            "metadata": self.metadata.0,
            "created_at": ts(&self.created_at),
            "updated_at": ts(&self.updated_at),
            "account_id": self.account_id,
        });
        if let Some(sends) = sends {
            v["send_code_attempts"] = sends
                .iter()
                .map(|s| json!({"channel": s.channel, "transmission_id": s.transmission_id, "time": ts(&s.sent_at)}))
                .collect();
        }
        v
    }
}

/// A sliding-window limit: at most `max` sends per `seconds`; `max == 0` is no limit.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub max: i64,
    pub seconds: i64,
}

/// The limits a new send is checked against.
#[derive(Debug, Clone, Copy)]
pub struct SendLimits {
    pub destination: Window,
    pub ip: Window,
    pub prefix: Window,
}

/// Which limit refused a send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Destination,
    Ip,
    Prefix,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Destination => "destination",
            Limit::Ip => "ip",
            Limit::Prefix => "prefix",
        }
    }
}

/// A request to send a code: to a pending verification of the same destination if there
/// is one (the same code again), else to a new one.
#[derive(Debug, Clone)]
pub struct StartVerification {
    pub account_id: i64,
    pub channel: String,
    pub to: String,
    /// What the per-prefix limit counts: the destination's leading digits, or an e-mail
    /// address's domain.
    pub prefix: String,
    pub ip: Option<String>,
    pub code_length: i64,
    pub salt: String,
    pub locale: String,
    pub text_id: Option<i64>,
    pub template_id: Option<i64>,
    pub max_checks: i64,
    pub ttl_seconds: i64,
    pub metadata: JsonMap,
    pub limits: SendLimits,
    /// The message carrying the code, its body holding `sauti_core::otp::PLACEHOLDER`.
    /// The store adds `metadata.verification_id`.
    pub message: NewTransmission,
}

#[derive(Debug)]
pub enum Started {
    /// The code was (re)sent: the verification, whether it is new, and the message.
    Sent {
        verification: Box<Verification>,
        created: bool,
        transmission: Box<Transmission>,
    },
    /// A limit refused the send; nothing was written. Sending is allowed again at
    /// `retry_at`.
    Refused { limit: Limit, retry_at: DateTime<Utc> },
}

/// Which verification a check is for.
#[derive(Debug, Clone)]
pub enum CheckTarget {
    Id(i64),
    /// The latest verification of this destination.
    To(String),
}

#[derive(Debug)]
pub enum Checked {
    Approved(Verification),
    /// A wrong code; the row shows the checks left (none left: `max_attempts_reached`).
    Wrong(Verification),
    /// No checks left.
    TooMany(Verification),
    /// No such verification, or it can no longer be checked (approved, canceled, expired).
    Gone,
}

#[derive(Debug)]
pub enum Canceled {
    Canceled(Verification),
    NotPending(Verification),
    NotFound,
}

/// A stable 64-bit lock key for one destination of one account (PostgreSQL advisory
/// locks serialise the limit check and the send per destination across nodes).
fn lock_key(account_id: i64, to: &str) -> i64 {
    let digest = sauti_core::secret::sha256_hex(format!("{account_id}:{to}").as_bytes());
    i64::from_str_radix(&digest[..15], 16).unwrap_or(0)
}

impl Store {
    /// Send a verification code (see [`StartVerification`]), or refuse by a limit. The
    /// limit check, the verification, the message and the send record are one
    /// transaction: a refused request writes nothing, an accepted one all of it.
    pub async fn start_verification(&self, s: &StartVerification, now: DateTime<Utc>) -> StoreResult<Started> {
        let dialect = self.dialect();
        let started = on_writer!(self, p => {
            let mut tx = p.begin().await?;
            if dialect == Dialect::Postgres {
                // Every limit this send is counted against, locked in one order (no
                // deadlock between two sends sharing some of them).
                let mut keys = vec![lock_key(s.account_id, &format!("to:{}", s.to))];
                if s.limits.ip.max > 0 && let Some(ip) = &s.ip {
                    keys.push(lock_key(s.account_id, &format!("ip:{ip}")));
                }
                if s.limits.prefix.max > 0 {
                    keys.push(lock_key(s.account_id, &format!("prefix:{}", s.prefix)));
                }
                keys.sort_unstable();
                keys.dedup();
                for key in keys {
                    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(key).execute(&mut *tx).await?;
                }
            }
            sqlx::query(
                "UPDATE verifications SET status = 'expired', updated_at = $1 \
                 WHERE account_id = $2 AND to_address = $3 AND status = 'pending' AND expires_at <= $1",
            )
            .bind(now)
            .bind(s.account_id)
            .bind(&s.to)
            .execute(&mut *tx)
            .await?;
            let checks = [
                (Limit::Destination, s.limits.destination, "to_address", Some(s.to.as_str())),
                (Limit::Ip, s.limits.ip, "ip", s.ip.as_deref()),
                (Limit::Prefix, s.limits.prefix, "prefix", Some(s.prefix.as_str())),
            ];
            let mut refused = None;
            for (limit, w, column, value) in checks {
                let Some(value) = value else { continue };
                if w.max <= 0 {
                    continue;
                }
                let since = now - chrono::Duration::seconds(w.seconds);
                // The `max`-th most recent send in the window, if there is one: then the
                // limit is reached, and sending is allowed again when it leaves the window.
                let sql = format!(
                    "SELECT sent_at FROM verification_sends WHERE account_id = $1 AND {column} = $2 AND sent_at > $3 \
                     ORDER BY sent_at DESC LIMIT 1 OFFSET $4"
                );
                // The column is one of the three literals above.
                let nth: Option<(DateTime<Utc>,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(s.account_id)
                    .bind(value)
                    .bind(since)
                    .bind(w.max - 1)
                    .fetch_optional(&mut *tx)
                    .await?;
                if let Some((at,)) = nth {
                    refused = Some((limit, at + chrono::Duration::seconds(w.seconds)));
                    break;
                }
            }
            if let Some((limit, retry_at)) = refused {
                tx.rollback().await?;
                Started::Refused { limit, retry_at }
            } else {
                let existing: Option<Verification> = sqlx::query_as(
                    "SELECT * FROM verifications WHERE account_id = $1 AND to_address = $2 AND status = 'pending' \
                     ORDER BY id DESC LIMIT 1",
                )
                .bind(s.account_id)
                .bind(&s.to)
                .fetch_optional(&mut *tx)
                .await?;
                let created = existing.is_none();
                let v = match existing {
                    Some(v) => v,
                    None => {
                        sqlx::query_as(
                            "INSERT INTO verifications (account_id, channel, to_address, status, code_length, code_salt, \
                             locale, text_id, template_id, max_checks, expires_at, metadata, created_at, updated_at) \
                             VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) RETURNING *",
                        )
                        .bind(s.account_id)
                        .bind(&s.channel)
                        .bind(&s.to)
                        .bind(s.code_length)
                        .bind(&s.salt)
                        .bind(&s.locale)
                        .bind(s.text_id)
                        .bind(s.template_id)
                        .bind(s.max_checks)
                        .bind(now + chrono::Duration::seconds(s.ttl_seconds))
                        .bind(Json(&s.metadata))
                        .bind(now)
                        .fetch_one(&mut *tx)
                        .await?
                    }
                };
                let mut message = s.message.clone();
                message.metadata.insert(crate::transmissions::VERIFICATION_KEY.into(), Value::from(v.id));
                let q = insert_query(dialect, std::slice::from_ref(&message), now);
                let transmission: Transmission = sqlx::query_as_with(q.sql(), args(p, &q)).persistent(false).fetch_one(&mut *tx).await?;
                sqlx::query(
                    "INSERT INTO verification_sends (account_id, verification_id, channel, to_address, prefix, ip, \
                     transmission_id, sent_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(s.account_id)
                .bind(v.id)
                .bind(&s.channel)
                .bind(&s.to)
                .bind(&s.prefix)
                .bind(s.ip.as_deref())
                .bind(transmission.id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                let verification: Verification = sqlx::query_as(
                    "UPDATE verifications SET send_count = send_count + 1, channel = $1, updated_at = $2 \
                     WHERE id = $3 RETURNING *",
                )
                .bind(&s.channel)
                .bind(now)
                .bind(v.id)
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                Started::Sent { verification: Box::new(verification), created, transmission: Box::new(transmission) }
            }
        });
        Ok(started)
    }

    pub async fn get_verification(&self, account_id: i64, id: i64) -> StoreResult<Option<Verification>> {
        let sql = "SELECT * FROM verifications WHERE account_id = $1 AND id = $2";
        Ok(on_pool!(self, p => sqlx::query_as(sql).bind(account_id).bind(id).fetch_optional(p).await)?)
    }

    pub async fn list_verifications(&self, account_id: i64, query: &ListQuery) -> StoreResult<Page<Verification>> {
        self.list_rows("verifications", account_scope(account_id), query).await
    }

    pub async fn list_verification_sends(&self, verification_id: i64) -> StoreResult<Vec<VerificationSend>> {
        let sql = "SELECT id, verification_id, channel, transmission_id, sent_at FROM verification_sends \
                   WHERE verification_id = $1 ORDER BY id";
        Ok(on_pool!(self, p => sqlx::query_as(sql).bind(verification_id).fetch_all(p).await)?)
    }

    /// Account, salt and code length of each of `ids` that exists (the engine derives the
    /// codes).
    pub async fn verification_salts(&self, ids: &[i64]) -> StoreResult<Vec<(i64, i64, String, i64)>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let mut q = Q::new(self.dialect());
        q.push("SELECT id, account_id, code_salt, code_length FROM verifications WHERE id IN (");
        for (i, id) in ids.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.int(*id);
        }
        q.push(")");
        Ok(on_pool!(self, p => sqlx::query_as_with(q.sql(), args(p, &q)).persistent(false).fetch_all(p).await)?)
    }

    /// Check a code. A check is counted (atomically, before the code is compared, so
    /// parallel guesses cannot exceed the limit) whether it is right or wrong.
    pub async fn check_verification(
        &self,
        account_id: i64,
        target: &CheckTarget,
        now: DateTime<Utc>,
        is_right: impl Fn(&Verification) -> bool,
    ) -> StoreResult<Checked> {
        let id = match target {
            CheckTarget::Id(id) => *id,
            CheckTarget::To(to) => {
                let sql = "SELECT id FROM verifications WHERE account_id = $1 AND to_address = $2 \
                           AND status IN ('pending', 'max_attempts_reached') ORDER BY id DESC LIMIT 1";
                let found: Option<(i64,)> =
                    on_pool!(self, p => sqlx::query_as(sql).bind(account_id).bind(to).fetch_optional(p).await)?;
                match found {
                    Some((id,)) => id,
                    None => return Ok(Checked::Gone),
                }
            }
        };
        let reserve = "UPDATE verifications SET check_count = check_count + 1, updated_at = $1 \
                       WHERE account_id = $2 AND id = $3 AND status = 'pending' AND expires_at > $1 \
                       AND check_count < max_checks RETURNING *";
        let reserved: Option<Verification> = on_pool!(self, p => sqlx::query_as(reserve)
            .bind(now).bind(account_id).bind(id).fetch_optional(p).await)?;
        let Some(v) = reserved else {
            let Some(v) = self.get_verification(account_id, id).await? else {
                return Ok(Checked::Gone);
            };
            return Ok(match v.status_at(now) {
                vstatus::MAX_ATTEMPTS_REACHED => Checked::TooMany(v),
                vstatus::PENDING if v.check_count >= v.max_checks => Checked::TooMany(v),
                vstatus::EXPIRED => {
                    let sql = "UPDATE verifications SET status = 'expired', updated_at = $1 \
                               WHERE id = $2 AND status = 'pending'";
                    on_pool!(self, p => sqlx::query(sql).bind(now).bind(id).execute(p).await.map(|_| ()))?;
                    Checked::Gone
                }
                _ => Checked::Gone,
            });
        };
        if is_right(&v) {
            let subs = self.subscriptions().await?;
            let dialect = self.dialect();
            let approved = on_pool!(self, p => {
                let mut tx = p.begin().await?;
                let approved: Option<Verification> = sqlx::query_as(
                    "UPDATE verifications SET status = 'approved', approved_at = $1, updated_at = $1 \
                     WHERE id = $2 AND status = 'pending' RETURNING *",
                )
                .bind(now)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(a) = &approved {
                    let event = WebhookEvent {
                        account_id,
                        event_type: "verification.approved".into(),
                        data: a.to_json(now, None),
                    };
                    for w in subs.deliveries(dialect, &[event], now) {
                        sqlx::query_with(w.sql(), args(p, &w)).persistent(false).execute(&mut *tx).await?;
                    }
                }
                tx.commit().await?;
                approved
            });
            // Two right guesses at once: the second finds it approved, which is gone.
            return Ok(approved.map(Checked::Approved).unwrap_or(Checked::Gone));
        }
        if v.check_count >= v.max_checks {
            let sql = "UPDATE verifications SET status = 'max_attempts_reached', updated_at = $1 \
                       WHERE id = $2 AND status = 'pending' RETURNING *";
            let ended: Option<Verification> =
                on_pool!(self, p => sqlx::query_as(sql).bind(now).bind(id).fetch_optional(p).await)?;
            return Ok(Checked::Wrong(ended.unwrap_or(v)));
        }
        Ok(Checked::Wrong(v))
    }

    /// `cancel`: a pending verification can no longer be checked.
    pub async fn cancel_verification(&self, account_id: i64, id: i64, now: DateTime<Utc>) -> StoreResult<Canceled> {
        let sql = "UPDATE verifications SET status = 'canceled', updated_at = $1 \
                   WHERE account_id = $2 AND id = $3 AND status = 'pending' AND expires_at > $1 RETURNING *";
        let row: Option<Verification> =
            on_pool!(self, p => sqlx::query_as(sql).bind(now).bind(account_id).bind(id).fetch_optional(p).await)?;
        if let Some(v) = row {
            return Ok(Canceled::Canceled(v));
        }
        Ok(match self.get_verification(account_id, id).await? {
            Some(v) => Canceled::NotPending(v),
            None => Canceled::NotFound,
        })
    }
}
