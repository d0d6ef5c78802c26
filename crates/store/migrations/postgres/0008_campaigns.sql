-- Campaigns (issue 5): SCFM callouts, their population batch operations, and the
-- participations, which are transmissions with a callout. A participation waits as
-- `pending` until the callout's pacer releases it (`queued`, `next_attempt_at` stamped
-- by the rate); a retry goes back to `pending`, stamped with the time of the failure.
CREATE TABLE callouts (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    -- initialized | running | paused | stopped | completed
    status TEXT NOT NULL DEFAULT 'initialized',
    channel TEXT NOT NULL,
    call_flow_logic TEXT,
    audio_url TEXT,
    recording_id BIGINT,
    body TEXT,
    subject TEXT,
    html TEXT,
    text_id BIGINT REFERENCES texts(id) ON DELETE SET NULL,
    template_id BIGINT REFERENCES templates(id) ON DELETE SET NULL,
    from_address TEXT,
    -- The audience: a group and/or a contact filter (the `q` of GET /api/contacts as JSON).
    group_id BIGINT REFERENCES groups(id) ON DELETE SET NULL,
    contact_filter JSONB,
    -- NULL: as fast as the providers take it.
    rate_per_minute BIGINT,
    max_attempts BIGINT NOT NULL,
    retry_delay_seconds BIGINT NOT NULL,
    -- Comma-separated outcomes that are tried again: busy,not_answered,failed,undelivered.
    retry_on TEXT NOT NULL,
    start_at TIMESTAMPTZ,
    stop_at TIMESTAMPTZ,
    -- A daily sending window, local time `HH:MM` in `time_zone`.
    window_start TEXT,
    window_end TEXT,
    time_zone TEXT,
    settings JSONB NOT NULL DEFAULT '{}',
    metadata JSONB NOT NULL DEFAULT '{}',
    created_by_id BIGINT,
    -- The pacer's next free slot (not a user-visible change: `updated_at` stays).
    pace_next_at TIMESTAMPTZ,
    -- When the audience was turned into participations (set on the first start).
    populated_at TIMESTAMPTZ,
    started_at TIMESTAMPTZ,
    completed_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX callouts_account ON callouts (account_id, id);
CREATE INDEX callouts_status ON callouts (status);

CREATE TABLE batch_operations (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    callout_id BIGINT REFERENCES callouts(id) ON DELETE CASCADE,
    type TEXT NOT NULL,
    -- preview | queued | running | finished | failed
    status TEXT NOT NULL DEFAULT 'preview',
    parameters JSONB NOT NULL DEFAULT '{}',
    metadata JSONB NOT NULL DEFAULT '{}',
    -- The last contact id handled: a restarted population goes on from here.
    contact_cursor BIGINT NOT NULL DEFAULT 0,
    participations_created BIGINT NOT NULL DEFAULT 0,
    leased_until TIMESTAMPTZ,
    lease_owner TEXT,
    error_message TEXT,
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX batch_operations_account ON batch_operations (account_id, id);
CREATE INDEX batch_operations_work ON batch_operations (status) WHERE status IN ('queued', 'running');

ALTER TABLE transmissions ADD COLUMN callout_id BIGINT REFERENCES callouts(id) ON DELETE CASCADE;
ALTER TABLE transmissions ADD COLUMN batch_operation_id BIGINT REFERENCES batch_operations(id) ON DELETE SET NULL;
ALTER TABLE transmissions ADD COLUMN call_flow_logic TEXT;
-- One participation per contact and callout.
CREATE UNIQUE INDEX transmissions_contact_id_key ON transmissions (callout_id, contact_id) WHERE callout_id IS NOT NULL;
-- The pacer's reads: a callout's pending work in order, its counts by status.
CREATE INDEX transmissions_callout ON transmissions (callout_id, status, id) WHERE callout_id IS NOT NULL;
