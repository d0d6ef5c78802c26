-- Voice recordings (ICTCore's Voice Recordings): audio an account uploads to play during
-- calls. The audio itself is a file in the blob store, under
-- `<data_dir>/blobs/<account_id>/<media_blob>`; the row says what it is.
CREATE TABLE recordings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT,
    -- audio/wav | audio/mpeg, recognised from the bytes, never taken from the client
    content_type TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    -- Worked out from a WAV's header; NULL when not known (MP3).
    duration_ms INTEGER,
    media_blob TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX recordings_account ON recordings (account_id, id);
