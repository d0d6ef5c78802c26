//! Phone-verified sign-ups (the Nunua flow): a phone, its verification, the customer's
//! documents, then a user. Once registered the row is the customer's profile.

use chrono::{DateTime, Utc};
use sauti_core::filter::ListQuery;
use serde_json::{Value, json};

use crate::list::account_scope;
use crate::transmissions::ts;
use crate::users::NewUser;
use crate::{Json, JsonMap, Page, Store, StoreResult, User, on_pool};

pub mod signup_status {
    pub const PENDING_VERIFICATION: &str = "pending_verification";
    pub const VERIFIED: &str = "verified";
    pub const REGISTERED: &str = "registered";
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Signup {
    pub id: i64,
    pub account_id: i64,
    pub phone: String,
    pub status: String,
    pub verification_id: Option<i64>,
    pub phone_verified_at: Option<DateTime<Utc>>,
    /// Blob names of the uploaded images.
    pub photo: Option<String>,
    pub id_front: Option<String>,
    pub id_back: Option<String>,
    pub name: Option<String>,
    pub id_number: Option<String>,
    /// `YYYY-MM-DD`.
    pub dob: Option<String>,
    pub user_id: Option<i64>,
    pub metadata: Json<JsonMap>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The documents a sign-up needs, by the names the API uses.
pub const DOCUMENTS: &[&str] = &["photo", "id_front", "id_back"];

impl Signup {
    pub fn document(&self, kind: &str) -> Option<&str> {
        match kind {
            "photo" => self.photo.as_deref(),
            "id_front" => self.id_front.as_deref(),
            "id_back" => self.id_back.as_deref(),
            _ => None,
        }
    }

    pub fn has_documents(&self) -> bool {
        DOCUMENTS.iter().all(|d| self.document(d).is_some())
    }

    /// The sign-up as the API shows it; documents as the URLs they are served at
    /// (`base`: where this caller reads them).
    pub fn to_json(&self, base: &str) -> Value {
        let doc = |kind: &str| self.document(kind).map(|_| format!("{base}/{kind}"));
        json!({
            "id": self.id,
            "phone": self.phone,
            "status": self.status,
            "verification_id": self.verification_id,
            "phone_verified_at": self.phone_verified_at.as_ref().map(ts),
            "photo": doc("photo"),
            "id_front": doc("id_front"),
            "id_back": doc("id_back"),
            "name": self.name,
            "id_number": self.id_number,
            "dob": self.dob,
            "user_id": self.user_id,
            "metadata": self.metadata.0,
            "created_at": ts(&self.created_at),
            "updated_at": ts(&self.updated_at),
            "account_id": self.account_id,
        })
    }
}

/// What registration adds to a verified sign-up with its documents.
#[derive(Debug, Clone)]
pub struct Registration {
    pub user: NewUser,
    pub name: String,
    pub id_number: String,
    pub dob: String,
}

#[derive(Debug)]
pub enum Registered {
    Done(Box<(User, Signup)>),
    /// The sign-up is not (or no longer) verified with its documents.
    NotReady(Box<Signup>),
    NotFound,
}

impl Store {
    /// The sign-up in progress for `phone` pointed at `verification_id`, made if there is
    /// none. `None` when the phone is already registered in the account.
    pub async fn begin_signup(
        &self,
        account_id: i64,
        phone: &str,
        verification_id: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Signup>> {
        let sql = "SELECT * FROM signups WHERE account_id = $1 AND phone = $2 ORDER BY id DESC LIMIT 1";
        let latest: Option<Signup> =
            on_pool!(self, p => sqlx::query_as(sql).bind(account_id).bind(phone).fetch_optional(p).await)?;
        match latest {
            Some(s) if s.status == signup_status::REGISTERED => Ok(None),
            // Started again: the phone must be verified again, with the new code.
            Some(s) => {
                let sql = "UPDATE signups SET verification_id = $1, status = 'pending_verification', \
                           phone_verified_at = NULL, updated_at = $2 WHERE id = $3 AND status <> 'registered' RETURNING *";
                let row: Option<Signup> = on_pool!(self, p => sqlx::query_as(sql)
                    .bind(verification_id).bind(now).bind(s.id).fetch_optional(p).await)?;
                Ok(row)
            }
            None => {
                let sql = "INSERT INTO signups (account_id, phone, status, verification_id, created_at, updated_at) \
                           VALUES ($1, $2, 'pending_verification', $3, $4, $4) RETURNING *";
                let row = on_pool!(self, p => sqlx::query_as(sql)
                    .bind(account_id).bind(phone).bind(verification_id).bind(now).fetch_one(p).await)?;
                Ok(Some(row))
            }
        }
    }

    pub async fn get_signup(&self, account_id: i64, id: i64) -> StoreResult<Option<Signup>> {
        let sql = "SELECT * FROM signups WHERE account_id = $1 AND id = $2";
        Ok(on_pool!(self, p => sqlx::query_as(sql).bind(account_id).bind(id).fetch_optional(p).await)?)
    }

    pub async fn signup_of_user(&self, account_id: i64, user_id: i64) -> StoreResult<Option<Signup>> {
        let sql = "SELECT * FROM signups WHERE account_id = $1 AND user_id = $2";
        Ok(on_pool!(self, p => sqlx::query_as(sql).bind(account_id).bind(user_id).fetch_optional(p).await)?)
    }

    pub async fn list_signups(&self, account_id: i64, query: &ListQuery) -> StoreResult<Page<Signup>> {
        self.list_rows("signups", account_scope(account_id), query).await
    }

    /// The phone of a sign-up waiting for its code is now verified.
    pub async fn mark_signup_verified(
        &self,
        account_id: i64,
        id: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Signup>> {
        let sql = "UPDATE signups SET status = 'verified', phone_verified_at = $1, updated_at = $1 \
                   WHERE account_id = $2 AND id = $3 AND status = 'pending_verification' RETURNING *";
        Ok(on_pool!(self, p => sqlx::query_as(sql).bind(now).bind(account_id).bind(id).fetch_optional(p).await)?)
    }

    /// Attach the three documents to a verified, unregistered sign-up. Returns the row and
    /// the blob names replaced (the caller removes those files); `None` when the sign-up
    /// is not verified or already registered.
    pub async fn set_signup_documents(
        &self,
        account_id: i64,
        id: i64,
        names: [&str; 3],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<(Signup, Vec<String>)>> {
        let done = on_pool!(self, p => {
            let mut tx = p.begin().await?;
            // A write first: it takes the row (PostgreSQL) or the database (SQLite) for
            // this transaction, so two uploads or an upload and a registration cannot
            // interleave; the documents it returns are still the old ones.
            let before: Option<Signup> = sqlx::query_as(
                "UPDATE signups SET updated_at = $1 WHERE account_id = $2 AND id = $3 AND status = 'verified' RETURNING *",
            )
            .bind(now)
            .bind(account_id)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            match before {
                None => None,
                Some(before) => {
                    let row: Signup = sqlx::query_as(
                        "UPDATE signups SET photo = $1, id_front = $2, id_back = $3, updated_at = $4 \
                         WHERE id = $5 RETURNING *",
                    )
                    .bind(names[0])
                    .bind(names[1])
                    .bind(names[2])
                    .bind(now)
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    let replaced = [before.photo, before.id_front, before.id_back].into_iter().flatten().collect();
                    Some((row, replaced))
                }
            }
        });
        Ok(done)
    }

    /// Create the customer's user and mark the sign-up registered, in one transaction. A
    /// taken e-mail or phone is `StoreError::Conflict` and writes nothing.
    pub async fn register_signup(
        &self,
        account_id: i64,
        id: i64,
        r: &Registration,
        now: DateTime<Utc>,
    ) -> StoreResult<Registered> {
        let done = on_pool!(self, p => {
            let mut tx = p.begin().await?;
            // Claim the sign-up first, guarded by its state: of two registrations at once,
            // one finds it no longer verified.
            let claimed: Option<Signup> = sqlx::query_as(
                "UPDATE signups SET status = 'registered', name = $1, id_number = $2, dob = $3, updated_at = $4 \
                 WHERE account_id = $5 AND id = $6 AND status = 'verified' AND photo IS NOT NULL \
                 AND id_front IS NOT NULL AND id_back IS NOT NULL RETURNING *",
            )
            .bind(&r.name)
            .bind(&r.id_number)
            .bind(&r.dob)
            .bind(now)
            .bind(account_id)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            match claimed {
                None => {
                    tx.rollback().await?;
                    match self.get_signup(account_id, id).await? {
                        Some(s) => Registered::NotReady(Box::new(s)),
                        None => Registered::NotFound,
                    }
                }
                Some(_) => {
                    let user: User = sqlx::query_as(
                        "INSERT INTO users (account_id, email, password_hash, locale, permissions, metadata, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING *",
                    )
                    .bind(account_id)
                    .bind(&r.user.email)
                    .bind(&r.user.password_hash)
                    .bind(&r.user.locale)
                    .bind(Json(&r.user.permissions))
                    .bind(Json(&r.user.metadata))
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
                    let signup: Signup = sqlx::query_as("UPDATE signups SET user_id = $1 WHERE id = $2 RETURNING *")
                        .bind(user.id)
                        .bind(id)
                        .fetch_one(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Registered::Done(Box::new((user, signup)))
                }
            }
        });
        Ok(done)
    }

    /// Whether `phone` is registered in the account.
    pub async fn phone_registered(&self, account_id: i64, phone: &str) -> StoreResult<bool> {
        let sql = "SELECT id FROM signups WHERE account_id = $1 AND phone = $2 AND status = 'registered'";
        let row: Option<(i64,)> =
            on_pool!(self, p => sqlx::query_as(sql).bind(account_id).bind(phone).fetch_optional(p).await)?;
        Ok(row.is_some())
    }
}
