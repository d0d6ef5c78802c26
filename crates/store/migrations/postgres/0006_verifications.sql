-- Verifications (issue 6): one-time codes, every send of one (for the send and velocity
-- limits), and phone-verified sign-ups. No code is stored: each verification keeps a
-- random salt and its code is derived from the server key (decision 0011).
CREATE TABLE verifications (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    channel TEXT NOT NULL,
    to_address TEXT NOT NULL,
    -- pending | approved | canceled | expired | max_attempts_reached
    status TEXT NOT NULL,
    code_length BIGINT NOT NULL,
    code_salt TEXT NOT NULL,
    locale TEXT NOT NULL,
    text_id BIGINT,
    template_id BIGINT,
    send_count BIGINT NOT NULL DEFAULT 0,
    check_count BIGINT NOT NULL DEFAULT 0,
    max_checks BIGINT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    approved_at TIMESTAMPTZ,
    metadata JSONB NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX verifications_account ON verifications (account_id, id);
CREATE INDEX verifications_pending ON verifications (account_id, to_address) WHERE status = 'pending';

-- One row per code sent: the sliding windows of the limits count these.
CREATE TABLE verification_sends (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    verification_id BIGINT NOT NULL REFERENCES verifications(id) ON DELETE CASCADE,
    channel TEXT NOT NULL,
    to_address TEXT NOT NULL,
    prefix TEXT NOT NULL,
    ip TEXT,
    transmission_id BIGINT,
    sent_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX verification_sends_to ON verification_sends (account_id, to_address, sent_at);
CREATE INDEX verification_sends_prefix ON verification_sends (account_id, prefix, sent_at);
CREATE INDEX verification_sends_ip ON verification_sends (account_id, ip, sent_at);
CREATE INDEX verification_sends_verification ON verification_sends (verification_id, id);

-- A phone-verified sign-up (the Nunua flow): phone → code checked → documents → user.
-- Once registered the row is the customer's profile.
CREATE TABLE signups (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    phone TEXT NOT NULL,
    -- pending_verification | verified | registered
    status TEXT NOT NULL,
    verification_id BIGINT REFERENCES verifications(id) ON DELETE SET NULL,
    phone_verified_at TIMESTAMPTZ,
    photo TEXT,
    id_front TEXT,
    id_back TEXT,
    name TEXT,
    id_number TEXT,
    dob TEXT,
    user_id BIGINT REFERENCES users(id) ON DELETE CASCADE,
    metadata JSONB NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX signups_account ON signups (account_id, id);
CREATE INDEX signups_phone ON signups (account_id, phone);
-- A phone registers once per account.
CREATE UNIQUE INDEX signups_phone_key ON signups (account_id, phone) WHERE status = 'registered';
CREATE UNIQUE INDEX signups_user_id_key ON signups (user_id);
