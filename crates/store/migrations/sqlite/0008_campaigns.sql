-- Campaigns (issue 5): SCFM callouts, their population batch operations, and the
-- participations, which are transmissions with a callout. A participation waits as
-- `pending` until the callout's pacer releases it (`queued`, `next_attempt_at` stamped
-- by the rate); a retry goes back to `pending`, stamped with the time of the failure.
CREATE TABLE callouts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    -- initialized | running | paused | stopped | completed
    status TEXT NOT NULL DEFAULT 'initialized',
    channel TEXT NOT NULL,
    call_flow_logic TEXT,
    audio_url TEXT,
    recording_id INTEGER,
    body TEXT,
    subject TEXT,
    html TEXT,
    text_id INTEGER REFERENCES texts(id) ON DELETE SET NULL,
    template_id INTEGER REFERENCES templates(id) ON DELETE SET NULL,
    from_address TEXT,
    -- The audience: a group and/or a contact filter (the `q` of GET /api/contacts as JSON).
    group_id INTEGER REFERENCES groups(id) ON DELETE SET NULL,
    contact_filter TEXT,
    -- NULL: as fast as the providers take it.
    rate_per_minute INTEGER,
    max_attempts INTEGER NOT NULL,
    retry_delay_seconds INTEGER NOT NULL,
    -- Comma-separated outcomes that are tried again: busy,not_answered,failed,undelivered.
    retry_on TEXT NOT NULL,
    start_at TEXT,
    stop_at TEXT,
    -- A daily sending window, local time `HH:MM` in `time_zone`.
    window_start TEXT,
    window_end TEXT,
    time_zone TEXT,
    settings TEXT NOT NULL DEFAULT '{}',
    metadata TEXT NOT NULL DEFAULT '{}',
    created_by_id INTEGER,
    -- The pacer's next free slot (not a user-visible change: `updated_at` stays).
    pace_next_at TEXT,
    -- When the audience was turned into participations (set on the first start).
    populated_at TEXT,
    started_at TEXT,
    completed_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX callouts_account ON callouts (account_id, id);
CREATE INDEX callouts_status ON callouts (status);

CREATE TABLE batch_operations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    callout_id INTEGER REFERENCES callouts(id) ON DELETE CASCADE,
    type TEXT NOT NULL,
    -- preview | queued | running | finished | failed
    status TEXT NOT NULL DEFAULT 'preview',
    parameters TEXT NOT NULL DEFAULT '{}',
    metadata TEXT NOT NULL DEFAULT '{}',
    -- The last contact id handled: a restarted population goes on from here.
    contact_cursor INTEGER NOT NULL DEFAULT 0,
    participations_created INTEGER NOT NULL DEFAULT 0,
    leased_until TEXT,
    lease_owner TEXT,
    error_message TEXT,
    started_at TEXT,
    finished_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX batch_operations_account ON batch_operations (account_id, id);
CREATE INDEX batch_operations_work ON batch_operations (status) WHERE status IN ('queued', 'running');

ALTER TABLE transmissions ADD COLUMN callout_id INTEGER REFERENCES callouts(id) ON DELETE CASCADE;
ALTER TABLE transmissions ADD COLUMN batch_operation_id INTEGER REFERENCES batch_operations(id) ON DELETE SET NULL;
ALTER TABLE transmissions ADD COLUMN call_flow_logic TEXT;
-- One participation per contact and callout.
CREATE UNIQUE INDEX transmissions_contact_id_key ON transmissions (callout_id, contact_id) WHERE callout_id IS NOT NULL;
-- The pacer's reads: a callout's pending work in order, its counts by status.
CREATE INDEX transmissions_callout ON transmissions (callout_id, status, id) WHERE callout_id IS NOT NULL;
