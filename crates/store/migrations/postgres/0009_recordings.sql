-- Voice recordings (ICTCore's Voice Recordings): audio an account uploads to play during
-- calls. The audio itself is a file in the blob store, under
-- `<data_dir>/blobs/<account_id>/<media_blob>`; the row says what it is.
CREATE TABLE recordings (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT,
    -- audio/wav | audio/mpeg, recognised from the bytes, never taken from the client
    content_type TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    -- Worked out from a WAV's header; NULL when not known (MP3).
    duration_ms BIGINT,
    media_blob TEXT NOT NULL,
    metadata JSONB NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX recordings_account ON recordings (account_id, id);
