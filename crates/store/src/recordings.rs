//! Voice recordings (ICTCore's Voice Recordings): audio an account uploads to play during
//! calls. The row describes the audio; its bytes are a file in the API's blob store,
//! named by `media_blob`.

use chrono::{DateTime, Utc};
use sauti_core::clock;
use sauti_core::filter::ListQuery;

use crate::list::account_scope;
use crate::users::CAS_TRIES;
use crate::{Json, JsonMap, Page, Store, StoreError, StoreResult, on_pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Recording {
    pub id: i64,
    pub account_id: i64,
    pub name: String,
    pub description: Option<String>,
    /// `audio/wav` or `audio/mpeg`, from the bytes themselves.
    pub content_type: String,
    pub size_bytes: i64,
    /// Known for WAV (from its header); `None` otherwise.
    pub duration_ms: Option<i64>,
    /// The audio's file in the API's blob store. Never shown to callers: it names a file
    /// on the server.
    pub media_blob: String,
    pub metadata: Json<JsonMap>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Where a recording's audio is and what it is: what a call flow needs to play it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RecordingMedia {
    pub media_blob: String,
    pub content_type: String,
    pub size_bytes: i64,
}

impl Store {
    /// Insert `r` (its id and timestamps are ignored).
    pub async fn create_recording(&self, r: &Recording) -> StoreResult<Recording> {
        let sql = "INSERT INTO recordings (account_id, name, description, content_type, size_bytes, duration_ms, \
                   media_blob, metadata, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING *";
        Ok(on_pool!(self, p => sqlx::query_as(sql)
            .bind(r.account_id)
            .bind(&r.name)
            .bind(&r.description)
            .bind(&r.content_type)
            .bind(r.size_bytes)
            .bind(r.duration_ms)
            .bind(&r.media_blob)
            .bind(&r.metadata)
            .bind(clock::now())
            .fetch_one(p)
            .await)?)
    }

    pub async fn get_recording(&self, account_id: i64, id: i64) -> StoreResult<Option<Recording>> {
        let sql = "SELECT * FROM recordings WHERE account_id = $1 AND id = $2";
        Ok(on_pool!(self, p => sqlx::query_as(sql).bind(account_id).bind(id).fetch_optional(p).await)?)
    }

    /// The audio of one of the account's recordings: its blob, type and size. `None` when
    /// the account has no such recording.
    pub async fn get_recording_media(&self, account_id: i64, id: i64) -> StoreResult<Option<RecordingMedia>> {
        let sql = "SELECT media_blob, content_type, size_bytes FROM recordings WHERE account_id = $1 AND id = $2";
        Ok(on_pool!(self, p => sqlx::query_as(sql).bind(account_id).bind(id).fetch_optional(p).await)?)
    }

    pub async fn list_recordings(&self, account_id: i64, query: &ListQuery) -> StoreResult<Page<Recording>> {
        self.list_rows("recordings", account_scope(account_id), query).await
    }

    /// Change a recording: `change` runs on the current row and is written only if no one
    /// else wrote in between (else it runs again on the fresh row).
    pub async fn update_recording(
        &self,
        account_id: i64,
        id: i64,
        change: impl Fn(&mut Recording),
    ) -> StoreResult<Option<Recording>> {
        for _ in 0..CAS_TRIES {
            let Some(old) = self.get_recording(account_id, id).await? else {
                return Ok(None);
            };
            let mut r = old.clone();
            change(&mut r);
            r.updated_at = clock::now().max(old.updated_at + chrono::Duration::microseconds(1));
            let sql = "UPDATE recordings SET name = $3, description = $4, content_type = $5, size_bytes = $6, \
                       duration_ms = $7, media_blob = $8, metadata = $9, updated_at = $10 \
                       WHERE account_id = $1 AND id = $2 AND updated_at = $11";
            let n = on_pool!(self, p => sqlx::query(sql)
                .bind(account_id)
                .bind(id)
                .bind(&r.name)
                .bind(&r.description)
                .bind(&r.content_type)
                .bind(r.size_bytes)
                .bind(r.duration_ms)
                .bind(&r.media_blob)
                .bind(&r.metadata)
                .bind(r.updated_at)
                .bind(old.updated_at)
                .execute(p)
                .await
                .map(|r| r.rows_affected()))?;
            if n == 1 {
                return Ok(Some(r));
            }
        }
        Err(StoreError::Contended)
    }

    /// Delete a recording. Returns the deleted row, so the caller can remove its audio
    /// file (`media_blob`).
    pub async fn delete_recording(&self, account_id: i64, id: i64) -> StoreResult<Option<Recording>> {
        let sql = "DELETE FROM recordings WHERE account_id = $1 AND id = $2 RETURNING *";
        Ok(on_pool!(self, p => sqlx::query_as(sql).bind(account_id).bind(id).fetch_optional(p).await)?)
    }
}
