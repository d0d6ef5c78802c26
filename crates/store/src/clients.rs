//! Clients: organisations an account works with (Happyoffer, Noregrets). Contacts may
//! belong to one.

use chrono::{DateTime, Utc};
use sauti_core::clock;
use sauti_core::filter::ListQuery;

use crate::list::account_scope;
use crate::users::CAS_TRIES;
use crate::{Json, JsonMap, Page, Store, StoreError, StoreResult, on_pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Client {
    pub id: i64,
    pub account_id: i64,
    pub user_id: Option<i64>,
    pub external_client_id: String,
    pub company_name: String,
    pub address: Option<String>,
    pub house_number: Option<String>,
    pub zip_code: Option<String>,
    pub country: Option<String>,
    pub city: Option<String>,
    pub phone_number: Option<String>,
    pub website_url: Option<String>,
    pub chamber_of_commerce_number: Option<String>,
    pub email: Option<String>,
    pub logo: Option<String>,
    /// The file of an uploaded logo in the API's blob store (`None` when `logo` is a URL
    /// or absent). Never shown to callers: it names a file on the server.
    pub logo_blob: Option<String>,
    pub metadata: Json<JsonMap>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Store {
    /// Insert `c` (its id and timestamps are ignored).
    pub async fn create_client(&self, c: &Client) -> StoreResult<Client> {
        let now = clock::now();
        let sql = "INSERT INTO clients (account_id, user_id, external_client_id, company_name, address, house_number, \
                   zip_code, country, city, phone_number, website_url, chamber_of_commerce_number, email, logo, logo_blob, \
                   metadata, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                   $17, $17) RETURNING *";
        Ok(on_pool!(self, p => sqlx::query_as(sql)
            .bind(c.account_id)
            .bind(c.user_id)
            .bind(&c.external_client_id)
            .bind(&c.company_name)
            .bind(&c.address)
            .bind(&c.house_number)
            .bind(&c.zip_code)
            .bind(&c.country)
            .bind(&c.city)
            .bind(&c.phone_number)
            .bind(&c.website_url)
            .bind(&c.chamber_of_commerce_number)
            .bind(&c.email)
            .bind(&c.logo)
            .bind(&c.logo_blob)
            .bind(&c.metadata)
            .bind(now)
            .fetch_one(p)
            .await)?)
    }

    pub async fn get_client(&self, account_id: i64, id: i64) -> StoreResult<Option<Client>> {
        let sql = "SELECT * FROM clients WHERE account_id = $1 AND id = $2";
        Ok(on_pool!(self, p => sqlx::query_as(sql).bind(account_id).bind(id).fetch_optional(p).await)?)
    }

    pub async fn list_clients(&self, account_id: i64, query: &ListQuery) -> StoreResult<Page<Client>> {
        self.list_rows("clients", account_scope(account_id), query).await
    }

    pub async fn update_client(
        &self,
        account_id: i64,
        id: i64,
        change: impl Fn(&mut Client),
    ) -> StoreResult<Option<Client>> {
        for _ in 0..CAS_TRIES {
            let Some(old) = self.get_client(account_id, id).await? else {
                return Ok(None);
            };
            let mut c = old.clone();
            change(&mut c);
            c.updated_at = clock::now().max(old.updated_at + chrono::Duration::microseconds(1));
            let sql = "UPDATE clients SET user_id = $3, external_client_id = $4, company_name = $5, address = $6, \
                       house_number = $7, zip_code = $8, country = $9, city = $10, phone_number = $11, website_url = $12, \
                       chamber_of_commerce_number = $13, email = $14, logo = $15, logo_blob = $16, metadata = $17, \
                       updated_at = $18 WHERE account_id = $1 AND id = $2 AND updated_at = $19";
            let n = on_pool!(self, p => sqlx::query(sql)
                .bind(account_id)
                .bind(id)
                .bind(c.user_id)
                .bind(&c.external_client_id)
                .bind(&c.company_name)
                .bind(&c.address)
                .bind(&c.house_number)
                .bind(&c.zip_code)
                .bind(&c.country)
                .bind(&c.city)
                .bind(&c.phone_number)
                .bind(&c.website_url)
                .bind(&c.chamber_of_commerce_number)
                .bind(&c.email)
                .bind(&c.logo)
                .bind(&c.logo_blob)
                .bind(&c.metadata)
                .bind(c.updated_at)
                .bind(old.updated_at)
                .execute(p)
                .await
                .map(|r| r.rows_affected()))?;
            if n == 1 {
                return Ok(Some(c));
            }
        }
        Err(StoreError::Contended)
    }

    /// Delete a client; its contacts stay, without a client. Returns the deleted row, so
    /// the caller can remove what it pointed at (an uploaded logo).
    pub async fn delete_client(&self, account_id: i64, id: i64) -> StoreResult<Option<Client>> {
        let sql = "DELETE FROM clients WHERE account_id = $1 AND id = $2 RETURNING *";
        Ok(on_pool!(self, p => sqlx::query_as(sql).bind(account_id).bind(id).fetch_optional(p).await)?)
    }
}
