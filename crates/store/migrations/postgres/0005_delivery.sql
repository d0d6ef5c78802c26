-- The delivery engine (issue 4): providers, content, transmissions and their attempts,
-- results and raw provider events, outbound webhooks. The transmissions table is the
-- queue: `status = 'queued' AND next_attempt_at <= now` is due work; a claim sets
-- `status = 'sending'` with a lease (`leased_until`, `lease_owner`).
CREATE TABLE providers (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    channels JSONB NOT NULL DEFAULT '[]',
    -- Kind-specific settings, secrets included: never returned by the API.
    settings JSONB NOT NULL DEFAULT '{}',
    prefix TEXT NOT NULL DEFAULT '',
    weight BIGINT NOT NULL DEFAULT 1,
    throughput_per_second BIGINT,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    metadata JSONB NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX providers_account ON providers (account_id, id);

CREATE TABLE texts (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    data TEXT NOT NULL,
    type TEXT NOT NULL DEFAULT 'plain',
    description TEXT,
    metadata JSONB NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX texts_account ON texts (account_id, id);

CREATE TABLE templates (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    body_alt TEXT,
    metadata JSONB NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX templates_account ON templates (account_id, id);

CREATE TABLE transmissions (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    direction TEXT NOT NULL DEFAULT 'outbound',
    channel TEXT NOT NULL,
    origin TEXT NOT NULL DEFAULT 'api',
    -- 0 transactional (API sends, OTPs), 1 bulk (campaigns): claims take 0 first.
    priority BIGINT NOT NULL DEFAULT 0,
    contact_id BIGINT REFERENCES contacts(id) ON DELETE SET NULL,
    to_address TEXT NOT NULL,
    from_address TEXT,
    body TEXT NOT NULL DEFAULT '',
    subject TEXT,
    html TEXT,
    text_id BIGINT REFERENCES texts(id) ON DELETE SET NULL,
    template_id BIGINT REFERENCES templates(id) ON DELETE SET NULL,
    encoding TEXT,
    segments BIGINT NOT NULL DEFAULT 1,
    status TEXT NOT NULL,
    max_attempts BIGINT NOT NULL,
    -- Attempts spent: throttled and never-sent tries are given back.
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ,
    leased_until TIMESTAMPTZ,
    lease_owner TEXT,
    scheduled_at TIMESTAMPTZ,
    expires_at TIMESTAMPTZ,
    validity_period BIGINT,
    provider_id BIGINT REFERENCES providers(id) ON DELETE SET NULL,
    -- The provider of a failed attempt whose fault it was: the next attempt prefers another.
    avoid_provider_id BIGINT,
    error_code TEXT,
    error_message TEXT,
    metadata JSONB NOT NULL DEFAULT '{}',
    sent_at TIMESTAMPTZ,
    delivered_at TIMESTAMPTZ,
    completed_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX transmissions_due ON transmissions (priority, next_attempt_at) WHERE status = 'queued';
CREATE INDEX transmissions_leased ON transmissions (leased_until) WHERE status = 'sending';
CREATE INDEX transmissions_account ON transmissions (account_id, id);
CREATE INDEX transmissions_contact ON transmissions (contact_id);

CREATE TABLE attempts (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    transmission_id BIGINT NOT NULL REFERENCES transmissions(id) ON DELETE CASCADE,
    number BIGINT NOT NULL,
    provider_id BIGINT REFERENCES providers(id) ON DELETE SET NULL,
    provider_kind TEXT NOT NULL,
    status TEXT NOT NULL,
    remote_id TEXT,
    raw_status TEXT,
    error_code TEXT,
    error_message TEXT,
    segments BIGINT NOT NULL DEFAULT 1,
    response JSONB NOT NULL DEFAULT '{}',
    queued_at TIMESTAMPTZ NOT NULL,
    started_at TIMESTAMPTZ,
    ended_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX attempts_transmission ON attempts (transmission_id, number);
CREATE INDEX attempts_remote ON attempts (remote_id);

CREATE TABLE results (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    transmission_id BIGINT NOT NULL REFERENCES transmissions(id) ON DELETE CASCADE,
    attempt_id BIGINT REFERENCES attempts(id) ON DELETE CASCADE,
    type TEXT NOT NULL,
    name TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX results_transmission ON results (transmission_id, id);

-- Every inbound provider callback or receipt, stored as received before it is applied.
CREATE TABLE provider_events (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT REFERENCES accounts(id) ON DELETE CASCADE,
    provider_id BIGINT REFERENCES providers(id) ON DELETE SET NULL,
    kind TEXT NOT NULL,
    attempt_id BIGINT REFERENCES attempts(id) ON DELETE SET NULL,
    remote_id TEXT,
    outcome TEXT NOT NULL,
    payload JSONB NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX provider_events_account ON provider_events (account_id, id);

CREATE TABLE webhook_endpoints (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    description TEXT,
    events JSONB NOT NULL DEFAULT '[]',
    secret TEXT NOT NULL,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    disabled_reason TEXT,
    metadata JSONB NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhook_endpoints_account ON webhook_endpoints (account_id, id);

CREATE TABLE webhook_deliveries (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    endpoint_id BIGINT NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    message_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ,
    leased_until TIMESTAMPTZ,
    last_status_code BIGINT,
    last_error TEXT,
    delivered_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);

CREATE TABLE webhook_delivery_attempts (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    delivery_id BIGINT NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    status_code BIGINT,
    error TEXT,
    response_body TEXT,
    duration_ms BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhook_delivery_attempts_delivery ON webhook_delivery_attempts (delivery_id, id);
