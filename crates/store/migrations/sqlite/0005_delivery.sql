-- The delivery engine (issue 4): providers, content, transmissions and their attempts,
-- results and raw provider events, outbound webhooks. The transmissions table is the
-- queue: `status = 'queued' AND next_attempt_at <= now` is due work; a claim sets
-- `status = 'sending'` with a lease (`leased_until`, `lease_owner`).
CREATE TABLE providers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    channels TEXT NOT NULL DEFAULT '[]',
    -- Kind-specific settings, secrets included: never returned by the API.
    settings TEXT NOT NULL DEFAULT '{}',
    prefix TEXT NOT NULL DEFAULT '',
    weight INTEGER NOT NULL DEFAULT 1,
    throughput_per_second INTEGER,
    active BOOLEAN NOT NULL DEFAULT 1,
    metadata TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX providers_account ON providers (account_id, id);

CREATE TABLE texts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    data TEXT NOT NULL,
    type TEXT NOT NULL DEFAULT 'plain',
    description TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX texts_account ON texts (account_id, id);

CREATE TABLE templates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    body_alt TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX templates_account ON templates (account_id, id);

CREATE TABLE transmissions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    direction TEXT NOT NULL DEFAULT 'outbound',
    channel TEXT NOT NULL,
    origin TEXT NOT NULL DEFAULT 'api',
    -- 0 transactional (API sends, OTPs), 1 bulk (campaigns): claims take 0 first.
    priority INTEGER NOT NULL DEFAULT 0,
    contact_id INTEGER REFERENCES contacts(id) ON DELETE SET NULL,
    to_address TEXT NOT NULL,
    from_address TEXT,
    body TEXT NOT NULL DEFAULT '',
    subject TEXT,
    html TEXT,
    text_id INTEGER REFERENCES texts(id) ON DELETE SET NULL,
    template_id INTEGER REFERENCES templates(id) ON DELETE SET NULL,
    encoding TEXT,
    segments INTEGER NOT NULL DEFAULT 1,
    status TEXT NOT NULL,
    max_attempts INTEGER NOT NULL,
    -- Attempts spent: throttled and never-sent tries are given back.
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    leased_until TEXT,
    lease_owner TEXT,
    scheduled_at TEXT,
    expires_at TEXT,
    validity_period INTEGER,
    provider_id INTEGER REFERENCES providers(id) ON DELETE SET NULL,
    -- The provider of a failed attempt whose fault it was: the next attempt prefers another.
    avoid_provider_id INTEGER,
    error_code TEXT,
    error_message TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    sent_at TEXT,
    delivered_at TEXT,
    completed_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX transmissions_due ON transmissions (priority, next_attempt_at) WHERE status = 'queued';
CREATE INDEX transmissions_leased ON transmissions (leased_until) WHERE status = 'sending';
CREATE INDEX transmissions_account ON transmissions (account_id, id);
CREATE INDEX transmissions_contact ON transmissions (contact_id);

CREATE TABLE attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    transmission_id INTEGER NOT NULL REFERENCES transmissions(id) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    provider_id INTEGER REFERENCES providers(id) ON DELETE SET NULL,
    provider_kind TEXT NOT NULL,
    status TEXT NOT NULL,
    remote_id TEXT,
    raw_status TEXT,
    error_code TEXT,
    error_message TEXT,
    segments INTEGER NOT NULL DEFAULT 1,
    response TEXT NOT NULL DEFAULT '{}',
    queued_at TEXT NOT NULL,
    started_at TEXT,
    ended_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX attempts_transmission ON attempts (transmission_id, number);
CREATE INDEX attempts_remote ON attempts (remote_id);

CREATE TABLE results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    transmission_id INTEGER NOT NULL REFERENCES transmissions(id) ON DELETE CASCADE,
    attempt_id INTEGER REFERENCES attempts(id) ON DELETE CASCADE,
    type TEXT NOT NULL,
    name TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX results_transmission ON results (transmission_id, id);

-- Every inbound provider callback or receipt, stored as received before it is applied.
CREATE TABLE provider_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER REFERENCES accounts(id) ON DELETE CASCADE,
    provider_id INTEGER REFERENCES providers(id) ON DELETE SET NULL,
    kind TEXT NOT NULL,
    attempt_id INTEGER REFERENCES attempts(id) ON DELETE SET NULL,
    remote_id TEXT,
    outcome TEXT NOT NULL,
    payload TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL
);
CREATE INDEX provider_events_account ON provider_events (account_id, id);

CREATE TABLE webhook_endpoints (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    description TEXT,
    events TEXT NOT NULL DEFAULT '[]',
    secret TEXT NOT NULL,
    active BOOLEAN NOT NULL DEFAULT 1,
    disabled_reason TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX webhook_endpoints_account ON webhook_endpoints (account_id, id);

CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    endpoint_id INTEGER NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    message_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    leased_until TEXT,
    last_status_code INTEGER,
    last_error TEXT,
    delivered_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);

CREATE TABLE webhook_delivery_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    delivery_id INTEGER NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    status_code INTEGER,
    error TEXT,
    response_body TEXT,
    duration_ms INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX webhook_delivery_attempts_delivery ON webhook_delivery_attempts (delivery_id, id);
