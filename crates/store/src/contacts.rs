//! Contacts: the people an account reaches, unique per account by E.164 `msisdn`.

use chrono::{DateTime, Utc};
use sauti_core::clock;
use sauti_core::filter::{FieldKind, FieldSpec, ListQuery, ResourceSpec, SqlValue};

use crate::list::account_scope;
use crate::users::CAS_TRIES;
use crate::{Json, JsonMap, Page, Store, StoreError, StoreResult, on_pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Contact {
    pub id: i64,
    pub account_id: i64,
    pub msisdn: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub address: Option<String>,
    pub custom1: Option<String>,
    pub custom2: Option<String>,
    pub custom3: Option<String>,
    pub description: Option<String>,
    pub client_id: Option<i64>,
    pub metadata: Json<JsonMap>,
    pub opted_out_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Contact {
    /// The value of a `{{…}}` placeholder in a message to this contact
    /// (`{{first_name}}`, `{{metadata.city}}`).
    pub fn placeholder(&self, name: &str) -> Option<String> {
        if let Some(path) = name.strip_prefix("metadata.") {
            return sauti_core::template::json_path(&self.metadata.0, path);
        }
        match name {
            "msisdn" | "phone" => Some(self.msisdn.clone()),
            "first_name" => self.first_name.clone(),
            "last_name" => self.last_name.clone(),
            "email" => self.email.clone(),
            "address" => self.address.clone(),
            "custom1" => self.custom1.clone(),
            "custom2" => self.custom2.clone(),
            "custom3" => self.custom3.clone(),
            "description" => self.description.clone(),
            _ => None,
        }
    }

    /// Render `text` for this contact.
    pub fn personalise(&self, text: &str, html: bool) -> String {
        sauti_core::template::render(text, html, |name| self.placeholder(name))
    }
}

/// The writable fields of a contact, already validated (msisdn in E.164).
#[derive(Debug, Clone, Default)]
pub struct ContactFields {
    pub msisdn: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub address: Option<String>,
    pub custom1: Option<String>,
    pub custom2: Option<String>,
    pub custom3: Option<String>,
    pub description: Option<String>,
    pub client_id: Option<i64>,
    pub metadata: JsonMap,
    pub opted_out_at: Option<DateTime<Utc>>,
}

impl ContactFields {
    /// The optional text columns an import writes, in the order of its INSERT: `email`,
    /// `first_name`, `last_name`, `address`, `custom1..3`, `description`.
    pub(crate) fn import_texts(&self) -> [&Option<String>; 8] {
        [
            &self.email,
            &self.first_name,
            &self.last_name,
            &self.address,
            &self.custom1,
            &self.custom2,
            &self.custom3,
            &self.description,
        ]
    }
}

/// What a contact list or audience filters on (`q[...]` of `GET /api/contacts`, a
/// callout's `contact_filter_params`).
pub const FILTER: ResourceSpec = ResourceSpec {
    sortable: &[
        "id",
        "created_at",
        "updated_at",
        "msisdn",
        "first_name",
        "last_name",
        "email",
    ],
    fields: &[
        FieldSpec {
            name: "msisdn",
            column: "msisdn",
            kind: FieldKind::Text,
        },
        FieldSpec {
            name: "email",
            column: "email",
            kind: FieldKind::Text,
        },
        FieldSpec {
            name: "first_name",
            column: "first_name",
            kind: FieldKind::Text,
        },
        FieldSpec {
            name: "last_name",
            column: "last_name",
            kind: FieldKind::Text,
        },
        FieldSpec {
            name: "client_id",
            column: "client_id",
            kind: FieldKind::Int,
        },
        FieldSpec {
            name: "group_id",
            column: "id IN (SELECT contact_id FROM group_contacts WHERE group_id = {})",
            kind: FieldKind::Int,
        },
        FieldSpec {
            name: "opted_out",
            column: "(opted_out_at IS NOT NULL) = {}",
            kind: FieldKind::Bool,
        },
    ],
    has_metadata: true,
};

/// A subset of an account's contacts, for [`Store::list_contacts_in`].
pub enum ContactScope {
    Group(i64),
    Client(i64),
}

impl Store {
    pub async fn create_contact(&self, account_id: i64, f: &ContactFields) -> StoreResult<Contact> {
        let now = clock::now();
        let sql = "INSERT INTO contacts (account_id, msisdn, email, first_name, last_name, address, custom1, custom2, custom3, \
                   description, client_id, metadata, opted_out_at, created_at, updated_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14) RETURNING *";
        Ok(on_pool!(self, p => sqlx::query_as(sql)
            .bind(account_id)
            .bind(&f.msisdn)
            .bind(&f.email)
            .bind(&f.first_name)
            .bind(&f.last_name)
            .bind(&f.address)
            .bind(&f.custom1)
            .bind(&f.custom2)
            .bind(&f.custom3)
            .bind(&f.description)
            .bind(f.client_id)
            .bind(Json(&f.metadata))
            .bind(f.opted_out_at)
            .bind(now)
            .fetch_one(p)
            .await)?)
    }

    pub async fn get_contact(&self, account_id: i64, id: i64) -> StoreResult<Option<Contact>> {
        let sql = "SELECT * FROM contacts WHERE account_id = $1 AND id = $2";
        Ok(on_pool!(self, p => sqlx::query_as(sql).bind(account_id).bind(id).fetch_optional(p).await)?)
    }

    pub async fn find_contact_by_msisdn(&self, account_id: i64, msisdn: &str) -> StoreResult<Option<Contact>> {
        let sql = "SELECT * FROM contacts WHERE account_id = $1 AND msisdn = $2";
        Ok(on_pool!(self, p => sqlx::query_as(sql).bind(account_id).bind(msisdn).fetch_optional(p).await)?)
    }

    /// The account's contacts among `msisdns` (E.164), in no particular order: one query
    /// for many concurrent sends to raw numbers.
    pub async fn find_contacts_by_msisdns(&self, account_id: i64, msisdns: &[&str]) -> StoreResult<Vec<Contact>> {
        if msisdns.is_empty() {
            return Ok(vec![]);
        }
        // One statement text whatever the count, so it stays prepared: the numbers go as
        // one JSON array (SQLite) or text array (PostgreSQL).
        Ok(match &self.pool {
            crate::Pool::Sqlite(p, _) => {
                let sql =
                    "SELECT * FROM contacts WHERE account_id = $1 AND msisdn IN (SELECT value FROM json_each($2))";
                let list = serde_json::to_string(msisdns).unwrap_or_else(|_| "[]".into());
                sqlx::query_as(sql).bind(account_id).bind(list).fetch_all(p).await?
            }
            crate::Pool::Postgres(p) => {
                let sql = "SELECT * FROM contacts WHERE account_id = $1 AND msisdn = ANY($2)";
                sqlx::query_as(sql).bind(account_id).bind(msisdns).fetch_all(p).await?
            }
        })
    }

    pub async fn list_contacts(&self, account_id: i64, query: &ListQuery) -> StoreResult<Page<Contact>> {
        self.list_rows("contacts", account_scope(account_id), query).await
    }

    /// Contacts of one group or client of the account.
    pub async fn list_contacts_in(
        &self,
        account_id: i64,
        scope: ContactScope,
        query: &ListQuery,
    ) -> StoreResult<Page<Contact>> {
        self.list_rows("contacts", scoped(account_id, Some(scope)), query).await
    }

    /// Up to `limit` contacts with `id > after`, in id order, matching `query`'s filter
    /// (its sort and page are ignored): the keyset pages a streamed export walks.
    pub async fn contacts_after(
        &self,
        account_id: i64,
        scope: Option<ContactScope>,
        query: &ListQuery,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<Contact>> {
        let group = match scope {
            Some(ContactScope::Group(g)) => Some(g),
            _ => None,
        };
        let mut base = match group {
            Some(_) => account_scope(account_id),
            None => scoped(account_id, scope),
        };
        query.filter.compile_into(self.dialect(), &mut base);
        let after = base.bind(SqlValue::Int(after));
        let limit = base.bind(SqlValue::Int(i64::from(limit)));
        let sql = match group {
            // A group's page walks the group's own index from the cursor and stops after
            // `limit` matches. `scoped`'s `id IN (SELECT … group)` would have SQLite read
            // every member of the group for each page (a million lookups a page for a
            // million-contact group, which held a campaign's population to 3k/s).
            // `members` has one column, so the filter's unqualified names stay the
            // contact's.
            Some(group) => {
                let group = base.bind(SqlValue::Int(group));
                format!(
                    "SELECT contacts.* FROM (SELECT contact_id FROM group_contacts \
                     WHERE group_id = {group} AND contact_id > {after}) AS members \
                     CROSS JOIN contacts WHERE contacts.id = members.contact_id AND {} \
                     ORDER BY members.contact_id LIMIT {limit}",
                    base.text
                )
            }
            None => format!(
                "SELECT * FROM contacts WHERE {} AND id > {after} ORDER BY id LIMIT {limit}",
                base.text
            ),
        };
        let sql = sqlx::AssertSqlSafe(sql);
        Ok(match &self.pool {
            crate::Pool::Sqlite(p, _) => {
                sqlx::query_as_with(sql, crate::list::sqlite_args(&base.params))
                    .fetch_all(p)
                    .await?
            }
            crate::Pool::Postgres(p) => {
                sqlx::query_as_with(sql, crate::list::pg_args(&base.params))
                    .fetch_all(p)
                    .await?
            }
        })
    }

    /// Conditional read-modify-write, as [`Store::update_account`].
    pub async fn update_contact(
        &self,
        account_id: i64,
        id: i64,
        change: impl Fn(&mut Contact),
    ) -> StoreResult<Option<Contact>> {
        for _ in 0..CAS_TRIES {
            let Some(old) = self.get_contact(account_id, id).await? else {
                return Ok(None);
            };
            let mut new = old.clone();
            change(&mut new);
            // Stamped here so the contact returned is the row as written.
            new.updated_at = clock::now().max(old.updated_at + chrono::Duration::microseconds(1));
            if self.write_contact(&new, old.updated_at).await? {
                return Ok(Some(new));
            }
        }
        Err(StoreError::Contended)
    }

    /// Write `c` (its `updated_at` included) if its row still has `expected_updated_at`.
    async fn write_contact(&self, c: &Contact, expected_updated_at: DateTime<Utc>) -> StoreResult<bool> {
        let sql = "UPDATE contacts SET msisdn = $3, email = $4, first_name = $5, last_name = $6, address = $7, custom1 = $8, \
                   custom2 = $9, custom3 = $10, description = $11, client_id = $12, metadata = $13, opted_out_at = $14, \
                   updated_at = $15 WHERE account_id = $1 AND id = $2 AND updated_at = $16";
        let n = on_pool!(self, p => sqlx::query(sql)
            .bind(c.account_id)
            .bind(c.id)
            .bind(&c.msisdn)
            .bind(&c.email)
            .bind(&c.first_name)
            .bind(&c.last_name)
            .bind(&c.address)
            .bind(&c.custom1)
            .bind(&c.custom2)
            .bind(&c.custom3)
            .bind(&c.description)
            .bind(c.client_id)
            .bind(&c.metadata)
            .bind(c.opted_out_at)
            .bind(c.updated_at)
            .bind(expected_updated_at)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Create the contact, or apply `change` to the one with the same msisdn. Returns the
    /// contact and whether it was created.
    pub async fn upsert_contact(
        &self,
        account_id: i64,
        fields: &ContactFields,
        change: impl Fn(&mut Contact),
    ) -> StoreResult<(Contact, bool)> {
        for _ in 0..CAS_TRIES {
            if let Some(existing) = self.find_contact_by_msisdn(account_id, &fields.msisdn).await? {
                let Some(updated) = self.update_contact(account_id, existing.id, &change).await? else {
                    continue;
                };
                return Ok((updated, false));
            }
            match self.create_contact(account_id, fields).await {
                Ok(c) => return Ok((c, true)),
                // Someone created it between our look-up and insert: update theirs.
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Contended)
    }

    pub async fn delete_contact(&self, account_id: i64, id: i64) -> StoreResult<bool> {
        let sql = "DELETE FROM contacts WHERE account_id = $1 AND id = $2";
        let n = on_pool!(self, p => sqlx::query(sql).bind(account_id).bind(id).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// How many contacts the account has (for the account's `contacts_count`).
    pub async fn count_contacts(&self, account_id: i64) -> StoreResult<i64> {
        let sql = "SELECT COUNT(*) FROM contacts WHERE account_id = $1";
        Ok(on_pool!(self, p => sqlx::query_scalar(sql).bind(account_id).fetch_one(p).await)?)
    }
}

/// The condition for an account's contacts, narrowed to a group or client.
pub(crate) fn scoped(account_id: i64, scope: Option<ContactScope>) -> sauti_core::filter::Sql {
    let mut base = account_scope(account_id);
    match scope {
        Some(ContactScope::Group(g)) => {
            let ph = base.bind(SqlValue::Int(g));
            base.text.push_str(&format!(
                " AND id IN (SELECT contact_id FROM group_contacts WHERE group_id = {ph})"
            ));
        }
        Some(ContactScope::Client(c)) => {
            let ph = base.bind(SqlValue::Int(c));
            base.text.push_str(&format!(" AND client_id = {ph}"));
        }
        None => {}
    }
    base
}
